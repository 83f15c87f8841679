// Every way a policy file can be wrong: each error must name file:line:column exactly and say what was
// expected, and a policy with any error must never produce a snapshot.

#include "tests/config/policy_text.hpp"

#include <gtest/gtest.h>

#include <ostream>

#include <algorithm>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace egressd::config {
namespace {

using test::client_policy;
using test::lines;
using test::located;
using test::rule_policy;

// --- one file, exactly one error ----------------------------------------------------------------------------

struct error_case {
    std::string name;
    std::string yaml;
    std::uint32_t line;
    std::uint32_t column;
    std::string fragment;  // what the message must say (usually what was expected)
};

// Test names already say which case failed; print just the name instead of the bytes.
void PrintTo(const error_case& c, std::ostream* os) { *os << c.name; }

std::string case_name(const ::testing::TestParamInfo<error_case>& info) { return info.param.name; }

class config_loader_error : public ::testing::TestWithParam<error_case> {};

TEST_P(config_loader_error, is_reported_once_with_its_location)
{
    const auto& c = GetParam();
    auto loaded = load_policy_texts({{"policy.yaml", c.yaml}});
    EXPECT_EQ(loaded.snapshot, nullptr);
    // Exactly one: a single mistake must not cascade into several messages.
    ASSERT_EQ(loaded.errors.size(), 1u) << test::show(loaded);
    test::expect_diagnostic(loaded.errors[0], located{"policy.yaml", c.line, c.column, c.fragment});
}

// YAML itself, and the shape of the document.
INSTANTIATE_TEST_SUITE_P(
    document, config_loader_error,
    ::testing::Values(
        // "mode: enforce: report": the second ':' (column 14) cannot start a value here.
        error_case{"syntax_illegal_map_value", lines({"version: 1", "mode: enforce: report"}), 2, 14,
                   "YAML syntax error: illegal map value"},
        // An unclosed flow list is noticed where the input ends.
        error_case{"syntax_unclosed_flow_list", lines({"version: 1", "groups: [a, b"}), 3, 1,
                   "YAML syntax error: end of sequence flow not found"},
        error_case{"syntax_tab_indentation", lines({"version: 1", "\tmode: enforce"}), 2, 1,
                   "YAML syntax error: illegal tab"},
        error_case{"empty_document", "", 1, 1, "empty document: expected a mapping"},
        error_case{"comment_only_document", lines({"# nothing but a comment"}), 1, 1,
                   "empty document: expected a mapping"},
        // The second document starts at the '---' on line 2.
        error_case{"two_documents", lines({"version: 1", "---", "version: 1"}), 2, 1,
                   "more than one YAML document: expected exactly one"},
        // An unquoted *.example.com is a YAML alias; the message says to quote it.
        error_case{"unquoted_wildcard", rule_policy("[443]", "[*.example.com]"), 6, 24,
                   "the referenced anchor is not defined (a wildcard domain must be quoted: \"*.example.com\")"},
        error_case{"top_level_list", lines({"- version: 1"}), 1, 1,
                   "expected a policy document (a mapping), found a list"},
        error_case{"top_level_scalar", lines({"version 1"}), 1, 1,
                   "expected a policy document (a mapping), found a scalar"}),
    case_name);

// Keys: unknown ones and repeated ones, at every level that has a fixed set of keys.
INSTANTIATE_TEST_SUITE_P(
    keys, config_loader_error,
    ::testing::Values(
        error_case{"unknown_top_level_key", lines({"version: 1", "logging: verbose"}), 2, 1,
                   "unknown key 'logging' in the policy; expected one of: version, mode, tls, address_guard, groups, "
                   "clients, deny, on_revoke, requests"},
        error_case{"unknown_group_key",
                   lines({"version: 1", "groups:", "  web:", "    owner: platform", "    rules:",
                          "      - ports: [443]", "        destinations: [api.example.com]", "clients:", "  app:",
                          "    sources: [10.0.0.0/8]", "    groups: [web]"}),
                   4, 5, "unknown key 'owner' in group 'web'; expected one of: description, rules"},
        error_case{"unknown_rule_key", rule_policy("[443]", "[api.example.com]", {"        port: 80"}), 7, 9,
                   "unknown key 'port' in rule of group 'web'; expected one of: description, ports, destinations, "
                   "destinations_file, expires, protocol, tls, methods, paths"},
        error_case{"unknown_client_key",
                   client_policy({"    sources: [10.0.0.0/8]", "    groups: [web]", "    owner: team-a"}), 11, 5,
                   "unknown key 'owner' in client 'app'; expected one of: description, sources, identities, groups, "
                   "mode, requests, approvals"},
        error_case{"unknown_deny_rule_key",
                   lines({"version: 1", "deny:", "  - destinations: [pastebin.com]", "    port: 443"}), 4, 5,
                   "unknown key 'port' in deny rule; expected one of:"},
        error_case{"unknown_address_guard_key",
                   lines({"version: 1", "address_guard:", "  exempt: [documentation]"}), 3, 3,
                   "unknown key 'exempt' in address_guard; expected one of: except"},
        // The repeat is reported where it appears the second time.
        error_case{"top_level_key_twice", lines({"version: 1", "version: 1"}), 2, 1,
                   "key 'version' appears twice in the policy"},
        error_case{"rule_key_twice", rule_policy("[443]", "[api.example.com]", {"        ports: [80]"}), 7, 9,
                   "key 'ports' appears twice in rule of group 'web'"},
        error_case{"client_key_twice",
                   client_policy({"    sources: [10.0.0.0/8]", "    groups: [web]", "    groups: [web]"}), 11, 5,
                   "key 'groups' appears twice in client 'app'"},
        error_case{"group_rules_missing",
                   lines({"version: 1", "groups:", "  web:", "    description: no rules", "clients:", "  app:",
                          "    sources: [10.0.0.0/8]", "    groups: [web]"}),
                   4, 5, "missing required key 'rules' in group 'web'"},
        error_case{"client_groups_missing", client_policy({"    sources: [10.0.0.0/8]"}), 9, 5,
                   "missing required key 'groups' in client 'app'"}),
    case_name);

INSTANTIATE_TEST_SUITE_P(
    version, config_loader_error,
    ::testing::Values(
        // A missing key is reported at the mapping that lacks it.
        error_case{"missing", lines({"mode: enforce"}), 1, 1, "missing required key 'version' in the policy"},
        error_case{"unsupported_2", lines({"version: 2"}), 1, 10, "unsupported policy version 2: expected version 1"},
        error_case{"not_a_number", lines({"version: one"}), 1, 10,
                   "expected version as a whole number from 1 to 1000000, found 'one'"},
        error_case{"zero", lines({"version: 0"}), 1, 10,
                   "expected version as a whole number from 1 to 1000000, found '0'"},
        error_case{"a_list", lines({"version: [1]"}), 1, 10, "expected version as a whole number"}),
    case_name);

INSTANTIATE_TEST_SUITE_P(
    types, config_loader_error,
    ::testing::Values(
        error_case{"groups_as_list", lines({"version: 1", "groups: [web]"}), 2, 9,
                   "expected groups: a mapping of group names to groups (a mapping), found a list"},
        error_case{"clients_as_list", lines({"version: 1", "clients: [app]"}), 2, 10,
                   "expected clients: a mapping of client names to clients (a mapping), found a list"},
        error_case{"deny_as_map", lines({"version: 1", "deny: {destinations: [pastebin.com]}"}), 2, 7,
                   "expected deny: a list of deny rules"},
        error_case{"rules_as_map",
                   lines({"version: 1", "groups:", "  web:", "    rules: {ports: 443}", "clients:", "  app:",
                          "    sources: [10.0.0.0/8]", "    groups: [web]"}),
                   4, 12, "expected the rules of group 'web' (a list of rules)"},
        error_case{"rule_as_scalar",
                   lines({"version: 1", "groups:", "  web:", "    rules:", "      - api.example.com", "clients:",
                          "  app:", "    sources: [10.0.0.0/8]", "    groups: [web]"}),
                   5, 9, "expected rule of group 'web' (a mapping), found a scalar"},
        error_case{"ports_as_map", rule_policy("{http: 80}", "[api.example.com]"), 5, 16,
                   "expected ports (a list), found a mapping"},
        error_case{"port_item_as_list", rule_policy("[[80, 443]]", "[api.example.com]"), 5, 17,
                   "expected ports item, found a list"},
        error_case{"destinations_as_map", rule_policy("[443]", "{host: api.example.com}"), 6, 23,
                   "expected destinations (a list), found a mapping"},
        error_case{"description_as_list", rule_policy("[443]", "[api.example.com]", {"        description: [a, b]"}),
                   7, 22, "expected description text, found a list"},
        error_case{"client_sources_as_map", client_policy({"    sources: {net: 10.0.0.0/8}", "    groups: [web]"}),
                   9, 14, "expected sources (a list), found a mapping"},
        error_case{"client_as_list", lines({"version: 1", "clients:", "  app: [web]"}), 3, 8,
                   "expected client 'app' (a mapping), found a list"}),
    case_name);

// Ports: the rule's ports value starts at column 16, its first list item at column 17.
INSTANTIATE_TEST_SUITE_P(
    ports, config_loader_error,
    ::testing::Values(
        error_case{"zero", rule_policy("[0]", "[api.example.com]"), 5, 17,
                   "expected a port as a whole number from 1 to 65535, found '0'"},
        error_case{"zero_scalar", rule_policy("0", "[api.example.com]"), 5, 16,
                   "expected a port as a whole number from 1 to 65535, found '0'"},
        error_case{"above_65535", rule_policy("[65536]", "[api.example.com]"), 5, 17,
                   "expected a port as a whole number from 1 to 65535, found '65536'"},
        // "-1" reads as a range with no first port.
        error_case{"negative", rule_policy("[-1]", "[api.example.com]"), 5, 17,
                   "expected a port as a whole number from 1 to 65535, found '-1'"},
        error_case{"word", rule_policy("[abc]", "[api.example.com]"), 5, 17,
                   "expected a port as a whole number from 1 to 65535, found 'abc'"},
        error_case{"second_item_bad", rule_policy("[443, https]", "[api.example.com]"), 5, 22,
                   "expected a port as a whole number from 1 to 65535, found 'https'"},
        error_case{"reversed_range", rule_policy("[21-20]", "[api.example.com]"), 5, 17,
                   "reversed port range '21-20': expected the lower port first, as in 20-21"},
        error_case{"open_range", rule_policy("[20-]", "[api.example.com]"), 5, 17,
                   "expected the last port of range '20-' as a whole number from 1 to 65535"},
        error_case{"range_above_65535", rule_policy("[65000-65536]", "[api.example.com]"), 5, 17,
                   "expected the last port of range '65000-65536' as a whole number from 1 to 65535, found '65536'"},
        error_case{"empty_list", rule_policy("[]", "[api.example.com]"), 5, 16,
                   "empty port list: expected ports like 443, 20-21 or all"},
        // An allow rule must say its ports; reported at the rule.
        error_case{"missing",
                   lines({"version: 1", "groups:", "  web:", "    rules:", "      - destinations: [api.example.com]",
                          "clients:", "  app:", "    sources: [10.0.0.0/8]", "    groups: [web]"}),
                   5, 9, "missing required key 'ports' in rule of group 'web'"}),
    case_name);

// Destinations: the value starts at column 23, its first list item at column 24.
INSTANTIATE_TEST_SUITE_P(
    destinations, config_loader_error,
    ::testing::Values(
        error_case{"cidr_prefix_too_long", rule_policy("[443]", "[10.0.0.0/33]"), 6, 24,
                   "'10.0.0.0/33' has a bad prefix length: expected 0..32"},
        error_case{"cidr_host_bits_set", rule_policy("[443]", "[10.0.0.1/8]"), 6, 24,
                   "'10.0.0.1/8' has host bits set below /8: expected the network address"},
        error_case{"cidr_empty_prefix", rule_policy("[443]", "[10.0.0.0/]"), 6, 24,
                   "'10.0.0.0/' has a bad prefix length: expected 0..32"},
        error_case{"ipv6_cidr_prefix_too_long", rule_policy("[443]", "['2001:db8::/129']"), 6, 24,
                   "has a bad prefix length: expected 0..128"},
        error_case{"wildcard_in_the_middle", rule_policy("[443]", "[foo.*.example.com]"), 6, 24,
                   "invalid destination 'foo.*.example.com': wildcard '*' is allowed only as the whole leftmost label"},
        error_case{"wildcard_inside_a_label", rule_policy("[443]", "[a*.example.com]"), 6, 24,
                   "invalid destination 'a*.example.com': wildcard '*' is allowed only as the whole leftmost label"},
        error_case{"u_label", rule_policy("[443]", "[bücher.example]"), 6, 24,
                   "write internationalized names as punycode A-labels"},
        error_case{"numeric_name", rule_policy("[443]", "[127.1]"), 6, 24,
                   "'127.1' looks like an IP address in a non-canonical form"},
        error_case{"second_item_bad", rule_policy("[443]", "[api.example.com, bad_host-.example.com]"), 6, 41,
                   "invalid destination 'bad_host-.example.com'"},
        error_case{"empty_list", rule_policy("[443]", "[]"), 6, 23,
                   "empty destination list: expected domain patterns or CIDRs"},
        // Written with no value at all: located at the key, not at whatever line comes next.
        error_case{"no_value", rule_policy("[443]", ""), 6, 9, "expected destinations (a list), found nothing"},
        error_case{"missing",
                   lines({"version: 1", "groups:", "  web:", "    rules:", "      - ports: [443]", "clients:",
                          "  app:", "    sources: [10.0.0.0/8]", "    groups: [web]"}),
                   5, 9, "missing required key 'destinations' (or 'destinations_file') in rule of group 'web'"},
        error_case{"deny_rule_missing", lines({"version: 1", "deny:", "  - ports: [443]"}), 3, 5,
                   "missing required key 'destinations' (or 'destinations_file') in deny rule"}),
    case_name);

// expires is on line 7, its value at column 18.
INSTANTIATE_TEST_SUITE_P(
    expires, config_loader_error,
    ::testing::Values(
        error_case{"word", rule_policy("[443]", "[api.example.com]", {"        expires: tomorrow"}), 7, 18,
                   "unparseable time 'tomorrow': expected RFC 3339 with an offset, like 2026-12-31T23:59:59Z"},
        error_case{"month_13", rule_policy("[443]", "[api.example.com]", {"        expires: 2026-13-01T00:00:00Z"}),
                   7, 18, "unparseable time '2026-13-01T00:00:00Z': expected RFC 3339 with an offset"},
        error_case{"no_offset", rule_policy("[443]", "[api.example.com]", {"        expires: 2026-12-31T00:00:00"}),
                   7, 18, "unparseable time '2026-12-31T00:00:00': expected RFC 3339 with an offset"},
        error_case{"date_only", rule_policy("[443]", "[api.example.com]", {"        expires: 2026-12-31"}), 7, 18,
                   "unparseable time '2026-12-31'"}),
    case_name);

INSTANTIATE_TEST_SUITE_P(
    modes, config_loader_error,
    ::testing::Values(
        error_case{"policy_mode", lines({"version: 1", "mode: strict"}), 2, 7,
                   "unknown mode 'strict': expected enforce or report"},
        error_case{"policy_mode_list", lines({"version: 1", "mode: [enforce]"}), 2, 7,
                   "expected mode: enforce or report, found a list"},
        error_case{"client_mode_override",
                   client_policy({"    sources: [10.0.0.0/8]", "    groups: [web]", "    mode: audit"}), 11, 11,
                   "unknown mode 'audit': expected enforce or report"},
        error_case{"protocol_udp", rule_policy("[443]", "[api.example.com]", {"        protocol: udp"}), 7, 19,
                   "unsupported protocol 'udp': expected tcp"}),
    case_name);

INSTANTIATE_TEST_SUITE_P(
    on_revoke, config_loader_error,
    ::testing::Values(
        // "on_revoke: " is 11 characters: the value starts at column 12.
        error_case{"unknown_action", lines({"version: 1", "on_revoke: drop"}), 2, 12,
                   "unknown on_revoke action 'drop': expected close or keep"},
        // Names, not YAML booleans: "true" says nothing about which way.
        error_case{"a_boolean", lines({"version: 1", "on_revoke: true"}), 2, 12,
                   "unknown on_revoke action 'true': expected close or keep"},
        error_case{"upper_case", lines({"version: 1", "on_revoke: Close"}), 2, 12,
                   "unknown on_revoke action 'Close': expected close or keep"},
        error_case{"a_list", lines({"version: 1", "on_revoke: [close]"}), 2, 12,
                   "expected on_revoke: close or keep, found a list"},
        error_case{"a_mapping", lines({"version: 1", "on_revoke: {tunnels: keep}"}), 2, 12,
                   "expected on_revoke: close or keep, found a mapping"}),
    case_name);

INSTANTIATE_TEST_SUITE_P(
    requests, config_loader_error,
    ::testing::Values(
        // "requests: " is 10 characters: the value starts at column 11.
        error_case{"unknown_setting", lines({"version: 1", "requests: maybe"}), 2, 11,
                   "unknown requests setting 'maybe': expected on or off"},
        error_case{"upper_case", lines({"version: 1", "requests: Off"}), 2, 11,
                   "unknown requests setting 'Off': expected on or off"},
        error_case{"a_list", lines({"version: 1", "requests: [on]"}), 2, 11,
                   "expected requests: on or off, found a list"},
        // Client keys start at column 5: "    requests: " is 14 characters.
        error_case{"client_unknown_setting",
                   client_policy({"    sources: [10.0.0.0/8]", "    groups: [web]", "    requests: sometimes"}), 11, 15,
                   "unknown requests setting 'sometimes': expected on or off"},
        // "    approvals: {" is 16 characters, "required: 2, " 13 more: the unknown key starts at column 30.
        error_case{"approvals_unknown_key",
                   client_policy(
                       {"    sources: [10.0.0.0/8]", "    groups: [web]", "    approvals: {required: 2, quorum: 3}"}),
                   11, 30, "unknown key 'quorum' in approvals of client 'app'; expected one of: required"},
        // "    approvals: {required: " is 26 characters.
        error_case{"approvals_three",
                   client_policy({"    sources: [10.0.0.0/8]", "    groups: [web]", "    approvals: {required: 3}"}),
                   11, 27, "expected required approvals as a whole number from 1 to 2, found '3'"},
        error_case{"approvals_zero",
                   client_policy({"    sources: [10.0.0.0/8]", "    groups: [web]", "    approvals: {required: 0}"}),
                   11, 27, "expected required approvals as a whole number from 1 to 2, found '0'"},
        // Block form: "      required: " is 16 characters.
        error_case{"approvals_not_a_number",
                   client_policy(
                       {"    sources: [10.0.0.0/8]", "    groups: [web]", "    approvals:", "      required: two"}),
                   12, 17, "expected required approvals as a whole number from 1 to 2, found 'two'"},
        error_case{"approvals_a_scalar",
                   client_policy({"    sources: [10.0.0.0/8]", "    groups: [web]", "    approvals: 2"}), 11, 16,
                   "expected approvals of client 'app'"}),
    case_name);

INSTANTIATE_TEST_SUITE_P(
    address_guard, config_loader_error,
    ::testing::Values(
        // "  except: [documentation, " is 26 characters: the unknown name starts at column 27.
        error_case{"unknown_set", lines({"version: 1", "address_guard:", "  except: [documentation, intranet]"}), 3,
                   27,
                   "unknown guarded set 'intranet'; expected one of: cloud_metadata, loopback, unspecified, private, "
                   "cgnat, link_local, unique_local, multicast, broadcast, reserved, benchmarking, documentation"},
        error_case{"as_list", lines({"version: 1", "address_guard: [documentation]"}), 2, 16,
                   "expected address_guard settings (a mapping), found a list"},
        error_case{"nat64_prefix_length", lines({"version: 1", "address_guard:", "  nat64_prefixes: [\"2001:470::/80\"]"}),
                   3, 20, "invalid NAT64 prefix '2001:470::/80': expected an IPv6 prefix of length 32, 40, 48, 56, 64 or 96"},
        error_case{"nat64_prefix_v4", lines({"version: 1", "address_guard:", "  nat64_prefixes: [10.0.0.0/8]"}), 3, 20,
                   "invalid NAT64 prefix '10.0.0.0/8'"},
        error_case{"nat64_prefix_not_a_cidr", lines({"version: 1", "address_guard:", "  nat64_prefixes: [nat64]"}), 3, 20,
                   "nat64"},
        error_case{"nat64_too_many_prefixes",
                   lines({"version: 1", "address_guard:",
                          "  nat64_prefixes: [\"2001:470:1::/96\", \"2001:470:2::/96\", \"2001:470:3::/96\", "
                          "\"2001:470:4::/96\", \"2001:470:5::/96\"]"}),
                   3, 19, "too many nat64_prefixes: at most 4"}),
    case_name);

INSTANTIATE_TEST_SUITE_P(
    names, config_loader_error,
    ::testing::Values(
        error_case{"group_with_space",
                   lines({"version: 1", "groups:", "  \"my group\":", "    rules:", "      - ports: [443]",
                          "        destinations: [api.example.com]"}),
                   3, 3, "invalid group name 'my group': expected 1 to 128 letters, digits, '-', '_' or '.'"},
        error_case{"group_empty",
                   lines({"version: 1", "groups:", "  \"\":", "    rules:", "      - ports: [443]",
                          "        destinations: [api.example.com]"}),
                   3, 3, "invalid group name '': expected 1 to 128 letters"},
        error_case{"client_with_space",
                   lines({"version: 1", "clients:", "  \"my app\":", "    sources: [10.0.0.0/8]", "    groups: []"}),
                   3, 3, "invalid client name 'my app': expected 1 to 128 letters, digits, '-', '_' or '.'"},
        error_case{"client_empty",
                   lines({"version: 1", "clients:", "  \"\":", "    sources: [10.0.0.0/8]", "    groups: []"}), 3, 3,
                   "invalid client name '': expected 1 to 128 letters"},
        error_case{"client_named_dash",
                   lines({"version: 1", "clients:", "  \"-\":", "    sources: [10.0.0.0/8]", "    groups: []"}), 3, 3,
                   "the client name '-' is reserved (it stands for no client)"},
        error_case{"client_source_not_cidr", client_policy({"    sources: [10.0.0.0/8, office]", "    groups: [web]"}),
                   9, 27, "'office' is not a CIDR"}),
    case_name);

// Errors found by policy::compile, surfaced with the file and position of the YAML that caused them.
INSTANTIATE_TEST_SUITE_P(
    semantics, config_loader_error,
    ::testing::Values(
        // "    groups: [web, " is 18 characters: the reference to db is at column 19.
        error_case{"undefined_group", client_policy({"    sources: [10.0.0.0/8]", "    groups: [web, db]"}), 10, 19,
                   "client 'app' uses group 'db', which is not defined"},
        error_case{"group_defined_twice",
                   rule_policy("[443]", "[api.example.com]",
                               {"  web:", "    rules:", "      - ports: [80]",
                                "        destinations: [b.example.com]"}),
                   7, 3, "group 'web' is defined twice; first definition at policy.yaml:3:3"},
        error_case{"client_defined_twice",
                   client_policy({"    sources: [10.0.0.0/8]", "    groups: [web]", "  app:",
                                  "    sources: [192.168.0.0/16]", "    groups: [web]"}),
                   11, 3, "client 'app' is defined twice; first definition at policy.yaml:8:3"},
        // "    sources: [192.168.0.0/16, " is 30 characters: the tied source is at column 31.
        error_case{"source_tie",
                   client_policy({"    sources: [10.0.0.0/8]", "    groups: [web]", "  batch:",
                                  "    sources: [192.168.0.0/16, 10.0.0.0/8]", "    groups: [web]"}),
                   12, 31, "source 10.0.0.0/8 of client 'batch' is also a source of client 'app'"}),
    case_name);

// --- several files ------------------------------------------------------------------------------------------

// a.yaml: group web at 3:3, client app at 8:3 with source 10.0.0.0/8.
std::string base_file() { return rule_policy("[443]", "[api.example.com]"); }

struct multi_file_case {
    std::string name;
    std::vector<std::pair<std::string, std::string>> files;
    located error;
    std::string also;  // a second fragment, naming the other place
};

// Test names already say which case failed; print just the name instead of the bytes.
void PrintTo(const multi_file_case& c, std::ostream* os) { *os << c.name; }

std::string multi_case_name(const ::testing::TestParamInfo<multi_file_case>& info) { return info.param.name; }

class config_loader_merge_error : public ::testing::TestWithParam<multi_file_case> {};

TEST_P(config_loader_merge_error, names_both_places)
{
    const auto& c = GetParam();
    auto loaded = load_policy_texts(c.files);
    EXPECT_EQ(loaded.snapshot, nullptr);
    ASSERT_EQ(loaded.errors.size(), 1u) << test::show(loaded);
    test::expect_diagnostic(loaded.errors[0], c.error);
    EXPECT_NE(loaded.errors[0].message.find(c.also), std::string::npos) << loaded.errors[0].message;
}

INSTANTIATE_TEST_SUITE_P(
    files, config_loader_merge_error,
    ::testing::Values(
        multi_file_case{"group_in_two_files",
                        {{"a.yaml", base_file()},
                         {"b.yaml", lines({"version: 1", "groups:", "  web:", "    rules:", "      - ports: [80]",
                                           "        destinations: [b.example.com]"})}},
                        {"b.yaml", 3, 3, "group 'web' is defined twice"},
                        "first definition at a.yaml:3:3"},
        multi_file_case{"client_in_two_files",
                        {{"a.yaml", base_file()},
                         {"b.yaml", lines({"version: 1", "clients:", "  app:", "    sources: [192.168.0.0/16]",
                                           "    groups: [web]"})}},
                        {"b.yaml", 3, 3, "client 'app' is defined twice"},
                        "first definition at a.yaml:8:3"},
        multi_file_case{"source_tie_across_files",
                        {{"a.yaml", base_file()},
                         {"b.yaml", lines({"version: 1", "clients:", "  other:", "    sources: [10.0.0.0/8]",
                                           "    groups: [web]"})}},
                        {"b.yaml", 4, 15, "source 10.0.0.0/8 of client 'other'"},
                        "is also a source of client 'app'"},
        multi_file_case{"undefined_group_in_second_file",
                        {{"a.yaml", base_file()},
                         {"b.yaml", lines({"version: 1", "clients:", "  other:", "    sources: [192.168.0.0/16]",
                                           "    groups: [web, db]"})}},
                        {"b.yaml", 5, 19, "client 'other' uses group 'db'"},
                        "which is not defined"},
        multi_file_case{"mode_in_two_files",
                        {{"a.yaml", lines({"version: 1", "mode: enforce"})},
                         {"b.yaml", lines({"version: 1", "mode: report"})}},
                        {"b.yaml", 2, 7, "mode is also set at a.yaml:2:7"},
                        "set it in one file only"},
        multi_file_case{"address_guard_in_two_files",
                        {{"a.yaml", lines({"version: 1", "address_guard:", "  except: [documentation]"})},
                         {"b.yaml", lines({"version: 1", "address_guard:", "  except: [benchmarking]"})}},
                        {"b.yaml", 3, 3, "address_guard is also set at a.yaml:3:3"},
                        "set it in one file only"},
        multi_file_case{"on_revoke_in_two_files",
                        {{"a.yaml", lines({"version: 1", "on_revoke: keep"})},
                         {"b.yaml", lines({"version: 1", "on_revoke: keep"})}},
                        {"b.yaml", 2, 12, "on_revoke is also set at a.yaml:2:12"},
                        "set it in one file only"},
        multi_file_case{"requests_in_two_files",
                        {{"a.yaml", lines({"version: 1", "requests: off"})},
                         {"b.yaml", lines({"version: 1", "requests: on"})}},
                        {"b.yaml", 2, 11, "requests is also set at a.yaml:2:11"},
                        "set it in one file only"},
        multi_file_case{"schema_error_in_second_file",
                        {{"a.yaml", base_file()}, {"b.yaml", lines({"version: 1", "grups: {}"})}},
                        {"b.yaml", 2, 1, "unknown key 'grups' in the policy"},
                        "expected one of"},
        multi_file_case{"each_file_needs_a_version",
                        {{"a.yaml", base_file()}, {"b.yaml", lines({"mode: report"})}},
                        {"b.yaml", 1, 1, "missing required key 'version'"},
                        "in the policy"}),
    multi_case_name);

TEST(config_loader_merge, group_and_client_may_live_in_different_files)
{
    auto loaded = load_policy_texts(
        {{"groups.yaml", lines({"version: 1", "groups:", "  web:", "    rules:", "      - ports: [443]",
                                "        destinations: [api.example.com]"})},
         {"clients.yaml",
          lines({"version: 1", "clients:", "  app:", "    sources: [10.0.0.0/8]", "    groups: [web]"})}});
    ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
    EXPECT_TRUE(loaded.errors.empty());
    EXPECT_TRUE(loaded.warnings.empty()) << test::show(loaded);
    EXPECT_EQ(loaded.files, (std::vector<std::string>{"groups.yaml", "clients.yaml"}));
}

// --- every error of a document at once ----------------------------------------------------------------------

TEST(config_loader_all_errors, are_reported_in_one_run)
{
    std::string yaml = lines({
        "version: 2",                                // 1:10 unsupported version
        "mode: strict",                              // 2:7  unknown mode
        "logging: verbose",                          // 3:1  unknown key
        "groups:",                                   //
        "  web:",                                    //
        "    rules:",                                //
        "      - ports: [0]",                        // 7:17 port out of range
        "        destinations: [foo.*.example.com]", // 8:24 wildcard in the middle
        "        expires: tomorrow",                 // 9:18 unparseable time
        "clients:",                                  //
        "  app:",                                    //
        "    sources: [10.0.0.1/8]",                 // 12:15 host bits set
        "    groups: [web, db]",                     // 13:19 undefined group (found by compile)
        "    mode: audit",                           // 14:11 unknown mode
    });
    auto loaded = load_policy_texts({{"policy.yaml", yaml}});
    EXPECT_EQ(loaded.snapshot, nullptr);

    using place = std::tuple<std::uint32_t, std::uint32_t>;
    std::vector<place> got;
    for (const auto& e : loaded.errors) {
        EXPECT_EQ(e.file, "policy.yaml");
        got.emplace_back(e.where.line, e.where.column);
    }
    // Reported in reading order, schema and compile errors interleaved by position.
    std::vector<place> want{{1, 10}, {2, 7}, {3, 1}, {7, 17}, {8, 24}, {9, 18}, {12, 15}, {13, 19}, {14, 11}};
    EXPECT_EQ(loaded.errors.size(), 9u) << test::show(loaded);
    EXPECT_EQ(got, want) << test::show(loaded);
}

// A quoted key or name can spell any control character through a YAML escape; the formatted diagnostic, which
// goes to terminals, logs and reload answers, shows each as an escape instead of sending it.
TEST(config_loader_diagnostics, show_control_characters_as_escapes)
{
    auto loaded = load_policy_texts({{"policy.yaml", lines({"version: 1", R"("a\x1bb\u00e9\u0085": 2)", "groups:",
                                                             R"(  "\e[2J\t\x7f": {rules: []})"})}});
    ASSERT_EQ(loaded.errors.size(), 2u) << test::show(loaded);
    EXPECT_EQ(loaded.errors[0].format("error"),
              "policy.yaml:2:1: error: unknown key 'a\\x1Bb\u00e9\\u0085' in the policy; expected one of: version, "
              "mode, tls, address_guard, groups, clients, deny, on_revoke, requests");
    EXPECT_EQ(loaded.errors[1].format("error"),
              "policy.yaml:4:3: error: invalid group name '\\x1B[2J\\x09\\x7F': expected 1 to 128 letters, digits, "
              "'-', '_' or '.'");
    // yaml-cpp writes the escape "\N" (NEL) as the lone byte 0x85, which is no UTF-8.
    loaded = load_policy_texts({{"policy.yaml", lines({"version: 1", R"("n\N": 2)"})}});
    ASSERT_EQ(loaded.errors.size(), 1u) << test::show(loaded);
    EXPECT_NE(loaded.errors[0].format("error").find("unknown key 'n\\x85'"), std::string::npos)
        << loaded.errors[0].format("error");
}

TEST(config_loader_all_errors, of_every_file_are_reported)
{
    auto loaded = load_policy_texts({{"a.yaml", lines({"version: 1", "mode: sometimes"})},
                                     {"b.yaml", lines({"version: 1", "groups: [web]"})},
                                     {"c.yaml", "version: [\n"}});
    EXPECT_EQ(loaded.snapshot, nullptr);
    ASSERT_EQ(loaded.errors.size(), 3u) << test::show(loaded);
    // Files are reported in the order given.
    test::expect_diagnostic(loaded.errors[0], located{"a.yaml", 2, 7, "unknown mode 'sometimes'"});
    test::expect_diagnostic(loaded.errors[1], located{"b.yaml", 2, 9, "expected groups: a mapping"});
    test::expect_diagnostic(loaded.errors[2], located{"c.yaml", 2, 1, "YAML syntax error"});
}

}  // namespace
}  // namespace egressd::config
