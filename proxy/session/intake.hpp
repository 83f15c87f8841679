#pragma once

#include "policy/domain.hpp"
#include "protocol/http/message.hpp"
#include "proxy/observe/codes.hpp"
#include "proxy/session/connection.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace egressd::proxy {

namespace http = protocol::http;

// A request's target, parsed once when its head is read.
struct request_target {
    bool connect = false;  // CONNECT: an authority-form host:port; otherwise an absolute-form http:// URI
    // What the policy decides on. Empty: the target names no destination egressd accepts, and error says why.
    std::optional<policy::destination> destination;
    std::string error;
    // Absolute-form only, when the URI parsed: its host as written (events name it so until it is checked), its
    // port, and the path and query the upstream is asked for.
    std::optional<http::absolute_target> uri;
};
request_target parse_target(const http::request_head& head);

// The client's wish to keep the connection for another request (never while the worker drains).
bool wants_keep_alive(const http::request_head& head, bool draining);

// What comes in from the client before anything is decided: on a PROXY protocol listener the header, on a TLS
// listener the handshake and the client certificate's identity, then each request's head and its proxy
// authentication. Refusals are answered (where the client can read an answer) and logged here; each returns the
// close cause of the connection it ends.
// Thread contract: its connection's (the worker's) thread.
class intake {
public:
    explicit intake(connection& c) : c_(c) {}

    // Trusted sources must send a PROXY header, others must not. Nothing: the connection may go on.
    // tls_listener: a TLS client would read a plain-text answer as garbage, so it only sees the connection close.
    boost::asio::awaitable<std::optional<observe::close_cause>> read_proxy_header(bool tls_listener);
    // The handshake with the listener's context, and the identity of the client certificate.
    boost::asio::awaitable<std::optional<observe::close_cause>> accept_tls(
        std::shared_ptr<boost::asio::ssl::context> context);
    // The next request's head (consumed from the client's bytes), or why the connection ends instead.
    boost::asio::awaitable<std::variant<http::request_head, observe::close_cause>> read_request();

    enum class auth_outcome : std::uint8_t {
        go_on,    // no credentials needed, or verified (c.identity names the user)
        retry,    // refused with a 407; the connection may carry the retry
        refused,  // refused with a 407, and the connection ends
    };
    // Proxy authentication of one request (a client certificate names the client for the whole connection).
    boost::asio::awaitable<auth_outcome> authenticate(const http::request_head& head, const request_target& target);

private:
    boost::asio::awaitable<std::optional<observe::close_cause>> take_proxy_header();
    boost::asio::awaitable<observe::close_cause> head_cut_short();
    // A connection refused before any request (its TLS handshake or client certificate) is a denial too; a
    // rejected certificate is named by its subject and serial.
    void log_refusal(observe::reason why, std::string_view detail, std::string_view cert_subject = {},
                     std::string_view cert_serial = {});

    connection& c_;
};

}  // namespace egressd::proxy
