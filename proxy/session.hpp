#pragma once

#include "policy/policy.hpp"
#include "proxy/client_stream.hpp"
#include "proxy/http/message.hpp"
#include "proxy/watchdog.hpp"
#include "proxy/worker.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::proxy {

// Why egressd itself answers or ends a request; status_for() maps each to its HTTP status, in one place.
enum class failure : std::uint8_t {
    bad_request,            // 400
    head_too_large,         // 431
    request_line_too_long,  // 414
    header_timeout,         // 408
    denied,                 // 403
    dns_failed,             // 502
    dns_timeout,            // 504
    connect_failed,         // 502
    connect_timeout,        // 504
    bad_upstream_response,  // 502
    upstream_timeout,       // 504
    proxy_auth,             // 407: credentials missing (when required) or wrong
};
int status_for(failure f);
std::string_view to_string(failure f);

// One client connection: reads requests, decides each one against the current policy snapshot, and either
// tunnels (CONNECT) or forwards (absolute-form http://). Runs as coroutines on its worker's thread.
// Thread contract: every member runs on the worker's thread; the worker's registry calls close().
class client_session : public std::enable_shared_from_this<client_session> {
public:
    // tls_context: set on a TLS listener (the context current when the connection was accepted).
    client_session(worker& owner, boost::asio::ip::tcp::socket socket, policy::address source,
                   std::string source_text, connection_limiter::ticket ticket, const config::listener_config& listener,
                   std::shared_ptr<boost::asio::ssl::context> tls_context);
    ~client_session();

    void start();
    // Ends the connection at the next opportunity (shutdown, later policy re-checks).
    void close(std::string_view cause);
    bool idle_between_requests() const { return idle_; }

private:
    // What a routed request may connect to, or why it may not.
    struct route {
        std::optional<failure> refused;
        std::string reason;  // policy reason code or DNS status, for the response and the close event
        std::vector<policy::address> addresses;  // vetted, in the resolver's order
        std::shared_ptr<const policy::policy> snapshot;  // the one that decided; the tunnel phase uses it too
        std::optional<policy::client_id> client;
        policy::tls_mode tls = policy::tls_mode::off;
    };
    struct upstream_connection;

    boost::asio::awaitable<void> run();
    // On a PROXY protocol listener: reads the header (trusted sources must send one, others must not).
    // Returns the close cause on refusal, nothing when the session may go on.
    boost::asio::awaitable<std::optional<std::string_view>> read_proxy_header();
    // On a TLS listener: the handshake, and the identity of the client certificate. Returns the close cause on
    // refusal (after logging it), nothing when the session may go on.
    boost::asio::awaitable<std::optional<std::string_view>> accept_tls(std::shared_ptr<boost::asio::ssl::context> context);
    void log_connection_refusal(std::string_view reason, std::string_view detail);
    boost::asio::awaitable<std::optional<failure>> read_request_head(http::request_head& head);
    boost::asio::awaitable<void> handle_connect(const http::request_head& head);
    boost::asio::awaitable<policy::tunnel_start> peek_tunnel_start(
        bool& malformed, std::optional<std::chrono::steady_clock::time_point> deadline);
    struct decision_extras {
        std::string_view method;
        std::string_view address;
        std::string_view detail;
        std::string_view reason_override;  // a DNS reason instead of the policy's
        std::string_view sni;
    };
    void log_policy_decision(const policy::policy& snapshot, const policy::decision& d, const decision_extras& extras);
    boost::asio::awaitable<bool> handle_forward(const http::request_head& head, const http::absolute_target& target);
    // Proxy authentication of one request: sets identity_, or answers 407. False: the connection must close.
    boost::asio::awaitable<std::optional<bool>> authenticate(const http::request_head& head);
    boost::asio::awaitable<route> route_request(std::string_view method, const policy::host& host, std::uint16_t port);
    boost::asio::awaitable<std::optional<failure>> connect_upstream(const std::vector<policy::address>& addresses,
                                                                    std::uint16_t port);
    template <typename From, typename To>
    boost::asio::awaitable<void> relay(From& from, To& to, std::uint64_t& counter, bool from_client,
                                       bool wait_first = false);
    enum class upload_result : std::uint8_t { done, malformed, client_closed, upstream_closed };
    boost::asio::awaitable<upload_result> upload_body(const http::body_framing& framing);
    boost::asio::awaitable<std::optional<failure>> download_response(std::string_view method, bool& client_keep_alive,
                                                                     bool& upstream_reusable);
    template <typename Stream>
    boost::asio::awaitable<bool> read_more(Stream& from, std::string& into);
    template <typename Stream>
    boost::asio::awaitable<bool> write_all(Stream& to, std::string_view data);
    boost::asio::awaitable<bool> respond(failure f, std::string_view reason, bool keep_alive,
                                         std::string_view detail = {});
    void finish_request(std::string_view cause);
    bool wants_keep_alive(const http::request_head& head) const;
    bool upstream_still_idle();
    void cancel_io();

    worker& worker_;
    const config::listener_config& listener_;
    client_stream client_;
    boost::asio::ip::tcp::socket upstream_;
    std::shared_ptr<boost::asio::ssl::context> tls_context_;  // until the handshake starts
    policy::address source_;
    std::string source_text_;
    std::optional<std::string> identity_;  // by proxy authentication (per request) or mTLS (the whole connection)
    std::string_view identity_source_;     // "proxy_auth" or "mtls"
    connection_limiter::ticket ticket_;
    watchdog watchdog_;
    std::chrono::steady_clock::time_point started_;

    std::string client_in_;    // bytes read from the client, not yet consumed
    std::string upstream_in_;  // bytes read from the upstream, not yet consumed

    // The request in progress, for events.
    std::string request_id_;
    std::string method_;
    std::string host_;
    std::uint16_t port_ = 0;
    std::string client_name_;
    std::string address_text_;
    std::uint64_t bytes_from_client_ = 0;
    std::uint64_t bytes_to_client_ = 0;
    std::uint64_t requests_ = 0;

    // The kept-alive upstream of plain HTTP forwarding: reused only for the same host:port and vetted address.
    std::string upstream_key_;
    std::optional<policy::address> upstream_address_;
    int client_version_minor_ = 1;
    bool client_eof_first_ = false;
    bool upstream_eof_first_ = false;
    bool idle_ = false;
    bool closing_ = false;
    std::string close_cause_;
    bool event_logged_ = false;
    bool response_started_ = false;  // the final response head of the current request went to the client
};

}  // namespace egressd::proxy
