#pragma once

#include "policy/address.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace egressd::policy {

// How a domain pattern matches, written in YAML as:
//   api.example.com   exact      that name only
//   *.example.com     subdomains any name below example.com, at any depth; not example.com itself
//   .example.com      domain     example.com and every name below it
enum class pattern_kind : std::uint8_t { exact, subdomains, domain };

struct domain_pattern {
    pattern_kind kind = pattern_kind::exact;
    std::string name;  // normalized: lower case, no trailing dot, no leading "*." or "."

    std::string to_string() const;
    friend bool operator==(const domain_pattern&, const domain_pattern&) = default;
};

// Result of parsing user text: the value, or an error that says what was expected.
template <typename T>
struct parsed {
    std::optional<T> value;
    std::string error;
};

// A domain pattern from policy text. Case-insensitive, one trailing dot ignored, LDH labels (and "_"),
// punycode A-labels for non-ASCII (a U-label is an error naming the rule), "*" only as the whole leftmost label.
parsed<domain_pattern> parse_domain_pattern(std::string_view text);

// A destination host as the proxy or the CLI received it, normalized once: either a DNS name
// (lower case, one trailing dot removed) or an IP literal (strict forms only, see address::parse).
class host {
public:
    // Accepts a name, a dotted quad, or an IPv6 literal with or without brackets.
    // Numeric-looking names that are not canonical literals (127.1, 0x7f000001, 2130706433) are refused.
    static parsed<host> parse(std::string_view text);

    bool is_address() const { return std::holds_alternative<address>(value_); }
    const address* literal() const { return std::get_if<address>(&value_); }
    const std::string* name() const { return std::get_if<std::string>(&value_); }
    std::string to_string() const;

private:
    std::variant<std::string, address> value_;
};

// A destination as a CONNECT request or the command line names it (protocol::parse_destination reads one).
struct destination {
    host target;
    std::uint16_t port = 0;
};

// Shared by patterns and hosts: checks and lower-cases a dotted name; error says what is wrong.
std::optional<std::string> normalize_domain_name(std::string_view text, std::string& error);

}  // namespace egressd::policy
