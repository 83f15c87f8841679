#pragma once

#include "config/schema.hpp"
#include "policy/policy.hpp"

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace egressd::config {

struct loaded_policy {
    std::shared_ptr<const policy::policy> snapshot;  // null when there is any error: nothing is partly applied
    std::vector<diagnostic> errors;
    std::vector<diagnostic> warnings;
    std::vector<std::string> files;  // the files read, in merge order, then the destinations_file lists
    std::vector<std::string> list_files;  // the lists alone (each also in files and sources)
    std::vector<std::string> unreadable_lists;  // lists a rule names that could not be read (each is an error)
    // Each file's name and the exact bytes that were parsed, in merge order (one per entry of files), so that a
    // caller can fingerprint what it applied without reading the files again: they may have changed since.
    // A file that could not be read has empty text (and the load has an error).
    std::vector<std::pair<std::string, std::string>> sources;
};

// A policy file, or a directory whose *.yaml and *.yml files are merged in name order
// (so approval grants can live in a file of their own). Files are parsed in parallel.
// Every error of every file is reported at once, each with file:line:column.
loaded_policy load_policy(const std::filesystem::path& path);

// The same, from in-memory (name, text) pairs; for tests and for callers that already hold the text.
loaded_policy load_policy_texts(const std::vector<std::pair<std::string, std::string>>& files);

}  // namespace egressd::config
