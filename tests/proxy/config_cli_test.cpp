// `egressd config check` and the start-up half of `egressd run`, in process: run_cli with string streams, on
// the shipped example configuration and on configurations written to a temporary directory. No test here
// serves traffic: `run` is only driven into start-up failures (the end-to-end tests start a real proxy).

#include "tests/proxy/cli_support.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <initializer_list>
#include <ostream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace egressd::proxy {
namespace {

using namespace std::chrono_literals;
using test::contains;
using test::run;
using test::show;
using test_support::temp_dir;

// Joins lines with '\n' (and ends with one): line N of the document is the Nth string.
std::string lines(std::initializer_list<std::string_view> text)
{
    std::string out;
    for (auto l : text) {
        out += l;
        out += '\n';
    }
    return out;
}

const std::string example_config = std::string(EGRESSD_SOURCE_DIR) + "/config/examples/egressd.yaml";

// `run` serves until SIGTERM if start-up unexpectedly succeeds; fail the suite then rather than hang it. A
// deadlock guard with a generous bound, not a timing assertion.
test::cli_result run_bounded(const std::vector<std::string>& args)
{
    auto result = std::async(std::launch::async, [args] { return run(args); });
    if (result.wait_for(120s) != std::future_status::ready) {
        std::fprintf(stderr, "FATAL: egressd %s did not return: it must fail at start-up here, not serve\n",
                     args.empty() ? "" : args[0].c_str());
        std::fflush(stderr);
        std::_Exit(1);
    }
    return result.get();
}

// A server configuration in dir, with the policy next to it (the example policy unless given).
struct config_files {
    temp_dir dir;
    std::string config_path;
    std::string policy_path;

    explicit config_files(const std::string& config_text,
                          const std::string& policy_text = test::read_text(test::example_path))
    {
        config_path = dir.write("egressd.yaml", config_text).string();
        policy_path = dir.write("policy.yaml", policy_text).string();
    }
};

// No output on stdout from the event log, one worker (start-up fails before any serves), and the listeners given.
std::string run_config(const std::string& listeners, const std::string& logging_extra = "")
{
    return "version: 1\n"
           "policy: policy.yaml\n"
           "listeners: " + listeners + "\n"
           "workers: 1\n"
           "logging:\n"
           "  stdout: false\n" + logging_extra;
}

// --- config check --------------------------------------------------------------------------------------------

TEST(cli_config_check, example_is_valid)
{
    auto r = run({"config", "check", example_config});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    // Listeners and the policy, resolved next to the configuration, with its size (the counts are left to the
    // policy tests, so that editing the example policy does not break this one).
    EXPECT_TRUE(r.out.starts_with(example_config + ": valid (2 listener(s), policy " + std::string(EGRESSD_SOURCE_DIR) +
                                  "/config/examples/policy.yaml: "))
        << show(r);
    EXPECT_TRUE(contains(r.out, " clients, ")) << show(r);
    EXPECT_TRUE(contains(r.out, " rules, 0 warning(s))\n")) << show(r);
    EXPECT_EQ(test::count_containing(r.out, ""), 1u) << show(r);
    EXPECT_TRUE(r.err.empty()) << show(r);
}

TEST(cli_config_check, copy_in_another_directory_uses_the_policy_next_to_it)
{
    config_files files(test::read_text(example_config));
    auto r = run({"config", "check", files.config_path});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    EXPECT_TRUE(contains(r.out, "policy " + files.policy_path + ":")) << show(r);
}

TEST(cli_config_check, broken_config_lists_every_error_with_its_position)
{
    config_files files(lines({
        "version: 2",  // 1:10
        "policy: policy.yaml",
        "listeners: [127.0.0.1, '[::1]:3128']",  // 3:13
        "timeouts:",
        "  header: 10",  // 5:11
        "colour: true",  // 6:1
    }));
    auto r = run({"config", "check", files.config_path});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_EQ(r.out, files.config_path + ": invalid\n") << show(r);
    const auto& p = files.config_path;
    EXPECT_TRUE(contains(r.err, p + ":1:10: error: unsupported configuration version 2")) << show(r);
    EXPECT_TRUE(contains(r.err, p + ":3:13: error: invalid listener '127.0.0.1'")) << show(r);
    EXPECT_TRUE(contains(r.err, p + ":5:11: error: invalid duration '10' for header")) << show(r);
    EXPECT_TRUE(contains(r.err, p + ":6:1: error: unknown key 'colour' in the configuration")) << show(r);
    EXPECT_EQ(test::count_containing(r.err, ": error: "), 4u) << show(r);
    // The policy is not read while the configuration is wrong: its path might be one of the mistakes.
    EXPECT_FALSE(contains(r.err, files.policy_path)) << show(r);
}

TEST(cli_config_check, broken_policy_prints_the_policy_errors)
{
    auto broken = test::break_example();
    config_files files(lines({"version: 1", "policy: policy.yaml"}), broken.text);
    auto r = run({"config", "check", files.config_path});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_EQ(r.out, files.config_path + ": invalid\n") << show(r);
    for (const auto& position : broken.positions) {
        EXPECT_TRUE(contains(r.err, files.policy_path + ":" + position + ": error: ")) << position << "\n" << show(r);
    }
    EXPECT_EQ(test::count_containing(r.err, ": error: "), broken.positions.size()) << show(r);
}

TEST(cli_config_check, missing_files)
{
    temp_dir dir;
    auto absent = (dir.path() / "absent.yaml").string();
    auto r = run({"config", "check", absent});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_TRUE(contains(r.err, absent + ": error: cannot open the configuration file")) << show(r);

    // The configuration is fine but names a policy that is not there.
    config_files files(lines({"version: 1", "policy: elsewhere/policy.yaml"}));
    r = run({"config", "check", files.config_path});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_TRUE(contains(r.err, "elsewhere/policy.yaml")) << show(r);
    EXPECT_TRUE(contains(r.err, ": error: ")) << show(r);
}

// --- usage errors ---------------------------------------------------------------------------------------------

struct usage_case {
    std::string name;
    std::vector<std::string> args;
    std::string fragment;
};

void PrintTo(const usage_case& c, std::ostream* os) { *os << c.name; }

std::string usage_case_name(const ::testing::TestParamInfo<usage_case>& param) { return param.param.name; }

class cli_config_usage : public ::testing::TestWithParam<usage_case> {};

TEST_P(cli_config_usage, exits_2_without_reading_anything)
{
    const auto& c = GetParam();
    auto r = run(c.args);
    EXPECT_EQ(r.code, exit_usage) << show(r);
    EXPECT_TRUE(r.out.empty()) << show(r);
    EXPECT_TRUE(contains(r.err, c.fragment)) << show(r);
    EXPECT_TRUE(contains(r.err, "Run 'egressd --help' for usage.")) << show(r);
}

const std::string check_usage = "usage: egressd config check PATH";
const std::string run_usage = "usage: egressd run --config PATH";

INSTANTIATE_TEST_SUITE_P(
    commands, cli_config_usage,
    ::testing::Values(usage_case{"config_alone", {"config"}, check_usage},
                      usage_case{"check_without_path", {"config", "check"}, check_usage},
                      usage_case{"check_two_paths", {"config", "check", "a.yaml", "b.yaml"}, check_usage},
                      usage_case{"unknown_config_command", {"config", "verify", "a.yaml"}, check_usage},
                      usage_case{"run_alone", {"run"}, run_usage},
                      usage_case{"run_config_without_path", {"run", "--config"}, run_usage},
                      usage_case{"run_misspelt_option", {"run", "--conf", "x.yaml"}, run_usage},
                      usage_case{"run_path_without_option", {"run", "x.yaml"}, run_usage},
                      usage_case{"run_extra_argument", {"run", "--config", "x.yaml", "--workers"}, run_usage}),
    usage_case_name);

// --- run: start-up failures ---------------------------------------------------------------------------------

TEST(cli_run, invalid_config_exits_1_before_starting)
{
    config_files files(lines({"version: 1", "policy: policy.yaml", "listeners: [localhost:3128]"}));
    auto r = run_bounded({"run", "--config", files.config_path});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_TRUE(contains(r.err, files.config_path + ":3:13: error: invalid listener 'localhost:3128'")) << show(r);
    EXPECT_FALSE(contains(r.err, "cannot start")) << show(r);
}

TEST(cli_run, invalid_policy_exits_1_before_starting)
{
    auto broken = test::break_example();
    config_files files(run_config("[127.0.0.1:0]"), broken.text);
    auto r = run_bounded({"run", "--config", files.config_path});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    for (const auto& position : broken.positions) {
        EXPECT_TRUE(contains(r.err, files.policy_path + ":" + position + ": error: ")) << position << "\n" << show(r);
    }
    EXPECT_EQ(test::count_containing(r.err, ": error: "), broken.positions.size()) << show(r);
    EXPECT_FALSE(contains(r.err, "cannot start")) << show(r);
}

TEST(cli_run, listener_on_an_address_not_here_cannot_start)
{
    // With ip_nonlocal_bind the kernel would let the bind succeed and the proxy would serve: not this test.
    if (test::read_text("/proc/sys/net/ipv4/ip_nonlocal_bind").starts_with("1")) {
        GTEST_SKIP() << "net.ipv4.ip_nonlocal_bind is on: binding 192.0.2.1 would succeed";
    }
    // 192.0.2.1 (TEST-NET-1) is on no interface here: bind fails with EADDRNOTAVAIL, and no packet is sent.
    config_files files(run_config("[192.0.2.1:1]"));
    auto r = run_bounded({"run", "--config", files.config_path});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_TRUE(contains(r.err, "egressd: cannot start: ")) << show(r);
    EXPECT_TRUE(contains(r.err, "cannot bind 192.0.2.1:1")) << show(r);
}

TEST(cli_run, listener_on_a_port_in_use_cannot_start)
{
    // A loopback socket bound and listening without SO_REUSEPORT: the proxy's SO_REUSEPORT acceptor cannot
    // share its port, so the bind fails (EADDRINUSE) whatever the proxy sets.
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::listen(fd, 1), 0);
    socklen_t len = sizeof addr;
    ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    const std::string port = std::to_string(ntohs(addr.sin_port));

    config_files files(run_config("[127.0.0.1:" + port + "]"));
    auto r = run_bounded({"run", "--config", files.config_path});
    ::close(fd);
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_TRUE(contains(r.err, "egressd: cannot start: cannot bind 127.0.0.1:" + port)) << show(r);
}

TEST(cli_run, log_file_that_cannot_open_cannot_start)
{
    // The event log opens before any socket: a log path under a regular file fails first, and nothing binds.
    config_files files(run_config("[192.0.2.1:1]", "  file: {path: egressd.yaml/events.log}\n"));
    auto r = run_bounded({"run", "--config", files.config_path});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_TRUE(contains(r.err, "egressd: cannot start: cannot open a log sink")) << show(r);
    EXPECT_FALSE(contains(r.err, "cannot bind")) << show(r);
}

}  // namespace
}  // namespace egressd::proxy
