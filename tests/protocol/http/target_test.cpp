#include "http_support.hpp"

#include <string>

namespace egressd::protocol::http {
namespace {

using namespace fixtures;

struct valid_target_case {
    std::string name;
    std::string target;
    std::string host;
    std::uint16_t port;
    std::string origin_form;
};

class http_absolute_target : public ::testing::TestWithParam<valid_target_case> {};

TEST_P(http_absolute_target, splits_into_host_port_and_origin_form)
{
    const auto& c = GetParam();
    target_error err = target_error::bad_port;
    const auto t = parse_absolute_target(c.target, err);
    ASSERT_TRUE(t.has_value()) << to_string(err);
    EXPECT_EQ(err, target_error::none);
    EXPECT_EQ(t->host, c.host);
    EXPECT_EQ(t->port, c.port);
    EXPECT_EQ(t->origin_form, c.origin_form);
}

INSTANTIATE_TEST_SUITE_P(
    cases, http_absolute_target,
    ::testing::Values(
        valid_target_case{"root", "http://example.com/", "example.com", 80, "/"},
        valid_target_case{"no_path", "http://example.com", "example.com", 80, "/"},
        valid_target_case{"query_without_path", "http://h?x=1", "h", 80, "/?x=1"},
        valid_target_case{"path_and_query", "http://h/a/b?c=d&e", "h", 80, "/a/b?c=d&e"},
        valid_target_case{"empty_query", "http://h/a?", "h", 80, "/a?"},
        valid_target_case{"explicit_port", "http://h:8080/x", "h", 8080, "/x"},
        valid_target_case{"explicit_default_port", "http://h:80/", "h", 80, "/"},
        valid_target_case{"port_without_path", "http://h:81", "h", 81, "/"},
        valid_target_case{"port_then_query", "http://h:81?q", "h", 81, "/?q"},
        valid_target_case{"largest_port", "http://h:65535/", "h", 65535, "/"},
        valid_target_case{"port_leading_zero", "http://h:0081/", "h", 81, "/"},
        valid_target_case{"ipv4", "http://127.0.0.1:81/a", "127.0.0.1", 81, "/a"},
        valid_target_case{"ipv6_with_port", "http://[::1]:8080/p?q", "[::1]", 8080, "/p?q"},
        valid_target_case{"ipv6_default_port", "http://[2001:db8::1]/", "[2001:db8::1]", 80, "/"},
        valid_target_case{"ipv6_no_path", "http://[2001:DB8::1]", "[2001:DB8::1]", 80, "/"},
        valid_target_case{"ipv6_embedded_ipv4", "http://[::ffff:10.0.0.1]/", "[::ffff:10.0.0.1]", 80, "/"},
        valid_target_case{"upper_case_scheme_host_kept", "HTTP://Example.COM/Path", "Example.COM", 80, "/Path"},
        valid_target_case{"mixed_case_scheme", "hTtP://h/", "h", 80, "/"},
        valid_target_case{"trailing_dot_host", "http://example.com./", "example.com.", 80, "/"},
        valid_target_case{"reg_name_characters", "http://a-b_c~d.e/", "a-b_c~d.e", 80, "/"},
        valid_target_case{"percent_encoded_path_kept", "http://h/a%20b/%2F?x=%41", "h", 80, "/a%20b/%2F?x=%41"},
        valid_target_case{"at_sign_in_path", "http://h/@x", "h", 80, "/@x"},
        valid_target_case{"colon_in_path", "http://h/a:b", "h", 80, "/a:b"},
        valid_target_case{"double_slash_path", "http://h//x", "h", 80, "//x"}),
    case_name<valid_target_case>);

struct bad_target_case {
    std::string name;
    std::string target;
    target_error expected;
};

class http_absolute_target_refused : public ::testing::TestWithParam<bad_target_case> {};

TEST_P(http_absolute_target_refused, with_the_exact_error)
{
    const auto& c = GetParam();
    target_error err = target_error::none;
    const auto t = parse_absolute_target(c.target, err);
    EXPECT_FALSE(t.has_value()) << "host " << t->host;
    EXPECT_EQ(err, c.expected);
}

INSTANTIATE_TEST_SUITE_P(
    cases, http_absolute_target_refused,
    ::testing::Values(
        bad_target_case{"empty", "", target_error::not_absolute},
        bad_target_case{"origin_form", "/path?q", target_error::not_absolute},
        bad_target_case{"asterisk", "*", target_error::not_absolute},
        bad_target_case{"authority_form", "example.com:443", target_error::not_absolute},
        bad_target_case{"bare_name", "example.com", target_error::not_absolute},
        bad_target_case{"network_path", "//h/p", target_error::not_absolute},
        bad_target_case{"digit_first_scheme", "1http://h/", target_error::not_absolute},
        bad_target_case{"https", "https://h/", target_error::https_scheme},
        bad_target_case{"https_upper_case", "HTTPS://h/", target_error::https_scheme},
        bad_target_case{"https_without_slashes", "https:h", target_error::https_scheme},
        bad_target_case{"ftp", "ftp://h/", target_error::other_scheme},
        bad_target_case{"websocket", "ws://h/", target_error::other_scheme},
        bad_target_case{"http_lookalike", "httpx://h/", target_error::other_scheme},
        bad_target_case{"userinfo", "http://user@h/", target_error::userinfo},
        bad_target_case{"userinfo_password", "http://user:pw@h:81/", target_error::userinfo},
        bad_target_case{"empty_userinfo", "http://@h/", target_error::userinfo},
        bad_target_case{"userinfo_disguise", "http://allowed.com@evil.com/", target_error::userinfo},
        bad_target_case{"empty_host", "http:///path", target_error::bad_authority},
        bad_target_case{"nothing_after_scheme", "http://", target_error::bad_authority},
        bad_target_case{"empty_host_with_port", "http://:80/", target_error::bad_authority},
        bad_target_case{"one_slash", "http:/h/", target_error::bad_authority},
        bad_target_case{"no_slashes", "http:h", target_error::bad_authority},
        bad_target_case{"percent_in_host", "http://h%2ecom/", target_error::bad_authority},
        bad_target_case{"percent_in_port", "http://h:%38%30/", target_error::bad_authority},
        bad_target_case{"fragment", "http://h/p#frag", target_error::bad_authority},
        bad_target_case{"fragment_without_path", "http://h#frag", target_error::bad_authority},
        bad_target_case{"space_in_host", "http://a b/", target_error::bad_authority},
        bad_target_case{"control_in_path", "http://h/a\x01", target_error::bad_authority},
        bad_target_case{"non_ascii_host", "http://b\xc3\xbc" "cher.de/", target_error::bad_authority},
        bad_target_case{"backslash_in_host", "http://h\\evil.com/", target_error::bad_authority},
        bad_target_case{"bracket_in_name", "http://a[b]/", target_error::bad_authority},
        bad_target_case{"empty_brackets", "http://[]/", target_error::bad_authority},
        bad_target_case{"unclosed_bracket", "http://[::1/", target_error::bad_authority},
        bad_target_case{"junk_after_bracket", "http://[::1]x/", target_error::bad_authority},
        bad_target_case{"ipv_future", "http://[v1.x]/", target_error::bad_authority},
        bad_target_case{"zone_id", "http://[fe80::1%25eth0]/", target_error::bad_authority},
        bad_target_case{"unbracketed_ipv6", "http://::1/", target_error::bad_authority},
        bad_target_case{"empty_port", "http://h:/", target_error::bad_port},
        bad_target_case{"empty_port_ipv6", "http://[::1]:/", target_error::bad_port},
        bad_target_case{"port_zero", "http://h:0/", target_error::bad_port},
        bad_target_case{"port_too_large", "http://h:65536/", target_error::bad_port},
        bad_target_case{"port_huge", "http://h:99999999999/", target_error::bad_port},
        bad_target_case{"port_six_digits", "http://h:000080/", target_error::bad_port},
        bad_target_case{"port_letters", "http://h:8a/", target_error::bad_port},
        bad_target_case{"port_negative", "http://h:-1/", target_error::bad_port},
        bad_target_case{"port_plus", "http://h:+80/", target_error::bad_port},
        bad_target_case{"two_ports", "http://h:1:2/", target_error::bad_port}),
    case_name<bad_target_case>);

}  // namespace
}  // namespace egressd::protocol::http
