#pragma once

#include "policy/policy.hpp"
#include "protocol/tls/client_hello.hpp"
#include "proxy/observe/codes.hpp"
#include "proxy/session/authorization.hpp"
#include "proxy/session/connection.hpp"
#include "proxy/session/splice_relay.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace egressd::proxy {

// A CONNECT tunnel over a connected upstream, from the 200 reply to its end: under a tls mode the ClientHello is
// peeked and decided (the tunnel phase) before one client byte goes up, and after a TLS ClientHello the client's
// further bytes are held until the server's first ServerHello: a HelloRetryRequest lets the client send a second
// ClientHello, which must name the same server. Then bytes are relayed both ways with backpressure and
// half-close, under the idle deadline and the tunnel's lifetime: with splice(2) from socket to socket when the
// client side is plain, through a buffer when it is TLS. The authorization is held
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
    // A ClientHello peeked from client_in.
    struct hello_peek {
        protocol::tls::hello_status status = protocol::tls::hello_status::incomplete;
        protocol::tls::client_hello hello;  // status complete
        bool client_ended = false;          // incomplete because the client's side ended (not the deadline)
    };

    // Under a tls mode: the first ClientHello peeked and decided, and after a TLS one the server's first
    // ServerHello awaited (watch_retry); then the client bytes read so far written up. False: the tunnel is
    // ending, and neither direction may start.
    boost::asio::awaitable<bool> open_upstream();
    // Both sides plain: each direction an async_splice on a state of this object, not a coroutine, so an idle
    // tunnel holds two socket waits and one timer wait.
    boost::asio::awaitable<void> splice_both();
    void start_splice(bool from_client);
    void splice_done(bool from_client, const relay_result& r);
    // Reads the client until its ClientHello (the first, or after_retry the one that answers a HelloRetryRequest)
    // has a verdict, the client's side ends or the deadline passes.
    boost::asio::awaitable<hello_peek> peek_hello(bool after_retry,
                                                  std::optional<std::chrono::steady_clock::time_point> deadline);
    // The first ClientHello, while forward_server_first passes on what the server says before it (a server that
    // speaks first, under tls: allow); stops that when the hello has its verdict.
    boost::asio::awaitable<hello_peek> peek_first_hello(std::optional<std::chrono::steady_clock::time_point> deadline);
    boost::asio::awaitable<void> forward_server_first();
    // The first ClientHello (which named first_sni) has gone up: passes the server's bytes to the client until its
    // first ServerHello, holding the client's. After a HelloRetryRequest the second ClientHello is decided like
    // the first and must name first_sni (sni_mismatch); a second retry in a row ends the tunnel. False: it ends.
    boost::asio::awaitable<bool> watch_retry(const std::optional<std::string>& first_sni);
    // Reads the server into seen (passing every byte to the client) until scan_server_hello has a verdict.
    // incomplete: the server's side ended, or the tunnel is ending.
    boost::asio::awaitable<protocol::tls::server_hello_scan> await_server_hello(std::string& seen);
    // The tunnel phase's decision about a ClientHello under the held authorization (refusal: the reason the
    // hello is refused with when the policy would allow it), logged unless it allows. False: the tunnel ends.
    bool decide_start(const policy::tunnel_start& start, std::optional<policy::reason> refusal);
    // Writes the first n bytes of client_in up and drops them from it.
    boost::asio::awaitable<bool> write_up(std::size_t n);
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
    bool peeking_ = false;  // the first ClientHello has no verdict yet: forward_server_first runs
    connection_observer up_observer_{c_, up_, true, &halted_};
    connection_observer down_observer_{c_, down_, false, &halted_};
    std::optional<splice_state> up_splice_;
    std::optional<splice_state> down_splice_;
    std::uint8_t splicing_ = 0;                       // directions started and not yet completed
    boost::asio::steady_timer* both_done_ = nullptr;  // cancelled when the last one completes
};

}  // namespace egressd::proxy
