#include "proxy/approvals_cli.hpp"

#include "certs/credentials.hpp"
#include "config/rfc3339.hpp"
#include "config/server_config.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <netdb.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <cstdlib>
#include <future>
#include <istream>
#include <map>
#include <memory>
#include <ostream>
#include <span>
#include <stdexcept>
#include <thread>

#ifndef EGRESSD_VERSION
#error "EGRESSD_VERSION must be defined by the build"
#endif

namespace egressd::proxy::approvals_cli {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace bj = boost::json;
using tcp = asio::ip::tcp;
using std::chrono::seconds;

constexpr std::string_view usage_text = R"(Usage:
  egressd approvals [OPTIONS] COMMAND [ARGS]

The command line over the approvals JSON API (the approvals listener of a running egressd).

Commands:
  list [--state pending|approved|denied|expired|all] [--limit N]
        access requests (default: pending): ID CLIENT DESTINATION HITS LAST SEEN REASON
  show ID
        one request: every field, its justifications and its approvers' votes
  approve ID [--duration 8h] [--scope host|PATTERN] [--group NAME] [--note TEXT]
        grant the request for a while (default: the server's default_grant, at most its max_grant);
        --scope host (the default) is the exact host, a PATTERN such as *.example.com or .example.com
        covers more; --group NAME grants every client of that policy group, not only the requester
  deny ID [--note TEXT]
        deny the request
  revoke GRANT_ID [--note TEXT]
        end an active grant now; the connections it allowed are closed
  extend GRANT_ID --duration D [--note TEXT]
        make an active grant end D from now (at most the server's max_grant)
  justify ID TEXT...
        add a justification (a ticket link, a reason) to a request
  grants [--state active|revoked|expired] [--limit N]
        grants: ID REQUEST FOR DESTINATION STATE EXPIRES LEFT APPROVED BY
  history [--client C] [--host H] [--actor A] [--event E] [--request ID] [--grant ID] [--limit N]
        the audit trail, newest first (--host matches part of the name)

Options (before or after the command; --name=value works too):
  --url URL          the approvals listener: http(s)://HOST[:PORT][/PATH]
                     (default: $EGRESSD_APPROVALS_URL, else http://127.0.0.1:9091)
  --user USER        sign in with HTTP Basic as USER (default: $EGRESSD_APPROVALS_USER)
  --password-stdin   read the password from the first line of standard input; otherwise it comes
                     from $EGRESSD_APPROVALS_PASSWORD (never from the command line, where ps shows it)
  --ca FILE          https: trust the PEM CA certificates in FILE instead of the system's
  --timeout SECONDS  deadline for the connection and for the whole exchange (default 10)
  --json             print the server's JSON answer unchanged

Durations are a whole number and a unit: 90s, 30m, 8h, 7d.
Exit codes: 0 ok, 1 the server refused (its message is printed), 2 usage error,
            3 cannot connect (or no answer within the deadline).
)";

// Answers larger than this are not an approvals server talking.
constexpr std::uint64_t max_answer_bytes = 64ull << 20;

int usage_error(std::ostream& err, std::string_view message)
{
    err << "egressd approvals: " << message << "\nRun 'egressd approvals --help' for usage.\n";
    return exit_usage;
}

std::string lower(std::string_view s)
{
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

bool has_control(std::string_view s)
{
    return std::any_of(s.begin(), s.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; });
}

template <typename T>
std::optional<T> parse_number(std::string_view text)
{
    T value{};
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
        return std::nullopt;
    }
    return value;
}

// --- the URL ------------------------------------------------------------------------------------------------

bool valid_host_name(std::string_view host)
{
    return !host.empty() && std::all_of(host.begin(), host.end(), [](unsigned char c) {
        return std::isalnum(c) != 0 || c == '-' || c == '.' || c == '_';
    });
}

std::string percent_encode(std::string_view s)
{
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) != 0 || c == '-' || c == '.' || c == '_' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

// A URL for messages: "user:password@" would show a password on the terminal.
std::string redact_userinfo(std::string_view url)
{
    auto start = url.find("://");
    start = start == std::string_view::npos ? 0 : start + 3;
    auto at = url.find('@', start);
    if (at == std::string_view::npos || at > url.find('/', start)) {
        return std::string(url);
    }
    return std::string(url.substr(0, start)) + "***" + std::string(url.substr(at));
}

std::string query_string(const std::vector<std::pair<std::string, std::string>>& params)
{
    std::string q;
    for (const auto& [name, value] : params) {
        q += (q.empty() ? "?" : "&") + name + "=" + percent_encode(value);
    }
    return q;
}

// --- arguments ----------------------------------------------------------------------------------------------

struct command_spec {
    std::string_view name;
    std::vector<std::string_view> options;  // each takes a value
};

const std::vector<command_spec>& commands()
{
    static const std::vector<command_spec> all{
        {"list", {"state", "limit"}},
        {"show", {}},
        {"approve", {"duration", "scope", "group", "note"}},
        {"deny", {"note"}},
        {"revoke", {"note"}},
        {"extend", {"duration", "note"}},
        {"justify", {}},
        {"grants", {"state", "limit"}},
        {"history", {"client", "host", "actor", "event", "request", "grant", "limit"}},
    };
    return all;
}

const command_spec* find_command(std::string_view name)
{
    for (const auto& c : commands()) {
        if (c.name == name) {
            return &c;
        }
    }
    return nullptr;
}

// What the command line said, before it is checked against the command.
struct raw_args {
    std::optional<std::string> url, user, ca, timeout;
    bool json = false;
    bool password_stdin = false;
    bool help = false;
    std::vector<std::string> positional;
    std::vector<std::pair<std::string, std::string>> command_options;  // in order; the last of a name wins
};

constexpr std::string_view password_refusal =
    "the password is never taken from the command line (ps and shell history would show it): "
    "set EGRESSD_APPROVALS_PASSWORD or use --password-stdin";

// Splits args into options and positional arguments. Returns a usage error, or nothing.
std::optional<std::string> split_args(const std::vector<std::string>& args, raw_args& raw)
{
    bool options_ended = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (options_ended || a == "-" || !a.starts_with("-")) {
            raw.positional.push_back(a);
            continue;
        }
        if (a == "--") {
            options_ended = true;
            continue;
        }
        if (a == "-h" || a == "--help") {
            raw.help = true;
            continue;
        }
        if (!a.starts_with("--")) {
            if (a == "-p") {
                return std::string(password_refusal);
            }
            return "unknown option '" + a + "'";
        }
        auto eq = a.find('=');
        std::string name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
        std::optional<std::string> inline_value;
        if (eq != std::string::npos) {
            inline_value = a.substr(eq + 1);
        }
        if (name == "password" || name == "pass" || name == "passwd") {
            return std::string(password_refusal);
        }
        if (name == "json" || name == "password-stdin") {
            if (inline_value) {
                return "--" + name + " takes no value";
            }
            (name == "json" ? raw.json : raw.password_stdin) = true;
            continue;
        }
        std::string value;
        if (inline_value) {
            value = *inline_value;
        } else {
            // A following option is not a value: "--note --duration 8h" forgot the note.
            if (i + 1 >= args.size() || args[i + 1].starts_with("--")) {
                return "--" + name + " needs a value";
            }
            value = args[++i];
        }
        if (name == "url") {
            raw.url = value;
        } else if (name == "user") {
            raw.user = value;
        } else if (name == "ca") {
            raw.ca = value;
        } else if (name == "timeout") {
            raw.timeout = value;
        } else {
            raw.command_options.emplace_back(name, value);
        }
    }
    return std::nullopt;
}

std::optional<std::string> check_duration(std::string_view text)
{
    auto d = config::parse_duration(text);
    if (!d || d->count() <= 0 || d->count() % 1000 != 0) {
        return "--duration '" + std::string(text) + "' is not a duration like 90s, 30m, 8h or 7d";
    }
    return std::nullopt;
}

// A request or grant id: what `list` and `grants` show.
std::optional<std::string> check_id(std::string_view command, std::string_view what, const std::string& text)
{
    auto n = parse_number<std::int64_t>(text);
    if (!n || *n <= 0) {
        return std::string(command) + ": '" + text + "' is not a " + std::string(what) + " (a number, as '" +
               (what == "grant id" ? "grants" : "list") + "' shows)";
    }
    return std::nullopt;
}

struct command_input {
    std::string_view name;
    std::vector<std::string> positional;       // after the command name
    std::map<std::string, std::string> option;  // the last value of each
};

// Builds the API call of one command. Returns a usage error, or nothing.
std::optional<std::string> build_call(const command_input& in, api_call& call)
{
    auto opt = [&](const char* name) -> std::optional<std::string> {
        auto it = in.option.find(name);
        return it == in.option.end() ? std::nullopt : std::optional<std::string>(it->second);
    };
    auto takes_id = [&](std::string_view what) -> std::optional<std::string> {
        if (in.positional.empty()) {
            return std::string(in.name) + " needs a " + std::string(what) + " (as '" +
                   (what == "grant id" ? "grants" : "list") + "' shows)";
        }
        if (auto e = check_id(in.name, what, in.positional[0])) {
            return e;
        }
        if (in.name != "justify" && in.positional.size() > 1) {
            return "unexpected argument '" + in.positional[1] + "'";
        }
        return std::nullopt;
    };
    auto state_of = [&](std::vector<std::string_view> allowed) -> std::optional<std::string> {
        auto s = opt("state");
        if (s && std::find(allowed.begin(), allowed.end(), *s) == allowed.end()) {
            std::string list;
            for (auto a : allowed) {
                list += (list.empty() ? "" : "|") + std::string(a);
            }
            return "--state '" + *s + "' is not one of " + list;
        }
        return std::nullopt;
    };
    auto limit_of = [&]() -> std::optional<std::string> {
        auto l = opt("limit");
        if (l) {
            auto n = parse_number<std::int64_t>(*l);
            if (!n || *n <= 0) {
                return "--limit '" + *l + "' is not a positive number";
            }
        }
        return std::nullopt;
    };
    auto note_into = [&](bj::object& body) {
        if (auto n = opt("note")) {
            body["note"] = *n;
        }
    };
    auto no_positional = [&]() -> std::optional<std::string> {
        if (!in.positional.empty()) {
            return "unexpected argument '" + in.positional[0] + "'";
        }
        return std::nullopt;
    };

    const std::string_view name = in.name;
    if (name == "list" || name == "grants") {
        if (auto e = no_positional()) {
            return e;
        }
        bool list = name == "list";
        if (auto e = list ? state_of({"pending", "approved", "denied", "expired", "all"})
                          : state_of({"active", "revoked", "expired"})) {
            return e;
        }
        if (auto e = limit_of()) {
            return e;
        }
        // The table is made for the pending requests an approver decides; "all" asks for every state.
        std::string state = opt("state").value_or(list ? "pending" : "");
        std::vector<std::pair<std::string, std::string>> params;
        if (!state.empty() && state != "all") {
            params.emplace_back("state", state);
        }
        if (auto v = opt("limit")) {
            params.emplace_back("limit", *v);
        }
        call.with_state = state == "all";
        call.method = "GET";
        call.target = std::string(list ? "/api/v1/requests" : "/api/v1/grants") + query_string(params);
        call.output = list ? output_kind::requests : output_kind::grants;
        return std::nullopt;
    }
    if (name == "history") {
        if (auto e = no_positional()) {
            return e;
        }
        if (auto e = limit_of()) {
            return e;
        }
        for (const char* id_option : {"request", "grant"}) {
            if (auto v = opt(id_option)) {
                auto n = parse_number<std::int64_t>(*v);
                if (!n || *n <= 0) {
                    return "--" + std::string(id_option) + " '" + *v + "' is not a " + id_option + " id (a number)";
                }
            }
        }
        std::vector<std::pair<std::string, std::string>> params;
        for (const char* p : {"client", "host", "actor", "event", "request", "grant", "limit"}) {
            if (auto v = opt(p)) {
                params.emplace_back(p, *v);
            }
        }
        call.method = "GET";
        call.target = "/api/v1/history" + query_string(params);
        call.output = output_kind::history;
        return std::nullopt;
    }
    if (name == "show") {
        if (auto e = takes_id("request id")) {
            return e;
        }
        call.method = "GET";
        call.target = "/api/v1/requests/" + in.positional[0];
        call.output = output_kind::request;
        return std::nullopt;
    }
    bj::object body;
    if (name == "approve") {
        if (auto e = takes_id("request id")) {
            return e;
        }
        if (auto d = opt("duration")) {
            if (auto e = check_duration(*d)) {
                return e;
            }
            body["duration"] = *d;
        }
        if (auto s = opt("scope")) {
            if (s->empty()) {
                return std::string("--scope needs 'host' or a pattern such as *.example.com");
            }
            body["scope"] = *s;
        }
        if (auto g = opt("group")) {
            if (g->empty()) {
                return std::string("--group needs the name of a policy group");
            }
            body["group"] = *g;
        }
        note_into(body);
        call.target = "/api/v1/requests/" + in.positional[0] + "/approve";
        call.output = output_kind::approval;
    } else if (name == "deny") {
        if (auto e = takes_id("request id")) {
            return e;
        }
        note_into(body);
        call.target = "/api/v1/requests/" + in.positional[0] + "/deny";
        call.output = output_kind::request;
    } else if (name == "revoke" || name == "extend") {
        if (auto e = takes_id("grant id")) {
            return e;
        }
        if (name == "extend") {
            auto d = opt("duration");
            if (!d) {
                return std::string("extend needs --duration D, e.g. --duration 4h");
            }
            if (auto e = check_duration(*d)) {
                return e;
            }
            body["duration"] = *d;
        }
        note_into(body);
        call.target = "/api/v1/grants/" + in.positional[0] + "/" + std::string(name);
        call.output = output_kind::grant;
    } else if (name == "justify") {
        if (auto e = takes_id("request id")) {
            return e;
        }
        std::string text;
        for (std::size_t i = 1; i < in.positional.size(); ++i) {
            text += (i > 1 ? " " : "") + in.positional[i];
        }
        if (text.find_first_not_of(" \t") == std::string::npos) {
            return std::string("justify needs a TEXT after the request id (a ticket link, a reason)");
        }
        body["text"] = text;
        call.target = "/api/v1/requests/" + in.positional[0] + "/justify";
        call.output = output_kind::request;
    }
    call.method = "POST";
    call.body = bj::serialize(body);
    return std::nullopt;
}

// --- the exchange -------------------------------------------------------------------------------------------

struct http_answer {
    unsigned status = 0;
    std::string reason;
    std::string body;
};

struct exchange_outcome {
    std::optional<http_answer> answer;
    std::string failure;  // why there is no answer
};

std::string seconds_text(std::chrono::milliseconds d)
{
    if (d.count() % 1000 == 0) {
        return std::to_string(d.count() / 1000) + " s";
    }
    return std::to_string(d.count()) + " ms";
}

bool is_ip_literal(const std::string& host)
{
    boost::system::error_code ec;
    (void)asio::ip::make_address(host, ec);
    return !ec;
}

struct resolution {
    std::vector<tcp::endpoint> endpoints;
    std::string error;
};

// getaddrinfo cannot be cancelled, and Asio's resolver waits for it: it runs on a thread of its own that the
// caller stops waiting for at the deadline (the thread ends when getaddrinfo does).
resolution resolve(const std::string& host, std::uint16_t port, std::chrono::steady_clock::time_point deadline)
{
    boost::system::error_code ec;
    auto literal = asio::ip::make_address(host, ec);
    if (!ec) {
        return {{tcp::endpoint(literal, port)}, {}};
    }
    auto promise = std::make_shared<std::promise<resolution>>();
    auto future = promise->get_future();
    std::thread([promise, host, port] {
        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICSERV;
        addrinfo* found = nullptr;
        int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
        resolution r;
        if (rc != 0) {
            r.error = ::gai_strerror(rc);
        } else {
            for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
                tcp::endpoint e;
                if (a->ai_addrlen <= e.capacity()) {
                    std::memcpy(e.data(), a->ai_addr, a->ai_addrlen);
                    e.resize(a->ai_addrlen);
                    r.endpoints.push_back(e);
                }
            }
            ::freeaddrinfo(found);
        }
        promise->set_value(std::move(r));
    }).detach();
    if (future.wait_until(deadline) != std::future_status::ready) {
        return {{}, "no address within the deadline"};
    }
    return future.get();
}

// The reason a TLS handshake failed, with OpenSSL's verification result when that is the cause.
std::string tls_failure(const boost::system::error_code& ec, SSL* ssl)
{
    std::string text = "TLS handshake failed: " + ec.message();
    long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK) {
        text += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
    }
    return text;
}

template <typename Stream>
asio::awaitable<exchange_outcome> send_and_read(Stream& stream, beast::tcp_stream& lowest,
                                                const http::request<http::string_body>& req,
                                                std::chrono::steady_clock::time_point deadline,
                                                const std::string& where, std::chrono::milliseconds timeout)
{
    using asio::as_tuple;
    using asio::use_awaitable;
    lowest.expires_at(deadline);
    auto [wec, written] = co_await http::async_write(stream, req, as_tuple(use_awaitable));
    (void)written;
    if (wec == beast::error::timeout) {
        co_return exchange_outcome{std::nullopt, "no answer from " + where + " within " + seconds_text(timeout)};
    }
    if (wec) {
        co_return exchange_outcome{std::nullopt, "cannot send to " + where + ": " + wec.message()};
    }
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(max_answer_bytes);
    auto [rec, read] = co_await http::async_read(stream, buffer, parser, as_tuple(use_awaitable));
    (void)read;
    if (rec == beast::error::timeout) {
        co_return exchange_outcome{std::nullopt, "no answer from " + where + " within " + seconds_text(timeout)};
    }
    if (rec) {
        co_return exchange_outcome{std::nullopt, "no answer from " + where + ": " + rec.message()};
    }
    auto res = parser.release();
    co_return exchange_outcome{http_answer{res.result_int(), std::string(res.reason()), std::move(res.body())}, {}};
}

asio::awaitable<exchange_outcome> exchange(const options& o, const std::vector<tcp::endpoint>& endpoints,
                                           http::request<http::string_body> req, asio::ssl::context* tls,
                                           std::chrono::steady_clock::time_point deadline)
{
    using asio::as_tuple;
    using asio::use_awaitable;
    const auto& where = o.url.text;
    beast::tcp_stream tcp_stream(co_await asio::this_coro::executor);
    tcp_stream.expires_at(deadline);
    auto [cec, connected] = co_await tcp_stream.async_connect(endpoints, as_tuple(use_awaitable));
    (void)connected;
    if (cec == beast::error::timeout) {
        co_return exchange_outcome{std::nullopt,
                                   "cannot connect to " + where + ": no connection within " + seconds_text(o.timeout)};
    }
    if (cec) {
        co_return exchange_outcome{std::nullopt, "cannot connect to " + where + ": " + cec.message()};
    }
    if (tls == nullptr) {
        co_return co_await send_and_read(tcp_stream, tcp_stream, req, deadline, where, o.timeout);
    }
    beast::ssl_stream<beast::tcp_stream> stream(std::move(tcp_stream), *tls);
    SSL* ssl = stream.native_handle();
    // OpenSSL's own check of the name (or address) in the certificate, so that a mismatch is reported as one.
    if (is_ip_literal(o.url.host)) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), o.url.host.c_str());
    } else {
        // SNI carries names only (RFC 6066 section 3).
        SSL_set_tlsext_host_name(ssl, o.url.host.c_str());
        SSL_set1_host(ssl, o.url.host.c_str());
    }
    beast::get_lowest_layer(stream).expires_at(deadline);
    auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::client, as_tuple(use_awaitable));
    if (hec == beast::error::timeout) {
        co_return exchange_outcome{std::nullopt, "cannot connect to " + where + ": no TLS handshake within " +
                                                     seconds_text(o.timeout)};
    }
    if (hec) {
        co_return exchange_outcome{std::nullopt, "cannot connect to " + where + ": " + tls_failure(hec, ssl)};
    }
    co_return co_await send_and_read(stream, beast::get_lowest_layer(stream), req, deadline, where, o.timeout);
}

bool is_loopback(const std::string& host)
{
    boost::system::error_code ec;
    auto a = asio::ip::make_address(host, ec);
    return ec ? lower(host) == "localhost" : a.is_loopback();
}

// --- formatting ---------------------------------------------------------------------------------------------

// The server's text is shown, never obeyed: control characters (an ESC sequence in a justification, say)
// are written out as escapes.
std::string clean(std::string_view s)
{
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : s) {
        if (c == '\n') {
            out += "\\n";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c < 0x20 || c == 0x7f) {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

// Columns line up by characters, not bytes (UTF-8 continuation bytes take no column).
std::size_t display_width(std::string_view s)
{
    return static_cast<std::size_t>(
        std::count_if(s.begin(), s.end(), [](unsigned char c) { return (c & 0xc0) != 0x80; }));
}

std::string render_table(const std::vector<std::string>& headers, const std::vector<std::vector<std::string>>& rows)
{
    std::vector<std::size_t> width(headers.size());
    for (std::size_t c = 0; c < headers.size(); ++c) {
        width[c] = display_width(headers[c]);
        for (const auto& row : rows) {
            width[c] = std::max(width[c], display_width(row[c]));
        }
    }
    std::string out;
    auto line = [&](const std::vector<std::string>& cells) {
        std::string text;
        for (std::size_t c = 0; c < cells.size(); ++c) {
            text += cells[c];
            if (c + 1 < cells.size()) {
                text += std::string(width[c] - display_width(cells[c]) + 2, ' ');
            }
        }
        // An empty last column leaves no trailing blanks.
        text.erase(text.find_last_not_of(' ') + 1);
        out += text + '\n';
    };
    line(headers);
    for (const auto& row : rows) {
        line(row);
    }
    return out;
}

const bj::object& as_object(const bj::value& v, std::string_view what)
{
    if (!v.is_object()) {
        throw std::runtime_error("expected " + std::string(what) + " as a JSON object");
    }
    return v.get_object();
}

const bj::array& list_of(const bj::value& answer, std::string_view key)
{
    const auto& o = as_object(answer, "the answer");
    const auto* v = o.if_contains(key);
    if (v == nullptr || !v->is_array()) {
        throw std::runtime_error("the answer has no \"" + std::string(key) + "\" list");
    }
    return v->get_array();
}

// A field as text: strings cleaned, numbers as written, null or absent as "".
std::string field(const bj::object& o, std::string_view key)
{
    const auto* v = o.if_contains(key);
    if (v == nullptr) {
        return {};
    }
    switch (v->kind()) {
    case bj::kind::string:
        return clean(v->get_string());
    case bj::kind::int64:
        return std::to_string(v->get_int64());
    case bj::kind::uint64:
        return std::to_string(v->get_uint64());
    case bj::kind::double_:
        return std::to_string(static_cast<std::int64_t>(v->get_double()));
    case bj::kind::bool_:
        return v->get_bool() ? "yes" : "no";
    default:
        return {};
    }
}

std::string or_dash(std::string s) { return s.empty() ? "-" : s; }

std::string destination(const bj::object& o, std::string_view host_key)
{
    std::string host = field(o, host_key);
    std::string port = field(o, "port");
    if (host.empty()) {
        return "-";
    }
    if (host.find(':') != std::string::npos) {
        host = "[" + host + "]";
    }
    return port.empty() || port == "0" ? host : host + ":" + port;
}

// "2026-12-06T10:00:00Z" as "5m ago"; text that is not a time stays as it is.
std::string age(const std::string& when, std::chrono::sys_seconds now)
{
    auto t = config::parse_rfc3339(when);
    if (!t) {
        return when;
    }
    return format_span(now - *t) + " ago";
}

std::string time_with_age(const std::string& when, std::chrono::sys_seconds now)
{
    if (when.empty()) {
        return {};
    }
    auto t = config::parse_rfc3339(when);
    return t ? when + " (" + format_span(now - *t) + " ago)" : when;
}

// What is left of an active grant: the server's seconds_left, else until its expiry.
std::string time_left(const bj::object& g, std::chrono::sys_seconds now)
{
    if (field(g, "state") != "active") {
        return "-";
    }
    if (auto left = parse_number<std::int64_t>(field(g, "seconds_left"))) {
        return format_span(seconds(*left));
    }
    auto t = config::parse_rfc3339(field(g, "expires"));
    return t ? format_span(*t - now) : "-";
}

std::string grant_holder(const bj::object& g)
{
    std::string scope = field(g, "scope");
    std::string name = field(g, "scope_name");
    return name.empty() ? or_dash(scope) : (scope.empty() ? name : scope + " " + name);
}

void append_field(std::string& out, std::string_view label, const std::string& value)
{
    if (value.empty()) {
        return;
    }
    out += "  " + std::string(label) + ":";
    out += std::string(label.size() < 14 ? 14 - label.size() : 1, ' ') + value + '\n';
}

void append_entries(std::string& out, const bj::object& request, std::string_view key, std::string_view title,
                    std::string_view who)
{
    const auto* v = request.if_contains(key);
    if (v == nullptr || !v->is_array() || v->get_array().empty()) {
        return;
    }
    out += std::string(title) + ":\n";
    for (const auto& entry : v->get_array()) {
        if (!entry.is_object()) {
            continue;
        }
        const auto& e = entry.get_object();
        std::string text = field(e, key == "justifications" ? "text" : "note");
        out += "  " + or_dash(field(e, "at")) + "  " + or_dash(field(e, who)) + (text.empty() ? "" : ": " + text) +
               '\n';
    }
}

// --- the answer ---------------------------------------------------------------------------------------------

std::string format_answer(const api_call& call, const bj::value& answer, std::chrono::sys_seconds now)
{
    switch (call.output) {
    case output_kind::requests:
        return format_requests(answer, now, call.with_state);
    case output_kind::request:
        return format_request(answer, now);
    case output_kind::approval:
        return format_approval(answer);
    case output_kind::grants:
        return format_grants(answer, now);
    case output_kind::grant:
        return format_grant(answer, now);
    case output_kind::history:
        return format_history(answer);
    }
    return {};
}

// The server's own message, from {"error": "..."}; else the start of what it sent.
std::string refusal_message(const http_answer& a)
{
    boost::system::error_code ec;
    auto v = bj::parse(a.body, ec);
    if (!ec && v.is_object()) {
        if (const auto* e = v.get_object().if_contains("error"); e != nullptr && e->is_string()) {
            return clean(e->get_string());
        }
    }
    std::string start = a.body.substr(0, 200);
    start.erase(start.find_last_not_of(" \r\n\t") + 1);
    return start.empty() ? std::string("(no message)") : clean(start);
}

int handle_answer(const options& o, const http_answer& a, std::ostream& out, std::ostream& err)
{
    bool ok = a.status >= 200 && a.status < 300;
    if (o.json && (ok || a.body.starts_with("{"))) {
        out << a.body << (a.body.ends_with('\n') ? "" : "\n");
    }
    if (!ok) {
        err << "egressd approvals: the server refused (" << a.status << (a.reason.empty() ? "" : " ")
            << clean(a.reason) << "): " << refusal_message(a) << '\n';
        if (a.status == 401) {
            err << "Sign in with --user USER and the password in EGRESSD_APPROVALS_PASSWORD or on standard "
                   "input with --password-stdin.\n";
        } else if (a.status == 403 && o.call.method == "POST") {
            err << "Deciding needs a user from the approvers file; nobody decides a request they justified.\n";
        }
        return exit_refused;
    }
    if (o.json) {
        return exit_ok;
    }
    try {
        auto value = bj::parse(a.body);
        auto now = std::chrono::floor<seconds>(std::chrono::system_clock::now());
        out << format_answer(o.call, value, now);
    } catch (const std::exception& e) {
        err << "egressd approvals: the answer from " << o.url.text << " was not understood (" << e.what()
            << "); is this the approvals listener?\n";
        return exit_refused;
    }
    return exit_ok;
}

}  // namespace

environment environment::from_process()
{
    auto get = [](const char* name) -> std::optional<std::string> {
        const char* v = std::getenv(name);
        if (v == nullptr || *v == '\0') {
            return std::nullopt;
        }
        return std::string(v);
    };
    return {get("EGRESSD_APPROVALS_URL"), get("EGRESSD_APPROVALS_USER"), get("EGRESSD_APPROVALS_PASSWORD")};
}

std::string server_url::authority() const
{
    std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    return h + ":" + std::to_string(port);
}

url_result parse_url(std::string_view text)
{
    url_result r;
    auto fail = [&r](std::string why) {
        r.error = std::move(why);
        return r;
    };
    server_url u;
    u.text = std::string(text);
    auto scheme_end = text.find("://");
    if (scheme_end == std::string_view::npos) {
        return fail("expected http://HOST[:PORT] or https://HOST[:PORT]");
    }
    auto scheme = lower(text.substr(0, scheme_end));
    if (scheme == "https") {
        u.tls = true;
    } else if (scheme != "http") {
        return fail("the scheme must be http or https");
    }
    auto rest = text.substr(scheme_end + 3);
    if (rest.find_first_of("?#") != std::string_view::npos) {
        return fail("no query or fragment: give the scheme, host, port and path only");
    }
    auto path_at = rest.find('/');
    auto authority = rest.substr(0, path_at);
    std::string_view path = path_at == std::string_view::npos ? std::string_view() : rest.substr(path_at);
    if (authority.find('@') != std::string_view::npos) {
        return fail("no credentials in the URL: use --user, and EGRESSD_APPROVALS_PASSWORD or --password-stdin");
    }
    std::string_view port_text;
    bool has_port = false;
    if (authority.starts_with('[')) {
        auto close = authority.find(']');
        if (close == std::string_view::npos) {
            return fail("an IPv6 address needs its closing ']'");
        }
        u.host = std::string(authority.substr(1, close - 1));
        boost::system::error_code ec;
        (void)asio::ip::make_address_v6(u.host, ec);
        if (ec) {
            return fail("'" + u.host + "' is not an IPv6 address");
        }
        auto after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after[0] != ':') {
                return fail("expected ':PORT' after ']'");
            }
            port_text = after.substr(1);
            has_port = true;
        }
    } else {
        auto colon = authority.find(':');
        u.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) {
            port_text = authority.substr(colon + 1);
            has_port = true;
            if (port_text.find(':') != std::string_view::npos) {
                return fail("an IPv6 address goes in brackets: http://[::1]:9091");
            }
        }
        if (u.host.empty()) {
            return fail("no host");
        }
        if (!valid_host_name(u.host)) {
            return fail("'" + u.host + "' is not a host name or IP address");
        }
    }
    if (has_port) {
        auto port = parse_number<std::uint32_t>(port_text);
        if (!port || *port == 0 || *port > 65535) {
            return fail("invalid port '" + std::string(port_text) + "': expected 1 to 65535");
        }
        u.port = static_cast<std::uint16_t>(*port);
    } else {
        u.port = u.tls ? 443 : 80;
    }
    if (has_control(path) || path.find(' ') != std::string_view::npos) {
        return fail("the path has spaces or control characters");
    }
    while (path.ends_with('/')) {
        path.remove_suffix(1);
    }
    u.base_path = std::string(path);
    r.value = std::move(u);
    return r;
}

std::string_view usage() { return usage_text; }

parse_result parse_args(const std::vector<std::string>& args, const environment& env)
{
    parse_result result;
    auto fail = [&result](std::string message) {
        result.error = std::move(message);
        return result;
    };
    raw_args raw;
    if (auto e = split_args(args, raw)) {
        return fail(*e);
    }
    if (raw.help || (!raw.positional.empty() && raw.positional[0] == "help")) {
        result.help = true;
        return result;
    }
    if (raw.positional.empty()) {
        return fail("no command: list, show, approve, deny, revoke, extend, justify, grants or history");
    }
    const command_spec* spec = find_command(raw.positional[0]);
    if (spec == nullptr) {
        return fail("unknown command '" + raw.positional[0] + "'");
    }
    command_input in;
    in.name = spec->name;
    in.positional.assign(raw.positional.begin() + 1, raw.positional.end());
    for (const auto& [name, value] : raw.command_options) {
        if (std::find(spec->options.begin(), spec->options.end(), name) == spec->options.end()) {
            return fail("unknown option '--" + name + "' for " + std::string(spec->name));
        }
        in.option[name] = value;
    }

    options o;
    if (auto e = build_call(in, o.call)) {
        return fail(*e);
    }
    std::string url_source = raw.url ? "--url" : "EGRESSD_APPROVALS_URL";
    std::string url_text = raw.url ? *raw.url : env.url.value_or(std::string(default_url));
    auto url = parse_url(url_text);
    if (!url.value) {
        return fail((raw.url || env.url ? url_source + " " : std::string()) + "'" + redact_userinfo(url_text) +
                    "': " + url.error);
    }
    o.url = std::move(*url.value);
    o.call.target = o.url.base_path + o.call.target;

    o.user = raw.user ? *raw.user : env.user.value_or("");
    if (raw.user && raw.user->empty()) {
        return fail("--user needs a user name");
    }
    if (o.user.find(':') != std::string::npos || has_control(o.user)) {
        return fail("user '" + clean(o.user) + "' has a ':' or a control character, which HTTP Basic cannot carry");
    }
    o.password_stdin = raw.password_stdin;
    o.password = env.password;
    if (o.user.empty() && (o.password_stdin || o.password)) {
        return fail(std::string(o.password_stdin ? "--password-stdin" : "EGRESSD_APPROVALS_PASSWORD is set but") +
                    " needs a user: --user USER or EGRESSD_APPROVALS_USER");
    }
    if (raw.ca) {
        if (!o.url.tls) {
            return fail("--ca applies to https:// URLs only, and the URL is " + o.url.text);
        }
        if (raw.ca->empty()) {
            return fail("--ca needs a file");
        }
        o.ca_file = *raw.ca;
    }
    if (raw.timeout) {
        double s = 0;
        auto [end, ec] = std::from_chars(raw.timeout->data(), raw.timeout->data() + raw.timeout->size(), s);
        if (ec != std::errc() || end != raw.timeout->data() + raw.timeout->size() || !(s > 0) || s > 3600) {
            return fail("--timeout '" + *raw.timeout + "' is not a number of seconds (more than 0, at most 3600)");
        }
        o.timeout = std::chrono::milliseconds(std::max<std::int64_t>(1, static_cast<std::int64_t>(s * 1000)));
    }
    o.json = raw.json;
    result.value = std::move(o);
    return result;
}

std::string format_span(std::chrono::seconds span)
{
    auto s = span.count();
    if (s <= 0) {
        return "0s";
    }
    if (s < 60) {
        return std::to_string(s) + "s";
    }
    if (s < 3600) {
        return std::to_string(s / 60) + "m";
    }
    if (s < 86400) {
        auto m = (s % 3600) / 60;
        return std::to_string(s / 3600) + "h" + (m != 0 ? " " + std::to_string(m) + "m" : "");
    }
    auto h = (s % 86400) / 3600;
    return std::to_string(s / 86400) + "d" + (h != 0 ? " " + std::to_string(h) + "h" : "");
}

std::string format_requests(const bj::value& answer, std::chrono::sys_seconds now, bool with_state)
{
    const auto& list = list_of(answer, "requests");
    if (list.empty()) {
        return "no access requests\n";
    }
    std::vector<std::string> headers{"ID", "CLIENT", "DESTINATION", "HITS", "LAST SEEN", "REASON"};
    if (with_state) {
        headers.insert(headers.begin() + 1, "STATE");
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& item : list) {
        const auto& r = as_object(item, "a request");
        rows.push_back({field(r, "id"), field(r, "client"), destination(r, "host"), field(r, "hits"),
                        age(field(r, "last_seen"), now), field(r, "reason")});
        if (with_state) {
            rows.back().insert(rows.back().begin() + 1, field(r, "state"));
        }
    }
    return render_table(headers, rows);
}

std::string format_request(const bj::value& request, std::chrono::sys_seconds now)
{
    const auto& r = as_object(request, "a request");
    std::string out = "request " + field(r, "id") + ": " + or_dash(field(r, "client")) + " -> " +
                      destination(r, "host") + " (" + or_dash(field(r, "state")) + ")\n";
    append_field(out, "reason", field(r, "reason"));
    append_field(out, "hits", field(r, "hits"));
    append_field(out, "first seen", time_with_age(field(r, "first_seen"), now));
    append_field(out, "last seen", time_with_age(field(r, "last_seen"), now));
    append_field(out, "last source", field(r, "last_source"));
    append_field(out, "last identity", field(r, "last_identity"));
    append_field(out, "decided by", field(r, "decided_by"));
    append_field(out, "decided at", field(r, "decided_at"));
    append_field(out, "note", field(r, "decision_note"));
    append_field(out, "grant", field(r, "grant_id"));
    append_field(out, "page", field(r, "url"));
    append_entries(out, r, "justifications", "justifications", "user");
    append_entries(out, r, "votes", "votes", "approver");
    return out;
}

std::string format_approval(const bj::value& answer)
{
    const auto& a = as_object(answer, "the answer");
    const auto* grant = a.if_contains("grant");
    if (grant == nullptr || grant->is_null()) {
        std::string id;
        if (const auto* r = a.if_contains("request"); r != nullptr && r->is_object()) {
            id = field(r->get_object(), "id");
        }
        return "vote recorded: one more approver needed" + (id.empty() ? "" : " (request " + id + ")") + "\n";
    }
    const auto& g = as_object(*grant, "the grant");
    std::string left = field(g, "seconds_left");
    auto seconds_left = parse_number<std::int64_t>(left);
    return "grant " + field(g, "id") + ": " + destination(g, "destination") + " for " + grant_holder(g) + " until " +
           or_dash(field(g, "expires")) + (seconds_left ? " (" + format_span(seconds(*seconds_left)) + ")" : "") +
           "\n";
}

std::string format_grants(const bj::value& answer, std::chrono::sys_seconds now)
{
    const auto& list = list_of(answer, "grants");
    if (list.empty()) {
        return "no grants\n";
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& item : list) {
        const auto& g = as_object(item, "a grant");
        rows.push_back({field(g, "id"), or_dash(field(g, "request_id")), grant_holder(g), destination(g, "destination"),
                        field(g, "state"), field(g, "expires"), time_left(g, now), field(g, "approved_by")});
    }
    return render_table({"ID", "REQUEST", "FOR", "DESTINATION", "STATE", "EXPIRES", "LEFT", "APPROVED BY"}, rows);
}

std::string format_grant(const bj::value& grant, std::chrono::sys_seconds now)
{
    const auto& g = as_object(grant, "a grant");
    std::string out = "grant " + field(g, "id") + ": " + destination(g, "destination") + " for " + grant_holder(g) +
                      " (" + or_dash(field(g, "state")) + ")\n";
    append_field(out, "request", field(g, "request_id"));
    append_field(out, "created", field(g, "created"));
    std::string left = time_left(g, now);
    append_field(out, "expires", field(g, "expires") + (left == "-" ? "" : " (" + left + " left)"));
    append_field(out, "approved by", field(g, "approved_by"));
    append_field(out, "note", field(g, "note"));
    std::string ended_by = field(g, "ended_by");
    append_field(out, "ended", field(g, "ended_at") + (ended_by.empty() ? "" : " by " + ended_by));
    return out;
}

std::string format_history(const bj::value& answer)
{
    const auto& list = list_of(answer, "history");
    if (list.empty()) {
        return "no history entries\n";
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& item : list) {
        const auto& h = as_object(item, "a history entry");
        rows.push_back({field(h, "id"), field(h, "at"), field(h, "event"), field(h, "actor"),
                        or_dash(field(h, "request_id")), or_dash(field(h, "grant_id")), or_dash(field(h, "client")),
                        destination(h, "host"), field(h, "detail")});
    }
    return render_table({"ID", "AT", "EVENT", "ACTOR", "REQUEST", "GRANT", "CLIENT", "DESTINATION", "DETAIL"}, rows);
}

int run(const std::vector<std::string>& args, const environment& env, std::istream& in, std::ostream& out,
        std::ostream& err)
{
    if (args.empty()) {
        err << usage_text;
        return exit_usage;
    }
    auto parsed = parse_args(args, env);
    if (parsed.help) {
        out << usage_text;
        return exit_ok;
    }
    if (!parsed.value) {
        return usage_error(err, parsed.error);
    }
    const options& o = *parsed.value;

    std::optional<std::string> password = o.password;
    if (o.password_stdin) {
        std::string line;
        std::getline(in, line);
        if (!line.empty() && line.back() == '\r') {
            line.pop_back();
        }
        if (line.empty()) {
            return usage_error(err, "--password-stdin: no password on standard input");
        }
        password = std::move(line);
    }
    if (!o.user.empty() && !password) {
        return usage_error(err, "no password for " + o.user +
                                    ": set EGRESSD_APPROVALS_PASSWORD or pass it on standard input with "
                                    "--password-stdin");
    }

    std::optional<asio::ssl::context> tls;
    if (o.url.tls) {
        tls.emplace(asio::ssl::context::tls_client);
        tls->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                         asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                         asio::ssl::context::no_tlsv1_1);
        boost::system::error_code ec;
        if (o.ca_file) {
            tls->load_verify_file(*o.ca_file, ec);
            if (ec) {
                return usage_error(err, "--ca '" + *o.ca_file + "': cannot load CA certificates: " + ec.message());
            }
        } else {
            tls->set_default_verify_paths(ec);
            if (ec) {
                err << "egressd approvals: cannot load the system's CA certificates (" << ec.message()
                    << "); use --ca FILE\n";
                return exit_unreachable;
            }
        }
        tls->set_verify_mode(asio::ssl::verify_peer);
    }
    if (!o.url.tls && password && !is_loopback(o.url.host)) {
        err << "egressd approvals: warning: sending the password unencrypted to " << o.url.text
            << "; use an https:// URL\n";
    }

    http::request<http::string_body> req{o.call.method == "POST" ? http::verb::post : http::verb::get,
                                         o.call.target, 11};
    req.set(http::field::host, o.url.authority());
    req.set(http::field::user_agent, "egressd/" EGRESSD_VERSION);
    req.set(http::field::accept, "application/json");
    if (password) {
        req.set(http::field::authorization, "Basic " + certs::detail::base64_encode(o.user + ":" + *password));
    }
    if (o.call.method == "POST") {
        req.set(http::field::content_type, "application/json");
        req.body() = o.call.body;
    }
    req.prepare_payload();

    auto deadline = std::chrono::steady_clock::now() + o.timeout;
    auto resolved = resolve(o.url.host, o.url.port, deadline);
    if (resolved.endpoints.empty()) {
        err << "egressd approvals: cannot connect to " << o.url.text << ": cannot resolve " << o.url.host << ": "
            << (resolved.error.empty() ? "no address" : resolved.error) << '\n';
        return exit_unreachable;
    }

    asio::io_context io;
    exchange_outcome outcome;
    std::exception_ptr failed;
    asio::co_spawn(io, exchange(o, resolved.endpoints, std::move(req), tls ? &*tls : nullptr, deadline),
                   [&](std::exception_ptr e, exchange_outcome r) {
                       failed = e;
                       outcome = std::move(r);
                   });
    io.run();
    if (failed) {
        try {
            std::rethrow_exception(failed);
        } catch (const std::exception& e) {
            err << "egressd approvals: " << o.url.text << ": " << e.what() << '\n';
            return exit_unreachable;
        }
    }
    if (!outcome.answer) {
        err << "egressd approvals: " << outcome.failure << '\n';
        return exit_unreachable;
    }
    return handle_answer(o, *outcome.answer, out, err);
}

}  // namespace egressd::proxy::approvals_cli
