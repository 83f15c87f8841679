// The TLS and PROXY-protocol settings of the configuration files: the policy's `tls` key (top level and per
// allow rule; never in deny rules; in one file only), `timeouts.tls_peek`, and listeners written as maps with
// `proxy_protocol: {trusted: [...]}`. Values are checked through decisions on the loaded snapshot; every
// error must be the only one, at its file:line:column.

#include "config/policy_loader.hpp"
#include "config/server_config.hpp"
#include "tests/config/policy_text.hpp"
#include "tests/config/server_text.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace egressd::config {
namespace {

namespace pol = egressd::policy;

using namespace std::chrono_literals;
using test::lines;
using test::server::base_dir;
using test::server::file_name;
using test::server::load;
using test::server::minimal;
using test::server::show;
using test::server::with;
using test::located;
using test::rule_policy;
using test::target;
using test::utc;

const pol::time_point now = utc("2025-01-01T00:00:00Z");

const pol::tunnel_start plain_bytes{false, std::nullopt};
const pol::tunnel_start tls_no_sni{true, std::nullopt};
pol::tunnel_start tls_sni(std::string sni) { return pol::tunnel_start{true, std::move(sni)}; }

// The tunnel phase for client "app".
void expect_tls(const pol::policy& p, std::string_view host, const pol::tunnel_start& start, pol::verdict outcome,
                pol::reason why)
{
    auto app = p.find_client("app");
    ASSERT_TRUE(app.has_value()) << "no client named app";
    auto d = p.decide_tls(app, target(host), 443, start, now);
    EXPECT_EQ(pol::to_string(d.outcome), pol::to_string(outcome)) << host;
    EXPECT_EQ(pol::to_string(d.why), pol::to_string(why)) << host;
}

// A document without its "version: 1" line, to follow another header.
std::string after_first_line(const std::string& text) { return text.substr(text.find('\n') + 1); }

constexpr auto allow = pol::verdict::allow;
constexpr auto deny = pol::verdict::deny;

// --- the policy's tls key --------------------------------------------------------------------------------------

struct top_level_case {
    std::string name;
    std::optional<std::string> written;  // nullopt: no tls key
    pol::tls_mode want;
};

void PrintTo(const top_level_case& c, std::ostream* os) { *os << c.name; }

class config_tls_top_level : public ::testing::TestWithParam<top_level_case> {};

TEST_P(config_tls_top_level, becomes_the_policy_default)
{
    const auto& c = GetParam();
    std::string text = rule_policy("[443]", "[api.example.com]");
    if (c.written) {
        text = lines({"version: 1", "tls: " + *c.written}) + after_first_line(text);
    }
    auto loaded = load_policy_texts({{"policy.yaml", text}});
    ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
    EXPECT_TRUE(loaded.errors.empty()) << test::show(loaded);
    EXPECT_EQ(pol::to_string(loaded.snapshot->default_tls()), pol::to_string(c.want));
    const auto& p = *loaded.snapshot;
    // The rule has no tls key, so the default decides.
    switch (c.want) {
    case pol::tls_mode::require:
        expect_tls(p, "api.example.com", plain_bytes, deny, pol::reason::not_tls);
        expect_tls(p, "api.example.com", tls_no_sni, deny, pol::reason::sni_missing);
        expect_tls(p, "api.example.com", tls_sni("www.example.com"), deny, pol::reason::sni_mismatch);
        break;
    case pol::tls_mode::allow:
        expect_tls(p, "api.example.com", plain_bytes, allow, pol::reason::allowed);
        expect_tls(p, "api.example.com", tls_no_sni, allow, pol::reason::allowed);
        expect_tls(p, "api.example.com", tls_sni("www.example.com"), deny, pol::reason::sni_mismatch);
        break;
    case pol::tls_mode::off:
        expect_tls(p, "api.example.com", plain_bytes, allow, pol::reason::allowed);
        expect_tls(p, "api.example.com", tls_no_sni, allow, pol::reason::allowed);
        expect_tls(p, "api.example.com", tls_sni("www.example.com"), allow, pol::reason::allowed);
        break;
    }
    expect_tls(p, "api.example.com", tls_sni("api.example.com"), allow, pol::reason::allowed);
}

INSTANTIATE_TEST_SUITE_P(values, config_tls_top_level,
                         ::testing::Values(top_level_case{"require", "require", pol::tls_mode::require},
                                           top_level_case{"allow", "allow", pol::tls_mode::allow},
                                           top_level_case{"off", "off", pol::tls_mode::off},
                                           top_level_case{"quoted_off", "'off'", pol::tls_mode::off},
                                           top_level_case{"absent_is_allow", std::nullopt, pol::tls_mode::allow}),
                         test::param_name<top_level_case>);

TEST(config_tls_rules, rule_modes_override_the_default_both_ways)
{
    auto text = lines({
        "version: 1",                                      // 1
        "tls: off",                                        // 2
        "groups:",                                         // 3
        "  web:",                                          // 4
        "    rules:",                                      // 5
        "      - ports: [443]",                            // 6
        "        destinations: [strict.example.com]",      // 7
        "        tls: require",                            // 8
        "      - ports: [443]",                            // 9
        "        destinations: [loose.example.com]",       // 10
        "        tls: allow",                              // 11
        "      - ports: [443]",                            // 12
        "        destinations: [plain.example.com]",       // 13
        "clients:",                                        // 14
        "  app:",                                          // 15
        "    sources: [10.0.0.0/8]",                       // 16
        "    groups: [web]",                               // 17
    });
    auto loaded = load_policy_texts({{"policy.yaml", text}});
    ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
    const auto& p = *loaded.snapshot;
    EXPECT_EQ(pol::to_string(p.default_tls()), "off");

    expect_tls(p, "strict.example.com", tls_sni("strict.example.com"), allow, pol::reason::allowed);
    expect_tls(p, "strict.example.com", tls_sni("loose.example.com"), deny, pol::reason::sni_mismatch);
    expect_tls(p, "strict.example.com", tls_no_sni, deny, pol::reason::sni_missing);
    expect_tls(p, "strict.example.com", plain_bytes, deny, pol::reason::not_tls);

    expect_tls(p, "loose.example.com", tls_sni("strict.example.com"), deny, pol::reason::sni_mismatch);
    expect_tls(p, "loose.example.com", tls_no_sni, allow, pol::reason::allowed);
    expect_tls(p, "loose.example.com", plain_bytes, allow, pol::reason::allowed);

    expect_tls(p, "plain.example.com", tls_sni("strict.example.com"), allow, pol::reason::allowed);
    expect_tls(p, "plain.example.com", plain_bytes, allow, pol::reason::allowed);

    auto app = p.find_client("app");
    EXPECT_EQ(pol::to_string(p.tls_for(p.decide_name(app, target("strict.example.com"), 443, now).rule)), "require");
    EXPECT_EQ(pol::to_string(p.tls_for(p.decide_name(app, target("loose.example.com"), 443, now).rule)), "allow");
    EXPECT_EQ(pol::to_string(p.tls_for(p.decide_name(app, target("plain.example.com"), 443, now).rule)), "off");
}

TEST(config_tls_rules, rule_off_under_a_require_default)
{
    auto text = lines({"version: 1", "tls: require"}) +
                after_first_line(rule_policy("[443]", "[ssh.example.com]", {"        tls: off"}));
    auto loaded = load_policy_texts({{"policy.yaml", text}});
    ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
    expect_tls(*loaded.snapshot, "ssh.example.com", plain_bytes, allow, pol::reason::allowed);
    expect_tls(*loaded.snapshot, "ssh.example.com", tls_sni("evil.example.net"), allow, pol::reason::allowed);
}

TEST(config_tls_rules, tls_in_a_cidr_rule_applies_to_ip_literals)
{
    auto loaded = load_policy_texts(
        {{"policy.yaml", lines({"version: 1", "groups:", "  web:", "    rules:", "      - ports: [443]",
                                "        destinations: [93.184.216.34/32]", "        tls: require",
                                "      - ports: [443]", "        destinations: [www.example.com]", "clients:",
                                "  app:", "    sources: [10.0.0.0/8]", "    groups: [web]"})}});
    ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
    const auto& p = *loaded.snapshot;
    expect_tls(p, "93.184.216.34", tls_sni("www.example.com"), allow, pol::reason::allowed);
    expect_tls(p, "93.184.216.34", tls_sni("other.example.com"), deny, pol::reason::sni_mismatch);
    expect_tls(p, "93.184.216.34", tls_no_sni, deny, pol::reason::sni_missing);
    expect_tls(p, "93.184.216.34", plain_bytes, deny, pol::reason::not_tls);
    // The domain rule has no tls key: the default allow.
    expect_tls(p, "www.example.com", plain_bytes, allow, pol::reason::allowed);
}

// --- tls errors: one file, exactly one error -------------------------------------------------------------------

struct error_case {
    std::string name;
    std::string yaml;
    std::uint32_t line;
    std::uint32_t column;
    std::string fragment;
};

void PrintTo(const error_case& c, std::ostream* os) { *os << c.name; }

class config_tls_policy_error : public ::testing::TestWithParam<error_case> {};

TEST_P(config_tls_policy_error, is_reported_once_with_its_location)
{
    const auto& c = GetParam();
    auto loaded = load_policy_texts({{"policy.yaml", c.yaml}});
    EXPECT_EQ(loaded.snapshot, nullptr);
    ASSERT_EQ(loaded.errors.size(), 1u) << test::show(loaded);
    test::expect_diagnostic(loaded.errors[0], located{"policy.yaml", c.line, c.column, c.fragment});
}

INSTANTIATE_TEST_SUITE_P(
    values, config_tls_policy_error,
    ::testing::Values(
        // "tls: " is 5 characters: the value starts at column 6.
        error_case{"top_level_unknown", lines({"version: 1", "tls: strict"}), 2, 6,
                   "unknown tls mode 'strict': expected require, allow or off"},
        error_case{"top_level_upper_case", lines({"version: 1", "tls: Require"}), 2, 6,
                   "unknown tls mode 'Require': expected require, allow or off"},
        // Unquoted, YAML 1.1 would read these as booleans; the loader keeps the text, which is not a mode.
        error_case{"top_level_true", lines({"version: 1", "tls: true"}), 2, 6,
                   "unknown tls mode 'true': expected require, allow or off"},
        error_case{"top_level_empty_string", lines({"version: 1", "tls: ''"}), 2, 6,
                   "unknown tls mode '': expected require, allow or off"},
        error_case{"top_level_list", lines({"version: 1", "tls: [require]"}), 2, 6,
                   "expected tls: require, allow or off, found a list"},
        error_case{"top_level_map", lines({"version: 1", "tls: {mode: require}"}), 2, 6,
                   "expected tls: require, allow or off, found a mapping"},
        // Rule keys written with 8 spaces start at column 9; "tls: " puts the value at column 14.
        error_case{"rule_unknown", rule_policy("[443]", "[api.example.com]", {"        tls: maybe"}), 7, 14,
                   "unknown tls mode 'maybe': expected require, allow or off"},
        error_case{"rule_list", rule_policy("[443]", "[api.example.com]", {"        tls: [off]"}), 7, 14,
                   "expected tls: require, allow or off, found a list"},
        error_case{"rule_twice",
                   rule_policy("[443]", "[api.example.com]", {"        tls: off", "        tls: require"}), 8, 9,
                   "key 'tls' appears twice in rule of group 'web'"}),
    test::param_name<error_case>);

INSTANTIATE_TEST_SUITE_P(
    deny_rules, config_tls_policy_error,
    ::testing::Values(
        // A deny rule allows nothing, so it has no tunnel to check: tls there is a mistake, not a no-op.
        error_case{"tls_in_deny_rule",
                   lines({"version: 1", "deny:", "  - destinations: [pastebin.com]", "    tls: require"}), 4, 5,
                   "unknown key 'tls' in deny rule; expected one of: description, ports, destinations, "
                   "destinations_file, expires, protocol, methods, paths"},
        error_case{"tls_off_in_deny_rule",
                   lines({"version: 1", "deny:", "  - destinations: [10.0.0.0/8]", "    ports: [22]",
                          "    tls: off"}),
                   5, 5, "unknown key 'tls' in deny rule"}),
    test::param_name<error_case>);

TEST(config_tls_policy_errors, deny_rule_key_list_does_not_offer_tls)
{
    auto loaded = load_policy_texts(
        {{"policy.yaml", lines({"version: 1", "deny:", "  - destinations: [pastebin.com]", "    tls: require"})}});
    ASSERT_EQ(loaded.errors.size(), 1u) << test::show(loaded);
    EXPECT_EQ(loaded.errors[0].message,
              "unknown key 'tls' in deny rule; expected one of: description, ports, destinations, destinations_file, "
              "expires, protocol, methods, paths");
}

TEST(config_tls_policy_errors, allow_rule_key_list_offers_tls)
{
    auto loaded =
        load_policy_texts({{"policy.yaml", rule_policy("[443]", "[api.example.com]", {"        sni: require"})}});
    ASSERT_EQ(loaded.errors.size(), 1u) << test::show(loaded);
    test::expect_diagnostic(loaded.errors[0],
                            located{"policy.yaml", 7, 9,
                                    "unknown key 'sni' in rule of group 'web'; expected one of: description, ports, "
                                    "destinations, destinations_file, expires, protocol, tls, methods, paths"});
}

// --- tls across files ------------------------------------------------------------------------------------------

// Group "web" and client "app" without a tls key.
std::string base_file() { return rule_policy("[443]", "[api.example.com]"); }

TEST(config_tls_files, set_in_two_files_names_both_places)
{
    auto loaded = load_policy_texts({{"a.yaml", lines({"version: 1", "tls: require"})},
                                     {"b.yaml", base_file()},
                                     {"c.yaml", lines({"version: 1", "# comment", "tls: require"})}});
    EXPECT_EQ(loaded.snapshot, nullptr);
    ASSERT_EQ(loaded.errors.size(), 1u) << test::show(loaded);
    // Reported at the second setting (c.yaml:3:6), naming the first (a.yaml:2:6), even though they agree.
    test::expect_diagnostic(loaded.errors[0],
                            located{"c.yaml", 3, 6, "tls is also set at a.yaml:2:6: set it in one file only"});
}

TEST(config_tls_files, set_in_three_files_reports_each_repeat)
{
    auto loaded = load_policy_texts({{"a.yaml", lines({"version: 1", "tls: off"})},
                                     {"b.yaml", lines({"version: 1", "tls: allow"})},
                                     {"c.yaml", lines({"version: 1", "tls: require"})}});
    EXPECT_EQ(loaded.snapshot, nullptr);
    ASSERT_EQ(loaded.errors.size(), 2u) << test::show(loaded);
    test::expect_diagnostic(loaded.errors[0], located{"b.yaml", 2, 6, "tls is also set at a.yaml:2:6"});
    test::expect_diagnostic(loaded.errors[1], located{"c.yaml", 2, 6, "tls is also set at a.yaml:2:6"});
}

TEST(config_tls_files, set_in_a_later_file_applies_to_every_file)
{
    auto loaded =
        load_policy_texts({{"a.yaml", base_file()}, {"b.yaml", lines({"version: 1", "tls: require"})}});
    ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
    EXPECT_EQ(pol::to_string(loaded.snapshot->default_tls()), "require");
    expect_tls(*loaded.snapshot, "api.example.com", plain_bytes, deny, pol::reason::not_tls);
}

TEST(config_tls_files, per_rule_tls_in_several_files_is_no_conflict)
{
    auto loaded = load_policy_texts(
        {{"a.yaml", rule_policy("[443]", "[api.example.com]", {"        tls: require"})},
         {"b.yaml", lines({"version: 1", "groups:", "  more:", "    rules:", "      - ports: [443]",
                           "        destinations: [ssh.example.com]", "        tls: off", "clients:", "  other:",
                           "    sources: [192.168.0.0/16]", "    groups: [more]"})}});
    ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
    expect_tls(*loaded.snapshot, "api.example.com", plain_bytes, deny, pol::reason::not_tls);
    auto other = loaded.snapshot->find_client("other");
    auto d = loaded.snapshot->decide_tls(other, target("ssh.example.com"), 443, plain_bytes, now);
    EXPECT_EQ(pol::to_string(d.why), "allowed");
}

// --- server configuration: timeouts.tls_peek --------------------------------------------------------------------


TEST(config_tls_peek, defaults_to_five_seconds)
{
    auto loaded = load(minimal);
    ASSERT_TRUE(loaded.config) << show(loaded);
    EXPECT_EQ(loaded.config->timeouts.tls_peek, 5s);
    EXPECT_EQ(timeouts_config{}.tls_peek, 5s);
}

TEST(config_tls_peek, is_read)
{
    auto loaded = load(with({"timeouts:", "  tls_peek: 750ms", "  header: 3s"}));
    ASSERT_TRUE(loaded.config) << show(loaded);
    EXPECT_EQ(loaded.config->timeouts.tls_peek, 750ms);
    EXPECT_EQ(loaded.config->timeouts.header, 3s);
    // The other timeouts keep their defaults.
    EXPECT_EQ(loaded.config->timeouts.connect, 10s);

    loaded = load(with({"timeouts: {tls_peek: 2m}"}));
    ASSERT_TRUE(loaded.config) << show(loaded);
    EXPECT_EQ(loaded.config->timeouts.tls_peek, 2min);
}

// --- server configuration: listeners with PROXY protocol --------------------------------------------------------

std::vector<std::string> cidr_texts(const listener_config& l)
{
    std::vector<std::string> out;
    for (const auto& c : l.proxy_protocol_trusted) {
        out.push_back(c.to_string());
    }
    return out;
}

TEST(config_listener_proxy_protocol, flow_map_with_two_trusted_cidrs)
{
    auto loaded = load(with({"listeners:",
                             "  - {address: 127.0.0.1:3128, proxy_protocol: {trusted: [10.0.0.0/8, \"fd00::/8\"]}}",
                             "  - '[::1]:3129'"}));
    ASSERT_TRUE(loaded.config) << show(loaded);
    const auto& l = loaded.config->listeners;
    ASSERT_EQ(l.size(), 2u);
    EXPECT_EQ(l[0].address, "127.0.0.1");
    EXPECT_EQ(l[0].port, 3128);
    ASSERT_EQ(l[0].proxy_protocol_trusted.size(), 2u);
    EXPECT_EQ(cidr_texts(l[0]), (std::vector<std::string>{"10.0.0.0/8", "fd00::/8"}));
    EXPECT_TRUE(l[0].proxy_protocol_trusted[0].contains(pol::address::parse("10.20.30.40").value()));
    EXPECT_FALSE(l[0].proxy_protocol_trusted[0].contains(pol::address::parse("11.0.0.1").value()));
    // A plain string listener has no PROXY protocol.
    EXPECT_EQ(l[1].address, "::1");
    EXPECT_EQ(l[1].port, 3129);
    EXPECT_TRUE(l[1].proxy_protocol_trusted.empty());
}

TEST(config_listener_proxy_protocol, block_map_and_plain_entries_mixed)
{
    auto loaded = load(with({
        "listeners:",                          // 3
        "  - 127.0.0.1:3128",                  // 4
        "  - address: '[::]:3129'",            // 5
        "    proxy_protocol:",                 // 6
        "      trusted:",                      // 7
        "        - 192.168.10.0/24",           // 8
        "  - address: 0.0.0.0:3130",           // 9: a map without proxy_protocol
    }));
    ASSERT_TRUE(loaded.config) << show(loaded);
    const auto& l = loaded.config->listeners;
    ASSERT_EQ(l.size(), 3u);
    EXPECT_EQ(l[0].address, "127.0.0.1");
    EXPECT_TRUE(l[0].proxy_protocol_trusted.empty());
    EXPECT_EQ(l[1].address, "::");
    EXPECT_EQ(l[1].port, 3129);
    EXPECT_EQ(cidr_texts(l[1]), (std::vector<std::string>{"192.168.10.0/24"}));
    EXPECT_EQ(l[2].address, "0.0.0.0");
    EXPECT_EQ(l[2].port, 3130);
    EXPECT_TRUE(l[2].proxy_protocol_trusted.empty());
}

TEST(config_listener_proxy_protocol, plain_string_listeners_have_no_trusted_sources)
{
    auto loaded = load(with({"listeners: [127.0.0.1:3128, '[::1]:3128']"}));
    ASSERT_TRUE(loaded.config) << show(loaded);
    ASSERT_EQ(loaded.config->listeners.size(), 2u);
    for (const auto& l : loaded.config->listeners) {
        EXPECT_TRUE(l.proxy_protocol_trusted.empty()) << l.address;
    }
    // The default listener too.
    loaded = load(minimal);
    ASSERT_TRUE(loaded.config) << show(loaded);
    ASSERT_EQ(loaded.config->listeners.size(), 1u);
    EXPECT_TRUE(loaded.config->listeners[0].proxy_protocol_trusted.empty());
}

TEST(config_listener_proxy_protocol, misspelt_trusted_is_two_errors)
{
    // Both the stray key and the missing one are named: the user sees the typo and what was meant.
    auto loaded = load(with({
        "listeners:",                   // 3
        "  - address: 127.0.0.1:3128",  // 4
        "    proxy_protocol:",          // 5
        "      trusts: [10.0.0.0/8]",   // 6
    }));
    EXPECT_FALSE(loaded.config);
    ASSERT_EQ(loaded.errors.size(), 2u) << show(loaded);
    test::expect_diagnostic(loaded.errors[0],
                            located{file_name, 6, 7, "unknown key 'trusts' in proxy_protocol; expected one of: trusted"});
    test::expect_diagnostic(loaded.errors[1], located{file_name, 6, 7, "missing required key 'trusted' in proxy_protocol"});
}

TEST(config_listener_proxy_protocol, a_single_trusted_cidr_may_be_a_scalar)
{
    // Like every list in the configuration, a one-item list may be written as its item.
    auto loaded = load(with({"listeners:", "  - {address: 127.0.0.1:3128, proxy_protocol: {trusted: 10.0.0.0/8}}"}));
    ASSERT_TRUE(loaded.config) << show(loaded);
    EXPECT_EQ(cidr_texts(loaded.config->listeners.at(0)), (std::vector<std::string>{"10.0.0.0/8"}));
}

class config_listener_proxy_protocol_error : public ::testing::TestWithParam<error_case> {};

TEST_P(config_listener_proxy_protocol_error, is_reported_once_with_its_location)
{
    const auto& c = GetParam();
    auto loaded = load(c.yaml);
    EXPECT_FALSE(loaded.config);
    ASSERT_EQ(loaded.errors.size(), 1u) << show(loaded);
    test::expect_diagnostic(loaded.errors[0], located{file_name, c.line, c.column, c.fragment});
}

// Columns on "  - {address: 127.0.0.1:3128, proxy_protocol: {...}}": '{' of the listener at 5, proxy_protocol at
// 31, its value at 47, and "{trusted: " puts trusted's value at 57.
INSTANTIATE_TEST_SUITE_P(
    listeners, config_listener_proxy_protocol_error,
    ::testing::Values(
        error_case{"trusted_missing", with({"listeners:", "  - {address: 127.0.0.1:3128, proxy_protocol: {}}"}), 4,
                   47, "missing required key 'trusted' in proxy_protocol"},
        // "proxy_protocol:" with nothing under it is null, not an empty mapping; reported at its key.
        error_case{"empty_block", with({"listeners:", "  - address: 127.0.0.1:3128", "    proxy_protocol:"}), 5, 5,
                   "expected proxy_protocol settings (a mapping), found nothing"},
        error_case{"trusted_a_mapping",
                   with({"listeners:", "  - {address: 127.0.0.1:3128, proxy_protocol: {trusted: {lb: 10.0.0.0/8}}}"}),
                   4, 57, "expected trusted sources (a list), found a mapping"},
        // One error: a list whose only item is wrong is not also reported as empty.
        error_case{"trusted_list_of_lists",
                   with({"listeners:", "  - {address: 127.0.0.1:3128, proxy_protocol: {trusted: [[10.0.0.0/8]]}}"}),
                   4, 58, "expected trusted sources item, found a list"},
        // "{trusted: [10.0.0.0/8], " is 24 characters from column 47.
        error_case{"unknown_key",
                   with({"listeners:",
                         "  - {address: 127.0.0.1:3128, proxy_protocol: {trusted: [10.0.0.0/8], version: 2}}"}),
                   4, 71, "unknown key 'version' in proxy_protocol; expected one of: trusted"},
        error_case{"not_a_mapping", with({"listeners:", "  - {address: 127.0.0.1:3128, proxy_protocol: true}"}), 4,
                   47, "expected proxy_protocol settings (a mapping), found a scalar"},
        error_case{"trusted_not_a_cidr",
                   with({"listeners:", "  - {address: 127.0.0.1:3128, proxy_protocol: {trusted: [lb.example.com]}}"}),
                   4, 58, "lb.example.com"},
        // The address of a map entry is checked like a plain entry, at the address's own position.
        error_case{"map_address_invalid",
                   with({"listeners:", "  - {address: localhost:3128, proxy_protocol: {trusted: [10.0.0.0/8]}}"}),
                   4, 15, "invalid listener 'localhost:3128'"}),
    test::param_name<error_case>);

}  // namespace
}  // namespace egressd::config
