#include "proxy/tools/event_reader.hpp"

#include "config/rfc3339.hpp"
#include "protocol/host_port.hpp"

#include <boost/json.hpp>

#include <cerrno>
#include <algorithm>
#include <charconv>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <iostream>
#include <limits>
#include <stdexcept>
#include <variant>

namespace egressd::proxy::tools {
namespace {

namespace json = boost::json;

// How many "file:line: why" problems a report keeps: enough to see what is wrong, not a copy of a bad file.
constexpr std::size_t max_problems = 5;

const json::value* find_path(const json::object& root, std::initializer_list<std::string_view> path)
{
    const json::object* at = &root;
    const json::value* found = nullptr;
    for (auto key : path) {
        if (at == nullptr) {
            return nullptr;
        }
        found = at->if_contains(key);
        if (found == nullptr) {
            return nullptr;
        }
        at = found->if_object();
    }
    return found;
}

// The string at path; empty when absent, null or not a string.
std::string text_at(const json::object& root, std::initializer_list<std::string_view> path)
{
    const auto* v = find_path(root, path);
    if (v == nullptr || !v->is_string()) {
        return {};
    }
    return std::string(v->get_string());
}

std::optional<std::int64_t> integer_at(const json::object& root, std::initializer_list<std::string_view> path)
{
    const auto* v = find_path(root, path);
    if (v == nullptr) {
        return std::nullopt;
    }
    if (const auto* i = v->if_int64()) {
        return *i;
    }
    if (const auto* u = v->if_uint64(); u != nullptr && *u <= static_cast<std::uint64_t>(
                                                                  std::numeric_limits<std::int64_t>::max())) {
        return static_cast<std::int64_t>(*u);
    }
    return std::nullopt;
}

// A failed line: why it could not be read.
struct unreadable {
    std::string why;
};

using line_result = std::variant<std::monostate /* skipped */, recorded_event, unreadable>;

std::optional<std::uint16_t> port_value(std::optional<std::int64_t> n)
{
    if (!n || *n < 0 || *n > 65535) {
        return std::nullopt;
    }
    return static_cast<std::uint16_t>(*n);
}

// system_clock counts nanoseconds in 64 bits (years 1678 to 2262): a time outside that range is clamped to
// it rather than wrapping around.
std::chrono::system_clock::time_point clamped(std::chrono::sys_seconds t)
{
    using clock = std::chrono::system_clock;
    constexpr auto latest = std::chrono::floor<std::chrono::seconds>(clock::time_point::max());
    constexpr auto earliest = std::chrono::ceil<std::chrono::seconds>(clock::time_point::min());
    return clock::time_point(std::clamp(t, std::chrono::sys_seconds(earliest), std::chrono::sys_seconds(latest)));
}

// "2026-12-31T23:59:59.123Z": RFC 3339 with the milliseconds, if any, kept (config::parse_rfc3339 drops them).
std::optional<std::chrono::system_clock::time_point> parse_time(std::string_view text)
{
    auto seconds = config::parse_rfc3339(text);
    if (!seconds) {
        return std::nullopt;
    }
    auto t = clamped(*seconds);
    if (std::chrono::floor<std::chrono::seconds>(t) != *seconds) {
        return t;  // clamped: a fraction would not move it
    }
    auto dot = text.find('.');
    if (dot != std::string_view::npos && dot > 10) {
        int scale = 100;
        for (std::size_t i = dot + 1; i < text.size() && scale > 0 && text[i] >= '0' && text[i] <= '9'; ++i) {
            t += std::chrono::milliseconds((text[i] - '0') * scale);
            scale /= 10;
        }
    }
    return t;
}

// "ip:port" or "[ip]:port", as the egressd format writes the source.
bool split_source(std::string_view text, recorded_event& e)
{
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
        return false;
    }
    auto ip = text.substr(0, colon);
    if (ip.size() >= 2 && ip.front() == '[' && ip.back() == ']') {
        ip = ip.substr(1, ip.size() - 2);
    }
    auto port = protocol::parse_port(text.substr(colon + 1), {.allow_zero = true});
    if (ip.empty() || !port) {
        return false;
    }
    e.source_ip = std::string(ip);
    e.source_port = *port;
    return true;
}

// "group#index", as ECS rule.id and OCSF firewall_rule.uid write the deciding rule.
void split_rule_id(std::string_view id, recorded_event& e)
{
    auto hash = id.rfind('#');
    if (hash == std::string_view::npos) {
        return;
    }
    std::uint32_t index = 0;
    auto digits = id.substr(hash + 1);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (ec == std::errc() && end == digits.data() + digits.size() && !digits.empty()) {
        e.rule_group = std::string(id.substr(0, hash));
        e.rule_index = index;
    }
}

std::optional<std::uint32_t> rule_index_at(const json::object& root, std::initializer_list<std::string_view> path)
{
    auto n = integer_at(root, path);
    if (!n || *n < 0 || *n > std::numeric_limits<std::uint32_t>::max()) {
        return std::nullopt;
    }
    return static_cast<std::uint32_t>(*n);
}

line_result read_native(const json::object& o)
{
    recorded_event e;
    e.event = text_at(o, {"event"});
    if (!e.event.starts_with("egress.")) {
        return std::monostate{};
    }
    auto time = parse_time(text_at(o, {"time"}));
    if (!time) {
        return unreadable{"no RFC 3339 \"time\""};
    }
    e.time = *time;
    e.host = text_at(o, {"host"});
    auto port = port_value(integer_at(o, {"port"}));
    if (e.host.empty() || !port) {
        return unreadable{"no \"host\" and \"port\""};
    }
    e.port = *port;
    if (!split_source(text_at(o, {"source"}), e)) {
        return unreadable{"no \"source\" as ip:port"};
    }
    e.request_id = text_at(o, {"request_id"});
    e.client = text_at(o, {"client"});
    e.identity = text_at(o, {"identity"});
    e.method = text_at(o, {"method"});
    e.path = text_at(o, {"path"});
    e.address = text_at(o, {"address"});
    e.reason = text_at(o, {"reason"});
    e.mode = text_at(o, {"mode"});
    e.sni = text_at(o, {"sni"});
    e.rule_group = text_at(o, {"rule_group"});
    e.rule_index = rule_index_at(o, {"rule_index"});
    return e;
}

line_result read_ecs(const json::object& o)
{
    recorded_event e;
    e.event = text_at(o, {"event", "action"});
    if (e.event.empty()) {
        e.event = text_at(o, {"egressd", "event"});
    }
    if (!e.event.starts_with("egress.")) {
        return std::monostate{};
    }
    auto time = parse_time(text_at(o, {"@timestamp"}));
    if (!time) {
        return unreadable{"no RFC 3339 \"@timestamp\""};
    }
    e.time = *time;
    e.host = text_at(o, {"destination", "address"});
    auto port = port_value(integer_at(o, {"destination", "port"}));
    if (e.host.empty() || !port) {
        return unreadable{"no \"destination\" address and port"};
    }
    e.port = *port;
    e.source_ip = text_at(o, {"source", "ip"});
    e.source_port = port_value(integer_at(o, {"source", "port"})).value_or(0);
    e.request_id = text_at(o, {"event", "id"});
    e.client = text_at(o, {"egressd", "client"});
    e.identity = text_at(o, {"user", "name"});
    e.method = text_at(o, {"http", "request", "method"});
    if (e.method.empty()) {
        e.method = text_at(o, {"egressd", "method"});
    }
    e.path = text_at(o, {"url", "path"});
    e.address = text_at(o, {"destination", "ip"});
    e.reason = text_at(o, {"event", "reason"});
    if (e.reason.empty()) {
        e.reason = text_at(o, {"egressd", "reason"});
    }
    e.mode = text_at(o, {"egressd", "mode"});
    e.sni = text_at(o, {"tls", "client", "server_name"});
    split_rule_id(text_at(o, {"rule", "id"}), e);
    if (e.rule_group.empty()) {
        e.rule_group = text_at(o, {"rule", "ruleset"});
    }
    return e;
}

line_result read_ocsf(const json::object& o)
{
    recorded_event e;
    e.event = text_at(o, {"unmapped", "egressd", "event"});
    if (!e.event.starts_with("egress.")) {
        return std::monostate{};
    }
    auto millis = integer_at(o, {"time"});
    // Milliseconds within system_clock's range (years 1678 to 2262).
    constexpr std::int64_t max_millis = std::numeric_limits<std::int64_t>::max() / 1'000'000;
    if (!millis || *millis > max_millis || *millis < -max_millis) {
        return unreadable{"no \"time\" in milliseconds"};
    }
    e.time = std::chrono::system_clock::time_point(std::chrono::milliseconds(*millis));
    std::string asked_ip = text_at(o, {"dst_endpoint", "ip"});
    e.host = text_at(o, {"unmapped", "egressd", "host"});
    if (e.host.empty()) {
        e.host = text_at(o, {"dst_endpoint", "hostname"});
    }
    if (e.host.empty()) {
        e.host = asked_ip;
    }
    auto port = port_value(integer_at(o, {"dst_endpoint", "port"}));
    if (!port) {
        port = port_value(integer_at(o, {"unmapped", "egressd", "port"}));
    }
    if (e.host.empty() || !port) {
        return unreadable{"no destination host and port"};
    }
    e.port = *port;
    e.source_ip = text_at(o, {"src_endpoint", "ip"});
    e.source_port = port_value(integer_at(o, {"src_endpoint", "port"})).value_or(0);
    e.request_id = text_at(o, {"metadata", "uid"});
    e.client = text_at(o, {"unmapped", "egressd", "client"});
    e.identity = text_at(o, {"actor", "user", "name"});
    e.method = text_at(o, {"http_request", "http_method"});
    if (e.method.empty()) {
        e.method = text_at(o, {"unmapped", "egressd", "method"});
    }
    e.path = text_at(o, {"http_request", "url", "path"});
    // dst_endpoint.ip holds the decided address for a name, the literal itself for an IP literal.
    e.address = text_at(o, {"unmapped", "egressd", "address"});
    if (e.address.empty()) {
        e.address = asked_ip;
    }
    e.reason = text_at(o, {"unmapped", "egressd", "reason"});
    e.mode = text_at(o, {"unmapped", "egressd", "mode"});
    e.sni = text_at(o, {"tls", "sni"});
    e.rule_group = text_at(o, {"unmapped", "egressd", "rule_group"});
    e.rule_index = rule_index_at(o, {"unmapped", "egressd", "rule_index"});
    if (e.rule_group.empty()) {
        split_rule_id(text_at(o, {"firewall_rule", "uid"}), e);
    }
    return e;
}

line_result read_line(std::string_view line)
{
    boost::system::error_code ec;
    json::value parsed = json::parse(line, ec);
    if (ec) {
        return unreadable{"not JSON (" + ec.message() + ")"};
    }
    const auto* o = parsed.if_object();
    if (o == nullptr) {
        return unreadable{"not a JSON object"};
    }
    if (o->contains("class_uid")) {
        return read_ocsf(*o);
    }
    if (o->contains("@timestamp")) {
        return read_ecs(*o);
    }
    if (o->contains("event") && (*o).at("event").is_string()) {
        return read_native(*o);
    }
    return unreadable{"neither an egressd, ECS nor OCSF event"};
}

bool passes(const recorded_event& e, const read_filter& filter)
{
    if (filter.since && e.time < *filter.since) {
        return false;
    }
    return !filter.client || e.client == *filter.client;
}

void read_stream(std::istream& in, const std::string& name, const read_filter& filter,
                 const std::function<void(const recorded_event&)>& on_event, read_report& report)
{
    std::size_t number = 0;
    for (std::string line; std::getline(in, line);) {
        ++number;
        ++report.lines;
        if (!line.empty() && line.back() == '\r') {
            line.pop_back();
        }
        if (line.find_first_not_of(" \t") == std::string::npos) {
            continue;
        }
        auto result = read_line(line);
        if (auto* bad = std::get_if<unreadable>(&result)) {
            ++report.unreadable;
            if (report.problems.size() < max_problems) {
                report.problems.push_back(name + ":" + std::to_string(number) + ": " + bad->why);
            }
            continue;
        }
        if (auto* e = std::get_if<recorded_event>(&result); e != nullptr && passes(*e, filter)) {
            ++report.events;
            on_event(*e);
        }
    }
}

}  // namespace

read_report read_events(const std::vector<std::string>& files, const read_filter& filter,
                        const std::function<void(const recorded_event&)>& on_event)
{
    read_report report;
    for (const auto& name : files) {
        if (name == "-") {
            read_stream(std::cin, "(standard input)", filter, on_event, report);
            continue;
        }
        std::ifstream in(name, std::ios::binary);
        if (!in) {
            throw std::runtime_error("cannot open " + name + ": " + std::strerror(errno));
        }
        read_stream(in, name, filter, on_event, report);
        if (in.bad()) {
            throw std::runtime_error("cannot read " + name + ": " + std::strerror(errno));
        }
    }
    return report;
}

std::optional<std::chrono::system_clock::time_point> parse_since(std::string_view text,
                                                                 std::chrono::system_clock::time_point now)
{
    if (text.size() >= 2) {
        std::int64_t count = 0;
        auto digits = text.substr(0, text.size() - 1);
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), count);
        if (ec == std::errc() && end == digits.data() + digits.size() && count >= 0 &&
            count <= 100LL * 365 * 24 * 3600) {
            switch (text.back()) {
            case 's':
                return now - std::chrono::seconds(count);
            case 'm':
                return now - std::chrono::minutes(count);
            case 'h':
                return now - std::chrono::hours(count);
            case 'd':
                return now - std::chrono::days(count);
            default:
                break;
            }
        }
    }
    if (auto t = config::parse_rfc3339(text)) {
        return clamped(*t);
    }
    return std::nullopt;
}

}  // namespace egressd::proxy::tools
