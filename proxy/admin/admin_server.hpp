#pragma once

// The admin listener: a small HTTP/1.x server (Boost.Beast) for Kubernetes probes, Prometheus and an operator
// with curl. It knows nothing about the proxy: what it reports and what a reload does come in as handlers.
//
//   GET|HEAD /healthz   200 "ok\n", always; never needs the token (liveness probe)
//   GET|HEAD /readyz    200 "ready\n" or 503 "not ready\n" per handlers::ready; never needs the token
//   GET|HEAD /status    200, handlers::status_json, application/json            (token, when configured)
//   GET|HEAD /metrics   200, handlers::metrics_text, Prometheus text format 0.0.4 (token, when configured)
//   POST     /reload    200 or 422, the JSON handlers::reload answers with       (token, when configured)
//
// Everything else is answered too: 401 (with WWW-Authenticate), 404, 405 (with Allow), 400 for a request that
// does not parse or whose target is not origin-form, 431 for a head over 8 KiB, 413 for a body over 64 KiB,
// 500 when a handler throws, 503 to connections over settings::max_connections.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace egressd::proxy::admin {

// What the endpoints report and do. All are called on the server's io_context thread, one at a time, and should
// return quickly: the control thread serves everything else too. A handler that throws answers 500; an empty
// one behaves like one that throws.
struct handlers {
    std::function<bool()> ready;               // GET /readyz
    std::function<std::string()> status_json;  // GET /status: a JSON document
    std::function<std::string()> metrics_text; // GET /metrics: Prometheus text exposition format
    // POST /reload. A reload may take seconds, so it runs elsewhere: reload starts it and returns. The callee
    // calls done exactly once, from any thread, with the outcome and a JSON body (200 if ok, else 422); the server
    // brings the answer back to its own thread. Until done is called the io_context is kept from running out of
    // work, so done must be called before that io_context is destroyed. A done dropped without being called
    // answers 500; calls after the first are ignored.
    std::function<void(std::function<void(bool ok, std::string json)> done)> reload;
    // Told, on the io_context thread, about what went wrong inside the server: a handler that threw, an
    // exception that ended a connection. Optional; it must not throw.
    std::function<void(std::string_view what)> internal_error;
};

struct settings {
    boost::asio::ip::tcp::endpoint endpoint;         // port 0 asks the kernel for one (see local_endpoint)
    std::optional<std::string> bearer_token;         // set: /status, /metrics and /reload need it; must not be empty
    std::shared_ptr<boost::asio::ssl::context> tls;  // set: HTTPS only, with this context (client certs as it says)
    std::size_t max_connections = 64;                // at least 1
    std::chrono::milliseconds request_timeout{10'000};  // TLS handshake; then each request head+body; each response
    std::chrono::milliseconds idle_timeout{60'000};     // keep-alive: for the first byte of the next request
};

// Thread contract: construct, start, stop and destroy on the io_context's thread, or while it is not running.
// The server runs entirely on that io_context, which must be run by one thread; it starts no threads of its own.
class admin_server {
public:
    // Binds and listens at once, exclusively (SO_REUSEADDR only, never SO_REUSEPORT: a second process must not be
    // able to share the port). Throws std::runtime_error("cannot bind admin listener 127.0.0.1:9090: Address
    // already in use") and the like; std::invalid_argument for unusable settings.
    admin_server(boost::asio::io_context& io, settings s, handlers h);
    ~admin_server();  // stops
    admin_server(const admin_server&) = delete;
    admin_server& operator=(const admin_server&) = delete;

    // The bound address, with the port the kernel chose when settings asked for port 0.
    boost::asio::ip::tcp::endpoint local_endpoint() const;

    // A rotated token (the token file was reloaded): requests from now on need this one. nullopt: none needed.
    void set_bearer_token(const std::optional<std::string>& token);
    // Rotated TLS files (a reload read them again): connections accepted from now on use this context, those
    // established keep theirs. Only for a server started with TLS; its being on or off is fixed at start.
    void set_tls(std::shared_ptr<boost::asio::ssl::context> tls);

    // Begins accepting on the io_context. Once only; a no-op afterwards and after stop.
    void start();
    // Closes the listener and every connection. Once they have unwound the server holds no work on the
    // io_context, except for a reload in flight: that holds it until its done is called (the answer then goes
    // nowhere). Idempotent.
    void stop();

private:
    struct state;
    std::shared_ptr<state> state_;  // shared with the accept loop and every connection, which may outlive this
    boost::asio::ip::tcp::endpoint local_endpoint_;
};

}  // namespace egressd::proxy::admin
