#include "proxy/delivery/webhook_sender.hpp"

#include "certs/digest.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <span>
#include <stdexcept>

namespace egressd::proxy::delivery {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using request_type = http::request<http::string_body>;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

bool is_ip_literal(const std::string& host)
{
    boost::system::error_code ec;
    asio::ip::make_address(host, ec);
    return !ec;
}

bool host_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_';
}

bool starts_with_nocase(std::string_view s, std::string_view prefix)
{
    return s.size() >= prefix.size() && std::equal(prefix.begin(), prefix.end(), s.begin(), [](char a, char b) {
               return a == (b >= 'A' && b <= 'Z' ? static_cast<char>(b - 'A' + 'a') : b);
           });
}

request_type make_request(const webhook_url& url, std::string_view event, const std::string& body,
                          std::string_view id, std::string_view secret)
{
    request_type req{http::verb::post, url.target, 11};
    bool default_port = url.port == (url.tls ? 443 : 80);
    req.set(http::field::host, host_port(url.host, default_port ? 0 : url.port));
    req.set(http::field::user_agent, "egressd");
    req.set(http::field::content_type, "application/json");
    req.set("X-Egressd-Event", event);
    auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
    std::string timestamp = std::to_string(now.time_since_epoch().count());
    req.set("X-Egressd-Timestamp", timestamp);
    req.set("X-Egressd-Delivery", id);
    if (!secret.empty()) {
        req.set("X-Egressd-Signature", signature(secret, timestamp, body));
    }
    req.keep_alive(false);
    req.body() = body;
    req.prepare_payload();
    return req;
}

// Sends the request and reads the response's status line and headers; the body does not matter.
template <class Stream>
asio::awaitable<unsigned> post_and_read_status(Stream& stream, const request_type& req)
{
    auto [write_ec, written] = co_await http::async_write(stream, req, use_tuple);
    if (write_ec) {
        co_return 0;
    }
    beast::flat_buffer buffer;
    http::response_parser<http::empty_body> parser;
    auto [read_ec, read] = co_await http::async_read_header(stream, buffer, parser, use_tuple);
    if (read_ec) {
        co_return 0;
    }
    co_return parser.get().result_int();
}

// One POST with everything in it bounded by deadline: the status, or 0 when no response came. Anything thrown
// (an allocation, a failed HMAC) reaches co_spawn's handler and counts as no response.
asio::awaitable<unsigned> attempt(const webhook_url& url, std::string_view event, const std::string& body,
                                  std::string_view id, std::string_view secret, ssl::context& tls,
                                  std::chrono::steady_clock::time_point deadline)
{
    request_type req = make_request(url, event, body, id, secret);
    auto executor = co_await asio::this_coro::executor;
    tcp::resolver resolver(executor);
    // A named string: GCC 12 destroys a temporary built inside a co_await expression twice.
    const std::string service = std::to_string(url.port);
    auto [resolve_ec, endpoints] = co_await resolver.async_resolve(url.host, service, use_tuple);
    if (resolve_ec) {
        co_return 0;
    }
    beast::tcp_stream plain(executor);
    plain.expires_at(deadline);  // covers connect, handshake, write and read: the stream keeps it when wrapped
    auto [connect_ec, endpoint] = co_await plain.async_connect(endpoints, use_tuple);
    if (connect_ec) {
        co_return 0;
    }
    if (!url.tls) {
        co_return co_await post_and_read_status(plain, req);
    }
    beast::ssl_stream<beast::tcp_stream> stream(std::move(plain), tls);
    // SNI carries names only (RFC 6066); the certificate is checked against the name or the address.
    if (!is_ip_literal(url.host) && SSL_set_tlsext_host_name(stream.native_handle(), url.host.c_str()) != 1) {
        co_return 0;
    }
    stream.set_verify_callback(ssl::host_name_verification(url.host));
    auto [handshake_ec] = co_await stream.async_handshake(ssl::stream_base::client, use_tuple);
    if (handshake_ec) {
        co_return 0;
    }
    co_return co_await post_and_read_status(stream, req);
}

// What to do after an attempt that got this status (0: no response).
enum class outcome : std::uint8_t { delivered, retry, failed };

outcome classify(unsigned status)
{
    if (status >= 200 && status < 300) {
        return outcome::delivered;
    }
    if (status == 0 || status == 429 || status >= 500) {
        return outcome::retry;
    }
    return outcome::failed;
}

// first_retry after the first attempt, doubling, never more than max_retry.
std::chrono::milliseconds backoff(unsigned attempts, std::chrono::milliseconds first, std::chrono::milliseconds max)
{
    auto delay = std::min(first, max);
    for (unsigned i = 1; i < attempts && delay < max; ++i) {
        delay = std::min(delay * 2, max);
    }
    return delay;
}

ssl::context client_tls_context()
{
    ssl::context tls(ssl::context::tls_client);
    tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                    ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    // Without the system's CA store every https:// delivery fails verification, which the counters show.
    boost::system::error_code ec;
    tls.set_default_verify_paths(ec);
    tls.set_verify_mode(ssl::verify_peer);
    return tls;
}

}  // namespace

std::string slack_escape(std::string_view s)
{
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        switch (c) {
        case '&':
            out += "&amp;";
            break;
        case '<':
            out += "&lt;";
            break;
        case '>':
            out += "&gt;";
            break;
        default:
            out += c;
        }
    }
    return out;
}

std::string host_port(std::string_view host, std::uint16_t port)
{
    std::string out = host.find(':') != std::string_view::npos ? "[" + std::string(host) + "]" : std::string(host);
    if (port != 0) {
        out += ":" + std::to_string(port);
    }
    return out;
}

std::string signature(std::string_view secret, std::string_view timestamp, std::string_view body)
{
    std::string message;
    message.reserve(timestamp.size() + 1 + body.size());
    message.append(timestamp).append(".").append(body);
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    unsigned int size = 0;
    static constexpr unsigned char no_key = 0;  // OpenSSL wants a pointer even for an empty key
    const void* key = secret.empty() ? static_cast<const void*>(&no_key) : secret.data();
    if (HMAC(EVP_sha256(), key, static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(message.data()),
             message.size(), mac.data(), &size) == nullptr) {
        throw std::runtime_error("HMAC-SHA256 failed");
    }
    return "sha256=" + certs::hex(std::span<const unsigned char>(mac.data(), size));
}

std::optional<webhook_url> parse_webhook_url(std::string_view url)
{
    webhook_url out;
    if (starts_with_nocase(url, "https://")) {
        out.tls = true;
        url.remove_prefix(8);
    } else if (starts_with_nocase(url, "http://")) {
        url.remove_prefix(7);
    } else {
        return std::nullopt;
    }
    if (auto fragment = url.find('#'); fragment != std::string_view::npos) {
        url = url.substr(0, fragment);
    }
    auto authority_end = url.find_first_of("/?");
    std::string_view authority = url.substr(0, authority_end);
    std::string_view rest = authority_end == std::string_view::npos ? std::string_view() : url.substr(authority_end);

    std::string_view port_text;
    if (authority.starts_with('[')) {
        auto close = authority.find(']');
        if (close == std::string_view::npos) {
            return std::nullopt;
        }
        out.host = std::string(authority.substr(1, close - 1));
        boost::system::error_code ec;
        asio::ip::make_address_v6(out.host, ec);
        if (ec) {
            return std::nullopt;
        }
        std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (!after.starts_with(':')) {
                return std::nullopt;
            }
            port_text = after.substr(1);
            if (port_text.empty()) {
                return std::nullopt;
            }
        }
    } else {
        auto colon = authority.find(':');
        out.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) {
            port_text = authority.substr(colon + 1);
            if (port_text.empty()) {
                return std::nullopt;
            }
        }
        if (out.host.empty() || !std::all_of(out.host.begin(), out.host.end(), host_name_char)) {
            return std::nullopt;
        }
    }
    if (port_text.empty()) {
        out.port = out.tls ? 443 : 80;
    } else {
        unsigned port = 0;
        auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
        if (ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 || port > 65535 ||
            port_text.size() > 5) {
            return std::nullopt;
        }
        out.port = static_cast<std::uint16_t>(port);
    }
    // The target goes on the request line as it is: no spaces or control characters.
    if (std::any_of(rest.begin(), rest.end(), [](char c) {
            auto u = static_cast<unsigned char>(c);
            return u <= 0x20 || u >= 0x7f;
        })) {
        return std::nullopt;
    }
    out.target = rest.empty() ? "/" : rest.starts_with('?') ? "/" + std::string(rest) : std::string(rest);
    return out;
}

webhook_sender::webhook_sender(std::string_view url, std::string secret, options o)
    : url_(parse_webhook_url(url)), options_(o), secret_(std::move(secret))
{
    std::array<unsigned char, 8> prefix{};
    if (RAND_bytes(prefix.data(), static_cast<int>(prefix.size())) != 1) {
        throw std::runtime_error("webhook sender: no random bytes for delivery ids");
    }
    id_prefix_ = certs::hex(prefix);
    thread_ = std::thread([this] { run(); });
}

webhook_sender::~webhook_sender()
{
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        counts_.dropped += queue_.size();
        queue_.clear();
        if (abort_attempt_) {
            abort_attempt_();
        }
    }
    wake_.notify_all();
    thread_.join();
}

bool webhook_sender::send(std::string event, std::string body)
{
    {
        std::lock_guard lock(mutex_);
        if (stopping_ || queue_.size() >= options_.queue_limit) {
            ++counts_.dropped;
            return false;
        }
        delivery d;
        d.event = std::move(event);
        d.body = std::move(body);
        d.due = std::chrono::steady_clock::now();
        d.id = id_prefix_ + "-" + std::to_string(++next_id_);
        schedule(std::move(d));
    }
    wake_.notify_one();
    return true;
}

void webhook_sender::set_secret(std::string secret)
{
    std::lock_guard lock(mutex_);
    secret_ = std::move(secret);
}

sender_counts webhook_sender::counts() const
{
    std::lock_guard lock(mutex_);
    sender_counts c = counts_;
    c.queued = queue_.size();
    return c;
}

void webhook_sender::schedule(delivery d)
{
    auto at = std::upper_bound(queue_.begin(), queue_.end(), d.due,
                               [](auto due, const delivery& queued) { return due < queued.due; });
    queue_.insert(at, std::move(d));
}

void webhook_sender::run()
{
    ssl::context tls = client_tls_context();
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        if (queue_.empty()) {
            wake_.wait(lock);
            continue;
        }
        if (auto due = queue_.front().due; due > std::chrono::steady_clock::now()) {
            // Woken early by an earlier delivery or by the destructor; either way, look again.
            wake_.wait_until(lock, due);
            continue;
        }
        delivery d = std::move(queue_.front());
        queue_.pop_front();
        if (d.attempts > 0) {
            ++counts_.retried;
        }
        ++d.attempts;
        if (!url_) {
            ++counts_.failed;
            continue;
        }
        std::string secret = secret_;
        unsigned status = 0;
        {
            // The io_context goes out of scope unlocked: its destructor may wait for a name lookup to end.
            asio::io_context io;
            abort_attempt_ = [&io] { io.stop(); };
            lock.unlock();
            auto deadline = std::chrono::steady_clock::now() + options_.timeout;
            asio::co_spawn(io, attempt(*url_, d.event, d.body, d.id, secret, tls, deadline),
                           [&status](std::exception_ptr e, unsigned s) {
                               if (!e) {
                                   status = s;
                               }
                           });
            // Also bounds the name lookup, which the stream's deadline does not cover.
            io.run_until(deadline);
            lock.lock();
            abort_attempt_ = nullptr;
            lock.unlock();
        }
        lock.lock();

        outcome result = classify(status);
        if (result == outcome::delivered) {
            ++counts_.delivered;
        } else if (stopping_) {
            ++counts_.dropped;
        } else if (result == outcome::failed || d.attempts >= options_.max_attempts) {
            ++counts_.failed;
        } else {
            d.due = std::chrono::steady_clock::now() + backoff(d.attempts, options_.first_retry, options_.max_retry);
            schedule(std::move(d));
        }
    }
}

}  // namespace egressd::proxy::delivery
