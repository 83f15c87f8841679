// The alert sinks' bodies (proxy/alerts/bodies.hpp) and the severity table: webhook fields present or left out,
// Slack's escaping, the Alertmanager postableAlert shape (string labels, RFC 3339 times, endsAt), and its URL.

#include "proxy/alerts/bodies.hpp"

#include "config/rfc3339.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace egressd::proxy::alerts {
namespace {

using namespace std::chrono_literals;
using observe::event_kind;
using observe::reason;

std::chrono::system_clock::time_point utc(int hour, int minute, int second, int millis = 0)
{
    using namespace std::chrono;
    return sys_days{2026y / December / 6} + hours{hour} + minutes{minute} + seconds{second} + milliseconds{millis};
}

report denied_alert()
{
    report r;
    r.type = report_type::alert;
    r.at = utc(10, 0, 0, 250);
    r.level = severity::high;
    r.first.at = r.at;
    r.first.kind = event_kind::deny;
    r.first.reason = reason::explicit_deny;
    r.first.client = "ci";
    r.first.source = "10.0.0.5:40000";
    r.first.host = "evil.example.com";
    r.first.port = 443;
    r.first.rule_group = "deny-list";
    r.first.rule_index = 2;
    r.first.request_id = "r-1";
    r.first.detail = "matched <deny> & co";
    r.first_seen = r.at;
    r.last_seen = r.at;
    r.window = 600s;
    return r;
}

report denied_summary()
{
    report r = denied_alert();
    r.type = report_type::summary;
    r.at = utc(10, 10, 0, 500);
    r.count = 41;
    r.last_seen = utc(10, 9, 59, 999);
    return r;
}

TEST(alert_bodies, webhook_alert_has_the_fields_that_apply)
{
    auto v = boost::json::parse(webhook_body(denied_alert(), "proxy-1"));
    const auto& o = v.as_object();
    EXPECT_EQ(o.at("type").as_string(), "alert");
    EXPECT_EQ(o.at("at").as_string(), "2026-12-06T10:00:00.250Z");
    EXPECT_EQ(o.at("severity").as_string(), "high");
    EXPECT_EQ(o.at("instance").as_string(), "proxy-1");
    EXPECT_EQ(o.at("verdict").as_string(), "deny");
    EXPECT_EQ(o.at("client").as_string(), "ci");
    EXPECT_EQ(o.at("source").as_string(), "10.0.0.5:40000");
    EXPECT_EQ(o.at("host").as_string(), "evil.example.com");
    EXPECT_EQ(o.at("port").to_number<int>(), 443);
    EXPECT_EQ(o.at("reason").as_string(), "explicit_deny");
    EXPECT_EQ(o.at("count").to_number<int>(), 1);
    EXPECT_EQ(o.at("window_seconds").to_number<int>(), 600);
    EXPECT_EQ(o.at("rule_group").as_string(), "deny-list");
    EXPECT_EQ(o.at("rule_index").to_number<int>(), 2);
    EXPECT_EQ(o.at("request_id").as_string(), "r-1");
    EXPECT_EQ(o.at("detail").as_string(), "matched <deny> & co");
    EXPECT_FALSE(o.contains("first_seen"));
    EXPECT_FALSE(o.contains("last_seen"));
}

TEST(alert_bodies, webhook_summary_counts_and_leaves_out_one_requests_fields)
{
    auto v = boost::json::parse(webhook_body(denied_summary(), "proxy-1"));
    const auto& o = v.as_object();
    EXPECT_EQ(o.at("type").as_string(), "summary");
    EXPECT_EQ(o.at("count").to_number<int>(), 41);
    EXPECT_EQ(o.at("first_seen").as_string(), "2026-12-06T10:00:00.250Z");
    EXPECT_EQ(o.at("last_seen").as_string(), "2026-12-06T10:09:59.999Z");
    EXPECT_FALSE(o.contains("request_id"));
    EXPECT_FALSE(o.contains("detail"));
    EXPECT_FALSE(o.contains("source"));  // the group is the client's, from any source

    report no_client = denied_summary();
    no_client.first.client.clear();
    no_client.first.reason = reason::proxy_auth_failed;
    no_client.source_address = "10.0.0.5";
    auto w = boost::json::parse(webhook_body(no_client, "proxy-1"));
    EXPECT_FALSE(w.as_object().contains("client"));
    EXPECT_EQ(w.as_object().at("source").as_string(), "10.0.0.5");
}

// Found by fuzzing: a detail or identity that is not UTF-8 made bodies that strict JSON parsers refuse.
TEST(alert_bodies, malformed_utf8_becomes_replacement_characters)
{
    auto r = denied_alert();
    r.first.detail = "bad \xff\xc3 cert \xe2\x82";
    r.first.identity = "\xc0\xaf";
    r.first.client = "caf\xc3\xa9";
    for (const auto& body : {webhook_body(r, "proxy-1"), slack_body(r, "proxy-\xfe"), alertmanager_body(r, "proxy-1")}) {
        boost::system::error_code ec;
        boost::json::parse(body, ec);
        EXPECT_FALSE(ec) << body;
    }
    auto v = boost::json::parse(webhook_body(r, "proxy-1"));
    EXPECT_EQ(v.at("detail").as_string(), "bad \xef\xbf\xbd\xef\xbf\xbd cert \xef\xbf\xbd\xef\xbf\xbd");
    EXPECT_EQ(v.at("client").as_string(), "caf\xc3\xa9");
}

TEST(alert_bodies, slack_is_one_escaped_text_line)
{
    auto v = boost::json::parse(slack_body(denied_alert(), "proxy<1>"));
    const auto& o = v.as_object();
    ASSERT_EQ(o.size(), 1u);
    std::string text(o.at("text").as_string());
    EXPECT_EQ(text, "*Egress alert* (high): `ci` \u2192 `evil.example.com:443` denied (explicit_deny): "
                    "matched &lt;deny&gt; &amp; co on `proxy&lt;1&gt;`");

    auto s = boost::json::parse(slack_body(denied_summary(), "proxy-1"));
    EXPECT_EQ(std::string(s.as_object().at("text").as_string()),
              "*Egress summary* (high): `ci` \u2192 `evil.example.com:443` denied 41 more times (explicit_deny) "
              "between 2026-12-06T10:00:00.250Z and 2026-12-06T10:09:59.999Z on `proxy-1`");
}

void expect_string_labels(const boost::json::object& alert)
{
    for (const auto& [key, value] : alert.at("labels").as_object()) {
        ASSERT_TRUE(value.is_string()) << key;
        EXPECT_FALSE(value.as_string().empty()) << key;
    }
    for (const auto& [key, value] : alert.at("annotations").as_object()) {
        ASSERT_TRUE(value.is_string()) << key;
    }
}

TEST(alert_bodies, alertmanager_alert_is_an_array_of_one_postable_alert)
{
    auto v = boost::json::parse(alertmanager_body(denied_alert(), "proxy-1"));
    ASSERT_TRUE(v.is_array());
    ASSERT_EQ(v.as_array().size(), 1u);
    const auto& alert = v.as_array()[0].as_object();
    expect_string_labels(alert);
    const auto& labels = alert.at("labels").as_object();
    EXPECT_EQ(labels.at("alertname").as_string(), "EgressDenied");
    EXPECT_EQ(labels.at("severity").as_string(), "high");
    EXPECT_EQ(labels.at("client").as_string(), "ci");
    EXPECT_EQ(labels.at("host").as_string(), "evil.example.com");
    EXPECT_EQ(labels.at("port").as_string(), "443");
    EXPECT_EQ(labels.at("reason").as_string(), "explicit_deny");
    EXPECT_EQ(labels.at("verdict").as_string(), "deny");
    EXPECT_EQ(labels.at("instance").as_string(), "proxy-1");
    EXPECT_EQ(alert.at("annotations").as_object().at("count").as_string(), "1");
    auto starts = config::parse_rfc3339(alert.at("startsAt").as_string());
    auto ends = config::parse_rfc3339(alert.at("endsAt").as_string());
    ASSERT_TRUE(starts && ends);
    EXPECT_EQ(*ends - *starts, 600s);
    EXPECT_EQ(alert.at("startsAt").as_string(), "2026-12-06T10:00:00.250Z");
}

TEST(alert_bodies, alertmanager_summary_keeps_the_labels_and_ends_now)
{
    auto a = boost::json::parse(alertmanager_body(denied_alert(), "proxy-1"));
    auto s = boost::json::parse(alertmanager_body(denied_summary(), "proxy-1"));
    const auto& summary = s.as_array()[0].as_object();
    EXPECT_EQ(summary.at("labels"), a.as_array()[0].as_object().at("labels"));
    EXPECT_EQ(summary.at("annotations").as_object().at("count").as_string(), "41");
    EXPECT_EQ(summary.at("startsAt").as_string(), "2026-12-06T10:00:00.250Z");
    EXPECT_EQ(summary.at("endsAt").as_string(), "2026-12-06T10:10:00.500Z");
}

TEST(alert_bodies, alertmanager_names_revocations_errors_and_no_client)
{
    report r = denied_alert();
    r.first.kind = event_kind::would_revoke;
    r.first.client.clear();
    auto v = boost::json::parse(alertmanager_body(r, "proxy-1"));
    const auto& labels = v.as_array()[0].as_object().at("labels").as_object();
    EXPECT_EQ(labels.at("alertname").as_string(), "EgressRevoked");
    EXPECT_EQ(labels.at("verdict").as_string(), "would_revoke");
    EXPECT_EQ(labels.at("client").as_string(), "-");

    r.first.kind = event_kind::error;
    auto e = boost::json::parse(alertmanager_body(r, "proxy-1"));
    EXPECT_EQ(e.as_array()[0].as_object().at("labels").as_object().at("alertname").as_string(), "EgressError");
}

TEST(alert_bodies, alertmanager_url_appends_the_api_path)
{
    EXPECT_EQ(alertmanager_url("http://am:9093"), "http://am:9093/api/v2/alerts");
    EXPECT_EQ(alertmanager_url("http://am:9093/"), "http://am:9093/api/v2/alerts");
    EXPECT_EQ(alertmanager_url("https://am.example.com/prefix//"), "https://am.example.com/prefix/api/v2/alerts");
}

TEST(alert_severity, default_table)
{
    for (auto why : {reason::explicit_deny, reason::address_guard, reason::sni_mismatch, reason::sni_missing,
                     reason::not_tls, reason::proxy_auth_failed, reason::client_cert_rejected,
                     reason::client_identity_invalid}) {
        EXPECT_EQ(default_severity(event_kind::deny, why), severity::high) << observe::to_string(why);
    }
    for (auto why : {reason::no_matching_rule, reason::port_not_allowed, reason::expired, reason::unknown_client,
                     reason::proxy_auth_required}) {
        EXPECT_EQ(default_severity(event_kind::deny, why), severity::low) << observe::to_string(why);
        EXPECT_EQ(default_severity(event_kind::revoke, why), severity::high) << observe::to_string(why);
        EXPECT_EQ(default_severity(event_kind::would_revoke, why), severity::high) << observe::to_string(why);
    }
    for (auto why : {reason::dns_nxdomain, reason::client_cert_missing, reason::bad_request, reason::header_timeout}) {
        EXPECT_EQ(default_severity(event_kind::deny, why), severity::medium) << observe::to_string(why);
    }
    EXPECT_EQ(parse_severity("high"), severity::high);
    EXPECT_EQ(parse_severity("urgent"), std::nullopt);
    EXPECT_EQ(verdict_name(event_kind::would_deny), "would_deny");
}

}  // namespace
}  // namespace egressd::proxy::alerts
