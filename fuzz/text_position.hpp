#pragma once

// Shared by the configuration fuzz targets: whether a diagnostic's line:column lies inside the text it is about,
// and whether its formatted line is free of control characters.

#include "protocol/utf8.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace egressd::fuzz {

// The length in bytes of each line of text (1-based line N is lengths[N - 1]); a text ending in '\n' has an
// empty last line, where a parser reports "unexpected end of input".
inline std::vector<std::size_t> line_lengths(std::string_view text)
{
    std::vector<std::size_t> lengths;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= text.size(); ++i) {
        if (i == text.size() || text[i] == '\n') {
            lengths.push_back(i - start);
            start = i + 1;
        }
    }
    return lengths;
}

// A position is inside when its line exists and its column is at most one past the line's end (an error about
// a missing value points just after the last byte).
inline bool inside(const std::vector<std::size_t>& lengths, std::uint32_t line, std::uint32_t column)
{
    if (line == 0 || column == 0 || line > lengths.size()) {
        return false;
    }
    return column <= lengths[line - 1] + 1;
}

// Valid UTF-8 with no C0 control, DEL or C1 control (U+0080..U+009F): what a formatted diagnostic must be.
inline bool free_of_controls(std::string_view text)
{
    for (std::size_t i = 0; i < text.size();) {
        auto c = static_cast<unsigned char>(text[i]);
        auto length = egressd::protocol::utf8_sequence(text, i);
        if (length == 0 || c < 0x20 || c == 0x7f || (c == 0xc2 && static_cast<unsigned char>(text[i + 1]) <= 0x9f)) {
            return false;
        }
        i += length;
    }
    return true;
}

}  // namespace egressd::fuzz
