#pragma once

#include "config/server_config.hpp"
#include "policy/address.hpp"
#include "proxy/client_stream.hpp"
#include "proxy/event_log.hpp"
#include "proxy/observe/codes.hpp"
#include "proxy/session/authorization.hpp"
#include "proxy/watchdog.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace egressd::proxy {

class client_session;
class worker;

// What the events about the request in progress name it by: every decision event carries these, and the close
// event those of the connection's last request. Phases fill it in as the facts become known; nothing decides
// on it.
struct request_record {
    std::string id;  // empty before the first request
    std::string method;
    std::string host;  // as decided on; as the client wrote it when it could not be parsed
    std::uint16_t port = 0;
    std::string client;   // the matched client's name; empty: none
    std::string address;  // the address decided on, then the one connected to
    std::int64_t access_request = 0;  // a denial that became (or counted towards) this access request; 0: none
    std::string path;   // forwarded plain HTTP: the URI's path; empty for CONNECT
    std::string query;  // and its query, without the '?'

    // A new request: nothing is known of it but its id and method (the strings keep their capacity).
    void begin(std::string request_id, std::string_view request_method)
    {
        id = std::move(request_id);
        method = request_method;
        host.clear();
        port = 0;
        client.clear();
        address.clear();
        access_request = 0;
        path.clear();
        query.clear();
    }
};

// The authorization of the connection's current upstream, which the worker decides again on reloads and when a
// rule expires (client_session::established()). Held from the moment the upstream may carry traffic (connected;
// for a tunnel from its 200 reply, since the upstream may speak first) until the upstream goes away; every hold is paired
// with one release, each told to the worker.
// Thread contract: the worker's thread only.
class upstream_authorization {
public:
    upstream_authorization(worker& owner, client_session& session) : owner_(owner), session_(session) {}
    upstream_authorization(const upstream_authorization&) = delete;
    upstream_authorization& operator=(const upstream_authorization&) = delete;

    const authorization* get() const { return held_ ? &*held_ : nullptr; }
    // A kept-alive upstream that carries the next request is held again under that request's authorization:
    // the one held before is released first.
    void hold(authorization a);
    void release();
    // A tunnel's ClientHello passed its check: later decisions of the held tunnel include it.
    void tunnel_started(policy::tunnel_start hello);

    // A new policy no longer allows the pooled upstream: no later request may reuse it.
    void forbid_reuse() { reusable_ = false; }
    bool reusable() const { return held_ && reusable_; }
    // The held upstream may carry the request `next` allows: same host and port (through a parent proxy: the same
    // parent, whatever the destination), connected to an address `next` vetted, and not forbidden.
    bool reusable_for(const authorization& next) const;

private:
    worker& owner_;
    client_session& session_;
    std::optional<authorization> held_;
    bool reusable_ = true;
};

// One client connection's state, shared by reference with the phase objects that run on it: the two streams,
// the bytes read and not yet consumed, the deadlines, the byte counters and who the client proved to be. Phases
// hand each other what they decide (an authorization, a connected address, a failure) as values; what is here
// lives as long as the connection.
// Thread contract: the worker's thread only.
struct connection {
    connection(worker& owner, client_session& session, boost::asio::ip::tcp::socket socket, policy::address source,
               std::string source_text, const config::listener_config& listener);

    // Reads what is there (at least one byte) and appends it to into. False: end of stream, error or deadline.
    boost::asio::awaitable<bool> read_more(client_stream& from, std::string& into);
    boost::asio::awaitable<bool> read_more(boost::asio::ip::tcp::socket& from, std::string& into);
    // False: the peer is gone, or a deadline passed.
    boost::asio::awaitable<bool> write_all(client_stream& to, std::string_view data);
    boost::asio::awaitable<bool> write_all(boost::asio::ip::tcp::socket& to, std::string_view data);

    // Interrupts whatever either stream waits for (a deadline, an error in one tunnel direction, close()).
    void cancel_io();
    // The upstream goes away: the socket closes and its authorization is released.
    void close_upstream();
    // The decision event of a forwarded plain-HTTP request waits in `decision` for the status of the response
    // (the upstream's, or egressd's own answer's); this writes it with that status (0: none came).
    void settle_decision(int status);

    worker& owner;
    const config::listener_config& listener;
    client_stream client;
    boost::asio::ip::tcp::socket upstream;
    upstream_authorization upstream_auth;
    policy::address source;   // the client's, or the one a trusted PROXY header names
    std::string source_text;  // ip:port
    std::optional<std::string> identity;  // by proxy authentication (per request) or mTLS (the whole connection)
    observe::identity_source identity_from = observe::identity_source::none;
    watchdog watch;
    std::chrono::steady_clock::time_point started;

    std::string client_in;    // bytes read from the client, not yet consumed
    std::string upstream_in;  // bytes read from the upstream, not yet consumed
    std::uint64_t bytes_from_client = 0;
    std::uint64_t bytes_to_client = 0;
    std::uint64_t requests = 0;
    request_record request;
    std::optional<open_decision> decision;  // the request's decision event, waiting for its status

    bool idle = false;  // waiting for the next request of a kept-alive connection
    std::optional<observe::close_cause> closed_by;  // client_session::close() was called: egressd ends it
};

}  // namespace egressd::proxy
