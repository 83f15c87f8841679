// egressd policy replay through the command line, in process: recorded decisions (written after the event
// format contract) against candidates made from the shipped example policy. No destination here rests on the
// example's expiring rule, so no result depends on the clock.

#include "tests/proxy/cli_support.hpp"
#include "tests/proxy/mini_json.hpp"
#include "tests/proxy/tools/event_lines.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace egressd::proxy {
namespace {

using test::contains;
using test::event_line;
using test::run;
using test::show;

const std::string example_text = test::read_text(test::example_path);

// What the example policy decided: two allows, a denial, and events replay leaves alone.
std::string recorded_events()
{
    std::string text;
    for (int i = 0; i < 3; ++i) {
        text += event_line{.event = "egress.allow", .client = "batch-workers", .host = "pypi.org",
                           .address = "151.101.0.223", .reason = "allowed"}
                    .text();
    }
    text += event_line{.event = "egress.allow", .client = "web", .source = "10.30.1.5:4000",
                       .host = "api.payments.example", .address = "151.101.64.10", .reason = "allowed"}
                .text();
    text += event_line{.client = "batch-workers", .host = "evil.example"}.text();
    // Not policy decisions: a proxy-auth refusal before any destination, a DNS error, a close.
    text += event_line{.host = "-", .port = 0, .reason = "proxy_auth_required"}.text();
    text += event_line{.event = "egress.error", .client = "batch-workers", .host = "gone.debian.net",
                       .reason = "dns_nxdomain"}
                .text();
    text += event_line{.event = "egress.close", .client = "web", .host = "api.payments.example", .reason = ""}.text();
    return text;
}

struct replay_fixture {
    test_support::temp_dir dir;
    std::string events;

    replay_fixture() { events = dir.write("events.log", recorded_events()).string(); }

    std::string candidate(const std::string& name, const std::string& text) const
    {
        return dir.write(name, text).string();
    }
};

std::string without_pypi()
{
    std::string text = example_text;
    test::replace_once(text, "destinations: [pypi.org, files.pythonhosted.org]", "destinations: [files.pythonhosted.org]");
    return text;
}

TEST(policy_replay, the_same_policy_changes_nothing)
{
    replay_fixture f;
    auto r = run({"policy", "replay", test::example_path, "--events", f.events});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    EXPECT_TRUE(contains(r.out, "replayed 5 decision(s) (4 allowed, 1 denied or would deny)")) << show(r);
    EXPECT_TRUE(contains(r.out, "3 other event(s) skipped")) << show(r);
    EXPECT_TRUE(contains(r.out, "Newly denied (allowed before): 0 decision(s)")) << show(r);
    EXPECT_TRUE(contains(r.out, "Newly allowed (denied before): 0 decision(s)")) << show(r);
    EXPECT_TRUE(contains(r.out, "ok: nothing allowed before would be denied")) << show(r);
}

TEST(policy_replay, a_dropped_destination_is_newly_denied_and_exits_4)
{
    replay_fixture f;
    auto candidate = f.candidate("candidate.yaml", without_pypi());
    auto r = run({"policy", "replay", candidate, "--events", f.events});
    EXPECT_EQ(r.code, exit_check_failed) << show(r);
    EXPECT_TRUE(contains(r.out, "Newly denied (allowed before): 3 decision(s), 1 row(s)")) << show(r);
    auto rows = test::lines_starting(r.out, "      3  batch-workers");
    ASSERT_EQ(rows.size(), 1u) << show(r);
    EXPECT_TRUE(contains(rows[0], "pypi.org:443")) << rows[0];
    EXPECT_TRUE(contains(rows[0], "deny [no_matching_rule]")) << rows[0];
    EXPECT_TRUE(contains(r.out, "FAIL: 3 decision(s) allowed before would be denied")) << show(r);
    EXPECT_FALSE(contains(r.out, "api.payments.example")) << show(r);
}

TEST(policy_replay, a_new_destination_is_newly_allowed_and_exits_0)
{
    replay_fixture f;
    std::string text = example_text;
    test::replace_once(text, "destinations: [ftp.vendor.example]", "destinations: [ftp.vendor.example, evil.example]");
    test::replace_once(text, "ports: [20-21]", "ports: [20-21, 443]");
    auto r = run({"policy", "replay", f.candidate("candidate.yaml", text), "--events", f.events});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    EXPECT_TRUE(contains(r.out, "Newly allowed (denied before): 1 decision(s), 1 row(s)")) << show(r);
    EXPECT_TRUE(contains(r.out, "evil.example:443")) << show(r);
    EXPECT_TRUE(contains(r.out, "Vendor firmware FTP mirror")) << show(r);
}

TEST(policy_replay, a_renamed_client_is_matched_by_source)
{
    replay_fixture f;
    std::string text = example_text;
    test::replace_once(text, "  web:\n", "  web-tier:\n");
    auto r = run({"policy", "replay", f.candidate("candidate.yaml", text), "--events", f.events});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    EXPECT_TRUE(contains(r.out, "Newly denied (allowed before): 0 decision(s)")) << show(r);
}

TEST(policy_replay, a_report_mode_candidate_still_counts_would_deny_as_denied)
{
    replay_fixture f;
    std::string text = without_pypi();
    test::replace_once(text, "mode: enforce\n", "mode: report\n");
    auto r = run({"policy", "replay", f.candidate("candidate.yaml", text), "--events", f.events});
    EXPECT_EQ(r.code, exit_check_failed) << show(r);
    EXPECT_TRUE(contains(r.out, "would_deny [no_matching_rule]")) << show(r);
}

TEST(policy_replay, a_recorded_address_is_vetted_again)
{
    test_support::temp_dir dir;
    // Allowed before (say the old policy opened 10.0.0.0/8); the example guards private addresses.
    auto events = dir.write("events.log", event_line{.event = "egress.allow", .client = "batch-workers",
                                                     .host = "deb.debian.org", .address = "10.1.2.3",
                                                     .reason = "allowed"}
                                              .text())
                      .string();
    auto r = run({"policy", "replay", test::example_path, "--events", events});
    EXPECT_EQ(r.code, exit_check_failed) << show(r);
    EXPECT_TRUE(contains(r.out, "deb.debian.org:443")) << show(r);
    EXPECT_TRUE(contains(r.out, "deny [address_guard]")) << show(r);
}

TEST(policy_replay, grants_are_listed_apart_and_do_not_fail)
{
    test_support::temp_dir dir;
    auto events = dir.write("events.log", event_line{.event = "egress.allow", .client = "web",
                                                     .source = "10.30.1.5:4000", .host = "granted.example",
                                                     .reason = "granted"}
                                              .text())
                      .string();
    auto r = run({"policy", "replay", test::example_path, "--events", events});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    EXPECT_TRUE(contains(r.out, "Newly denied (allowed before): 0 decision(s)")) << show(r);
    EXPECT_TRUE(contains(r.out, "Allowed before by an approver's grant (the candidate has no grants): 1")) << show(r);
    EXPECT_TRUE(contains(r.out, "granted.example:443")) << show(r);
}

TEST(policy_replay, since_and_client_filters)
{
    replay_fixture f;
    auto candidate = f.candidate("candidate.yaml", without_pypi());
    auto r = run({"policy", "replay", candidate, "--events", f.events, "--client", "web"});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    EXPECT_TRUE(contains(r.out, "replayed 1 decision(s)")) << show(r);
    r = run({"policy", "replay", candidate, "--since", "2026-12-07T00:00:00Z", "--events", f.events});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    EXPECT_TRUE(contains(r.out, "replayed 0 decision(s)")) << show(r);
}

TEST(policy_replay, json)
{
    replay_fixture f;
    auto r = run({"policy", "replay", f.candidate("candidate.yaml", without_pypi()), "--events", f.events, "--json"});
    EXPECT_EQ(r.code, exit_check_failed) << show(r);
    std::string error;
    auto doc = test_support::json_reader::parse(r.out, &error);
    ASSERT_TRUE(doc) << error << "\n" << r.out;
    EXPECT_EQ(doc->get("replayed")->text, "5");
    EXPECT_EQ(doc->get("newly_denied_total")->text, "3");
    EXPECT_EQ(doc->get("newly_allowed_total")->text, "0");
    const auto& rows = doc->get("newly_denied")->items;
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].get("client")->text, "batch-workers");
    EXPECT_EQ(rows[0].get("host")->text, "pypi.org");
    EXPECT_EQ(rows[0].get("port")->text, "443");
    EXPECT_EQ(rows[0].get("count")->text, "3");
    EXPECT_EQ(rows[0].get("reason")->text, "no_matching_rule");
    EXPECT_EQ(rows[0].get("recorded_reason")->text, "allowed");
}

TEST(policy_replay, an_invalid_candidate_exits_1_with_its_errors)
{
    replay_fixture f;
    auto broken = test::break_example();
    auto candidate = f.candidate("broken.yaml", broken.text);
    auto r = run({"policy", "replay", candidate, "--events", f.events});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    for (const auto& at : broken.positions) {
        EXPECT_TRUE(contains(r.err, candidate + ":" + at + ": error:")) << at << "\n" << show(r);
    }
}

TEST(policy_replay, an_unreadable_event_file_exits_1)
{
    test_support::temp_dir dir;
    auto missing = (dir.path() / "missing.log").string();
    auto r = run({"policy", "replay", test::example_path, "--events", missing});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_TRUE(contains(r.err, "cannot open " + missing)) << show(r);
}

}  // namespace
}  // namespace egressd::proxy
