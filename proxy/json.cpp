#include "proxy/json.hpp"

namespace egressd::proxy {

namespace {

// Length of the well-formed UTF-8 sequence at s[i] (RFC 3629: no overlongs, no surrogates), or 0.
std::size_t utf8_sequence_length(std::string_view s, std::size_t i)
{
    auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    auto continuation = [&](std::size_t k) { return k < s.size() && (byte(k) & 0xc0) == 0x80; };
    unsigned char b = byte(i);
    if (b >= 0xc2 && b <= 0xdf) {
        return continuation(i + 1) ? 2 : 0;
    }
    if (b >= 0xe0 && b <= 0xef) {
        if (!continuation(i + 1) || !continuation(i + 2) || (b == 0xe0 && byte(i + 1) < 0xa0) ||
            (b == 0xed && byte(i + 1) > 0x9f)) {
            return 0;
        }
        return 3;
    }
    if (b >= 0xf0 && b <= 0xf4) {
        if (!continuation(i + 1) || !continuation(i + 2) || !continuation(i + 3) || (b == 0xf0 && byte(i + 1) < 0x90) ||
            (b == 0xf4 && byte(i + 1) > 0x8f)) {
            return 0;
        }
        return 4;
    }
    return 0;
}

// Printable ASCII that JSON takes as it is.
constexpr bool is_plain(unsigned char u) { return u >= 0x20 && u < 0x7f && u != '"' && u != '\\'; }

}  // namespace

void append_json_string(std::string& out, std::string_view s)
{
    static constexpr char hex[] = "0123456789abcdef";
    out += '"';
    for (std::size_t i = 0; i < s.size(); ++i) {
        // Runs of printable ASCII (nearly every byte of every event) go in one append: two events per
        // connection made this loop a sixth of the proxy's instructions when it appended byte by byte.
        std::size_t plain = i;
        while (plain < s.size() && is_plain(static_cast<unsigned char>(s[plain]))) {
            ++plain;
        }
        if (plain > i) {
            out.append(s.data() + i, plain - i);
            i = plain;
            if (i == s.size()) {
                break;
            }
        }
        char c = s[i];
        auto u = static_cast<unsigned char>(c);
        switch (c) {
        case '"':
            out += "\\\"";
            break;
        case '\\':
            out += "\\\\";
            break;
        case '\n':
            out += "\\n";
            break;
        case '\r':
            out += "\\r";
            break;
        case '\t':
            out += "\\t";
            break;
        default:
            if (u >= 0x80) {
                // Well-formed UTF-8 passes through; any other byte becomes U+FFFD, so logs stay valid JSON
                // whatever a client sent.
                if (std::size_t n = utf8_sequence_length(s, i); n > 0) {
                    out.append(s.substr(i, n));
                    i += n - 1;
                } else {
                    out += "\\ufffd";
                }
            } else if (u < 0x20 || u == 0x7f) {
                out += "\\u00";
                out += hex[u >> 4];
                out += hex[u & 0xf];
            } else {
                out += c;
            }
        }
    }
    out += '"';
}

std::string json_string(std::string_view s)
{
    std::string out;
    append_json_string(out, s);
    return out;
}

}  // namespace egressd::proxy

namespace egressd::proxy {

json_value::json_value(const std::vector<std::string>& list) : json_("[")
{
    for (std::size_t i = 0; i < list.size(); ++i) {
        if (i > 0) {
            json_ += ',';
        }
        append_json_string(json_, list[i]);
    }
    json_ += ']';
}

json_value json_value::raw(std::string json) { return json_value(raw_tag{}, std::move(json)); }

}  // namespace egressd::proxy
