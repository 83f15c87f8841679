#include "captured_hellos.hpp"
#include "tls_support.hpp"

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace egressd::protocol::tls {
namespace {

using namespace fixtures;
using namespace std::string_literals;  // "...\0..."s keeps embedded NULs

// A TLS 1.3-shaped hello for allowed.test; each case changes one thing.
hello_builder base()
{
    hello_builder b;
    b.sni("allowed.test");
    b.ext(ext_supported_versions, "\x04\x03\x04\x03\x03"s);
    return b;
}

// base() with one field changed, as one record.
template <typename Change>
std::string changed(Change change)
{
    auto b = base();
    change(b);
    return b.record();
}

hello_builder with_sni_data(std::string data)
{
    hello_builder b;
    b.ext(ext_server_name, std::move(data));
    return b;
}

hello_builder with_sni(const std::string& name)
{
    hello_builder b;
    b.sni(name);
    return b;
}

hello_builder with_alpn_data(std::string data)
{
    return base().ext(ext_alpn, std::move(data));
}

hello_builder with_raw_extensions(std::string raw)
{
    hello_builder b;
    b.raw_extensions = std::move(raw);
    return b;
}

// The message of base(), split into two records with other records in between.
std::string interleaved(const std::string& between)
{
    const auto message = base().message();
    return hello_builder::reframe(message.substr(0, 10), {10}) + between
           + hello_builder::reframe(message.substr(10), {message.size() - 10});
}

// A message whose body is the given bytes (for bodies the builder cannot get wrong enough).
std::string raw_body(const std::string& body)
{
    return hello_builder::records(u8(1) + u24(body.size()) + body);
}

std::string head_of_body() { return "\x03\x03"s + std::string(32, 'r'); }

// --- Accepted hellos ----------------------------------------------------------------------------------------------

struct accepted_case {
    std::string name;
    std::string data;
    std::optional<std::string> sni;
    bool has_ech = false;
    std::vector<std::string> alpn = {};
    std::uint16_t legacy_version = 0x0303;
};

class tls_accepted : public ::testing::TestWithParam<accepted_case> {};

TEST_P(tls_accepted, parses)
{
    const auto& c = GetParam();
    client_hello hello;
    ASSERT_EQ(parse_client_hello(c.data, hello), hello_status::complete);
    EXPECT_EQ(hello.sni, c.sni);
    EXPECT_EQ(hello.has_ech, c.has_ech);
    EXPECT_EQ(hello.alpn, c.alpn);
    EXPECT_EQ(hello.legacy_version, c.legacy_version);
}

TEST_P(tls_accepted, every_prefix_is_incomplete)
{
    const auto& c = GetParam();
    for (std::size_t n = 0; n < c.data.size(); ++n) {
        client_hello hello;
        ASSERT_EQ(parse_client_hello(std::string_view(c.data).substr(0, n), hello), hello_status::incomplete)
            << "prefix of " << n << " bytes";
    }
}

// An encrypted_client_hello extension as a client sends it in the outer hello (draft-ietf-tls-esni-18 5):
// type outer (0), HPKE KDF and AEAD ids, config id, enc, payload.
std::string ech_outer()
{
    return u8(0) + u16(0x0001) + u16(0x0001) + u8(0x2a) + prefixed16(std::string(32, 'e'))
           + prefixed16(std::string(200, 'p'));
}

std::string name_of_length(std::size_t n)
{
    // Labels of 63 characters separated by dots, ending in a shorter label.
    std::string s;
    while (s.size() < n) {
        const auto label = std::min<std::size_t>(63, n - s.size());
        s += std::string(label, 'a');
        if (s.size() < n) {
            s += (s.size() + 1 < n) ? "." : "b";
        }
    }
    return s;
}

std::string padded_to(std::size_t message_size)
{
    auto b = base();
    const auto without = b.message().size();
    // The padding extension costs 4 bytes of header besides its data.
    b.ext(ext_padding, std::string(message_size - without - 4, '\0'));
    return b.message();
}

INSTANTIATE_TEST_SUITE_P(
    cases, tls_accepted,
    ::testing::Values(
        accepted_case{"plain", base().record(), "allowed.test"},
        accepted_case{"upper_case_and_trailing_dot", with_sni("Allowed.TEST.").record(), "allowed.test"},
        accepted_case{"upper_case", with_sni("ALLOWED.TEST").record(), "allowed.test"},
        accepted_case{"underscore", with_sni("_acme-challenge.allowed.test").record(),
                      "_acme-challenge.allowed.test"},
        accepted_case{"punycode_a_label", with_sni("xn--bcher-kva.example").record(), "xn--bcher-kva.example"},
        accepted_case{"single_label", with_sni("localhost").record(), "localhost"},
        // RFC 6066 forbids addresses in SNI, but it is the policy that refuses them, with its reason code.
        accepted_case{"ipv4_literal_is_reported", with_sni("192.0.2.1").record(), "192.0.2.1"},
        accepted_case{"name_of_253", with_sni(name_of_length(253)).record(), name_of_length(253)},
        accepted_case{"name_of_253_and_trailing_dot", with_sni(name_of_length(253) + ".").record(),
                      name_of_length(253)},
        accepted_case{"label_of_63", with_sni(std::string(63, 'x') + ".test").record(),
                      std::string(63, 'x') + ".test"},
        accepted_case{"no_server_name", hello_builder{}.ext(ext_supported_versions, "\x02\x03\x04"s).record(),
                      std::nullopt},
        accepted_case{"server_name_without_host_name",
                      with_sni_data(server_name_list({{1, "something"}})).record(), std::nullopt},
        accepted_case{"host_name_after_another_type",
                      with_sni_data(server_name_list({{1, "something"}, {0, "allowed.test"}})).record(),
                      "allowed.test"},
        accepted_case{"no_extensions_block",
                      [] {
                          hello_builder b;
                          b.no_extensions_block = true;
                          return b.record();
                      }(),
                      std::nullopt},
        accepted_case{"empty_extensions_block", hello_builder{}.record(), std::nullopt},
        accepted_case{"empty_session_id",
                      changed([](hello_builder& b) { b.session_id.clear(); }),
                      "allowed.test"},
        accepted_case{"ech_outer_name", base().ext(ext_ech, ech_outer()).record(), "allowed.test", true},
        accepted_case{"ech_before_server_name",
                      hello_builder{}.ext(ext_ech, ech_outer()).sni("public.example").record(), "public.example",
                      true},
        accepted_case{"ech_without_server_name", hello_builder{}.ext(ext_ech, ech_outer()).record(), std::nullopt,
                      true},
        accepted_case{"alpn", with_alpn_data(alpn_list({"h2", "http/1.1", "acme-tls/1"})).record(), "allowed.test",
                      false, {"h2", "http/1.1", "acme-tls/1"}},
        // GREASE values (RFC 8701) are distinct extension types, and extensions may be empty.
        accepted_case{"grease_and_unknown_extensions",
                      base().ext(0x0a0a, "").ext(0x4a4a, "\x00"s).ext(0xffff, "xyz").record(), "allowed.test"},
        accepted_case{"tls_1_0_legacy_version",
                      changed([](hello_builder& b) { b.legacy_version = 0x0301; }),
                      "allowed.test", false, {}, 0x0301},
        // The record version is not checked beyond its major byte: clients send 0x0301 or 0x0303.
        accepted_case{"record_version_0303",
                      hello_builder::record_header(22, 0x0303, base().message().size()) + base().message(),
                      "allowed.test"},
        accepted_case{"record_version_0300",
                      hello_builder::record_header(22, 0x0300, base().message().size()) + base().message(),
                      "allowed.test"},
        accepted_case{"one_full_record_of_2_14", hello_builder::records(padded_to(16384)), "allowed.test"},
        accepted_case{"two_records_of_2_14_and_1",
                      hello_builder::reframe(padded_to(16384), {16383, 1}), "allowed.test"}),
    case_name<accepted_case>);

TEST(tls_accepted_limits, a_message_of_exactly_max_bytes_is_complete)
{
    client_hello hello;
    const auto data = hello_builder::records(padded_to(16384));
    EXPECT_EQ(parse_client_hello(data, hello, 16384), hello_status::complete);
    EXPECT_EQ(parse_client_hello(data, hello, 16383), hello_status::too_large);
    const auto bigger = hello_builder::records(padded_to(16385));
    EXPECT_EQ(parse_client_hello(bigger, hello, 16385), hello_status::complete);
    EXPECT_EQ(parse_client_hello(bigger, hello), hello_status::too_large);
}

// --- Refused input ------------------------------------------------------------------------------------------------

struct refused_case {
    std::string name;
    std::string data;
    hello_status expected;
};

class tls_refused : public ::testing::TestWithParam<refused_case> {};

TEST_P(tls_refused, is_refused)
{
    const auto& c = GetParam();
    client_hello hello;
    hello.sni = "left.over";
    hello.alpn = {"h2"};
    ASSERT_EQ(parse_client_hello(c.data, hello), c.expected);
    // Nothing from a refused hello reaches the caller.
    EXPECT_FALSE(hello.sni.has_value());
    EXPECT_FALSE(hello.has_ech);
    EXPECT_TRUE(hello.alpn.empty());
}

// Checks run on what has arrived: a prefix is never given another verdict than the whole input.
TEST_P(tls_refused, every_prefix_is_incomplete_or_refused_alike)
{
    const auto& c = GetParam();
    for (std::size_t n = 0; n < c.data.size(); ++n) {
        client_hello hello;
        const auto s = parse_client_hello(std::string_view(c.data).substr(0, n), hello);
        ASSERT_TRUE(s == hello_status::incomplete || s == c.expected)
            << "prefix of " << n << " bytes: " << to_string(s);
    }
}

// Not TLS at all: decided from the first bytes, whatever follows.
INSTANTIATE_TEST_SUITE_P(
    not_tls, tls_refused,
    ::testing::Values(
        refused_case{"http_get", "GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n", hello_status::not_tls},
        refused_case{"http_connect", "CONNECT allowed.test:443 HTTP/1.1\r\n\r\n", hello_status::not_tls},
        refused_case{"ssh_banner", "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n", hello_status::not_tls},
        refused_case{"one_byte", "G", hello_status::not_tls},
        refused_case{"nul", "\0\0\0\0"s, hello_status::not_tls},
        refused_case{"handshake_byte_then_version_major_1", "\x16\x01\x00\x00\x10"s, hello_status::not_tls},
        refused_case{"handshake_byte_then_version_major_0", "\x16\x00"s, hello_status::not_tls},
        refused_case{"handshake_byte_then_http", "\x16GET / HTTP/1.1\r\n"s, hello_status::not_tls},
        refused_case{"alert_record", "\x15\x03\x01\x00\x02\x02\x28"s, hello_status::not_tls},
        refused_case{"change_cipher_spec_record", "\x14\x03\x03\x00\x01\x01"s, hello_status::not_tls},
        refused_case{"application_data_record", "\x17\x03\x03\x00\x03" "abc"s, hello_status::not_tls},
        // An SSL 2.0-compatible ClientHello (two-byte header with the high bit set): no SNI is possible.
        refused_case{"sslv2_client_hello", "\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10"s, hello_status::not_tls}),
    case_name<refused_case>);

INSTANTIATE_TEST_SUITE_P(
    framing, tls_refused,
    ::testing::Values(
        refused_case{"empty_record", "\x16\x03\x01\x00\x00\x01\x00\x00\x00"s, hello_status::malformed},
        refused_case{"record_over_2_14", hello_builder::record_header(22, 0x0301, 16385), hello_status::malformed},
        refused_case{"server_hello", changed([](hello_builder& b) { b.handshake_type = 2; }),
                     hello_status::malformed},
        refused_case{"hello_request", "\x16\x03\x01\x00\x04\x00\x00\x00\x00"s, hello_status::malformed},
        refused_case{"change_cipher_spec_before_completion", interleaved("\x14\x03\x03\x00\x01\x01"s),
                     hello_status::malformed},
        refused_case{"alert_before_completion", interleaved("\x15\x03\x03\x00\x02\x01\x00"s),
                     hello_status::malformed},
        refused_case{"application_data_before_completion", interleaved("\x17\x03\x03\x00\x03xyz"s),
                     hello_status::malformed},
        refused_case{"empty_record_before_completion", interleaved("\x16\x03\x03\x00\x00"s), hello_status::malformed},
        refused_case{"second_record_version_major_2",
                     [] {
                         const auto m = base().message();
                         return hello_builder::reframe(m.substr(0, 10), {10})
                                + hello_builder::record_header(22, 0x0201, m.size() - 10) + m.substr(10);
                     }(),
                     hello_status::malformed},
        // RFC 8446 5.1: the hello ends at a record boundary; no second message may hide behind it.
        refused_case{"record_continues_after_hello",
                     [] {
                         const auto m = base().message() + "\x14\x00\x00\x00"s;
                         return hello_builder::records(m);
                     }(),
                     hello_status::malformed},
        refused_case{"second_record_continues_after_hello",
                     [] {
                         const auto m = base().message();
                         return hello_builder::reframe(m.substr(0, 10), {10})
                                + hello_builder::records(m.substr(10) + "x");
                     }(),
                     hello_status::malformed},
        refused_case{"handshake_length_shorter_than_record",
                     [] {
                         const auto m = base().message();
                         return hello_builder::record_header(22, 0x0301, m.size() + 1) + m + "x";
                     }(),
                     hello_status::malformed}),
    case_name<refused_case>);

INSTANTIATE_TEST_SUITE_P(
    body, tls_refused,
    ::testing::Values(
        refused_case{"body_of_two_bytes", raw_body("\x03\x03"s), hello_status::malformed},
        refused_case{"random_cut_short", raw_body("\x03\x03"s + std::string(20, 'r')), hello_status::malformed},
        refused_case{"session_id_of_33",
                     changed([](hello_builder& b) { b.session_id = std::string(33, 's'); }),
                     hello_status::malformed},
        refused_case{"session_id_overruns", raw_body(head_of_body() + "\x20" + std::string(5, 's')),
                     hello_status::malformed},
        refused_case{"cipher_suites_odd",
                     changed([](hello_builder& b) { b.cipher_suites = "\x13\x01\x13"s; }),
                     hello_status::malformed},
        refused_case{"cipher_suites_empty", changed([](hello_builder& b) { b.cipher_suites.clear(); }),
                     hello_status::malformed},
        refused_case{"cipher_suites_overrun", raw_body(head_of_body() + "\x00\x00\x40\x13\x01"s),
                     hello_status::malformed},
        refused_case{"compression_empty", changed([](hello_builder& b) { b.compression.clear(); }),
                     hello_status::malformed},
        refused_case{"compression_overruns", raw_body(head_of_body() + "\x00\x00\x02\x13\x01\x05\x00"s),
                     hello_status::malformed},
        refused_case{"one_stray_byte_after_compression", with_raw_extensions("\x00"s).record(),
                     hello_status::malformed},
        refused_case{"extensions_block_overruns", with_raw_extensions("\x00\x10\x00\x00\x00\x00"s).record(),
                     hello_status::malformed},
        refused_case{"extensions_block_shorter_than_rest", with_raw_extensions("\x00\x00\x00\x00\x00\x00"s).record(),
                     hello_status::malformed},
        refused_case{"bytes_after_extensions_block", changed([](hello_builder& b) { b.trailing = "\x00"s; }),
                     hello_status::malformed},
        refused_case{"truncated_extension_header", with_raw_extensions(prefixed16("\x00\x0b\x00"s)).record(),
                     hello_status::malformed},
        refused_case{"truncated_extension_length",
                     with_raw_extensions(prefixed16(u16(ext_supported_versions) + u16(10) + "\x02\x03\x04")).record(),
                     hello_status::malformed},
        refused_case{"sni_extension_length_overruns_block",
                     with_raw_extensions(prefixed16(u16(0) + u16(40) + server_name_list({{0, "allowed.test"}})))
                         .record(),
                     hello_status::malformed},
        refused_case{"duplicate_extension", base().ext(ext_supported_versions, "\x02\x03\x04"s).record(),
                     hello_status::malformed},
        refused_case{"duplicate_ech", base().ext(ext_ech, ech_outer()).ext(ext_ech, ech_outer()).record(),
                     hello_status::malformed}),
    case_name<refused_case>);

INSTANTIATE_TEST_SUITE_P(
    server_name, tls_refused,
    ::testing::Values(
        // Two server_name extensions: a filter reading the first and a server reading the last would disagree.
        refused_case{"duplicate_sni_extension", base().sni("evil.example").record(), hello_status::malformed},
        refused_case{"duplicate_sni_extension_same_name", base().sni("allowed.test").record(),
                     hello_status::malformed},
        refused_case{"two_host_names",
                     with_sni_data(server_name_list({{0, "allowed.test"}, {0, "evil.example"}})).record(),
                     hello_status::malformed},
        refused_case{"two_entries_of_another_type",
                     with_sni_data(server_name_list({{0, "allowed.test"}, {7, "a"}, {7, "b"}})).record(),
                     hello_status::malformed},
        refused_case{"extension_empty", with_sni_data("").record(), hello_status::malformed},
        refused_case{"list_empty", with_sni_data(u16(0)).record(), hello_status::malformed},
        refused_case{"list_length_longer_than_extension",
                     with_sni_data(u16(100) + u8(0) + prefixed16("allowed.test")).record(), hello_status::malformed},
        refused_case{"list_length_shorter_than_extension",
                     with_sni_data(u16(3) + u8(0) + prefixed16("allowed.test")).record(), hello_status::malformed},
        refused_case{"bytes_after_list", with_sni_data(server_name_list({{0, "allowed.test"}}) + "x").record(),
                     hello_status::malformed},
        refused_case{"name_length_overruns_list", with_sni_data(prefixed16(u8(0) + u16(50) + "allowed.test")).record(),
                     hello_status::malformed},
        refused_case{"entry_cut_after_type", with_sni_data(prefixed16(u8(0) + "\x00"s)).record(),
                     hello_status::malformed},
        refused_case{"name_empty", with_sni("").record(), hello_status::malformed},
        refused_case{"name_only_a_dot", with_sni(".").record(), hello_status::malformed},
        refused_case{"name_with_nul", with_sni("allowed.test\0.evil.example"s).record(), hello_status::malformed},
        refused_case{"name_ending_in_nul", with_sni("allowed.test\0"s).record(), hello_status::malformed},
        refused_case{"name_with_control_byte", with_sni("allowed\x01.test").record(), hello_status::malformed},
        refused_case{"name_with_del", with_sni("allowed\x7f.test").record(), hello_status::malformed},
        refused_case{"name_with_tab", with_sni("allowed\t.test").record(), hello_status::malformed},
        refused_case{"name_with_space", with_sni("allowed .test").record(), hello_status::malformed},
        refused_case{"name_with_crlf", with_sni("allowed.test\r\n").record(), hello_status::malformed},
        refused_case{"name_non_ascii", with_sni("b\xc3\xbc" "cher.example").record(), hello_status::malformed},
        refused_case{"name_with_port", with_sni("allowed.test:443").record(), hello_status::malformed},
        refused_case{"name_with_slash", with_sni("allowed.test/x").record(), hello_status::malformed},
        refused_case{"name_wildcard", with_sni("*.allowed.test").record(), hello_status::malformed},
        refused_case{"ipv6_literal", with_sni("::1").record(), hello_status::malformed},
        refused_case{"bracketed_ipv6_literal", with_sni("[::1]").record(), hello_status::malformed},
        refused_case{"empty_label", with_sni("allowed..test").record(), hello_status::malformed},
        refused_case{"leading_dot", with_sni(".allowed.test").record(), hello_status::malformed},
        refused_case{"two_trailing_dots", with_sni("allowed.test..").record(), hello_status::malformed},
        refused_case{"label_of_64", with_sni(std::string(64, 'x') + ".test").record(), hello_status::malformed},
        refused_case{"name_of_254", with_sni(name_of_length(254)).record(), hello_status::malformed}),
    case_name<refused_case>);

INSTANTIATE_TEST_SUITE_P(
    alpn, tls_refused,
    ::testing::Values(
        refused_case{"extension_empty", with_alpn_data("").record(), hello_status::malformed},
        refused_case{"list_empty", with_alpn_data(u16(0)).record(), hello_status::malformed},
        refused_case{"empty_protocol", with_alpn_data(alpn_list({"h2", ""})).record(), hello_status::malformed},
        refused_case{"protocol_overruns_list", with_alpn_data(prefixed16("\x05h2"s)).record(), hello_status::malformed},
        refused_case{"list_shorter_than_extension", with_alpn_data(alpn_list({"h2"}) + "x").record(),
                     hello_status::malformed}),
    case_name<refused_case>);

INSTANTIATE_TEST_SUITE_P(
    too_large, tls_refused,
    ::testing::Values(
        refused_case{"padding_over_16k",
                     hello_builder::records(base().ext(ext_padding, std::string(20000, '\0')).message()),
                     hello_status::too_large},
        refused_case{"message_one_byte_over", hello_builder::records(padded_to(16385)), hello_status::too_large},
        refused_case{"huge_length_field_alone", "\x16\x03\x01\x00\x04\x01\xff\xff\xff"s, hello_status::too_large}),
    case_name<refused_case>);

TEST(tls_too_large, decided_from_the_handshake_header)
{
    const auto data = hello_builder::records(base().ext(ext_padding, std::string(20000, '\0')).message());
    client_hello hello;
    EXPECT_EQ(parse_client_hello(std::string_view(data).substr(0, 8), hello), hello_status::incomplete);
    EXPECT_EQ(parse_client_hello(std::string_view(data).substr(0, 9), hello), hello_status::too_large);
}

TEST(tls_too_large, max_bytes_is_the_callers)
{
    const auto data = base().record();
    client_hello hello;
    EXPECT_EQ(parse_client_hello(data, hello, 64), hello_status::too_large);
    EXPECT_EQ(parse_client_hello(data, hello, data.size()), hello_status::complete);
}

// --- Odds and ends ----------------------------------------------------------------------------------------------

TEST(tls_incomplete, the_first_bytes_of_a_record)
{
    client_hello hello;
    EXPECT_EQ(parse_client_hello("", hello), hello_status::incomplete);
    EXPECT_EQ(parse_client_hello("\x16", hello), hello_status::incomplete);
    EXPECT_EQ(parse_client_hello("\x16\x03", hello), hello_status::incomplete);
    EXPECT_EQ(parse_client_hello("\x16\x03\x01\x00", hello), hello_status::incomplete);
    EXPECT_EQ(parse_client_hello("\x16\x03\x01\x00\x30"s, hello), hello_status::incomplete);
    EXPECT_EQ(parse_client_hello("\x16\x03\x01\x00\x30\x01"s, hello), hello_status::incomplete);
}

TEST(tls_status, out_is_reset_by_each_call)
{
    client_hello hello;
    ASSERT_EQ(parse_client_hello(base().ext(ext_ech, ech_outer()).record(), hello), hello_status::complete);
    ASSERT_TRUE(hello.sni.has_value());
    ASSERT_TRUE(hello.has_ech);
    const auto data = base().record();
    EXPECT_EQ(parse_client_hello(std::string_view(data).substr(0, 20), hello), hello_status::incomplete);
    EXPECT_FALSE(hello.sni.has_value());
    EXPECT_FALSE(hello.has_ech);
    EXPECT_EQ(hello.legacy_version, 0);
}

TEST(tls_status, names)
{
    EXPECT_EQ(to_string(hello_status::incomplete), "incomplete");
    EXPECT_EQ(to_string(hello_status::complete), "complete");
    EXPECT_EQ(to_string(hello_status::not_tls), "not_tls");
    EXPECT_EQ(to_string(hello_status::malformed), "malformed");
    EXPECT_EQ(to_string(hello_status::too_large), "too_large");
}

// --- Garbage ----------------------------------------------------------------------------------------------------
//
// Not a substitute for a fuzzer, but run under ASan it walks every length field of real hellos through
// values that overrun.

bool plausible(const client_hello& hello)
{
    if (!hello.sni) {
        return true;
    }
    const auto& s = *hello.sni;
    return !s.empty() && s.size() <= 253
           && s.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-_.") == std::string::npos;
}

TEST(tls_garbage, random_bytes_are_not_tls)
{
    std::mt19937 rng(20240601);
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_int_distribution<std::size_t> length(1, 600);
    for (int i = 0; i < 2000; ++i) {
        std::string data(length(rng), '\0');
        for (auto& c : data) {
            c = static_cast<char>(byte(rng));
        }
        if (data[0] == '\x16') {
            data[0] = '\x17';
        }
        client_hello hello;
        ASSERT_EQ(parse_client_hello(data, hello), hello_status::not_tls);
    }
}

TEST(tls_garbage, random_bytes_behind_a_handshake_record_header)
{
    std::mt19937 rng(7);
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_int_distribution<std::size_t> length(0, 400);
    for (int i = 0; i < 5000; ++i) {
        std::string body(length(rng), '\0');
        for (auto& c : body) {
            c = static_cast<char>(byte(rng));
        }
        // Mostly a ClientHello type and a consistent length, so that the body parser gets exercised.
        const auto message = (i % 4 == 0) ? body : u8(1) + u24(body.size()) + body;
        const auto data = hello_builder::record_header(22, 0x0301, message.size()) + message;
        client_hello hello;
        const auto s = parse_client_hello(data, hello);
        ASSERT_NE(s, hello_status::not_tls);
        ASSERT_TRUE(s != hello_status::complete || plausible(hello)) << ::testing::PrintToString(hello.sni);
    }
}

TEST(tls_garbage, every_byte_of_real_hellos_mutated)
{
    for (const auto hex : {captured::curl_hex, captured::openssl_alpn_hex, captured::openssl_tls12_hex}) {
        const auto original = from_hex(hex);
        for (std::size_t i = 0; i < original.size(); ++i) {
            for (const int v : {0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff}) {
                auto data = original;
                data[i] = static_cast<char>(v);
                for (const auto& d : {data, hello_builder::reframe(message_of(data), {7, 100, 1})}) {
                    client_hello hello;
                    const auto s = parse_client_hello(d, hello);
                    ASSERT_TRUE(s != hello_status::complete || plausible(hello))
                        << "byte " << i << " = " << v << ": " << ::testing::PrintToString(hello.sni);
                }
            }
        }
    }
}

}  // namespace
}  // namespace egressd::protocol::tls
