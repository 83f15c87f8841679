#pragma once

// A fresh directory under the system temp dir for tests that need real files; removed with its contents.
// Used by tests/config and tests/proxy (it would sit in tests/support if more suites come to need it).

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>

namespace egressd::test_support {

class temp_dir {
public:
    temp_dir()
    {
        // mkdtemp picks a unique name atomically, so parallel ctest processes never share a directory.
        std::string pattern = (std::filesystem::temp_directory_path() / "egressd-test-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) {
            ADD_FAILURE() << "mkdtemp failed for " << pattern;
        }
        path_ = pattern;
    }
    ~temp_dir()
    {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;

    const std::filesystem::path& path() const { return path_; }

    // Writes text to name inside the directory (binary, so line numbers are exactly as written).
    std::filesystem::path write(std::string_view name, std::string_view text) const
    {
        auto file = path_ / name;
        std::ofstream out(file, std::ios::binary);
        out << text;
        if (!out) {
            ADD_FAILURE() << "cannot write " << file;
        }
        return file;
    }

private:
    std::filesystem::path path_;
};

}  // namespace egressd::test_support
