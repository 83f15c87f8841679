// egressd events summary through the command line, in process, on event files written to a temporary directory.

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

std::string sample_events()
{
    std::string text;
    for (const char* t : {"2026-12-06T10:00:00.000Z", "2026-12-06T10:20:00.000Z", "2026-12-06T10:40:00.000Z"}) {
        text += event_line{.time = t, .client = "web", .source = "10.30.1.5:4000", .host = "pastebin.com",
                           .reason = "explicit_deny"}
                    .text();
    }
    text += event_line{.time = "2026-12-06T10:30:00.000Z", .client = "batch-workers", .host = "evil.example"}.text();
    text += event_line{.time = "2026-12-06T10:31:00.000Z", .source = "192.0.2.9:5000", .host = "evil.example",
                       .reason = "unknown_client"}
                .text();
    text += event_line{.time = "2026-12-06T10:32:00.000Z", .event = "egress.would_deny", .client = "web-canary",
                       .host = "partner.example", .port = 22, .mode = "report"}
                .text();
    text += event_line{.time = "2026-12-06T10:33:00.000Z", .event = "egress.allow", .client = "web",
                       .host = "api.payments.example", .address = "203.0.113.10", .reason = "allowed"}
                .text();
    text += event_line{.time = "2026-12-06T10:34:00.000Z", .event = "egress.error", .client = "batch-workers",
                       .host = "gone.debian.net", .reason = "dns_nxdomain"}
                .text();
    text += event_line{.time = "2026-12-06T10:35:00.000Z", .event = "egress.revoke", .client = "web",
                       .host = "api.payments.example", .address = "203.0.113.10", .reason = "no_matching_rule"}
                .text();
    text += R"({"time":"2026-12-06T10:36:00.000Z","event":"egressd.reload","policy_version":2})" "\n";
    return text;
}

TEST(events_summary, denials_grouped_and_most_frequent_first)
{
    test_support::temp_dir dir;
    auto file = dir.write("events.log", sample_events()).string();
    auto r = run({"events", "summary", file});
    ASSERT_EQ(r.code, exit_ok) << show(r);
    EXPECT_TRUE(r.err.empty()) << show(r);
    EXPECT_TRUE(contains(r.out, "9 event(s) from 1 file(s): 1 allowed, 5 denied, 1 would deny, 1 revoked, 1 error(s)"))
        << show(r);
    auto denied_at = r.out.find("Denied (egress.deny): 5");
    auto would_at = r.out.find("Would deny");
    auto revoked_at = r.out.find("Revoked connections");
    auto errors_at = r.out.find("Errors, not policy denials (egress.error): 1");
    ASSERT_NE(denied_at, std::string::npos) << show(r);
    ASSERT_NE(would_at, std::string::npos) << show(r);
    ASSERT_NE(revoked_at, std::string::npos) << show(r);
    ASSERT_NE(errors_at, std::string::npos) << show(r);
    EXPECT_LT(denied_at, would_at);
    EXPECT_LT(would_at, revoked_at);
    EXPECT_LT(revoked_at, errors_at);

    auto rows = test::lines_starting(r.out.substr(denied_at, would_at - denied_at), "  ");
    ASSERT_EQ(rows.size(), 4u) << show(r);  // the header and three groups
    EXPECT_TRUE(contains(rows[0], "COUNT")) << rows[0];
    EXPECT_TRUE(contains(rows[1], "3  web")) << rows[1];
    EXPECT_TRUE(contains(rows[1], "pastebin.com:443")) << rows[1];
    EXPECT_TRUE(contains(rows[1], "explicit_deny")) << rows[1];
    EXPECT_TRUE(contains(rows[1], "2026-12-06T10:00:00Z")) << rows[1];
    EXPECT_TRUE(contains(rows[1], "2026-12-06T10:40:00Z")) << rows[1];
    // No client: the source address says who it was.
    EXPECT_TRUE(contains(r.out, "(none) 192.0.2.9")) << show(r);
    EXPECT_TRUE(contains(r.out, "partner.example:22")) << show(r);
    EXPECT_TRUE(contains(r.out, "gone.debian.net:443")) << show(r);
    EXPECT_TRUE(contains(r.out, "dns_nxdomain")) << show(r);
    EXPECT_TRUE(contains(r.out, "egress.revoke")) << show(r);
    // Allowed traffic is counted, not listed.
    EXPECT_FALSE(contains(r.out.substr(denied_at, would_at - denied_at), "api.payments.example")) << show(r);
}

TEST(events_summary, json)
{
    test_support::temp_dir dir;
    auto file = dir.write("events.log", sample_events()).string();
    auto r = run({"events", "summary", file, "--json"});
    ASSERT_EQ(r.code, exit_ok) << show(r);
    std::string error;
    auto doc = test_support::json_reader::parse(r.out, &error);
    ASSERT_TRUE(doc) << error << "\n" << r.out;
    ASSERT_NE(doc->get("denied"), nullptr);
    EXPECT_EQ(doc->get("denied_total")->text, "5");
    EXPECT_EQ(doc->get("allowed")->text, "1");
    EXPECT_EQ(doc->get("would_deny_total")->text, "1");
    EXPECT_EQ(doc->get("revoked_total")->text, "1");
    EXPECT_EQ(doc->get("errors_total")->text, "1");
    EXPECT_EQ(doc->get("since")->type, test_support::json_value::kind::null);
    const auto& denied = doc->get("denied")->items;
    ASSERT_EQ(denied.size(), 3u);
    EXPECT_EQ(denied[0].get("client")->text, "web");
    EXPECT_EQ(denied[0].get("host")->text, "pastebin.com");
    EXPECT_EQ(denied[0].get("port")->text, "443");
    EXPECT_EQ(denied[0].get("reason")->text, "explicit_deny");
    EXPECT_EQ(denied[0].get("count")->text, "3");
    EXPECT_EQ(denied[0].get("first_seen")->text, "2026-12-06T10:00:00Z");
    EXPECT_EQ(denied[0].get("last_seen")->text, "2026-12-06T10:40:00Z");
    bool unknown_seen = false;
    for (const auto& row : denied) {
        if (row.get("client")->type == test_support::json_value::kind::null) {
            unknown_seen = true;
            EXPECT_EQ(row.get("source_ip")->text, "192.0.2.9");
            EXPECT_EQ(row.get("reason")->text, "unknown_client");
        }
    }
    EXPECT_TRUE(unknown_seen) << r.out;
}

TEST(events_summary, since_and_client)
{
    test_support::temp_dir dir;
    auto file = dir.write("events.log", sample_events()).string();
    auto r = run({"events", "summary", file, "--since", "2026-12-06T10:30:00Z", "--client", "web"});
    ASSERT_EQ(r.code, exit_ok) << show(r);
    EXPECT_TRUE(contains(r.out, "since 2026-12-06T10:30:00Z of client web")) << show(r);
    EXPECT_TRUE(contains(r.out, "Denied (egress.deny): 1")) << show(r);
    EXPECT_TRUE(contains(r.out, "1  web")) << show(r);
    EXPECT_FALSE(contains(r.out, "evil.example")) << show(r);

    // A duration back from now: these events are older than an hour (unless the clock is wrong by years).
    r = run({"events", "summary", file, "--since", "1h"});
    ASSERT_EQ(r.code, exit_ok) << show(r);
    EXPECT_TRUE(contains(r.out, "0 event(s)")) << show(r);
}

TEST(events_summary, several_files_and_unreadable_lines)
{
    test_support::temp_dir dir;
    auto first = dir.write("a.log", sample_events()).string();
    auto second = dir.write("b.log", "garbage\n" + event_line{.client = "web", .host = "pastebin.com",
                                                              .reason = "explicit_deny"}
                                                       .text())
                      .string();
    auto r = run({"events", "summary", first, second});
    ASSERT_EQ(r.code, exit_ok) << show(r);
    EXPECT_TRUE(contains(r.out, "from 2 file(s)")) << show(r);
    EXPECT_TRUE(contains(r.out, "Denied (egress.deny): 6")) << show(r);
    EXPECT_TRUE(contains(r.out, "4  web")) << show(r);
    EXPECT_TRUE(contains(r.out, "1 unreadable line(s)")) << show(r);
    EXPECT_TRUE(contains(r.err, second + ":1: not JSON")) << show(r);
}

TEST(events_summary, a_missing_file_exits_1)
{
    test_support::temp_dir dir;
    auto missing = (dir.path() / "missing.log").string();
    auto r = run({"events", "summary", missing});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_TRUE(contains(r.err, "cannot open " + missing)) << show(r);
}

TEST(events_summary, help)
{
    for (std::vector<std::string> args : {std::vector<std::string>{"events", "--help"},
                                          {"events", "summary", "--help"},
                                          {"events", "summary", "x.log", "-h"}}) {
        auto r = run(args);
        EXPECT_EQ(r.code, exit_ok) << show(r);
        EXPECT_TRUE(contains(r.out, "egressd events summary FILE...")) << show(r);
        EXPECT_TRUE(r.err.empty()) << show(r);
    }
    auto r = run({"events"});
    EXPECT_EQ(r.code, exit_usage) << show(r);
    EXPECT_TRUE(contains(r.err, "egressd events summary FILE...")) << show(r);
}

}  // namespace
}  // namespace egressd::proxy
