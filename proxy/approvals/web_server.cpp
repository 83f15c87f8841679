#include "proxy/approvals/web_server.hpp"

#include "certs/digest.hpp"
#include "config/rfc3339.hpp"
#include "policy/address.hpp"
#include "proxy/approvals/pages.hpp"
#include "proxy/approvals/request_rules.hpp"
#include "proxy/observe/exhaustion.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
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
#include <boost/json.hpp>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <exception>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace egressd::proxy::approvals {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using asio::ip::tcp;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

// After a refusal that closes the connection, what the client still sends is read and dropped for a moment, so
// that closing with unread bytes does not reset the connection before the client has read the refusal.
constexpr std::size_t drain_limit = 256 * 1024;
constexpr std::chrono::milliseconds drain_time = 2s;

constexpr std::size_t session_limit = 10'000;
constexpr std::size_t cache_limit = 10'000;
constexpr auto login_cache_lifetime = std::chrono::minutes(5);
constexpr auto flash_lifetime = std::chrono::minutes(1);
// Sign-in failures per source address: the first few within a minute cost nothing, then each answer waits
// twice as long as the one before, up to 8 s. The wait comes before the password check, so a source that keeps
// guessing cannot keep the checking threads busy either.
constexpr auto failure_window = std::chrono::minutes(1);
constexpr unsigned free_failures = 3;
constexpr std::chrono::milliseconds first_penalty = 500ms;
constexpr std::chrono::milliseconds max_penalty = 8s;

constexpr std::string_view content_security_policy =
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'";
constexpr std::string_view text_html = "text/html; charset=utf-8";
constexpr std::string_view text_plain = "text/plain; charset=utf-8";
constexpr std::string_view text_css = "text/css; charset=utf-8";
constexpr std::string_view basic_challenge = "Basic realm=\"egressd approvals\", charset=\"UTF-8\"";

using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

// --- small pieces -----------------------------------------------------------------------------------------------

std::string endpoint_text(const tcp::endpoint& e)
{
    const auto port = std::to_string(e.port());
    return e.address().is_v6() ? "[" + e.address().to_string() + "]:" + port : e.address().to_string() + ":" + port;
}

// Exclusive: SO_REUSEADDR (a restart may bind while old connections sit in TIME_WAIT), never SO_REUSEPORT, which
// would let another process of this user bind the same port and take some of the sign-ins.
void bind_exclusively(tcp::acceptor& acceptor, const tcp::endpoint& endpoint)
{
    boost::system::error_code ec;
    const auto fail = [&](std::string_view step) {
        throw std::runtime_error("cannot " + std::string(step) + " approvals listener " + endpoint_text(endpoint) +
                                 ": " + ec.message());
    };
    if (acceptor.open(endpoint.protocol(), ec); ec) {
        fail("open");
    }
    if (acceptor.set_option(tcp::acceptor::reuse_address(true), ec); ec) {
        fail("configure");
    }
    if (endpoint.address().is_v6()) {
        if (acceptor.set_option(asio::ip::v6_only(true), ec); ec) {
            fail("configure");
        }
    }
    if (acceptor.bind(endpoint, ec); ec) {
        fail("bind");
    }
    if (acceptor.listen(asio::socket_base::max_listen_connections, ec); ec) {
        fail("listen on");
    }
}

policy::address to_policy_address(const asio::ip::address& a)
{
    if (a.is_v4()) {
        return policy::address::from_v4(a.to_v4().to_uint());
    }
    return policy::address::from_v6(a.to_v6().to_bytes()).unmapped();
}

// 32 random bytes as hex; throws when OpenSSL has no randomness to give (answered 500: no session without it).
std::string random_token()
{
    std::array<unsigned char, 32> bytes{};
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
        throw std::runtime_error("RAND_bytes failed: cannot make a session");
    }
    return certs::hex(bytes);
}

std::string digest_hex(std::string_view text)
{
    return certs::hex(certs::sha256(text));
}

std::chrono::sys_seconds now_seconds()
{
    return std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
}

http::status status_of(failure f)
{
    switch (f) {
    case failure::not_found:
        return http::status::not_found;
    case failure::conflict:
        return http::status::conflict;
    case failure::forbidden:
        return http::status::forbidden;
    case failure::invalid:
        return http::status::unprocessable_entity;
    case failure::unavailable:
        return http::status::service_unavailable;
    }
    return http::status::internal_server_error;
}

// --- answers ----------------------------------------------------------------------------------------------------

response make_response(http::status status, unsigned version, std::string_view content_type, std::string body)
{
    response res{status, version};
    res.set(http::field::server, "egressd");
    res.set(http::field::content_type, content_type);
    res.body() = std::move(body);
    res.prepare_payload();
    return res;
}

// On every answer, whatever produced it: nothing is cached, framed, sniffed or told where the user came from.
void add_security_headers(response& res)
{
    res.set("Content-Security-Policy", content_security_policy);
    res.set("X-Content-Type-Options", "nosniff");
    res.set("Referrer-Policy", "no-referrer");
    res.set("X-Frame-Options", "DENY");
    res.set(http::field::cache_control, "no-store");
}

response json_response(http::status status, unsigned version, const json::value& body)
{
    return make_response(status, version, json_media_type, json::serialize(body) + "\n");
}

response json_error(http::status status, unsigned version, std::string_view message)
{
    json::object body;
    body["error"] = message;
    return json_response(status, version, body);
}

response see_other(unsigned version, std::string_view location)
{
    auto res = make_response(http::status::see_other, version, text_plain, "see " + std::string(location) + "\n");
    res.set(http::field::location, location);
    return res;
}

std::string cookie_value(std::string_view token, std::chrono::seconds max_age)
{
    return std::string(session_cookie_name) + "=" + std::string(token) +
           "; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=" + std::to_string(max_age.count());
}

// Every value of one header, in order: what request_rules reads.
template <typename Name>
std::vector<std::string_view> header_values(const request& req, const Name& name)
{
    std::vector<std::string_view> values;
    auto [begin, end] = req.equal_range(name);
    for (auto it = begin; it != end; ++it) {
        values.push_back(it->value());
    }
    return values;
}

std::optional<std::string> request_session(const request& req)
{
    return session_cookie(header_values(req, http::field::cookie));
}

// The API body of action a, as request_rules reads it.
std::optional<form_fields> api_body(const request& req, action a, std::string& problem)
{
    return json_fields(req[http::field::content_type], req.body(), json_body_fields(a), problem);
}

// --- JSON -------------------------------------------------------------------------------------------------------

json::value time_json(const std::optional<time_point>& t)
{
    if (!t) {
        return nullptr;
    }
    return json::value(config::format_rfc3339(*t));
}

json::value id_json(const std::optional<std::int64_t>& id)
{
    if (!id) {
        return nullptr;
    }
    return json::value(*id);
}

json::object request_json(const access_request& r, const service& svc)
{
    json::array justifications;
    for (const auto& j : r.justifications) {
        justifications.push_back(
            json::object{{"user", j.user}, {"text", j.text}, {"at", config::format_rfc3339(j.at)}});
    }
    json::array votes;
    for (const auto& v : r.votes) {
        votes.push_back(json::object{{"approver", v.approver}, {"note", v.note}, {"at", config::format_rfc3339(v.at)}});
    }
    json::object o;
    o["id"] = r.id;
    o["client"] = r.key.client;
    o["host"] = r.key.host;
    o["port"] = r.key.port;
    o["state"] = to_string(r.state);
    o["hits"] = r.hits;
    o["first_seen"] = config::format_rfc3339(r.first_seen);
    o["last_seen"] = config::format_rfc3339(r.last_seen);
    o["reason"] = r.reason;
    o["last_source"] = r.last_source;
    o["last_identity"] = r.last_identity;
    o["justifications"] = std::move(justifications);
    o["votes"] = std::move(votes);
    o["grant_id"] = id_json(r.grant_id);
    o["decided_by"] = r.decided_by;
    o["decision_note"] = r.decision_note;
    o["decided_at"] = time_json(r.decided_at);
    o["url"] = svc.request_url(r.id);
    return o;
}

json::object grant_json(const grant_record& g, time_point now)
{
    json::object o;
    o["id"] = g.id;
    o["request_id"] = g.request_id;
    o["scope"] = g.scope == policy::grant_scope::group ? "group" : "client";
    o["scope_name"] = g.scope_name;
    o["destination"] = g.destination;
    o["port"] = g.port;
    o["created"] = config::format_rfc3339(g.created);
    o["expires"] = config::format_rfc3339(g.expires);
    o["state"] = to_string(g.state);
    o["approved_by"] = g.approved_by;
    o["note"] = g.note;
    o["ended_at"] = time_json(g.ended_at);
    o["ended_by"] = g.ended_by;
    o["seconds_left"] = g.state == grant_state::active ? std::max<std::int64_t>(0, (g.expires - now).count()) : 0;
    return o;
}

json::object history_json(const history_entry& h)
{
    json::object o;
    o["id"] = h.id;
    o["at"] = config::format_rfc3339(h.at);
    o["event"] = h.event;
    o["actor"] = h.actor;
    o["request_id"] = id_json(h.request_id);
    o["grant_id"] = id_json(h.grant_id);
    o["client"] = h.client;
    o["host"] = h.host;
    o["port"] = h.port;
    o["detail"] = h.detail;
    return o;
}

// --- users ------------------------------------------------------------------------------------------------------

std::optional<role> role_in(const directory& d, std::string_view name)
{
    if (d.approvers && d.approvers->has_user(name)) {
        return role::approver;
    }
    if (d.requesters && d.requesters->has_user(name)) {
        return role::requester;
    }
    return std::nullopt;
}

// The costly part, run on the pool. A user in both files is an approver when the approvers' password matches.
// An unknown user costs one check too, so the time taken does not tell who exists.
std::optional<role> verify_user(const directory& d, const std::string& name, const std::string& password)
{
    const bool approver = d.approvers && d.approvers->has_user(name);
    const bool requester = d.requesters && d.requesters->has_user(name);
    if (approver && d.approvers->verify(name, password)) {
        return role::approver;
    }
    if (requester && d.requesters->verify(name, password)) {
        return role::requester;
    }
    if (!approver && !requester) {
        const auto& any = d.approvers ? d.approvers : d.requesters;
        if (any) {
            static_cast<void>(any->verify(name, password));
        }
    }
    return std::nullopt;
}

// Who the signed-in caller is, and what their forms must carry.
struct caller {
    user who;
    std::string csrf;
    std::string flash_key;    // where a message after a post waits for the next page
    std::string session_key;  // a cookie session's key; empty for Basic and the trusted header
};

enum class sign_in : std::uint8_t { none, ok, refused };

struct authentication {
    sign_in state = sign_in::none;
    caller who;
};

}  // namespace

// Everything the accept loop, the connections and the web_server share; it lives as long as the longest of
// them, so a connection still unwinding after the web_server is gone touches nothing freed.
// Thread contract: the service's io_context thread only; password checks go to the pool and come back.
struct web_server::state {
    state(service& s, web_settings settings, directory d, asio::thread_pool& p)
        : svc(s), setup(std::move(settings)), users(std::move(d)), pool(p), executor(s.io().get_executor()),
          acceptor(s.io())
    {
        if (setup.max_connections == 0) {
            throw std::invalid_argument("approvals max_connections must be at least 1");
        }
        if (setup.request_timeout <= 0ms || setup.idle_timeout <= 0ms || setup.session_lifetime <= 0h) {
            throw std::invalid_argument("approvals timeouts must be positive");
        }
        if (RAND_bytes(csrf_key.data(), static_cast<int>(csrf_key.size())) != 1) {
            throw std::runtime_error("RAND_bytes failed: cannot make the CSRF key");
        }
        auto busy = make_response(http::status::service_unavailable, 11, text_plain, "too many connections\n");
        add_security_headers(busy);
        busy.keep_alive(false);
        std::ostringstream out;
        out << busy;
        busy_reply = out.str();
        bind_exclusively(acceptor, setup.endpoint);
    }

    struct session {
        user who;
        std::string csrf;
        steady::time_point expires;
    };
    struct flash_message {
        std::string text;
        bool error = false;
        steady::time_point until;
    };
    struct verified_login {
        user who;
        steady::time_point until;
    };
    struct failures {
        unsigned count = 0;
        steady::time_point since;
    };

    // A connection's place under max_connections, from accept to the end of its coroutine, and its stream
    // listed for stop() while it has one.
    class slot {
    public:
        explicit slot(std::shared_ptr<state> s) : owner_(std::move(s)) { ++owner_->active; }
        slot(slot&& other) noexcept : owner_(std::move(other.owner_)), stream_(std::exchange(other.stream_, nullptr))
        {
        }
        slot& operator=(slot&&) = delete;
        ~slot()
        {
            if (owner_) {
                if (stream_ != nullptr) {
                    owner_->streams.erase(stream_);
                }
                --owner_->active;
            }
        }
        void track(beast::tcp_stream& s)
        {
            stream_ = &s;
            owner_->streams.insert(stream_);
        }
        state& owner() const { return *owner_; }

    private:
        std::shared_ptr<state> owner_;
        beast::tcp_stream* stream_ = nullptr;
    };

    void report(std::string_view what) const noexcept
    {
        if (!setup.internal_error) {
            return;
        }
        try {
            setup.internal_error(what);
        } catch (...) {
            // Nobody left to tell.
        }
    }

    static auto on_exit(std::shared_ptr<state> self, std::string_view where)
    {
        return [self = std::move(self), where](const std::exception_ptr& thrown) {
            if (!thrown) {
                return;
            }
            try {
                std::rethrow_exception(thrown);
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
        // Each connection's pending operation completes with operation_aborted; the coroutine unwinds later.
        for (auto* stream : std::vector<beast::tcp_stream*>(streams.begin(), streams.end())) {
            stream->close();
        }
    }

    // --- connections ----------------------------------------------------------------------------------------

    static asio::awaitable<void> accept_loop(std::shared_ptr<state> self)
    {
        asio::steady_timer pause(self->executor);
        observe::accept_backoff backoff;
        while (!self->stopped) {
            auto [ec, socket] = co_await self->acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
            if (self->stopped) {
                co_return;
            }
            if (ec) {
                // Out of descriptors and the like: retrying at once would spin the service thread.
                pause.expires_after(backoff.next());
                co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
                continue;
            }
            backoff.reset();
            if (self->active >= self->setup.max_connections) {
                self->turn_away(socket);
                continue;
            }
            asio::co_spawn(self->executor, connection(slot(self), std::move(socket)),
                           on_exit(self, "approvals connection"));
        }
    }

    // Over max_connections: a 503 written once without waiting (plain HTTP; TLS would need a handshake), closed.
    void turn_away(tcp::socket& socket) const
    {
        boost::system::error_code ignored;
        if (!setup.tls) {
            socket.non_blocking(true, ignored);
            socket.write_some(asio::buffer(busy_reply), ignored);
            socket.shutdown(tcp::socket::shutdown_both, ignored);
        }
        socket.close(ignored);
    }

    static asio::awaitable<void> connection(slot place, tcp::socket socket)
    {
        state& self = place.owner();
        boost::system::error_code ec;
        const auto remote = socket.remote_endpoint(ec);
        if (ec || self.stopped) {
            co_return;
        }
        const policy::address peer = to_policy_address(remote.address());
        if (!self.setup.tls) {
            beast::tcp_stream stream(std::move(socket));
            place.track(stream);
            if (co_await self.exchange(stream, stream, peer)) {
                stream.socket().shutdown(tcp::socket::shutdown_send, ec);
            }
            co_return;
        }
        const auto context = self.setup.tls;  // the connection holds the context it started with
        beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), *context);
        auto& lowest = beast::get_lowest_layer(stream);
        place.track(lowest);
        lowest.expires_after(self.setup.request_timeout);
        auto [hec] =
            co_await stream.async_handshake(asio::ssl::stream_base::server, asio::as_tuple(asio::use_awaitable));
        if (hec) {
            co_return;
        }
        if (co_await self.exchange(stream, lowest, peer)) {
            lowest.expires_after(std::min<std::chrono::milliseconds>(self.setup.request_timeout, drain_time));
            co_await stream.async_shutdown(asio::as_tuple(asio::use_awaitable));
        }
    }

    // Requests and answers until the connection should close: true when it ends in order after an answer,
    // false when it broke off.
    template <typename Stream>
    asio::awaitable<bool> exchange(Stream& stream, beast::tcp_stream& lowest, const policy::address& peer)
    {
        beast::flat_buffer buffer;
        for (bool first = true;; first = false) {
            if (!first && buffer.size() == 0) {
                // Keep-alive: waiting for the next request takes idle_timeout; reading it, request_timeout.
                lowest.expires_after(setup.idle_timeout);
                auto [ec, n] =
                    co_await stream.async_read_some(buffer.prepare(4096), asio::as_tuple(asio::use_awaitable));
                if (ec) {
                    co_return false;
                }
                buffer.commit(n);
            }
            lowest.expires_after(setup.request_timeout);
            http::request_parser<http::string_body> parser;
            parser.header_limit(max_head_bytes);
            parser.body_limit(max_body_bytes);
            auto [ec, n] =
                co_await http::async_read_header(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
            if (!ec && !parser.is_done()) {
                if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
                    http::response<http::empty_body> go_on{http::status::continue_, parser.get().version()};
                    auto [cec, cn] = co_await http::async_write(stream, go_on, asio::as_tuple(asio::use_awaitable));
                    if (cec) {
                        co_return false;
                    }
                }
                std::tie(ec, n) =
                    co_await http::async_read(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
            }
            if (ec) {
                co_await refuse(stream, lowest, ec);
                co_return false;
            }
            request& req = parser.get();
            response res = co_await answer(req, peer);
            const bool keep = req.keep_alive() && !stopped;
            res.keep_alive(keep);
            lowest.expires_after(setup.request_timeout);
            auto [wec, wn] = co_await http::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
            if (wec) {
                co_return false;
            }
            if (!keep) {
                co_return true;
            }
        }
    }

    // A request that could not be read whole: 431, 413 or 400 when someone is still there to be told, then the
    // rest of what they send is drained for a moment before the connection closes.
    template <typename Stream>
    asio::awaitable<void> refuse(Stream& stream, beast::tcp_stream& lowest, const boost::system::error_code& ec)
    {
        std::optional<http::status> status;
        if (ec == http::error::header_limit) {
            status = http::status::request_header_fields_too_large;
        } else if (ec == http::error::body_limit) {
            status = http::status::payload_too_large;
        } else if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
                   ec != http::error::end_of_stream && ec != http::error::partial_message) {
            status = http::status::bad_request;
        }
        if (!status) {
            co_return;
        }
        auto res = make_response(*status, 11, text_plain, std::string(http::obsolete_reason(*status)) + "\n");
        add_security_headers(res);
        res.keep_alive(false);
        lowest.expires_after(setup.request_timeout);
        auto [wec, wn] = co_await http::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
        if (wec) {
            co_return;
        }
        if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
            boost::system::error_code ignored;
            lowest.socket().shutdown(tcp::socket::shutdown_send, ignored);
        }
        lowest.expires_after(std::min<std::chrono::milliseconds>(setup.request_timeout, drain_time));
        std::array<char, 4096> sink{};
        for (std::size_t total = 0; total < drain_limit;) {
            auto [rec, rn] = co_await stream.async_read_some(asio::buffer(sink), asio::as_tuple(asio::use_awaitable));
            if (rec) {
                break;
            }
            total += rn;
        }
    }

    // --- one request ----------------------------------------------------------------------------------------

    asio::awaitable<response> answer(const request& req, const policy::address& peer)
    {
        response res;
        bool failed = false;
        try {
            res = co_await dispatch(req, peer);
        } catch (const std::exception& e) {
            report(std::string(req.method_string()) + " " + std::string(req.target()) + ": " + e.what());
            failed = true;
        }
        if (failed) {
            res = make_response(http::status::internal_server_error, req.version(), text_plain, "internal error\n");
        }
        add_security_headers(res);
        if (req.method() == http::verb::head) {
            res.body().clear();  // the headers GET would send, Content-Length included
        }
        co_return res;
    }

    asio::awaitable<response> dispatch(const request& req, const policy::address& peer)
    {
        const unsigned version = req.version();
        const admission in = admit(req.method(), req.target());
        const bool api = in.api;
        if (in.result == admission_result::bad_target) {
            co_return make_response(http::status::bad_request, version, text_plain, "bad request target\n");
        }
        if (in.result == admission_result::not_found) {
            co_return api ? json_error(http::status::not_found, version, "no such resource")
                          : page_error(http::status::not_found, version, std::nullopt, "There is no such page.");
        }
        if (in.result == admission_result::method_not_allowed) {
            auto res = api ? json_error(http::status::method_not_allowed, version, "method not allowed")
                           : make_response(http::status::method_not_allowed, version, text_plain,
                                           "method not allowed\n");
            res.set(http::field::allow, allow_text(*in.to));
            co_return res;
        }
        const bool reads = req.method() == http::verb::get || req.method() == http::verb::head;
        const auto& chosen = in.chosen;
        const auto& r = in.to;
        const std::string_view query = in.query;
        if (*chosen == action::style) {
            co_return make_response(http::status::ok, version, text_css, pages::stylesheet());
        }
        if (*chosen == action::login) {
            co_return co_await login(req, peer);
        }
        const authentication auth = co_await authenticate(req, peer);
        if (auth.state == sign_in::refused) {
            auto res = api ? json_error(http::status::unauthorized, version, "wrong user or password")
                           : page_error(http::status::unauthorized, version, std::nullopt, "Wrong user or password.");
            res.set(http::field::www_authenticate, basic_challenge);
            co_return res;
        }
        if (*chosen == action::login_page) {
            if (auth.state == sign_in::ok) {
                co_return see_other(version, "/");
            }
            co_return make_response(http::status::ok, version, text_html, pages::login(anonymous_frame(), "", ""));
        }
        if (auth.state == sign_in::none) {
            if (api) {
                auto res = json_error(http::status::unauthorized, version, "sign in: HTTP Basic or a session");
                res.set(http::field::www_authenticate, basic_challenge);
                co_return res;
            }
            co_return see_other(version, "/login");
        }
        if (api) {
            co_return api_answer(*chosen, r->id, req, query, auth.who);
        }
        if (!reads) {
            co_return page_post(*chosen, r->id, req, auth.who);
        }
        co_return page_get(*chosen, r->id, version, query, auth.who);
    }

    // --- who is asking --------------------------------------------------------------------------------------

    asio::awaitable<authentication> authenticate(const request& req, const policy::address& peer)
    {
        if (auto who = header_user(req, peer)) {
            const std::string name = who->name;
            co_return authentication{sign_in::ok,
                                     caller{std::move(*who), derived_csrf("header", name), "header:" + name, {}}};
        }
        if (const auto it = req.find(http::field::authorization); it != req.end()) {
            auto credentials = certs::parse_basic_authorization(it->value());
            if (!credentials) {
                co_return authentication{sign_in::refused, {}};
            }
            const std::string name = credentials->first;
            const std::string password = credentials->second;
            auto who = co_await check_password(name, password, peer);
            if (!who) {
                co_return authentication{sign_in::refused, {}};
            }
            co_return authentication{sign_in::ok,
                                     caller{std::move(*who), derived_csrf("basic", name), "basic:" + name, {}}};
        }
        if (const auto token = request_session(req)) {
            const std::string key = digest_hex(*token);
            const auto it = sessions.find(key);
            if (it != sessions.end() && it->second.expires > steady::now()) {
                co_return authentication{sign_in::ok, caller{it->second.who, it->second.csrf, key, key}};
            }
            if (it != sessions.end()) {
                sessions.erase(it);
            }
        }
        co_return authentication{};
    }

    // The user an authenticating reverse proxy names, when the connection comes from one of its addresses; from
    // anywhere else these headers mean nothing.
    std::optional<user> header_user(const request& req, const policy::address& peer) const
    {
        if (!users.trusted_header) {
            return std::nullopt;
        }
        const auto& trusted = *users.trusted_header;
        if (std::none_of(trusted.sources.begin(), trusted.sources.end(),
                         [&](const policy::cidr& c) { return c.contains(peer); })) {
            return std::nullopt;
        }
        const auto name = trusted_user(header_values(req, trusted.user_header));
        if (!name) {
            return std::nullopt;
        }
        const bool approver = names_group(header_values(req, trusted.groups_header), trusted.approver_group);
        return user{std::string(*name), approver ? role::approver : role::requester};
    }

    // Basic and trusted-header callers have no session to keep a token in: theirs is derived from the user with
    // a key made at start, so it is stable for them and unguessable for anyone else.
    std::string derived_csrf(std::string_view kind, std::string_view name) const
    {
        std::string message(kind);
        message.push_back('\0');
        message.append(name);
        std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
        unsigned int size = 0;
        const auto* data = reinterpret_cast<const unsigned char*>(message.data());
        if (HMAC(EVP_sha256(), csrf_key.data(), static_cast<int>(csrf_key.size()), data, message.size(), mac.data(),
                 &size) == nullptr) {
            throw std::runtime_error("HMAC failed: cannot make a CSRF token");
        }
        return certs::hex(std::span<const unsigned char>(mac.data(), size));
    }

    // A password checked off this thread, remembered for a few minutes under SHA-256(user NUL password); a
    // source that failed often waits first. nullopt: wrong.
    asio::awaitable<std::optional<user>> check_password(const std::string& name, const std::string& password,
                                                        const policy::address& peer)
    {
        std::string secret = name;
        secret.push_back('\0');
        secret += password;
        const std::string key = digest_hex(secret);
        if (const auto it = verified.find(key); it != verified.end() && it->second.until > steady::now()) {
            co_return it->second.who;
        }
        const auto delay = penalty(peer);
        if (delay > 0ms) {
            asio::steady_timer wait(executor, delay);
            co_await wait.async_wait(asio::as_tuple(asio::use_awaitable));
        }
        const directory checked_against = users;
        const std::optional<role> level = co_await verify_off_thread(checked_against, name, password);
        // The files may have been reloaded during the check: the user must still be there with that role.
        if (!level || stopped || role_in(users, name) != level) {
            if (!level) {
                record_failure(peer);
            }
            co_return std::nullopt;
        }
        if (verified.size() >= cache_limit) {
            verified.clear();  // a flood of distinct good credentials: start over rather than grow
        }
        const user who{name, *level};
        verified[key] = verified_login{who, steady::now() + login_cache_lifetime};
        co_return who;
    }

    // verify_user on the pool, the answer posted back to this thread. A plain callback: a capturing coroutine
    // lambda is what GCC 12 miscompiles, so the initiation captures references only.
    asio::awaitable<std::optional<role>> verify_off_thread(const directory& d, const std::string& name,
                                                          const std::string& password)
    {
        co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(std::optional<role>)>(
            [this, &d, &name, &password](auto handler) {
                asio::post(pool, [d, name, password, handler = std::move(handler)]() mutable {
                    const auto level = verify_user(d, name, password);
                    auto back = asio::get_associated_executor(handler);
                    asio::post(back, [handler = std::move(handler), level]() mutable { std::move(handler)(level); });
                });
            },
            asio::use_awaitable);
    }

    std::chrono::milliseconds penalty(const policy::address& source) const
    {
        const auto it = sign_in_failures.find(source);
        if (it == sign_in_failures.end() || steady::now() - it->second.since > failure_window ||
            it->second.count < free_failures) {
            return 0ms;
        }
        const unsigned doublings = std::min(it->second.count - free_failures, 5u);
        return std::min<std::chrono::milliseconds>(first_penalty * (1u << doublings), max_penalty);
    }

    void record_failure(const policy::address& source)
    {
        const auto now = steady::now();
        if (sign_in_failures.size() >= cache_limit) {
            std::erase_if(sign_in_failures,
                          [&](const auto& entry) { return now - entry.second.since > failure_window; });
        }
        auto& f = sign_in_failures[source];
        if (now - f.since > failure_window) {
            f = failures{0, now};
        }
        ++f.count;
    }

    // POST /login: a new session with its own CSRF token, or the form again with an error.
    asio::awaitable<response> login(const request& req, const policy::address& peer)
    {
        const unsigned version = req.version();
        const auto form = read_form(req[http::field::content_type], req.body());
        if (!form) {
            co_return make_response(http::status::bad_request, version, text_html,
                                    pages::login(anonymous_frame(), "The form could not be read.", ""));
        }
        const std::string name = field_or_empty(*form, "user");
        const std::string password = field_or_empty(*form, "password");
        if (name.empty() || password.empty()) {
            co_return make_response(http::status::bad_request, version, text_html,
                                    pages::login(anonymous_frame(), "Enter your user name and password.", name));
        }
        const auto who = co_await check_password(name, password, peer);
        if (!who) {
            co_return make_response(http::status::forbidden, version, text_html,
                                    pages::login(anonymous_frame(), "Wrong user or password.", name));
        }
        if (const auto previous = request_session(req)) {
            sessions.erase(digest_hex(*previous));  // signing in again replaces the session, never adds one
        }
        const std::string token = random_token();
        const auto now = steady::now();
        if (sessions.size() >= session_limit) {
            std::erase_if(sessions, [&](const auto& entry) { return entry.second.expires <= now; });
        }
        if (sessions.size() >= session_limit) {
            // Still full of live sessions: the one closest to its end makes room.
            sessions.erase(std::min_element(sessions.begin(), sessions.end(), [](const auto& a, const auto& b) {
                return a.second.expires < b.second.expires;
            }));
        }
        sessions[digest_hex(token)] = session{*who, random_token(), now + setup.session_lifetime};
        auto res = see_other(version, "/");
        res.set(http::field::set_cookie,
                cookie_value(token, std::chrono::duration_cast<std::chrono::seconds>(setup.session_lifetime)));
        co_return res;
    }

    // --- flash messages -------------------------------------------------------------------------------------

    void set_flash(const std::string& key, std::string text, bool error)
    {
        const auto now = steady::now();
        if (flashes.size() >= cache_limit) {
            std::erase_if(flashes, [&](const auto& entry) { return entry.second.until <= now; });
        }
        if (flashes.size() < cache_limit) {
            flashes[key] = flash_message{std::move(text), error, now + flash_lifetime};
        }
    }

    pages::frame frame_for(const caller& c)
    {
        pages::frame f;
        f.who = c.who;
        f.csrf = c.csrf;
        f.now = now_seconds();
        if (const auto it = flashes.find(c.flash_key); it != flashes.end()) {
            if (it->second.until > steady::now()) {
                f.flash = std::move(it->second.text);
                f.flash_is_error = it->second.error;
            }
            flashes.erase(it);
        }
        return f;
    }

    static pages::frame anonymous_frame()
    {
        pages::frame f;
        f.now = now_seconds();
        return f;
    }

    response page_error(http::status status, unsigned version, const std::optional<caller>& c,
                        const std::string& message)
    {
        pages::frame f = c ? frame_for(*c) : anonymous_frame();
        return make_response(status, version, text_html, pages::error_page(f, static_cast<unsigned>(status), message));
    }

    // --- the page -------------------------------------------------------------------------------------------

    std::optional<grant_record> find_grant(std::int64_t id) { return svc.grant(id); }

    response page_get(action a, std::int64_t id, unsigned version, std::string_view query, const caller& c)
    {
        switch (a) {
        case action::pending_page:
            return make_response(http::status::ok, version, text_html,
                                 pages::pending(frame_for(c), svc.requests(request_state::pending)));
        case action::request_page: {
            auto found = svc.request(id);
            if (const auto* e = std::get_if<error>(&found)) {
                return page_error(status_of(e->kind), version, c, e->message);
            }
            pages::request_view view;
            view.request = std::move(std::get<access_request>(found));
            view.scopes = svc.scope_choices(view.request);
            view.groups = svc.groups_of(view.request.key.client);
            view.required_approvals = svc.required_approvals(view.request.key.client);
            view.default_duration = duration_text(svc.settings().default_grant);
            view.max_duration = duration_text(svc.settings().max_grant);
            if (view.request.grant_id) {
                view.grant = find_grant(*view.request.grant_id);
                if (view.grant) {
                    view.snippet = svc.policy_snippet(*view.grant);
                }
            }
            history_filter filter;
            filter.request_id = id;
            view.history = svc.history(filter);
            return make_response(http::status::ok, version, text_html, pages::request_detail(frame_for(c), view));
        }
        case action::grants_page:
            return make_response(http::status::ok, version, text_html,
                                 pages::grants(frame_for(c), svc.grants_list(grant_state::active),
                                               duration_text(svc.settings().max_grant)));
        case action::history_page: {
            // The filter form's fields; empty ones mean "any", others are ignored.
            const auto params = decode_form(query);
            if (!params) {
                return page_error(http::status::bad_request, version, c, "The filter could not be read.");
            }
            history_filter filter;
            filter.client = field_or_empty(*params, "client");
            filter.host = field_or_empty(*params, "host");
            filter.actor = field_or_empty(*params, "actor");
            filter.event = field_or_empty(*params, "event");
            if (const auto request_text = field_or_empty(*params, "request"); !request_text.empty()) {
                filter.request_id = parse_id(request_text);
                if (!filter.request_id) {
                    return page_error(http::status::bad_request, version, c, "A request is a number, like 17.");
                }
            }
            if (const auto limit_text = field_or_empty(*params, "limit"); !limit_text.empty()) {
                const auto limit = parse_limit(limit_text);
                if (!limit) {
                    return page_error(http::status::bad_request, version, c, "The limit is a number up to 10000.");
                }
                filter.limit = *limit;
            }
            return make_response(http::status::ok, version, text_html,
                                 pages::history(frame_for(c), svc.history(filter), filter));
        }
        default:
            return page_error(http::status::not_found, version, c, "There is no such page.");
        }
    }

    // A form post: CSRF first, then the role, then the service; the answer is 303 back to a page that shows
    // the outcome (post/redirect/get, so reloading the page does not post again).
    response page_post(action a, std::int64_t id, const request& req, const caller& c)
    {
        const unsigned version = req.version();
        const auto form = read_form(req[http::field::content_type], req.body());
        if (!form) {
            return page_error(http::status::bad_request, version, c, "The form could not be read.");
        }
        if (!csrf_matches(*form, c.csrf)) {
            return page_error(http::status::forbidden, version, c,
                              "This form did not come from this page, or your session changed. Reload the page and "
                              "try again.");
        }
        if (a == action::logout) {
            if (!c.session_key.empty()) {
                sessions.erase(c.session_key);
            }
            auto res = see_other(version, "/login");
            res.set(http::field::set_cookie, cookie_value("", 0s));
            return res;
        }
        if (decides(a) && c.who.level != role::approver) {
            return page_error(http::status::forbidden, version, c, "Only approvers decide requests and grants.");
        }
        const std::string back = a == action::revoke || a == action::extend ? std::string("/grants")
                                                                             : "/requests/" + std::to_string(id);
        const std::string note = field_or_empty(*form, "note");
        std::optional<error> failed;
        std::string done;
        switch (a) {
        case action::justify: {
            auto result = svc.justify(c.who, id, field_or_empty(*form, "text"));
            if (auto* e = std::get_if<error>(&result)) {
                failed = std::move(*e);
            } else {
                done = "Your justification is added.";
            }
            break;
        }
        case action::approve: {
            approve_params params;
            params.destination = field_or_empty(*form, "destination");
            params.group = field_or_empty(*form, "group");
            params.note = note;
            if (const auto text = field_or_empty(*form, "duration"); !text.empty()) {
                params.duration = parse_seconds(text);
                if (!params.duration) {
                    failed = error{failure::invalid, "A duration is a number and a unit, like 30m, 8h or 2d."};
                    break;
                }
            }
            auto result = svc.approve(c.who, id, params);
            if (auto* e = std::get_if<error>(&result)) {
                failed = std::move(*e);
            } else if (const auto& g = std::get<approve_result>(result).grant) {
                done = "Approved: grant " + std::to_string(g->id) + " until " + pages::format_time(g->expires) + ".";
            } else {
                done = "Your approval is recorded. Another approver must approve too.";
            }
            break;
        }
        case action::deny: {
            auto result = svc.deny(c.who, id, note);
            if (auto* e = std::get_if<error>(&result)) {
                failed = std::move(*e);
            } else {
                done = "Denied request " + std::to_string(id) + ".";
            }
            break;
        }
        case action::revoke: {
            auto result = svc.revoke(c.who, id, note);
            if (auto* e = std::get_if<error>(&result)) {
                failed = std::move(*e);
            } else {
                done = "Revoked grant " + std::to_string(id) + ".";
            }
            break;
        }
        case action::extend: {
            const auto duration = parse_seconds(field_or_empty(*form, "duration"));
            if (!duration) {
                failed = error{failure::invalid, "A duration is a number and a unit, like 30m, 8h or 2d."};
                break;
            }
            auto result = svc.extend(c.who, id, *duration, note);
            if (auto* e = std::get_if<error>(&result)) {
                failed = std::move(*e);
            } else {
                done = "Extended grant " + std::to_string(id) + " until " +
                       pages::format_time(std::get<grant_record>(result).expires) + ".";
            }
            break;
        }
        default:
            return page_error(http::status::not_found, version, c, "There is no such page.");
        }
        if (failed && failed->kind == failure::not_found) {
            return page_error(http::status::not_found, version, c, failed->message);
        }
        set_flash(c.flash_key, failed ? failed->message : done, failed.has_value());
        return see_other(version, back);
    }

    // --- the JSON API ---------------------------------------------------------------------------------------

    response api_answer(action a, std::int64_t id, const request& req, std::string_view query, const caller& c)
    {
        const unsigned version = req.version();
        if (decides(a) && c.who.level != role::approver) {
            return json_error(http::status::forbidden, version, "only approvers decide requests and grants");
        }
        std::string problem;
        const auto bad_request = [&] { return json_error(http::status::bad_request, version, problem); };
        const auto invalid = [&](std::string_view message) {
            return json_error(http::status::unprocessable_entity, version, message);
        };
        const auto now = now_seconds();
        switch (a) {
        case action::api_whoami:
            return json_response(http::status::ok, version,
                                 json::object{{"user", c.who.name}, {"role", to_string(c.who.level)}});
        case action::api_requests: {
            const auto params = query_fields(query, query_parameters(a), problem);
            if (!params) {
                return bad_request();
            }
            std::optional<request_state> wanted;
            if (const auto it = params->find("state"); it != params->end()) {
                wanted = parse_request_state(it->second);
                if (!wanted) {
                    problem = "state is pending, approved, denied or expired";
                    return bad_request();
                }
            }
            const auto limit = limit_field(*params, default_list_limit, problem);
            if (!limit) {
                return bad_request();
            }
            json::array list;
            for (const auto& r : svc.requests(wanted, *limit)) {
                list.push_back(request_json(r, svc));
            }
            return json_response(http::status::ok, version, json::object{{"requests", std::move(list)}});
        }
        case action::api_request:
            return request_answer(svc.request(id), version);
        case action::api_grants: {
            const auto params = query_fields(query, query_parameters(a), problem);
            if (!params) {
                return bad_request();
            }
            std::optional<grant_state> wanted;
            if (const auto it = params->find("state"); it != params->end()) {
                wanted = parse_grant_state(it->second);
                if (!wanted) {
                    problem = "state is active, revoked or expired";
                    return bad_request();
                }
            }
            const auto limit = limit_field(*params, default_list_limit, problem);
            if (!limit) {
                return bad_request();
            }
            json::array list;
            for (const auto& g : svc.grants_list(wanted, *limit)) {
                list.push_back(grant_json(g, now));
            }
            return json_response(http::status::ok, version, json::object{{"grants", std::move(list)}});
        }
        case action::api_grant: {
            const auto g = find_grant(id);
            if (!g) {
                return json_error(http::status::not_found, version, "no grant " + std::to_string(id));
            }
            return json_response(http::status::ok, version, grant_json(*g, now));
        }
        case action::api_history: {
            const auto params = query_fields(query, query_parameters(a), problem);
            if (!params) {
                return bad_request();
            }
            history_filter filter;
            filter.client = field_or_empty(*params, "client");
            filter.host = field_or_empty(*params, "host");
            filter.actor = field_or_empty(*params, "actor");
            filter.event = field_or_empty(*params, "event");
            const auto number = [&](std::string_view name, std::optional<std::int64_t>& out) {
                const auto it = params->find(name);
                if (it == params->end()) {
                    return true;
                }
                out = parse_id(it->second);
                return out.has_value();
            };
            if (!number("request", filter.request_id) || !number("grant", filter.grant_id) ||
                !number("before", filter.before_id)) {
                problem = "request, grant and before are ids (positive numbers)";
                return bad_request();
            }
            const auto limit = limit_field(*params, filter.limit, problem);
            if (!limit) {
                return bad_request();
            }
            filter.limit = *limit;
            json::array list;
            for (const auto& h : svc.history(filter)) {
                list.push_back(history_json(h));
            }
            return json_response(http::status::ok, version, json::object{{"history", std::move(list)}});
        }
        case action::api_justify: {
            const auto body = api_body(req, a, problem);
            if (!body) {
                return bad_request();
            }
            const auto text = field_or_empty(*body, "text");
            if (text.empty()) {
                return invalid("text is required: a ticket link or a reason");
            }
            return request_answer(svc.justify(c.who, id, text), version);
        }
        case action::api_approve: {
            const auto body = api_body(req, a, problem);
            if (!body) {
                return bad_request();
            }
            approve_params params;
            const auto scope = field_or_empty(*body, "scope");
            params.destination = scope == "host" ? std::string() : scope;
            params.group = field_or_empty(*body, "group");
            params.note = field_or_empty(*body, "note");
            if (body->contains("duration")) {
                params.duration = parse_seconds(body->at("duration"));
                if (!params.duration) {
                    return invalid("duration is a number and a unit, like \"30m\", \"8h\" or \"2d\"");
                }
            }
            auto result = svc.approve(c.who, id, params);
            if (const auto* e = std::get_if<error>(&result)) {
                return json_error(status_of(e->kind), version, e->message);
            }
            const auto& approved = std::get<approve_result>(result);
            json::object out;
            out["request"] = request_json(approved.request, svc);
            out["grant"] = approved.grant ? json::value(grant_json(*approved.grant, now)) : json::value(nullptr);
            return json_response(http::status::ok, version, out);
        }
        case action::api_deny: {
            const auto body = api_body(req, a, problem);
            if (!body) {
                return bad_request();
            }
            return request_answer(svc.deny(c.who, id, field_or_empty(*body, "note")), version);
        }
        case action::api_revoke: {
            const auto body = api_body(req, a, problem);
            if (!body) {
                return bad_request();
            }
            return grant_answer(svc.revoke(c.who, id, field_or_empty(*body, "note")), version, now);
        }
        case action::api_extend: {
            const auto body = api_body(req, a, problem);
            if (!body) {
                return bad_request();
            }
            const auto duration = parse_seconds(field_or_empty(*body, "duration"));
            if (!duration) {
                return invalid("duration is required: a number and a unit, like \"4h\"");
            }
            return grant_answer(svc.extend(c.who, id, *duration, field_or_empty(*body, "note")), version, now);
        }
        default:
            return json_error(http::status::not_found, version, "no such resource");
        }
    }

    response request_answer(const outcome<access_request>& result, unsigned version) const
    {
        if (const auto* e = std::get_if<error>(&result)) {
            return json_error(status_of(e->kind), version, e->message);
        }
        return json_response(http::status::ok, version, request_json(std::get<access_request>(result), svc));
    }

    static response grant_answer(const outcome<grant_record>& result, unsigned version, time_point now)
    {
        if (const auto* e = std::get_if<error>(&result)) {
            return json_error(status_of(e->kind), version, e->message);
        }
        return json_response(http::status::ok, version, grant_json(std::get<grant_record>(result), now));
    }

    // --- reload ---------------------------------------------------------------------------------------------

    void replace_directory(directory d)
    {
        users = std::move(d);
        verified.clear();  // remembered checks were made against the old files
        // A session lives on only while its user is still in a file, with the role the files give now.
        for (auto it = sessions.begin(); it != sessions.end();) {
            const auto level = role_in(users, it->second.who.name);
            if (!level) {
                it = sessions.erase(it);
                continue;
            }
            it->second.who.level = *level;
            ++it;
        }
    }

    service& svc;
    web_settings setup;
    directory users;
    asio::thread_pool& pool;
    asio::any_io_executor executor;
    tcp::acceptor acceptor;
    std::array<unsigned char, 32> csrf_key{};
    std::string busy_reply;  // the whole 503 for connections over the limit, serialized once
    std::unordered_set<beast::tcp_stream*> streams;
    std::size_t active = 0;
    bool started = false;
    bool stopped = false;
    std::unordered_map<std::string, session> sessions;          // key: hex SHA-256 of the cookie's token
    std::unordered_map<std::string, flash_message> flashes;     // key: caller::flash_key
    std::unordered_map<std::string, verified_login> verified;  // key: hex SHA-256 of user NUL password
    std::unordered_map<policy::address, failures> sign_in_failures;       // sign-in failures by source address
};

web_server::web_server(service& svc, web_settings settings, directory users, asio::thread_pool& pool)
    : state_(std::make_shared<state>(svc, std::move(settings), std::move(users), pool)),
      local_endpoint_(state_->acceptor.local_endpoint())
{
}

web_server::~web_server()
{
    stop();
}

tcp::endpoint web_server::local_endpoint() const
{
    return local_endpoint_;
}

void web_server::set_directory(directory users)
{
    state_->replace_directory(std::move(users));
}

void web_server::set_tls(std::shared_ptr<boost::asio::ssl::context> tls)
{
    if (!state_->setup.tls || !tls) {
        throw std::invalid_argument("approvals TLS is on or off for the server's life");
    }
    state_->setup.tls = std::move(tls);
}

void web_server::start()
{
    if (state_->started || state_->stopped) {
        return;
    }
    state_->started = true;
    asio::co_spawn(state_->executor, state::accept_loop(state_), state::on_exit(state_, "approvals accept loop"));
}

void web_server::stop()
{
    state_->stop();
}

}  // namespace egressd::proxy::approvals
