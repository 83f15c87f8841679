// Grants: the approvers' layer the policy consults after the deny list and the base rules. Every case asserts
// the verdict, the reason, the deciding rule and the grant the decision rests on.

#include "policy/connection.hpp"
#include "policy/grants.hpp"
#include "policy/policy.hpp"
#include "spec_builder.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace egressd::policy {
namespace {

using namespace fixtures;

constexpr auto allow = verdict::allow;
constexpr auto would_deny = verdict::would_deny;

// Client sources: documentation ranges (sources are never guarded). Destinations: public addresses.
constexpr const char* app = "192.0.2.10";
constexpr const char* ops = "198.51.100.10";
constexpr const char* other = "203.0.113.10";
constexpr const char* watcher = "192.0.2.200";
constexpr const char* stranger = "100.100.100.100";  // no client, and no default client

std::shared_ptr<const policy> grant_policy(tls_mode default_tls = tls_mode::allow)
{
    return spec_builder{}
        .group("web",
               {
                   rule{}.domain("api.example.com").port(443),                       // web#0
                   rule{}.domain("expiring.example.com").port(443).expires(at(100)),  // web#1
                   rule{}.domain("ported.example.com").port(80),                      // web#2
                   rule{}.cidr("93.184.216.0/24").port(443),                          // web#3
               })
        .group("team", {rule{}.domain("team.example.com").port(443)})
        .group("inside", {rule{}.cidr("10.0.0.0/8").port(443).expires(at(3000))})
        .client("app", {"192.0.2.0/25"}, {"web", "team"})
        .client("ops", {"198.51.100.0/24"}, {"web", "inside"})
        .client("other", {"203.0.113.0/24"}, {"web"})
        .client("watcher", {"192.0.2.128/25"}, {"web"}, {.mode_override = mode::report})
        .deny(rule{}.domain("blocked.example.com"))
        .deny(rule{}.cidr("8.8.4.4/32"))
        .default_tls(default_tls)
        .compile_ok();
}

grant make_grant(std::uint64_t id, grant_scope scope, std::string scope_name, std::string_view destination,
                 std::uint16_t port, time_point expires = at(3600))
{
    grant g;
    g.id = id;
    g.scope = scope;
    g.scope_name = std::move(scope_name);
    if (auto literal = address::parse(destination)) {
        g.destination = domain_pattern{pattern_kind::exact, literal->to_string()};
    } else {
        g.destination = pattern(destination);
    }
    g.port = port;
    g.expires = expires;
    return g;
}

grant for_client(std::uint64_t id, std::string client, std::string_view destination, std::uint16_t port = 443,
                 time_point expires = at(3600))
{
    return make_grant(id, grant_scope::client, std::move(client), destination, port, expires);
}

grant for_group(std::uint64_t id, std::string group, std::string_view destination, std::uint16_t port = 443,
                time_point expires = at(3600))
{
    return make_grant(id, grant_scope::group, std::move(group), destination, port, expires);
}

std::shared_ptr<const grant_set> standard_grants()
{
    return grant_set::make({
        for_client(1, "app", "new.example.com"),
        for_client(2, "app", "*.wild.example.com"),
        for_client(3, "app", ".apex.example.com"),
        for_group(4, "team", "team-only.example.net"),
        for_client(5, "other", "others.example.net"),
        for_client(6, "app", "1.1.1.1"),
        for_client(7, "app", "blocked.example.com"),
        for_client(8, "app", "metadata.example.com"),
        for_client(9, "app", "169.254.169.254", 80),
        for_client(10, "ops", "internal.example.com", 443, at(1000)),
        for_client(11, "app", "internal.example.com"),
        for_client(12, "app", "api.example.com"),
        for_client(13, "app", "soon.example.com", 443, at(60)),
        for_client(14, "app", "expiring.example.com"),
        for_client(15, "app", "ports.example.com", 8443),
        for_client(16, "app", "*.example.org"),
        for_client(17, "app", "8.8.4.4"),
        for_client(18, "app", "10.1.2.3"),
        for_client(19, "ops", "10.1.2.3"),
        for_client(20, "app", "multi.example.com", 443, at(500)),
        for_client(21, "app", "multi.example.com", 443, at(900)),
        for_group(22, "team", ".multi.example.com", 443, at(900)),
        for_client(23, "watcher", "report.example.com"),
        for_client(24, "app", "2606:4700:4700::1111"),
        for_client(25, "app", "203.0.113.9"),
        for_client(26, "app", "ported.example.com", 443),
        for_group(27, "web", "shared.example.com"),
        for_client(28, "app", "sni.example.com"),
    });
}

std::string describe_rule(const policy& p, const std::optional<rule_ref>& ref)
{
    if (!ref) {
        return "(none)";
    }
    auto v = p.describe(*ref);
    return std::string(v.group) + "#" + std::to_string(v.index);
}

struct grant_case {
    std::string name{};
    std::string source = app;
    std::string target{};
    std::uint16_t port = 443;
    std::optional<std::string> resolved{};  // set: the address phase for this address
    time_point now = t0;
    verdict outcome = verdict::deny;
    reason why = reason::no_matching_rule;
    std::uint64_t grant = 0;   // the grant the decision rests on; 0: none
    std::string rule = "(none)";  // the deciding rule, "group#index"
};

decision run(const policy& p, const grant_case& c, const grant_set* grants)
{
    auto client = p.match_client(client_facts{addr(c.source), std::nullopt});
    if (c.resolved) {
        return p.decide_address(client, target(c.target), c.port, addr(*c.resolved), c.now, grants);
    }
    return p.decide_name(client, target(c.target), c.port, c.now, grants);
}

void expect_decision(const policy& p, const decision& d, const grant_case& c)
{
    EXPECT_EQ(to_string(d.outcome), to_string(c.outcome));
    EXPECT_EQ(to_string(d.why), to_string(c.why));
    EXPECT_EQ(describe_rule(p, d.rule), c.rule);
    EXPECT_EQ(d.grant ? d.grant->id : 0u, c.grant) << "the grant the decision rests on (0: none)";
    EXPECT_EQ(d.allowed(), c.why == reason::allowed || c.why == reason::granted);
    EXPECT_EQ(d.allows_traffic(), c.outcome != verdict::deny);
    EXPECT_EQ(d.guard.has_value(), c.why == reason::address_guard);
}

void expect_cases(const policy& p, const grant_set& grants, const std::vector<grant_case>& cases)
{
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        expect_decision(p, run(p, c, &grants), c);
    }
}

TEST(grants, match_names_by_label)
{
    auto p = grant_policy();
    ASSERT_TRUE(p);
    auto g = standard_grants();
    expect_cases(*p, *g,
                 {
                     {.name = "exact", .target = "new.example.com", .outcome = allow, .why = reason::granted,
                      .grant = 1},
                     {.name = "exact, not a subdomain", .target = "x.new.example.com"},
                     {.name = "exact, case and trailing dot", .target = "NEW.Example.com.", .outcome = allow,
                      .why = reason::granted, .grant = 1},
                     {.name = "subdomains: one label", .target = "a.wild.example.com", .outcome = allow,
                      .why = reason::granted, .grant = 2},
                     {.name = "subdomains: deeper", .target = "a.b.c.wild.example.com", .outcome = allow,
                      .why = reason::granted, .grant = 2},
                     {.name = "subdomains: not the parent itself", .target = "wild.example.com"},
                     {.name = "subdomains: label boundary", .target = "evil-wild.example.com"},
                     {.name = "subdomains: no suffix trick", .target = "a.wild.example.com.evil.net"},
                     {.name = "domain: the apex", .target = "apex.example.com", .outcome = allow,
                      .why = reason::granted, .grant = 3},
                     {.name = "domain: below", .target = "x.y.apex.example.com", .outcome = allow,
                      .why = reason::granted, .grant = 3},
                     {.name = "domain: label boundary", .target = "notapex.example.com"},
                     {.name = "*.example.org: a name below", .target = "a.example.org", .outcome = allow,
                      .why = reason::granted, .grant = 16},
                     {.name = "*.example.org: not example.org", .target = "example.org"},
                     {.name = "*.example.org: not evil-example.org", .target = "evil-example.org"},
                     {.name = "port mismatch", .target = "ports.example.com", .why = reason::no_matching_rule},
                     {.name = "grant's own port", .target = "ports.example.com", .port = 8443, .outcome = allow,
                      .why = reason::granted, .grant = 15},
                     {.name = "grant for another port than the exact one", .target = "new.example.com", .port = 8443},
                 });
}

TEST(grants, scope_and_expiry)
{
    auto p = grant_policy();
    ASSERT_TRUE(p);
    auto g = standard_grants();
    expect_cases(*p, *g,
                 {
                     {.name = "group grant, client in the group", .target = "team-only.example.net", .outcome = allow,
                      .why = reason::granted, .grant = 4},
                     {.name = "group grant, client not in the group", .source = ops, .target = "team-only.example.net"},
                     {.name = "group grant for a group many clients share", .source = other,
                      .target = "shared.example.com", .outcome = allow, .why = reason::granted, .grant = 27},
                     {.name = "another client's grant", .target = "others.example.net"},
                     {.name = "own grant", .source = other, .target = "others.example.net", .outcome = allow,
                      .why = reason::granted, .grant = 5},
                     {.name = "no client: grants not consulted", .source = stranger, .target = "new.example.com",
                      .why = reason::unknown_client},
                     {.name = "one second before expiry", .target = "soon.example.com", .now = at(59), .outcome = allow,
                      .why = reason::granted, .grant = 13},
                     {.name = "at the expiry second", .target = "soon.example.com", .now = at(60)},
                     {.name = "after expiry", .target = "soon.example.com", .now = at(61)},
                     {.name = "several: the one expiring last, then the lowest id", .target = "multi.example.com",
                      .outcome = allow, .why = reason::granted, .grant = 21},
                     {.name = "group grant of a domain pattern among them", .target = "x.multi.example.com",
                      .outcome = allow, .why = reason::granted, .grant = 22},
                     {.name = "several, after the first expired", .target = "multi.example.com", .now = at(600),
                      .outcome = allow, .why = reason::granted, .grant = 21},
                     {.name = "several, all expired", .target = "multi.example.com", .now = at(900)},
                     {.name = "report mode, granted", .source = watcher, .target = "report.example.com",
                      .outcome = allow, .why = reason::granted, .grant = 23},
                     {.name = "report mode, no grant", .source = watcher, .target = "nothing.example.com",
                      .outcome = would_deny},
                 });
}

TEST(grants, base_rules_and_deny_list_win)
{
    auto p = grant_policy();
    ASSERT_TRUE(p);
    auto g = standard_grants();
    expect_cases(*p, *g,
                 {
                     {.name = "a base rule allows: reason allowed, not granted", .target = "api.example.com",
                      .outcome = allow, .why = reason::allowed, .rule = "web#0"},
                     {.name = "base rule before it expires", .target = "expiring.example.com", .now = at(99),
                      .outcome = allow, .why = reason::allowed, .rule = "web#1"},
                     {.name = "base rule expired, a grant allows", .target = "expiring.example.com", .now = at(100),
                      .outcome = allow, .why = reason::granted, .grant = 14},
                     {.name = "base rule names another port, a grant allows", .target = "ported.example.com",
                      .outcome = allow, .why = reason::granted, .grant = 26},
                     {.name = "base rule's port, no grant needed", .target = "ported.example.com", .port = 80,
                      .outcome = allow, .why = reason::allowed, .rule = "web#2"},
                     {.name = "deny list wins over a grant", .target = "blocked.example.com",
                      .why = reason::explicit_deny, .rule = "deny#0"},
                     {.name = "deny CIDR wins over a literal grant", .target = "8.8.4.4", .why = reason::explicit_deny,
                      .rule = "deny#1"},
                 });
}

TEST(grants, ip_literals_and_the_address_guard)
{
    auto p = grant_policy();
    ASSERT_TRUE(p);
    auto g = standard_grants();
    expect_cases(
        *p, *g,
        {
            {.name = "IPv4 literal grant", .target = "1.1.1.1", .outcome = allow, .why = reason::granted, .grant = 6},
            {.name = "IPv4 literal grant, other port", .target = "1.1.1.1", .port = 80},
            {.name = "another address", .target = "1.1.1.2"},
            {.name = "IPv6 literal grant", .target = "[2606:4700:4700::1111]", .outcome = allow,
             .why = reason::granted, .grant = 24},
            {.name = "IPv6 literal, mapped form is another address", .target = "[::ffff:1.1.1.1]"},
            {.name = "literal grant for a guarded address", .target = "169.254.169.254", .port = 80,
             .why = reason::address_guard},
            {.name = "literal grant for a private address", .target = "10.1.2.3", .why = reason::address_guard},
            {.name = "literal grant for a documentation address", .target = "203.0.113.9",
             .why = reason::address_guard},
            {.name = "a CIDR rule opens the private address: base wins", .source = ops, .target = "10.1.2.3",
             .outcome = allow, .why = reason::allowed, .rule = "inside#0"},
            {.name = "literal decided at the address phase", .target = "1.1.1.1", .resolved = "1.1.1.1",
             .outcome = allow, .why = reason::granted, .grant = 6},
            {.name = "address grant does not open a name that resolves to it", .target = "one.example.com",
             .resolved = "1.1.1.1"},
            {.name = "granted name, public address", .target = "new.example.com", .resolved = "93.184.216.34",
             .outcome = allow, .why = reason::granted, .grant = 1},
            {.name = "granted name resolving to the metadata address", .target = "metadata.example.com",
             .resolved = "169.254.169.254", .why = reason::address_guard},
            {.name = "granted name resolving to a private address", .target = "internal.example.com",
             .resolved = "10.0.0.1", .why = reason::address_guard},
            {.name = "granted name, private address opened by a CIDR rule", .source = ops,
             .target = "internal.example.com", .resolved = "10.0.0.1", .outcome = allow, .why = reason::granted,
             .grant = 10, .rule = "inside#0"},
            {.name = "granted name resolving to a denied address", .target = "new.example.com",
             .resolved = "8.8.4.4", .why = reason::explicit_deny, .rule = "deny#1"},
        });
}

TEST(grants, without_a_grant_set_nothing_changes)
{
    auto p = grant_policy();
    ASSERT_TRUE(p);
    auto client = p->find_client("app");
    for (const auto* grants : {static_cast<const grant_set*>(nullptr), grant_set::empty().get()}) {
        auto d = p->decide_name(client, target("new.example.com"), 443, t0, grants);
        EXPECT_EQ(to_string(d.why), "no_matching_rule");
        EXPECT_EQ(to_string(d.outcome), "deny");
        EXPECT_FALSE(d.grant.has_value());
    }
    EXPECT_TRUE(grant_set::empty()->is_empty());
    EXPECT_EQ(grant_set::empty().get(), grant_set::empty().get());
}

TEST(grants, tls_phase_still_checks_the_sni)
{
    for (auto default_tls : {tls_mode::allow, tls_mode::require}) {
        SCOPED_TRACE(std::string(to_string(default_tls)));
        auto p = grant_policy(default_tls);
        ASSERT_TRUE(p);
        auto g = standard_grants();
        auto client = p->find_client("app");
        auto tls = [&](std::string_view host_text, tunnel_start start, const grant_set* grants) {
            return p->decide_tls(client, target(host_text), 443, start, t0, grants);
        };
        auto granted = p->decide_name(client, target("new.example.com"), 443, t0, g.get());
        EXPECT_EQ(to_string(p->tls_for(granted)), to_string(default_tls)) << "a grant takes the default";

        struct tls_case {
            std::string name;
            std::string host;
            tunnel_start start;
            const grant_set* grants;
            reason why;
            std::uint64_t grant;
        };
        const bool require = default_tls == tls_mode::require;
        std::vector<tls_case> cases = {
            {"SNI agrees", "new.example.com", tunnel_start{true, "new.example.com"}, g.get(), reason::granted, 1},
            {"SNI disagrees", "new.example.com", tunnel_start{true, "other.example.com"}, g.get(),
             reason::sni_mismatch, 0},
            {"SNI of a granted name on an ungranted host", "nothing.example.com", tunnel_start{true, "new.example.com"},
             g.get(), reason::no_matching_rule, 0},
            {"no TLS", "new.example.com", tunnel_start{false, std::nullopt}, g.get(),
             require ? reason::not_tls : reason::granted, require ? 0u : 1u},
            {"no SNI", "new.example.com", tunnel_start{true, std::nullopt}, g.get(),
             require ? reason::sni_missing : reason::granted, require ? 0u : 1u},
            {"IP literal allowed by a rule, SNI granted", "93.184.216.34", tunnel_start{true, "sni.example.com"},
             g.get(), reason::allowed, 0},
            {"IP literal allowed by a rule, SNI not granted without grants", "93.184.216.34",
             tunnel_start{true, "sni.example.com"}, nullptr, reason::sni_mismatch, 0},
            {"IP literal granted, SNI granted", "1.1.1.1", tunnel_start{true, "new.example.com"}, g.get(),
             reason::granted, 6},
            {"IP literal granted, SNI not allowed", "1.1.1.1", tunnel_start{true, "nothing.example.com"}, g.get(),
             reason::sni_mismatch, 0},
        };
        for (const auto& c : cases) {
            SCOPED_TRACE(c.name);
            auto d = tls(c.host, c.start, c.grants);
            EXPECT_EQ(to_string(d.why), to_string(c.why));
            EXPECT_EQ(to_string(d.outcome), d.allowed() ? "allow" : "deny");
            EXPECT_EQ(d.grant ? d.grant->id : 0u, c.grant);
        }
    }
}

TEST(grants, a_granted_tunnel_checks_the_sni_even_under_tls_off)
{
    // With tls: off no rule checks the SNI; a grant still does, or an approved address would front for any name.
    auto p = grant_policy(tls_mode::off);
    ASSERT_TRUE(p);
    auto g = standard_grants();
    auto client = p->find_client("app");
    auto granted = p->decide_name(client, target("new.example.com"), 443, t0, g.get());
    ASSERT_EQ(to_string(granted.why), "granted");
    EXPECT_EQ(to_string(p->tls_for(granted)), "allow");
    auto fronted = p->decide_tls(client, target("new.example.com"), 443, tunnel_start{true, "other.example.com"}, t0,
                                 g.get());
    EXPECT_EQ(to_string(fronted.why), "sni_mismatch");
    auto agrees = p->decide_tls(client, target("new.example.com"), 443, tunnel_start{true, "new.example.com"}, t0,
                                g.get());
    EXPECT_EQ(to_string(agrees.why), "granted");
    auto plain = p->decide_tls(client, target("new.example.com"), 443, tunnel_start{false, std::nullopt}, t0, g.get());
    EXPECT_EQ(to_string(plain.why), "granted") << "not TLS: allow lets it through, as for a rule with tls: allow";
}

established connection(std::string source, std::string_view host_text, std::string connected,
                       std::optional<tunnel_start> tunnel = std::nullopt)
{
    established e;
    e.who.source = addr(source);
    e.target = target(host_text);
    e.port = 443;
    e.connected = addr(connected);
    e.tunnel = std::move(tunnel);
    return e;
}

std::string show(const std::optional<time_point>& t)
{
    return t ? "t0+" + std::to_string((*t - t0).count()) + "s" : std::string("nullopt");
}

TEST(grants, established_connections_and_their_expiry)
{
    auto p = grant_policy();
    ASSERT_TRUE(p);
    auto g = standard_grants();
    struct established_case {
        std::string name;
        established e;
        time_point now;
        reason why;
        std::uint64_t grant;
        std::optional<time_point> expires;
    };
    std::vector<established_case> cases = {
        {"granted name", connection(app, "new.example.com", "93.184.216.34"), t0, reason::granted, 1, at(3600)},
        {"granted name, at the grant's expiry", connection(app, "soon.example.com", "93.184.216.34"), at(60),
         reason::no_matching_rule, 0, std::nullopt},
        {"granted name, before its expiry", connection(app, "soon.example.com", "93.184.216.34"), at(30),
         reason::granted, 13, at(60)},
        {"grant expires before the CIDR rule opening the address", connection(ops, "internal.example.com", "10.0.0.1"),
         t0, reason::granted, 10, at(1000)},
        {"granted name resolving to a guarded address", connection(app, "internal.example.com", "10.0.0.1"), t0,
         reason::address_guard, 0, std::nullopt},
        {"rule allows the literal, a grant its SNI",
         connection(app, "93.184.216.34", "93.184.216.34", tunnel_start{true, "sni.example.com"}), t0, reason::allowed,
         0, at(3600)},
        // expiry_of re-checks the SNI only for IP literals: for a name, the clock changes nothing about the SNI.
        {"granted tunnel, SNI disagrees",
         connection(app, "new.example.com", "93.184.216.34", tunnel_start{true, "x.example"}), t0,
         reason::sni_mismatch, 0, at(3600)},
        {"base rule and no grant", connection(app, "expiring.example.com", "93.184.216.34"), at(50), reason::allowed, 0,
         at(100)},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        auto d = decide_established(*p, c.e, c.now, g.get());
        EXPECT_EQ(to_string(d.why), to_string(c.why));
        EXPECT_EQ(d.grant ? d.grant->id : 0u, c.grant);
        EXPECT_EQ(show(expiry_of(*p, c.e, c.now, g.get())), show(c.expires));
    }
    // The ops tunnel with a rule expiring before the grant: the rule's expiry.
    auto late = grant_set::make({for_client(10, "ops", "internal.example.com", 443, at(5000))});
    auto e = connection(ops, "internal.example.com", "10.0.0.1");
    EXPECT_EQ(show(expiry_of(*p, e, t0, late.get())), show(at(3000)));
    // Without grants, the same connections are not allowed.
    EXPECT_EQ(to_string(decide_established(*p, connection(app, "new.example.com", "93.184.216.34"), t0).why),
              "no_matching_rule");
}

TEST(grants, vetting_resolved_addresses)
{
    auto p = grant_policy();
    ASSERT_TRUE(p);
    auto g = standard_grants();
    std::vector<address> resolved{addr("169.254.169.254"), addr("93.184.216.34"), addr("8.8.4.4")};
    auto v = vet_addresses(*p, p->find_client("app"), target("metadata.example.com"), 443, resolved, t0, g.get());
    ASSERT_EQ(v.decisions.size(), 3u);
    EXPECT_EQ(to_string(v.decisions[0].why), "address_guard");
    EXPECT_EQ(to_string(v.decisions[1].why), "granted");
    EXPECT_EQ(to_string(v.decisions[2].why), "explicit_deny");
    ASSERT_EQ(v.vetted.size(), 1u);
    EXPECT_EQ(v.vetted[0].to_string(), "93.184.216.34");
    EXPECT_EQ(v.first_allowed, std::optional<std::size_t>(1));
    EXPECT_EQ(v.first_refused, std::optional<std::size_t>(0));
}

TEST(grant_set, duplicate_ids_last_wins)
{
    auto p = grant_policy();
    ASSERT_TRUE(p);
    auto g = grant_set::make({
        for_client(30, "app", "dup.example.com"),
        for_client(31, "app", "keep.example.com"),
        for_client(30, "app", "dup2.example.com", 443, at(700)),
    });
    EXPECT_EQ(g->size(), 2u);
    ASSERT_NE(g->find(30), nullptr);
    EXPECT_EQ(g->find(30)->destination.name, "dup2.example.com");
    EXPECT_EQ(g->find(30)->expires, at(700));
    EXPECT_EQ(g->find(32), nullptr);
    auto client = p->find_client("app");
    EXPECT_EQ(to_string(p->decide_name(client, target("dup.example.com"), 443, t0, g.get()).why), "no_matching_rule");
    auto d = p->decide_name(client, target("dup2.example.com"), 443, t0, g.get());
    EXPECT_EQ(to_string(d.why), "granted");
    ASSERT_TRUE(d.grant.has_value());
    EXPECT_EQ(*d.grant, (grant_ref{30, at(700)}));
    EXPECT_EQ(to_string(p->decide_name(client, target("keep.example.com"), 443, t0, g.get()).why), "granted");
}

TEST(grant_set, ten_thousand_grants)
{
    auto p = grant_policy();
    ASSERT_TRUE(p);
    std::vector<grant> many;
    for (std::uint64_t i = 0; i < 10'000; ++i) {
        std::string host = "h" + std::to_string(i) + ".example.com";
        if (i % 10 == 0) {
            many.push_back(for_group(100 + i, "g" + std::to_string(i % 97), host));
        } else {
            many.push_back(for_client(100 + i, "c" + std::to_string(i % 500), host));
        }
    }
    many.push_back(for_client(50'000, "app", "needle.example.com"));
    many.push_back(for_group(50'001, "team", "*.haystack.example.com"));
    auto g = grant_set::make(std::move(many));
    EXPECT_EQ(g->size(), 10'002u);
    auto client = p->find_client("app");
    auto needle = p->decide_name(client, target("needle.example.com"), 443, t0, g.get());
    EXPECT_EQ(to_string(needle.why), "granted");
    EXPECT_EQ(needle.grant ? needle.grant->id : 0u, 50'000u);
    auto hay = p->decide_name(client, target("x.haystack.example.com"), 443, t0, g.get());
    EXPECT_EQ(to_string(hay.why), "granted");
    EXPECT_EQ(hay.grant ? hay.grant->id : 0u, 50'001u);
    for (const char* miss : {"h5.example.com", "h10.example.com", "needle.example.com.evil.net"}) {
        SCOPED_TRACE(miss);
        auto d = p->decide_name(client, target(miss), 443, t0, g.get());
        EXPECT_EQ(to_string(d.why), "no_matching_rule");
        EXPECT_FALSE(d.grant.has_value());
    }
    ASSERT_NE(g->find(100 + 9'999), nullptr);
    EXPECT_EQ(g->find(100 + 9'999)->destination.name, "h9999.example.com");
}

TEST(grant_set, address_grants_only_match_addresses)
{
    auto p = grant_policy();
    ASSERT_TRUE(p);
    // A pattern built on an address's text matches nothing: names never look like addresses.
    auto g = grant_set::make({make_grant(1, grant_scope::client, "app", "*.example.com", 443),
                              grant{2, grant_scope::client, "app", {pattern_kind::domain, "1.1.1.1"}, 443, at(60)}});
    auto client = *p->find_client("app");
    EXPECT_EQ(g->match(*p, client, addr("1.1.1.1"), 443, t0), nullptr);
    EXPECT_EQ(g->match(*p, client, target("1.1.1.1"), 443, t0), nullptr);
    ASSERT_NE(g->match(*p, client, target("a.example.com"), 443, t0), nullptr);
    EXPECT_EQ(g->match(*p, client + 100, target("a.example.com"), 443, t0), nullptr) << "unknown client id";
}

// --- Access-request settings of the policy --------------------------------------------------------------------

TEST(approval_settings, groups_requests_and_required_approvals)
{
    spec_builder b;
    b.group("web", {rule{}.domain("api.example.com").port(443)})
        .group("team", {rule{}.domain("team.example.com").port(443)})
        .client("app", {"192.0.2.0/24"}, {"web", "team", "web"})
        .client("quiet", {"198.51.100.0/24"}, {"web"})
        .client("strict", {"203.0.113.0/24"}, {"team"});
    b.spec().clients[1].requests = false;
    b.spec().clients[2].required_approvals = 2;
    auto p = b.compile_ok();
    ASSERT_TRUE(p);
    auto app_id = *p->find_client("app");
    auto names = p->group_names(app_id);
    ASSERT_EQ(names.size(), 2u);
    EXPECT_EQ(names[0], "web");
    EXPECT_EQ(names[1], "team");
    EXPECT_TRUE(p->has_group("team"));
    EXPECT_FALSE(p->has_group("deny"));
    EXPECT_FALSE(p->has_group("Team"));
    EXPECT_TRUE(p->requests_enabled(app_id));
    EXPECT_FALSE(p->requests_enabled(*p->find_client("quiet")));
    EXPECT_TRUE(p->requests_enabled(*p->find_client("strict")));
    EXPECT_EQ(p->required_approvals(app_id), 1u);
    EXPECT_EQ(p->required_approvals(*p->find_client("strict")), 2u);
    EXPECT_TRUE(p->group_names(app_id + 100).empty());
    EXPECT_FALSE(p->requests_enabled(app_id + 100));

    // Off at the top: every client, unless it turns requests back on.
    b.spec().requests = false;
    b.spec().clients[0].requests = true;
    auto off = b.compile_ok();
    ASSERT_TRUE(off);
    EXPECT_TRUE(off->requests_enabled(*off->find_client("app")));
    EXPECT_FALSE(off->requests_enabled(*off->find_client("quiet")));
    EXPECT_FALSE(off->requests_enabled(*off->find_client("strict")));
}

TEST(approval_settings, required_approvals_is_one_or_two)
{
    for (unsigned required : {0u, 3u}) {
        spec_builder b;
        b.group("web", {rule{}.domain("api.example.com").port(443)})
            .client("app", {"192.0.2.0/24"}, {"web"}, {.line = 4});
        b.spec().clients[0].required_approvals = required;
        if (required == 3) {
            b.spec().clients[0].approvals_where = source_location{0, 9, 17};
        }
        auto result = b.compile();
        EXPECT_FALSE(result.snapshot);
        ASSERT_EQ(result.errors.size(), 1u);
        EXPECT_EQ(result.errors[0].where.line, required == 3 ? 9u : 4u);
        EXPECT_EQ(result.errors[0].message,
                  "client 'app' requires " + std::to_string(required) + " approvals: expected 1 or 2");
    }
}

}  // namespace
}  // namespace egressd::policy
