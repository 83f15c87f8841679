#include "config/schema.hpp"

#include "protocol/utf8.hpp"

#include <array>
#include <charconv>

namespace egressd::config {
namespace {

std::string_view describe(const yaml_node& n)
{
    switch (n.type) {
    case yaml_node::kind::null:
        return "nothing";
    case yaml_node::kind::scalar:
        return "a scalar";
    case yaml_node::kind::sequence:
        return "a list";
    case yaml_node::kind::map:
        return "a mapping";
    }
    return "nothing";
}

}  // namespace

std::string diagnostic::format(std::string_view severity) const
{
    // A diagnostic about a whole file (it cannot be opened, say) has no position to name.
    std::string place = where.line == 0 ? file : file + ":" + std::to_string(where.line) + ":" + std::to_string(where.column);
    // A quoted key or value can hold any control character through a YAML escape ("\x1b[2J"); yaml-cpp writes
    // "\N" and "\_" as lone bytes that are no UTF-8.
    return protocol::escape_controls(place + ": " + std::string(severity) + ": " + message);
}

std::string join(const std::vector<std::string_view>& words, std::string_view separator)
{
    std::string out;
    for (const auto& w : words) {
        if (!out.empty()) {
            out += separator;
        }
        out += w;
    }
    return out;
}

void schema_reader::error(const yaml_node& at, std::string message) { error(at.where, std::move(message)); }

void schema_reader::error(mark at, std::string message) { errors_.push_back({file_, at, std::move(message)}); }

bool schema_reader::expect_map(const yaml_node& n, std::string_view what)
{
    if (n.is_map()) {
        return true;
    }
    error(n, "expected " + std::string(what) + " (a mapping), found " + std::string(describe(n)));
    return false;
}

bool schema_reader::expect_scalar(const yaml_node& n, std::string_view what)
{
    if (n.is_scalar()) {
        return true;
    }
    error(n, "expected " + std::string(what) + ", found " + std::string(describe(n)));
    return false;
}

void schema_reader::check_keys(const yaml_node& map, std::string_view where,
                               std::initializer_list<std::string_view> known)
{
    // How often each known key was seen so far. Every rule of a policy is checked, so the count lives on the
    // stack; only a schema of more than 64 keys (none today) would count in a vector.
    constexpr std::size_t inline_keys = 64;
    std::array<std::uint32_t, inline_keys> inline_counts{};
    std::vector<std::uint32_t> more_counts(known.size() > inline_keys ? known.size() : 0);
    std::uint32_t* counts = known.size() > inline_keys ? more_counts.data() : inline_counts.data();
    for (const auto& [key, value] : map.entries) {
        if (!key.is_scalar()) {
            error(key, "expected a key name in " + std::string(where) + ", found " + std::string(describe(key)));
            continue;
        }
        std::size_t index = 0;
        for (auto k : known) {
            if (k == key.value) {
                break;
            }
            ++index;
        }
        if (index == known.size()) {
            error(key, "unknown key '" + key.value + "' in " + std::string(where) + "; expected one of: " +
                           join(std::vector<std::string_view>(known), ", "));
            continue;
        }
        // Each earlier occurrence is reported, as a third one repeats the second's error.
        for (std::uint32_t i = 0; i < counts[index]; ++i) {
            error(key, "key '" + key.value + "' appears twice in " + std::string(where));
        }
        ++counts[index];
    }
}

const yaml_node* schema_reader::find(const yaml_node& map, std::string_view key) const
{
    for (const auto& [k, v] : map.entries) {
        if (k.is_scalar() && k.value == key) {
            return &v;
        }
    }
    return nullptr;
}

const yaml_node* schema_reader::require(const yaml_node& map, std::string_view key, std::string_view where)
{
    const yaml_node* value = find(map, key);
    if (value == nullptr) {
        error(map, "missing required key '" + std::string(key) + "' in " + std::string(where));
    }
    return value;
}

std::optional<std::string> schema_reader::string_value(const yaml_node& n, std::string_view what)
{
    if (!expect_scalar(n, what)) {
        return std::nullopt;
    }
    return n.value;
}

std::optional<std::int64_t> schema_reader::integer_value(const yaml_node& n, std::string_view what, std::int64_t min,
                                                         std::int64_t max)
{
    // Worded only on failure: every port of every rule comes through here.
    auto expected = [&] {
        return std::string(what) + " as a whole number from " + std::to_string(min) + " to " + std::to_string(max);
    };
    if (!n.is_scalar()) {
        error(n, "expected " + expected() + ", found " + std::string(describe(n)));
        return std::nullopt;
    }
    std::int64_t value = 0;
    const char* begin = n.value.data();
    const char* end = begin + n.value.size();
    auto [ptr, ec] = std::from_chars(begin, end, value);
    if (n.value.empty() || ec != std::errc{} || ptr != end || value < min || value > max) {
        error(n, "expected " + expected() + ", found '" + n.value + "'");
        return std::nullopt;
    }
    return value;
}

void schema_reader::not_a_list(const yaml_node& n, std::string_view what)
{
    error(n, "expected " + std::string(what) + " (a list), found " + std::string(describe(n)));
}

void schema_reader::not_a_scalar_item(const yaml_node& item, std::string_view what)
{
    expect_scalar(item, std::string(what) + " item");
}

std::vector<const yaml_node*> schema_reader::scalar_list(const yaml_node& n, std::string_view what)
{
    std::vector<const yaml_node*> out;
    if (n.is_sequence()) {
        out.reserve(n.items.size());
    }
    for_each_scalar(n, what, [&](const yaml_node& item) { out.push_back(&item); });
    return out;
}

}  // namespace egressd::config
