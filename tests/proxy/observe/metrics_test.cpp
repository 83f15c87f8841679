#include "proxy/observe/metrics.hpp"

#include "proxy/dns/resolver.hpp"
#include "tests/policy/spec_builder.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace egressd::proxy::observe {
namespace {

using namespace std::chrono_literals;
using policy::verdict;

// Every sample of an exposition: series (name and labels, as written) -> value text.
std::map<std::string, std::string> samples(const std::string& text)
{
    std::map<std::string, std::string> out;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        if (line.empty() || line.front() == '#') {
            continue;
        }
        auto space = line.rfind(' ');
        out[line.substr(0, space)] = line.substr(space + 1);
    }
    return out;
}

// The samples of egressd's own families: the process_ ones change between any two scrapes.
std::map<std::string, std::string> egressd_samples(const std::string& text)
{
    auto all = samples(text);
    std::erase_if(all, [](const auto& s) { return s.first.starts_with("process_"); });
    return all;
}

// The value of one series, or "absent".
std::string value(const std::string& text, const std::string& series)
{
    auto all = samples(text);
    auto it = all.find(series);
    return it == all.end() ? "absent" : it->second;
}

std::string decisions(std::string_view v, std::string_view r, std::string_view client)
{
    return "egressd_decisions_total{verdict=\"" + std::string(v) + "\",reason=\"" + std::string(r) + "\",client=\"" +
           std::string(client) + "\"}";
}

// Three clients on disjoint sources, all using one group.
std::shared_ptr<const policy::policy> policy_with(std::initializer_list<std::string> clients)
{
    policy::fixtures::spec_builder b;
    b.group("web", {policy::fixtures::rule().domain("example.com").port(443)});
    int n = 0;
    for (const auto& c : clients) {
        std::string source = "10." + std::to_string(++n) + ".0.0/16";
        b.client(c, {source}, {"web"});
    }
    return b.compile_ok();
}

policy::client_id id_of(const policy::policy& p, std::string_view name)
{
    auto id = p.find_client(name);
    EXPECT_TRUE(id.has_value()) << name;
    return id.value_or(0);
}

struct promtool_result {
    int exit_code = -1;
    std::string output;
};

// Pipes text into `promtool check metrics`; the exact command is in the failure message.
promtool_result promtool_check(const std::string& text)
{
    test_support::temp_dir dir;
    auto out_file = dir.path() / "promtool.out";
    std::string command = "/usr/bin/promtool check metrics > " + out_file.string() + " 2>&1";
    FILE* pipe = ::popen(command.c_str(), "w");
    if (pipe == nullptr) {
        ADD_FAILURE() << "cannot run " << command;
        return {};
    }
    std::fwrite(text.data(), 1, text.size(), pipe);
    int status = ::pclose(pipe);
    promtool_result r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::ifstream in(out_file);
    std::ostringstream buf;
    buf << in.rdbuf();
    r.output = buf.str();
    return r;
}

TEST(Metrics, WorkerCountsAreSummedOnScrape)
{
    metrics_registry registry({"127.0.0.1:3128", "[::1]:3128"}, "1.2.3");
    auto& a = registry.add_worker();
    auto& b = registry.add_worker();

    a.request(0);
    a.request(0);
    b.request(0);
    b.request(1);
    a.connection_opened(0);
    a.connection_opened(1);
    b.connection_opened(1);
    a.connection_closed(1, close_cause::client_closed);
    b.connection_closed(1, close_cause::idle_timeout);
    b.connection_opened(1);
    a.tunnel_opened();
    b.tunnel_opened();
    b.tunnel_closed();
    a.bytes(100, 2000);
    b.bytes(5, 7);
    a.connection_limit_refused();
    b.session_exception();
    a.upstream_connect(connect_result::ok, 3ms);
    b.upstream_connect(connect_result::timeout, 5s);
    a.dns_lookup(dns::dns_status::ok, false, 2ms);
    b.dns_lookup(dns::dns_status::ok, true, 0ns);
    b.dns_lookup(dns::dns_status::nxdomain, false, 1ms);

    auto text = registry.render();
    EXPECT_EQ(value(text, "egressd_requests_total{listener=\"127.0.0.1:3128\"}"), "3");
    EXPECT_EQ(value(text, "egressd_requests_total{listener=\"[::1]:3128\"}"), "1");
    EXPECT_EQ(value(text, "egressd_connections_accepted_total{listener=\"127.0.0.1:3128\"}"), "1");
    EXPECT_EQ(value(text, "egressd_connections_accepted_total{listener=\"[::1]:3128\"}"), "3");
    EXPECT_EQ(value(text, "egressd_connections_open{listener=\"127.0.0.1:3128\"}"), "1");
    // Worker a closed one and b closed one of the three on listener 1: each worker's gauge is its own.
    EXPECT_EQ(value(text, "egressd_connections_open{listener=\"[::1]:3128\"}"), "1");
    EXPECT_EQ(value(text, "egressd_closes_total{cause=\"client_closed\"}"), "1");
    EXPECT_EQ(value(text, "egressd_closes_total{cause=\"idle_timeout\"}"), "1");
    EXPECT_EQ(value(text, "egressd_closes_total{cause=\"internal_error\"}"), "0");
    EXPECT_EQ(value(text, "egressd_tunnels_total"), "2");
    EXPECT_EQ(value(text, "egressd_tunnels_open"), "1");
    EXPECT_EQ(value(text, "egressd_client_received_bytes_total"), "105");
    EXPECT_EQ(value(text, "egressd_client_sent_bytes_total"), "2007");
    EXPECT_EQ(value(text, "egressd_connection_limit_refusals_total"), "1");
    EXPECT_EQ(value(text, "egressd_session_exceptions_total"), "1");
    EXPECT_EQ(value(text, "egressd_upstream_connects_total{result=\"ok\"}"), "1");
    EXPECT_EQ(value(text, "egressd_upstream_connects_total{result=\"failed\"}"), "0");
    EXPECT_EQ(value(text, "egressd_upstream_connects_total{result=\"timeout\"}"), "1");
    EXPECT_EQ(value(text, "egressd_upstream_connect_duration_seconds_count"), "2");
    EXPECT_EQ(value(text, "egressd_dns_lookups_total{result=\"ok\"}"), "2");
    EXPECT_EQ(value(text, "egressd_dns_lookups_total{result=\"nxdomain\"}"), "1");
    EXPECT_EQ(value(text, "egressd_dns_lookups_total{result=\"servfail\"}"), "0");
    EXPECT_EQ(value(text, "egressd_dns_cache_hits_total"), "1");
    // The cache hit is not timed.
    EXPECT_EQ(value(text, "egressd_dns_lookup_duration_seconds_count"), "2");
    EXPECT_EQ(value(text, "egressd_build_info{version=\"1.2.3\"}"), "1");
}

TEST(Metrics, HistogramBucketsAreCumulative)
{
    metrics_registry registry({"l"}, "v");
    auto& w = registry.add_worker();
    w.upstream_connect(connect_result::ok, 300us);
    w.upstream_connect(connect_result::ok, -5ms);  // a clock that stepped back counts as zero
    w.upstream_connect(connect_result::ok, 1ms);   // on a bound: le is "less or equal"
    w.upstream_connect(connect_result::failed, 7ms);
    w.upstream_connect(connect_result::timeout, 20s);

    auto text = registry.render();
    const std::string h = "egressd_upstream_connect_duration_seconds";
    const std::vector<std::pair<std::string, std::string>> want{
        {"0.0005", "2"}, {"0.001", "3"}, {"0.0025", "3"}, {"0.005", "3"}, {"0.01", "4"},
        {"0.025", "4"},  {"0.05", "4"},  {"0.1", "4"},    {"0.25", "4"},  {"0.5", "4"},
        {"1", "4"},      {"2.5", "4"},   {"5", "4"},      {"10", "4"},    {"+Inf", "5"},
    };
    for (const auto& [le, n] : want) {
        EXPECT_EQ(value(text, h + "_bucket{le=\"" + le + "\"}"), n) << "le=" << le;
    }
    EXPECT_EQ(value(text, h + "_count"), "5");
    EXPECT_NEAR(std::stod(value(text, h + "_sum")), 0.0003 + 0.001 + 0.007 + 20.0, 1e-9);

    // Buckets appear in increasing order, +Inf last, then _sum and _count.
    auto first = text.find(h + "_bucket{le=\"0.0005\"}");
    auto inf = text.find(h + "_bucket{le=\"+Inf\"}");
    auto sum = text.find(h + "_sum ");
    auto count = text.find(h + "_count ");
    EXPECT_LT(first, inf);
    EXPECT_LT(inf, sum);
    EXPECT_LT(sum, count);
    EXPECT_NE(count, std::string::npos);
}

TEST(Metrics, LabelValuesAreEscaped)
{
    metrics_registry registry({"a\"b\\c\nd"}, "1.0 \"dev\"");
    registry.add_worker().request(0);
    registry.policy_loaded(7, "sha256:\\x", 3, 2);

    auto text = registry.render();
    EXPECT_NE(text.find("egressd_requests_total{listener=\"a\\\"b\\\\c\\nd\"} 1\n"), std::string::npos) << text;
    EXPECT_NE(text.find("egressd_build_info{version=\"1.0 \\\"dev\\\"\"} 1\n"), std::string::npos);
    EXPECT_NE(text.find("egressd_policy_info{digest=\"sha256:\\\\x\"} 1\n"), std::string::npos);

    auto check = promtool_check(text);
    EXPECT_EQ(check.exit_code, 0) << check.output;
}

TEST(Metrics, UnknownClientIsADash)
{
    auto p = policy_with({"app"});
    metrics_registry registry({"l"}, "v");
    auto& w = registry.add_worker();
    w.use_policy(p);
    w.decision(*p, verdict::deny, reason::unknown_client, std::nullopt);
    w.decision(*p, verdict::deny, reason::unknown_client, std::nullopt);
    w.decision(*p, verdict::allow, reason::allowed, id_of(*p, "app"));

    auto text = registry.render();
    EXPECT_EQ(value(text, decisions("deny", "unknown_client", "-")), "2");
    EXPECT_EQ(value(text, decisions("allow", "allowed", "app")), "1");
    // Only counted series are shown.
    EXPECT_EQ(value(text, decisions("deny", "no_matching_rule", "app")), "absent");
}

// An allowed name that DNS could not resolve is counted under verdict="error", never as a denial, so a deny
// dashboard shows policy denials only.
TEST(Metrics, DnsFailuresAreErrorsNotDenials)
{
    auto p = policy_with({"app"});
    metrics_registry registry({"l"}, "v");
    auto& w = registry.add_worker();
    w.use_policy(p);
    w.decision_error(*p, reason::dns_nxdomain, id_of(*p, "app"));
    w.decision_error(*p, reason::dns_timeout, std::nullopt);

    auto text = registry.render();
    EXPECT_EQ(value(text, decisions("error", "dns_nxdomain", "app")), "1");
    EXPECT_EQ(value(text, decisions("error", "dns_timeout", "-")), "1");
    EXPECT_EQ(value(text, decisions("deny", "dns_nxdomain", "app")), "absent");
    EXPECT_EQ(verdict_label(error_verdict), "error");
    EXPECT_EQ(verdict_label(0), "allow");
}

TEST(Metrics, DecisionsBeforeAnyPolicyAreCountedByName)
{
    auto p = policy_with({"app"});
    metrics_registry registry({"l"}, "v");
    auto& w = registry.add_worker();
    w.decision(*p, verdict::would_deny, reason::no_matching_rule, id_of(*p, "app"));
    EXPECT_EQ(value(registry.render(), decisions("would_deny", "no_matching_rule", "app")), "1");
}

TEST(Metrics, DecisionsFollowClientNamesAcrossPolicySwaps)
{
    // The same names under different client_ids in each snapshot.
    auto p1 = policy_with({"alpha", "beta"});
    auto p2 = policy_with({"beta", "gamma"});
    auto p3 = policy_with({"gamma", "beta", "alpha"});
    ASSERT_NE(id_of(*p1, "beta"), id_of(*p2, "beta"));

    metrics_registry registry({"l"}, "v");
    auto& w = registry.add_worker();
    auto& other = registry.add_worker();
    w.use_policy(p1);
    other.use_policy(p2);

    w.decision(*p1, verdict::allow, reason::allowed, id_of(*p1, "alpha"));
    w.decision(*p1, verdict::allow, reason::allowed, id_of(*p1, "alpha"));
    w.decision(*p1, verdict::deny, reason::no_matching_rule, id_of(*p1, "beta"));
    other.decision(*p2, verdict::deny, reason::no_matching_rule, id_of(*p2, "beta"));
    auto before = registry.render();
    EXPECT_EQ(value(before, decisions("allow", "allowed", "alpha")), "2");
    EXPECT_EQ(value(before, decisions("deny", "no_matching_rule", "beta")), "2");

    // The swap retires p1's table: nothing decreases, and alpha (gone from p2) keeps its series.
    w.use_policy(p2);
    auto after = registry.render();
    EXPECT_EQ(value(after, decisions("allow", "allowed", "alpha")), "2");
    EXPECT_EQ(value(after, decisions("deny", "no_matching_rule", "beta")), "2");

    // A session that took p1 before the swap decides after it: its ids are p1's.
    w.decision(*p1, verdict::allow, reason::allowed, id_of(*p1, "alpha"));
    w.decision(*p1, verdict::deny, reason::no_matching_rule, id_of(*p1, "beta"));
    // One that took p3 before this worker adopted it.
    w.decision(*p3, verdict::deny, reason::port_not_allowed, id_of(*p3, "gamma"));
    w.decision(*p3, verdict::deny, reason::no_matching_rule, id_of(*p3, "beta"));
    // And the current table's own.
    w.decision(*p2, verdict::deny, reason::no_matching_rule, id_of(*p2, "beta"));
    w.decision(*p2, verdict::deny, reason::port_not_allowed, id_of(*p2, "gamma"));
    auto raced = registry.render();
    EXPECT_EQ(value(raced, decisions("allow", "allowed", "alpha")), "3");
    EXPECT_EQ(value(raced, decisions("deny", "no_matching_rule", "beta")), "5");
    EXPECT_EQ(value(raced, decisions("deny", "port_not_allowed", "gamma")), "2");

    w.use_policy(p3);
    other.use_policy(p3);
    w.use_policy(p3);  // adopting the same snapshot again changes nothing
    EXPECT_EQ(egressd_samples(raced), egressd_samples(registry.render()));
}

TEST(Metrics, RefusalsAndRevocationsShowTheirLabelValuesFromTheStart)
{
    metrics_registry registry({"l"}, "v");
    auto& w = registry.add_worker();
    auto text = registry.render();
    EXPECT_EQ(value(text, "egressd_proxy_auth_refusals_total{reason=\"proxy_auth_required\"}"), "0");
    EXPECT_EQ(value(text, "egressd_proxy_auth_refusals_total{reason=\"proxy_auth_failed\"}"), "0");
    EXPECT_EQ(value(text, "egressd_tls_handshake_refusals_total{reason=\"client_cert_missing\"}"), "0");
    EXPECT_EQ(value(text, "egressd_tls_handshake_refusals_total{reason=\"tls_handshake_failed\"}"), "0");
    EXPECT_EQ(value(text, "egressd_revocations_total{cause=\"rule_expired\",action=\"would_close\"}"), "0");
    EXPECT_EQ(value(text, "egressd_revocations_total{cause=\"idle_timeout\",action=\"closed\"}"), "absent");

    w.proxy_auth_refused(reason::proxy_auth_failed);
    w.handshake_refused(reason::client_cert_rejected);
    w.revocation(close_cause::credentials_revoked, revoke_outcome::kept);
    // A value outside the family's set is a caller's mistake, but it is counted, not lost.
    w.revocation(close_cause::idle_timeout, revoke_outcome::closed);
    text = registry.render();
    EXPECT_EQ(value(text, "egressd_proxy_auth_refusals_total{reason=\"proxy_auth_failed\"}"), "1");
    EXPECT_EQ(value(text, "egressd_tls_handshake_refusals_total{reason=\"client_cert_rejected\"}"), "1");
    EXPECT_EQ(value(text, "egressd_revocations_total{cause=\"credentials_revoked\",action=\"kept\"}"), "1");
    EXPECT_EQ(value(text, "egressd_revocations_total{cause=\"idle_timeout\",action=\"closed\"}"), "1");
    EXPECT_EQ(value(text, "egressd_revocations_total{cause=\"idle_timeout\",action=\"kept\"}"), "absent");
}

TEST(Metrics, ProcessWideValues)
{
    metrics_registry registry({"l"}, "v");
    auto text = registry.render();
    EXPECT_EQ(value(text, "egressd_ready"), "0");
    EXPECT_EQ(value(text, "egressd_policy_version"), "absent");
    EXPECT_EQ(value(text, "egressd_last_reload_timestamp_seconds"), "absent");
    EXPECT_EQ(value(text, "egressd_events_dropped_total"), "0");

    std::uint64_t dropped = 41;
    registry.set_dropped_events_source([&] { return ++dropped; });
    registry.set_ready(true);
    auto t1 = std::chrono::system_clock::time_point{std::chrono::milliseconds{1'700'000'000'250}};
    auto t2 = t1 + 60s;
    registry.reload_result(true, t1);
    registry.policy_loaded(3, "abc", 12, 4);
    registry.reload_result(false, t2);
    text = registry.render();
    EXPECT_EQ(value(text, "egressd_ready"), "1");
    EXPECT_EQ(value(text, "egressd_events_dropped_total"), "42");
    EXPECT_EQ(value(text, "egressd_reloads_total{result=\"ok\"}"), "1");
    EXPECT_EQ(value(text, "egressd_reloads_total{result=\"failed\"}"), "1");
    EXPECT_EQ(value(text, "egressd_last_reload_timestamp_seconds"), "1700000060.25");
    EXPECT_EQ(value(text, "egressd_last_reload_success_timestamp_seconds"), "1700000000.25");
    EXPECT_EQ(value(text, "egressd_policy_version"), "3");
    EXPECT_EQ(value(text, "egressd_policy_info{digest=\"abc\"}"), "1");
    EXPECT_EQ(value(text, "egressd_policy_rules"), "12");
    EXPECT_EQ(value(text, "egressd_policy_clients"), "4");

    // One policy_info series: the current digest only.
    registry.policy_loaded(4, "def", 12, 4);
    text = registry.render();
    EXPECT_EQ(value(text, "egressd_policy_info{digest=\"abc\"}"), "absent");
    EXPECT_EQ(value(text, "egressd_policy_info{digest=\"def\"}"), "1");
}

TEST(Metrics, ProcessMetricsComeFromProc)
{
    metrics_registry registry({"l"}, "v");
    auto text = registry.render();
    auto now = static_cast<double>(std::time(nullptr));
    auto start = std::stod(value(text, "process_start_time_seconds"));
    EXPECT_GT(start, now - 24 * 3600.0 * 365);
    EXPECT_LE(start, now + 1);
    EXPECT_GT(std::stod(value(text, "process_resident_memory_bytes")), 0);
    EXPECT_GT(std::stod(value(text, "process_virtual_memory_bytes")), 0);
    EXPECT_GE(std::stod(value(text, "process_open_fds")), 3);
    EXPECT_GE(std::stod(value(text, "process_max_fds")), std::stod(value(text, "process_open_fds")));
    EXPECT_GE(std::stod(value(text, "process_cpu_seconds_total")), 0);
}

TEST(Metrics, EveryCatalogueFamilyIsRenderedInOrderAndDocumented)
{
    metrics_registry registry({"l"}, "v");
    auto text = registry.render();
    auto markdown = catalogue_markdown();
    std::size_t last = 0;
    for (const auto& f : catalogue()) {
        auto type_line = "# TYPE " + std::string(f.name) + " " + std::string(to_string(f.type)) + "\n";
        auto at = text.find(type_line);
        ASSERT_NE(at, std::string::npos) << type_line;
        EXPECT_GE(at, last) << f.name << " is out of catalogue order";
        last = at;
        EXPECT_NE(text.find("# HELP " + std::string(f.name) + " "), std::string::npos) << f.name;
        EXPECT_NE(markdown.find("| `" + std::string(f.name) + "` | " + std::string(to_string(f.type)) + " |"),
                  std::string::npos)
            << f.name;
        // Prometheus naming: counters end in _total; names are snake_case in base units.
        EXPECT_EQ(std::string_view(f.name).ends_with("_total"), f.type == metric_type::counter) << f.name;
    }
    EXPECT_NE(markdown.find("| `egressd_decisions_total` | counter | `verdict`, `reason`, `client` |"),
              std::string::npos)
        << markdown;
}

TEST(Metrics, RenderPassesPromtool)
{
    ASSERT_TRUE(std::filesystem::exists("/usr/bin/promtool"))
        << "promtool is required: apt-get install -y --no-install-recommends prometheus";
    auto p = policy_with({"app", "db"});
    metrics_registry registry({"127.0.0.1:3128", "[::1]:3129"}, "0.1.0");
    registry.set_dropped_events_source([] { return std::uint64_t{3}; });
    registry.set_ready(true);
    registry.reload_result(true, std::chrono::system_clock::now());
    registry.policy_loaded(1, "sha256:0123abcd", 2, 2);
    auto& w = registry.add_worker();
    w.use_policy(p);
    w.request(1);
    w.connection_opened(1);
    w.decision(*p, verdict::allow, reason::allowed, id_of(*p, "app"));
    w.decision(*p, verdict::would_deny, reason::dns_nxdomain, id_of(*p, "db"));
    w.decision(*p, verdict::deny, reason::unknown_client, std::nullopt);
    w.decision_error(*p, reason::dns_servfail, id_of(*p, "app"));
    w.dns_lookup(dns::dns_status::servfail, false, 30ms);
    w.upstream_connect(connect_result::failed, 1500ms);
    w.revocation(close_cause::policy_revoked, revoke_outcome::closed);

    auto check = promtool_check(registry.render());
    EXPECT_EQ(check.exit_code, 0) << check.output;
    EXPECT_EQ(check.output, "");
}

// Without alerts the families are declared and empty; with a source, every sink has every outcome (zero
// included, so an alert rule sees the series from the start) and its queue.
TEST(Metrics, AlertSinksShowEveryOutcome)
{
    metrics_registry registry({"l"}, "v");
    auto before = registry.render();
    EXPECT_NE(before.find("# TYPE egressd_alerts_total counter\n"), std::string::npos);
    EXPECT_EQ(before.find("egressd_alerts_total{"), std::string::npos) << before;
    EXPECT_EQ(before.find("egressd_alert_queue{"), std::string::npos) << before;

    registry.set_alerts_source([] {
        alert_sink_sample hook;
        hook.name = "security-hook";
        hook.alerts = 2;
        hook.summaries = 1;
        hook.delivered = 3;
        hook.suppressed = 9998;
        hook.queued = 1;
        alert_sink_sample am;
        am.name = "am \"1\"";
        am.failed = 4;
        am.retried = 16;
        am.dropped = 5;
        am.rate_limited = 6;
        return std::vector<alert_sink_sample>{hook, am};
    });
    auto text = registry.render();
    auto alerts = [](std::string_view sink, std::string_view outcome) {
        return "egressd_alerts_total{sink=\"" + std::string(sink) + "\",outcome=\"" + std::string(outcome) + "\"}";
    };
    EXPECT_EQ(value(text, alerts("security-hook", "alert")), "2");
    EXPECT_EQ(value(text, alerts("security-hook", "summary")), "1");
    EXPECT_EQ(value(text, alerts("security-hook", "delivered")), "3");
    EXPECT_EQ(value(text, alerts("security-hook", "suppressed")), "9998");
    EXPECT_EQ(value(text, alerts("security-hook", "failed")), "0");
    EXPECT_EQ(value(text, alerts("security-hook", "rate_limited")), "0");
    EXPECT_EQ(value(text, "egressd_alert_queue{sink=\"security-hook\"}"), "1");
    // Label values are escaped like any other.
    EXPECT_EQ(value(text, alerts("am \\\"1\\\"", "failed")), "4");
    EXPECT_EQ(value(text, alerts("am \\\"1\\\"", "retried")), "16");
    EXPECT_EQ(value(text, alerts("am \\\"1\\\"", "dropped")), "5");
    EXPECT_EQ(value(text, alerts("am \\\"1\\\"", "rate_limited")), "6");
    EXPECT_EQ(value(text, "egressd_alert_queue{sink=\"am \\\"1\\\"\"}"), "0");
    std::size_t series = 0;
    for (const auto& [name, v] : samples(text)) {
        series += name.starts_with("egressd_alerts_total{") ? 1 : 0;
    }
    EXPECT_EQ(series, 16u);
    auto check = promtool_check(text);
    EXPECT_EQ(check.exit_code, 0) << check.output;
    EXPECT_EQ(check.output, "");
}

// Two workers write (one swapping policies under its sessions) while a third thread scrapes: every scrape
// parses, no counter ever goes back, and the last scrape has every count.
TEST(Metrics, ConcurrentWritesAndScrapes)
{
    auto p1 = policy_with({"alpha", "beta"});
    auto p2 = policy_with({"beta", "alpha"});
    metrics_registry registry({"l0", "l1"}, "v");
    auto& a = registry.add_worker();
    auto& b = registry.add_worker();
    constexpr int rounds = 20'000;

    std::atomic<bool> done{false};
    std::atomic<int> scrapes{0};
    std::thread scraper([&] {
        std::map<std::string, double> seen;
        auto check = [&](const std::string& text) {
            for (const auto& [series, v] : samples(text)) {
                bool monotonic = series.find("_total") != std::string::npos ||
                                 series.find("_bucket") != std::string::npos || series.ends_with("_count");
                if (!monotonic || series.starts_with("process_")) {
                    continue;
                }
                auto n = std::stod(v);
                EXPECT_GE(n, seen[series]) << series;
                seen[series] = n;
            }
        };
        while (!done.load()) {
            check(registry.render());
            scrapes.fetch_add(1);
        }
        check(registry.render());
    });
    std::thread worker_a([&] {
        a.use_policy(p1);
        for (int i = 0; i < rounds; ++i) {
            // Every 1000 rounds a reload: the sessions still holding the old snapshot decide with it.
            const auto& current = (i / 1000) % 2 == 0 ? p1 : p2;
            const auto& previous = (i / 1000) % 2 == 0 ? p2 : p1;
            if (i % 1000 == 0) {
                a.use_policy(current);
            }
            a.request(0);
            a.decision(*current, verdict::allow, reason::allowed, current->find_client("alpha"));
            a.decision(*previous, verdict::deny, reason::no_matching_rule, previous->find_client("beta"));
            a.bytes(1, 2);
            a.upstream_connect(connect_result::ok, std::chrono::microseconds{i % 20'000});
        }
    });
    std::thread worker_b([&] {
        b.use_policy(p2);
        for (int i = 0; i < rounds; ++i) {
            b.request(1);
            b.decision(*p2, verdict::allow, reason::allowed, p2->find_client("alpha"));
            b.decision(*p2, verdict::deny, reason::unknown_client, std::nullopt);
            b.connection_opened(1);
            b.connection_closed(1, close_cause::done);
            b.dns_lookup(dns::dns_status::ok, i % 2 == 0, 1ms);
        }
    });
    worker_a.join();
    worker_b.join();
    done = true;
    scraper.join();
    EXPECT_GT(scrapes.load(), 0);

    auto text = registry.render();
    auto n = std::to_string(rounds);
    EXPECT_EQ(value(text, "egressd_requests_total{listener=\"l0\"}"), n);
    EXPECT_EQ(value(text, "egressd_requests_total{listener=\"l1\"}"), n);
    EXPECT_EQ(value(text, decisions("allow", "allowed", "alpha")), std::to_string(2 * rounds));
    EXPECT_EQ(value(text, decisions("deny", "no_matching_rule", "beta")), n);
    EXPECT_EQ(value(text, decisions("deny", "unknown_client", "-")), n);
    EXPECT_EQ(value(text, "egressd_client_received_bytes_total"), n);
    EXPECT_EQ(value(text, "egressd_client_sent_bytes_total"), std::to_string(2 * rounds));
    EXPECT_EQ(value(text, "egressd_connections_open{listener=\"l1\"}"), "0");
    EXPECT_EQ(value(text, "egressd_closes_total{cause=\"done\"}"), n);
    EXPECT_EQ(value(text, "egressd_upstream_connect_duration_seconds_count"), n);
    EXPECT_EQ(value(text, "egressd_dns_cache_hits_total"), std::to_string(rounds / 2));
    EXPECT_EQ(value(text, "egressd_dns_lookup_duration_seconds_count"), std::to_string(rounds / 2));
}

// The README's metric table is the catalogue's: a family added here and not documented there fails.
TEST(Metrics, ReadmeListsEveryFamily)
{
    std::ifstream in(EGRESSD_SOURCE_DIR "/README.md");
    std::stringstream readme;
    readme << in.rdbuf();
    for (const auto& f : catalogue()) {
        EXPECT_NE(readme.str().find("| `" + std::string(f.name) + "` |"), std::string::npos) << f.name;
    }
}

}  // namespace
}  // namespace egressd::proxy::observe
