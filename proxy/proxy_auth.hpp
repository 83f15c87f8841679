#pragma once

#include "certs/credentials.hpp"
#include "config/server_config.hpp"
#include "policy/address.hpp"
#include "protocol/http/message.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace egressd::proxy {

namespace http = protocol::http;

// Failed proxy logins per source address, for every worker together (a source's connections land on any
// worker). Only failures take its lock. Thread contract: safe from any thread.
class auth_failures {
public:
    // How long to hold a request from source before checking its credentials: nothing for the first few
    // failures within a minute, then doubling up to 8 s. Checked before the (costly) password check, so a
    // source that keeps failing cannot keep the checking threads busy.
    std::chrono::milliseconds penalty(const policy::address& source);
    void record(const policy::address& source);

private:
    struct failures {
        unsigned count = 0;
        std::chrono::steady_clock::time_point since;
    };
    std::mutex mutex_;
    std::unordered_map<policy::address, failures> by_source_;
};

// Proxy-Authorization: Basic for one worker. A password check is a quarter-second PBKDF2 run, so it happens
// on a shared thread pool, never on the worker's event loop; a successful check is remembered for a few
// minutes under the SHA-256 of the credentials (never the credentials themselves), so a keep-alive client does
// not pay it per request. Failures from one source address are answered more and more slowly.
// Thread contract: its worker's thread; the pool and the store are shared read-only.
class proxy_authenticator {
public:
    proxy_authenticator(const config::proxy_auth_config& config, std::shared_ptr<const certs::credential_store> store,
                        boost::asio::thread_pool& pool, auth_failures& failures)
        : config_(config), store_(std::move(store)), pool_(pool), failures_(failures)
    {
    }

    enum class outcome : std::uint8_t { none, verified, failed };
    struct result {
        outcome state = outcome::none;
        std::string user;  // verified: who; failed: the user name tried, if the header named one (attacker-chosen)
    };

    // Reads Proxy-Authorization from the request head: none when absent, failed when malformed or wrong.
    boost::asio::awaitable<result> check(const std::vector<http::header>& headers);
    auth_failures& failures() { return failures_; }
    const config::proxy_auth_config& settings() const { return config_; }

private:
    struct cached {
        std::string user;
        std::chrono::steady_clock::time_point until;
    };
    config::proxy_auth_config config_;  // a copy: a reload may free the configuration it came from
    std::shared_ptr<const certs::credential_store> store_;
    boost::asio::thread_pool& pool_;
    std::unordered_map<std::string, cached> verified_;  // key: SHA-256 of user NUL password
    auth_failures& failures_;
};

}  // namespace egressd::proxy
