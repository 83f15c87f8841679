#include "policy/decision.hpp"

#include <array>

namespace egressd::policy {
namespace {

constexpr std::array<std::string_view, reason_count> reason_names = {
    "allowed",       "unknown_client", "no_matching_rule", "port_not_allowed", "explicit_deny",
    "address_guard", "expired",        "sni_mismatch",     "sni_missing",      "not_tls",
    "granted",       "method_not_allowed", "path_not_allowed",
};

}  // namespace

std::string_view to_string(verdict v)
{
    switch (v) {
    case verdict::allow:
        return "allow";
    case verdict::deny:
        return "deny";
    case verdict::would_deny:
        return "would_deny";
    }
    return "deny";
}

std::string_view to_string(reason r) { return reason_names[static_cast<std::size_t>(r)]; }

std::string_view to_string(mode m) { return m == mode::report ? "report" : "enforce"; }

std::string_view to_string(tls_mode m)
{
    switch (m) {
    case tls_mode::require:
        return "require";
    case tls_mode::allow:
        return "allow";
    case tls_mode::off:
        return "off";
    }
    return "require";
}

std::optional<tls_mode> parse_tls_mode(std::string_view name)
{
    for (auto m : {tls_mode::require, tls_mode::allow, tls_mode::off}) {
        if (to_string(m) == name) {
            return m;
        }
    }
    return std::nullopt;
}

std::optional<reason> parse_reason(std::string_view name)
{
    for (std::size_t i = 0; i < reason_names.size(); ++i) {
        if (reason_names[i] == name) {
            return static_cast<reason>(i);
        }
    }
    return std::nullopt;
}

}  // namespace egressd::policy
