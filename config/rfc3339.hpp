#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace egressd::config {

// "2026-12-31T23:59:59Z", "2026-12-31t23:59:59.5+02:00": RFC 3339 date-time with a required offset.
// Fractions of a second are dropped. Returns nullopt for anything else, including impossible dates.
std::optional<std::chrono::sys_seconds> parse_rfc3339(std::string_view text);

// UTC, "Z" form: "2026-12-31T23:59:59Z", or with milliseconds "2026-12-31T23:59:59.123Z".
std::string format_rfc3339(std::chrono::sys_seconds t);
std::string format_rfc3339(std::chrono::sys_time<std::chrono::milliseconds> t);

}  // namespace egressd::config
