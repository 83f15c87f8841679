// The tunnel phase: decide_tls checks a CONNECT tunnel's first bytes (the facts the ClientHello parser
// extracted) against the CONNECT target under the tls mode of the rule that allowed it, or the policy's
// default. Every case asserts the verdict, the reason and the deciding rule.
//
// SNI comparison: decide_tls compares a name target's SNI with the target's name exactly, byte for byte.
// Both sides arrive normalized (lower case, no trailing dot): the target through host::parse, the SNI through
// the ClientHello parser (proxy/tls). The README's "case-insensitive, one trailing dot ignored" is the
// parser's job; the sni_exact_* cases below pin that decide_tls itself does not repeat it.

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
constexpr auto deny = verdict::deny;
constexpr auto would_deny = verdict::would_deny;

// What the proxy may have seen at the start of a tunnel.
tunnel_start tls_sni(std::string sni) { return tunnel_start{true, std::move(sni)}; }
const tunnel_start tls_no_sni{true, std::nullopt};
const tunnel_start plain_bytes{false, std::nullopt};

struct expected_rule {
    std::string group;  // "deny" for the deny list
    std::uint32_t index = 0;
};

struct tls_case {
    // Every member has an initializer so that designated initializers may leave any of them out.
    std::string name{};
    std::string source = "10.1.2.3";  // client "app" in every fixture; empty: no source known
    std::string target{};
    std::uint16_t port = 443;
    tunnel_start start{};
    time_point now = t0;
    verdict outcome = verdict::deny;
    reason why = reason::sni_mismatch;
    std::optional<expected_rule> rule{};  // nullopt: the decision must name no rule
};

std::string describe_rule(const policy& p, const std::optional<rule_ref>& ref)
{
    if (!ref) {
        return "(none)";
    }
    auto v = p.describe(*ref);
    return std::string(v.group) + "#" + std::to_string(v.index);
}

void expect_tls_decision(const policy& p, const tls_case& c)
{
    SCOPED_TRACE(c.name);
    client_facts facts;
    if (!c.source.empty()) {
        facts.source = addr(c.source);
    }
    auto client = p.match_client(facts);
    decision d = p.decide_tls(client, target(c.target), c.port, c.start, c.now);
    EXPECT_EQ(to_string(d.outcome), to_string(c.outcome));
    EXPECT_EQ(to_string(d.why), to_string(c.why));
    if (c.rule) {
        EXPECT_EQ(describe_rule(p, d.rule), c.rule->group + "#" + std::to_string(c.rule->index));
    } else {
        EXPECT_FALSE(d.rule.has_value()) << "names rule " << describe_rule(p, d.rule);
    }
    EXPECT_FALSE(d.guard.has_value());
    EXPECT_EQ(d.allows_traffic(), c.outcome != verdict::deny);
    if (c.why == reason::unknown_client) {
        EXPECT_FALSE(d.client.has_value());
    } else {
        EXPECT_EQ(d.client, client);
    }
}

void expect_tls_decisions(const std::shared_ptr<const policy>& p, const std::vector<tls_case>& cases)
{
    ASSERT_TRUE(p);
    for (const auto& c : cases) {
        expect_tls_decision(*p, c);
    }
}

// --- Modes on name targets ------------------------------------------------------------------------------------

// Group "web": one rule per mode, and one without a mode that takes the policy's default.
//   web#0 require.example.com  tls: require
//   web#1 allow.example.com    tls: allow
//   web#2 off.example.com      tls: off
//   web#3 plain.example.com    (the policy's default_tls)
std::shared_ptr<const policy> mode_policy(std::optional<tls_mode> default_tls)
{
    spec_builder b;
    if (default_tls) {
        b.default_tls(*default_tls);
    }
    return b
        .group("web",
               {
                   rule{}.domain("require.example.com").port(443).tls(tls_mode::require),
                   rule{}.domain("allow.example.com").port(443).tls(tls_mode::allow),
                   rule{}.domain("off.example.com").port(443).tls(tls_mode::off),
                   rule{}.domain("plain.example.com").port(443),
               })
        .client("app", {"10.0.0.0/8"}, {"web"})
        .compile_ok();
}

TEST(policy_tls_decision, rule_modes)
{
    // The policy's default is require, so the allow and off rules show a rule's mode overriding it.
    expect_tls_decisions(
        mode_policy(tls_mode::require),
        {
            {.name = "require_matching_sni", .target = "require.example.com", .start = tls_sni("require.example.com"),
             .outcome = allow, .why = reason::allowed, .rule = {{"web", 0}}},
            {.name = "require_other_sni", .target = "require.example.com", .start = tls_sni("evil.example.net"),
             .outcome = deny, .why = reason::sni_mismatch, .rule = {{"web", 0}}},
            {.name = "require_no_sni", .target = "require.example.com", .start = tls_no_sni, .outcome = deny,
             .why = reason::sni_missing, .rule = {{"web", 0}}},
            {.name = "require_not_tls", .target = "require.example.com", .start = plain_bytes, .outcome = deny,
             .why = reason::not_tls, .rule = {{"web", 0}}},

            {.name = "allow_matching_sni", .target = "allow.example.com", .start = tls_sni("allow.example.com"),
             .outcome = allow, .why = reason::allowed, .rule = {{"web", 1}}},
            {.name = "allow_other_sni", .target = "allow.example.com", .start = tls_sni("evil.example.net"),
             .outcome = deny, .why = reason::sni_mismatch, .rule = {{"web", 1}}},
            {.name = "allow_no_sni", .target = "allow.example.com", .start = tls_no_sni, .outcome = allow,
             .why = reason::allowed, .rule = {{"web", 1}}},
            {.name = "allow_not_tls", .target = "allow.example.com", .start = plain_bytes, .outcome = allow,
             .why = reason::allowed, .rule = {{"web", 1}}},

            {.name = "off_matching_sni", .target = "off.example.com", .start = tls_sni("off.example.com"),
             .outcome = allow, .why = reason::allowed, .rule = {{"web", 2}}},
            {.name = "off_other_sni", .target = "off.example.com", .start = tls_sni("evil.example.net"),
             .outcome = allow, .why = reason::allowed, .rule = {{"web", 2}}},
            {.name = "off_no_sni", .target = "off.example.com", .start = tls_no_sni, .outcome = allow,
             .why = reason::allowed, .rule = {{"web", 2}}},
            {.name = "off_not_tls", .target = "off.example.com", .start = plain_bytes, .outcome = allow,
             .why = reason::allowed, .rule = {{"web", 2}}},
            // Inconsistent facts (not TLS, yet an SNI) change nothing under off.
            {.name = "off_not_tls_with_sni", .target = "off.example.com", .start = tunnel_start{false, "x.example"},
             .outcome = allow, .why = reason::allowed, .rule = {{"web", 2}}},
        });
}

TEST(policy_tls_decision, rule_require_overrides_a_weaker_default)
{
    for (auto d : {tls_mode::allow, tls_mode::off}) {
        SCOPED_TRACE(std::string("default ") + std::string(to_string(d)));
        expect_tls_decisions(
            mode_policy(d),
            {
                {.name = "require_matching_sni", .target = "require.example.com",
                 .start = tls_sni("require.example.com"), .outcome = allow, .why = reason::allowed,
                 .rule = {{"web", 0}}},
                {.name = "require_other_sni", .target = "require.example.com", .start = tls_sni("evil.example.net"),
                 .outcome = deny, .why = reason::sni_mismatch, .rule = {{"web", 0}}},
                {.name = "require_no_sni", .target = "require.example.com", .start = tls_no_sni, .outcome = deny,
                 .why = reason::sni_missing, .rule = {{"web", 0}}},
                {.name = "require_not_tls", .target = "require.example.com", .start = plain_bytes,
                 .outcome = deny, .why = reason::not_tls, .rule = {{"web", 0}}},
                {.name = "allow_no_sni", .target = "allow.example.com", .start = tls_no_sni, .outcome = allow,
                 .why = reason::allowed, .rule = {{"web", 1}}},
                {.name = "allow_other_sni", .target = "allow.example.com", .start = tls_sni("evil.example.net"),
                 .outcome = deny, .why = reason::sni_mismatch, .rule = {{"web", 1}}},
                {.name = "off_other_sni", .target = "off.example.com", .start = tls_sni("evil.example.net"),
                 .outcome = allow, .why = reason::allowed, .rule = {{"web", 2}}},
            });
    }
}

TEST(policy_tls_decision, policy_default_require)
{
    expect_tls_decisions(
        mode_policy(tls_mode::require),
        {
            {.name = "matching_sni", .target = "plain.example.com", .start = tls_sni("plain.example.com"),
             .outcome = allow, .why = reason::allowed, .rule = {{"web", 3}}},
            {.name = "other_sni", .target = "plain.example.com", .start = tls_sni("require.example.com"),
             .outcome = deny, .why = reason::sni_mismatch, .rule = {{"web", 3}}},
            {.name = "no_sni", .target = "plain.example.com", .start = tls_no_sni, .outcome = deny,
             .why = reason::sni_missing, .rule = {{"web", 3}}},
            {.name = "not_tls", .target = "plain.example.com", .start = plain_bytes, .outcome = deny,
             .why = reason::not_tls, .rule = {{"web", 3}}},
        });
}

TEST(policy_tls_decision, policy_default_allow)
{
    expect_tls_decisions(
        mode_policy(tls_mode::allow),
        {
            {.name = "matching_sni", .target = "plain.example.com", .start = tls_sni("plain.example.com"),
             .outcome = allow, .why = reason::allowed, .rule = {{"web", 3}}},
            // Another name the client may reach is still a mismatch: the SNI must be the CONNECT host.
            {.name = "other_allowed_sni", .target = "plain.example.com", .start = tls_sni("allow.example.com"),
             .outcome = deny, .why = reason::sni_mismatch, .rule = {{"web", 3}}},
            {.name = "no_sni", .target = "plain.example.com", .start = tls_no_sni, .outcome = allow,
             .why = reason::allowed, .rule = {{"web", 3}}},
            {.name = "not_tls", .target = "plain.example.com", .start = plain_bytes, .outcome = allow,
             .why = reason::allowed, .rule = {{"web", 3}}},
        });
}

TEST(policy_tls_decision, policy_default_off)
{
    expect_tls_decisions(
        mode_policy(tls_mode::off),
        {
            {.name = "matching_sni", .target = "plain.example.com", .start = tls_sni("plain.example.com"),
             .outcome = allow, .why = reason::allowed, .rule = {{"web", 3}}},
            {.name = "other_sni", .target = "plain.example.com", .start = tls_sni("evil.example.net"),
             .outcome = allow, .why = reason::allowed, .rule = {{"web", 3}}},
            {.name = "no_sni", .target = "plain.example.com", .start = tls_no_sni, .outcome = allow,
             .why = reason::allowed, .rule = {{"web", 3}}},
            {.name = "not_tls", .target = "plain.example.com", .start = plain_bytes, .outcome = allow,
             .why = reason::allowed, .rule = {{"web", 3}}},
            // A rule's allow is stricter than the default off.
            {.name = "rule_allow_other_sni", .target = "allow.example.com", .start = tls_sni("evil.example.net"),
             .outcome = deny, .why = reason::sni_mismatch, .rule = {{"web", 1}}},
        });
}

TEST(policy_tls_decision, unset_default_is_allow)
{
    auto p = mode_policy(std::nullopt);
    ASSERT_TRUE(p);
    EXPECT_EQ(to_string(p->default_tls()), "allow");
    expect_tls_decisions(
        p, {
               {.name = "no_sni", .target = "plain.example.com", .start = tls_no_sni, .outcome = allow,
                .why = reason::allowed, .rule = {{"web", 3}}},
               {.name = "not_tls", .target = "plain.example.com", .start = plain_bytes, .outcome = allow,
                .why = reason::allowed, .rule = {{"web", 3}}},
               {.name = "other_sni", .target = "plain.example.com", .start = tls_sni("evil.example.net"),
                .outcome = deny, .why = reason::sni_mismatch, .rule = {{"web", 3}}},
           });
}

TEST(policy_tls_decision, sni_is_compared_exactly_after_normalization)
{
    // host::parse normalizes the CONNECT target; the SNI must already be normalized by the ClientHello parser.
    expect_tls_decisions(
        mode_policy(tls_mode::require),
        {
            {.name = "target_written_loosely", .target = "Require.Example.COM.",
             .start = tls_sni("require.example.com"), .outcome = allow, .why = reason::allowed,
             .rule = {{"web", 0}}},
            {.name = "sni_exact_upper_case_is_not_folded", .target = "require.example.com",
             .start = tls_sni("REQUIRE.example.com"), .outcome = deny, .why = reason::sni_mismatch,
             .rule = {{"web", 0}}},
            {.name = "sni_exact_trailing_dot_is_not_dropped", .target = "require.example.com",
             .start = tls_sni("require.example.com."), .outcome = deny, .why = reason::sni_mismatch,
             .rule = {{"web", 0}}},
            {.name = "sni_empty", .target = "require.example.com", .start = tls_sni(""), .outcome = deny,
             .why = reason::sni_mismatch, .rule = {{"web", 0}}},
            {.name = "sni_subdomain_of_target", .target = "require.example.com",
             .start = tls_sni("x.require.example.com"), .outcome = deny, .why = reason::sni_mismatch,
             .rule = {{"web", 0}}},
            {.name = "sni_parent_of_target", .target = "require.example.com", .start = tls_sni("example.com"),
             .outcome = deny, .why = reason::sni_mismatch, .rule = {{"web", 0}}},
        });
}

TEST(policy_tls_decision, mode_comes_from_the_rule_that_allowed)
{
    // The most specific rule (own name before parents) and the rule for this port decide the mode.
    auto p = spec_builder{}
                 .default_tls(tls_mode::allow)
                 .group("web",
                        {
                            rule{}.domain("*.example.org").port(443).tls(tls_mode::require),
                            rule{}.domain("legacy.example.org").port(443).tls(tls_mode::off),
                            rule{}.domain("ssh.example.com").port(443).tls(tls_mode::require),
                            rule{}.domain("ssh.example.com").port(22).tls(tls_mode::off),
                            rule{}.domain("*.wild.example.com").port(443).tls(tls_mode::require),
                        })
                 .client("app", {"10.0.0.0/8"}, {"web"})
                 .compile_ok();
    expect_tls_decisions(
        p, {
               {.name = "wildcard_rule_requires", .target = "www.example.org", .start = plain_bytes,
                .outcome = deny, .why = reason::not_tls, .rule = {{"web", 0}}},
               {.name = "own_name_rule_is_off", .target = "legacy.example.org", .start = plain_bytes,
                .outcome = allow, .why = reason::allowed, .rule = {{"web", 1}}},
               {.name = "port_443_rule_requires", .target = "ssh.example.com", .port = 443, .start = plain_bytes,
                .outcome = deny, .why = reason::not_tls, .rule = {{"web", 2}}},
               {.name = "port_22_rule_is_off", .target = "ssh.example.com", .port = 22, .start = plain_bytes,
                .outcome = allow, .why = reason::allowed, .rule = {{"web", 3}}},
               // A wildcard allows both names, but a tunnel to one must not carry TLS for the other.
               {.name = "wildcard_sibling_sni", .target = "a.wild.example.com", .start = tls_sni("b.wild.example.com"),
                .outcome = deny, .why = reason::sni_mismatch, .rule = {{"web", 4}}},
               {.name = "wildcard_own_sni", .target = "a.wild.example.com", .start = tls_sni("a.wild.example.com"),
                .outcome = allow, .why = reason::allowed, .rule = {{"web", 4}}},
           });
}

// --- IP-literal CONNECT ---------------------------------------------------------------------------------------

// 93.184.216.34 and 2606:2800:220:1::/64 are public: no address guard gets in the way.
//   ip#0     93.184.216.34/32, 2606:2800:220:1::/64 on 443 and 8443, tls: require
//   ip#1     93.184.216.35/32 on 443, tls: allow
//   names#0  www.example.com on 443          names#1  only8443.example.com on 8443
//   names#2  *.wild.example.com on 443       names#3  denied.example.com on 443 (also on the deny list)
//   names#4  expired.example.com on 443, expired at t0
//   others#0 other.example.com on 443        (only client "other")
std::shared_ptr<const policy> literal_policy()
{
    return spec_builder{}
        .group("ip",
               {
                   rule{}.cidr("93.184.216.34/32").cidr("2606:2800:220:1::/64").port(443).port(8443).tls(
                       tls_mode::require),
                   rule{}.cidr("93.184.216.35/32").port(443).tls(tls_mode::allow),
               })
        .group("names",
               {
                   rule{}.domain("www.example.com").port(443),
                   rule{}.domain("only8443.example.com").port(8443),
                   rule{}.domain("*.wild.example.com").port(443),
                   rule{}.domain("denied.example.com").port(443),
                   rule{}.domain("expired.example.com").port(443).expires(t0),
               })
        .group("others", {rule{}.domain("other.example.com").port(443)})
        .deny(rule{}.domain("denied.example.com"))
        .client("app", {"10.0.0.0/8"}, {"ip", "names"})
        .client("other", {"192.168.0.0/16"}, {"ip", "others"})
        .client("auditor", {"172.16.0.0/12"}, {"ip", "names"}, {.mode_override = mode::report})
        .compile_ok();
}

TEST(policy_tls_decision, ip_literal_sni_must_be_an_allowed_name)
{
    expect_tls_decisions(
        literal_policy(),
        {
            {.name = "sni_allowed_by_domain_rule", .target = "93.184.216.34", .start = tls_sni("www.example.com"),
             .outcome = allow, .why = reason::allowed, .rule = {{"ip", 0}}},
            {.name = "sni_allowed_by_wildcard", .target = "93.184.216.34", .start = tls_sni("a.b.wild.example.com"),
             .outcome = allow, .why = reason::allowed, .rule = {{"ip", 0}}},
            {.name = "sni_allowed_on_this_port", .target = "93.184.216.34", .port = 8443,
             .start = tls_sni("only8443.example.com"), .outcome = allow, .why = reason::allowed,
             .rule = {{"ip", 0}}},
            {.name = "sni_allowed_only_on_another_port", .target = "93.184.216.34", .port = 443,
             .start = tls_sni("only8443.example.com"), .outcome = deny, .why = reason::sni_mismatch,
             .rule = {{"ip", 0}}},
            {.name = "sni_allowed_only_for_another_client", .target = "93.184.216.34",
             .start = tls_sni("other.example.com"), .outcome = deny, .why = reason::sni_mismatch,
             .rule = {{"ip", 0}}},
            {.name = "sni_allowed_for_that_client", .source = "192.168.1.1", .target = "93.184.216.34",
             .start = tls_sni("other.example.com"), .outcome = allow, .why = reason::allowed, .rule = {{"ip", 0}}},
            {.name = "sni_of_first_client_for_second", .source = "192.168.1.1", .target = "93.184.216.34",
             .start = tls_sni("www.example.com"), .outcome = deny, .why = reason::sni_mismatch,
             .rule = {{"ip", 0}}},
            {.name = "sni_no_rule", .target = "93.184.216.34", .start = tls_sni("nowhere.example.com"),
             .outcome = deny, .why = reason::sni_mismatch, .rule = {{"ip", 0}}},
            {.name = "sni_on_deny_list", .target = "93.184.216.34", .start = tls_sni("denied.example.com"),
             .outcome = deny, .why = reason::sni_mismatch, .rule = {{"ip", 0}}},
            {.name = "sni_rule_expired", .target = "93.184.216.34", .start = tls_sni("expired.example.com"),
             .outcome = deny, .why = reason::sni_mismatch, .rule = {{"ip", 0}}},
            // An IP literal in the SNI is never a name: not even the CONNECT target itself.
            {.name = "sni_is_the_target_literal", .target = "93.184.216.34", .start = tls_sni("93.184.216.34"),
             .outcome = deny, .why = reason::sni_mismatch, .rule = {{"ip", 0}}},
            {.name = "sni_is_a_v6_literal", .target = "93.184.216.34", .start = tls_sni("2606:2800:220:1::1"),
             .outcome = deny, .why = reason::sni_mismatch, .rule = {{"ip", 0}}},
            {.name = "sni_unparseable", .target = "93.184.216.34", .start = tls_sni("bad..example.com"),
             .outcome = deny, .why = reason::sni_mismatch, .rule = {{"ip", 0}}},
            {.name = "sni_numeric_name", .target = "93.184.216.34", .start = tls_sni("127.1"), .outcome = deny,
             .why = reason::sni_mismatch, .rule = {{"ip", 0}}},
            {.name = "require_no_sni", .target = "93.184.216.34", .start = tls_no_sni, .outcome = deny,
             .why = reason::sni_missing, .rule = {{"ip", 0}}},
            {.name = "require_not_tls", .target = "93.184.216.34", .start = plain_bytes, .outcome = deny,
             .why = reason::not_tls, .rule = {{"ip", 0}}},
            {.name = "v6_literal_sni_allowed", .target = "2606:2800:220:1::1", .start = tls_sni("www.example.com"),
             .outcome = allow, .why = reason::allowed, .rule = {{"ip", 0}}},
            {.name = "v6_literal_sni_not_allowed", .target = "[2606:2800:220:1::1]",
             .start = tls_sni("other.example.com"), .outcome = deny, .why = reason::sni_mismatch,
             .rule = {{"ip", 0}}},
            // Rule ip#1 has tls: allow: no SNI and non-TLS bytes pass, a TLS SNI must still be an allowed name.
            {.name = "allow_mode_no_sni", .target = "93.184.216.35", .start = tls_no_sni, .outcome = allow,
             .why = reason::allowed, .rule = {{"ip", 1}}},
            {.name = "allow_mode_not_tls", .target = "93.184.216.35", .start = plain_bytes, .outcome = allow,
             .why = reason::allowed, .rule = {{"ip", 1}}},
            {.name = "allow_mode_allowed_sni", .target = "93.184.216.35", .start = tls_sni("www.example.com"),
             .outcome = allow, .why = reason::allowed, .rule = {{"ip", 1}}},
            {.name = "allow_mode_other_sni", .target = "93.184.216.35", .start = tls_sni("other.example.com"),
             .outcome = deny, .why = reason::sni_mismatch, .rule = {{"ip", 1}}},
            // Report mode: the SNI check is logged as a would-deny.
            {.name = "report_sni_not_allowed", .source = "172.16.0.9", .target = "93.184.216.34",
             .start = tls_sni("other.example.com"), .outcome = would_deny, .why = reason::sni_mismatch,
             .rule = {{"ip", 0}}},
            {.name = "report_sni_allowed", .source = "172.16.0.9", .target = "93.184.216.34",
             .start = tls_sni("www.example.com"), .outcome = allow, .why = reason::allowed, .rule = {{"ip", 0}}},
        });
}

// --- The name phase, repeated -----------------------------------------------------------------------------------

TEST(policy_tls_decision, name_phase_denials_keep_their_reason)
{
    auto p = spec_builder{}
                 .default_tls(tls_mode::require)
                 .group("web",
                        {
                            rule{}.domain("api.example.com").port(443),
                            rule{}.domain("*.corp.example.com").port(443).tls(tls_mode::off),
                            rule{}.domain("old.example.com").port(443).expires(at(-1)),
                        })
                 .deny(rule{}.domain("vault.corp.example.com").at_line(40))
                 .deny(rule{}.cidr("93.184.216.0/24"))
                 .group("ip", {rule{}.cidr("93.184.216.34/32").port(443).tls(tls_mode::off)})
                 .client("app", {"10.0.0.0/8"}, {"web", "ip"})
                 .client("auditor", {"172.16.0.0/12"}, {"web"}, {.mode_override = mode::report})
                 .compile_ok();
    expect_tls_decisions(
        p,
        {
            // Whatever the bytes, a name the name phase refuses is refused for that reason, never a TLS one.
            {.name = "unknown_client", .source = "203.0.113.5", .target = "api.example.com",
             .start = tls_sni("api.example.com"), .outcome = deny, .why = reason::unknown_client},
            {.name = "unknown_client_not_tls", .source = "203.0.113.5", .target = "api.example.com",
             .start = plain_bytes, .outcome = deny, .why = reason::unknown_client},
            {.name = "no_source", .source = "", .target = "api.example.com", .start = tls_no_sni, .outcome = deny,
             .why = reason::unknown_client},
            {.name = "no_rule", .target = "www.example.com", .start = tls_sni("www.example.com"), .outcome = deny,
             .why = reason::no_matching_rule},
            {.name = "no_rule_not_tls", .target = "www.example.com", .start = plain_bytes, .outcome = deny,
             .why = reason::no_matching_rule},
            {.name = "port_not_allowed", .target = "api.example.com", .port = 8443,
             .start = tls_sni("api.example.com"), .outcome = deny, .why = reason::port_not_allowed,
             .rule = {{"web", 0}}},
            {.name = "expired", .target = "old.example.com", .start = tls_sni("old.example.com"), .outcome = deny,
             .why = reason::expired, .rule = {{"web", 2}}},
            // The deny list wins over an allow rule with tls: off and over a perfectly matching SNI.
            {.name = "deny_list_matching_sni", .target = "vault.corp.example.com",
             .start = tls_sni("vault.corp.example.com"), .outcome = deny, .why = reason::explicit_deny,
             .rule = {{"deny", 0}}},
            {.name = "deny_list_not_tls", .target = "vault.corp.example.com", .start = plain_bytes,
             .outcome = deny, .why = reason::explicit_deny, .rule = {{"deny", 0}}},
            {.name = "deny_list_cidr_on_literal", .target = "93.184.216.34", .start = tls_sni("api.example.com"),
             .outcome = deny, .why = reason::explicit_deny, .rule = {{"deny", 1}}},
            {.name = "sibling_of_denied_name", .target = "wiki.corp.example.com", .start = plain_bytes,
             .outcome = allow, .why = reason::allowed, .rule = {{"web", 1}}},
            // Report mode: TLS denials become would_deny with the same reason and rule.
            {.name = "report_matching_sni", .source = "172.16.0.9", .target = "api.example.com",
             .start = tls_sni("api.example.com"), .outcome = allow, .why = reason::allowed, .rule = {{"web", 0}}},
            {.name = "report_sni_mismatch", .source = "172.16.0.9", .target = "api.example.com",
             .start = tls_sni("evil.example.net"), .outcome = would_deny, .why = reason::sni_mismatch,
             .rule = {{"web", 0}}},
            {.name = "report_sni_missing", .source = "172.16.0.9", .target = "api.example.com",
             .start = tls_no_sni, .outcome = would_deny, .why = reason::sni_missing, .rule = {{"web", 0}}},
            {.name = "report_not_tls", .source = "172.16.0.9", .target = "api.example.com", .start = plain_bytes,
             .outcome = would_deny, .why = reason::not_tls, .rule = {{"web", 0}}},
            {.name = "report_no_rule", .source = "172.16.0.9", .target = "www.example.com",
             .start = tls_sni("www.example.com"), .outcome = would_deny, .why = reason::no_matching_rule},
            {.name = "report_deny_list", .source = "172.16.0.9", .target = "vault.corp.example.com",
             .start = tls_sni("vault.corp.example.com"), .outcome = would_deny, .why = reason::explicit_deny,
             .rule = {{"deny", 0}}},
        });
}

TEST(policy_tls_decision, client_from_another_snapshot_is_unknown)
{
    auto p = mode_policy(tls_mode::require);
    ASSERT_TRUE(p);
    auto d = p->decide_tls(client_id{57}, target("require.example.com"), 443, tls_sni("require.example.com"), t0);
    EXPECT_EQ(to_string(d.outcome), "deny");
    EXPECT_EQ(to_string(d.why), "unknown_client");
    EXPECT_FALSE(d.client.has_value());
    EXPECT_FALSE(d.rule.has_value());
}

// --- tls_for ----------------------------------------------------------------------------------------------------

struct tls_for_case {
    std::string name;
    std::optional<rule_ref> rule;
    tls_mode want;
};

TEST(policy_tls_for, rule_mode_or_policy_default)
{
    for (auto d : {tls_mode::require, tls_mode::allow, tls_mode::off}) {
        SCOPED_TRACE(std::string("default ") + std::string(to_string(d)));
        // The deny rule carries a tls value that the loader would never accept: tls_for must ignore it.
        auto b = spec_builder{};
        b.default_tls(d)
            .group("web",
                   {
                       rule{}.domain("plain.example.com").port(443),
                       rule{}.domain("require.example.com").port(443).tls(tls_mode::require),
                       rule{}.domain("allow.example.com").port(443).tls(tls_mode::allow),
                       rule{}.domain("off.example.com").port(443).tls(tls_mode::off),
                   })
            .deny(rule{}.domain("blocked.example.com").tls(d == tls_mode::off ? tls_mode::require : tls_mode::off))
            .client("app", {"10.0.0.0/8"}, {"web"});
        auto p = b.compile_ok();
        ASSERT_TRUE(p);
        EXPECT_EQ(to_string(p->default_tls()), to_string(d));
        const std::vector<tls_for_case> cases = {
            {"rule_without_tls", rule_ref{0, 0}, d},
            {"rule_require", rule_ref{0, 1}, tls_mode::require},
            {"rule_allow", rule_ref{0, 2}, tls_mode::allow},
            {"rule_off", rule_ref{0, 3}, tls_mode::off},
            {"deny_rule", rule_ref{deny_group, 0}, d},
            {"no_rule", std::nullopt, d},
        };
        for (const auto& c : cases) {
            SCOPED_TRACE(c.name);
            EXPECT_EQ(to_string(p->tls_for(c.rule)), to_string(c.want));
        }
        // The rule the name phase names is the one tls_for reads.
        auto app = p->find_client("app");
        auto named = p->decide_name(app, target("require.example.com"), 443, t0);
        ASSERT_EQ(to_string(named.why), "allowed");
        EXPECT_EQ(to_string(p->tls_for(named.rule)), "require");
        auto denied = p->decide_name(app, target("blocked.example.com"), 443, t0);
        ASSERT_EQ(to_string(denied.why), "explicit_deny");
        EXPECT_EQ(to_string(p->tls_for(denied.rule)), to_string(d));
    }
}

TEST(policy_tls_for, mode_names_round_trip)
{
    for (auto m : {tls_mode::require, tls_mode::allow, tls_mode::off}) {
        auto parsed = parse_tls_mode(to_string(m));
        ASSERT_TRUE(parsed.has_value()) << to_string(m);
        EXPECT_EQ(*parsed, m);
    }
    EXPECT_FALSE(parse_tls_mode("Require").has_value());
    EXPECT_FALSE(parse_tls_mode("").has_value());
    EXPECT_FALSE(parse_tls_mode("strict").has_value());
    for (auto r : {reason::sni_mismatch, reason::sni_missing, reason::not_tls}) {
        auto parsed = parse_reason(to_string(r));
        ASSERT_TRUE(parsed.has_value()) << to_string(r);
        EXPECT_EQ(*parsed, r);
    }
    EXPECT_EQ(to_string(reason::sni_mismatch), "sni_mismatch");
    EXPECT_EQ(to_string(reason::sni_missing), "sni_missing");
    EXPECT_EQ(to_string(reason::not_tls), "not_tls");
}

}  // namespace
}  // namespace egressd::policy
