#include "policy/domain.hpp"

#include <array>

namespace egressd::policy {
namespace {

constexpr std::size_t max_name_length = 253;
constexpr std::size_t max_label_length = 63;

// Each byte as it stands in a normalized name: letters lower-cased, digits, '-', '_' and '.' as they are, and 0
// for every byte not allowed.
constexpr std::array<char, 256> ldh_lower = [] {
    std::array<char, 256> table{};
    for (int c = 0; c < 256; ++c) {
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.') {
            table[static_cast<std::size_t>(c)] = static_cast<char>(c);
        } else if (c >= 'A' && c <= 'Z') {
            table[static_cast<std::size_t>(c)] = static_cast<char>(c - 'A' + 'a');
        }
    }
    return table;
}();

bool all_digits_or_hex_prefixed(std::string_view label)
{
    if (label.empty()) {
        return false;
    }
    // inet_aton reads a bare "0x" as 0, so 1.0x is 1.0.0.0 to some resolvers.
    if (label.size() >= 2 && label[0] == '0' && label[1] == 'x') {
        return true;
    }
    for (char c : label) {
        if (c < '0' || c > '9') {
            return false;
        }
    }
    return true;
}

}  // namespace

std::optional<std::string> normalize_domain_name(std::string_view text, std::string& error)
{
    if (!text.empty() && text.back() == '.') {
        text.remove_suffix(1);
    }
    if (text.empty()) {
        error = "empty domain name";
        return std::nullopt;
    }
    if (text.size() > max_name_length) {
        error = "domain name longer than 253 characters";
        return std::nullopt;
    }
    // One pass over a buffer sized once: every destination of a policy comes through here.
    std::string out(text.size(), '\0');
    char* to = out.data();
    std::size_t label_start = 0;
    for (std::size_t i = 0; i <= text.size(); ++i) {
        char c = i == text.size() ? '.' : ldh_lower[static_cast<unsigned char>(text[i])];
        if (c != '.' && c != 0) {
            to[i] = c;
            continue;
        }
        if (c == 0) {
            if (static_cast<unsigned char>(text[i]) >= 0x80) {
                error = "non-ASCII name '" + std::string(text) +
                        "': write internationalized names as punycode A-labels (xn--...)";
            } else {
                error = "character '" + std::string(1, text[i]) + "' not allowed in domain name '" +
                        std::string(text) + "': expected letters, digits, '-' and '_'";
            }
            return std::nullopt;
        }
        std::string_view label(to + label_start, i - label_start);
        if (label.empty()) {
            error = "empty label in '" + std::string(text) + "'";
            return std::nullopt;
        }
        if (label.size() > max_label_length) {
            error = "label longer than 63 characters in '" + std::string(text) + "'";
            return std::nullopt;
        }
        if (label.front() == '-' || label.back() == '-') {
            error = "label starts or ends with '-' in '" + std::string(text) + "'";
            return std::nullopt;
        }
        if (i < text.size()) {
            to[i] = '.';
            label_start = i + 1;
        }
    }
    // A name whose last label is numeric is an IP address in some non-canonical form (127.1, 0x7f.1),
    // which clients and resolvers interpret differently; it is never a name.
    std::size_t last_dot = out.rfind('.');
    std::string_view last = std::string_view(out).substr(last_dot == std::string::npos ? 0 : last_dot + 1);
    if (all_digits_or_hex_prefixed(last)) {
        error = "'" + std::string(text) +
                "' looks like an IP address in a non-canonical form: write IPv4 as a dotted quad like 192.0.2.1";
        return std::nullopt;
    }
    return out;
}

std::string domain_pattern::to_string() const
{
    switch (kind) {
    case pattern_kind::exact:
        return name;
    case pattern_kind::subdomains:
        return "*." + name;
    case pattern_kind::domain:
        return "." + name;
    }
    return name;
}

parsed<domain_pattern> parse_domain_pattern(std::string_view text)
{
    parsed<domain_pattern> result;
    domain_pattern pattern;
    if (text.starts_with("*.")) {
        pattern.kind = pattern_kind::subdomains;
        text.remove_prefix(2);
    } else if (text.starts_with(".")) {
        pattern.kind = pattern_kind::domain;
        text.remove_prefix(1);
    }
    if (text.find('*') != std::string_view::npos) {
        result.error = "wildcard '*' is allowed only as the whole leftmost label, as in *.example.com";
        return result;
    }
    if (pattern.kind != pattern_kind::exact && (text.empty() || text == ".")) {
        result.error = "a wildcard needs a domain after it, as in *.example.com";
        return result;
    }
    auto name = normalize_domain_name(text, result.error);
    if (!name) {
        return result;
    }
    pattern.name = std::move(*name);
    result.value = std::move(pattern);
    return result;
}

parsed<host> host::parse(std::string_view text)
{
    parsed<host> result;
    if (text.empty()) {
        result.error = "empty host";
        return result;
    }
    if (text.front() == '[') {
        if (text.size() < 2 || text.back() != ']') {
            result.error = "unterminated IPv6 literal";
            return result;
        }
        auto a = address::parse_v6(text.substr(1, text.size() - 2));
        if (!a) {
            result.error = "invalid IPv6 literal";
            return result;
        }
        result.value = host{};
        result.value->value_ = *a;
        return result;
    }
    if (auto a = address::parse(text)) {
        result.value = host{};
        result.value->value_ = *a;
        return result;
    }
    if (text.find(':') != std::string_view::npos) {
        result.error = "invalid IPv6 literal";
        return result;
    }
    auto name = normalize_domain_name(text, result.error);
    if (!name) {
        return result;
    }
    result.value = host{};
    result.value->value_ = std::move(*name);
    return result;
}

std::string host::to_string() const
{
    if (const auto* a = literal()) {
        return a->is_v4() ? a->to_string() : "[" + a->to_string() + "]";
    }
    return *name();
}

}  // namespace egressd::policy
