#include "proxy/observe/metrics.hpp"

#include "proxy/dns/resolver.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <span>
#include <sstream>
#include <system_error>
#include <utility>

namespace egressd::proxy::observe {

static_assert(static_cast<std::size_t>(policy::verdict::would_deny) + 1 == error_verdict);
static_assert(static_cast<std::size_t>(dns::dns_status::resource_exhausted) + 1 == dns_status_count);

namespace {

constexpr std::array<std::string_view, connect_result_count> connect_result_names{"ok", "failed", "timeout"};
static_assert(static_cast<std::size_t>(connect_result::timeout) + 1 == connect_result_count);


constexpr std::array<std::string_view, 3> metric_type_names{"counter", "gauge", "histogram"};

// Upper bounds of the duration buckets and their `le` text: from a connect within one host (0.5 ms) to a
// resolver on its last try (10 s).
struct bucket_bound {
    std::chrono::nanoseconds le;
    std::string_view text;
};
using namespace std::chrono_literals;
constexpr std::array<bucket_bound, detail::duration_histogram::bucket_count - 1> bucket_bounds{{
    {500us, "0.0005"},
    {1ms, "0.001"},
    {2500us, "0.0025"},
    {5ms, "0.005"},
    {10ms, "0.01"},
    {25ms, "0.025"},
    {50ms, "0.05"},
    {100ms, "0.1"},
    {250ms, "0.25"},
    {500ms, "0.5"},
    {1s, "1"},
    {2500ms, "2.5"},
    {5s, "5"},
    {10s, "10"},
}};

}  // namespace

std::string_view to_string(connect_result r) { return connect_result_names[static_cast<std::size_t>(r)]; }
std::string_view to_string(metric_type t) { return metric_type_names[static_cast<std::size_t>(t)]; }

namespace detail {

void duration_histogram::observe(std::chrono::nanoseconds d)
{
    // A clock that stepped back yields a negative duration: count it as zero rather than wrap the sum.
    d = std::max(d, std::chrono::nanoseconds::zero());
    std::size_t i = 0;
    while (i < bucket_bounds.size() && d > bucket_bounds[i].le) {
        ++i;
    }
    buckets_[i].add(1);
    sum_ns_.add(static_cast<std::uint64_t>(d.count()));
}

// A row is allocated on its client's first decision on this worker (one allocation per client, worker and
// snapshot), not up front: a row is 832 bytes, a policy may name thousands of clients of which a worker sees
// few, and the scrape shows only clients that were counted. The table holds its snapshot, so the snapshot's address, which decisions are matched by,
// cannot be reused while the table is current.
//
// Thread contract: row() on the worker thread only; find() from any thread. A row is published with a
// release store, so a scrape that finds it sees it constructed.
class client_table {
public:
    explicit client_table(std::shared_ptr<const policy::policy> snapshot)
        : snapshot_(std::move(snapshot)),
          size_(snapshot_->stats().clients),
          rows_(std::make_unique<std::atomic<decision_row*>[]>(size_))
    {
    }
    ~client_table()
    {
        for (std::size_t i = 0; i < size_; ++i) {
            delete rows_[i].load(std::memory_order_relaxed);
        }
    }
    client_table(const client_table&) = delete;
    client_table& operator=(const client_table&) = delete;

    const policy::policy& snapshot() const { return *snapshot_; }
    std::size_t size() const { return size_; }

    decision_row& row(policy::client_id id)
    {
        auto* r = rows_[id].load(std::memory_order_relaxed);
        if (r == nullptr) {
            r = new decision_row;
            rows_[id].store(r, std::memory_order_release);
        }
        return *r;
    }
    const decision_row* find(policy::client_id id) const { return rows_[id].load(std::memory_order_acquire); }

private:
    std::shared_ptr<const policy::policy> snapshot_;
    std::size_t size_;
    std::unique_ptr<std::atomic<decision_row*>[]> rows_;
};

using decision_counts = std::array<std::uint64_t, verdict_count * reason_count>;

struct histogram_totals {
    std::array<std::uint64_t, duration_histogram::bucket_count> buckets{};  // per bucket, not cumulative
    std::uint64_t sum_ns = 0;

    void add(const duration_histogram& h)
    {
        for (std::size_t i = 0; i < buckets.size(); ++i) {
            buckets[i] += h.bucket(i);
        }
        sum_ns += h.sum_nanoseconds();
    }
};

struct worker_totals {
    explicit worker_totals(std::size_t listeners) : requests(listeners), accepted(listeners), open(listeners) {}

    std::vector<std::uint64_t> requests;
    std::vector<std::uint64_t> accepted;
    std::vector<std::int64_t> open;
    std::uint64_t tunnels = 0;
    std::int64_t tunnels_open = 0;
    std::uint64_t received = 0;
    std::uint64_t sent = 0;
    std::array<std::uint64_t, close_cause_count> closes{};
    std::array<std::uint64_t, dns_status_count> dns_lookups{};
    std::uint64_t dns_cache_hits = 0;
    histogram_totals dns_duration;
    std::array<std::uint64_t, connect_result_count> upstream_connects{};
    histogram_totals upstream_duration;
    std::array<std::uint64_t, reason_count> proxy_auth_refusals{};
    std::array<std::uint64_t, reason_count> handshake_refusals{};
    std::array<std::uint64_t, close_cause_count * revoke_outcome_count> revocations{};
    std::uint64_t limit_refusals = 0;
    std::uint64_t session_exceptions = 0;
    std::array<std::uint64_t, exhaustion_site_count> exhaustion{};
    std::map<std::string, decision_counts, std::less<>> decisions;  // by client label

    decision_counts& decisions_of(std::string_view client)
    {
        auto it = decisions.find(client);
        if (it == decisions.end()) {
            it = decisions.emplace(std::string(client), decision_counts{}).first;
        }
        return it->second;
    }
};

}  // namespace detail

namespace {

template <typename Total, typename Counter>
void add_all(std::span<Total> to, std::span<const Counter> from)
{
    for (std::size_t i = 0; i < to.size(); ++i) {
        to[i] += from[i].value();
    }
}

void add_row(detail::decision_counts& to, const detail::decision_row& from)
{
    add_all<std::uint64_t, detail::counter>(to, from.counts);
}

}  // namespace

// ---- worker_metrics ----

worker_metrics::worker_metrics(std::size_t listener_count) : listeners_(listener_count) {}

// Here, where client_table is complete.
worker_metrics::~worker_metrics() = default;

void worker_metrics::use_policy(std::shared_ptr<const policy::policy> snapshot)
{
    if (table_ && &table_->snapshot() == snapshot.get()) {
        return;
    }
    auto next = std::make_unique<detail::client_table>(std::move(snapshot));
    std::unique_ptr<detail::client_table> retired;
    {
        // Fold and swap under one lock, so a scrape sees the old table's counts either in the table or in
        // by_name_, never in both and never in neither.
        std::lock_guard lock(mutex_);
        if (table_) {
            for (policy::client_id id = 0; id < table_->size(); ++id) {
                const auto* row = table_->find(id);
                if (row == nullptr) {
                    continue;
                }
                auto name = table_->snapshot().client_name(id);
                auto& to = by_name_.try_emplace(std::string(name)).first->second;
                for (std::size_t i = 0; i < row->counts.size(); ++i) {
                    to.counts[i].add(row->counts[i].value());
                }
            }
        }
        retired = std::exchange(table_, std::move(next));
    }
    // The retired table (and possibly the last reference to its snapshot) is freed outside the lock.
}

std::string_view verdict_label(std::size_t verdict)
{
    return verdict == error_verdict ? std::string_view("error") : policy::to_string(static_cast<policy::verdict>(verdict));
}

void worker_metrics::decision(const policy::policy& snapshot, policy::verdict v, reason r,
                              std::optional<policy::client_id> client)
{
    count_decision(snapshot, static_cast<std::size_t>(v) * reason_count + static_cast<std::size_t>(r), client);
}

void worker_metrics::decision_error(const policy::policy& snapshot, reason r, std::optional<policy::client_id> client)
{
    count_decision(snapshot, error_verdict * reason_count + static_cast<std::size_t>(r), client);
}

void worker_metrics::count_decision(const policy::policy& snapshot, std::size_t index,
                                    std::optional<policy::client_id> client)
{
    if (!client) {
        unknown_client_.counts[index].add(1);
        return;
    }
    if (table_ && &table_->snapshot() == &snapshot) {
        table_->row(*client).counts[index].add(1);
        return;
    }
    // The client_id belongs to another snapshot than the table's: only its name means the same client.
    count_by_name(snapshot.client_name(*client), index);
}

void worker_metrics::count_by_name(std::string_view name, std::size_t index)
{
    // Looked up without the lock: this thread is by_name_'s only mutator, and the scrape only reads it.
    auto it = by_name_.find(name);
    if (it == by_name_.end()) {
        std::lock_guard lock(mutex_);
        it = by_name_.try_emplace(std::string(name)).first;
    }
    it->second.counts[index].add(1);
}

void worker_metrics::dns_lookup(dns::dns_status s, bool cache_hit, std::chrono::nanoseconds took)
{
    dns_lookups_[static_cast<std::size_t>(s)].add(1);
    if (cache_hit) {
        dns_cache_hits_.add(1);
        return;
    }
    dns_duration_.observe(took);
}

void worker_metrics::add_to(detail::worker_totals& t) const
{
    for (std::size_t i = 0; i < listeners_.size(); ++i) {
        t.requests[i] += listeners_[i].requests.value();
        t.accepted[i] += listeners_[i].accepted.value();
        t.open[i] += listeners_[i].open.value();
    }
    t.tunnels += tunnels_.value();
    t.tunnels_open += tunnels_open_.value();
    t.received += received_.value();
    t.sent += sent_.value();
    add_all<std::uint64_t, detail::counter>(t.closes, closes_);
    add_all<std::uint64_t, detail::counter>(t.dns_lookups, dns_lookups_);
    t.dns_cache_hits += dns_cache_hits_.value();
    t.dns_duration.add(dns_duration_);
    add_all<std::uint64_t, detail::counter>(t.upstream_connects, upstream_connects_);
    t.upstream_duration.add(upstream_duration_);
    add_all<std::uint64_t, detail::counter>(t.proxy_auth_refusals, proxy_auth_refusals_);
    add_all<std::uint64_t, detail::counter>(t.handshake_refusals, handshake_refusals_);
    add_all<std::uint64_t, detail::counter>(t.revocations, revocations_);
    t.limit_refusals += limit_refusals_.value();
    t.session_exceptions += session_exceptions_.value();
    add_all<std::uint64_t, detail::counter>(t.exhaustion, exhaustion_);

    add_row(t.decisions_of(unknown_client_label), unknown_client_);
    std::lock_guard lock(mutex_);
    if (table_) {
        for (policy::client_id id = 0; id < table_->size(); ++id) {
            if (const auto* row = table_->find(id)) {
                add_row(t.decisions_of(table_->snapshot().client_name(id)), *row);
            }
        }
    }
    for (const auto& [name, row] : by_name_) {
        add_row(t.decisions_of(name), row);
    }
}

// ---- exposition ----

namespace {

// What /proc says about this process; a value it could not read is left out of the scrape.
struct process_sample {
    std::optional<double> cpu_seconds;
    std::optional<std::uint64_t> resident_bytes;
    std::optional<std::uint64_t> virtual_bytes;
    std::optional<double> start_time_seconds;
    std::optional<std::uint64_t> open_fds;
    std::optional<std::uint64_t> max_fds;
};

std::optional<std::string> read_text(const char* path)
{
    std::ifstream in(path);
    if (!in) {
        return std::nullopt;
    }
    std::ostringstream text;
    text << in.rdbuf();
    return std::move(text).str();
}

std::optional<std::uint64_t> parse_u64(std::string_view text)
{
    std::uint64_t v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return v;
}

// The boot time, in seconds since the epoch: /proc/stat's btime line.
std::optional<std::uint64_t> boot_time()
{
    auto text = read_text("/proc/stat");
    if (!text) {
        return std::nullopt;
    }
    std::istringstream lines(*text);
    for (std::string line; std::getline(lines, line);) {
        if (line.starts_with("btime ")) {
            return parse_u64(std::string_view(line).substr(6));
        }
    }
    return std::nullopt;
}

// The same sources and semantics as the Prometheus client libraries' process collectors.
process_sample read_process()
{
    process_sample p;
    auto ticks = ::sysconf(_SC_CLK_TCK);
    auto page = ::sysconf(_SC_PAGESIZE);
    auto stat = read_text("/proc/self/stat");
    // The command name (field 2) is in parentheses and may hold spaces or ')': fields resume after the last ')'.
    auto close = stat ? stat->rfind(')') : std::string::npos;
    if (close != std::string::npos && ticks > 0 && page > 0) {
        std::istringstream in(stat->substr(close + 1));
        std::vector<std::string> f{std::istream_iterator<std::string>(in), std::istream_iterator<std::string>()};
        // f[0] is field 3 (state): field n of proc(5) is f[n - 3].
        if (f.size() > 21) {
            auto utime = parse_u64(f[11]);
            auto stime = parse_u64(f[12]);
            auto start = parse_u64(f[19]);
            auto vsize = parse_u64(f[20]);
            auto rss = parse_u64(f[21]);
            auto hz = static_cast<double>(ticks);
            if (utime && stime) {
                p.cpu_seconds = static_cast<double>(*utime + *stime) / hz;
            }
            if (auto btime = boot_time(); start && btime) {
                p.start_time_seconds = static_cast<double>(*btime) + static_cast<double>(*start) / hz;
            }
            p.virtual_bytes = vsize;
            if (rss) {
                p.resident_bytes = *rss * static_cast<std::uint64_t>(page);
            }
        }
    }
    std::error_code ec;
    std::uint64_t fds = 0;
    for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec)) {
        ++fds;
    }
    if (!ec) {
        p.open_fds = fds;
    }
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
        p.max_fds = static_cast<std::uint64_t>(limit.rlim_cur);
    }
    return p;
}

// Everything one scrape shows, gathered before any text is written.
struct scrape {
    const std::vector<std::string>& listeners;
    std::string_view version;
    detail::worker_totals workers;
    detail::process_state process;
    std::optional<std::uint64_t> dropped_events;
    process_sample proc;
    std::optional<approvals_sample> approvals;
    std::vector<alert_sink_sample> alerts;
};

// Writes the text exposition format 0.0.4, one family at a time.
class exposition {
public:
    void family(const family_info& f)
    {
        family_ = &f;
        text_ += "# HELP ";
        text_ += f.name;
        text_ += ' ';
        for (char c : f.help) {
            if (c == '\\') {
                text_ += "\\\\";
            } else if (c == '\n') {
                text_ += "\\n";
            } else {
                text_ += c;
            }
        }
        text_ += "\n# TYPE ";
        text_ += f.name;
        text_ += ' ';
        text_ += to_string(f.type);
        text_ += '\n';
    }

    // One sample of the current family; label values in the order of its label names.
    template <typename Number>
    void sample(std::initializer_list<std::string_view> values, Number v)
    {
        series("", values, {});
        number(v);
    }

    // Cumulative buckets up to +Inf, then _sum and _count, of a histogram without labels.
    void histogram(const detail::histogram_totals& h)
    {
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < h.buckets.size(); ++i) {
            cumulative += h.buckets[i];
            series("_bucket", {}, i < bucket_bounds.size() ? bucket_bounds[i].text : "+Inf");
            number(cumulative);
        }
        series("_sum", {}, {});
        number(static_cast<double>(h.sum_ns) / 1e9);
        series("_count", {}, {});
        number(cumulative);
    }

    std::string take() { return std::move(text_); }

private:
    void series(std::string_view suffix, std::initializer_list<std::string_view> values, std::string_view le)
    {
        text_ += family_->name;
        text_ += suffix;
        if (values.size() != 0 || !le.empty()) {
            char sep = '{';
            std::size_t i = 0;
            for (auto v : values) {
                label(sep, family_->labels[i++], v);
                sep = ',';
            }
            if (!le.empty()) {
                label(sep, "le", le);
            }
            text_ += '}';
        }
        text_ += ' ';
    }

    void label(char sep, std::string_view name, std::string_view value)
    {
        text_ += sep;
        text_ += name;
        text_ += "=\"";
        for (char c : value) {
            if (c == '\\') {
                text_ += "\\\\";
            } else if (c == '"') {
                text_ += "\\\"";
            } else if (c == '\n') {
                text_ += "\\n";
            } else {
                text_ += c;
            }
        }
        text_ += '"';
    }

    template <typename Number>
    void number(Number v)
    {
        // 32 characters hold any 64-bit integer and the shortest form of any double: to_chars cannot fail.
        std::array<char, 32> buf{};
        text_.append(buf.data(), std::to_chars(buf.data(), buf.data() + buf.size(), v).ptr);
        text_ += '\n';
    }

    const family_info* family_ = nullptr;
    std::string text_;
};

// In milliseconds first: a double of nanoseconds since 1970 has already lost the fraction it is asked for.
double seconds_since_epoch(std::chrono::system_clock::time_point t)
{
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
    return static_cast<double>(ms) / 1000.0;
}

// Labelled by an enum: the values in `always` are shown even at zero, so alerts see the series from the
// start; any other value is shown once it has been counted.
template <typename Enum, std::size_t N>
void by_enum(exposition& out, const std::array<std::uint64_t, N>& counts, std::initializer_list<Enum> always)
{
    for (std::size_t i = 0; i < N; ++i) {
        auto e = static_cast<Enum>(i);
        if (counts[i] != 0 || std::find(always.begin(), always.end(), e) != always.end()) {
            out.sample({to_string(e)}, counts[i]);
        }
    }
}

// All values of an enum, zero or not.
template <typename Enum, std::size_t N>
void by_enum(exposition& out, const std::array<std::uint64_t, N>& counts)
{
    for (std::size_t i = 0; i < N; ++i) {
        out.sample({to_string(static_cast<Enum>(i))}, counts[i]);
    }
}

template <typename Number>
void by_listener(const scrape& s, exposition& out, const std::vector<Number>& values)
{
    for (std::size_t i = 0; i < values.size(); ++i) {
        out.sample({s.listeners[i]}, values[i]);
    }
}

using writer = void (*)(const scrape&, exposition&);

// One family of the catalogue and how a scrape fills it.
struct family_entry {
    family_info info;
    writer write;
};

using enum metric_type;

// THE CATALOGUE. Every exported metric, in exposition order; the README's table is rendered from it.
constexpr family_entry families[] = {
    {{"egressd_build_info", gauge, {"version"}, "Always 1; the version label is the running egressd's version."},
     [](const scrape& s, exposition& out) { out.sample({s.version}, 1); }},
    {{"egressd_ready", gauge, {}, "1 while egressd is ready to serve (listening, policy loaded), else 0."},
     [](const scrape& s, exposition& out) { out.sample({}, s.process.ready ? 1 : 0); }},
    {{"egressd_requests_total", counter, {"listener"},
      "Requests read from clients: one per request head (CONNECT or plain HTTP), by listener address."},
     [](const scrape& s, exposition& out) { by_listener(s, out, s.workers.requests); }},
    {{"egressd_decisions_total", counter, {"verdict", "reason", "client"},
      "Policy decisions by verdict (allow, deny, would_deny, or error for an allowed name DNS could not resolve), "
      "reason code and policy client name; client is \"-\" when no client matched. A series appears with its first "
      "decision."},
     [](const scrape& s, exposition& out) {
         for (const auto& [client, counts] : s.workers.decisions) {
             for (std::size_t i = 0; i < counts.size(); ++i) {
                 if (counts[i] != 0) {
                     auto v = verdict_label(i / reason_count);
                     auto r = to_string(static_cast<reason>(i % reason_count));
                     out.sample({v, r, client}, counts[i]);
                 }
             }
         }
     }},
    {{"egressd_connections_accepted_total", counter, {"listener"}, "Client connections accepted, by listener address."},
     [](const scrape& s, exposition& out) { by_listener(s, out, s.workers.accepted); }},
    {{"egressd_connections_open", gauge, {"listener"}, "Client connections open now, by listener address."},
     [](const scrape& s, exposition& out) { by_listener(s, out, s.workers.open); }},
    {{"egressd_connection_limit_refusals_total", counter, {},
      "Client connections refused because the connection limit was reached."},
     [](const scrape& s, exposition& out) { out.sample({}, s.workers.limit_refusals); }},
    {{"egressd_closes_total", counter, {"cause"}, "Client connections closed, by close cause."},
     [](const scrape& s, exposition& out) { by_enum<close_cause>(out, s.workers.closes); }},
    {{"egressd_tunnels_total", counter, {}, "CONNECT tunnels established (after 200 Connection established)."},
     [](const scrape& s, exposition& out) { out.sample({}, s.workers.tunnels); }},
    {{"egressd_tunnels_open", gauge, {}, "CONNECT tunnels open now."},
     [](const scrape& s, exposition& out) { out.sample({}, s.workers.tunnels_open); }},
    {{"egressd_client_received_bytes_total", counter, {}, "Bytes received from clients."},
     [](const scrape& s, exposition& out) { out.sample({}, s.workers.received); }},
    {{"egressd_client_sent_bytes_total", counter, {}, "Bytes sent to clients."},
     [](const scrape& s, exposition& out) { out.sample({}, s.workers.sent); }},
    {{"egressd_dns_lookups_total", counter, {"result"},
      "Name resolutions the proxy asked for (cache hits included), by result."},
     [](const scrape& s, exposition& out) { by_enum<dns::dns_status>(out, s.workers.dns_lookups); }},
    {{"egressd_dns_cache_hits_total", counter, {}, "Name resolutions answered from the DNS cache."},
     [](const scrape& s, exposition& out) { out.sample({}, s.workers.dns_cache_hits); }},
    {{"egressd_dns_lookup_duration_seconds", histogram, {},
      "Time to resolve a name not answered from the cache, whatever the result."},
     [](const scrape& s, exposition& out) { out.histogram(s.workers.dns_duration); }},
    {{"egressd_upstream_connects_total", counter, {"result"},
      "Connect attempts to vetted upstream addresses (one per address tried), by result."},
     [](const scrape& s, exposition& out) { by_enum<connect_result>(out, s.workers.upstream_connects); }},
    {{"egressd_upstream_connect_duration_seconds", histogram, {},
      "Time of one connect attempt to an upstream address, whatever the result."},
     [](const scrape& s, exposition& out) { out.histogram(s.workers.upstream_duration); }},
    {{"egressd_proxy_auth_refusals_total", counter, {"reason"},
      "Requests refused with 407: credentials missing (proxy_auth_required) or wrong (proxy_auth_failed)."},
     [](const scrape& s, exposition& out) {
         by_enum(out, s.workers.proxy_auth_refusals, {reason::proxy_auth_required, reason::proxy_auth_failed});
     }},
    {{"egressd_tls_handshake_refusals_total", counter, {"reason"},
      "TLS listener connections refused during or right after the handshake, by reason."},
     [](const scrape& s, exposition& out) {
         by_enum(out, s.workers.handshake_refusals,
                 {reason::client_cert_missing, reason::client_cert_rejected, reason::client_identity_invalid,
                  reason::tls_handshake_failed});
     }},
    {{"egressd_revocations_total", counter, {"cause", "action"},
      "Established connections a policy, CRL or credentials change no longer allows, by cause and by what "
      "was done (closed, would_close in report mode, kept by on_revoke: keep)."},
     [](const scrape& s, exposition& out) {
         constexpr std::array always{close_cause::policy_revoked, close_cause::rule_expired,
                                     close_cause::certificate_revoked, close_cause::credentials_revoked};
         for (std::size_t c = 0; c < close_cause_count; ++c) {
             auto cause = static_cast<close_cause>(c);
             bool shown = std::find(always.begin(), always.end(), cause) != always.end();
             for (std::size_t a = 0; a < revoke_outcome_count; ++a) {
                 auto n = s.workers.revocations[c * revoke_outcome_count + a];
                 if (shown || n != 0) {
                     out.sample({to_string(cause), to_string(static_cast<revoke_outcome>(a))}, n);
                 }
             }
         }
     }},
    {{"egressd_session_exceptions_total", counter, {},
      "Exceptions that escaped a client session (a bug: each is logged; the connection is closed)."},
     [](const scrape& s, exposition& out) { out.sample({}, s.workers.session_exceptions); }},
    {{"egressd_resource_exhaustion_total", counter, {"operation"},
      "Operations that failed for want of descriptors or kernel memory (EMFILE, ENFILE, ENOBUFS, ENOMEM), by "
      "operation: accept (a proxy listener; the connection waits in the backlog), dns (the resolver's socket), "
      "upstream (a connect's socket), pipe (a splice relay's pipe). Each is also announced, at most once per 10 s "
      "per operation, as egressd.resource_exhausted."},
     [](const scrape& s, exposition& out) { by_enum<exhaustion_site>(out, s.workers.exhaustion); }},
    {{"egressd_reloads_total", counter, {"result"},
      "Policy and configuration loads (start-up and reloads), by result."},
     [](const scrape& s, exposition& out) {
         out.sample({"ok"}, s.process.reloads_ok);
         out.sample({"failed"}, s.process.reloads_failed);
     }},
    {{"egressd_last_reload_timestamp_seconds", gauge, {}, "When the last load or reload was attempted (Unix time)."},
     [](const scrape& s, exposition& out) {
         if (s.process.last_reload) {
             out.sample({}, seconds_since_epoch(*s.process.last_reload));
         }
     }},
    {{"egressd_last_reload_success_timestamp_seconds", gauge, {},
      "When the last load or reload succeeded (Unix time)."},
     [](const scrape& s, exposition& out) {
         if (s.process.last_success) {
             out.sample({}, seconds_since_epoch(*s.process.last_success));
         }
     }},
    {{"egressd_policy_version", gauge, {}, "Version number of the policy in force."},
     [](const scrape& s, exposition& out) {
         if (s.process.policy_version) {
             out.sample({}, *s.process.policy_version);
         }
     }},
    {{"egressd_policy_info", gauge, {"digest"}, "Always 1; the digest label identifies the policy in force."},
     [](const scrape& s, exposition& out) {
         if (s.process.policy_version) {
             out.sample({s.process.digest}, 1);
         }
     }},
    {{"egressd_policy_rules", gauge, {}, "Rules in the policy in force."},
     [](const scrape& s, exposition& out) {
         if (s.process.policy_version) {
             out.sample({}, s.process.rules);
         }
     }},
    {{"egressd_policy_clients", gauge, {}, "Clients in the policy in force."},
     [](const scrape& s, exposition& out) {
         if (s.process.policy_version) {
             out.sample({}, s.process.clients);
         }
     }},
    {{"egressd_events_dropped_total", counter, {}, "Events the event log dropped because its queue was full."},
     [](const scrape& s, exposition& out) { out.sample({}, s.dropped_events.value_or(0)); }},
    {{"egressd_access_requests_pending", gauge, {}, "Access requests waiting for a decision (approvals on)."},
     [](const scrape& s, exposition& out) {
         if (s.approvals) {
             out.sample({}, s.approvals->pending);
         }
     }},
    {{"egressd_grants_active", gauge, {}, "Approvers' grants in force (approvals on)."},
     [](const scrape& s, exposition& out) {
         if (s.approvals) {
             out.sample({}, s.approvals->active_grants);
         }
     }},
    {{"egressd_access_requests_total", counter, {"result"},
      "Denials that would have opened an access request: created, or limited (max_pending or the per-client rate)."},
     [](const scrape& s, exposition& out) {
         if (s.approvals) {
             out.sample({"created"}, s.approvals->requests_created);
             out.sample({"limited"}, s.approvals->requests_limited);
         }
     }},
    {{"egressd_approval_decisions_total", counter, {"decision"},
      "Approvers' decisions and grant endings: approved, voted (one of two), denied, revoked, extended, expired."},
     [](const scrape& s, exposition& out) {
         if (s.approvals) {
             const auto& a = *s.approvals;
             out.sample({"approved"}, a.approved);
             out.sample({"voted"}, a.voted);
             out.sample({"denied"}, a.denied);
             out.sample({"revoked"}, a.revoked);
             out.sample({"extended"}, a.extended);
             out.sample({"expired"}, a.expired);
         }
     }},
    {{"egressd_approval_store_failures_total", counter, {},
      "Approvals store calls that failed: the change was refused (fail closed), proxying went on."},
     [](const scrape& s, exposition& out) {
         if (s.approvals) {
             out.sample({}, s.approvals->store_failures);
         }
     }},
    {{"egressd_approval_notifications_total", counter, {"result"},
      "Webhook deliveries: delivered, failed (gave up), retried (attempts after the first), dropped (queue full)."},
     [](const scrape& s, exposition& out) {
         if (s.approvals) {
             const auto& a = *s.approvals;
             out.sample({"delivered"}, a.notifications_delivered);
             out.sample({"failed"}, a.notifications_failed);
             out.sample({"retried"}, a.notifications_retried);
             out.sample({"dropped"}, a.notifications_dropped);
         }
     }},
    {{"egressd_alerts_total", counter, {"sink", "outcome"},
      "Alert sinks: alert and summary (made), delivered, failed (gave up), retried (attempts after the first), "
      "dropped (queue full), suppressed (folded into an open group), rate_limited (over max_per_minute)."},
     [](const scrape& s, exposition& out) {
         for (const auto& a : s.alerts) {
             out.sample({a.name, "alert"}, a.alerts);
             out.sample({a.name, "summary"}, a.summaries);
             out.sample({a.name, "delivered"}, a.delivered);
             out.sample({a.name, "failed"}, a.failed);
             out.sample({a.name, "retried"}, a.retried);
             out.sample({a.name, "dropped"}, a.dropped);
             out.sample({a.name, "suppressed"}, a.suppressed);
             out.sample({a.name, "rate_limited"}, a.rate_limited);
         }
     }},
    {{"egressd_alert_queue", gauge, {"sink"}, "Deliveries waiting in each alert sink's queue."},
     [](const scrape& s, exposition& out) {
         for (const auto& a : s.alerts) {
             out.sample({a.name}, a.queued);
         }
     }},
    {{"process_cpu_seconds_total", counter, {}, "Total user and system CPU time spent in seconds."},
     [](const scrape& s, exposition& out) {
         if (s.proc.cpu_seconds) {
             out.sample({}, *s.proc.cpu_seconds);
         }
     }},
    {{"process_resident_memory_bytes", gauge, {}, "Resident memory size in bytes."},
     [](const scrape& s, exposition& out) {
         if (s.proc.resident_bytes) {
             out.sample({}, *s.proc.resident_bytes);
         }
     }},
    {{"process_virtual_memory_bytes", gauge, {}, "Virtual memory size in bytes."},
     [](const scrape& s, exposition& out) {
         if (s.proc.virtual_bytes) {
             out.sample({}, *s.proc.virtual_bytes);
         }
     }},
    {{"process_open_fds", gauge, {}, "Number of open file descriptors."},
     [](const scrape& s, exposition& out) {
         if (s.proc.open_fds) {
             out.sample({}, *s.proc.open_fds);
         }
     }},
    {{"process_max_fds", gauge, {}, "Maximum number of open file descriptors."},
     [](const scrape& s, exposition& out) {
         if (s.proc.max_fds) {
             out.sample({}, *s.proc.max_fds);
         }
     }},
    {{"process_start_time_seconds", gauge, {}, "Start time of the process since unix epoch in seconds."},
     [](const scrape& s, exposition& out) {
         if (s.proc.start_time_seconds) {
             out.sample({}, *s.proc.start_time_seconds);
         }
     }},
};

}  // namespace

std::vector<family_info> catalogue()
{
    std::vector<family_info> out;
    for (const auto& f : families) {
        out.push_back(f.info);
    }
    return out;
}

std::string catalogue_markdown()
{
    std::string out = "| name | type | labels | help |\n| --- | --- | --- | --- |\n";
    for (const auto& f : families) {
        out += "| `";
        out += f.info.name;
        out += "` | ";
        out += to_string(f.info.type);
        out += " | ";
        const char* sep = "";
        for (auto l : f.info.labels) {
            if (!l.empty()) {
                out += sep;
                out += '`';
                out += l;
                out += '`';
                sep = ", ";
            }
        }
        out += " | ";
        for (char c : f.info.help) {
            if (c == '|') {
                out += "\\|";
            } else {
                out += c;
            }
        }
        out += " |\n";
    }
    return out;
}

// ---- metrics_registry ----

metrics_registry::metrics_registry(std::vector<std::string> listener_names, std::string version)
    : listener_names_(std::move(listener_names)), version_(std::move(version))
{
}

worker_metrics& metrics_registry::add_worker()
{
    std::lock_guard lock(mutex_);
    return workers_.emplace_back(listener_names_.size());
}

void metrics_registry::reload_result(bool ok, std::chrono::system_clock::time_point at)
{
    std::lock_guard lock(mutex_);
    ++(ok ? process_.reloads_ok : process_.reloads_failed);
    process_.last_reload = at;
    if (ok) {
        process_.last_success = at;
    }
}

void metrics_registry::policy_loaded(std::uint64_t version, std::string digest, std::size_t rules,
                                     std::size_t clients)
{
    std::lock_guard lock(mutex_);
    process_.policy_version = version;
    process_.digest = std::move(digest);
    process_.rules = rules;
    process_.clients = clients;
}

void metrics_registry::set_ready(bool ready)
{
    std::lock_guard lock(mutex_);
    process_.ready = ready;
}

void metrics_registry::set_dropped_events_source(std::function<std::uint64_t()> source)
{
    std::lock_guard lock(mutex_);
    process_.dropped_events = std::move(source);
}

void metrics_registry::set_approvals_source(std::function<approvals_sample()> source)
{
    std::lock_guard lock(mutex_);
    process_.approvals = std::move(source);
}

void metrics_registry::set_alerts_source(std::function<std::vector<alert_sink_sample>()> source)
{
    std::lock_guard lock(mutex_);
    process_.alerts = std::move(source);
}

std::string metrics_registry::render() const
{
    scrape s{listener_names_, version_, detail::worker_totals(listener_names_.size()), {}, std::nullopt,
             read_process(), std::nullopt, {}};
    {
        std::lock_guard lock(mutex_);
        for (const auto& w : workers_) {
            w.add_to(s.workers);
        }
        s.process = process_;
    }
    // Copied out, then called: the source may take the event log's lock, never while holding ours.
    if (s.process.dropped_events) {
        s.dropped_events = s.process.dropped_events();
    }
    if (s.process.approvals) {
        s.approvals = s.process.approvals();
    }
    if (s.process.alerts) {
        s.alerts = s.process.alerts();
    }
    exposition out;
    for (const auto& f : families) {
        out.family(f.info);
        f.write(s, out);
    }
    return out.take();
}

}  // namespace egressd::proxy::observe
