#include "proxy/session/splice_relay.hpp"

#include "proxy/session/connection.hpp"
#include "proxy/worker.hpp"

#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

namespace egressd::proxy {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

constexpr unsigned splice_flags = SPLICE_F_NONBLOCK | SPLICE_F_MOVE;

bool splice_refused(int e) { return e == EINVAL || e == ENOSYS; }

boost::system::error_code errno_code(int e) { return {e, boost::system::system_category()}; }

std::size_t clamp_to(std::uint64_t left, std::size_t most)
{
    return static_cast<std::size_t>(std::min<std::uint64_t>(left, most));
}

}  // namespace

splice_state::splice_state(tcp::socket& from, tcp::socket& to, std::uint64_t limit, pipe_pool& pipes,
                           buffer_pool& buffers, relay_observer& observer)
    : from_(&from), to_(&to), pipes_(&pipes), buffers_(&buffers), observer_(&observer), limit_(limit)
{
}

splice_state::step splice_state::resume(boost::system::error_code ec, std::size_t n)
{
    switch (waiting_) {
    case waiting::start: {
        boost::system::error_code ignored;
        // splice(2) blocks on a socket without O_NONBLOCK whatever its flags say; the fallback reads with
        // read_some.
        from_->non_blocking(true, ignored);
        to_->native_non_blocking(true, ignored);
        break;
    }
    case waiting::readable:
        if (ec) {
            r_.end = relay_end::stopped;
            r_.ec = ec;
            return finish();
        }
        break;
    case waiting::writable:
        if (ec || observer_->stopped()) {
            r_.end = relay_end::stopped;
            r_.ec = ec;
            return finish();
        }
        break;
    case waiting::yielded:
        break;
    case waiting::drain_written:
        r_.moved += n;
        observer_->moved(n);
        if (ec) {
            r_.end = relay_end::write_error;
            r_.ec = ec;
            return finish();
        }
        in_pipe_ -= n;
        break;
    case waiting::copy_readable:
        if (ec) {
            r_.end = relay_end::stopped;
            r_.ec = ec;
            return finish();
        }
        return copy();
    case waiting::copy_written:
        buffers_->give(std::move(buffer_));
        r_.moved += n;
        observer_->moved(n);
        if (ec) {
            r_.end = ec == asio::error::operation_aborted ? relay_end::stopped : relay_end::write_error;
            r_.ec = ec;
            return finish();
        }
        return copy();
    case waiting::done:
        return step::done;
    }
    return splice();
}

splice_state::step splice_state::splice()
{
    for (;;) {
        if (draining_) {
            // Writes what the pipe holds to `to` through a buffer: splice refused the write side after bytes
            // went in.
            if (in_pipe_ == 0) {
                buffers_->give(std::move(buffer_));
                draining_ = false;
                continue;
            }
            ssize_t n = ::read(pipe_.read_end(), buffer_.get(), std::min(in_pipe_, buffer_pool::buffer_size));
            if (n <= 0) {
                r_.end = relay_end::write_error;
                r_.ec = errno_code(n < 0 ? errno : EIO);
                return finish();
            }
            write_size_ = static_cast<std::size_t>(n);
            waiting_ = waiting::drain_written;
            return step::write;
        }
        if (in_pipe_ == 0) {
            if (r_.moved == limit_) {
                r_.end = relay_end::limit;
                return finish();
            }
            if (observer_->stopped()) {
                r_.end = relay_end::stopped;
                return finish();
            }
            if (!pipes_->splice_works()) {
                // The rest goes through a buffer.
                pipes_->give(std::move(pipe_));
                return copy();
            }
            if (!pipe_) {
                pipe_ = pipes_->take();
                if (!pipe_) {
                    // No descriptor for a pipe (the pool counts it): a working tunnel is not cut for want of
                    // one, the rest goes through a buffer, which holds none.
                    return copy();
                }
            }
            ssize_t n = ::splice(from_->native_handle(), nullptr, pipe_.write_end(), nullptr,
                                 clamp_to(limit_ - r_.moved, pipe_.capacity()), splice_flags);
            if (n > 0) {
                in_pipe_ = static_cast<std::size_t>(n);
                continue;
            }
            if (n == 0) {
                r_.end = relay_end::eof;
                return finish();
            }
            int e = errno;
            if (e == EINTR) {
                continue;
            }
            if (e == EAGAIN) {
                // Nothing to read: wait without the pipe, so an idle relay holds none.
                pipes_->give(std::move(pipe_));
                waiting_ = waiting::readable;
                return step::wait_read;
            }
            if (splice_refused(e)) {
                pipes_->splice_unsupported();
                continue;
            }
            r_.end = relay_end::read_error;
            r_.ec = errno_code(e);
            return finish();
        }
        ssize_t n = ::splice(pipe_.read_end(), nullptr, to_->native_handle(), nullptr, in_pipe_, splice_flags);
        if (n > 0) {
            in_pipe_ -= static_cast<std::size_t>(n);
            r_.moved += static_cast<std::uint64_t>(n);
            observer_->moved(static_cast<std::size_t>(n));
            if (in_pipe_ == 0) {
                // Splice calls that keep succeeding would otherwise never give the event loop back.
                waiting_ = waiting::yielded;
                return step::yield;
            }
            continue;
        }
        int e = n == 0 ? EPIPE : errno;
        if (e == EINTR) {
            continue;
        }
        if (e == EAGAIN) {
            // Backpressure: `to` is full; read nothing more until the pipe drains.
            waiting_ = waiting::writable;
            return step::wait_write;
        }
        if (splice_refused(e)) {
            pipes_->splice_unsupported();
            buffer_ = buffers_->take();
            draining_ = true;
            continue;
        }
        r_.end = relay_end::write_error;
        r_.ec = errno_code(e);
        return finish();
    }
}

// The fallback: the same relay through a buffer of the pool, held only while bytes are in flight.
splice_state::step splice_state::copy()
{
    if (r_.moved == limit_) {
        r_.end = relay_end::limit;
        return finish();
    }
    if (observer_->stopped()) {
        r_.end = relay_end::stopped;
        return finish();
    }
    buffer_ = buffers_->take();
    boost::system::error_code ec;
    std::size_t n =
        from_->read_some(asio::buffer(buffer_.get(), clamp_to(limit_ - r_.moved, buffer_pool::buffer_size)), ec);
    if (ec == asio::error::would_block) {
        buffers_->give(std::move(buffer_));
        waiting_ = waiting::copy_readable;
        return step::wait_read;
    }
    if (ec) {
        buffers_->give(std::move(buffer_));
        r_.end = ec == asio::error::eof ? relay_end::eof : relay_end::read_error;
        r_.ec = ec == asio::error::eof ? boost::system::error_code{} : ec;
        return finish();
    }
    write_size_ = n;
    waiting_ = waiting::copy_written;
    return step::write;
}

splice_state::step splice_state::finish()
{
    waiting_ = waiting::done;
    if (in_pipe_ == 0) {
        pipes_->give(std::move(pipe_));
    }
    // Otherwise the pipe closes here with the bytes it still holds: never handed to another relay.
    pipe_ = pipe_fds();
    buffer_.reset();
    return step::done;
}

asio::awaitable<relay_result> splice_relay(tcp::socket& from, tcp::socket& to, std::uint64_t limit, pipe_pool& pipes,
                                           buffer_pool& buffers, relay_observer& observer)
{
    return async_splice(from, to, limit, pipes, buffers, observer, asio::use_awaitable);
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
