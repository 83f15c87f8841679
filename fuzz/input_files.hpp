// Every regular file under a directory, in name order (none when it does not exist): the inputs the replay and
// the differential dumps read, in a stable order.
#pragma once

#include <algorithm>
#include <filesystem>
#include <vector>

namespace egressd::fuzz {

inline std::vector<std::filesystem::path> input_files(const std::filesystem::path& root)
{
    std::vector<std::filesystem::path> files;
    if (!std::filesystem::exists(root)) {
        return files;
    }
    for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
        if (entry.is_regular_file()) {
            files.push_back(entry.path());
        }
    }
    std::sort(files.begin(), files.end());
    return files;
}

}  // namespace egressd::fuzz
