#include "protocol/proxy_protocol/proxy_protocol.hpp"

#include <algorithm>
#include <array>

namespace egressd::protocol::proxy_protocol {

namespace {

constexpr std::string_view v1_magic = "PROXY ";
// The v2 signature holds a NUL, so the length must be given.
constexpr std::string_view v2_signature{"\r\n\r\n\0\r\nQUIT\n", 12};

// v2 fam byte values the spec defines ("In practice, the following protocol bytes are expected").
constexpr std::uint8_t fam_unspec = 0x00;
constexpr std::uint8_t fam_tcp4 = 0x11;
constexpr std::uint8_t fam_udp4 = 0x12;
constexpr std::uint8_t fam_tcp6 = 0x21;
constexpr std::uint8_t fam_udp6 = 0x22;
constexpr std::uint8_t fam_unix_stream = 0x31;
constexpr std::uint8_t fam_unix_dgram = 0x32;

constexpr std::uint8_t command_local = 0x0;
constexpr std::uint8_t command_proxy = 0x1;

constexpr std::size_t tlv_header_size = 3;
constexpr std::uint8_t tlv_crc32c = 0x03;
constexpr std::size_t crc32c_size = 4;

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

std::uint8_t byte_at(std::string_view data, std::size_t i) { return static_cast<std::uint8_t>(data[i]); }

std::uint16_t be16(std::string_view data, std::size_t i)
{
    return static_cast<std::uint16_t>(byte_at(data, i) << 8 | byte_at(data, i + 1));
}

std::uint32_t be32(std::string_view data, std::size_t i)
{
    return std::uint32_t{be16(data, i)} << 16 | be16(data, i + 2);
}

// True when data is a prefix of magic or magic a prefix of data.
bool agrees_with(std::string_view data, std::string_view magic)
{
    const std::size_t n = std::min(data.size(), magic.size());
    return data.substr(0, n) == magic.substr(0, n);
}

// --- v1 -------------------------------------------------------------------------------------------------------

// Whether s can still grow into a canonical dotted quad (policy::address::parse_v4's grammar): at most four
// octets of 0-255, no leading zeros, single dots.
bool v4_prefix(std::string_view s)
{
    std::size_t dots = 0;
    std::size_t digits = 0;
    unsigned value = 0;
    for (char c : s) {
        if (c == '.') {
            if (digits == 0 || ++dots > 3) {
                return false;
            }
            digits = 0;
            value = 0;
            continue;
        }
        if (!is_digit(c) || (digits == 1 && value == 0)) {
            return false;
        }
        value = value * 10 + static_cast<unsigned>(c - '0');
        ++digits;
        if (value > 255) {
            return false;
        }
    }
    return true;
}

// Whether s can still grow into an address policy::address::parse_v6 accepts: groups of 1-4 hex digits, at most
// one "::" standing for at least one zero group, eight groups in all, and an optional dotted quad as the last
// two. Checking the partial field lets a garbage line fail at its first bad byte, as the spec recommends.
bool v6_prefix(std::string_view s)
{
    if (s.size() > 45) {
        return false;
    }
    std::size_t words = 0;  // complete groups before the current one, on both sides of the gap
    bool gap = false;
    bool quad = false;
    std::size_t part_start = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        const std::string_view part = s.substr(part_start, i - part_start);
        if (i == 1 && s[0] == ':' && c != ':') {
            return false;  // a leading colon is only ever the start of "::"
        }
        if (c == ':') {
            if (quad) {
                return false;  // the quad is always last
            }
            if (part.empty()) {
                if (i > 0) {
                    // The second colon of "::": one per address, and it must stand for at least one group.
                    if (gap || words > 7) {
                        return false;
                    }
                    gap = true;
                }
            } else {
                ++words;
                // Another group must follow this colon (or, without a gap yet, the gap itself).
                if (words > (gap ? 6u : 7u)) {
                    return false;
                }
            }
            part_start = i + 1;
        } else if (c == '.') {
            // The current group turns out to start a dotted quad, which takes the last two groups.
            if (!(gap ? words + 2 <= 7 : words == 6) || !v4_prefix(s.substr(part_start, i + 1 - part_start))) {
                return false;
            }
            quad = true;
        } else if (quad) {
            if (!v4_prefix(s.substr(part_start, i + 1 - part_start))) {
                return false;
            }
        } else {
            if (!is_hex(c) || part.size() >= 4 || words + 1 > (gap ? 7u : 8u)) {
                return false;
            }
        }
    }
    return true;
}

// A port so far: decimal, no leading zero (other than "0" itself), at most 65535. value is what s spells.
bool port_prefix(std::string_view s, unsigned& value)
{
    value = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (!is_digit(s[i]) || (i == 1 && s[0] == '0')) {
            return false;
        }
        value = value * 10 + static_cast<unsigned>(s[i] - '0');
        if (value > 65535) {
            return false;
        }
    }
    return true;
}

// One space-separated field of the line from pos: its text and the byte that ended it, if it has arrived.
struct field {
    std::string_view text;
    std::optional<char> end;
};

field next_field(std::string_view line, std::size_t pos)
{
    const std::size_t stop = line.find_first_of(" \r\n", pos);
    if (stop == std::string_view::npos) {
        return {line.substr(pos), std::nullopt};
    }
    return {line.substr(pos, stop - pos), line[stop]};
}

// "\r\n" at pos: the spec forbids ending the line with a lone CR or LF.
status expect_lf(std::string_view line, std::size_t pos, header& h, header& out)
{
    if (pos == line.size()) {
        return status::incomplete;
    }
    if (line[pos] != '\n') {
        return status::malformed;
    }
    h.size = pos + 1;
    out = h;
    return status::complete;
}

// After "PROXY UNKNOWN": CRLF at once, or a space and anything up to the CRLF, which the spec says to ignore.
// We still insist on printable ASCII there: a real sender writes addresses and ports.
status parse_v1_unknown(std::string_view line, std::size_t pos, header& out)
{
    header h;
    h.version = 1;
    h.local = true;
    if (line[pos] == ' ') {
        ++pos;
    }
    for (; pos < line.size(); ++pos) {
        const char c = line[pos];
        if (c == '\r') {
            return expect_lf(line, pos + 1, h, out);
        }
        if (c < 0x20 || c > 0x7e) {
            return status::malformed;
        }
    }
    return status::incomplete;
}

// The line so far, at most max_v1_size bytes, starting with "PROXY ".
status parse_v1_line(std::string_view line, header& out)
{
    std::size_t pos = v1_magic.size();

    const field proto = next_field(line, pos);
    if (!proto.end) {
        for (std::string_view name : {"TCP4", "TCP6", "UNKNOWN"}) {
            if (name.starts_with(proto.text)) {
                return status::incomplete;
            }
        }
        return status::malformed;
    }
    if (proto.text == "UNKNOWN") {
        return parse_v1_unknown(line, pos + proto.text.size(), out);
    }
    if ((proto.text != "TCP4" && proto.text != "TCP6") || *proto.end != ' ') {
        return status::malformed;
    }
    const bool v4 = proto.text == "TCP4";
    pos += proto.text.size() + 1;

    header h;
    h.version = 1;
    for (auto* addr : {&h.source, &h.destination}) {
        const field f = next_field(line, pos);
        if (!f.end) {
            return (v4 ? v4_prefix(f.text) : v6_prefix(f.text)) ? status::incomplete : status::malformed;
        }
        // The announced family decides the grammar: an IPv6 address under TCP4 (or the reverse) is refused.
        *addr = v4 ? policy::address::parse_v4(f.text) : policy::address::parse_v6(f.text);
        if (*f.end != ' ' || !*addr) {
            return status::malformed;
        }
        pos += f.text.size() + 1;
    }

    for (auto [port, terminator] : {std::pair{&h.source_port, ' '}, std::pair{&h.destination_port, '\r'}}) {
        const field f = next_field(line, pos);
        unsigned value = 0;
        if (!port_prefix(f.text, value)) {
            return status::malformed;
        }
        if (!f.end) {
            return status::incomplete;
        }
        if (*f.end != terminator || f.text.empty()) {
            return status::malformed;
        }
        *port = static_cast<std::uint16_t>(value);
        pos += f.text.size() + 1;
    }
    return expect_lf(line, pos, h, out);
}

status parse_v1(std::string_view data, header& out)
{
    const status s = parse_v1_line(data.substr(0, max_v1_size), out);
    // No CRLF within the first 107 bytes: the spec says to declare the line invalid.
    if (s == status::incomplete && data.size() >= max_v1_size) {
        return status::malformed;
    }
    return s;
}

// --- v2 -------------------------------------------------------------------------------------------------------

// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as RFC 4960 appendix B computes it.
constexpr std::array<std::uint32_t, 256> crc32c_table = [] {
    std::array<std::uint32_t, 256> table{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t crc = i;
        for (int bit = 0; bit < 8; ++bit) {
            crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
        }
        table[i] = crc;
    }
    return table;
}();

std::uint32_t crc32c_update(std::uint32_t crc, std::string_view bytes)
{
    for (char c : bytes) {
        crc = crc32c_table[(crc ^ static_cast<std::uint8_t>(c)) & 0xff] ^ (crc >> 8);
    }
    return crc;
}

// The address block a defined fam byte carries; nullopt for the values the spec says to reject.
std::optional<std::size_t> address_block_size(std::uint8_t fam)
{
    switch (fam) {
    case fam_unspec:
        return 0;
    case fam_tcp4:
    case fam_udp4:
        return 12;
    case fam_tcp6:
    case fam_udp6:
        return 36;
    case fam_unix_stream:
    case fam_unix_dgram:
        return 216;
    default:
        return std::nullopt;
    }
}

// data starts with the 12-byte signature.
status parse_v2(std::string_view data, header& out)
{
    if (data.size() <= 12) {
        return status::incomplete;
    }
    const std::uint8_t ver_cmd = byte_at(data, 12);
    const std::uint8_t command = ver_cmd & 0x0f;
    if ((ver_cmd >> 4) != 2 || (command != command_local && command != command_proxy)) {
        return status::malformed;
    }

    if (data.size() <= 13) {
        return status::incomplete;
    }
    const std::uint8_t fam = byte_at(data, 13);
    const auto block = address_block_size(fam);
    if (!block) {
        return status::malformed;
    }
    // LOCAL: the spec says to ignore the family and the whole block. PROXY over UNSPEC: the spec lets us use
    // the real endpoints. PROXY over UDP or UNIX: announcing a non-TCP connection on a TCP listener cannot be
    // right for an HTTP proxy, so it is refused rather than quietly treated as local.
    const bool local = command == command_local || fam == fam_unspec;
    if (!local && fam != fam_tcp4 && fam != fam_tcp6) {
        return status::malformed;
    }

    if (data.size() < v2_fixed_size) {
        return status::incomplete;
    }
    const std::size_t length = be16(data, 14);
    if (length > max_v2_length || (!local && length < *block)) {
        return status::malformed;
    }
    const std::size_t total = v2_fixed_size + length;

    // TLVs after the addresses must tile the rest of the header exactly; each is checked once its 3-byte head
    // has arrived, so an overrun fails without waiting for the bytes it claims.
    std::optional<std::size_t> crc_at;
    if (!local) {
        std::size_t pos = v2_fixed_size + *block;
        while (pos < total) {
            if (pos + tlv_header_size > total) {
                return status::malformed;
            }
            if (pos + tlv_header_size > data.size()) {
                break;
            }
            const std::uint8_t type = byte_at(data, pos);
            const std::size_t value_size = be16(data, pos + 1);
            if (pos + tlv_header_size + value_size > total) {
                return status::malformed;
            }
            if (type == tlv_crc32c) {
                // Two checksums could not both be computed with "the" checksum field zeroed.
                if (value_size != crc32c_size || crc_at) {
                    return status::malformed;
                }
                crc_at = pos + tlv_header_size;
            }
            pos += tlv_header_size + value_size;
        }
    }
    if (data.size() < total) {
        return status::incomplete;
    }

    // The spec: a receiver that supports the checksum MUST verify it over the whole header, the checksum field
    // read as zeros.
    if (crc_at) {
        std::uint32_t crc = 0xffffffffu;
        crc = crc32c_update(crc, data.substr(0, *crc_at));
        crc = crc32c_update(crc, std::string_view{"\0\0\0\0", crc32c_size});
        crc = crc32c_update(crc, data.substr(*crc_at + crc32c_size, total - *crc_at - crc32c_size));
        if ((crc ^ 0xffffffffu) != be32(data, *crc_at)) {
            return status::malformed;
        }
    }

    header h;
    h.version = 2;
    h.local = local;
    h.size = total;
    if (!local) {
        constexpr std::size_t at = v2_fixed_size;
        if (fam == fam_tcp4) {
            h.source = policy::address::from_v4(be32(data, at));
            h.destination = policy::address::from_v4(be32(data, at + 4));
            h.source_port = be16(data, at + 8);
            h.destination_port = be16(data, at + 10);
        } else {
            std::array<std::uint8_t, 16> src{};
            std::array<std::uint8_t, 16> dst{};
            for (std::size_t i = 0; i < 16; ++i) {
                src[i] = byte_at(data, at + i);
                dst[i] = byte_at(data, at + 16 + i);
            }
            h.source = policy::address::from_v6(src);
            h.destination = policy::address::from_v6(dst);
            h.source_port = be16(data, at + 32);
            h.destination_port = be16(data, at + 34);
        }
    }
    out = h;
    return status::complete;
}

}  // namespace

std::string_view to_string(status s)
{
    switch (s) {
    case status::incomplete:
        return "incomplete";
    case status::complete:
        return "complete";
    case status::not_proxy:
        return "not_proxy";
    case status::malformed:
        return "malformed";
    }
    return "unknown";
}

status parse(std::string_view data, header& out)
{
    out = header{};
    if (data.empty()) {
        return status::incomplete;
    }
    if (agrees_with(data, v1_magic)) {
        return data.size() < v1_magic.size() ? status::incomplete : parse_v1(data, out);
    }
    if (agrees_with(data, v2_signature)) {
        return data.size() < v2_signature.size() ? status::incomplete : parse_v2(data, out);
    }
    return status::not_proxy;
}

}  // namespace egressd::protocol::proxy_protocol
