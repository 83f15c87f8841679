#include "proxy/observe/codes.hpp"

namespace egressd::proxy::observe {

namespace {

constexpr std::array<std::string_view, close_cause_count> close_cause_names{
    "client_closed",
    "upstream_closed",
    "idle_timeout",
    "header_timeout",
    "lifetime",
    "denied",
    "bad_request",
    "proxy_auth",
    "dns_failed",
    "dns_timeout",
    "connect_failed",
    "connect_timeout",
    "bad_upstream_response",
    "upstream_timeout",
    "over_limit",
    "shutdown",
    "done",
    "error",
    "missing_proxy_header",
    "untrusted_proxy_header",
    "bad_proxy_header",
    "client_cert_missing",
    "client_cert_rejected",
    "client_identity_invalid",
    "tls_handshake_failed",
    "policy_revoked",
    "rule_expired",
    "certificate_revoked",
    "credentials_revoked",
    "internal_error",
    "grant_expired",
    "grant_revoked",
    "resource_exhausted",
};
static_assert(static_cast<std::size_t>(close_cause::resource_exhausted) + 1 == close_cause_count);

constexpr std::array<std::string_view, reason_count> reason_names{
    "allowed",
    "unknown_client",
    "no_matching_rule",
    "port_not_allowed",
    "explicit_deny",
    "address_guard",
    "expired",
    "sni_mismatch",
    "sni_missing",
    "not_tls",
    "granted",
    "method_not_allowed",
    "path_not_allowed",
    "dns_nxdomain",
    "dns_no_addresses",
    "dns_servfail",
    "dns_timeout",
    "dns_error",
    "proxy_auth_required",
    "proxy_auth_failed",
    "client_cert_missing",
    "client_cert_rejected",
    "client_identity_invalid",
    "tls_handshake_failed",
    "bad_request",
    "head_too_large",
    "request_line_too_long",
    "header_timeout",
    "missing_proxy_header",
    "untrusted_proxy_header",
    "bad_proxy_header",
    "connect_failed",
    "connect_timeout",
    "bad_upstream_response",
    "upstream_timeout",
    "upstream_closed",
    "resource_exhausted",
};
static_assert(static_cast<std::size_t>(reason::resource_exhausted) + 1 == reason_count);
static_assert(static_cast<int>(reason::path_not_allowed) + 1 == policy::reason_count,
              "the policy's reasons come first, in the same order");

constexpr std::array<std::string_view, event_kind_count> event_kind_names{
    "egress.allow", "egress.deny",         "egress.would_deny", "egress.close",
    "egress.revoke", "egress.would_revoke", "egress.error",
};

constexpr std::array<std::string_view, revoke_outcome_count> revoke_outcome_names{"closed", "would_close", "kept"};
static_assert(static_cast<std::size_t>(revoke_outcome::kept) + 1 == revoke_outcome_count);

constexpr std::array<std::string_view, identity_source_count> identity_source_names{"none", "mtls", "proxy_auth"};

}  // namespace

std::string_view to_string(close_cause c) { return close_cause_names[static_cast<std::size_t>(c)]; }
std::string_view to_string(reason r) { return reason_names[static_cast<std::size_t>(r)]; }
std::string_view to_string(event_kind k) { return event_kind_names[static_cast<std::size_t>(k)]; }
std::string_view to_string(identity_source s) { return identity_source_names[static_cast<std::size_t>(s)]; }

std::string_view to_string(revoke_outcome o) { return revoke_outcome_names[static_cast<std::size_t>(o)]; }

std::optional<reason> parse_reason(std::string_view name)
{
    for (std::size_t i = 0; i < reason_names.size(); ++i) {
        if (reason_names[i] == name) {
            return static_cast<reason>(i);
        }
    }
    return std::nullopt;
}

}  // namespace egressd::proxy::observe
