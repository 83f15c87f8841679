#include "proxy/admin/admin_server.hpp"

#include "certs/digest.hpp"
#include "proxy/admin/request_rules.hpp"
#include "proxy/observe/exhaustion.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>


#include <algorithm>
#include <array>
#include <atomic>
#include <exception>
#include <functional>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

namespace egressd::proxy::admin {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t head_limit = max_head_bytes;
constexpr std::size_t body_limit = max_body_bytes;
// After an error answer the connection closes; what the client is still sending is read and thrown away first
// (see linger), up to this much and for at most linger_time.
constexpr std::size_t linger_limit = 256 * 1024;
constexpr std::chrono::milliseconds linger_time = 2s;

constexpr std::string_view text_plain = "text/plain; charset=utf-8";
constexpr std::string_view application_json = "application/json";
constexpr std::string_view prometheus_text = "text/plain; version=0.0.4; charset=utf-8";

using request = http::request<http::string_body>;
using response = http::response<http::string_body>;
using digest = std::array<unsigned char, 32>;
using certs::sha256;

std::string endpoint_text(const tcp::endpoint& e)
{
    return e.address().is_v6() ? "[" + e.address().to_string() + "]:" + std::to_string(e.port())
                               : e.address().to_string() + ":" + std::to_string(e.port());
}

// Opens, binds and listens, or throws naming the step and the address.
void listen_exclusively(tcp::acceptor& acceptor, const tcp::endpoint& endpoint)
{
    boost::system::error_code ec;
    auto check = [&](std::string_view step) {
        if (ec) {
            throw std::runtime_error("cannot " + std::string(step) + " admin listener " + endpoint_text(endpoint) +
                                     ": " + ec.message());
        }
    };
    acceptor.open(endpoint.protocol(), ec);
    check("open");
    // SO_REUSEADDR only lets a restarted egressd bind while the old process's connections sit in TIME_WAIT.
    // SO_REUSEPORT would let any process of this user bind into the port and receive some of the requests.
    acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    check("configure");
    if (endpoint.address().is_v6()) {
        // As the proxy listeners do: "[::]" means IPv6 only, so the configured address is exactly what is bound.
        acceptor.set_option(asio::ip::v6_only(true), ec);
        check("configure");
    }
    acceptor.bind(endpoint, ec);
    check("bind");
    acceptor.listen(asio::socket_base::max_listen_connections, ec);
    check("listen on");
}

// Every answer carries these headers; prepare_payload sets Content-Length from the body.
response make_response(http::status status, unsigned version, std::string_view content_type, std::string body)
{
    response res{status, version};
    res.set(http::field::server, "egressd");
    res.set(http::field::content_type, content_type);
    res.set(http::field::cache_control, "no-store");
    res.body() = std::move(body);
    res.prepare_payload();
    return res;
}

response text_response(http::status status, unsigned version, std::string body)
{
    return make_response(status, version, text_plain, std::move(body));
}

// The answer to a request that could not be read whole, or nullopt when there is nobody left to answer (the
// client went away, the deadline passed, the server stopped).
std::optional<http::status> status_for_read_error(const boost::system::error_code& ec)
{
    if (ec == http::error::header_limit) {
        return http::status::request_header_fields_too_large;
    }
    if (ec == http::error::body_limit) {
        return http::status::payload_too_large;
    }
    if (ec == http::error::end_of_stream || ec == http::error::partial_message) {
        return std::nullopt;
    }
    if (ec.category() == beast::http::make_error_code(http::error::bad_target).category()) {
        return http::status::bad_request;
    }
    return std::nullopt;
}

// The completion of one POST /reload, handed to handlers::reload wrapped in a std::function. Whichever thread
// calls it, the coroutine waiting for it is resumed on the server's executor, and that executor is kept from
// running out of work meanwhile. If every copy of the std::function is dropped without a call, the request is
// answered 500 rather than left hanging.
template <typename Handler>
class reload_completion {
public:
    reload_completion(Handler handler, const asio::any_io_executor& executor)
        : handler_(std::move(handler)), work_(executor)
    {
    }
    reload_completion(const reload_completion&) = delete;
    reload_completion& operator=(const reload_completion&) = delete;
    ~reload_completion()
    {
        try {
            finish(http::status::internal_server_error, "the reload handler dropped its completion uncalled");
        } catch (...) {
            // Only an allocation can fail here; the coroutine is then destroyed with the io_context.
        }
    }

    // The first call wins; later ones (a callee calling twice, or the destructor) do nothing.
    void finish(http::status status, std::string body)
    {
        if (finished_.exchange(true)) {
            return;
        }
        auto executor = work_.get_executor();
        asio::post(executor, [handler = std::move(handler_), work = std::move(work_), status,
                              body = std::move(body)]() mutable { std::move(handler)(status, std::move(body)); });
    }

private:
    Handler handler_;
    asio::executor_work_guard<asio::any_io_executor> work_;
    std::atomic<bool> finished_{false};
};

}  // namespace

// Everything the accept loop and the connections share. It lives as long as the longest of them, so a
// connection that is still unwinding after the admin_server is gone touches nothing freed.
// Thread contract: the io_context's thread only (reload_completion is the one way in from elsewhere).
struct admin_server::state {
    state(asio::io_context& io, settings s, handlers h)
        : executor(io.get_executor()), config(std::move(s)), on(std::move(h)), acceptor(io)
    {
        if (config.max_connections == 0) {
            throw std::invalid_argument("admin max_connections must be at least 1");
        }
        if (config.request_timeout <= 0ms || config.idle_timeout <= 0ms) {
            throw std::invalid_argument("admin timeouts must be positive");
        }
        if (config.bearer_token) {
            if (config.bearer_token->empty()) {
                throw std::invalid_argument("admin bearer token is empty");
            }
            // Only the digest is kept for comparing: equal lengths whatever the client sends.
            token_digest = sha256(*config.bearer_token);
        }
        auto busy = text_response(http::status::service_unavailable, 11, "too many admin connections\n");
        busy.keep_alive(false);
        std::ostringstream out;
        out << busy;
        busy_reply = out.str();
        listen_exclusively(acceptor, config.endpoint);
    }

    // Holds one connection's place under max_connections, from accept until its coroutine ends.
    class ticket {
    public:
        explicit ticket(std::shared_ptr<state> s) : state_(std::move(s)) { ++state_->active; }
        ticket(ticket&& other) noexcept = default;
        ticket& operator=(ticket&&) = delete;
        ~ticket()
        {
            if (state_) {
                --state_->active;
            }
        }
        const std::shared_ptr<state>& owner() const { return state_; }

    private:
        std::shared_ptr<state> state_;
    };

    // Lists a connection's stream while it exists, so stop() can close it.
    class registration {
    public:
        registration(state& s, beast::tcp_stream& stream) : state_(s), stream_(&stream)
        {
            state_.connections.insert(stream_);
        }
        registration(const registration&) = delete;
        registration& operator=(const registration&) = delete;
        ~registration() { state_.connections.erase(stream_); }

    private:
        state& state_;
        beast::tcp_stream* stream_;
    };

    // handlers::internal_error, which must never take the server down with it.
    void report(std::string_view what) noexcept
    {
        if (!on.internal_error) {
            return;
        }
        try {
            on.internal_error(what);
        } catch (...) {
            // Nothing left to tell.
        }
    }

    // The completion for co_spawn: an exception that ends a coroutine is reported, never rethrown into run().
    static auto report_exception(std::shared_ptr<state> self, std::string_view where)
    {
        return [self = std::move(self), where](std::exception_ptr error) {
            if (!error) {
                return;
            }
            try {
                std::rethrow_exception(error);
            } catch (const std::exception& e) {
                self->report(std::string(where) + ": " + e.what());
            } catch (...) {
                self->report(std::string(where) + ": unknown exception");
            }
        };
    }

    void stop()
    {
        if (stopped) {
            return;
        }
        stopped = true;
        boost::system::error_code ignored;
        acceptor.close(ignored);
        // Closing completes their pending operations with operation_aborted; each coroutine then unwinds and
        // unregisters itself, later. The loop walks a copy so that it would stay correct even if one ever
        // unregistered at once.
        for (auto* stream : std::vector<beast::tcp_stream*>(connections.begin(), connections.end())) {
            stream->close();
        }
    }

    static asio::awaitable<void> accept_loop(std::shared_ptr<state> self)
    {
        asio::steady_timer pause(self->executor);
        observe::accept_backoff backoff;
        while (!self->stopped) {
            auto [ec, socket] = co_await self->acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
            if (self->stopped) {
                break;
            }
            if (ec) {
                // Out of descriptors and the like: retrying at once would spin the control thread.
                pause.expires_after(backoff.next());
                co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
                continue;
            }
            backoff.reset();
            if (self->active >= self->config.max_connections) {
                self->turn_away(socket);
                continue;
            }
            ticket t(self);
            asio::co_spawn(self->executor, serve(std::move(t), std::move(socket)),
                           report_exception(self, "admin connection"));
        }
    }

    // A connection over max_connections costs no coroutine and no buffer: a 503 written once without blocking
    // (plain HTTP only; a TLS client would need a handshake first), then closed.
    void turn_away(tcp::socket& socket) const
    {
        boost::system::error_code ignored;
        if (!config.tls) {
            socket.non_blocking(true, ignored);
            socket.write_some(asio::buffer(busy_reply), ignored);
            socket.shutdown(tcp::socket::shutdown_both, ignored);
        }
        socket.close(ignored);
    }

    static asio::awaitable<void> serve(ticket t, tcp::socket socket)
    {
        std::shared_ptr<state> self = t.owner();
        if (self->config.tls) {
            // The connection keeps its own reference to the context.
            auto context = self->config.tls;
            beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), *context);
            auto& lowest = beast::get_lowest_layer(stream);
            registration listed(*self, lowest);
            if (self->stopped) {
                co_return;
            }
            lowest.expires_after(self->config.request_timeout);
            auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::server,
                                                         asio::as_tuple(asio::use_awaitable));
            if (ec) {
                co_return;
            }
            if (co_await serve_requests(*self, stream, lowest)) {
                lowest.expires_after(std::min<std::chrono::milliseconds>(self->config.request_timeout, linger_time));
                co_await stream.async_shutdown(asio::as_tuple(asio::use_awaitable));
            }
        } else {
            beast::tcp_stream stream(std::move(socket));
            registration listed(*self, stream);
            if (self->stopped) {
                co_return;
            }
            if (co_await serve_requests(*self, stream, stream)) {
                boost::system::error_code ignored;
                stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
            }
        }
    }

    // The coroutines below are only ever awaited by the connection's own coroutine, which keeps the state alive
    // (serve's ticket), so they take it by reference.

    // Reads requests and answers them until the connection should close. True when it ends in order (a
    // response was written and the connection is not to be kept), false when it broke off.
    template <typename Stream>
    static asio::awaitable<bool> serve_requests(state& self, Stream& stream, beast::tcp_stream& lowest)
    {
        beast::flat_buffer buffer;
        for (bool first = true;; first = false) {
            if (!first && buffer.size() == 0) {
                // Keep-alive: the next request may take idle_timeout to begin; once it has, request_timeout.
                lowest.expires_after(self.config.idle_timeout);
                auto [ec, n] =
                    co_await stream.async_read_some(buffer.prepare(4096), asio::as_tuple(asio::use_awaitable));
                if (ec) {
                    co_return false;
                }
                buffer.commit(n);
            }
            // One deadline for the whole request, head and body: a client trickling bytes gains nothing.
            lowest.expires_after(self.config.request_timeout);
            http::request_parser<http::string_body> parser;
            parser.header_limit(head_limit);
            parser.body_limit(body_limit);
            auto [ec, n] =
                co_await http::async_read_header(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
            if (!ec && !parser.is_done()) {
                if (parser.get().version() == 11 &&
                    beast::iequals(parser.get()[http::field::expect], "100-continue")) {
                    http::response<http::empty_body> go_on{http::status::continue_, 11};
                    auto [wec, wn] = co_await http::async_write(stream, go_on, asio::as_tuple(asio::use_awaitable));
                    if (wec) {
                        co_return false;
                    }
                }
                std::tie(ec, n) =
                    co_await http::async_read(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
            }
            if (ec) {
                auto status = status_for_read_error(ec);
                if (!status) {
                    co_return false;
                }
                response refusal = text_response(*status, 11, error_text(*status));
                co_await answer_and_linger(self, stream, lowest, refusal);
                co_return false;
            }

            // Well framed, so the connection may go on; the parser has refused any version but 1.0 and 1.1.
            request& req = parser.get();
            response res = co_await answer(self, req);
            const bool keep = req.keep_alive() && !self.stopped;
            res.keep_alive(keep);
            lowest.expires_after(self.config.request_timeout);
            auto [wec, wn] = co_await http::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
            if (wec) {
                co_return false;
            }
            if (!keep) {
                co_return true;
            }
        }
    }

    static std::string error_text(http::status status)
    {
        switch (status) {
        case http::status::request_header_fields_too_large:
            return "request head too large\n";
        case http::status::payload_too_large:
            return "request body too large\n";
        default:
            return "bad request\n";
        }
    }

    // Answers a request that broke the framing, then closes. Closing a socket with unread bytes makes the kernel
    // send a reset, which can destroy the answer before the client reads it; so what the client is still
    // sending is read and thrown away first, within limits.
    template <typename Stream>
    static asio::awaitable<void> answer_and_linger(state& self, Stream& stream, beast::tcp_stream& lowest,
                                                   response& res)
    {
        res.keep_alive(false);
        lowest.expires_after(self.config.request_timeout);
        auto [wec, wn] = co_await http::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
        if (wec) {
            co_return;
        }
        if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
            boost::system::error_code ignored;
            lowest.socket().shutdown(tcp::socket::shutdown_send, ignored);
        }
        lowest.expires_after(std::min<std::chrono::milliseconds>(self.config.request_timeout, linger_time));
        std::array<char, 4096> sink;
        for (std::size_t total = 0; total < linger_limit;) {
            auto [ec, n] = co_await stream.async_read_some(asio::buffer(sink), asio::as_tuple(asio::use_awaitable));
            if (ec) {
                break;
            }
            total += n;
        }
    }

    // Routing and authorization for one well-formed request; the handlers run here.
    static asio::awaitable<response> answer(state& self, const request& req)
    {
        response res = co_await route_request(self, req);
        if (req.method() == http::verb::head) {
            // HEAD: the headers GET would send, Content-Length included, and no body.
            res.body().clear();
        }
        co_return res;
    }

    static asio::awaitable<response> route_request(state& self, const request& req)
    {
        const unsigned version = req.version();
        const std::string_view target = req.target();
        std::vector<std::string_view> authorization;
        auto [first, last] = req.equal_range(http::field::authorization);
        for (auto field = first; field != last; ++field) {
            authorization.push_back(field->value());
        }
        try {
            const auto admitted = admit(req.method(), target, authorization, self.token_digest);
            switch (admitted.result) {
            case outcome::bad_target:
                co_return text_response(http::status::bad_request, version, "bad request target\n");
            case outcome::not_found:
                co_return text_response(http::status::not_found, version, "not found\n");
            case outcome::method_not_allowed: {
                auto res = text_response(http::status::method_not_allowed, version, "method not allowed\n");
                res.set(http::field::allow, allow_header(*admitted.to));
                co_return res;
            }
            case outcome::unauthorized: {
                auto res = text_response(http::status::unauthorized, version, "unauthorized\n");
                res.set(http::field::www_authenticate, "Bearer realm=\"egressd-admin\"");
                co_return res;
            }
            case outcome::serve:
                break;
            }
            const route r = *admitted.to;
            switch (r) {
            case route::healthz:
                co_return text_response(http::status::ok, version, "ok\n");
            case route::readyz:
                if (self.on.ready()) {
                    co_return text_response(http::status::ok, version, "ready\n");
                }
                co_return text_response(http::status::service_unavailable, version, "not ready\n");
            case route::status:
                co_return make_response(http::status::ok, version, application_json, self.on.status_json());
            case route::metrics:
                co_return make_response(http::status::ok, version, prometheus_text, self.on.metrics_text());
            case route::reload: {
                auto [status, body] = co_await reload(self);
                if (status == http::status::internal_server_error) {
                    self.report("POST /reload: " + body);
                    co_return text_response(status, version, "internal error\n");
                }
                co_return make_response(status, version, application_json, std::move(body));
            }
            }
        } catch (const std::exception& e) {
            self.report(std::string(target) + ": " + e.what());
        } catch (...) {
            self.report(std::string(target) + ": unknown exception");
        }
        co_return text_response(http::status::internal_server_error, version, "internal error\n");
    }

    // Starts handlers::reload and waits, without holding the thread, for its done to be called.
    static asio::awaitable<std::tuple<http::status, std::string>> reload(state& self)
    {
        // The initiation captures by reference only: GCC 12 destroys a lambda passed by value to a coroutine
        // inside a co_await expression twice (use_awaitable's initiate is one), and a captured shared_ptr then
        // loses a reference it never had.
        co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(http::status, std::string)>(
            [&self](auto handler) {
                auto completion =
                    std::make_shared<reload_completion<decltype(handler)>>(std::move(handler), self.executor);
                // Exceptions must not leave an initiation: the coroutine would never learn of them.
                try {
                    if (!self.on.reload) {
                        throw std::bad_function_call();
                    }
                    self.on.reload([completion](bool ok, std::string json) {
                        completion->finish(ok ? http::status::ok : http::status::unprocessable_entity,
                                           std::move(json));
                    });
                } catch (const std::exception& e) {
                    completion->finish(http::status::internal_server_error,
                                       std::string("the reload handler threw: ") + e.what());
                } catch (...) {
                    completion->finish(http::status::internal_server_error, "the reload handler threw");
                }
            },
            asio::use_awaitable);
    }

    asio::any_io_executor executor;
    settings config;
    handlers on;
    std::optional<digest> token_digest;
    std::string busy_reply;  // the whole 503 for connections over the limit, serialized once
    tcp::acceptor acceptor;
    std::unordered_set<beast::tcp_stream*> connections;
    std::size_t active = 0;  // connections holding a ticket
    bool started = false;
    bool stopped = false;
};

admin_server::admin_server(asio::io_context& io, settings s, handlers h)
    : state_(std::make_shared<state>(io, std::move(s), std::move(h))),
      local_endpoint_(state_->acceptor.local_endpoint())
{
}

admin_server::~admin_server()
{
    stop();
}

tcp::endpoint admin_server::local_endpoint() const
{
    return local_endpoint_;
}

void admin_server::start()
{
    if (state_->started || state_->stopped) {
        return;
    }
    state_->started = true;
    asio::co_spawn(state_->executor, state::accept_loop(state_), state::report_exception(state_, "admin accept loop"));
}

void admin_server::set_bearer_token(const std::optional<std::string>& token)
{
    if (token && token->empty()) {
        throw std::invalid_argument("admin bearer token is empty");
    }
    state_->token_digest = token ? std::optional<digest>(sha256(*token)) : std::nullopt;
}

void admin_server::set_tls(std::shared_ptr<boost::asio::ssl::context> tls)
{
    if (!state_->config.tls || !tls) {
        throw std::invalid_argument("admin TLS is on or off for the server's life");
    }
    state_->config.tls = std::move(tls);
}

void admin_server::stop()
{
    state_->stop();
}

}  // namespace egressd::proxy::admin
