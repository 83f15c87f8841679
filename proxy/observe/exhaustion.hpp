#pragma once

// Running out of descriptors or kernel memory: which errors mean it, how an accept loop waits it out, and how
// often it is announced. Header only and std only, so that the admin and approvals servers, which know nothing
// of the proxy, back off by the same schedule.

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>

namespace egressd::proxy::observe {

// What could not be done for want of resources: the `what` of egressd.resource_exhausted and the label of
// egressd_resource_exhaustion_total. Append only.
enum class exhaustion_site : std::uint8_t {
    accept,    // a proxy listener could not accept a connection (it stays in the listen backlog)
    dns,       // the resolver could not open a socket to a name server
    upstream,  // a connect to a vetted upstream address could not get a socket
    pipe,      // a splice relay could not make a pipe
};
inline constexpr std::size_t exhaustion_site_count = 4;

constexpr std::string_view to_string(exhaustion_site s)
{
    constexpr std::array<std::string_view, exhaustion_site_count> names{"accept", "dns", "upstream", "pipe"};
    return names[static_cast<std::size_t>(s)];
}

// EMFILE and ENFILE (the process's or the system's descriptors), ENOBUFS and ENOMEM (kernel memory): errors that
// say nothing about the peer, and that go away when egressd's own load does.
constexpr bool is_exhaustion(int error)
{
    return error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM;
}

// The wait between accept attempts while they fail: 50 ms, doubling up to 1 s; an accepted connection starts it
// over. Retrying at once would spin the thread on a listener whose backlog it cannot drain.
// Thread contract: one accept loop's.
class accept_backoff {
public:
    static constexpr std::chrono::milliseconds first{50};
    static constexpr std::chrono::milliseconds longest{1000};

    // The wait before the next attempt, after one more failure.
    std::chrono::milliseconds next()
    {
        auto wait = delay_;
        delay_ = std::min(delay_ * 2, longest);
        return wait;
    }
    void reset() { delay_ = first; }

private:
    std::chrono::milliseconds delay_ = first;
};

// At most one warning per site and interval, however many workers run out at once; the occurrences in between
// are counted and the next warning says how many there were.
// Thread contract: safe from any thread (lock-free).
class warning_gate {
public:
    using clock = std::chrono::steady_clock;
    static constexpr std::chrono::seconds default_interval{10};

    warning_gate() = default;
    explicit warning_gate(clock::duration interval) : interval_(interval.count()) {}

    // One occurrence at `now`. A value: write the warning now, with that many occurrences suppressed since the
    // last one. Nothing: within the interval, counted.
    std::optional<std::uint64_t> admit(exhaustion_site s, clock::time_point now)
    {
        auto& slot = slots_[static_cast<std::size_t>(s)];
        const std::int64_t at = now.time_since_epoch().count();
        std::int64_t due = slot.due.load(std::memory_order_relaxed);
        if (at >= due && slot.due.compare_exchange_strong(due, at + interval_, std::memory_order_relaxed)) {
            return slot.suppressed.exchange(0, std::memory_order_relaxed);
        }
        slot.suppressed.fetch_add(1, std::memory_order_relaxed);
        return std::nullopt;
    }

private:
    struct alignas(64) slot_state {
        std::atomic<std::int64_t> due{std::numeric_limits<std::int64_t>::min()};
        std::atomic<std::uint64_t> suppressed{0};
    };

    std::int64_t interval_ = clock::duration(default_interval).count();  // in clock ticks, like the time points
    std::array<slot_state, exhaustion_site_count> slots_;
};

}  // namespace egressd::proxy::observe
