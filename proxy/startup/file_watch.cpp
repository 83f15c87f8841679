#include "proxy/startup/file_watch.hpp"

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <sys/inotify.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>

namespace egressd::proxy::startup {
namespace {

namespace fs = std::filesystem;

// The events that can change what a reload reads. Not IN_MODIFY: a file written in place counts when its
// writer closes it (IN_CLOSE_WRITE), so a reload does not read it half-written. IN_ATTRIB: a chmod can make a
// file readable or unreadable. IN_ONLYDIR: only directories are watched, even if a path was swapped for a file
// between looking at it and adding the watch.
constexpr std::uint32_t watch_mask = IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
                                     IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;

// The entry a Kubernetes ConfigMap (or Secret) volume swaps, atomically, to publish new contents: the visible
// files are symlinks through it, so their own names never see an event.
constexpr std::string_view configmap_data = "..data";

// The entries of a policy directory that config::load_policy reads.
bool is_policy_entry(std::string_view name) { return name.ends_with(".yaml") || name.ends_with(".yml"); }

// What counts in one directory.
struct interest {
    std::set<std::string, std::less<>> names;
    bool policy_entries = false;  // a watched policy directory: every *.yaml / *.yml entry

    bool counts(std::string_view name) const
    {
        return names.contains(name) || (policy_entries && is_policy_entry(name));
    }
    void merge(const interest& other)
    {
        names.insert(other.names.begin(), other.names.end());
        policy_entries = policy_entries || other.policy_entries;
    }
};

using watch_plan = std::map<fs::path, interest>;

// A file that is a symlink changes when its target does: watch each link's target name in the target's
// directory too. Bounded like the kernel's own limit on nested links, so a link loop cannot hang us.
void follow_links(watch_plan& plan, fs::path link)
{
    for (int hop = 0; hop < 40; ++hop) {
        std::error_code ec;
        if (!fs::is_symlink(link, ec)) {
            return;
        }
        fs::path target = fs::read_symlink(link, ec);
        if (ec || target.empty()) {
            return;
        }
        if (target.is_relative()) {
            target = link.parent_path() / target;
        }
        fs::path name = target.filename();
        if (name.empty() || name == "." || name == "..") {
            return;  // a link to a directory spelled with a trailing slash or dots: not a file to follow
        }
        plan[target.parent_path()].names.insert(name.string());
        link = std::move(target);
    }
}

watch_plan plan_for(const std::vector<fs::path>& paths)
{
    watch_plan plan;
    for (const auto& given : paths) {
        std::error_code ec;
        fs::path path = fs::absolute(given, ec);
        path = (ec ? given : path).lexically_normal();
        if (path.filename().empty() && path.has_parent_path() && path != path.root_path()) {
            path = path.parent_path();  // "/etc/egressd/policy.d/" names the directory policy.d
        }
        if (fs::is_directory(path, ec)) {
            auto& in = plan[path];
            in.policy_entries = true;
            in.names.insert(std::string(configmap_data));
            // The directory's own name in its parent: replacing the whole directory by rename counts, and a
            // directory that was removed is watched again once it is back.
            if (path != path.root_path()) {
                plan[path.parent_path()].names.insert(path.filename().string());
            }
            for (const auto& entry : fs::directory_iterator(path, ec)) {
                if (is_policy_entry(entry.path().filename().string())) {
                    follow_links(plan, entry.path());
                }
            }
            continue;
        }
        // A file, or nothing yet (it counts when it appears).
        auto& in = plan[path.parent_path()];
        in.names.insert(path.filename().string());
        in.names.insert(std::string(configmap_data));
        follow_links(plan, path);
    }
    return plan;
}

}  // namespace

struct file_watch::state : std::enable_shared_from_this<state> {
    state(boost::asio::io_context& io, std::vector<fs::path> watched, std::chrono::milliseconds quiet,
          std::function<void()> callback)
        : descriptor(io), timer(io), paths(std::move(watched)), debounce(quiet), on_change(std::move(callback))
    {
    }

    struct watched_dir {
        fs::path dir;  // the first spelling that led to it (two paths may reach one inode: ..data and ..2026_1)
        interest what;
    };

    boost::asio::posix::stream_descriptor descriptor;
    boost::asio::steady_timer timer;
    std::vector<fs::path> paths;
    std::chrono::milliseconds debounce;
    std::function<void()> on_change;
    std::unordered_map<int, watched_dir> watches;  // by inotify watch descriptor
    std::vector<fs::path> unwatched;
    // Each counted event re-arms the timer and bumps this; a timer handler from an older arming (one that had
    // already expired and was queued when the next event came) sees a newer generation and does nothing.
    std::uint64_t generation = 0;
    bool started = false;
    bool stopped = false;
    alignas(inotify_event) std::array<char, 64 * 1024> buffer{};

    // Adds the watches the paths need now and removes the ones they no longer need.
    void refresh()
    {
        std::unordered_map<int, watched_dir> next;
        unwatched.clear();
        for (const auto& [dir, what] : plan_for(paths)) {
            int wd = ::inotify_add_watch(descriptor.native_handle(), dir.c_str(), watch_mask);
            if (wd < 0) {
                unwatched.push_back(dir);
                continue;
            }
            auto& w = next[wd];
            if (w.dir.empty()) {
                w.dir = dir;
            }
            w.what.merge(what);
        }
        for (const auto& [wd, w] : watches) {
            if (!next.contains(wd)) {
                ::inotify_rm_watch(descriptor.native_handle(), wd);
            }
        }
        watches = std::move(next);
    }

    void wait_for_events()
    {
        descriptor.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                              [self = shared_from_this()](const boost::system::error_code& ec) {
                                  // An error other than cancellation cannot happen on an inotify fd; if it did,
                                  // waiting again would spin, so watching ends (SIGHUP still reloads).
                                  if (ec || self->stopped) {
                                      return;
                                  }
                                  self->read_events();
                                  self->wait_for_events();
                              });
    }

    void read_events()
    {
        bool changed = false;
        for (;;) {
            ssize_t n = ::read(descriptor.native_handle(), buffer.data(), buffer.size());
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                break;  // EAGAIN: drained
            }
            for (std::size_t at = 0; at + sizeof(inotify_event) <= static_cast<std::size_t>(n);) {
                inotify_event event{};
                std::memcpy(&event, buffer.data() + at, sizeof event);
                // The name is NUL-padded to the record's length.
                const char* name_at = buffer.data() + at + sizeof event;
                std::string_view name(name_at, ::strnlen(name_at, event.len));
                changed = counts(event, name) || changed;
                at += sizeof event + event.len;
            }
        }
        if (changed) {
            arm();
        }
    }

    bool counts(const inotify_event& event, std::string_view name)
    {
        if ((event.mask & IN_Q_OVERFLOW) != 0) {
            return true;  // events were lost: any of them may have mattered
        }
        auto it = watches.find(event.wd);
        if (it == watches.end()) {
            return false;  // a watch refresh() removed, whose last events were still queued
        }
        if ((event.mask & IN_IGNORED) != 0) {
            // The directory is gone (deleted, or its file system unmounted): what was read from it is stale.
            watches.erase(it);
            return true;
        }
        if ((event.mask & (IN_DELETE_SELF | IN_MOVE_SELF)) != 0) {
            return true;
        }
        return !name.empty() && it->second.what.counts(name);
    }

    void arm()
    {
        ++generation;
        timer.expires_after(debounce);
        timer.async_wait([self = shared_from_this(), armed = generation](const boost::system::error_code& ec) {
            if (ec || self->stopped || armed != self->generation) {
                return;
            }
            // Before the callback, so that whatever the reload reads (a new ..data target, a recreated
            // directory, a new symlink target) is already watched: a change made during the reload is not lost.
            self->refresh();
            if (self->on_change) {
                self->on_change();
            }
        });
    }

    void stop()
    {
        if (stopped) {
            return;
        }
        stopped = true;
        timer.cancel();
        // Closing the inotify fd removes every watch and cancels the pending wait.
        boost::system::error_code ignored;
        descriptor.close(ignored);
        watches.clear();
        // Queued handlers may keep this state alive a little longer; not what the callback captured.
        on_change = nullptr;
    }
};

file_watch::file_watch(boost::asio::io_context& io, std::vector<std::filesystem::path> paths,
                       std::chrono::milliseconds debounce, std::function<void()> on_change)
    : state_(std::make_shared<state>(io, std::move(paths), debounce, std::move(on_change)))
{
    int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
        throw std::system_error(errno, std::generic_category(), "inotify_init1");
    }
    boost::system::error_code ec;
    state_->descriptor.assign(fd, ec);
    if (ec) {
        ::close(fd);
        throw std::system_error(ec.value(), std::system_category(), "cannot register the inotify descriptor");
    }
}

file_watch::~file_watch() { state_->stop(); }

void file_watch::start()
{
    if (state_->started || state_->stopped) {
        return;
    }
    state_->started = true;
    state_->refresh();
    state_->wait_for_events();
}

void file_watch::stop() { state_->stop(); }

void file_watch::set_paths(std::vector<std::filesystem::path> paths)
{
    state_->paths = std::move(paths);
    if (state_->started && !state_->stopped) {
        state_->refresh();
    }
}

std::vector<std::filesystem::path> file_watch::unwatched() const { return state_->unwatched; }

}  // namespace egressd::proxy::startup
