#pragma once

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <vector>

namespace egressd::proxy::startup {

// Watches files and directories with inotify and calls on_change once per burst of changes (debounced: once no
// counted event has come for `debounce`).
//
// Watches each path's DIRECTORY (for a file) or the directory itself (for a directory path), because editors
// replace files by rename and a Kubernetes ConfigMap mount swaps a `..data` symlink: the file's own inode
// changes, and a watch on it would go quiet after the first save. What counts:
//   a file path       events on its name in its directory, and on `..data` there (a ConfigMap swap); if the file
//                     is a symlink, events on each link's target name in the target's directory too, so that
//                     editing the file a symlink points at counts
//   a directory path  events on any *.yaml / *.yml entry (the files a policy directory is read from; their
//                     symlinks followed as for files), on its `..data`, and on the directory's own name in its
//                     parent (the whole directory replaced by rename)
//   either            the watched directory itself deleted or moved, and an inotify queue overflow
// Everything else in those directories (editor swap files, backups, other files) is ignored.
//
// The watch set is worked out again before each on_change, so that a new symlink target, a recreated
// directory or a ConfigMap's new `..2026_...` directory is watched from then on. A directory that does not
// exist (or cannot be watched) is skipped and listed by unwatched(); it is tried again at each of those times.
//
// Thread contract: runs on the io_context it is given (a posix::stream_descriptor on the inotify fd and a
// steady_timer); every member function, and on_change, runs on a thread running that io_context (or while
// nothing runs it). After stop() or destruction on_change is never called again, even if handlers are still
// queued: they hold the internals alive, not the callback's targets.
class file_watch {
public:
    // Throws std::system_error if inotify cannot be set up (inotify_init1: EMFILE, ENOMEM).
    file_watch(boost::asio::io_context& io, std::vector<std::filesystem::path> paths,
               std::chrono::milliseconds debounce, std::function<void()> on_change);
    ~file_watch();
    file_watch(const file_watch&) = delete;
    file_watch& operator=(const file_watch&) = delete;

    // Adds the watches and starts reading events. Once; a watch cannot be restarted after stop().
    void start();
    // Removes the watches, drops a pending burst, closes the inotify fd. Idempotent.
    void stop();
    // After a reload the set of files may change (a policy file moved, a directory gained files): watch these
    // from now on. A burst already pending still calls on_change.
    void set_paths(std::vector<std::filesystem::path> paths);

    // Directories that could not be watched when the watch set was last worked out (they did not exist, or
    // inotify refused: permissions, fs.inotify.max_user_watches). Changes there go unnoticed until they can
    // be watched: the caller should say so (a warning event), since reload-on-change is then degraded.
    std::vector<std::filesystem::path> unwatched() const;

private:
    struct state;
    std::shared_ptr<state> state_;
};

}  // namespace egressd::proxy::startup
