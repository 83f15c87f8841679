#include "proxy/tools/policy_test.hpp"

#include "config/policy_loader.hpp"
#include "config/rfc3339.hpp"
#include "config/schema.hpp"
#include "config/yaml_tree.hpp"
#include "protocol/host_port.hpp"
#include "proxy/cli.hpp"
#include "proxy/tools/decide.hpp"
#include "proxy/tools/event_options.hpp"

#include <boost/json.hpp>

#include <fstream>
#include <ostream>
#include <sstream>

namespace egressd::proxy::tools {
namespace {

namespace json = boost::json;
namespace pol = egressd::policy;

struct test_case {
    std::string name;
    config::mark where;
    std::optional<pol::client_id> named_client;  // client: NAME
    std::string who;                             // the client as the case names it, for messages
    std::optional<pol::address> source;
    std::optional<std::string> identity;
    pol::destination dest;
    std::string dest_text;
    std::vector<pol::address> resolved;
    std::optional<pol::time_point> at;
    std::optional<pol::http_request_facts> request;  // method: (and path:); none: a CONNECT
    bool expect_allow = false;
    std::optional<pol::reason> reason;
};

// Reads CASES.yaml strictly, against the policy the cases are for (a client: must name one of its clients).
class cases_reader {
public:
    cases_reader(config::schema_reader& r, const pol::policy* p, std::string policy_path)
        : r_(r), p_(p), policy_path_(std::move(policy_path))
    {
    }

    std::vector<test_case> read(const config::yaml_node& root)
    {
        std::vector<test_case> cases;
        if (!root.is_sequence()) {
            r_.error(root, "expected a list of test cases, found " +
                               std::string(root.is_map() ? "a mapping" : root.is_scalar() ? "a scalar" : "nothing"));
            return cases;
        }
        for (const auto& item : root.items) {
            if (auto c = read_case(item)) {
                cases.push_back(std::move(*c));
            }
        }
        return cases;
    }

private:
    std::optional<test_case> read_case(const config::yaml_node& item)
    {
        if (!r_.expect_map(item, "a test case")) {
            return std::nullopt;
        }
        auto errors_before = r_.error_count();
        r_.check_keys(item, "a test case",
                      {"name", "client", "source", "identity", "dest", "resolved", "at", "method", "path", "expect",
                       "reason"});
        test_case c;
        c.where = item.where;
        if (const auto* n = r_.find(item, "name")) {
            c.name = r_.string_value(*n, "a case name").value_or("");
        }
        read_who(item, c);
        if (const auto* n = r_.require(item, "dest", "a test case")) {
            read_dest(*n, c);
        }
        if (const auto* n = r_.find(item, "resolved")) {
            r_.for_each_scalar(*n, "resolved addresses", [&](const config::yaml_node& a) {
                if (auto addr = pol::address::parse(a.value)) {
                    c.resolved.push_back(*addr);
                } else {
                    r_.error(a, "expected an IP address, found '" + a.value + "'");
                }
            });
        }
        read_request(item, c);
        if (const auto* n = r_.find(item, "at")) {
            if (auto text = r_.string_value(*n, "an RFC 3339 time like 2026-12-31T12:00:00Z")) {
                c.at = config::parse_rfc3339(*text);
                if (!c.at) {
                    r_.error(*n, "expected an RFC 3339 time like 2026-12-31T12:00:00Z, found '" + *text + "'");
                }
            }
        }
        if (const auto* n = r_.require(item, "expect", "a test case")) {
            if (auto text = r_.string_value(*n, "allow or deny")) {
                if (*text != "allow" && *text != "deny") {
                    r_.error(*n, "expected allow or deny, found '" + *text + "'");
                }
                c.expect_allow = *text == "allow";
            }
        }
        if (const auto* n = r_.find(item, "reason")) {
            if (auto text = r_.string_value(*n, "a reason code")) {
                c.reason = pol::parse_reason(*text);
                if (!c.reason) {
                    r_.error(*n, "expected a reason code (allowed, unknown_client, no_matching_rule, port_not_allowed, "
                                 "explicit_deny, address_guard, expired, ...), found '" +
                                     *text + "'");
                }
            }
        }
        if (r_.error_count() != errors_before) {
            return std::nullopt;
        }
        return c;
    }

    // method: GET (and path: /x, default "/"): a plain-HTTP request; no method (or CONNECT): a tunnel.
    void read_request(const config::yaml_node& item, test_case& c)
    {
        const auto* method = r_.find(item, "method");
        const auto* path = r_.find(item, "path");
        std::optional<std::string> m = method != nullptr ? r_.string_value(*method, "an HTTP method") : std::nullopt;
        std::optional<std::string> p = path != nullptr ? r_.string_value(*path, "a path like /simple/") : std::nullopt;
        if (m && (m->empty() || m->find_first_of(" \t/") != std::string::npos)) {
            r_.error(*method, "expected an HTTP method like GET, found '" + *m + "'");
            return;
        }
        if (path != nullptr && (!m || *m == "CONNECT")) {
            r_.error(*path, "path needs a method other than CONNECT (a tunnel has no path): add method: GET");
            return;
        }
        if (p && (p->empty() || p->front() != '/' || p->find_first_of(" \t?#") != std::string::npos)) {
            r_.error(*path, "expected a path starting with '/', without spaces or query, found '" + *p + "'");
            return;
        }
        if (m && *m != "CONNECT") {
            c.request = http_request_of(*m, p.value_or("/"));
        }
    }

    void read_who(const config::yaml_node& item, test_case& c)
    {
        const auto* client = r_.find(item, "client");
        const auto* source = r_.find(item, "source");
        const auto* identity = r_.find(item, "identity");
        if ((client != nullptr) == (source != nullptr || identity != nullptr)) {
            r_.error(item, "a test case needs client: NAME, or source: IP and/or identity: ID (not both)");
            return;
        }
        if (client != nullptr) {
            auto name = r_.string_value(*client, "a client name");
            if (!name) {
                return;
            }
            c.who = "client " + *name;
            if (p_ != nullptr) {
                c.named_client = p_->find_client(*name);
                if (!c.named_client) {
                    r_.error(*client, "no client named '" + *name + "' in " + policy_path_);
                }
            }
            return;
        }
        if (source != nullptr) {
            if (auto text = r_.string_value(*source, "a source IP address")) {
                c.source = pol::address::parse(*text);
                if (!c.source) {
                    r_.error(*source, "expected a source IP address, found '" + *text + "'");
                }
                c.who = "source " + *text;
            }
        }
        if (identity != nullptr) {
            if (auto text = r_.string_value(*identity, "an identity")) {
                c.identity = *text;
                c.who = "identity " + *text + (c.who.empty() ? "" : " and " + c.who);
            }
        }
    }

    void read_dest(const config::yaml_node& n, test_case& c)
    {
        auto text = r_.string_value(n, "a destination host:port");
        if (!text) {
            return;
        }
        auto d = protocol::parse_destination(*text);
        if (!d.value) {
            r_.error(n, "expected a destination host:port like api.example.com:443, found '" + *text + "': " + d.error);
            return;
        }
        c.dest = std::move(*d.value);
        c.dest_text = *text;
    }

    config::schema_reader& r_;
    const pol::policy* p_;
    std::string policy_path_;
};

struct case_outcome {
    const test_case* c = nullptr;
    std::optional<pol::client_id> client;
    connection_verdict verdict;
    pol::time_point at;
    bool passed = false;
};

std::string case_label(const test_case& c, const std::string& file, std::size_t number)
{
    std::string place = file + ":" + std::to_string(c.where.line) + ":" + std::to_string(c.where.column);
    return place + ": case " + std::to_string(number) + (c.name.empty() ? "" : " \"" + c.name + "\"");
}

}  // namespace

int policy_test(const std::vector<std::string>& args, std::ostream& out, std::ostream& err)
{
    std::vector<std::string> paths;
    bool as_json = false;
    for (const auto& a : args) {
        if (a == "--json") {
            as_json = true;
        } else if (a.starts_with("--")) {
            return usage_error(err, "unknown option '" + a + "'", "policy");
        } else {
            paths.push_back(a);
        }
    }
    if (paths.size() != 2) {
        return usage_error(err, "policy test takes a POLICY and a CASES.yaml file", "policy");
    }
    const std::string& policy_path = paths[0];
    const std::string& cases_path = paths[1];
    auto loaded = config::load_policy(policy_path);
    for (const auto& e : loaded.errors) {
        err << e.format("error") << '\n';
    }

    std::vector<config::diagnostic> errors;
    std::vector<test_case> cases;
    std::ifstream in(cases_path, std::ios::binary);
    if (!in) {
        errors.push_back({cases_path, {}, "cannot open the test cases"});
    } else {
        std::ostringstream text;
        text << in.rdbuf();
        config::yaml_error parse_error;
        auto root = config::parse_yaml(text.str(), parse_error);
        if (!root) {
            errors.push_back({cases_path, parse_error.where, parse_error.message});
        } else {
            config::schema_reader reader(cases_path, errors);
            cases = cases_reader(reader, loaded.snapshot.get(), policy_path).read(*root);
        }
    }
    for (const auto& e : errors) {
        err << e.format("error") << '\n';
    }
    if (!loaded.snapshot || !errors.empty()) {
        err << "egressd: " << (loaded.snapshot ? cases_path + ": invalid test cases" : policy_path + ": invalid policy")
            << '\n';
        return exit_invalid;
    }

    const auto& p = *loaded.snapshot;
    auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
    std::vector<case_outcome> outcomes;
    std::size_t failed = 0;
    for (const auto& c : cases) {
        case_outcome o;
        o.c = &c;
        o.at = c.at.value_or(now);
        o.client = c.named_client ? c.named_client : p.match_client(pol::client_facts{c.source, c.identity});
        o.verdict = decide_connection(p, o.client, c.dest.target, c.dest.port, c.resolved, o.at, std::nullopt, c.request);
        o.passed = o.verdict.allowed == c.expect_allow && (!c.reason || *c.reason == o.verdict.deciding.why);
        failed += o.passed ? 0 : 1;
        outcomes.push_back(o);
    }

    if (as_json) {
        json::array rows;
        for (std::size_t i = 0; i < outcomes.size(); ++i) {
            const auto& o = outcomes[i];
            const auto& d = o.verdict.deciding;
            json::object row;
            row["case"] = i + 1;
            row["name"] = o.c->name;
            row["line"] = o.c->where.line;
            row["column"] = o.c->where.column;
            row["passed"] = o.passed;
            row["client"] = o.client ? json::value(std::string(p.client_name(*o.client))) : json::value(nullptr);
            row["destination"] = o.c->dest_text;
            row["method"] = o.c->request ? json::value(o.c->request->method) : json::value("CONNECT");
            row["path"] = o.c->request ? json::value(o.c->request->path) : json::value(nullptr);
            row["at"] = config::format_rfc3339(o.at);
            row["expected"] = o.c->expect_allow ? "allow" : "deny";
            row["expected_reason"] = o.c->reason ? json::value(pol::to_string(*o.c->reason)) : json::value(nullptr);
            row["result"] = o.verdict.allowed ? "allow" : "deny";
            row["verdict"] = pol::to_string(d.outcome);
            row["reason"] = pol::to_string(d.why);
            auto rule = rule_label(p, d);
            row["rule"] = rule.empty() ? json::value(nullptr) : json::value(rule);
            rows.push_back(std::move(row));
        }
        json::object j;
        j["policy"] = policy_path;
        j["cases_file"] = cases_path;
        j["total"] = outcomes.size();
        j["passed"] = outcomes.size() - failed;
        j["failed"] = failed;
        j["cases"] = std::move(rows);
        out << json::serialize(j) << '\n';
    } else {
        for (std::size_t i = 0; i < outcomes.size(); ++i) {
            const auto& o = outcomes[i];
            if (o.passed) {
                continue;
            }
            const auto& c = *o.c;
            std::string expected = c.expect_allow ? "allow" : "deny";
            if (c.reason) {
                expected += " [" + std::string(pol::to_string(*c.reason)) + "]";
            }
            out << "FAIL " << case_label(c, cases_path, i + 1) << '\n'
                << "  " << c.who << " -> "
                << (c.request ? c.request->method + " http://" + c.dest_text + c.request->path : c.dest_text)
                << " at " << config::format_rfc3339(o.at);
            if (!c.named_client) {
                out << " (client " << (o.client ? std::string(p.client_name(*o.client)) : std::string("(none)"))
                    << ")";
            }
            out << '\n'
                << "  expected: " << expected << '\n'
                << "  got:      " << verdict_label(p, o.verdict.deciding) << '\n';
        }
        out << (failed == 0 ? "ok: " : "FAIL: ") << outcomes.size() - failed << " of " << outcomes.size()
            << " case(s) passed";
        if (failed > 0) {
            out << ", " << failed << " failed";
        }
        out << '\n';
    }
    return failed == 0 ? exit_ok : exit_check_failed;
}

}  // namespace egressd::proxy::tools
