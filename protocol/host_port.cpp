#include "protocol/host_port.hpp"

#include <string>

namespace egressd::protocol {

std::optional<std::uint16_t> parse_port(std::string_view text, port_rules rules)
{
    if (text.empty() || text.size() > 5 || (text.size() > 1 && text.front() == '0' && !rules.allow_leading_zeros)) {
        return std::nullopt;
    }
    unsigned value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value > 65535 || (value == 0 && !rules.allow_zero)) {
        return std::nullopt;
    }
    return static_cast<std::uint16_t>(value);
}

std::optional<host_port_text> split_host_port(std::string_view text)
{
    host_port_text out;
    if (text.starts_with('[')) {
        auto close = text.find(']');
        if (close == std::string_view::npos) {
            return std::nullopt;
        }
        out.host = text.substr(0, close + 1);
        out.bracketed = true;
        auto rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') {
                return std::nullopt;
            }
            out.port = rest.substr(1);
        }
        return out;
    }
    auto colon = text.rfind(':');
    if (colon != std::string_view::npos && text.find(':') != colon) {
        out.host = text;
        out.unbracketed_v6 = true;
        return out;
    }
    out.host = text.substr(0, colon);
    if (colon != std::string_view::npos) {
        out.port = text.substr(colon + 1);
    }
    return out;
}

std::optional<ip_port> parse_ip_port(std::string_view text, port_rules rules)
{
    auto split = split_host_port(text);
    if (!split) {
        return std::nullopt;
    }
    auto address = split->bracketed        ? policy::address::parse_v6(split->host.substr(1, split->host.size() - 2))
                   : split->unbracketed_v6 ? policy::address::parse_v6(split->host)
                                           : policy::address::parse_v4(split->host);
    if (!address) {
        return std::nullopt;
    }
    ip_port out{*address, std::nullopt};
    if (split->port) {
        out.port = parse_port(*split->port, rules);
        if (!out.port) {
            return std::nullopt;
        }
    }
    return out;
}

policy::parsed<policy::destination> parse_destination(std::string_view text)
{
    policy::parsed<policy::destination> result;
    auto split = split_host_port(text);
    if (split && split->unbracketed_v6) {
        result.error = "IPv6 literal without brackets: expected [address]:port";
        return result;
    }
    if (!split || !split->port) {
        result.error = "missing port: expected host:port";
        return result;
    }
    auto port = parse_port(*split->port);
    if (!port) {
        result.error = "invalid port '" + std::string(*split->port) + "': expected 1 to 65535";
        return result;
    }
    auto h = policy::host::parse(split->host);
    if (!h.value) {
        result.error = std::move(h.error);
        return result;
    }
    result.value = policy::destination{std::move(*h.value), *port};
    return result;
}

}  // namespace egressd::protocol
