#pragma once

#include <cstdint>
#include <istream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace egressd::config {

// Position in a source file, 1-based.
struct mark {
    std::uint32_t line = 0;
    std::uint32_t column = 0;
};

// A YAML document as plain data, every node carrying its position. Built from a parser's events: yaml-cpp's
// node API costs twice the time and a hundred times the memory on million-rule policies.
struct yaml_entry;

struct yaml_node {
    enum class kind : std::uint8_t { null, scalar, sequence, map };

    kind type = kind::null;
    bool plain = false;  // scalar written without quotes (so "443" and 443 can be told apart)
    mark where;
    std::string value;                                      // scalar text
    std::vector<yaml_node> items;                           // sequence items
    std::vector<yaml_entry> entries;                        // map entries, in file order

    bool is_map() const { return type == kind::map; }
    bool is_sequence() const { return type == kind::sequence; }
    bool is_scalar() const { return type == kind::scalar; }
    bool is_null() const { return type == kind::null; }
};

// A named pair rather than std::pair: clang cannot instantiate std::pair of a type still being defined.
struct yaml_entry {
    yaml_node key;
    yaml_node value;
};

struct yaml_error {
    mark where;
    std::string message;
};

// Which parser reads the text. libfyaml scans six times faster than yaml-cpp (a 70 MiB policy: 1.2 s against
// 7 s). Whenever it reports an error, or meets what it cannot read exactly as yaml-cpp would (an unknown anchor,
// an empty sequence item, a block scalar, and the corners listed in yaml_tree.cpp, found by the yaml_engines fuzz
// target), yaml-cpp reads the text again and its result stands: every error message and position is yaml-cpp's.
// yaml_cpp skips the fast path (tests compare the two).
enum class yaml_engine : std::uint8_t { libfyaml, yaml_cpp };

// Parses one YAML document. Anchors and aliases are expanded, within max_nodes so a small file cannot
// expand into billions of nodes; aliases may add at most 400,000 nodes or as many as the document writes
// out, whichever is more, so that an alias bomb fails before it takes much memory. More than one document,
// or none, is an error.
std::optional<yaml_node> parse_yaml(std::string_view text, yaml_error& error, std::size_t max_nodes = 50'000'000,
                                    yaml_engine engine = yaml_engine::libfyaml);
std::optional<yaml_node> parse_yaml(std::istream& in, yaml_error& error, std::size_t max_nodes = 50'000'000);

}  // namespace egressd::config
