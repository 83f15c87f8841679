#pragma once

#include "proxy/pipe_pool.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>

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
// Thread contract: the sockets' (the worker's) thread; sockets, pools and observer outlive the relay.
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
