#include "http_support.hpp"

#include <string>

namespace egressd::protocol::http {
namespace {

using namespace fixtures;
using namespace std::string_literals;

struct valid_response_case {
    std::string name;
    std::string head;
    std::string rest;
    int version_minor;
    int status;
    std::string reason;
    field_list headers;
};

class http_response_valid : public ::testing::TestWithParam<valid_response_case> {};

TEST_P(http_response_valid, parses_the_head_and_leaves_the_rest)
{
    const auto& c = GetParam();
    response_head head;
    parse_error err = parse_error::bad_chunk;
    ASSERT_EQ(parse_response_head(c.head + c.rest, limits{}, head, err), parse_status::complete) << to_string(err);
    EXPECT_EQ(err, parse_error::none);
    EXPECT_EQ(head.version_minor, c.version_minor);
    EXPECT_EQ(head.status, c.status);
    EXPECT_EQ(head.reason, c.reason);
    EXPECT_EQ(flat(head.headers), c.headers);
    EXPECT_EQ(head.head_size, c.head.size());
}

TEST_P(http_response_valid, every_prefix_is_incomplete)
{
    const auto& c = GetParam();
    for (std::size_t n = 0; n < c.head.size(); ++n) {
        response_head head;
        parse_error err = parse_error::none;
        EXPECT_EQ(parse_response_head(std::string_view(c.head).substr(0, n), limits{}, head, err),
                  parse_status::incomplete)
            << "prefix of " << n << " bytes, error " << to_string(err);
    }
}

INSTANTIATE_TEST_SUITE_P(
    cases, http_response_valid,
    ::testing::Values(
        valid_response_case{"ok", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", "hi", 1, 200, "OK",
                            {{"Content-Length", "2"}}},
        valid_response_case{"http_1_0", "HTTP/1.0 404 Not Found\r\n\r\n", "", 0, 404, "Not Found", {}},
        valid_response_case{"empty_reason", "HTTP/1.1 200 \r\n\r\n", "", 1, 200, "", {}},
        // Lenient on purpose: some servers omit the SP before an empty reason.
        valid_response_case{"no_reason_no_space", "HTTP/1.1 204\r\n\r\n", "", 1, 204, "", {}},
        valid_response_case{"reason_with_spaces_tabs_obs_text", "HTTP/1.1 500 Oops \t caf\xc3\xa9 \r\n\r\n", "", 1,
                            500, "Oops \t caf\xc3\xa9 ", {}},
        valid_response_case{"lowest_status", "HTTP/1.1 100 Continue\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n", 1, 100,
                            "Continue", {}},
        valid_response_case{"highest_status", "HTTP/1.1 999 Custom\r\n\r\n", "", 1, 999, "Custom", {}},
        valid_response_case{"headers", "HTTP/1.1 301 Moved\r\nLocation: http://h/x\r\nX-Empty:\r\n\r\n", "", 1, 301,
                            "Moved", {{"Location", "http://h/x"}, {"X-Empty", ""}}}),
    case_name<valid_response_case>);

struct bad_response_case {
    std::string name;
    std::string data;
    parse_error expected;
};

class http_response_refused : public ::testing::TestWithParam<bad_response_case> {};

TEST_P(http_response_refused, with_the_exact_error)
{
    const auto& c = GetParam();
    response_head head;
    parse_error err = parse_error::none;
    EXPECT_EQ(parse_response_head(c.data, limits{}, head, err), parse_status::error);
    EXPECT_EQ(err, c.expected);
}

TEST_P(http_response_refused, every_prefix_is_incomplete_or_the_same_error)
{
    const auto& c = GetParam();
    for (std::size_t n = 0; n < c.data.size(); ++n) {
        response_head head;
        parse_error err = parse_error::none;
        const auto status = parse_response_head(std::string_view(c.data).substr(0, n), limits{}, head, err);
        if (status == parse_status::incomplete) {
            EXPECT_EQ(err, parse_error::none) << "prefix of " << n << " bytes";
            continue;
        }
        EXPECT_EQ(status, parse_status::error) << "prefix of " << n << " bytes";
        EXPECT_EQ(err, c.expected) << "prefix of " << n << " bytes";
    }
}

INSTANTIATE_TEST_SUITE_P(
    cases, http_response_refused,
    ::testing::Values(
        bad_response_case{"two_digit_status", "HTTP/1.1 20 OK\r\n\r\n", parse_error::bad_status_line},
        bad_response_case{"four_digit_status", "HTTP/1.1 2000 OK\r\n\r\n", parse_error::bad_status_line},
        bad_response_case{"status_below_100", "HTTP/1.1 099 Low\r\n\r\n", parse_error::bad_status_line},
        bad_response_case{"letters_status", "HTTP/1.1 2x0 OK\r\n\r\n", parse_error::bad_status_line},
        bad_response_case{"double_space", "HTTP/1.1  200 OK\r\n\r\n", parse_error::bad_status_line},
        bad_response_case{"tab_after_status", "HTTP/1.1 200\tOK\r\n\r\n", parse_error::bad_status_line},
        bad_response_case{"no_status", "HTTP/1.1\r\n\r\n", parse_error::bad_status_line},
        bad_response_case{"control_in_reason", "HTTP/1.1 200 O\x01K\r\n\r\n", parse_error::bad_status_line},
        bad_response_case{"nul_in_reason", "HTTP/1.1 200 O\0K\r\n\r\n"s, parse_error::bad_status_line},
        bad_response_case{"bare_cr_in_reason", "HTTP/1.1 200 O\rK\r\n\r\n", parse_error::bad_status_line},
        bad_response_case{"not_http", "ICY 200 OK\r\n\r\n", parse_error::bad_status_line},
        bad_response_case{"empty_line_first", "\r\nHTTP/1.1 200 OK\r\n\r\n", parse_error::bad_status_line},
        bad_response_case{"version_2", "HTTP/2 200 OK\r\n\r\n", parse_error::bad_version},
        bad_response_case{"version_1_2", "HTTP/1.2 200 OK\r\n\r\n", parse_error::bad_version},
        bad_response_case{"version_only", "HTTP/1.\r\n\r\n", parse_error::bad_version},
        // A peer that does not speak HTTP/1.x fails at its first bytes.
        bad_response_case{"ssh_banner_early", "SSH-2.0-OpenSSH", parse_error::bad_status_line},
        bad_response_case{"tls_alert_early", "\x15\x03\x03", parse_error::bad_status_line},
        bad_response_case{"http_2_early", "HTTP/2", parse_error::bad_version},
        bad_response_case{"space_before_colon", "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n",
                          parse_error::bad_header},
        bad_response_case{"nul_in_header", "HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n"s, parse_error::bad_header},
        bad_response_case{"obs_fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", parse_error::obs_fold},
        bad_response_case{"bare_lf_status_line", "HTTP/1.1 200 OK\n\r\n", parse_error::bare_lf},
        bad_response_case{"bare_lf_header", "HTTP/1.1 200 OK\r\nX: y\n\r\n", parse_error::bare_lf},
        bad_response_case{"bare_lf_final_line", "HTTP/1.1 200 OK\r\nX: y\r\n\n", parse_error::bare_lf}),
    case_name<bad_response_case>);

TEST(http_response_limits, head_and_header_count_limits_apply)
{
    limits lim;
    lim.max_head_bytes = 64;
    lim.max_headers = 2;
    response_head head;
    parse_error err = parse_error::none;
    const std::string ok = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n";
    EXPECT_EQ(parse_response_head(ok, lim, head, err), parse_status::complete);
    EXPECT_EQ(parse_response_head("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", lim, head, err),
              parse_status::error);
    EXPECT_EQ(err, parse_error::too_many_headers);
    const std::string padded = "HTTP/1.1 200 OK\r\nA: " + std::string(64 - 24, 'v') + "\r\n\r\n";
    ASSERT_EQ(padded.size(), 64U);
    EXPECT_EQ(parse_response_head(padded, lim, head, err), parse_status::complete) << to_string(err);
    EXPECT_EQ(parse_response_head("HTTP/1.1 200 OK\r\nA: " + std::string(64 - 23, 'v') + "\r\n\r\n", lim, head, err),
              parse_status::error);
    EXPECT_EQ(err, parse_error::head_too_large);
    // The status line alone, never ended, is bounded by the head limit.
    EXPECT_EQ(parse_response_head("HTTP/1.1 200 " + std::string(100, 'x'), lim, head, err), parse_status::error);
    EXPECT_EQ(err, parse_error::head_too_large);
}

}  // namespace
}  // namespace egressd::protocol::http
