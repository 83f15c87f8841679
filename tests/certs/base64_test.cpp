// The strict base64 codec used for salts, hashes and Basic credentials: RFC 4648 section 10 vectors, round
// trips over every length and byte value, and everything a lenient decoder would accept but this one must not.

#include "certs/credentials.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <random>
#include <string>

namespace egressd::certs {
namespace {

using detail::base64_decode;
using detail::base64_encode;

TEST(certs_base64, rfc4648_vectors_both_ways)
{
    const std::pair<std::string, std::string> vectors[] = {
        {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
    };
    for (const auto& [plain, encoded] : vectors) {
        EXPECT_EQ(base64_encode(plain), encoded) << plain;
        EXPECT_EQ(base64_decode(encoded), std::optional<std::string>(plain)) << encoded;
    }
}

TEST(certs_base64, every_byte_value_round_trips)
{
    std::string all;
    for (int i = 0; i < 256; ++i) {
        all += static_cast<char>(i);
    }
    auto encoded = base64_encode(all);
    EXPECT_EQ(encoded.size(), (256 + 2) / 3 * 4);
    EXPECT_EQ(base64_decode(encoded), std::optional<std::string>(all));
}

TEST(certs_base64, every_length_round_trips)
{
    std::mt19937 rng(20261121);
    std::uniform_int_distribution<int> byte(0, 255);
    for (std::size_t len = 0; len <= 100; ++len) {
        std::string bytes;
        for (std::size_t i = 0; i < len; ++i) {
            bytes += static_cast<char>(byte(rng));
        }
        auto encoded = base64_encode(bytes);
        EXPECT_EQ(encoded.size() % 4, 0u);
        EXPECT_EQ(base64_decode(encoded), std::optional<std::string>(bytes)) << "length " << len;
    }
}

TEST(certs_base64, the_alphabet_maps_in_order)
{
    // 48 bytes that encode to the whole alphabet once.
    const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    auto decoded = base64_decode(alphabet);
    ASSERT_TRUE(decoded);
    EXPECT_EQ(decoded->size(), 48u);
    EXPECT_EQ(base64_encode(*decoded), alphabet);
}

TEST(certs_base64, refuses_what_lenient_decoders_accept)
{
    const std::string bad[] = {
        "Zg",          // padding missing
        "Zg=",         // length not a multiple of 4
        "Zm9vY",       // length not a multiple of 4
        "Z===",        // three '='
        "====",        // nothing but padding
        "Zg==Zg==",    // padding in the middle
        "Zm=v",        // '=' before a character
        "=Zm9",        // '=' first
        "Zh==",        // unused bits set: a second spelling of "f"
        "Zm9=",        // unused bits set: a second spelling of "fo"
        "Zm9\n",       // line break (kept to a multiple of 4, so the alphabet is what refuses it)
        "Zm9v\r\n",    // line break after a whole group
        " Zm9",        // leading space
        "Zm9 ",        // trailing space
        "Zm 9",        // inner space
        "Zm9\t",       // tab
        "Zm9-",        // base64url alphabet
        "Zm9_",        // base64url alphabet
        "Zm9.",        // passlib's adapted alphabet
        std::string("Zm\0v", 4),  // NUL
        "Zm\xc3\xa4",             // non-ASCII
    };
    for (const auto& text : bad) {
        EXPECT_EQ(base64_decode(text), std::nullopt) << '"' << text << '"';
    }
}

}  // namespace
}  // namespace egressd::certs
