// The built egressd binary, run as a user runs it: exit statuses, stdout and stderr end to end.

#include "tests/support/temp_dir.hpp"
#include "tests/proxy/cli_support.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>
#include <vector>

#ifndef EGRESSD_BINARY
#error "EGRESSD_BINARY must be defined by the build"
#endif

namespace egressd::proxy {
namespace {

using test::contains;

// Single quotes for /bin/sh: nothing inside them is special except the quote itself.
std::string shell_quote(const std::string& s)
{
    std::string out = "'";
    for (char c : s) {
        out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    }
    return out + "'";
}

struct process_result {
    int status = -1;  // exit status, or -1 if it did not exit normally
    std::string out;
    std::string err;
};

std::string show(const process_result& r)
{
    return "exit " + std::to_string(r.status) + "\n--- stdout\n" + r.out + "--- stderr\n" + r.err;
}

// Runs the binary with args; stdout through a pipe, stderr through a file in dir.
process_result run_binary(const test_support::temp_dir& dir, const std::vector<std::string>& args)
{
    auto err_file = dir.path() / "stderr.txt";
    std::string command = shell_quote(EGRESSD_BINARY);
    for (const auto& a : args) {
        command += " " + shell_quote(a);
    }
    command += " 2>" + shell_quote(err_file.string());
    process_result r;
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr) {
        ADD_FAILURE() << "popen failed: " << command;
        return r;
    }
    std::array<char, 4096> buffer{};
    for (std::size_t n; (n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0;) {
        r.out.append(buffer.data(), n);
    }
    int status = ::pclose(pipe);
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.err = test::read_text(err_file.string());
    return r;
}

TEST(cli_binary, version)
{
    test_support::temp_dir dir;
    auto r = run_binary(dir, {"--version"});
    EXPECT_EQ(r.status, 0) << show(r);
    EXPECT_TRUE(r.out.starts_with("egressd ")) << show(r);
}

TEST(cli_binary, checks_the_example_policy)
{
    test_support::temp_dir dir;
    auto r = run_binary(dir, {"policy", "check", test::example_path});
    EXPECT_EQ(r.status, 0) << show(r);
    EXPECT_TRUE(contains(r.out, test::example_path + ": valid (1 file(s), mode enforce)\n")) << show(r);
    EXPECT_TRUE(contains(r.out, "clients:     6\n")) << show(r);
    EXPECT_TRUE(r.err.empty()) << show(r);
}

TEST(cli_binary, reports_a_broken_policy)
{
    test_support::temp_dir dir;
    auto broken = test::break_example();
    auto path = dir.write("broken.yaml", broken.text).string();
    auto r = run_binary(dir, {"policy", "check", path});
    EXPECT_EQ(r.status, 1) << show(r);
    EXPECT_EQ(test::count_containing(r.err, ": error: "), 3u) << show(r);
    for (const auto& where : broken.positions) {
        EXPECT_TRUE(contains(r.err, path + ":" + where + ": error: ")) << where << "\n" << show(r);
    }
    EXPECT_TRUE(contains(r.out, path + ": invalid: 3 error(s)")) << show(r);
}

TEST(cli_binary, explain_exit_statuses)
{
    test_support::temp_dir dir;
    auto allowed = run_binary(dir, {"policy", "explain", test::example_path, "--source", "10.20.1.7", "--dest",
                                    "deb.debian.org:443", "--at", "2026-06-01T12:00:00Z"});
    EXPECT_EQ(allowed.status, 0) << show(allowed);
    EXPECT_TRUE(contains(allowed.out, "result:      allowed\n")) << show(allowed);

    auto denied = run_binary(dir, {"policy", "explain", test::example_path, "--client", "database", "--dest",
                                   "deb.debian.org:443", "--at", "2026-06-01T12:00:00Z", "--json"});
    EXPECT_EQ(denied.status, 3) << show(denied);
    EXPECT_TRUE(contains(denied.out, "\"allowed\":false}")) << show(denied);

    auto usage = run_binary(dir, {"policy", "explain", test::example_path, "--client", "web"});
    EXPECT_EQ(usage.status, 2) << show(usage);
    EXPECT_TRUE(contains(usage.err, "needs --dest HOST:PORT")) << show(usage);
}

}  // namespace
}  // namespace egressd::proxy
