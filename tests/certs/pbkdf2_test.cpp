// PBKDF2-HMAC-SHA256 through OpenSSL against published vectors: RFC 7914 section 11, and the vectors that
// circulate for SHA-256 (the RFC 6070 inputs with SHA-256 instead of SHA-1).

#include "certs/credentials.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <ostream>
#include <string>
#include <vector>

namespace egressd::certs {
namespace {

struct vector_case {
    std::string name;
    std::string password;
    std::string salt;
    unsigned iterations;
    std::string hex;  // dkLen = hex.size() / 2
};

void PrintTo(const vector_case& c, std::ostream* os) { *os << c.name; }
std::string case_name(const ::testing::TestParamInfo<vector_case>& info) { return info.param.name; }

std::string to_hex(const std::vector<unsigned char>& bytes)
{
    std::string out;
    char buf[3];
    for (auto b : bytes) {
        std::snprintf(buf, sizeof buf, "%02x", b);
        out += buf;
    }
    return out;
}

class certs_pbkdf2 : public ::testing::TestWithParam<vector_case> {};

TEST_P(certs_pbkdf2, matches_the_published_vector)
{
    const auto& c = GetParam();
    std::vector<unsigned char> out(c.hex.size() / 2);
    ASSERT_TRUE(detail::pbkdf2_sha256(c.password, c.salt, c.iterations, out));
    EXPECT_EQ(to_hex(out), c.hex);
}

using namespace std::string_literals;

INSTANTIATE_TEST_SUITE_P(
    vectors, certs_pbkdf2,
    ::testing::Values(
        vector_case{"c1_dk32", "password", "salt", 1,
                    "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"},
        vector_case{"c2_dk32", "password", "salt", 2,
                    "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43"},
        vector_case{"c4096_dk32", "password", "salt", 4096,
                    "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a"},
        vector_case{"long_inputs_dk40", "passwordPASSWORDpassword", "saltSALTsaltSALTsaltSALTsaltSALTsalt", 4096,
                    "348c89dbcbd32b2f32d814b8116e84cf2b17347ebc1800181c4e2a1fb8dd53e1c635518c7dac47e9"},
        vector_case{"embedded_nul_dk16", "pass\0word"s, "sa\0lt"s, 4096, "89b69d0516f829893c696226650a8687"},
        // RFC 7914 section 11.
        vector_case{"rfc7914_passwd", "passwd", "salt", 1,
                    "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
                    "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"},
        vector_case{"rfc7914_nacl", "Password", "NaCl", 80000,
                    "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56"
                    "a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d"}),
    case_name);

TEST(certs_pbkdf2_edges, empty_password_and_salt_are_fine)
{
    std::vector<unsigned char> a(32), b(32);
    ASSERT_TRUE(detail::pbkdf2_sha256("", "", 1, a));
    ASSERT_TRUE(detail::pbkdf2_sha256({}, {}, 1, b));
    EXPECT_EQ(a, b);
    EXPECT_NE(a, std::vector<unsigned char>(32, 0));
}

TEST(certs_pbkdf2_edges, zero_iterations_fail_and_zero_the_output)
{
    std::vector<unsigned char> out(32, 0xaa);
    EXPECT_FALSE(detail::pbkdf2_sha256("password", "salt", 0, out));
    EXPECT_EQ(out, std::vector<unsigned char>(32, 0));
}

}  // namespace
}  // namespace egressd::certs
