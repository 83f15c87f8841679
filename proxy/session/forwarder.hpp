#pragma once

#include "protocol/http/message.hpp"
#include "proxy/observe/codes.hpp"
#include "proxy/session/authorization.hpp"
#include "proxy/session/connection.hpp"
#include "proxy/session/responses.hpp"

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace egressd::proxy {

namespace http = protocol::http;

// The kept-alive upstream of an earlier request may carry the one `next` allows: it is held for the same host
// and port (or the same parent proxy), connected to an address `next` vetted, and still idle.
bool pooled_upstream_fits(connection& c, const authorization& next);

// Forwards one plain-HTTP request over the connection's upstream and relays the response: the head rewritten
// (hop-by-hop headers gone, Host from the URI, Via added, the body re-framed), the body streamed up while the
// response streams down; between plain sockets a body moves by splice(2) once its head is parsed. The upstream
// stays pooled for the next request when both sides allow it.
// Thread contract: its connection's (the worker's) thread.
class forwarder {
public:
    explicit forwarder(connection& c) : c_(c) {}

    // request_target: the path and query to ask for (the absolute URI when the upstream is a parent proxy);
    // host: the Host header's value. Returns nothing when the connection carries the next request, else the close
    // cause (after egressd's answer where one is due).
    boost::asio::awaitable<std::optional<observe::close_cause>> exchange(const http::request_head& head,
                                                                         const http::body_framing& framing,
                                                                         std::string_view request_target,
                                                                         std::string_view host, bool client_keep_alive);

private:
    enum class upload_result : std::uint8_t { done, malformed, client_closed, upstream_closed };
    boost::asio::awaitable<upload_result> upload_body(const http::body_framing& framing);
    // Fails only before the final response head went out, so that the client can still be told.
    boost::asio::awaitable<std::optional<failure>> download_response(std::string_view method, int client_version_minor,
                                                                     bool& client_keep_alive, bool& upstream_reusable);
    enum class chunked_end : std::uint8_t { done, malformed, read_failed, write_failed };
    // One chunked body, from `in` and then from `from`, to `to`: re-framed (reframe) or as bare data. Size
    // lines are parsed in the buffer; chunk data goes out from the buffer without a copy, and what of a chunk is
    // not buffered yet moves by splice(2) when both sides are plain. The bytes after the body stay in `in`.
    template <typename From, typename To>
    boost::asio::awaitable<chunked_end> relay_chunked(From& from, To& to, std::string& in, bool reframe,
                                                      bool from_client);

    connection& c_;
    bool response_started_ = false;  // the final response head went to the client
};

}  // namespace egressd::proxy
