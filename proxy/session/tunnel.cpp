#include "proxy/session/tunnel.hpp"

#include "protocol/tls/client_hello.hpp"
#include "proxy/session/authorizer.hpp"
#include "proxy/session/splice_relay.hpp"
#include "proxy/worker.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <variant>

namespace egressd::proxy {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;
namespace tls = protocol::tls;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// A ClientHello larger than this is refused: real ones are a few hundred bytes to a few KiB (post-quantum
// key shares included), and the peek buffer must stay bounded.
constexpr std::size_t max_client_hello = 16 * 1024;

tcp::socket& socket_of(tcp::socket& s) { return s; }
tcp::socket& socket_of(client_stream& s) { return s.socket(); }
bool is_tls(tcp::socket&) { return false; }
bool is_tls(client_stream& s) { return s.tls() != nullptr; }

// Passes an end of stream on to the other side while it may still answer. TLS has no half-close that clients
// expect through a proxy: false, and the caller ends the whole tunnel.
bool half_close(tcp::socket& s)
{
    boost::system::error_code ignored;
    s.shutdown(tcp::socket::shutdown_send, ignored);
    return true;
}
bool half_close(client_stream& s) { return s.tls() == nullptr && half_close(s.socket()); }

}  // namespace

tunnel::tunnel(connection& c, authorization auth) : c_(c), tls_(auth.tls)
{
    c_.upstream_auth.hold(std::move(auth));
}

asio::awaitable<observe::close_cause> tunnel::run()
{
    // RFC 9110 9.3.6: a 2xx reply to CONNECT carries no Content-Length or Transfer-Encoding.
    static constexpr std::string_view established = "HTTP/1.1 200 Connection established\r\n\r\n";
    const auto& t = c_.owner.config().timeouts;
    c_.watch.expire_after(t.idle);
    if (!co_await c_.write_all(c_.client, established)) {
        co_return observe::close_cause::client_closed;
    }
    // Through a parent proxy, the destination may have spoken already, behind the parent's 200.
    if (!c_.upstream_in.empty()) {
        if (!co_await c_.write_all(c_.client, c_.upstream_in)) {
            co_return observe::close_cause::client_closed;
        }
    }
    // A tunnel may idle for hours: it keeps no buffer or pipe of its own (relays borrow from the worker's pools).
    std::string().swap(c_.upstream_in);
    auto hard_limit = std::chrono::steady_clock::now() + t.tunnel_lifetime;
    c_.watch.idle(t.idle, hard_limit);
    c_.owner.metrics().tunnel_opened();
    bool open = co_await open_upstream();
    if (open && c_.client.tls() == nullptr) {
        co_await splice_both();
    } else if (open) {
        // A peek has drained the client socket: wait before the first read.
        co_await (relay(c_.client, c_.upstream, up_, true, tls_ != policy::tls_mode::off)
                  && relay(c_.upstream, c_.client, down_, false));
    }
    c_.owner.metrics().tunnel_closed();
    c_.bytes_from_client += up_;
    c_.bytes_to_client += down_;
    if (denied_) {
        co_return observe::close_cause::denied;
    }
    if (client_eof_first_) {
        co_return observe::close_cause::client_closed;
    }
    if (upstream_eof_first_) {
        co_return observe::close_cause::upstream_closed;
    }
    if (c_.watch.expired()) {
        bool lifetime = std::chrono::steady_clock::now() - c_.started >= t.tunnel_lifetime;
        co_return lifetime ? observe::close_cause::lifetime : observe::close_cause::idle_timeout;
    }
    co_return observe::close_cause::error;
}

// Client to upstream: under a tls mode, not one byte goes up before the ClientHello was checked, and after a TLS
// ClientHello none until the server has answered it without a HelloRetryRequest (or a second ClientHello passed).
// Upstream to client flows from the start, so server-speaks-first protocols work under tls: allow.
asio::awaitable<bool> tunnel::open_upstream()
{
    if (tls_ != policy::tls_mode::off) {
        std::optional<std::chrono::steady_clock::time_point> peek_deadline;
        if (tls_ == policy::tls_mode::require) {
            peek_deadline = std::chrono::steady_clock::now() + c_.owner.config().timeouts.tls_peek;
        }
        peeking_ = true;
        hello_peek first = co_await (peek_first_hello(peek_deadline) && forward_server_first());
        policy::tunnel_start start;
        start.is_tls = first.status == tls::hello_status::complete;
        start.sni = first.hello.sni;
        // No bytes at all is "not TLS"; a partial ClientHello is not one either, and bytes that start like TLS
        // but do not parse are never waved through as "not TLS": a server might read them as a ClientHello
        // whose name was never checked.
        bool malformed = first.status == tls::hello_status::malformed
                         || first.status == tls::hello_status::too_large
                         || (first.status == tls::hello_status::incomplete && !c_.client_in.empty());
        std::optional<policy::reason> refusal;
        if (malformed) {
            refusal = policy::reason::not_tls;
        }
        if (!decide_start(start, refusal)) {
            co_return false;
        }
        c_.upstream_auth.tunnel_started(std::move(start));
        if (first.status == tls::hello_status::complete) {
            bool sent = co_await write_up(first.hello.records_size);
            if (!sent) {
                co_return false;
            }
            bool answered = co_await watch_retry(first.hello.sni);
            if (!answered) {
                co_return false;
            }
        }
    }
    // Bytes that came with or after the CONNECT head (the ClientHello, usually) go first.
    bool sent = co_await write_up(c_.client_in.size());
    std::string().swap(c_.client_in);
    co_return sent;
}

asio::awaitable<bool> tunnel::write_up(std::size_t n)
{
    if (n == 0) {
        co_return true;
    }
    // Already counted in bytes_from_client when they were read.
    auto [ec, written] = co_await asio::async_write(c_.upstream, asio::buffer(c_.client_in.data(), n), use_tuple);
    if (ec) {
        c_.cancel_io();
        co_return false;
    }
    c_.client_in.erase(0, n);
    co_return true;
}

bool tunnel::decide_start(const policy::tunnel_start& start, std::optional<policy::reason> refusal)
{
    const authorization* held = c_.upstream_auth.get();
    if (held == nullptr) {
        c_.cancel_io();
        return false;
    }
    const authorization& auth = *held;
    auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
    auto d = auth.snapshot->decide_tls(auth.client, auth.target, auth.port, start, now, auth.grants.get());
    // A refusal of the ClientHello itself replaces the policy's own reasons about it, never a name-phase denial
    // (a reload may have changed the policy since the CONNECT).
    bool tls_reason = d.why == policy::reason::not_tls || d.why == policy::reason::sni_missing
                      || d.why == policy::reason::sni_mismatch;
    if (refusal && (d.allowed() || tls_reason)) {
        d.why = *refusal;
        d.grant.reset();
        d.outcome = d.applied_mode == policy::mode::report ? policy::verdict::would_deny : policy::verdict::deny;
    }
    if (!d.allowed()) {
        std::string sni = start.sni.value_or("");
        log_decision(c_, *auth.snapshot, d, {auth.client_name, c_.request.address, {}, {}, sni});
    }
    if (!d.allows_traffic()) {
        denied_ = true;
        c_.cancel_io();
        return false;
    }
    return true;
}

asio::awaitable<bool> tunnel::watch_retry(const std::optional<std::string>& first_sni)
{
    std::string seen;  // the server's bytes since the last ClientHello went up
    bool retried = false;
    for (;;) {
        auto scan = co_await await_server_hello(seen);
        switch (scan.kind) {
        case tls::server_hello_kind::incomplete:
            co_return false;
        case tls::server_hello_kind::server_hello:
        case tls::server_hello_kind::other:
            // No retry (or no TLS server behind): the ClientHello that went up is the one the server reads.
            co_return true;
        case tls::server_hello_kind::malformed:
            halted_ = true;
            c_.cancel_io();
            co_return false;
        case tls::server_hello_kind::hello_retry_request:
            break;
        }
        // RFC 8446 4.1.4: a second HelloRetryRequest in the same connection is a protocol error.
        if (retried) {
            halted_ = true;
            c_.cancel_io();
            co_return false;
        }
        retried = true;
        seen.erase(0, scan.records_size);
        std::optional<std::chrono::steady_clock::time_point> deadline;
        if (tls_ == policy::tls_mode::require) {
            deadline = std::chrono::steady_clock::now() + c_.owner.config().timeouts.tls_peek;
        }
        hello_peek second = co_await peek_hello(true, deadline);
        if (second.status == tls::hello_status::incomplete && second.client_ended && c_.client_in.empty()) {
            // The client gave up after the retry without a word: nothing to decide.
            client_eof_first_ = !upstream_eof_first_;
            c_.cancel_io();
            co_return false;
        }
        const bool complete = second.status == tls::hello_status::complete;
        // The server's name callback runs again on the second ClientHello: it must name the server the first did
        // (a name where there was none, or none where there was one, is a change too).
        std::optional<policy::reason> refusal;
        if (!complete) {
            refusal = policy::reason::not_tls;
        } else if (second.hello.sni != first_sni) {
            refusal = policy::reason::sni_mismatch;
        }
        if (refusal) {
            policy::tunnel_start retry_start;
            retry_start.is_tls = complete;
            retry_start.sni = second.hello.sni;
            if (!decide_start(retry_start, refusal)) {
                co_return false;
            }
        }
        if (!complete) {
            // Report mode let bytes through that are no ClientHello: there is nothing more to follow.
            co_return true;
        }
        bool sent = co_await write_up(second.hello.records_size);
        if (!sent) {
            co_return false;
        }
    }
}

asio::awaitable<tls::server_hello_scan> tunnel::await_server_hello(std::string& seen)
{
    constexpr std::size_t chunk = 4096;
    for (;;) {
        auto scan = tls::scan_server_hello(seen, max_client_hello);
        if (scan.kind != tls::server_hello_kind::incomplete || up_observer_.stopped()) {
            co_return scan;
        }
        // Bounded: scan_server_hello has a verdict before 2 * max_client_hello bytes.
        std::size_t old = seen.size();
        seen.resize(old + chunk);
        auto [ec, n] = co_await c_.upstream.async_read_some(asio::buffer(seen.data() + old, chunk), use_tuple);
        seen.resize(old + n);
        if (ec) {
            if (ec == asio::error::eof && !client_eof_first_) {
                upstream_eof_first_ = true;
            }
            halted_ = true;
            c_.cancel_io();
            co_return tls::server_hello_scan{};
        }
        bool passed = co_await c_.write_all(c_.client, std::string_view(seen).substr(old));
        if (!passed) {
            halted_ = true;
            c_.cancel_io();
            co_return tls::server_hello_scan{};
        }
    }
}

// Both sides plain: the bytes go from socket to socket through a pipe and never through user space.
asio::awaitable<void> tunnel::splice_both()
{
    // A timer is half the size of a channel; never expires, the last direction cancels it.
    asio::steady_timer both_done(c_.owner.io(), asio::steady_timer::time_point::max());
    both_done_ = &both_done;
    start_splice(false);
    start_splice(true);
    // The directions refer to this object: wait for both before returning.
    while (splicing_ > 0) {
        co_await both_done.async_wait(use_tuple);
        if (splicing_ > 0) {
            // Not woken by the last direction: something else cancelled the wait. End both, then wait for them.
            halted_ = true;
            c_.cancel_io();
        }
    }
    both_done_ = nullptr;
}

void tunnel::start_splice(bool from_client)
{
    auto& from = from_client ? c_.client.socket() : c_.upstream;
    auto& to = from_client ? c_.upstream : c_.client.socket();
    auto& observer = from_client ? up_observer_ : down_observer_;
    auto& state = from_client ? up_splice_ : down_splice_;
    state.emplace(from, to, no_limit, c_.owner.pipes(), c_.owner.buffers(), observer);
    async_splice(*state, [this, from_client](relay_result r) { splice_done(from_client, r); });
    // Counted once started: it never completes inside the call above.
    ++splicing_;
}

void tunnel::splice_done(bool from_client, const relay_result& r)
{
    if (r.end == relay_end::eof) {
        if (!client_eof_first_ && !upstream_eof_first_) {
            (from_client ? client_eof_first_ : upstream_eof_first_) = true;
        }
        // Half-close: the other side learns this direction is done and may still answer.
        half_close(from_client ? c_.upstream : c_.client.socket());
    } else {
        // An error, a deadline or a revocation in one direction ends both.
        halted_ = true;
        c_.cancel_io();
    }
    if (--splicing_ == 0 && both_done_ != nullptr) {
        both_done_->cancel();
    }
}

asio::awaitable<tunnel::hello_peek> tunnel::peek_hello(bool after_retry,
                                                       std::optional<std::chrono::steady_clock::time_point> deadline)
{
    hello_peek peek;
    // The peek's own deadline cuts only the peek short (the watchdog would end the whole tunnel, which report
    // mode must keep).
    asio::steady_timer peek_timer(c_.owner.io());
    if (deadline) {
        peek_timer.expires_at(*deadline);
    }
    for (;;) {
        peek.status = after_retry ? tls::parse_retry_client_hello(c_.client_in, peek.hello, max_client_hello)
                                  : tls::parse_client_hello(c_.client_in, peek.hello, max_client_hello);
        if (peek.status != tls::hello_status::incomplete) {
            co_return peek;
        }
        if (deadline) {
            auto raced = co_await (c_.read_more(c_.client, c_.client_in) || peek_timer.async_wait(use_tuple));
            if (raced.index() == 0 && std::get<0>(raced)) {
                continue;
            }
            peek.client_ended = raced.index() == 0;
            co_return peek;
        }
        bool more = co_await c_.read_more(c_.client, c_.client_in);
        if (!more) {
            peek.client_ended = true;
            co_return peek;
        }
    }
}

asio::awaitable<tunnel::hello_peek> tunnel::peek_first_hello(
    std::optional<std::chrono::steady_clock::time_point> deadline)
{
    hello_peek peek = co_await peek_hello(false, deadline);
    // forward_server_first waits on nothing but the upstream socket: end that wait, keep its bytes unread.
    peeking_ = false;
    boost::system::error_code ignored;
    c_.upstream.cancel(ignored);
    co_return peek;
}

asio::awaitable<void> tunnel::forward_server_first()
{
    constexpr std::size_t chunk = 4096;
    while (peeking_) {
        // Waits without a buffer: a tunnel whose client is slow to say hello holds none.
        auto [wait_ec] = co_await c_.upstream.async_wait(tcp::socket::wait_read, use_tuple);
        if (wait_ec || !peeking_) {
            co_return;
        }
        std::string data(chunk, '\0');
        auto [ec, n] = co_await c_.upstream.async_read_some(asio::buffer(data), use_tuple);
        if (ec == asio::error::eof) {
            if (!client_eof_first_) {
                upstream_eof_first_ = true;
            }
            // Half-close, as the relay does: the client learns the server is done and may still speak.
            if (!half_close(c_.client)) {
                halted_ = true;
                c_.cancel_io();
            }
            co_return;
        }
        if (ec) {
            if (ec != asio::error::operation_aborted) {
                halted_ = true;
                c_.cancel_io();
            }
            co_return;
        }
        data.resize(n);
        bool passed = co_await c_.write_all(c_.client, data);
        if (!passed) {
            halted_ = true;
            c_.cancel_io();
            co_return;
        }
    }
}

template <typename From, typename To>
asio::awaitable<void> tunnel::relay(From& from, To& to, std::uint64_t& counter, bool from_client, bool wait_first)
{
    boost::system::error_code ec;
    auto& from_socket = socket_of(from);
    // TLS may hold decrypted bytes that the socket no longer shows as readable, so a TLS side is read the
    // ordinary way, into a buffer it holds while it waits: its own, of one record's size (a TLS read returns at
    // most one record, 16 KiB), not a 64 KiB one from the pool.
    bool tls_side = is_tls(from);
    constexpr std::size_t tls_record_size = 16 * 1024;
    std::unique_ptr<char[]> tls_buffer;
    if (tls_side) {
        tls_buffer = std::make_unique<char[]>(tls_record_size);
    } else {
        from_socket.non_blocking(true, ec);
    }
    auto& pool = c_.owner.buffers();
    std::unique_ptr<char[]> pooled;
    auto give_back = [&] {
        if (pooled) {
            pool.give(std::move(pooled));
        }
    };
    for (;;) {
        // A cancel_io() that came while this relay's last operation had already completed cancelled nothing:
        // a busy tunnel would run on after its revocation or deadline.
        if (up_observer_.stopped()) {
            break;
        }
        char* data = nullptr;
        std::size_t n = 0;
        if (tls_side) {
            data = tls_buffer.get();
            auto [read_ec, read] = co_await from.async_read_some(asio::buffer(data, tls_record_size), use_tuple);
            n = read;
            // A client that closes without close_notify has still ended its side.
            ec = read_ec == asio::ssl::error::stream_truncated ? asio::error::eof : read_ec;
        } else {
            // Wait for bytes before taking a buffer, so an idle tunnel holds none; while bytes keep coming,
            // read straight away and wait only when a read would block.
            if (wait_first) {
                auto [wait_ec] = co_await from_socket.async_wait(tcp::socket::wait_read, use_tuple);
                if (wait_ec) {
                    break;
                }
            }
            pooled = pool.take();
            data = pooled.get();
            n = from_socket.read_some(asio::buffer(data, buffer_pool::buffer_size), ec);
            if (ec == asio::error::would_block) {
                give_back();
                wait_first = true;
                continue;
            }
            wait_first = n < buffer_pool::buffer_size;
        }
        if (ec == asio::error::eof) {
            give_back();
            if (!client_eof_first_ && !upstream_eof_first_) {
                (from_client ? client_eof_first_ : upstream_eof_first_) = true;
            }
            // Half-close: the other side learns this direction is done and may still answer.
            if (half_close(to)) {
                co_return;
            }
            break;
        }
        if (ec) {
            give_back();
            break;
        }
        c_.watch.touch();
        auto [write_ec, written] = co_await asio::async_write(to, asio::buffer(data, n), use_tuple);
        give_back();
        counter += written;
        c_.owner.metrics().bytes(from_client ? written : 0, from_client ? 0 : written);
        if (write_ec) {
            break;
        }
        c_.watch.touch();
    }
    // An error or a deadline in one direction ends both.
    halted_ = true;
    c_.cancel_io();
}

}  // namespace egressd::proxy
