#include "proxy/session/connection.hpp"

#include "proxy/worker.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <type_traits>

namespace egressd::proxy {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

template <typename Stream>
asio::awaitable<bool> read_into(connection& c, Stream& from, std::string& into)
{
    // A request head is usually a few hundred bytes: start small, so a thousand tunnels opening at once do
    // not each leave an 8 KiB block behind in the allocator; grow for bodies.
    std::size_t chunk = into.capacity() < 2048 ? 2048 : 8192;
    std::size_t old = into.size();
    into.resize(old + chunk);
    auto [ec, n] = co_await from.async_read_some(asio::buffer(into.data() + old, chunk), use_tuple);
    into.resize(old + n);
    if constexpr (std::is_same_v<Stream, client_stream>) {
        c.bytes_from_client += n;
        c.owner.metrics().bytes(n, 0);
    }
    co_return !ec;
}

template <typename Stream>
asio::awaitable<bool> write_from(connection& c, Stream& to, std::string_view data)
{
    auto [ec, n] = co_await asio::async_write(to, asio::buffer(data), use_tuple);
    if constexpr (std::is_same_v<Stream, client_stream>) {
        c.bytes_to_client += n;
        c.owner.metrics().bytes(0, n);
    }
    c.watch.touch();
    co_return !ec;
}

}  // namespace

void connection::settle_decision(int status)
{
    if (decision) {
        owner.events().complete(std::move(*decision), status);
        decision.reset();
    }
}

void upstream_authorization::hold(authorization a)
{
    release();
    held_ = std::move(a);
    reusable_ = true;
    owner_.connection_established(session_);
}

void upstream_authorization::tunnel_started(policy::tunnel_start hello)
{
    held_->client_hello = std::move(hello);
    // The check may have used a snapshot that a reload replaced meanwhile: the worker decides again.
    owner_.connection_established(session_);
}

void upstream_authorization::release()
{
    if (!held_) {
        return;
    }
    // Told while get() still answers, so the worker can see what goes.
    owner_.connection_released(session_);
    held_.reset();
}

bool upstream_authorization::reusable_for(const authorization& next) const
{
    // A parent proxy takes requests for any destination: only the parent must be the same.
    bool same_destination =
        next.parent || (held_->port == next.port && held_->target.to_string() == next.target.to_string());
    return reusable() && held_->connected && held_->parent == next.parent && same_destination &&
           std::find(next.vetted.begin(), next.vetted.end(), *held_->connected) != next.vetted.end();
}

connection::connection(worker& owner_worker, client_session& session, tcp::socket socket,
                       policy::address source_address, std::string source_address_text,
                       const config::listener_config& listener_config)
    : owner(owner_worker),
      listener(listener_config),
      client(std::move(socket)),
      upstream(owner_worker.io()),
      upstream_auth(owner_worker, session),
      source(source_address),
      source_text(std::move(source_address_text)),
      watch(owner_worker.io().get_executor()),
      started(std::chrono::steady_clock::now())
{
}

asio::awaitable<bool> connection::read_more(client_stream& from, std::string& into)
{
    return read_into(*this, from, into);
}

asio::awaitable<bool> connection::read_more(tcp::socket& from, std::string& into)
{
    return read_into(*this, from, into);
}

asio::awaitable<bool> connection::write_all(client_stream& to, std::string_view data)
{
    return write_from(*this, to, data);
}

asio::awaitable<bool> connection::write_all(tcp::socket& to, std::string_view data)
{
    return write_from(*this, to, data);
}

void connection::cancel_io()
{
    boost::system::error_code ignored;
    client.socket().cancel(ignored);
    upstream.cancel(ignored);
}

void connection::close_upstream()
{
    boost::system::error_code ignored;
    upstream.close(ignored);
    upstream_auth.release();
}

}  // namespace egressd::proxy
