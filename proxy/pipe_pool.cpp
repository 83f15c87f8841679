#include "proxy/pipe_pool.hpp"

#include "proxy/observe/exhaustion.hpp"

#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <mutex>
#include <unistd.h>
#include <utility>

namespace egressd::proxy {

namespace {

// splice(2) into a socket whose peer is gone raises SIGPIPE (it cannot pass MSG_NOSIGNAL, which Asio's own
// writes use), and SIGPIPE's default ends the process: the relay wants the EPIPE instead.
void ignore_sigpipe()
{
    static std::once_flag once;
    std::call_once(once, [] { std::signal(SIGPIPE, SIG_IGN); });
}

}  // namespace

pipe_fds::pipe_fds(pipe_fds&& other) noexcept
    : read_(std::exchange(other.read_, -1)),
      write_(std::exchange(other.write_, -1)),
      capacity_(std::exchange(other.capacity_, 0))
{
}

pipe_fds& pipe_fds::operator=(pipe_fds&& other) noexcept
{
    if (this != &other) {
        close();
        read_ = std::exchange(other.read_, -1);
        write_ = std::exchange(other.write_, -1);
        capacity_ = std::exchange(other.capacity_, 0);
    }
    return *this;
}

pipe_fds::~pipe_fds() { close(); }

void pipe_fds::close()
{
    if (read_ >= 0) {
        ::close(read_);
        ::close(write_);
        read_ = -1;
        write_ = -1;
    }
}

pipe_pool::pipe_pool(std::size_t capacity) : capacity_(capacity) { ignore_sigpipe(); }

pipe_fds pipe_pool::take()
{
    if (!idle_.empty()) {
        pipe_fds p = std::move(idle_.back());
        idle_.pop_back();
        return p;
    }
    int fds[2];
    if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
        const int error = errno;
        if (on_exhausted_ && observe::is_exhaustion(error)) {
            on_exhausted_(error);
        }
        errno = error;
        return {};
    }
    // Over the per-user pipe budget the kernel refuses a larger size (EPERM): the pipe keeps its default.
    int size = ::fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(capacity_));
    if (size < 0) {
        size = ::fcntl(fds[1], F_GETPIPE_SZ);
    }
    return {fds[0], fds[1], static_cast<std::size_t>(size > 0 ? size : 4096)};
}

void pipe_pool::give(pipe_fds p)
{
    if (p && idle_.size() < max_idle) {
        idle_.push_back(std::move(p));
    }
}

}  // namespace egressd::proxy
