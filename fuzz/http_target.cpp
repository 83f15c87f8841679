// Request targets: the absolute form of plain-HTTP requests (parse_absolute_target, then policy::host::parse, as
// intake's parse_target does) and the authority form of CONNECT (parse_destination). The input is tried both
// ways. Invariants: an accepted target yields a host the strict host grammar accepts and that a resolver could
// not read as an address (no numeric name like 127.1 or 0x7f000001 slips through as a "name"), a port in
// 1..65535, an IP literal in its one canonical spelling, and a destination that survives being written out and
// parsed again (as a CONNECT target, a Host field, or a parent proxy's absolute URI). The path's normal form (what
// rules match and egressd forwards) is a fixed point with no dot segment and only upper-case escapes, and its
// lenient reading has no '\\', ';', "//" or dot segment left.
#include "fuzz/invariant.hpp"
#include "policy/domain.hpp"
#include "protocol/host_port.hpp"
#include "protocol/http/message.hpp"
#include "protocol/http/path.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using egressd::fuzz::require;

namespace http = egressd::protocol::http;
namespace policy = egressd::policy;

bool same_host(const policy::host& a, const policy::host& b)
{
    if (a.is_address() != b.is_address()) {
        return false;
    }
    return a.is_address() ? *a.literal() == *b.literal() : *a.name() == *b.name();
}

void check_host(const policy::host& host)
{
    std::string text = host.to_string();
    auto again = policy::host::parse(text);
    require(again.value && same_host(*again.value, host) && again.value->to_string() == text);
    if (const auto* literal = host.literal()) {
        auto canonical = policy::address::parse(literal->to_string());
        require(canonical && *canonical == *literal);
        return;
    }
    const std::string& name = *host.name();
    require(!name.empty() && name.size() <= 253 && name.back() != '.');
    for (char ch : name) {
        require((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_');
    }
    // What getaddrinfo would take for an address (inet_aton: 127.1, 0177.0.0.1, 0x7f000001) must not be a name.
    in_addr v4{};
    in6_addr v6{};
    require(inet_aton(name.c_str(), &v4) == 0);
    require(inet_pton(AF_INET6, name.c_str(), &v6) != 1);
    std::string error;
    auto normalised = policy::normalize_domain_name(name, error);
    require(normalised && *normalised == name);
}

void check_destination(const policy::destination& d)
{
    require(d.port >= 1);
    check_host(d.target);
    auto again = egressd::protocol::parse_destination(d.target.to_string() + ":" + std::to_string(d.port));
    require(again.value && same_host(again.value->target, d.target) && again.value->port == d.port);
}

bool has_dot_segment(std::string_view path)
{
    for (std::size_t start = 1; start <= path.size();) {
        std::size_t slash = path.find('/', start);
        std::string_view segment = path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
        if (segment == "." || segment == "..") {
            return true;
        }
        if (slash == std::string_view::npos) {
            break;
        }
        start = slash + 1;
    }
    return false;
}

void check_path(std::string_view path)
{
    std::string normal = http::normalise_path(path);
    require(!normal.empty() && normal.front() == '/' && http::normalise_path(normal) == normal);
    require(!has_dot_segment(normal));
    for (std::size_t i = 0; i < normal.size(); ++i) {
        if (normal[i] == '%') {
            require(i + 2 < normal.size());
            auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); };
            require(hex(normal[i + 1]) && hex(normal[i + 2]));
        }
    }
    std::string loose = http::loose_path(normal);
    require(!loose.empty() && loose.front() == '/' && !has_dot_segment(loose));
    require(loose.find("//") == std::string::npos && loose.find('\\') == std::string::npos &&
            loose.find(';') == std::string::npos);
}

void check_absolute(std::string_view text)
{
    http::target_error err = http::target_error::none;
    auto uri = http::parse_absolute_target(text, err);
    if (!uri) {
        require(err != http::target_error::none);
        return;
    }
    require(uri->port >= 1);
    require(!uri->origin_form.empty() && uri->origin_form.front() == '/');
    check_path(std::string_view(uri->origin_form).substr(0, uri->origin_form.find('?')));
    for (char ch : uri->origin_form) {
        require(static_cast<unsigned char>(ch) > 0x20 && ch != 0x7f && ch != '#');
    }
    for (char ch : uri->host) {
        require(ch != '@' && ch != '/' && ch != '?' && ch != '#' && ch != '\\' && static_cast<unsigned char>(ch) > 0x20);
    }
    auto host = policy::host::parse(uri->host);
    if (!host.value) {
        return;
    }
    check_destination({*host.value, uri->port});
    // A parent proxy gets "http://" + Host + origin form: it must read the same destination and path.
    std::string port = uri->port == 80 ? "" : ":" + std::to_string(uri->port);
    std::string absolute = "http://" + host.value->to_string() + port + uri->origin_form;
    http::target_error again_err = http::target_error::none;
    auto again = http::parse_absolute_target(absolute, again_err);
    require(again && again->port == uri->port && again->origin_form == uri->origin_form);
    auto again_host = policy::host::parse(again->host);
    require(again_host.value && same_host(*again_host.value, *host.value));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size)
{
    std::string_view text(reinterpret_cast<const char*>(bytes), size);
    check_absolute(text);
    auto destination = egressd::protocol::parse_destination(text);
    if (destination.value) {
        require(destination.error.empty());
        check_destination(*destination.value);
    } else {
        require(!destination.error.empty());
    }
    return 0;
}
