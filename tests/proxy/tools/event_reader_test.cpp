// The event reader on lines written by hand after the event format contract: egressd's own JSON lines, ECS and
// OCSF, mixed in one file, with notices, blank lines and broken lines among them.

#include "proxy/tools/event_reader.hpp"

#include "config/rfc3339.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace egressd::proxy::tools {
namespace {

using std::chrono::system_clock;
using namespace std::chrono_literals;

system_clock::time_point at(std::string_view rfc3339) { return system_clock::time_point(*config::parse_rfc3339(rfc3339)); }

const std::string native_deny =
    R"({"time":"2026-12-06T10:00:00.250Z","event":"egress.deny","instance":"h1","request_id":"r1","client":"web",)"
    R"("source":"10.30.1.5:40000","method":"CONNECT","host":"pastebin.com","port":443,"address":null,)"
    R"("reason":"explicit_deny","mode":"enforce","rule_group":"deny","rule_index":0,"rule_description":"Paste"})";

const std::string native_v6_allow =
    R"({"time":"2026-12-06T10:05:00.000Z","event":"egress.allow","instance":"h1","request_id":"r2","client":"local-trial",)"
    R"("source":"[2001:db8::5]:4444","method":"GET","host":"deb.debian.org","port":80,"address":"2001:db8::80",)"
    R"("reason":"allowed","mode":"enforce","rule_group":"package-mirrors","rule_index":0,)"
    R"("identity":"alice","identity_source":"proxy_auth","path":"/debian/","status":200})";

const std::string ecs_deny =
    R"({"@timestamp":"2026-12-06T11:00:01.000Z","ecs":{"version":"8.11.0"},"event":{"kind":"event",)"
    R"("category":["network","web"],"type":["denied"],"action":"egress.deny","outcome":"failure",)"
    R"("reason":"no_matching_rule","id":"r3","dataset":"egressd.events","provider":"egressd"},)"
    R"("source":{"address":"2001:db8::7","ip":"2001:db8::7","port":5555},)"
    R"("destination":{"address":"evil.example","domain":"evil.example","port":8443},)"
    R"("user":{"name":"spiffe://example.org/ns/batch/job"},"tls":{"client":{"server_name":"evil.example"}},)"
    R"("rule":{"ruleset":"package-mirrors","id":"package-mirrors#2","description":"Python packages"},)"
    R"("host":{"name":"h1"},"observer":{"name":"h1","product":"egressd","vendor":"egressd","type":"proxy"},)"
    R"("egressd":{"event":"egress.deny","client":null,"reason":"no_matching_rule","mode":"report","method":"CONNECT"}})";

const std::string ecs_notice =
    R"({"@timestamp":"2026-12-06T11:00:00.000Z","ecs":{"version":"8.11.0"},"event":{"kind":"event",)"
    R"("action":"egressd.start","dataset":"egressd.events","provider":"egressd"},"egressd":{"event":"egressd.start"}})";

std::string ocsf_allow(std::int64_t millis)
{
    return R"({"class_uid":4002,"category_uid":4,"activity_id":1,"type_uid":400201,"time":)" + std::to_string(millis) +
           R"(,"severity_id":1,"action_id":1,"disposition_id":1,"status_id":1,)"
           R"("metadata":{"version":"1.1.0","uid":"r4","product":{"name":"egressd","vendor_name":"egressd","version":"0.1.0"}},)"
           R"("src_endpoint":{"ip":"10.20.1.7","port":1234},)"
           R"("dst_endpoint":{"hostname":"deb.debian.org","ip":"151.101.2.132","port":443},)"
           R"("http_request":{"http_method":"CONNECT"},"actor":{"user":{"name":"bob"}},"tls":{"sni":"deb.debian.org"},)"
           R"("unmapped":{"egressd":{"event":"egress.allow","client":"batch-workers","reason":"allowed",)"
           R"("mode":"enforce","host":"deb.debian.org","rule_group":"package-mirrors","rule_index":0}}})";
}

// An IP literal asked for: dst_endpoint.ip is the literal; there is no hostname.
const std::string ocsf_v6_literal_deny =
    R"({"class_uid":4002,"category_uid":4,"activity_id":1,"type_uid":400201,"time":1796551200000,)"
    R"("severity_id":3,"action_id":2,"disposition_id":2,"status_id":2,)"
    R"("metadata":{"version":"1.1.0","uid":"r5","product":{"name":"egressd","vendor_name":"egressd","version":"0.1.0"}},)"
    R"("src_endpoint":{"ip":"fd00::9","port":61000},"dst_endpoint":{"ip":"2001:db8::1","port":22},)"
    R"("unmapped":{"egressd":{"event":"egress.deny","client":"web-canary","reason":"address_guard","mode":"enforce",)"
    R"("host":"2001:db8::1"}}})";

struct collected {
    read_report report;
    std::vector<recorded_event> events;
};

collected read_text(std::string_view text, const read_filter& filter = {})
{
    test_support::temp_dir dir;
    auto file = dir.write("events.log", text).string();
    collected c;
    c.report = read_events({file}, filter, [&](const recorded_event& e) { c.events.push_back(e); });
    return c;
}

TEST(event_reader, native_lines)
{
    auto c = read_text(native_deny + "\n" + native_v6_allow + "\n");
    EXPECT_EQ(c.report.lines, 2u);
    EXPECT_EQ(c.report.events, 2u);
    EXPECT_EQ(c.report.unreadable, 0u);
    ASSERT_EQ(c.events.size(), 2u);
    const auto& d = c.events[0];
    EXPECT_EQ(d.time, at("2026-12-06T10:00:00Z") + 250ms);
    EXPECT_EQ(d.event, "egress.deny");
    EXPECT_EQ(d.request_id, "r1");
    EXPECT_EQ(d.client, "web");
    EXPECT_EQ(d.source_ip, "10.30.1.5");
    EXPECT_EQ(d.source_port, 40000);
    EXPECT_EQ(d.method, "CONNECT");
    EXPECT_EQ(d.host, "pastebin.com");
    EXPECT_EQ(d.port, 443);
    EXPECT_EQ(d.address, "");
    EXPECT_EQ(d.reason, "explicit_deny");
    EXPECT_EQ(d.mode, "enforce");
    EXPECT_EQ(d.rule_group, "deny");
    EXPECT_EQ(d.rule_index, 0u);
    const auto& a = c.events[1];
    EXPECT_EQ(a.source_ip, "2001:db8::5");
    EXPECT_EQ(a.source_port, 4444);
    EXPECT_EQ(a.address, "2001:db8::80");
    EXPECT_EQ(a.identity, "alice");
    EXPECT_EQ(a.method, "GET");
    EXPECT_EQ(a.port, 80);
}

TEST(event_reader, ecs_lines)
{
    auto c = read_text(ecs_notice + "\n" + ecs_deny + "\n");
    EXPECT_EQ(c.report.unreadable, 0u) << (c.report.problems.empty() ? "" : c.report.problems[0]);
    ASSERT_EQ(c.events.size(), 1u);
    const auto& e = c.events[0];
    EXPECT_EQ(e.time, at("2026-12-06T11:00:01Z"));
    EXPECT_EQ(e.event, "egress.deny");
    EXPECT_EQ(e.request_id, "r3");
    EXPECT_EQ(e.client, "");
    EXPECT_EQ(e.source_ip, "2001:db8::7");
    EXPECT_EQ(e.source_port, 5555);
    EXPECT_EQ(e.identity, "spiffe://example.org/ns/batch/job");
    EXPECT_EQ(e.method, "CONNECT");
    EXPECT_EQ(e.host, "evil.example");
    EXPECT_EQ(e.port, 8443);
    EXPECT_EQ(e.address, "");
    EXPECT_EQ(e.reason, "no_matching_rule");
    EXPECT_EQ(e.mode, "report");
    EXPECT_EQ(e.sni, "evil.example");
    EXPECT_EQ(e.rule_group, "package-mirrors");
    EXPECT_EQ(e.rule_index, 2u);
}

TEST(event_reader, ocsf_lines)
{
    auto when = at("2026-12-06T12:00:00Z") + 500ms;
    auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(when.time_since_epoch()).count();
    auto c = read_text(ocsf_allow(millis) + "\n" + ocsf_v6_literal_deny + "\n");
    EXPECT_EQ(c.report.unreadable, 0u) << (c.report.problems.empty() ? "" : c.report.problems[0]);
    ASSERT_EQ(c.events.size(), 2u);
    const auto& a = c.events[0];
    EXPECT_EQ(a.time, when);
    EXPECT_EQ(a.event, "egress.allow");
    EXPECT_EQ(a.request_id, "r4");
    EXPECT_EQ(a.client, "batch-workers");
    EXPECT_EQ(a.source_ip, "10.20.1.7");
    EXPECT_EQ(a.source_port, 1234);
    EXPECT_EQ(a.identity, "bob");
    EXPECT_EQ(a.method, "CONNECT");
    EXPECT_EQ(a.host, "deb.debian.org");
    EXPECT_EQ(a.port, 443);
    EXPECT_EQ(a.address, "151.101.2.132");
    EXPECT_EQ(a.reason, "allowed");
    EXPECT_EQ(a.sni, "deb.debian.org");
    EXPECT_EQ(a.rule_group, "package-mirrors");
    EXPECT_EQ(a.rule_index, 0u);
    const auto& d = c.events[1];
    EXPECT_EQ(d.source_ip, "fd00::9");
    EXPECT_EQ(d.host, "2001:db8::1");
    EXPECT_EQ(d.port, 22);
    EXPECT_EQ(d.reason, "address_guard");
    EXPECT_FALSE(d.rule_index.has_value());
}

TEST(event_reader, formats_mixed_in_one_file_each_line_on_its_own)
{
    auto c = read_text(ocsf_v6_literal_deny + "\n" + native_deny + "\n" + ecs_deny + "\n");
    ASSERT_EQ(c.events.size(), 3u);
    EXPECT_EQ(c.events[0].request_id, "r5");
    EXPECT_EQ(c.events[1].request_id, "r1");
    EXPECT_EQ(c.events[2].request_id, "r3");
}

TEST(event_reader, notices_and_blank_lines_are_skipped_silently)
{
    std::string text = R"({"time":"2026-12-06T09:00:00.000Z","event":"egressd.start","version":"0.1.0"})"
                       "\n\n   \r\n" +
                       native_deny + "\r\n";
    auto c = read_text(text);
    EXPECT_EQ(c.report.lines, 4u);
    EXPECT_EQ(c.report.events, 1u);
    EXPECT_EQ(c.report.unreadable, 0u);
    EXPECT_TRUE(c.report.problems.empty());
}

TEST(event_reader, unreadable_lines_are_counted_with_their_line_numbers)
{
    std::string text = native_deny + "\n" +
                       "not json at all\n" +
                       R"({"time":"yesterday","event":"egress.deny","host":"a.example","port":443,"source":"10.0.0.1:1"})" +
                       "\n" + R"({"time":"2026-12-06T10:00:00Z","event":"egress.deny","source":"10.0.0.1:1"})" + "\n" +
                       R"(["an","array"])" + "\n" + R"({"something":"else"})" + "\n" +
                       R"({"time":"2026-12-06T10:00:00Z","event":"egress.deny","host":"a.example","port":70000,"source":"10.0.0.1:1"})" +
                       "\n" + native_v6_allow + "\n";
    test_support::temp_dir dir;
    auto file = dir.write("events.log", text).string();
    std::vector<recorded_event> events;
    auto report = read_events({file}, {}, [&](const recorded_event& e) { events.push_back(e); });
    EXPECT_EQ(report.lines, 8u);
    EXPECT_EQ(report.events, 2u);
    EXPECT_EQ(report.unreadable, 6u);
    ASSERT_EQ(events.size(), 2u);
    // The first few are kept, each naming its file and line.
    ASSERT_GE(report.problems.size(), 3u);
    EXPECT_LE(report.problems.size(), 6u);
    EXPECT_TRUE(report.problems[0].starts_with(file + ":2: not JSON")) << report.problems[0];
    EXPECT_TRUE(report.problems[1].starts_with(file + ":3: ")) << report.problems[1];
    EXPECT_NE(report.problems[1].find("time"), std::string::npos) << report.problems[1];
    EXPECT_TRUE(report.problems[2].starts_with(file + ":4: ")) << report.problems[2];
    EXPECT_NE(report.problems[2].find("host"), std::string::npos) << report.problems[2];
}

TEST(event_reader, since_and_client_filters)
{
    std::string text = native_deny + "\n" + native_v6_allow + "\n" + ecs_deny + "\n";
    auto since = read_text(text, read_filter{at("2026-12-06T10:05:00Z"), std::nullopt});
    ASSERT_EQ(since.events.size(), 2u);
    EXPECT_EQ(since.events[0].request_id, "r2");
    EXPECT_EQ(since.events[1].request_id, "r3");
    EXPECT_EQ(since.report.events, 2u);
    EXPECT_EQ(since.report.lines, 3u);

    auto web = read_text(text, read_filter{std::nullopt, std::string("web")});
    ASSERT_EQ(web.events.size(), 1u);
    EXPECT_EQ(web.events[0].request_id, "r1");

    auto both = read_text(text, read_filter{at("2026-12-06T10:01:00Z"), std::string("web")});
    EXPECT_TRUE(both.events.empty());
}

TEST(event_reader, several_files_in_order)
{
    test_support::temp_dir dir;
    auto first = dir.write("a.log", native_deny + "\n").string();
    auto second = dir.write("b.log", ecs_deny + "\n").string();
    std::vector<std::string> ids;
    auto report = read_events({first, second}, {}, [&](const recorded_event& e) { ids.push_back(e.request_id); });
    EXPECT_EQ(report.events, 2u);
    EXPECT_EQ(ids, (std::vector<std::string>{"r1", "r3"}));
}

TEST(event_reader, a_missing_file_throws_naming_it)
{
    test_support::temp_dir dir;
    auto missing = (dir.path() / "nope.log").string();
    try {
        read_events({missing}, {}, [](const recorded_event&) {});
        FAIL() << "no exception";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
    }
}

TEST(event_reader, parse_since)
{
    auto now = at("2026-12-06T12:00:00Z");
    EXPECT_EQ(parse_since("90s", now), now - 90s);
    EXPECT_EQ(parse_since("30m", now), now - 30min);
    EXPECT_EQ(parse_since("1h", now), now - 1h);
    EXPECT_EQ(parse_since("7d", now), now - std::chrono::days(7));
    EXPECT_EQ(parse_since("2026-12-01T00:00:00Z", now), at("2026-12-01T00:00:00Z"));
    // Beyond what system_clock can count (years 1678 to 2262): clamped, never wrapped around.
    EXPECT_GT(parse_since("2999-01-01T00:00:00Z", now), now);
    EXPECT_LT(parse_since("1000-01-01T00:00:00Z", now), now);
    for (const char* bad : {"", "h", "1", "1w", "-1h", "1.5h", "h1", "yesterday", "2026-12-01"}) {
        EXPECT_FALSE(parse_since(bad, now).has_value()) << bad;
    }
}

}  // namespace
}  // namespace egressd::proxy::tools
