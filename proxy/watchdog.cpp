#include "proxy/watchdog.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace egressd::proxy {

void watchdog::arm(clock::time_point at, clock::time_point hard_limit)
{
    expired_ = false;  // expired() speaks of the deadline in force
    sliding_ = hard_limit != clock::time_point{};
    hard_limit_ = hard_limit;
    timer_.expires_at(at);  // cancels the pending wait; run() loops and waits for the new time
}

void watchdog::stop()
{
    stopped_ = true;
    timer_.cancel();
}

boost::asio::awaitable<void> watchdog::run(std::function<void()> on_expire)
{
    namespace asio = boost::asio;
    while (!stopped_) {
        co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
        if (stopped_) {
            break;
        }
        auto now = clock::now();
        if (timer_.expiry() > now) {
            continue;  // re-armed while waiting
        }
        if (sliding_) {
            auto next = std::min(last_activity_ + idle_, hard_limit_);
            if (next > now) {
                timer_.expires_at(next);
                continue;
            }
        }
        expired_ = true;
        timer_.expires_at(clock::time_point::max());
        on_expire();
    }
}

}  // namespace egressd::proxy
