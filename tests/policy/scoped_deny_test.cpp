// Deny lists of groups and clients: each wins over every allow for the clients it applies to (the global list
// for every client, a group's for the clients of that group, a client's for that client only), on names, on
// IP literals and on resolved addresses (embedded IPv4 forms included), under report mode, against grants, and
// as policy explain names them.

#include "policy/connection.hpp"
#include "policy/policy.hpp"
#include "spec_builder.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace egressd::policy {
namespace {

using namespace fixtures;

// pypi allows names the deny lists name; "other" allows them to clients outside pypi.
//   web   (10.1/16): pypi, tools; own deny list: secret.example.net, 151.101.0.0/16
//   batch (10.2/16): other, tools
//   ops   (10.3/16): pypi, report mode
//   plain (10.4/16): other (no group or client deny list: the global one only)
std::shared_ptr<const policy> scoped_policy()
{
    return spec_builder{}
        .group("pypi", {rule{}.domain("pypi.org").domain("upload.pypi.org").domain(".example.net").port(80).port(443),
                        rule{}.cidr("93.184.0.0/16").cidr("151.101.0.0/16").cidr("2606:2800::/32").port(443)})
        .group_deny({rule{}.domain("upload.pypi.org").port(443).described("no uploads"),
                     rule{}.cidr("93.184.216.0/24").cidr("2606:2800:220::/48")})
        .group("tools", {rule{}.domain("tools.example.net").port(443)})
        .group_deny({rule{}.domain("bad.example.net")})
        .group("other", {rule{}.domain("upload.pypi.org").domain(".example.net").port(443),
                         rule{}.cidr("93.184.0.0/16").cidr("151.101.0.0/16").cidr("2606:2800::/32").port(443)})
        .client("web", {"10.1.0.0/16"}, {"pypi", "tools"})
        .client_deny({rule{}.domain("secret.example.net"), rule{}.cidr("151.101.0.0/16")})
        .client("batch", {"10.2.0.0/16"}, {"other", "tools"})
        .client("ops", {"10.3.0.0/16"}, {"pypi"}, {.mode_override = mode::report})
        .client("plain", {"10.4.0.0/16"}, {"other"})
        .deny(rule{}.domain(".pastebin.com"))
        .deny(rule{}.domain("shared-deny.example.net"))
        .compile_ok();
}

std::string label(const policy& p, const std::optional<rule_ref>& ref)
{
    if (!ref) {
        return "(none)";
    }
    auto v = p.describe(*ref);
    return std::string(v.group) + "#" + std::to_string(v.index);
}

struct scoped_case {
    std::string name{};
    std::string client{};
    std::string target{};
    std::uint16_t port = 443;
    std::optional<std::string> resolved{};  // the address phase for this address; else the name phase
    verdict outcome = verdict::deny;
    reason why = reason::explicit_deny;
    std::string rule{};
};

void expect_case(const policy& p, const scoped_case& c, const grant_set* grants = nullptr)
{
    SCOPED_TRACE(c.name);
    auto client = p.find_client(c.client);
    ASSERT_TRUE(client.has_value()) << c.client;
    decision d = c.resolved ? p.decide_address(client, target(c.target), c.port, addr(*c.resolved), t0, grants)
                            : p.decide_name(client, target(c.target), c.port, t0, grants);
    EXPECT_EQ(to_string(d.outcome), to_string(c.outcome));
    EXPECT_EQ(to_string(d.why), to_string(c.why));
    EXPECT_EQ(label(p, d.rule), c.rule);
}

constexpr auto allow = verdict::allow;
constexpr auto deny = verdict::deny;

TEST(scoped_deny, every_deny_list_of_the_client_wins_over_every_allow)
{
    auto p = scoped_policy();
    ASSERT_TRUE(p);
    for (const auto& c : std::vector<scoped_case>{
             // A group's deny list beats that group's own allow, and the allow of another group of the client.
             {.name = "group_deny_beats_own_group", .client = "web", .target = "upload.pypi.org",
              .rule = "group:pypi/deny#0"},
             {.name = "group_deny_beats_other_group", .client = "web", .target = "bad.example.net",
              .rule = "group:tools/deny#0"},
             {.name = "client_deny_beats_groups", .client = "web", .target = "secret.example.net",
              .rule = "client:web/deny#0"},
             {.name = "global_deny_still_applies", .client = "web", .target = "x.pastebin.com", .rule = "deny#0"},
             // A deny list without ports covers every port; one with ports only those.
             {.name = "unported_group_deny_every_port", .client = "web", .target = "bad.example.net", .port = 80,
              .rule = "group:tools/deny#0"},
             {.name = "ported_group_deny_spares_other_port", .client = "web", .target = "upload.pypi.org",
              .port = 80, .outcome = allow, .why = reason::allowed, .rule = "pypi#0"},
             {.name = "neighbours_stay_allowed", .client = "web", .target = "good.example.net", .outcome = allow,
              .why = reason::allowed, .rule = "pypi#0"},
         }) {
        expect_case(*p, c);
    }
}

TEST(scoped_deny, a_deny_list_applies_only_to_its_group_or_client)
{
    auto p = scoped_policy();
    ASSERT_TRUE(p);
    for (const auto& c : std::vector<scoped_case>{
             // batch is not in pypi: pypi's deny list does not touch it, even for a name pypi's deny list names.
             {.name = "group_deny_not_outside_group", .client = "batch", .target = "upload.pypi.org",
              .outcome = allow, .why = reason::allowed, .rule = "other#0"},
             // batch is in tools: tools' deny list applies, whichever group allows the name.
             {.name = "group_deny_inside_group", .client = "batch", .target = "bad.example.net",
              .rule = "group:tools/deny#0"},
             // web's own deny list is web's alone.
             {.name = "client_deny_not_other_client", .client = "batch", .target = "secret.example.net",
              .outcome = allow, .why = reason::allowed, .rule = "other#0"},
             {.name = "no_scoped_lists_global_only", .client = "plain", .target = "bad.example.net",
              .outcome = allow, .why = reason::allowed, .rule = "other#0"},
             {.name = "no_scoped_lists_global_applies", .client = "plain", .target = "shared-deny.example.net",
              .rule = "deny#1"},
         }) {
        expect_case(*p, c);
    }
}

TEST(scoped_deny, cidrs_on_ip_literals_and_resolved_addresses)
{
    auto p = scoped_policy();
    ASSERT_TRUE(p);
    for (const auto& c : std::vector<scoped_case>{
             // IP literals: the whole decision is the name phase.
             {.name = "literal_group_deny", .client = "web", .target = "93.184.216.34", .rule = "group:pypi/deny#1"},
             {.name = "literal_group_deny_v6", .client = "web", .target = "[2606:2800:220:1::5]",
              .rule = "group:pypi/deny#1"},
             {.name = "literal_mapped_group_deny", .client = "web", .target = "[::ffff:93.184.216.34]",
              .rule = "group:pypi/deny#1"},
             {.name = "literal_client_deny", .client = "web", .target = "151.101.1.1", .rule = "client:web/deny#1"},
             {.name = "literal_outside_group", .client = "batch", .target = "93.184.216.34", .outcome = allow,
              .why = reason::allowed, .rule = "other#1"},
             {.name = "literal_other_client", .client = "batch", .target = "151.101.1.1", .outcome = allow,
              .why = reason::allowed, .rule = "other#1"},
             {.name = "literal_neighbour", .client = "web", .target = "93.184.217.1", .outcome = allow,
              .why = reason::allowed, .rule = "pypi#1"},
             // Resolved addresses: an allowed name that resolves into a scoped deny CIDR.
             {.name = "resolved_group_deny", .client = "web", .target = "good.example.net",
              .resolved = "93.184.216.34", .rule = "group:pypi/deny#1"},
             {.name = "resolved_client_deny", .client = "web", .target = "good.example.net",
              .resolved = "151.101.65.1", .rule = "client:web/deny#1"},
             {.name = "resolved_v6_group_deny", .client = "web", .target = "good.example.net",
              .resolved = "2606:2800:220:1::5", .rule = "group:pypi/deny#1"},
             // Embedded IPv4 forms of a denied address are denied like the global list denies them.
             {.name = "resolved_mapped", .client = "web", .target = "good.example.net",
              .resolved = "::ffff:93.184.216.34", .rule = "group:pypi/deny#1"},
             {.name = "resolved_nat64", .client = "web", .target = "good.example.net",
              .resolved = "64:ff9b::5db8:d822", .rule = "group:pypi/deny#1"},
             {.name = "resolved_6to4", .client = "web", .target = "good.example.net",
              .resolved = "2002:5db8:d822::1", .rule = "group:pypi/deny#1"},
             {.name = "resolved_nat64_client_deny", .client = "web", .target = "good.example.net",
              .resolved = "64:ff9b::9765:4101", .rule = "client:web/deny#1"},
             {.name = "resolved_outside_group", .client = "batch", .target = "good.example.net",
              .resolved = "93.184.216.34", .outcome = allow, .why = reason::allowed, .rule = "other#0"},
             {.name = "resolved_nat64_outside_group", .client = "batch", .target = "good.example.net",
              .resolved = "64:ff9b::5db8:d822", .outcome = allow, .why = reason::allowed, .rule = "other#0"},
         }) {
        expect_case(*p, c);
    }
}

TEST(scoped_deny, vetting_keeps_only_addresses_no_deny_list_names)
{
    auto p = scoped_policy();
    ASSERT_TRUE(p);
    auto web = p->find_client("web");
    std::vector<address> resolved{addr("93.184.216.34"), addr("93.184.217.1")};
    auto v = vet_addresses(*p, web, target("good.example.net"), 443, resolved, t0);
    ASSERT_EQ(v.decisions.size(), 2u);
    EXPECT_EQ(to_string(v.decisions[0].why), "explicit_deny");
    EXPECT_EQ(to_string(v.decisions[1].why), "allowed");
    ASSERT_TRUE(v.first_allowed.has_value());
    EXPECT_EQ(*v.first_allowed, 1u);
}

TEST(scoped_deny, report_mode_gives_would_deny_naming_the_list)
{
    auto p = scoped_policy();
    ASSERT_TRUE(p);
    expect_case(*p, {.name = "report_group_deny", .client = "ops", .target = "upload.pypi.org",
                     .outcome = verdict::would_deny, .rule = "group:pypi/deny#0"});
    expect_case(*p, {.name = "report_resolved", .client = "ops", .target = "pypi.org", .resolved = "93.184.216.34",
                     .outcome = verdict::would_deny, .rule = "group:pypi/deny#1"});
    expect_case(*p, {.name = "report_allowed", .client = "ops", .target = "pypi.org", .outcome = allow,
                     .why = reason::allowed, .rule = "pypi#0"});
}

TEST(scoped_deny, a_grant_does_not_override_a_scoped_deny)
{
    auto p = scoped_policy();
    ASSERT_TRUE(p);
    auto make = [](std::uint64_t id, grant_scope scope, std::string name, std::string_view dest,
                   std::uint16_t port) {
        grant g;
        g.id = id;
        g.scope = scope;
        g.scope_name = std::move(name);
        g.destination = pattern(dest);
        g.port = port;
        g.expires = at(3600);
        return g;
    };
    auto grants = grant_set::make({make(1, grant_scope::client, "web", "upload.pypi.org", 443),
                                   make(2, grant_scope::group, "tools", "bad.example.net", 443),
                                   make(3, grant_scope::client, "web", "secret.example.net", 443),
                                   make(4, grant_scope::client, "web", "elsewhere.example.org", 443)});
    expect_case(*p, {.name = "grant_vs_group_deny", .client = "web", .target = "upload.pypi.org",
                     .rule = "group:pypi/deny#0"},
                grants.get());
    expect_case(*p, {.name = "group_grant_vs_group_deny", .client = "web", .target = "bad.example.net",
                     .rule = "group:tools/deny#0"},
                grants.get());
    expect_case(*p, {.name = "grant_vs_client_deny", .client = "web", .target = "secret.example.net",
                     .rule = "client:web/deny#0"},
                grants.get());
    // The grant set works: an allow-list miss it names is granted.
    auto web = p->find_client("web");
    auto d = p->decide_name(web, target("elsewhere.example.org"), 443, t0, grants.get());
    EXPECT_EQ(to_string(d.why), "granted");
    // A granted name that resolves into a scoped deny CIDR is refused there.
    auto r = p->decide_address(web, target("elsewhere.example.org"), 443, addr("151.101.1.1"), t0, grants.get());
    EXPECT_EQ(to_string(r.why), "explicit_deny");
    EXPECT_EQ(label(*p, r.rule), "client:web/deny#1");
    EXPECT_FALSE(r.grant.has_value());
}

TEST(scoped_deny, describe_labels_and_counts)
{
    auto p = scoped_policy();
    ASSERT_TRUE(p);
    auto web = p->find_client("web");
    auto d = p->decide_name(web, target("upload.pypi.org"), 443, t0);
    ASSERT_TRUE(d.rule.has_value());
    EXPECT_TRUE(d.rule->is_deny());
    auto v = p->describe(*d.rule);
    EXPECT_EQ(v.group, "group:pypi/deny");
    EXPECT_EQ(v.index, 0u);
    EXPECT_EQ(v.description, "no uploads");
    auto global = p->decide_name(web, target("a.pastebin.com"), 443, t0);
    ASSERT_TRUE(global.rule.has_value());
    EXPECT_TRUE(global.rule->is_deny());
    EXPECT_EQ(p->describe(*global.rule).group, "deny");
    // A deny rule is no route and has no tls mode of its own.
    EXPECT_EQ(p->tls_for(d.rule), p->default_tls());
    // Every deny list's rules count as deny rules; their patterns are not allow patterns.
    auto counts = p->stats();
    EXPECT_EQ(counts.deny_rules, 7u);
    EXPECT_EQ(counts.domain_patterns, 6u);
}

TEST(scoped_deny, the_same_group_deny_list_serves_every_client_of_the_group)
{
    // Many clients sharing a group with a deny list, and every fifth client with a deny list of its own (all of
    // them naming many.example.com, so that its key holds more entries than a client has lists): each client gets
    // exactly its lists.
    spec_builder b;
    b.group("g", {rule{}.domain(".example.com").port(443)}).group_deny({rule{}.domain("no.example.com")});
    b.group("h", {rule{}.domain(".example.com").port(443)});
    for (int i = 0; i < 50; ++i) {
        auto name = "c" + std::to_string(i);
        b.client(name, {}, {i % 2 == 0 ? "g" : "h"});
        if (i % 5 == 0) {
            b.client_deny({rule{}.domain("mine" + std::to_string(i) + ".example.com"), rule{}.domain("many.example.com")});
        }
    }
    auto p = b.compile_ok();
    ASSERT_TRUE(p);
    for (int i = 0; i < 50; ++i) {
        SCOPED_TRACE(i);
        auto id = p->find_client("c" + std::to_string(i));
        auto no = p->decide_name(id, target("no.example.com"), 443, t0);
        EXPECT_EQ(to_string(no.why), i % 2 == 0 ? "explicit_deny" : "allowed");
        for (int j = 0; j < 50; j += 5) {
            auto mine = p->decide_name(id, target("mine" + std::to_string(j) + ".example.com"), 443, t0);
            EXPECT_EQ(to_string(mine.why), i == j ? "explicit_deny" : "allowed") << "mine" << j;
            if (i == j) {
                EXPECT_EQ(label(*p, mine.rule), "client:c" + std::to_string(i) + "/deny#0");
            }
        }
        // A key that many deny lists name: each client finds only its own lists' entries.
        auto many = p->decide_name(id, target("many.example.com"), 443, t0);
        EXPECT_EQ(to_string(many.why), i % 5 == 0 ? "explicit_deny" : "allowed");
    }
}

TEST(scoped_deny, decide_established_closes_what_a_new_scoped_deny_names)
{
    auto before = spec_builder{}
                      .group("pypi", {rule{}.domain("upload.pypi.org").port(443)})
                      .client("web", {"10.1.0.0/16"}, {"pypi"})
                      .compile_ok();
    auto after = spec_builder{}
                     .group("pypi", {rule{}.domain("upload.pypi.org").port(443)})
                     .group_deny({rule{}.domain("upload.pypi.org")})
                     .client("web", {"10.1.0.0/16"}, {"pypi"})
                     .compile_ok();
    ASSERT_TRUE(before && after);
    established e;
    e.who.source = addr("10.1.2.3");
    e.target = target("upload.pypi.org");
    e.port = 443;
    e.connected = addr("93.184.216.34");
    EXPECT_EQ(to_string(decide_established(*before, e, t0).why), "allowed");
    auto d = decide_established(*after, e, t0);
    EXPECT_EQ(to_string(d.why), "explicit_deny");
    EXPECT_EQ(label(*after, d.rule), "group:pypi/deny#0");
}

}  // namespace
}  // namespace egressd::policy
