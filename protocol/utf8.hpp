#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace egressd::protocol {

// The length of the well-formed UTF-8 sequence starting at text[i] (RFC 3629: no overlong forms, no surrogates,
// nothing above U+10FFFF), or 0 when the bytes there are not one.
std::size_t utf8_sequence(std::string_view text, std::size_t i);

// text with control characters written as \xNN (C0, DEL, and bytes that are no UTF-8) or \uNNNN (C1), for
// messages that quote what a file or a peer wrote and go to terminals, log lines and answers.
std::string escape_controls(std::string_view text);

}  // namespace egressd::protocol
