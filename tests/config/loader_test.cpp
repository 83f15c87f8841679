// What the loader accepts: the values it turns into a policy (checked through decisions), the warnings it
// gives for legal but suspicious policies, and loading from files and directories.

#include "config/policy_loader.hpp"
#include "tests/config/policy_text.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <ostream>

#include <sys/resource.h>

#include <string>
#include <utility>
#include <vector>

namespace egressd::config {
namespace {

namespace pol = egressd::policy;

using test::client_policy;
using test::lines;
using test::located;
using test::rule_policy;
using test::target;
using test::utc;

// An instant long before any expiry written in these tests.
const pol::time_point early = utc("2025-01-01T00:00:00Z");

struct decided {
    pol::verdict outcome;
    pol::reason why;
};

// Decides host:port for client "app" by name.
decided decide(const pol::policy& p, std::string_view host, std::uint16_t port, pol::time_point now = early)
{
    auto client = p.find_client("app");
    EXPECT_TRUE(client.has_value()) << "no client named app";
    auto d = p.decide_name(client, target(host), port, now);
    return {d.outcome, d.why};
}

void expect_decision(const pol::policy& p, std::string_view host, std::uint16_t port, pol::reason want,
                     pol::time_point now = early)
{
    auto d = decide(p, host, port, now);
    EXPECT_EQ(pol::to_string(d.why), pol::to_string(want)) << host << ":" << port;
    auto outcome = want == pol::reason::allowed ? pol::verdict::allow : pol::verdict::deny;
    EXPECT_EQ(d.outcome, outcome) << host << ":" << port;
}

// --- accepted values ----------------------------------------------------------------------------------------

struct port_case {
    std::string name;
    std::string ports;
    std::vector<std::uint16_t> allowed;
    std::vector<std::uint16_t> refused;
};

// Test names already say which case failed; print just the name instead of the bytes.
void PrintTo(const port_case& c, std::ostream* os) { *os << c.name; }

class config_loader_ports : public ::testing::TestWithParam<port_case> {};

TEST_P(config_loader_ports, become_the_rule_ports)
{
    const auto& c = GetParam();
    auto loaded = load_policy_texts({{"policy.yaml", rule_policy(c.ports, "[api.example.com]")}});
    ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
    for (auto port : c.allowed) {
        expect_decision(*loaded.snapshot, "api.example.com", port, pol::reason::allowed);
    }
    for (auto port : c.refused) {
        expect_decision(*loaded.snapshot, "api.example.com", port, pol::reason::port_not_allowed);
    }
}

INSTANTIATE_TEST_SUITE_P(
    accepted, config_loader_ports,
    ::testing::Values(port_case{"single", "[443]", {443}, {80, 442, 444}},
                      port_case{"scalar", "443", {443}, {80}},
                      port_case{"range", "[20-21]", {20, 21}, {19, 22}},
                      port_case{"list_and_range", "[80, 8000-8080]", {80, 8000, 8042, 8080}, {81, 7999, 8081}},
                      port_case{"bounds", "[1, 65535]", {1, 65535}, {2, 65534}},
                      port_case{"all", "all", {1, 22, 443, 65535}, {}},
                      port_case{"all_in_list", "[all]", {1, 65535}, {}}),
    test::param_name<port_case>);

TEST(config_loader, all_ports_is_accepted_with_a_warning)
{
    auto loaded = load_policy_texts({{"policy.yaml", rule_policy("all", "[api.example.com]")}});
    ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
    ASSERT_EQ(loaded.warnings.size(), 1u) << test::show(loaded);
    test::expect_diagnostic(loaded.warnings[0], located{"policy.yaml", 5, 9, "rule 0 of group 'web' allows all ports"});
}

TEST(config_loader, protocol_tcp_is_accepted)
{
    auto loaded =
        load_policy_texts({{"policy.yaml", rule_policy("[443]", "[api.example.com]", {"        protocol: tcp"})}});
    ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
    EXPECT_TRUE(loaded.warnings.empty()) << test::show(loaded);
    expect_decision(*loaded.snapshot, "api.example.com", 443, pol::reason::allowed);
}

TEST(config_loader, destination_forms_match_as_written)
{
    auto loaded = load_policy_texts({{"policy.yaml", rule_policy("[443]", "[API.Example.COM., \"*.wild.example\", "
                                                                          ".apex.example, 198.51.100.0/24, "
                                                                          "'2001:db8::/32', xn--bcher-kva.example]")}});
    ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
    const auto& p = *loaded.snapshot;
    expect_decision(p, "api.example.com", 443, pol::reason::allowed);  // case and trailing dot normalized
    expect_decision(p, "a.b.wild.example", 443, pol::reason::allowed);
    expect_decision(p, "wild.example", 443, pol::reason::no_matching_rule);  // *. excludes the apex
    expect_decision(p, "apex.example", 443, pol::reason::allowed);           // . includes it
    expect_decision(p, "x.apex.example", 443, pol::reason::allowed);
    // A CIDR rule inside a guarded set (documentation) is what lifts the guard for that range.
    expect_decision(p, "198.51.100.7", 443, pol::reason::allowed);
    expect_decision(p, "[2001:db8::1]", 443, pol::reason::allowed);
    expect_decision(p, "192.0.2.1", 443, pol::reason::no_matching_rule);
    expect_decision(p, "xn--bcher-kva.example", 443, pol::reason::allowed);
    expect_decision(p, "evil-example.com", 443, pol::reason::no_matching_rule);
}

TEST(config_loader, expires_with_an_offset_is_converted_to_utc)
{
    // 23:59:59+02:00 is 21:59:59Z: one second either side tells a correct offset from a dropped or inverted one.
    auto loaded = load_policy_texts(
        {{"policy.yaml", rule_policy("[443]", "[api.example.com]", {"        expires: 2026-12-31T23:59:59+02:00"})}});
    ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
    const auto& p = *loaded.snapshot;
    expect_decision(p, "api.example.com", 443, pol::reason::allowed, utc("2026-12-31T21:59:58Z"));
    expect_decision(p, "api.example.com", 443, pol::reason::expired, utc("2026-12-31T22:00:00Z"));
    expect_decision(p, "api.example.com", 443, pol::reason::expired, utc("2027-01-01T00:00:00Z"));

    auto d = p.decide_name(p.find_client("app"), target("api.example.com"), 443, early);
    ASSERT_TRUE(d.rule.has_value());
    auto rule = p.describe(*d.rule);
    ASSERT_TRUE(rule.expires.has_value());
    EXPECT_EQ(format_rfc3339(*rule.expires), "2026-12-31T21:59:59Z");
}

TEST(config_loader, descriptions_and_locations_reach_the_snapshot)
{
    auto loaded = load_policy_texts(
        {{"policy.yaml", rule_policy("[443]", "[api.example.com]", {"        description: Payment API"})}});
    ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
    const auto& p = *loaded.snapshot;
    auto d = p.decide_name(p.find_client("app"), target("api.example.com"), 443, early);
    ASSERT_TRUE(d.rule.has_value());
    auto rule = p.describe(*d.rule);
    EXPECT_EQ(rule.group, "web");
    EXPECT_EQ(rule.index, 0u);
    EXPECT_EQ(rule.description, "Payment API");
    EXPECT_EQ(p.describe_location(rule.where), "policy.yaml:5:9");
}

TEST(config_loader, modes_and_client_override)
{
    auto loaded = load_policy_texts({{"policy.yaml", lines({"version: 1", "mode: report", "groups:", "  web:",
                                                            "    rules:", "      - ports: [443]",
                                                            "        destinations: [api.example.com]", "clients:",
                                                            "  app:", "    sources: [10.0.0.0/8]", "    groups: [web]",
                                                            "  strict:", "    sources: [192.168.0.0/16]",
                                                            "    groups: [web]", "    mode: enforce"})}});
    ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
    const auto& p = *loaded.snapshot;
    EXPECT_EQ(p.default_mode(), pol::mode::report);
    auto app = p.decide_name(p.find_client("app"), target("other.example.com"), 443, early);
    EXPECT_EQ(app.outcome, pol::verdict::would_deny);
    EXPECT_EQ(app.why, pol::reason::no_matching_rule);
    auto strict = p.decide_name(p.find_client("strict"), target("other.example.com"), 443, early);
    EXPECT_EQ(strict.outcome, pol::verdict::deny);
}

TEST(config_loader, on_revoke_defaults_to_close)
{
    auto loaded = load_policy_texts({{"policy.yaml", rule_policy("[443]", "[api.example.com]")}});
    ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
    EXPECT_EQ(loaded.snapshot->on_revoke(), pol::revoke_action::close);
    EXPECT_EQ(pol::to_string(loaded.snapshot->on_revoke()), "close");
}

TEST(config_loader, on_revoke_close_and_keep)
{
    for (auto want : {pol::revoke_action::close, pol::revoke_action::keep}) {
        std::string action(pol::to_string(want));
        auto loaded = load_policy_texts({{"policy.yaml", "on_revoke: " + action + "\n" +
                                                             rule_policy("[443]", "[api.example.com]")}});
        ASSERT_NE(loaded.snapshot, nullptr) << action << "\n" << test::show(loaded);
        EXPECT_EQ(loaded.snapshot->on_revoke(), want) << action;
        EXPECT_EQ(pol::parse_revoke_action(action), want);
    }
    EXPECT_EQ(pol::parse_revoke_action("drop"), std::nullopt);
}

TEST(config_loader, on_revoke_from_any_one_file_of_several)
{
    // Set in the last file: the setting applies to the merged policy, whichever file holds it.
    auto loaded = load_policy_texts({{"a.yaml", rule_policy("[443]", "[api.example.com]")},
                                     {"b.yaml", lines({"version: 1", "on_revoke: keep"})}});
    ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
    EXPECT_EQ(loaded.snapshot->on_revoke(), pol::revoke_action::keep);
}

TEST(config_loader, requests_default_on_with_one_approver)
{
    auto loaded = load_policy_texts({{"policy.yaml", rule_policy("[443]", "[api.example.com]")}});
    ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
    auto app = *loaded.snapshot->find_client("app");
    EXPECT_TRUE(loaded.snapshot->requests_enabled(app));
    EXPECT_EQ(loaded.snapshot->required_approvals(app), 1u);
}

TEST(config_loader, requests_on_off_and_required_approvals)
{
    struct requests_case {
        std::string top;     // the top-level line, or empty
        std::string client;  // the client's requests line, or empty
        bool want;
    };
    const std::vector<requests_case> cases = {
        {"requests: off", "", false},         {"requests: false", "", false},
        {"requests: on", "", true},           {"requests: true", "", true},
        {"requests: off", "    requests: on", true}, {"requests: off", "    requests: true", true},
        {"", "    requests: off", false},     {"requests: on", "    requests: false", false},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.top + " / " + c.client);
        std::string text = c.top.empty() ? std::string() : c.top + "\n";
        text += client_policy({"    sources: [10.0.0.0/8]", "    groups: [web]", c.client,
                               "    approvals: {required: 2}"});
        text += lines({"  other:", "    sources: [192.168.0.0/16]", "    groups: [web]", "    approvals:",
                       "      required: 1"});
        auto loaded = load_policy_texts({{"policy.yaml", text}});
        ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
        const auto& p = *loaded.snapshot;
        EXPECT_EQ(p.requests_enabled(*p.find_client("app")), c.want);
        EXPECT_EQ(p.requests_enabled(*p.find_client("other")), c.top != "requests: off" && c.top != "requests: false");
        EXPECT_EQ(p.required_approvals(*p.find_client("app")), 2u);
        EXPECT_EQ(p.required_approvals(*p.find_client("other")), 1u);
    }
}

TEST(config_loader, requests_from_any_one_file_of_several)
{
    auto loaded = load_policy_texts({{"a.yaml", rule_policy("[443]", "[api.example.com]")},
                                     {"b.yaml", lines({"version: 1", "requests: off"})}});
    ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
    EXPECT_FALSE(loaded.snapshot->requests_enabled(*loaded.snapshot->find_client("app")));
}

TEST(config_loader, deny_rules_apply_to_every_port_unless_narrowed)
{
    auto loaded = load_policy_texts({{"policy.yaml",
                                      rule_policy("all", "[.example.com]",
                                                  {"deny:", "  - destinations: [paste.example.com]",
                                                   "  - destinations: [ftp.example.com]", "    ports: [21]"})}});
    ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
    const auto& p = *loaded.snapshot;
    expect_decision(p, "paste.example.com", 1, pol::reason::explicit_deny);
    expect_decision(p, "paste.example.com", 443, pol::reason::explicit_deny);
    expect_decision(p, "ftp.example.com", 21, pol::reason::explicit_deny);
    expect_decision(p, "ftp.example.com", 22, pol::reason::allowed);
}

// --- address_guard.except -----------------------------------------------------------------------------------

// A client allowed every address; whether 192.0.2.1 (documentation) passes depends on the guard.
std::string every_address_policy(std::string_view guard_line)
{
    std::string text = lines({"version: 1"});
    if (!guard_line.empty()) {
        text += lines({"address_guard:"}) + std::string(guard_line) + "\n";
    }
    return text + lines({"groups:", "  anywhere:", "    rules:", "      - ports: [443]",
                         "        destinations: [0.0.0.0/0, \"::/0\"]", "clients:", "  app:",
                         "    sources: [10.0.0.0/8]", "    groups: [anywhere]"});
}

TEST(config_loader_guard, except_documentation_lets_documentation_addresses_through)
{
    auto loaded = load_policy_texts({{"policy.yaml", every_address_policy("  except: [documentation]")}});
    ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
    const auto& p = *loaded.snapshot;
    EXPECT_FALSE(p.guarded().has(pol::guard_category::documentation));
    expect_decision(p, "192.0.2.1", 443, pol::reason::allowed);
    expect_decision(p, "8.8.8.8", 443, pol::reason::allowed);
    // Only the named set is lifted: private addresses stay refused.
    expect_decision(p, "10.1.2.3", 443, pol::reason::address_guard);
}

TEST(config_loader_guard, an_operators_nat64_prefix_is_read_in_its_own_layout)
{
    // The local-use prefix split into /96 by this operator: a public address in it is reachable, a private one
    // is not; without the prefix named, the every-layout reading refuses both.
    const std::string ipv6_target = "[64:ff9b:1::5db8:d822]";
    auto named = load_policy_texts({{"policy.yaml", every_address_policy("  nat64_prefixes: [\"64:ff9b:1::/96\"]")}});
    ASSERT_NE(named.snapshot, nullptr) << test::show(named);
    ASSERT_EQ(named.snapshot->nat64_prefixes().size(), 1u);
    expect_decision(*named.snapshot, ipv6_target, 443, pol::reason::allowed);
    expect_decision(*named.snapshot, "[64:ff9b:1::a00:1]", 443, pol::reason::address_guard);
    auto unnamed = load_policy_texts({{"policy.yaml", every_address_policy("")}});
    ASSERT_NE(unnamed.snapshot, nullptr) << test::show(unnamed);
    expect_decision(*unnamed.snapshot, ipv6_target, 443, pol::reason::address_guard);
}

TEST(config_loader_guard, every_set_is_guarded_by_default)
{
    for (std::string_view guard : {"", "  except: []"}) {
        auto loaded = load_policy_texts({{"policy.yaml", every_address_policy(guard)}});
        ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
        const auto& p = *loaded.snapshot;
        EXPECT_TRUE(p.guarded() == pol::guard_set::all()) << "guard line: '" << guard << "'";
        auto d = p.decide_name(p.find_client("app"), target("192.0.2.1"), 443, early);
        EXPECT_EQ(d.why, pol::reason::address_guard) << pol::to_string(d.why);
        ASSERT_TRUE(d.guard.has_value());
        EXPECT_EQ(d.guard->category, pol::guard_category::documentation);
        expect_decision(p, "8.8.8.8", 443, pol::reason::allowed);
    }
}

// --- warnings -----------------------------------------------------------------------------------------------

struct warning_case {
    std::string name;
    std::string yaml;
    std::uint32_t line;
    std::uint32_t column;
    std::string fragment;
};

// Test names already say which case failed; print just the name instead of the bytes.
void PrintTo(const warning_case& c, std::ostream* os) { *os << c.name; }

class config_loader_warning : public ::testing::TestWithParam<warning_case> {};

TEST_P(config_loader_warning, is_reported_once_with_its_location)
{
    const auto& c = GetParam();
    auto loaded = load_policy_texts({{"policy.yaml", c.yaml}});
    // A warning never stops the policy from loading.
    EXPECT_NE(loaded.snapshot, nullptr) << test::show(loaded);
    EXPECT_TRUE(loaded.errors.empty()) << test::show(loaded);
    ASSERT_EQ(loaded.warnings.size(), 1u) << test::show(loaded);
    test::expect_diagnostic(loaded.warnings[0], located{"policy.yaml", c.line, c.column, c.fragment});
}

INSTANTIATE_TEST_SUITE_P(
    suspicious, config_loader_warning,
    ::testing::Values(
        warning_case{"every_ipv4_address", rule_policy("[443]", "[0.0.0.0/0]"), 5, 9,
                     "rule 0 of group 'web' allows every address (0.0.0.0/0); guarded addresses stay refused"},
        warning_case{"every_ipv6_address", rule_policy("[443]", "['::/0']"), 5, 9,
                     "rule 0 of group 'web' allows every address (::/0)"},
        warning_case{"all_ports", rule_policy("all", "[api.example.com]"), 5, 9,
                     "rule 0 of group 'web' allows all ports"},
        warning_case{"full_port_range", rule_policy("[1-65535]", "[api.example.com]"), 5, 9, "allows all ports"},
        // The later of two identical rules is the one reported.
        warning_case{"duplicate_rule",
                     rule_policy("[443]", "[api.example.com]",
                                 {"      - ports: [443]", "        destinations: [api.example.com]"}),
                     7, 9, "group 'web' rule 1: destination 'api.example.com' duplicates rule 0"},
        warning_case{"shadowed_by_domain",
                     rule_policy("[443]", "[.example.com]",
                                 {"      - ports: [443]", "        destinations: [api.example.com]"}),
                     7, 9, "group 'web' rule 1: destination 'api.example.com' is shadowed by rule 0 (.example.com)"},
        warning_case{"shadowed_by_subdomains",
                     rule_policy("[443]", "['*.example.com']",
                                 {"      - ports: [443]", "        destinations: [api.example.com]"}),
                     7, 9, "destination 'api.example.com' is shadowed by rule 0 (*.example.com)"},
        warning_case{"shadowed_cidr",
                     rule_policy("[443]", "[198.51.100.0/24]",
                                 {"      - ports: [443]", "        destinations: [198.51.100.128/25]"}),
                     7, 9, "group 'web' rule 1: destination 198.51.100.128/25 is shadowed by rule 0"},
        warning_case{"unused_group",
                     rule_policy("[443]", "[api.example.com]",
                                 {"  spare:", "    rules:", "      - ports: [443]",
                                  "        destinations: [spare.example.com]"}),
                     7, 3, "group 'spare' is not used by any client"},
        warning_case{"client_without_sources", client_policy({"    groups: [web]"}), 8, 3,
                     "client 'app' has no sources: no connection will match it"}),
    test::param_name<warning_case>);

TEST(config_loader_warning_free, wider_ports_and_the_default_client_are_not_warned)
{
    // Rule 1 allows port 80 that rule 0 does not: it adds something, so it is not shadowed.
    auto wider_ports = rule_policy("[443]", "[.example.com]",
                                   {"      - ports: [80, 443]", "        destinations: [api.example.com]"});
    // A "default" client needs no sources.
    auto default_client = client_policy({"    groups: [web]", "  default:", "    groups: [web]"});
    auto loaded = load_policy_texts({{"policy.yaml", wider_ports}});
    ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
    EXPECT_TRUE(loaded.warnings.empty()) << test::show(loaded);

    loaded = load_policy_texts({{"policy.yaml", default_client}});
    ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
    // Only app is warned about; default catches every unmatched source by design.
    ASSERT_EQ(loaded.warnings.size(), 1u) << test::show(loaded);
    EXPECT_NE(loaded.warnings[0].message.find("client 'app'"), std::string::npos);
}

// Peak resident memory of this process so far, in MiB (a high-water mark: it never goes down).
long peak_rss_mib()
{
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    return usage.ru_maxrss / 1024;  // Linux reports KiB
}

// --- anchors and aliases ------------------------------------------------------------------------------------

TEST(config_loader_yaml, anchors_and_aliases_are_expanded)
{
    auto loaded = load_policy_texts({{"policy.yaml", lines({"version: 1", "groups:", "  web:", "    rules:",
                                                            "      - ports: &web [80, 443]",
                                                            "        destinations: [a.example.com]",
                                                            "      - ports: *web",
                                                            "        destinations: [b.example.com]", "clients:",
                                                            "  app:", "    sources: [10.0.0.0/8]",
                                                            "    groups: [web]"})}});
    ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
    EXPECT_TRUE(loaded.warnings.empty()) << test::show(loaded);
    const auto& p = *loaded.snapshot;
    for (std::string_view host : {"a.example.com", "b.example.com"}) {
        expect_decision(p, host, 80, pol::reason::allowed);
        expect_decision(p, host, 443, pol::reason::allowed);
        expect_decision(p, host, 8080, pol::reason::port_not_allowed);
    }
}

TEST(config_loader_yaml, an_alias_of_a_bad_value_is_reported_at_the_anchor)
{
    auto loaded = load_policy_texts({{"policy.yaml", lines({"version: 1", "x-bad: &bad [0]"})}});
    EXPECT_EQ(loaded.snapshot, nullptr);
    // Only the unknown key: the anchor's value is never read as ports here.
    ASSERT_EQ(loaded.errors.size(), 1u) << test::show(loaded);
    test::expect_diagnostic(loaded.errors[0], located{"policy.yaml", 2, 1, "unknown key 'x-bad'"});

    loaded = load_policy_texts({{"policy.yaml", rule_policy("&bad [0]", "[a.example.com]",
                                                            {"      - ports: *bad",
                                                             "        destinations: [b.example.com]"})}});
    EXPECT_EQ(loaded.snapshot, nullptr);
    // Both uses are wrong; the items keep the anchor's position, so both errors point at the one mistake.
    ASSERT_EQ(loaded.errors.size(), 2u) << test::show(loaded);
    for (const auto& e : loaded.errors) {
        test::expect_diagnostic(e, located{"policy.yaml", 5, 22, "found '0'"});
    }
}

TEST(config_loader_yaml, quoted_and_plain_scalars_are_read_alike)
{
    auto loaded =
        load_policy_texts({{"policy.yaml", lines({"version: 1", "groups:", "  web:", "    rules:",
                                                  "      - ports: ['443', \"20-21\"]",
                                                  "        destinations: ['api.example.com']", "clients:", "  app:",
                                                  "    sources: ['10.0.0.0/8']", "    groups: ['web']"})}});
    ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
    expect_decision(*loaded.snapshot, "api.example.com", 443, pol::reason::allowed);
    expect_decision(*loaded.snapshot, "api.example.com", 21, pol::reason::allowed);
}

TEST(config_loader_yaml, an_alias_bomb_is_refused)
{
    // Nine levels of nine aliases: 9^9 (387 million) nodes if expanded. It must be refused early,
    // without building anything like that.
    std::string yaml = lines({"version: 1", "a: &a [x, x, x, x, x, x, x, x, x]"});
    std::string previous = "a";
    for (char level = 'b'; level <= 'i'; ++level) {
        std::string name(1, level);
        std::string items;
        for (int i = 0; i < 9; ++i) {
            items += (i == 0 ? "*" : ", *") + previous;
        }
        yaml += name + ": &" + name + " [" + items + "]\n";
        previous = name;
    }
    long peak_before = peak_rss_mib();
    auto loaded = load_policy_texts({{"bomb.yaml", yaml}});
    // Generous for any sanitizer, and far below the gigabytes a copy of even 1% of the expansion takes.
    EXPECT_LT(peak_rss_mib() - peak_before, 512) << "MiB of extra peak memory to refuse a 10-line file";
    EXPECT_EQ(loaded.snapshot, nullptr);
    ASSERT_EQ(loaded.errors.size(), 1u) << test::show(loaded);
    // Levels b to e add 74,718 nodes through aliases and each *e adds 66,430 more: the fifth *e on line 7
    // ("f: &f [*e, *e, *e, *e, " is 23 characters) takes the aliases past the 400,000 they may add.
    test::expect_diagnostic(loaded.errors[0], located{"bomb.yaml", 7, 24, "aliases expand to more than 400000 nodes"});
}

// --- files and directories ----------------------------------------------------------------------------------

TEST(config_loader_files, a_single_file)
{
    test_support::temp_dir dir;
    auto file = dir.write("policy.yaml", rule_policy("[443]", "[api.example.com]"));
    auto loaded = load_policy(file);
    ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
    EXPECT_EQ(loaded.files, std::vector<std::string>{file.string()});
    expect_decision(*loaded.snapshot, "api.example.com", 443, pol::reason::allowed);
}

// --- the bytes that were parsed ---------------------------------------------------------------------------

TEST(config_loader_sources, texts_are_kept_as_given_in_merge_order)
{
    std::vector<std::pair<std::string, std::string>> files = {
        {"b-groups.yaml", lines({"version: 1", "groups:", "  web:", "    rules:", "      - ports: [443]",
                                 "        destinations: [api.example.com]"})},
        {"a-clients.yaml", "version: 1\r\nclients:\r\n  app:\r\n    sources: [10.0.0.0/8]\r\n    groups: [web]"}};
    auto loaded = load_policy_texts(files);
    ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
    // The order given is the merge order (load_policy_texts does not sort), and the bytes are untouched.
    EXPECT_EQ(loaded.sources, files);
}

TEST(config_loader_sources, kept_even_when_the_policy_has_errors)
{
    auto loaded = load_policy_texts({{"policy.yaml", lines({"version: 1", "mode: loud"})}});
    EXPECT_EQ(loaded.snapshot, nullptr);
    ASSERT_EQ(loaded.sources.size(), 1u);
    EXPECT_EQ(loaded.sources[0].second, "version: 1\nmode: loud\n");
}

TEST(config_loader_sources, a_directory_gives_each_file_in_name_order_byte_for_byte)
{
    test_support::temp_dir dir;
    // No final newline, CRLF line ends, a BOM-free UTF-8 comment: whatever was on disk, exactly.
    std::string clients = "version: 1\r\nclients:\r\n  app:\r\n    sources: [10.0.0.0/8]\r\n    groups: [web]";
    std::string groups = lines({"# Gruppen f\xc3\xbcr das Web", "version: 1", "groups:", "  web:", "    rules:",
                                "      - ports: [443]", "        destinations: [api.example.com]"});
    dir.write("20-clients.yml", clients);
    dir.write("10-groups.yaml", groups);
    dir.write("notes.txt", "not a policy file\n");
    auto loaded = load_policy(dir.path());
    ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
    auto name = [&](std::string_view file) { return (dir.path() / file).string(); };
    EXPECT_EQ(loaded.sources, (std::vector<std::pair<std::string, std::string>>{{name("10-groups.yaml"), groups},
                                                                                 {name("20-clients.yml"), clients}}));
    ASSERT_EQ(loaded.files.size(), loaded.sources.size());
    for (std::size_t i = 0; i < loaded.files.size(); ++i) {
        EXPECT_EQ(loaded.files[i], loaded.sources[i].first);
    }
}

TEST(config_loader_sources, a_single_file_and_a_missing_one)
{
    test_support::temp_dir dir;
    std::string text = rule_policy("[443]", "[api.example.com]");
    auto file = dir.write("policy.yaml", text);
    auto loaded = load_policy(file);
    ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
    EXPECT_EQ(loaded.sources, (std::vector<std::pair<std::string, std::string>>{{file.string(), text}}));

    // What a later change to the file does not alter: the text is what was parsed, not what is there now.
    dir.write("policy.yaml", "version: 2\n");
    EXPECT_EQ(loaded.sources[0].second, text);

    // A file that cannot be read is listed with no text (and the load fails, so nothing is fingerprinted).
    auto missing = dir.path() / "nowhere.yaml";
    loaded = load_policy(missing);
    EXPECT_EQ(loaded.snapshot, nullptr);
    EXPECT_EQ(loaded.sources, (std::vector<std::pair<std::string, std::string>>{{missing.string(), ""}}));
}

TEST(config_loader_sources, a_large_policy_is_parsed_from_its_kept_text)
{
    // Enough rules that the text spans many stream buffers' worth: the in-memory stream must hand the parser
    // every byte, and the positions it reports must still be right at the end.
    std::string text = lines({"version: 1", "groups:", "  web:", "    rules:"});
    constexpr int rules = 5000;
    for (int i = 0; i < rules; ++i) {
        text += "      - ports: [443]\n        destinations: [h" + std::to_string(i) + ".example.com]\n";
    }
    text += lines({"clients:", "  app:", "    sources: [10.0.0.0/8]", "    groups: [web]", "    mode: loud"});
    auto loaded = load_policy_texts({{"big.yaml", text}});
    ASSERT_EQ(loaded.errors.size(), 1u) << test::show(loaded);
    // 4 header lines, 2 per rule, then clients, app, sources, groups: mode is on line 4 + 2 * rules + 5.
    test::expect_diagnostic(loaded.errors[0], located{"big.yaml", 4 + 2 * rules + 5, 11, "unknown mode 'loud'"});
    EXPECT_EQ(loaded.sources[0].second.size(), text.size());
}

TEST(config_loader_files, errors_name_the_file_path)
{
    test_support::temp_dir dir;
    auto file = dir.write("broken.yaml", lines({"version: 1", "mode: loud"}));
    auto loaded = load_policy(file);
    EXPECT_EQ(loaded.snapshot, nullptr);
    ASSERT_EQ(loaded.errors.size(), 1u) << test::show(loaded);
    test::expect_diagnostic(loaded.errors[0], located{file.string(), 2, 7, "unknown mode 'loud'"});
}

TEST(config_loader_files, a_directory_merges_yaml_and_yml_in_name_order)
{
    test_support::temp_dir dir;
    // Written out of order: the merge order must come from the names, not from the directory listing.
    dir.write("30-mode.yaml", lines({"version: 1", "mode: enforce"}));
    dir.write("20-clients.yml", lines({"version: 1", "clients:", "  app:", "    sources: [10.0.0.0/8]",
                                       "    groups: [web]"}));
    dir.write("10-groups.yaml", lines({"version: 1", "mode: report", "groups:", "  web:", "    rules:",
                                       "      - ports: [443]", "        destinations: [api.example.com]"}));
    // Not policy files: never read, even though they are not valid policies.
    dir.write("README.md", "# not yaml: {\n");
    dir.write("notes.txt", "mode: [\n");
    dir.write("policy.yaml.bak", "version: 2\n");
    std::filesystem::create_directory(dir.path() / "sub.yaml");

    auto loaded = load_policy(dir.path());
    auto name = [&](std::string_view file) { return (dir.path() / file).string(); };
    EXPECT_EQ(loaded.files, (std::vector<std::string>{name("10-groups.yaml"), name("20-clients.yml"),
                                                      name("30-mode.yaml")}));
    // The second mode in name order is the one reported, naming the first.
    ASSERT_EQ(loaded.errors.size(), 1u) << test::show(loaded);
    std::string first_mode = name("10-groups.yaml") + ":2:7";
    test::expect_diagnostic(loaded.errors[0], located{name("30-mode.yaml"), 2, 7, "mode is also set at " + first_mode});

    std::filesystem::remove(dir.path() / "30-mode.yaml");
    loaded = load_policy(dir.path());
    ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
    EXPECT_TRUE(loaded.warnings.empty()) << test::show(loaded);
    EXPECT_EQ(loaded.snapshot->default_mode(), pol::mode::report);
    expect_decision(*loaded.snapshot, "api.example.com", 443, pol::reason::allowed);
}

TEST(config_loader_files, errors_from_several_files_of_a_directory)
{
    test_support::temp_dir dir;
    auto a = dir.write("a.yaml", lines({"version: 1", "mode: loud"}));
    auto b = dir.write("b.yml", lines({"version: 1", "groups: [web]"}));
    auto loaded = load_policy(dir.path());
    EXPECT_EQ(loaded.snapshot, nullptr);
    ASSERT_EQ(loaded.errors.size(), 2u) << test::show(loaded);
    test::expect_diagnostic(loaded.errors[0], located{a.string(), 2, 7, "unknown mode 'loud'"});
    test::expect_diagnostic(loaded.errors[1], located{b.string(), 2, 9, "expected groups"});
}

TEST(config_loader_files, an_empty_directory_is_an_error)
{
    test_support::temp_dir dir;
    dir.write("README.md", "policies go here\n");
    auto loaded = load_policy(dir.path());
    EXPECT_EQ(loaded.snapshot, nullptr);
    EXPECT_TRUE(loaded.files.empty());
    ASSERT_EQ(loaded.errors.size(), 1u) << test::show(loaded);
    // A whole-directory problem has no line or column.
    test::expect_diagnostic(loaded.errors[0],
                            located{dir.path().string(), 0, 0, "no *.yaml or *.yml files in the policy directory"});
}

TEST(config_loader_files, a_missing_path_is_an_error)
{
    test_support::temp_dir dir;
    auto missing = dir.path() / "nowhere.yaml";
    auto loaded = load_policy(missing);
    EXPECT_EQ(loaded.snapshot, nullptr);
    ASSERT_EQ(loaded.errors.size(), 1u) << test::show(loaded);
    test::expect_diagnostic(loaded.errors[0], located{missing.string(), 0, 0, "cannot open the policy file"});
}

TEST(config_loader_files, an_empty_file_is_an_error)
{
    test_support::temp_dir dir;
    auto file = dir.write("empty.yaml", "");
    auto loaded = load_policy(file);
    EXPECT_EQ(loaded.snapshot, nullptr);
    ASSERT_EQ(loaded.errors.size(), 1u) << test::show(loaded);
    test::expect_diagnostic(loaded.errors[0], located{file.string(), 1, 1, "empty document"});
}

}  // namespace
}  // namespace egressd::config
