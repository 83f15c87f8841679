#pragma once

// One connection decided by a policy the way `egressd policy explain` decides it, shared by `policy replay` and
// `policy test` so that the three never disagree.

#include "policy/connection.hpp"

#include <optional>
#include <span>
#include <string>

namespace egressd::proxy::tools {

struct connection_verdict {
    policy::decision deciding;  // the first refusal (name, address, then tunnel phase), else the allowing decision
    bool allowed = false;       // the policy allows it; report mode's would_deny is a refusal here
};

// The name phase, then each resolved address (allowed when one passes), then, given what a tunnel started
// with, the tunnel phase.
// request: a plain-HTTP request's method and path (none: a CONNECT).
connection_verdict decide_connection(const policy::policy& p, std::optional<policy::client_id> client,
                                     const policy::host& target, std::uint16_t port,
                                     std::span<const policy::address> resolved, policy::time_point at,
                                     const std::optional<policy::tunnel_start>& tunnel = std::nullopt,
                                     const std::optional<policy::http_request_facts>& request = std::nullopt);

// A plain-HTTP request as the proxy sees it: the path as written (without the query) in normal form. A method
// other than CONNECT: the proxy refuses a CONNECT with a path before any rule sees it.
policy::http_request_facts http_request_of(std::string method, std::string_view path);

// The deciding rule as "group#index \"description\"" ("deny#0 ..." for the deny list); empty without a rule.
std::string rule_label(const policy::policy& p, const policy::decision& d);

// "allow", "deny [reason]" or "would_deny [reason]", and the rule (for a refusal: the nearest miss).
std::string verdict_label(const policy::policy& p, const policy::decision& d);

}  // namespace egressd::proxy::tools
