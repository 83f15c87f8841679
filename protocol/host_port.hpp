#pragma once

// The one parser of ports and "host:port" text: CONNECT targets, absolute URIs' authorities, listener and
// DNS-server addresses in the configuration, and the command line all read ports here.

#include "policy/domain.hpp"

#include <cstdint>
#include <optional>
#include <string_view>

namespace egressd::protocol {

struct port_rules {
    bool allow_zero = false;           // a listener's port 0 asks the kernel for a free port
    bool allow_leading_zeros = false;  // RFC 3986 URI ports are *DIGIT ("0081"); CONNECT targets are not
};

// 1 to 5 decimal digits, 1 to 65535 (0 too with allow_zero); nothing else, no sign, no spaces.
std::optional<std::uint16_t> parse_port(std::string_view text, port_rules rules = {});

// "host:port" split at the right colon: "[v6]:port" keeps the brackets in host; "v6" without brackets has more
// than one colon and is reported as such. port is empty when there is no colon.
struct host_port_text {
    std::string_view host;
    std::optional<std::string_view> port;  // after the colon; nullopt: no port was written
    bool bracketed = false;
    bool unbracketed_v6 = false;  // two or more colons without brackets: an IPv6 literal, or garbage
};
std::optional<host_port_text> split_host_port(std::string_view text);  // nullopt: an unclosed '[' or junk after ']'

// An IP address with an optional port, as listeners, the admin listener and DNS servers are written:
// "192.0.2.1", "192.0.2.1:53", "[2001:db8::1]", "[2001:db8::1]:53", or a bare "2001:db8::1" (no port).
struct ip_port {
    policy::address address;
    std::optional<std::uint16_t> port;
};
std::optional<ip_port> parse_ip_port(std::string_view text, port_rules rules = {});

// A CONNECT target or a command-line destination: name, dotted quad or [IPv6], and a port from 1 to 65535.
policy::parsed<policy::destination> parse_destination(std::string_view text);

}  // namespace egressd::protocol
