#include "captured_hellos.hpp"
#include "tls_support.hpp"

#include <optional>
#include <string>
#include <vector>

namespace egressd::protocol::tls {
namespace {

using namespace fixtures;

// --- Real ClientHellos ------------------------------------------------------------------------------------------

struct captured_case {
    std::string name;
    std::string_view hex;
    std::optional<std::string> sni;
    std::vector<std::string> alpn;
};

class tls_captured : public ::testing::TestWithParam<captured_case> {
protected:
    std::string bytes() const { return from_hex(GetParam().hex); }

    // Parses data and checks it yields exactly what the capture holds.
    void expect_parsed(std::string_view data, std::size_t max_bytes = 16 * 1024) const
    {
        const auto& c = GetParam();
        client_hello hello;
        ASSERT_EQ(parse_client_hello(data, hello, max_bytes), hello_status::complete);
        EXPECT_EQ(hello.sni, c.sni);
        EXPECT_EQ(hello.alpn, c.alpn);
        EXPECT_FALSE(hello.has_ech);
        // Every client here speaks TLS 1.2 or 1.3, which both put 0x0303 in legacy_version.
        EXPECT_EQ(hello.legacy_version, 0x0303);
    }

    // Every proper prefix is incomplete (nothing is decided on part of a hello), the whole is complete.
    void expect_prefixes_incomplete(std::string_view data) const
    {
        for (std::size_t n = 0; n < data.size(); ++n) {
            client_hello hello;
            ASSERT_EQ(parse_client_hello(data.substr(0, n), hello), hello_status::incomplete)
                << "prefix of " << n << " of " << data.size() << " bytes";
            EXPECT_FALSE(hello.sni.has_value());
        }
        expect_parsed(data);
    }
};

TEST_P(tls_captured, parses_the_whole_hello) { expect_parsed(bytes()); }

TEST_P(tls_captured, every_byte_split_is_incomplete_until_the_end)
{
    expect_prefixes_incomplete(bytes());
}

// After the hello, a client may send early data or anything else: the caller forwards it unchanged, and it
// must not change the verdict on the hello.
TEST_P(tls_captured, bytes_after_the_hello_are_not_read)
{
    const auto data = bytes();
    expect_parsed(data + "\x17\x03\x03\x00\x05hello");
    expect_parsed(data + "\x14\x03\x03\x00\x01\x01");
    expect_parsed(data + "GET / HTTP/1.1\r\n");
    expect_parsed(data + "\x16");
}

TEST_P(tls_captured, reframed_into_several_records)
{
    const auto message = message_of(bytes());
    const auto n = message.size();
    const std::vector<std::vector<std::size_t>> framings = {
        {n / 2, n},                  // two records
        {n / 3, n / 3, n},           // three records
        {1, n},                      // the handshake type alone
        {2, 1, 1, n},                // the 4-byte handshake header across three records
        {4, n},                      // the header alone, then the body
        {n - 1, 1},                  // the last byte alone
        {38, 1, 32, n},              // random and session id across records
    };
    for (const auto& sizes : framings) {
        SCOPED_TRACE(::testing::PrintToString(sizes));
        expect_prefixes_incomplete(hello_builder::reframe(message, sizes));
    }
}

TEST_P(tls_captured, reframed_into_one_byte_records)
{
    const auto message = message_of(bytes());
    const auto data = hello_builder::reframe(message, std::vector<std::size_t>(message.size(), 1));
    ASSERT_EQ(data.size(), 6 * message.size());
    expect_prefixes_incomplete(data);
}

TEST_P(tls_captured, max_bytes_bounds_the_handshake_message)
{
    const auto data = bytes();
    const auto message_size = data.size() - 5;
    expect_parsed(data, message_size);
    client_hello hello;
    EXPECT_EQ(parse_client_hello(data, hello, message_size - 1), hello_status::too_large);
    // The 4-byte handshake header is enough to know.
    EXPECT_EQ(parse_client_hello(std::string_view(data).substr(0, 9), hello, message_size - 1),
              hello_status::too_large);
    EXPECT_EQ(parse_client_hello(std::string_view(data).substr(0, 8), hello, message_size - 1),
              hello_status::incomplete);
}

// One-byte records cost five header bytes per byte of hello: the records are bounded to 2 * max_bytes too, so
// the caller's peek buffer stays bounded whatever the framing.
TEST_P(tls_captured, tiny_records_are_bounded_too)
{
    const auto message = message_of(bytes());
    const auto data = hello_builder::reframe(message, std::vector<std::size_t>(message.size(), 1));
    client_hello hello;
    EXPECT_EQ(parse_client_hello(data, hello, message.size()), hello_status::too_large);
    EXPECT_EQ(parse_client_hello(data, hello, 3 * message.size()), hello_status::complete);
    // Never incomplete once 2 * max_bytes have arrived; incomplete well before.
    for (std::size_t n = 2 * message.size(); n <= data.size(); ++n) {
        ASSERT_EQ(parse_client_hello(std::string_view(data).substr(0, n), hello, message.size()),
                  hello_status::too_large)
            << "prefix of " << n << " bytes";
    }
    EXPECT_EQ(parse_client_hello(std::string_view(data).substr(0, message.size()), hello, message.size()),
              hello_status::incomplete);
}

INSTANTIATE_TEST_SUITE_P(
    cases, tls_captured,
    ::testing::Values(
        captured_case{"openssl_tls13", captured::openssl_tls13_hex, "allowed.test", {}},
        captured_case{"openssl_tls12", captured::openssl_tls12_hex, "allowed.test", {}},
        captured_case{"openssl_default", captured::openssl_default_hex, "allowed.test", {}},
        captured_case{"openssl_noservername", captured::openssl_noservername_hex, std::nullopt, {}},
        captured_case{"openssl_alpn", captured::openssl_alpn_hex, "allowed.test", {"h2", "http/1.1"}},
        // -servername Allowed.TEST. goes on the wire as typed.
        captured_case{"openssl_upper_case_trailing_dot", captured::openssl_upper_hex, "allowed.test", {}},
        // curl pads its hello to 512 bytes (padding extension, 21) and offers h2 and http/1.1.
        captured_case{"curl", captured::curl_hex, "allowed.test", {"h2", "http/1.1"}}),
    case_name<captured_case>);

// The capture shapes the tests above rely on: one record, TLS 1.0 record version as clients send it.
TEST(tls_captured_shape, one_record_each)
{
    for (const auto hex : {captured::openssl_tls13_hex, captured::openssl_tls12_hex, captured::openssl_default_hex,
                           captured::openssl_noservername_hex, captured::openssl_alpn_hex,
                           captured::openssl_upper_hex, captured::curl_hex}) {
        const auto data = from_hex(hex);
        ASSERT_GT(data.size(), 9u);
        EXPECT_EQ(data.substr(0, 3), std::string("\x16\x03\x01", 3));
        EXPECT_EQ((std::size_t{static_cast<unsigned char>(data[3])} << 8) | static_cast<unsigned char>(data[4]),
                  data.size() - 5);
    }
}

}  // namespace
}  // namespace egressd::protocol::tls
