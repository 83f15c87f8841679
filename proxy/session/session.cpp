#include "proxy/session/session.hpp"

#include "protocol/http/path.hpp"
#include "proxy/event_log.hpp"
#include "proxy/session/authorizer.hpp"
#include "proxy/session/connector.hpp"
#include "proxy/session/forwarder.hpp"
#include "proxy/session/intake.hpp"
#include "proxy/session/responses.hpp"
#include "proxy/session/tunnel.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <memory>
#include <variant>

namespace egressd::proxy {

namespace asio = boost::asio;
using asio::ip::tcp;
using observe::close_cause;

namespace {

// The address events name for an authorized request before it connects: the first vetted; through a parent
// proxy the destination's own (an IP literal) or none, since the parent resolves names.
std::string address_of(const authorization& a)
{
    if (!a.parent) {
        return a.vetted.front().to_string();
    }
    const auto* literal = a.target.literal();
    return literal != nullptr ? literal->to_string() : std::string();
}

}  // namespace

client_session::client_session(worker& owner, tcp::socket socket, policy::address source, std::string source_text,
                               connection_limiter::ticket ticket, const config::listener_config& listener,
                               std::size_t listener_index, std::shared_ptr<asio::ssl::context> tls_context)
    : worker_(owner),
      c_(owner, *this, std::move(socket), source, std::move(source_text), listener),
      ticket_(std::move(ticket)),
      listener_index_(listener_index),
      tls_context_(std::move(tls_context))
{
    worker_.register_session(this);
    worker_.metrics().connection_opened(listener_index_);
}

client_session::~client_session() { worker_.unregister_session(this); }

void client_session::start()
{
    auto self = shared_from_this();
    // Errors are handled inside the coroutines; an exception that escapes one is a bug, and still only this
    // connection ends.
    auto on_exit = [self](std::exception_ptr e) {
        if (e) {
            self->fail(e);
        }
    };
    c_.watch.start(self, [this] { c_.cancel_io(); });
    asio::co_spawn(worker_.io(), run(), on_exit);
}

void client_session::close(close_cause cause)
{
    if (c_.closed_by) {
        return;
    }
    c_.closed_by = cause;
    c_.cancel_io();
}

void client_session::drop_pooled_upstream()
{
    if (c_.idle) {
        c_.close_upstream();  // nothing uses it while the connection waits for its next request
        return;
    }
    c_.upstream_auth.forbid_reuse();
}

ssl_st* client_session::tls_handle()
{
    auto* tls = c_.client.tls();
    return tls != nullptr ? tls->native_handle() : nullptr;
}

asio::awaitable<void> client_session::run()
{
    intake in(c_);
    std::optional<close_cause> ended;  // why the connection ends, once a phase knows
    if (!c_.listener.proxy_protocol_trusted.empty()) {
        ended = co_await in.read_proxy_header(tls_context_ != nullptr);
    }
    bool tls_established = false;
    if (!ended && tls_context_) {
        ended = co_await in.accept_tls(std::move(tls_context_));
        tls_established = !ended;
    }
    if (!ended) {
        auto outcome = co_await serve_requests(in);
        if (auto* t = std::get_if<std::unique_ptr<tunnel>>(&outcome)) {
            ended = co_await (*t)->run();
            t->reset();
        } else {
            ended = std::get<close_cause>(outcome);
        }
    }
    finish(c_.closed_by.value_or(*ended));
    if (tls_established && !c_.closed_by) {
        // close_notify tells the client the end was meant, not a cut; a client may never answer it, so the
        // wait is short.
        c_.watch.expire_after(std::chrono::seconds(1));
        co_await c_.client.tls()->async_shutdown(asio::as_tuple(asio::use_awaitable));
    }
    close_client();
}

asio::awaitable<client_session::served> client_session::serve_requests(intake& in)
{
    while (!c_.closed_by) {
        auto next = co_await in.read_request();
        if (const auto* end = std::get_if<close_cause>(&next)) {
            co_return *end;
        }
        const auto& head = std::get<http::request_head>(next);
        ++c_.requests;
        c_.settle_decision(0);
        c_.request.begin(worker_.next_request_id(), head.method);
        worker_.metrics().request(listener_index_);
        auto target = parse_target(head);
        auto auth = co_await in.authenticate(head, target);
        if (auth == intake::auth_outcome::refused) {
            co_return close_cause::proxy_auth;
        }
        if (auth == intake::auth_outcome::retry) {
            continue;
        }
        if (target.connect) {
            co_return co_await serve_connect(head, target);
        }
        if (auto end = co_await serve_forward(head, target)) {
            co_return *end;
        }
    }
    co_return close_cause::client_closed;
}

asio::awaitable<client_session::served> client_session::serve_connect(const http::request_head& head,
                                                                      const request_target& target)
{
    http::parse_error err = http::parse_error::none;
    auto framing = http::request_framing(head, err);
    if (!target.destination || !framing || framing->type != http::body_framing::kind::none) {
        c_.request.host = head.target;
        co_await respond(c_,
                         {failure_kind::bad_request, observe::reason::bad_request,
                          target.destination ? std::string_view("CONNECT carries no body") : target.error},
                         false);
        co_return close_cause::bad_request;
    }
    const auto& dest = *target.destination;
    c_.request.host = dest.target.to_string();
    c_.request.port = dest.port;
    auto decided = co_await authorizer(c_).authorize(dest, nullptr);
    if (const auto* no = std::get_if<refusal>(&decided)) {
        c_.request.client = no->client;
        c_.request.address = no->address;
        co_await respond(c_, no->why, false);
        co_return traits_of(no->why.kind).cause;
    }
    auto& auth = std::get<authorization>(decided);
    c_.request.client = auth.client_name;
    c_.request.address = address_of(auth);
    c_.close_upstream();  // a pooled upstream of an earlier plain-HTTP request on this connection
    if (auto end = co_await connect_upstream(auth)) {
        co_return *end;
    }
    if (auth.parent) {
        std::string detail;
        auto refused = co_await connector(c_).open_parent_tunnel(auth, detail);
        if (refused) {
            failure f = *refused;
            f.detail = detail;
            log_parent_error(c_, auth, f, detail);
            co_await respond(c_, f, false);
            co_return traits_of(f.kind).cause;
        }
    }
    auto opened = std::make_unique<tunnel>(c_, std::move(auth));
    co_return std::move(opened);
}

asio::awaitable<std::optional<close_cause>> client_session::serve_forward(const http::request_head& head,
                                                                          const request_target& target)
{
    if (!target.uri) {
        co_await respond(c_, {failure_kind::bad_request, observe::reason::bad_request, target.error}, false);
        co_return close_cause::bad_request;
    }
    http::parse_error err = http::parse_error::none;
    auto framing = http::request_framing(head, err);
    if (!target.destination || !framing) {
        c_.request.host = target.uri->host;
        co_await respond(c_,
                         {failure_kind::bad_request, observe::reason::bad_request,
                          !target.destination ? std::string_view(target.error) : http::to_string(err)},
                         false);
        co_return close_cause::bad_request;
    }
    const auto& dest = *target.destination;
    bool has_body = framing->type != http::body_framing::kind::none;
    bool client_keep_alive = wants_keep_alive(head, worker_.draining());
    c_.request.host = dest.target.to_string();
    c_.request.port = dest.port;
    std::string_view written = target.uri->origin_form;
    auto question = written.find('?');
    // Decided and forwarded in normal form: the upstream gets exactly the path the rules saw.
    policy::http_request_facts request{std::string(head.method), http::normalise_path(written.substr(0, question)), {}};
    request.loose_path = http::loose_path(request.path);
    std::string origin_form = request.path;
    if (question != std::string_view::npos) {
        origin_form += written.substr(question);
    }
    c_.request.path = request.path;
    c_.request.query = question == std::string_view::npos ? std::string_view() : written.substr(question + 1);
    auto decided = co_await authorizer(c_).authorize(dest, &request);
    if (const auto* no = std::get_if<refusal>(&decided)) {
        c_.request.client = no->client;
        c_.request.address = no->address;
        // Without a body to skip, the connection can carry on: the next request is decided on its own.
        bool keep = client_keep_alive && !has_body;
        co_await respond(c_, no->why, keep);
        if (!keep) {
            co_return traits_of(no->why.kind).cause;
        }
        co_return std::nullopt;
    }
    auto& auth = std::get<authorization>(decided);
    c_.request.client = auth.client_name;
    c_.request.address = address_of(auth);
    if (pooled_upstream_fits(c_, auth)) {
        auth.connected = c_.upstream_auth.get()->connected;
        if (!auth.parent) {
            c_.request.address = auth.connected->to_string();
        }
    } else {
        c_.close_upstream();
        if (auto end = co_await connect_upstream(auth)) {
            co_return *end;
        }
    }
    std::string host = dest.port == 80 ? c_.request.host : c_.request.host + ":" + std::to_string(dest.port);
    // A parent proxy is asked in absolute form, like any proxy; a server in origin form.
    std::string absolute = auth.parent ? "http://" + host + std::string(origin_form) : std::string();
    std::string_view request_target = auth.parent ? std::string_view(absolute) : origin_form;
    c_.upstream_auth.hold(std::move(auth));
    forwarder forward(c_);
    co_return co_await forward.exchange(head, *framing, request_target, host, client_keep_alive);
}

asio::awaitable<std::optional<close_cause>> client_session::connect_upstream(authorization& auth)
{
    auto connected = co_await connector(c_).connect(auth.vetted, auth.connect_port());
    if (const auto* f = std::get_if<failure>(&connected)) {
        if (auth.parent) {
            std::string detail = "parent proxy " + auth.parent->to_string() + " is unreachable (" +
                                 std::string(observe::to_string(f->why)) + ")";
            log_parent_error(c_, auth, *f, detail);
        }
        co_await respond(c_, *f, false);
        co_return traits_of(f->kind).cause;
    }
    auth.connected = std::get<policy::address>(connected);
    if (!auth.parent) {
        c_.request.address = auth.connected->to_string();
    }
    co_return std::nullopt;
}

void client_session::finish(close_cause cause)
{
    if (finished_) {
        return;
    }
    finished_ = true;
    c_.settle_decision(0);
    const auto& r = c_.request;
    close_event e;
    e.request_id = r.id.empty() ? std::string_view("-") : std::string_view(r.id);
    e.client = r.client;
    e.source = c_.source_text;
    e.method = r.method.empty() ? std::string_view("-") : std::string_view(r.method);
    e.host = r.host.empty() ? std::string_view("-") : std::string_view(r.host);
    e.port = r.port;
    e.address = r.address;
    e.bytes_from_client = c_.bytes_from_client;
    e.bytes_to_client = c_.bytes_to_client;
    e.duration = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - c_.started);
    e.cause = cause;
    e.requests = c_.requests;
    worker_.events().close(e);
    worker_.metrics().connection_closed(listener_index_, cause);
    c_.close_upstream();
}

void client_session::close_client()
{
    c_.watch.stop();
    boost::system::error_code ignored;
    c_.client.socket().shutdown(tcp::socket::shutdown_both, ignored);
    c_.client.socket().close(ignored);
}

void client_session::fail(std::exception_ptr e)
{
    std::string what = "not a std::exception";
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        what = x.what();
    } catch (...) {
        // Whatever it was, what says so; it is logged and counted below all the same.
    }
    worker_.rt().log.notice("egressd.session_error",
                            {{"request_id", c_.request.id.empty() ? std::string("-") : c_.request.id},
                             {"source", c_.source_text},
                             {"what", what}},
                            true);
    worker_.session_exception();
    finish(close_cause::internal_error);
    close_client();
}

}  // namespace egressd::proxy
