// The command line in process: run_cli with string streams, on the shipped example policy and on
// policies written to a temporary directory. Every explain passes --at, so no result depends on the clock.

#include "tests/support/temp_dir.hpp"
#include "tests/proxy/cli_support.hpp"
#include "tests/proxy/mini_json.hpp"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

namespace egressd::proxy {
namespace {

using test::contains;
using test::example_path;
using test::run;
using test::show;
using test_support::json_reader;
using test_support::json_value;

const std::string example_text = test::read_text(example_path);

// Where a rule of the example starts (its map begins at the first key, the description), as "path:line:col".
std::string rule_at(std::string_view description)
{
    return example_path + ":" + test::position_of(example_text, "description: " + std::string(description));
}

// policy explain on the example at a fixed time before the monitoring rule expires.
test::cli_result explain(std::vector<std::string> extra)
{
    std::vector<std::string> args{"policy", "explain", example_path};
    args.insert(args.end(), extra.begin(), extra.end());
    bool has_at = false;
    for (const auto& a : args) {
        has_at = has_at || a == "--at";
    }
    if (!has_at) {
        args.insert(args.end(), {"--at", "2026-06-01T12:00:00Z"});
    }
    return run(args);
}

// --- top-level commands -------------------------------------------------------------------------------------

TEST(cli_commands, version)
{
    for (const char* flag : {"--version", "-V"}) {
        auto r = run({flag});
        EXPECT_EQ(r.code, exit_ok) << show(r);
        ASSERT_TRUE(r.out.starts_with("egressd ")) << show(r);
        // "egressd 0.1.0\n": a dotted version number and nothing else.
        std::string version = r.out.substr(8);
        ASSERT_FALSE(version.empty());
        EXPECT_EQ(version.back(), '\n');
        version.pop_back();
        EXPECT_FALSE(version.empty());
        EXPECT_EQ(version.find_first_not_of("0123456789."), std::string::npos) << version;
        EXPECT_TRUE(contains(version, ".")) << version;
        EXPECT_TRUE(r.err.empty()) << show(r);
    }
}

TEST(cli_commands, help_goes_to_stdout)
{
    for (const char* flag : {"--help", "-h", "help"}) {
        auto r = run({flag});
        EXPECT_EQ(r.code, exit_ok) << show(r);
        EXPECT_TRUE(contains(r.out, "Usage:")) << show(r);
        EXPECT_TRUE(contains(r.out, "egressd policy check PATH")) << show(r);
        EXPECT_TRUE(contains(r.out, "egressd policy explain PATH")) << show(r);
        EXPECT_TRUE(contains(r.out, "Exit codes: 0 ok, 1 invalid policy or unreadable file, 2 usage error, 3 denied"))
            << show(r);
        EXPECT_TRUE(contains(r.out, "4 a replay found newly denied traffic or a policy test failed")) << show(r);
        for (const char* command :
             {"egressd policy test POLICY CASES.yaml", "egressd policy replay CANDIDATE --events FILE...",
              "egressd policy suggest --events FILE...", "egressd events summary FILE..."}) {
            EXPECT_TRUE(contains(r.out, command)) << command << "\n" << show(r);
        }
        EXPECT_TRUE(r.err.empty()) << show(r);
    }
}

TEST(cli_commands, policy_help)
{
    for (std::vector<std::string> args : {std::vector<std::string>{"policy", "--help"},
                                          {"policy", "-h"},
                                          {"policy", "check", "--help"},
                                          {"policy", "explain", "--help"},
                                          {"policy", "explain", example_path, "--help"},
                                          {"policy", "test", "--help"},
                                          {"policy", "replay", "--help"},
                                          {"policy", "suggest", "-h"}}) {
        auto r = run(args);
        EXPECT_EQ(r.code, exit_ok) << show(r);
        EXPECT_TRUE(contains(r.out, "egressd policy check PATH")) << show(r);
        EXPECT_TRUE(contains(r.out, "--resolved IP")) << show(r);
        EXPECT_TRUE(contains(r.out, "--at TIME")) << show(r);
        EXPECT_TRUE(contains(r.out, "egressd policy test POLICY CASES.yaml [--json]")) << show(r);
        EXPECT_TRUE(contains(r.out, "Exit 0 nothing allowed before would be denied, 4 something would be")) << show(r);
        EXPECT_TRUE(contains(r.out, "Write a policy that would allow what the events show")) << show(r);
        EXPECT_TRUE(r.err.empty()) << show(r);
    }
}

TEST(cli_commands, no_arguments_is_a_usage_error)
{
    auto r = run({});
    EXPECT_EQ(r.code, exit_usage) << show(r);
    EXPECT_TRUE(r.out.empty()) << show(r);
    EXPECT_TRUE(contains(r.err, "Usage:")) << show(r);

    r = run({"policy"});
    EXPECT_EQ(r.code, exit_usage) << show(r);
    EXPECT_TRUE(r.out.empty()) << show(r);
    EXPECT_TRUE(contains(r.err, "egressd policy check PATH")) << show(r);
}

struct usage_case {
    std::string name;
    std::vector<std::string> args;
    std::string fragment;
};

void PrintTo(const usage_case& c, std::ostream* os) { *os << c.name; }

std::string usage_case_name(const ::testing::TestParamInfo<usage_case>& param) { return param.param.name; }

class cli_usage_error : public ::testing::TestWithParam<usage_case> {};

TEST_P(cli_usage_error, exits_2_and_says_what_is_wrong)
{
    const auto& c = GetParam();
    auto r = run(c.args);
    EXPECT_EQ(r.code, exit_usage) << show(r);
    EXPECT_TRUE(r.out.empty()) << show(r);
    EXPECT_TRUE(contains(r.err, "egressd: " + c.fragment)) << show(r);
    EXPECT_TRUE(contains(r.err, "Run 'egressd --help' for usage.")) << show(r);
}

std::vector<std::string> explain_args(std::vector<std::string> extra)
{
    std::vector<std::string> args{"policy", "explain", example_path};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
}

INSTANTIATE_TEST_SUITE_P(
    commands, cli_usage_error,
    ::testing::Values(usage_case{"unknown_command", {"serve"}, "unknown command 'serve'"},
                      usage_case{"unknown_policy_command", {"policy", "lint", example_path},
                                 "unknown policy command 'lint'"},
                      usage_case{"unknown_events_command", {"events", "tail", "x.log"},
                                 "unknown events command 'tail'"},
                      usage_case{"check_without_path", {"policy", "check"}, "policy check takes exactly one PATH"},
                      usage_case{"check_with_two_paths", {"policy", "check", example_path, example_path},
                                 "policy check takes exactly one PATH"},
                      usage_case{"check_with_an_option", {"policy", "check", "--json"},
                                 "policy check takes exactly one PATH"}),
    usage_case_name);

INSTANTIATE_TEST_SUITE_P(
    explain, cli_usage_error,
    ::testing::Values(
        usage_case{"client_and_source",
                   explain_args({"--client", "web", "--source", "10.30.1.1", "--dest", "a.example:443"}),
                   "policy explain needs --client NAME, or --source IP and/or --identity ID"},
        usage_case{"neither_client_nor_source", explain_args({"--dest", "a.example:443"}),
                   "policy explain needs --client NAME, or --source IP and/or --identity ID"},
        usage_case{"no_dest", explain_args({"--client", "web"}), "policy explain needs --dest HOST:PORT"},
        usage_case{"no_path", {"policy", "explain", "--client", "web", "--dest", "a.example:443"},
                   "policy explain needs a policy PATH"},
        usage_case{"two_paths", explain_args({example_path, "--client", "web", "--dest", "a.example:443"}),
                   "unexpected argument '" + example_path + "'"},
        usage_case{"dest_without_port", explain_args({"--client", "web", "--dest", "api.payments.example"}),
                   "--dest 'api.payments.example': missing port: expected host:port"},
        usage_case{"dest_port_0", explain_args({"--client", "web", "--dest", "api.payments.example:0"}),
                   "--dest 'api.payments.example:0': invalid port '0': expected 1 to 65535"},
        usage_case{"dest_port_70000", explain_args({"--client", "web", "--dest", "api.payments.example:70000"}),
                   "--dest 'api.payments.example:70000': invalid port '70000': expected 1 to 65535"},
        usage_case{"dest_port_word", explain_args({"--client", "web", "--dest", "api.payments.example:https"}),
                   "--dest 'api.payments.example:https': invalid port 'https': expected 1 to 65535"},
        usage_case{"dest_ipv6_without_brackets", explain_args({"--client", "web", "--dest", "2001:db8::1:443"}),
                   "--dest '2001:db8::1:443': IPv6 literal without brackets: expected [address]:port"},
        usage_case{"dest_numeric_name", explain_args({"--client", "web", "--dest", "127.1:80"}),
                   "--dest '127.1:80': '127.1' looks like an IP address in a non-canonical form"},
        usage_case{"dest_without_value", explain_args({"--client", "web", "--dest"}), "--dest needs a value"},
        usage_case{"bad_at", explain_args({"--client", "web", "--dest", "a.example:443", "--at", "tomorrow"}),
                   "--at 'tomorrow' is not an RFC 3339 time like 2026-12-31T12:00:00Z"},
        usage_case{"at_without_offset",
                   explain_args({"--client", "web", "--dest", "a.example:443", "--at", "2026-12-31T12:00:00"}),
                   "--at '2026-12-31T12:00:00' is not an RFC 3339 time"},
        usage_case{"bad_source", explain_args({"--source", "10.30.1", "--dest", "a.example:443"}),
                   "--source '10.30.1' is not an IP address"},
        usage_case{"bad_resolved",
                   explain_args({"--client", "web", "--dest", "a.example:443", "--resolved", "a.example"}),
                   "--resolved 'a.example' is not an IP address"},
        usage_case{"unknown_option", explain_args({"--client", "web", "--dest", "a.example:443", "--verbose", "1"}),
                   "unknown option '--verbose'"},
        usage_case{"unknown_client", explain_args({"--client", "nobody", "--dest", "a.example:443"}),
                   "no client named 'nobody' in " + example_path},
        // "help" is a valid client name: as an option's value it is looked up, not taken as a help request.
        usage_case{"client_named_help", explain_args({"--client", "help", "--dest", "a.example:443"}),
                   "no client named 'help' in " + example_path}),
    usage_case_name);

// The offline tools name their own help page.
class cli_tools_usage_error : public ::testing::TestWithParam<usage_case> {};

TEST_P(cli_tools_usage_error, exits_2_and_says_what_is_wrong)
{
    const auto& c = GetParam();
    auto r = run(c.args);
    EXPECT_EQ(r.code, exit_usage) << show(r);
    EXPECT_TRUE(r.out.empty()) << show(r);
    EXPECT_TRUE(contains(r.err, "egressd: " + c.fragment)) << show(r);
    EXPECT_TRUE(contains(r.err, "Run 'egressd " + c.args[0] + " --help' for usage.")) << show(r);
}

INSTANTIATE_TEST_SUITE_P(
    tools, cli_tools_usage_error,
    ::testing::Values(
        usage_case{"summary_without_files", {"events", "summary"}, "events summary needs at least one FILE"},
        usage_case{"summary_bad_since", {"events", "summary", "x.log", "--since", "yesterday"},
                   "--since 'yesterday' is neither a duration like 90s, 30m, 1h, 7d nor an RFC 3339 time"},
        usage_case{"summary_since_without_value", {"events", "summary", "x.log", "--since"}, "--since needs a value"},
        usage_case{"summary_unknown_option", {"events", "summary", "x.log", "--top", "5"}, "unknown option '--top'"},
        usage_case{"replay_without_events", {"policy", "replay", example_path},
                   "--events needs at least one FILE (- for standard input)"},
        usage_case{"replay_events_without_files", {"policy", "replay", example_path, "--events", "--json"},
                   "--events needs at least one FILE"},
        usage_case{"replay_without_candidate", {"policy", "replay", "--events", "x.log"},
                   "policy replay takes one CANDIDATE policy and --events FILE..."},
        usage_case{"replay_two_candidates", {"policy", "replay", example_path, example_path, "--events", "x.log"},
                   "policy replay takes one CANDIDATE policy and --events FILE..."},
        usage_case{"replay_bad_since", {"policy", "replay", example_path, "--events", "x.log", "--since", "1y"},
                   "--since '1y' is neither a duration"},
        usage_case{"replay_unknown_option", {"policy", "replay", example_path, "--events", "x.log", "--at", "now"},
                   "unknown option '--at'"},
        usage_case{"test_without_cases", {"policy", "test", example_path},
                   "policy test takes a POLICY and a CASES.yaml file"},
        usage_case{"test_three_paths", {"policy", "test", example_path, "a.yaml", "b.yaml"},
                   "policy test takes a POLICY and a CASES.yaml file"},
        usage_case{"test_unknown_option", {"policy", "test", example_path, "a.yaml", "--verbose"},
                   "unknown option '--verbose'"}),
    usage_case_name);

// --- policy check -------------------------------------------------------------------------------------------

TEST(cli_check, the_example_is_valid)
{
    auto r = run({"policy", "check", example_path});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    EXPECT_TRUE(contains(r.out, example_path + ": valid (1 file(s), mode enforce)")) << show(r);
    EXPECT_TRUE(contains(r.out, "clients:     6\n")) << show(r);
    EXPECT_TRUE(contains(r.out, "groups:      4\n")) << show(r);
    EXPECT_TRUE(contains(r.out, "rules:       7 (9 domain patterns, 1 CIDRs)\n")) << show(r);
    EXPECT_TRUE(contains(r.out, "deny rules:  1\n")) << show(r);
    EXPECT_TRUE(contains(r.out, "warnings:    0\n")) << show(r);
    EXPECT_TRUE(r.err.empty()) << show(r);
}

TEST(cli_check, a_broken_copy_reports_every_error)
{
    test_support::temp_dir dir;
    auto broken = test::break_example();
    auto path = dir.write("policy.yaml", broken.text).string();
    auto r = run({"policy", "check", path});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    auto errors = test::lines_starting(r.err, path + ":");
    EXPECT_EQ(test::count_containing(r.err, ": error: "), 3u) << show(r);
    for (const auto& where : broken.positions) {
        EXPECT_TRUE(contains(r.err, path + ":" + where + ": error: ")) << where << "\n" << show(r);
    }
    EXPECT_TRUE(contains(r.err, path + ":" + broken.positions[0] + ": error: unknown mode 'enforced'")) << show(r);
    EXPECT_TRUE(contains(r.err, path + ":" + broken.positions[1] + ": error: reversed port range '21-20'")) << show(r);
    EXPECT_TRUE(contains(r.err, path + ":" + broken.positions[2] + ": error: '10.40.0.1/16' has host bits set"))
        << show(r);
    EXPECT_TRUE(contains(r.out, path + ": invalid: 3 error(s)")) << show(r);
}

TEST(cli_check, warnings_are_printed_and_counted_but_do_not_fail)
{
    test_support::temp_dir dir;
    auto path = dir.write("policy.yaml", "version: 1\n"
                                         "groups:\n"
                                         "  web:\n"
                                         "    rules:\n"
                                         "      - ports: all\n"
                                         "        destinations: [api.example.com]\n"
                                         "clients:\n"
                                         "  app:\n"
                                         "    sources: [10.0.0.0/8]\n"
                                         "    groups: [web]\n")
                    .string();
    auto r = run({"policy", "check", path});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    EXPECT_TRUE(contains(r.err, path + ":5:9: warning: rule 0 of group 'web' allows all ports\n")) << show(r);
    EXPECT_TRUE(contains(r.out, "warnings:    1\n")) << show(r);
}

TEST(cli_check, a_directory_is_merged)
{
    test_support::temp_dir dir;
    dir.write("10-groups.yaml", "version: 1\nmode: report\ngroups:\n  web:\n    rules:\n      - ports: [443]\n"
                                "        destinations: [api.example.com]\n");
    dir.write("20-clients.yml", "version: 1\nclients:\n  app:\n    sources: [10.0.0.0/8]\n    groups: [web]\n");
    auto r = run({"policy", "check", dir.path().string()});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    EXPECT_TRUE(contains(r.out, ": valid (2 file(s), mode report)")) << show(r);
    EXPECT_TRUE(contains(r.out, "clients:     1\n")) << show(r);
}

TEST(cli_check, a_missing_file_is_invalid)
{
    test_support::temp_dir dir;
    auto path = (dir.path() / "absent.yaml").string();
    auto r = run({"policy", "check", path});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_TRUE(contains(r.err, path + ": error: cannot open the policy file")) << show(r);
}

// --- policy explain: text ---------------------------------------------------------------------------------

TEST(cli_explain, by_client_name)
{
    auto r = explain({"--client", "batch-workers", "--dest", "deb.debian.org:443"});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    EXPECT_EQ(r.out, "client:      batch-workers (matched by name)\n"
                     "destination: deb.debian.org:443\n"
                     "request:     CONNECT\n"
                     "at:          2026-06-01T12:00:00Z\n"
                     "name phase:  allow by group package-mirrors rule 0 \"Debian mirrors and security updates\" (" +
                         rule_at("Debian mirrors and security updates") +
                         ")\n"
                         "result:      allowed\n")
        << show(r);
    EXPECT_TRUE(r.err.empty()) << show(r);
}

TEST(cli_explain, by_source_address)
{
    auto r = explain({"--source", "10.20.1.7", "--dest", "deb.debian.org:443"});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    EXPECT_TRUE(contains(r.out, "client:      batch-workers (matched by source 10.20.1.7)\n")) << show(r);
    EXPECT_TRUE(contains(r.out, "result:      allowed\n")) << show(r);

    // The more specific source wins: the canary subnet inside the web tier.
    r = explain({"--source", "10.30.99.5", "--dest", "deb.debian.org:443"});
    EXPECT_TRUE(contains(r.out, "client:      web-canary (matched by source 10.30.99.5)\n")) << show(r);
    // Report mode: the denial is reported, the connection would go ahead.
    EXPECT_TRUE(contains(r.out, "name phase:  would_deny [no_matching_rule]\n")) << show(r);
    EXPECT_TRUE(contains(r.out, "result:      allowed\n")) << show(r);
    EXPECT_EQ(r.code, exit_ok) << show(r);
}

TEST(cli_explain, an_unmatched_source_is_denied)
{
    auto r = explain({"--source", "192.0.2.55", "--dest", "deb.debian.org:443"});
    EXPECT_EQ(r.code, exit_denied) << show(r);
    EXPECT_TRUE(contains(r.out, "client:      (none) (matched by nothing)\n")) << show(r);
    EXPECT_TRUE(contains(r.out, "name phase:  deny [unknown_client]\n")) << show(r);
    EXPECT_TRUE(contains(r.out, "result:      denied\n")) << show(r);
}

TEST(cli_explain, denials_exit_3_and_name_the_nearest_rule)
{
    auto r = explain({"--client", "batch-workers", "--dest", "ftp.vendor.example:22"});
    EXPECT_EQ(r.code, exit_denied) << show(r);
    EXPECT_TRUE(contains(r.out, "name phase:  deny [port_not_allowed], nearest rule: group package-mirrors rule 3 "
                                "\"Vendor firmware FTP mirror\" (" +
                                    rule_at("Vendor firmware FTP mirror") + ")\n"))
        << show(r);
    EXPECT_TRUE(contains(r.out, "result:      denied\n")) << show(r);

    r = explain({"--client", "web", "--dest", "pastebin.com:443"});
    EXPECT_EQ(r.code, exit_denied) << show(r);
    EXPECT_TRUE(contains(r.out, "name phase:  deny [explicit_deny] by deny rule 0 \"Paste site (exfiltration risk)\" " +
                                    std::string("(") + rule_at("Paste site (exfiltration risk)") + ")\n"))
        << show(r);

    r = explain({"--client", "database", "--dest", "deb.debian.org:443"});
    EXPECT_EQ(r.code, exit_denied) << show(r);
    EXPECT_TRUE(contains(r.out, "name phase:  deny [no_matching_rule]\n")) << show(r);
}

TEST(cli_explain, ipv6_destination)
{
    auto r = explain({"--client", "web", "--dest", "[2001:db8::1]:443"});
    EXPECT_EQ(r.code, exit_denied) << show(r);
    EXPECT_TRUE(contains(r.out, "destination: [2001:db8::1]:443\n")) << show(r);
    EXPECT_TRUE(contains(r.out, "name phase:  deny [no_matching_rule]\n")) << show(r);

    // The canary's partner rule names an IPv4 CIDR only: the IPv6 literal matches nothing, reported not enforced.
    r = explain({"--client", "web-canary", "--dest", "[2001:db8::1]:22"});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    EXPECT_TRUE(contains(r.out, "name phase:  would_deny [no_matching_rule]\n")) << show(r);
}

TEST(cli_explain, ip_literal_destination_in_a_cidr_rule)
{
    auto r = explain({"--client", "web-canary", "--dest", "198.51.100.10:22"});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    EXPECT_TRUE(contains(r.out, "name phase:  allow by group partner-sftp rule 0 \"Partner SFTP\" (" +
                                    rule_at("Partner SFTP\n") + ")\n"))
        << show(r);
}

TEST(cli_explain, resolved_addresses_are_each_decided)
{
    auto r = explain({"--client", "batch-workers", "--dest", "deb.debian.org:443", "--resolved", "151.101.2.132",
                      "--resolved", "10.0.0.5", "--resolved", "::ffff:10.0.0.5"});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    std::string rule = "group package-mirrors rule 0 \"Debian mirrors and security updates\" (" +
                       rule_at("Debian mirrors and security updates") + ")";
    EXPECT_TRUE(contains(r.out, "address 151.101.2.132: allow by " + rule + "\n")) << show(r);
    EXPECT_TRUE(contains(r.out, "address 10.0.0.5: deny [address_guard] address in guarded set private\n")) << show(r);
    EXPECT_TRUE(contains(r.out, "address ::ffff:10.0.0.5: deny [address_guard] address in guarded set private "
                                "(embedded ipv4_mapped 10.0.0.5)\n"))
        << show(r);
    // One address passed: the proxy would connect to it.
    EXPECT_TRUE(contains(r.out, "result:      allowed\n")) << show(r);
}

TEST(cli_explain, no_resolved_address_passing_is_a_denial)
{
    auto r = explain({"--client", "batch-workers", "--dest", "deb.debian.org:443", "--resolved", "10.0.0.5",
                      "--resolved", "169.254.169.254"});
    EXPECT_EQ(r.code, exit_denied) << show(r);
    EXPECT_TRUE(
        contains(r.out, "address 169.254.169.254: deny [address_guard] address in guarded set cloud_metadata\n"))
        << show(r);
    EXPECT_TRUE(contains(r.out, "result:      denied\n")) << show(r);
}

TEST(cli_explain, at_before_and_after_an_expiry)
{
    std::string rule = "group monitoring rule 0 \"Metrics ingestion (contract ends 2027-06-30)\" (" +
                       rule_at("Metrics ingestion (contract ends 2027-06-30)") + ", expires 2027-06-30T23:59:59Z)";
    auto r = explain({"--client", "web", "--dest", "eu.ingest.metrics.example:443", "--at", "2027-06-30T23:59:58Z"});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    EXPECT_TRUE(contains(r.out, "at:          2027-06-30T23:59:58Z\n")) << show(r);
    EXPECT_TRUE(contains(r.out, "name phase:  allow by " + rule + "\n")) << show(r);

    r = explain({"--client", "web", "--dest", "eu.ingest.metrics.example:443", "--at", "2027-07-01T00:00:00Z"});
    EXPECT_EQ(r.code, exit_denied) << show(r);
    EXPECT_TRUE(contains(r.out, "name phase:  deny [expired], nearest rule: " + rule + "\n")) << show(r);

    // An offset is converted: 01:00+02:00 is 23:00Z, before the expiry.
    r = explain({"--client", "web", "--dest", "eu.ingest.metrics.example:443", "--at", "2027-07-01T01:00:00+02:00"});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    EXPECT_TRUE(contains(r.out, "at:          2027-06-30T23:00:00Z\n")) << show(r);
}

TEST(cli_explain, an_invalid_policy_exits_1_with_its_errors)
{
    test_support::temp_dir dir;
    auto broken = test::break_example();
    auto path = dir.write("policy.yaml", broken.text).string();
    auto r = run({"policy", "explain", path, "--client", "web", "--dest", "a.example:443"});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_TRUE(r.out.empty()) << show(r);
    EXPECT_EQ(test::count_containing(r.err, ": error: "), 3u) << show(r);
}

// --- policy explain: JSON -----------------------------------------------------------------------------------

json_value parse_json_output(const test::cli_result& r)
{
    EXPECT_TRUE(r.out.ends_with("}\n")) << show(r);
    EXPECT_EQ(test::count_containing(r.out, "{"), 1u) << "one JSON object on one line\n" << show(r);
    std::string error;
    auto v = json_reader::parse(r.out, &error);
    EXPECT_TRUE(v.has_value()) << error << "\n" << show(r);
    return v.value_or(json_value{});
}

TEST(cli_explain_json, allowed_with_resolved_addresses)
{
    auto r = explain({"--json", "--source", "10.20.1.7", "--dest", "deb.debian.org:443", "--resolved",
                      "151.101.2.132", "--resolved", "10.0.0.5"});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    auto j = parse_json_output(r);
    ASSERT_EQ(j.type, json_value::kind::object) << show(r);
    EXPECT_TRUE(j.at("client").is_string("batch-workers"));
    EXPECT_TRUE(j.at("matched_by").is_string("source 10.20.1.7"));
    EXPECT_TRUE(j.at("destination").is_string("deb.debian.org:443"));
    EXPECT_TRUE(j.at("at").is_string("2026-06-01T12:00:00Z"));
    ASSERT_NE(j.get("allowed"), nullptr);
    EXPECT_EQ(j.at("allowed").type, json_value::kind::boolean);
    EXPECT_TRUE(j.at("allowed").boolean);

    const auto* name = j.get("name_phase");
    ASSERT_NE(name, nullptr);
    EXPECT_TRUE(name->at("verdict").is_string("allow"));
    EXPECT_TRUE(name->at("reason").is_string("allowed"));
    EXPECT_TRUE(name->at("mode").is_string("enforce"));
    const auto* rule = name->get("rule");
    ASSERT_NE(rule, nullptr) << show(r);
    EXPECT_TRUE(rule->at("group").is_string("package-mirrors"));
    EXPECT_EQ(rule->at("index").text, "0");
    EXPECT_TRUE(rule->at("description").is_string("Debian mirrors and security updates"));
    EXPECT_TRUE(rule->at("location").is_string(rule_at("Debian mirrors and security updates")));
    EXPECT_EQ(rule->get("expires"), nullptr);

    const auto* addresses = j.get("addresses");
    ASSERT_NE(addresses, nullptr);
    ASSERT_EQ(addresses->items.size(), 2u) << show(r);
    EXPECT_TRUE(addresses->items[0].at("address").is_string("151.101.2.132"));
    EXPECT_TRUE(addresses->items[0].at("decision").at("verdict").is_string("allow"));
    const auto& guarded = addresses->items[1];
    EXPECT_TRUE(guarded.at("address").is_string("10.0.0.5"));
    const auto* decision = guarded.get("decision");
    ASSERT_NE(decision, nullptr);
    EXPECT_TRUE(decision->at("verdict").is_string("deny"));
    EXPECT_TRUE(decision->at("reason").is_string("address_guard"));
    const auto* guard = decision->get("guard");
    ASSERT_NE(guard, nullptr) << show(r);
    EXPECT_TRUE(guard->at("set").is_string("private"));
    EXPECT_TRUE(guard->at("embedding").is_string("none"));
    EXPECT_TRUE(guard->at("checked").is_string("10.0.0.5"));
}

TEST(cli_explain_json, denied_unknown_client)
{
    auto r = explain({"--source", "192.0.2.55", "--dest", "[2001:db8::1]:443", "--json"});
    EXPECT_EQ(r.code, exit_denied) << show(r);
    auto j = parse_json_output(r);
    ASSERT_NE(j.get("client"), nullptr) << show(r);
    EXPECT_EQ(j.at("client").type, json_value::kind::null);
    EXPECT_TRUE(j.at("matched_by").is_string("nothing"));
    EXPECT_TRUE(j.at("destination").is_string("[2001:db8::1]:443"));
    EXPECT_TRUE(j.at("name_phase").at("reason").is_string("unknown_client"));
    EXPECT_EQ(j.at("name_phase").get("rule"), nullptr);
    EXPECT_TRUE(j.at("addresses").items.empty());
    EXPECT_FALSE(j.at("allowed").boolean);
}

TEST(cli_explain_json, expired_rule_carries_its_expiry)
{
    auto r = explain({"--client", "web", "--dest", "eu.ingest.metrics.example:443", "--at", "2027-07-01T00:00:00Z",
                      "--json"});
    EXPECT_EQ(r.code, exit_denied) << show(r);
    auto j = parse_json_output(r);
    const auto* name = j.get("name_phase");
    ASSERT_NE(name, nullptr) << show(r);
    EXPECT_TRUE(name->at("verdict").is_string("deny"));
    EXPECT_TRUE(name->at("reason").is_string("expired"));
    ASSERT_NE(name->get("rule"), nullptr) << show(r);
    EXPECT_TRUE(name->at("rule").at("expires").is_string("2027-06-30T23:59:59Z"));
}

TEST(cli_explain_json, report_mode_is_allowed_with_would_deny)
{
    auto r = explain({"--client", "web-canary", "--dest", "pastebin.com:443", "--json"});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    auto j = parse_json_output(r);
    EXPECT_TRUE(j.at("name_phase").at("verdict").is_string("would_deny"));
    EXPECT_TRUE(j.at("name_phase").at("reason").is_string("explicit_deny"));
    EXPECT_TRUE(j.at("name_phase").at("mode").is_string("report"));
    EXPECT_TRUE(j.at("name_phase").at("rule").at("group").is_string("deny"));
    EXPECT_TRUE(j.at("allowed").boolean);
}

TEST(cli_explain_json, descriptions_are_escaped)
{
    test_support::temp_dir dir;
    auto path = dir.write("policy.yaml", "version: 1\n"
                                         "groups:\n"
                                         "  web:\n"
                                         "    rules:\n"
                                         "      - description: 'say \"hi\" \\ tab\there'\n"
                                         "        ports: [443]\n"
                                         "        destinations: [api.example.com]\n"
                                         "clients:\n"
                                         "  app:\n"
                                         "    sources: [10.0.0.0/8]\n"
                                         "    groups: [web]\n")
                    .string();
    auto r = run({"policy", "explain", path, "--client", "app", "--dest", "api.example.com:443", "--at",
                  "2026-06-01T12:00:00Z", "--json"});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    auto j = parse_json_output(r);
    ASSERT_NE(j.get("name_phase"), nullptr) << show(r);
    ASSERT_NE(j.at("name_phase").get("rule"), nullptr) << show(r);
    EXPECT_TRUE(j.at("name_phase").at("rule").at("description").is_string("say \"hi\" \\ tab\there")) << show(r);
}

}  // namespace
}  // namespace egressd::proxy
