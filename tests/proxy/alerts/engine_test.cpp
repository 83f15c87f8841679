// The alert engine (proxy/alerts/engine.hpp) against real HTTP receivers on loopback: grouping and dedup
// windows (one alert, one summary), keys by source for client-less floods, retries, drops, a dead sink beside a
// live one, signatures, the three body formats as delivered, filters, severities, rate limits and the open-group
// bound. Windows are 1 s and the tick 20 ms, so every test waits at most a few seconds.

#include "proxy/alerts/engine.hpp"

#include "config/rfc3339.hpp"
#include "tests/support/webhook_receiver.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <gtest/gtest.h>


#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace egressd::proxy::alerts {
namespace {

using namespace std::chrono_literals;
using observe::event_kind;
using observe::reason;
using sink_kind = config::alert_sink_config::sink_kind;
using test_support::expected_signature;
using test_support::refused_port;
using test_support::webhook_receiver;

constexpr auto wait_limit = 10s;  // far above what a passing test needs

config::alert_sink_config sink(std::string url, sink_kind kind = sink_kind::webhook)
{
    config::alert_sink_config c;
    c.kind = kind;
    c.url = std::move(url);
    c.dedup = 1s;
    return c;
}

engine::options fast_options()
{
    engine::options o;
    o.tick = 20ms;
    o.first_retry = 20ms;
    o.max_retry = 80ms;
    o.max_attempts = 3;
    o.timeout = 2s;
    return o;
}

std::chrono::system_clock::time_point t0()
{
    using namespace std::chrono;
    return sys_days{2026y / December / 6} + hours{10};
}

observation denial(std::string client = "ci", std::string host = "evil.example.com", reason why = reason::explicit_deny)
{
    observation o;
    o.at = t0();
    o.kind = event_kind::deny;
    o.reason = why;
    o.client = std::move(client);
    o.source = "10.0.0.5:40000";
    o.host = std::move(host);
    o.port = 443;
    o.rule_group = "deny-list";
    o.rule_index = 0;
    o.request_id = "r-1";
    o.mode = "enforce";
    return o;
}

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = wait_limit)
{
    auto end = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > end) {
            return false;
        }
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

boost::json::object body_of(const test_support::recorded_request& r) { return boost::json::parse(r.body).as_object(); }

// --- grouping ------------------------------------------------------------------------------------------------

TEST(alert_engine, a_burst_of_one_key_is_one_alert_and_one_summary)
{
    webhook_receiver r;
    engine e({sink(r.url())}, {""}, "proxy-1", fast_options());
    std::vector<observation> batch;
    for (int i = 0; i < 10'000; ++i) {
        auto o = denial();
        o.at = t0() + std::chrono::milliseconds(i);
        o.request_id = "r-" + std::to_string(i);
        batch.push_back(std::move(o));
        if (batch.size() == 1000) {
            e.submit(std::move(batch));
            batch.clear();
        }
    }
    ASSERT_TRUE(r.wait_for_requests(2, wait_limit));
    std::this_thread::sleep_for(1500ms);  // past another window: nothing more may come
    auto reqs = r.requests();
    ASSERT_EQ(reqs.size(), 2u);

    auto alert = body_of(reqs[0]);
    EXPECT_EQ(reqs[0].header("x-egressd-event"), "alert");
    EXPECT_EQ(alert.at("type").as_string(), "alert");
    EXPECT_EQ(alert.at("count").to_number<int>(), 1);
    EXPECT_EQ(alert.at("request_id").as_string(), "r-0");
    EXPECT_EQ(alert.at("instance").as_string(), "proxy-1");
    EXPECT_EQ(alert.at("window_seconds").to_number<int>(), 1);

    auto summary = body_of(reqs[1]);
    EXPECT_EQ(reqs[1].header("x-egressd-event"), "summary");
    EXPECT_EQ(summary.at("type").as_string(), "summary");
    EXPECT_EQ(summary.at("count").to_number<int>(), 9'999);
    EXPECT_EQ(summary.at("first_seen").as_string(), "2026-12-06T10:00:00.000Z");
    EXPECT_EQ(summary.at("last_seen").as_string(), "2026-12-06T10:00:09.999Z");
    EXPECT_EQ(summary.at("host").as_string(), "evil.example.com");

    auto c = e.counts().at(0);
    EXPECT_EQ(c.name, "webhook-1");
    EXPECT_EQ(c.kind, "webhook");
    EXPECT_EQ(c.alerts, 1u);
    EXPECT_EQ(c.summaries, 1u);
    EXPECT_EQ(c.suppressed, 9'999u);
    EXPECT_EQ(c.delivered, 2u);
    EXPECT_EQ(c.rate_limited, 0u);
}

TEST(alert_engine, one_lone_observation_has_no_summary_and_a_closed_window_alerts_again)
{
    webhook_receiver r;
    engine e({sink(r.url())}, {""}, "proxy-1", fast_options());
    e.submit({denial()});
    ASSERT_TRUE(r.wait_for_requests(1, wait_limit));
    std::this_thread::sleep_for(1500ms);
    EXPECT_EQ(r.requests().size(), 1u);
    e.submit({denial()});
    ASSERT_TRUE(r.wait_for_requests(2, wait_limit));
    EXPECT_EQ(body_of(r.requests()[1]).at("type").as_string(), "alert");
    EXPECT_EQ(e.counts().at(0).summaries, 0u);
}

TEST(alert_engine, two_keys_are_two_alerts)
{
    webhook_receiver r;
    auto c = sink(r.url());
    c.dedup = 600s;
    engine e({c}, {""}, "proxy-1", fast_options());
    e.submit({denial("ci", "a.example.com"), denial("ci", "b.example.com"), denial("ci", "a.example.com")});
    ASSERT_TRUE(r.wait_for_requests(2, wait_limit));
    std::this_thread::sleep_for(200ms);
    auto reqs = r.requests();
    ASSERT_EQ(reqs.size(), 2u);
    EXPECT_EQ(body_of(reqs[0]).at("host").as_string(), "a.example.com");
    EXPECT_EQ(body_of(reqs[1]).at("host").as_string(), "b.example.com");
    EXPECT_EQ(e.counts().at(0).suppressed, 1u);
}

TEST(alert_engine, a_client_less_flood_is_grouped_by_source_address)
{
    webhook_receiver r;
    auto c = sink(r.url());
    c.dedup = 600s;
    engine e({c}, {""}, "proxy-1", fast_options());
    std::vector<observation> batch;
    for (int i = 0; i < 500; ++i) {
        auto o = denial("", "-", reason::proxy_auth_failed);
        o.port = 0;
        o.source = "10.0.0." + std::to_string(5 + i % 2) + ":" + std::to_string(40000 + i);  // two sources
        batch.push_back(std::move(o));
    }
    auto v6 = denial("", "-", reason::proxy_auth_failed);
    v6.port = 0;
    v6.source = "[2001:db8::5]:40000";
    batch.push_back(v6);
    e.submit(std::move(batch));
    ASSERT_TRUE(r.wait_for_requests(3, wait_limit));
    std::this_thread::sleep_for(200ms);
    auto reqs = r.requests();
    ASSERT_EQ(reqs.size(), 3u);
    for (const auto& req : reqs) {
        auto o = body_of(req);
        EXPECT_FALSE(o.contains("client"));
        EXPECT_EQ(o.at("reason").as_string(), "proxy_auth_failed");
        EXPECT_EQ(o.at("severity").as_string(), "high");
    }
    EXPECT_EQ(body_of(reqs[0]).at("source").as_string(), "10.0.0.5:40000");
    EXPECT_EQ(body_of(reqs[1]).at("source").as_string(), "10.0.0.6:40001");
    EXPECT_EQ(body_of(reqs[2]).at("source").as_string(), "[2001:db8::5]:40000");
    EXPECT_EQ(e.counts().at(0).suppressed, 498u);
}

// --- delivery ------------------------------------------------------------------------------------------------

TEST(alert_engine, a_failing_receiver_is_retried_then_counted_failed)
{
    auto r = webhook_receiver::answering(500);
    engine e({sink(r.url())}, {""}, "proxy-1", fast_options());
    e.submit({denial()});
    ASSERT_TRUE(eventually([&] { return e.counts().at(0).failed == 1; }));
    auto c = e.counts().at(0);
    EXPECT_EQ(c.retried, 2u);
    EXPECT_EQ(c.delivered, 0u);
    EXPECT_EQ(r.requests().size(), 3u);
}

TEST(alert_engine, a_full_queue_drops_and_counts_without_blocking)
{
    auto r = webhook_receiver::answering(0);  // holds every connection unanswered
    auto c = sink(r.url());
    c.queue = 2;
    c.dedup = 600s;
    auto o = fast_options();
    o.timeout = 30s;
    auto e = std::make_unique<engine>(std::vector{c}, std::vector<std::string>{""}, "proxy-1", o);
    e->submit({denial("ci", "first.example.com")});
    ASSERT_TRUE(r.wait_for_requests(1, wait_limit));  // the sink's thread now waits for an answer
    std::vector<observation> batch;
    for (int i = 0; i < 10; ++i) {
        batch.push_back(denial("ci", "host" + std::to_string(i) + ".example.com"));
    }
    e->submit(std::move(batch));
    auto counts = e->counts().at(0);
    EXPECT_EQ(counts.alerts, 11u);
    EXPECT_EQ(counts.queued, 2u);
    EXPECT_EQ(counts.dropped, 8u);
    EXPECT_EQ(counts.delivered, 0u);

    // Stopping cuts the attempt in flight short instead of waiting out its 30 s deadline.
    auto start = std::chrono::steady_clock::now();
    e.reset();
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST(alert_engine, a_dead_sink_does_not_hold_up_another)
{
    webhook_receiver r;
    refused_port dead_end;
    auto dead = sink(dead_end.url());
    dead.name = "dead";
    auto live = sink(r.url());
    live.name = "live";
    auto o = fast_options();
    o.first_retry = 1s;
    o.max_retry = 60s;
    o.max_attempts = 5;
    engine e({dead, live}, {"", ""}, "proxy-1", o);
    e.submit({denial()});
    ASSERT_TRUE(r.wait_for_requests(1, wait_limit));
    auto counts = e.counts();
    EXPECT_EQ(counts.at(0).name, "dead");
    EXPECT_EQ(counts.at(0).delivered, 0u);
    EXPECT_EQ(counts.at(0).alerts, 1u);
    ASSERT_TRUE(eventually([&] { return e.counts().at(1).delivered == 1; }));
}

TEST(alert_engine, signs_webhooks_with_the_secret_and_a_reload_changes_it)
{
    webhook_receiver r;
    auto c = sink(r.url());
    c.dedup = 600s;
    engine e({c}, {"s3cret"}, "proxy-1", fast_options());
    e.submit({denial("ci", "a.example.com")});
    ASSERT_TRUE(r.wait_for_requests(1, wait_limit));
    e.set_secrets({"rotated"});
    e.submit({denial("ci", "b.example.com")});
    ASSERT_TRUE(r.wait_for_requests(2, wait_limit));
    auto reqs = r.requests();
    EXPECT_EQ(reqs[0].method, "POST");
    EXPECT_EQ(reqs[0].target, "/hook");
    EXPECT_EQ(reqs[0].header("content-type"), "application/json");
    EXPECT_FALSE(reqs[0].header("x-egressd-delivery").empty());
    EXPECT_NE(reqs[0].header("x-egressd-delivery"), reqs[1].header("x-egressd-delivery"));
    EXPECT_EQ(reqs[0].header("x-egressd-signature"),
              expected_signature("s3cret", reqs[0].header("x-egressd-timestamp"), reqs[0].body));
    EXPECT_EQ(reqs[1].header("x-egressd-signature"),
              expected_signature("rotated", reqs[1].header("x-egressd-timestamp"), reqs[1].body));
    EXPECT_NE(reqs[0].header("x-egressd-signature"),
              expected_signature("other", reqs[0].header("x-egressd-timestamp"), reqs[0].body));
}

TEST(alert_engine, slack_sink_posts_a_text_body)
{
    webhook_receiver r;
    engine e({sink(r.url("/services/T0/B0"), sink_kind::slack)}, {""}, "proxy-1", fast_options());
    auto o = denial("team<a>&b");
    e.submit({o});
    ASSERT_TRUE(r.wait_for_requests(1, wait_limit));
    auto req = r.requests().at(0);
    EXPECT_EQ(req.target, "/services/T0/B0");
    EXPECT_TRUE(req.header("x-egressd-signature").empty());
    auto body = body_of(req);
    ASSERT_EQ(body.size(), 1u);
    std::string text(body.at("text").as_string());
    EXPECT_EQ(text.rfind("*Egress alert* (high): `team&lt;a&gt;&amp;b` \u2192 `evil.example.com:443` denied", 0), 0u)
        << text;
}

TEST(alert_engine, alertmanager_sink_posts_postable_alerts_to_the_v2_api)
{
    webhook_receiver r;
    auto start = std::chrono::system_clock::now();
    engine e({sink(r.url("/am/"), sink_kind::alertmanager)}, {""}, "proxy-1", fast_options());
    auto o = denial("", "evil.example.com", reason::address_guard);
    o.at = start;
    e.submit({o, o, o});
    ASSERT_TRUE(r.wait_for_requests(2, wait_limit));
    auto reqs = r.requests();
    EXPECT_EQ(reqs[0].target, "/am/api/v2/alerts");
    std::vector<boost::json::object> alerts;
    for (const auto& req : reqs) {
        auto v = boost::json::parse(req.body);
        ASSERT_TRUE(v.is_array()) << req.body;
        ASSERT_EQ(v.as_array().size(), 1u);
        alerts.push_back(v.as_array()[0].as_object());
        for (const auto& [key, value] : alerts.back().at("labels").as_object()) {
            ASSERT_TRUE(value.is_string()) << key;
            EXPECT_FALSE(value.as_string().empty()) << key;
        }
    }
    const auto& labels = alerts[0].at("labels").as_object();
    EXPECT_EQ(labels.at("alertname").as_string(), "EgressDenied");
    EXPECT_EQ(labels.at("client").as_string(), "-");
    EXPECT_EQ(labels.at("source").as_string(), "10.0.0.5");
    EXPECT_EQ(labels.at("port").as_string(), "443");
    EXPECT_EQ(labels.at("severity").as_string(), "high");
    EXPECT_EQ(alerts[1].at("labels"), alerts[0].at("labels"));
    EXPECT_EQ(alerts[1].at("annotations").as_object().at("count").as_string(), "2");

    auto starts = config::parse_rfc3339(alerts[0].at("startsAt").as_string());
    auto ends = config::parse_rfc3339(alerts[0].at("endsAt").as_string());
    ASSERT_TRUE(starts && ends);
    EXPECT_EQ(*ends - *starts, 1s);
    auto summary_starts = config::parse_rfc3339(alerts[1].at("startsAt").as_string());
    auto summary_ends = config::parse_rfc3339(alerts[1].at("endsAt").as_string());
    ASSERT_TRUE(summary_starts && summary_ends);
    EXPECT_EQ(*summary_starts, *starts);
    EXPECT_GE(*summary_ends, *summary_starts);
}

// --- filters, severities, limits -----------------------------------------------------------------------------

TEST(alert_engine, filters_by_reason_client_and_verdict)
{
    webhook_receiver r;
    auto by_reason = sink(r.url("/reasons"));
    by_reason.reasons = {"explicit_deny", "address_guard"};
    auto by_client = sink(r.url("/clients"));
    by_client.clients = {"web"};
    auto by_verdict = sink(r.url("/verdicts"));
    by_verdict.verdicts = {"would_deny", "error"};
    engine e({by_reason, by_client, by_verdict}, {}, "proxy-1", fast_options());

    EXPECT_TRUE(e.wants(event_kind::deny, reason::explicit_deny, "ci"));
    EXPECT_TRUE(e.wants(event_kind::deny, reason::no_matching_rule, "web"));
    EXPECT_FALSE(e.wants(event_kind::deny, reason::no_matching_rule, "ci"));
    EXPECT_FALSE(e.wants(event_kind::deny, reason::no_matching_rule, ""));
    EXPECT_TRUE(e.wants(event_kind::would_deny, reason::no_matching_rule, "ci"));
    EXPECT_TRUE(e.wants(event_kind::error, reason::dns_nxdomain, ""));
    EXPECT_TRUE(e.wants(event_kind::revoke, reason::address_guard, "ci"));
    EXPECT_FALSE(e.wants(event_kind::would_revoke, reason::explicit_deny, "ci"));
    EXPECT_FALSE(e.wants(event_kind::allow, reason::allowed, "web"));
    EXPECT_FALSE(e.wants(event_kind::close, reason::allowed, "web"));

    auto would = denial("ci", "would.example.com", reason::no_matching_rule);
    would.kind = event_kind::would_deny;
    e.submit({denial("ci", "explicit.example.com"), denial("web", "web.example.com", reason::no_matching_rule),
              denial("ci", "nothing.example.com", reason::no_matching_rule), would});
    ASSERT_TRUE(r.wait_for_requests(3, wait_limit));
    std::this_thread::sleep_for(200ms);
    std::map<std::string, std::vector<std::string>> seen;
    for (const auto& req : r.requests()) {
        seen[req.target].push_back(std::string(body_of(req).at("host").as_string()));
    }
    EXPECT_EQ(seen["/reasons"], std::vector<std::string>{"explicit.example.com"});
    EXPECT_EQ(seen["/clients"], std::vector<std::string>{"web.example.com"});
    EXPECT_EQ(seen["/verdicts"], std::vector<std::string>{"would.example.com"});
    EXPECT_EQ(r.requests().size(), 3u);
}

TEST(alert_engine, no_sinks_want_nothing)
{
    engine e({}, {}, "proxy-1", fast_options());
    EXPECT_FALSE(e.wants(event_kind::deny, reason::explicit_deny, "ci"));
    e.submit({denial()});
    EXPECT_TRUE(e.counts().empty());
}

TEST(alert_engine, severity_overrides_win_over_the_defaults)
{
    webhook_receiver r;
    auto c = sink(r.url());
    c.severity = {{"no_matching_rule", "high"}, {"explicit_deny", "low"}};
    engine e({c}, {""}, "proxy-1", fast_options());
    e.submit({denial("ci", "a.example.com", reason::no_matching_rule), denial("ci", "b.example.com"),
              denial("ci", "c.example.com", reason::port_not_allowed)});
    ASSERT_TRUE(r.wait_for_requests(3, wait_limit));
    std::map<std::string, std::string> level;
    for (const auto& req : r.requests()) {
        auto o = body_of(req);
        level[std::string(o.at("host").as_string())] = std::string(o.at("severity").as_string());
    }
    EXPECT_EQ(level["a.example.com"], "high");
    EXPECT_EQ(level["b.example.com"], "low");
    EXPECT_EQ(level["c.example.com"], "low");
}

TEST(alert_engine, the_rate_limit_counts_and_the_summary_keeps_the_count)
{
    webhook_receiver r;
    auto c = sink(r.url());
    c.max_per_minute = 3;
    engine e({c}, {""}, "proxy-1", fast_options());
    // Three alerts use the minute's tokens; the fourth group's alert is rate limited, its group stays open.
    e.submit({denial("ci", "a.example.com"), denial("ci", "b.example.com"), denial("ci", "c.example.com"),
              denial("ci", "d.example.com"), denial("ci", "d.example.com")});
    ASSERT_TRUE(r.wait_for_requests(3, wait_limit));
    auto counts = e.counts().at(0);
    EXPECT_EQ(counts.alerts, 3u);
    EXPECT_EQ(counts.rate_limited, 1u);
    EXPECT_EQ(counts.suppressed, 1u);
    // Its window closes with no token left either: the summary is rate limited too, and counted.
    ASSERT_TRUE(eventually([&] { return e.counts().at(0).rate_limited == 2; }));
    EXPECT_EQ(r.requests().size(), 3u);
}

TEST(alert_engine, the_summary_of_a_rate_limited_group_counts_its_first_observation)
{
    webhook_receiver r;
    auto c = sink(r.url());
    c.max_per_minute = 120;  // 2 per second: the summary gets a fresh token by the time the window closes
    engine e({c}, {""}, "proxy-1", fast_options());
    std::vector<observation> batch;
    for (int i = 0; i <= 120; ++i) {
        batch.push_back(denial("ci", "h" + std::to_string(i) + ".example.com"));
    }
    batch.push_back(denial("ci", "h120.example.com"));  // the 121st group: its alert was rate limited
    e.submit(std::move(batch));
    ASSERT_TRUE(eventually([&] { return e.counts().at(0).delivered == 121; }));
    auto counts = e.counts().at(0);
    EXPECT_EQ(counts.alerts, 120u);
    EXPECT_EQ(counts.summaries, 1u);
    EXPECT_EQ(counts.rate_limited, 1u);
    bool found = false;
    for (const auto& req : r.requests()) {
        auto o = body_of(req);
        if (o.at("type").as_string() == "summary") {
            found = true;
            EXPECT_EQ(o.at("host").as_string(), "h120.example.com");
            EXPECT_EQ(o.at("count").to_number<int>(), 2);
        }
    }
    EXPECT_TRUE(found);
}

TEST(alert_engine, open_groups_are_bounded_and_the_overflow_is_summarized)
{
    webhook_receiver r;
    auto o = fast_options();
    o.max_groups = 3;
    engine e({sink(r.url())}, {""}, "proxy-1", o);
    std::vector<observation> batch;
    for (int i = 0; i < 10; ++i) {
        batch.push_back(denial("ci", "h" + std::to_string(i) + ".example.com"));
    }
    e.submit(std::move(batch));
    ASSERT_TRUE(r.wait_for_requests(4, wait_limit));
    std::this_thread::sleep_for(200ms);
    auto reqs = r.requests();
    ASSERT_EQ(reqs.size(), 4u);
    auto overflow = body_of(reqs[3]);
    EXPECT_EQ(overflow.at("type").as_string(), "summary");
    EXPECT_TRUE(overflow.at("overflow").as_bool());
    EXPECT_EQ(overflow.at("count").to_number<int>(), 7);
    EXPECT_FALSE(overflow.contains("host"));
    auto counts = e.counts().at(0);
    EXPECT_EQ(counts.alerts, 3u);
    EXPECT_EQ(counts.summaries, 1u);
    EXPECT_EQ(counts.suppressed, 7u);
}

TEST(alert_engine, stopping_does_not_wait_for_a_back_off)
{
    auto r = webhook_receiver::answering(500);
    auto o = fast_options();
    o.first_retry = 30s;
    o.max_retry = 60s;
    auto e = std::make_unique<engine>(std::vector{sink(r.url())}, std::vector<std::string>{""}, "proxy-1", o);
    e->submit({denial()});
    ASSERT_TRUE(r.wait_for_requests(1, wait_limit));
    auto start = std::chrono::steady_clock::now();
    e.reset();
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

}  // namespace
}  // namespace egressd::proxy::alerts
