// What deny lists of groups and clients, rules naming methods and paths, and destinations_file lists cost, next to
// the plain policy of policy_bench.cpp in the same run: 1,000,000 domain rules across 10,000 clients (each client
// has its own group of 100 rules and shares its neighbour's).
//
// Shape 1 (deny lists) adds to that shape, on top of the same million allow rules:
//   - a deny list of 10 rules on every group (100,000 rules), one of them a wildcard;
//   - a deny list of 5 rules on every client (50,000 rules): POST/PUT/DELETE to its own group's domain, /admin on
//     it, and three exact names;
//   - 1,000 global deny rules.
// Shape 2 adds methods [GET, HEAD] and paths [/simple/, /packages/] on every fourth allow rule (250,000 rules).
// Name decisions are timed per call, for CONNECT tunnels and for plain-HTTP requests (method and path given in
// normal and loose form, as the proxy hands them over); normalising a request path is timed on its own.
// Loading compares one million names in a destinations_file with the same names written inline in the YAML.
//
//   build/release/bench/policy_request_bench --benchmark_min_time=0.5

#include "bench/million_rules.hpp"
#include "config/policy_loader.hpp"
#include "policy/policy.hpp"
#include "protocol/http/path.hpp"

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace {

namespace pol = egressd::policy;
namespace fs = std::filesystem;

using egressd::bench::client_count;
using egressd::bench::heap_in_use;
using egressd::bench::rule_domain;
using egressd::bench::rules_per_group;
using egressd::bench::source_cidr;
using egressd::bench::total_rules;
constexpr int group_deny_rules = 10;
constexpr int client_deny_rules = 5;
constexpr int global_deny_rules = 1'000;

std::string group_denied(int group, int k)
{
    std::string base = "svc" + std::to_string(group) + ".example.com";
    return k == group_deny_rules - 1 ? "*.deny." + base : "blocked" + std::to_string(k) + "." + base;
}

std::string client_denied(int client, int k) { return "private" + std::to_string(k) + ".svc" + std::to_string(client) + ".example.com"; }

pol::domain_pattern pattern(const std::string& text) { return *pol::parse_domain_pattern(text).value; }

pol::rule_spec one_domain(const std::string& text)
{
    pol::rule_spec r;
    r.domains.push_back(pattern(text));
    return r;
}

// The shapes compared: the plain policy of policy_bench.cpp, the same with deny lists, and with deny lists and
// methods/paths on every fourth allow rule.
enum shape : int { plain = 0, deny_lists = 1, deny_lists_and_requests = 2 };

pol::policy_spec make_spec(int shape)
{
    bool scoped = shape != plain;
    pol::policy_spec spec;
    spec.files = {"generated"};
    for (int g = 0; g < client_count; ++g) {
        pol::group_spec group;
        group.name = "g" + std::to_string(g);
        for (int r = 0; r < rules_per_group; ++r) {
            pol::rule_spec rule = one_domain(rule_domain(g, r));
            rule.ports = r % 2 == 0 ? std::vector<pol::port_range>{{443, 443}}
                                    : std::vector<pol::port_range>{{80, 80}, {443, 443}};
            if (shape == deny_lists_and_requests && r % 4 == 3) {
                rule.methods = {"GET", "HEAD"};
                rule.paths = {"/simple/", "/packages/"};
            }
            group.rules.push_back(std::move(rule));
        }
        if (scoped) {
            for (int k = 0; k < group_deny_rules; ++k) {
                group.deny.push_back(one_domain(group_denied(g, k)));
            }
        }
        spec.groups.push_back(std::move(group));
    }
    for (int c = 0; c < client_count; ++c) {
        pol::client_spec client;
        client.name = "c" + std::to_string(c);
        client.sources.push_back({*pol::cidr::parse(source_cidr(c)), {}});
        client.groups = {{"g" + std::to_string(c), {}}, {"g" + std::to_string((c + 1) % client_count), {}}};
        if (scoped) {
            std::string own = ".svc" + std::to_string(c) + ".example.com";
            pol::rule_spec writes = one_domain(own);
            writes.methods = {"POST", "PUT", "DELETE"};
            client.deny.push_back(std::move(writes));
            pol::rule_spec admin = one_domain(own);
            admin.paths = {"/admin"};
            client.deny.push_back(std::move(admin));
            for (int k = 0; k < client_deny_rules - 2; ++k) {
                client.deny.push_back(one_domain(client_denied(c, k)));
            }
        }
        spec.clients.push_back(std::move(client));
    }
    if (scoped) {
        for (int k = 0; k < global_deny_rules; ++k) {
            spec.deny.push_back(one_domain("tracker" + std::to_string(k) + ".example.org"));
        }
    }
    return spec;
}

struct compiled {
    std::shared_ptr<const pol::policy> snapshot;
    double heap_mib = 0;
};

// The snapshot's heap: what stays allocated once the spec it was compiled from is gone.
compiled compile_measured(int shape)
{
    std::size_t before = heap_in_use();
    auto snapshot = pol::policy::compile(make_spec(shape)).snapshot;
    return {snapshot, static_cast<double>(heap_in_use() - before) / (1024.0 * 1024.0)};
}

const compiled& shared_policy(int shape)
{
    static compiled shapes[3];
    if (!shapes[shape].snapshot) {
        shapes[shape] = compile_measured(shape);
    }
    return shapes[shape];
}

struct request {
    pol::client_id client;
    pol::host target;
    std::uint16_t port;
    std::string method;  // empty: a CONNECT
    std::string path;
    std::string loose;
};

// The mix of policy_bench.cpp (random clients, names of either group, wildcards, port misses, one in seven names
// unknown), plus, one in ten each, a name on the group's deny list and on the client's own. Plain-HTTP requests go
// to port 80 with GET under /simple/ (most), GET /other/ (a path miss on limited rules), GET /admin/ (the client's
// path deny on its own group's names) and POST (the client's method deny on them).
std::vector<request> make_requests(const pol::policy& p, std::size_t count, bool http)
{
    std::mt19937 rng(42);
    std::vector<request> out;
    out.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
        int c = static_cast<int>(rng() % client_count);
        int g = (rng() % 2 == 0) ? c : (c + 1) % client_count;
        int r = static_cast<int>(rng() % rules_per_group);
        if (http) {
            r |= 1;  // the rules that allow port 80
        }
        std::string name = rule_domain(g, r);
        if (name.starts_with("*.")) {
            name = "api" + name.substr(1);
        }
        if (i % 10 == 3) {
            name = group_denied(g, static_cast<int>(rng() % (group_deny_rules - 1)));
        } else if (i % 10 == 6) {
            name = client_denied(c, static_cast<int>(rng() % (client_deny_rules - 2)));
        } else if (i % 7 == 0) {
            name = "unknown" + std::to_string(i) + ".example.org";
        }
        auto client = p.match_client(pol::client_facts{.source = pol::address::parse(
                                                           "10." + std::to_string(c / 256) + "." + std::to_string(c % 256) + ".9")});
        request req{*client, *pol::host::parse(name).value, static_cast<std::uint16_t>(!http && i % 5 == 0 ? 80 : 443),
                    {}, {}, {}};
        if (http) {
            req.port = 80;
            static const char* const paths[] = {"/simple/requests/", "/packages/a/b.whl", "/other/x", "/admin/users",
                                                "/simple/%2F..%2Fadmin"};
            req.method = i % 8 == 5 ? "POST" : "GET";
            req.path = egressd::protocol::http::normalise_path(paths[i % 5]);
            req.loose = egressd::protocol::http::loose_path(req.path);
        }
        out.push_back(std::move(req));
    }
    return out;
}

const std::chrono::sys_seconds bench_now{std::chrono::seconds{1'800'000'000}};

struct shares {
    std::size_t allowed = 0;
    std::size_t explicit_deny = 0;
    std::size_t method_or_path = 0;
};

void report(benchmark::State& state, const shares& s, double heap_mib)
{
    auto n = static_cast<double>(state.iterations());
    state.counters["allowed_share"] = static_cast<double>(s.allowed) / n;
    state.counters["deny_list_share"] = static_cast<double>(s.explicit_deny) / n;
    state.counters["method_path_miss_share"] = static_cast<double>(s.method_or_path) / n;
    state.counters["snapshot_MiB"] = heap_mib;
}

void count(shares& s, const pol::decision& d)
{
    s.allowed += d.allows_traffic() ? 1 : 0;
    s.explicit_deny += d.why == pol::reason::explicit_deny ? 1 : 0;
    s.method_or_path += d.why == pol::reason::method_not_allowed || d.why == pol::reason::path_not_allowed ? 1 : 0;
}

// shape: see enum shape. http: 0 CONNECT, 1 plain-HTTP requests.
void decide_name(benchmark::State& state)
{
    const auto& c = shared_policy(static_cast<int>(state.range(0)));
    const auto& p = *c.snapshot;
    bool http = state.range(1) == 1;
    auto requests = make_requests(p, 1 << 16, http);
    std::vector<pol::http_request> views;
    views.reserve(requests.size());
    for (const auto& r : requests) {
        views.push_back(pol::http_request{r.method, r.path, r.loose});
    }
    std::size_t i = 0;
    shares s;
    for (auto _ : state) {
        std::size_t k = i++ & (requests.size() - 1);
        const auto& req = requests[k];
        auto d = p.decide_name(req.client, req.target, req.port, bench_now, nullptr, http ? &views[k] : nullptr);
        count(s, d);
        benchmark::DoNotOptimize(d);
    }
    report(state, s, c.heap_mib);
}
BENCHMARK(decide_name)->ArgNames({"shape", "http"})->ArgsProduct({{plain, deny_lists, deny_lists_and_requests}, {0, 1}});

void decide_address(benchmark::State& state)
{
    const auto& c = shared_policy(static_cast<int>(state.range(0)));
    const auto& p = *c.snapshot;
    bool http = state.range(1) == 1;
    auto requests = make_requests(p, 1 << 16, http);
    std::vector<pol::http_request> views;
    for (const auto& r : requests) {
        views.push_back(pol::http_request{r.method, r.path, r.loose});
    }
    auto resolved = *pol::address::parse("2606:4700::6810:84e5");
    std::size_t i = 0;
    shares s;
    for (auto _ : state) {
        std::size_t k = i++ & (requests.size() - 1);
        const auto& req = requests[k];
        auto d = p.decide_address(req.client, req.target, req.port, resolved, bench_now, nullptr,
                                  http ? &views[k] : nullptr);
        count(s, d);
        benchmark::DoNotOptimize(d);
    }
    report(state, s, c.heap_mib);
}
BENCHMARK(decide_address)->ArgNames({"shape", "http"})->ArgsProduct({{plain, deny_lists_and_requests}, {0, 1}});

// What the proxy adds per plain-HTTP request before deciding: the normal and the loose form of its path.
void normalise_request_path(benchmark::State& state)
{
    const std::vector<std::string> paths = {"/simple/requests/", "/packages/3a/7f/requests-2.32.3-py3-none-any.whl",
                                            "/simple/%2F..%2Fadmin", "/a/b/../c/./d;jsessionid=1/e%7e"};
    std::size_t i = 0;
    for (auto _ : state) {
        auto normal = egressd::protocol::http::normalise_path(paths[i++ & 3]);
        auto loose = egressd::protocol::http::loose_path(normal);
        benchmark::DoNotOptimize(normal);
        benchmark::DoNotOptimize(loose);
    }
}
BENCHMARK(normalise_request_path);

// Compiling each shape from memory.
void compile_from_memory(benchmark::State& state)
{
    for (auto _ : state) {
        state.PauseTiming();
        auto spec = make_spec(static_cast<int>(state.range(0)));
        state.ResumeTiming();
        auto result = pol::policy::compile(std::move(spec));
        benchmark::DoNotOptimize(result.snapshot);
    }
}
BENCHMARK(compile_from_memory)->ArgName("shape")->Arg(plain)->Arg(deny_lists)->Arg(deny_lists_and_requests)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// --- destinations_file vs inline ------------------------------------------------------------------------------

constexpr int list_names = 1'000'000;

std::string list_name(int i) { return "n" + std::to_string(i) + ".svc" + std::to_string(i / 100) + ".example.com"; }

// dir/list.yaml names dir/names.txt; dir/inline.yaml holds the same names in the rule; removed at exit.
const fs::path& list_dir()
{
    struct written {
        fs::path dir;
        written()
        {
            dir = fs::temp_directory_path() / ("egressd-bench-list-" + std::to_string(::getpid()));
            fs::create_directories(dir);
            std::string head = "version: 1\ngroups:\n  big:\n    rules:\n      - ports: [443]\n";
            std::string tail = "clients:\n  c:\n    sources: [10.0.0.0/8]\n    groups: [big]\n";
            std::ofstream names(dir / "names.txt");
            std::ofstream inline_yaml(dir / "inline.yaml");
            names << "# one million vendor names\n";
            inline_yaml << head << "        destinations:\n";
            for (int i = 0; i < list_names; ++i) {
                names << list_name(i) << '\n';
                inline_yaml << "          - " << list_name(i) << '\n';
            }
            inline_yaml << tail;
            std::ofstream(dir / "list.yaml") << head << "        destinations_file: names.txt\n" << tail;
        }
        ~written() { fs::remove_all(dir); }
    };
    static written w;
    return w.dir;
}

// list 0: the names inline in YAML; 1: the names in a destinations_file.
void load_million_names(benchmark::State& state)
{
    bool list = state.range(0) == 1;
    const auto& dir = list_dir();
    auto path = dir / (list ? "list.yaml" : "inline.yaml");
    double mib = static_cast<double>(fs::file_size(path)) / (1024.0 * 1024.0);
    if (list) {
        mib += static_cast<double>(fs::file_size(dir / "names.txt")) / (1024.0 * 1024.0);
    }
    std::size_t heap = 0;
    for (auto _ : state) {
        std::size_t before = heap_in_use();
        auto loaded = egressd::config::load_policy(path);
        heap = heap_in_use() - before;
        if (!loaded.snapshot || loaded.snapshot->stats().domain_patterns != list_names) {
            state.SkipWithError("generated policy did not load");
            return;
        }
    }
    state.counters["input_MiB"] = mib;
    state.counters["loaded_MiB"] = static_cast<double>(heap) / (1024.0 * 1024.0);
}
BENCHMARK(load_million_names)->ArgName("list")->Arg(0)->Arg(1)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
