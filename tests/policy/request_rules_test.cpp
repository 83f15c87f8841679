// Rules that name methods and paths: how a CONNECT tunnel and a plain-HTTP request fit them, allow rules needing
// a prefix of both path forms and deny rules either, the order of the reasons a miss reports, grants on such
// misses, guard exemptions limited to methods, deciding an established plain-HTTP connection again, and the
// shadow warnings.
//
// The paths are given here as the proxy hands them over (protocol::http::normalise_path and loose_path; those
// functions have their own tests): the policy compares, it does not normalise.

#include "policy/connection.hpp"
#include "policy/policy.hpp"
#include "spec_builder.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace egressd::policy {
namespace {

using namespace fixtures;

std::string label(const policy& p, const std::optional<rule_ref>& ref)
{
    if (!ref) {
        return "(none)";
    }
    auto v = p.describe(*ref);
    return std::string(v.group) + "#" + std::to_string(v.index);
}

// client web (10.1/16), groups pypi and ladder; its own deny list refuses uploads to .example.net.
std::shared_ptr<const policy> request_policy()
{
    return spec_builder{}
        .group("pypi",
               {
                   rule{}.domain("pypi.org").domain("files.pythonhosted.org").port(80).method("GET").method("HEAD")
                       .path("/simple/").path("/packages/"),                                          // 0
                   rule{}.domain("api.example.com").port(443).method("CONNECT"),                       // 1
                   rule{}.domain("get-only.example.com").port(80).port(443).method("GET"),             // 2
                   rule{}.domain("paths-only.example.com").port(80).port(443).path("/x/"),             // 3
                   rule{}.domain("up.example.net").domain("tunnel.example.org").port(80).port(443),    // 4
                   rule{}.cidr("93.184.216.0/24").port(80).method("GET"),                              // 5
                   rule{}.domain(".internal.example").port(80).port(443),                              // 6
                   rule{}.cidr("10.9.0.0/16").port(80).method("GET"),                                  // 7
               })
        .group_deny({rule{}.domain("pypi.org").path("/admin").described("no admin")})
        .group("ladder",
               {
                   rule{}.domain("ladder.example.com").port(81),                                       // 0
                   rule{}.domain("ladder.example.com").port(80).method("POST"),                        // 1
                   rule{}.domain("ladder.example.com").port(80).method("GET").path("/a/"),             // 2
                   rule{}.domain("ladder.example.com").port(80).method("GET").path("/b/").expires(at(-10)),  // 3
               })
        .client("web", {"10.1.0.0/16"}, {"pypi", "ladder"})
        .client_deny({rule{}.domain(".example.net").method("POST").method("PUT"),
                      rule{}.domain("tunnel.example.org").path("/admin")})
        .compile_ok();
}

struct request_case {
    std::string name{};
    std::string target{};
    std::uint16_t port = 80;
    std::optional<std::string> method{};  // none: a CONNECT tunnel
    std::string path = "/";
    std::optional<std::string> loose{};  // the loose form; default: the same as path
    std::optional<std::string> resolved{};
    verdict outcome = verdict::deny;
    reason why = reason::allowed;
    std::string rule{};
};

decision decide(const policy& p, const request_case& c, const grant_set* grants = nullptr)
{
    auto client = p.find_client("web");
    std::string method = c.method.value_or("");  // owned here: http_request holds views
    std::string loose = c.loose.value_or(c.path);
    http_request request{method, c.path, loose};
    const http_request* asked = c.method ? &request : nullptr;
    if (c.resolved) {
        return p.decide_address(client, target(c.target), c.port, addr(*c.resolved), t0, grants, asked);
    }
    return p.decide_name(client, target(c.target), c.port, t0, grants, asked);
}

void expect_case(const policy& p, const request_case& c, const grant_set* grants = nullptr)
{
    SCOPED_TRACE(c.name);
    auto d = decide(p, c, grants);
    EXPECT_EQ(to_string(d.outcome), to_string(c.outcome));
    EXPECT_EQ(to_string(d.why), to_string(c.why));
    EXPECT_EQ(label(p, d.rule), c.rule);
}

constexpr auto allow = verdict::allow;
constexpr auto deny = verdict::deny;

TEST(request_rules, connect_against_rules_naming_methods_or_paths)
{
    auto p = request_policy();
    ASSERT_TRUE(p);
    for (const auto& c : std::vector<request_case>{
             {.name = "connect_vs_get_head", .target = "pypi.org", .port = 80, .why = reason::method_not_allowed,
              .rule = "pypi#0"},
             {.name = "connect_listed", .target = "api.example.com", .port = 443, .outcome = allow, .rule = "pypi#1"},
             {.name = "connect_vs_get", .target = "get-only.example.com", .port = 443,
              .why = reason::method_not_allowed, .rule = "pypi#2"},
             // A rule naming paths never speaks for a tunnel (its requests are encrypted).
             {.name = "connect_vs_paths_only", .target = "paths-only.example.com", .port = 443,
              .why = reason::method_not_allowed, .rule = "pypi#3"},
             {.name = "connect_vs_unlimited", .target = "up.example.net", .port = 443, .outcome = allow,
              .rule = "pypi#4"},
             // And a plain request to a CONNECT-only rule: its method is not listed.
             {.name = "get_vs_connect_only", .target = "api.example.com", .port = 443, .method = "GET",
              .why = reason::method_not_allowed, .rule = "pypi#1"},
         }) {
        expect_case(*p, c);
    }
}

TEST(request_rules, plain_requests_need_a_listed_method_and_a_prefix)
{
    auto p = request_policy();
    ASSERT_TRUE(p);
    for (const auto& c : std::vector<request_case>{
             {.name = "get_index", .target = "pypi.org", .method = "GET", .path = "/simple/requests/",
              .outcome = allow, .rule = "pypi#0"},
             {.name = "head_package", .target = "files.pythonhosted.org", .method = "HEAD",
              .path = "/packages/a/b.whl", .outcome = allow, .rule = "pypi#0"},
             {.name = "post_index", .target = "pypi.org", .method = "POST", .path = "/simple/",
              .why = reason::method_not_allowed, .rule = "pypi#0"},
             // Methods are exact and case-sensitive (RFC 9110 9.1).
             {.name = "lower_case_get", .target = "pypi.org", .method = "get", .path = "/simple/",
              .why = reason::method_not_allowed, .rule = "pypi#0"},
             {.name = "outside_prefixes", .target = "pypi.org", .method = "GET", .path = "/pypi/x/json",
              .why = reason::path_not_allowed, .rule = "pypi#0"},
             // A prefix is a string prefix: "/simple/" does not cover "/simple" itself.
             {.name = "prefix_without_slash", .target = "pypi.org", .method = "GET", .path = "/simple",
              .why = reason::path_not_allowed, .rule = "pypi#0"},
             {.name = "wrong_port", .target = "pypi.org", .port = 443, .method = "GET", .path = "/simple/",
              .why = reason::port_not_allowed, .rule = "pypi#0"},
             {.name = "paths_only_any_method", .target = "paths-only.example.com", .method = "DELETE",
              .path = "/x/y", .outcome = allow, .rule = "pypi#3"},
             {.name = "paths_only_outside", .target = "paths-only.example.com", .method = "GET", .path = "/y",
              .why = reason::path_not_allowed, .rule = "pypi#3"},
             {.name = "unlimited_rule_any_request", .target = "up.example.net", .method = "GET",
              .path = "/anything", .outcome = allow, .rule = "pypi#4"},
         }) {
        expect_case(*p, c);
    }
}

TEST(request_rules, an_allow_needs_both_path_forms_a_deny_either)
{
    auto p = request_policy();
    ASSERT_TRUE(p);
    for (const auto& c : std::vector<request_case>{
             // The normal form is under /simple/, the loose form (what a lenient server serves) is not.
             {.name = "encoded_slash_escape_not_allowed", .target = "files.pythonhosted.org", .method = "GET",
              .path = "/simple/%2F..%2Fadmin", .loose = "/admin", .why = reason::path_not_allowed,
              .rule = "pypi#0"},
             {.name = "parameter_escape_not_allowed", .target = "files.pythonhosted.org", .method = "GET",
              .path = "/simple/..;/admin", .loose = "/admin", .why = reason::path_not_allowed, .rule = "pypi#0"},
             // Only the loose form is under the prefix: not allowed either.
             {.name = "only_loose_under_prefix", .target = "files.pythonhosted.org", .method = "GET",
              .path = "/x/..%2Fsimple/", .loose = "/simple/", .why = reason::path_not_allowed, .rule = "pypi#0"},
             // pypi.org's group deny list names /admin: the loose form alone is enough to deny.
             {.name = "deny_by_loose_form", .target = "pypi.org", .method = "GET", .path = "/simple/%2F..%2Fadmin",
              .loose = "/admin", .why = reason::explicit_deny, .rule = "group:pypi/deny#0"},
             {.name = "deny_by_strict_form", .target = "pypi.org", .method = "GET", .path = "/admin/x",
              .loose = "/admin/x", .why = reason::explicit_deny, .rule = "group:pypi/deny#0"},
             {.name = "deny_by_strict_form_only", .target = "pypi.org", .method = "GET",
              .path = "/admin/..%2F..%2Fsimple/", .loose = "/simple/", .why = reason::explicit_deny,
              .rule = "group:pypi/deny#0"},
             // A deny naming paths and no methods covers every method.
             {.name = "deny_any_method", .target = "pypi.org", .method = "HEAD", .path = "/admin",
              .why = reason::explicit_deny, .rule = "group:pypi/deny#0"},
         }) {
        expect_case(*p, c);
    }
}

TEST(request_rules, deny_rules_naming_methods_or_paths_leave_tunnels_alone)
{
    // The client's deny list refuses POST and PUT to .example.net, and /admin on tunnel.example.org. A CONNECT has
    // no method of its own and no path, so neither deny rule matches it: such rules limit plain HTTP only.
    auto p = request_policy();
    ASSERT_TRUE(p);
    for (const auto& c : std::vector<request_case>{
             {.name = "post_denied", .target = "up.example.net", .method = "POST", .path = "/upload",
              .why = reason::explicit_deny, .rule = "client:web/deny#0"},
             {.name = "put_denied", .target = "up.example.net", .method = "PUT", .path = "/",
              .why = reason::explicit_deny, .rule = "client:web/deny#0"},
             {.name = "get_allowed", .target = "up.example.net", .method = "GET", .path = "/upload",
              .outcome = allow, .rule = "pypi#4"},
             {.name = "connect_not_denied_by_method_deny", .target = "up.example.net", .port = 443,
              .outcome = allow, .rule = "pypi#4"},
             {.name = "simple_denied", .target = "tunnel.example.org", .method = "GET", .path = "/admin",
              .why = reason::explicit_deny, .rule = "client:web/deny#1"},
             {.name = "connect_not_denied_by_path_deny", .target = "tunnel.example.org", .port = 443,
              .outcome = allow, .rule = "pypi#4"},
         }) {
        expect_case(*p, c);
    }
}

TEST(request_rules, a_deny_naming_connect_refuses_tunnels_only)
{
    auto p = spec_builder{}
                 .group("g", {rule{}.domain("www.example.org").port(80).port(443)})
                 .group_deny({rule{}.domain("www.example.org").method("CONNECT")})
                 .client("web", {"10.1.0.0/16"}, {"g"})
                 .compile_ok();
    ASSERT_TRUE(p);
    expect_case(*p, {.name = "tunnel", .target = "www.example.org", .port = 443, .why = reason::explicit_deny,
                     .rule = "group:g/deny#0"});
    expect_case(*p, {.name = "plain", .target = "www.example.org", .method = "GET", .path = "/", .outcome = allow,
                     .rule = "g#0"});
}

TEST(request_rules, the_nearest_miss_names_the_reason)
{
    // ladder.example.com: rule 0 another port; rule 1 POST only; rule 2 GET under /a/; rule 3 GET under /b/,
    // expired. The best fit wins: port < method < path < expired < match.
    auto p = request_policy();
    ASSERT_TRUE(p);
    for (const auto& c : std::vector<request_case>{
             {.name = "port_miss", .target = "ladder.example.com", .port = 82, .method = "GET", .path = "/a/",
              .why = reason::port_not_allowed, .rule = "ladder#0"},
             {.name = "method_miss", .target = "ladder.example.com", .method = "PUT", .path = "/a/",
              .why = reason::method_not_allowed, .rule = "ladder#1"},
             {.name = "path_miss", .target = "ladder.example.com", .method = "GET", .path = "/c/",
              .why = reason::path_not_allowed, .rule = "ladder#2"},
             {.name = "expired", .target = "ladder.example.com", .method = "GET", .path = "/b/x",
              .why = reason::expired, .rule = "ladder#3"},
             {.name = "match", .target = "ladder.example.com", .method = "GET", .path = "/a/x", .outcome = allow,
              .rule = "ladder#2"},
             {.name = "match_other_rule", .target = "ladder.example.com", .method = "POST", .path = "/c/",
              .outcome = allow, .rule = "ladder#1"},
             {.name = "connect_port_81", .target = "ladder.example.com", .port = 81, .outcome = allow,
              .rule = "ladder#0"},
             {.name = "connect_port_80", .target = "ladder.example.com", .why = reason::method_not_allowed,
              .rule = "ladder#1"},
         }) {
        expect_case(*p, c);
    }
}

TEST(request_rules, cidr_rules_with_methods_and_guard_exemptions)
{
    auto p = request_policy();
    ASSERT_TRUE(p);
    for (const auto& c : std::vector<request_case>{
             {.name = "literal_get", .target = "93.184.216.34", .method = "GET", .path = "/", .outcome = allow,
              .rule = "pypi#5"},
             {.name = "literal_connect", .target = "93.184.216.34", .why = reason::method_not_allowed,
              .rule = "pypi#5"},
             {.name = "literal_post", .target = "93.184.216.34", .method = "POST",
              .why = reason::method_not_allowed, .rule = "pypi#5"},
             // A name any request may reach resolves to a private address that a GET-only CIDR rule opens:
             // a GET passes the guard, a CONNECT or a POST does not.
             {.name = "exemption_get", .target = "db.internal.example", .method = "GET", .path = "/",
              .resolved = "10.9.1.1", .outcome = allow, .rule = "pypi#7"},
             {.name = "exemption_connect", .target = "db.internal.example", .resolved = "10.9.1.1",
              .why = reason::address_guard, .rule = "(none)"},
             {.name = "exemption_post", .target = "db.internal.example", .method = "POST", .path = "/",
              .resolved = "10.9.1.1", .why = reason::address_guard, .rule = "(none)"},
             {.name = "private_literal_get", .target = "10.9.1.1", .method = "GET", .path = "/", .outcome = allow,
              .rule = "pypi#7"},
             {.name = "private_literal_connect", .target = "10.9.1.1", .why = reason::method_not_allowed,
              .rule = "pypi#7"},
             // Resolved addresses and the group's path deny: the name phase already refuses.
             {.name = "resolved_deny_path", .target = "pypi.org", .method = "GET", .path = "/admin",
              .resolved = "93.184.216.34", .why = reason::explicit_deny, .rule = "group:pypi/deny#0"},
             {.name = "resolved_allowed", .target = "pypi.org", .method = "GET", .path = "/simple/",
              .resolved = "151.101.0.223", .outcome = allow, .rule = "pypi#0"},
         }) {
        expect_case(*p, c);
    }
}

TEST(request_rules, grants_open_method_and_path_misses_but_no_deny)
{
    // A grant names a host and a port, not a method or a path: on a method or path miss it allows the request,
    // whatever its method and path. A deny list still wins.
    auto p = request_policy();
    ASSERT_TRUE(p);
    grant g;
    g.id = 1;
    g.scope_name = "web";
    g.destination = pattern("pypi.org");
    g.port = 80;
    g.expires = at(3600);
    auto grants = grant_set::make({g});
    for (const auto& c : std::vector<request_case>{
             {.name = "method_miss_granted", .target = "pypi.org", .method = "POST", .path = "/simple/",
              .outcome = allow, .why = reason::granted, .rule = "(none)"},
             {.name = "path_miss_granted", .target = "pypi.org", .method = "GET", .path = "/pypi/x/json",
              .outcome = allow, .why = reason::granted, .rule = "(none)"},
             {.name = "connect_granted", .target = "pypi.org", .outcome = allow, .why = reason::granted,
              .rule = "(none)"},
             {.name = "deny_path_beats_grant", .target = "pypi.org", .method = "GET", .path = "/admin",
              .why = reason::explicit_deny, .rule = "group:pypi/deny#0"},
             {.name = "base_rule_first", .target = "pypi.org", .method = "GET", .path = "/simple/", .outcome = allow,
              .rule = "pypi#0"},
         }) {
        expect_case(*p, c, grants.get());
    }
}

TEST(request_rules, report_mode_would_deny_on_method_and_path_misses)
{
    auto p = spec_builder{}
                 .group("g", {rule{}.domain("pypi.org").port(80).method("GET").path("/simple/")})
                 .client("web", {"10.1.0.0/16"}, {"g"}, {.mode_override = mode::report})
                 .compile_ok();
    ASSERT_TRUE(p);
    expect_case(*p, {.name = "method", .target = "pypi.org", .method = "POST", .path = "/simple/",
                     .outcome = verdict::would_deny, .why = reason::method_not_allowed, .rule = "g#0"});
    expect_case(*p, {.name = "path", .target = "pypi.org", .method = "GET", .path = "/x",
                     .outcome = verdict::would_deny, .why = reason::path_not_allowed, .rule = "g#0"});
}

established plain_http(std::optional<http_request_facts> request)
{
    established e;
    e.who.source = addr("10.1.2.3");
    e.target = target("pypi.org");
    e.port = 80;
    e.connected = addr("151.101.0.223");
    e.request = std::move(request);
    return e;
}

TEST(request_rules, an_established_plain_http_connection_is_decided_again_with_its_request)
{
    auto p = request_policy();
    ASSERT_TRUE(p);
    // A keep-alive connection that forwarded a GET under /simple/ stays allowed when decided again.
    auto get = plain_http(http_request_facts{"GET", "/simple/requests/", "/simple/requests/"});
    auto d = decide_established(*p, get, t0);
    EXPECT_EQ(to_string(d.why), "allowed");
    EXPECT_EQ(label(*p, d.rule), "pypi#0");
    // Without its request it would be a tunnel, which pypi.org:80's rule does not allow.
    EXPECT_EQ(to_string(decide_established(*p, plain_http(std::nullopt), t0).why), "method_not_allowed");
    // Under a snapshot that allows HEAD only, or another path, the same connection is no longer allowed.
    auto head_only = spec_builder{}
                         .group("pypi", {rule{}.domain("pypi.org").port(80).method("HEAD")})
                         .client("web", {"10.1.0.0/16"}, {"pypi"})
                         .compile_ok();
    auto packages_only = spec_builder{}
                             .group("pypi", {rule{}.domain("pypi.org").port(80).method("GET").path("/packages/")})
                             .client("web", {"10.1.0.0/16"}, {"pypi"})
                             .compile_ok();
    auto simple_denied = spec_builder{}
                            .group("pypi", {rule{}.domain("pypi.org").port(80)})
                            .group_deny({rule{}.domain("pypi.org").path("/simple/")})
                            .client("web", {"10.1.0.0/16"}, {"pypi"})
                            .compile_ok();
    ASSERT_TRUE(head_only && packages_only && simple_denied);
    EXPECT_EQ(to_string(decide_established(*head_only, get, t0).why), "method_not_allowed");
    EXPECT_EQ(to_string(decide_established(*packages_only, get, t0).why), "path_not_allowed");
    EXPECT_EQ(to_string(decide_established(*simple_denied, get, t0).why), "explicit_deny");
    // expiry_of sees the request too: allowed now, resting on no expiring rule.
    EXPECT_FALSE(expiry_of(*p, get, t0).has_value());
}

TEST(request_rules, describe_lists_methods_and_paths)
{
    auto p = request_policy();
    ASSERT_TRUE(p);
    auto d = decide(*p, {.target = "pypi.org", .method = "GET", .path = "/simple/"});
    ASSERT_TRUE(d.rule.has_value());
    auto v = p->describe(*d.rule);
    EXPECT_EQ(std::vector<std::string>(v.methods.begin(), v.methods.end()), (std::vector<std::string>{"GET", "HEAD"}));
    EXPECT_EQ(std::vector<std::string>(v.paths.begin(), v.paths.end()),
              (std::vector<std::string>{"/simple/", "/packages/"}));
    auto denied = decide(*p, {.target = "pypi.org", .method = "GET", .path = "/admin"});
    ASSERT_TRUE(denied.rule.has_value());
    auto dv = p->describe(*denied.rule);
    EXPECT_TRUE(dv.methods.empty());
    EXPECT_EQ(std::vector<std::string>(dv.paths.begin(), dv.paths.end()), (std::vector<std::string>{"/admin"}));
    EXPECT_EQ(dv.description, "no admin");
    auto plain = decide(*p, {.target = "up.example.net", .method = "GET", .path = "/"});
    ASSERT_TRUE(plain.rule.has_value());
    EXPECT_TRUE(p->describe(*plain.rule).methods.empty());
    EXPECT_TRUE(p->describe(*plain.rule).paths.empty());
}

bool warns_about(const compile_result& r, std::string_view part)
{
    return std::any_of(r.warnings.begin(), r.warnings.end(),
                       [&](const diagnostic& w) { return w.message.find(part) != std::string::npos; });
}

std::string all_warnings(const compile_result& r)
{
    std::string out;
    for (const auto& w : r.warnings) {
        out += w.message + "\n";
    }
    return out;
}

TEST(request_rules, a_limited_rule_shadows_no_unlimited_one)
{
    // Rule 0 allows only GET under /a/: it does not cover rule 1 (any request), so rule 1 is not "shadowed".
    auto limited_first = spec_builder{}
                             .group("g", {rule{}.domain(".example.org").port(80).method("GET").path("/a/"),
                                          rule{}.domain("api.example.org").port(80),
                                          rule{}.domain("pypi.org").port(80).method("GET"),
                                          rule{}.domain("pypi.org").port(80),
                                          rule{}.cidr("10.0.0.0/8").port(80).path("/a/"),
                                          rule{}.cidr("10.1.0.0/16").port(80)})
                             .client("c", {"10.1.0.0/16"}, {"g"})
                             .compile();
    ASSERT_TRUE(limited_first.snapshot);
    EXPECT_FALSE(warns_about(limited_first, "rule 1:")) << all_warnings(limited_first);
    EXPECT_FALSE(warns_about(limited_first, "rule 3:")) << all_warnings(limited_first);
    EXPECT_FALSE(warns_about(limited_first, "rule 5:")) << all_warnings(limited_first);

    // The other way round the unlimited rule does cover the limited one, and the warning says so.
    auto unlimited_first = spec_builder{}
                               .group("g", {rule{}.domain(".example.org").port(80),
                                            rule{}.domain("api.example.org").port(80).method("GET").path("/a/"),
                                            rule{}.cidr("10.0.0.0/8").port(80),
                                            rule{}.cidr("10.1.0.0/16").port(80).method("GET")})
                               .client("c", {"10.1.0.0/16"}, {"g"})
                               .compile();
    ASSERT_TRUE(unlimited_first.snapshot);
    EXPECT_TRUE(warns_about(unlimited_first, "rule 1: destination 'api.example.org' is shadowed by rule 0"))
        << all_warnings(unlimited_first);
    EXPECT_TRUE(warns_about(unlimited_first, "rule 3: destination 10.1.0.0/16 is shadowed by rule 2"))
        << all_warnings(unlimited_first);

    // The same limits: a true duplicate.
    auto same = spec_builder{}
                    .group("g", {rule{}.domain("pypi.org").port(80).method("GET").path("/simple/"),
                                 rule{}.domain("pypi.org").port(80).method("GET").path("/simple/")})
                    .client("c", {"10.1.0.0/16"}, {"g"})
                    .compile();
    EXPECT_TRUE(warns_about(same, "rule 1: destination 'pypi.org' duplicates rule 0")) << all_warnings(same);
}

}  // namespace
}  // namespace egressd::policy
