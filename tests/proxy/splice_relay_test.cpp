#include "proxy/session/splice_relay.hpp"
#include "proxy/worker.hpp"

#include <gtest/gtest.h>

#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>

namespace egressd::proxy {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;

// Two loopback connections: the relay moves bytes from `in.near` to `out.near`; the test writes into `in.far`
// and reads from `out.far` with blocking calls on its own threads.
struct link {
    tcp::socket near;
    tcp::socket far;
};

link connect_pair(asio::io_context& relay_io, asio::io_context& test_io)
{
    tcp::acceptor acceptor(test_io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    tcp::socket far(test_io);
    far.connect(acceptor.local_endpoint());
    tcp::socket near(relay_io);
    acceptor.accept(near);
    return {std::move(near), std::move(far)};
}

std::string pattern(std::size_t n, std::size_t offset = 0)
{
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) {
        s[i] = static_cast<char>('a' + (i + offset) % 23);
    }
    return s;
}

class counting_observer final : public relay_observer {
public:
    void moved(std::size_t n) override { total += n; }
    bool stopped() const override { return stop; }
    std::uint64_t total = 0;
    bool stop = false;
};

// Reads until EOF or `want` bytes.
std::string read_up_to(tcp::socket& s, std::size_t want)
{
    std::string got;
    char buffer[65536];
    boost::system::error_code ec;
    while (got.size() < want) {
        std::size_t n = s.read_some(asio::buffer(buffer, std::min(sizeof buffer, want - got.size())), ec);
        if (ec) {
            break;
        }
        got.append(buffer, n);
    }
    return got;
}

class splice_relay_test : public ::testing::Test {
protected:
    void start(std::uint64_t limit)
    {
        asio::co_spawn(relay_io_, splice_relay(in_.near, out_.near, limit, pipes_, buffers_, observer_),
                       [this](std::exception_ptr e, relay_result r) {
                           ASSERT_FALSE(e);
                           result_ = r;
                       });
    }
    // Runs the relay's loop until it ended or `most` passed.
    void run_until_done(std::chrono::milliseconds most = 10s)
    {
        auto until = std::chrono::steady_clock::now() + most;
        while (!result_ && std::chrono::steady_clock::now() < until) {
            relay_io_.run_for(10ms);
        }
    }

    asio::io_context relay_io_;
    asio::io_context test_io_;
    link in_ = connect_pair(relay_io_, test_io_);
    link out_ = connect_pair(relay_io_, test_io_);
    pipe_pool pipes_;
    buffer_pool buffers_;
    counting_observer observer_;
    std::optional<relay_result> result_;
};

TEST_F(splice_relay_test, moves_exactly_the_limit_and_leaves_what_follows_in_the_socket)
{
    const std::size_t body = 3 * 1024 * 1024 + 17;
    std::string sent = pattern(body) + "NEXT REQUEST";
    std::thread writer([&] { asio::write(in_.far, asio::buffer(sent)); });
    std::string received;
    std::thread reader([&] { received = read_up_to(out_.far, body + 1); });
    start(body);
    run_until_done();
    // Nothing more comes through: the relay is done, so a short read at the far end ends the reader.
    out_.near.close();
    reader.join();
    writer.join();
    ASSERT_TRUE(result_);
    EXPECT_EQ(result_->end, relay_end::limit);
    EXPECT_EQ(result_->moved, body);
    EXPECT_EQ(observer_.total, body);
    EXPECT_EQ(received, sent.substr(0, body));
    std::string next(12, '\0');
    asio::read(in_.near, asio::buffer(next));
    EXPECT_EQ(next, "NEXT REQUEST");
    EXPECT_EQ(pipes_.idle(), 1U);  // given back empty
}

TEST_F(splice_relay_test, reports_the_end_of_the_source_with_every_byte_moved)
{
    const std::size_t size = 5 * 1024 * 1024 + 3;
    std::string sent = pattern(size, 7);
    std::thread writer([&] {
        asio::write(in_.far, asio::buffer(sent));
        in_.far.shutdown(tcp::socket::shutdown_send);
    });
    std::string received;
    std::thread reader([&] { received = read_up_to(out_.far, size + 1); });
    start(no_limit);
    run_until_done();
    out_.near.shutdown(tcp::socket::shutdown_send);
    reader.join();
    writer.join();
    ASSERT_TRUE(result_);
    EXPECT_EQ(result_->end, relay_end::eof);
    EXPECT_FALSE(result_->ec);
    EXPECT_EQ(result_->moved, size);
    EXPECT_EQ(received.size(), size);
    EXPECT_TRUE(received == sent);
}

TEST_F(splice_relay_test, an_idle_relay_holds_no_pipe_and_a_cancel_ends_it)
{
    asio::write(in_.far, asio::buffer("hello", 5));
    start(no_limit);
    auto until = std::chrono::steady_clock::now() + 5s;
    while (observer_.total < 5 && std::chrono::steady_clock::now() < until) {
        relay_io_.run_for(10ms);
    }
    EXPECT_EQ(read_up_to(out_.far, 5), "hello");
    relay_io_.run_for(50ms);
    EXPECT_FALSE(result_);
    EXPECT_EQ(pipes_.idle(), 1U);  // waiting for bytes, the pipe is back in the pool
    // What connection::cancel_io() does on a revocation, a deadline or shutdown.
    in_.near.cancel();
    out_.near.cancel();
    run_until_done();
    ASSERT_TRUE(result_);
    EXPECT_EQ(result_->end, relay_end::stopped);
    EXPECT_EQ(result_->moved, 5U);
}

TEST_F(splice_relay_test, a_stopped_observer_ends_the_relay_at_its_next_wake_up)
{
    start(no_limit);
    relay_io_.run_for(20ms);
    observer_.stop = true;
    asio::write(in_.far, asio::buffer("x", 1));
    run_until_done();
    ASSERT_TRUE(result_);
    EXPECT_EQ(result_->end, relay_end::stopped);
    EXPECT_EQ(result_->moved, 0U);
}

TEST_F(splice_relay_test, a_reader_that_stops_reading_stops_the_relay_reading)
{
    // The far reader never reads: once its socket buffers and the pipe are full, the relay waits for
    // writability and reads nothing more, so the writer blocks; bytes in flight stay bounded.
    const std::size_t total = 256 * 1024 * 1024;
    std::atomic<std::size_t> written{0};
    std::atomic<bool> writer_stop{false};
    in_.far.non_blocking(true);
    std::thread writer([&] {
        boost::system::error_code ec;
        while (written < total && !writer_stop) {
            std::string block = pattern(64 * 1024, written);
            std::size_t n = in_.far.write_some(asio::buffer(block), ec);
            if (ec == asio::error::would_block) {
                std::this_thread::sleep_for(1ms);
                continue;
            }
            if (ec) {
                break;
            }
            written += n;
        }
    });
    start(no_limit);
    relay_io_.run_for(500ms);
    std::uint64_t moved_then = observer_.total;
    std::size_t written_then = written;
    relay_io_.run_for(300ms);
    EXPECT_FALSE(result_);
    EXPECT_EQ(observer_.total, moved_then);  // stalled on the reader
    EXPECT_LT(written_then, total);
    EXPECT_LT(written_then, std::size_t{64} * 1024 * 1024);  // the kernel buffers and one pipe, not the flood
    EXPECT_EQ(pipes_.idle(), 0U);                           // the relay holds its full pipe
    // The reader starts: every byte arrives, in order.
    writer_stop = true;
    writer.join();
    std::size_t sent = written;
    in_.far.shutdown(tcp::socket::shutdown_send);
    std::string received;
    std::thread reader([&] { received = read_up_to(out_.far, sent); });
    run_until_done();
    reader.join();
    ASSERT_TRUE(result_);
    EXPECT_EQ(result_->end, relay_end::eof);
    EXPECT_EQ(result_->moved, sent);
    ASSERT_EQ(received.size(), sent);
    EXPECT_TRUE(received == pattern(sent));
}

TEST_F(splice_relay_test, a_gone_reader_is_a_write_error_and_the_pipe_with_bytes_is_not_reused)
{
    const std::size_t size = 8 * 1024 * 1024;
    std::string sent = pattern(size);
    in_.far.non_blocking(true);
    boost::system::error_code ec;
    std::size_t n = in_.far.write_some(asio::buffer(sent), ec);
    ASSERT_GT(n, 0U);
    // The reader closes with unread bytes: the kernel answers with a reset, and later writes fail (EPIPE
    // would raise SIGPIPE without the pool's precaution).
    out_.far.set_option(asio::socket_base::linger(true, 0));
    out_.far.close();
    start(no_limit);
    run_until_done();
    ASSERT_TRUE(result_);
    EXPECT_EQ(result_->end, relay_end::write_error);
    EXPECT_TRUE(result_->ec);
    EXPECT_EQ(pipes_.idle(), 0U);
}

TEST_F(splice_relay_test, where_splice_is_refused_it_copies_with_the_same_limit)
{
    pipes_.splice_unsupported();
    const std::size_t body = 1024 * 1024 + 5;
    std::string sent = pattern(body) + "AFTER";
    std::thread writer([&] { asio::write(in_.far, asio::buffer(sent)); });
    std::string received;
    std::thread reader([&] { received = read_up_to(out_.far, body); });
    start(body);
    run_until_done();
    reader.join();
    writer.join();
    ASSERT_TRUE(result_);
    EXPECT_EQ(result_->end, relay_end::limit);
    EXPECT_EQ(result_->moved, body);
    EXPECT_TRUE(received == sent.substr(0, body));
    std::string after(5, '\0');
    asio::read(in_.near, asio::buffer(after));
    EXPECT_EQ(after, "AFTER");
    EXPECT_EQ(pipes_.idle(), 0U);  // no pipe was ever taken
}

// Sets the descriptor limit to the lowest free descriptor, so that no new one can be made, until destroyed.
class no_new_descriptors {
public:
    no_new_descriptors()
    {
        ::getrlimit(RLIMIT_NOFILE, &saved_);
        int lowest_free = ::dup(0);
        ::close(lowest_free);
        rlimit lowered = saved_;
        lowered.rlim_cur = static_cast<rlim_t>(lowest_free);
        ::setrlimit(RLIMIT_NOFILE, &lowered);
    }
    ~no_new_descriptors() { ::setrlimit(RLIMIT_NOFILE, &saved_); }
    no_new_descriptors(const no_new_descriptors&) = delete;
    no_new_descriptors& operator=(const no_new_descriptors&) = delete;

private:
    rlimit saved_{};
};

TEST_F(splice_relay_test, without_a_descriptor_for_a_pipe_it_copies_rather_than_cutting_the_tunnel)
{
    const std::size_t body = 256 * 1024;
    std::string sent = pattern(body);
    std::string received;
    {
        no_new_descriptors exhausted;
        ASSERT_FALSE(pipes_.take());
        std::thread writer([&] {
            boost::system::error_code ignored;
            asio::write(in_.far, asio::buffer(sent), ignored);
        });
        std::thread reader([&] { received = read_up_to(out_.far, body); });
        start(body);
        run_until_done();
        // A relay that gave up leaves both threads blocked: ending the connections frees them.
        boost::system::error_code ignored;
        out_.near.shutdown(tcp::socket::shutdown_both, ignored);
        in_.near.shutdown(tcp::socket::shutdown_both, ignored);
        reader.join();
        writer.join();
    }
    ASSERT_TRUE(result_);
    EXPECT_EQ(result_->end, relay_end::limit);
    EXPECT_EQ(result_->moved, body);
    EXPECT_TRUE(received == sent);
}

TEST_F(splice_relay_test, a_callback_is_never_called_inside_the_initiating_call)
{
    observer_.stop = true;
    async_splice(in_.near, out_.near, no_limit, pipes_, buffers_, observer_, [this](relay_result r) { result_ = r; });
    EXPECT_FALSE(result_);  // even an operation with nothing to do completes from the event loop
    run_until_done();
    ASSERT_TRUE(result_);
    EXPECT_EQ(result_->end, relay_end::stopped);
    EXPECT_EQ(result_->moved, 0U);
}

TEST_F(splice_relay_test, a_callback_operation_on_a_kept_state_moves_every_byte_to_the_eof)
{
    const std::size_t size = 2 * 1024 * 1024 + 11;
    std::string sent = pattern(size, 3);
    std::thread writer([&] {
        asio::write(in_.far, asio::buffer(sent));
        in_.far.shutdown(tcp::socket::shutdown_send);
    });
    std::string received;
    std::thread reader([&] { received = read_up_to(out_.far, size + 1); });
    splice_state state(in_.near, out_.near, no_limit, pipes_, buffers_, observer_);
    int calls = 0;
    async_splice(state, [&](relay_result r) {
        ++calls;
        result_ = r;
        // What a tunnel does at the end of one direction: the reader sees the end too.
        out_.near.shutdown(tcp::socket::shutdown_send);
    });
    run_until_done();
    relay_io_.run_for(20ms);
    reader.join();
    writer.join();
    EXPECT_EQ(calls, 1);
    ASSERT_TRUE(result_);
    EXPECT_EQ(result_->end, relay_end::eof);
    EXPECT_EQ(result_->moved, size);
    EXPECT_EQ(state.result().moved, size);
    EXPECT_EQ(observer_.total, size);
    EXPECT_TRUE(received == sent);
    EXPECT_EQ(pipes_.idle(), 1U);
}

TEST_F(splice_relay_test, a_callback_operation_in_copy_mode_ends_on_a_cancel)
{
    pipes_.splice_unsupported();
    asio::write(in_.far, asio::buffer("abc", 3));
    splice_state state(in_.near, out_.near, no_limit, pipes_, buffers_, observer_);
    async_splice(state, [this](relay_result r) { result_ = r; });
    auto until = std::chrono::steady_clock::now() + 5s;
    while (observer_.total < 3 && std::chrono::steady_clock::now() < until) {
        relay_io_.run_for(10ms);
    }
    EXPECT_EQ(read_up_to(out_.far, 3), "abc");
    EXPECT_FALSE(result_);
    in_.near.cancel();
    run_until_done();
    ASSERT_TRUE(result_);
    EXPECT_EQ(result_->end, relay_end::stopped);
    EXPECT_EQ(result_->moved, 3U);
    EXPECT_EQ(pipes_.idle(), 0U);
}

TEST(pipe_pool_test, keeps_a_bounded_number_of_idle_pipes)
{
    pipe_pool pool;
    std::vector<pipe_fds> held;
    for (std::size_t i = 0; i < pipe_pool::max_idle + 4; ++i) {
        held.push_back(pool.take());
        ASSERT_TRUE(held.back());
        EXPECT_GE(held.back().capacity(), 4096U);
    }
    for (auto& p : held) {
        pool.give(std::move(p));
    }
    EXPECT_EQ(pool.idle(), pipe_pool::max_idle);
}

}  // namespace
}  // namespace egressd::proxy
