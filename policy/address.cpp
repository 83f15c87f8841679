#include "policy/address.hpp"

#include "protocol/hex.hpp"

#include <algorithm>
#include <charconv>
#include <vector>

namespace egressd::policy {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

using egressd::protocol::hex_value;

// One decimal octet: 0..255, digits only, no leading zero unless it is "0".
std::optional<std::uint8_t> parse_octet(std::string_view s)
{
    if (s.empty() || s.size() > 3 || (s.size() > 1 && s[0] == '0')) {
        return std::nullopt;
    }
    unsigned value = 0;
    for (char c : s) {
        if (!is_digit(c)) {
            return std::nullopt;
        }
        value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value > 255) {
        return std::nullopt;
    }
    return static_cast<std::uint8_t>(value);
}

std::optional<std::array<std::uint8_t, 4>> parse_quad(std::string_view text)
{
    std::array<std::uint8_t, 4> out{};
    for (std::size_t i = 0; i < 4; ++i) {
        std::size_t dot = text.find('.');
        if ((i < 3) != (dot != std::string_view::npos)) {
            return std::nullopt;
        }
        auto octet = parse_octet(text.substr(0, dot));
        if (!octet) {
            return std::nullopt;
        }
        out[i] = *octet;
        text = dot == std::string_view::npos ? std::string_view{} : text.substr(dot + 1);
    }
    return out;
}

std::vector<std::string_view> split(std::string_view text, char sep)
{
    std::vector<std::string_view> parts;
    std::size_t start = 0;
    for (;;) {
        std::size_t pos = text.find(sep, start);
        parts.push_back(text.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
        if (pos == std::string_view::npos) {
            return parts;
        }
        start = pos + 1;
    }
}

// Groups of 1-4 hex digits, written into out as 16-bit words; a trailing dotted quad counts as two.
bool parse_v6_words(std::string_view text, std::vector<std::uint16_t>& out, bool allow_quad)
{
    if (text.empty()) {
        return true;
    }
    auto parts = split(text, ':');
    for (std::size_t i = 0; i < parts.size(); ++i) {
        std::string_view part = parts[i];
        if (allow_quad && i + 1 == parts.size() && part.find('.') != std::string_view::npos) {
            auto quad = parse_quad(part);
            if (!quad) {
                return false;
            }
            out.push_back(static_cast<std::uint16_t>((*quad)[0] << 8 | (*quad)[1]));
            out.push_back(static_cast<std::uint16_t>((*quad)[2] << 8 | (*quad)[3]));
            continue;
        }
        if (part.empty() || part.size() > 4) {
            return false;
        }
        unsigned word = 0;
        for (char c : part) {
            int v = hex_value(c);
            if (v < 0) {
                return false;
            }
            word = word << 4 | static_cast<unsigned>(v);
        }
        out.push_back(static_cast<std::uint16_t>(word));
    }
    return true;
}

}  // namespace

std::optional<address> address::parse_v4(std::string_view text)
{
    auto quad = parse_quad(text);
    if (!quad) {
        return std::nullopt;
    }
    address a;
    a.family_ = family::v4;
    std::copy(quad->begin(), quad->end(), a.bytes_.begin());
    return a;
}

std::optional<address> address::parse_v6(std::string_view text)
{
    if (text.size() < 2 || text.size() > 45) {
        return std::nullopt;
    }
    std::size_t gap = text.find("::");
    std::vector<std::uint16_t> head;
    std::vector<std::uint16_t> tail;
    if (gap == std::string_view::npos) {
        if (!parse_v6_words(text, head, true) || head.size() != 8) {
            return std::nullopt;
        }
    } else {
        if (text.find("::", gap + 1) != std::string_view::npos) {
            return std::nullopt;
        }
        if (!parse_v6_words(text.substr(0, gap), head, false) ||
            !parse_v6_words(text.substr(gap + 2), tail, true) || head.size() + tail.size() > 7) {
            return std::nullopt;
        }
        head.resize(8 - tail.size(), 0);
        head.insert(head.end(), tail.begin(), tail.end());
    }
    std::array<std::uint8_t, 16> bytes{};
    for (std::size_t i = 0; i < 8; ++i) {
        bytes[2 * i] = static_cast<std::uint8_t>(head[i] >> 8);
        bytes[2 * i + 1] = static_cast<std::uint8_t>(head[i] & 0xff);
    }
    return from_v6(bytes);
}

std::optional<address> address::parse(std::string_view text)
{
    if (text.find(':') != std::string_view::npos) {
        return parse_v6(text);
    }
    return parse_v4(text);
}

address address::from_v4(std::uint32_t value)
{
    address a;
    a.family_ = family::v4;
    for (int i = 0; i < 4; ++i) {
        a.bytes_[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(value >> (24 - 8 * i));
    }
    return a;
}

address address::from_v6(const std::array<std::uint8_t, 16>& bytes)
{
    address a;
    a.family_ = family::v6;
    a.bytes_ = bytes;
    return a;
}

std::uint32_t address::v4_value() const
{
    return std::uint32_t{bytes_[0]} << 24 | std::uint32_t{bytes_[1]} << 16 | std::uint32_t{bytes_[2]} << 8 |
           std::uint32_t{bytes_[3]};
}

std::string address::to_string() const
{
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    if (is_v4()) {
        for (int i = 0; i < 4; ++i) {
            if (i > 0) {
                out += '.';
            }
            out += std::to_string(bytes_[static_cast<std::size_t>(i)]);
        }
        return out;
    }
    // RFC 5952 section 5: IPv4-mapped addresses keep their dotted quad, as logs and operators expect.
    if (auto v4 = unmapped(); v4.is_v4()) {
        return "::ffff:" + v4.to_string();
    }
    // RFC 5952: lower case, longest run (>= 2) of zero words compressed, leftmost on ties.
    std::array<unsigned, 8> words{};
    for (std::size_t i = 0; i < 8; ++i) {
        words[i] = static_cast<unsigned>(bytes_[2 * i] << 8 | bytes_[2 * i + 1]);
    }
    int best_start = -1;
    int best_len = 0;
    for (int i = 0; i < 8;) {
        int j = i;
        while (j < 8 && words[static_cast<std::size_t>(j)] == 0) {
            ++j;
        }
        if (j - i > best_len && j - i >= 2) {
            best_start = i;
            best_len = j - i;
        }
        i = j == i ? i + 1 : j;
    }
    for (int i = 0; i < 8; ++i) {
        if (i == best_start) {
            out += "::";
            i += best_len - 1;
            continue;
        }
        if (!out.empty() && out.back() != ':') {
            out += ':';
        }
        unsigned w = words[static_cast<std::size_t>(i)];
        bool started = false;
        for (int shift = 12; shift >= 0; shift -= 4) {
            unsigned nibble = (w >> shift) & 0xf;
            if (nibble != 0 || started || shift == 0) {
                out += hex[nibble];
                started = true;
            }
        }
    }
    return out;
}

std::string address::to_string(std::uint16_t port) const
{
    return (is_v4() ? to_string() : "[" + to_string() + "]") + ":" + std::to_string(port);
}

address address::unmapped() const
{
    bool mapped = !is_v4() && std::all_of(bytes_.begin(), bytes_.begin() + 10, [](std::uint8_t b) { return b == 0; }) &&
                  bytes_[10] == 0xff && bytes_[11] == 0xff;
    return mapped ? from_v4(std::uint32_t{bytes_[12]} << 24 | std::uint32_t{bytes_[13]} << 16 |
                            std::uint32_t{bytes_[14]} << 8 | std::uint32_t{bytes_[15]})
                  : *this;
}

std::optional<cidr> cidr::make(const address& base, int length)
{
    if (length < 0 || length > base.width()) {
        return std::nullopt;
    }
    for (int i = length; i < base.width(); ++i) {
        if (base.bit(i)) {
            return std::nullopt;
        }
    }
    cidr c;
    c.base_ = base;
    c.length_ = length;
    return c;
}

std::optional<cidr> cidr::parse(std::string_view text, std::string* error)
{
    auto fail = [&](std::string message) -> std::optional<cidr> {
        if (error != nullptr) {
            *error = std::move(message);
        }
        return std::nullopt;
    };
    std::size_t slash = text.find('/');
    auto base = address::parse(text.substr(0, slash));
    if (!base) {
        return fail("'" + std::string(text) +
                    "' is not a CIDR: expected a canonical IPv4 dotted quad or IPv6 address, optionally /length");
    }
    int length = base->width();
    if (slash != std::string_view::npos) {
        std::string_view len_text = text.substr(slash + 1);
        auto [ptr, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), length);
        if (len_text.empty() || ec != std::errc{} || ptr != len_text.data() + len_text.size() ||
            (len_text.size() > 1 && len_text[0] == '0') || length < 0 || length > base->width()) {
            return fail("'" + std::string(text) + "' has a bad prefix length: expected 0.." +
                        std::to_string(base->width()));
        }
    }
    auto result = make(*base, length);
    if (!result) {
        return fail("'" + std::string(text) + "' has host bits set below /" + std::to_string(length) +
                    ": expected the network address");
    }
    return result;
}

bool cidr::contains(const address& a) const
{
    if (a.fam() != base_.fam()) {
        return false;
    }
    const auto& x = a.bytes();
    const auto& y = base_.bytes();
    int full = length_ / 8;
    for (int i = 0; i < full; ++i) {
        if (x[static_cast<std::size_t>(i)] != y[static_cast<std::size_t>(i)]) {
            return false;
        }
    }
    int rest = length_ % 8;
    if (rest == 0) {
        return true;
    }
    auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
    return (x[static_cast<std::size_t>(full)] & mask) == (y[static_cast<std::size_t>(full)] & mask);
}

std::string cidr::to_string() const { return base_.to_string() + "/" + std::to_string(length_); }

}  // namespace egressd::policy
