#include "proxy/session/splice_relay.hpp"

#include "proxy/session/connection.hpp"
#include "proxy/worker.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

namespace egressd::proxy {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr unsigned splice_flags = SPLICE_F_NONBLOCK | SPLICE_F_MOVE;

bool splice_refused(int e) { return e == EINVAL || e == ENOSYS; }

boost::system::error_code errno_code(int e) { return {e, boost::system::system_category()}; }

std::size_t clamp_to(std::uint64_t left, std::size_t most)
{
    return static_cast<std::size_t>(std::min<std::uint64_t>(left, most));
}

// Lets the worker's other connections run between two pipefuls: splice calls that keep succeeding would
// otherwise never give the event loop back.
asio::awaitable<void> yield_to_loop()
{
    auto executor = co_await asio::this_coro::executor;
    co_await asio::post(executor, asio::use_awaitable);
}

// Writes what a pipe holds to `to` through a buffer: splice refused the write side after bytes went in.
asio::awaitable<bool> drain_through_buffer(pipe_fds& pipe, std::size_t& in_pipe, tcp::socket& to, buffer_pool& buffers,
                                           relay_observer& observer, relay_result& r)
{
    auto buffer = buffers.take();
    while (in_pipe > 0) {
        ssize_t n = ::read(pipe.read_end(), buffer.get(), std::min(in_pipe, buffer_pool::buffer_size));
        if (n <= 0) {
            r.end = relay_end::write_error;
            r.ec = errno_code(n < 0 ? errno : EIO);
            co_return false;
        }
        auto [ec, written] =
            co_await asio::async_write(to, asio::buffer(buffer.get(), static_cast<std::size_t>(n)), use_tuple);
        r.moved += written;
        observer.moved(written);
        if (ec) {
            r.end = relay_end::write_error;
            r.ec = ec;
            co_return false;
        }
        in_pipe -= written;
    }
    buffers.give(std::move(buffer));
    co_return true;
}

// The fallback: the same relay through a buffer of the pool, held only while bytes are in flight.
asio::awaitable<relay_result> copy_relay(tcp::socket& from, tcp::socket& to, std::uint64_t limit,
                                         buffer_pool& buffers, relay_observer& observer, relay_result r)
{
    boost::system::error_code ec;
    for (;;) {
        if (r.moved == limit) {
            r.end = relay_end::limit;
            co_return r;
        }
        if (observer.stopped()) {
            r.end = relay_end::stopped;
            co_return r;
        }
        auto buffer = buffers.take();
        std::size_t n = from.read_some(asio::buffer(buffer.get(), clamp_to(limit - r.moved, buffer_pool::buffer_size)), ec);
        if (ec == asio::error::would_block) {
            buffers.give(std::move(buffer));
            auto [wait_ec] = co_await from.async_wait(tcp::socket::wait_read, use_tuple);
            if (wait_ec) {
                r.end = relay_end::stopped;
                r.ec = wait_ec;
                co_return r;
            }
            continue;
        }
        if (ec) {
            buffers.give(std::move(buffer));
            r.end = ec == asio::error::eof ? relay_end::eof : relay_end::read_error;
            r.ec = ec == asio::error::eof ? boost::system::error_code{} : ec;
            co_return r;
        }
        auto [write_ec, written] = co_await asio::async_write(to, asio::buffer(buffer.get(), n), use_tuple);
        buffers.give(std::move(buffer));
        r.moved += written;
        observer.moved(written);
        if (write_ec) {
            r.end = write_ec == asio::error::operation_aborted ? relay_end::stopped : relay_end::write_error;
            r.ec = write_ec;
            co_return r;
        }
    }
}

}  // namespace

asio::awaitable<relay_result> splice_relay(tcp::socket& from, tcp::socket& to, std::uint64_t limit, pipe_pool& pipes,
                                           buffer_pool& buffers, relay_observer& observer)
{
    relay_result r;
    boost::system::error_code ignored;
    // splice(2) blocks on a socket without O_NONBLOCK whatever its flags say; the fallback reads with read_some.
    from.non_blocking(true, ignored);
    to.native_non_blocking(true, ignored);
    pipe_fds pipe;
    std::size_t in_pipe = 0;
    for (;;) {
        if (in_pipe == 0) {
            if (r.moved == limit) {
                r.end = relay_end::limit;
                break;
            }
            if (observer.stopped()) {
                r.end = relay_end::stopped;
                break;
            }
            if (!pipes.splice_works()) {
                pipes.give(std::move(pipe));
                co_return co_await copy_relay(from, to, limit, buffers, observer, r);
            }
            if (!pipe) {
                pipe = pipes.take();
                if (!pipe) {
                    r.end = relay_end::read_error;
                    r.ec = errno_code(errno);
                    break;
                }
            }
            ssize_t n = ::splice(from.native_handle(), nullptr, pipe.write_end(), nullptr,
                                 clamp_to(limit - r.moved, pipe.capacity()), splice_flags);
            if (n > 0) {
                in_pipe = static_cast<std::size_t>(n);
                continue;
            }
            if (n == 0) {
                r.end = relay_end::eof;
                break;
            }
            int e = errno;
            if (e == EINTR) {
                continue;
            }
            if (e == EAGAIN) {
                // Nothing to read: wait without the pipe, so an idle relay holds none.
                pipes.give(std::move(pipe));
                auto [wait_ec] = co_await from.async_wait(tcp::socket::wait_read, use_tuple);
                if (wait_ec) {
                    r.end = relay_end::stopped;
                    r.ec = wait_ec;
                    break;
                }
                continue;
            }
            if (splice_refused(e)) {
                pipes.splice_unsupported();
                continue;
            }
            r.end = relay_end::read_error;
            r.ec = errno_code(e);
            break;
        }
        ssize_t n = ::splice(pipe.read_end(), nullptr, to.native_handle(), nullptr, in_pipe, splice_flags);
        if (n > 0) {
            in_pipe -= static_cast<std::size_t>(n);
            r.moved += static_cast<std::uint64_t>(n);
            observer.moved(static_cast<std::size_t>(n));
            if (in_pipe == 0) {
                co_await yield_to_loop();
            }
            continue;
        }
        int e = n == 0 ? EPIPE : errno;
        if (e == EINTR) {
            continue;
        }
        if (e == EAGAIN) {
            // Backpressure: `to` is full; read nothing more until the pipe drains.
            auto [wait_ec] = co_await to.async_wait(tcp::socket::wait_write, use_tuple);
            if (wait_ec || observer.stopped()) {
                r.end = relay_end::stopped;
                r.ec = wait_ec;
                break;
            }
            continue;
        }
        if (splice_refused(e)) {
            pipes.splice_unsupported();
            if (!co_await drain_through_buffer(pipe, in_pipe, to, buffers, observer, r)) {
                break;
            }
            continue;
        }
        r.end = relay_end::write_error;
        r.ec = errno_code(e);
        break;
    }
    if (in_pipe == 0) {
        pipes.give(std::move(pipe));
    }
    // Otherwise the pipe closes here with the bytes it still holds: never handed to another relay.
    co_return r;
}

void connection_observer::moved(std::size_t n)
{
    counter_ += n;
    c_.owner.metrics().bytes(from_client_ ? n : 0, from_client_ ? 0 : n);
    c_.watch.touch();
}

bool connection_observer::stopped() const
{
    return c_.closed_by.has_value() || c_.watch.expired() || (halt_ != nullptr && *halt_);
}

asio::awaitable<relay_result> splice_relay(connection& c, tcp::socket& from, tcp::socket& to, std::uint64_t limit,
                                           relay_observer& observer)
{
    return splice_relay(from, to, limit, c.owner.pipes(), c.owner.buffers(), observer);
}

}  // namespace egressd::proxy
