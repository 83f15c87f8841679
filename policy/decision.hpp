#pragma once

#include "policy/guard.hpp"
#include "policy/spec.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace egressd::policy {

enum class verdict : std::uint8_t {
    allow,
    deny,
    would_deny,  // report mode: the policy denies, the traffic goes through, the event says so
};

// Closed set: these become log fields and metric labels. Documented in README.md; append only.
enum class reason : std::uint8_t {
    allowed,           // an allow rule matched (verdict allow)
    unknown_client,    // no client matches the source and there is no "default" client
    no_matching_rule,  // no allow rule of the client's groups names this destination
    port_not_allowed,  // a rule names the destination, but not this port
    explicit_deny,     // a deny rule matched; deny wins over every allow
    address_guard,     // the address is in a guarded set and no CIDR rule of the client names it
    expired,           // the only rules that would allow this have expired
    sni_mismatch,      // the tunnel's TLS SNI is not the CONNECT host (or, for an IP literal, not a name allowed)
    sni_missing,       // tls: require, and the ClientHello has no SNI
    not_tls,           // tls: require, and the tunnel's first bytes are not a TLS ClientHello
    granted,           // no base rule allows it, but an approver's grant does (verdict allow)
    method_not_allowed,  // a rule names the destination and port, but not this plain-HTTP method (or CONNECT)
    path_not_allowed,    // a rule names the destination, port and method, but no prefix of this path
};
inline constexpr int reason_count = 13;

std::string_view to_string(verdict v);
std::string_view to_string(reason r);
std::string_view to_string(mode m);
std::string_view to_string(tls_mode m);
std::optional<tls_mode> parse_tls_mode(std::string_view name);
std::optional<reason> parse_reason(std::string_view name);

using client_id = std::uint32_t;
inline constexpr std::uint32_t deny_group = 0xffffffffu;  // the global deny list
// Group ids from here on name the deny lists of one group or one client (first_deny_list + their index).
inline constexpr std::uint32_t first_deny_list = 0x80000000u;

// What the proxy saw at the start of a CONNECT tunnel.
struct tunnel_start {
    bool is_tls = false;
    std::optional<std::string> sni;  // normalized: lower case, no trailing dot
};

// A plain-HTTP request's method and path, for rules that name methods or paths (a CONNECT tunnel has neither):
// the path in normal form (protocol::http::normalise_path) and as a lenient server may read it (loose_path).
struct http_request {
    std::string_view method;
    std::string_view path;
    std::string_view loose_path;
};

// The same, owned: what deciding an established connection again needs.
struct http_request_facts {
    std::string method;
    std::string path;
    std::string loose_path;
    http_request view() const { return {method, path, loose_path}; }
};

// Names a rule inside one compiled policy: group index (or a deny list's id) and the rule's index in it.
struct rule_ref {
    std::uint32_t group = 0;
    std::uint32_t rule = 0;
    bool is_deny() const { return group >= first_deny_list; }
    friend bool operator==(const rule_ref&, const rule_ref&) = default;
};

// The grant a decision rests on (reason granted).
struct grant_ref {
    std::uint64_t id = 0;
    time_point expires;
    friend bool operator==(const grant_ref&, const grant_ref&) = default;
};

struct decision {
    verdict outcome = verdict::deny;
    reason why = reason::unknown_client;
    mode applied_mode = mode::enforce;
    std::optional<client_id> client;
    std::optional<rule_ref> rule;  // the deciding allow or deny rule, or the nearest miss for port/expiry denials
    std::optional<guard_hit> guard;  // set when reason is address_guard
    std::optional<grant_ref> grant;  // set when reason is granted

    // Allowed by the policy: by a base rule or by a grant (report mode's would_deny is not).
    bool allowed() const { return why == reason::allowed || why == reason::granted; }
    bool allows_traffic() const { return outcome != verdict::deny; }
};

}  // namespace egressd::policy
