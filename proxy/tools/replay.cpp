#include "proxy/tools/replay.hpp"

#include "config/policy_loader.hpp"
#include "protocol/host_port.hpp"
#include "proxy/cli.hpp"
#include "proxy/tools/decide.hpp"
#include "proxy/tools/event_options.hpp"
#include "proxy/tools/table.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <map>
#include <ostream>
#include <stdexcept>
#include <tuple>

namespace egressd::proxy::tools {
namespace {

namespace json = boost::json;
namespace pol = egressd::policy;

// One row of what changed: the recorded client and destination, and what the candidate says about it.
struct change_key {
    std::string client;  // as recorded; empty: none
    std::string host;
    std::uint16_t port = 0;
    std::string candidate_client;  // the candidate's client for it; empty: none
    std::string verdict;           // the candidate's
    std::string reason;
    std::string rule;
    auto tie() const { return std::tie(client, host, port, candidate_client, verdict, reason, rule); }
    friend bool operator<(const change_key& a, const change_key& b) { return a.tie() < b.tie(); }
};

struct change_tally {
    std::size_t count = 0;
    std::chrono::system_clock::time_point first;
    std::chrono::system_clock::time_point last;
    std::string recorded_reason;  // the last recorded reason (a denial's; "allowed" or "granted" otherwise)
};

struct change_list {
    std::map<change_key, change_tally> rows;
    std::size_t total = 0;

    void add(change_key key, const recorded_event& e)
    {
        auto& t = rows[std::move(key)];
        if (t.count == 0 || e.time < t.first) {
            t.first = e.time;
        }
        if (t.count == 0 || e.time > t.last) {
            t.last = e.time;
        }
        t.recorded_reason = e.reason;
        ++t.count;
        ++total;
    }
};

struct replay_result {
    std::size_t replayed = 0;
    std::size_t allowed_before = 0;
    std::size_t denied_before = 0;
    std::size_t skipped = 0;  // events that are not policy decisions about a destination
    change_list newly_denied;
    change_list newly_allowed;
    change_list granted_before;  // allowed by an approver's grant, which the candidate does not have
};

// The tunnel phase's reasons: the event records what the tunnel started with, so the candidate decides it too.
std::optional<pol::tunnel_start> tunnel_of(const recorded_event& e, pol::reason recorded)
{
    if (recorded == pol::reason::not_tls) {
        return pol::tunnel_start{false, std::nullopt};
    }
    if (recorded == pol::reason::sni_missing) {
        return pol::tunnel_start{true, std::nullopt};
    }
    if (!e.sni.empty()) {
        return pol::tunnel_start{true, e.sni};
    }
    return std::nullopt;
}

class replayer {
public:
    replayer(const pol::policy& candidate, pol::time_point now) : p_(candidate), now_(now) {}

    void add(const recorded_event& e)
    {
        bool was_allowed = e.event == "egress.allow";
        if (!was_allowed && e.event != "egress.deny" && e.event != "egress.would_deny") {
            ++result_.skipped;
            return;
        }
        // Proxy-authentication, handshake and malformed-request refusals, and DNS errors, carry no policy
        // reason: the policy never saw them.
        auto recorded = pol::parse_reason(e.reason);
        auto target = pol::host::parse(e.host);
        if (!recorded || e.host == "-" || e.port == 0 || !target.value) {
            ++result_.skipped;
            return;
        }
        ++result_.replayed;
        ++(was_allowed ? result_.allowed_before : result_.denied_before);

        std::optional<pol::client_id> client;
        if (!e.client.empty()) {
            client = p_.find_client(e.client);
        }
        if (!client) {
            auto source = pol::address::parse(e.source_ip);
            client = p_.match_client(pol::client_facts{
                source, e.identity.empty() ? std::nullopt : std::optional<std::string>(e.identity)});
        }
        std::vector<pol::address> resolved;
        if (auto addr = pol::address::parse(e.address)) {
            resolved.push_back(*addr);
        }
        // A forwarded request is decided with its method and path (rules may name them); a CONNECT without.
        std::optional<pol::http_request_facts> request;
        if (!e.path.empty() && !e.method.empty() && e.method != "CONNECT") {
            request = http_request_of(e.method, e.path);
        }
        auto v = decide_connection(p_, client, *target.value, e.port, resolved, now_, tunnel_of(e, *recorded),
                                   request);
        if (was_allowed == v.allowed) {
            return;
        }
        change_key key{e.client,
                       e.host,
                       e.port,
                       client ? std::string(p_.client_name(*client)) : std::string(),
                       std::string(pol::to_string(v.deciding.outcome)),
                       std::string(pol::to_string(v.deciding.why)),
                       rule_label(p_, v.deciding)};
        if (!was_allowed) {
            result_.newly_allowed.add(std::move(key), e);
        } else if (*recorded == pol::reason::granted) {
            result_.granted_before.add(std::move(key), e);
        } else {
            result_.newly_denied.add(std::move(key), e);
        }
    }

    replay_result& result() { return result_; }

private:
    const pol::policy& p_;
    pol::time_point now_;
    replay_result result_;
};

std::vector<std::pair<change_key, change_tally>> by_count(const change_list& list)
{
    std::vector<std::pair<change_key, change_tally>> rows(list.rows.begin(), list.rows.end());
    std::stable_sort(rows.begin(), rows.end(),
                     [](const auto& a, const auto& b) { return a.second.count > b.second.count; });
    return rows;
}

std::string destination_label(const std::string& host, std::uint16_t port)
{
    bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

void print_changes(std::ostream& out, std::string_view title, const change_list& list)
{
    out << '\n' << title << ": " << list.total << " decision(s), " << list.rows.size() << " row(s)\n";
    if (list.rows.empty()) {
        return;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& [k, t] : by_count(list)) {
        std::string candidate = k.verdict + (k.reason == "allowed" ? "" : " [" + k.reason + "]");
        if (!k.rule.empty()) {
            candidate += (k.reason == "allowed" || k.reason == "explicit_deny" ? " by " : ", nearest rule ") + k.rule;
        }
        std::string client = k.client.empty() ? "(none)" : k.client;
        if (k.candidate_client != k.client) {
            client += " -> " + (k.candidate_client.empty() ? std::string("(none)") : k.candidate_client);
        }
        rows.push_back({std::to_string(t.count), client, destination_label(k.host, k.port), t.recorded_reason,
                        candidate, format_time(t.last)});
    }
    print_table(out, {"COUNT", "CLIENT", "DESTINATION", "RECORDED", "CANDIDATE", "LAST SEEN"}, rows);
}

json::array changes_json(const change_list& list)
{
    json::array rows;
    for (const auto& [k, t] : by_count(list)) {
        json::object row;
        row["client"] = k.client.empty() ? json::value(nullptr) : json::value(k.client);
        row["candidate_client"] = k.candidate_client.empty() ? json::value(nullptr) : json::value(k.candidate_client);
        row["host"] = k.host;
        row["port"] = k.port;
        row["count"] = t.count;
        row["recorded_reason"] = t.recorded_reason;
        row["verdict"] = k.verdict;
        row["reason"] = k.reason;
        row["rule"] = k.rule.empty() ? json::value(nullptr) : json::value(k.rule);
        row["first_seen"] = format_time(t.first);
        row["last_seen"] = format_time(t.last);
        rows.push_back(std::move(row));
    }
    return rows;
}

}  // namespace

int policy_replay(const std::vector<std::string>& args, std::ostream& out, std::ostream& err)
{
    auto now = std::chrono::system_clock::now();
    event_options options;
    if (auto problem = parse_event_options(args, true, now, options)) {
        return usage_error(err, *problem, "policy");
    }
    if (options.positional.size() != 1) {
        return usage_error(err, "policy replay takes one CANDIDATE policy and --events FILE...", "policy");
    }
    const std::string& candidate_path = options.positional.front();
    auto loaded = config::load_policy(candidate_path);
    if (!loaded.snapshot) {
        for (const auto& e : loaded.errors) {
            err << e.format("error") << '\n';
        }
        err << "egressd: " << candidate_path << ": invalid candidate policy\n";
        return exit_invalid;
    }
    auto decided_at = std::chrono::floor<std::chrono::seconds>(now);
    replayer r(*loaded.snapshot, decided_at);
    read_report report;
    try {
        report = read_events(options.files, options.filter, [&](const recorded_event& e) { r.add(e); });
    } catch (const std::runtime_error& e) {
        err << "egressd: " << e.what() << '\n';
        return exit_invalid;
    }
    print_read_problems(report, err);
    const auto& result = r.result();
    int code = result.newly_denied.total > 0 ? exit_check_failed : exit_ok;
    if (options.json) {
        json::object j;
        j["candidate"] = candidate_path;
        j["decided_at"] = format_time(decided_at);
        j["files"] = json::value_from(options.files);
        j["events"] = report.events;
        j["unreadable"] = report.unreadable;
        j["replayed"] = result.replayed;
        j["allowed_before"] = result.allowed_before;
        j["denied_before"] = result.denied_before;
        j["skipped"] = result.skipped;
        j["newly_denied_total"] = result.newly_denied.total;
        j["newly_denied"] = changes_json(result.newly_denied);
        j["newly_allowed_total"] = result.newly_allowed.total;
        j["newly_allowed"] = changes_json(result.newly_allowed);
        j["granted_before_total"] = result.granted_before.total;
        j["granted_before"] = changes_json(result.granted_before);
        out << json::serialize(j) << '\n';
        return code;
    }
    out << "replayed " << result.replayed << " decision(s) (" << result.allowed_before << " allowed, "
        << result.denied_before << " denied or would deny) against " << candidate_path << ", decided at "
        << format_time(decided_at) << "; " << result.skipped << " other event(s) skipped\n";
    print_changes(out, "Newly denied (allowed before)", result.newly_denied);
    print_changes(out, "Newly allowed (denied before)", result.newly_allowed);
    if (result.granted_before.total > 0) {
        print_changes(out, "Allowed before by an approver's grant (the candidate has no grants)",
                      result.granted_before);
    }
    out << '\n'
        << (code == exit_ok ? "ok: nothing allowed before would be denied\n"
                            : "FAIL: " + std::to_string(result.newly_denied.total) +
                                  " decision(s) allowed before would be denied\n");
    return code;
}

}  // namespace egressd::proxy::tools
