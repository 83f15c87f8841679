#pragma once

#include "config/server_config.hpp"
#include "policy/policy.hpp"
#include "proxy/dns/resolver.hpp"
#include "proxy/event_log.hpp"
#include "proxy/proxy_auth.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
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

class client_session;

// Caps connections in total and per source address. The only lock a connection takes, once when it is
// accepted and once when it ends; never on the data path.
// Thread contract: safe from any thread.
class connection_limiter {
public:
    connection_limiter(std::size_t total, std::size_t per_source) : total_limit_(total), per_source_limit_(per_source) {}

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

// What every worker shares: configuration, logging, limits. Immutable after start except the atomics.
struct runtime {
    const config::server_config& config;
    event_log& log;
    connection_limiter limiter;
    std::uint32_t id_prefix;  // random per process, so request ids from restarts do not collide
    std::shared_ptr<const certs::credential_store> credentials;  // null: no proxy authentication
    boost::asio::thread_pool* slow_work = nullptr;               // password checks
    auth_failures* login_failures = nullptr;
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
// reached from outside only through post().
class worker {
public:
    worker(unsigned index, runtime& rt, std::shared_ptr<const policy::policy> snapshot);
    ~worker();

    boost::asio::io_context& io() { return io_; }
    // tls: the listener's TLS context, null for plain HTTP.
    void add_acceptor(boost::asio::ip::tcp::acceptor acceptor, const config::listener_config& listener,
                      const tls_context_slot* tls);
    void start();
    void join();

    // From any thread: stop accepting, close idle keep-alive connections, let the rest finish.
    void begin_shutdown();
    // From any thread: close every connection now.
    void force_close();
    // From any thread: later connections and requests decide with this snapshot.
    void set_policy(std::shared_ptr<const policy::policy> snapshot);

    // Worker thread only.
    runtime& rt() { return rt_; }
    const std::shared_ptr<const policy::policy>& policy_snapshot() const { return policy_; }
    dns::resolver& resolver() { return resolver_; }
    proxy_authenticator* authenticator() { return authenticator_ ? &*authenticator_ : nullptr; }
    event_batch& events() { return events_; }
    buffer_pool& buffers() { return buffers_; }
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
        live_sessions_.store(sessions_.size(), std::memory_order_relaxed);
    }
    // From any thread: how many connections this worker still serves.
    std::size_t live_sessions() const { return live_sessions_.load(std::memory_order_relaxed); }
    // From any thread: after force_close, end the worker's thread.
    void stop();

private:
    struct listening {
        std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor;
        const config::listener_config* config;
        const tls_context_slot* tls;
    };
    boost::asio::awaitable<void> accept_loop(const listening& where);
    boost::asio::awaitable<void> refuse(boost::asio::ip::tcp::socket socket, std::string source, bool tls);

    unsigned index_;
    runtime& rt_;
    boost::asio::io_context io_{1};
    std::shared_ptr<const policy::policy> policy_;
    dns::resolver resolver_;
    std::optional<proxy_authenticator> authenticator_;
    event_batch events_;
    buffer_pool buffers_;
    std::vector<listening> acceptors_;
    std::unordered_set<client_session*> sessions_;
    std::atomic<std::size_t> live_sessions_{0};
    std::uint64_t request_counter_ = 0;
    bool draining_ = false;
    std::thread thread_;
};

}  // namespace egressd::proxy
