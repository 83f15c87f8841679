#include "proxy/session/forwarder.hpp"

#include "proxy/session/splice_relay.hpp"
#include "proxy/worker.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <sys/socket.h>
#include <type_traits>

namespace egressd::proxy {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;
using observe::close_cause;
using observe::reason;

namespace {

bool asks_to_close(const std::vector<http::header>& headers)
{
    auto tokens = http::header_tokens(headers, "connection");
    return std::find(tokens.begin(), tokens.end(), "close") != tokens.end();
}

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// The socket of a side that splice(2) can move bytes through: null for a TLS client.
tcp::socket* plain_socket(tcp::socket& s) { return &s; }
tcp::socket* plain_socket(client_stream& s) { return s.tls() == nullptr ? &s.socket() : nullptr; }

std::size_t clamp_to(std::uint64_t left, std::size_t most)
{
    return static_cast<std::size_t>(std::min<std::uint64_t>(left, most));
}

// One write of two pieces (a head or chunk framing, and body bytes from the buffer, which are not copied).
template <typename To>
asio::awaitable<bool> write_pieces(connection& c, To& to, std::string_view first, std::string_view second)
{
    std::array<asio::const_buffer, 2> pieces{asio::buffer(first), asio::buffer(second)};
    auto [ec, n] = co_await asio::async_write(to, pieces, use_tuple);
    if constexpr (std::is_same_v<To, client_stream>) {
        c.bytes_to_client += n;
        c.owner.metrics().bytes(0, n);
    }
    c.watch.touch();
    co_return !ec;
}

}  // namespace

// A kept-alive upstream that closed (or, against the protocol, sent bytes) while idle cannot carry the next
// request; probing without blocking catches the usual case of a server's idle timeout before we write.
bool pooled_upstream_fits(connection& c, const authorization& next)
{
    if (!c.upstream.is_open() || !c.upstream_auth.reusable_for(next)) {
        return false;
    }
    char probe = 0;
    ssize_t n = ::recv(c.upstream.native_handle(), &probe, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && c.upstream_in.empty();
}

asio::awaitable<std::optional<close_cause>> forwarder::exchange(const http::request_head& head,
                                                                const http::body_framing& framing,
                                                                std::string_view request_target, std::string_view host,
                                                                bool client_keep_alive)
{
    auto headers = http::forwarded_request_headers(head, framing, host);
    if (const auto* held = c_.upstream_auth.get(); held != nullptr && held->snapshot->names_requests()) {
        http::remove_request_overrides(headers);
    }
    c_.watch.idle(c_.owner.config().timeouts.upstream_response, std::chrono::steady_clock::time_point::max());
    std::string request_head = http::serialize_request_head(head.method, request_target, headers);
    if (!co_await c_.write_all(c_.upstream, request_head)) {
        c_.close_upstream();
        co_await respond(c_, {failure_kind::upstream_closed, reason::upstream_closed}, false);
        co_return close_cause::upstream_closed;
    }
    bool upstream_reusable = false;
    auto uploaded = upload_result::done;
    std::optional<failure> response_failure;
    response_started_ = false;
    auto upload = [&]() -> asio::awaitable<void> {
        uploaded = co_await upload_body(framing);
        if (uploaded == upload_result::malformed || uploaded == upload_result::client_closed) {
            // The upstream would wait for the rest of a body that will never come: end the exchange now.
            boost::system::error_code ignored;
            c_.upstream.shutdown(tcp::socket::shutdown_both, ignored);
            c_.upstream.cancel(ignored);
        }
    };
    auto download = [&]() -> asio::awaitable<void> {
        response_failure = co_await download_response(head.method, head.version_minor, client_keep_alive,
                                                      upstream_reusable);
    };
    co_await (upload() && download());
    if (uploaded == upload_result::malformed) {
        if (!response_started_) {
            co_await respond(c_, {failure_kind::bad_request, reason::bad_request, "malformed chunked body"}, false);
        }
        co_return close_cause::bad_request;
    }
    if (response_failure) {
        if (uploaded == upload_result::client_closed) {
            co_return close_cause::client_closed;
        }
        co_await respond(c_, *response_failure, false);
        co_return traits_of(response_failure->kind).cause;
    }
    // A pooled upstream that a new policy no longer allows goes once the request it carried is done.
    if (uploaded != upload_result::done || !upstream_reusable || !c_.upstream_auth.reusable()) {
        c_.close_upstream();
    }
    if (uploaded != upload_result::done) {
        co_return close_cause::client_closed;
    }
    if (!client_keep_alive) {
        co_return close_cause::done;
    }
    co_return c_.closed_by;
}

asio::awaitable<forwarder::upload_result> forwarder::upload_body(const http::body_framing& framing)
{
    using kind = http::body_framing::kind;
    if (framing.type == kind::none) {
        co_return upload_result::done;
    }
    if (framing.type == kind::content_length) {
        // Body bytes that came with the head go first; the rest moves from socket to socket when the client is
        // plain, and the bytes behind the body (a pipelined request) stay unread.
        std::uint64_t remaining = framing.length;
        for (;;) {
            if (!c_.client_in.empty()) {
                std::size_t take = clamp_to(remaining, c_.client_in.size());
                if (!co_await c_.write_all(c_.upstream, std::string_view(c_.client_in).substr(0, take))) {
                    co_return upload_result::upstream_closed;
                }
                c_.client_in.erase(0, take);
                remaining -= take;
            }
            if (remaining == 0) {
                co_return upload_result::done;
            }
            if (tcp::socket* client = plain_socket(c_.client)) {
                connection_observer observer(c_, c_.bytes_from_client, true);
                auto r = co_await splice_relay(c_, *client, c_.upstream, remaining, observer);
                if (r.end == relay_end::limit) {
                    co_return upload_result::done;
                }
                co_return r.end == relay_end::write_error ? upload_result::upstream_closed
                                                          : upload_result::client_closed;
            }
            if (!co_await c_.read_more(c_.client, c_.client_in) || c_.client_in.empty()) {
                co_return upload_result::client_closed;
            }
        }
    }
    switch (co_await relay_chunked(c_.client, c_.upstream, c_.client_in, true, true)) {
    case chunked_end::done:
        co_return upload_result::done;
    case chunked_end::malformed:
        co_return upload_result::malformed;
    case chunked_end::read_failed:
        co_return upload_result::client_closed;
    case chunked_end::write_failed:
        break;
    }
    co_return upload_result::upstream_closed;
}

template <typename From, typename To>
asio::awaitable<forwarder::chunked_end> forwarder::relay_chunked(From& from, To& to, std::string& in, bool reframe,
                                                                 bool from_client)
{
    http::chunked_decoder decoder;
    std::string framing;  // size lines and CRLFs out, never chunk data
    std::size_t pos = 0;  // in's bytes before pos belong to the body and have gone out
    tcp::socket* from_socket = plain_socket(from);
    tcp::socket* to_socket = plain_socket(to);
    for (;;) {
        std::size_t consumed = 0;
        http::parse_error err = http::parse_error::none;
        framing.clear();
        auto status = decoder.feed_framing(std::string_view(in).substr(pos), framing, consumed, err, reframe);
        if (status == http::parse_status::error) {
            co_return chunked_end::malformed;
        }
        pos += consumed;
        std::size_t here = clamp_to(decoder.data_left(), in.size() - pos);
        if (!framing.empty() || here > 0) {
            if (!co_await write_pieces(c_, to, framing, std::string_view(in).substr(pos, here))) {
                co_return chunked_end::write_failed;
            }
            decoder.skip_data(here);
            pos += here;
        }
        if (status == http::parse_status::complete) {
            in.erase(0, pos);
            co_return chunked_end::done;
        }
        if (pos < in.size()) {
            continue;  // the next size line is buffered too
        }
        // Everything buffered went out; clearing is free, where erasing each chunk would move the rest.
        in.clear();
        pos = 0;
        std::uint64_t left = decoder.data_left();
        if (left > 0 && from_socket != nullptr && to_socket != nullptr) {
            connection_observer observer(c_, from_client ? c_.bytes_from_client : c_.bytes_to_client, from_client);
            auto r = co_await splice_relay(c_, *from_socket, *to_socket, left, observer);
            if (r.end != relay_end::limit) {
                co_return r.end == relay_end::write_error ? chunked_end::write_failed : chunked_end::read_failed;
            }
            decoder.skip_data(left);
            continue;
        }
        if (!co_await c_.read_more(from, in)) {
            co_return chunked_end::read_failed;
        }
    }
}

asio::awaitable<std::optional<failure>> forwarder::download_response(std::string_view method,
                                                                     int client_version_minor,
                                                                     bool& client_keep_alive, bool& upstream_reusable)
{
    using kind = http::body_framing::kind;
    const failure bad_response{failure_kind::bad_upstream_response, reason::bad_upstream_response};
    const auto& cfg = c_.owner.config();
    http::limits lim{cfg.limits.max_head_bytes, cfg.limits.max_headers, cfg.limits.max_request_line};
    auto& in = c_.upstream_in;
    http::response_head head;
    for (;;) {
        http::parse_error err = http::parse_error::none;
        auto status = http::parse_response_head(in, lim, head, err);
        if (status == http::parse_status::error) {
            co_return bad_response;
        }
        if (status == http::parse_status::incomplete) {
            if (!co_await c_.read_more(c_.upstream, in)) {
                if (c_.watch.expired()) {
                    co_return failure{failure_kind::upstream_timeout, reason::upstream_timeout};
                }
                co_return bad_response;
            }
            c_.watch.touch();
            continue;
        }
        in.erase(0, head.head_size);
        if (head.status == 101) {
            co_return bad_response;  // egressd never forwards Upgrade, so never asked for this
        }
        if (head.status >= 100 && head.status < 200) {
            // Interim responses (100 Continue) go to HTTP/1.1 clients as they come.
            if (client_version_minor >= 1) {
                auto headers = head.headers;
                http::remove_hop_by_hop(headers);
                std::string interim = http::serialize_response_head(head.status, head.reason, headers);
                if (!co_await c_.write_all(c_.client, interim)) {
                    co_return std::nullopt;
                }
            }
            head = {};
            continue;
        }
        break;
    }
    c_.settle_decision(head.status);
    http::parse_error err = http::parse_error::none;
    auto framing = http::response_framing(head, method, err);
    if (!framing) {
        co_return bad_response;
    }
    upstream_reusable = framing->type != kind::until_close && !asks_to_close(head.headers) && head.version_minor >= 1;
    bool client_gets_chunks = framing->type == kind::chunked && client_version_minor >= 1;
    if (framing->type == kind::until_close || (framing->type == kind::chunked && !client_gets_chunks)) {
        client_keep_alive = false;
    }
    auto headers = http::forwarded_response_headers(head, *framing, client_version_minor, client_keep_alive);
    response_started_ = true;
    std::string response_head = http::serialize_response_head(head.status, head.reason, headers);
    // Once the head is out, all that is left on a failure is to close.
    auto cut = [&] {
        client_keep_alive = false;
        upstream_reusable = false;
    };
    // Body bytes that came with the head go out in the same write: the whole body, for the usual small response.
    std::size_t with_head = framing->type == kind::content_length ? clamp_to(framing->length, in.size()) : 0;
    if (!co_await write_pieces(c_, c_.client, response_head, std::string_view(in).substr(0, with_head))) {
        cut();
        co_return std::nullopt;
    }
    in.erase(0, with_head);
    tcp::socket* client = plain_socket(c_.client);
    switch (framing->type) {
    case kind::none:
        co_return std::nullopt;
    case kind::content_length: {
        std::uint64_t remaining = framing->length - with_head;
        if (remaining > 0 && client != nullptr) {
            // The rest moves from socket to socket; the next response behind it stays unread.
            connection_observer observer(c_, c_.bytes_to_client, false);
            auto r = co_await splice_relay(c_, c_.upstream, *client, remaining, observer);
            if (r.end != relay_end::limit) {
                cut();
            }
            co_return std::nullopt;
        }
        while (remaining > 0) {
            if (!co_await c_.read_more(c_.upstream, in) || in.empty()) {
                cut();
                co_return std::nullopt;
            }
            std::size_t take = clamp_to(remaining, in.size());
            if (!co_await c_.write_all(c_.client, std::string_view(in).substr(0, take))) {
                cut();
                co_return std::nullopt;
            }
            in.erase(0, take);
            remaining -= take;
        }
        co_return std::nullopt;
    }
    case kind::chunked:
        if (co_await relay_chunked(c_.upstream, c_.client, in, client_gets_chunks, false) != chunked_end::done) {
            cut();
        }
        co_return std::nullopt;
    case kind::until_close:
        if (!in.empty()) {
            if (!co_await c_.write_all(c_.client, in)) {
                co_return std::nullopt;
            }
            in.clear();
        }
        if (client != nullptr) {
            connection_observer observer(c_, c_.bytes_to_client, false);
            co_await splice_relay(c_, c_.upstream, *client, no_limit, observer);
            co_return std::nullopt;
        }
        for (;;) {
            if (!co_await c_.read_more(c_.upstream, in) && in.empty()) {
                co_return std::nullopt;
            }
            if (!co_await c_.write_all(c_.client, in)) {
                co_return std::nullopt;
            }
            in.clear();
        }
    }
    co_return std::nullopt;
}

}  // namespace egressd::proxy
