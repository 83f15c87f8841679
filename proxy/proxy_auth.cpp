#include "proxy/proxy_auth.hpp"

#include "certs/digest.hpp"

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace egressd::proxy {
namespace {

constexpr auto cache_lifetime = std::chrono::minutes(5);
constexpr std::size_t cache_limit = 10'000;
constexpr auto failure_window = std::chrono::minutes(1);
constexpr unsigned free_failures = 3;
constexpr auto max_failure_delay = std::chrono::seconds(8);

}  // namespace

boost::asio::awaitable<proxy_authenticator::result> proxy_authenticator::check(const std::vector<http::header>& headers)
{
    const std::string* value = http::find_header(headers, "proxy-authorization");
    if (value == nullptr) {
        co_return result{};
    }
    auto credentials = certs::parse_basic_authorization(*value);
    if (!credentials) {
        co_return result{outcome::failed, {}};
    }
    // Named references, not a structured binding: clang 14 (the fuzz and sanitizer builds) cannot capture those.
    const std::string& user = credentials->first;
    const std::string& password = credentials->second;
    std::string secret = user;
    secret.push_back('\0');
    secret += password;
    auto digest = certs::sha256(secret);
    std::string key(reinterpret_cast<const char*>(digest.data()), digest.size());
    auto now = std::chrono::steady_clock::now();
    if (auto it = verified_.find(key); it != verified_.end() && it->second.until > now) {
        co_return result{outcome::verified, it->second.user};
    }
    // A plain callback on the pool, its result posted back to this worker. (A capturing coroutine lambda given to
    // co_spawn is what GCC 12 miscompiles: its captures were destroyed twice.)
    bool ok = co_await boost::asio::async_initiate<const boost::asio::use_awaitable_t<>, void(bool)>(
        [this, &user, &password](auto handler) {
            boost::asio::post(pool_, [store = store_, user, password, handler = std::move(handler)]() mutable {
                bool verified = store->verify(user, password);
                auto back = boost::asio::get_associated_executor(handler);
                boost::asio::post(back, [handler = std::move(handler), verified]() mutable { std::move(handler)(verified); });
            });
        },
        boost::asio::use_awaitable);
    if (!ok) {
        co_return result{outcome::failed, user};
    }
    if (verified_.size() >= cache_limit) {
        verified_.clear();  // a flood of distinct good credentials: start over rather than grow
    }
    verified_[key] = cached{user, now + cache_lifetime};
    co_return result{outcome::verified, user};
}

std::chrono::milliseconds auth_failures::penalty(const policy::address& source)
{
    std::lock_guard lock(mutex_);
    auto it = by_source_.find(source);
    if (it == by_source_.end() || std::chrono::steady_clock::now() - it->second.since > failure_window ||
        it->second.count < free_failures) {
        return std::chrono::milliseconds(0);
    }
    auto delay = std::chrono::milliseconds(250) * (1u << std::min(it->second.count - free_failures + 1, 6u));
    return std::min<std::chrono::milliseconds>(delay, max_failure_delay);
}

void auth_failures::record(const policy::address& source)
{
    std::lock_guard lock(mutex_);
    auto now = std::chrono::steady_clock::now();
    if (by_source_.size() >= cache_limit) {
        std::erase_if(by_source_, [&](const auto& entry) { return now - entry.second.since > failure_window; });
    }
    auto& f = by_source_[source];
    if (now - f.since > failure_window) {
        f = failures{0, now};
    }
    ++f.count;
}

}  // namespace egressd::proxy
