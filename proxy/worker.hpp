#pragma once

#include "config/server_config.hpp"
#include "policy/policy.hpp"
#include "proxy/dns/resolver.hpp"
#include "proxy/event_log.hpp"
#include "proxy/observe/exhaustion.hpp"
#include "proxy/observe/metrics.hpp"
#include "proxy/pipe_pool.hpp"
#include "proxy/proxy_auth.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace egressd::proxy {

namespace approvals {
class service;
}
namespace alerts {
class engine;
}

class client_session;

// Caps connections in total and per source address. The only lock a connection takes, once when it is
// accepted and once when it ends; never on the data path.
// Thread contract: safe from any thread.
class connection_limiter {
public:
    connection_limiter(std::size_t total, std::size_t per_source) : total_limit_(total), per_source_limit_(per_source) {}
    // A reload's new limits apply to connections accepted from then on; none is closed for them.
    void set_limits(std::size_t total, std::size_t per_source)
    {
        std::lock_guard lock(mutex_);
        total_limit_ = total;
        per_source_limit_ = per_source;
    }

    // Holds one connection's slot; releases it when destroyed.
    class ticket {
    public:
        ticket(connection_limiter* owner, policy::address source) : owner_(owner), source_(source) {}
        ticket(ticket&& other) noexcept : owner_(std::exchange(other.owner_, nullptr)), source_(other.source_) {}
        ticket& operator=(ticket&&) = delete;
        ~ticket();

    private:
        connection_limiter* owner_;
        policy::address source_;
    };

    std::optional<ticket> acquire(const policy::address& source);
    std::size_t active() const { return total_.load(std::memory_order_relaxed); }

private:
    void release(const policy::address& source);

    std::size_t total_limit_;
    std::size_t per_source_limit_;
    std::atomic<std::size_t> total_{0};
    std::mutex mutex_;
    std::unordered_map<policy::address, std::size_t> per_source_;
};

// The TLS context of one TLS listener, replaced on SIGHUP. A connection takes the context that is current when
// it is accepted and keeps it, so a reload never touches an established connection.
// Thread contract: safe from any thread; one short lock per accepted TLS connection.
class tls_context_slot {
public:
    explicit tls_context_slot(std::shared_ptr<boost::asio::ssl::context> context) : context_(std::move(context)) {}
    std::shared_ptr<boost::asio::ssl::context> current() const
    {
        std::lock_guard lock(mutex_);
        return context_;
    }
    void replace(std::shared_ptr<boost::asio::ssl::context> context)
    {
        std::lock_guard lock(mutex_);
        context_.swap(context);
    }

private:
    mutable std::mutex mutex_;
    std::shared_ptr<boost::asio::ssl::context> context_;
};

// What every worker shares for the process's life: the start-up configuration (its listeners; what may change
// on reload comes through live_state), logging, limits. Immutable after start except the limiter.
struct runtime {
    const config::server_config& config;
    event_log& log;
    connection_limiter limiter;
    std::uint32_t id_prefix;  // random per process, so request ids from restarts do not collide
    boost::asio::thread_pool* slow_work = nullptr;  // password checks
    auth_failures* login_failures = nullptr;
    approvals::service* approvals = nullptr;  // null: denials never become access requests
    alerts::engine* alerts = nullptr;         // null: no alert sinks; set before the workers are made
    observe::warning_gate exhaustion_warnings{};  // egressd.resource_exhausted: one per operation per 10 s, all workers
};

// What a reload replaces: built whole on the control thread, then handed to every worker, which swaps it in on
// its own thread. Immutable; shared by pointer.
struct live_state {
    std::shared_ptr<const config::server_config> config;  // timeouts, limits, proxy_auth settings
    std::shared_ptr<const policy::policy> policy;
    std::uint64_t policy_version = 0;  // monotonic from 1, per process
    std::shared_ptr<const certs::credential_store> credentials;  // null: no proxy authentication
    std::vector<std::shared_ptr<boost::asio::ssl::context>> listener_tls;  // per listener: CAs and CRLs now
};

// Fixed-size buffers reused by tunnels: a tunnel holds one only while bytes are in flight, so an idle tunnel
// costs no buffer memory. Thread contract: its worker's thread only.
class buffer_pool {
public:
    static constexpr std::size_t buffer_size = 64 * 1024;  // 16 KiB moved a third less per CPU-second
    std::unique_ptr<char[]> take();
    void give(std::unique_ptr<char[]> buffer);

private:
    std::vector<std::unique_ptr<char[]>> free_;
};

// One thread, one io_context, its own acceptors (SO_REUSEPORT), resolver, policy snapshot and sessions.
// Nothing on a worker is shared with another worker, so the data path takes no lock.
// Thread contract: constructed and started by the server; everything else runs on the worker's thread,
// reached from outside only through post() (the members documented "from any thread" do that).
class worker {
public:
    worker(unsigned index, runtime& rt, std::shared_ptr<const live_state> live, observe::worker_metrics& metrics);
    ~worker();

    boost::asio::io_context& io() { return io_; }
    // listener: index into rt.config.listeners. tls: the listener's TLS context, null for plain HTTP.
    void add_acceptor(boost::asio::ip::tcp::acceptor acceptor, std::size_t listener, const tls_context_slot* tls);
    void start();
    void join();

    // From any thread: stop accepting, close idle keep-alive connections, let the rest finish.
    void begin_shutdown();
    // From any thread: close every connection now.
    void force_close();
    // From any thread: later connections and requests use this state; then every connection is decided again
    // and those the new policy, CRLs or credentials no longer allow are revoked.
    void apply(std::shared_ptr<const live_state> next);
    // From any thread: later decisions consult these grants; then every connection is decided again, and those
    // that rested on a grant no longer there (revoked) or no longer valid (expired) are closed.
    void apply_grants(std::shared_ptr<const policy::grant_set> next);

    // Worker thread only.
    runtime& rt() { return rt_; }
    const live_state& live() const { return *live_; }
    const config::server_config& config() const { return *live_->config; }
    const std::shared_ptr<const policy::policy>& policy_snapshot() const { return live_->policy; }
    std::uint64_t policy_version() const { return live_->policy_version; }
    const std::shared_ptr<const policy::grant_set>& grants() const { return grants_; }
    dns::resolver& resolver() { return resolver_; }
    // Shared: a password check in flight keeps the authenticator it started with across a reload.
    std::shared_ptr<proxy_authenticator> authenticator() { return authenticator_; }
    event_batch& events() { return events_; }
    observe::worker_metrics& metrics() { return metrics_; }
    buffer_pool& buffers() { return buffers_; }
    pipe_pool& pipes() { return pipes_; }
    std::string next_request_id();
    bool draining() const { return draining_; }
    void register_session(client_session* s)
    {
        sessions_.insert(s);
        live_sessions_.store(sessions_.size(), std::memory_order_relaxed);
    }
    void unregister_session(client_session* s)
    {
        sessions_.erase(s);
        connection_released(*s);
        live_sessions_.store(sessions_.size(), std::memory_order_relaxed);
    }
    // A session has an upstream connection that its authorization allowed (a tunnel after its first bytes
    // were checked, or a forwarded request's upstream): from now on reloads and rule expiry decide it again.
    void connection_established(client_session& s);
    // That upstream is gone (the tunnel ended, the pooled upstream closed).
    void connection_released(client_session& s);
    // An exception escaped one of the sessions' coroutines: a bug, already logged by the session.
    void session_exception() { metrics_.session_exception(); }
    // Something could not be done for want of descriptors or kernel memory (error: the errno): counted, and
    // announced as egressd.resource_exhausted unless another worker or an earlier call just did.
    void resource_exhausted(observe::exhaustion_site what, int error);

    // From any thread: how many connections and tunnels this worker serves.
    std::size_t live_sessions() const { return live_sessions_.load(std::memory_order_relaxed); }
    std::size_t live_tunnels() const { return live_tunnels_.load(std::memory_order_relaxed); }
    // From any thread: after force_close, end the worker's thread.
    void stop();

private:
    struct listening {
        std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor;
        std::size_t listener;
        const tls_context_slot* tls;
    };
    // Why revalidate() runs: a new live_state, a new grant set, or the clock reaching a rule's or grant's expiry.
    enum class recheck_trigger : std::uint8_t { reload, grants, expiry };
    boost::asio::awaitable<void> accept_loop(const listening& where);
    boost::asio::awaitable<void> refuse(boost::asio::ip::tcp::socket socket, std::string source, bool tls);
    void make_authenticator();
    // Arms the timer that hands the event batch to the log writer (event_batch calls it on its first line).
    void schedule_events();
    void revalidate(recheck_trigger trigger, std::uint64_t previous_version);
    void revoke(client_session& s, observe::close_cause cause, std::string_view reason, std::string_view detail,
                const policy::decision* d, std::uint64_t previous_version);
    void arm_expiry(policy::time_point at);
    boost::asio::awaitable<void> watch_expiries();

    unsigned index_;
    runtime& rt_;
    boost::asio::io_context io_{1};
    std::shared_ptr<const live_state> live_;
    std::shared_ptr<const policy::grant_set> grants_ = policy::grant_set::empty();
    std::shared_ptr<const policy::grant_set> previous_grants_;  // the set grants_ replaced, for close causes
    observe::worker_metrics& metrics_;
    dns::resolver resolver_;
    std::shared_ptr<proxy_authenticator> authenticator_;
    // Declared before events_, whose flush at destruction may still reach it.
    std::unique_ptr<event_observer> alert_feed_;  // null without alert sinks
    event_batch events_;
    boost::asio::steady_timer events_due_{io_};  // when events_ goes to the log writer
    buffer_pool buffers_;
    pipe_pool pipes_;
    std::vector<listening> acceptors_;
    std::unordered_set<client_session*> sessions_;
    std::unordered_map<client_session*, bool> established_;  // value: a tunnel (else a forwarded request's upstream)
    std::atomic<std::size_t> live_sessions_{0};
    std::atomic<std::size_t> live_tunnels_{0};
    // One timer for every rule expiry that matters to an established connection: the earliest.
    boost::asio::steady_timer expiry_timer_{io_};
    std::optional<policy::time_point> next_expiry_;
    std::uint64_t request_counter_ = 0;
    bool draining_ = false;
    std::thread thread_;
};

}  // namespace egressd::proxy
