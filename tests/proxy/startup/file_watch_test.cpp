// The policy watcher against real files in a temp directory: the ways files really change (written in place,
// replaced by rename, a Kubernetes ConfigMap's ..data swap, a directory gaining a file), debouncing, what must
// not count, and stopping. The event loop is run by the test, so a callback can only come while it runs.

#include "proxy/startup/file_watch.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <sys/resource.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

namespace egressd::proxy::startup {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr auto debounce = 50ms;

class file_watch_test : public ::testing::Test {
protected:
    std::unique_ptr<file_watch> watch(std::vector<fs::path> paths, std::chrono::milliseconds quiet = debounce)
    {
        auto w = std::make_unique<file_watch>(io_, std::move(paths), quiet, [this] { ++changes_; });
        w->start();
        return w;
    }

    // Runs the event loop until `want` callbacks came: a deadlock guard with a generous bound, not a timing
    // assertion.
    bool wait_for(int want)
    {
        auto deadline = std::chrono::steady_clock::now() + 10s;
        while (changes_ < want && std::chrono::steady_clock::now() < deadline) {
            run_for(20ms);
        }
        return changes_ >= want;
    }

    // Runs the loop long enough for a pending debounce to have fired several times over, to show that a
    // callback which should not come does not.
    void settle(std::chrono::milliseconds how_long = 400ms) { run_for(how_long); }

    void run_for(std::chrono::milliseconds how_long)
    {
        io_.restart();
        io_.run_for(how_long);
    }

    fs::path path(const fs::path& name) const { return dir_.path() / name; }

    // A ConfigMap volume as the kubelet lays it out: the data in a timestamped directory, `..data` a symlink
    // to it, and each visible file a symlink through `..data`.
    void configmap(const std::string& version, const std::vector<std::string>& files)
    {
        fs::create_directory(path(version));
        for (const auto& f : files) {
            dir_.write(version + "/" + f, "version: 1\n# " + version + "\n");
        }
        fs::create_directory_symlink(version, path("..data"));
        for (const auto& f : files) {
            fs::create_symlink(fs::path("..data") / f, path(f));
        }
    }

    // The kubelet's update: the new data beside the old, a new symlink renamed over `..data` (one atomic
    // step), then the old data removed.
    void configmap_update(const std::string& old_version, const std::string& version,
                          const std::vector<std::string>& files)
    {
        fs::create_directory(path(version));
        for (const auto& f : files) {
            dir_.write(version + "/" + f, "version: 1\n# " + version + "\n");
        }
        fs::create_directory_symlink(version, path("..data_tmp"));
        fs::rename(path("..data_tmp"), path("..data"));
        fs::remove_all(path(old_version));
    }

    boost::asio::io_context io_;
    test_support::temp_dir dir_;
    int changes_ = 0;
};

// --- what counts --------------------------------------------------------------------------------------------

TEST_F(file_watch_test, a_file_written_in_place)
{
    auto file = dir_.write("policy.yaml", "version: 1\n");
    auto w = watch({file});
    settle();
    EXPECT_EQ(changes_, 0);
    dir_.write("policy.yaml", "version: 1\nmode: report\n");
    ASSERT_TRUE(wait_for(1));
    settle();
    EXPECT_EQ(changes_, 1);
}

TEST_F(file_watch_test, a_file_replaced_by_rename)
{
    // How editors and config-management tools save: write a temporary file, rename it over the old one. The
    // old inode is gone, which is why the directory is watched and not the file.
    auto file = dir_.write("policy.yaml", "version: 1\n");
    auto w = watch({file});
    for (int save = 1; save <= 2; ++save) {
        dir_.write("policy.yaml.tmp", "version: 1\n# save " + std::to_string(save) + "\n");
        fs::rename(path("policy.yaml.tmp"), file);
        ASSERT_TRUE(wait_for(save)) << "save " << save;
        settle();
        EXPECT_EQ(changes_, save);
    }
}

TEST_F(file_watch_test, a_file_that_does_not_exist_yet_counts_when_it_appears)
{
    auto w = watch({path("policy.yaml")});
    EXPECT_TRUE(w->unwatched().empty());
    dir_.write("policy.yaml", "version: 1\n");
    ASSERT_TRUE(wait_for(1));
}

TEST_F(file_watch_test, a_deleted_file_counts)
{
    auto file = dir_.write("policy.yaml", "version: 1\n");
    auto w = watch({file});
    fs::remove(file);
    ASSERT_TRUE(wait_for(1));
}

TEST_F(file_watch_test, a_configmap_data_swap_for_a_file_path)
{
    configmap("..2026_1", {"policy.yaml"});
    auto w = watch({path("policy.yaml")});
    settle();
    EXPECT_EQ(changes_, 0);
    // The visible file's own name sees no event at all: only ..data is replaced.
    configmap_update("..2026_1", "..2026_2", {"policy.yaml"});
    ASSERT_TRUE(wait_for(1));
    settle();
    EXPECT_EQ(changes_, 1);
    // And the next update too, after the directory the first watch reached through ..data was removed.
    configmap_update("..2026_2", "..2026_3", {"policy.yaml"});
    ASSERT_TRUE(wait_for(2));
    settle();
    EXPECT_EQ(changes_, 2);
    EXPECT_TRUE(w->unwatched().empty());
}

TEST_F(file_watch_test, a_configmap_data_swap_for_a_policy_directory)
{
    configmap("..2026_1", {"10-groups.yaml", "20-clients.yaml"});
    auto w = watch({dir_.path()});
    settle();
    EXPECT_EQ(changes_, 0);
    configmap_update("..2026_1", "..2026_2", {"10-groups.yaml", "20-clients.yaml"});
    ASSERT_TRUE(wait_for(1));
    settle();
    EXPECT_EQ(changes_, 1);
}

TEST_F(file_watch_test, a_policy_directory_gaining_a_yaml_file)
{
    dir_.write("10-groups.yaml", "version: 1\n");
    auto w = watch({dir_.path()});
    dir_.write("30-grants.yaml", "version: 1\n");
    ASSERT_TRUE(wait_for(1));
    settle();
    EXPECT_EQ(changes_, 1);
    dir_.write("40-more.yml", "version: 1\n");
    ASSERT_TRUE(wait_for(2));
    fs::remove(path("30-grants.yaml"));
    ASSERT_TRUE(wait_for(3));
}

TEST_F(file_watch_test, a_policy_directory_replaced_by_rename)
{
    fs::create_directory(path("policy.d"));
    dir_.write("policy.d/a.yaml", "version: 1\n");
    auto w = watch({path("policy.d")});
    fs::create_directory(path("policy.d.new"));
    dir_.write("policy.d.new/a.yaml", "version: 1\n# new\n");
    fs::rename(path("policy.d"), path("policy.d.old"));
    fs::rename(path("policy.d.new"), path("policy.d"));
    ASSERT_TRUE(wait_for(1));
    settle();
    EXPECT_EQ(changes_, 1);
    // The new directory is the one watched now; the old one no longer counts.
    dir_.write("policy.d.old/a.yaml", "version: 1\n# old, edited\n");
    settle();
    EXPECT_EQ(changes_, 1);
    dir_.write("policy.d/a.yaml", "version: 1\n# new, edited\n");
    ASSERT_TRUE(wait_for(2));
}

TEST_F(file_watch_test, editing_the_target_of_a_symlinked_file)
{
    fs::create_directory(path("etc"));
    fs::create_directory(path("srv"));
    auto target = dir_.write("srv/current.yaml", "version: 1\n");
    fs::create_symlink("../srv/current.yaml", path("etc/policy.yaml"));
    auto w = watch({path("etc/policy.yaml")});
    dir_.write("srv/current.yaml", "version: 1\nmode: report\n");
    ASSERT_TRUE(wait_for(1));
    settle();
    EXPECT_EQ(changes_, 1);
    // Pointing the link elsewhere counts, and from then on the new target is the one watched.
    dir_.write("srv/next.yaml", "version: 1\n");
    settle();
    EXPECT_EQ(changes_, 1);
    fs::create_symlink("../srv/next.yaml", path("etc/policy.yaml.tmp"));
    fs::rename(path("etc/policy.yaml.tmp"), path("etc/policy.yaml"));
    ASSERT_TRUE(wait_for(2));
    dir_.write("srv/next.yaml", "version: 1\nmode: report\n");
    ASSERT_TRUE(wait_for(3));
}

// --- debouncing ---------------------------------------------------------------------------------------------

TEST_F(file_watch_test, a_burst_of_ten_writes_gives_one_callback)
{
    auto file = dir_.write("policy.yaml", "version: 1\n");
    // Each write is read by the loop before the next is made, so the debounce, not the batching of events in
    // one read, is what folds them into one call.
    constexpr auto quiet = 300ms;
    auto w = watch({file}, quiet);
    for (int i = 0; i < 10; ++i) {
        dir_.write("policy.yaml", "version: 1\n# write " + std::to_string(i) + "\n");
        run_for(10ms);
    }
    ASSERT_TRUE(wait_for(1));
    settle(quiet * 3);
    EXPECT_EQ(changes_, 1);
}

TEST_F(file_watch_test, a_burst_across_several_watched_paths_gives_one_callback)
{
    auto a = dir_.write("a.yaml", "version: 1\n");
    fs::create_directory(path("d"));
    auto w = watch({a, path("d")}, 200ms);
    dir_.write("a.yaml", "version: 1\n# edited\n");
    dir_.write("d/b.yaml", "version: 1\n");
    dir_.write("d/c.yml", "version: 1\n");
    ASSERT_TRUE(wait_for(1));
    settle(600ms);
    EXPECT_EQ(changes_, 1);
}

// --- what does not count ------------------------------------------------------------------------------------

TEST_F(file_watch_test, other_files_in_the_directory_of_a_watched_file)
{
    auto file = dir_.write("policy.yaml", "version: 1\n");
    auto w = watch({file});
    // Another policy file, an editor's swap file and backup, a new subdirectory: none is the watched file.
    dir_.write("other.yaml", "version: 1\n");
    dir_.write(".policy.yaml.swp", "swap");
    dir_.write("policy.yaml~", "backup");
    dir_.write("notes.txt", "text");
    fs::create_directory(path("sub"));
    fs::rename(path("notes.txt"), path("notes.old"));
    fs::remove(path("other.yaml"));
    settle();
    EXPECT_EQ(changes_, 0);
}

TEST_F(file_watch_test, entries_of_a_policy_directory_that_are_not_policy_files)
{
    dir_.write("10-groups.yaml", "version: 1\n");
    auto w = watch({dir_.path()});
    dir_.write("README.md", "policies\n");
    dir_.write("10-groups.yaml.bak", "version: 1\n");
    dir_.write(".10-groups.yaml.swp", "swap");
    settle();
    EXPECT_EQ(changes_, 0);
}

TEST_F(file_watch_test, reading_the_watched_file_does_not_count)
{
    auto file = dir_.write("policy.yaml", "version: 1\n");
    auto w = watch({file});
    std::string text;
    {
        std::ifstream in(file);
        std::getline(in, text);
    }
    EXPECT_EQ(text, "version: 1");
    settle();
    EXPECT_EQ(changes_, 0);
}

// --- stopping and changing the paths -------------------------------------------------------------------------

TEST_F(file_watch_test, stop_ends_callbacks)
{
    auto file = dir_.write("policy.yaml", "version: 1\n");
    auto w = watch({file});
    w->stop();
    dir_.write("policy.yaml", "version: 1\n# after stop\n");
    settle();
    EXPECT_EQ(changes_, 0);
    w->stop();  // idempotent
    w->start();  // no restart after stop
    dir_.write("policy.yaml", "version: 1\n# after start\n");
    settle();
    EXPECT_EQ(changes_, 0);
}

TEST_F(file_watch_test, stop_drops_a_pending_burst)
{
    auto file = dir_.write("policy.yaml", "version: 1\n");
    auto w = watch({file}, 300ms);
    dir_.write("policy.yaml", "version: 1\n# edited\n");
    run_for(50ms);  // the event is read and the debounce armed, well before it fires
    w->stop();
    settle(900ms);
    EXPECT_EQ(changes_, 0);
}

TEST_F(file_watch_test, destroying_it_with_a_burst_pending_calls_nothing)
{
    auto file = dir_.write("policy.yaml", "version: 1\n");
    auto w = watch({file}, 300ms);
    dir_.write("policy.yaml", "version: 1\n# edited\n");
    run_for(50ms);
    w.reset();
    // The cancelled handlers still run on the loop; they must not reach the callback (or freed memory).
    settle(900ms);
    EXPECT_EQ(changes_, 0);
}

TEST_F(file_watch_test, set_paths_moves_the_watch)
{
    auto a = dir_.write("a.yaml", "version: 1\n");
    fs::create_directory(path("other"));
    auto b = dir_.write("other/b.yaml", "version: 1\n");
    auto w = watch({a});
    w->set_paths({b});
    dir_.write("a.yaml", "version: 1\n# edited\n");
    settle();
    EXPECT_EQ(changes_, 0);
    dir_.write("other/b.yaml", "version: 1\n# edited\n");
    ASSERT_TRUE(wait_for(1));
}

TEST_F(file_watch_test, the_callback_may_change_the_paths)
{
    // What a reload does: the new policy names other files, and the watch follows from inside the callback.
    auto a = dir_.write("a.yaml", "version: 1\n");
    auto b = dir_.write("b.yaml", "version: 1\n");
    std::unique_ptr<file_watch> w;
    w = std::make_unique<file_watch>(io_, std::vector<fs::path>{a}, debounce, [&] {
        ++changes_;
        w->set_paths({b});
    });
    w->start();
    dir_.write("a.yaml", "version: 1\n# edited\n");
    ASSERT_TRUE(wait_for(1));
    dir_.write("a.yaml", "version: 1\n# edited again\n");
    settle();
    EXPECT_EQ(changes_, 1);
    dir_.write("b.yaml", "version: 1\n# edited\n");
    ASSERT_TRUE(wait_for(2));
}

// --- what cannot be watched ----------------------------------------------------------------------------------

TEST_F(file_watch_test, a_missing_directory_is_listed_and_tried_again_with_new_paths)
{
    auto missing = path("not-yet/policy.yaml");
    auto w = watch({missing});
    EXPECT_EQ(w->unwatched(), std::vector<fs::path>{path("not-yet")});
    fs::create_directory(path("not-yet"));
    w->set_paths({missing});
    EXPECT_TRUE(w->unwatched().empty());
    dir_.write("not-yet/policy.yaml", "version: 1\n");
    ASSERT_TRUE(wait_for(1));
}

TEST_F(file_watch_test, no_inotify_descriptor_throws)
{
#if defined(__SANITIZE_ADDRESS__)
    // Out of descriptors, UBSan's vptr check cannot probe memory (it uses a pipe) and reports the exception's
    // own construction as an invalid object; EGRESSD_SANITIZE builds with both sanitizers, and aborts on it.
    GTEST_SKIP() << "the sanitizers need descriptors of their own";
#endif
    // The io_context opens its own descriptors (epoll, eventfd, timerfd) when its first I/O object is made:
    // made here first, so that the limit below is met by inotify_init1 and nothing else.
    {
        file_watch warm_up(io_, {dir_.path()}, debounce, [] {});
    }
    // With the descriptor limit at the lowest free descriptor, inotify_init1 fails with EMFILE.
    int probe = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(probe, 0);
    ::close(probe);
    rlimit saved{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
    rlimit low = saved;
    low.rlim_cur = static_cast<rlim_t>(probe);
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
    std::exception_ptr thrown;
    try {
        file_watch w(io_, {dir_.path()}, debounce, [] {});
    } catch (...) {
        thrown = std::current_exception();
    }
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
    ASSERT_TRUE(thrown);
    try {
        std::rethrow_exception(thrown);
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), EMFILE) << e.what();
    } catch (...) {
        ADD_FAILURE() << "not a std::system_error";
    }
}

}  // namespace
}  // namespace egressd::proxy::startup
