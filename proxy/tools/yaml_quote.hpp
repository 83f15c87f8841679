#pragma once

#include <string>
#include <string_view>

namespace egressd::proxy::tools {

// text as a YAML double-quoted scalar, for the files the offline tools write (suggested and imported policies):
// quotes and backslashes escaped, control characters as \xNN, so that whatever a source file held reads back as
// the same string.
inline std::string yaml_quoted(std::string_view text)
{
    static constexpr char hex[] = "0123456789abcdef";
    std::string out = "\"";
    for (char c : text) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
            out += "\\x";
            out += hex[(static_cast<unsigned char>(c) >> 4) & 0xf];
            out += hex[c & 0xf];
        } else {
            out += c;
        }
    }
    return out + '"';
}

}  // namespace egressd::proxy::tools
