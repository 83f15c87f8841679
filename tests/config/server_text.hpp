#pragma once

// Server-configuration documents for tests: loaded from text against a base directory that is never touched.

#include "config/server_config.hpp"
#include "tests/config/policy_text.hpp"

#include <filesystem>
#include <initializer_list>
#include <string>
#include <string_view>

namespace egressd::config::test::server {

// A base directory that does not exist: loading the text never touches the file system, it only joins paths.
inline const std::filesystem::path base_dir = "/etc/egressd";
inline const std::string file_name = "egressd.yaml";

inline loaded_server_config load(const std::string& text) { return load_server_config_text(file_name, text, base_dir); }

inline std::string show(const loaded_server_config& loaded) { return "errors:\n" + test::show(loaded.errors, "error"); }

// The smallest valid configuration: everything else takes its default.
inline const std::string minimal = lines({"version: 1", "policy: policy.yaml"});

// minimal followed by more lines: line 3 of the document is the first of `more`.
inline std::string with(std::initializer_list<std::string_view> more) { return minimal + lines(more); }

}  // namespace egressd::config::test::server
