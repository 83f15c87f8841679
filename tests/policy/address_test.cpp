#include "policy/address.hpp"
#include "policy/domain.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace egressd::policy {
namespace {

template <typename Case>
std::string case_name(const ::testing::TestParamInfo<Case>& info)
{
    return info.param.name;
}

// --- IP literal acceptance ----------------------------------------------------------------------------------

struct literal_case {
    std::string name;
    std::string text;
    std::optional<std::string> canonical;  // nullopt: must be refused
};

class address_parse : public ::testing::TestWithParam<literal_case> {};

TEST_P(address_parse, accepts_only_strict_forms)
{
    const auto& c = GetParam();
    auto a = address::parse(c.text);
    if (!c.canonical) {
        EXPECT_FALSE(a.has_value()) << "parsed as " << a->to_string();
        return;
    }
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(a->to_string(), *c.canonical);
}

INSTANTIATE_TEST_SUITE_P(
    v4, address_parse,
    ::testing::Values(
        literal_case{"dotted_quad", "127.0.0.1", "127.0.0.1"},
        literal_case{"zeros", "0.0.0.0", "0.0.0.0"},
        literal_case{"max_octets", "255.255.255.255", "255.255.255.255"},
        literal_case{"single_zero_octets", "10.0.0.0", "10.0.0.0"},
        // The forms below are what inet_aton, c-ares and browsers read differently from one another.
        literal_case{"decimal_integer", "2130706433", std::nullopt},
        literal_case{"hex_integer", "0x7f000001", std::nullopt},
        literal_case{"hex_octet", "0x7f.0.0.1", std::nullopt},
        literal_case{"octal_octet", "0177.0.0.1", std::nullopt},
        literal_case{"two_parts", "127.1", std::nullopt},
        literal_case{"leading_zero_last_octet", "127.0.0.01", std::nullopt},
        literal_case{"octet_over_255", "256.1.1.1", std::nullopt},
        literal_case{"three_parts", "1.2.3", std::nullopt},
        literal_case{"five_parts", "1.2.3.4.5", std::nullopt},
        literal_case{"trailing_dot", "1.2.3.4.", std::nullopt},
        literal_case{"empty_octet", "1..3.4", std::nullopt},
        literal_case{"empty", "", std::nullopt},
        literal_case{"leading_space", " 1.2.3.4", std::nullopt},
        literal_case{"trailing_space", "1.2.3.4 ", std::nullopt},
        literal_case{"inner_space", "1.2. 3.4", std::nullopt},
        literal_case{"sign", "+1.2.3.4", std::nullopt},
        literal_case{"four_digit_octet", "1.2.3.0004", std::nullopt}),
    case_name<literal_case>);

INSTANTIATE_TEST_SUITE_P(
    v6, address_parse,
    ::testing::Values(
        literal_case{"loopback", "::1", "::1"},
        literal_case{"unspecified", "::", "::"},
        literal_case{"trailing_gap", "1::", "1::"},
        literal_case{"full_form", "2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"},
        literal_case{"full_form_no_zeros_to_compress", "2001:db8:1:2:3:4:5:6", "2001:db8:1:2:3:4:5:6"},
        literal_case{"compressed", "2001:db8::1", "2001:db8::1"},
        literal_case{"upper_case_hex", "2001:DB8::A", "2001:db8::a"},
        literal_case{"gap_for_one_group", "1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"},
        literal_case{"triple_colon", ":::", std::nullopt},
        literal_case{"two_gaps", "1::2::3", std::nullopt},
        literal_case{"zone", "fe80::1%eth0", std::nullopt},
        literal_case{"nine_groups", "1:2:3:4:5:6:7:8:9", std::nullopt},
        literal_case{"seven_groups_no_gap", "1:2:3:4:5:6:7", std::nullopt},
        literal_case{"eight_groups_and_gap", "1:2:3:4:5:6:7:8::", std::nullopt},
        literal_case{"five_hex_digits", "12345::1", std::nullopt},
        literal_case{"non_hex", "2001:db8::g", std::nullopt},
        literal_case{"leading_single_colon", ":1::2", std::nullopt},
        literal_case{"trailing_single_colon", "1::2:", std::nullopt},
        literal_case{"brackets", "[::1]", std::nullopt},
        literal_case{"quad_not_last", "::1.2.3.4:5", std::nullopt},
        literal_case{"bad_embedded_quad", "::ffff:127.1", std::nullopt},
        literal_case{"leading_zero_embedded_quad", "::ffff:127.0.0.01", std::nullopt}),
    case_name<literal_case>);

// --- host::parse keeps literals apart from names --------------------------------------------------------------

struct host_case {
    std::string name;
    std::string text;
    bool is_address = false;
    std::optional<std::string> normalized;  // host::to_string; nullopt: refused
};

class host_literal : public ::testing::TestWithParam<host_case> {};

TEST_P(host_literal, parses_literals_strictly)
{
    const auto& c = GetParam();
    auto h = host::parse(c.text);
    if (!c.normalized) {
        EXPECT_FALSE(h.value.has_value()) << "parsed as " << h.value->to_string();
        EXPECT_FALSE(h.error.empty());
        return;
    }
    ASSERT_TRUE(h.value.has_value()) << h.error;
    EXPECT_EQ(h.value->is_address(), c.is_address);
    EXPECT_EQ(h.value->to_string(), *c.normalized);
}

INSTANTIATE_TEST_SUITE_P(
    all, host_literal,
    ::testing::Values(
        host_case{"v4", "192.0.2.1", true, "192.0.2.1"},
        host_case{"v6_bare", "::1", true, "[::1]"},
        host_case{"v6_bracketed", "[::1]", true, "[::1]"},
        host_case{"v6_bracketed_full", "[2001:0db8:0:0:0:0:0:1]", true, "[2001:db8::1]"},
        host_case{"name", "example.com", false, "example.com"},
        host_case{"decimal_integer", "2130706433", false, std::nullopt},
        host_case{"hex_integer", "0x7f000001", false, std::nullopt},
        host_case{"hex_integer_upper", "0X7F000001", false, std::nullopt},
        host_case{"octal_octet", "0177.0.0.1", false, std::nullopt},
        host_case{"two_parts", "127.1", false, std::nullopt},
        host_case{"leading_zero_octet", "127.0.0.01", false, std::nullopt},
        host_case{"octet_over_255", "256.1.1.1", false, std::nullopt},
        host_case{"three_parts", "1.2.3", false, std::nullopt},
        host_case{"five_parts", "1.2.3.4.5", false, std::nullopt},
        host_case{"dotted_quad_trailing_dot", "1.2.3.4.", false, std::nullopt},
        host_case{"empty", "", false, std::nullopt},
        host_case{"spaces", " 1.2.3.4 ", false, std::nullopt},
        host_case{"bracketed_v4", "[127.0.0.1]", false, std::nullopt},
        host_case{"unterminated_bracket", "[::1", false, std::nullopt},
        host_case{"empty_brackets", "[]", false, std::nullopt},
        host_case{"bracketed_zone", "[fe80::1%eth0]", false, std::nullopt},
        host_case{"zone", "fe80::1%eth0", false, std::nullopt},
        host_case{"triple_colon", ":::", false, std::nullopt},
        host_case{"two_gaps", "[1::2::3]", false, std::nullopt}),
    case_name<host_case>);

// --- RFC 5952 text and round trips -------------------------------------------------------------------------

struct format_case {
    std::string name;
    std::string text;
    std::string expected;
};

class address_format : public ::testing::TestWithParam<format_case> {};

TEST_P(address_format, writes_rfc5952_and_round_trips)
{
    const auto& c = GetParam();
    auto a = address::parse(c.text);
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(a->to_string(), c.expected);
    auto again = address::parse(a->to_string());
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(*again, *a);
}

INSTANTIATE_TEST_SUITE_P(
    all, address_format,
    ::testing::Values(format_case{"v4", "203.0.113.7", "203.0.113.7"},
                      format_case{"lower_case", "2001:DB8::ABCD", "2001:db8::abcd"},
                      format_case{"leading_zeros_dropped", "2001:0db8:00a0::0001", "2001:db8:a0::1"},
                      format_case{"longest_run_compressed", "2001:db8:0:0:1:0:0:0", "2001:db8:0:0:1::"},
                      format_case{"leftmost_run_on_tie", "2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},
                      format_case{"single_zero_not_compressed", "2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"},
                      format_case{"all_zero", "0:0:0:0:0:0:0:0", "::"},
                      format_case{"loopback", "0:0:0:0:0:0:0:1", "::1"},
                      format_case{"leading_run", "0:0:0:1:2:3:4:5", "::1:2:3:4:5"},
                      format_case{"no_zeros", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"},
                      format_case{"zero_word_kept", "fe80:0:1::", "fe80:0:1::"},
                      format_case{"public_v6", "2606:2800:220:1:248:1893:25c8:1946",
                                  "2606:2800:220:1:248:1893:25c8:1946"}),
    case_name<format_case>);

struct same_address_case {
    std::string name;
    std::string text;
    std::string same_as;
};

class address_embedded_quad : public ::testing::TestWithParam<same_address_case> {};

// The dotted and hex spellings are one address.
TEST_P(address_embedded_quad, equals_the_hex_spelling)
{
    const auto& c = GetParam();
    auto a = address::parse(c.text);
    auto b = address::parse(c.same_as);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(*a, *b);
    auto again = address::parse(a->to_string());
    ASSERT_TRUE(again.has_value()) << a->to_string();
    EXPECT_EQ(*again, *a);
    auto bracketed = host::parse("[" + c.text + "]");
    ASSERT_TRUE(bracketed.value.has_value()) << bracketed.error;
    ASSERT_TRUE(bracketed.value->is_address());
    EXPECT_EQ(*bracketed.value->literal(), *b);
}

// RFC 5952 section 5: mapped addresses print with their dotted quad; other embeddings print in hex.
TEST(address_text, mapped_prints_dotted_quad)
{
    EXPECT_EQ(address::parse("::ffff:7f00:1")->to_string(), "::ffff:127.0.0.1");
    EXPECT_EQ(address::parse("0:0:0:0:0:ffff:a01:203")->to_string(), "::ffff:10.1.2.3");
    EXPECT_EQ(address::parse("::ffff:0:127.0.0.1")->to_string(), "::ffff:0:7f00:1");
    EXPECT_EQ(address::parse("64:ff9b::10.0.0.1")->to_string(), "64:ff9b::a00:1");
}

INSTANTIATE_TEST_SUITE_P(
    all, address_embedded_quad,
    ::testing::Values(same_address_case{"mapped", "::ffff:127.0.0.1", "::ffff:7f00:1"},
                      same_address_case{"mapped_full_form", "0:0:0:0:0:ffff:10.1.2.3", "::ffff:a01:203"},
                      same_address_case{"compatible", "::169.254.169.254", "::a9fe:a9fe"},
                      same_address_case{"translated", "::ffff:0:127.0.0.1", "::ffff:0:7f00:1"},
                      same_address_case{"nat64", "64:ff9b::10.0.0.1", "64:ff9b::a00:1"}),
    case_name<same_address_case>);

TEST(address, families_and_values)
{
    auto v4 = address::parse("192.0.2.1");
    auto v6 = address::parse("::ffff:192.0.2.1");
    ASSERT_TRUE(v4 && v6);
    EXPECT_TRUE(v4->is_v4());
    EXPECT_EQ(v4->width(), 32);
    EXPECT_EQ(v4->v4_value(), 0xc0000201u);
    EXPECT_FALSE(v6->is_v4());
    EXPECT_EQ(v6->width(), 128);
    // The same 32 bits in another family are another address: nothing compares them as equal by accident.
    EXPECT_NE(*v4, *v6);
    EXPECT_EQ(address::from_v4(0xc0000201u), *v4);
}

// --- CIDR -----------------------------------------------------------------------------------------------------

struct cidr_case {
    std::string name;
    std::string text;
    std::optional<std::string> canonical;  // nullopt: error expected
    std::string error_mentions;            // checked when an error is expected
};

class cidr_parse : public ::testing::TestWithParam<cidr_case> {};

TEST_P(cidr_parse, parses_network_addresses_only)
{
    const auto& c = GetParam();
    std::string error;
    auto n = cidr::parse(c.text, &error);
    if (!c.canonical) {
        EXPECT_FALSE(n.has_value()) << "parsed as " << n->to_string();
        EXPECT_NE(error.find(c.error_mentions), std::string::npos) << error;
        return;
    }
    ASSERT_TRUE(n.has_value()) << error;
    EXPECT_EQ(n->to_string(), *c.canonical);
}

INSTANTIATE_TEST_SUITE_P(
    all, cidr_parse,
    ::testing::Values(
        cidr_case{"v4_network", "10.0.0.0/8", "10.0.0.0/8", ""},
        cidr_case{"v4_everything", "0.0.0.0/0", "0.0.0.0/0", ""},
        cidr_case{"v4_bare_is_host", "192.0.2.1", "192.0.2.1/32", ""},
        cidr_case{"v4_full_length", "192.0.2.1/32", "192.0.2.1/32", ""},
        cidr_case{"v6_network", "2001:db8::/32", "2001:db8::/32", ""},
        cidr_case{"v6_everything", "::/0", "::/0", ""},
        cidr_case{"v6_bare_is_host", "::1", "::1/128", ""},
        cidr_case{"v6_mapped_prefix", "::ffff:10.0.0.0/104", "::ffff:10.0.0.0/104", ""},
        cidr_case{"v4_host_bits_set", "10.0.0.1/8", std::nullopt, "host bits"},
        cidr_case{"v6_host_bits_set", "2001:db8::1/32", std::nullopt, "host bits"},
        cidr_case{"v4_length_33", "10.0.0.0/33", std::nullopt, "0..32"},
        cidr_case{"v6_length_129", "::/129", std::nullopt, "0..128"},
        cidr_case{"leading_zero_length", "10.0.0.0/08", std::nullopt, "prefix length"},
        cidr_case{"empty_length", "10.0.0.0/", std::nullopt, "prefix length"},
        cidr_case{"negative_length", "10.0.0.0/-1", std::nullopt, "10.0.0.0/-1"},
        cidr_case{"plus_length", "10.0.0.0/+8", std::nullopt, "prefix length"},
        cidr_case{"two_slashes", "10.0.0.0/8/9", std::nullopt, "prefix length"},
        cidr_case{"non_canonical_base", "010.0.0.0/8", std::nullopt, "canonical"},
        cidr_case{"short_base", "10/8", std::nullopt, "canonical"},
        cidr_case{"empty", "", std::nullopt, "not a CIDR"}),
    case_name<cidr_case>);

struct contains_case {
    std::string name;
    std::string network;
    std::string candidate;
    bool inside = false;
};

class cidr_contains : public ::testing::TestWithParam<contains_case> {};

TEST_P(cidr_contains, matches_prefix_bits_of_the_same_family)
{
    const auto& c = GetParam();
    auto n = cidr::parse(c.network);
    auto a = address::parse(c.candidate);
    ASSERT_TRUE(n && a);
    EXPECT_EQ(n->contains(*a), c.inside);
}

INSTANTIATE_TEST_SUITE_P(
    all, cidr_contains,
    ::testing::Values(contains_case{"v4_inside", "10.0.0.0/8", "10.255.1.2", true},
                      contains_case{"v4_outside", "10.0.0.0/8", "11.0.0.0", false},
                      contains_case{"v4_partial_byte_inside", "172.16.0.0/12", "172.31.255.255", true},
                      contains_case{"v4_partial_byte_outside", "172.16.0.0/12", "172.32.0.0", false},
                      contains_case{"v4_host_itself", "192.0.2.1/32", "192.0.2.1", true},
                      contains_case{"v4_host_neighbour", "192.0.2.1/32", "192.0.2.2", false},
                      contains_case{"v4_everything", "0.0.0.0/0", "255.255.255.255", true},
                      contains_case{"v6_inside", "2001:db8::/32", "2001:db8:ffff::1", true},
                      contains_case{"v6_outside", "2001:db8::/32", "2001:db9::1", false},
                      contains_case{"v6_partial_byte", "fe80::/10", "febf::1", true},
                      contains_case{"v6_partial_byte_outside", "fe80::/10", "fec0::1", false},
                      contains_case{"v6_everything", "::/0", "ffff::1", true},
                      // Families never mix: ::/0 is not "every address", and a mapped v6 is not a v4.
                      contains_case{"v4_everything_vs_v6", "0.0.0.0/0", "::1", false},
                      contains_case{"v6_everything_vs_v4", "::/0", "127.0.0.1", false},
                      contains_case{"v4_network_vs_mapped", "127.0.0.0/8", "::ffff:127.0.0.1", false}),
    case_name<contains_case>);

TEST(cidr, make_refuses_host_bits_and_bad_lengths)
{
    auto base = address::parse("10.1.0.0");
    ASSERT_TRUE(base);
    EXPECT_TRUE(cidr::make(*base, 16).has_value());
    EXPECT_FALSE(cidr::make(*base, 8).has_value());
    EXPECT_FALSE(cidr::make(*base, -1).has_value());
    EXPECT_FALSE(cidr::make(*base, 33).has_value());
    EXPECT_TRUE(cidr::parse("0.0.0.0/0")->is_everything());
    EXPECT_FALSE(cidr::parse("0.0.0.0/1")->is_everything());
}

}  // namespace
}  // namespace egressd::policy

namespace egressd::policy {
namespace {

TEST(address_text, with_port_brackets_ipv6_only)
{
    EXPECT_EQ(address::parse("192.0.2.1")->to_string(80), "192.0.2.1:80");
    EXPECT_EQ(address::parse("2001:db8::1")->to_string(443), "[2001:db8::1]:443");
    EXPECT_EQ(address::parse("::ffff:10.1.2.3")->to_string(8), "[::ffff:10.1.2.3]:8");
}

TEST(address_unmapped, only_ipv4_mapped_becomes_ipv4)
{
    EXPECT_EQ(address::parse("::ffff:10.1.2.3")->unmapped(), *address::parse("10.1.2.3"));
    EXPECT_TRUE(address::parse("::ffff:10.1.2.3")->unmapped().is_v4());
    // Other embeddings stay IPv6: only a dual-stack socket's mapped form means "this is an IPv4 peer".
    EXPECT_EQ(address::parse("::ffff:0:10.1.2.3")->unmapped(), *address::parse("::ffff:0:10.1.2.3"));
    EXPECT_EQ(address::parse("::10.1.2.3")->unmapped(), *address::parse("::10.1.2.3"));
    EXPECT_EQ(address::parse("64:ff9b::10.1.2.3")->unmapped(), *address::parse("64:ff9b::10.1.2.3"));
    EXPECT_EQ(address::parse("10.1.2.3")->unmapped(), *address::parse("10.1.2.3"));
}

}  // namespace
}  // namespace egressd::policy
