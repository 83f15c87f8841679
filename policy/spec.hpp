#pragma once

// The policy as written by a user: plain data the config loader fills in and policy::compile checks.

#include "policy/address.hpp"
#include "policy/domain.hpp"
#include "policy/guard.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::policy {

using time_point = std::chrono::sys_seconds;

enum class mode : std::uint8_t { enforce, report };

// What a CONNECT tunnel's first bytes must be (checked on the TLS ClientHello before anything is forwarded):
//   require  a TLS ClientHello whose SNI is the CONNECT host (for an IP-literal CONNECT: a name the policy allows)
//   allow    TLS or not; but a TLS SNI, when present, must agree as for require
//   off      no check
enum class tls_mode : std::uint8_t { require, allow, off };

// What happens to an open connection (a CONNECT tunnel, a keep-alive connection) that a reloaded policy no
// longer allows:
//   close  it is closed (the default: a revoked permission takes effect at once, not when the client leaves)
//   keep   it runs on under the permission it was opened with; only new requests see the new policy
enum class revoke_action : std::uint8_t { close, keep };

// Defined here rather than with the other names in decision.cpp so that the enum and its names stay together.
inline std::string_view to_string(revoke_action a) { return a == revoke_action::keep ? "keep" : "close"; }

inline std::optional<revoke_action> parse_revoke_action(std::string_view name)
{
    for (auto a : {revoke_action::close, revoke_action::keep}) {
        if (to_string(a) == name) {
            return a;
        }
    }
    return std::nullopt;
}

// Where a definition came from, so that every diagnostic can name file:line:column.
// file indexes policy_spec::files; line and column are 1-based; 0 means unknown.
struct source_location {
    std::uint32_t file = 0;
    std::uint32_t line = 0;
    std::uint32_t column = 0;
};

struct port_range {
    std::uint16_t first = 1;
    std::uint16_t last = 65535;

    bool contains(std::uint16_t port) const { return port >= first && port <= last; }
    bool is_all() const { return first == 1 && last == 65535; }
    friend bool operator==(const port_range&, const port_range&) = default;
};

struct rule_spec {
    std::vector<port_range> ports;  // allow rules: never empty; deny rules: empty means every port
    std::vector<domain_pattern> domains;
    std::vector<cidr> cidrs;
    std::string description;
    std::optional<time_point> expires;
    std::optional<tls_mode> tls;  // unset: the policy's default_tls
    // Plain-HTTP conditions: the request's method must be listed and its normal path must start with a prefix.
    // A CONNECT matches only a rule whose methods list CONNECT and which names no paths. Empty: any request.
    std::vector<std::string> methods;
    std::vector<std::string> paths;  // in normal form (protocol::http::normalise_path)
    source_location where;
};

// A parent proxy (a corporate proxy) that allowed traffic leaves through: egressd connects to it and asks it for
// the destination (CONNECT for tunnels, absolute-form for plain HTTP), so the parent resolves the destination.
struct parent_proxy {
    std::string host;  // a DNS name or an IP literal (canonical text, without brackets)
    std::uint16_t port = 3128;
    // "host:port", an IPv6 literal in brackets
    std::string to_string() const
    {
        std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
        return h + ":" + std::to_string(port);
    }
    friend bool operator==(const parent_proxy&, const parent_proxy&) = default;
};

// Where a group's allowed traffic goes:
//   inherit  the server's upstream_proxy (directly when it names none)
//   direct   straight to the destination, even when the server names a parent
//   parent   through this group's own parent
enum class route_kind : std::uint8_t { inherit, direct, parent };
struct upstream_route {
    route_kind kind = route_kind::inherit;
    parent_proxy parent;  // kind parent
    source_location where;
};

struct group_spec {
    std::string name;
    std::string description;
    std::vector<rule_spec> rules;
    source_location where;
    upstream_route upstream = {};  // "upstream_proxy: http://host:port" or "upstream_proxy: direct"
    std::vector<rule_spec> deny = {};  // for every client of the group; wins over every allow, like the global list
};

struct named_ref {
    std::string name;
    source_location where;
};

struct located_cidr {
    cidr value;
    source_location where;
};

// An identity a client answers to: an exact string ("alice", "spiffe://corp/ns/batch/sa/worker") or, ending in
// "*", every identity starting with what comes before it ("spiffe://corp/ns/batch/*").
struct identity_pattern {
    std::string text;     // without the trailing "*"
    bool prefix = false;
    source_location where;
};

struct client_spec {
    std::string name;  // "default" matches clients no other client matches
    std::string description;
    std::vector<located_cidr> sources;
    // Identities established by the proxy (proxy authentication user, mTLS certificate name). A client with both
    // identities and sources needs both to match; with only identities, any source.
    std::vector<identity_pattern> identities;
    std::vector<named_ref> groups;
    std::optional<mode> mode_override;
    std::optional<bool> requests;    // "requests: on|off" on the client; unset: the policy's
    unsigned required_approvals = 1;  // "approvals: {required: 2}": two distinct approvers
    source_location approvals_where;  // where required_approvals was written; unset: the client's location
    std::vector<rule_spec> deny = {};  // this client's own deny list; wins over every allow
    source_location where;
};

struct policy_spec {
    std::vector<std::string> files;  // indexed by source_location::file
    mode default_mode = mode::enforce;
    tls_mode default_tls = tls_mode::allow;
    revoke_action on_revoke = revoke_action::close;
    guard_set guarded = guard_set::all();
    std::vector<cidr> nat64_prefixes;  // address_guard.nat64_prefixes: the operator's own (RFC 6052 lengths)
    bool requests = true;  // "requests: off" at the top: no denial becomes an access request
    std::vector<group_spec> groups;
    std::vector<client_spec> clients;
    std::vector<rule_spec> deny;
};

}  // namespace egressd::policy
