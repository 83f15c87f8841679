// The webhook notifier (proxy/approvals/notifier.hpp): the bodies, the signature, URL parsing, and deliveries to
// a real HTTP(S) receiver on loopback that records every request and answers a scripted list of statuses:
// headers, signatures checked with an independent HMAC, retries, back-off, event filters, the bounded queue,
// prompt shutdown, and TLS verification with SNI. Retry delays are tens of milliseconds to keep the suite fast.

#include "proxy/approvals/notifier.hpp"

#include "tests/support/temp_dir.hpp"
#include "tests/support/test_pki.hpp"
#include "tests/support/webhook_receiver.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <gtest/gtest.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace egressd::proxy::approvals {
namespace {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using asio::ip::tcp;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

constexpr auto wait_limit = 5s;  // far above what a passing test needs

using receiver = test_support::webhook_receiver;
using test_support::expected_signature;
using recorded = test_support::recorded_request;

// --- helpers -------------------------------------------------------------------------------------------------

notifier::target hook(std::string url, std::string secret = "", std::vector<std::string> events = {},
                      config::webhook_config::body_format format = config::webhook_config::body_format::json)
{
    notifier::target t;
    t.hook.url = std::move(url);
    t.hook.events = std::move(events);
    t.hook.format = format;
    t.secret = std::move(secret);
    return t;
}

notifier::options fast_options()
{
    notifier::options o;
    o.first_retry = 20ms;
    o.max_retry = 80ms;
    o.max_attempts = 3;
    o.timeout = 2s;
    return o;
}

std::chrono::sys_seconds utc(int year, unsigned month, unsigned day, int hour, int minute)
{
    using namespace std::chrono;
    return sys_days{std::chrono::year{year} / std::chrono::month{month} / std::chrono::day{day}} + hours{hour} +
           minutes{minute};
}

notification approved_notification()
{
    notification n;
    n.event = "approved";
    n.at = utc(2026, 12, 6, 10, 0);
    n.request_id = 12;
    n.grant_id = 3;
    n.client = "ci";
    n.host = "api.example.com";
    n.port = 443;
    n.actor = "alice";
    n.note = "release \"week\" <ticket OPS-7> & more";
    n.expires = utc(2026, 12, 6, 18, 0);
    n.url = "https://approvals.example.com/requests/12";
    return n;
}

notification requested_notification(std::int64_t id)
{
    notification n;
    n.event = "requested";
    n.at = utc(2026, 12, 6, 9, 0);
    n.request_id = id;
    n.client = "ci";
    n.host = "api.example.com";
    n.port = 443;
    n.reason = "no_matching_rule";
    n.hits = 4;
    n.url = "https://approvals.example.com/requests/" + std::to_string(id);
    return n;
}

// Polls pred until it holds or the limit passes.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = wait_limit)
{
    auto end = clock_type::now() + limit;
    while (!pred()) {
        if (clock_type::now() > end) {
            return false;
        }
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

// --- bodies, signature, URLs ---------------------------------------------------------------------------------

TEST(notifier_body, json_has_every_field_that_applies)
{
    auto v = boost::json::parse(json_body(approved_notification()));
    const auto& o = v.as_object();
    EXPECT_EQ(o.at("event").as_string(), "approved");
    EXPECT_EQ(o.at("at").as_string(), "2026-12-06T10:00:00Z");
    EXPECT_EQ(o.at("request_id").to_number<std::int64_t>(), 12);
    EXPECT_EQ(o.at("grant_id").to_number<std::int64_t>(), 3);
    EXPECT_EQ(o.at("client").as_string(), "ci");
    EXPECT_EQ(o.at("host").as_string(), "api.example.com");
    EXPECT_EQ(o.at("port").to_number<int>(), 443);
    EXPECT_EQ(o.at("actor").as_string(), "alice");
    EXPECT_EQ(o.at("note").as_string(), "release \"week\" <ticket OPS-7> & more");
    EXPECT_EQ(o.at("expires").as_string(), "2026-12-06T18:00:00Z");
    EXPECT_EQ(o.at("url").as_string(), "https://approvals.example.com/requests/12");
    EXPECT_FALSE(o.contains("reason"));
    EXPECT_FALSE(o.contains("hits"));
}

TEST(notifier_body, json_leaves_out_what_does_not_apply)
{
    auto v = boost::json::parse(json_body(requested_notification(7)));
    const auto& o = v.as_object();
    EXPECT_EQ(o.at("event").as_string(), "requested");
    EXPECT_EQ(o.at("reason").as_string(), "no_matching_rule");
    EXPECT_EQ(o.at("hits").to_number<int>(), 4);
    for (const char* absent : {"grant_id", "actor", "note", "expires"}) {
        EXPECT_FALSE(o.contains(absent)) << absent;
    }
    EXPECT_EQ(o.size(), 9u);
}

TEST(notifier_body, slack_is_one_text_field_with_the_link)
{
    auto v = boost::json::parse(slack_body(approved_notification()));
    const auto& o = v.as_object();
    ASSERT_EQ(o.size(), 1u);
    std::string text(o.at("text").as_string());
    EXPECT_EQ(text.rfind("*Approved* request #12: `ci` \u2192 `api.example.com:443` by alice", 0), 0u) << text;
    EXPECT_NE(text.find("until 2026-12-06T18:00:00Z"), std::string::npos) << text;
    // Slack's control characters in user text are escaped; the link is Slack's <url|label>.
    EXPECT_NE(text.find("&lt;ticket OPS-7&gt; &amp; more"), std::string::npos) << text;
    EXPECT_NE(text.find("\n<https://approvals.example.com/requests/12|Open request #12>"), std::string::npos) << text;
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1);

    auto requested = boost::json::parse(slack_body(requested_notification(7)));
    std::string line(requested.as_object().at("text").as_string());
    EXPECT_EQ(line.rfind("*New* request #7: `ci` \u2192 `api.example.com:443` (no_matching_rule, 4 hits)\n", 0), 0u)
        << line;

    auto expiring = approved_notification();
    expiring.event = "expiring";
    expiring.actor.clear();
    expiring.note.clear();
    auto warning = boost::json::parse(slack_body(expiring));
    EXPECT_EQ(std::string(warning.as_object().at("text").as_string()),
              "*Expiring soon* grant #3: `ci` \u2192 `api.example.com:443`, expires 2026-12-06T18:00:00Z\n"
              "<https://approvals.example.com/requests/12|Open grant #3>");
}

TEST(notifier_body, signature_is_hmac_sha256_of_timestamp_dot_body)
{
    // The same value as: printf '%s' '1700000000.{"event":"approved"}' | openssl dgst -sha256 -hmac s3cret
    EXPECT_EQ(signature("s3cret", "1700000000", R"({"event":"approved"})"),
              "sha256=b556d69038b0c030ed64bbbe0b01bbd3366f3eea1181e50becf17ece6f0364b7");
    EXPECT_EQ(signature("s3cret", "1700000000", "body"), expected_signature("s3cret", "1700000000", "body"));
    EXPECT_NE(signature("s3cret", "1700000001", "body"), signature("s3cret", "1700000000", "body"));
}

TEST(notifier_body, event_classes)
{
    EXPECT_EQ(event_class("requested"), "requested");
    EXPECT_EQ(event_class("expiring"), "expiring");
    for (const char* decided : {"approved", "denied", "revoked", "extended"}) {
        EXPECT_EQ(event_class(decided), "decided") << decided;
    }
    EXPECT_EQ(event_class("justified"), "");
}

TEST(webhook_url, parses_scheme_host_port_and_target)
{
    auto a = parse_webhook_url("https://hooks.example.com/services/T0/B0?x=1#frag");
    ASSERT_TRUE(a);
    EXPECT_TRUE(a->tls);
    EXPECT_EQ(a->host, "hooks.example.com");
    EXPECT_EQ(a->port, 443);
    EXPECT_EQ(a->target, "/services/T0/B0?x=1");

    auto b = parse_webhook_url("HTTP://127.0.0.1:8080");
    ASSERT_TRUE(b);
    EXPECT_FALSE(b->tls);
    EXPECT_EQ(b->host, "127.0.0.1");
    EXPECT_EQ(b->port, 8080);
    EXPECT_EQ(b->target, "/");

    auto c = parse_webhook_url("http://[::1]/h");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->host, "::1");
    EXPECT_EQ(c->port, 80);
    EXPECT_EQ(c->target, "/h");

    auto d = parse_webhook_url("https://[2001:db8::1]:8443?q");
    ASSERT_TRUE(d);
    EXPECT_EQ(d->host, "2001:db8::1");
    EXPECT_EQ(d->port, 8443);
    EXPECT_EQ(d->target, "/?q");
}

TEST(webhook_url, rejects_what_cannot_be_posted_to)
{
    for (const char* bad : {"", "ftp://example.com/", "example.com/hook", "http://", "http:///path",
                            "http://user:pw@example.com/", "http://example.com:/", "http://example.com:0/",
                            "http://example.com:65536/", "http://example.com:80x/", "http://[::1/",
                            "http://[not-v6]/", "http://[::1]x/", "http://exa mple.com/", "http://example.com/a b",
                            "http://example.com/\x01"}) {
        EXPECT_FALSE(parse_webhook_url(bad)) << bad;
    }
}

// --- deliveries ----------------------------------------------------------------------------------------------

TEST(notifier, delivers_with_the_documented_headers_and_a_verifiable_signature)
{
    receiver r;
    notifier n({hook(r.url("/hook?team=ops"), "s3cret")}, fast_options());
    auto before = std::chrono::system_clock::now();
    n.enqueue(approved_notification());
    ASSERT_TRUE(r.wait_for_requests(1));
    ASSERT_TRUE(eventually([&] { return n.counts().delivered == 1; }));

    auto req = r.requests().at(0);
    EXPECT_EQ(req.method, "POST");
    EXPECT_EQ(req.target, "/hook?team=ops");
    EXPECT_EQ(req.header("host"), "127.0.0.1:" + std::to_string(r.port()));
    EXPECT_EQ(req.header("content-type"), "application/json");
    EXPECT_EQ(req.header("x-egressd-event"), "approved");
    EXPECT_FALSE(req.header("x-egressd-delivery").empty());
    EXPECT_EQ(req.body, json_body(approved_notification()));

    std::string timestamp = req.header("x-egressd-timestamp");
    auto sent = std::chrono::sys_seconds{std::chrono::seconds{std::stoll(timestamp)}};
    EXPECT_GE(sent, std::chrono::floor<std::chrono::seconds>(before));
    EXPECT_LE(sent, std::chrono::system_clock::now());

    std::string sig = req.header("x-egressd-signature");
    EXPECT_EQ(sig, expected_signature("s3cret", timestamp, req.body));
    std::string tampered = req.body;
    tampered.replace(tampered.find("alice"), 5, "mallo");
    EXPECT_NE(sig, expected_signature("s3cret", timestamp, tampered));
    EXPECT_NE(sig, expected_signature("other", timestamp, req.body));

    auto c = n.counts();
    EXPECT_EQ(c.failed, 0u);
    EXPECT_EQ(c.retried, 0u);
    EXPECT_EQ(c.dropped, 0u);
}

TEST(notifier, signs_with_the_secret_a_reload_set_and_not_at_all_without_one)
{
    receiver r;
    notifier n({hook(r.url(), "old"), hook(r.url("/unsigned"))}, fast_options());
    n.set_secrets({"new", ""});
    n.enqueue(requested_notification(1));
    ASSERT_TRUE(r.wait_for_requests(2));
    for (const auto& req : r.requests()) {
        if (req.target == "/unsigned") {
            EXPECT_EQ(req.headers.count("x-egressd-signature"), 0u);
        } else {
            EXPECT_EQ(req.header("x-egressd-signature"),
                      expected_signature("new", req.header("x-egressd-timestamp"), req.body));
        }
    }
}

TEST(notifier, retries_after_a_500_with_the_same_delivery_id)
{
    receiver r({500, 200});
    notifier n({hook(r.url(), "s3cret")}, fast_options());
    n.enqueue(approved_notification());
    ASSERT_TRUE(eventually([&] { return n.counts().delivered == 1; }));
    auto reqs = r.requests();
    ASSERT_EQ(reqs.size(), 2u);
    EXPECT_EQ(reqs[0].header("x-egressd-delivery"), reqs[1].header("x-egressd-delivery"));
    EXPECT_EQ(reqs[0].body, reqs[1].body);
    // Each attempt is signed for its own timestamp.
    EXPECT_EQ(reqs[1].header("x-egressd-signature"),
              expected_signature("s3cret", reqs[1].header("x-egressd-timestamp"), reqs[1].body));
    auto c = n.counts();
    EXPECT_EQ(c.retried, 1u);
    EXPECT_EQ(c.failed, 0u);
}

TEST(notifier, retries_after_a_429)
{
    receiver r({429, 503, 200});
    notifier n({hook(r.url())}, fast_options());
    n.enqueue(approved_notification());
    ASSERT_TRUE(eventually([&] { return n.counts().delivered == 1; }));
    EXPECT_EQ(r.requests().size(), 3u);
    EXPECT_EQ(n.counts().retried, 2u);
}

TEST(notifier, does_not_retry_a_404)
{
    receiver r({404});
    notifier n({hook(r.url())}, fast_options());
    n.enqueue(approved_notification());
    ASSERT_TRUE(eventually([&] { return n.counts().failed == 1; }));
    std::this_thread::sleep_for(200ms);  // well past every retry delay
    EXPECT_EQ(r.requests().size(), 1u);
    auto c = n.counts();
    EXPECT_EQ(c.retried, 0u);
    EXPECT_EQ(c.delivered, 0u);
}

TEST(notifier, gives_up_after_max_attempts)
{
    receiver r({500, 500, 500, 200});
    notifier n({hook(r.url())}, fast_options());
    n.enqueue(approved_notification());
    ASSERT_TRUE(eventually([&] { return n.counts().failed == 1; }));
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(r.requests().size(), 3u);
    EXPECT_EQ(n.counts().retried, 2u);
    EXPECT_EQ(n.counts().delivered, 0u);
}

TEST(notifier, retries_a_receiver_that_does_not_answer_in_time)
{
    receiver r({0});  // holds the first connection; the second waits in its backlog, unanswered too
    auto o = fast_options();
    o.timeout = 200ms;
    o.max_attempts = 2;
    notifier n({hook(r.url())}, o);
    auto start = clock_type::now();
    n.enqueue(approved_notification());
    ASSERT_TRUE(eventually([&] { return n.counts().failed == 1; }));
    EXPECT_GE(clock_type::now() - start, 400ms);
    EXPECT_LT(clock_type::now() - start, 2s);
    EXPECT_EQ(n.counts().retried, 1u);
}

TEST(notifier, counts_a_closed_port_failed_after_max_attempts)
{
    auto o = fast_options();
    o.max_attempts = 4;
    test_support::refused_port dead_end;
    notifier n({hook(dead_end.url())}, o);
    auto start = clock_type::now();
    n.enqueue(approved_notification());
    ASSERT_TRUE(eventually([&] { return n.counts().failed == 1; }));
    // 20 + 40 + 80 ms of back-off (the last capped at max_retry) lie between the four attempts.
    EXPECT_GE(clock_type::now() - start, 140ms);
    auto c = n.counts();
    EXPECT_EQ(c.retried, 3u);
    EXPECT_EQ(c.delivered, 0u);
}

TEST(notifier, fails_an_unusable_url_at_once)
{
    notifier n({hook("ftp://127.0.0.1/hook")}, fast_options());
    n.enqueue(approved_notification());
    ASSERT_TRUE(eventually([&] { return n.counts().failed == 1; }));
    EXPECT_EQ(n.counts().retried, 0u);
}

TEST(notifier, sends_each_target_only_the_events_it_asked_for)
{
    receiver r;
    using format = config::webhook_config::body_format;
    notifier n({hook(r.url("/decided"), "", {"decided"}), hook(r.url("/all")),
                hook(r.url("/slack"), "", {"requested", "expiring"}, format::slack)},
               fast_options());
    auto expiring = approved_notification();
    expiring.event = "expiring";
    n.enqueue(requested_notification(1));
    n.enqueue(approved_notification());
    n.enqueue(expiring);
    ASSERT_TRUE(eventually([&] { return n.counts().delivered == 6; }));
    std::this_thread::sleep_for(50ms);
    std::map<std::string, std::vector<std::string>> seen;
    for (const auto& req : r.requests()) {
        seen[req.target].push_back(req.header("x-egressd-event"));
        if (req.target == "/slack") {
            EXPECT_EQ(req.header("content-type"), "application/json");
            auto v = boost::json::parse(req.body);
            EXPECT_TRUE(v.as_object().contains("text")) << req.body;
        }
    }
    EXPECT_EQ(seen["/decided"], std::vector<std::string>({"approved"}));
    EXPECT_EQ(seen["/all"], std::vector<std::string>({"requested", "approved", "expiring"}));
    EXPECT_EQ(seen["/slack"], std::vector<std::string>({"requested", "expiring"}));
    EXPECT_EQ(r.requests().size(), 6u);
}

TEST(notifier, a_delivery_waiting_for_a_retry_holds_up_nothing_and_stopping_does_not_wait_for_it)
{
    receiver r({500});
    auto o = fast_options();
    o.first_retry = 30s;
    o.max_retry = 60s;
    auto n = std::make_unique<notifier>(std::vector{hook(r.url())}, o);
    n->enqueue(requested_notification(1));
    ASSERT_TRUE(r.wait_for_requests(1));
    n->enqueue(requested_notification(2));
    ASSERT_TRUE(eventually([&] { return n->counts().delivered == 1; }, 2s));
    auto reqs = r.requests();
    ASSERT_EQ(reqs.size(), 2u);
    EXPECT_EQ(boost::json::parse(reqs[1].body).as_object().at("request_id").to_number<int>(), 2);
    EXPECT_EQ(n->counts().retried, 0u);

    auto start = clock_type::now();
    n.reset();
    EXPECT_LT(clock_type::now() - start, 1s);
    EXPECT_EQ(r.requests().size(), 2u);
}

TEST(notifier, a_full_queue_drops_and_counts_without_blocking_while_the_receiver_hangs)
{
    receiver r({0});
    auto o = fast_options();
    o.queue_limit = 10;
    o.timeout = 30s;
    auto n = std::make_unique<notifier>(std::vector{hook(r.url())}, o);
    n->enqueue(requested_notification(0));
    ASSERT_TRUE(r.wait_for_requests(1));  // the sending thread now waits for an answer that never comes

    auto start = clock_type::now();
    for (int i = 1; i <= 100; ++i) {
        n->enqueue(requested_notification(i));
    }
    EXPECT_LT(clock_type::now() - start, 500ms);
    auto c = n->counts();
    EXPECT_EQ(c.dropped, 90u);
    EXPECT_EQ(c.delivered, 0u);

    // Stopping ends the attempt in flight instead of waiting out its 30 s deadline.
    start = clock_type::now();
    n.reset();
    EXPECT_LT(clock_type::now() - start, 2s);
}

// --- TLS -----------------------------------------------------------------------------------------------------

using test_support::check;
using test_support::make_party;
using test_support::party;
using test_support::pem_of;
using test_support::x509_ptr;
using test_support::key_ptr;
using test_support::bio_ptr;

// A CA that the notifier trusts through SSL_CERT_FILE (OpenSSL's default verify paths honour it), and a
// receiver context with a server certificate for the given subjectAltName.
class trusted_ca {
public:
    trusted_ca()
    {
        auto file = dir_.write("ca.pem", pem_of(ca_, false));
        ::setenv("SSL_CERT_FILE", file.c_str(), 1);
    }
    ~trusted_ca() { ::unsetenv("SSL_CERT_FILE"); }
    trusted_ca(const trusted_ca&) = delete;
    trusted_ca& operator=(const trusted_ca&) = delete;

    std::shared_ptr<ssl::context> server_context(const char* subject_alt_name) const
    {
        party server = make_party("receiver", &ca_,
                                  {{NID_basic_constraints, "CA:FALSE"},
                                   {NID_subject_alt_name, subject_alt_name},
                                   {NID_ext_key_usage, "serverAuth"}});
        auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
        auto cert = pem_of(server, false);
        auto key = pem_of(server, true);
        ctx->use_certificate_chain(asio::buffer(cert));
        ctx->use_private_key(asio::buffer(key), ssl::context::pem);
        return ctx;
    }

private:
    test_support::temp_dir dir_;
    party ca_ = make_party("egressd test CA", nullptr,
                           {{NID_basic_constraints, "critical,CA:TRUE"},
                            {NID_key_usage, "critical,keyCertSign,cRLSign"}});
};

TEST(notifier_tls, delivers_over_https_with_sni_to_a_verified_name)
{
    trusted_ca ca;
    receiver r({}, ca.server_context("DNS:localhost"));
    notifier n({hook("https://localhost:" + std::to_string(r.port()) + "/hook", "s3cret")}, fast_options());
    n.enqueue(approved_notification());
    ASSERT_TRUE(eventually([&] { return n.counts().delivered == 1; }));
    auto req = r.requests().at(0);
    EXPECT_EQ(req.sni, "localhost");
    EXPECT_EQ(req.header("host"), "localhost:" + std::to_string(r.port()));
    EXPECT_EQ(req.header("x-egressd-signature"),
              expected_signature("s3cret", req.header("x-egressd-timestamp"), req.body));
}

TEST(notifier_tls, verifies_an_address_without_sni)
{
    trusted_ca ca;
    receiver r({}, ca.server_context("IP:127.0.0.1"));
    notifier n({hook("https://127.0.0.1:" + std::to_string(r.port()) + "/hook")}, fast_options());
    n.enqueue(approved_notification());
    ASSERT_TRUE(eventually([&] { return n.counts().delivered == 1; }));
    EXPECT_EQ(r.requests().at(0).sni, "");
}

TEST(notifier_tls, refuses_a_certificate_for_another_name)
{
    trusted_ca ca;
    receiver r({}, ca.server_context("DNS:other.example"));
    auto o = fast_options();
    o.max_attempts = 2;
    notifier n({hook("https://localhost:" + std::to_string(r.port()) + "/hook")}, o);
    n.enqueue(approved_notification());
    ASSERT_TRUE(eventually([&] { return n.counts().failed == 1; }));
    EXPECT_TRUE(r.requests().empty());
    EXPECT_EQ(n.counts().delivered, 0u);
}

TEST(notifier_tls, refuses_a_certificate_from_an_untrusted_issuer)
{
    trusted_ca issuer;
    auto context = issuer.server_context("DNS:localhost");
    trusted_ca other;  // SSL_CERT_FILE now names a different CA
    receiver r({}, context);
    auto o = fast_options();
    o.max_attempts = 1;
    notifier n({hook("https://localhost:" + std::to_string(r.port()) + "/hook")}, o);
    n.enqueue(approved_notification());
    ASSERT_TRUE(eventually([&] { return n.counts().failed == 1; }));
    EXPECT_TRUE(r.requests().empty());
}

}  // namespace
}  // namespace egressd::proxy::approvals
