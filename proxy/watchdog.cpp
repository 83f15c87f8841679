#include "proxy/watchdog.hpp"

namespace egressd::proxy {

void watchdog::arm(clock::time_point at, clock::time_point hard_limit)
{
    expired_ = false;  // expired() speaks of the deadline in force
    sliding_ = hard_limit != clock::time_point{};
    hard_limit_ = hard_limit;
    timer_.expires_at(at);  // cancels the pending wait; on_wake() waits for the new time
}

void watchdog::stop()
{
    stopped_ = true;
    timer_.cancel();
}

void watchdog::start(std::shared_ptr<void> owner, std::function<void()> on_expire)
{
    on_expire_ = std::move(on_expire);
    wait(std::move(owner));
}

void watchdog::wait(std::shared_ptr<void> owner)
{
    // Re-arming (expires_at) completes this wait with operation_aborted; on_wake then waits for the new time.
    timer_.async_wait([this, owner = std::move(owner)](const boost::system::error_code&) mutable {
        on_wake(std::move(owner));
    });
}

void watchdog::on_wake(std::shared_ptr<void> owner)
{
    if (stopped_) {
        return;
    }
    auto now = clock::now();
    if (timer_.expiry() > now) {
        wait(std::move(owner));  // re-armed while waiting
        return;
    }
    if (sliding_) {
        auto next = std::min(last_activity_ + idle_, hard_limit_);
        if (next > now) {
            timer_.expires_at(next);
            wait(std::move(owner));
            return;
        }
    }
    expired_ = true;
    timer_.expires_at(clock::time_point::max());
    wait(std::move(owner));
    on_expire_();
}

}  // namespace egressd::proxy
