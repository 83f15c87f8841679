#pragma once

#include "proxy/pipe_pool.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <type_traits>

namespace egressd::proxy {

class buffer_pool;
struct connection;

// What a relay reports as bytes arrive, and asks whether to go on.
class relay_observer {
public:
    // n more bytes reached the destination.
    virtual void moved(std::size_t n) = 0;
    // True: end at the next wake-up. Asked after every wait and every pass, because a cancel_io() that comes
    // while the relay's wait has already completed (its resumption queued) cancels nothing.
    virtual bool stopped() const = 0;

protected:
    ~relay_observer() = default;
};

enum class relay_end : std::uint8_t {
    limit,        // the limit was reached: whatever follows those bytes is still unread in `from`
    eof,          // `from` ended (its peer shut down its sending side)
    read_error,   // reading `from` failed (or no pipe could be made)
    write_error,  // writing `to` failed
    stopped,      // a wait was cancelled (connection::cancel_io()) or the observer said stop
};

struct relay_result {
    relay_end end = relay_end::limit;
    boost::system::error_code ec;  // why, for read_error and write_error
    std::uint64_t moved = 0;       // bytes written to `to`, exact to the byte
};

inline constexpr std::uint64_t no_limit = std::numeric_limits<std::uint64_t>::max();

// Moves bytes from one plain TCP socket to another through a pipe with splice(2), so they never enter user
// space, until `limit` bytes moved (never reading a byte past them: a pipelined request or response behind a
// body stays in the socket), `from` ends, an error, or a stop. Backpressure: while the pipe holds bytes that
// `to` cannot take, it waits for `to` and reads nothing more. While nothing comes it holds no pipe. Where the
// kernel refuses to splice these sockets (EINVAL, ENOSYS) it copies through a buffer of the pool instead.
// Between two pipefuls it lets the event loop run the worker's other connections.
// This is the relay's state and its steps apart from how it waits: async_splice drives it. An owner that
// keeps it (a tunnel, for its two directions) makes the pending operation carry only a pointer to it.
// Thread contract: the sockets' (the worker's) thread; sockets, pools and observer outlive the relay.
class splice_state {
public:
    enum class step : std::uint8_t { wait_read, wait_write, yield, write, done };

    splice_state(boost::asio::ip::tcp::socket& from, boost::asio::ip::tcp::socket& to, std::uint64_t limit,
                 pipe_pool& pipes, buffer_pool& buffers, relay_observer& observer);

    // Goes on from the start or from what it last asked for, which completed with (ec, n); returns what to
    // do next. After step::done it returns step::done again.
    step resume(boost::system::error_code ec, std::size_t n);

    boost::asio::ip::tcp::socket& from() const { return *from_; }
    boost::asio::ip::tcp::socket& to() const { return *to_; }
    // For step::write: what to write to `to`.
    boost::asio::const_buffer to_write() const { return {buffer_.get(), write_size_}; }
    const relay_result& result() const { return r_; }

private:
    enum class waiting : std::uint8_t {
        start,
        readable,
        writable,
        yielded,
        drain_written,
        copy_readable,
        copy_written,
        done,
    };
    step splice();
    step copy();
    step finish();

    boost::asio::ip::tcp::socket* from_;
    boost::asio::ip::tcp::socket* to_;
    pipe_pool* pipes_;
    buffer_pool* buffers_;
    relay_observer* observer_;
    std::uint64_t limit_;
    relay_result r_;
    pipe_fds pipe_;
    std::size_t in_pipe_ = 0;
    std::unique_ptr<char[]> buffer_;  // held only while bytes are in it
    std::size_t write_size_ = 0;
    waiting waiting_ = waiting::start;
    bool draining_ = false;  // emptying the pipe through a buffer: splice refused the write side
};

namespace detail {

// The asynchronous operation over a splice_state: owned (State = splice_state) or the caller's
// (State = splice_state*).
template <typename State>
class splice_op {
public:
    explicit splice_op(State state) : state_(std::move(state)) {}

    template <typename Self>
    void operator()(Self& self, boost::system::error_code ec = {}, std::size_t n = 0)
    {
        splice_state& s = get();
        auto next = s.resume(ec, n);
        if (next == splice_state::step::done && suspended_) {
            self.complete(s.result());
            return;
        }
        // Set before self moves into the next operation (this object moves with it).
        suspended_ = true;
        switch (next) {
        case splice_state::step::wait_read:
            s.from().async_wait(boost::asio::ip::tcp::socket::wait_read, std::move(self));
            return;
        case splice_state::step::wait_write:
            s.to().async_wait(boost::asio::ip::tcp::socket::wait_write, std::move(self));
            return;
        case splice_state::step::write:
            boost::asio::async_write(s.to(), s.to_write(), std::move(self));
            return;
        case splice_state::step::yield:
        case splice_state::step::done:
            // done before any wait: never complete inside the initiating call.
            boost::asio::post(s.from().get_executor(), std::move(self));
            return;
        }
    }

private:
    splice_state& get()
    {
        if constexpr (std::is_pointer_v<State>) {
            return *state_;
        } else {
            return state_;
        }
    }

    State state_;
    bool suspended_ = false;
};

}  // namespace detail

// The relay as an Asio asynchronous operation, completing with void(relay_result).
template <typename CompletionToken>
auto async_splice(boost::asio::ip::tcp::socket& from, boost::asio::ip::tcp::socket& to, std::uint64_t limit,
                  pipe_pool& pipes, buffer_pool& buffers, relay_observer& observer, CompletionToken&& token)
{
    return boost::asio::async_compose<CompletionToken, void(relay_result)>(
        detail::splice_op<splice_state>(splice_state(from, to, limit, pipes, buffers, observer)), token, from);
}

// The same over a state the caller keeps until the operation completed (and does not start twice).
template <typename CompletionToken>
auto async_splice(splice_state& state, CompletionToken&& token)
{
    return boost::asio::async_compose<CompletionToken, void(relay_result)>(detail::splice_op<splice_state*>(&state),
                                                                           token, state.from());
}

// The relay for a coroutine.
boost::asio::awaitable<relay_result> splice_relay(boost::asio::ip::tcp::socket& from,
                                                  boost::asio::ip::tcp::socket& to, std::uint64_t limit,
                                                  pipe_pool& pipes, buffer_pool& buffers, relay_observer& observer);

// A relay on a client connection: counts the bytes (into counter and the worker's metrics, as from_client
// says), touches the watchdog, and stops when the connection is closed (revoked, shut down), its deadline passed
// or *halt turns true.
// Thread contract: the connection's (the worker's) thread.
class connection_observer final : public relay_observer {
public:
    connection_observer(connection& c, std::uint64_t& counter, bool from_client, const bool* halt = nullptr)
        : c_(c), counter_(counter), halt_(halt), from_client_(from_client)
    {
    }
    void moved(std::size_t n) override;
    bool stopped() const override;

private:
    connection& c_;
    std::uint64_t& counter_;
    const bool* halt_;
    bool from_client_;
};

// The relay above between a connection's two sockets, with the worker's pools.
boost::asio::awaitable<relay_result> splice_relay(connection& c, boost::asio::ip::tcp::socket& from,
                                                  boost::asio::ip::tcp::socket& to, std::uint64_t limit,
                                                  relay_observer& observer);

}  // namespace egressd::proxy
