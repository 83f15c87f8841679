// egressd policy test through the command line, in process: the shipped example cases, failing cases, and
// case files with mistakes (every one reported at once, with its position).

#include "tests/proxy/cli_support.hpp"
#include "tests/proxy/mini_json.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace egressd::proxy {
namespace {

using test::contains;
using test::example_path;
using test::run;
using test::show;

const std::string example_cases = std::string(EGRESSD_SOURCE_DIR) + "/config/examples/policy.cases.yaml";

TEST(policy_test, the_example_passes_its_cases)
{
    auto r = run({"policy", "test", example_path, example_cases});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    EXPECT_TRUE(r.out.starts_with("ok: ")) << show(r);
    EXPECT_FALSE(contains(r.out, "FAIL")) << show(r);
    EXPECT_TRUE(r.err.empty()) << show(r);
}

TEST(policy_test, failing_cases_are_printed_with_position_and_deciding_rule)
{
    test_support::temp_dir dir;
    std::string text = "- name: web reaches the payment API\n"
                       "  client: web\n"
                       "  dest: api.payments.example:443\n"
                       "  expect: allow\n"
                       "- name: paste sites\n"
                       "  client: web\n"
                       "  dest: pastebin.com:443\n"
                       "  expect: allow\n"
                       "- client: batch-workers\n"
                       "  dest: evil.example:443\n"
                       "  expect: deny\n"
                       "  reason: explicit_deny\n"
                       "- source: 10.30.1.5\n"
                       "  dest: api.payments.example:443\n"
                       "  expect: deny\n";
    auto cases = dir.write("cases.yaml", text).string();
    auto r = run({"policy", "test", example_path, cases});
    EXPECT_EQ(r.code, exit_check_failed) << show(r);
    EXPECT_FALSE(contains(r.out, "web reaches the payment API")) << show(r);

    EXPECT_TRUE(contains(r.out, "FAIL " + cases + ":5:3: case 2 \"paste sites\"")) << show(r);
    EXPECT_TRUE(contains(r.out, "client web -> pastebin.com:443")) << show(r);
    EXPECT_TRUE(contains(r.out, "expected: allow\n")) << show(r);
    EXPECT_TRUE(contains(r.out, "got:      deny [explicit_deny] by deny#0 \"Paste site (exfiltration risk)\"")) << show(r);

    // The verdict is right, the reason is not.
    EXPECT_TRUE(contains(r.out, "FAIL " + cases + ":9:3: case 3\n")) << show(r);
    EXPECT_TRUE(contains(r.out, "expected: deny [explicit_deny]")) << show(r);
    EXPECT_TRUE(contains(r.out, "got:      deny [no_matching_rule]")) << show(r);

    EXPECT_TRUE(contains(r.out, "FAIL " + cases + ":13:3: case 4\n")) << show(r);
    EXPECT_TRUE(contains(r.out, "source 10.30.1.5 -> api.payments.example:443")) << show(r);
    EXPECT_TRUE(contains(r.out, "(client web)")) << show(r);
    EXPECT_TRUE(contains(r.out, "got:      allow by payment-api#0 \"Payment API\"")) << show(r);

    EXPECT_TRUE(contains(r.out, "FAIL: 1 of 4 case(s) passed, 3 failed\n")) << show(r);
}

TEST(policy_test, json)
{
    test_support::temp_dir dir;
    auto cases = dir.write("cases.yaml", "- name: paste\n  client: web\n  dest: pastebin.com:443\n  expect: allow\n"
                                         "- client: web\n  dest: api.payments.example:443\n  expect: allow\n")
                     .string();
    auto r = run({"policy", "test", example_path, cases, "--json"});
    EXPECT_EQ(r.code, exit_check_failed) << show(r);
    std::string error;
    auto doc = test_support::json_reader::parse(r.out, &error);
    ASSERT_TRUE(doc) << error << "\n" << r.out;
    EXPECT_EQ(doc->get("total")->text, "2");
    EXPECT_EQ(doc->get("failed")->text, "1");
    const auto& rows = doc->get("cases")->items;
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[0].get("passed")->boolean, false);
    EXPECT_EQ(rows[0].get("line")->text, "1");
    EXPECT_EQ(rows[0].get("reason")->text, "explicit_deny");
    EXPECT_EQ(rows[0].get("rule")->text, "deny#0 \"Paste site (exfiltration risk)\"");
    EXPECT_EQ(rows[1].get("passed")->boolean, true);
    EXPECT_EQ(rows[1].get("client")->text, "web");
}

TEST(policy_test, every_mistake_in_a_cases_file_is_reported_with_its_position)
{
    test_support::temp_dir dir;
    std::string text = "- client: web\n"             // 1
                       "  dest: api.payments.example\n"  // 2: no port
                       "  expect: allow\n"               // 3
                       "- client: nobody\n"              // 4: no such client
                       "  dest: a.example:443\n"         // 5
                       "  expect: maybe\n"               // 6: not allow or deny
                       "- client: web\n"                 // 7
                       "  source: 10.30.1.5\n"           // 8 (the case, line 7: both)
                       "  dest: a.example:443\n"         // 9
                       "  expect: deny\n"                // 10
                       "  reason: forbidden\n"           // 11: no such reason
                       "  colour: red\n"                 // 12: unknown key
                       "- client: web\n"                 // 13
                       "  dest: a.example:443\n"         // 14
                       "  resolved: [10.0.0.1, not-an-ip]\n"  // 15
                       "  at: tomorrow\n"                // 16
                       "  expect: deny\n"                // 17
                       "- client: web\n"                 // 18: no dest, no expect
                       "- just a string\n";              // 19
    auto cases = dir.write("cases.yaml", text).string();
    auto r = run({"policy", "test", example_path, cases});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_TRUE(r.out.empty()) << show(r);
    for (const char* expected : {":2:9: error: expected a destination host:port",
                                 ":4:11: error: no client named 'nobody' in ",
                                 ":6:11: error: expected allow or deny, found 'maybe'",
                                 ":7:3: error: a test case needs client: NAME, or source: IP and/or identity: ID",
                                 ":11:11: error: expected a reason code",
                                 ":12:3: error: unknown key 'colour' in a test case",
                                 ":15:24: error: expected an IP address, found 'not-an-ip'",
                                 ":16:7: error: expected an RFC 3339 time",
                                 ":18:3: error: missing required key 'dest' in a test case",
                                 ":18:3: error: missing required key 'expect' in a test case",
                                 ":19:3: error: expected a test case (a mapping)"}) {
        EXPECT_TRUE(contains(r.err, cases + expected)) << expected << "\n" << show(r);
    }
    EXPECT_TRUE(contains(r.err, cases + ": invalid test cases")) << show(r);
}

TEST(policy_test, a_cases_file_that_is_not_a_list)
{
    test_support::temp_dir dir;
    auto cases = dir.write("cases.yaml", "client: web\ndest: a.example:443\nexpect: deny\n").string();
    auto r = run({"policy", "test", example_path, cases});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_TRUE(contains(r.err, cases + ":1:1: error: expected a list of test cases, found a mapping")) << show(r);

    auto broken = dir.write("broken.yaml", "- client: web\n  dest: [unclosed\n").string();
    r = run({"policy", "test", example_path, broken});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_TRUE(contains(r.err, broken + ":")) << show(r);

    auto missing = (dir.path() / "missing.yaml").string();
    r = run({"policy", "test", example_path, missing});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_TRUE(contains(r.err, missing + ": error: cannot open the test cases")) << show(r);
}

TEST(policy_test, an_invalid_policy_exits_1_with_its_errors)
{
    test_support::temp_dir dir;
    auto broken = test::break_example();
    auto policy = dir.write("policy.yaml", broken.text).string();
    auto r = run({"policy", "test", policy, example_cases});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    for (const auto& at : broken.positions) {
        EXPECT_TRUE(contains(r.err, policy + ":" + at + ": error:")) << at << "\n" << show(r);
    }
    EXPECT_TRUE(contains(r.err, policy + ": invalid policy")) << show(r);
}

}  // namespace
}  // namespace egressd::proxy
