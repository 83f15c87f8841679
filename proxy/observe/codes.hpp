#pragma once

// The closed sets that events and metrics speak in. Each is an enum with one to_string table: these strings
// are log fields, metric label values and X-Egressd-Reason values, so control flow never compares them.
// Append only: operators' alert rules and dashboards name them.

#include "policy/decision.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace egressd::proxy::observe {

// Why a connection or tunnel ended: the `cause` of egress.close, and the label of egressd_closes_total.
enum class close_cause : std::uint8_t {
    client_closed,
    upstream_closed,
    idle_timeout,
    header_timeout,
    lifetime,
    denied,
    bad_request,
    proxy_auth,  // a 407 the client did not retry on the same connection
    dns_failed,
    dns_timeout,
    connect_failed,
    connect_timeout,
    bad_upstream_response,
    upstream_timeout,
    over_limit,
    shutdown,
    done,
    error,
    missing_proxy_header,
    untrusted_proxy_header,
    bad_proxy_header,
    client_cert_missing,
    client_cert_rejected,
    client_identity_invalid,
    tls_handshake_failed,
    policy_revoked,       // a reloaded policy no longer allows the established connection
    rule_expired,         // the rule that allowed it reached its `expires`
    certificate_revoked,  // a reloaded CRL revokes the client certificate
    credentials_revoked,  // the proxy-auth user is gone from the reloaded credentials
    internal_error,       // an exception escaped the session: a bug, logged and counted
    grant_expired,        // the approver's grant that allowed it reached its expiry
    grant_revoked,        // an approver revoked the grant that allowed it
    resource_exhausted,   // egressd ran out of descriptors or kernel memory for this request (503)
};
inline constexpr std::size_t close_cause_count = 33;

// The reason code of a decision event and of egressd's own answers (X-Egressd-Reason): the policy's reasons
// first, in policy::reason's order, then what the proxy adds (DNS, authentication, handshakes, malformed
// requests, upstream failures, egressd's own resources).
enum class reason : std::uint8_t {
    allowed,
    unknown_client,
    no_matching_rule,
    port_not_allowed,
    explicit_deny,
    address_guard,
    expired,
    sni_mismatch,
    sni_missing,
    not_tls,
    granted,
    method_not_allowed,
    path_not_allowed,
    dns_nxdomain,
    dns_no_addresses,
    dns_servfail,
    dns_timeout,
    dns_error,
    proxy_auth_required,
    proxy_auth_failed,
    client_cert_missing,
    client_cert_rejected,
    client_identity_invalid,
    tls_handshake_failed,
    bad_request,
    head_too_large,
    request_line_too_long,
    header_timeout,
    missing_proxy_header,
    untrusted_proxy_header,
    bad_proxy_header,
    connect_failed,
    connect_timeout,
    bad_upstream_response,
    upstream_timeout,
    upstream_closed,
    resource_exhausted,  // no descriptor or kernel memory for a socket egressd needed (DNS, the connect): 503
};
inline constexpr std::size_t reason_count = 37;

// The kinds of event egressd writes about traffic.
enum class event_kind : std::uint8_t {
    allow,         // egress.allow
    deny,          // egress.deny
    would_deny,    // egress.would_deny
    close,         // egress.close
    revoke,        // egress.revoke: an established connection closed by a policy, CRL or credentials change
    would_revoke,  // egress.would_revoke: report mode, or on_revoke: keep
    error,         // egress.error: an allowed name that could not be reached for want of DNS, not a policy denial
};
inline constexpr std::size_t event_kind_count = 7;

// What became of an established connection that a policy, CRL or credentials change no longer allows: the
// `action` of egress.revoke / egress.would_revoke and of egressd_revocations_total.
enum class revoke_outcome : std::uint8_t {
    closed,       // on_revoke: close, enforce mode
    would_close,  // report mode: the connection stays, the event says it would have been closed
    kept,         // on_revoke: keep
};
inline constexpr std::size_t revoke_outcome_count = 3;

// How the client proved who it is.
enum class identity_source : std::uint8_t { none, mtls, proxy_auth };
inline constexpr std::size_t identity_source_count = 3;

std::string_view to_string(close_cause c);
std::string_view to_string(reason r);
std::string_view to_string(event_kind k);
std::string_view to_string(identity_source s);
std::string_view to_string(revoke_outcome o);
std::optional<reason> parse_reason(std::string_view name);

// The policy's reason codes are the first of ours, in the same order.
constexpr reason from_policy(policy::reason r) { return static_cast<reason>(static_cast<std::uint8_t>(r)); }
// The decision event's kind for a verdict.
constexpr event_kind event_for(policy::verdict v)
{
    return v == policy::verdict::allow ? event_kind::allow
           : v == policy::verdict::would_deny ? event_kind::would_deny
                                              : event_kind::deny;
}

}  // namespace egressd::proxy::observe
