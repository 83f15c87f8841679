#include "proxy/cli.hpp"

#include "proxy/approvals_cli.hpp"
#include "config/policy_loader.hpp"
#include "policy/connection.hpp"
#include "config/rfc3339.hpp"
#include "certs/credentials.hpp"
#include "config/server_config.hpp"
#include "proxy/event_log.hpp"
#include "proxy/json.hpp"
#include "protocol/host_port.hpp"
#include "proxy/server.hpp"
#include "proxy/startup/loader.hpp"
#include "proxy/tools/decide.hpp"
#include "proxy/tools/events_summary.hpp"
#include "proxy/tools/import_smokescreen.hpp"
#include "proxy/tools/import_squid.hpp"
#include "proxy/tools/policy_test.hpp"
#include "proxy/tools/replay.hpp"
#include "proxy/tools/suggest.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <iostream>
#include <ostream>
#include <string_view>

#ifndef EGRESSD_VERSION
#error "EGRESSD_VERSION must be defined by the build"
#endif

namespace egressd::proxy {
namespace {

namespace pol = egressd::policy;

constexpr std::string_view main_help = R"(egressd - an egress filtering HTTP/HTTPS forward proxy

Usage:
  egressd run --config PATH
  egressd config check PATH
  egressd passwd USER            (reads the password on standard input)
  egressd policy check PATH
  egressd policy explain PATH (--client NAME | --source IP | --identity ID [--source IP]) --dest HOST:PORT
                         [--method M [--path P]] [--resolved IP ...] [--at TIME] [--json]
  egressd policy test POLICY CASES.yaml [--json]
  egressd policy replay CANDIDATE --events FILE... [--since 1h|TIME] [--client NAME] [--json]
  egressd policy suggest --events FILE... [--policy CURRENT] [--client NAME] [--since DURATION] [--collapse N]
  egressd events summary FILE... [--since 1h|TIME] [--client NAME] [--json]
  egressd import smokescreen ACL.yaml [--out DIR] [--force]
  egressd import squid SQUID_CONF [--out DIR] [--force]
  egressd approvals [--url URL] [--user USER] [--password-stdin] [--ca FILE] [--json]
                    list|show|approve|deny|revoke|extend|justify|grants|history ...
  egressd --version
  egressd --help

Commands:
  run       serve: an explicit HTTP proxy (absolute-form http:// and CONNECT) that lets each client reach
            only what its policy allows; stops gracefully on SIGTERM or SIGINT
  config    check a server configuration and the policy it names
  passwd    print a line for the proxy_auth credentials file (PBKDF2-SHA256, random salt)
  policy    check a policy, explain how it decides a destination, test it against expected decisions,
            replay recorded traffic against it, or suggest one from recorded traffic
  events    summarize event logs: what was denied, by client, destination and reason
  import    translate another proxy's policy (a smokescreen ACL, a squid.conf) into an egressd policy,
            test cases and a report
  approvals list, approve and deny access requests, and revoke or extend grants, on a running egressd

Exit codes: 0 ok, 1 invalid policy or unreadable file, 2 usage error, 3 denied (policy explain),
4 a replay found newly denied traffic or a policy test failed.
Run 'egressd policy --help' for the policy commands, 'egressd events --help' for the event logs,
'egressd import --help' for the importers,
'egressd approvals --help' for the approvals commands and their exit codes.
)";

constexpr std::string_view policy_help = R"(Usage:
  egressd policy check PATH
      Load the policy (a file, or a directory of *.yaml files merged), report every error
      and warning with file:line:column, and print a summary. Exit 0 valid, 1 invalid.

  egressd policy explain PATH (--client NAME | --source IP | --identity ID [--source IP]) --dest HOST:PORT
                         [--method M [--path P]] [--resolved IP ...] [--at TIME] [--json]
      Show how the policy decides one connection: the client (named, or matched by identity and
      source address), the name phase (before DNS) and, for each --resolved address, the address
      phase (after DNS). Prints the verdict and the deciding rule or the reason code.
        --client NAME     decide for the client with this name
        --source IP       decide for the client this source address matches
        --identity ID     the identity the proxy established (proxy-auth user, certificate name)
        --dest HOST:PORT  destination, e.g. api.example.com:443, 192.0.2.1:80, [2001:db8::1]:443
        --method M        a plain-HTTP request with this method (default: a CONNECT tunnel)
        --path P          and this path (default /), matched in normal form by rules naming paths
        --resolved IP     an address the name resolved to (repeatable)
        --at TIME         RFC 3339 time to decide at (default: now), e.g. 2026-12-31T12:00:00Z
        --json            print one JSON object instead of text
      Exit 0 allowed (or would-deny in report mode), 3 denied, 1 invalid policy, 2 usage error.

  egressd policy test POLICY CASES.yaml [--json]
      Decide every case of CASES.yaml (a YAML list) as policy explain does, and compare with what the
      case expects. Each case is a mapping:
        name: TEXT                      optional, shown when the case fails
        client: NAME                    or source: IP and/or identity: ID
        dest: HOST:PORT                 e.g. api.payments.example:443
        resolved: [IP, ...]             optional: addresses the name resolved to (address phase)
        method: GET                     optional: a plain-HTTP request (default: a CONNECT tunnel)
        path: /simple/                  optional, with method: the request's path (default /)
        at: TIME                        optional RFC 3339 time (default: now)
        expect: allow | deny
        reason: CODE                    optional: the reason code must match too (e.g. explicit_deny)
      A client in report mode is denied here when the policy denies (its events say would_deny).
      Every failing case is printed with file:line, what was expected, what happened and the deciding
      rule (group#index "description") or reason; then a one-line total.
      Exit 0 every case passes, 4 a case failed, 1 invalid policy or cases file, 2 usage error.

  egressd policy replay CANDIDATE --events FILE... [--since 1h|TIME] [--client NAME] [--json]
      Decide every recorded decision of the event logs (egress.allow, egress.deny, egress.would_deny;
      egressd, ECS or OCSF format; - is standard input) again with the CANDIDATE policy, and print what
      would change: newly denied and newly allowed, by client, destination and port, with counts and the
      candidate's reason and rule. The client is found by its recorded name, or by source address and
      identity when the candidate has no client of that name. Decisions are made now, as the candidate
      would run now (an expired rule denies). A candidate in report mode counts would_deny as denied.
      Traffic allowed before by an approver's grant is listed apart: the candidate has no grants.
      Proxy-authentication, handshake and DNS refusals are not policy decisions and are skipped.
        --since 1h|TIME   only events since a duration ago (90s, 30m, 1h, 7d) or an RFC 3339 time
        --client NAME     only events of this client
        --json            print one JSON object instead of text
      Exit 0 nothing allowed before would be denied, 4 something would be (a CI gate), 1 invalid
      candidate or unreadable file, 2 usage error.

  egressd policy suggest --events FILE... [--policy CURRENT] [--client NAME] [--since DURATION] [--collapse N]
      Write a policy that would allow what the events show: one group per client, exact names, ports
      per name, collapsed to *.parent only when many siblings were seen, with hit counts and first and
      last seen as comments; never what the deny list or the address guard refused.
)";

constexpr std::string_view events_help = R"(Usage:
  egressd events summary FILE... [--since 1h|TIME] [--client NAME] [--json]
      Summarize event logs (egressd, ECS or OCSF format, detected line by line; - is standard input):
      what was denied (egress.deny), grouped by client, destination and reason, with counts and first
      and last seen, most frequent first; then would-deny (report mode), revoked connections and errors
      (egress.error: an allowed name that could not be resolved) in sections of their own.
        --since 1h|TIME   only events since a duration ago (90s, 30m, 1h, 7d) or an RFC 3339 time
        --client NAME     only events of this client
        --json            print one JSON object instead of a table
      What was blocked in the last hour:  egressd events summary /var/log/egressd/events.log --since 1h
      Exit 0 ok, 1 a file cannot be read, 2 usage error.
)";

constexpr std::string_view import_help = R"(Usage:
  egressd import smokescreen ACL.yaml [--out DIR] [--force]
      Translate a smokescreen egress ACL into DIR (default ./egressd-import): policy.yaml, egressd.yaml (an
      mTLS listener), policy.cases.yaml and policy.inexact-cases.yaml (cases from smokescreen's decisions),
      import-report.txt (what did not carry over exactly). 'egressd import smokescreen --help' says more.
      Exit 0 written, 1 unreadable or invalid ACL, 2 usage error (or files exist and --force is not given).

  egressd import squid SQUID_CONF [--out DIR] [--force]
      Translate a squid.conf (its includes and quoted ACL files too) into DIR (default ./egressd-import):
      policy.yaml, egressd.yaml (listeners from http_port, upstream_proxy from a cache_peer parent with
      never_direct allow all), lists/NAME.txt (ACLs read from files), policy.cases.yaml (sample requests with
      Squid's own decision on the original file: the policy must pass them), policy.inexact-cases.yaml (samples
      the translation cannot carry over exactly) and import-report.txt (every line not carried over exactly,
      and why). Exit 0 written, 1 unreadable or invalid squid.conf (every error as file:line:column), 2 usage
      error (or files exist and --force is not given).
)";

bool is_help(std::string_view arg) { return arg == "--help" || arg == "-h" || arg == "help"; }

int usage_error(std::ostream& err, const std::string& message)
{
    err << "egressd: " << message << "\nRun 'egressd --help' for usage.\n";
    return exit_usage;
}

void print_diagnostics(const config::loaded_policy& loaded, std::ostream& err)
{
    for (const auto& e : loaded.errors) {
        err << e.format("error") << '\n';
    }
    for (const auto& w : loaded.warnings) {
        err << w.format("warning") << '\n';
    }
}

int policy_check(const std::vector<std::string>& args, std::ostream& out, std::ostream& err)
{
    if (args.size() != 1 || args[0].starts_with("-")) {
        return usage_error(err, "policy check takes exactly one PATH");
    }
    auto loaded = config::load_policy(args[0]);
    print_diagnostics(loaded, err);
    if (!loaded.snapshot) {
        out << args[0] << ": invalid: " << loaded.errors.size() << " error(s), " << loaded.warnings.size()
            << " warning(s)\n";
        return exit_invalid;
    }
    auto s = loaded.snapshot->stats();
    out << args[0] << ": valid (" << loaded.files.size() << " file(s), mode "
        << pol::to_string(loaded.snapshot->default_mode()) << ")\n"
        << "  clients:     " << s.clients << '\n'
        << "  groups:      " << s.groups << '\n'
        << "  rules:       " << s.rules << " (" << s.domain_patterns << " domain patterns, " << s.cidrs << " CIDRs)\n"
        << "  deny rules:  " << s.deny_rules << '\n'
        << "  warnings:    " << loaded.warnings.size() << '\n';
    return exit_ok;
}

struct explain_request {
    std::string path;
    std::optional<std::string> client_name;
    std::optional<pol::address> source;
    std::optional<std::string> identity;
    std::optional<pol::destination> dest;
    std::vector<pol::address> resolved;
    std::chrono::sys_seconds at;
    std::optional<std::string> method;  // with path: a plain-HTTP request; none (or CONNECT): a tunnel
    std::optional<std::string> path_asked;
    bool json = false;
};

// "deny rule 2", "deny rule 0 of client web", "group mirrors rule 1".
std::string rule_name(const pol::policy::rule_view& r, bool deny)
{
    std::string index = " rule " + std::to_string(r.index);
    if (!deny) {
        return "group " + std::string(r.group) + index;
    }
    if (r.group == "deny") {
        return "deny" + index;
    }
    std::string_view label = r.group;  // "client:NAME/deny" or "group:NAME/deny"
    auto colon = label.find(':');
    auto slash = label.rfind('/');
    return "deny" + index + " of " + std::string(label.substr(0, colon)) + " " +
           std::string(label.substr(colon + 1, slash - colon - 1));
}

std::string join_list(std::span<const std::string> items)
{
    std::string out;
    for (const auto& item : items) {
        out += (out.empty() ? "" : ", ") + item;
    }
    return out;
}

std::string rule_text(const pol::policy& p, const pol::decision& d)
{
    if (!d.rule) {
        return {};
    }
    auto r = p.describe(*d.rule);
    std::string text = rule_name(r, d.rule->is_deny());
    if (!r.description.empty()) {
        text += " \"" + std::string(r.description) + "\"";
    }
    text += " (" + p.describe_location(r.where);
    if (!r.methods.empty()) {
        text += ", methods " + join_list(r.methods);
    }
    if (!r.paths.empty()) {
        text += ", paths " + join_list(r.paths);
    }
    if (r.expires) {
        text += ", expires " + config::format_rfc3339(*r.expires);
    }
    return text + ")";
}

std::string decision_text(const pol::policy& p, const pol::decision& d)
{
    std::string text(pol::to_string(d.outcome));
    if (d.why != pol::reason::allowed) {
        text += " [" + std::string(pol::to_string(d.why)) + "]";
    }
    if (d.guard) {
        text += " address in guarded set " + std::string(pol::to_string(d.guard->category));
        if (d.guard->form != pol::embedding::none) {
            text += " (embedded " + std::string(pol::to_string(d.guard->form)) + " " + d.guard->checked.to_string() +
                    ")";
        }
    }
    if (d.rule) {
        std::string_view relation = d.why == pol::reason::allowed || d.why == pol::reason::explicit_deny
                                        ? " by "
                                        : ", nearest rule: ";
        text += std::string(relation) + rule_text(p, d);
    }
    return text;
}

std::string decision_json(const pol::policy& p, const pol::decision& d)
{
    std::string j = "{\"verdict\":" + json_string(pol::to_string(d.outcome)) +
                    ",\"reason\":" + json_string(pol::to_string(d.why)) +
                    ",\"mode\":" + json_string(pol::to_string(d.applied_mode));
    if (d.rule) {
        auto r = p.describe(*d.rule);
        j += ",\"rule\":{\"group\":" + json_string(r.group) + ",\"index\":" + std::to_string(r.index) +
             ",\"description\":" + json_string(r.description) +
             ",\"location\":" + json_string(p.describe_location(r.where));
        if (r.expires) {
            j += ",\"expires\":" + json_string(config::format_rfc3339(*r.expires));
        }
        auto list = [&](std::span<const std::string> items) {
            std::string a = "[";
            for (const auto& item : items) {
                a += (a.size() > 1 ? "," : "") + json_string(item);
            }
            return a + "]";
        };
        if (!r.methods.empty()) {
            j += ",\"methods\":" + list(r.methods);
        }
        if (!r.paths.empty()) {
            j += ",\"paths\":" + list(r.paths);
        }
        j += "}";
    }
    if (d.guard) {
        j += ",\"guard\":{\"set\":" + json_string(pol::to_string(d.guard->category)) +
             ",\"embedding\":" + json_string(pol::to_string(d.guard->form)) +
             ",\"checked\":" + json_string(d.guard->checked.to_string()) + "}";
    }
    return j + "}";
}

std::optional<int> parse_explain_args(const std::vector<std::string>& args, explain_request& req, std::ostream& err)
{
    req.at = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        auto value = [&]() -> std::optional<std::string> {
            if (i + 1 >= args.size()) {
                return std::nullopt;
            }
            return args[++i];
        };
        if (a == "--json") {
            req.json = true;
            continue;
        }
        if (!a.starts_with("--")) {
            if (!req.path.empty()) {
                return usage_error(err, "unexpected argument '" + a + "'");
            }
            req.path = a;
            continue;
        }
        auto v = value();
        if (!v) {
            return usage_error(err, a + " needs a value");
        }
        if (a == "--client") {
            req.client_name = *v;
        } else if (a == "--source") {
            req.source = pol::address::parse(*v);
            if (!req.source) {
                return usage_error(err, "--source '" + *v + "' is not an IP address");
            }
        } else if (a == "--identity") {
            req.identity = *v;
        } else if (a == "--dest") {
            auto d = protocol::parse_destination(*v);
            if (!d.value) {
                return usage_error(err, "--dest '" + *v + "': " + d.error);
            }
            req.dest = std::move(d.value);
        } else if (a == "--resolved") {
            auto addr = pol::address::parse(*v);
            if (!addr) {
                return usage_error(err, "--resolved '" + *v + "' is not an IP address");
            }
            req.resolved.push_back(*addr);
        } else if (a == "--method") {
            req.method = *v;
        } else if (a == "--path") {
            req.path_asked = *v;
        } else if (a == "--at") {
            auto t = config::parse_rfc3339(*v);
            if (!t) {
                return usage_error(err, "--at '" + *v + "' is not an RFC 3339 time like 2026-12-31T12:00:00Z");
            }
            req.at = *t;
        } else {
            return usage_error(err, "unknown option '" + a + "'");
        }
    }
    if (req.path.empty()) {
        return usage_error(err, "policy explain needs a policy PATH");
    }
    if (req.client_name.has_value() == (req.source.has_value() || req.identity.has_value())) {
        return usage_error(err, "policy explain needs --client NAME, or --source IP and/or --identity ID");
    }
    if (!req.dest) {
        return usage_error(err, "policy explain needs --dest HOST:PORT");
    }
    if (req.path_asked && (!req.method || *req.method == "CONNECT")) {
        return usage_error(err, "--path needs --method (other than CONNECT): a tunnel has no path");
    }
    if (req.path_asked && (req.path_asked->empty() || req.path_asked->front() != '/')) {
        return usage_error(err, "--path '" + *req.path_asked + "' does not start with '/'");
    }
    return std::nullopt;
}

int policy_explain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err)
{
    explain_request req;
    if (auto code = parse_explain_args(args, req, err)) {
        return *code;
    }
    auto loaded = config::load_policy(req.path);
    if (!loaded.snapshot) {
        print_diagnostics(loaded, err);
        return exit_invalid;
    }
    const auto& p = *loaded.snapshot;
    std::optional<pol::client_id> client;
    std::string matched_by;
    if (req.client_name) {
        client = p.find_client(*req.client_name);
        if (!client) {
            return usage_error(err, "no client named '" + *req.client_name + "' in " + req.path);
        }
        matched_by = "name";
    } else {
        client = p.match_client(pol::client_facts{req.source, req.identity});
        std::string facts = req.identity ? "identity " + *req.identity : std::string();
        if (req.source) {
            facts += (facts.empty() ? "source " : " and source ") + req.source->to_string();
        }
        matched_by = !client                              ? "nothing"
                     : p.client_name(*client) == "default" ? "default (nothing else matched)"
                                                          : facts;
    }
    const auto& target = req.dest->target;
    auto port = req.dest->port;
    std::optional<pol::http_request_facts> request;
    if (req.method && *req.method != "CONNECT") {
        auto asked = req.path_asked.value_or("/");
        request = tools::http_request_of(*req.method, asked.substr(0, asked.find('?')));
    }
    auto view = request ? std::optional(request->view()) : std::nullopt;
    const pol::http_request* http = view ? &*view : nullptr;
    auto name_decision = p.decide_name(client, target, port, req.at, nullptr, http);
    auto vetting = pol::vet_addresses(p, client, target, port, req.resolved, req.at, nullptr, http);
    const auto& address_decisions = vetting.decisions;
    // Without addresses the name phase is the whole answer.
    bool allowed = name_decision.allows_traffic() && (req.resolved.empty() || vetting.allowed());
    std::string client_text = client ? std::string(p.client_name(*client)) : std::string("(none)");
    std::string dest_text = target.to_string() + ":" + std::to_string(port);
    std::string request_text = request ? request->method + " " + request->path : std::string("CONNECT");
    if (req.json) {
        std::string j = "{\"client\":" + (client ? json_string(client_text) : std::string("null")) +
                        ",\"matched_by\":" + json_string(matched_by) + ",\"destination\":" + json_string(dest_text) +
                        ",\"method\":" + json_string(request ? request->method : std::string("CONNECT")) +
                        ",\"path\":" + (request ? json_string(request->path) : std::string("null")) +
                        ",\"at\":" + json_string(config::format_rfc3339(req.at)) +
                        ",\"name_phase\":" + decision_json(p, name_decision) + ",\"addresses\":[";
        for (std::size_t i = 0; i < address_decisions.size(); ++i) {
            j += (i > 0 ? ",{\"address\":" : "{\"address\":") + json_string(req.resolved[i].to_string()) +
                 ",\"decision\":" + decision_json(p, address_decisions[i]) + "}";
        }
        j += "],\"allowed\":" + std::string(allowed ? "true" : "false") + "}";
        out << j << '\n';
    } else {
        out << "client:      " << client_text << " (matched by " << matched_by << ")\n"
            << "destination: " << dest_text << '\n'
            << "request:     " << request_text << '\n'
            << "at:          " << config::format_rfc3339(req.at) << '\n'
            << "name phase:  " << decision_text(p, name_decision) << '\n';
        for (std::size_t i = 0; i < address_decisions.size(); ++i) {
            out << "address " << req.resolved[i].to_string() << ": " << decision_text(p, address_decisions[i]) << '\n';
        }
        out << "result:      " << (allowed ? "allowed" : "denied") << '\n';
    }
    return allowed ? exit_ok : exit_denied;
}

// Loads the server configuration and everything it names through the one loading path; prints every
// diagnostic.
std::optional<startup::loaded_state> load_all(const std::string& path, std::ostream& err, std::size_t* warnings = nullptr)
{
    auto loaded = startup::load(path);
    for (const auto& e : loaded.errors) {
        err << e << '\n';
    }
    for (const auto& w : loaded.warnings) {
        err << w << '\n';
    }
    if (warnings != nullptr) {
        *warnings = loaded.warnings.size();
    }
    return std::move(loaded.state);
}

int config_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err)
{
    if (args.size() != 2 || args[0] != "check") {
        return usage_error(err, "usage: egressd config check PATH");
    }
    std::size_t warnings = 0;
    auto all = load_all(args[1], err, &warnings);
    if (!all) {
        out << args[1] << ": invalid\n";
        return exit_invalid;
    }
    out << args[1] << ": valid (" << all->config->listeners.size() << " listener(s), policy "
        << all->config->policy_path.string() << ": " << all->policy->stats().clients << " clients, "
        << all->policy->stats().rules << " rules, " << warnings << " warning(s))\n";
    return exit_ok;
}

int passwd_command(const std::vector<std::string>& args, std::istream& in, std::ostream& out, std::ostream& err)
{
    if (args.size() != 1 || args[0].starts_with("-")) {
        return usage_error(err, "usage: egressd passwd USER  (the password is read from standard input)");
    }
    std::string password;
    std::getline(in, password);
    if (!password.empty() && password.back() == '\r') {
        password.pop_back();
    }
    if (password.empty()) {
        return usage_error(err, "passwd: no password on standard input");
    }
    try {
        out << certs::credential_store::make_entry(args[0], password) << '\n';
    } catch (const std::invalid_argument& e) {
        return usage_error(err, std::string("passwd: ") + e.what());
    }
    return exit_ok;
}

int run_command(const std::vector<std::string>& args, std::ostream& err)
{
    if (args.size() != 2 || args[0] != "--config") {
        return usage_error(err, "usage: egressd run --config PATH");
    }
    // Until the server handles them, a SIGHUP (a supervisor's reload) or a SIGUSR1 (logrotate's reopen) would
    // end the process: they are ignored while starting; the files are being read and opened then anyway.
    std::signal(SIGHUP, SIG_IGN);
    std::signal(SIGUSR1, SIG_IGN);
    auto all = load_all(args[1], err);
    if (!all) {
        return exit_invalid;
    }
    try {
        event_log log(all->config->logging, EGRESSD_VERSION);
        return serve(args[1], std::move(*all), log);
    } catch (const std::exception& e) {
        err << "egressd: cannot start: " << e.what() << '\n';
        return exit_invalid;
    }
}

int policy_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err)
{
    if (args.empty() || is_help(args[0])) {
        (args.empty() ? err : out) << policy_help;
        return args.empty() ? exit_usage : exit_ok;
    }
    std::vector<std::string> rest(args.begin() + 1, args.end());
    for (const auto& a : rest) {
        // Only the flags here: a bare "help" after the command is a PATH or a --client name, not a request.
        if (a == "--help" || a == "-h") {
            out << policy_help;
            return exit_ok;
        }
    }
    if (args[0] == "check") {
        return policy_check(rest, out, err);
    }
    if (args[0] == "explain") {
        return policy_explain(rest, out, err);
    }
    if (args[0] == "test") {
        return tools::policy_test(rest, out, err);
    }
    if (args[0] == "replay") {
        return tools::policy_replay(rest, out, err);
    }
    if (args[0] == "suggest") {
        return tools::policy_suggest(rest, out, err);
    }
    return usage_error(err, "unknown policy command '" + args[0] + "'");
}

int events_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err)
{
    if (args.empty() || is_help(args[0])) {
        (args.empty() ? err : out) << events_help;
        return args.empty() ? exit_usage : exit_ok;
    }
    std::vector<std::string> rest(args.begin() + 1, args.end());
    for (const auto& a : rest) {
        if (a == "--help" || a == "-h") {
            out << events_help;
            return exit_ok;
        }
    }
    if (args[0] == "summary") {
        return tools::events_summary(rest, out, err);
    }
    return usage_error(err, "unknown events command '" + args[0] + "'");
}

// egressd import SOURCE ...: each source's importer reads its own arguments (and its own --help).
int import_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err)
{
    if (args.empty() || is_help(args[0])) {
        (args.empty() ? err : out) << import_help;
        return args.empty() ? exit_usage : exit_ok;
    }
    std::vector<std::string> rest(args.begin() + 1, args.end());
    if (args[0] == "smokescreen") {
        return tools::import_smokescreen(rest, out, err);
    }
    if (args[0] == "squid") {
        return tools::import_squid(rest, out, err);
    }
    return usage_error(err, "unknown import source '" + args[0] + "'");
}

}  // namespace

int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err)
{
    if (args.empty()) {
        err << main_help;
        return exit_usage;
    }
    if (is_help(args[0])) {
        out << main_help;
        return exit_ok;
    }
    if (args[0] == "--version" || args[0] == "-V") {
        out << "egressd " << EGRESSD_VERSION << '\n';
        return exit_ok;
    }
    std::vector<std::string> rest(args.begin() + 1, args.end());
    if (args[0] == "policy") {
        return policy_command(rest, out, err);
    }
    if (args[0] == "events") {
        return events_command(rest, out, err);
    }
    if (args[0] == "config") {
        return config_command(rest, out, err);
    }
    if (args[0] == "run") {
        return run_command(rest, err);
    }
    if (args[0] == "passwd") {
        return passwd_command(rest, std::cin, out, err);
    }
    if (args[0] == "import") {
        return import_command(rest, out, err);
    }
    if (args[0] == "approvals") {
        return approvals_cli::run(rest, approvals_cli::environment::from_process(), std::cin, out, err);
    }
    return usage_error(err, "unknown command '" + args[0] + "'");
}

}  // namespace egressd::proxy
