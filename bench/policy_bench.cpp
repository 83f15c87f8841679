// Policy engine at scale: a policy of 1,000,000 domain rules across 10,000 clients.
// Measures YAML load (one file, and the same policy split across files), compile from memory,
// the snapshot's heap footprint, name/address-phase decision latency (report the median), and what approvers'
// grants cost: per decision that no base rule allows (with 0 and 10,000 active grants), and to publish a set.
//
//   build/release/bench/policy_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

#include "bench/million_rules.hpp"
#include "config/policy_loader.hpp"
#include "policy/grants.hpp"
#include "policy/policy.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <unistd.h>
#include <fstream>
#include <random>

namespace {

namespace pol = egressd::policy;
namespace fs = std::filesystem;

using egressd::bench::client_count;
using egressd::bench::heap_in_use;
using egressd::bench::rule_domain;
using egressd::bench::rules_per_group;
using egressd::bench::source_cidr;
using egressd::bench::total_rules;

// destinations_per_rule 1: a million one-domain rules. 100: the same million domain patterns written the
// way long allow-lists usually are, a hundred per rule.
void write_policy(const fs::path& dir, int files, int destinations_per_rule)
{
    fs::remove_all(dir);
    fs::create_directories(dir);
    int groups_per_file = client_count / files;
    for (int f = 0; f < files; ++f) {
        std::ofstream out(dir / ("part-" + std::to_string(f) + ".yaml"));
        out << "version: 1\ngroups:\n";
        for (int g = f * groups_per_file; g < (f + 1) * groups_per_file; ++g) {
            out << "  g" << g << ":\n    rules:\n";
            for (int r = 0; r < rules_per_group; r += destinations_per_rule) {
                out << "      - ports: [" << (r % 2 == 0 ? "443" : "80, 443") << "]\n        destinations: [";
                for (int d = r; d < r + destinations_per_rule; ++d) {
                    out << (d > r ? ", \"" : "\"") << rule_domain(g, d) << '"';
                }
                out << "]\n";
            }
        }
        out << "clients:\n";
        for (int c = f * groups_per_file; c < (f + 1) * groups_per_file; ++c) {
            out << "  c" << c << ":\n    sources: [" << source_cidr(c) << "]\n    groups: [g" << c << ", g"
                << (c + 1) % client_count << "]\n";
        }
    }
}

pol::policy_spec make_spec()
{
    pol::policy_spec spec;
    spec.files = {"generated"};
    for (int g = 0; g < client_count; ++g) {
        pol::group_spec group;
        group.name = "g" + std::to_string(g);
        for (int r = 0; r < rules_per_group; ++r) {
            pol::rule_spec rule;
            rule.ports = r % 2 == 0 ? std::vector<pol::port_range>{{443, 443}}
                                    : std::vector<pol::port_range>{{80, 80}, {443, 443}};
            rule.domains.push_back(*pol::parse_domain_pattern(rule_domain(g, r)).value);
            group.rules.push_back(std::move(rule));
        }
        spec.groups.push_back(std::move(group));
    }
    for (int c = 0; c < client_count; ++c) {
        pol::client_spec client;
        client.name = "c" + std::to_string(c);
        client.sources.push_back({*pol::cidr::parse(source_cidr(c)), {}});
        client.groups = {{"g" + std::to_string(c), {}}, {"g" + std::to_string((c + 1) % client_count), {}}};
        spec.clients.push_back(std::move(client));
    }
    return spec;
}

// Generated once per shape, removed when the benchmark exits.
fs::path policy_dir(int files, int destinations_per_rule)
{
    struct written_dirs {
        std::map<std::pair<int, int>, fs::path> dirs;
        ~written_dirs()
        {
            for (const auto& [shape, dir] : dirs) {
                fs::remove_all(dir);
            }
        }
    };
    static written_dirs written;
    auto key = std::pair(files, destinations_per_rule);
    auto it = written.dirs.find(key);
    if (it == written.dirs.end()) {
        fs::path dir = fs::temp_directory_path() / ("egressd-bench-policy-" + std::to_string(::getpid()) + "-" +
                                                    std::to_string(files) + "-" + std::to_string(destinations_per_rule));
        write_policy(dir, files, destinations_per_rule);
        it = written.dirs.emplace(key, dir).first;
    }
    return it->second;
}

void load_yaml(benchmark::State& state)
{
    fs::path path = policy_dir(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)));
    if (state.range(0) == 1) {
        path /= "part-0.yaml";
    }
    state.counters["yaml_MiB"] = 0;
    for (const auto& f : fs::directory_iterator(path.has_extension() ? path.parent_path() : path)) {
        state.counters["yaml_MiB"] += static_cast<double>(f.file_size()) / (1024.0 * 1024.0);
    }
    std::size_t heap = 0;
    for (auto _ : state) {
        std::size_t before = heap_in_use();
        auto loaded = egressd::config::load_policy(path);
        heap = heap_in_use() - before;
        if (!loaded.snapshot || loaded.snapshot->stats().domain_patterns != total_rules) {
            state.SkipWithError("generated policy did not load");
            return;
        }
    }
    state.counters["rules"] = total_rules;
    state.counters["snapshot_MiB"] = static_cast<double>(heap) / (1024.0 * 1024.0);
}
BENCHMARK(load_yaml)
    ->ArgNames({"files", "per_rule"})
    ->ArgsProduct({{1, 8}, {1, 100}})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void compile_from_memory(benchmark::State& state)
{
    for (auto _ : state) {
        state.PauseTiming();
        auto spec = make_spec();
        state.ResumeTiming();
        auto result = pol::policy::compile(std::move(spec));
        benchmark::DoNotOptimize(result.snapshot);
    }
    state.counters["rules"] = total_rules;
}
BENCHMARK(compile_from_memory)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// One compiled policy shared by the decision benchmarks, as the proxy's workers share one snapshot.
const pol::policy& shared_policy()
{
    static auto snapshot = pol::policy::compile(make_spec()).snapshot;
    return *snapshot;
}

struct request {
    pol::client_id client;
    pol::host target;
    std::uint16_t port;
};

// A mix the cache cannot memorise: random clients, hosts allowed through either group, wildcard
// matches, port misses, and names no rule knows.
std::vector<request> make_requests(const pol::policy& p, std::size_t count)
{
    std::mt19937 rng(42);
    std::vector<request> out;
    for (std::size_t i = 0; i < count; ++i) {
        int c = static_cast<int>(rng() % client_count);
        int g = (rng() % 2 == 0) ? c : (c + 1) % client_count;
        int r = static_cast<int>(rng() % rules_per_group);
        std::string name = rule_domain(g, r);
        if (name.starts_with("*.")) {
            name = "api" + name.substr(1);
        }
        if (i % 7 == 0) {
            name = "unknown" + std::to_string(i) + ".example.org";
        }
        auto client = p.match_client(pol::client_facts{.source = pol::address::parse("10." + std::to_string(c / 256) + "." + std::to_string(c % 256) + ".9")});
        out.push_back({*client, *pol::host::parse(name).value, static_cast<std::uint16_t>(i % 5 == 0 ? 80 : 443)});
    }
    return out;
}

const std::chrono::sys_seconds bench_now{std::chrono::seconds{1'800'000'000}};

void decide_name(benchmark::State& state)
{
    const auto& p = shared_policy();
    auto requests = make_requests(p, 1 << 16);
    std::size_t i = 0;
    std::size_t allowed = 0;
    for (auto _ : state) {
        const auto& req = requests[i++ & (requests.size() - 1)];
        auto d = p.decide_name(req.client, req.target, req.port, bench_now);
        allowed += d.allows_traffic() ? 1 : 0;
        benchmark::DoNotOptimize(d);
    }
    state.counters["allowed_share"] = static_cast<double>(allowed) / static_cast<double>(state.iterations());
}
BENCHMARK(decide_name);

// Each decision timed on its own, so the median (not only the mean) is reported; the clock's own cost,
// measured the same way around nothing, is reported beside it and not subtracted.
void decide_name_distribution(benchmark::State& state)
{
    using clock = std::chrono::steady_clock;
    const auto& p = shared_policy();
    auto requests = make_requests(p, 1 << 16);
    constexpr std::size_t samples = 200'000;
    std::vector<double> took(samples);
    std::vector<double> empty(samples);
    for (auto _ : state) {
        for (std::size_t i = 0; i < samples; ++i) {
            const auto& req = requests[i & (requests.size() - 1)];
            auto t0 = clock::now();
            auto d = p.decide_name(req.client, req.target, req.port, bench_now);
            auto t1 = clock::now();
            benchmark::DoNotOptimize(d);
            auto t2 = clock::now();
            took[i] = std::chrono::duration<double, std::nano>(t1 - t0).count();
            empty[i] = std::chrono::duration<double, std::nano>(t2 - t1).count();
        }
    }
    auto quantile = [](std::vector<double>& v, double q) {
        auto nth = v.begin() + static_cast<std::ptrdiff_t>(q * static_cast<double>(v.size() - 1));
        std::nth_element(v.begin(), nth, v.end());
        return *nth;
    };
    state.counters["median_ns"] = quantile(took, 0.5);
    state.counters["p99_ns"] = quantile(took, 0.99);
    state.counters["clock_overhead_ns"] = quantile(empty, 0.5);
}
BENCHMARK(decide_name_distribution)->Iterations(1)->Unit(benchmark::kMillisecond);

void decide_address(benchmark::State& state)
{
    const auto& p = shared_policy();
    auto requests = make_requests(p, 1 << 16);
    auto resolved = *pol::address::parse("2606:4700::6810:84e5");
    std::size_t i = 0;
    for (auto _ : state) {
        const auto& req = requests[i++ & (requests.size() - 1)];
        auto d = p.decide_address(req.client, req.target, req.port, resolved, bench_now);
        benchmark::DoNotOptimize(d);
    }
}
BENCHMARK(decide_address);

// --- Grants ---------------------------------------------------------------------------------------------------

constexpr int grant_count = 10'000;

// 10,000 active grants spread over the clients (each client holds about one), every tenth one for a group and
// a wildcard pattern, as a busy approvals page would leave them.
std::vector<pol::grant> make_grants(int count)
{
    std::vector<pol::grant> out;
    out.reserve(static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) {
        pol::grant g;
        g.id = static_cast<std::uint64_t>(i + 1);
        int holder = static_cast<int>((static_cast<std::int64_t>(i) * 7919) % client_count);
        if (i % 10 == 0) {
            g.scope = pol::grant_scope::group;
            g.scope_name = "g" + std::to_string(holder);
            g.destination = {pol::pattern_kind::subdomains, "grp" + std::to_string(i) + ".example.net"};
        } else {
            g.scope_name = "c" + std::to_string(holder);
            g.destination = {pol::pattern_kind::exact, "granted" + std::to_string(i) + ".example.net"};
        }
        g.port = 443;
        g.expires = bench_now + std::chrono::hours(1);
        out.push_back(std::move(g));
    }
    return out;
}

const std::shared_ptr<const pol::grant_set>& shared_grants()
{
    static auto grants = pol::grant_set::make(make_grants(grant_count));
    return grants;
}

const pol::grant_set* grants_for(const benchmark::State& state)
{
    return state.range(0) == 0 ? pol::grant_set::empty().get() : shared_grants().get();
}

// Destinations no base rule allows, from random clients: every one of these decisions consults the grants.
// Names no grant holds (most misses: a scanner, a typo, a new dependency), or names granted to some other client
// (the lookup then reaches the scopes of the client and its groups).
enum class miss_kind { ungranted_name, granted_to_another };

std::vector<request> make_misses(const pol::policy& p, std::size_t count, miss_kind kind)
{
    std::mt19937 rng(11);
    std::vector<request> out;
    for (std::size_t i = 0; i < count; ++i) {
        auto c = static_cast<int>(rng() % client_count);
        std::string name = kind == miss_kind::ungranted_name
                               ? "api.unknown" + std::to_string(i) + ".example.org"
                               : "granted" + std::to_string(rng() % grant_count) + ".example.net";
        out.push_back({*p.find_client("c" + std::to_string(c)), *pol::host::parse(name).value, 443});
    }
    return out;
}

// Each grant asked for by a client it applies to.
std::vector<request> make_granted(const pol::policy& p)
{
    std::vector<request> out;
    for (const auto& g : shared_grants()->all()) {
        std::string client = g.scope_name;
        std::string name = g.destination.name;
        if (g.scope == pol::grant_scope::group) {
            client = "c" + g.scope_name.substr(1);  // client cN uses group gN
            name = "api." + name;
        }
        out.push_back({*p.find_client(client), *pol::host::parse(name).value, g.port});
    }
    std::shuffle(out.begin(), out.end(), std::mt19937(5));
    return out;
}

template <typename Decide>
void run_decisions(benchmark::State& state, const std::vector<request>& requests, Decide&& decide,
                   pol::reason expected)
{
    std::size_t i = 0;
    std::size_t as_expected = 0;
    for (auto _ : state) {
        const auto& req = requests[i++ % requests.size()];
        auto d = decide(req);
        as_expected += d.why == expected ? 1 : 0;
        benchmark::DoNotOptimize(d);
    }
    state.counters["expected_share"] = static_cast<double>(as_expected) / static_cast<double>(state.iterations());
}

miss_kind kind_of(const benchmark::State& state)
{
    return state.range(1) == 0 ? miss_kind::ungranted_name : miss_kind::granted_to_another;
}

void decide_name_miss_with_grants(benchmark::State& state)
{
    const auto& p = shared_policy();
    const auto* grants = grants_for(state);
    run_decisions(
        state, make_misses(p, 1 << 16, kind_of(state)),
        [&](const request& r) { return p.decide_name(r.client, r.target, r.port, bench_now, grants); },
        pol::reason::no_matching_rule);
}
// granted_elsewhere 0: names no grant holds; 1: names granted to another client.
BENCHMARK(decide_name_miss_with_grants)
    ->ArgNames({"grants", "granted_elsewhere"})
    ->ArgsProduct({{0, grant_count}, {0, 1}});

void decide_name_granted(benchmark::State& state)
{
    const auto& p = shared_policy();
    const auto* grants = shared_grants().get();
    run_decisions(
        state, make_granted(p),
        [&](const request& r) { return p.decide_name(r.client, r.target, r.port, bench_now, grants); },
        pol::reason::granted);
}
BENCHMARK(decide_name_granted)->ArgName("grants")->Arg(grant_count);

void decide_address_miss_with_grants(benchmark::State& state)
{
    const auto& p = shared_policy();
    const auto* grants = grants_for(state);
    auto resolved = *pol::address::parse("2606:4700::6810:84e5");
    run_decisions(
        state, make_misses(p, 1 << 16, kind_of(state)),
        [&](const request& r) { return p.decide_address(r.client, r.target, r.port, resolved, bench_now, grants); },
        pol::reason::no_matching_rule);
}
BENCHMARK(decide_address_miss_with_grants)
    ->ArgNames({"grants", "granted_elsewhere"})
    ->ArgsProduct({{0, grant_count}, {0, 1}});

void decide_address_granted(benchmark::State& state)
{
    const auto& p = shared_policy();
    const auto* grants = shared_grants().get();
    auto resolved = *pol::address::parse("2606:4700::6810:84e5");
    run_decisions(
        state, make_granted(p),
        [&](const request& r) { return p.decide_address(r.client, r.target, r.port, resolved, bench_now, grants); },
        pol::reason::granted);
}
BENCHMARK(decide_address_granted)->ArgName("grants")->Arg(grant_count);

// What publishing a new set costs after an approver decides: the store builds the whole set again.
void grant_set_make(benchmark::State& state)
{
    auto grants = make_grants(static_cast<int>(state.range(0)));
    for (auto _ : state) {
        state.PauseTiming();
        auto copy = grants;
        state.ResumeTiming();
        auto set = pol::grant_set::make(std::move(copy));
        benchmark::DoNotOptimize(set);
    }
}
BENCHMARK(grant_set_make)->ArgName("grants")->Arg(grant_count)->Unit(benchmark::kMillisecond);

void match_client_by_source(benchmark::State& state)
{
    const auto& p = shared_policy();
    std::vector<pol::address> sources;
    std::mt19937 rng(7);
    for (int i = 0; i < 4096; ++i) {
        auto c = rng() % client_count;
        sources.push_back(*pol::address::parse("10." + std::to_string(c / 256) + "." + std::to_string(c % 256) + ".1"));
    }
    std::size_t i = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(p.match_client(pol::client_facts{.source = sources[i++ & 4095]}));
    }
}
BENCHMARK(match_client_by_source);

}  // namespace

BENCHMARK_MAIN();
