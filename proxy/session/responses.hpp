#pragma once

#include "proxy/observe/codes.hpp"

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <string_view>
#include <type_traits>

namespace egressd::proxy {

struct connection;

// Who a failure is due to.
enum class blame : std::uint8_t {
    client,    // a malformed, oversized or slow request; missing or wrong credentials
    upstream,  // DNS, the connect, a malformed or late response
    policy,    // a denial
    internal,  // egressd itself: out of descriptors or memory (503), or an exception that escaped a session
               // (close cause internal_error, never answered)
};

// Why egressd itself answers a request, or ends it.
enum class failure_kind : std::uint8_t {
    bad_request,
    head_too_large,
    request_line_too_long,
    header_timeout,
    proxy_auth,  // credentials missing (when required) or wrong
    denied,
    dns_failed,
    dns_timeout,
    connect_failed,
    connect_timeout,
    bad_upstream_response,
    upstream_timeout,
    upstream_closed,  // the upstream went away before the request head was out
    resource_exhausted,  // no descriptor or kernel memory for a socket the request needed (DNS, the connect)
};

// What each kind means, in one place: the HTTP status of egressd's answer, who is to blame, and the close
// cause when the failure ends the connection.
struct failure_traits {
    int status;
    blame who;
    observe::close_cause cause;
};
failure_traits traits_of(failure_kind k);

// A failure as a phase hands it on: its kind, the reason code egressd's answer and events give
// (X-Egressd-Reason: the policy's reason for a denial, the DNS status for a failed lookup), and a few words more
// for the answer's body. Trivially destructible on purpose: g++ 12 destroys a temporary with a destructor twice
// when it is built inside a co_await expression (`co_await respond(c, {...}, false)`), so detail is a view of
// text that outlives the answer (static text, or the request's parsed target).
struct failure {
    failure_kind kind;
    observe::reason why;
    std::string_view detail = {};
};
static_assert(std::is_trivially_destructible_v<failure>);

// Writes egressd's own answer for f to the client: a short text/plain body naming the status, the reason and the
// request id, which are also in X-Egressd-Reason and X-Egressd-Request-Id. keep_alive: the connection carries
// the next request. False: the client is gone.
boost::asio::awaitable<bool> respond(connection& c, const failure& f, bool keep_alive);

}  // namespace egressd::proxy
