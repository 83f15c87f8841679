#pragma once

// What the commands that read event logs share: their options, usage errors and the report of unreadable lines.

#include "proxy/tools/event_reader.hpp"

#include <chrono>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::proxy::tools {

struct event_options {
    std::vector<std::string> positional;  // arguments that are not options (the event files, unless --events)
    std::vector<std::string> files;       // after --events
    read_filter filter;
    bool json = false;
};

// Reads FILE..., --since 1h|TIME, --client NAME, --json and, with events_flag, --events FILE... (every
// argument after it up to the next option). Returns what is wrong, or nullopt.
std::optional<std::string> parse_event_options(const std::vector<std::string>& args, bool events_flag,
                                               std::chrono::system_clock::time_point now, event_options& options);

// "egressd: message" and where to find the usage; returns exit_usage.
int usage_error(std::ostream& err, std::string_view message, std::string_view help_command);

// Each problem the reader kept, then how many lines were unreadable in all.
void print_read_problems(const read_report& report, std::ostream& err);

// "2026-12-31T23:59:59Z"
std::string format_time(std::chrono::system_clock::time_point t);

}  // namespace egressd::proxy::tools
