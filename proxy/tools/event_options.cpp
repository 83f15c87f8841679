#include "proxy/tools/event_options.hpp"

#include "config/rfc3339.hpp"
#include "proxy/cli.hpp"

#include <ostream>

namespace egressd::proxy::tools {

std::optional<std::string> parse_event_options(const std::vector<std::string>& args, bool events_flag,
                                               std::chrono::system_clock::time_point now, event_options& options)
{
    bool in_events = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a == "--json") {
            options.json = true;
            in_events = false;
            continue;
        }
        if (events_flag && a == "--events") {
            in_events = true;
            continue;
        }
        if (!a.starts_with("--")) {
            (in_events ? options.files : options.positional).push_back(a);
            continue;
        }
        in_events = false;
        if (a != "--since" && a != "--client") {
            return "unknown option '" + a + "'";
        }
        if (i + 1 >= args.size()) {
            return a + " needs a value";
        }
        const std::string& value = args[++i];
        if (a == "--client") {
            options.filter.client = value;
            continue;
        }
        options.filter.since = parse_since(value, now);
        if (!options.filter.since) {
            return "--since '" + value + "' is neither a duration like 90s, 30m, 1h, 7d nor an RFC 3339 time";
        }
    }
    if (events_flag && options.files.empty()) {
        return "--events needs at least one FILE (- for standard input)";
    }
    return std::nullopt;
}

int usage_error(std::ostream& err, std::string_view message, std::string_view help_command)
{
    err << "egressd: " << message << "\nRun 'egressd " << help_command << " --help' for usage.\n";
    return exit_usage;
}

void print_read_problems(const read_report& report, std::ostream& err)
{
    if (report.unreadable == 0) {
        return;
    }
    for (const auto& p : report.problems) {
        err << "egressd: " << p << '\n';
    }
    err << "egressd: " << report.unreadable << " unreadable line(s) skipped\n";
}

std::string format_time(std::chrono::system_clock::time_point t)
{
    return config::format_rfc3339(std::chrono::floor<std::chrono::seconds>(t));
}

}  // namespace egressd::proxy::tools
