#pragma once

// The metrics catalogue and its Prometheus text exposition (format 0.0.4).
//
// Every metric egressd exports is declared once, in the catalogue table of metrics.cpp: name, type, label
// names and help. render() walks that table in order, and catalogue_markdown() renders the same table for the
// README, so the documentation and the scrape cannot drift apart.
//
// Counters live per worker and are summed on scrape. Each worker thread owns one worker_metrics and is its
// only writer, so the data path takes no lock and does no contended read-modify-write: a counter is an
// atomic written as store(load(relaxed) + n, relaxed) by its one writer and read with relaxed loads by the
// scrape. Relaxed is enough: a scrape needs each value on its own, not an order between them, and a single
// writer's successive stores reach readers in order, so a counter never goes back between two scrapes.

#include "policy/decision.hpp"
#include "policy/policy.hpp"
#include "proxy/observe/codes.hpp"
#include "proxy/observe/exhaustion.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::proxy::dns {
// Declared here rather than by including resolver.hpp, which would bring Asio to every user of the catalogue.
enum class dns_status : std::uint8_t;
}  // namespace egressd::proxy::dns

namespace egressd::proxy::observe {

// The verdict label of egressd_decisions_total: policy::verdict's allow, deny and would_deny, then error (an
// allowed name that DNS could not resolve: not a denial).
inline constexpr std::size_t verdict_count = 4;
inline constexpr std::size_t error_verdict = 3;
std::string_view verdict_label(std::size_t verdict);
inline constexpr std::size_t dns_status_count = 7;  // dns::dns_status: ok ... resource_exhausted

// The label of egressd_upstream_connects_total: how one connect attempt to one vetted address ended.
enum class connect_result : std::uint8_t { ok, failed, timeout };
inline constexpr std::size_t connect_result_count = 3;
std::string_view to_string(connect_result r);


enum class metric_type : std::uint8_t { counter, gauge, histogram };
std::string_view to_string(metric_type t);

// One metric family of the catalogue.
struct family_info {
    std::string_view name;
    metric_type type;
    std::array<std::string_view, 3> labels;  // label names in order; unused trailing entries are empty
    std::string_view help;
};

// The catalogue in exposition order.
std::vector<family_info> catalogue();
// The catalogue as a Markdown table (name | type | labels | help), for the README.
std::string catalogue_markdown();

// The client label of a decision no client matched.
inline constexpr std::string_view unknown_client_label = "-";

namespace detail {

// A monotonic counter with exactly one writer thread; any thread may read it.
class counter {
public:
    void add(std::uint64_t n) { value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
    std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::uint64_t> value_{0};
};

// A gauge with exactly one writer thread, which both raises and lowers it; any thread may read it.
class gauge {
public:
    void add(std::int64_t n) { value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
    std::int64_t value() const { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::int64_t> value_{0};
};

// Durations in fixed buckets (0.5 ms to 10 s, then +Inf), with exactly one writer thread. Buckets are kept
// per bucket, not cumulative, so an observation is one counter; the scrape accumulates them. The sum is kept
// in integer nanoseconds (584 years of total observed time before it wraps).
class duration_histogram {
public:
    static constexpr std::size_t bucket_count = 15;  // 14 bounds and +Inf

    void observe(std::chrono::nanoseconds d);
    std::uint64_t bucket(std::size_t i) const { return buckets_[i].value(); }
    std::uint64_t sum_nanoseconds() const { return sum_ns_.value(); }

private:
    std::array<counter, bucket_count> buckets_;
    counter sum_ns_;
};

// Decision counts of one client, indexed [verdict][reason]. Cache-line aligned, like every block of counters
// a worker allocates: two workers' counters never share a cache line, so no write of one slows the other.
struct alignas(64) decision_row {
    std::array<counter, verdict_count * reason_count> counts;
};

// The decision rows of one policy snapshot, indexed by its client_id (defined in metrics.cpp).
class client_table;
// A scrape's sum of the workers' counts (defined in metrics.cpp).
struct worker_totals;

// The process-wide values the control thread sets.
}  // namespace detail

// The approvals workflow, read at every scrape when it is on.
struct approvals_sample {
    std::uint64_t pending = 0;
    std::uint64_t active_grants = 0;
    std::uint64_t requests_created = 0;
    std::uint64_t requests_limited = 0;
    std::uint64_t store_failures = 0;
    std::uint64_t approved = 0, voted = 0, denied = 0, revoked = 0, extended = 0, expired = 0;
    std::uint64_t notifications_delivered = 0, notifications_failed = 0, notifications_retried = 0,
                  notifications_dropped = 0;
};

// One alert sink, read at every scrape when alerts are configured.
struct alert_sink_sample {
    std::string name;
    std::uint64_t alerts = 0, summaries = 0;  // made
    std::uint64_t delivered = 0, failed = 0, retried = 0, dropped = 0;
    std::uint64_t suppressed = 0, rate_limited = 0;
    std::uint64_t queued = 0;
};

namespace detail {

struct process_state {
    std::uint64_t reloads_ok = 0;
    std::uint64_t reloads_failed = 0;
    std::optional<std::chrono::system_clock::time_point> last_reload;
    std::optional<std::chrono::system_clock::time_point> last_success;
    std::optional<std::uint64_t> policy_version;  // none until the first policy_loaded
    std::string digest;
    std::size_t rules = 0;
    std::size_t clients = 0;
    bool ready = false;
    std::function<std::uint64_t()> dropped_events;
    std::function<approvals_sample()> approvals;
    std::function<std::vector<alert_sink_sample>()> alerts;
};

}  // namespace detail

// The metrics of one worker thread.
//
// Thread contract: every member function except the constructor and destructor is called on the owning
// worker's thread only (it is the only writer). metrics_registry::render() reads it from any thread, taking
// mutex_, which the worker takes only in use_policy() and in the rare decision slow path, never per decision.
class alignas(64) worker_metrics {
public:
    explicit worker_metrics(std::size_t listener_count);
    ~worker_metrics();
    worker_metrics(const worker_metrics&) = delete;
    worker_metrics& operator=(const worker_metrics&) = delete;

    // Adopts a new policy snapshot for decision counting. The counts made under the previous snapshot are
    // folded into per-client-name totals, so no series ever decreases across a reload.
    void use_policy(std::shared_ptr<const policy::policy> snapshot);

    // Listener arguments are indexes into the registry's listener names; client ids belong to the snapshot
    // passed with them. Both are preconditions, unchecked on the data path.

    // One request head read from a client on this listener.
    void request(std::size_t listener) { listeners_[listener].requests.add(1); }
    // One decision, counted under the snapshot that made it: client is the snapshot's client_id, or none when
    // no client matched. A snapshot other than the adopted one (a session that took its snapshot around a
    // reload) is counted by client name on a slower path.
    void decision(const policy::policy& snapshot, policy::verdict v, reason r, std::optional<policy::client_id> client);
    // An allowed name that DNS could not resolve: counted under the verdict error, not as a denial.
    void decision_error(const policy::policy& snapshot, reason r, std::optional<policy::client_id> client);

    void connection_opened(std::size_t listener)
    {
        listeners_[listener].accepted.add(1);
        listeners_[listener].open.add(1);
    }
    void connection_closed(std::size_t listener, close_cause c)
    {
        listeners_[listener].open.add(-1);
        closes_[static_cast<std::size_t>(c)].add(1);
    }
    void tunnel_opened()
    {
        tunnels_.add(1);
        tunnels_open_.add(1);
    }
    void tunnel_closed() { tunnels_open_.add(-1); }
    void bytes(std::uint64_t from_client, std::uint64_t to_client)
    {
        received_.add(from_client);
        sent_.add(to_client);
    }
    // One name resolution the proxy asked for. Only answers that did not come from the cache are timed:
    // a cache hit costs nothing and would bury the resolver's latency.
    void dns_lookup(dns::dns_status s, bool cache_hit, std::chrono::nanoseconds took);
    // One connect attempt to one vetted address, whatever its result.
    void upstream_connect(connect_result r, std::chrono::nanoseconds took)
    {
        upstream_connects_[static_cast<std::size_t>(r)].add(1);
        upstream_duration_.observe(took);
    }
    // r: proxy_auth_required or proxy_auth_failed.
    void proxy_auth_refused(reason r) { proxy_auth_refusals_[static_cast<std::size_t>(r)].add(1); }
    // r: client_cert_missing, client_cert_rejected, client_identity_invalid or tls_handshake_failed.
    void handshake_refused(reason r) { handshake_refusals_[static_cast<std::size_t>(r)].add(1); }
    // cause: policy_revoked, rule_expired, certificate_revoked or credentials_revoked.
    void revocation(close_cause cause, revoke_outcome o)
    {
        revocations_[static_cast<std::size_t>(cause) * revoke_outcome_count + static_cast<std::size_t>(o)].add(1);
    }
    void connection_limit_refused() { limit_refusals_.add(1); }
    void session_exception() { session_exceptions_.add(1); }
    // Something egressd could not do for want of descriptors or kernel memory.
    void resource_exhausted(exhaustion_site s) { exhaustion_[static_cast<std::size_t>(s)].add(1); }

private:
    friend class metrics_registry;

    struct alignas(64) listener_counters {
        detail::counter requests;
        detail::counter accepted;
        detail::gauge open;
    };

    // Decision slow path: counts by client name in by_name_.
    void count_decision(const policy::policy& snapshot, std::size_t index, std::optional<policy::client_id> client);
    void count_by_name(std::string_view name, std::size_t index);
    // Adds this worker's counts into t. Any thread; takes mutex_.
    void add_to(detail::worker_totals& t) const;

    std::vector<listener_counters> listeners_;
    detail::counter tunnels_;
    detail::gauge tunnels_open_;
    detail::counter received_;
    detail::counter sent_;
    std::array<detail::counter, close_cause_count> closes_;
    std::array<detail::counter, dns_status_count> dns_lookups_;
    detail::counter dns_cache_hits_;
    detail::duration_histogram dns_duration_;
    std::array<detail::counter, connect_result_count> upstream_connects_;
    detail::duration_histogram upstream_duration_;
    // Indexed by the whole reason (or cause) enum so that any value is counted; the scrape always shows the
    // family's own label values and any other value only once it has been counted.
    std::array<detail::counter, reason_count> proxy_auth_refusals_;
    std::array<detail::counter, reason_count> handshake_refusals_;
    std::array<detail::counter, close_cause_count * revoke_outcome_count> revocations_;
    detail::counter limit_refusals_;
    detail::counter session_exceptions_;
    std::array<detail::counter, exhaustion_site_count> exhaustion_;

    detail::decision_row unknown_client_;  // decisions no client matched, under any snapshot
    // Guards table_ and by_name_ against the scrape. The worker reads both without it (it is their only
    // mutator) and takes it only to change them.
    mutable std::mutex mutex_;
    std::unique_ptr<detail::client_table> table_;  // the adopted snapshot's rows; null before use_policy
    // Counts by client name: tables retired by use_policy, and decisions made with another snapshot. Node-based:
    // an insert (under mutex_) moves no entry, so the worker adds to entries without the lock.
    std::map<std::string, detail::decision_row, std::less<>> by_name_;
};

// The process's metrics: the workers' (summed on scrape) and the process-wide ones set by the control thread.
//
// Thread contract: add_worker() at start-up; the setters from any thread (the control thread, in practice);
// render() from any thread. None of them is on the data path.
class metrics_registry {
public:
    // listener_names: the label value of each listener index (its address text), distinct.
    metrics_registry(std::vector<std::string> listener_names, std::string version);
    metrics_registry(const metrics_registry&) = delete;
    metrics_registry& operator=(const metrics_registry&) = delete;

    // A new worker's metrics; the reference stays valid for the registry's lifetime.
    worker_metrics& add_worker();

    // A start-up load or reload attempt, at wall-clock time `at`.
    void reload_result(bool ok, std::chrono::system_clock::time_point at);
    // The policy now in force.
    void policy_loaded(std::uint64_t version, std::string digest, std::size_t rules, std::size_t clients);
    void set_ready(bool ready);
    // Read at every scrape, outside the registry's lock: it may take its own.
    void set_dropped_events_source(std::function<std::uint64_t()> source);
    // The approvals workflow's gauges and counters; without a source their families show no samples.
    void set_approvals_source(std::function<approvals_sample()> source);
    // The alert sinks' counters and queues, one sample per sink; without a source their families show none.
    void set_alerts_source(std::function<std::vector<alert_sink_sample>()> source);

    // The exposition text of every family in catalogue order.
    std::string render() const;

private:
    const std::vector<std::string> listener_names_;
    const std::string version_;
    mutable std::mutex mutex_;  // guards workers_ and process_
    std::deque<worker_metrics> workers_;  // a deque: references stay valid as workers are added
    detail::process_state process_;
};

}  // namespace egressd::proxy::observe
