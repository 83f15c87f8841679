#pragma once

// `egressd approvals ...`: the command line over the approvals JSON API (the contract is in
// proxy/approvals/web_server.hpp). Parsing and formatting are pure functions, so that they are tested without a
// server; run() adds the password, one HTTP(S) exchange with a deadline, and the exit code.

#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::proxy::approvals_cli {

// Exit codes of `egressd approvals`, documented in its --help.
enum exit_code : int {
    exit_ok = 0,
    exit_refused = 1,  // the server answered with an error (its message is printed)
    exit_usage = 2,
    exit_unreachable = 3,  // no connection, no TLS, or no answer within the deadline
};

// Settings not given on the command line. The process environment in egressd; a plain value in tests.
struct environment {
    std::optional<std::string> url;       // EGRESSD_APPROVALS_URL
    std::optional<std::string> user;      // EGRESSD_APPROVALS_USER
    std::optional<std::string> password;  // EGRESSD_APPROVALS_PASSWORD
    // Reads the three variables; an empty one counts as unset.
    static environment from_process();
};

inline constexpr std::string_view default_url = "http://127.0.0.1:9091";

// Where the approvals listener is: "http(s)://host[:port][/base/path]".
struct server_url {
    bool tls = false;
    std::string host;  // a name or an IP literal, without brackets
    std::uint16_t port = 0;
    std::string base_path;  // "" or "/approvals": prefixed to /api/v1/...
    std::string text;       // as given, for messages

    std::string authority() const;  // the Host header: "host:port", "[::1]:port"
};

struct url_result {
    std::optional<server_url> value;
    std::string error;  // set when value is not
};
url_result parse_url(std::string_view text);

// What to make of a successful answer.
enum class output_kind : std::uint8_t { requests, request, approval, grants, grant, history };

// The API call the command line asks for.
struct api_call {
    std::string method;  // "GET" or "POST"
    std::string target;  // path and query below the URL's base path, e.g. "/api/v1/requests?state=pending"
    std::string body;    // POST: a JSON object
    output_kind output = output_kind::requests;
    bool with_state = false;  // list --state all: the table shows each request's state
};

struct options {
    server_url url;
    std::string user;  // empty: no Authorization header
    std::optional<std::string> password;  // from the environment; see password_stdin
    bool password_stdin = false;          // read the password from standard input's first line
    std::optional<std::string> ca_file;   // https: trust these PEM CAs instead of the system's
    bool json = false;                    // print the server's JSON unchanged
    std::chrono::milliseconds timeout{10'000};  // connect, and the whole exchange
    api_call call;
};

struct parse_result {
    std::optional<options> value;
    bool help = false;  // --help: print the usage, exit 0
    std::string error;  // a usage error (exit 2) when neither value nor help
};

// args excludes "egressd approvals". Never reads the password: run() does, after the arguments are valid.
parse_result parse_args(const std::vector<std::string>& args, const environment& env);

std::string_view usage();

// The server's JSON made readable; `now` gives ages ("5m ago") and time left. Fields the server leaves out
// print as empty; control characters in the server's text are escaped so that it cannot drive the terminal.
std::string format_requests(const boost::json::value& answer, std::chrono::sys_seconds now,
                            bool with_state = false);  // list
std::string format_request(const boost::json::value& request, std::chrono::sys_seconds now);  // show, deny, justify
std::string format_approval(const boost::json::value& answer);  // approve: the grant, or the recorded vote
std::string format_grants(const boost::json::value& answer, std::chrono::sys_seconds now);  // grants
std::string format_grant(const boost::json::value& grant, std::chrono::sys_seconds now);    // revoke, extend
std::string format_history(const boost::json::value& answer);                               // history
// "45s", "5m", "7h 59m", "2d 3h"; zero or less: "0s".
std::string format_span(std::chrono::seconds span);

// Runs `egressd approvals ...`; args excludes "approvals". in is read only with --password-stdin.
int run(const std::vector<std::string>& args, const environment& env, std::istream& in, std::ostream& out,
        std::ostream& err);

}  // namespace egressd::proxy::approvals_cli
