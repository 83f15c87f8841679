#pragma once

// Squid's own access semantics, evaluated on the original configuration: http_access lines top to bottom,
// ACLs of a line ANDed left to right (stopping at the first that fails), the first matching line decides,
// and when none matches the answer is the opposite of the last line (deny when there is no line).
// The sample cases' expectations come from here, never from the translated policy.

#include "proxy/tools/import/squid_conf.hpp"

#include <optional>
#include <string>
#include <vector>

namespace egressd::proxy::tools::squid {

struct request {
    std::optional<policy::address> source;
    std::optional<std::string> identity;  // proxy-auth user; nullopt: no credentials sent
    std::string host;                     // lower-case name, or an IP literal's text
    std::optional<policy::address> host_address;
    std::uint16_t port = 0;
    std::string method;  // "CONNECT" for a tunnel
    std::string path;    // plain HTTP only ("/" at least)

    bool is_connect() const { return method == "CONNECT"; }
    // The URL as Squid's url_regex sees it: "http://host[:port]/path", or "host:port" for CONNECT.
    std::string url() const;
};

// unknown: the importer cannot know (time, ssl::server_name, ...); unresolved: a dst ACL for a name, which
// Squid would resolve: counted as not matching, as egressd's name phase does.
enum class match : std::uint8_t { no, yes, auth_required, unknown, unresolved };

// One ACL against one request.
match acl_match(const acl& a, const request& r);

struct evaluation {
    bool allowed = false;
    // Index (0-based) into config::http_access of the deciding line; nullopt: the implicit rule decided.
    std::optional<std::size_t> deciding;
    bool auth_required = false;  // a proxy_auth ACL was reached without credentials: Squid answers 407
    // Lines where an ACL whose result the importer cannot know was reached (counted as not matching on an
    // allow line and as matching on a deny line: the side egressd errs on).
    std::vector<std::size_t> uncertain;
};

evaluation evaluate(const config& c, const request& r);

// Whether a dstdomain value (".example.com" or "example.com", lower case) matches host as Squid matches it.
bool domain_matches(const std::string& value, const std::string& host);

}  // namespace egressd::proxy::tools::squid
