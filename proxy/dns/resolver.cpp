#include "proxy/dns/resolver.hpp"

#include "protocol/host_port.hpp"
#include "proxy/observe/exhaustion.hpp"

#include <ares.h>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <limits>
#include <list>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <unordered_map>
#include <utility>

namespace egressd::proxy::dns {

namespace asio = boost::asio;

namespace {

using clock = std::chrono::steady_clock;

std::once_flag library_once;

void init_library()
{
    // ares_library_init is not thread-safe; resolvers on several workers may be built at once.
    std::call_once(library_once, [] {
        if (const int rc = ares_library_init(ARES_LIB_INIT_ALL); rc != ARES_SUCCESS) {
            throw std::runtime_error(std::string("c-ares: library initialisation failed: ") + ares_strerror(rc));
        }
    });
}

struct server_address {
    policy::address address;
    std::uint16_t port = 53;
};

[[noreturn]] void bad_server(std::string_view text, std::string_view why)
{
    throw std::runtime_error("dns server \"" + std::string(text) + "\": " + std::string(why));
}

// "1.2.3.4", "1.2.3.4:53", "[2001:db8::1]:53", "[2001:db8::1]" or a bare "2001:db8::1", read by the one
// parser the configuration checks them with, so that a configuration `config check` accepts starts.
server_address parse_server(std::string_view text)
{
    auto parsed = protocol::parse_ip_port(text);
    if (!parsed) {
        bad_server(text, "expected an IP address with an optional port from 1 to 65535: 192.0.2.53, 192.0.2.53:53, "
                         "[2001:db8::53]:53");
    }
    server_address out;
    out.address = parsed->address;
    if (parsed->port) {
        out.port = *parsed->port;
    }
    return out;
}

std::chrono::seconds clamp_ttl(std::chrono::seconds ttl, const resolver_config& config)
{
    return std::min(std::max(ttl, config.min_ttl), config.max_ttl);
}

answer failed(dns_status status)
{
    answer a;
    a.status = status;
    return a;
}

answer negative(dns_status status, const resolver_config& config)
{
    answer a;
    a.status = status;
    a.ttl = config.negative_ttl;
    return a;
}

answer make_answer(int status, const ares_addrinfo* result, const resolver_config& config)
{
    switch (status) {
    case ARES_SUCCESS:
        break;
    case ARES_ENOTFOUND:
        return negative(dns_status::nxdomain, config);
    case ARES_ENODATA:
        return negative(dns_status::no_addresses, config);
    case ARES_ESERVFAIL:
    case ARES_EREFUSED:
    // c-ares 1.18 retries a SERVFAIL or REFUSED answer on the next server and, when every try got one,
    // reports ECONNREFUSED ("could not contact DNS servers"), as it does for an ICMP port unreachable.
    case ARES_ECONNREFUSED:
        return failed(dns_status::servfail);
    case ARES_ETIMEOUT:
        return failed(dns_status::timeout);
    default:
        return failed(dns_status::error);
    }

    answer a;
    std::optional<int> min_ttl;
    for (const auto* node = result != nullptr ? result->nodes : nullptr; node != nullptr; node = node->ai_next) {
        std::optional<policy::address> addr;
        if (node->ai_family == AF_INET && node->ai_addr != nullptr &&
            node->ai_addrlen >= static_cast<ares_socklen_t>(sizeof(sockaddr_in))) {
            sockaddr_in sin{};
            std::memcpy(&sin, node->ai_addr, sizeof sin);
            addr = policy::address::from_v4(ntohl(sin.sin_addr.s_addr));
        } else if (node->ai_family == AF_INET6 && node->ai_addr != nullptr &&
                   node->ai_addrlen >= static_cast<ares_socklen_t>(sizeof(sockaddr_in6))) {
            sockaddr_in6 sin6{};
            std::memcpy(&sin6, node->ai_addr, sizeof sin6);
            std::array<std::uint8_t, 16> bytes{};
            std::memcpy(bytes.data(), &sin6.sin6_addr, bytes.size());
            addr = policy::address::from_v6(bytes);
        }
        if (!addr) {
            continue;
        }
        min_ttl = std::min(min_ttl.value_or(node->ai_ttl), node->ai_ttl);
        // Address lists are short; a linear scan keeps the server's order without a second container.
        if (std::find(a.addresses.begin(), a.addresses.end(), *addr) == a.addresses.end()) {
            a.addresses.push_back(*addr);
        }
    }
    if (a.addresses.empty()) {
        return negative(dns_status::no_addresses, config);
    }
    a.status = dns_status::ok;
    a.ttl = clamp_ttl(std::chrono::seconds(std::max(0, min_ttl.value_or(0))), config);
    return a;
}

// Names the caller should never have passed; answering them from DNS would hide the caller's bug.
bool acceptable_name(std::string_view name)
{
    if (name.empty() || name.size() > 253 || name.back() == '.' || name.front() == '.') {
        return false;
    }
    // IP literals are the caller's to handle: c-ares would read "0177.0.0.1" differently from the policy.
    return !policy::address::parse(name).has_value();
}

}  // namespace

std::string_view to_string(dns_status s)
{
    switch (s) {
    case dns_status::ok:
        return "ok";
    case dns_status::nxdomain:
        return "nxdomain";
    case dns_status::no_addresses:
        return "no_addresses";
    case dns_status::servfail:
        return "servfail";
    case dns_status::timeout:
        return "timeout";
    case dns_status::error:
        return "error";
    case dns_status::resource_exhausted:
        return "resource_exhausted";
    }
    return "error";
}

// Everything runs on the io_context's single thread (see the class comment), so nothing here locks.
//
// Re-entrancy: c-ares calls on_sock_state and on_addrinfo from inside ares_getaddrinfo, ares_process_fd,
// ares_cancel and ares_destroy. Those callbacks only edit our tables, start Asio waits and post completions;
// they never call back into c-ares and never run a caller's handler in place.
//
// Lifetime: asynchronous handlers hold a weak_ptr to alive_ and do nothing once the resolver is gone.
// The io_context must outlive the resolver (its destructor posts the failed waiters' completions).
struct resolver::impl {
    struct waiter {
        std::uint64_t id = 0;
        asio::any_completion_handler<void(answer)> handler;
        asio::cancellation_slot slot;
    };

    // One in-flight c-ares query and everyone waiting for it (coalescing).
    struct pending_query {
        std::vector<waiter> waiters;
    };

    // The c-ares callback argument of one query.
    struct query_context {
        impl* self;
        std::string name;
        std::uint64_t exhausted_before;  // exhausted_sockets_ when the query started
    };

    // A socket c-ares asked us to watch. c-ares owns the descriptor: we only ever release() it.
    struct fd_watch {
        fd_watch(asio::io_context& io, ares_socket_t socket) : descriptor(io), fd(socket) {}

        void stop()
        {
            active = false;
            boost::system::error_code ec;
            descriptor.cancel(ec);
            (void)descriptor.release();
        }

        asio::posix::stream_descriptor descriptor;
        ares_socket_t fd;
        bool want_read = false;
        bool want_write = false;
        bool read_armed = false;
        bool write_armed = false;
        bool active = true;  // false once c-ares stops watching: late handlers must leave the fd alone
    };

    struct cache_entry {
        std::string name;
        answer value;
        clock::time_point expires;
    };

    // Emplaced into a waiter's cancellation slot: a cancelled caller stops waiting, the query goes on
    // (its answer still fills the cache for the next caller).
    struct cancel_waiter {
        // A constructor, not an aggregate: the slot's emplace constructs with parentheses, which clang 14
        // does not accept for aggregates.
        cancel_waiter(impl* owner, std::weak_ptr<int> alive, std::string query, std::uint64_t waiter)
            : self(owner), token(std::move(alive)), name(std::move(query)), id(waiter)
        {
        }

        impl* self;
        std::weak_ptr<int> token;
        std::string name;
        std::uint64_t id;

        void operator()(asio::cancellation_type type) const
        {
            if (token.expired() || type == asio::cancellation_type::none) {
                return;
            }
            self->cancel(name, id);
        }
    };

    impl(asio::io_context& io, resolver_config config) : io_(io), config_(std::move(config)), timer_(io)
    {
        init_library();
        std::vector<server_address> servers;
        servers.reserve(config_.servers.size());
        for (const auto& text : config_.servers) {
            servers.push_back(parse_server(text));
        }
        if (config_.tries < 1) {
            throw std::runtime_error("dns: tries must be at least 1");
        }
        if (config_.timeout.count() < 1 || config_.timeout.count() > std::numeric_limits<int>::max()) {
            throw std::runtime_error("dns: the timeout must be positive");
        }

        ares_options options{};
        int mask = 0;
        options.sock_state_cb = &impl::on_sock_state;
        options.sock_state_cb_data = this;
        mask |= ARES_OPT_SOCK_STATE_CB;
        options.timeout = static_cast<int>(config_.timeout.count());
        mask |= ARES_OPT_TIMEOUTMS;
        options.tries = config_.tries;
        mask |= ARES_OPT_TRIES;
        // DNS only: /etc/hosts is not the policy's view of the world.
        static char dns_only[] = "b";
        options.lookups = dns_only;
        mask |= ARES_OPT_LOOKUPS;
        // No search list at all. ares_getaddrinfo in 1.18 ignores NOSEARCH; the absolute names we send are
        // what actually stops the expansion, these settings are belt and braces.
        options.domains = nullptr;
        options.ndomains = 0;
        mask |= ARES_OPT_DOMAINS;
        options.ndots = 1;
        mask |= ARES_OPT_NDOTS;
        // c-ares 1.18 sends every query to a server over one UDP socket; a burst of lookups (a page opening
        // dozens of hosts through the proxy) must not overflow its receive buffer and turn into retries.
        // The kernel caps this at net.core.rmem_max.
        options.socket_receive_buffer_size = 1 << 20;
        mask |= ARES_OPT_SOCK_RCVBUF;
        // NOALIASES: HOSTALIASES from the environment must not rename hosts behind the policy's back.
        // No STAYOPEN: sockets close when idle, so each burst of queries gets a fresh random source port.
        options.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
        mask |= ARES_OPT_FLAGS;

        if (const int rc = ares_init_options(&channel_, &options, mask); rc != ARES_SUCCESS) {
            channel_ = nullptr;
            throw std::runtime_error(std::string("c-ares: cannot create a channel: ") + ares_strerror(rc));
        }
        // c-ares 1.18 reports a socket() that failed with EMFILE as ECONNREFUSED, like a server that refused;
        // opening the sockets ourselves is the only way to tell the two apart.
        ares_set_socket_functions(channel_, &socket_functions, this);
        if (!servers.empty()) {
            std::vector<ares_addr_port_node> nodes(servers.size());
            for (std::size_t i = 0; i < servers.size(); ++i) {
                auto& node = nodes[i];
                node.next = i + 1 < nodes.size() ? &nodes[i + 1] : nullptr;
                const auto& bytes = servers[i].address.bytes();
                if (servers[i].address.is_v4()) {
                    node.family = AF_INET;
                    std::memcpy(&node.addr.addr4, bytes.data(), 4);
                } else {
                    node.family = AF_INET6;
                    std::memcpy(&node.addr.addr6, bytes.data(), 16);
                }
                node.udp_port = servers[i].port;
                node.tcp_port = servers[i].port;
            }
            if (const int rc = ares_set_servers_ports(channel_, nodes.data()); rc != ARES_SUCCESS) {
                ares_destroy(channel_);
                channel_ = nullptr;
                throw std::runtime_error(std::string("c-ares: cannot set the dns servers: ") + ares_strerror(rc));
            }
        }
    }

    ~impl()
    {
        shutdown();
        alive_.reset();
    }

    impl(const impl&) = delete;
    impl& operator=(const impl&) = delete;

    // ----- queries -----

    // Answers that need no query: after shutdown, for names we refuse, and from the cache.
    std::optional<answer> immediate(const std::string& name)
    {
        if (channel_ == nullptr || !acceptable_name(name)) {
            return failed(dns_status::error);
        }
        return lookup(name);
    }

    void start(std::string name, asio::any_completion_handler<void(answer)> handler)
    {
        waiter w{next_waiter_++, std::move(handler), {}};
        w.slot = asio::get_associated_cancellation_slot(w.handler);
        if (channel_ == nullptr) {
            complete(w, failed(dns_status::error));
            return;
        }
        if (w.slot.is_connected()) {
            w.slot.emplace<cancel_waiter>(this, std::weak_ptr<int>(alive_), name, w.id);
        }
        if (const auto it = pending_.find(name); it != pending_.end()) {
            it->second.waiters.push_back(std::move(w));
            return;
        }
        pending_[name].waiters.push_back(std::move(w));

        // The trailing dot makes the name absolute: c-ares 1.18 would otherwise try the search list.
        const std::string absolute = name + ".";
        auto context = std::make_unique<query_context>(query_context{this, std::move(name), exhausted_sockets_});
        ares_addrinfo_hints hints{};
        hints.ai_family = AF_UNSPEC;
        // Keep the server's order; c-ares' RFC 6724 sort would also connect() a probe socket per address.
        hints.ai_flags = ARES_AI_NOSORT;
        // c-ares owns the context from here and hands it back to on_addrinfo exactly once (possibly
        // before ares_getaddrinfo returns), so nothing below may touch pending_ entries.
        ares_getaddrinfo(channel_, absolute.c_str(), nullptr, &hints, &impl::on_addrinfo, context.release());
        update_timer();
    }

    static void on_addrinfo(void* arg, int status, int /*timeouts*/, ares_addrinfo* result)
    {
        std::unique_ptr<query_context> context(static_cast<query_context*>(arg));
        // No exception may cross c-ares' C frames.
        try {
            answer a = make_answer(status, result, context->self->config_);
            if ((a.status == dns_status::servfail || a.status == dns_status::error) &&
                context->self->exhausted_sockets_ != context->exhausted_before) {
                // No server was asked, or not every one: the failure is egressd's, not DNS's.
                a = failed(dns_status::resource_exhausted);
            }
            if (result != nullptr) {
                ares_freeaddrinfo(result);
                result = nullptr;
            }
            context->self->finish(context->name, std::move(a));
        } catch (...) {
            if (result != nullptr) {
                ares_freeaddrinfo(result);
            }
            context->self->finish_noexcept(context->name);
        }
    }

    void finish(const std::string& name, answer a)
    {
        if (shut_down_) {
            // Shutdown fails everything pending, even a half-answered query (A in, AAAA cancelled).
            a = failed(dns_status::error);
        } else {
            store(name, a);
        }
        const auto it = pending_.find(name);
        if (it == pending_.end()) {
            return;
        }
        auto waiters = std::move(it->second.waiters);
        pending_.erase(it);
        for (auto& w : waiters) {
            complete(w, a);
        }
    }

    void finish_noexcept(const std::string& name) noexcept
    {
        try {
            finish(name, failed(dns_status::error));
        } catch (...) {
            // Out of memory while failing a query: the waiters stay pending until shutdown.
        }
    }

    // Runs inside the waiter's cancellation slot, so it must not clear that slot.
    void cancel(const std::string& name, std::uint64_t id)
    {
        const auto it = pending_.find(name);
        if (it == pending_.end()) {
            return;
        }
        auto& waiters = it->second.waiters;
        const auto found = std::find_if(waiters.begin(), waiters.end(), [&](const waiter& w) { return w.id == id; });
        if (found == waiters.end()) {
            return;
        }
        auto handler = std::move(found->handler);
        waiters.erase(found);
        asio::post(io_.get_executor(), asio::append(std::move(handler), failed(dns_status::error)));
    }

    // Never run a caller's handler inside a c-ares frame: post it, onto its own executor.
    void complete(waiter& w, answer a)
    {
        if (w.slot.is_connected()) {
            w.slot.clear();
        }
        asio::post(io_.get_executor(), asio::append(std::move(w.handler), std::move(a)));
    }

    void shutdown()
    {
        if (shut_down_) {
            return;
        }
        shut_down_ = true;
        if (channel_ != nullptr) {
            // Cancel first: every query ends through the ordinary callback path with ARES_ECANCELLED.
            // ares_destroy with queries still pending relies on c-ares' EDESTRUCTION path, which has been
            // fragile for ares_getaddrinfo's paired A/AAAA queries.
            ares_cancel(channel_);
            ares_destroy(channel_);  // closes the sockets; on_sock_state releases our descriptors
            channel_ = nullptr;
        }
        for (auto& [fd, w] : watches_) {
            w->stop();
        }
        watches_.clear();
        timer_.cancel();
        // Nothing should be left; if c-ares lost a callback, fail its waiters rather than hang them.
        auto left = std::move(pending_);
        pending_.clear();
        for (auto& [name, query] : left) {
            for (auto& w : query.waiters) {
                complete(w, failed(dns_status::error));
            }
        }
    }

    static asio::awaitable<answer> run(std::weak_ptr<int> token, impl* self, std::string name)
    {
        if (token.expired()) {
            co_return failed(dns_status::error);
        }
        if (auto a = self->immediate(name)) {
            co_return std::move(*a);
        }
        // Nothing runs between the check above and the initiation below, so self is still alive there.
        co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(answer)>(
            [self](auto handler, std::string n) {
                self->start(std::move(n), asio::any_completion_handler<void(answer)>(std::move(handler)));
            },
            asio::use_awaitable, std::move(name));
    }

    // ----- cache -----

    std::optional<answer> lookup(const std::string& name)
    {
        const auto it = index_.find(name);
        if (it == index_.end()) {
            return std::nullopt;
        }
        const auto entry = it->second;
        const auto now = clock::now();
        if (now >= entry->expires) {
            index_.erase(it);
            lru_.erase(entry);
            return std::nullopt;
        }
        lru_.splice(lru_.begin(), lru_, entry);
        answer a = entry->value;
        a.from_cache = true;
        // What the cache still keeps it for, rounded up so a live entry never says zero.
        a.ttl = std::chrono::ceil<std::chrono::seconds>(entry->expires - now);
        return a;
    }

    void store(const std::string& name, const answer& a)
    {
        const bool cacheable =
            a.status == dns_status::ok || a.status == dns_status::nxdomain || a.status == dns_status::no_addresses;
        if (!cacheable || config_.cache_entries == 0 || a.ttl <= std::chrono::seconds::zero()) {
            return;
        }
        const auto expires = clock::now() + a.ttl;
        if (const auto it = index_.find(name); it != index_.end()) {
            it->second->value = a;
            it->second->expires = expires;
            lru_.splice(lru_.begin(), lru_, it->second);
            return;
        }
        lru_.push_front(cache_entry{name, a, expires});
        index_.emplace(lru_.front().name, lru_.begin());
        while (lru_.size() > config_.cache_entries) {
            index_.erase(lru_.back().name);
            lru_.pop_back();
        }
    }

    // ----- the sockets c-ares opens: the plain system calls, with socket()'s failures seen -----

    static ares_socket_t open_socket(int family, int type, int protocol, void* data)
    {
        // c-ares leaves the options of sockets it did not open alone: non-blocking (a TCP connect to a slow
        // server must not stall the worker) and close-on-exec are set here.
        const ares_socket_t fd = ::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
        if (fd == ARES_SOCKET_BAD) {
            const int error = errno;
            static_cast<impl*>(data)->socket_failed(error);
            errno = error;
        }
        return fd;
    }

    static int close_socket(ares_socket_t fd, void*) { return ::close(fd); }

    static int connect_socket(ares_socket_t fd, const sockaddr* address, ares_socklen_t length, void*)
    {
        return ::connect(fd, address, length);
    }

    static ares_ssize_t receive_from(ares_socket_t fd, void* buffer, std::size_t length, int flags, sockaddr* from,
                                     ares_socklen_t* from_length, void*)
    {
        return ::recvfrom(fd, buffer, length, flags, from, from_length);
    }

    static ares_ssize_t send_vector(ares_socket_t fd, const iovec* parts, int count, void*)
    {
        return ::writev(fd, parts, count);
    }

    // c-ares 1.18 calls each of these whenever any is set, so all five are given.
    static constexpr ares_socket_functions socket_functions{&open_socket, &close_socket, &connect_socket,
                                                            &receive_from, &send_vector};

    void socket_failed(int error) noexcept
    {
        if (!observe::is_exhaustion(error)) {
            return;
        }
        ++exhausted_sockets_;
        if (!on_exhausted_) {
            return;
        }
        // No exception may cross c-ares' C frames.
        try {
            on_exhausted_(error);
        } catch (...) {
        }
    }

    // ----- driving c-ares from Asio -----

    static void on_sock_state(void* data, ares_socket_t fd, int readable, int writable)
    {
        // No exception may cross c-ares' C frames. If watching fails, the query still ends by its timeout.
        try {
            static_cast<impl*>(data)->watch(fd, readable != 0, writable != 0);
        } catch (...) {
        }
    }

    void watch(ares_socket_t fd, bool readable, bool writable)
    {
        auto it = watches_.find(fd);
        if (!readable && !writable) {
            // c-ares is about to close the fd: give it back before that, so epoll forgets it first.
            if (it != watches_.end()) {
                it->second->stop();
                watches_.erase(it);
            }
            return;
        }
        if (it == watches_.end()) {
            auto w = std::make_shared<fd_watch>(io_, fd);
            boost::system::error_code ec;
            w->descriptor.assign(fd, ec);
            if (ec) {
                return;
            }
            it = watches_.emplace(fd, std::move(w)).first;
        }
        const auto w = it->second;
        w->want_read = readable;
        w->want_write = writable;
        arm(w);
        // A wait only completes on a new readiness edge; a socket that is already writable (or readable)
        // would never report it. Look once, from a posted handler so that c-ares is not re-entered.
        asio::post(io_, [this, token = std::weak_ptr<int>(alive_), w] {
            if (!token.expired()) {
                drive(w);
            }
        });
    }

    auto ready_handler(const std::shared_ptr<fd_watch>& w, bool read)
    {
        return [this, token = std::weak_ptr<int>(alive_), w, read](const boost::system::error_code& ec) {
            if (token.expired()) {
                return;
            }
            (read ? w->read_armed : w->write_armed) = false;
            if (!w->active || ec == asio::error::operation_aborted) {
                return;
            }
            if (ec) {
                // The reactor cannot watch this fd; re-arming would spin. Let c-ares see the socket's
                // state once and leave the rest to its timeouts.
                process((read && w->want_read) ? w->fd : ARES_SOCKET_BAD,
                        (!read && w->want_write) ? w->fd : ARES_SOCKET_BAD);
                return;
            }
            drive(w);
        };
    }

    void arm(const std::shared_ptr<fd_watch>& w)
    {
        if (!w->active) {
            return;
        }
        if (w->want_read && !w->read_armed) {
            w->read_armed = true;
            w->descriptor.async_wait(asio::posix::stream_descriptor::wait_read, ready_handler(w, true));
        }
        if (w->want_write && !w->write_armed) {
            w->write_armed = true;
            w->descriptor.async_wait(asio::posix::stream_descriptor::wait_write, ready_handler(w, false));
        }
    }

    // Asio's epoll waits are edge-triggered and never speculative, while c-ares wants level-triggered
    // readiness: one ares_process_fd may leave data behind (a TCP answer is read a length prefix first).
    // So arm the waits before processing (any later edge is seen), then poll(2) and process while the
    // socket is ready for what c-ares wants.
    void drive(const std::shared_ptr<fd_watch>& w)
    {
        constexpr int max_rounds = 16;
        for (int round = 0; round < max_rounds; ++round) {
            if (!w->active || channel_ == nullptr) {
                return;
            }
            arm(w);
            pollfd p{};
            p.fd = w->fd;
            p.events = static_cast<short>((w->want_read ? POLLIN : 0) | (w->want_write ? POLLOUT : 0));
            if (::poll(&p, 1, 0) <= 0) {
                return;
            }
            const bool error = (p.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0;
            const bool readable = w->want_read && (error || (p.revents & POLLIN) != 0);
            const bool writable = w->want_write && (error || (p.revents & POLLOUT) != 0);
            if (!readable && !writable) {
                return;
            }
            process(readable ? w->fd : ARES_SOCKET_BAD, writable ? w->fd : ARES_SOCKET_BAD);
        }
        // Still busy: let other work run, then carry on.
        asio::post(io_, [this, token = std::weak_ptr<int>(alive_), w] {
            if (!token.expired()) {
                drive(w);
            }
        });
    }

    void process(ares_socket_t read_fd, ares_socket_t write_fd)
    {
        if (channel_ == nullptr) {
            return;
        }
        ares_process_fd(channel_, read_fd, write_fd);
        update_timer();
    }

    // One timer for the whole channel, at c-ares' next deadline (retries, the next server, timeouts).
    void update_timer()
    {
        timeval tv{};
        if (channel_ == nullptr || ares_timeout(channel_, nullptr, &tv) == nullptr) {
            timer_.cancel();
            return;
        }
        timer_.expires_after(std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec));
        timer_.async_wait([this, token = std::weak_ptr<int>(alive_)](const boost::system::error_code& ec) {
            if (token.expired() || ec == asio::error::operation_aborted) {
                return;
            }
            process(ARES_SOCKET_BAD, ARES_SOCKET_BAD);
        });
    }

    asio::io_context& io_;
    resolver_config config_;
    ares_channel channel_ = nullptr;
    asio::steady_timer timer_;
    bool shut_down_ = false;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);

    std::unordered_map<ares_socket_t, std::shared_ptr<fd_watch>> watches_;
    std::unordered_map<std::string, pending_query> pending_;
    std::uint64_t next_waiter_ = 0;
    std::uint64_t exhausted_sockets_ = 0;  // socket() calls that failed for want of resources, ever
    std::function<void(int)> on_exhausted_;

    // Most recently used at the front; the index's keys view the names stored in the list nodes.
    std::list<cache_entry> lru_;
    std::unordered_map<std::string_view, std::list<cache_entry>::iterator> index_;
};

resolver::resolver(boost::asio::io_context& io, resolver_config config)
    : impl_(std::make_unique<impl>(io, std::move(config)))
{
}

resolver::~resolver() = default;

boost::asio::awaitable<answer> resolver::resolve(std::string name)
{
    // Not a coroutine itself: the token is taken now, so a resolve started after (or outliving) the
    // resolver fails cleanly instead of touching it.
    return impl::run(impl_->alive_, impl_.get(), std::move(name));
}

void resolver::shutdown() { impl_->shutdown(); }

std::size_t resolver::cache_size() const { return impl_->lru_.size(); }

void resolver::on_exhausted(std::function<void(int error)> handler) { impl_->on_exhausted_ = std::move(handler); }

}  // namespace egressd::proxy::dns
