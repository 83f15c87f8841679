#pragma once

#include "policy/address.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::proxy::dns {

struct resolver_config {
    // "ip:port" or "ip" (port 53); IPv6 as "[::1]:53". Empty: the name servers of /etc/resolv.conf.
    std::vector<std::string> servers;
    std::chrono::milliseconds timeout{2000};  // per try, per server
    int tries = 2;
    std::chrono::seconds min_ttl{5};      // answers are cached at least this long...
    std::chrono::seconds max_ttl{300};    // ...and at most this long
    std::chrono::seconds negative_ttl{30};  // NXDOMAIN / no-address answers
    std::size_t cache_entries = 10'000;   // least recently used entries go first
};

enum class dns_status : std::uint8_t {
    ok,
    nxdomain,      // the name does not exist
    no_addresses,  // the name exists but has no A or AAAA record
    servfail,      // the server failed or refused
    timeout,       // no answer within the tries
    error,         // anything else: malformed answer, c-ares failure, shut down
    resource_exhausted,  // no socket could be opened to ask: out of descriptors or kernel memory (not DNS's fault)
};
std::string_view to_string(dns_status s);

struct answer {
    dns_status status = dns_status::error;
    std::vector<policy::address> addresses;  // in the order the server gave them; IPv4 and IPv6 mixed
    std::chrono::seconds ttl{0};             // what the cache keeps it for (after clamping)
    bool from_cache = false;
};

// Asynchronous A+AAAA resolution through c-ares, driven by the io_context it is built on
// (sockets watched with Asio, timeouts from ares_timeout), with a TTL-honouring cache.
//
// Names are always resolved as absolute names (a trailing dot is added; no search domains, no /etc/hosts),
// so "internal" never becomes "internal.corp.example" behind the policy's back. Callers must never pass an
// IP literal: c-ares reads numeric forms differently from the proxy's strict parser.
//
// Thread contract: one resolver per io_context (worker); every call on that io_context's thread.
// c-ares channels are not thread-safe, and this keeps the cache lock-free.
class resolver {
public:
    // Throws std::runtime_error at start-up if c-ares cannot be initialised or a server is invalid.
    resolver(boost::asio::io_context& io, resolver_config config);
    ~resolver();
    resolver(const resolver&) = delete;
    resolver& operator=(const resolver&) = delete;

    // name: a normalized DNS name (lower case, no trailing dot), as policy::host holds it.
    boost::asio::awaitable<answer> resolve(std::string name);

    // Fails every pending query with dns_status::error and releases c-ares' sockets. Idempotent.
    void shutdown();

    std::size_t cache_size() const;

    // Called with errno each time a socket to a name server cannot be opened for want of descriptors or kernel
    // memory (EMFILE, ENFILE, ENOBUFS, ENOMEM), on the io_context's thread, from inside c-ares: it must not throw
    // or call the resolver. A query that failed after such an error answers dns_status::resource_exhausted.
    void on_exhausted(std::function<void(int error)> handler);

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace egressd::proxy::dns
