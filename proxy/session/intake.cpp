#include "proxy/session/intake.hpp"

#include "certs/tls.hpp"
#include "protocol/host_port.hpp"
#include "protocol/proxy_protocol/proxy_protocol.hpp"
#include "proxy/event_log.hpp"
#include "proxy/session/responses.hpp"
#include "proxy/worker.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <sys/socket.h>

namespace egressd::proxy {

namespace asio = boost::asio;
using asio::ip::tcp;
using observe::close_cause;
using observe::reason;
namespace proxy_protocol = protocol::proxy_protocol;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

bool has_token(const std::vector<http::header>& headers, std::string_view name, std::string_view token)
{
    for (const auto& t : http::header_tokens(headers, name)) {
        if (t == token) {
            return true;
        }
    }
    return false;
}

failure head_failure(http::parse_error e)
{
    switch (e) {
    case http::parse_error::head_too_large:
    case http::parse_error::too_many_headers:
        return {failure_kind::head_too_large, reason::head_too_large};
    case http::parse_error::request_line_too_long:
        return {failure_kind::request_line_too_long, reason::request_line_too_long};
    default:
        return {failure_kind::bad_request, reason::bad_request};
    }
}

// The reason egressd's answer gives for a refused PROXY header; nothing when there is no one to answer.
std::optional<reason> proxy_header_answer(close_cause c)
{
    switch (c) {
    case close_cause::missing_proxy_header:
        return reason::missing_proxy_header;
    case close_cause::untrusted_proxy_header:
        return reason::untrusted_proxy_header;
    case close_cause::bad_proxy_header:
        return reason::bad_proxy_header;
    default:
        return std::nullopt;
    }
}

}  // namespace

request_target parse_target(const http::request_head& head)
{
    request_target t;
    t.connect = head.method == "CONNECT";
    if (t.connect) {
        auto d = protocol::parse_destination(head.target);
        t.destination = std::move(d.value);
        t.error = std::move(d.error);
        return t;
    }
    http::target_error err = http::target_error::none;
    t.uri = http::parse_absolute_target(head.target, err);
    if (!t.uri) {
        t.error = err == http::target_error::https_scheme
                      ? "https:// must go through CONNECT: set HTTPS_PROXY, not an https:// URL"
                  : err == http::target_error::not_absolute
                      ? "egressd is a forward proxy: send absolute-form requests (http://host/path)"
                      : std::string(http::to_string(err));
        return t;
    }
    auto host = policy::host::parse(t.uri->host);
    if (host.value) {
        t.destination = policy::destination{std::move(*host.value), t.uri->port};
    } else {
        t.error = std::move(host.error);
    }
    return t;
}

bool wants_keep_alive(const http::request_head& head, bool draining)
{
    if (draining) {
        return false;
    }
    return head.version_minor >= 1 ? !has_token(head.headers, "connection", "close")
                                   : has_token(head.headers, "connection", "keep-alive");
}

asio::awaitable<std::optional<close_cause>> intake::read_proxy_header(bool tls_listener)
{
    auto refused = co_await take_proxy_header();
    if (refused && !tls_listener) {
        if (auto why = proxy_header_answer(*refused)) {
            c_.request.id = c_.owner.next_request_id();
            co_await respond(c_, {failure_kind::bad_request, *why}, false);
        }
    }
    co_return refused;
}

// Reads the header and not one byte more (peek, then consume what belongs to it): on a TLS listener the bytes
// after it are the TLS handshake's.
asio::awaitable<std::optional<close_cause>> intake::take_proxy_header()
{
    policy::address peer = c_.source.unmapped();
    bool trusted = std::any_of(c_.listener.proxy_protocol_trusted.begin(), c_.listener.proxy_protocol_trusted.end(),
                               [&](const policy::cidr& range) { return range.contains(peer); });
    c_.watch.expire_after(c_.owner.config().timeouts.header);
    auto& socket = c_.client.socket();
    std::string consumed;  // a prefix of the header (while the parser says incomplete, every byte is one)
    std::array<char, proxy_protocol::v2_fixed_size + proxy_protocol::max_v2_length> peeked{};
    for (;;) {
        auto [wait_ec] = co_await socket.async_wait(tcp::socket::wait_read, use_tuple);
        if (wait_ec) {
            co_return c_.watch.expired() ? close_cause::header_timeout : close_cause::client_closed;
        }
        ssize_t n = ::recv(socket.native_handle(), peeked.data(), peeked.size() - consumed.size(), MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            continue;
        }
        if (n <= 0) {
            co_return close_cause::client_closed;
        }
        std::string data = consumed + std::string(peeked.data(), static_cast<std::size_t>(n));
        proxy_protocol::header header;
        auto status = proxy_protocol::parse(data, header);
        if (status == proxy_protocol::status::not_proxy) {
            // What was taken for a header's start is the request's: the HTTP reader gets it back. (On a TLS
            // listener it is lost, and the handshake fails: such bytes could not have started one anyway.)
            c_.client_in = std::move(consumed);
            // A direct client on a PROXY listener is itself; a load balancer must say whom it speaks for.
            co_return trusted ? std::optional(close_cause::missing_proxy_header) : std::nullopt;
        }
        if (status == proxy_protocol::status::malformed) {
            co_return close_cause::bad_proxy_header;
        }
        if (status == proxy_protocol::status::complete && !trusted) {
            // Anyone can write a PROXY header; only the configured load balancers are believed.
            co_return close_cause::untrusted_proxy_header;
        }
        std::size_t take = status == proxy_protocol::status::complete ? header.size - consumed.size()
                                                                        : static_cast<std::size_t>(n);
        // The bytes were peeked, so they are there to be read now.
        ssize_t got = ::recv(socket.native_handle(), peeked.data(), take, MSG_DONTWAIT);
        if (got != static_cast<ssize_t>(take)) {
            co_return close_cause::client_closed;
        }
        consumed.append(peeked.data(), take);
        if (status == proxy_protocol::status::complete) {
            if (!header.local && header.source) {
                c_.source = header.source->unmapped();
                c_.source_text = c_.source.to_string(header.source_port);
            }
            co_return std::nullopt;
        }
    }
}

asio::awaitable<std::optional<close_cause>> intake::accept_tls(std::shared_ptr<asio::ssl::context> context)
{
    auto& tls = c_.client.start_tls(std::move(context));
    c_.watch.expire_after(c_.owner.config().timeouts.header);
    auto [ec] = co_await tls.async_handshake(asio::ssl::stream_base::server, use_tuple);
    if (ec) {
        if (c_.closed_by) {
            co_return *c_.closed_by;  // cut short by egressd itself: not the client's failure
        }
        if (c_.watch.expired()) {
            log_refusal(reason::tls_handshake_failed, "handshake timeout");
            co_return close_cause::header_timeout;
        }
        auto why = certs::why_handshake_failed(tls.native_handle(), static_cast<unsigned long>(ec.value()),
                                               ec.message());
        switch (why.kind) {
        case certs::handshake_refusal::client_closed:
            co_return close_cause::client_closed;
        case certs::handshake_refusal::client_cert_missing:
            log_refusal(reason::client_cert_missing, why.detail);
            co_return close_cause::client_cert_missing;
        case certs::handshake_refusal::client_cert_rejected:
            log_refusal(reason::client_cert_rejected, why.detail, why.subject, why.serial);
            co_return close_cause::client_cert_rejected;
        case certs::handshake_refusal::tls_handshake_failed:
            break;
        }
        log_refusal(reason::tls_handshake_failed, why.detail);
        co_return close_cause::tls_handshake_failed;
    }
    auto id = certs::identity_of(tls.native_handle());
    if (!id.error.empty()) {
        log_refusal(reason::client_identity_invalid, id.error);
        co_return close_cause::client_identity_invalid;
    }
    if (id.value) {
        c_.identity = std::move(id.value);
        c_.identity_from = observe::identity_source::mtls;
    }
    co_return std::nullopt;
}

void intake::log_refusal(reason why, std::string_view detail, std::string_view cert_subject,
                         std::string_view cert_serial)
{
    c_.request.id = c_.owner.next_request_id();
    decision_event e;
    e.event = observe::event_kind::deny;
    e.request_id = c_.request.id;
    e.source = c_.source_text;
    e.method = "-";
    e.host = "-";
    e.reason = why;
    e.mode = policy::to_string(policy::mode::enforce);
    e.detail = detail;
    e.cert_subject = cert_subject;
    e.cert_serial = cert_serial;
    c_.owner.events().decision(e);
    c_.owner.metrics().decision(*c_.owner.policy_snapshot(), policy::verdict::deny, why, std::nullopt);
    c_.owner.metrics().handshake_refused(why);
}

asio::awaitable<std::variant<http::request_head, close_cause>> intake::read_request()
{
    const auto& cfg = c_.owner.config();
    http::limits lim{cfg.limits.max_head_bytes, cfg.limits.max_headers, cfg.limits.max_request_line};
    // Between requests the connection may sit idle; once a request starts it must arrive within the header
    // deadline, however slowly its bytes trickle in (slowloris).
    if (c_.client_in.empty() && c_.requests > 0) {
        c_.idle = true;
        c_.watch.expire_after(cfg.timeouts.idle);
        if (c_.owner.draining()) {
            c_.idle = false;
            co_return co_await head_cut_short();
        }
        bool ok = co_await c_.read_more(c_.client, c_.client_in);
        c_.idle = false;
        if (!ok || c_.client_in.empty()) {
            co_return co_await head_cut_short();
        }
    }
    c_.watch.expire_after(cfg.timeouts.header);
    for (;;) {
        http::request_head head;
        http::parse_error err = http::parse_error::none;
        auto status = http::parse_request_head(c_.client_in, lim, head, err);
        if (status == http::parse_status::complete) {
            c_.client_in.erase(0, head.head_size);
            co_return head;
        }
        if (status == http::parse_status::error) {
            c_.request.id = c_.owner.next_request_id();
            co_await respond(c_, head_failure(err), false);
            co_return close_cause::bad_request;
        }
        if (!co_await c_.read_more(c_.client, c_.client_in)) {
            co_return co_await head_cut_short();
        }
    }
}

// A connection that ends between requests (or never starts one) just closes; one cut off mid-head by the
// deadline is told so.
asio::awaitable<close_cause> intake::head_cut_short()
{
    if (!c_.watch.expired()) {
        co_return close_cause::client_closed;
    }
    if (c_.client_in.empty()) {
        co_return close_cause::idle_timeout;
    }
    c_.watch.reset_expired();
    co_await respond(c_, {failure_kind::header_timeout, reason::header_timeout}, false);
    co_return close_cause::header_timeout;
}

asio::awaitable<intake::auth_outcome> intake::authenticate(const http::request_head& head, const request_target& target)
{
    if (c_.identity_from == observe::identity_source::mtls) {
        // A verified client certificate names the client for the whole connection; a Proxy-Authorization
        // beside it is not asked for, and never forwarded.
        co_return auth_outcome::go_on;
    }
    c_.identity.reset();
    c_.identity_from = observe::identity_source::none;
    // Held across the check: a reload may replace the worker's authenticator meanwhile.
    auto auth = c_.owner.authenticator();
    if (!auth) {
        co_return auth_outcome::go_on;
    }
    // A source that keeps failing waits before its credentials are even checked.
    c_.watch.disarm();
    if (auto delay = auth->failures().penalty(c_.source); delay.count() > 0) {
        asio::steady_timer pause(c_.owner.io(), delay);
        co_await pause.async_wait(use_tuple);
    }
    auto checked = co_await auth->check(head.headers);
    if (checked.state == proxy_authenticator::outcome::verified) {
        c_.identity = std::move(checked.user);
        c_.identity_from = observe::identity_source::proxy_auth;
        co_return auth_outcome::go_on;
    }
    if (checked.state == proxy_authenticator::outcome::none && !auth->settings().required) {
        co_return auth_outcome::go_on;
    }
    bool failed = checked.state == proxy_authenticator::outcome::failed;
    if (failed) {
        auth->failures().record(c_.source);
    }
    reason why = failed ? reason::proxy_auth_failed : reason::proxy_auth_required;
    // The event names the destination as every decision event does, never the raw target (its path and
    // query may carry secrets).
    if (target.connect && target.destination) {
        c_.request.host = target.destination->target.to_string();
        c_.request.port = target.destination->port;
    } else if (target.uri) {
        c_.request.host = target.uri->host;
        c_.request.port = target.uri->port;
    }
    decision_event e;
    e.event = observe::event_kind::deny;
    e.request_id = c_.request.id;
    e.source = c_.source_text;
    e.method = head.method;
    e.host = c_.request.host.empty() ? std::string_view("-") : std::string_view(c_.request.host);
    e.port = c_.request.port;
    e.reason = why;
    e.mode = policy::to_string(policy::mode::enforce);
    e.user = checked.user;  // the name tried; the event log caps its length
    c_.owner.events().decision(e);
    c_.owner.metrics().decision(*c_.owner.policy_snapshot(), policy::verdict::deny, why, std::nullopt);
    c_.owner.metrics().proxy_auth_refused(why);
    http::parse_error err = http::parse_error::none;
    auto framing = http::request_framing(head, err);
    bool keep = framing && framing->type == http::body_framing::kind::none &&
                wants_keep_alive(head, c_.owner.draining());
    bool written = co_await respond(c_, {failure_kind::proxy_auth, why}, keep);
    co_return keep && written ? auth_outcome::retry : auth_outcome::refused;
}

}  // namespace egressd::proxy
