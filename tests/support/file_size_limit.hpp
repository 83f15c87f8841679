#pragma once

#include <signal.h>
#include <sys/resource.h>

namespace egressd::test_support {

// Lowers this process's file size limit so that every write to the store's files fails, as on a full disk.
// Works for root too (unlike chmod). SIGXFSZ is ignored meanwhile so that a failed write returns EFBIG.
class file_size_limit {
public:
    file_size_limit()
    {
        ::getrlimit(RLIMIT_FSIZE, &saved_);
        rlimit low = saved_;
        low.rlim_cur = 0;
        ok_ = ::setrlimit(RLIMIT_FSIZE, &low) == 0;
        previous_handler_ = ::signal(SIGXFSZ, SIG_IGN);
    }
    ~file_size_limit()
    {
        ::setrlimit(RLIMIT_FSIZE, &saved_);
        ::signal(SIGXFSZ, previous_handler_);
    }
    file_size_limit(const file_size_limit&) = delete;
    file_size_limit& operator=(const file_size_limit&) = delete;
    bool ok() const { return ok_; }

private:
    rlimit saved_{};
    bool ok_ = false;
    sighandler_t previous_handler_ = SIG_DFL;
};

}  // namespace egressd::test_support
