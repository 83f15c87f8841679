#include "policy/policy.hpp"
#include "spec_builder.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace egressd::policy {
namespace {

using namespace fixtures;

struct expected_rule {
    std::string group;  // "deny" for the deny list
    std::uint32_t index = 0;
};

// One request and what the policy must say about it. Without `resolved` it is the name phase only;
// with it, the address phase for that resolved address.
struct decision_case {
    // Every member has an initializer so that designated initializers may leave any of them out.
    std::string name{};
    std::string source{};  // client source address; empty: no source known
    std::string target{};
    std::uint16_t port = 443;
    std::optional<std::string> resolved{};
    time_point now = t0;
    verdict outcome = verdict::deny;
    reason why = reason::no_matching_rule;
    std::optional<expected_rule> rule{};  // nullopt: the decision must name no rule
    std::string client{};                 // expected client name; empty: not checked
    std::optional<guard_category> category{};
    embedding form = embedding::none;
};

std::string describe_rule(const policy& p, const std::optional<rule_ref>& ref)
{
    if (!ref) {
        return "(none)";
    }
    auto v = p.describe(*ref);
    return std::string(v.group) + "#" + std::to_string(v.index);
}

decision run(const policy& p, const decision_case& c)
{
    client_facts facts;
    if (!c.source.empty()) {
        facts.source = addr(c.source);
    }
    auto client = p.match_client(facts);
    if (c.resolved) {
        return p.decide_address(client, target(c.target), c.port, addr(*c.resolved), c.now);
    }
    return p.decide_name(client, target(c.target), c.port, c.now);
}

void expect_decision(const policy& p, const decision_case& c)
{
    SCOPED_TRACE(c.name);
    decision d = run(p, c);
    EXPECT_EQ(to_string(d.outcome), to_string(c.outcome));
    EXPECT_EQ(to_string(d.why), to_string(c.why));
    if (c.rule) {
        EXPECT_EQ(describe_rule(p, d.rule), c.rule->group + "#" + std::to_string(c.rule->index));
    } else {
        EXPECT_FALSE(d.rule.has_value()) << "names rule " << describe_rule(p, d.rule);
    }
    if (c.why == reason::unknown_client) {
        EXPECT_FALSE(d.client.has_value());
    } else if (!c.client.empty()) {
        ASSERT_TRUE(d.client.has_value());
        EXPECT_EQ(p.client_name(*d.client), c.client);
    }
    if (c.category) {
        ASSERT_TRUE(d.guard.has_value());
        EXPECT_EQ(to_string(d.guard->category), to_string(*c.category));
        EXPECT_EQ(to_string(d.guard->form), to_string(c.form));
    } else {
        EXPECT_FALSE(d.guard.has_value()) << "guard " << to_string(d.guard->category);
    }
    EXPECT_EQ(d.allows_traffic(), c.outcome != verdict::deny);
}

void expect_decisions(const std::shared_ptr<const policy>& p, const std::vector<decision_case>& cases)
{
    ASSERT_TRUE(p);
    for (const auto& c : cases) {
        expect_decision(*p, c);
    }
}

constexpr auto allow = verdict::allow;
constexpr auto deny = verdict::deny;
constexpr auto would_deny = verdict::would_deny;

// --- Clients, domains, ports, groups --------------------------------------------------------------------------

std::shared_ptr<const policy> basic_policy()
{
    return spec_builder{}
        .group("web",
               {
                   rule{}.domain("api.example.com").port(443),
                   rule{}.domain("*.cdn.example.net").port(443).port(80),
                   rule{}.domain(".files.example.org").ports(20, 21),
               })
        .group("extra", {rule{}.domain("extra.example.com").port(443)})
        .group("fallback", {rule{}.domain("public.example.com").port(443)})
        .client("app", {"10.0.0.0/8"}, {"web"})
        .client("narrow", {"10.1.0.0/16"}, {"extra"})
        .client("both", {"192.168.7.0/24", "2001:db8:7::/48"}, {"web", "extra"})
        .client("default", {}, {"fallback"})
        .compile_ok();
}

TEST(decide_name, clients_domains_and_ports)
{
    expect_decisions(
        basic_policy(),
        {
            {.name = "exact_domain_allowed", .source = "10.2.3.4", .target = "api.example.com", .port = 443,
             .outcome = allow, .why = reason::allowed, .rule = {{"web", 0}}, .client = "app"},
            {.name = "exact_domain_other_port", .source = "10.2.3.4", .target = "api.example.com", .port = 80,
             .outcome = deny, .why = reason::port_not_allowed, .rule = {{"web", 0}}, .client = "app"},
            {.name = "wildcard_first_port", .source = "10.2.3.4", .target = "img.cdn.example.net", .port = 443,
             .outcome = allow, .why = reason::allowed, .rule = {{"web", 1}}},
            {.name = "wildcard_second_port", .source = "10.2.3.4", .target = "img.cdn.example.net", .port = 80,
             .outcome = allow, .why = reason::allowed, .rule = {{"web", 1}}},
            {.name = "wildcard_unlisted_port", .source = "10.2.3.4", .target = "img.cdn.example.net", .port = 8080,
             .outcome = deny, .why = reason::port_not_allowed, .rule = {{"web", 1}}},
            {.name = "wildcard_not_apex", .source = "10.2.3.4", .target = "cdn.example.net", .port = 443,
             .outcome = deny, .why = reason::no_matching_rule},
            {.name = "range_low_end", .source = "10.2.3.4", .target = "files.example.org", .port = 20,
             .outcome = allow, .why = reason::allowed, .rule = {{"web", 2}}},
            {.name = "range_high_end_subdomain", .source = "10.2.3.4", .target = "ftp.files.example.org",
             .port = 21, .outcome = allow, .why = reason::allowed, .rule = {{"web", 2}}},
            {.name = "range_above", .source = "10.2.3.4", .target = "files.example.org", .port = 22,
             .outcome = deny, .why = reason::port_not_allowed, .rule = {{"web", 2}}},
            {.name = "range_below", .source = "10.2.3.4", .target = "files.example.org", .port = 19,
             .outcome = deny, .why = reason::port_not_allowed, .rule = {{"web", 2}}},
            {.name = "default_deny", .source = "10.2.3.4", .target = "www.example.com", .port = 443,
             .outcome = deny, .why = reason::no_matching_rule},
            {.name = "group_of_another_client", .source = "10.2.3.4", .target = "extra.example.com", .port = 443,
             .outcome = deny, .why = reason::no_matching_rule, .client = "app"},
            // 10.1.0.0/16 is more specific than 10.0.0.0/8: "narrow" decides, with its groups only.
            {.name = "most_specific_source", .source = "10.1.2.3", .target = "extra.example.com", .port = 443,
             .outcome = allow, .why = reason::allowed, .rule = {{"extra", 0}}, .client = "narrow"},
            {.name = "most_specific_source_does_not_inherit", .source = "10.1.2.3", .target = "api.example.com",
             .port = 443, .outcome = deny, .why = reason::no_matching_rule, .client = "narrow"},
            // A dual-stack listener reports IPv4 clients as IPv4-mapped IPv6.
            {.name = "mapped_source_matches_v4_cidr", .source = "::ffff:10.1.2.3", .target = "extra.example.com",
             .port = 443, .outcome = allow, .why = reason::allowed, .rule = {{"extra", 0}}, .client = "narrow"},
            {.name = "mapped_source_wider_cidr", .source = "::ffff:10.9.9.9", .target = "api.example.com",
             .port = 443, .outcome = allow, .why = reason::allowed, .rule = {{"web", 0}}, .client = "app"},
            {.name = "union_first_group", .source = "192.168.7.9", .target = "api.example.com", .port = 443,
             .outcome = allow, .why = reason::allowed, .rule = {{"web", 0}}, .client = "both"},
            {.name = "union_second_group", .source = "192.168.7.9", .target = "extra.example.com", .port = 443,
             .outcome = allow, .why = reason::allowed, .rule = {{"extra", 0}}, .client = "both"},
            {.name = "v6_source", .source = "2001:db8:7::42", .target = "extra.example.com", .port = 443,
             .outcome = allow, .why = reason::allowed, .rule = {{"extra", 0}}, .client = "both"},
            {.name = "default_catches_other_sources", .source = "203.0.113.9", .target = "public.example.com",
             .port = 443, .outcome = allow, .why = reason::allowed, .rule = {{"fallback", 0}},
             .client = "default"},
            {.name = "default_catches_missing_source", .source = "", .target = "public.example.com", .port = 443,
             .outcome = allow, .why = reason::allowed, .rule = {{"fallback", 0}}, .client = "default"},
            {.name = "default_catches_unmatched_v6", .source = "2001:db8:8::1", .target = "public.example.com",
             .port = 443, .outcome = allow, .why = reason::allowed, .rule = {{"fallback", 0}},
             .client = "default"},
            {.name = "default_has_only_its_groups", .source = "203.0.113.9", .target = "api.example.com",
             .port = 443, .outcome = deny, .why = reason::no_matching_rule, .client = "default"},
        });
}

TEST(decide_name, unknown_client_without_default)
{
    auto p = spec_builder{}
                 .group("web", {rule{}.domain("api.example.com").port(443)})
                 .client("app", {"10.0.0.0/8"}, {"web"})
                 .compile_ok();
    expect_decisions(
        p, {
               {.name = "unmatched_source", .source = "203.0.113.9", .target = "api.example.com", .port = 443,
                .outcome = deny, .why = reason::unknown_client},
               {.name = "no_source", .source = "", .target = "api.example.com", .port = 443, .outcome = deny,
                .why = reason::unknown_client},
               {.name = "unmatched_mapped_source", .source = "::ffff:192.0.2.1", .target = "api.example.com",
                .port = 443, .outcome = deny, .why = reason::unknown_client},
               {.name = "unknown_client_literal", .source = "203.0.113.9", .target = "93.184.216.34", .port = 443,
                .outcome = deny, .why = reason::unknown_client},
               {.name = "unknown_client_address_phase", .source = "203.0.113.9", .target = "api.example.com",
                .port = 443, .resolved = "93.184.216.34", .outcome = deny, .why = reason::unknown_client},
               {.name = "known_client", .source = "10.0.0.1", .target = "api.example.com", .port = 443,
                .outcome = allow, .why = reason::allowed, .rule = {{"web", 0}}, .client = "app"},
           });
}

TEST(decide_name, client_id_out_of_range_is_unknown)
{
    auto p = spec_builder{}
                 .group("web", {rule{}.domain("api.example.com").port(443)})
                 .client("app", {"10.0.0.0/8"}, {"web"})
                 .compile_ok();
    ASSERT_TRUE(p);
    // A client id from another snapshot (say, across a reload) must not index past this one's clients.
    for (client_id id : {client_id{1}, client_id{42}, client_id{0xffffffffu}}) {
        SCOPED_TRACE(id);
        auto d = p->decide_name(id, target("api.example.com"), 443, t0);
        EXPECT_EQ(d.outcome, verdict::deny);
        EXPECT_EQ(d.why, reason::unknown_client);
        EXPECT_FALSE(d.client.has_value());
        EXPECT_FALSE(d.rule.has_value());
        auto a = p->decide_address(id, target("api.example.com"), 443, addr("93.184.216.34"), t0);
        EXPECT_EQ(a.why, reason::unknown_client);
    }
}

TEST(match_client, by_source_and_by_name)
{
    auto p = basic_policy();
    ASSERT_TRUE(p);
    struct client_case {
        std::string name;
        std::optional<std::string> source;
        std::string expected;
    };
    const std::vector<client_case> cases = {
        {"inside_wide", "10.200.0.1", "app"},
        {"inside_narrow", "10.1.255.255", "narrow"},
        {"narrow_edge_below", "10.0.255.255", "app"},
        {"narrow_edge_above", "10.2.0.0", "app"},
        {"mapped_narrow", "::ffff:10.1.0.1", "narrow"},
        {"v6", "2001:db8:7:ffff::1", "both"},
        {"elsewhere", "198.51.100.1", "default"},
        {"no_source", std::nullopt, "default"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        client_facts facts;
        if (c.source) {
            facts.source = addr(*c.source);
        }
        auto id = p->match_client(facts);
        ASSERT_TRUE(id.has_value());
        EXPECT_EQ(p->client_name(*id), c.expected);
        EXPECT_EQ(p->find_client(c.expected), id);
    }
    EXPECT_FALSE(p->find_client("nobody").has_value());
}

// --- Deny list ------------------------------------------------------------------------------------------------

std::shared_ptr<const policy> deny_policy()
{
    return spec_builder{}
        .group("web",
               {
                   rule{}.domain("*.cdn.example.net").port(443).port(80),
                   rule{}.domain(".example.com").port(443),
                   rule{}.cidr("93.184.216.0/24").port(443),
                   rule{}.cidr("2606:2800:220::/48").port(443),
               })
        .client("default", {}, {"web"})
        .deny(rule{}.domain("blocked.example.com"))
        .deny(rule{}.domain("*.ads.example.com"))
        .deny(rule{}.domain("img.cdn.example.net").port(80))
        .deny(rule{}.cidr("93.184.216.66/32"))
        .deny(rule{}.cidr("2606:2800:220:1::/64"))
        .compile_ok();
}

TEST(decide, explicit_deny_wins)
{
    expect_decisions(
        deny_policy(),
        {
            {.name = "deny_exact_inside_allowed_domain", .target = "blocked.example.com", .port = 443,
             .outcome = deny, .why = reason::explicit_deny, .rule = {{"deny", 0}}},
            {.name = "deny_normalized_host", .target = "BLOCKED.Example.COM.", .port = 443, .outcome = deny,
             .why = reason::explicit_deny, .rule = {{"deny", 0}}},
            {.name = "deny_without_ports_covers_every_port", .target = "blocked.example.com", .port = 8080,
             .outcome = deny, .why = reason::explicit_deny, .rule = {{"deny", 0}}},
            {.name = "deny_subdomains", .target = "x.y.ads.example.com", .port = 443, .outcome = deny,
             .why = reason::explicit_deny, .rule = {{"deny", 1}}},
            {.name = "deny_subdomains_spares_apex", .target = "ads.example.com", .port = 443, .outcome = allow,
             .why = reason::allowed, .rule = {{"web", 1}}},
            {.name = "deny_spares_neighbour", .target = "www.example.com", .port = 443, .outcome = allow,
             .why = reason::allowed, .rule = {{"web", 1}}},
            {.name = "deny_on_its_port", .target = "img.cdn.example.net", .port = 80, .outcome = deny,
             .why = reason::explicit_deny, .rule = {{"deny", 2}}},
            {.name = "deny_port_limited_spares_other_port", .target = "img.cdn.example.net", .port = 443,
             .outcome = allow, .why = reason::allowed, .rule = {{"web", 0}}},
            {.name = "deny_cidr_literal", .target = "93.184.216.66", .port = 443, .outcome = deny,
             .why = reason::explicit_deny, .rule = {{"deny", 3}}},
            {.name = "allow_cidr_literal_neighbour", .target = "93.184.216.34", .port = 443, .outcome = allow,
             .why = reason::allowed, .rule = {{"web", 2}}},
            {.name = "deny_cidr_mapped_literal", .target = "[::ffff:93.184.216.66]", .port = 443, .outcome = deny,
             .why = reason::explicit_deny, .rule = {{"deny", 3}}},
            {.name = "deny_cidr_v6_literal", .target = "[2606:2800:220:1::5]", .port = 443, .outcome = deny,
             .why = reason::explicit_deny, .rule = {{"deny", 4}}},
            {.name = "allow_cidr_v6_literal_neighbour", .target = "[2606:2800:220:2::5]", .port = 443,
             .outcome = allow, .why = reason::allowed, .rule = {{"web", 3}}},
            {.name = "resolved_public", .target = "www.example.com", .port = 443, .resolved = "93.184.216.34",
             .outcome = allow, .why = reason::allowed, .rule = {{"web", 1}}},
            {.name = "resolved_into_deny_cidr", .target = "www.example.com", .port = 443,
             .resolved = "93.184.216.66", .outcome = deny, .why = reason::explicit_deny, .rule = {{"deny", 3}}},
            {.name = "resolved_mapped_into_deny_cidr", .target = "www.example.com", .port = 443,
             .resolved = "::ffff:93.184.216.66", .outcome = deny, .why = reason::explicit_deny,
             .rule = {{"deny", 3}}},
            {.name = "resolved_nat64_into_deny_cidr", .target = "www.example.com", .port = 443,
             .resolved = "64:ff9b::5db8:d842", .outcome = deny, .why = reason::explicit_deny,
             .rule = {{"deny", 3}}},
            {.name = "resolved_6to4_into_deny_cidr", .target = "www.example.com", .port = 443,
             .resolved = "2002:5db8:d842::1", .outcome = deny, .why = reason::explicit_deny,
             .rule = {{"deny", 3}}},
            {.name = "resolved_v6_into_deny_cidr", .target = "www.example.com", .port = 443,
             .resolved = "2606:2800:220:1::1", .outcome = deny, .why = reason::explicit_deny,
             .rule = {{"deny", 4}}},
            // The name phase already denied: the address phase repeats it and names the same rule.
            {.name = "resolved_after_name_deny", .target = "blocked.example.com", .port = 443,
             .resolved = "93.184.216.34", .outcome = deny, .why = reason::explicit_deny, .rule = {{"deny", 0}}},
        });
}

// --- Report mode ----------------------------------------------------------------------------------------------

TEST(decide, report_mode_and_overrides)
{
    auto report_default = spec_builder{}
                              .default_mode(mode::report)
                              .group("web", {rule{}.domain("api.example.com").port(443)})
                              .client("observed", {"10.0.0.0/8"}, {"web"})
                              .client("strict", {"10.1.0.0/16"}, {"web"}, {.mode_override = mode::enforce})
                              .deny(rule{}.domain("blocked.example.com"))
                              .compile_ok();
    expect_decisions(
        report_default,
        {
            {.name = "report_allowed_stays_allow", .source = "10.2.0.1", .target = "api.example.com", .port = 443,
             .outcome = allow, .why = reason::allowed, .rule = {{"web", 0}}},
            {.name = "report_no_match", .source = "10.2.0.1", .target = "www.example.com", .port = 443,
             .outcome = would_deny, .why = reason::no_matching_rule},
            {.name = "report_port", .source = "10.2.0.1", .target = "api.example.com", .port = 80,
             .outcome = would_deny, .why = reason::port_not_allowed, .rule = {{"web", 0}}},
            {.name = "report_explicit_deny", .source = "10.2.0.1", .target = "blocked.example.com", .port = 443,
             .outcome = would_deny, .why = reason::explicit_deny, .rule = {{"deny", 0}}},
            {.name = "report_guard", .source = "10.2.0.1", .target = "api.example.com", .port = 443,
             .resolved = "127.0.0.1", .outcome = would_deny, .why = reason::address_guard,
             .category = guard_category::loopback},
            {.name = "report_unknown_client", .source = "203.0.113.1", .target = "api.example.com", .port = 443,
             .outcome = would_deny, .why = reason::unknown_client},
            {.name = "override_enforce", .source = "10.1.0.1", .target = "www.example.com", .port = 443,
             .outcome = deny, .why = reason::no_matching_rule, .client = "strict"},
            {.name = "override_enforce_deny_list", .source = "10.1.0.1", .target = "blocked.example.com",
             .port = 443, .outcome = deny, .why = reason::explicit_deny, .rule = {{"deny", 0}}},
            {.name = "override_enforce_allowed", .source = "10.1.0.1", .target = "api.example.com", .port = 443,
             .outcome = allow, .why = reason::allowed, .rule = {{"web", 0}}},
        });

    auto enforce_default = spec_builder{}
                               .group("web", {rule{}.domain("api.example.com").port(443)})
                               .client("enforced", {"10.0.0.0/8"}, {"web"})
                               .client("trial", {"10.1.0.0/16"}, {"web"}, {.mode_override = mode::report})
                               .compile_ok();
    expect_decisions(enforce_default,
                     {
                         {.name = "enforce_no_match", .source = "10.2.0.1", .target = "www.example.com",
                          .port = 443, .outcome = deny, .why = reason::no_matching_rule},
                         {.name = "override_report", .source = "10.1.0.1", .target = "www.example.com",
                          .port = 443, .outcome = would_deny, .why = reason::no_matching_rule, .client = "trial"},
                         {.name = "override_report_port", .source = "10.1.0.1", .target = "api.example.com",
                          .port = 8443, .outcome = would_deny, .why = reason::port_not_allowed,
                          .rule = {{"web", 0}}},
                         {.name = "enforce_unknown_client", .source = "203.0.113.1", .target = "api.example.com",
                          .port = 443, .outcome = deny, .why = reason::unknown_client},
                     });

    ASSERT_TRUE(report_default && enforce_default);
    EXPECT_EQ(report_default->default_mode(), mode::report);
    EXPECT_EQ(report_default->client_mode(*report_default->find_client("strict")), mode::enforce);
    EXPECT_EQ(enforce_default->client_mode(*enforce_default->find_client("trial")), mode::report);
    auto d = enforce_default->decide_name(enforce_default->find_client("trial"), target("x.example.com"), 443, t0);
    EXPECT_EQ(d.applied_mode, mode::report);
}

// --- Expiry ---------------------------------------------------------------------------------------------------

TEST(decide, expiry)
{
    auto p = spec_builder{}
                 .group("temp",
                        {
                            rule{}.domain("old.example.com").port(443).expires(at(-60)),
                            rule{}.domain("edge.example.com").port(443).expires(t0),
                            rule{}.domain("later.example.com").port(443).expires(at(60)),
                            rule{}.domain("both.example.com").port(443).expires(at(-60)),
                            rule{}.domain("both.example.com").port(443),
                            rule{}.cidr("93.184.216.0/24").port(443).expires(at(-1)),
                            rule{}.domain("allowed-again.example.com").port(443),
                        })
                 .client("default", {}, {"temp"})
                 .deny(rule{}.domain("allowed-again.example.com").expires(at(-1)))
                 .compile_ok();
    expect_decisions(
        p, {
               {.name = "expired_before_now", .target = "old.example.com", .port = 443, .outcome = deny,
                .why = reason::expired, .rule = {{"temp", 0}}},
               {.name = "expires_exactly_now", .target = "edge.example.com", .port = 443, .now = t0,
                .outcome = deny, .why = reason::expired, .rule = {{"temp", 1}}},
               {.name = "one_second_before_expiry", .target = "edge.example.com", .port = 443, .now = at(-1),
                .outcome = allow, .why = reason::allowed, .rule = {{"temp", 1}}},
               {.name = "not_yet_expired", .target = "later.example.com", .port = 443, .now = t0, .outcome = allow,
                .why = reason::allowed, .rule = {{"temp", 2}}},
               {.name = "at_boundary_later", .target = "later.example.com", .port = 443, .now = at(60),
                .outcome = deny, .why = reason::expired, .rule = {{"temp", 2}}},
               {.name = "long_after", .target = "later.example.com", .port = 443, .now = at(86400),
                .outcome = deny, .why = reason::expired, .rule = {{"temp", 2}}},
               {.name = "lasting_rule_still_allows", .target = "both.example.com", .port = 443, .outcome = allow,
                .why = reason::allowed, .rule = {{"temp", 4}}},
               {.name = "expired_cidr", .target = "93.184.216.34", .port = 443, .outcome = deny,
                .why = reason::expired, .rule = {{"temp", 5}}},
               {.name = "cidr_before_expiry", .target = "93.184.216.34", .port = 443, .now = at(-2),
                .outcome = allow, .why = reason::allowed, .rule = {{"temp", 5}}},
               // The port never matched, so expiry is not the reason to give.
               {.name = "expired_and_wrong_port", .target = "old.example.com", .port = 80, .outcome = deny,
                .why = reason::port_not_allowed, .rule = {{"temp", 0}}},
               {.name = "expired_deny_no_longer_denies", .target = "allowed-again.example.com", .port = 443,
                .outcome = allow, .why = reason::allowed, .rule = {{"temp", 6}}},
               {.name = "deny_before_expiry", .target = "allowed-again.example.com", .port = 443, .now = at(-2),
                .outcome = deny, .why = reason::explicit_deny, .rule = {{"deny", 0}}},
           });
    ASSERT_TRUE(p);
    auto view = p->describe(rule_ref{0, 1});
    ASSERT_TRUE(view.expires.has_value());
    EXPECT_EQ(*view.expires, t0);
    EXPECT_FALSE(p->describe(rule_ref{0, 4}).expires.has_value());
}

// --- IP literals ----------------------------------------------------------------------------------------------

TEST(decide, ip_literals_match_cidr_rules_only)
{
    auto p = spec_builder{}
                 .group("names", {rule{}.domain(".example.com").port(443),
                                  rule{}.domain("34.216.184.93.in-addr.arpa").port(443)})
                 .group("nets", {rule{}.cidr("93.184.216.0/24").port(443),
                                 rule{}.cidr("2606:2800:220::/48").port(443)})
                 .client("names_only", {"10.1.0.0/16"}, {"names"})
                 .client("default", {}, {"names", "nets"})
                 .compile_ok();
    expect_decisions(
        p,
        {
            // Squid's trap: the literal's PTR name may well be allowed; it is irrelevant.
            {.name = "v4_literal_vs_domain_rules", .source = "10.1.0.1", .target = "93.184.216.34", .port = 443,
             .outcome = deny, .why = reason::no_matching_rule, .client = "names_only"},
            {.name = "v6_literal_vs_domain_rules", .source = "10.1.0.1",
             .target = "[2606:2800:220:1:248:1893:25c8:1946]", .port = 443, .outcome = deny,
             .why = reason::no_matching_rule},
            {.name = "v4_literal_address_phase", .source = "10.1.0.1", .target = "93.184.216.34", .port = 443,
             .resolved = "93.184.216.34", .outcome = deny, .why = reason::no_matching_rule},
            {.name = "v4_literal_cidr", .source = "10.9.0.1", .target = "93.184.216.34", .port = 443,
             .outcome = allow, .why = reason::allowed, .rule = {{"nets", 0}}, .client = "default"},
            {.name = "v4_literal_cidr_address_phase", .source = "10.9.0.1", .target = "93.184.216.34", .port = 443,
             .resolved = "93.184.216.34", .outcome = allow, .why = reason::allowed, .rule = {{"nets", 0}}},
            {.name = "v4_literal_cidr_port", .source = "10.9.0.1", .target = "93.184.216.34", .port = 80,
             .outcome = deny, .why = reason::port_not_allowed, .rule = {{"nets", 0}}},
            {.name = "v4_literal_outside_cidr", .source = "10.9.0.1", .target = "93.184.217.34", .port = 443,
             .outcome = deny, .why = reason::no_matching_rule},
            {.name = "v6_literal_cidr", .source = "10.9.0.1", .target = "[2606:2800:220:1:248:1893:25c8:1946]",
             .port = 443, .outcome = allow, .why = reason::allowed, .rule = {{"nets", 1}}},
            {.name = "bare_v6_literal_cidr", .source = "10.9.0.1", .target = "2606:2800:220:1:248:1893:25c8:1946",
             .port = 443, .outcome = allow, .why = reason::allowed, .rule = {{"nets", 1}}},
            // Families never mix: an IPv4 CIDR does not name the mapped form, so the request fails closed.
            {.name = "mapped_literal_vs_v4_cidr", .source = "10.9.0.1", .target = "[::ffff:93.184.216.34]",
             .port = 443, .outcome = deny, .why = reason::no_matching_rule},
            // The address phase decides the address actually connected to, whatever literal was parsed.
            {.name = "literal_but_other_address_connected", .source = "10.9.0.1", .target = "93.184.216.34",
             .port = 443, .resolved = "127.0.0.1", .outcome = deny, .why = reason::no_matching_rule},
            {.name = "ptr_name_itself_is_a_name", .source = "10.1.0.1", .target = "34.216.184.93.in-addr.arpa",
             .port = 443, .outcome = allow, .why = reason::allowed, .rule = {{"names", 1}}},
        });
}

// --- Address guard: categories --------------------------------------------------------------------------------

std::shared_ptr<const policy> web_policy()
{
    return spec_builder{}
        .group("web", {rule{}.domain(".example.com").port(443)})
        .client("default", {}, {"web"})
        .compile_ok();
}

TEST(decide_address, guard_categories)
{
    struct guarded {
        std::string name;
        std::string resolved;
        guard_category category;
    };
    const std::vector<guarded> table = {
        {"loopback", "127.0.0.2", guard_category::loopback},
        {"loopback_v6", "::1", guard_category::loopback},
        {"private_10", "10.1.2.3", guard_category::private_network},
        {"private_172_16", "172.16.5.4", guard_category::private_network},
        {"private_192_168", "192.168.1.1", guard_category::private_network},
        {"cgnat", "100.64.0.1", guard_category::cgnat},
        {"link_local", "169.254.1.1", guard_category::link_local},
        {"link_local_v6", "fe80::1", guard_category::link_local},
        {"cloud_metadata", "169.254.169.254", guard_category::cloud_metadata},
        {"cloud_metadata_v6", "fd00:ec2::254", guard_category::cloud_metadata},
        {"unspecified", "0.0.0.0", guard_category::unspecified},
        {"unspecified_v6", "::", guard_category::unspecified},
        {"unique_local", "fd12::1", guard_category::unique_local},
        {"multicast", "224.0.0.1", guard_category::multicast},
        {"multicast_v6", "ff02::1", guard_category::multicast},
        {"broadcast", "255.255.255.255", guard_category::broadcast},
        {"reserved", "240.0.0.1", guard_category::reserved},
        {"benchmarking", "198.18.0.1", guard_category::benchmarking},
        {"documentation", "192.0.2.1", guard_category::documentation},
        {"documentation_v6", "2001:db8::1", guard_category::documentation},
    };
    std::vector<decision_case> cases;
    for (const auto& g : table) {
        cases.push_back({.name = g.name, .target = "www.example.com", .port = 443, .resolved = g.resolved,
                         .outcome = deny, .why = reason::address_guard, .category = g.category});
    }
    cases.push_back({.name = "public_v4", .target = "www.example.com", .port = 443, .resolved = "93.184.216.34",
                     .outcome = allow, .why = reason::allowed, .rule = {{"web", 0}}});
    cases.push_back({.name = "public_v6", .target = "www.example.com", .port = 443,
                     .resolved = "2606:2800:220:1:248:1893:25c8:1946", .outcome = allow, .why = reason::allowed,
                     .rule = {{"web", 0}}});
    // The name phase alone knows no address: it cannot refuse on the guard.
    cases.push_back({.name = "name_phase_has_no_address", .target = "www.example.com", .port = 443,
                     .outcome = allow, .why = reason::allowed, .rule = {{"web", 0}}});
    expect_decisions(web_policy(), cases);
}

// --- Address guard: IPv4 hidden in IPv6 -----------------------------------------------------------------------

// A Teredo address carrying client_v4 inverted in its last 32 bits (RFC 4380); the server is 65.54.227.120.
std::string teredo_for(std::uint32_t client_v4)
{
    std::uint32_t inverted = ~client_v4;
    char buf[64];
    std::snprintf(buf, sizeof buf, "2001:0:4136:e378:8000:63bf:%x:%x", static_cast<unsigned>(inverted >> 16),
                  static_cast<unsigned>(inverted & 0xffffu));
    return buf;
}

std::string hex_words(std::uint32_t v)
{
    char buf[16];
    std::snprintf(buf, sizeof buf, "%x:%x", static_cast<unsigned>(v >> 16), static_cast<unsigned>(v & 0xffffu));
    return buf;
}

struct embedded_target {
    std::string name;
    std::string dotted;
    std::uint32_t value;
    guard_category category;
};

struct embedded_form {
    std::string name;
    embedding form;
    std::string (*spell)(const embedded_target&);
};

const std::vector<embedded_target>& embedded_targets()
{
    static const std::vector<embedded_target> targets = {
        {"loopback", "127.0.0.1", 0x7f000001u, guard_category::loopback},
        {"metadata", "169.254.169.254", 0xa9fea9feu, guard_category::cloud_metadata},
        {"private", "10.0.0.1", 0x0a000001u, guard_category::private_network},
    };
    return targets;
}

const std::vector<embedded_form>& embedded_forms()
{
    static const std::vector<embedded_form> forms = {
        {"mapped", embedding::ipv4_mapped, [](const embedded_target& t) { return "::ffff:" + t.dotted; }},
        {"compatible", embedding::ipv4_compatible, [](const embedded_target& t) { return "::" + t.dotted; }},
        {"translated", embedding::ipv4_translated, [](const embedded_target& t) { return "::ffff:0:" + t.dotted; }},
        {"nat64", embedding::nat64, [](const embedded_target& t) { return "64:ff9b::" + hex_words(t.value); }},
        {"six_to_four", embedding::six_to_four,
         [](const embedded_target& t) { return "2002:" + hex_words(t.value) + "::1"; }},
        {"teredo", embedding::teredo, [](const embedded_target& t) { return teredo_for(t.value); }},
    };
    return forms;
}

TEST(decide_address, guard_sees_embedded_ipv4)
{
    std::vector<decision_case> cases;
    for (const auto& f : embedded_forms()) {
        for (const auto& t : embedded_targets()) {
            cases.push_back({.name = f.name + "_" + t.name + "_resolved", .target = "www.example.com", .port = 443,
                             .resolved = f.spell(t), .outcome = deny, .why = reason::address_guard,
                             .category = t.category, .form = f.form});
        }
    }
    expect_decisions(web_policy(), cases);
}

TEST(decide_address, guard_sees_embedded_ipv4_in_literals)
{
    // Even a rule allowing every IPv6 address does not open the embedded forms.
    auto p = spec_builder{}
                 .group("any", {rule{}.cidr("::/0").port(443)})
                 .client("default", {}, {"any"})
                 .compile_ok();
    std::vector<decision_case> cases;
    for (const auto& f : embedded_forms()) {
        for (const auto& t : embedded_targets()) {
            cases.push_back({.name = f.name + "_" + t.name + "_literal", .target = "[" + f.spell(t) + "]",
                             .port = 443, .outcome = deny, .why = reason::address_guard, .category = t.category,
                             .form = f.form});
        }
    }
    cases.push_back({.name = "teredo_public_literal", .target = "[" + teredo_for(0x5db8d822u) + "]", .port = 443,
                     .outcome = allow, .why = reason::allowed, .rule = {{"any", 0}}});
    expect_decisions(p, cases);
}

// --- Address guard: exemptions --------------------------------------------------------------------------------

TEST(decide_address, guard_exemptions)
{
    auto p = spec_builder{}
                 .group("web", {rule{}.domain(".example.com").port(443)})
                 .group("local", {rule{}.cidr("127.0.0.1/32").port(443), rule{}.cidr("::ffff:10.0.0.1/128").port(443),
                                  rule{}.cidr("10.2.0.0/16").port(443)})
                 .group("everything", {rule{}.cidr("0.0.0.0/0").port(443), rule{}.cidr("::/0").port(443)})
                 .group("wide", {rule{}.cidr("64:ff9b::/96").port(443), rule{}.cidr("::ffff:0.0.0.0/96").port(443),
                                 rule{}.cidr("126.0.0.0/7").port(443)})
                 .client("local", {"10.1.0.0/16"}, {"web", "local"})
                 .client("everything", {"10.2.0.0/16"}, {"web", "everything"})
                 .client("wide", {"10.3.0.0/16"}, {"web", "wide"})
                 .client("other", {"10.4.0.0/16"}, {"web"})
                 .compile_ok();
    expect_decisions(
        p,
        {
            {.name = "exact_exemption_by_name", .source = "10.1.0.1", .target = "www.example.com", .port = 443,
             .resolved = "127.0.0.1", .outcome = allow, .why = reason::allowed, .rule = {{"local", 0}}},
            {.name = "exemption_is_exact", .source = "10.1.0.1", .target = "www.example.com", .port = 443,
             .resolved = "127.0.0.2", .outcome = deny, .why = reason::address_guard,
             .category = guard_category::loopback},
            {.name = "exact_exemption_literal", .source = "10.1.0.1", .target = "127.0.0.1", .port = 443,
             .outcome = allow, .why = reason::allowed, .rule = {{"local", 0}}},
            {.name = "exact_exemption_literal_port", .source = "10.1.0.1", .target = "127.0.0.1", .port = 80,
             .outcome = deny, .why = reason::port_not_allowed, .rule = {{"local", 0}}},
            {.name = "neighbour_literal_not_named", .source = "10.1.0.1", .target = "127.0.0.2", .port = 443,
             .outcome = deny, .why = reason::no_matching_rule},
            // A v4 exemption does not open the v4-mapped spelling of the same address.
            {.name = "v4_exemption_not_mapped", .source = "10.1.0.1", .target = "www.example.com", .port = 443,
             .resolved = "::ffff:127.0.0.1", .outcome = deny, .why = reason::address_guard,
             .category = guard_category::loopback, .form = embedding::ipv4_mapped},
            {.name = "mapped_exemption", .source = "10.1.0.1", .target = "www.example.com", .port = 443,
             .resolved = "::ffff:10.0.0.1", .outcome = allow, .why = reason::allowed, .rule = {{"local", 1}}},
            {.name = "prefix_inside_guarded_range", .source = "10.1.0.1", .target = "www.example.com", .port = 443,
             .resolved = "10.2.3.4", .outcome = allow, .why = reason::allowed, .rule = {{"local", 2}}},
            {.name = "prefix_inside_guarded_range_literal", .source = "10.1.0.1", .target = "10.2.3.4",
             .port = 443, .outcome = allow, .why = reason::allowed, .rule = {{"local", 2}}},
            {.name = "everything_does_not_exempt_name", .source = "10.2.0.1", .target = "www.example.com",
             .port = 443, .resolved = "127.0.0.1", .outcome = deny, .why = reason::address_guard,
             .category = guard_category::loopback},
            {.name = "everything_does_not_exempt_literal", .source = "10.2.0.1", .target = "127.0.0.1",
             .port = 443, .outcome = deny, .why = reason::address_guard, .category = guard_category::loopback},
            {.name = "everything_does_not_exempt_metadata", .source = "10.2.0.1", .target = "169.254.169.254",
             .port = 443, .outcome = deny, .why = reason::address_guard,
             .category = guard_category::cloud_metadata},
            {.name = "everything_v6_does_not_exempt", .source = "10.2.0.1", .target = "[::1]", .port = 443,
             .outcome = deny, .why = reason::address_guard, .category = guard_category::loopback},
            {.name = "everything_allows_public", .source = "10.2.0.1", .target = "93.184.216.34", .port = 443,
             .outcome = allow, .why = reason::allowed, .rule = {{"everything", 0}}},
            {.name = "everything_allows_public_v6", .source = "10.2.0.1",
             .target = "[2606:2800:220:1:248:1893:25c8:1946]", .port = 443, .outcome = allow,
             .why = reason::allowed, .rule = {{"everything", 1}}},
            // Prefixes wider than the guarded range hold it only by accident: no exemption.
            {.name = "wider_v4_prefix", .source = "10.3.0.1", .target = "127.0.0.1", .port = 443, .outcome = deny,
             .why = reason::address_guard, .category = guard_category::loopback},
            {.name = "whole_nat64_prefix", .source = "10.3.0.1", .target = "[64:ff9b::a9fe:a9fe]", .port = 443,
             .outcome = deny, .why = reason::address_guard, .category = guard_category::cloud_metadata,
             .form = embedding::nat64},
            {.name = "whole_nat64_prefix_by_name", .source = "10.3.0.1", .target = "www.example.com", .port = 443,
             .resolved = "64:ff9b::a9fe:a9fe", .outcome = deny, .why = reason::address_guard,
             .category = guard_category::cloud_metadata, .form = embedding::nat64},
            {.name = "whole_mapped_prefix", .source = "10.3.0.1", .target = "[::ffff:127.0.0.1]", .port = 443,
             .outcome = deny, .why = reason::address_guard, .category = guard_category::loopback,
             .form = embedding::ipv4_mapped},
            {.name = "whole_nat64_prefix_public", .source = "10.3.0.1", .target = "[64:ff9b::5db8:d822]",
             .port = 443, .outcome = allow, .why = reason::allowed, .rule = {{"wide", 0}}},
            {.name = "rule_of_other_client_by_name", .source = "10.4.0.1", .target = "www.example.com",
             .port = 443, .resolved = "127.0.0.1", .outcome = deny, .why = reason::address_guard,
             .category = guard_category::loopback},
            {.name = "rule_of_other_client_literal", .source = "10.4.0.1", .target = "127.0.0.1", .port = 443,
             .outcome = deny, .why = reason::no_matching_rule},
        });
}

TEST(decide_address, disabled_guard_categories)
{
    auto b = spec_builder{}
                 .group("web", {rule{}.domain(".example.com").port(443)})
                 .client("default", {}, {"web"})
                 .unguard(guard_category::loopback)
                 .unguard(guard_category::private_network);
    auto p = b.compile_ok();
    expect_decisions(
        p, {
               {.name = "loopback_off", .target = "www.example.com", .port = 443, .resolved = "127.0.0.2",
                .outcome = allow, .why = reason::allowed, .rule = {{"web", 0}}},
               {.name = "loopback_off_mapped", .target = "www.example.com", .port = 443,
                .resolved = "::ffff:127.0.0.1", .outcome = allow, .why = reason::allowed, .rule = {{"web", 0}}},
               {.name = "loopback_off_v6", .target = "www.example.com", .port = 443, .resolved = "::1",
                .outcome = allow, .why = reason::allowed, .rule = {{"web", 0}}},
               {.name = "private_off", .target = "www.example.com", .port = 443, .resolved = "10.0.0.1",
                .outcome = allow, .why = reason::allowed, .rule = {{"web", 0}}},
               {.name = "metadata_still_on", .target = "www.example.com", .port = 443,
                .resolved = "169.254.169.254", .outcome = deny, .why = reason::address_guard,
                .category = guard_category::cloud_metadata},
               {.name = "cgnat_still_on", .target = "www.example.com", .port = 443, .resolved = "100.64.0.1",
                .outcome = deny, .why = reason::address_guard, .category = guard_category::cgnat},
           });
    ASSERT_TRUE(p);
    EXPECT_FALSE(p->guarded().has(guard_category::loopback));
    EXPECT_TRUE(p->guarded().has(guard_category::cloud_metadata));
}

// --- Names of verdicts and reasons ----------------------------------------------------------------------------

TEST(decision_names, are_stable)
{
    EXPECT_EQ(to_string(verdict::allow), "allow");
    EXPECT_EQ(to_string(verdict::deny), "deny");
    EXPECT_EQ(to_string(verdict::would_deny), "would_deny");
    EXPECT_EQ(to_string(mode::report), "report");
    EXPECT_EQ(to_string(mode::enforce), "enforce");
    const std::vector<std::string> expected = {"allowed",          "unknown_client", "no_matching_rule",
                                               "port_not_allowed", "explicit_deny",  "address_guard",
                                               "expired",          "sni_mismatch",   "sni_missing",
                                               "not_tls",          "granted",        "method_not_allowed",
                                               "path_not_allowed"};
    ASSERT_EQ(expected.size(), static_cast<std::size_t>(reason_count));
    for (int i = 0; i < reason_count; ++i) {
        auto r = static_cast<reason>(i);
        SCOPED_TRACE(expected[static_cast<std::size_t>(i)]);
        EXPECT_EQ(to_string(r), expected[static_cast<std::size_t>(i)]);
        EXPECT_EQ(parse_reason(to_string(r)), r);
    }
    EXPECT_FALSE(parse_reason("allow").has_value());
}

TEST(describe, names_rules_and_locations)
{
    auto b = spec_builder{}
                 .group("web", {rule{}.domain("api.example.com").port(443).at_line(4).described("the API")}, 3)
                 .client("default", {}, {"web"})
                 .deny(rule{}.domain("blocked.example.com").at_line(9).described("never"));
    b.spec().files = {"main.yaml"};
    auto p = b.compile_ok();
    ASSERT_TRUE(p);
    auto allow_view = p->describe(rule_ref{0, 0});
    EXPECT_EQ(allow_view.group, "web");
    EXPECT_EQ(allow_view.index, 0u);
    EXPECT_EQ(allow_view.description, "the API");
    EXPECT_EQ(p->describe_location(allow_view.where), "main.yaml:4:1");
    auto deny_view = p->describe(rule_ref{deny_group, 0});
    EXPECT_EQ(deny_view.group, "deny");
    EXPECT_EQ(deny_view.description, "never");
    EXPECT_EQ(p->describe_location(deny_view.where), "main.yaml:9:1");
    EXPECT_EQ(p->describe_location(source_location{7, 1, 2}), "<policy>:1:2");
}

}  // namespace
}  // namespace egressd::policy
