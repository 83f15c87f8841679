// `egressd approvals`: argument parsing and usage errors, the tables made from sample answers, and the exchange
// against small servers on loopback (a closed port, a port that never answers, a canned HTTP or HTTPS answer).
// The real approvals listener is tested end to end elsewhere.

#include "proxy/approvals_cli.hpp"

#include "proxy/cli.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/test_pki.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/json/parse.hpp>
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <sys/wait.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace egressd::proxy::approvals_cli {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
namespace bj = boost::json;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

struct result {
    int code = -1;
    std::string out;
    std::string err;
};

std::string show(const result& r)
{
    return "exit " + std::to_string(r.code) + "\n--- stdout\n" + r.out + "--- stderr\n" + r.err;
}

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

result run_with(const std::vector<std::string>& args, const environment& env = {}, const std::string& input = "")
{
    std::istringstream in(input);
    std::ostringstream out;
    std::ostringstream err;
    result r;
    r.code = run(args, env, in, out, err);
    r.out = out.str();
    r.err = err.str();
    return r;
}

options parsed(const std::vector<std::string>& args, const environment& env = {})
{
    auto p = parse_args(args, env);
    EXPECT_TRUE(p.value.has_value()) << p.error;
    return p.value.value_or(options{});
}

// --- help and usage errors ----------------------------------------------------------------------------------

TEST(approvals_cli_usage, help_goes_to_stdout)
{
    for (std::vector<std::string> args : {std::vector<std::string>{"--help"}, {"-h"}, {"help"}, {"list", "--help"},
                                          {"approve", "12", "-h"}}) {
        auto r = run_with(args);
        EXPECT_EQ(r.code, exit_ok) << show(r);
        EXPECT_TRUE(contains(r.out, "egressd approvals [OPTIONS] COMMAND")) << show(r);
        EXPECT_TRUE(contains(r.out, "approve ID [--duration 8h] [--scope host|PATTERN] [--group NAME] [--note TEXT]"))
            << show(r);
        EXPECT_TRUE(contains(r.out, "Exit codes: 0 ok, 1 the server refused")) << show(r);
        EXPECT_TRUE(r.err.empty()) << show(r);
    }
}

TEST(approvals_cli_usage, no_arguments_prints_the_usage_as_an_error)
{
    auto r = run_with({});
    EXPECT_EQ(r.code, exit_usage) << show(r);
    EXPECT_TRUE(r.out.empty()) << show(r);
    EXPECT_TRUE(contains(r.err, "egressd approvals [OPTIONS] COMMAND")) << show(r);
}

TEST(approvals_cli_usage, the_main_help_names_the_command_and_dispatches_to_it)
{
    std::ostringstream out;
    std::ostringstream err;
    EXPECT_EQ(run_cli({"--help"}, out, err), egressd::proxy::exit_ok);
    EXPECT_TRUE(contains(out.str(), "egressd approvals [--url URL]")) << out.str();

    std::ostringstream out2;
    std::ostringstream err2;
    EXPECT_EQ(run_cli({"approvals", "list", "--state", "open"}, out2, err2), exit_usage);
    EXPECT_TRUE(contains(err2.str(), "egressd approvals: --state 'open' is not one of")) << err2.str();
}

struct usage_case {
    std::string name;
    std::vector<std::string> args;
    std::string fragment;
    environment env = {};
};

void PrintTo(const usage_case& c, std::ostream* os) { *os << c.name; }

class approvals_cli_usage_error : public ::testing::TestWithParam<usage_case> {};

TEST_P(approvals_cli_usage_error, exits_2_and_says_what_is_wrong)
{
    const auto& c = GetParam();
    auto r = run_with(c.args, c.env);
    EXPECT_EQ(r.code, exit_usage) << show(r);
    EXPECT_TRUE(r.out.empty()) << show(r);
    EXPECT_TRUE(contains(r.err, "egressd approvals: " + c.fragment)) << show(r);
    EXPECT_TRUE(contains(r.err, "Run 'egressd approvals --help' for usage.")) << show(r);
}

const std::string password_refused = "the password is never taken from the command line";
const environment alice{std::nullopt, "alice", "secret"};

INSTANTIATE_TEST_SUITE_P(
    all, approvals_cli_usage_error,
    ::testing::Values(
        usage_case{"no_command", {"--json"}, "no command: list, show, approve"},
        usage_case{"unknown_command", {"approvee", "12"}, "unknown command 'approvee'"},
        usage_case{"show_without_id", {"show"}, "show needs a request id (as 'list' shows)"},
        usage_case{"show_word_id", {"show", "abc"}, "show: 'abc' is not a request id (a number, as 'list' shows)"},
        usage_case{"show_zero_id", {"show", "0"}, "show: '0' is not a request id"},
        usage_case{"show_two_ids", {"show", "1", "2"}, "unexpected argument '2'"},
        usage_case{"revoke_word_id", {"revoke", "g7"}, "revoke: 'g7' is not a grant id (a number, as 'grants' shows)"},
        usage_case{"list_extra_argument", {"list", "pending"}, "unexpected argument 'pending'"},
        usage_case{"list_bad_state", {"list", "--state", "active"},
                   "--state 'active' is not one of pending|approved|denied|expired|all"},
        usage_case{"grants_bad_state", {"grants", "--state=pending"},
                   "--state 'pending' is not one of active|revoked|expired"},
        usage_case{"list_zero_limit", {"list", "--limit", "0"}, "--limit '0' is not a positive number"},
        usage_case{"history_bad_request", {"history", "--request", "r12"}, "--request 'r12' is not a request id"},
        usage_case{"option_of_another_command", {"list", "--note", "x"}, "unknown option '--note' for list"},
        usage_case{"unknown_global_option", {"list", "--verbose", "1"}, "unknown option '--verbose' for list"},
        usage_case{"unknown_short_option", {"list", "-v"}, "unknown option '-v'"},
        usage_case{"approve_bad_duration", {"approve", "12", "--duration", "8 hours"},
                   "--duration '8 hours' is not a duration like 90s, 30m, 8h or 7d"},
        usage_case{"approve_millisecond_duration", {"approve", "12", "--duration", "250ms"},
                   "--duration '250ms' is not a duration"},
        usage_case{"approve_empty_scope", {"approve", "12", "--scope="}, "--scope needs 'host' or a pattern"},
        usage_case{"extend_without_duration", {"extend", "7"}, "extend needs --duration D"},
        usage_case{"note_without_value", {"deny", "12", "--note"}, "--note needs a value"},
        usage_case{"note_followed_by_option", {"approve", "12", "--note", "--duration", "8h"},
                   "--note needs a value"},
        usage_case{"justify_without_text", {"justify", "12"}, "justify needs a TEXT after the request id"},
        usage_case{"json_with_value", {"list", "--json=yes"}, "--json takes no value"},
        usage_case{"url_ftp", {"list", "--url", "ftp://127.0.0.1"}, "--url 'ftp://127.0.0.1': the scheme must be"},
        usage_case{"url_without_scheme", {"list", "--url", "127.0.0.1:9091"},
                   "--url '127.0.0.1:9091': expected http://HOST[:PORT]"},
        usage_case{"url_port_0", {"list", "--url", "http://127.0.0.1:0"}, "--url 'http://127.0.0.1:0': invalid port '0': expected 1 to 65535"},
        usage_case{"url_with_credentials", {"list", "--url", "http://alice:pw@127.0.0.1"},
                   "--url 'http://***@127.0.0.1': no credentials in the URL: use --user"},
        usage_case{"url_bare_ipv6", {"list", "--url", "http://::1:9091"}, "--url 'http://::1:9091': an IPv6 address goes in brackets: http://[::1]:9091"},
        usage_case{"env_url_bad", {"list"}, "EGRESSD_APPROVALS_URL 'http//x': expected http://HOST[:PORT]",
                   environment{"http//x", std::nullopt, std::nullopt}},
        usage_case{"ca_with_http", {"list", "--ca", "/etc/ssl/certs/ca-certificates.crt"},
                   "--ca applies to https:// URLs only"},
        usage_case{"timeout_zero", {"list", "--timeout", "0"}, "--timeout '0' is not a number of seconds"},
        usage_case{"timeout_word", {"list", "--timeout", "soon"}, "--timeout 'soon' is not a number of seconds"},
        usage_case{"user_with_colon", {"list", "--user", "a:b"}, "user 'a:b' has a ':'"},
        usage_case{"password_stdin_without_user", {"list", "--password-stdin"}, "--password-stdin needs a user"},
        usage_case{"env_password_without_user", {"list"}, "EGRESSD_APPROVALS_PASSWORD is set but needs a user",
                   environment{std::nullopt, std::nullopt, "secret"}},
        usage_case{"user_without_password", {"list", "--user", "bob"},
                   "no password for bob: set EGRESSD_APPROVALS_PASSWORD or pass it on standard input"},
        usage_case{"password_option", {"list", "--user", "bob", "--password", "hunter2"}, password_refused, alice},
        usage_case{"password_inline", {"--password=hunter2", "list"}, password_refused, alice},
        usage_case{"pass_option", {"list", "--pass", "hunter2"}, password_refused, alice},
        usage_case{"short_password_option", {"list", "-p", "hunter2"}, password_refused, alice},
        usage_case{"password_stdin_empty", {"list", "--user", "bob", "--password-stdin"},
                   "--password-stdin: no password on standard input"}),
    [](const ::testing::TestParamInfo<usage_case>& p) { return p.param.name; });

// The refusal names the way to pass a password, and never repeats the one given.
TEST(approvals_cli_usage, a_password_on_the_command_line_is_refused_before_anything_is_sent)
{
    auto r = run_with({"--url", "http://127.0.0.1:1", "--user", "bob", "--password", "hunter2", "list"});
    EXPECT_EQ(r.code, exit_usage) << show(r);
    EXPECT_TRUE(contains(r.err, "set EGRESSD_APPROVALS_PASSWORD or use --password-stdin")) << show(r);
    EXPECT_FALSE(contains(r.err, "hunter2")) << show(r);
    EXPECT_FALSE(contains(r.err, "cannot connect")) << show(r);
}

// --- what the arguments ask the server ----------------------------------------------------------------------

TEST(approvals_cli_parse, list_defaults_to_the_local_listener)
{
    auto o = parsed({"list"});
    EXPECT_EQ(o.url.host, "127.0.0.1");
    EXPECT_EQ(o.url.port, 9091);
    EXPECT_FALSE(o.url.tls);
    EXPECT_EQ(o.call.method, "GET");
    EXPECT_EQ(o.call.target, "/api/v1/requests?state=pending");
    EXPECT_EQ(o.call.output, output_kind::requests);
    EXPECT_FALSE(o.call.with_state);
    EXPECT_TRUE(o.user.empty());
    EXPECT_FALSE(o.json);
    EXPECT_EQ(o.timeout, 10s);
}

TEST(approvals_cli_parse, the_environment_gives_url_user_and_password_and_options_win)
{
    environment env{"https://approvals.example:8443/egress/", "carol", "pw"};
    auto o = parsed({"list", "--state", "pending"}, env);
    EXPECT_TRUE(o.url.tls);
    EXPECT_EQ(o.url.host, "approvals.example");
    EXPECT_EQ(o.url.port, 8443);
    EXPECT_EQ(o.call.target, "/egress/api/v1/requests?state=pending");
    EXPECT_EQ(o.user, "carol");
    EXPECT_EQ(o.password, "pw");

    o = parsed({"--url", "http://[::1]:9191", "--user=dave", "grants", "--state=active", "--json"}, env);
    EXPECT_FALSE(o.url.tls);
    EXPECT_EQ(o.url.host, "::1");
    EXPECT_EQ(o.url.authority(), "[::1]:9191");
    EXPECT_EQ(o.call.target, "/api/v1/grants?state=active");
    EXPECT_EQ(o.call.output, output_kind::grants);
    EXPECT_FALSE(o.call.with_state);
    EXPECT_EQ(o.user, "dave");
    EXPECT_TRUE(o.json);

    o = parsed({"list", "--state", "all", "--limit", "20"});
    EXPECT_EQ(o.call.target, "/api/v1/requests?limit=20");
    EXPECT_TRUE(o.call.with_state);
}

TEST(approvals_cli_parse, approve_sends_only_what_was_given)
{
    auto o = parsed({"approve", "12", "--duration", "2h", "--scope", "*.example.com", "--group=payments", "--note",
                     "INC-42 migration"});
    EXPECT_EQ(o.call.method, "POST");
    EXPECT_EQ(o.call.target, "/api/v1/requests/12/approve");
    EXPECT_EQ(o.call.output, output_kind::approval);
    EXPECT_EQ(bj::parse(o.call.body), bj::parse(R"({"duration":"2h","scope":"*.example.com","group":"payments",
                                                     "note":"INC-42 migration"})"));

    o = parsed({"approve", "12"});
    EXPECT_EQ(o.call.body, "{}");
}

TEST(approvals_cli_parse, deny_revoke_extend_justify_show)
{
    auto o = parsed({"deny", "3", "--note", "use the internal mirror"});
    EXPECT_EQ(o.call.method, "POST");
    EXPECT_EQ(o.call.target, "/api/v1/requests/3/deny");
    EXPECT_EQ(bj::parse(o.call.body), bj::parse(R"({"note":"use the internal mirror"})"));
    EXPECT_EQ(o.call.output, output_kind::request);

    o = parsed({"revoke", "7"});
    EXPECT_EQ(o.call.target, "/api/v1/grants/7/revoke");
    EXPECT_EQ(o.call.body, "{}");
    EXPECT_EQ(o.call.output, output_kind::grant);

    o = parsed({"extend", "7", "--duration", "4h", "--note", "one more day of migration"});
    EXPECT_EQ(o.call.target, "/api/v1/grants/7/extend");
    EXPECT_EQ(bj::parse(o.call.body), bj::parse(R"({"duration":"4h","note":"one more day of migration"})"));

    // Unquoted words join into one text; "--" lets a text start with a dash.
    o = parsed({"justify", "12", "needed", "for", "INC-1234"});
    EXPECT_EQ(o.call.target, "/api/v1/requests/12/justify");
    EXPECT_EQ(bj::parse(o.call.body), bj::parse(R"({"text":"needed for INC-1234"})"));
    o = parsed({"justify", "12", "--", "--see ticket"});
    EXPECT_EQ(bj::parse(o.call.body), bj::parse(R"({"text":"--see ticket"})"));

    o = parsed({"show", "12"});
    EXPECT_EQ(o.call.method, "GET");
    EXPECT_EQ(o.call.target, "/api/v1/requests/12");
    EXPECT_EQ(o.call.body, "");
}

TEST(approvals_cli_parse, history_filters_are_encoded_in_the_query)
{
    auto o = parsed({"history", "--client", "web", "--host", "a b&c=d", "--actor", "alice", "--event", "approved",
                     "--request", "12", "--grant", "7", "--limit", "50"});
    EXPECT_EQ(o.call.target,
              "/api/v1/history?client=web&host=a%20b%26c%3Dd&actor=alice&event=approved&request=12&grant=7&limit=50");
    EXPECT_EQ(o.call.output, output_kind::history);
}

TEST(approvals_cli_parse, timeout_in_seconds)
{
    EXPECT_EQ(parsed({"list", "--timeout", "0.25"}).timeout, 250ms);
    EXPECT_EQ(parsed({"list", "--timeout=30"}).timeout, 30s);
}

TEST(approvals_cli_parse, urls)
{
    auto u = parse_url("HTTPS://egress.example");
    ASSERT_TRUE(u.value) << u.error;
    EXPECT_TRUE(u.value->tls);
    EXPECT_EQ(u.value->port, 443);
    EXPECT_EQ(u.value->authority(), "egress.example:443");
    EXPECT_EQ(u.value->base_path, "");

    u = parse_url("http://10.1.2.3/approvals///");
    ASSERT_TRUE(u.value) << u.error;
    EXPECT_EQ(u.value->port, 80);
    EXPECT_EQ(u.value->base_path, "/approvals");

    for (const char* bad : {"http://", "http://:9091", "http://[::1", "http://[::1]x", "http://[zz]:1", "http://a b",
                            "http://h:65536", "http://h/?q=1", "http://h/#top", "http://h:-1"}) {
        EXPECT_FALSE(parse_url(bad).value) << bad;
        EXPECT_FALSE(parse_url(bad).error.empty()) << bad;
    }
}

TEST(approvals_cli_parse, environment_from_the_process)
{
    ::setenv("EGRESSD_APPROVALS_URL", "http://127.0.0.1:9999", 1);
    ::setenv("EGRESSD_APPROVALS_USER", "erin", 1);
    ::setenv("EGRESSD_APPROVALS_PASSWORD", "", 1);  // empty: as if unset
    auto env = environment::from_process();
    ::unsetenv("EGRESSD_APPROVALS_URL");
    ::unsetenv("EGRESSD_APPROVALS_USER");
    ::unsetenv("EGRESSD_APPROVALS_PASSWORD");
    EXPECT_EQ(env.url, "http://127.0.0.1:9999");
    EXPECT_EQ(env.user, "erin");
    EXPECT_FALSE(env.password.has_value());
}

// --- formatting ---------------------------------------------------------------------------------------------

const auto now = std::chrono::sys_seconds(std::chrono::sys_days(std::chrono::year(2026) / 12 / 6)) + 10h;

TEST(approvals_cli_format, spans)
{
    EXPECT_EQ(format_span(-5s), "0s");
    EXPECT_EQ(format_span(0s), "0s");
    EXPECT_EQ(format_span(45s), "45s");
    EXPECT_EQ(format_span(5min + 59s), "5m");
    EXPECT_EQ(format_span(8h), "8h");
    EXPECT_EQ(format_span(7h + 59min + 30s), "7h 59m");
    EXPECT_EQ(format_span(std::chrono::days(2) + 3h + 10min), "2d 3h");
    EXPECT_EQ(format_span(std::chrono::days(14)), "14d");
}

TEST(approvals_cli_format, requests_table)
{
    auto answer = bj::parse(R"({"requests":[
        {"id":12,"client":"web","host":"api.example.com","port":443,"state":"pending","hits":3,
         "first_seen":"2026-12-06T09:00:00Z","last_seen":"2026-12-06T09:55:00Z","reason":"no_matching_rule"},
        {"id":105,"client":"batch-jobs","host":"2001:db8::7","port":8443,"state":"pending","hits":1200,
         "first_seen":"2026-12-01T09:00:00Z","last_seen":"2026-12-04T08:00:00Z","reason":"port_not_allowed"}]})");
    EXPECT_EQ(format_requests(answer, now),
              "ID   CLIENT      DESTINATION          HITS  LAST SEEN  REASON\n"
              "12   web         api.example.com:443  3     5m ago     no_matching_rule\n"
              "105  batch-jobs  [2001:db8::7]:8443   1200  2d 2h ago  port_not_allowed\n");

    // list --state all: each request's state, since they differ.
    auto all = bj::parse(R"({"requests":[
        {"id":12,"client":"web","host":"a.example","port":443,"state":"approved","hits":3,
         "last_seen":"2026-12-06T09:55:00Z","reason":"no_matching_rule"}]})");
    EXPECT_EQ(format_requests(all, now, true),
              "ID  STATE     CLIENT  DESTINATION    HITS  LAST SEEN  REASON\n"
              "12  approved  web     a.example:443  3     5m ago     no_matching_rule\n");
}

TEST(approvals_cli_format, empty_lists)
{
    EXPECT_EQ(format_requests(bj::parse(R"({"requests":[]})"), now), "no access requests\n");
    EXPECT_EQ(format_grants(bj::parse(R"({"grants":[]})"), now), "no grants\n");
    EXPECT_EQ(format_history(bj::parse(R"({"history":[]})")), "no history entries\n");
}

TEST(approvals_cli_format, an_answer_without_the_list_is_an_error)
{
    EXPECT_THROW(format_requests(bj::parse(R"({"grants":[]})"), now), std::runtime_error);
    EXPECT_THROW(format_grants(bj::parse(R"([1,2])"), now), std::runtime_error);
    EXPECT_THROW(format_history(bj::parse(R"({"history":[3]})")), std::runtime_error);
    EXPECT_THROW(format_request(bj::parse(R"("text")"), now), std::runtime_error);
}

TEST(approvals_cli_format, one_request_with_justifications_and_votes)
{
    auto request = bj::parse(R"({"id":12,"client":"web","host":"api.example.com","port":443,"state":"pending",
        "hits":3,"first_seen":"2026-12-06T09:00:00Z","last_seen":"2026-12-06T09:55:00Z",
        "reason":"no_matching_rule","last_source":"10.30.1.5:41234","last_identity":"",
        "justifications":[{"user":"bob","text":"needed for INC-1234","at":"2026-12-06T09:56:00Z"}],
        "votes":[{"approver":"alice","note":"ok for the migration","at":"2026-12-06T09:58:00Z"}],
        "grant_id":null,"decided_by":"","decision_note":"","decided_at":null,
        "url":"https://approvals.example/requests/12"})");
    EXPECT_EQ(format_request(request, now),
              "request 12: web -> api.example.com:443 (pending)\n"
              "  reason:        no_matching_rule\n"
              "  hits:          3\n"
              "  first seen:    2026-12-06T09:00:00Z (1h ago)\n"
              "  last seen:     2026-12-06T09:55:00Z (5m ago)\n"
              "  last source:   10.30.1.5:41234\n"
              "  page:          https://approvals.example/requests/12\n"
              "justifications:\n"
              "  2026-12-06T09:56:00Z  bob: needed for INC-1234\n"
              "votes:\n"
              "  2026-12-06T09:58:00Z  alice: ok for the migration\n");
}

TEST(approvals_cli_format, a_decided_request)
{
    auto request = bj::parse(R"({"id":3,"client":"web","host":"pastebin.example","port":443,"state":"denied",
        "hits":1,"reason":"no_matching_rule","decided_by":"alice","decision_note":"use the internal paste",
        "decided_at":"2026-12-06T09:00:00Z","justifications":[],"votes":[]})");
    auto text = format_request(request, now);
    EXPECT_TRUE(text.starts_with("request 3: web -> pastebin.example:443 (denied)\n")) << text;
    EXPECT_TRUE(contains(text, "  decided by:    alice\n")) << text;
    EXPECT_TRUE(contains(text, "  note:          use the internal paste\n")) << text;
    EXPECT_FALSE(contains(text, "justifications")) << text;
}

// A requester's text reaches the approver's terminal: an escape sequence in it is shown, not obeyed.
TEST(approvals_cli_format, control_characters_are_escaped)
{
    auto request = bj::parse(R"({"id":4,"client":"web","host":"a.example","port":443,"state":"pending",
        "justifications":[{"user":"mallory","text":"ok\u001b[2J\nrm -rf","at":"2026-12-06T09:00:00Z"}]})");
    auto text = format_request(request, now);
    EXPECT_TRUE(contains(text, "mallory: ok\\x1b[2J\\nrm -rf\n")) << text;
    EXPECT_FALSE(contains(text, "\x1b")) << text;
}

TEST(approvals_cli_format, approval_prints_the_grant_or_the_vote)
{
    auto granted = bj::parse(R"({"request":{"id":12,"state":"approved"},"grant":{"id":7,"request_id":12,
        "scope":"client","scope_name":"web","destination":"*.example.com","port":443,
        "created":"2026-12-06T10:00:00Z","expires":"2026-12-06T18:00:00Z","state":"active","approved_by":"alice",
        "seconds_left":28800}})");
    EXPECT_EQ(format_approval(granted), "grant 7: *.example.com:443 for client web until 2026-12-06T18:00:00Z (8h)\n");

    auto voted = bj::parse(R"({"request":{"id":12,"state":"pending"},"grant":null})");
    EXPECT_EQ(format_approval(voted), "vote recorded: one more approver needed (request 12)\n");
}

TEST(approvals_cli_format, grants_table)
{
    auto answer = bj::parse(R"({"grants":[
        {"id":7,"request_id":12,"scope":"client","scope_name":"web","destination":"api.example.com","port":443,
         "created":"2026-12-06T09:00:00Z","expires":"2026-12-06T17:00:00Z","state":"active","approved_by":"alice",
         "note":"","ended_at":null,"ended_by":"","seconds_left":25200},
        {"id":8,"request_id":13,"scope":"group","scope_name":"payments","destination":".example.org","port":8443,
         "created":"2026-12-05T09:00:00Z","expires":"2026-12-06T12:30:00Z","state":"active",
         "approved_by":"alice,carol"},
        {"id":2,"request_id":5,"scope":"client","scope_name":"web","destination":"b.example","port":80,
         "created":"2026-12-01T09:00:00Z","expires":"2026-12-01T17:00:00Z","state":"revoked","approved_by":"bob",
         "ended_at":"2026-12-01T10:00:00Z","ended_by":"carol","seconds_left":0}]})");
    EXPECT_EQ(format_grants(answer, now),
              "ID  REQUEST  FOR             DESTINATION          STATE    EXPIRES               LEFT    APPROVED BY\n"
              "7   12       client web      api.example.com:443  active   2026-12-06T17:00:00Z  7h      alice\n"
              "8   13       group payments  .example.org:8443    active   2026-12-06T12:30:00Z  2h 30m  alice,carol\n"
              "2   5        client web      b.example:80         revoked  2026-12-01T17:00:00Z  -       bob\n");
}

TEST(approvals_cli_format, one_grant)
{
    auto grant = bj::parse(R"({"id":2,"request_id":5,"scope":"client","scope_name":"web","destination":"b.example",
        "port":80,"created":"2026-12-01T09:00:00Z","expires":"2026-12-01T17:00:00Z","state":"revoked",
        "approved_by":"bob","note":"short test","ended_at":"2026-12-01T10:00:00Z","ended_by":"carol"})");
    EXPECT_EQ(format_grant(grant, now),
              "grant 2: b.example:80 for client web (revoked)\n"
              "  request:       5\n"
              "  created:       2026-12-01T09:00:00Z\n"
              "  expires:       2026-12-01T17:00:00Z\n"
              "  approved by:   bob\n"
              "  note:          short test\n"
              "  ended:         2026-12-01T10:00:00Z by carol\n");

    auto active = bj::parse(R"({"id":7,"scope":"client","scope_name":"web","destination":"a.example","port":443,
        "expires":"2026-12-06T22:00:00Z","state":"active"})");
    EXPECT_TRUE(contains(format_grant(active, now), "  expires:       2026-12-06T22:00:00Z (12h left)\n"));
}

TEST(approvals_cli_format, history_table)
{
    auto answer = bj::parse(R"({"history":[
        {"id":31,"at":"2026-12-06T09:58:00Z","event":"approved","actor":"alice","request_id":12,"grant_id":7,
         "client":"web","host":"api.example.com","port":443,"detail":"8h"},
        {"id":30,"at":"2026-12-06T09:00:00Z","event":"requested","actor":"egressd","request_id":12,"grant_id":null,
         "client":"web","host":"api.example.com","port":443,"detail":""}]})");
    EXPECT_EQ(format_history(answer),
              "ID  AT                    EVENT      ACTOR    REQUEST  GRANT  CLIENT  DESTINATION          DETAIL\n"
              "31  2026-12-06T09:58:00Z  approved   alice    12       7      web     api.example.com:443  8h\n"
              "30  2026-12-06T09:00:00Z  requested  egressd  12       -      web     api.example.com:443\n");
}

// --- the exchange: real sockets on loopback -----------------------------------------------------------------

// A port nothing listens on: bound by the kernel, then closed.
std::uint16_t closed_port()
{
    asio::io_context io;
    tcp::acceptor a(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    auto port = a.local_endpoint().port();
    a.close();
    return port;
}

TEST(approvals_cli_exchange, connection_refused_exits_3)
{
    auto port = std::to_string(closed_port());
    auto started = std::chrono::steady_clock::now();
    auto r = run_with({"list", "--url", "http://127.0.0.1:" + port});
    EXPECT_EQ(r.code, exit_unreachable) << show(r);
    EXPECT_TRUE(r.out.empty()) << show(r);
    EXPECT_TRUE(contains(r.err, "egressd approvals: cannot connect to http://127.0.0.1:" + port + ": Connection refused"))
        << show(r);
    EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
}

// A listener that never accepts: the kernel completes the handshake, and nobody ever answers.
TEST(approvals_cli_exchange, no_answer_within_the_deadline_exits_3)
{
    asio::io_context io;
    tcp::acceptor silent(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    auto port = std::to_string(silent.local_endpoint().port());
    auto started = std::chrono::steady_clock::now();
    auto r = run_with({"list", "--timeout", "0.3", "--url", "http://127.0.0.1:" + port});
    auto took = std::chrono::steady_clock::now() - started;
    EXPECT_EQ(r.code, exit_unreachable) << show(r);
    EXPECT_TRUE(contains(r.err, "egressd approvals: no answer from http://127.0.0.1:" + port + " within 300 ms"))
        << show(r);
    EXPECT_GE(took, 250ms);
    EXPECT_LT(took, 5s);
}

#ifdef EGRESSD_BINARY
// The real process: the environment variables reach the command, and its exit status is the documented one.
TEST(approvals_cli_exchange, the_binary_reads_the_environment_and_exits_3_on_a_closed_port)
{
    auto url = "http://127.0.0.1:" + std::to_string(closed_port());
    ::setenv("EGRESSD_APPROVALS_URL", url.c_str(), 1);
    FILE* pipe = ::popen((std::string("'") + EGRESSD_BINARY + "' approvals list 2>&1").c_str(), "r");
    ::unsetenv("EGRESSD_APPROVALS_URL");
    ASSERT_NE(pipe, nullptr);
    std::string output;
    std::array<char, 4096> buffer{};
    for (std::size_t n; (n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0;) {
        output.append(buffer.data(), n);
    }
    int status = ::pclose(pipe);
    ASSERT_TRUE(WIFEXITED(status)) << output;
    EXPECT_EQ(WEXITSTATUS(status), exit_unreachable) << output;
    EXPECT_EQ(output, "egressd approvals: cannot connect to " + url + ": Connection refused\n");
}
#endif

// One canned answer to every request, on a thread of its own; it remembers the last request and the SNI name.
class canned_server {
public:
    canned_server(unsigned status, std::string body, std::shared_ptr<ssl::context> tls = nullptr)
        : status_(status), body_(std::move(body)), tls_(std::move(tls)),
          acceptor_(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0))
    {
        asio::co_spawn(io_, serve(), asio::detached);
        thread_ = std::thread([this] { io_.run(); });
    }
    ~canned_server()
    {
        io_.stop();
        thread_.join();
    }
    canned_server(const canned_server&) = delete;
    canned_server& operator=(const canned_server&) = delete;

    std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
    std::optional<http::request<http::string_body>> last_request()
    {
        std::lock_guard lock(mutex_);
        return last_;
    }
    std::string server_name()
    {
        std::lock_guard lock(mutex_);
        return server_name_;
    }

private:
    asio::awaitable<void> serve()
    {
        for (;;) {
            auto [ec, socket] = co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
            if (ec) {
                co_return;
            }
            beast::tcp_stream stream(std::move(socket));
            stream.expires_after(5s);
            if (!tls_) {
                co_await answer(stream);
                continue;
            }
            beast::ssl_stream<beast::tcp_stream> secure(std::move(stream), *tls_);
            auto [hec] = co_await secure.async_handshake(ssl::stream_base::server, asio::as_tuple(asio::use_awaitable));
            if (hec) {
                continue;
            }
            if (const char* name = SSL_get_servername(secure.native_handle(), TLSEXT_NAMETYPE_host_name)) {
                std::lock_guard lock(mutex_);
                server_name_ = name;
            }
            co_await answer(secure);
        }
    }

    template <typename Stream>
    asio::awaitable<void> answer(Stream& stream)
    {
        beast::flat_buffer buffer;
        http::request<http::string_body> req;
        auto [rec, n] = co_await http::async_read(stream, buffer, req, asio::as_tuple(asio::use_awaitable));
        if (rec) {
            co_return;
        }
        {
            std::lock_guard lock(mutex_);
            last_ = req;
        }
        http::response<http::string_body> res{static_cast<http::status>(status_), 11};
        res.set(http::field::content_type, "application/json");
        res.body() = body_;
        res.prepare_payload();
        co_await http::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
    }

    unsigned status_;
    std::string body_;
    std::shared_ptr<ssl::context> tls_;
    asio::io_context io_;
    tcp::acceptor acceptor_;
    std::thread thread_;
    std::mutex mutex_;
    std::optional<http::request<http::string_body>> last_;
    std::string server_name_;
};

std::string url_of(const canned_server& s, std::string_view scheme = "http", std::string_view host = "127.0.0.1")
{
    return std::string(scheme) + "://" + std::string(host) + ":" + std::to_string(s.port());
}

const std::string grant_answer = R"({"request":{"id":12,"state":"approved"},"grant":{"id":7,"request_id":12,)"
                                 R"("scope":"client","scope_name":"web","destination":"api.example.com","port":443,)"
                                 R"("expires":"2026-12-06T18:00:00Z","state":"active","seconds_left":28800}})";

TEST(approvals_cli_exchange, approve_posts_json_with_basic_authentication)
{
    canned_server server(200, grant_answer);
    auto r = run_with({"approve", "12", "--duration", "8h", "--note", "INC-42", "--user", "alice", "--password-stdin",
                       "--url", url_of(server) + "/"},
                      {}, "s3cret pass\r\nignored\n");
    EXPECT_EQ(r.code, exit_ok) << show(r);
    EXPECT_EQ(r.out, "grant 7: api.example.com:443 for client web until 2026-12-06T18:00:00Z (8h)\n") << show(r);
    EXPECT_TRUE(r.err.empty()) << show(r);
    auto req = server.last_request();
    ASSERT_TRUE(req);
    EXPECT_EQ(req->method(), http::verb::post);
    EXPECT_EQ(req->target(), "/api/v1/requests/12/approve");
    // base64("alice:s3cret pass")
    EXPECT_EQ((*req)[http::field::authorization], "Basic YWxpY2U6czNjcmV0IHBhc3M=");
    EXPECT_EQ((*req)[http::field::content_type], "application/json");
    EXPECT_EQ((*req)[http::field::host], "127.0.0.1:" + std::to_string(server.port()));
    EXPECT_EQ(bj::parse(req->body()), bj::parse(R"({"duration":"8h","note":"INC-42"})"));
}

TEST(approvals_cli_exchange, the_password_comes_from_the_environment)
{
    canned_server server(200, R"({"requests":[]})");
    auto r = run_with({"list", "--state", "denied"}, environment{url_of(server), "bob", "pw:with:colons"});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    EXPECT_EQ(r.out, "no access requests\n");
    auto req = server.last_request();
    ASSERT_TRUE(req);
    EXPECT_EQ(req->method(), http::verb::get);
    EXPECT_EQ(req->target(), "/api/v1/requests?state=denied");
    EXPECT_EQ((*req)[http::field::authorization], "Basic Ym9iOnB3OndpdGg6Y29sb25z");
}

TEST(approvals_cli_exchange, json_prints_the_answer_unchanged)
{
    const std::string body = R"({"grants": [ {"id":7, "state":"active"} ]})";
    canned_server server(200, body);
    auto r = run_with({"--json", "grants", "--url", url_of(server)});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    EXPECT_EQ(r.out, body + "\n");
    auto req = server.last_request();
    ASSERT_TRUE(req);
    EXPECT_EQ(req->target(), "/api/v1/grants");
    // Shown as the server sent it, not made readable.
    EXPECT_FALSE(contains(r.out, "ID  REQUEST"));
    EXPECT_TRUE((*req)[http::field::authorization].empty());
}

TEST(approvals_cli_exchange, a_refusal_exits_1_with_the_servers_message)
{
    canned_server server(409, R"({"error":"request 12 is not pending: it was denied by carol"})");
    auto r = run_with({"approve", "12", "--url", url_of(server)});
    EXPECT_EQ(r.code, exit_refused) << show(r);
    EXPECT_TRUE(r.out.empty()) << show(r);
    EXPECT_TRUE(contains(r.err, "egressd approvals: the server refused (409 Conflict): request 12 is not pending: "
                                "it was denied by carol\n"))
        << show(r);

    // --json gives scripts the error object too.
    r = run_with({"approve", "12", "--json", "--url", url_of(server)});
    EXPECT_EQ(r.code, exit_refused) << show(r);
    EXPECT_EQ(r.out, R"({"error":"request 12 is not pending: it was denied by carol"})"
                     "\n");
}

TEST(approvals_cli_exchange, unauthorized_says_how_to_sign_in)
{
    canned_server server(401, R"({"error":"sign in"})");
    auto r = run_with({"list", "--url", url_of(server)});
    EXPECT_EQ(r.code, exit_refused) << show(r);
    EXPECT_TRUE(contains(r.err, "the server refused (401 Unauthorized): sign in")) << show(r);
    EXPECT_TRUE(contains(r.err, "--password-stdin")) << show(r);
}

TEST(approvals_cli_exchange, an_answer_that_is_not_the_api_exits_1)
{
    canned_server server(200, "<html>proxy</html>");
    auto r = run_with({"list", "--url", url_of(server)});
    EXPECT_EQ(r.code, exit_refused) << show(r);
    EXPECT_TRUE(contains(r.err, "was not understood")) << show(r);
    EXPECT_TRUE(contains(r.err, "is this the approvals listener?")) << show(r);
}

// --- HTTPS: a throwaway CA (OpenSSL API, in memory) ----------------------------------------------------------

using test_support::check;
using test_support::make_party;
using test_support::party;
using test_support::pem_of;
using test_support::x509_ptr;
using test_support::key_ptr;
using test_support::bio_ptr;

struct pki {
    party ca = make_party("egressd approvals CLI test CA", nullptr,
                          {{NID_basic_constraints, "critical,CA:TRUE"},
                           {NID_key_usage, "critical,keyCertSign,cRLSign"}});
    // For 127.0.0.1 and the name "localhost".
    party server = make_party("approvals", &ca,
                              {{NID_basic_constraints, "CA:FALSE"},
                               {NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost"},
                               {NID_ext_key_usage, "serverAuth"}});
    // For another name only.
    party stranger = make_party("elsewhere", &ca,
                                {{NID_basic_constraints, "CA:FALSE"},
                                 {NID_subject_alt_name, "DNS:elsewhere.example"},
                                 {NID_ext_key_usage, "serverAuth"}});

    std::shared_ptr<ssl::context> server_context(const party& who) const
    {
        auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
        auto cert = pem_of(who, false);
        auto key = pem_of(who, true);
        ctx->use_certificate_chain(asio::buffer(cert));
        ctx->use_private_key(asio::buffer(key), ssl::context::pem);
        return ctx;
    }
};

TEST(approvals_cli_tls, https_with_the_ca_given)
{
    pki p;
    test_support::temp_dir dir;
    auto ca_file = dir.write("ca.pem", pem_of(p.ca, false)).string();
    canned_server server(200, R"({"requests":[]})", p.server_context(p.server));

    auto r = run_with({"list", "--ca", ca_file, "--url", url_of(server, "https")});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    EXPECT_EQ(r.out, "no access requests\n");
    // An IP address is checked against the certificate's IP names, and sent as no SNI (RFC 6066).
    EXPECT_EQ(server.server_name(), "");

    r = run_with({"list", "--ca", ca_file, "--url", url_of(server, "https", "localhost")});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    EXPECT_EQ(server.server_name(), "localhost");
}

TEST(approvals_cli_tls, an_unknown_ca_exits_3)
{
    pki p;
    canned_server server(200, R"({"requests":[]})", p.server_context(p.server));
    auto r = run_with({"list", "--url", url_of(server, "https")});
    EXPECT_EQ(r.code, exit_unreachable) << show(r);
    EXPECT_TRUE(contains(r.err, "cannot connect to " + url_of(server, "https") + ": TLS handshake failed")) << show(r);
    EXPECT_TRUE(contains(r.err, "certificate")) << show(r);
    EXPECT_FALSE(server.last_request()) << "a request went to an unverified server";
}

TEST(approvals_cli_tls, a_certificate_for_another_host_exits_3)
{
    pki p;
    test_support::temp_dir dir;
    auto ca_file = dir.write("ca.pem", pem_of(p.ca, false)).string();
    canned_server server(200, R"({"requests":[]})", p.server_context(p.stranger));
    for (std::string host : {"127.0.0.1", "localhost"}) {
        auto r = run_with({"list", "--ca", ca_file, "--url", url_of(server, "https", host)});
        EXPECT_EQ(r.code, exit_unreachable) << show(r);
        EXPECT_TRUE(contains(r.err, "mismatch")) << show(r);
    }
    EXPECT_FALSE(server.last_request()) << "a request went to the wrong server";
}

TEST(approvals_cli_tls, an_unreadable_ca_file_is_a_usage_error)
{
    auto r = run_with({"list", "--ca", "/nonexistent/ca.pem", "--url", "https://127.0.0.1:1"});
    EXPECT_EQ(r.code, exit_usage) << show(r);
    EXPECT_TRUE(contains(r.err, "--ca '/nonexistent/ca.pem': cannot load CA certificates")) << show(r);
}

}  // namespace
}  // namespace egressd::proxy::approvals_cli
