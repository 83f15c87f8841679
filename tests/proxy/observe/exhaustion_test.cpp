// The pure parts of resource exhaustion: which errors mean it, the accept loops' back-off schedule, and the gate
// that keeps its warning from flooding the log.

#include "proxy/observe/exhaustion.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <vector>

namespace egressd::proxy::observe {
namespace {

using namespace std::chrono_literals;
using clock = warning_gate::clock;

TEST(exhaustion, errors_that_mean_it)
{
    for (int e : {EMFILE, ENFILE, ENOBUFS, ENOMEM}) {
        EXPECT_TRUE(is_exhaustion(e)) << e;
    }
    for (int e : {0, ECONNREFUSED, ECONNRESET, ETIMEDOUT, EHOSTUNREACH, EACCES, EINVAL, EAGAIN}) {
        EXPECT_FALSE(is_exhaustion(e)) << e;
    }
}

TEST(exhaustion, site_names)
{
    EXPECT_EQ(to_string(exhaustion_site::accept), "accept");
    EXPECT_EQ(to_string(exhaustion_site::dns), "dns");
    EXPECT_EQ(to_string(exhaustion_site::upstream), "upstream");
    EXPECT_EQ(to_string(exhaustion_site::pipe), "pipe");
}

TEST(accept_backoff, doubles_from_50_ms_up_to_1_s)
{
    accept_backoff b;
    std::vector<std::chrono::milliseconds> waits;
    for (int i = 0; i < 8; ++i) {
        waits.push_back(b.next());
    }
    EXPECT_EQ(waits, (std::vector<std::chrono::milliseconds>{50ms, 100ms, 200ms, 400ms, 800ms, 1000ms, 1000ms, 1000ms}));
}

TEST(accept_backoff, a_success_starts_over)
{
    accept_backoff b;
    b.next();
    b.next();
    b.next();
    b.reset();
    EXPECT_EQ(b.next(), 50ms);
    EXPECT_EQ(b.next(), 100ms);
}

TEST(warning_gate, first_occurrence_warns_the_rest_of_the_interval_is_counted)
{
    warning_gate gate(10s);
    const clock::time_point t0{1h};
    EXPECT_EQ(gate.admit(exhaustion_site::dns, t0), 0u);
    EXPECT_FALSE(gate.admit(exhaustion_site::dns, t0 + 1s));
    EXPECT_FALSE(gate.admit(exhaustion_site::dns, t0 + 9s));
    EXPECT_FALSE(gate.admit(exhaustion_site::dns, t0 + 9999ms));
    // The next warning says how many were kept back.
    EXPECT_EQ(gate.admit(exhaustion_site::dns, t0 + 10s), 3u);
    EXPECT_FALSE(gate.admit(exhaustion_site::dns, t0 + 11s));
    EXPECT_EQ(gate.admit(exhaustion_site::dns, t0 + 60s), 1u);
}

TEST(warning_gate, sites_are_gated_apart)
{
    warning_gate gate(10s);
    const clock::time_point t0{1h};
    EXPECT_EQ(gate.admit(exhaustion_site::accept, t0), 0u);
    EXPECT_EQ(gate.admit(exhaustion_site::upstream, t0), 0u);
    EXPECT_FALSE(gate.admit(exhaustion_site::accept, t0 + 1s));
    EXPECT_EQ(gate.admit(exhaustion_site::pipe, t0 + 1s), 0u);
}

TEST(warning_gate, a_steady_clock_near_its_epoch_still_warns_at_once)
{
    warning_gate gate(10s);
    EXPECT_EQ(gate.admit(exhaustion_site::accept, clock::time_point{}), 0u);
}

}  // namespace
}  // namespace egressd::proxy::observe
