#include "proxy/tools/events_summary.hpp"

#include "proxy/cli.hpp"
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

// What one row of the summary counts: a client (or, without one, the source address), a destination and
// why. Revocations also keep which of the two events they were.
struct group_key {
    std::string client;     // empty: no client matched
    std::string source_ip;  // only when there is no client: who it was, then
    std::string host;
    std::uint16_t port = 0;
    std::string reason;
    std::string event;
    auto tie() const { return std::tie(client, source_ip, host, port, reason, event); }
    friend bool operator<(const group_key& a, const group_key& b) { return a.tie() < b.tie(); }
};

struct tally {
    std::size_t count = 0;
    std::chrono::system_clock::time_point first;
    std::chrono::system_clock::time_point last;
};

struct section {
    std::string_view title;
    std::string_view json_name;
    std::map<group_key, tally> groups;
    std::size_t total = 0;
};

struct summary {
    section denied{"Denied (egress.deny)", "denied", {}, 0};
    section would_deny{"Would deny, report mode (egress.would_deny)", "would_deny", {}, 0};
    section revoked{"Revoked connections (egress.revoke, egress.would_revoke)", "revoked", {}, 0};
    section errors{"Errors, not policy denials (egress.error)", "errors", {}, 0};
    std::size_t allowed = 0;

    section* section_for(std::string_view event)
    {
        if (event == "egress.deny") {
            return &denied;
        }
        if (event == "egress.would_deny") {
            return &would_deny;
        }
        if (event == "egress.revoke" || event == "egress.would_revoke") {
            return &revoked;
        }
        if (event == "egress.error") {
            return &errors;
        }
        return nullptr;
    }

    void add(const recorded_event& e)
    {
        if (e.event == "egress.allow") {
            ++allowed;
            return;
        }
        auto* s = section_for(e.event);
        if (s == nullptr) {
            return;  // closes: not decisions
        }
        group_key key{e.client, e.client.empty() ? e.source_ip : std::string(), e.host, e.port, e.reason,
                      s == &revoked ? e.event : std::string()};
        auto& t = s->groups[key];
        if (t.count == 0 || e.time < t.first) {
            t.first = e.time;
        }
        if (t.count == 0 || e.time > t.last) {
            t.last = e.time;
        }
        ++t.count;
        ++s->total;
    }
};

// The groups of a section, most frequent first; ties in key order so the output is stable.
std::vector<std::pair<group_key, tally>> by_count(const section& s)
{
    std::vector<std::pair<group_key, tally>> rows(s.groups.begin(), s.groups.end());
    std::stable_sort(rows.begin(), rows.end(),
                     [](const auto& a, const auto& b) { return a.second.count > b.second.count; });
    return rows;
}

std::string client_label(const group_key& k)
{
    return k.client.empty() ? "(none) " + (k.source_ip.empty() ? std::string("?") : k.source_ip) : k.client;
}

std::string destination_label(const std::string& host, std::uint16_t port)
{
    bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

void print_section(std::ostream& out, const section& s)
{
    out << '\n' << s.title << ": " << s.total << '\n';
    if (s.groups.empty()) {
        return;
    }
    bool with_event = !s.groups.begin()->first.event.empty();
    std::vector<std::string> header{"COUNT", "CLIENT", "DESTINATION", "REASON"};
    if (with_event) {
        header.emplace_back("EVENT");
    }
    header.insert(header.end(), {"FIRST SEEN", "LAST SEEN"});
    std::vector<std::vector<std::string>> rows;
    for (const auto& [k, t] : by_count(s)) {
        std::vector<std::string> row{std::to_string(t.count), client_label(k), destination_label(k.host, k.port),
                                     k.reason.empty() ? "-" : k.reason};
        if (with_event) {
            row.push_back(k.event);
        }
        row.insert(row.end(), {format_time(t.first), format_time(t.last)});
        rows.push_back(std::move(row));
    }
    print_table(out, header, rows);
}

json::array section_json(const section& s)
{
    json::array rows;
    for (const auto& [k, t] : by_count(s)) {
        json::object row;
        row["client"] = k.client.empty() ? json::value(nullptr) : json::value(k.client);
        if (k.client.empty()) {
            row["source_ip"] = k.source_ip;
        }
        row["host"] = k.host;
        row["port"] = k.port;
        row["reason"] = k.reason;
        if (!k.event.empty()) {
            row["event"] = k.event;
        }
        row["count"] = t.count;
        row["first_seen"] = format_time(t.first);
        row["last_seen"] = format_time(t.last);
        rows.push_back(std::move(row));
    }
    return rows;
}

}  // namespace

int events_summary(const std::vector<std::string>& args, std::ostream& out, std::ostream& err)
{
    event_options options;
    if (auto problem = parse_event_options(args, false, std::chrono::system_clock::now(), options)) {
        return usage_error(err, *problem, "events");
    }
    if (options.positional.empty()) {
        return usage_error(err, "events summary needs at least one FILE (- for standard input)", "events");
    }
    summary s;
    read_report report;
    try {
        report = read_events(options.positional, options.filter, [&](const recorded_event& e) { s.add(e); });
    } catch (const std::runtime_error& e) {
        err << "egressd: " << e.what() << '\n';
        return exit_invalid;
    }
    print_read_problems(report, err);
    const section* sections[] = {&s.denied, &s.would_deny, &s.revoked, &s.errors};
    if (options.json) {
        json::object j;
        j["files"] = json::value_from(options.positional);
        j["since"] = options.filter.since ? json::value(format_time(*options.filter.since)) : json::value(nullptr);
        j["client"] = options.filter.client ? json::value(*options.filter.client) : json::value(nullptr);
        j["lines"] = report.lines;
        j["events"] = report.events;
        j["unreadable"] = report.unreadable;
        j["allowed"] = s.allowed;
        for (const auto* sec : sections) {
            j[std::string(sec->json_name) + "_total"] = sec->total;
            j[sec->json_name] = section_json(*sec);
        }
        out << json::serialize(j) << '\n';
        return exit_ok;
    }
    out << report.events << " event(s) from " << options.positional.size() << " file(s)";
    if (options.filter.since) {
        out << " since " << format_time(*options.filter.since);
    }
    if (options.filter.client) {
        out << " of client " << *options.filter.client;
    }
    out << ": " << s.allowed << " allowed, " << s.denied.total << " denied, " << s.would_deny.total
        << " would deny, " << s.revoked.total << " revoked, " << s.errors.total << " error(s)";
    if (report.unreadable > 0) {
        out << "; " << report.unreadable << " unreadable line(s)";
    }
    out << '\n';
    for (const auto* sec : sections) {
        print_section(out, *sec);
    }
    return exit_ok;
}

}  // namespace egressd::proxy::tools
