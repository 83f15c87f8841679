// Proxy-Authorization: Basic (RFC 7617) header values: what yields {user, password} and everything that
// must yield nothing.

#include "certs/credentials.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <ostream>
#include <string>
#include <utility>

namespace egressd::certs {
namespace {

using namespace std::string_literals;
using credentials = std::optional<std::pair<std::string, std::string>>;

struct basic_case {
    std::string name;
    std::string header;
    credentials expected;
};

void PrintTo(const basic_case& c, std::ostream* os) { *os << c.name; }
std::string case_name(const ::testing::TestParamInfo<basic_case>& info) { return info.param.name; }

// "Basic " + base64 of the given user:password bytes.
std::string basic(const std::string& user_colon_password)
{
    return "Basic " + detail::base64_encode(user_colon_password);
}

credentials pair(std::string user, std::string password) { return std::pair{std::move(user), std::move(password)}; }

class certs_basic_authorization : public ::testing::TestWithParam<basic_case> {};

TEST_P(certs_basic_authorization, parses_as_expected)
{
    const auto& c = GetParam();
    EXPECT_EQ(parse_basic_authorization(c.header), c.expected);
}

INSTANTIATE_TEST_SUITE_P(
    accepted, certs_basic_authorization,
    ::testing::Values(
        // RFC 7617 section 2's example.
        basic_case{"rfc7617_example", "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", pair("Aladdin", "open sesame")},
        basic_case{"scheme_lower_case", "basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", pair("Aladdin", "open sesame")},
        basic_case{"scheme_upper_case", "BASIC QWxhZGRpbjpvcGVuIHNlc2FtZQ==", pair("Aladdin", "open sesame")},
        basic_case{"scheme_mixed_case", "bAsIc QWxhZGRpbjpvcGVuIHNlc2FtZQ==", pair("Aladdin", "open sesame")},
        basic_case{"several_spaces", "Basic    QWxhZGRpbjpvcGVuIHNlc2FtZQ==", pair("Aladdin", "open sesame")},
        basic_case{"surrounding_whitespace", " \tBasic QWxhZGRpbjpvcGVuIHNlc2FtZQ== \t",
                   pair("Aladdin", "open sesame")},
        basic_case{"password_with_colons", basic("alice:a:b::c:"), pair("alice", "a:b::c:")},
        basic_case{"empty_password", basic("alice:"), pair("alice", "")},
        basic_case{"password_only_a_colon", basic("alice::"), pair("alice", ":")},
        basic_case{"password_control_characters", basic("alice:p\0w\r\n\x7f"s), pair("alice", "p\0w\r\n\x7f"s)},
        basic_case{"password_utf8", basic("alice:p\xc3\xa4ss"), pair("alice", "p\xc3\xa4ss")},
        // The store decides which users exist; this only splits.
        basic_case{"user_outside_store_rules", basic("al ice/x:pw"), pair("al ice/x", "pw")},
        basic_case{"user_utf8", basic("j\xc3\xb6rg:pw"), pair("j\xc3\xb6rg", "pw")},
        basic_case{"one_character_each", basic("a:b"), pair("a", "b")},
        basic_case{"password_not_utf8", "Basic YTr7/w==", pair("a", "\xfb\xff")}),
    case_name);

INSTANTIATE_TEST_SUITE_P(
    refused, certs_basic_authorization,
    ::testing::Values(
        basic_case{"empty", "", std::nullopt},
        basic_case{"only_spaces", "   ", std::nullopt},
        basic_case{"bearer", "Bearer x", std::nullopt},
        basic_case{"bearer_with_valid_base64", "Bearer QWxhZGRpbjpvcGVuIHNlc2FtZQ==", std::nullopt},
        basic_case{"digest", "Digest username=\"alice\", realm=\"egressd\"", std::nullopt},
        basic_case{"scheme_alone", "Basic", std::nullopt},
        basic_case{"scheme_and_spaces", "Basic   ", std::nullopt},
        basic_case{"scheme_prefix", "Basi QWxhZGRpbjpvcGVuIHNlc2FtZQ==", std::nullopt},
        basic_case{"scheme_longer", "Basicx QWxhZGRpbjpvcGVuIHNlc2FtZQ==", std::nullopt},
        basic_case{"no_space_after_scheme", "BasicQWxhZGRpbjpvcGVuIHNlc2FtZQ==", std::nullopt},
        basic_case{"tab_after_scheme", "Basic\tQWxhZGRpbjpvcGVuIHNlc2FtZQ==", std::nullopt},
        basic_case{"bad_base64_characters", "Basic !!!!", std::nullopt},
        basic_case{"base64_padding_missing", "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ", std::nullopt},
        // "a:\xfb\xff" is YTr7/w== in the standard alphabet.
        basic_case{"base64_url_alphabet", "Basic YTr7_w==", std::nullopt},
        basic_case{"two_tokens", "Basic QWxh ZGRpbjpvcGVuIHNlc2FtZQ==", std::nullopt},
        basic_case{"auth_params_instead_of_token68", "Basic realm=\"x\"", std::nullopt},
        basic_case{"no_colon", basic("alice"), std::nullopt},
        basic_case{"empty_decoded", "Basic ", std::nullopt},
        basic_case{"empty_user", basic(":password"), std::nullopt},
        basic_case{"empty_user_and_password", basic(":"), std::nullopt},
        basic_case{"user_with_nul", basic("ali\0ce:pw"s), std::nullopt},
        basic_case{"user_with_newline", basic("alice\nx-injected: 1:pw"), std::nullopt},
        basic_case{"user_with_del", basic("alice\x7f:pw"), std::nullopt}),
    case_name);

}  // namespace
}  // namespace egressd::certs
