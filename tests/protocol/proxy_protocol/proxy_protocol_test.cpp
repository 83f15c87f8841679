#include "protocol/proxy_protocol/proxy_protocol.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <random>
#include <string>
#include <vector>

namespace egressd::protocol::proxy_protocol {

// So that failures print "malformed" rather than a number (found by argument-dependent lookup, hence outside
// the anonymous namespace).
void PrintTo(status s, std::ostream* os) { *os << to_string(s); }

namespace {

using namespace std::string_literals;

// --- Building headers by hand ---------------------------------------------------------------------------------

const std::string signature("\r\n\r\n\0\r\nQUIT\n", 12);

std::string be16(unsigned v)
{
    return {static_cast<char>((v >> 8) & 0xff), static_cast<char>(v & 0xff)};
}

std::string be32(std::uint32_t v) { return be16(v >> 16) + be16(v & 0xffff); }

std::string bytes(std::initializer_list<unsigned> values)
{
    std::string out;
    for (unsigned v : values) {
        out += static_cast<char>(v);
    }
    return out;
}

// A v2 header whose length field says `length`, whatever the body really holds.
std::string v2_with_length(unsigned ver_cmd, unsigned fam, unsigned length, const std::string& body)
{
    return signature + bytes({ver_cmd, fam}) + be16(length) + body;
}

std::string v2(unsigned ver_cmd, unsigned fam, const std::string& body)
{
    return v2_with_length(ver_cmd, fam, static_cast<unsigned>(body.size()), body);
}

std::string tlv(unsigned type, const std::string& value)
{
    return bytes({type}) + be16(static_cast<unsigned>(value.size())) + value;
}

constexpr unsigned proxy_cmd = 0x21;
constexpr unsigned local_cmd = 0x20;

// 192.0.2.1:56324 -> 198.51.100.7:443
const std::string tcp4_block = bytes({192, 0, 2, 1, 198, 51, 100, 7}) + be16(56324) + be16(443);
// 2001:db8::1:1234 -> 2001:db8::ff:80
const std::string tcp6_block = bytes({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}) +
                               bytes({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff}) + be16(1234) +
                               be16(80);

// CRC32C done bit by bit, independently of the parser's table.
std::uint32_t crc32c(const std::string& data)
{
    std::uint32_t crc = 0xffffffffu;
    for (char c : data) {
        crc ^= static_cast<std::uint8_t>(c);
        for (int bit = 0; bit < 8; ++bit) {
            crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
        }
    }
    return crc ^ 0xffffffffu;
}

// A TCP/IPv4 PROXY header ending with a CRC32C TLV that holds the right checksum, plus `delta`.
std::string v2_with_crc(std::uint32_t delta = 0)
{
    std::string h = v2(proxy_cmd, 0x11, tcp4_block + tlv(0x02, "example.com") + tlv(0x03, be32(0)));
    const std::uint32_t crc = crc32c(h) + delta;
    return h.substr(0, h.size() - 4) + be32(crc);
}

const std::string full_v6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";  // 39 characters, the spec's longest

struct parsed {
    status result = status::incomplete;
    header out;
};

parsed run(std::string_view data)
{
    parsed p;
    p.result = parse(data, p.out);
    return p;
}

template <typename Case>
std::string case_name(const ::testing::TestParamInfo<Case>& info)
{
    return info.param.name;
}

TEST(proxy_protocol_support, crc32c_helper_matches_the_rfc_check_value)
{
    EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
}

// --- Valid headers --------------------------------------------------------------------------------------------

struct valid_case {
    std::string name;
    std::string bytes;
    int version = 0;
    bool local = false;
    std::string source;  // empty when local
    std::string destination;
    std::uint16_t source_port = 0;
    std::uint16_t destination_port = 0;
};

void PrintTo(const valid_case& c, std::ostream* os) { *os << c.name; }

class proxy_protocol_valid : public ::testing::TestWithParam<valid_case> {};

void expect_header(const valid_case& c, const header& h)
{
    EXPECT_EQ(h.version, c.version);
    EXPECT_EQ(h.local, c.local);
    EXPECT_EQ(h.size, c.bytes.size());
    if (c.local) {
        EXPECT_FALSE(h.source);
        EXPECT_FALSE(h.destination);
        EXPECT_EQ(h.source_port, 0);
        EXPECT_EQ(h.destination_port, 0);
        return;
    }
    ASSERT_TRUE(h.source);
    ASSERT_TRUE(h.destination);
    EXPECT_EQ(h.source->to_string(), c.source);
    EXPECT_EQ(h.destination->to_string(), c.destination);
    EXPECT_EQ(h.source_port, c.source_port);
    EXPECT_EQ(h.destination_port, c.destination_port);
}

TEST_P(proxy_protocol_valid, is_complete_with_the_announced_endpoints)
{
    const auto& c = GetParam();
    const auto p = run(c.bytes);
    ASSERT_EQ(p.result, status::complete);
    expect_header(c, p.out);
}

TEST_P(proxy_protocol_valid, every_shorter_prefix_is_incomplete)
{
    const auto& c = GetParam();
    for (std::size_t n = 0; n < c.bytes.size(); ++n) {
        const auto p = run(std::string_view(c.bytes).substr(0, n));
        ASSERT_EQ(p.result, status::incomplete) << "after " << n << " bytes";
        EXPECT_EQ(p.out.version, 0) << "out must stay empty until complete";
        EXPECT_EQ(p.out.size, 0u);
    }
}

TEST_P(proxy_protocol_valid, leaves_the_payload_after_the_header_alone)
{
    const auto& c = GetParam();
    // Longer than the v1 limit, and starting with bytes that would extend a header if the parser overran.
    const std::string payload = "\r\nGET / HTTP/1.1\r\nHost: example.com\r\n" + std::string(200, 'x') + "\r\n\r\n";
    const std::string data = c.bytes + payload;
    const auto p = run(data);
    ASSERT_EQ(p.result, status::complete);
    expect_header(c, p.out);
    EXPECT_EQ(data.substr(p.out.size), payload);
}

const std::string v1_unknown_worst_case =
    "PROXY UNKNOWN " + full_v6 + " " + full_v6 + " 65535 65535\r\n";  // the spec's 107 bytes

const std::vector<valid_case> valid_cases = {
    {"v1_tcp4", "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", 1, false, "192.168.0.1", "192.168.0.11",
     56324, 443},
    {"v1_tcp4_extremes", "PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n", 1, false, "255.255.255.255", "0.0.0.0",
     65535, 0},
    {"v1_tcp6", "PROXY TCP6 2001:db8::1 2001:db8::2 1234 443\r\n", 1, false, "2001:db8::1", "2001:db8::2", 1234,
     443},
    {"v1_tcp6_longest", "PROXY TCP6 " + full_v6 + " " + full_v6 + " 65535 65535\r\n", 1, false,
     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, 65535},
    {"v1_tcp6_upper_case_and_embedded_quad", "PROXY TCP6 2001:DB8::A ::ffff:10.0.0.1 1 2\r\n", 1, false,
     "2001:db8::a", "::ffff:10.0.0.1", 1, 2},
    {"v1_tcp6_unspecified_and_loopback", "PROXY TCP6 :: ::1 0 80\r\n", 1, false, "::", "::1", 0, 80},
    {"v1_unknown_short", "PROXY UNKNOWN\r\n", 1, true, "", "", 0, 0},
    {"v1_unknown_with_addresses", "PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n", 1, true, "", "", 0, 0},
    {"v1_unknown_worst_case_107_bytes", v1_unknown_worst_case, 1, true, "", "", 0, 0},
    {"v2_proxy_tcp4", v2(proxy_cmd, 0x11, tcp4_block), 2, false, "192.0.2.1", "198.51.100.7", 56324, 443},
    {"v2_proxy_tcp6", v2(proxy_cmd, 0x21, tcp6_block), 2, false, "2001:db8::1", "2001:db8::ff", 1234, 80},
    {"v2_proxy_tcp4_with_tlvs",
     v2(proxy_cmd, 0x11, tcp4_block + tlv(0x01, "h2") + tlv(0x02, "example.com") + tlv(0x04, "") + tlv(0xe0, "x")),
     2, false, "192.0.2.1", "198.51.100.7", 56324, 443},
    {"v2_proxy_tcp6_with_tlvs", v2(proxy_cmd, 0x21, tcp6_block + tlv(0x05, std::string(128, '\x7f'))), 2, false,
     "2001:db8::1", "2001:db8::ff", 1234, 80},
    {"v2_proxy_tcp4_with_crc32c", v2_with_crc(), 2, false, "192.0.2.1", "198.51.100.7", 56324, 443},
    {"v2_proxy_tcp4_longest_length",
     v2(proxy_cmd, 0x11, tcp4_block + tlv(0x04, std::string(max_v2_length - 12 - 3, '\0'))), 2, false,
     "192.0.2.1", "198.51.100.7", 56324, 443},
    {"v2_local_unspec", v2(local_cmd, 0x00, ""), 2, true, "", "", 0, 0},
    // LOCAL: "discard the protocol block including the family which is ignored".
    {"v2_local_with_tcp4_block", v2(local_cmd, 0x11, tcp4_block), 2, true, "", "", 0, 0},
    {"v2_local_with_udp_family_ignored", v2(local_cmd, 0x12, ""), 2, true, "", "", 0, 0},
    {"v2_local_with_short_block_ignored", v2(local_cmd, 0x21, "abc"), 2, true, "", "", 0, 0},
    {"v2_proxy_unspec", v2(proxy_cmd, 0x00, ""), 2, true, "", "", 0, 0},
    {"v2_proxy_unspec_with_bytes_ignored", v2(proxy_cmd, 0x00, "\x01\x02\x03\x04\x05"s), 2, true, "", "", 0, 0},
};

INSTANTIATE_TEST_SUITE_P(cases, proxy_protocol_valid, ::testing::ValuesIn(valid_cases), case_name<valid_case>);

// --- Refused input --------------------------------------------------------------------------------------------

// The input is decisive + rest. Every prefix shorter than decisive is incomplete; from the last byte of
// decisive on, every prefix (and the whole input) gets the expected answer. So the table also says where the
// parser must notice: the spec asks receivers to abort as soon as possible.
struct refused_case {
    std::string name;
    std::string decisive;
    std::string rest;
    status expected = status::malformed;
};

void PrintTo(const refused_case& c, std::ostream* os) { *os << c.name; }

class proxy_protocol_refused : public ::testing::TestWithParam<refused_case> {};

TEST_P(proxy_protocol_refused, is_refused_at_the_first_byte_that_decides)
{
    const auto& c = GetParam();
    const std::string data = c.decisive + c.rest;
    for (std::size_t n = 0; n <= data.size(); ++n) {
        const auto p = run(std::string_view(data).substr(0, n));
        const status want = n < c.decisive.size() ? status::incomplete : c.expected;
        ASSERT_EQ(p.result, want) << "after " << n << " bytes";
        EXPECT_EQ(p.out.version, 0) << "out must stay empty unless complete";
    }
}

const std::string v6_45_chars = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
const std::string v1_tcp6_116_bytes = "PROXY TCP6 " + v6_45_chars + " " + v6_45_chars + " 65535 65535\r\n";

const std::vector<refused_case> not_proxy_cases = {
    {"http_get", "G", "ET / HTTP/1.1\r\nHost: a\r\n\r\n", status::not_proxy},
    {"http_connect", "C", "ONNECT a:1 HTTP/1.1\r\n\r\n", status::not_proxy},
    {"http_post_shares_the_p", "PO", "ST / HTTP/1.1\r\n\r\n", status::not_proxy},
    {"http_put", "PU", "T / HTTP/1.1\r\n\r\n", status::not_proxy},
    {"tls_client_hello", "\x16", "\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"s, status::not_proxy},
    {"lower_case_proxy", "p", "roxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", status::not_proxy},
    {"proxy_without_space", "PROXYX", " TCP4 1.2.3.4 5.6.7.8 1 2\r\n", status::not_proxy},
    {"proxy_then_tab", "PROXY\t", "TCP4 1.2.3.4 5.6.7.8 1 2\r\n", status::not_proxy},
    {"proxy_then_crlf", "PROXY\r", "\n", status::not_proxy},
    {"leading_crlf_then_http", "\r\nG", "ET / HTTP/1.1\r\n\r\n", status::not_proxy},
    {"v2_signature_with_a_bad_last_byte", signature.substr(0, 11) + "\x0b", "\x21\x11\x00\x0c"s + tcp4_block,
     status::not_proxy},
    {"v2_signature_without_its_nul", "\r\n\r\nQ", "UIT\n", status::not_proxy},
};

const std::vector<refused_case> v1_malformed_cases = {
    {"v1_double_space_after_proxy", "PROXY  ", "TCP4 1.2.3.4 5.6.7.8 1 2\r\n"},
    {"v1_bad_family", "PROXY TCP5", " 1.2.3.4 5.6.7.8 1 2\r\n"},
    {"v1_udp_family", "PROXY UD", "P4 1.2.3.4 5.6.7.8 1 2\r\n"},
    {"v1_lower_case_family", "PROXY t", "cp4 1.2.3.4 5.6.7.8 1 2\r\n"},
    {"v1_family_prefix_only", "PROXY TCP ", "1.2.3.4 5.6.7.8 1 2\r\n"},
    {"v1_family_then_crlf", "PROXY TCP4\r", "\n"},
    {"v1_unknown_longer_word", "PROXY UNKNOWNX", "\r\n"},
    {"v1_octal_looking_ipv4", "PROXY TCP4 01", "0.0.0.1 1.2.3.4 1 2\r\n"},
    {"v1_leading_zero_in_last_octet", "PROXY TCP4 10.0.0.00", " 1.2.3.4 1 2\r\n"},
    {"v1_short_ipv4", "PROXY TCP4 127.1 ", "1.2.3.4 1 2\r\n"},
    {"v1_octet_over_255", "PROXY TCP4 256", ".0.0.1 1.2.3.4 1 2\r\n"},
    {"v1_five_octets", "PROXY TCP4 1.2.3.4.", "5 1.2.3.4 1 2\r\n"},
    {"v1_empty_octet", "PROXY TCP4 1..", "2.3 1.2.3.4 1 2\r\n"},
    {"v1_ipv6_under_tcp4", "PROXY TCP4 :", ":1 ::1 1 2\r\n"},
    {"v1_ipv4_under_tcp6", "PROXY TCP6 1.", "2.3.4 5.6.7.8 1 2\r\n"},
    {"v1_destination_family_mismatch", "PROXY TCP4 1.2.3.4 :", ":1 1 2\r\n"},
    {"v1_ipv6_two_gaps", "PROXY TCP6 1::2::", "3 ::1 1 2\r\n"},
    {"v1_ipv6_triple_colon", "PROXY TCP6 1:::", "2 ::1 1 2\r\n"},
    {"v1_ipv6_single_leading_colon", "PROXY TCP6 :1", ":2 ::1 1 2\r\n"},
    {"v1_ipv6_five_hex_digits", "PROXY TCP6 12345", ":: ::1 1 2\r\n"},
    {"v1_ipv6_nine_groups", "PROXY TCP6 1:2:3:4:5:6:7:8:", "9 ::1 1 2\r\n"},
    {"v1_ipv6_gap_after_eight_groups", "PROXY TCP6 1:2:3:4:5:6:7:8:", ": ::1 1 2\r\n"},
    {"v1_ipv6_eight_groups_and_a_gap", "PROXY TCP6 1:2:3:4:5:6:7::8", " ::1 1 2\r\n"},
    {"v1_ipv6_too_few_groups", "PROXY TCP6 1:2:3 ", "::1 1 2\r\n"},
    {"v1_ipv6_quad_too_early", "PROXY TCP6 1:2:3.", "4.5 ::1 1 2\r\n"},
    {"v1_ipv6_hex_in_quad", "PROXY TCP6 ::a.", "1.2.3 ::1 1 2\r\n"},
    {"v1_ipv6_colon_after_quad", "PROXY TCP6 ::1.2.3.4:", "1 ::1 1 2\r\n"},
    {"v1_ipv6_bracketed", "PROXY TCP6 [", "::1] ::1 1 2\r\n"},
    {"v1_ipv6_zone", "PROXY TCP6 fe80::1%", "eth0 ::1 1 2\r\n"},
    {"v1_double_space_between_addresses", "PROXY TCP4 1.2.3.4  ", "5.6.7.8 1 2\r\n"},
    {"v1_source_port_65536", "PROXY TCP4 1.2.3.4 5.6.7.8 65536", " 80\r\n"},
    {"v1_destination_port_99999", "PROXY TCP4 1.2.3.4 5.6.7.8 80 99999", "\r\n"},
    {"v1_source_port_leading_zero", "PROXY TCP4 1.2.3.4 5.6.7.8 08", "0 80\r\n"},
    {"v1_destination_port_double_zero", "PROXY TCP4 1.2.3.4 5.6.7.8 80 00", "\r\n"},
    {"v1_port_with_sign", "PROXY TCP4 1.2.3.4 5.6.7.8 +", "80 80\r\n"},
    {"v1_port_hex", "PROXY TCP4 1.2.3.4 5.6.7.8 0x", "50 80\r\n"},
    {"v1_empty_source_port", "PROXY TCP4 1.2.3.4 5.6.7.8  ", "80\r\n"},
    {"v1_missing_destination_port", "PROXY TCP4 1.2.3.4 5.6.7.8 80\r", "\n"},
    {"v1_empty_destination_port", "PROXY TCP4 1.2.3.4 5.6.7.8 80 \r", "\n"},
    {"v1_extra_field", "PROXY TCP4 1.2.3.4 5.6.7.8 80 443 ", "1\r\n"},
    {"v1_trailing_space", "PROXY TCP4 1.2.3.4 5.6.7.8 80 443 ", "\r\n"},
    {"v1_bare_lf", "PROXY TCP4 1.2.3.4 5.6.7.8 80 443\n", "GET"},
    {"v1_cr_without_lf", "PROXY TCP4 1.2.3.4 5.6.7.8 80 443\rG", "ET"},
    {"v1_unknown_bare_lf", "PROXY UNKNOWN\n", ""},
    {"v1_unknown_cr_without_lf", "PROXY UNKNOWN\r\r", "\n"},
    {"v1_unknown_control_byte", "PROXY UNKNOWN \x01", "\r\n"},
    {"v1_unknown_bare_lf_in_tail", "PROXY UNKNOWN 1.2.3.4\n", "\r\n"},
    {"v1_unknown_without_crlf_in_107_bytes", "PROXY UNKNOWN " + std::string(93, 'a'), "\r\n"},
    // Each field is within the grammar, but the line cannot end within 107 bytes.
    {"v1_tcp6_past_107_bytes", v1_tcp6_116_bytes.substr(0, max_v1_size), v1_tcp6_116_bytes.substr(max_v1_size)},
};

const std::vector<refused_case> v2_malformed_cases = {
    {"v2_version_1", signature + "\x11", "\x11\x00\x0c"s + tcp4_block},
    {"v2_version_3", signature + "\x31", "\x11\x00\x0c"s + tcp4_block},
    {"v2_version_0", signature + "\x01", "\x11\x00\x0c"s + tcp4_block},
    {"v2_command_2", signature + "\x22", "\x11\x00\x0c"s + tcp4_block},
    {"v2_command_f", signature + "\x2f", "\x11\x00\x0c"s + tcp4_block},
    {"v2_udp4_family", signature + "\x21\x12", "\x00\x0c"s + tcp4_block},
    {"v2_udp6_family", signature + "\x21\x22", "\x00\x24"s + tcp6_block},
    {"v2_unix_stream_family", signature + "\x21\x31", be16(216) + std::string(216, 'u')},
    {"v2_unix_dgram_family", signature + "\x21\x32", be16(216) + std::string(216, 'u')},
    {"v2_undefined_family", signature + "\x21\x41", "\x00\x0c"s + tcp4_block},
    {"v2_undefined_transport", signature + "\x21\x13", "\x00\x0c"s + tcp4_block},
    {"v2_unspec_family_with_stream", signature + "\x21\x01", "\x00\x00"s},
    // The spec lets LOCAL ignore the family, but undefined values "must be rejected as invalid by receivers".
    {"v2_local_undefined_family", signature + "\x20\x13", "\x00\x00"s},
    {"v2_tcp4_length_below_the_address_block", v2_with_length(proxy_cmd, 0x11, 11, ""), tcp4_block.substr(0, 11)},
    {"v2_tcp6_length_below_the_address_block", v2_with_length(proxy_cmd, 0x21, 35, ""), tcp6_block.substr(0, 35)},
    {"v2_tcp4_length_zero", v2_with_length(proxy_cmd, 0x11, 0, ""), ""},
    {"v2_length_over_1024", v2_with_length(proxy_cmd, 0x11, 1025, ""), tcp4_block + std::string(1013, '\0')},
    {"v2_local_length_over_1024", v2_with_length(local_cmd, 0x00, 1025, ""), std::string(1025, '\0')},
    {"v2_length_max", v2_with_length(proxy_cmd, 0x11, 0xffff, ""), tcp4_block},
    // Known from the length alone: two bytes after the addresses cannot hold a TLV's three-byte head.
    {"v2_tlv_head_cut_by_the_length", v2_with_length(proxy_cmd, 0x11, 14, ""), tcp4_block + "\x04\x00"s},
    {"v2_tlv_value_past_the_length", v2_with_length(proxy_cmd, 0x11, 12 + 3 + 4, tcp4_block + "\x02\x00\x05"s),
     "abcd"},
    {"v2_second_tlv_past_the_length",
     v2_with_length(proxy_cmd, 0x11, 12 + 5 + 3 + 1, tcp4_block + tlv(0x01, "h2") + "\x02\x00\x02"s), "a"},
    {"v2_crc32c_of_three_bytes", v2_with_length(proxy_cmd, 0x11, 12 + 6, tcp4_block + "\x03\x00\x03"s), "abc"},
    {"v2_two_crc32c", v2_with_length(proxy_cmd, 0x11, 12 + 14, tcp4_block + tlv(0x03, "abcd") + "\x03\x00\x04"s),
     "abcd"},
    {"v2_crc32c_mismatch", v2_with_crc(1), ""},
};

INSTANTIATE_TEST_SUITE_P(not_proxy, proxy_protocol_refused, ::testing::ValuesIn(not_proxy_cases),
                         case_name<refused_case>);
INSTANTIATE_TEST_SUITE_P(v1_malformed, proxy_protocol_refused, ::testing::ValuesIn(v1_malformed_cases),
                         case_name<refused_case>);
INSTANTIATE_TEST_SUITE_P(v2_malformed, proxy_protocol_refused, ::testing::ValuesIn(v2_malformed_cases),
                         case_name<refused_case>);

// --- Odds and ends --------------------------------------------------------------------------------------------

TEST(proxy_protocol_parse, empty_input_is_incomplete)
{
    EXPECT_EQ(run("").result, status::incomplete);
}

TEST(proxy_protocol_parse, out_is_reset_by_a_refusal)
{
    header out;
    ASSERT_EQ(parse("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", out), status::complete);
    ASSERT_TRUE(out.source);
    EXPECT_EQ(parse("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", out), status::malformed);
    EXPECT_EQ(out.version, 0);
    EXPECT_FALSE(out.source);
    EXPECT_FALSE(out.destination);
    EXPECT_EQ(out.size, 0u);
}

TEST(proxy_protocol_parse, the_crc32c_covers_the_addresses)
{
    // Same checksum, one address byte changed: the checksum must catch it.
    std::string h = v2_with_crc();
    ASSERT_EQ(run(h).result, status::complete);
    h[16] = static_cast<char>(h[16] ^ 1);
    EXPECT_EQ(run(h).result, status::malformed);
}

TEST(proxy_protocol_parse, only_the_first_header_is_read)
{
    // A second PROXY line is the client's payload, not ours to interpret.
    const std::string first = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
    const std::string second = "PROXY TCP4 9.9.9.9 9.9.9.9 9 9\r\n";
    const auto p = run(first + second);
    ASSERT_EQ(p.result, status::complete);
    EXPECT_EQ(p.out.size, first.size());
    EXPECT_EQ(p.out.source->to_string(), "1.2.3.4");
}

TEST(proxy_protocol_parse, status_names)
{
    EXPECT_EQ(to_string(status::incomplete), "incomplete");
    EXPECT_EQ(to_string(status::complete), "complete");
    EXPECT_EQ(to_string(status::not_proxy), "not_proxy");
    EXPECT_EQ(to_string(status::malformed), "malformed");
}

// --- v1 address grammar against policy::address ---------------------------------------------------------------
// The parser checks partial addresses itself (to refuse early) and whole ones with policy::address. These tests
// hold the two together: a legal address is never refused part way, and every address is judged as
// policy::address judges it.

std::string tcp6_line(const std::string& source) { return "PROXY TCP6 " + source + " ::1 1 2\r\n"; }
std::string tcp4_line(const std::string& source) { return "PROXY TCP4 " + source + " 1.2.3.4 1 2\r\n"; }

// Returns the first prefix length at which the answer is not incomplete, checking it never changes afterwards.
std::size_t decided_at(const std::string& data, status& final_status)
{
    std::size_t first = data.size() + 1;
    final_status = status::incomplete;
    for (std::size_t n = 0; n <= data.size(); ++n) {
        const status s = run(std::string_view(data).substr(0, n)).result;
        if (first > data.size()) {
            if (s != status::incomplete) {
                first = n;
                final_status = s;
            }
        } else {
            EXPECT_EQ(s, final_status) << "answer changed after " << n << " bytes of " << data;
        }
    }
    return first;
}

void expect_judged_like_policy(const std::string& line, const std::string& addr,
                               const std::optional<policy::address>& want)
{
    status final_status = status::incomplete;
    const std::size_t first = decided_at(line, final_status);
    if (want) {
        EXPECT_EQ(first, line.size()) << "a legal address refused part way: " << addr;
        ASSERT_EQ(final_status, status::complete) << addr;
        const auto p = run(line);
        ASSERT_TRUE(p.out.source);
        EXPECT_EQ(*p.out.source, *want) << addr;
    } else {
        EXPECT_EQ(final_status, status::malformed) << addr;
    }
}

TEST(proxy_protocol_v1_grammar, ipv6_forms)
{
    for (const std::string a :
         {"::", "::1", "1::", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:1.2.3.4",
          "::1.2.3.4", "1::1.2.3.4", "1:2:3:4:5::1.2.3.4", "::3:4:5:6:7:1.2.3.4", "0000:0000::0", "a:B:c:D::",
          "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", "1:2:3:4:5:6:7::8", "1::2::3", ":1::", "1:2:3:4:5:6:7",
          "1:2:3:4:5:6:7:8:9", "::1.2.3", "::1.2.3.4.5", "::01.2.3.4", "1:2:3:4:5:6:7:1.2.3.4", "::00000",
          "g::", ":", "1:", "1.2.3.4"}) {
        expect_judged_like_policy(tcp6_line(a), a, policy::address::parse_v6(a));
    }
}

// Random valid IPv6 texts, built by structure: groups of 1-4 hex digits in either case, an optional "::" for a
// run of at least one group, an optional dotted quad as the last two groups.
TEST(proxy_protocol_v1_grammar, random_legal_ipv6_is_never_refused_part_way)
{
    std::mt19937 rng(20240611);
    auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    const std::string hex = "0123456789abcdefABCDEF";
    for (int round = 0; round < 2000; ++round) {
        const bool quad = pick(0, 3) == 0;
        const int groups = quad ? 6 : 8;
        std::vector<std::string> words;
        for (int i = 0; i < groups; ++i) {
            std::string w;
            const int digits = pick(1, 4);
            for (int d = 0; d < digits; ++d) {
                w += hex[static_cast<std::size_t>(pick(0, static_cast<int>(hex.size()) - 1))];
            }
            words.push_back(w);
        }
        std::string text;
        const bool gap = pick(0, 1) == 1;
        const int gap_start = pick(0, groups - 1);
        const int gap_end = pick(gap_start + 1, groups);  // the gap stands for words [gap_start, gap_end)
        for (int i = 0; i < groups; ++i) {
            if (gap && i >= gap_start && i < gap_end) {
                if (i == gap_start) {
                    text += "::";
                }
                continue;
            }
            if (!text.empty() && !text.ends_with("::")) {
                text += ':';
            }
            text += words[static_cast<std::size_t>(i)];
        }
        if (quad) {
            if (!text.empty() && !text.ends_with("::")) {
                text += ':';
            }
            for (int i = 0; i < 4; ++i) {
                text += (i > 0 ? "." : "") + std::to_string(pick(0, 255));
            }
        }
        const auto want = policy::address::parse_v6(text);
        ASSERT_TRUE(want) << "generator produced an illegal address: " << text;
        expect_judged_like_policy(tcp6_line(text), text, want);
        if (HasFailure()) {
            return;
        }
    }
}

// Random short strings over the address alphabets: whatever policy::address says, the parser says, and an
// address it accepts is never refused part way.
TEST(proxy_protocol_v1_grammar, random_strings_are_judged_like_policy_address)
{
    std::mt19937 rng(7);
    auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    const std::string v6_alphabet = "0129aF:.";
    const std::string v4_alphabet = "01259.";
    for (int round = 0; round < 3000; ++round) {
        std::string a6;
        std::string a4;
        const int length = pick(1, 18);
        for (int i = 0; i < length; ++i) {
            a6 += v6_alphabet[static_cast<std::size_t>(pick(0, static_cast<int>(v6_alphabet.size()) - 1))];
            a4 += v4_alphabet[static_cast<std::size_t>(pick(0, static_cast<int>(v4_alphabet.size()) - 1))];
        }
        expect_judged_like_policy(tcp6_line(a6), a6, policy::address::parse_v6(a6));
        expect_judged_like_policy(tcp4_line(a4), a4, policy::address::parse_v4(a4));
        if (HasFailure()) {
            return;
        }
    }
}

TEST(proxy_protocol_v1_grammar, ipv4_forms)
{
    for (const std::string a : {"0.0.0.0", "1.2.3.4", "10.20.30.40", "100.200.250.255", "255.255.255.255", "1.2.3",
                                "1.2.3.4.5", "01.2.3.4", "1.2.3.04", "256.1.1.1", "1.2.3.256", "1..2.3", ".1.2.3",
                                "1.2.3.", "2130706433", "0x7f.0.0.1"}) {
        expect_judged_like_policy(tcp4_line(a), a, policy::address::parse_v4(a));
    }
}

TEST(proxy_protocol_v1_grammar, every_port_is_judged_exactly)
{
    for (unsigned port : {0u, 1u, 9u, 10u, 80u, 443u, 1000u, 9999u, 10000u, 65534u, 65535u}) {
        const std::string line = "PROXY TCP4 1.2.3.4 5.6.7.8 " + std::to_string(port) + " " +
                                 std::to_string(65535 - port) + "\r\n";
        const auto p = run(line);
        ASSERT_EQ(p.result, status::complete) << line;
        EXPECT_EQ(p.out.source_port, port);
        EXPECT_EQ(p.out.destination_port, 65535 - port);
    }
    for (const std::string bad : {"65536", "70000", "99999", "100000", "01", "00", "-1", "1e3", " 1"}) {
        const std::string line = "PROXY TCP4 1.2.3.4 5.6.7.8 " + bad + " 80\r\n";
        EXPECT_EQ(run(line).result, status::malformed) << line;
    }
}

}  // namespace
}  // namespace egressd::protocol::proxy_protocol
