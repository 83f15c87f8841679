// The YAML fast path (libfyaml) against the reference (yaml-cpp), which words every error: they must build the
// same tree (values, kinds, positions) or the same error at the same place. A differential run inside egressd:
// every difference found so far became a case the fast path hands to the reference (config/yaml_tree.cpp).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string_view>

#include "fuzz/invariant.hpp"
#include "config/yaml_tree.hpp"

namespace {

using egressd::fuzz::require;

using egressd::config::yaml_node;

bool same_tree(const yaml_node& a, const yaml_node& b)
{
    if (a.type != b.type || a.plain != b.plain || a.value != b.value || a.where.line != b.where.line ||
        a.where.column != b.where.column || a.items.size() != b.items.size() || a.entries.size() != b.entries.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.items.size(); ++i) {
        if (!same_tree(a.items[i], b.items[i])) {
            return false;
        }
    }
    for (std::size_t i = 0; i < a.entries.size(); ++i) {
        if (!same_tree(a.entries[i].key, b.entries[i].key) || !same_tree(a.entries[i].value, b.entries[i].value)) {
            return false;
        }
    }
    return true;
}

// Both parsers, with the small alias budget the unit tests use so that an alias bomb fails fast in both.
void compare_engines(std::string_view text)
{
    egressd::config::yaml_error fast_error;
    egressd::config::yaml_error reference_error;
    auto fast = egressd::config::parse_yaml(text, fast_error, 20'000, egressd::config::yaml_engine::libfyaml);
    auto reference = egressd::config::parse_yaml(text, reference_error, 20'000, egressd::config::yaml_engine::yaml_cpp);
    require(fast.has_value() == reference.has_value());
    if (!fast) {
        require(fast_error.message == reference_error.message);
        require(fast_error.where.line == reference_error.where.line);
        require(fast_error.where.column == reference_error.where.column);
        return;
    }
    require(same_tree(*fast, *reference));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    compare_engines(std::string_view(reinterpret_cast<const char*>(data), size));
    return 0;
}
