// The approvals listener over real HTTP on loopback: a real service over a real SQLite store in a temp dir, real
// PBKDF2 credential stores, and a small blocking Beast client.

#include "proxy/approvals/web_server.hpp"

#include "certs/credentials.hpp"
#include "config/policy_loader.hpp"
#include "proxy/approvals/service.hpp"
#include "proxy/approvals/store.hpp"
#include "proxy/event_log.hpp"
#include "tests/support/temp_dir.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/time.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using asio::ip::tcp;
using namespace std::chrono_literals;
using egressd::test_support::temp_dir;
namespace approvals = egressd::proxy::approvals;
namespace certs = egressd::certs;
namespace config = egressd::config;

using reply = http::response<http::string_body>;
using headers = std::vector<std::pair<std::string, std::string>>;

constexpr const char* policy_yaml = R"(version: 1
groups:
  payment-api:
    rules:
      - ports: [443]
        destinations: [api.payments.example]
clients:
  web:
    sources: [10.30.0.0/16]
    groups: [payment-api]
)";

std::shared_ptr<const certs::credential_store> credentials(
    const std::vector<std::pair<std::string, std::string>>& users)
{
    std::string text;
    for (const auto& [name, password] : users) {
        text += certs::credential_store::make_entry(name, password, certs::credential_store::min_iterations) + "\n";
    }
    auto [store, errors] = certs::credential_store::parse(text);
    EXPECT_TRUE(errors.empty());
    return std::make_shared<const certs::credential_store>(std::move(*store));
}

std::string basic(const std::string& user, const std::string& password)
{
    return "Basic " + certs::detail::base64_encode(user + ":" + password);
}

std::string url_encode(const std::string& text)
{
    static constexpr char digits[] = "0123456789ABCDEF";
    std::string out;
    for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        if (std::isalnum(byte) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
            out.push_back(c);
        } else {
            out.push_back('%');
            out.push_back(digits[byte >> 4]);
            out.push_back(digits[byte & 0x0f]);
        }
    }
    return out;
}

std::string form(const std::vector<std::pair<std::string, std::string>>& fields)
{
    std::string out;
    for (const auto& [name, value] : fields) {
        out += (out.empty() ? "" : "&") + url_encode(name) + "=" + url_encode(value);
    }
    return out;
}

// The value of the hidden csrf field of the first form on a page.
std::string csrf_of(const std::string& html)
{
    const auto name = html.find("name=\"csrf\"");
    if (name == std::string::npos) {
        return {};
    }
    const auto open = html.rfind('<', name);
    const auto close = html.find('>', name);
    const std::string tag = html.substr(open, close - open);
    const auto value = tag.find("value=\"");
    if (value == std::string::npos) {
        return {};
    }
    const auto start = value + 7;
    return tag.substr(start, tag.find('"', start) - start);
}

// "egressd_session=<token>" from a Set-Cookie header.
std::string cookie_pair(const reply& r)
{
    const std::string set_cookie(r[http::field::set_cookie]);
    return set_cookie.substr(0, set_cookie.find(';'));
}

class WebServerTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        auto loaded = config::load_policy_texts({{"policy.yaml", policy_yaml}});
        ASSERT_TRUE(loaded.snapshot) << (loaded.errors.empty() ? "" : loaded.errors.front().message);
        policy_ = loaded.snapshot;

        settings_.store = dir_.path() / "approvals.db";
        settings_.public_url = "http://approvals.example";
        settings_.default_grant = 8h;
        settings_.max_grant = 24h;

        // Requests made through the store before the service loads them, as the proxy's denials would have.
        auto store = approvals::open_sqlite_store(settings_.store);
        const auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
        first_ = store->create_request({"web", "api.example.com", 443}, now, "no_matching_rule", "10.30.1.7:40000", "")
                     .id;
        second_ =
            store->create_request({"web", "files.example.org", 443}, now, "no_matching_rule", "10.30.1.8:40000", "")
                .id;

        config::logging_config logging;
        logging.to_stdout = false;
        logging.file = config::rotating_file_config{(dir_.path() / "events.log").string()};
        log_ = std::make_unique<egressd::proxy::event_log>(logging);
        svc_ = std::make_unique<approvals::service>(
            settings_, std::move(store), *log_, [p = policy_] { return p; },
            [](std::shared_ptr<const egressd::policy::grant_set>) {});
        svc_->load();

        approvals::directory users;
        users.approvers = credentials({{"alice", "alice-secret"}, {"dave", "dave-secret"}});
        users.requesters = credentials({{"bob", "bob-secret"}});
        config::trusted_header_config trusted;
        trusted.approver_group = "egress-approvers";
        trusted.sources.push_back(*egressd::policy::cidr::parse("127.0.0.2/32"));
        users.trusted_header = trusted;
        users_ = users;

        approvals::web_settings web;
        web.endpoint = tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0);
        web.max_connections = 16;
        web.request_timeout = 5s;
        web.idle_timeout = 5s;
        server_ = std::make_unique<approvals::web_server>(*svc_, web, users, pool_);
        endpoint_ = server_->local_endpoint();
        server_->start();
        svc_->run();
    }

    void TearDown() override
    {
        if (server_) {
            on_service_thread([this] { server_.reset(); });
        }
        if (svc_) {
            svc_->stop();
            svc_.reset();
        }
        pool_.join();
    }

    // Runs f on the service's thread (the web server's thread contract) and waits for it.
    template <typename F>
    void on_service_thread(F f)
    {
        std::promise<void> done;
        auto finished = done.get_future();
        asio::post(svc_->io(), [&] {
            f();
            done.set_value();
        });
        ASSERT_EQ(finished.wait_for(10s), std::future_status::ready);
    }

    reply send(http::request<http::string_body> req, const std::string& from = "127.0.0.1") const
    {
        asio::io_context io;
        tcp::socket socket(io);
        socket.open(tcp::v4());
        socket.bind(tcp::endpoint(asio::ip::make_address(from), 0));
        // Every wait bounded: a server that never answers fails the test instead of hanging it.
        const timeval limit{10, 0};
        ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
        ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
        socket.connect(endpoint_);
        req.set(http::field::host, "127.0.0.1");
        req.keep_alive(false);
        req.prepare_payload();
        http::write(socket, req);
        beast::flat_buffer buffer;
        http::response_parser<http::string_body> parser;
        parser.skip(req.method() == http::verb::head);
        http::read(socket, buffer, parser);
        return parser.release();
    }

    reply request(http::verb method, const std::string& target, const headers& extra = {}, const std::string& body = "",
                  const std::string& from = "127.0.0.1") const
    {
        http::request<http::string_body> req{method, target, 11};
        for (const auto& [name, value] : extra) {
            req.set(name, value);
        }
        req.body() = body;
        return send(std::move(req), from);
    }

    reply get(const std::string& target, const headers& extra = {}, const std::string& from = "127.0.0.1") const
    {
        return request(http::verb::get, target, extra, "", from);
    }

    reply post_json(const std::string& target, const std::string& body, const headers& auth) const
    {
        headers h = auth;
        h.emplace_back("Content-Type", "application/json");
        return request(http::verb::post, target, h, body);
    }

    reply post_form(const std::string& target, const std::string& body, const headers& extra = {},
                    const std::string& from = "127.0.0.1") const
    {
        headers h = extra;
        h.emplace_back("Content-Type", "application/x-www-form-urlencoded");
        return request(http::verb::post, target, h, body, from);
    }

    // Signs in through the form; the session cookie as the Cookie header wants it.
    std::string sign_in(const std::string& user, const std::string& password) const
    {
        const auto r = post_form("/login", form({{"user", user}, {"password", password}}));
        EXPECT_EQ(r.result(), http::status::see_other) << r.body();
        return cookie_pair(r);
    }

    static json::value body_json(const reply& r) { return json::parse(r.body()); }

    std::string path_of(std::int64_t id) const { return "/requests/" + std::to_string(id); }
    std::string api_of(std::int64_t id) const { return "/api/v1/requests/" + std::to_string(id); }

    temp_dir dir_;
    config::approvals_config settings_;
    std::shared_ptr<const egressd::policy::policy> policy_;
    std::unique_ptr<egressd::proxy::event_log> log_;
    std::unique_ptr<approvals::service> svc_;
    approvals::directory users_;
    asio::thread_pool pool_{1};
    std::unique_ptr<approvals::web_server> server_;
    tcp::endpoint endpoint_;
    std::int64_t first_ = 0;
    std::int64_t second_ = 0;
    const headers alice_{{"Authorization", basic("alice", "alice-secret")}};
    const headers bob_{{"Authorization", basic("bob", "bob-secret")}};
};

TEST_F(WebServerTest, ApiWithoutCredentialsIs401WithBasicChallenge)
{
    const auto r = get("/api/v1/requests");
    EXPECT_EQ(r.result(), http::status::unauthorized);
    EXPECT_TRUE(std::string(r[http::field::www_authenticate]).starts_with("Basic "));
    EXPECT_EQ(r[http::field::content_type], "application/json");
    EXPECT_TRUE(body_json(r).as_object().contains("error"));
}

TEST_F(WebServerTest, PageWithoutUserRedirectsToLogin)
{
    const auto r = get("/");
    EXPECT_EQ(r.result(), http::status::see_other);
    EXPECT_EQ(r[http::field::location], "/login");
}

TEST_F(WebServerTest, BasicSignsInWithTheRoleOfItsFile)
{
    auto r = get("/api/v1/whoami", alice_);
    ASSERT_EQ(r.result(), http::status::ok) << r.body();
    EXPECT_EQ(body_json(r), json::parse(R"({"user":"alice","role":"approver"})"));

    r = get("/api/v1/whoami", bob_);
    ASSERT_EQ(r.result(), http::status::ok) << r.body();
    EXPECT_EQ(body_json(r), json::parse(R"({"user":"bob","role":"requester"})"));

    r = get("/api/v1/whoami", {{"Authorization", basic("alice", "wrong")}});
    EXPECT_EQ(r.result(), http::status::unauthorized);
    r = get("/api/v1/whoami", {{"Authorization", basic("nobody", "alice-secret")}});
    EXPECT_EQ(r.result(), http::status::unauthorized);
    r = get("/api/v1/whoami", {{"Authorization", "Basic !!!"}});
    EXPECT_EQ(r.result(), http::status::unauthorized);
}

TEST_F(WebServerTest, RequesterCannotDecideButMayJustify)
{
    auto r = post_json(api_of(first_) + "/approve", R"({"duration":"2m"})", bob_);
    EXPECT_EQ(r.result(), http::status::forbidden) << r.body();
    r = post_json(api_of(first_) + "/deny", "", bob_);
    EXPECT_EQ(r.result(), http::status::forbidden) << r.body();

    r = post_json(api_of(first_) + "/justify", R"({"text":"TICKET-42: the payment sandbox"})", bob_);
    ASSERT_EQ(r.result(), http::status::ok) << r.body();
    const auto justified = body_json(r).as_object();
    EXPECT_EQ(justified.at("state"), "pending");
    ASSERT_EQ(justified.at("justifications").as_array().size(), 1u);
    EXPECT_EQ(justified.at("justifications").as_array()[0].at("user"), "bob");
}

TEST_F(WebServerTest, ApproveReturnsTheGrant)
{
    const auto r =
        post_json(api_of(first_) + "/approve", R"({"duration":"2m","scope":"host","note":"sandbox"})", alice_);
    ASSERT_EQ(r.result(), http::status::ok) << r.body();
    const auto answer = body_json(r).as_object();
    const auto& request = answer.at("request").as_object();
    EXPECT_EQ(request.at("id"), first_);
    EXPECT_EQ(request.at("state"), "approved");
    EXPECT_EQ(request.at("url").as_string(), "http://approvals.example/requests/" + std::to_string(first_));
    ASSERT_TRUE(answer.at("grant").is_object());
    const auto& grant = answer.at("grant").as_object();
    EXPECT_EQ(grant.at("destination"), "api.example.com");
    EXPECT_EQ(grant.at("port"), 443);
    EXPECT_EQ(grant.at("scope"), "client");
    EXPECT_EQ(grant.at("scope_name"), "web");
    EXPECT_EQ(grant.at("state"), "active");
    EXPECT_EQ(grant.at("approved_by"), "alice");
    EXPECT_EQ(grant.at("request_id"), first_);
    const auto left = grant.at("seconds_left").to_number<std::int64_t>();
    EXPECT_GT(left, 100);
    EXPECT_LE(left, 120);

    // The grant is there to be read and revoked, and the request cannot be decided twice.
    const auto grant_id = grant.at("id").to_number<std::int64_t>();
    const auto listed = get("/api/v1/grants?state=active", alice_);
    ASSERT_EQ(listed.result(), http::status::ok);
    ASSERT_EQ(body_json(listed).at("grants").as_array().size(), 1u);
    const auto one = get("/api/v1/grants/" + std::to_string(grant_id), bob_);
    ASSERT_EQ(one.result(), http::status::ok) << one.body();
    EXPECT_EQ(body_json(one).at("id"), grant_id);
    const auto again = post_json(api_of(first_) + "/approve", "{}", alice_);
    EXPECT_EQ(again.result(), http::status::conflict) << again.body();
    const auto revoked =
        post_json("/api/v1/grants/" + std::to_string(grant_id) + "/revoke", R"({"note":"done"})", alice_);
    ASSERT_EQ(revoked.result(), http::status::ok) << revoked.body();
    EXPECT_EQ(body_json(revoked).at("state"), "revoked");
    EXPECT_EQ(body_json(revoked).at("seconds_left"), 0);
}

TEST_F(WebServerTest, ServiceFailuresMapToStatuses)
{
    auto r = post_json("/api/v1/requests/999999/approve", "{}", alice_);
    EXPECT_EQ(r.result(), http::status::not_found) << r.body();
    r = get("/api/v1/requests/999999", alice_);
    EXPECT_EQ(r.result(), http::status::not_found) << r.body();
    r = post_json(api_of(first_) + "/approve", R"({"duration":"soon"})", alice_);
    EXPECT_EQ(r.result(), http::status::unprocessable_entity) << r.body();
    r = post_json(api_of(first_) + "/approve", R"({"duration":"30d"})", alice_);  // over max_grant
    EXPECT_EQ(r.result(), http::status::unprocessable_entity) << r.body();
    r = post_json(api_of(first_) + "/deny", R"({"note":"no"})", alice_);
    ASSERT_EQ(r.result(), http::status::ok) << r.body();
    r = post_json(api_of(first_) + "/deny", R"({"note":"no"})", alice_);
    EXPECT_EQ(r.result(), http::status::conflict) << r.body();
}

TEST_F(WebServerTest, MalformedBodiesAre400)
{
    for (const std::string body : {"{", "[1]", R"({"duration":8})", R"({"durations":"8h"})", "\"8h\""}) {
        const auto r = post_json(api_of(first_) + "/approve", body, alice_);
        EXPECT_EQ(r.result(), http::status::bad_request) << body;
        EXPECT_TRUE(body_json(r).as_object().contains("error")) << body;
    }
    // Only JSON is accepted: a cross-site form cannot send it.
    headers h = alice_;
    h.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    const auto r = request(http::verb::post, api_of(first_) + "/approve", h, "duration=8h");
    EXPECT_EQ(r.result(), http::status::bad_request);
    // Still pending after all that.
    EXPECT_EQ(body_json(get(api_of(first_), alice_)).at("state"), "pending");
}

TEST_F(WebServerTest, RequestListFiltersByState)
{
    ASSERT_EQ(post_json(api_of(second_) + "/deny", R"({"note":"not needed"})", alice_).result(), http::status::ok);

    auto r = get("/api/v1/requests?state=pending", bob_);
    ASSERT_EQ(r.result(), http::status::ok) << r.body();
    auto list = body_json(r).at("requests").as_array();
    ASSERT_EQ(list.size(), 1u);
    EXPECT_EQ(list[0].at("id"), first_);
    EXPECT_EQ(list[0].at("host"), "api.example.com");
    EXPECT_EQ(list[0].at("client"), "web");
    EXPECT_EQ(list[0].at("port"), 443);
    EXPECT_EQ(list[0].at("hits"), 1);
    EXPECT_EQ(list[0].at("reason"), "no_matching_rule");
    EXPECT_TRUE(list[0].at("first_seen").as_string().ends_with("Z"));

    r = get("/api/v1/requests?state=denied", bob_);
    list = body_json(r).at("requests").as_array();
    ASSERT_EQ(list.size(), 1u);
    EXPECT_EQ(list[0].at("id"), second_);
    EXPECT_EQ(list[0].at("decided_by"), "alice");

    r = get("/api/v1/requests", bob_);
    EXPECT_EQ(body_json(r).at("requests").as_array().size(), 2u);
    r = get("/api/v1/requests?limit=1", bob_);
    EXPECT_EQ(body_json(r).at("requests").as_array().size(), 1u);

    EXPECT_EQ(get("/api/v1/requests?state=bogus", bob_).result(), http::status::bad_request);
    EXPECT_EQ(get("/api/v1/requests?status=pending", bob_).result(), http::status::bad_request);
    EXPECT_EQ(get("/api/v1/requests?limit=0", bob_).result(), http::status::bad_request);

    r = get("/api/v1/history?request=" + std::to_string(second_), bob_);
    ASSERT_EQ(r.result(), http::status::ok) << r.body();
    const auto history = body_json(r).at("history").as_array();
    ASSERT_GE(history.size(), 2u);  // requested, denied
    EXPECT_EQ(history[0].at("event"), "denied");
    EXPECT_EQ(history[0].at("actor"), "alice");
}

TEST_F(WebServerTest, LoginSetsAStrictSessionCookie)
{
    const auto r = post_form("/login", form({{"user", "alice"}, {"password", "alice-secret"}}));
    ASSERT_EQ(r.result(), http::status::see_other) << r.body();
    EXPECT_EQ(r[http::field::location], "/");
    const std::string cookie(r[http::field::set_cookie]);
    EXPECT_TRUE(cookie.starts_with("egressd_session=")) << cookie;
    EXPECT_EQ(cookie_pair(r).size(), std::string("egressd_session=").size() + 64) << cookie;
    for (const auto* attribute : {"; HttpOnly", "; Secure", "; SameSite=Strict", "; Path=/", "; Max-Age=43200"}) {
        EXPECT_NE(cookie.find(attribute), std::string::npos) << attribute << " in " << cookie;
    }

    const auto page = get("/", {{"Cookie", cookie_pair(r)}});
    EXPECT_EQ(page.result(), http::status::ok);
    EXPECT_EQ(page[http::field::content_type], "text/html; charset=utf-8");
    EXPECT_FALSE(csrf_of(page.body()).empty());
    const auto me = get("/api/v1/whoami", {{"Cookie", cookie_pair(r)}});
    EXPECT_EQ(body_json(me), json::parse(R"({"user":"alice","role":"approver"})"));

    // Signing in again with the cookie replaces that session.
    const auto again = post_form("/login", form({{"user", "alice"}, {"password", "alice-secret"}}),
                                 {{"Cookie", cookie_pair(r)}});
    ASSERT_EQ(again.result(), http::status::see_other);
    EXPECT_NE(cookie_pair(again), cookie_pair(r));
    EXPECT_EQ(get("/", {{"Cookie", cookie_pair(r)}}).result(), http::status::see_other);
    EXPECT_EQ(get("/", {{"Cookie", cookie_pair(again)}}).result(), http::status::ok);

    const auto wrong = post_form("/login", form({{"user", "alice"}, {"password", "nope"}}));
    EXPECT_EQ(wrong.result(), http::status::forbidden);
    EXPECT_EQ(wrong.count(http::field::set_cookie), 0u);
}

TEST_F(WebServerTest, PagePostNeedsTheSessionsCsrfToken)
{
    const auto cookie = sign_in("alice", "alice-secret");
    const auto page = get(path_of(first_), {{"Cookie", cookie}});
    ASSERT_EQ(page.result(), http::status::ok) << page.body();
    const auto csrf = csrf_of(page.body());
    ASSERT_EQ(csrf.size(), 64u) << page.body();

    auto r = post_form(path_of(first_) + "/deny", form({{"note", "no"}}), {{"Cookie", cookie}});
    EXPECT_EQ(r.result(), http::status::forbidden);
    // Another session's token is no good either.
    const auto other = sign_in("dave", "dave-secret");
    const auto other_csrf = csrf_of(get("/", {{"Cookie", other}}).body());
    ASSERT_FALSE(other_csrf.empty());
    ASSERT_NE(other_csrf, csrf);
    r = post_form(path_of(first_) + "/deny", form({{"csrf", other_csrf}, {"note", "no"}}), {{"Cookie", cookie}});
    EXPECT_EQ(r.result(), http::status::forbidden);
    EXPECT_EQ(body_json(get(api_of(first_), alice_)).at("state"), "pending");

    r = post_form(path_of(first_) + "/deny", form({{"csrf", csrf}, {"note", "not today"}}), {{"Cookie", cookie}});
    ASSERT_EQ(r.result(), http::status::see_other) << r.body();
    // Back to the request's page; the message waits on the server, not in the URL.
    EXPECT_EQ(r[http::field::location], path_of(first_));
    EXPECT_EQ(body_json(get(api_of(first_), alice_)).at("state"), "denied");
    const auto after = get(path_of(first_), {{"Cookie", cookie}});
    EXPECT_NE(after.body().find("Denied request " + std::to_string(first_)), std::string::npos);
    // Shown once.
    const auto later = get(path_of(first_), {{"Cookie", cookie}});
    EXPECT_EQ(later.body().find("Denied request " + std::to_string(first_)), std::string::npos);
}

TEST_F(WebServerTest, PageApproveAndRequesterRefused)
{
    const auto bob = sign_in("bob", "bob-secret");
    const auto bob_csrf = csrf_of(get("/", {{"Cookie", bob}}).body());
    ASSERT_FALSE(bob_csrf.empty());
    auto r = post_form(path_of(first_) + "/approve", form({{"csrf", bob_csrf}, {"duration", "2m"}}), {{"Cookie", bob}});
    EXPECT_EQ(r.result(), http::status::forbidden);

    const auto alice = sign_in("alice", "alice-secret");
    const auto csrf = csrf_of(get("/", {{"Cookie", alice}}).body());
    r = post_form(path_of(first_) + "/approve",
                  form({{"csrf", csrf}, {"destination", ""}, {"group", ""}, {"duration", "2m"}, {"note", "ok"}}),
                  {{"Cookie", alice}});
    ASSERT_EQ(r.result(), http::status::see_other) << r.body();
    EXPECT_EQ(r[http::field::location], path_of(first_));
    const auto request = body_json(get(api_of(first_), alice_));
    EXPECT_EQ(request.at("state"), "approved");
    ASSERT_TRUE(request.at("grant_id").is_int64());
    const auto grants = get("/grants", {{"Cookie", alice}});
    EXPECT_EQ(grants.result(), http::status::ok);
    EXPECT_NE(grants.body().find("api.example.com"), std::string::npos);
}

TEST_F(WebServerTest, TrustedHeaderOnlyFromTrustedSources)
{
    const headers proxy_says{{"X-Forwarded-User", "mallory"}, {"X-Forwarded-Groups", "staff, egress-approvers"}};
    // From 127.0.0.1, not a trusted source: the headers mean nothing.
    auto r = get("/api/v1/whoami", proxy_says, "127.0.0.1");
    EXPECT_EQ(r.result(), http::status::unauthorized);
    r = get("/", proxy_says, "127.0.0.1");
    EXPECT_EQ(r.result(), http::status::see_other);

    r = get("/api/v1/whoami", proxy_says, "127.0.0.2");
    ASSERT_EQ(r.result(), http::status::ok) << r.body();
    EXPECT_EQ(body_json(r), json::parse(R"({"user":"mallory","role":"approver"})"));
    r = get("/api/v1/whoami", {{"X-Forwarded-User", "erin"}, {"X-Forwarded-Groups", "staff,egress-approvers-2"}},
            "127.0.0.2");
    EXPECT_EQ(body_json(r), json::parse(R"({"user":"erin","role":"requester"})"));

    // Its page forms carry a token too.
    const auto page = get("/", {{"X-Forwarded-User", "erin"}}, "127.0.0.2");
    ASSERT_EQ(page.result(), http::status::ok);
    const auto csrf = csrf_of(page.body());
    ASSERT_FALSE(csrf.empty());
    headers as_erin{{"X-Forwarded-User", "erin"}};
    r = post_form(path_of(first_) + "/justify", form({{"text", "needed"}}), as_erin, "127.0.0.2");
    EXPECT_EQ(r.result(), http::status::forbidden);
    r = post_form(path_of(first_) + "/justify", form({{"csrf", csrf}, {"text", "needed"}}), as_erin, "127.0.0.2");
    EXPECT_EQ(r.result(), http::status::see_other) << r.body();
    EXPECT_EQ(body_json(get(api_of(first_), alice_)).at("justifications").as_array().size(), 1u);
}

TEST_F(WebServerTest, LogoutEndsTheSession)
{
    const auto cookie = sign_in("alice", "alice-secret");
    const auto csrf = csrf_of(get("/", {{"Cookie", cookie}}).body());
    ASSERT_FALSE(csrf.empty());
    EXPECT_EQ(post_form("/logout", "", {{"Cookie", cookie}}).result(), http::status::forbidden);

    const auto r = post_form("/logout", form({{"csrf", csrf}}), {{"Cookie", cookie}});
    ASSERT_EQ(r.result(), http::status::see_other);
    EXPECT_EQ(r[http::field::location], "/login");
    EXPECT_NE(std::string(r[http::field::set_cookie]).find("Max-Age=0"), std::string::npos);

    const auto page = get("/", {{"Cookie", cookie}});
    EXPECT_EQ(page.result(), http::status::see_other);
    EXPECT_EQ(page[http::field::location], "/login");
    EXPECT_EQ(get("/api/v1/whoami", {{"Cookie", cookie}}).result(), http::status::unauthorized);
}

TEST_F(WebServerTest, ReloadedDirectoryEndsSessionsOfRemovedUsers)
{
    const auto bob = sign_in("bob", "bob-secret");
    const auto alice = sign_in("alice", "alice-secret");
    ASSERT_EQ(get("/", {{"Cookie", bob}}).result(), http::status::ok);

    approvals::directory reloaded = users_;
    reloaded.requesters = credentials({{"carol", "carol-secret"}});
    on_service_thread([&] { server_->set_directory(reloaded); });

    EXPECT_EQ(get("/", {{"Cookie", bob}}).result(), http::status::see_other);
    EXPECT_EQ(get("/api/v1/whoami", bob_).result(), http::status::unauthorized);
    EXPECT_EQ(get("/", {{"Cookie", alice}}).result(), http::status::ok);
}

TEST_F(WebServerTest, SignInFailuresAreSlowedPerSource)
{
    const auto attempt = [&](const std::string& from) {
        const auto start = std::chrono::steady_clock::now();
        const auto r = post_form("/login", form({{"user", "alice"}, {"password", "guess"}}), {}, from);
        EXPECT_EQ(r.result(), http::status::forbidden);
        return std::chrono::steady_clock::now() - start;
    };
    for (int i = 0; i < 3; ++i) {
        EXPECT_LT(attempt("127.0.0.5"), 400ms) << "failure " << i + 1 << " is free";
    }
    EXPECT_GE(attempt("127.0.0.5"), 500ms);
    EXPECT_GE(attempt("127.0.0.5"), 1000ms);
    // Another source is not held back by this one's failures, and Basic counts the same.
    EXPECT_LT(attempt("127.0.0.6"), 400ms);
    const auto start = std::chrono::steady_clock::now();
    const auto r = request(http::verb::get, "/api/v1/whoami", {{"Authorization", basic("alice", "guess")}}, "",
                           "127.0.0.5");
    EXPECT_EQ(r.result(), http::status::unauthorized);
    EXPECT_GE(std::chrono::steady_clock::now() - start, 2000ms);
}

TEST_F(WebServerTest, SecurityHeadersOnEveryAnswer)
{
    const std::vector<reply> answers{get("/login"), get("/nope"), get("/api/v1/requests"), get("/static/style.css"),
                                     get("/api/v1/requests", alice_), request(http::verb::delete_, "/")};
    for (const auto& r : answers) {
        SCOPED_TRACE(std::to_string(r.result_int()));
        EXPECT_EQ(r["Content-Security-Policy"],
                  "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                  "base-uri 'none'");
        EXPECT_EQ(r["X-Content-Type-Options"], "nosniff");
        EXPECT_EQ(r["Referrer-Policy"], "no-referrer");
        EXPECT_EQ(r["X-Frame-Options"], "DENY");
        EXPECT_EQ(r["Cache-Control"], "no-store");
    }
    EXPECT_EQ(answers[3].result(), http::status::ok);
    EXPECT_EQ(answers[3][http::field::content_type], "text/css; charset=utf-8");
}

TEST_F(WebServerTest, UnknownRoutes404WrongMethods405)
{
    EXPECT_EQ(get("/nope", alice_).result(), http::status::not_found);
    EXPECT_EQ(get("/requests/abc", alice_).result(), http::status::not_found);
    EXPECT_EQ(get("/requests/0", alice_).result(), http::status::not_found);
    EXPECT_EQ(get("/requests/999999", alice_).result(), http::status::not_found);
    const auto api = get("/api/v1/nope", alice_);
    EXPECT_EQ(api.result(), http::status::not_found);
    EXPECT_EQ(api[http::field::content_type], "application/json");

    auto r = request(http::verb::delete_, "/api/v1/requests", alice_);
    EXPECT_EQ(r.result(), http::status::method_not_allowed);
    EXPECT_EQ(r[http::field::allow], "GET, HEAD");
    r = get("/logout", alice_);
    EXPECT_EQ(r.result(), http::status::method_not_allowed);
    EXPECT_EQ(r[http::field::allow], "POST");
    r = request(http::verb::put, "/login");
    EXPECT_EQ(r.result(), http::status::method_not_allowed);
    EXPECT_EQ(r[http::field::allow], "GET, HEAD, POST");
    r = get(api_of(first_) + "/approve", alice_);
    EXPECT_EQ(r.result(), http::status::method_not_allowed);
    EXPECT_EQ(r[http::field::allow], "POST");
}

TEST_F(WebServerTest, HeadAnswersLikeGetWithoutBody)
{
    const auto r = request(http::verb::head, "/login");
    EXPECT_EQ(r.result(), http::status::ok);
    EXPECT_TRUE(r.body().empty());
    EXPECT_GT(std::stoul(std::string(r[http::field::content_length])), 0u);
    EXPECT_EQ(r["X-Frame-Options"], "DENY");
}

TEST_F(WebServerTest, ConnectionsOverTheLimitGet503)
{
    // max_connections is 16: sixteen idle connections fill it (accepted in order, before the seventeenth).
    asio::io_context io;
    std::vector<tcp::socket> idle;
    for (int i = 0; i < 16; ++i) {
        idle.emplace_back(io).connect(endpoint_);
    }
    const auto busy = get("/login");
    EXPECT_EQ(busy.result(), http::status::service_unavailable);
    EXPECT_EQ(busy["Cache-Control"], "no-store");
    idle.clear();
    // Their places come back once the server has seen them close.
    bool served = false;
    for (int attempt = 0; attempt < 50 && !served; ++attempt) {
        served = get("/login").result() == http::status::ok;
        if (!served) {
            std::this_thread::sleep_for(100ms);
        }
    }
    EXPECT_TRUE(served);
}

TEST_F(WebServerTest, OversizedRequestsAreRefused)
{
    const auto big_body = post_json(api_of(first_) + "/justify", std::string(70 * 1024, ' '), alice_);
    EXPECT_EQ(big_body.result(), http::status::payload_too_large);
    const auto big_head = get("/", {{"X-Filler", std::string(9 * 1024, 'x')}});
    EXPECT_EQ(big_head.result(), http::status::request_header_fields_too_large);
}

TEST_F(WebServerTest, PagesRender)
{
    const auto cookie = sign_in("alice", "alice-secret");
    for (const std::string& path :
         std::vector<std::string>{"/", path_of(first_), "/grants", "/history", "/history?client=web&request=1"}) {
        const auto r = get(path, {{"Cookie", cookie}});
        EXPECT_EQ(r.result(), http::status::ok) << path;
        EXPECT_NE(r.body().find("<html"), std::string::npos) << path;
    }
    EXPECT_EQ(get("/history?request=x", {{"Cookie", cookie}}).result(), http::status::bad_request);
    EXPECT_EQ(get("/history?client=%zz", {{"Cookie", cookie}}).result(), http::status::bad_request);
}

}  // namespace
