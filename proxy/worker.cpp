#include "proxy/worker.hpp"

#include "proxy/session.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <cstdio>

namespace egressd::proxy {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

connection_limiter::ticket::~ticket()
{
    if (owner_ != nullptr) {
        owner_->release(source_);
    }
}

std::optional<connection_limiter::ticket> connection_limiter::acquire(const policy::address& source)
{
    std::lock_guard lock(mutex_);
    if (total_.load(std::memory_order_relaxed) >= total_limit_) {
        return std::nullopt;
    }
    auto& count = per_source_[source];
    if (count >= per_source_limit_) {
        if (count == 0) {
            per_source_.erase(source);
        }
        return std::nullopt;
    }
    ++count;
    total_.fetch_add(1, std::memory_order_relaxed);
    return ticket(this, source);
}

void connection_limiter::release(const policy::address& source)
{
    std::lock_guard lock(mutex_);
    total_.fetch_sub(1, std::memory_order_relaxed);
    auto it = per_source_.find(source);
    if (it != per_source_.end() && --it->second == 0) {
        per_source_.erase(it);
    }
}

std::unique_ptr<char[]> buffer_pool::take()
{
    if (free_.empty()) {
        return std::make_unique<char[]>(buffer_size);
    }
    auto b = std::move(free_.back());
    free_.pop_back();
    return b;
}

void buffer_pool::give(std::unique_ptr<char[]> buffer)
{
    // A few spares cover the tunnels moving bytes at one instant; more would only pin memory.
    if (free_.size() < 64) {
        free_.push_back(std::move(buffer));
    }
}

namespace {

dns::resolver_config resolver_settings(const config::dns_config& c)
{
    dns::resolver_config r;
    r.servers = c.servers;
    r.timeout = c.timeout;
    r.tries = c.tries;
    r.min_ttl = c.min_ttl;
    r.max_ttl = c.max_ttl;
    r.negative_ttl = c.negative_ttl;
    r.cache_entries = c.cache_entries;
    return r;
}

}  // namespace

worker::worker(unsigned index, runtime& rt, std::shared_ptr<const policy::policy> snapshot)
    : index_(index),
      rt_(rt),
      policy_(std::move(snapshot)),
      resolver_(io_, resolver_settings(rt.config.dns)),
      events_(rt.log, [this] { asio::post(io_, [this] { events_.flush(); }); })
{
    if (rt.credentials && rt.config.proxy_auth) {
        authenticator_.emplace(*rt.config.proxy_auth, rt.credentials, *rt.slow_work, *rt.login_failures);
    }
}

worker::~worker()
{
    join();
    events_.flush();  // the thread is gone: whatever it left is written from here
}

void worker::add_acceptor(tcp::acceptor acceptor, const config::listener_config& listener, const tls_context_slot* tls)
{
    acceptors_.push_back({std::make_unique<tcp::acceptor>(std::move(acceptor)), &listener, tls});
}

void worker::start()
{
    for (const auto& where : acceptors_) {
        asio::co_spawn(io_, accept_loop(where), asio::detached);
    }
    // The resolver's timers come and go; the guard keeps the worker alive between connections.
    thread_ = std::thread([this] {
        auto guard = asio::make_work_guard(io_);
        io_.run();
    });
}

void worker::stop()
{
    asio::post(io_, [this] {
        resolver_.shutdown();
        events_.flush();
        io_.stop();
    });
}

void worker::join()
{
    if (thread_.joinable()) {
        thread_.join();
    }
}

void worker::begin_shutdown()
{
    asio::post(io_, [this] {
        draining_ = true;
        for (auto& entry : acceptors_) {
            boost::system::error_code ignored;
            entry.acceptor->close(ignored);
        }
        // Copy: closing may unregister sessions while we iterate.
        std::vector<client_session*> idle;
        for (auto* s : sessions_) {
            if (s->idle_between_requests()) {
                idle.push_back(s);
            }
        }
        for (auto* s : idle) {
            s->close("shutdown");
        }
    });
}

void worker::force_close()
{
    asio::post(io_, [this] {
        std::vector<client_session*> all(sessions_.begin(), sessions_.end());
        for (auto* s : all) {
            s->close("shutdown");
        }
    });
}

void worker::set_policy(std::shared_ptr<const policy::policy> snapshot)
{
    asio::post(io_, [this, snapshot = std::move(snapshot)]() mutable { policy_ = std::move(snapshot); });
}

std::string worker::next_request_id()
{
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%08x%02x%06llx", rt_.id_prefix, index_ & 0xffu,
                  static_cast<unsigned long long>(++request_counter_ & 0xffffffu));
    return buffer;
}

asio::awaitable<void> worker::accept_loop(const listening& where)
{
    auto& acceptor = *where.acceptor;
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
        if (ec) {
            if (ec == asio::error::operation_aborted || !acceptor.is_open()) {
                co_return;
            }
            // Out of descriptors or memory: back off briefly instead of spinning.
            asio::steady_timer pause(io_, std::chrono::milliseconds(50));
            co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
            continue;
        }
        boost::system::error_code endpoint_ec;
        auto remote = socket.remote_endpoint(endpoint_ec);
        if (endpoint_ec) {
            continue;
        }
        auto source = remote.address().is_v4() ? policy::address::from_v4(remote.address().to_v4().to_uint())
                                                : policy::address::from_v6(remote.address().to_v6().to_bytes());
        std::string source_text = source.to_string(remote.port());
        auto ticket = rt_.limiter.acquire(source);
        if (!ticket) {
            asio::co_spawn(io_, refuse(std::move(socket), std::move(source_text), where.tls != nullptr), asio::detached);
            continue;
        }
        socket.set_option(tcp::no_delay(true), endpoint_ec);
        auto session = std::make_shared<client_session>(*this, std::move(socket), source, std::move(source_text),
                                                        std::move(*ticket), *where.config,
                                                        where.tls ? where.tls->current() : nullptr);
        session->start();
    }
}

asio::awaitable<void> worker::refuse(tcp::socket socket, std::string source, bool tls)
{
    static constexpr std::string_view response =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 37\r\nConnection: close\r\n\r\n"
        "egressd: too many connections (503)\r\n";
    // A client that does not read gets a second, then the socket closes anyway.
    // A TLS client could not read a plain-text answer, and a handshake would cost what the limit protects.
    if (!tls) {
        asio::steady_timer limit(io_, std::chrono::seconds(1));
        co_await (asio::async_write(socket, asio::buffer(response), asio::as_tuple(asio::use_awaitable)) ||
                  limit.async_wait(asio::as_tuple(asio::use_awaitable)));
    }
    boost::system::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
    close_event e;
    e.request_id = "-";
    e.source = source;
    e.method = "-";
    e.host = "-";
    e.cause = "over_limit";
    events_.close(e);
}

}  // namespace egressd::proxy
