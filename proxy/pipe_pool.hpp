#pragma once

#include <cstddef>
#include <functional>
#include <vector>

namespace egressd::proxy {

// One pipe: its two descriptors, closed when it is destroyed. What splice(2) moves bytes through.
class pipe_fds {
public:
    pipe_fds() = default;
    pipe_fds(int read_end, int write_end, std::size_t capacity)
        : read_(read_end), write_(write_end), capacity_(capacity)
    {
    }
    pipe_fds(pipe_fds&& other) noexcept;
    pipe_fds& operator=(pipe_fds&& other) noexcept;
    pipe_fds(const pipe_fds&) = delete;
    pipe_fds& operator=(const pipe_fds&) = delete;
    ~pipe_fds();

    explicit operator bool() const { return read_ >= 0; }
    int read_end() const { return read_; }
    int write_end() const { return write_; }
    std::size_t capacity() const { return capacity_; }

private:
    void close();

    int read_ = -1;
    int write_ = -1;
    std::size_t capacity_ = 0;
};

// A worker's pipes for splice relays (proxy/session/splice_relay.hpp). A relay holds one only while bytes are
// in flight and gives it back only empty, so an idle tunnel holds no pipe: 5,000 idle tunnels cost no
// descriptors and no pipe pages. A few idle pipes are kept; a pipe that still holds bytes (a relay cut short)
// is closed, never handed to another relay.
// Thread contract: its worker's thread only.
class pipe_pool {
public:
    // Requested capacity: four times the default 64 KiB, so a bulk transfer needs fewer splice calls per byte.
    // Pages are used only for bytes in flight, but the size counts against the per-user pipe budget
    // (/proc/sys/fs/pipe-user-pages-soft, 64 MiB by default) for as long as the pipe exists.
    static constexpr std::size_t default_capacity = 256 * 1024;
    // Idle pipes kept: the relays that move bytes at one instant; more would only pin descriptors.
    static constexpr std::size_t max_idle = 16;

    explicit pipe_pool(std::size_t capacity = default_capacity);

    // An empty pipe, or an empty pipe_fds when none can be made (errno says why: a descriptor limit).
    pipe_fds take();
    // Called with errno when take() cannot make a pipe for want of descriptors or kernel memory (EMFILE, ENFILE,
    // ENOMEM); errno is unchanged afterwards.
    void on_exhausted(std::function<void(int error)> handler) { on_exhausted_ = std::move(handler); }
    // p must be empty.
    void give(pipe_fds p);
    std::size_t idle() const { return idle_.size(); }

    // False once splice(2) refused these sockets (EINVAL, ENOSYS): relays copy through a buffer instead.
    bool splice_works() const { return splice_works_; }
    void splice_unsupported() { splice_works_ = false; }

private:
    std::size_t capacity_;
    std::vector<pipe_fds> idle_;
    bool splice_works_ = true;
    std::function<void(int)> on_exhausted_;
};

}  // namespace egressd::proxy
