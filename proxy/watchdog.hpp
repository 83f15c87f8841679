#pragma once

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <memory>

namespace egressd::proxy {

// Enforces a connection's deadlines with a single timer: a fixed deadline for phases (header read, DNS,
// connect, upstream response), or an idle deadline that slides with activity (touch()) under a hard limit
// (tunnel lifetime). When a deadline passes it calls on_expire once, which cancels the connection's
// sockets; the interrupted operation then sees operation_aborted and asks expired() why.
// Touching records a time stamp and never re-arms the timer, so busy tunnels cost no timer work.
// A plain completion handler, not a coroutine: one per connection would cost a co_spawn (its frames, its
// awaitable thread) at every accept and for the whole life of every idle tunnel.
// Thread contract: the owning session's, one thread.
class watchdog {
public:
    using clock = std::chrono::steady_clock;

    // No deadline until one is set.
    explicit watchdog(const boost::asio::any_io_executor& executor) : timer_(executor, clock::time_point::max()) {}

    // Watches until stop(); on_expire is called when a deadline passes. Every pending wait holds owner, which
    // must keep this watchdog alive (the session that contains it).
    void start(std::shared_ptr<void> owner, std::function<void()> on_expire);

    void expire_after(clock::duration d) { arm(clock::now() + d, {}); }
    void idle(clock::duration idle_limit, clock::time_point hard_limit)
    {
        idle_ = idle_limit;
        last_activity_ = clock::now();
        arm(std::min(last_activity_ + idle_, hard_limit), hard_limit);
    }
    void touch() { last_activity_ = clock::now(); }
    void disarm() { arm(clock::time_point::max(), {}); }
    void stop();

    bool expired() const { return expired_; }
    void reset_expired() { expired_ = false; }

private:
    void arm(clock::time_point at, clock::time_point hard_limit);
    void wait(std::shared_ptr<void> owner);
    void on_wake(std::shared_ptr<void> owner);

    boost::asio::steady_timer timer_;
    std::function<void()> on_expire_;
    clock::duration idle_{};
    clock::time_point last_activity_{};
    clock::time_point hard_limit_{};
    bool sliding_ = false;
    bool expired_ = false;
    bool stopped_ = false;
};

}  // namespace egressd::proxy
