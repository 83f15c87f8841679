#include "proxy/session.hpp"

#include "certs/tls.hpp"
#include "proxy/proxy_protocol/proxy_protocol.hpp"
#include "proxy/tls/client_hello.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <type_traits>
#include <cerrno>
#include <sys/socket.h>

namespace egressd::proxy {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

int status_for(failure f)
{
    switch (f) {
    case failure::bad_request:
        return 400;
    case failure::head_too_large:
        return 431;
    case failure::request_line_too_long:
        return 414;
    case failure::header_timeout:
        return 408;
    case failure::denied:
        return 403;
    case failure::dns_failed:
    case failure::connect_failed:
    case failure::bad_upstream_response:
        return 502;
    case failure::dns_timeout:
    case failure::connect_timeout:
    case failure::upstream_timeout:
        return 504;
    case failure::proxy_auth:
        return 407;
    }
    return 500;
}

std::string_view to_string(failure f)
{
    switch (f) {
    case failure::bad_request:
        return "bad_request";
    case failure::head_too_large:
        return "head_too_large";
    case failure::request_line_too_long:
        return "request_line_too_long";
    case failure::header_timeout:
        return "header_timeout";
    case failure::denied:
        return "denied";
    case failure::dns_failed:
        return "dns_failed";
    case failure::dns_timeout:
        return "dns_timeout";
    case failure::connect_failed:
        return "connect_failed";
    case failure::connect_timeout:
        return "connect_timeout";
    case failure::bad_upstream_response:
        return "bad_upstream_response";
    case failure::upstream_timeout:
        return "upstream_timeout";
    case failure::proxy_auth:
        return "proxy_auth";
    }
    return "internal";
}

namespace {

std::string_view reason_phrase(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 408:
        return "Request Timeout";
    case 407:
        return "Proxy Authentication Required";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 502:
        return "Bad Gateway";
    case 504:
        return "Gateway Timeout";
    default:
        return "Error";
    }
}

std::string_view event_name(policy::verdict v)
{
    switch (v) {
    case policy::verdict::allow:
        return "egress.allow";
    case policy::verdict::would_deny:
        return "egress.would_deny";
    case policy::verdict::deny:
        return "egress.deny";
    }
    return "egress.deny";
}

std::string address_text(const policy::address& a) { return a.to_string(); }

tcp::socket& socket_of(tcp::socket& s) { return s; }
tcp::socket& socket_of(client_stream& s) { return s.socket(); }
bool is_tls(tcp::socket&) { return false; }
bool is_tls(client_stream& s) { return s.tls() != nullptr; }

// Passes an end of stream on to the other side while it may still answer. TLS has no half-close that clients
// expect through a proxy: false, and the caller ends the whole tunnel.
bool half_close(tcp::socket& s)
{
    boost::system::error_code ignored;
    s.shutdown(tcp::socket::shutdown_send, ignored);
    return true;
}
bool half_close(client_stream& s) { return s.tls() == nullptr && half_close(s.socket()); }

tcp::endpoint endpoint_of(const policy::address& a, std::uint16_t port)
{
    if (a.is_v4()) {
        return {asio::ip::address_v4(a.v4_value()), port};
    }
    asio::ip::address_v6::bytes_type bytes;
    std::copy(a.bytes().begin(), a.bytes().end(), bytes.begin());
    return {asio::ip::address_v6(bytes), port};
}

void set_header(std::vector<http::header>& headers, std::string_view name, std::string value)
{
    std::erase_if(headers, [&](const http::header& h) { return http::iequals(h.name, name); });
    headers.push_back({std::string(name), std::move(value)});
}

void append_via(std::vector<http::header>& headers)
{
    for (auto& h : headers) {
        if (http::iequals(h.name, "via")) {
            h.value += ", 1.1 egressd";
            return;
        }
    }
    headers.push_back({"Via", "1.1 egressd"});
}

bool has_token(const std::vector<http::header>& headers, std::string_view name, std::string_view token)
{
    for (const auto& t : http::header_tokens(headers, name)) {
        if (t == token) {
            return true;
        }
    }
    return false;
}

std::optional<failure> parse_failure(http::parse_error e)
{
    switch (e) {
    case http::parse_error::none:
        return std::nullopt;
    case http::parse_error::head_too_large:
    case http::parse_error::too_many_headers:
        return failure::head_too_large;
    case http::parse_error::request_line_too_long:
        return failure::request_line_too_long;
    default:
        return failure::bad_request;
    }
}

}  // namespace

client_session::client_session(worker& owner, tcp::socket socket, policy::address source, std::string source_text,
                               connection_limiter::ticket ticket, const config::listener_config& listener,
                               std::shared_ptr<asio::ssl::context> tls_context)
    : worker_(owner),
      listener_(listener),
      client_(std::move(socket)),
      upstream_(owner.io()),
      tls_context_(std::move(tls_context)),
      source_(source),
      source_text_(std::move(source_text)),
      ticket_(std::move(ticket)),
      watchdog_(owner.io().get_executor()),
      started_(std::chrono::steady_clock::now())
{
    worker_.register_session(this);
}

client_session::~client_session() { worker_.unregister_session(this); }

void client_session::start()
{
    auto self = shared_from_this();
    asio::co_spawn(worker_.io(), watchdog_.run([this] { cancel_io(); }), [self](std::exception_ptr) {});
    asio::co_spawn(worker_.io(), run(), [self](std::exception_ptr) {
        // Errors are handled inside run(); an exception here is a bug, and still only this connection ends.
        self->watchdog_.stop();
    });
}

void client_session::cancel_io()
{
    boost::system::error_code ignored;
    client_.socket().cancel(ignored);
    upstream_.cancel(ignored);
}

void client_session::close(std::string_view cause)
{
    if (closing_) {
        return;
    }
    closing_ = true;
    close_cause_ = cause;
    cancel_io();
}

void client_session::finish_request(std::string_view cause)
{
    if (event_logged_) {
        return;
    }
    event_logged_ = true;
    close_event e;
    e.request_id = request_id_.empty() ? std::string_view("-") : std::string_view(request_id_);
    e.client = client_name_;
    e.source = source_text_;
    e.method = method_.empty() ? std::string_view("-") : std::string_view(method_);
    e.host = host_.empty() ? std::string_view("-") : std::string_view(host_);
    e.port = port_;
    e.address = address_text_;
    e.bytes_from_client = bytes_from_client_;
    e.bytes_to_client = bytes_to_client_;
    e.duration = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started_);
    e.cause = closing_ ? std::string_view(close_cause_) : cause;
    e.requests = requests_;
    worker_.events().close(e);
}

template <typename Stream>
asio::awaitable<bool> client_session::read_more(Stream& from, std::string& into)
{
    // A request head is usually a few hundred bytes: start small, so a thousand tunnels opening at once do
    // not each leave an 8 KiB block behind in the allocator; grow for bodies.
    std::size_t chunk = into.capacity() < 2048 ? 2048 : 8192;
    std::size_t old = into.size();
    into.resize(old + chunk);
    auto [ec, n] = co_await from.async_read_some(asio::buffer(into.data() + old, chunk), use_tuple);
    into.resize(old + n);
    if constexpr (std::is_same_v<Stream, client_stream>) {
        bytes_from_client_ += n;
    }
    co_return !ec;
}

template <typename Stream>
asio::awaitable<bool> client_session::write_all(Stream& to, std::string_view data)
{
    auto [ec, n] = co_await asio::async_write(to, asio::buffer(data), use_tuple);
    if constexpr (std::is_same_v<Stream, client_stream>) {
        bytes_to_client_ += n;
    }
    watchdog_.touch();
    co_return !ec;
}

asio::awaitable<bool> client_session::respond(failure f, std::string_view reason, bool keep_alive,
                                              std::string_view detail)
{
    int status = status_for(f);
    std::string body = "egressd: " + std::string(reason_phrase(status)) + " (" + std::string(reason) + ")";
    if (!detail.empty()) {
        body += ": " + std::string(detail);
    }
    body += "\r\nrequest id: " + (request_id_.empty() ? std::string("-") : request_id_) + "\r\n";
    std::vector<http::header> headers{
        {"Content-Type", "text/plain; charset=utf-8"},
        {"Content-Length", std::to_string(body.size())},
        {"X-Egressd-Request-Id", request_id_.empty() ? std::string("-") : request_id_},
        {"X-Egressd-Reason", std::string(reason)},
    };
    if (f == failure::proxy_auth) {
        if (const auto* auth = worker_.authenticator()) {
            headers.push_back({"Proxy-Authenticate", "Basic realm=\"" + auth->settings().realm + "\", charset=\"UTF-8\""});
        }
    }
    if (!keep_alive) {
        headers.push_back({"Connection", "close"});
    }
    std::string out = http::serialize_response_head(status, reason_phrase(status), headers) + body;
    watchdog_.expire_after(worker_.rt().config.timeouts.idle);
    co_return co_await write_all(client_, out);
}

asio::awaitable<std::optional<failure>> client_session::read_request_head(http::request_head& head)
{
    const auto& cfg = worker_.rt().config;
    http::limits lim{cfg.limits.max_head_bytes, cfg.limits.max_headers, cfg.limits.max_request_line};
    // Between requests the connection may sit idle; once a request starts it must arrive within the header
    // deadline, however slowly its bytes trickle in (slowloris).
    if (client_in_.empty() && requests_ > 0) {
        idle_ = true;
        watchdog_.expire_after(cfg.timeouts.idle);
        if (worker_.draining()) {
            co_return failure::header_timeout;
        }
        bool ok = co_await read_more(client_, client_in_);
        idle_ = false;
        if (!ok || client_in_.empty()) {
            co_return failure::header_timeout;
        }
    }
    watchdog_.expire_after(cfg.timeouts.header);
    for (;;) {
        http::parse_error err = http::parse_error::none;
        auto status = http::parse_request_head(client_in_, lim, head, err);
        if (status == http::parse_status::complete) {
            co_return std::nullopt;
        }
        if (status == http::parse_status::error) {
            co_return parse_failure(err);
        }
        if (!co_await read_more(client_, client_in_)) {
            co_return failure::header_timeout;
        }
    }
}

bool client_session::wants_keep_alive(const http::request_head& head) const
{
    if (worker_.draining()) {
        return false;
    }
    return head.version_minor >= 1 ? !has_token(head.headers, "connection", "close")
                                   : has_token(head.headers, "connection", "keep-alive");
}

// nullopt: refused, close the connection. false: refused with 407, the connection may carry the retry.
// true: go on (identity_ is set when credentials were verified).
asio::awaitable<std::optional<bool>> client_session::authenticate(const http::request_head& head)
{
    if (identity_source_ == "mtls") {
        // A verified client certificate names the client for the whole connection; a Proxy-Authorization
        // beside it is not asked for, and never forwarded.
        co_return true;
    }
    identity_.reset();
    auto* auth = worker_.authenticator();
    if (auth == nullptr) {
        co_return true;
    }
    // A source that keeps failing waits before its credentials are even checked.
    watchdog_.disarm();
    if (auto delay = auth->failures().penalty(source_); delay.count() > 0) {
        asio::steady_timer pause(worker_.io(), delay);
        co_await pause.async_wait(use_tuple);
    }
    auto checked = co_await auth->check(head.headers);
    if (checked.state == proxy_authenticator::outcome::verified) {
        identity_ = std::move(checked.user);
        identity_source_ = "proxy_auth";
        co_return true;
    }
    if (checked.state == proxy_authenticator::outcome::none && !auth->settings().required) {
        co_return true;
    }
    bool failed = checked.state == proxy_authenticator::outcome::failed;
    if (failed) {
        auth->failures().record(source_);
    }
    std::string_view reason = failed ? "proxy_auth_failed" : "proxy_auth_required";
    // The event names the destination as every decision event does, never the raw target (its path and
    // query may carry secrets).
    if (head.method == "CONNECT") {
        if (auto d = policy::parse_destination(head.target); d.value) {
            host_ = d.value->target.to_string();
            port_ = d.value->port;
        }
    } else {
        http::target_error terr = http::target_error::none;
        if (auto t = http::parse_absolute_target(head.target, terr)) {
            host_ = t->host;
            port_ = t->port;
        }
    }
    decision_event e;
    e.event = "egress.deny";
    e.request_id = request_id_;
    e.source = source_text_;
    e.method = head.method;
    e.host = host_.empty() ? std::string_view("-") : std::string_view(host_);
    e.port = port_;
    e.reason = reason;
    e.mode = "enforce";
    worker_.events().decision(e);
    http::parse_error err = http::parse_error::none;
    auto framing = http::request_framing(head, err);
    bool keep = framing && framing->type == http::body_framing::kind::none && wants_keep_alive(head);
    bool written = co_await respond(failure::proxy_auth, reason, keep);
    if (!keep || !written) {
        co_return std::nullopt;
    }
    co_return false;
}

// Reads the header and not one byte more (peek, then consume what belongs to it): on a TLS listener the bytes
// after it are the TLS handshake's.
asio::awaitable<std::optional<std::string_view>> client_session::read_proxy_header()
{
    policy::address peer = source_.unmapped();
    bool trusted = std::any_of(listener_.proxy_protocol_trusted.begin(), listener_.proxy_protocol_trusted.end(),
                               [&](const policy::cidr& c) { return c.contains(peer); });
    watchdog_.expire_after(worker_.rt().config.timeouts.header);
    auto& socket = client_.socket();
    std::string consumed;  // a prefix of the header (while the parser says incomplete, every byte is one)
    std::array<char, proxy_protocol::v2_fixed_size + proxy_protocol::max_v2_length> peeked{};
    for (;;) {
        auto [wait_ec] = co_await socket.async_wait(tcp::socket::wait_read, use_tuple);
        if (wait_ec) {
            co_return watchdog_.expired() ? "header_timeout" : "client_closed";
        }
        ssize_t n = ::recv(socket.native_handle(), peeked.data(), peeked.size() - consumed.size(), MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            continue;
        }
        if (n <= 0) {
            co_return "client_closed";
        }
        std::string data = consumed + std::string(peeked.data(), static_cast<std::size_t>(n));
        proxy_protocol::header header;
        auto status = proxy_protocol::parse(data, header);
        if (status == proxy_protocol::status::not_proxy) {
            // What was taken for a header's start is the request's: the HTTP reader gets it back. (On a TLS
            // listener it is lost, and the handshake fails: such bytes could not have started one anyway.)
            client_in_ = std::move(consumed);
            // A direct client on a PROXY listener is itself; a load balancer must say whom it speaks for.
            co_return trusted ? std::optional<std::string_view>("missing_proxy_header") : std::nullopt;
        }
        if (status == proxy_protocol::status::malformed) {
            co_return "bad_proxy_header";
        }
        if (status == proxy_protocol::status::complete && !trusted) {
            // Anyone can write a PROXY header; only the configured load balancers are believed.
            co_return "untrusted_proxy_header";
        }
        std::size_t take = status == proxy_protocol::status::complete ? header.size - consumed.size()
                                                                        : static_cast<std::size_t>(n);
        // The bytes were peeked, so they are there to be read now.
        ssize_t got = ::recv(socket.native_handle(), peeked.data(), take, MSG_DONTWAIT);
        if (got != static_cast<ssize_t>(take)) {
            co_return "client_closed";
        }
        consumed.append(peeked.data(), take);
        if (status == proxy_protocol::status::complete) {
            if (!header.local && header.source) {
                source_ = header.source->unmapped();
                source_text_ = source_.to_string(header.source_port);
            }
            co_return std::nullopt;
        }
    }
}

asio::awaitable<std::optional<std::string_view>> client_session::accept_tls(std::shared_ptr<asio::ssl::context> context)
{
    auto& tls = client_.start_tls(std::move(context));
    watchdog_.expire_after(worker_.rt().config.timeouts.header);
    auto [ec] = co_await tls.async_handshake(asio::ssl::stream_base::server, use_tuple);
    if (ec) {
        if (closing_) {
            co_return "shutdown";  // cut short by egressd itself: not the client's failure
        }
        if (watchdog_.expired()) {
            log_connection_refusal("tls_handshake_failed", "handshake timeout");
            co_return "header_timeout";
        }
        auto why = certs::why_handshake_failed(tls.native_handle(), static_cast<unsigned long>(ec.value()),
                                               ec.message());
        if (why.kind != certs::handshake_refusal::client_closed) {
            log_connection_refusal(certs::to_string(why.kind), why.detail);
        }
        co_return certs::to_string(why.kind);
    }
    auto id = certs::identity_of(tls.native_handle());
    if (!id.error.empty()) {
        log_connection_refusal("client_identity_invalid", id.error);
        co_return "client_identity_invalid";
    }
    if (id.value) {
        identity_ = std::move(id.value);
        identity_source_ = "mtls";
    }
    co_return std::nullopt;
}

// A connection refused before any request (its TLS handshake or client certificate) is a denial too.
void client_session::log_connection_refusal(std::string_view reason, std::string_view detail)
{
    request_id_ = worker_.next_request_id();
    decision_event e;
    e.event = "egress.deny";
    e.request_id = request_id_;
    e.source = source_text_;
    e.method = "-";
    e.host = "-";
    e.reason = reason;
    e.mode = "enforce";
    e.detail = detail;
    worker_.events().decision(e);
}

asio::awaitable<void> client_session::run()
{
    auto self = shared_from_this();
    std::string_view cause = "client_closed";
    bool refused = false;
    if (!listener_.proxy_protocol_trusted.empty()) {
        if (auto why = co_await read_proxy_header()) {
            cause = *why;
            refused = true;
            // A TLS client would read a plain-text answer as garbage: it only sees the connection close.
            if (*why != "client_closed" && *why != "header_timeout" && !tls_context_) {
                request_id_ = worker_.next_request_id();
                co_await respond(failure::bad_request, *why, false);
            }
        }
    }
    bool tls_established = false;
    if (!refused && tls_context_) {
        if (auto why = co_await accept_tls(std::move(tls_context_))) {
            cause = *why;
            refused = true;
        } else {
            tls_established = true;
        }
    }
    while (!closing_ && !refused) {
        http::request_head head;
        auto read_failure = co_await read_request_head(head);
        if (read_failure) {
            if (*read_failure == failure::header_timeout) {
                // A connection that ends between requests (or never starts one) just closes; one cut off
                // mid-head by the deadline is told so.
                bool mid_request = !client_in_.empty();
                cause = watchdog_.expired() ? (mid_request ? "header_timeout" : "idle_timeout") : "client_closed";
                if (mid_request && watchdog_.expired()) {
                    watchdog_.reset_expired();
                    co_await respond(failure::header_timeout, "header_timeout", false);
                }
            } else {
                request_id_ = worker_.next_request_id();
                co_await respond(*read_failure, to_string(*read_failure), false);
                cause = "bad_request";
            }
            break;
        }
        client_in_.erase(0, head.head_size);
        ++requests_;
        request_id_ = worker_.next_request_id();
        method_ = head.method;
        client_version_minor_ = head.version_minor;
        host_.clear();
        port_ = 0;
        address_text_.clear();
        if (auto go_on = co_await authenticate(head); !go_on || !*go_on) {
            if (!go_on) {
                cause = "proxy_auth";
                break;
            }
            continue;
        }
        if (head.method == "CONNECT") {
            co_await handle_connect(head);  // logs its own close event
            break;
        }
        http::target_error terr = http::target_error::none;
        auto target = http::parse_absolute_target(head.target, terr);
        if (!target) {
            std::string_view detail = terr == http::target_error::https_scheme
                                          ? "https:// must go through CONNECT: set HTTPS_PROXY, not an https:// URL"
                                      : terr == http::target_error::not_absolute
                                          ? "egressd is a forward proxy: send absolute-form requests (http://host/path)"
                                          : http::to_string(terr);
            co_await respond(failure::bad_request, "bad_request", false, detail);
            cause = "bad_request";
            break;
        }
        if (!co_await handle_forward(head, *target)) {
            cause = close_cause_.empty() ? std::string_view("closed") : std::string_view(close_cause_);
            break;
        }
    }
    finish_request(cause);
    boost::system::error_code ignored;
    upstream_.close(ignored);
    if (tls_established && !closing_) {
        // close_notify tells the client the end was meant, not a cut; a client may never answer it, so the
        // wait is short.
        watchdog_.expire_after(std::chrono::seconds(1));
        co_await client_.tls()->async_shutdown(use_tuple);
    }
    watchdog_.stop();
    client_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    client_.socket().close(ignored);
}

asio::awaitable<client_session::route> client_session::route_request(std::string_view method, const policy::host& host,
                                                                     std::uint16_t port)
{
    route r;
    watchdog_.disarm();  // DNS has its own timeout; the head's deadline is spent
    auto snapshot = worker_.policy_snapshot();  // one snapshot for the whole request
    auto client = snapshot->match_client(policy::client_facts{.source = source_, .identity = identity_});
    r.snapshot = snapshot;
    r.client = client;
    client_name_ = client ? std::string(snapshot->client_name(*client)) : std::string();
    host_ = host.to_string();
    port_ = port;
    auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());

    auto log_decision = [&](const policy::decision& d, std::string_view address, std::string_view detail,
                            std::string_view reason_override = {}) {
        log_policy_decision(*snapshot, d, {method, address, detail, reason_override, {}});
    };

    auto name_decision = snapshot->decide_name(client, host, port, now);
    r.tls = snapshot->tls_for(name_decision.rule);
    if (const auto* literal = host.literal()) {
        address_text_ = address_text(*literal);
        log_decision(name_decision, address_text_, {});
        if (!name_decision.allows_traffic()) {
            r.refused = failure::denied;
            r.reason = policy::to_string(name_decision.why);
            co_return r;
        }
        r.addresses.push_back(*literal);
        co_return r;
    }
    if (!name_decision.allows_traffic()) {
        log_decision(name_decision, {}, {});
        r.refused = failure::denied;
        r.reason = policy::to_string(name_decision.why);
        co_return r;
    }
    auto answer = co_await worker_.resolver().resolve(*host.name());
    if (answer.status != dns::dns_status::ok) {
        // Refused for want of an address: a denial with a DNS reason, never counted as allowed traffic.
        r.refused = answer.status == dns::dns_status::timeout ? failure::dns_timeout : failure::dns_failed;
        r.reason = "dns_" + std::string(dns::to_string(answer.status));
        policy::decision refused = name_decision;
        refused.outcome = policy::verdict::deny;
        log_decision(refused, {}, {}, r.reason);
        co_return r;
    }
    std::optional<policy::decision> first_allowed;
    std::optional<policy::decision> first_refused;
    std::string refused_address;
    for (const auto& addr : answer.addresses) {
        auto d = snapshot->decide_address(client, host, port, addr, now);
        if (d.allows_traffic()) {
            if (!first_allowed) {
                first_allowed = d;
            }
            r.addresses.push_back(addr);
        } else if (!first_refused) {
            first_refused = d;
            refused_address = address_text(addr);
        }
    }
    if (!first_allowed) {
        address_text_ = refused_address;
        log_decision(*first_refused, refused_address, {});
        r.refused = failure::denied;
        r.reason = policy::to_string(first_refused->why);
        co_return r;
    }
    address_text_ = address_text(r.addresses.front());
    std::string detail;
    if (first_refused) {
        detail = "refused " + std::to_string(answer.addresses.size() - r.addresses.size()) + " of " +
                 std::to_string(answer.addresses.size()) + " addresses (" +
                 std::string(policy::to_string(first_refused->why)) + ", " + refused_address + ")";
    }
    log_decision(*first_allowed, address_text_, detail);
    co_return r;
}

asio::awaitable<std::optional<failure>> client_session::connect_upstream(const std::vector<policy::address>& addresses,
                                                                         std::uint16_t port)
{
    watchdog_.expire_after(worker_.rt().config.timeouts.connect);
    for (const auto& addr : addresses) {
        boost::system::error_code ignored;
        upstream_.close(ignored);
        upstream_in_.clear();
        auto [ec] = co_await upstream_.async_connect(endpoint_of(addr, port), use_tuple);
        if (!ec) {
            upstream_.set_option(tcp::no_delay(true), ignored);
            address_text_ = address_text(addr);
            upstream_address_ = addr;
            co_return std::nullopt;
        }
        if (watchdog_.expired() || closing_) {
            co_return failure::connect_timeout;
        }
    }
    co_return failure::connect_failed;
}

template <typename From, typename To>
asio::awaitable<void> client_session::relay(From& from, To& to, std::uint64_t& counter, bool from_client,
                                           bool wait_first)
{
    boost::system::error_code ec;
    auto& from_socket = socket_of(from);
    // TLS may hold decrypted bytes that the socket no longer shows as readable, so a TLS side is read the
    // ordinary way, into a buffer it holds while it waits: its own, of one record's size (a TLS read returns at
    // most one record, 16 KiB), not a 64 KiB one from the pool.
    bool tls = is_tls(from);
    constexpr std::size_t tls_record_size = 16 * 1024;
    std::unique_ptr<char[]> tls_buffer;
    if (tls) {
        tls_buffer = std::make_unique<char[]>(tls_record_size);
    } else {
        from_socket.non_blocking(true, ec);
    }
    std::unique_ptr<char[]> pooled;
    auto give_back = [&] {
        if (pooled) {
            worker_.buffers().give(std::move(pooled));
        }
    };
    for (;;) {
        char* data = nullptr;
        std::size_t n = 0;
        if (tls) {
            data = tls_buffer.get();
            auto [read_ec, read] = co_await from.async_read_some(asio::buffer(data, tls_record_size), use_tuple);
            n = read;
            // A client that closes without close_notify has still ended its side.
            ec = read_ec == asio::ssl::error::stream_truncated ? asio::error::eof : read_ec;
        } else {
            // Wait for bytes before taking a buffer, so an idle tunnel holds none; while bytes keep coming,
            // read straight away and wait only when a read would block.
            if (wait_first) {
                auto [wait_ec] = co_await from_socket.async_wait(tcp::socket::wait_read, use_tuple);
                if (wait_ec) {
                    break;
                }
            }
            pooled = worker_.buffers().take();
            data = pooled.get();
            n = from_socket.read_some(asio::buffer(data, buffer_pool::buffer_size), ec);
            if (ec == asio::error::would_block) {
                give_back();
                wait_first = true;
                continue;
            }
            wait_first = n < buffer_pool::buffer_size;
        }
        if (ec == asio::error::eof) {
            give_back();
            if (!client_eof_first_ && !upstream_eof_first_) {
                (from_client ? client_eof_first_ : upstream_eof_first_) = true;
            }
            // Half-close: the other side learns this direction is done and may still answer.
            if (half_close(to)) {
                co_return;
            }
            break;
        }
        if (ec) {
            give_back();
            break;
        }
        watchdog_.touch();
        auto [write_ec, written] = co_await asio::async_write(to, asio::buffer(data, n), use_tuple);
        give_back();
        counter += written;
        if (write_ec) {
            break;
        }
        watchdog_.touch();
    }
    // An error or a deadline in one direction ends both.
    cancel_io();
}

asio::awaitable<void> client_session::handle_connect(const http::request_head& head)
{
    auto dest = policy::parse_destination(head.target);
    http::parse_error err = http::parse_error::none;
    auto framing = http::request_framing(head, err);
    if (!dest.value || !framing || framing->type != http::body_framing::kind::none) {
        host_ = head.target;
        co_await respond(failure::bad_request, "bad_request", false,
                         dest.value ? std::string_view("CONNECT carries no body") : std::string_view(dest.error));
        finish_request("bad_request");
        co_return;
    }
    auto r = co_await route_request("CONNECT", dest.value->target, dest.value->port);
    if (r.refused) {
        co_await respond(*r.refused, r.reason, false);
        finish_request(*r.refused == failure::denied ? "denied" : to_string(*r.refused));
        co_return;
    }
    if (auto f = co_await connect_upstream(r.addresses, dest.value->port)) {
        co_await respond(*f, to_string(*f), false);
        finish_request(to_string(*f));
        co_return;
    }
    // RFC 9110 9.3.6: a 2xx reply to CONNECT carries no Content-Length or Transfer-Encoding.
    static constexpr std::string_view established = "HTTP/1.1 200 Connection established\r\n\r\n";
    watchdog_.expire_after(worker_.rt().config.timeouts.idle);
    if (!co_await write_all(client_, established)) {
        finish_request("client_closed");
        co_return;
    }
    // A tunnel may idle for hours: it keeps no buffer of its own (relay borrows from the worker's pool).
    std::string().swap(upstream_in_);
    const auto& t = worker_.rt().config.timeouts;
    auto hard_limit = std::chrono::steady_clock::now() + t.tunnel_lifetime;
    watchdog_.idle(t.idle, hard_limit);
    std::uint64_t up = 0;
    std::uint64_t down = 0;
    bool denied = false;
    // Client to upstream: under a tls mode, not one byte goes up before the ClientHello was checked.
    // Upstream to client flows from the start, so server-speaks-first protocols work under tls: allow.
    auto client_to_upstream = [&]() -> asio::awaitable<void> {
        if (r.tls != policy::tls_mode::off) {
            bool malformed = false;
            std::optional<std::chrono::steady_clock::time_point> peek_deadline;
            if (r.tls == policy::tls_mode::require) {
                peek_deadline = std::chrono::steady_clock::now() + t.tls_peek;
            }
            auto start = co_await peek_tunnel_start(malformed, peek_deadline);
            auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
            auto d = r.snapshot->decide_tls(r.client, dest.value->target, dest.value->port, start, now);
            if (malformed && d.why == policy::reason::allowed) {
                // Bytes that start like TLS but do not parse are never waved through as "not TLS": a server
                // might read them as a ClientHello whose name was never checked.
                d.why = policy::reason::not_tls;
                d.outcome =
                    d.applied_mode == policy::mode::report ? policy::verdict::would_deny : policy::verdict::deny;
            }
            if (d.why != policy::reason::allowed) {
                log_policy_decision(*r.snapshot, d, {"CONNECT", address_text_, {}, {}, start.sni.value_or("")});
            }
            if (!d.allows_traffic()) {
                denied = true;
                cancel_io();
                co_return;
            }
        }
        if (!client_in_.empty()) {
            // Bytes that came with or after the CONNECT head (the ClientHello, usually) go first.
            // Already counted in bytes_from_client_ when they were read.
            auto [ec, n] = co_await asio::async_write(upstream_, asio::buffer(client_in_), use_tuple);
            if (ec) {
                cancel_io();
                co_return;
            }
        }
        // A peek has just drained the socket: wait before the first read.
        bool peeked = r.tls != policy::tls_mode::off;
        std::string().swap(client_in_);
        co_await relay(client_, upstream_, up, true, peeked);
    };
    co_await (client_to_upstream() && relay(upstream_, client_, down, false));
    bytes_from_client_ += up;
    bytes_to_client_ += down;
    if (denied) {
        finish_request("denied");
        co_return;
    }
    std::string_view cause = client_eof_first_     ? "client_closed"
                             : upstream_eof_first_ ? "upstream_closed"
                             : watchdog_.expired()
                                 ? (std::chrono::steady_clock::now() - started_ >= t.tunnel_lifetime ? "lifetime"
                                                                                                      : "idle_timeout")
                                 : "error";
    finish_request(cause);
}

// A ClientHello larger than this is refused: real ones are a few hundred bytes to a few KiB (post-quantum
// key shares included), and the peek buffer must stay bounded.
constexpr std::size_t max_client_hello = 16 * 1024;

asio::awaitable<policy::tunnel_start> client_session::peek_tunnel_start(
    bool& malformed, std::optional<std::chrono::steady_clock::time_point> deadline)
{
    policy::tunnel_start start;
    // The peek's own deadline cuts only the peek short (the watchdog would end the whole tunnel, which report
    // mode must keep).
    asio::steady_timer peek_timer(worker_.io());
    if (deadline) {
        peek_timer.expires_at(*deadline);
    }
    for (;;) {
        tls::client_hello hello;
        auto status = tls::parse_client_hello(client_in_, hello, max_client_hello);
        switch (status) {
        case tls::hello_status::complete:
            start.is_tls = true;
            start.sni = std::move(hello.sni);
            co_return start;
        case tls::hello_status::not_tls:
            co_return start;
        case tls::hello_status::malformed:
        case tls::hello_status::too_large:
            malformed = true;
            co_return start;
        case tls::hello_status::incomplete:
            break;
        }
        // The client stopped (or the tls_peek deadline cut it off): no bytes is "not TLS", and a partial
        // ClientHello is not one either.
        bool ok = false;
        if (deadline) {
            auto raced = co_await (read_more(client_, client_in_) || peek_timer.async_wait(use_tuple));
            ok = raced.index() == 0 && std::get<0>(raced);
        } else {
            ok = co_await read_more(client_, client_in_);
        }
        if (!ok) {
            malformed = !client_in_.empty();
            co_return start;
        }
    }
}

void client_session::log_policy_decision(const policy::policy& snapshot, const policy::decision& d,
                                         const decision_extras& extras)
{
    decision_event e;
    e.event = event_name(d.outcome);
    e.request_id = request_id_;
    e.client = client_name_;
    e.source = source_text_;
    e.method = extras.method;
    e.host = host_;
    e.port = port_;
    e.address = extras.address;
    e.reason = extras.reason_override.empty() ? policy::to_string(d.why) : extras.reason_override;
    e.mode = policy::to_string(d.applied_mode);
    if (d.rule) {
        auto view = snapshot.describe(*d.rule);
        e.rule_group = view.group;
        e.rule_index = view.index;
        e.rule_description = view.description;
    }
    if (d.guard) {
        e.guard = policy::to_string(d.guard->category);
    }
    e.sni = extras.sni;
    e.detail = extras.detail;
    if (identity_) {
        e.identity = *identity_;
        e.identity_source = identity_source_;
    }
    worker_.events().decision(e);
}

asio::awaitable<client_session::upload_result> client_session::upload_body(const http::body_framing& framing)
{
    using kind = http::body_framing::kind;
    if (framing.type == kind::none) {
        co_return upload_result::done;
    }
    if (framing.type == kind::content_length) {
        std::uint64_t remaining = framing.length;
        for (;;) {
            if (!client_in_.empty()) {
                std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, client_in_.size()));
                if (!co_await write_all(upstream_, std::string_view(client_in_).substr(0, take))) {
                    co_return upload_result::upstream_closed;
                }
                client_in_.erase(0, take);
                remaining -= take;
            }
            if (remaining == 0) {
                co_return upload_result::done;
            }
            if (!co_await read_more(client_, client_in_) || client_in_.empty()) {
                co_return upload_result::client_closed;
            }
        }
    }
    http::chunked_decoder decoder;
    std::string out;
    for (;;) {
        std::size_t consumed = 0;
        http::parse_error err = http::parse_error::none;
        out.clear();
        auto status = decoder.feed(client_in_, out, consumed, err);
        if (status == http::parse_status::error) {
            co_return upload_result::malformed;
        }
        if (!out.empty() && !co_await write_all(upstream_, out)) {
            co_return upload_result::upstream_closed;
        }
        client_in_.erase(0, consumed);
        if (status == http::parse_status::complete) {
            co_return upload_result::done;
        }
        if (!co_await read_more(client_, client_in_)) {
            co_return upload_result::client_closed;
        }
    }
}

asio::awaitable<std::optional<failure>> client_session::download_response(std::string_view method,
                                                                          bool& client_keep_alive,
                                                                          bool& upstream_reusable)
{
    using kind = http::body_framing::kind;
    const auto& cfg = worker_.rt().config;
    http::limits lim{cfg.limits.max_head_bytes, cfg.limits.max_headers, cfg.limits.max_request_line};
    http::response_head head;
    for (;;) {
        http::parse_error err = http::parse_error::none;
        auto status = http::parse_response_head(upstream_in_, lim, head, err);
        if (status == http::parse_status::error) {
            co_return failure::bad_upstream_response;
        }
        if (status == http::parse_status::incomplete) {
            if (!co_await read_more(upstream_, upstream_in_)) {
                co_return watchdog_.expired() ? failure::upstream_timeout : failure::bad_upstream_response;
            }
            watchdog_.touch();
            continue;
        }
        upstream_in_.erase(0, head.head_size);
        if (head.status == 101) {
            co_return failure::bad_upstream_response;  // egressd never forwards Upgrade, so never asked for this
        }
        if (head.status >= 100 && head.status < 200) {
            // Interim responses (100 Continue) go to HTTP/1.1 clients as they come.
            if (client_version_minor_ >= 1) {
                auto headers = head.headers;
                http::remove_hop_by_hop(headers);
                if (!co_await write_all(client_, http::serialize_response_head(head.status, head.reason, headers))) {
                    co_return std::nullopt;
                }
            }
            head = {};
            continue;
        }
        break;
    }
    http::parse_error err = http::parse_error::none;
    auto framing = http::response_framing(head, method, err);
    if (!framing) {
        co_return failure::bad_upstream_response;
    }
    upstream_reusable = framing->type != kind::until_close && !has_token(head.headers, "connection", "close") &&
                        head.version_minor >= 1;
    auto headers = head.headers;
    http::remove_hop_by_hop(headers);
    append_via(headers);
    bool client_gets_chunks = framing->type == kind::chunked && client_version_minor_ >= 1;
    if (framing->type == kind::until_close || (framing->type == kind::chunked && !client_gets_chunks)) {
        client_keep_alive = false;
    }
    if (framing->type == kind::content_length) {
        set_header(headers, "Content-Length", std::to_string(framing->length));
    } else if (framing->type != kind::none) {
        // Chunked or until-close: a Content-Length beside it would be a second, conflicting framing.
        // (none keeps it: a HEAD or 304 response's length describes the representation, not this body.)
        std::erase_if(headers, [](const http::header& h) { return http::iequals(h.name, "content-length"); });
    }
    if (client_gets_chunks) {
        headers.push_back({"Transfer-Encoding", "chunked"});
    }
    if (!client_keep_alive) {
        headers.push_back({"Connection", "close"});
    } else if (client_version_minor_ == 0) {
        headers.push_back({"Connection", "keep-alive"});
    }
    response_started_ = true;
    std::string response_head = http::serialize_response_head(head.status, head.reason, headers);
    if (framing->type == kind::content_length && framing->length <= upstream_in_.size()) {
        // The whole body is already here (the usual small response): head and body in one write.
        auto body_size = static_cast<std::size_t>(framing->length);
        std::array<asio::const_buffer, 2> pieces{asio::buffer(response_head), asio::buffer(upstream_in_.data(), body_size)};
        auto [ec, n] = co_await asio::async_write(client_, pieces, use_tuple);
        bytes_to_client_ += n;
        upstream_in_.erase(0, body_size);
        if (ec) {
            client_keep_alive = false;
            upstream_reusable = false;
        }
        co_return std::nullopt;
    }
    if (!co_await write_all(client_, response_head)) {
        co_return std::nullopt;
    }
    switch (framing->type) {
    case kind::none:
        co_return std::nullopt;
    case kind::content_length: {
        std::uint64_t remaining = framing->length;
        for (;;) {
            std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, upstream_in_.size()));
            if (take > 0) {
                if (!co_await write_all(client_, std::string_view(upstream_in_).substr(0, take))) {
                    client_keep_alive = false;
                    upstream_reusable = false;
                    co_return std::nullopt;
                }
                upstream_in_.erase(0, take);
                remaining -= take;
            }
            if (remaining == 0) {
                co_return std::nullopt;
            }
            if (!co_await read_more(upstream_, upstream_in_) || upstream_in_.empty()) {
                client_keep_alive = false;
                upstream_reusable = false;
                co_return std::nullopt;  // the head is out: all that is left is to close
            }
        }
    }
    case kind::chunked: {
        http::chunked_decoder decoder;
        std::string out;
        for (;;) {
            std::size_t consumed = 0;
            out.clear();
            auto status = client_gets_chunks ? decoder.feed(upstream_in_, out, consumed, err)
                                             : decoder.feed_data(upstream_in_, out, consumed, err);
            if (status == http::parse_status::error) {
                client_keep_alive = false;
                upstream_reusable = false;
                co_return std::nullopt;
            }
            if (!out.empty() && !co_await write_all(client_, out)) {
                client_keep_alive = false;
                upstream_reusable = false;
                co_return std::nullopt;
            }
            upstream_in_.erase(0, consumed);
            if (status == http::parse_status::complete) {
                co_return std::nullopt;
            }
            if (!co_await read_more(upstream_, upstream_in_)) {
                client_keep_alive = false;
                upstream_reusable = false;
                co_return std::nullopt;
            }
        }
    }
    case kind::until_close:
        for (;;) {
            if (!upstream_in_.empty()) {
                if (!co_await write_all(client_, upstream_in_)) {
                    co_return std::nullopt;
                }
                upstream_in_.clear();
            }
            if (!co_await read_more(upstream_, upstream_in_) && upstream_in_.empty()) {
                co_return std::nullopt;
            }
        }
    }
    co_return std::nullopt;
}

// A kept-alive upstream that closed (or, against the protocol, sent bytes) while idle cannot carry the next
// request; probing without blocking catches the usual case of a server's idle timeout before we write.
bool client_session::upstream_still_idle()
{
    char probe = 0;
    ssize_t n = ::recv(upstream_.native_handle(), &probe, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && upstream_in_.empty();
}

asio::awaitable<bool> client_session::handle_forward(const http::request_head& head,
                                                     const http::absolute_target& target)
{
    auto parsed_host = policy::host::parse(target.host);
    http::parse_error err = http::parse_error::none;
    auto framing = http::request_framing(head, err);
    if (!parsed_host.value || !framing) {
        host_ = target.host;
        co_await respond(failure::bad_request, "bad_request", false,
                         !parsed_host.value ? std::string_view(parsed_host.error) : http::to_string(err));
        close_cause_ = "bad_request";
        co_return false;
    }
    bool has_body = framing->type != http::body_framing::kind::none;
    bool client_keep_alive = wants_keep_alive(head);
    auto r = co_await route_request(head.method, *parsed_host.value, target.port);
    if (r.refused) {
        // Without a body to skip, the connection can carry on: the next request is decided on its own.
        bool keep = client_keep_alive && !has_body;
        co_await respond(*r.refused, r.reason, keep);
        if (!keep) {
            close_cause_ = *r.refused == failure::denied ? "denied" : std::string(to_string(*r.refused));
        }
        co_return keep;
    }
    std::string key = host_ + ":" + std::to_string(target.port);
    bool reuse = upstream_.is_open() && upstream_key_ == key && upstream_address_ &&
                 std::find(r.addresses.begin(), r.addresses.end(), *upstream_address_) != r.addresses.end() &&
                 upstream_still_idle();
    if (reuse) {
        address_text_ = address_text(*upstream_address_);
    } else {
        upstream_key_.clear();
        if (auto f = co_await connect_upstream(r.addresses, target.port)) {
            co_await respond(*f, to_string(*f), false);
            close_cause_ = to_string(*f);
            co_return false;
        }
        upstream_key_ = key;
    }

    auto headers = head.headers;
    http::remove_hop_by_hop(headers);
    // The destination is the URI's authority, never the Host header: a Host that disagrees is replaced.
    set_header(headers, "Host", target.port == 80 ? host_ : host_ + ":" + std::to_string(target.port));
    append_via(headers);
    if (framing->type == http::body_framing::kind::content_length) {
        set_header(headers, "Content-Length", std::to_string(framing->length));
    } else if (framing->type == http::body_framing::kind::chunked) {
        headers.push_back({"Transfer-Encoding", "chunked"});
    }
    const auto& t = worker_.rt().config.timeouts;
    watchdog_.idle(t.upstream_response, std::chrono::steady_clock::time_point::max());
    if (!co_await write_all(upstream_, http::serialize_request_head(head.method, target.origin_form, headers))) {
        boost::system::error_code ignored;
        upstream_.close(ignored);
        co_await respond(failure::bad_upstream_response, "upstream_closed", false);
        close_cause_ = "upstream_closed";
        co_return false;
    }
    bool upstream_reusable = false;
    auto uploaded = upload_result::done;
    std::optional<failure> response_failure;
    response_started_ = false;
    auto upload = [&]() -> asio::awaitable<void> {
        uploaded = co_await upload_body(*framing);
        if (uploaded == upload_result::malformed || uploaded == upload_result::client_closed) {
            // The upstream would wait for the rest of a body that will never come: end the exchange now.
            boost::system::error_code ignored;
            upstream_.shutdown(tcp::socket::shutdown_both, ignored);
            upstream_.cancel(ignored);
        }
    };
    auto download = [&]() -> asio::awaitable<void> {
        response_failure = co_await download_response(head.method, client_keep_alive, upstream_reusable);
    };
    co_await (upload() && download());
    if (uploaded == upload_result::malformed) {
        if (!response_started_) {
            co_await respond(failure::bad_request, "bad_request", false, "malformed chunked body");
        }
        close_cause_ = "bad_request";
        co_return false;
    }
    if (response_failure) {
        if (uploaded == upload_result::client_closed) {
            close_cause_ = "client_closed";
            co_return false;
        }
        // download_response fails only before the final response head went out, so the client can be told.
        co_await respond(*response_failure, to_string(*response_failure), false);
        close_cause_ = to_string(*response_failure);
        co_return false;
    }
    if (uploaded != upload_result::done || !upstream_reusable) {
        boost::system::error_code ignored;
        upstream_.close(ignored);
        upstream_key_.clear();
    }
    if (uploaded != upload_result::done) {
        close_cause_ = "client_closed";
        co_return false;
    }
    if (!client_keep_alive) {
        close_cause_ = "done";
    }
    co_return client_keep_alive && !closing_;
}

}  // namespace egressd::proxy
