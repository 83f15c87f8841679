#include "proxy/alerts/engine.hpp"

#include "proxy/alerts/bodies.hpp"
#include "proxy/delivery/webhook_sender.hpp"

#include <algorithm>
#include <deque>
#include <functional>
#include <unordered_map>

namespace egressd::proxy::alerts {

namespace {

using steady = std::chrono::steady_clock;

static_assert(observe::reason_count <= 64, "reason filters are 64-bit sets");
static_assert(observe::event_kind_count <= 8, "verdict filters are 8-bit sets");

constexpr std::uint64_t reason_bit(observe::reason r) { return std::uint64_t{1} << static_cast<unsigned>(r); }
constexpr std::uint8_t kind_bit(observe::event_kind k)
{
    return static_cast<std::uint8_t>(1u << static_cast<unsigned>(k));
}

std::optional<observe::event_kind> parse_verdict(std::string_view name)
{
    using observe::event_kind;
    for (event_kind k : {event_kind::deny, event_kind::would_deny, event_kind::revoke, event_kind::would_revoke,
                         event_kind::error}) {
        if (verdict_name(k) == name) {
            return k;
        }
    }
    return std::nullopt;
}

// "10.0.0.5:40000" -> "10.0.0.5", "[2001:db8::5]:40000" -> "2001:db8::5".
std::string_view address_of(std::string_view source)
{
    if (source.starts_with('[')) {
        auto close = source.find(']');
        return close == std::string_view::npos ? source.substr(1) : source.substr(1, close - 1);
    }
    auto colon = source.rfind(':');
    return colon == std::string_view::npos ? source : source.substr(0, colon);
}

std::string_view kind_name(config::alert_sink_config::sink_kind kind)
{
    switch (kind) {
    case config::alert_sink_config::sink_kind::slack:
        return "slack";
    case config::alert_sink_config::sink_kind::alertmanager:
        return "alertmanager";
    default:
        return "webhook";
    }
}

// Group keys, looked up by view so that folding an observation into its group allocates nothing.
struct key_view {
    std::string_view who;  // the client, or the source address
    std::string_view host;
    std::uint16_t port = 0;
    observe::reason why = observe::reason::allowed;
};

struct group_key {
    std::string who;
    std::string host;
    std::uint16_t port = 0;
    observe::reason why = observe::reason::allowed;

    key_view view() const { return {who, host, port, why}; }
};

struct key_hash {
    using is_transparent = void;
    std::size_t operator()(const key_view& k) const
    {
        std::size_t h = std::hash<std::string_view>{}(k.who);
        h = h * 31 + std::hash<std::string_view>{}(k.host);
        return h * 31 + (static_cast<std::size_t>(k.port) << 8 | static_cast<std::size_t>(k.why));
    }
    std::size_t operator()(const group_key& k) const { return (*this)(k.view()); }
};

struct key_equal {
    using is_transparent = void;
    static key_view view(const key_view& k) { return k; }
    static key_view view(const group_key& k) { return k.view(); }
    template <class A, class B>
    bool operator()(const A& a, const B& b) const
    {
        key_view x = view(a);
        key_view y = view(b);
        return x.port == y.port && x.why == y.why && x.who == y.who && x.host == y.host;
    }
};

struct group {
    observation first;
    bool by_source = false;
    std::chrono::system_clock::time_point last_seen;
    steady::time_point closes;
    std::uint64_t unreported = 0;  // observations no message has covered yet
};

// Observations of new keys while the sink has max_groups open: counted, summarized when the window closes.
struct overflow_group {
    std::uint64_t count = 0;
    std::chrono::system_clock::time_point first_seen, last_seen;
    steady::time_point closes;
};

using group_map = std::unordered_map<group_key, group, key_hash, key_equal>;

}  // namespace

std::string_view to_string(severity s)
{
    switch (s) {
    case severity::low:
        return "low";
    case severity::high:
        return "high";
    default:
        return "medium";
    }
}

std::optional<severity> parse_severity(std::string_view name)
{
    for (severity s : {severity::low, severity::medium, severity::high}) {
        if (to_string(s) == name) {
            return s;
        }
    }
    return std::nullopt;
}

severity default_severity(observe::event_kind kind, observe::reason why)
{
    using observe::reason;
    if (kind == observe::event_kind::revoke || kind == observe::event_kind::would_revoke) {
        return severity::high;
    }
    switch (why) {
    case reason::explicit_deny:
    case reason::address_guard:
    case reason::sni_mismatch:
    case reason::sni_missing:
    case reason::not_tls:
    case reason::proxy_auth_failed:
    case reason::client_cert_rejected:
    case reason::client_identity_invalid:
        return severity::high;
    case reason::no_matching_rule:
    case reason::port_not_allowed:
    case reason::expired:
    case reason::unknown_client:
    case reason::proxy_auth_required:
        return severity::low;
    default:
        return severity::medium;
    }
}

struct engine::message {
    sink* to = nullptr;
    report what;
};

// One configured sink: its filter and severities (immutable), its groups, rate limiter and counters (under the
// engine's mutex), and its sender (its own lock and thread).
struct engine::sink {
    std::string name;
    std::string kind_name;
    config::alert_sink_config::sink_kind kind = config::alert_sink_config::sink_kind::webhook;
    std::uint8_t verdicts = 0;
    std::uint64_t reasons = 0;
    std::vector<std::string> clients;  // empty: every client, and none
    std::array<std::optional<severity>, observe::reason_count> overrides{};
    std::chrono::seconds window{600};
    unsigned per_minute = 0;  // 0: no limit

    group_map groups;
    std::deque<group_map::value_type*> opened;  // in opening order, which is closing order: one window length
    std::optional<overflow_group> overflow;
    double tokens = 0;
    steady::time_point refilled;
    std::uint64_t alerts = 0, summaries = 0, suppressed = 0, rate_limited = 0;

    std::unique_ptr<delivery::webhook_sender> sender;

    bool matches(observe::event_kind k, observe::reason why, std::string_view client) const
    {
        if ((verdicts & kind_bit(k)) == 0 || (reasons & reason_bit(why)) == 0) {
            return false;
        }
        return clients.empty() || std::find(clients.begin(), clients.end(), client) != clients.end();
    }

    severity severity_of(observe::event_kind k, observe::reason why) const
    {
        const auto& chosen = overrides[static_cast<std::size_t>(why)];
        return chosen ? *chosen : default_severity(k, why);
    }

    // Token bucket: per_minute tokens at most, refilled continuously.
    bool take_token(steady::time_point now)
    {
        if (per_minute == 0) {
            return true;
        }
        double elapsed = std::chrono::duration<double>(now - refilled).count();
        refilled = now;
        tokens = std::min(static_cast<double>(per_minute), tokens + elapsed * per_minute / 60.0);
        if (tokens < 1.0) {
            return false;
        }
        tokens -= 1.0;
        return true;
    }
};

engine::engine(std::vector<config::alert_sink_config> sinks, std::vector<std::string> secrets, std::string instance,
               options o)
    : instance_(std::move(instance)), options_(o)
{
    auto now = steady::now();
    for (std::size_t i = 0; i < sinks.size(); ++i) {
        auto& c = sinks[i];
        auto s = std::make_unique<sink>();
        s->kind = c.kind;
        s->kind_name = std::string(kind_name(c.kind));
        s->name = c.name.empty() ? s->kind_name + "-" + std::to_string(i + 1) : c.name;
        for (const auto& v : c.verdicts) {
            if (auto k = parse_verdict(v)) {
                s->verdicts |= kind_bit(*k);
            }
        }
        if (c.reasons.empty()) {
            s->reasons = ~std::uint64_t{0};
        }
        for (const auto& r : c.reasons) {
            if (auto why = observe::parse_reason(r)) {
                s->reasons |= reason_bit(*why);
            }
        }
        s->clients = std::move(c.clients);
        for (const auto& [r, level] : c.severity) {
            auto why = observe::parse_reason(r);
            auto chosen = parse_severity(level);
            if (why && chosen) {
                s->overrides[static_cast<std::size_t>(*why)] = *chosen;
            }
        }
        s->window = std::max(c.dedup, std::chrono::seconds{1});
        s->per_minute = c.max_per_minute;
        s->tokens = c.max_per_minute;
        s->refilled = now;

        delivery::webhook_sender::options so;
        so.queue_limit = c.queue;
        so.first_retry = o.first_retry;
        so.max_retry = o.max_retry;
        so.max_attempts = o.max_attempts;
        so.timeout = o.timeout;
        bool alertmanager = c.kind == config::alert_sink_config::sink_kind::alertmanager;
        std::string url = alertmanager ? alertmanager_url(c.url) : c.url;
        std::string secret = i < secrets.size() ? std::move(secrets[i]) : std::string();
        s->sender = std::make_unique<delivery::webhook_sender>(url, std::move(secret), so);

        for (std::size_t k = 0; k < observe::event_kind_count; ++k) {
            if ((s->verdicts & (1u << k)) == 0) {
                continue;
            }
            any_sink_[k] |= s->reasons;
            if (s->clients.empty()) {
                any_client_[k] |= s->reasons;
            }
        }
        sinks_.push_back(std::move(s));
    }
    ticker_ = std::thread([this] { run_ticker(); });
}

engine::~engine()
{
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    ticker_.join();
    // Each sender cuts its attempt in flight short, so stopping them one after another is prompt.
    sinks_.clear();
}

bool engine::wants(observe::event_kind kind, observe::reason why, std::string_view client) const
{
    auto k = static_cast<std::size_t>(kind);
    std::uint64_t bit = reason_bit(why);
    if ((any_sink_[k] & bit) == 0) {
        return false;
    }
    if ((any_client_[k] & bit) != 0) {
        return true;
    }
    return std::any_of(sinks_.begin(), sinks_.end(), [&](const auto& s) { return s->matches(kind, why, client); });
}

void engine::submit(std::vector<observation> batch)
{
    std::vector<message> out;
    {
        std::lock_guard lock(mutex_);
        auto now = steady::now();
        close_windows(now, out);
        for (const auto& o : batch) {
            for (auto& s : sinks_) {
                if (!s->matches(o.kind, o.reason, o.client)) {
                    continue;
                }
                bool by_source = o.client.empty();
                key_view key{by_source ? address_of(o.source) : std::string_view(o.client), o.host, o.port, o.reason};
                if (auto it = s->groups.find(key); it != s->groups.end()) {
                    ++it->second.unreported;
                    it->second.last_seen = std::max(it->second.last_seen, o.at);
                    ++s->suppressed;
                    continue;
                }
                if (s->groups.size() >= options_.max_groups) {
                    if (!s->overflow) {
                        s->overflow = overflow_group{0, o.at, o.at, now + s->window};
                    }
                    ++s->overflow->count;
                    s->overflow->first_seen = std::min(s->overflow->first_seen, o.at);
                    s->overflow->last_seen = std::max(s->overflow->last_seen, o.at);
                    ++s->suppressed;
                    continue;
                }
                group g{o, by_source, o.at, now + s->window, 0};
                auto [it, inserted] = s->groups.emplace(
                    group_key{std::string(key.who), o.host, o.port, o.reason}, std::move(g));
                s->opened.push_back(&*it);
                if (!s->take_token(now)) {
                    ++s->rate_limited;
                    it->second.unreported = 1;
                    continue;
                }
                ++s->alerts;
                message m;
                m.to = s.get();
                m.what.type = report_type::alert;
                m.what.at = o.at;
                m.what.level = s->severity_of(o.kind, o.reason);
                m.what.first = o;
                if (by_source) {
                    m.what.source_address = std::string(key.who);
                }
                m.what.first_seen = o.at;
                m.what.last_seen = o.at;
                m.what.window = s->window;
                out.push_back(std::move(m));
            }
        }
    }
    deliver(out);
}

void engine::close_windows(steady::time_point now, std::vector<message>& out)
{
    auto wall = std::chrono::system_clock::now();
    for (auto& s : sinks_) {
        while (!s->opened.empty() && s->opened.front()->second.closes <= now) {
            auto& [key, g] = *s->opened.front();
            if (g.unreported > 0) {
                if (s->take_token(now)) {
                    ++s->summaries;
                    message m;
                    m.to = s.get();
                    m.what.type = report_type::summary;
                    m.what.at = wall;
                    m.what.level = s->severity_of(g.first.kind, g.first.reason);
                    m.what.first = std::move(g.first);
                    if (g.by_source) {
                        m.what.source_address = key.who;
                    }
                    m.what.count = g.unreported;
                    m.what.first_seen = m.what.first.at;
                    m.what.last_seen = g.last_seen;
                    m.what.window = s->window;
                    out.push_back(std::move(m));
                } else {
                    ++s->rate_limited;
                }
            }
            s->opened.pop_front();
            s->groups.erase(s->groups.find(key));
        }
        if (s->overflow && s->overflow->closes <= now) {
            if (s->take_token(now)) {
                ++s->summaries;
                message m;
                m.to = s.get();
                m.what.type = report_type::summary;
                m.what.at = wall;
                m.what.level = severity::high;
                m.what.first.at = s->overflow->first_seen;
                m.what.overflow = true;
                m.what.count = s->overflow->count;
                m.what.first_seen = s->overflow->first_seen;
                m.what.last_seen = s->overflow->last_seen;
                m.what.window = s->window;
                out.push_back(std::move(m));
            } else {
                ++s->rate_limited;
            }
            s->overflow.reset();
        }
    }
}

void engine::deliver(std::vector<message>& messages)
{
    for (auto& m : messages) {
        std::string body;
        switch (m.to->kind) {
        case config::alert_sink_config::sink_kind::slack:
            body = slack_body(m.what, instance_);
            break;
        case config::alert_sink_config::sink_kind::alertmanager:
            body = alertmanager_body(m.what, instance_);
            break;
        default:
            body = webhook_body(m.what, instance_);
        }
        m.to->sender->send(m.what.type == report_type::alert ? "alert" : "summary", std::move(body));
    }
}

void engine::run_ticker()
{
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        wake_.wait_for(lock, options_.tick, [this] { return stopping_; });
        if (stopping_) {
            return;
        }
        std::vector<message> out;
        close_windows(steady::now(), out);
        lock.unlock();
        deliver(out);
        lock.lock();
    }
}

void engine::set_secrets(std::vector<std::string> secrets)
{
    for (std::size_t i = 0; i < sinks_.size() && i < secrets.size(); ++i) {
        sinks_[i]->sender->set_secret(std::move(secrets[i]));
    }
}

std::vector<sink_counts> engine::counts() const
{
    std::vector<sink_counts> out;
    std::lock_guard lock(mutex_);
    for (const auto& s : sinks_) {
        auto sent = s->sender->counts();
        sink_counts c;
        c.name = s->name;
        c.kind = s->kind_name;
        c.alerts = s->alerts;
        c.summaries = s->summaries;
        c.delivered = sent.delivered;
        c.failed = sent.failed;
        c.retried = sent.retried;
        c.dropped = sent.dropped;
        c.suppressed = s->suppressed;
        c.rate_limited = s->rate_limited;
        c.queued = sent.queued;
        out.push_back(std::move(c));
    }
    return out;
}

}  // namespace egressd::proxy::alerts
