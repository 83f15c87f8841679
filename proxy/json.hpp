#pragma once

#include <string>
#include <string_view>

namespace egressd::proxy {

// Appends s as a JSON string literal (quoted, escaped) to out.
void append_json_string(std::string& out, std::string_view s);
std::string json_string(std::string_view s);

}  // namespace egressd::proxy
