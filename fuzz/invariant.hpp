// The one way a fuzz target reports a broken invariant: it aborts (libFuzzer keeps the input, the replay's ctest
// fails) after naming the file and line, so that a finding says which invariant broke.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace egressd::fuzz {

inline void require(bool holds, const char* file = __builtin_FILE(), int line = __builtin_LINE())
{
    if (!holds) {
        std::fprintf(stderr, "invariant at %s:%d failed\n", file, line);
        std::abort();
    }
}

}  // namespace egressd::fuzz
