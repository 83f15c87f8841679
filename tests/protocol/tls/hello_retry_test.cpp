// The pieces of a TLS 1.3 HelloRetryRequest exchange that a tunnel follows: the server's first handshake message
// (scan_server_hello), the client's second ClientHello behind a compatibility ChangeCipherSpec
// (parse_retry_client_hello), and where the first ClientHello's records end (client_hello::records_size), with
// records split at every byte.
#include "tls_support.hpp"

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::protocol::tls {

inline void PrintTo(server_hello_kind k, std::ostream* os) { *os << to_string(k); }

namespace {

using namespace fixtures;
using namespace std::string_literals;

// RFC 8446 4.1.3.
const std::string retry_random = from_hex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c");
const std::string change_cipher_spec = "\x14\x03\x03\x00\x01\x01"s;

// A ServerHello message (TLS 1.3 shaped: supported_versions, then key_share or, in a retry, the group wanted).
std::string server_hello_message(const std::string& random, std::string extensions = {})
{
    if (extensions.empty()) {
        extensions = u16(43) + prefixed16("\x03\x04"s) + u16(51) + prefixed16(u16(23));
    }
    const std::string body = u16(0x0303) + random + prefixed8(std::string(32, '\x33')) + "\x13\x01"s + u8(0)
                             + prefixed16(extensions);
    return u8(2) + u24(body.size()) + body;
}

std::string retry_message() { return server_hello_message(retry_random); }
std::string plain_server_hello_message() { return server_hello_message(std::string(32, '\x42')); }

std::string handshake_records(std::string_view message, const std::vector<std::size_t>& sizes)
{
    return hello_builder::reframe(message, sizes);
}

std::string one_record(std::string_view message) { return hello_builder::records(message); }

std::string client_hello_record(const std::string& name)
{
    hello_builder b;
    b.sni(name);
    b.ext(ext_supported_versions, "\x04\x03\x04\x03\x03"s);
    return b.record();
}

// Every prefix of data scans incomplete or as the whole does, and the whole scans as expected.
void expect_scan(const std::string& data, server_hello_kind kind, std::size_t records_size = 0)
{
    const auto whole = scan_server_hello(data);
    ASSERT_EQ(whole.kind, kind);
    EXPECT_EQ(whole.records_size, records_size);
    for (std::size_t n = 0; n < data.size(); ++n) {
        const auto part = scan_server_hello(std::string_view(data).substr(0, n));
        if (part.kind != server_hello_kind::incomplete) {
            ASSERT_EQ(part.kind, kind) << "prefix of " << n << " bytes";
            ASSERT_EQ(part.records_size, records_size) << "prefix of " << n << " bytes";
        }
    }
}

// --- scan_server_hello ------------------------------------------------------------------------------------------

TEST(scan_server_hello, a_server_hello_in_one_record)
{
    expect_scan(one_record(plain_server_hello_message()), server_hello_kind::server_hello);
}

TEST(scan_server_hello, known_from_the_random_before_the_message_ends)
{
    const auto data = one_record(plain_server_hello_message());
    // Record header, handshake header, legacy_version, random: 43 bytes.
    EXPECT_EQ(scan_server_hello(std::string_view(data).substr(0, 42)).kind, server_hello_kind::incomplete);
    EXPECT_EQ(scan_server_hello(std::string_view(data).substr(0, 43)).kind, server_hello_kind::server_hello);
}

TEST(scan_server_hello, a_retry_in_one_record)
{
    const auto data = one_record(retry_message());
    expect_scan(data, server_hello_kind::hello_retry_request, data.size());
}

TEST(scan_server_hello, a_retry_is_incomplete_until_its_last_byte)
{
    const auto data = one_record(retry_message());
    for (std::size_t n = 0; n < data.size(); ++n) {
        ASSERT_EQ(scan_server_hello(std::string_view(data).substr(0, n)).kind, server_hello_kind::incomplete) << n;
    }
}

TEST(scan_server_hello, a_retry_split_into_two_records_at_every_byte)
{
    const auto message = retry_message();
    for (std::size_t cut = 1; cut < message.size(); ++cut) {
        const auto data = handshake_records(message, {cut, message.size() - cut});
        const auto scan = scan_server_hello(data);
        ASSERT_EQ(scan.kind, server_hello_kind::hello_retry_request) << "cut at " << cut;
        ASSERT_EQ(scan.records_size, data.size()) << "cut at " << cut;
    }
}

TEST(scan_server_hello, a_server_hello_split_into_two_records_at_every_byte)
{
    const auto message = plain_server_hello_message();
    for (std::size_t cut = 1; cut < message.size(); ++cut) {
        ASSERT_EQ(scan_server_hello(handshake_records(message, {cut, message.size() - cut})).kind,
                  server_hello_kind::server_hello)
            << "cut at " << cut;
    }
}

TEST(scan_server_hello, one_byte_records)
{
    const auto retry = retry_message();
    const auto data = handshake_records(retry, std::vector<std::size_t>(retry.size(), 1));
    expect_scan(data, server_hello_kind::hello_retry_request, data.size());
    const auto hello = plain_server_hello_message();
    expect_scan(handshake_records(hello, std::vector<std::size_t>(hello.size(), 1)), server_hello_kind::server_hello);
}

TEST(scan_server_hello, the_compatibility_change_cipher_spec_after_a_retry_is_not_part_of_it)
{
    const auto retry = one_record(retry_message());
    const auto data = retry + change_cipher_spec;
    expect_scan(data, server_hello_kind::hello_retry_request, retry.size());
    // The scan for the answer to the second ClientHello starts behind the retry, at the ChangeCipherSpec.
    const auto after = change_cipher_spec + one_record(plain_server_hello_message());
    expect_scan(after, server_hello_kind::server_hello);
    expect_scan(change_cipher_spec + retry, server_hello_kind::hello_retry_request,
                change_cipher_spec.size() + retry.size());
}

TEST(scan_server_hello, a_second_retry_behind_the_first_is_seen)
{
    const auto retry = one_record(retry_message());
    const auto data = retry + change_cipher_spec + retry;
    const auto first = scan_server_hello(data);
    ASSERT_EQ(first.kind, server_hello_kind::hello_retry_request);
    EXPECT_EQ(scan_server_hello(std::string_view(data).substr(first.records_size)).kind,
              server_hello_kind::hello_retry_request);
}

TEST(scan_server_hello, a_tls12_server_hello_sharing_its_record)
{
    // TLS 1.2 servers put ServerHello, Certificate and ServerHelloDone in one record.
    const auto hello = server_hello_message(std::string(32, '\x42'), u16(0xff01) + prefixed16(u8(0)));
    const auto certificate = u8(11) + u24(3) + u24(0);
    const auto done = u8(14) + u24(0);
    expect_scan(one_record(hello + certificate + done), server_hello_kind::server_hello);
}

struct other_case {
    std::string name;
    std::string data;
};

class scan_server_hello_other : public ::testing::TestWithParam<other_case> {};

TEST_P(scan_server_hello_other, no_retry_follows)
{
    expect_scan(GetParam().data, server_hello_kind::other);
}

INSTANTIATE_TEST_SUITE_P(
    cases, scan_server_hello_other,
    ::testing::Values(
        other_case{"not_tls_banner", "SSH-2.0-upstream\r\n"s},
        other_case{"not_tls_http", "HTTP/1.1 400 Bad Request\r\n\r\n"s},
        other_case{"alert", "\x15\x03\x03\x00\x02\x02\x28"s},
        other_case{"application_data", "\x17\x03\x03\x00\x03xyz"s},
        other_case{"record_version_major_2", "\x16\x02\x03\x00\x04\x02\x00\x00\x00"s},
        other_case{"zero_length_record", "\x16\x03\x03\x00\x00"s},
        other_case{"oversized_record", "\x16\x03\x03\x40\x01"s},
        other_case{"a_client_hello_echoed", client_hello_record("allowed.test")},
        other_case{"change_cipher_spec_of_two_bytes", "\x14\x03\x03\x00\x02\x01\x01"s},
        other_case{"change_cipher_spec_payload_2", "\x14\x03\x03\x00\x01\x02"s},
        other_case{"alert_between_the_pieces", handshake_records(plain_server_hello_message().substr(0, 10), {10})
                                                   + "\x15\x03\x03\x00\x02\x02\x28"s}),
    case_name<other_case>);

TEST(scan_server_hello_malformed, a_retry_sharing_its_last_record)
{
    const auto data = one_record(retry_message() + u8(8) + u24(0));
    expect_scan(data, server_hello_kind::malformed);
}

TEST(scan_server_hello_malformed, a_retry_continued_by_another_content_type)
{
    const auto message = retry_message();
    const auto data = handshake_records(message.substr(0, 50), {50}) + "\x15\x03\x03\x00\x02\x02\x28"s;
    expect_scan(data, server_hello_kind::malformed);
}

TEST(scan_server_hello_malformed, a_retry_larger_than_max_bytes)
{
    const auto message = server_hello_message(retry_random, u16(21) + prefixed16(std::string(300, '\0')));
    EXPECT_EQ(scan_server_hello(one_record(message), 256).kind, server_hello_kind::malformed);
    EXPECT_EQ(scan_server_hello(one_record(message), 512).kind, server_hello_kind::hello_retry_request);
}

TEST(scan_server_hello_malformed, a_retry_whose_length_ends_inside_the_random)
{
    auto message = retry_message();
    message = message.substr(0, 1) + u24(10) + message.substr(4);
    EXPECT_EQ(scan_server_hello(one_record(message)).kind, server_hello_kind::malformed);
}

TEST(scan_server_hello_limits, a_verdict_comes_before_twice_max_bytes)
{
    // A retry padded far beyond max_bytes, in one-byte records: five header bytes per byte of message.
    const auto message = server_hello_message(retry_random, u16(21) + prefixed16(std::string(4000, '\0')));
    const auto data = handshake_records(message, std::vector<std::size_t>(message.size(), 1));
    constexpr std::size_t max_bytes = 1000;
    const auto scan = scan_server_hello(std::string_view(data).substr(0, 2 * max_bytes), max_bytes);
    EXPECT_EQ(scan.kind, server_hello_kind::malformed);
    // Change cipher specs without end.
    std::string specs;
    for (int i = 0; i < 400; ++i) {
        specs += change_cipher_spec;
    }
    EXPECT_EQ(scan_server_hello(specs, max_bytes).kind, server_hello_kind::other);
}

TEST(scan_server_hello_names, all)
{
    EXPECT_EQ(to_string(server_hello_kind::incomplete), "incomplete");
    EXPECT_EQ(to_string(server_hello_kind::server_hello), "server_hello");
    EXPECT_EQ(to_string(server_hello_kind::hello_retry_request), "hello_retry_request");
    EXPECT_EQ(to_string(server_hello_kind::other), "other");
    EXPECT_EQ(to_string(server_hello_kind::malformed), "malformed");
}

// --- records_size of the first ClientHello ---------------------------------------------------------------------

TEST(client_hello_records_size, excludes_what_follows)
{
    const auto hello = client_hello_record("allowed.test");
    client_hello out;
    ASSERT_EQ(parse_client_hello(hello + change_cipher_spec + "\x17\x03\x03\x00\x01x"s, out), hello_status::complete);
    EXPECT_EQ(out.records_size, hello.size());
}

TEST(client_hello_records_size, counts_every_record_of_a_split_hello)
{
    hello_builder b;
    b.sni("allowed.test");
    const auto message = b.message();
    for (std::size_t cut = 1; cut < message.size(); ++cut) {
        const auto data = handshake_records(message, {cut, message.size() - cut});
        client_hello out;
        ASSERT_EQ(parse_client_hello(data + client_hello_record("other.test"), out), hello_status::complete) << cut;
        ASSERT_EQ(out.records_size, data.size()) << cut;
        ASSERT_EQ(out.sni, "allowed.test");
    }
}

// --- parse_retry_client_hello ------------------------------------------------------------------------------------

TEST(retry_client_hello, behind_a_change_cipher_spec)
{
    const auto hello = client_hello_record("other.test");
    client_hello out;
    ASSERT_EQ(parse_retry_client_hello(change_cipher_spec + hello, out), hello_status::complete);
    EXPECT_EQ(out.sni, "other.test");
    EXPECT_EQ(out.records_size, change_cipher_spec.size() + hello.size());
}

TEST(retry_client_hello, without_a_change_cipher_spec)
{
    const auto hello = client_hello_record("allowed.test");
    client_hello out;
    ASSERT_EQ(parse_retry_client_hello(hello + "\x17\x03\x03\x00\x01x"s, out), hello_status::complete);
    EXPECT_EQ(out.sni, "allowed.test");
    EXPECT_EQ(out.records_size, hello.size());
}

TEST(retry_client_hello, split_at_every_byte)
{
    hello_builder b;
    b.sni("other.test");
    const auto message = b.message();
    for (std::size_t cut = 1; cut < message.size(); ++cut) {
        const auto data = change_cipher_spec + handshake_records(message, {cut, message.size() - cut});
        for (std::size_t n = 0; n < data.size(); ++n) {
            client_hello out;
            ASSERT_EQ(parse_retry_client_hello(std::string_view(data).substr(0, n), out), hello_status::incomplete)
                << "cut " << cut << ", prefix " << n;
        }
        client_hello out;
        ASSERT_EQ(parse_retry_client_hello(data, out), hello_status::complete) << cut;
        ASSERT_EQ(out.sni, "other.test");
        ASSERT_EQ(out.records_size, data.size());
    }
}

struct retry_refused_case {
    std::string name;
    std::string data;
};

class retry_client_hello_refused : public ::testing::TestWithParam<retry_refused_case> {};

TEST_P(retry_client_hello_refused, is_malformed)
{
    const auto& data = GetParam().data;
    client_hello out;
    ASSERT_EQ(parse_retry_client_hello(data, out), hello_status::malformed);
    for (std::size_t n = 0; n < data.size(); ++n) {
        const auto status = parse_retry_client_hello(std::string_view(data).substr(0, n), out);
        ASSERT_TRUE(status == hello_status::incomplete || status == hello_status::malformed) << n;
    }
}

INSTANTIATE_TEST_SUITE_P(
    cases, retry_client_hello_refused,
    ::testing::Values(
        retry_refused_case{"two_change_cipher_specs",
                           change_cipher_spec + change_cipher_spec + client_hello_record("allowed.test")},
        retry_refused_case{"change_cipher_spec_payload_0", "\x14\x03\x03\x00\x01\x00"s + client_hello_record("a.test")},
        retry_refused_case{"change_cipher_spec_of_two_bytes", "\x14\x03\x03\x00\x02\x01\x01"s},
        retry_refused_case{"change_cipher_spec_version_major_2", "\x14\x02\x03\x00\x01\x01"s},
        retry_refused_case{"alert", "\x15\x03\x03\x00\x02\x02\x28"s},
        retry_refused_case{"application_data", change_cipher_spec + "\x17\x03\x03\x00\x01x"s},
        retry_refused_case{"not_tls", "GET / HTTP/1.1\r\n\r\n"s}),
    case_name<retry_refused_case>);

TEST(retry_client_hello_limits, too_large_and_max_bytes)
{
    const auto hello = client_hello_record("allowed.test");
    client_hello out;
    EXPECT_EQ(parse_retry_client_hello(change_cipher_spec + hello, out, 32), hello_status::too_large);
    EXPECT_EQ(parse_retry_client_hello(change_cipher_spec + hello, out, hello.size()), hello_status::complete);
}

}  // namespace
}  // namespace egressd::protocol::tls
