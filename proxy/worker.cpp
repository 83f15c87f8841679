#include "proxy/worker.hpp"

#include "certs/tls.hpp"
#include "policy/connection.hpp"
#include "proxy/alerts/engine.hpp"
#include "proxy/session/session.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <sys/resource.h>

#include <system_error>

namespace egressd::proxy {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

connection_limiter::ticket::~ticket()
{
    if (owner_ != nullptr) {
        owner_->release(source_);
    }
}

std::optional<connection_limiter::ticket> connection_limiter::acquire(const policy::address& source)
{
    std::lock_guard lock(mutex_);
    if (total_.load(std::memory_order_relaxed) >= total_limit_) {
        return std::nullopt;
    }
    auto& count = per_source_[source];
    if (count >= per_source_limit_) {
        if (count == 0) {
            per_source_.erase(source);
        }
        return std::nullopt;
    }
    ++count;
    total_.fetch_add(1, std::memory_order_relaxed);
    return ticket(this, source);
}

void connection_limiter::release(const policy::address& source)
{
    std::lock_guard lock(mutex_);
    total_.fetch_sub(1, std::memory_order_relaxed);
    auto it = per_source_.find(source);
    if (it != per_source_.end() && --it->second == 0) {
        per_source_.erase(it);
    }
}

std::unique_ptr<char[]> buffer_pool::take()
{
    if (free_.empty()) {
        return std::make_unique<char[]>(buffer_size);
    }
    auto b = std::move(free_.back());
    free_.pop_back();
    return b;
}

void buffer_pool::give(std::unique_ptr<char[]> buffer)
{
    // A few spares cover the tunnels moving bytes at one instant; more would only pin memory.
    if (free_.size() < 64) {
        free_.push_back(std::move(buffer));
    }
}

namespace {

dns::resolver_config resolver_settings(const config::dns_config& c)
{
    dns::resolver_config r;
    r.servers = c.servers;
    r.timeout = c.timeout;
    r.tries = c.tries;
    r.min_ttl = c.min_ttl;
    r.max_ttl = c.max_ttl;
    r.negative_ttl = c.negative_ttl;
    r.cache_entries = c.cache_entries;
    return r;
}

// Hands the alert engine the decisions and revocations it wants, a batch at a time: the worker's event batch
// flushes every few milliseconds, and each flush is one engine.submit (one lock) for all of them. wants() is
// lock-free, so an event no sink filters for costs a few loads.
// Thread contract: its worker's thread only.
class alert_feed final : public event_observer {
public:
    explicit alert_feed(alerts::engine& engine) : engine_(engine) {}

    void decision(const decision_event& e) override
    {
        if (!engine_.wants(e.event, e.reason, e.client)) {
            return;
        }
        auto& o = add(e.event, e.reason, e.client, e.source, e.host, e.port);
        o.address = e.address;
        o.identity = e.identity;
        o.rule_group = e.rule_group;
        o.rule_index = e.rule_index;
        o.request_id = e.request_id;
        o.detail = e.detail;
        o.mode = e.mode;
        o.sni = e.sni;
    }

    void revoke(const revoke_event& e) override
    {
        // Revocation reasons are written from the same table (policy or proxy reason names).
        auto why = observe::parse_reason(e.reason);
        if (!why || !engine_.wants(e.kind, *why, e.client)) {
            return;
        }
        auto& o = add(e.kind, *why, e.client, e.source, e.host, e.port);
        o.address = e.address;
        o.identity = e.identity;
        o.rule_group = e.rule_group;
        o.rule_index = e.rule_index;
        o.request_id = e.request_id;
        o.detail = e.detail;
        o.sni = e.sni;
    }

    void flush() override
    {
        if (pending_.empty()) {
            return;
        }
        engine_.submit(std::exchange(pending_, {}));
    }

private:
    alerts::observation& add(observe::event_kind kind, observe::reason why, std::string_view client,
                             std::string_view source, std::string_view host, std::uint16_t port)
    {
        auto& o = pending_.emplace_back();
        o.at = std::chrono::system_clock::now();
        o.kind = kind;
        o.reason = why;
        o.client = client;
        o.source = source;
        o.host = host;
        o.port = port;
        return o;
    }

    alerts::engine& engine_;
    std::vector<alerts::observation> pending_;
};

}  // namespace

worker::worker(unsigned index, runtime& rt, std::shared_ptr<const live_state> live, observe::worker_metrics& metrics)
    : index_(index),
      rt_(rt),
      live_(std::move(live)),
      metrics_(metrics),
      resolver_(io_, resolver_settings(rt.config.dns)),
      alert_feed_(rt.alerts != nullptr ? std::make_unique<alert_feed>(*rt.alerts) : nullptr),
      events_(rt.log, [this] { schedule_events(); })
{
    events_.set_observer(alert_feed_.get());
    make_authenticator();
    metrics_.use_policy(live_->policy);
    resolver_.on_exhausted([this](int error) { resource_exhausted(observe::exhaustion_site::dns, error); });
    pipes_.on_exhausted([this](int error) { resource_exhausted(observe::exhaustion_site::pipe, error); });
}

void worker::resource_exhausted(observe::exhaustion_site what, int error)
{
    metrics_.resource_exhausted(what);
    auto suppressed = rt_.exhaustion_warnings.admit(what, std::chrono::steady_clock::now());
    if (!suppressed) {
        return;
    }
    rlimit files{};
    ::getrlimit(RLIMIT_NOFILE, &files);
    // The limit is what an operator raises (LimitNOFILE=, ulimit -n) when the error is EMFILE.
    rt_.log.notice("egressd.resource_exhausted",
                   {{"operation", observe::to_string(what)},
                    {"error", std::generic_category().message(error)},
                    {"errno", error},
                    {"open_files_limit", static_cast<std::uint64_t>(files.rlim_cur)},
                    {"worker", index_},
                    {"suppressed", *suppressed}},
                   true);
}

// A new authenticator (and with it an empty cache of verified passwords) for every credentials file read:
// a password changed in the file must not keep working from the cache.
void worker::make_authenticator()
{
    authenticator_.reset();
    if (live_->credentials && live_->config->proxy_auth) {
        authenticator_ = std::make_shared<proxy_authenticator>(*live_->config->proxy_auth, live_->credentials,
                                                               *rt_.slow_work, *rt_.login_failures);
    }
}

worker::~worker()
{
    join();
    events_.flush();  // the thread is gone: whatever it left is written from here
}

// A few milliseconds of events go to the log writer together: one wake-up of its thread per batch rather
// than per connection, which on a busy worker was most of its futex calls (sinks are flushed only every
// 200 ms anyway). stop() and the destructor flush what is left.
void worker::schedule_events()
{
    constexpr auto batch_window = std::chrono::milliseconds(2);
    events_due_.expires_after(batch_window);
    events_due_.async_wait([this](const boost::system::error_code&) { events_.flush(); });
}

void worker::add_acceptor(tcp::acceptor acceptor, std::size_t listener, const tls_context_slot* tls)
{
    acceptors_.push_back({std::make_unique<tcp::acceptor>(std::move(acceptor)), listener, tls});
}

void worker::start()
{
    for (const auto& where : acceptors_) {
        asio::co_spawn(io_, accept_loop(where), asio::detached);
    }
    expiry_timer_.expires_at(std::chrono::steady_clock::time_point::max());
    asio::co_spawn(io_, watch_expiries(), asio::detached);
    // The resolver's timers come and go; the guard keeps the worker alive between connections.
    thread_ = std::thread([this] {
        auto guard = asio::make_work_guard(io_);
        io_.run();
    });
}

void worker::stop()
{
    asio::post(io_, [this] {
        resolver_.shutdown();
        events_.flush();
        io_.stop();
    });
}

void worker::join()
{
    if (thread_.joinable()) {
        thread_.join();
    }
}

void worker::begin_shutdown()
{
    asio::post(io_, [this] {
        draining_ = true;
        for (auto& entry : acceptors_) {
            boost::system::error_code ignored;
            entry.acceptor->close(ignored);
        }
        // Copy: closing may unregister sessions while we iterate.
        std::vector<client_session*> idle;
        for (auto* s : sessions_) {
            if (s->idle_between_requests()) {
                idle.push_back(s);
            }
        }
        for (auto* s : idle) {
            s->close(observe::close_cause::shutdown);
        }
    });
}

void worker::force_close()
{
    asio::post(io_, [this] {
        std::vector<client_session*> all(sessions_.begin(), sessions_.end());
        for (auto* s : all) {
            s->close(observe::close_cause::shutdown);
        }
    });
}

void worker::apply(std::shared_ptr<const live_state> next)
{
    asio::post(io_, [this, next = std::move(next)]() mutable {
        auto previous = live_->policy_version;
        bool credentials_changed = next->credentials != live_->credentials || next->config->proxy_auth.has_value() !=
                                                                                  live_->config->proxy_auth.has_value();
        live_ = std::move(next);
        if (credentials_changed || live_->config->proxy_auth) {
            make_authenticator();
        }
        metrics_.use_policy(live_->policy);
        revalidate(recheck_trigger::reload, previous);
    });
}

void worker::apply_grants(std::shared_ptr<const policy::grant_set> next)
{
    asio::post(io_, [this, next = std::move(next)]() mutable {
        previous_grants_ = std::exchange(grants_, std::move(next));
        revalidate(recheck_trigger::grants, live_->policy_version);
    });
}

void worker::connection_established(client_session& s)
{
    const auto* auth = s.established();
    if (established_.emplace(&s, auth->tunnel()).second && auth->tunnel()) {
        live_tunnels_.store(live_tunnels_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
    // A connection allowed by a snapshot older than the one now in force is decided again at once: the reload
    // that replaced it ran before this connection was established, so it could not see it.
    if (auth->snapshot != live_->policy) {
        asio::post(io_, [this] { revalidate(recheck_trigger::reload, live_->policy_version); });
        return;
    }
    if (auth->grants != grants_) {
        asio::post(io_, [this] { revalidate(recheck_trigger::grants, live_->policy_version); });
        return;
    }
    auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
    if (auto expires = policy::expiry_of(*auth->snapshot, auth->facts(), now, auth->grants.get())) {
        arm_expiry(*expires);
    }
}

void worker::connection_released(client_session& s)
{
    auto it = established_.find(&s);
    if (it == established_.end()) {
        return;
    }
    if (it->second) {
        live_tunnels_.store(live_tunnels_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
    }
    established_.erase(it);
}

void worker::arm_expiry(policy::time_point at)
{
    if (next_expiry_ && *next_expiry_ <= at) {
        return;
    }
    next_expiry_ = at;
    // The rule stops matching at `at` itself (expires is exclusive), on the wall clock the policy speaks; the
    // timer runs on the steady clock, so a wall-clock step can only make it fire early, and an early firing
    // finds the rule still valid and re-arms. Re-arming cancels the wait in watch_expiries, which waits again.
    auto delay = at - std::chrono::system_clock::now();
    expiry_timer_.expires_after(std::max(delay, std::chrono::system_clock::duration::zero()));
}

asio::awaitable<void> worker::watch_expiries()
{
    for (;;) {
        auto [ec] = co_await expiry_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
        if (ec == asio::error::operation_aborted) {
            continue;  // re-armed for an earlier expiry
        }
        next_expiry_.reset();
        expiry_timer_.expires_at(std::chrono::steady_clock::time_point::max());
        revalidate(recheck_trigger::expiry, live_->policy_version);
    }
}

// Decides every connection again with the facts it was allowed on: the client certificate against the CAs
// and CRLs now in force, the proxy-auth user against the credentials now in force, and the established
// upstream connection against the policy now in force and the clock.
void worker::revalidate(recheck_trigger trigger, std::uint64_t previous_version)
{
    auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
    const auto& p = *live_->policy;
    std::optional<policy::time_point> earliest;
    // Copy: revoking closes sessions, which unregister themselves.
    std::vector<client_session*> all(sessions_.begin(), sessions_.end());
    for (auto* s : all) {
        if (!sessions_.contains(s)) {
            continue;
        }
        if (trigger == recheck_trigger::reload) {
            if (auto* ssl = s->tls_handle(); ssl != nullptr && s->identity_from() == observe::identity_source::mtls) {
                const auto& context = live_->listener_tls[s->listener_index()];
                if (context) {
                    if (auto why = certs::verify_peer_again(ssl, *context); !why.empty()) {
                        revoke(*s, observe::close_cause::certificate_revoked, "client_cert_rejected", why, nullptr,
                               previous_version);
                        continue;
                    }
                }
            }
            if (s->identity_from() == observe::identity_source::proxy_auth && s->identity() &&
                (!live_->credentials || !live_->config->proxy_auth || !live_->credentials->has_user(*s->identity()))) {
                revoke(*s, observe::close_cause::credentials_revoked, "proxy_auth_failed",
                       "the user is no longer in the credentials file", nullptr, previous_version);
                continue;
            }
        }
        const auto* auth = s->established();
        if (auth == nullptr || !established_.contains(s)) {
            continue;
        }
        auto facts = auth->facts();
        auto d = policy::decide_established(p, facts, now, grants_.get());
        if (d.allowed()) {
            if (auto expires = policy::expiry_of(p, facts, now, grants_.get());
                expires && (!earliest || *expires < *earliest)) {
                earliest = expires;
            }
            continue;
        }
        auto cause = d.why == policy::reason::expired ? observe::close_cause::rule_expired
                                                      : observe::close_cause::policy_revoked;
        if (const auto& granted = auth->decision.grant) {
            // It rested on a grant: gone from the set before its expiry means an approver revoked it. A grant
            // still there and valid leaves the policy's cause (the client left the group the grant names, say).
            const auto* still = grants_->find(granted->id);
            if (still == nullptr) {
                // Its expiry as last published (an extension moves it), else as when the connection was allowed.
                const auto* before = previous_grants_ ? previous_grants_->find(granted->id) : nullptr;
                auto expires = before != nullptr ? before->expires : granted->expires;
                cause = expires <= now ? observe::close_cause::grant_expired : observe::close_cause::grant_revoked;
            } else if (still->expires <= now) {
                cause = observe::close_cause::grant_expired;
            }
        }
        revoke(*s, cause, policy::to_string(d.why), {}, &d, previous_version);
    }
    if (earliest) {
        arm_expiry(*earliest);
    }
}

void worker::revoke(client_session& s, observe::close_cause cause, std::string_view reason, std::string_view detail,
                    const policy::decision* d, std::uint64_t previous_version)
{
    // Report mode (the client's or the policy's) and on_revoke: keep log what would be closed, and close nothing.
    bool report = d != nullptr && d->outcome == policy::verdict::would_deny;
    bool keep = live_->policy->on_revoke() == policy::revoke_action::keep;
    auto action = report ? observe::revoke_outcome::would_close
                  : keep ? observe::revoke_outcome::kept
                         : observe::revoke_outcome::closed;
    revoke_event e;
    e.kind = action == observe::revoke_outcome::closed ? observe::event_kind::revoke : observe::event_kind::would_revoke;
    e.request_id = s.request_id();
    e.source = s.source_text();
    e.method = "-";
    e.host = "-";
    e.cause = cause;
    e.reason = reason;
    e.detail = detail;
    e.action = action;
    e.policy_version = live_->policy_version;
    e.previous_version = previous_version;
    if (const auto* auth = s.established()) {
        e.client = auth->client_name;
        e.method = auth->tunnel() ? "CONNECT" : "-";
        e.host = auth->target.to_string();
        e.port = auth->port;
        if (auth->connected) {
            e.address = auth->connected->to_string();
        }
        if (auth->client_hello && auth->client_hello->sni) {
            e.sni = *auth->client_hello->sni;
        }
        if (auth->decision.grant) {
            e.grant_id = auth->decision.grant->id;
        }
    }
    if (s.identity()) {
        e.identity = *s.identity();
        e.identity_source = s.identity_from();
    }
    if (d != nullptr && d->rule) {
        auto view = live_->policy->describe(*d->rule);
        e.rule_group = view.group;
        e.rule_index = view.index;
        e.rule_description = view.description;
    }
    events_.revoke(e);
    metrics_.revocation(cause, action);
    if (action != observe::revoke_outcome::closed) {
        return;
    }
    const auto* auth = s.established();
    if (auth != nullptr && !auth->tunnel() && cause != observe::close_cause::certificate_revoked &&
        cause != observe::close_cause::credentials_revoked) {
        // A keep-alive client connection is decided again at its next request anyway: only its pooled upstream,
        // which the new policy no longer allows, goes.
        s.drop_pooled_upstream();
        return;
    }
    s.close(cause);
}

std::string worker::next_request_id()
{
    // 8 hex digits of the process prefix, 2 of the worker, 6 of the counter (snprintf cost more than the
    // rest of the id's life).
    static constexpr char hex[] = "0123456789abcdef";
    std::string id(16, '0');
    auto put = [&](std::size_t at, std::size_t digits, std::uint64_t value) {
        for (std::size_t i = 0; i < digits; ++i) {
            id[at + digits - 1 - i] = hex[value & 0xfu];
            value >>= 4;
        }
    };
    put(0, 8, rt_.id_prefix);
    put(8, 2, index_ & 0xffu);
    put(10, 6, ++request_counter_ & 0xffffffu);
    return id;
}

asio::awaitable<void> worker::accept_loop(const listening& where)
{
    auto& acceptor = *where.acceptor;
    observe::accept_backoff backoff;
    asio::steady_timer pause(io_);
    for (;;) {
        // The peer's address as accept(2) gives it: getpeername fails on a connection reset in the backlog, which
        // must still be served and logged like any other.
        tcp::endpoint remote;
        auto [ec, socket] = co_await acceptor.async_accept(remote, asio::as_tuple(asio::use_awaitable));
        if (ec) {
            if (ec == asio::error::operation_aborted || !acceptor.is_open()) {
                co_return;
            }
            if (ec.category() == boost::system::system_category() && observe::is_exhaustion(ec.value())) {
                resource_exhausted(observe::exhaustion_site::accept, ec.value());
            }
            // The connection stays in the backlog and would fail again at once: wait, longer each time, for
            // descriptors to come free instead of spinning.
            pause.expires_after(backoff.next());
            co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
            continue;
        }
        backoff.reset();
        auto source = remote.address().is_v4() ? policy::address::from_v4(remote.address().to_v4().to_uint())
                                                : policy::address::from_v6(remote.address().to_v6().to_bytes());
        std::string source_text = source.to_string(remote.port());
        auto ticket = rt_.limiter.acquire(source);
        if (!ticket) {
            metrics_.connection_limit_refused();
            asio::co_spawn(io_, refuse(std::move(socket), std::move(source_text), where.tls != nullptr), asio::detached);
            continue;
        }
        boost::system::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        auto session = std::make_shared<client_session>(*this, std::move(socket), source, std::move(source_text),
                                                        std::move(*ticket), rt_.config.listeners[where.listener], where.listener,
                                                        where.tls ? where.tls->current() : nullptr);
        session->start();
    }
}

asio::awaitable<void> worker::refuse(tcp::socket socket, std::string source, bool tls)
{
    static constexpr std::string_view response =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 37\r\nConnection: close\r\n\r\n"
        "egressd: too many connections (503)\r\n";
    // A client that does not read gets a second, then the socket closes anyway.
    // A TLS client could not read a plain-text answer, and a handshake would cost what the limit protects.
    if (!tls) {
        asio::steady_timer limit(io_, std::chrono::seconds(1));
        co_await (asio::async_write(socket, asio::buffer(response), asio::as_tuple(asio::use_awaitable)) ||
                  limit.async_wait(asio::as_tuple(asio::use_awaitable)));
    }
    boost::system::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
    close_event e;
    e.request_id = "-";
    e.source = source;
    e.method = "-";
    e.host = "-";
    e.cause = observe::close_cause::over_limit;
    events_.close(e);
}

}  // namespace egressd::proxy
