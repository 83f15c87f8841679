#pragma once

#include "policy/address.hpp"
#include "protocol/http/message.hpp"
#include "proxy/observe/codes.hpp"
#include "proxy/session/authorization.hpp"
#include "proxy/session/connection.hpp"
#include "proxy/worker.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

struct ssl_st;

namespace egressd::proxy {

namespace http = protocol::http;
struct request_target;
class intake;
class tunnel;

// One client connection: runs its phases (intake, authorizer, connector, then the tunnel for a CONNECT or the
// forwarder for each absolute-form http:// request), each handing the next what it decided, and ends in one
// place, which writes the connection's one egress.close event. Registers itself with its worker, which closes it
// on shutdown and decides its established upstream again on reloads.
// Thread contract: every member runs on the worker's thread.
class client_session : public std::enable_shared_from_this<client_session> {
public:
    // listener_index: the listener's position in the configuration. tls_context: set on a TLS listener (the
    // context current when the connection was accepted).
    client_session(worker& owner, boost::asio::ip::tcp::socket socket, policy::address source, std::string source_text,
                   connection_limiter::ticket ticket, const config::listener_config& listener,
                   std::size_t listener_index, std::shared_ptr<boost::asio::ssl::context> tls_context);
    ~client_session();
    client_session(const client_session&) = delete;
    client_session& operator=(const client_session&) = delete;

    void start();

    // Ends the connection at the next opportunity; its close event then gives this cause (shutdown, revocation).
    void close(observe::close_cause cause);
    bool idle_between_requests() const { return c_.idle; }

    // The authorization of the connection's current upstream: a tunnel's for its whole life (from its 200
    // reply; with the ClientHello once it passed under a tls mode), a plain-HTTP connection's pooled upstream's while it is open (the one
    // of the last request it carried). Null when there is none.
    const authorization* established() const { return c_.upstream_auth.get(); }
    // A plain-HTTP connection whose pooled upstream a new policy no longer allows: the upstream goes (now if the
    // connection waits for its next request, else when the request in flight is done), and the next request
    // connects afresh after its own decision.
    void drop_pooled_upstream();

    // Who the client is, for re-decisions: the client certificate's TLS connection (null on a plain listener),
    // and the identity it proved.
    ssl_st* tls_handle();
    observe::identity_source identity_from() const { return c_.identity_from; }
    const std::optional<std::string>& identity() const { return c_.identity; }
    std::size_t listener_index() const { return listener_index_; }
    std::string_view request_id() const { return c_.request.id; }
    std::string_view source_text() const { return c_.source_text; }

private:
    // Why the connection ends, or the tunnel a CONNECT opened (its upstream connected), which run() carries on:
    // the frames that read, decided and connected (and the request head they kept) are gone before it starts,
    // so an idle tunnel does not hold them for hours.
    using served = std::variant<observe::close_cause, std::unique_ptr<tunnel>>;

    boost::asio::awaitable<void> run();
    boost::asio::awaitable<served> serve_requests(intake& in);
    boost::asio::awaitable<served> serve_connect(const http::request_head& head, const request_target& target);
    // Nothing: the connection carries the next request.
    boost::asio::awaitable<std::optional<observe::close_cause>> serve_forward(const http::request_head& head,
                                                                              const request_target& target);
    // Connects the upstream socket to a vetted address of the destination or of its parent proxy (auth.connected);
    // on failure answers the client and returns the close cause.
    boost::asio::awaitable<std::optional<observe::close_cause>> connect_upstream(authorization& auth);
    // The one exit path: the close event, and the upstream goes. Once per connection.
    void finish(observe::close_cause cause);
    void close_client();
    // An exception escaped one of the session's coroutines: a bug. Logged, counted, and the connection ends.
    void fail(std::exception_ptr e);

    worker& worker_;
    connection c_;
    connection_limiter::ticket ticket_;
    std::size_t listener_index_;
    std::shared_ptr<boost::asio::ssl::context> tls_context_;  // until the handshake starts
    bool finished_ = false;
};

}  // namespace egressd::proxy
