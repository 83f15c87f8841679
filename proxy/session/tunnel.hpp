#pragma once

#include "policy/policy.hpp"
#include "proxy/observe/codes.hpp"
#include "proxy/session/authorization.hpp"
#include "proxy/session/connection.hpp"
#include "proxy/session/splice_relay.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <optional>

namespace egressd::proxy {

// A CONNECT tunnel over a connected upstream, from the 200 reply to its end: under a tls mode the ClientHello is
// peeked and decided (the tunnel phase) before one client byte goes up; then bytes are relayed both ways with
// backpressure and half-close, under the idle deadline and the tunnel's lifetime: with splice(2) from socket to
// socket when the client side is plain, through a buffer when it is TLS. The authorization is held
// (client_session::established()) for the tunnel's whole life.
// Thread contract: its connection's (the worker's) thread.
class tunnel {
public:
    // auth: connected is set.
    // Holds auth at once (c_.upstream_auth): from the 200 reply bytes may move, and under a tls mode the upstream
    // may speak before the ClientHello comes, so the tunnel is decided again on reloads from its first byte.
    tunnel(connection& c, authorization auth);

    // Runs the tunnel to its end; returns the close cause.
    boost::asio::awaitable<observe::close_cause> run();

private:
    // Under a tls mode: the ClientHello peeked and decided; then the client bytes read with the CONNECT head
    // written up. False: the client to upstream direction must not start (the tunnel is ending).
    boost::asio::awaitable<bool> open_upstream();
    boost::asio::awaitable<void> client_to_upstream();
    // Both sides plain: each direction an async_splice on a state of this object, not a coroutine, so an idle
    // tunnel holds two socket waits and one timer wait.
    boost::asio::awaitable<void> splice_both();
    void start_splice(bool from_client);
    void splice_done(bool from_client, const relay_result& r);
    // The first client bytes, as far as the tunnel phase needs them (the ClientHello).
    boost::asio::awaitable<policy::tunnel_start> peek_start(
        bool& malformed, std::optional<std::chrono::steady_clock::time_point> deadline);
    template <typename From, typename To>
    boost::asio::awaitable<void> relay(From& from, To& to, std::uint64_t& counter, bool from_client,
                                       bool wait_first = false);

    connection& c_;
    const policy::tls_mode tls_;  // what the first client bytes must be
    std::uint64_t up_ = 0;
    std::uint64_t down_ = 0;
    bool denied_ = false;  // the tunnel phase refused the first bytes
    bool client_eof_first_ = false;
    bool upstream_eof_first_ = false;
    bool halted_ = false;  // one direction failed or was stopped: the other stops too
    connection_observer up_observer_{c_, up_, true, &halted_};
    connection_observer down_observer_{c_, down_, false, &halted_};
    std::optional<splice_state> up_splice_;
    std::optional<splice_state> down_splice_;
    std::uint8_t splicing_ = 0;                       // directions started and not yet completed
    boost::asio::steady_timer* both_done_ = nullptr;  // cancelled when the last one completes
};

}  // namespace egressd::proxy
