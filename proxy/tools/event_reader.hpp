#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::proxy::tools {

// One recorded egress event, whichever format (egressd, ECS, OCSF) it was written in.
struct recorded_event {
    std::chrono::system_clock::time_point time;
    // Native names: egress.allow, egress.deny, egress.would_deny, egress.close, egress.revoke,
    // egress.would_revoke, egress.error.
    std::string event;
    std::string request_id;
    std::string client;  // empty: none
    std::string source_ip;
    std::uint16_t source_port = 0;
    std::string identity;
    std::string method;
    std::string path;  // a forwarded plain-HTTP request's (normal form); empty for a CONNECT
    std::string host;  // as asked: a name or an IP literal; "-" when unknown
    std::uint16_t port = 0;
    std::string address;  // the decided address; empty: none
    std::string reason;
    std::string mode;
    std::string sni;
    std::string rule_group;
    std::optional<std::uint32_t> rule_index;
};

struct read_filter {
    std::optional<std::chrono::system_clock::time_point> since;
    std::optional<std::string> client;
};

struct read_report {
    std::size_t lines = 0;
    std::size_t events = 0;
    std::size_t unreadable = 0;
    std::vector<std::string> problems;  // "file:line: why", the first few
};

// Reads JSON lines in egressd, ECS or OCSF format (each line detected on its own; "-" is standard input);
// lines that are not egress.* events (egressd.* notices, blank lines) are skipped silently, lines that are
// not JSON or lack required fields count as unreadable. A file that cannot be opened throws
// std::runtime_error naming it.
read_report read_events(const std::vector<std::string>& files, const read_filter& filter,
                        const std::function<void(const recorded_event&)>& on_event);

// "90s", "30m", "1h", "7d" (a duration back from now) or an RFC 3339 time.
std::optional<std::chrono::system_clock::time_point> parse_since(std::string_view text,
                                                                 std::chrono::system_clock::time_point now);

}  // namespace egressd::proxy::tools
