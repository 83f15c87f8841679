#pragma once

#include <cstddef>
#include <string_view>

namespace egressd::protocol {

// The length of the well-formed UTF-8 sequence starting at text[i] (RFC 3629: no overlong forms, no surrogates,
// nothing above U+10FFFF), or 0 when the bytes there are not one.
std::size_t utf8_sequence(std::string_view text, std::size_t i);

}  // namespace egressd::protocol
