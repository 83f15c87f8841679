// The admin server (proxy/admin/admin_server.hpp) over real loopback sockets: every endpoint and status code,
// the bearer token, the asynchronous reload, framing limits, keep-alive, the connection limit, deadlines, TLS with
// client certificates, and an exclusive bind. The server runs on its own io_context thread, as in egressd; the
// clients are Beast clients on a private io_context (every operation has a deadline, so no test can hang on a
// socket), or raw POSIX sockets where bytes must trickle.

#include "proxy/admin/admin_server.hpp"
#include "tests/support/test_pki.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <gtest/gtest.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace egressd::proxy::admin {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using asio::ip::tcp;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

constexpr auto wait_limit = 5s;  // any single client operation; far above what a passing test needs

// --- the server under test -----------------------------------------------------------------------------------

settings loopback()
{
    settings s;
    s.endpoint = tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0);
    return s;
}

handlers basic_handlers()
{
    handlers h;
    h.ready = [] { return true; };
    h.status_json = [] { return std::string(R"({"state":"serving"})"); };
    h.metrics_text = [] { return std::string("egressd_up 1\n"); };
    h.reload = [](std::function<void(bool, std::string)> done) { done(true, R"({"reloaded":true})"); };
    return h;
}

// Collects handlers::internal_error's reports; they arrive on the server thread.
class error_log {
public:
    std::function<void(std::string_view)> sink()
    {
        return [this](std::string_view what) {
            std::lock_guard lock(mutex_);
            lines_.emplace_back(what);
        };
    }
    std::vector<std::string> lines() const
    {
        std::lock_guard lock(mutex_);
        return lines_;
    }

private:
    mutable std::mutex mutex_;
    std::vector<std::string> lines_;
};

// An admin_server on a thread of its own, as on egressd's control thread. No work guard: the server's pending
// accept keeps run() going, so run() returning after stop() shows that the server let go of everything.
class test_server {
public:
    test_server(settings s, handlers h) : server_(io_, std::move(s), std::move(h))
    {
        server_.start();
        thread_ = std::thread([this] {
            io_.run();
            finished_.set_value();
        });
    }
    ~test_server()
    {
        if (!shutdown()) {
            ADD_FAILURE() << "the server's io_context did not run out of work after stop()";
        }
    }
    test_server(const test_server&) = delete;
    test_server& operator=(const test_server&) = delete;

    tcp::endpoint endpoint() const { return server_.local_endpoint(); }
    asio::io_context& io() { return io_; }

    // Stops the server on its thread; true when run() then returned by itself within the limit.
    bool shutdown(std::chrono::milliseconds limit = 5s)
    {
        if (!thread_.joinable()) {
            return true;
        }
        asio::post(io_, [this] { server_.stop(); });
        bool drained = finished_future_.wait_for(limit) == std::future_status::ready;
        if (!drained) {
            io_.stop();
        }
        thread_.join();
        return drained;
    }

private:
    asio::io_context io_;
    admin_server server_;
    std::promise<void> finished_;
    std::future<void> finished_future_ = finished_.get_future();
    std::thread thread_;
};

// --- clients -------------------------------------------------------------------------------------------------

struct reply {
    boost::system::error_code ec;
    http::response<http::string_body> res;
};

// "METHOD target VERSION" with a Host header, the extra header lines (each ending in \r\n), and a body.
std::string request_text(std::string_view method, std::string_view target, std::string_view extra = "",
                         std::string_view version = "HTTP/1.1", std::string_view body = "")
{
    std::string text;
    text.append(method).append(" ").append(target).append(" ").append(version).append("\r\n");
    text.append("Host: 127.0.0.1\r\n").append(extra).append("\r\n").append(body);
    return text;
}

// A Beast HTTP client, plain or TLS, driven one operation at a time on its own io_context.
class client {
public:
    explicit client(tcp::endpoint endpoint, std::shared_ptr<ssl::context> tls = nullptr)
        : endpoint_(endpoint), tls_context_(std::move(tls))
    {
    }

    // TCP connect, then the TLS handshake when the client has a TLS context.
    boost::system::error_code connect()
    {
        if (tls_context_) {
            tls_.emplace(io_, *tls_context_);
        } else {
            plain_.emplace(io_);
        }
        boost::system::error_code result;
        lowest().expires_after(wait_limit);
        lowest().async_connect(endpoint_, [&](boost::system::error_code ec) { result = ec; });
        run();
        if (result || !tls_) {
            return result;
        }
        lowest().expires_after(wait_limit);
        tls_->async_handshake(ssl::stream_base::client, [&](boost::system::error_code ec) { result = ec; });
        run();
        return result;
    }

    boost::system::error_code send(std::string_view bytes)
    {
        boost::system::error_code result;
        lowest().expires_after(wait_limit);
        visit([&](auto& stream) {
            asio::async_write(stream, asio::buffer(bytes),
                              [&](boost::system::error_code ec, std::size_t) { result = ec; });
        });
        run();
        return result;
    }

    // One response; head: it answers a HEAD request, so it has no body whatever its Content-Length says.
    reply read(bool head = false)
    {
        reply r;
        http::response_parser<http::string_body> parser;
        parser.skip(head);
        lowest().expires_after(wait_limit);
        visit([&](auto& stream) {
            http::async_read(stream, buffer_, parser, [&](boost::system::error_code ec, std::size_t) { r.ec = ec; });
        });
        run();
        r.res = parser.release();
        return r;
    }

    reply exchange(std::string_view request, bool head = false)
    {
        if (auto ec = send(request)) {
            return reply{ec, {}};
        }
        return read(head);
    }

    // Reads until the server closes the connection or the limit passes. The error says which: end of stream
    // or a reset (closed), or beast::error::timeout (still open).
    struct ending {
        boost::system::error_code ec;
        std::string bytes;
        clock_type::duration after;
    };
    ending read_until_closed(std::chrono::milliseconds limit = wait_limit)
    {
        ending e;
        auto start = clock_type::now();
        e.bytes.assign(static_cast<const char*>(buffer_.data().data()), buffer_.size());
        buffer_.clear();
        lowest().expires_after(limit);
        char chunk[4096];
        for (;;) {
            std::size_t got = 0;
            visit([&](auto& stream) {
                stream.async_read_some(asio::buffer(chunk), [&](boost::system::error_code ec, std::size_t n) {
                    e.ec = ec;
                    got = n;
                });
            });
            run();
            e.bytes.append(chunk, got);
            if (e.ec) {
                break;
            }
        }
        e.after = clock_type::now() - start;
        return e;
    }

private:
    beast::tcp_stream& lowest() { return tls_ ? beast::get_lowest_layer(*tls_) : *plain_; }

    template <typename F>
    void visit(F&& f)
    {
        if (tls_) {
            f(*tls_);
        } else {
            f(*plain_);
        }
    }

    void run()
    {
        io_.restart();
        io_.run();
    }

    asio::io_context io_;
    tcp::endpoint endpoint_;
    std::shared_ptr<ssl::context> tls_context_;
    std::optional<beast::tcp_stream> plain_;
    std::optional<beast::ssl_stream<beast::tcp_stream>> tls_;
    beast::flat_buffer buffer_;
};

// One request on a fresh connection.
reply fetch(const tcp::endpoint& endpoint, std::string_view request, bool head = false)
{
    client c(endpoint);
    if (auto ec = c.connect()) {
        return reply{ec, {}};
    }
    return c.exchange(request, head);
}

bool closed(const boost::system::error_code& ec)
{
    return ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
           ec == ssl::error::stream_truncated;
}

std::string header(const http::response<http::string_body>& res, http::field f)
{
    return std::string(res[f]);
}

// What every answer carries, whatever its status.
void expect_standard_headers(const http::response<http::string_body>& res, std::string_view content_type)
{
    EXPECT_EQ(header(res, http::field::content_type), content_type);
    EXPECT_EQ(res.count(http::field::content_length), 1u);
    EXPECT_EQ(header(res, http::field::cache_control), "no-store");
    EXPECT_EQ(header(res, http::field::server), "egressd");
}

constexpr std::string_view text_plain = "text/plain; charset=utf-8";

// A blocking POSIX socket, for bytes that must trickle in on a schedule (Beast's client closes its stream
// when a read deadline passes, so it cannot poll a connection and keep it).
class raw_connection {
public:
    explicit raw_connection(const tcp::endpoint& endpoint) : fd_(::socket(AF_INET, SOCK_STREAM, 0))
    {
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(endpoint.port());
        address.sin_addr.s_addr = htonl(endpoint.address().to_v4().to_uint());
        connected_ = fd_ >= 0 && ::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
    }
    ~raw_connection()
    {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    raw_connection(const raw_connection&) = delete;
    raw_connection& operator=(const raw_connection&) = delete;

    bool connected() const { return connected_; }

    // Ends the connection with a reset instead of an orderly close.
    void reset()
    {
        linger abort_at_once{1, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &abort_at_once, sizeof abort_at_once);
        ::close(fd_);
        fd_ = -1;
    }
    bool send(std::string_view bytes)
    {
        return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
    }

    // True when the peer has closed (end of stream or reset) within the wait; data read meanwhile is dropped.
    bool closed_within(std::chrono::milliseconds wait)
    {
        auto deadline = clock_type::now() + wait;
        for (;;) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
            if (left <= 0ms) {
                return false;
            }
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
                return false;
            }
            char chunk[512];
            auto n = ::recv(fd_, chunk, sizeof chunk, 0);
            if (n <= 0) {
                return true;
            }
        }
    }

private:
    int fd_;
    bool connected_ = false;
};

// --- throwaway PKI (OpenSSL API, in memory) ------------------------------------------------------------------

using test_support::check;
using test_support::make_party;
using test_support::party;
using test_support::pem_of;
using test_support::x509_ptr;
using test_support::key_ptr;
using test_support::bio_ptr;

// A CA, a server certificate for 127.0.0.1 and a client certificate, both issued by the CA.
struct pki {
    party ca = make_party("egressd test CA", nullptr,
                          {{NID_basic_constraints, "critical,CA:TRUE"},
                           {NID_key_usage, "critical,keyCertSign,cRLSign"}});
    party server = make_party("127.0.0.1", &ca,
                              {{NID_basic_constraints, "CA:FALSE"},
                               {NID_subject_alt_name, "IP:127.0.0.1"},
                               {NID_ext_key_usage, "serverAuth"}});
    party operator_client =
        make_party("operator", &ca, {{NID_basic_constraints, "CA:FALSE"}, {NID_ext_key_usage, "clientAuth"}});

    // The admin listener's context: this server certificate, and client certificates from the CA required.
    std::shared_ptr<ssl::context> server_context() const
    {
        auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
        ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                         ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
        auto cert = pem_of(server, false);
        auto key = pem_of(server, true);
        auto ca_pem = pem_of(ca, false);
        ctx->use_certificate_chain(asio::buffer(cert));
        ctx->use_private_key(asio::buffer(key), ssl::context::pem);
        ctx->add_certificate_authority(asio::buffer(ca_pem));
        ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
        return ctx;
    }

    // A client trusting the CA, presenting the operator certificate when with_certificate.
    std::shared_ptr<ssl::context> client_context(bool with_certificate) const
    {
        auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
        auto ca_pem = pem_of(ca, false);
        ctx->add_certificate_authority(asio::buffer(ca_pem));
        ctx->set_verify_mode(ssl::verify_peer);
        if (with_certificate) {
            auto cert = pem_of(operator_client, false);
            auto key = pem_of(operator_client, true);
            ctx->use_certificate_chain(asio::buffer(cert));
            ctx->use_private_key(asio::buffer(key), ssl::context::pem);
        }
        return ctx;
    }
};

// --- endpoints -----------------------------------------------------------------------------------------------

TEST(admin_server, healthz_answers_ok_with_the_standard_headers)
{
    test_server server(loopback(), basic_handlers());
    auto r = fetch(server.endpoint(), request_text("GET", "/healthz"));
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.res.result(), http::status::ok);
    EXPECT_EQ(r.res.version(), 11u);
    EXPECT_EQ(r.res.body(), "ok\n");
    EXPECT_EQ(header(r.res, http::field::content_length), "3");
    expect_standard_headers(r.res, text_plain);
}

TEST(admin_server, readyz_follows_the_ready_handler)
{
    auto ready = std::make_shared<std::atomic<bool>>(false);
    auto h = basic_handlers();
    h.ready = [ready] { return ready->load(); };
    test_server server(loopback(), h);

    auto r = fetch(server.endpoint(), request_text("GET", "/readyz"));
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.res.result(), http::status::service_unavailable);
    EXPECT_EQ(r.res.body(), "not ready\n");
    expect_standard_headers(r.res, text_plain);

    ready->store(true);
    r = fetch(server.endpoint(), request_text("GET", "/readyz"));
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.res.result(), http::status::ok);
    EXPECT_EQ(r.res.body(), "ready\n");
    expect_standard_headers(r.res, text_plain);
}

TEST(admin_server, status_and_metrics_carry_their_content_types)
{
    test_server server(loopback(), basic_handlers());
    auto r = fetch(server.endpoint(), request_text("GET", "/status"));
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.res.result(), http::status::ok);
    EXPECT_EQ(r.res.body(), R"({"state":"serving"})");
    expect_standard_headers(r.res, "application/json");

    r = fetch(server.endpoint(), request_text("GET", "/metrics"));
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.res.result(), http::status::ok);
    EXPECT_EQ(r.res.body(), "egressd_up 1\n");
    expect_standard_headers(r.res, "text/plain; version=0.0.4; charset=utf-8");
}

TEST(admin_server, head_sends_the_get_headers_without_a_body)
{
    test_server server(loopback(), basic_handlers());
    client c(server.endpoint());
    ASSERT_FALSE(c.connect());
    for (std::string_view target : {"/healthz", "/readyz", "/status", "/metrics"}) {
        SCOPED_TRACE(target);
        auto head = c.exchange(request_text("HEAD", target), true);
        ASSERT_FALSE(head.ec) << head.ec.message();
        // The next response on the same connection parses only if HEAD's really had no body.
        auto get = c.exchange(request_text("GET", target));
        ASSERT_FALSE(get.ec) << get.ec.message();
        EXPECT_EQ(head.res.result(), http::status::ok);
        EXPECT_TRUE(head.res.body().empty());
        EXPECT_EQ(header(head.res, http::field::content_length), std::to_string(get.res.body().size()));
        EXPECT_EQ(header(head.res, http::field::content_type), header(get.res, http::field::content_type));
        expect_standard_headers(head.res, header(get.res, http::field::content_type));
    }
}

TEST(admin_server, reload_answers_the_handlers_json)
{
    test_server server(loopback(), basic_handlers());
    auto r = fetch(server.endpoint(), request_text("POST", "/reload", "Content-Length: 0\r\n"));
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.res.result(), http::status::ok);
    EXPECT_EQ(r.res.body(), R"({"reloaded":true})");
    expect_standard_headers(r.res, "application/json");
}

TEST(admin_server, failed_reload_is_422_with_the_handlers_json)
{
    auto h = basic_handlers();
    h.reload = [](std::function<void(bool, std::string)> done) { done(false, R"({"error":"policy.yaml:3:1"})"); };
    test_server server(loopback(), h);
    auto r = fetch(server.endpoint(), request_text("POST", "/reload"));
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.res.result(), http::status::unprocessable_entity);
    EXPECT_EQ(r.res.body(), R"({"error":"policy.yaml:3:1"})");
    expect_standard_headers(r.res, "application/json");
}

// The reload's done arrives from another thread while the server goes on answering other connections.
TEST(admin_server, reload_completes_from_another_thread_without_blocking_the_server)
{
    std::mutex mutex;
    std::condition_variable started;
    std::function<void(bool, std::string)> pending;
    auto h = basic_handlers();
    h.reload = [&](std::function<void(bool, std::string)> done) {
        std::lock_guard lock(mutex);
        pending = std::move(done);
        started.notify_all();
    };
    test_server server(loopback(), h);

    client reloader(server.endpoint());
    ASSERT_FALSE(reloader.connect());
    ASSERT_FALSE(reloader.send(request_text("POST", "/reload")));
    {
        std::unique_lock lock(mutex);
        ASSERT_TRUE(started.wait_for(lock, wait_limit, [&] { return static_cast<bool>(pending); }));
    }

    auto health = fetch(server.endpoint(), request_text("GET", "/healthz"));
    ASSERT_FALSE(health.ec) << health.ec.message();
    EXPECT_EQ(health.res.result(), http::status::ok);

    std::thread worker([&] {
        std::this_thread::sleep_for(50ms);
        std::lock_guard lock(mutex);
        pending(true, R"({"generation":2})");
        pending(false, "ignored: done is called once");
    });
    auto r = reloader.read();
    worker.join();
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.res.result(), http::status::ok);
    EXPECT_EQ(r.res.body(), R"({"generation":2})");

    // The connection stays usable after the asynchronous answer.
    auto again = reloader.exchange(request_text("GET", "/healthz"));
    ASSERT_FALSE(again.ec) << again.ec.message();
    EXPECT_EQ(again.res.result(), http::status::ok);
    {
        // Released here, on the test thread, after the server has answered.
        std::lock_guard lock(mutex);
        pending = nullptr;
    }
}

TEST(admin_server, reload_handler_that_throws_or_drops_done_is_500)
{
    error_log errors;
    auto h = basic_handlers();
    h.internal_error = errors.sink();
    h.reload = [](std::function<void(bool, std::string)>) { throw std::runtime_error("disk on fire"); };
    {
        test_server server(loopback(), h);
        auto r = fetch(server.endpoint(), request_text("POST", "/reload"));
        ASSERT_FALSE(r.ec) << r.ec.message();
        EXPECT_EQ(r.res.result(), http::status::internal_server_error);
        expect_standard_headers(r.res, text_plain);
    }
    h.reload = [](std::function<void(bool, std::string)> done) { done = nullptr; };
    {
        test_server server(loopback(), h);
        auto r = fetch(server.endpoint(), request_text("POST", "/reload"));
        ASSERT_FALSE(r.ec) << r.ec.message();
        EXPECT_EQ(r.res.result(), http::status::internal_server_error);
    }
    auto lines = errors.lines();
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_NE(lines[0].find("disk on fire"), std::string::npos) << lines[0];
    EXPECT_NE(lines[1].find("dropped"), std::string::npos) << lines[1];
}

TEST(admin_server, handler_exceptions_become_500_and_the_connection_goes_on)
{
    error_log errors;
    auto h = basic_handlers();
    h.internal_error = errors.sink();
    h.status_json = []() -> std::string { throw std::runtime_error("status broke"); };
    h.metrics_text = nullptr;  // an empty handler answers like one that throws
    h.ready = []() -> bool { throw 42; };
    test_server server(loopback(), h);

    client c(server.endpoint());
    ASSERT_FALSE(c.connect());
    for (std::string_view target : {"/status", "/metrics", "/readyz"}) {
        SCOPED_TRACE(target);
        auto r = c.exchange(request_text("GET", target));
        ASSERT_FALSE(r.ec) << r.ec.message();
        EXPECT_EQ(r.res.result(), http::status::internal_server_error);
        EXPECT_EQ(r.res.body(), "internal error\n");
        expect_standard_headers(r.res, text_plain);
    }
    auto r = c.exchange(request_text("GET", "/healthz"));
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.res.result(), http::status::ok);
    auto lines = errors.lines();
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_NE(lines[0].find("status broke"), std::string::npos) << lines[0];
}

// --- the bearer token ----------------------------------------------------------------------------------------

settings with_token()
{
    auto s = loopback();
    s.bearer_token = "s3cret-token";
    return s;
}

TEST(admin_server, token_protects_status_metrics_and_reload)
{
    test_server server(with_token(), basic_handlers());
    struct call {
        std::string_view method;
        std::string_view target;
    };
    for (auto [method, target] : {call{"GET", "/status"}, call{"GET", "/metrics"}, call{"POST", "/reload"},
                                  call{"HEAD", "/status"}}) {
        SCOPED_TRACE(std::string(method) + " " + std::string(target));
        const bool head = method == "HEAD";
        for (std::string_view wrong : {"",
                                       "Authorization: Bearer s3cret-tokeN\r\n",
                                       "Authorization: Bearer s3cret-token-and-more\r\n",
                                       "Authorization: Bearer s3cret\r\n",
                                       "Authorization: Bearer \r\n",
                                       "Authorization: Bearers3cret-token\r\n",
                                       "Authorization: Basic s3cret-token\r\n",
                                       "Authorization: s3cret-token\r\n",
                                       "Authorization: Bearer s3cret-token\r\n"
                                       "Authorization: Bearer s3cret-token\r\n"}) {
            SCOPED_TRACE(wrong);
            auto r = fetch(server.endpoint(), request_text(method, target, wrong), head);
            ASSERT_FALSE(r.ec) << r.ec.message();
            EXPECT_EQ(r.res.result(), http::status::unauthorized);
            EXPECT_EQ(header(r.res, http::field::www_authenticate), R"(Bearer realm="egressd-admin")");
            expect_standard_headers(r.res, text_plain);
        }
        for (std::string_view right : {"Authorization: Bearer s3cret-token\r\n",
                                       "Authorization: bearer s3cret-token\r\n",
                                       "Authorization: Bearer   s3cret-token  \r\n"}) {
            SCOPED_TRACE(right);
            auto r = fetch(server.endpoint(), request_text(method, target, right), head);
            ASSERT_FALSE(r.ec) << r.ec.message();
            EXPECT_EQ(r.res.result(), http::status::ok);
        }
    }
}

TEST(admin_server, health_endpoints_need_no_token)
{
    auto h = basic_handlers();
    h.ready = [] { return false; };
    test_server server(with_token(), h);
    auto r = fetch(server.endpoint(), request_text("GET", "/healthz"));
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.res.result(), http::status::ok);
    r = fetch(server.endpoint(), request_text("GET", "/readyz"));
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.res.result(), http::status::service_unavailable);
    // A wrong token on a probe is not held against it either.
    r = fetch(server.endpoint(), request_text("GET", "/healthz", "Authorization: Bearer nope\r\n"));
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.res.result(), http::status::ok);
}

// --- routing and framing errors ------------------------------------------------------------------------------

TEST(admin_server, wrong_method_is_405_with_allow)
{
    test_server server(with_token(), basic_handlers());
    struct call {
        std::string_view method;
        std::string_view target;
        std::string_view allow;
    };
    for (auto [method, target, allow] : {call{"POST", "/healthz", "GET, HEAD"}, call{"DELETE", "/readyz", "GET, HEAD"},
                                         call{"PUT", "/status", "GET, HEAD"}, call{"POST", "/metrics", "GET, HEAD"},
                                         call{"GET", "/reload", "POST"}, call{"BREW", "/healthz", "GET, HEAD"}}) {
        SCOPED_TRACE(std::string(method) + " " + std::string(target));
        auto r = fetch(server.endpoint(), request_text(method, target, "Content-Length: 0\r\n"));
        ASSERT_FALSE(r.ec) << r.ec.message();
        EXPECT_EQ(r.res.result(), http::status::method_not_allowed);
        EXPECT_EQ(header(r.res, http::field::allow), allow);
        expect_standard_headers(r.res, text_plain);
    }
}

TEST(admin_server, unknown_path_is_404)
{
    test_server server(loopback(), basic_handlers());
    for (std::string_view target : {"/", "/healthz/", "/HEALTHZ", "/nope", "/healthz%20", "//healthz"}) {
        SCOPED_TRACE(target);
        auto r = fetch(server.endpoint(), request_text("GET", target));
        ASSERT_FALSE(r.ec) << r.ec.message();
        EXPECT_EQ(r.res.result(), http::status::not_found);
        expect_standard_headers(r.res, text_plain);
    }
}

TEST(admin_server, query_string_is_ignored_for_routing)
{
    test_server server(loopback(), basic_handlers());
    for (std::string_view target : {"/healthz?verbose=1", "/healthz?", "/status?format=json&x=/readyz"}) {
        SCOPED_TRACE(target);
        auto r = fetch(server.endpoint(), request_text("GET", target));
        ASSERT_FALSE(r.ec) << r.ec.message();
        EXPECT_EQ(r.res.result(), http::status::ok);
    }
    auto r = fetch(server.endpoint(), request_text("GET", "/nope?/healthz"));
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.res.result(), http::status::not_found);
}

TEST(admin_server, non_origin_form_target_is_400)
{
    test_server server(loopback(), basic_handlers());
    client c(server.endpoint());
    ASSERT_FALSE(c.connect());
    for (std::string request : {request_text("GET", "http://127.0.0.1/healthz"), request_text("OPTIONS", "*"),
                                request_text("CONNECT", "127.0.0.1:443"), request_text("GET", "healthz")}) {
        SCOPED_TRACE(request);
        auto r = c.exchange(request);
        ASSERT_FALSE(r.ec) << r.ec.message();
        EXPECT_EQ(r.res.result(), http::status::bad_request);
        expect_standard_headers(r.res, text_plain);
    }
    // The requests were well framed, so the connection goes on.
    auto r = c.exchange(request_text("GET", "/healthz"));
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.res.result(), http::status::ok);
}

TEST(admin_server, malformed_request_is_400_and_closes)
{
    test_server server(loopback(), basic_handlers());
    for (std::string request :
         {std::string("hello there\r\n\r\n"), std::string("GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n"),
          std::string("GET /healthz HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
          std::string("GET /healthz HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
          request_text("GET", "/healthz", "", "HTTP/1.2"),
          request_text("GET", "/healthz", "", "HTTP/2.0")}) {
        SCOPED_TRACE(request);
        client c(server.endpoint());
        ASSERT_FALSE(c.connect());
        auto r = c.exchange(request);
        ASSERT_FALSE(r.ec) << r.ec.message();
        EXPECT_EQ(r.res.result(), http::status::bad_request);
        EXPECT_EQ(header(r.res, http::field::connection), "close");
        expect_standard_headers(r.res, text_plain);
        EXPECT_TRUE(closed(c.read_until_closed().ec));
    }
}

TEST(admin_server, head_over_8_kib_is_431)
{
    test_server server(loopback(), basic_handlers());
    // Just under the limit is fine; just over is not.
    std::string request = request_text("GET", "/healthz", "X-Pad: \r\n");
    std::string fits =
        request_text("GET", "/healthz", "X-Pad: " + std::string(8 * 1024 - request.size(), 'a') + "\r\n");
    ASSERT_EQ(fits.size(), 8u * 1024);
    auto r = fetch(server.endpoint(), fits);
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.res.result(), http::status::ok);

    client c(server.endpoint());
    ASSERT_FALSE(c.connect());
    r = c.exchange(request_text("GET", "/healthz", "X-Pad: " + std::string(9 * 1024, 'a') + "\r\n"));
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.res.result(), http::status::request_header_fields_too_large);
    EXPECT_EQ(header(r.res, http::field::connection), "close");
    expect_standard_headers(r.res, text_plain);
    EXPECT_TRUE(closed(c.read_until_closed().ec));

    // A head that never ends is cut off the same way, not buffered without bound.
    client endless(server.endpoint());
    ASSERT_FALSE(endless.connect());
    r = endless.exchange("GET /healthz HTTP/1.1\r\nX-Pad: " + std::string(64 * 1024, 'a'));
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.res.result(), http::status::request_header_fields_too_large);
}

TEST(admin_server, body_over_64_kib_is_413)
{
    test_server server(loopback(), basic_handlers());
    // Exactly 64 KiB is accepted.
    auto r = fetch(server.endpoint(), request_text("POST", "/reload", "Content-Length: 65536\r\n", "HTTP/1.1",
                                                   std::string(65536, 'x')));
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.res.result(), http::status::ok);

    // Declared too long: refused before any body is read.
    r = fetch(server.endpoint(), request_text("POST", "/reload", "Content-Length: 65537\r\n"));
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.res.result(), http::status::payload_too_large);
    expect_standard_headers(r.res, text_plain);

    // Sent in full anyway: the answer still arrives (the server reads the rest before closing).
    r = fetch(server.endpoint(), request_text("POST", "/reload", "Content-Length: 100000\r\n", "HTTP/1.1",
                                              std::string(100000, 'x')));
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.res.result(), http::status::payload_too_large);

    // Chunked, so only counting tells; on any path, even one that ignores bodies.
    std::string chunk = "8000\r\n" + std::string(0x8000, 'y') + "\r\n";
    r = fetch(server.endpoint(), request_text("GET", "/healthz", "Transfer-Encoding: chunked\r\n", "HTTP/1.1",
                                              chunk + chunk + chunk + "0\r\n\r\n"));
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.res.result(), http::status::payload_too_large);
}

TEST(admin_server, expect_100_continue_is_answered)
{
    test_server server(loopback(), basic_handlers());
    client c(server.endpoint());
    ASSERT_FALSE(c.connect());
    auto interim = c.exchange(request_text("POST", "/reload", "Content-Length: 5\r\nExpect: 100-continue\r\n"));
    ASSERT_FALSE(interim.ec) << interim.ec.message();
    EXPECT_EQ(interim.res.result(), http::status::continue_);
    auto r = c.exchange("hello");
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.res.result(), http::status::ok);
}

// --- connections ---------------------------------------------------------------------------------------------

TEST(admin_server, keep_alive_serves_several_requests_on_one_connection)
{
    test_server server(loopback(), basic_handlers());
    client c(server.endpoint());
    ASSERT_FALSE(c.connect());
    for (std::string_view target : {"/healthz", "/readyz", "/nope", "/status"}) {
        SCOPED_TRACE(target);
        auto r = c.exchange(request_text("GET", target));
        ASSERT_FALSE(r.ec) << r.ec.message();
        EXPECT_TRUE(r.res.keep_alive());
    }
    // Pipelined: both requests in one write, both answered in order.
    ASSERT_FALSE(c.send(request_text("GET", "/healthz") + request_text("GET", "/readyz")));
    auto first = c.read();
    auto second = c.read();
    ASSERT_FALSE(first.ec) << first.ec.message();
    ASSERT_FALSE(second.ec) << second.ec.message();
    EXPECT_EQ(first.res.body(), "ok\n");
    EXPECT_EQ(second.res.body(), "ready\n");
}

TEST(admin_server, connection_close_is_honoured)
{
    test_server server(loopback(), basic_handlers());
    client c(server.endpoint());
    ASSERT_FALSE(c.connect());
    auto r = c.exchange(request_text("GET", "/healthz", "Connection: close\r\n"));
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.res.result(), http::status::ok);
    EXPECT_EQ(header(r.res, http::field::connection), "close");
    auto end = c.read_until_closed();
    EXPECT_TRUE(closed(end.ec)) << end.ec.message();
    EXPECT_TRUE(end.bytes.empty());
}

TEST(admin_server, http_1_0_closes_unless_keep_alive_is_asked_for)
{
    test_server server(loopback(), basic_handlers());
    {
        client c(server.endpoint());
        ASSERT_FALSE(c.connect());
        auto r = c.exchange(request_text("GET", "/healthz", "", "HTTP/1.0"));
        ASSERT_FALSE(r.ec) << r.ec.message();
        EXPECT_EQ(r.res.version(), 10u);
        EXPECT_EQ(r.res.body(), "ok\n");
        expect_standard_headers(r.res, text_plain);
        EXPECT_TRUE(closed(c.read_until_closed().ec));
    }
    {
        client c(server.endpoint());
        ASSERT_FALSE(c.connect());
        for (int i = 0; i < 2; ++i) {
            auto r = c.exchange(request_text("GET", "/healthz", "Connection: keep-alive\r\n", "HTTP/1.0"));
            ASSERT_FALSE(r.ec) << r.ec.message();
            EXPECT_EQ(r.res.version(), 10u);
            EXPECT_EQ(header(r.res, http::field::connection), "keep-alive");
        }
    }
}

TEST(admin_server, connections_over_the_limit_get_503_and_are_closed)
{
    auto s = loopback();
    s.max_connections = 2;
    test_server server(s, basic_handlers());

    auto held = std::make_unique<client>(server.endpoint());
    client other(server.endpoint());
    for (client* c : {held.get(), &other}) {
        ASSERT_FALSE(c->connect());
        auto r = c->exchange(request_text("GET", "/healthz"));
        ASSERT_FALSE(r.ec) << r.ec.message();
        EXPECT_EQ(r.res.result(), http::status::ok);
    }

    client extra(server.endpoint());
    ASSERT_FALSE(extra.connect());
    auto refused = extra.read();
    ASSERT_FALSE(refused.ec) << refused.ec.message();
    EXPECT_EQ(refused.res.result(), http::status::service_unavailable);
    EXPECT_EQ(header(refused.res, http::field::connection), "close");
    expect_standard_headers(refused.res, text_plain);
    EXPECT_TRUE(closed(extra.read_until_closed().ec));

    // The two admitted connections are unaffected, and a closed one frees its place.
    auto r = other.exchange(request_text("GET", "/readyz"));
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.res.result(), http::status::ok);
    held.reset();
    bool admitted = false;
    for (auto deadline = clock_type::now() + wait_limit; !admitted && clock_type::now() < deadline;) {
        client next(server.endpoint());
        ASSERT_FALSE(next.connect());
        auto again = next.exchange(request_text("GET", "/healthz"));
        admitted = !again.ec && again.res.result() == http::status::ok;
        if (!admitted) {
            std::this_thread::sleep_for(20ms);
        }
    }
    EXPECT_TRUE(admitted);
}

TEST(admin_server, a_slow_request_is_dropped_at_the_request_timeout)
{
    auto s = loopback();
    s.request_timeout = 300ms;
    test_server server(s, basic_handlers());

    // A slowloris client: a header line every 50 ms keeps the bytes flowing but the request never ends.
    raw_connection slow(server.endpoint());
    ASSERT_TRUE(slow.connected());
    auto start = clock_type::now();
    ASSERT_TRUE(slow.send("GET /healthz HTTP/1.1\r\n"));
    bool dropped = false;
    while (!dropped && clock_type::now() - start < wait_limit) {
        dropped = slow.closed_within(50ms);
        if (!dropped) {
            slow.send("X-Slow: 1\r\n");
        }
    }
    auto after = clock_type::now() - start;
    EXPECT_TRUE(dropped);
    EXPECT_GE(after, 250ms);
    EXPECT_LT(after, 3s);

    // A connection that never sends anything is dropped at the same deadline.
    raw_connection silent(server.endpoint());
    ASSERT_TRUE(silent.connected());
    start = clock_type::now();
    EXPECT_TRUE(silent.closed_within(wait_limit));
    EXPECT_GE(clock_type::now() - start, 250ms);

    // The server is fine afterwards.
    auto r = fetch(server.endpoint(), request_text("GET", "/healthz"));
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.res.result(), http::status::ok);
}

TEST(admin_server, an_idle_keep_alive_connection_is_closed_at_the_idle_timeout)
{
    auto s = loopback();
    s.request_timeout = 10s;
    s.idle_timeout = 200ms;
    test_server server(s, basic_handlers());
    client c(server.endpoint());
    ASSERT_FALSE(c.connect());
    auto r = c.exchange(request_text("GET", "/healthz"));
    ASSERT_FALSE(r.ec) << r.ec.message();
    auto end = c.read_until_closed();
    EXPECT_TRUE(closed(end.ec)) << end.ec.message();
    EXPECT_GE(end.after, 150ms);
    EXPECT_LT(end.after, 3s);
}

TEST(admin_server, a_client_leaving_mid_request_does_not_disturb_the_server)
{
    test_server server(loopback(), basic_handlers());
    {
        raw_connection rude(server.endpoint());
        ASSERT_TRUE(rude.connected());
        ASSERT_TRUE(rude.send("POST /reload HTTP/1.1\r\nContent-Length: 1000\r\n\r\nabc"));
        rude.reset();
        raw_connection quitter(server.endpoint());
        ASSERT_TRUE(quitter.connected());
        ASSERT_TRUE(quitter.send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
    }
    auto r = fetch(server.endpoint(), request_text("GET", "/healthz"));
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.res.result(), http::status::ok);
}

TEST(admin_server, stop_closes_the_listener_and_every_connection)
{
    test_server server(loopback(), basic_handlers());
    client idle(server.endpoint());
    ASSERT_FALSE(idle.connect());
    auto r = idle.exchange(request_text("GET", "/healthz"));
    ASSERT_FALSE(r.ec) << r.ec.message();
    client silent(server.endpoint());  // accepted, no request yet
    ASSERT_FALSE(silent.connect());
    auto endpoint = server.endpoint();

    EXPECT_TRUE(server.shutdown()) << "run() should return once stop() has closed everything";
    EXPECT_TRUE(closed(idle.read_until_closed().ec));
    EXPECT_TRUE(closed(silent.read_until_closed().ec));
    client late(endpoint);
    EXPECT_EQ(late.connect(), asio::error::connection_refused);
}

// --- TLS -----------------------------------------------------------------------------------------------------

TEST(admin_server, tls_with_a_required_client_certificate)
{
    pki certificates;
    auto s = with_token();
    s.tls = certificates.server_context();
    test_server server(s, basic_handlers());

    client c(server.endpoint(), certificates.client_context(true));
    auto ec = c.connect();
    ASSERT_FALSE(ec) << ec.message();
    auto r = c.exchange(request_text("GET", "/healthz"));
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.res.result(), http::status::ok);
    EXPECT_EQ(r.res.body(), "ok\n");
    r = c.exchange(request_text("GET", "/status", "Authorization: Bearer s3cret-token\r\n"));
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.res.result(), http::status::ok);
    r = c.exchange(request_text("HEAD", "/metrics", "Authorization: Bearer s3cret-token\r\nConnection: close\r\n"),
                   true);
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.res.result(), http::status::ok);
    EXPECT_TRUE(closed(c.read_until_closed().ec));

    // Without a client certificate nothing is answered. Under TLS 1.3 the client's handshake may finish before
    // the server refuses, so the refusal can also show on the first read.
    client anonymous(server.endpoint(), certificates.client_context(false));
    ec = anonymous.connect();
    if (!ec) {
        auto refused = anonymous.exchange(request_text("GET", "/healthz"));
        EXPECT_TRUE(refused.ec) << "answered " << refused.res.result_int();
    }

    // Plain HTTP to the TLS listener is not answered in plain text.
    client plain(server.endpoint());
    ASSERT_FALSE(plain.connect());
    auto confused = plain.exchange(request_text("GET", "/healthz"));
    EXPECT_TRUE(confused.ec);

    // Nor do those failures disturb the server.
    client again(server.endpoint(), certificates.client_context(true));
    ASSERT_FALSE(again.connect());
    r = again.exchange(request_text("GET", "/readyz"));
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.res.result(), http::status::ok);
}

// A reload may rotate the certificate, never turn TLS on or off under a running listener.
TEST(admin_server, tls_is_rotated_but_never_turned_on_or_off)
{
    pki certificates;
    asio::io_context io;
    admin_server plain(io, loopback(), basic_handlers());
    EXPECT_THROW(plain.set_tls(certificates.server_context()), std::invalid_argument);
    auto s = loopback();
    s.tls = certificates.server_context();
    admin_server secure(io, s, basic_handlers());
    EXPECT_THROW(secure.set_tls(nullptr), std::invalid_argument);
    EXPECT_NO_THROW(secure.set_tls(certificates.server_context()));
}

// --- binding and settings ------------------------------------------------------------------------------------

TEST(admin_server, bind_failure_names_the_address)
{
    asio::io_context io;
    tcp::acceptor taken(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    auto s = loopback();
    s.endpoint = taken.local_endpoint();
    try {
        admin_server server(io, s, basic_handlers());
        FAIL() << "bound a port another socket listens on";
    } catch (const std::runtime_error& e) {
        EXPECT_EQ(std::string(e.what()),
                  "cannot bind admin listener 127.0.0.1:" + std::to_string(s.endpoint.port()) +
                      ": Address already in use");
    }
}

TEST(admin_server, the_port_is_not_shared_through_so_reuseport)
{
    asio::io_context io;
    admin_server server(io, loopback(), basic_handlers());
    auto endpoint = server.local_endpoint();
    ASSERT_NE(endpoint.port(), 0);

    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    int one = 1;
    ASSERT_EQ(::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), 0);
    ASSERT_EQ(::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one), 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(endpoint.port());
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
    int error = errno;
    ::close(fd);
    EXPECT_EQ(rc, -1) << "another socket joined the admin port";
    EXPECT_EQ(error, EADDRINUSE);
}

TEST(admin_server, unusable_settings_are_refused)
{
    asio::io_context io;
    auto s = loopback();
    s.bearer_token = "";
    EXPECT_THROW(admin_server(io, s, basic_handlers()), std::invalid_argument);
    s = loopback();
    s.max_connections = 0;
    EXPECT_THROW(admin_server(io, s, basic_handlers()), std::invalid_argument);
    s = loopback();
    s.request_timeout = 0ms;
    EXPECT_THROW(admin_server(io, s, basic_handlers()), std::invalid_argument);
}

}  // namespace
}  // namespace egressd::proxy::admin
