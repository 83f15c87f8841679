#include "http_support.hpp"

#include <string>

namespace egressd::protocol::http {
namespace {

using namespace fixtures;

using namespace std::string_literals;  // "...\0..."s keeps embedded NULs

// --- Valid requests -------------------------------------------------------------------------------------------

struct valid_request_case {
    std::string name;
    std::string head;  // exactly the head: head_size must equal its length
    std::string rest;  // bytes after the head (body, next request): never part of the head
    std::string method;
    std::string target;
    int version_minor;
    field_list headers;
};

class http_request_valid : public ::testing::TestWithParam<valid_request_case> {};

TEST_P(http_request_valid, parses_the_head_and_leaves_the_rest)
{
    const auto& c = GetParam();
    const auto data = c.head + c.rest;
    request_head head;
    parse_error err = parse_error::bad_chunk;
    ASSERT_EQ(parse_request_head(data, limits{}, head, err), parse_status::complete) << to_string(err);
    EXPECT_EQ(err, parse_error::none);
    EXPECT_EQ(head.method, c.method);
    EXPECT_EQ(head.target, c.target);
    EXPECT_EQ(head.version_minor, c.version_minor);
    EXPECT_EQ(flat(head.headers), c.headers);
    EXPECT_EQ(head.head_size, c.head.size());
}

TEST_P(http_request_valid, every_prefix_is_incomplete)
{
    const auto& c = GetParam();
    for (std::size_t n = 0; n < c.head.size(); ++n) {
        request_head head;
        parse_error err = parse_error::none;
        EXPECT_EQ(parse_request_head(std::string_view(c.head).substr(0, n), limits{}, head, err),
                  parse_status::incomplete)
            << "prefix of " << n << " bytes, error " << to_string(err);
        EXPECT_EQ(err, parse_error::none) << "prefix of " << n << " bytes";
    }
}

INSTANTIATE_TEST_SUITE_P(
    cases, http_request_valid,
    ::testing::Values(
        valid_request_case{"get_absolute_form",
                           "GET http://example.com/a?b=1 HTTP/1.1\r\nHost: example.com\r\n\r\n", "",
                           "GET", "http://example.com/a?b=1", 1, {{"Host", "example.com"}}},
        valid_request_case{"connect_authority_form",
                           "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", "",
                           "CONNECT", "example.com:443", 1, {{"Host", "example.com:443"}}},
        valid_request_case{"http_1_0_no_headers", "GET http://h/ HTTP/1.0\r\n\r\n", "", "GET", "http://h/", 0, {}},
        valid_request_case{"origin_form", "GET / HTTP/1.1\r\nHost: h\r\n\r\n", "", "GET", "/", 1, {{"Host", "h"}}},
        valid_request_case{"asterisk_form", "OPTIONS * HTTP/1.1\r\n\r\n", "", "OPTIONS", "*", 1, {}},
        valid_request_case{"extension_method", "M-SEARCH * HTTP/1.1\r\n\r\n", "", "M-SEARCH", "*", 1, {}},
        valid_request_case{"empty_values", "GET / HTTP/1.1\r\nX-Empty:\r\nX-Blank:   \r\n\r\n", "", "GET", "/", 1,
                           {{"X-Empty", ""}, {"X-Blank", ""}}},
        valid_request_case{"ows_trimmed_inner_kept", "GET / HTTP/1.1\r\nX-A: \t a \t b \t\r\nX-B:c\r\n\r\n", "",
                           "GET", "/", 1, {{"X-A", "a \t b"}, {"X-B", "c"}}},
        valid_request_case{"colon_in_value", "GET / HTTP/1.1\r\nHost: h:8080\r\n\r\n", "", "GET", "/", 1,
                           {{"Host", "h:8080"}}},
        valid_request_case{"name_case_kept", "GET / HTTP/1.1\r\nhOsT: h\r\n\r\n", "", "GET", "/", 1, {{"hOsT", "h"}}},
        valid_request_case{"obs_text_value", "GET / HTTP/1.1\r\nX-Name: caf\xc3\xa9\r\n\r\n", "", "GET", "/", 1,
                           {{"X-Name", "caf\xc3\xa9"}}},
        valid_request_case{"token_punctuation_name", "GET / HTTP/1.1\r\nX!#$%&'*+-.^_`|~1: v\r\n\r\n", "", "GET",
                           "/", 1, {{"X!#$%&'*+-.^_`|~1", "v"}}},
        valid_request_case{"duplicate_headers_kept_in_order",
                           "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nA: 3\r\n\r\n", "", "GET", "/", 1,
                           {{"A", "1"}, {"B", "2"}, {"A", "3"}}},
        valid_request_case{"leading_empty_lines_skipped", "\r\n\r\nGET / HTTP/1.1\r\n\r\n", "", "GET", "/", 1, {}},
        valid_request_case{"body_not_consumed", "POST http://h/ HTTP/1.1\r\nContent-Length: 5\r\n\r\n", "hello",
                           "POST", "http://h/", 1, {{"Content-Length", "5"}}},
        valid_request_case{"pipelined_request_not_consumed", "GET /1 HTTP/1.1\r\n\r\n", "GET /2 HTTP/1.1\r\n\r\n",
                           "GET", "/1", 1, {}},
        valid_request_case{"target_printable_ascii", "GET /a!\"$&'()*+,;=:@[]{}|\\^`~%20 HTTP/1.1\r\n\r\n", "",
                           "GET", "/a!\"$&'()*+,;=:@[]{}|\\^`~%20", 1, {}}),
    case_name<valid_request_case>);

// --- Refused requests -----------------------------------------------------------------------------------------

struct bad_request_case {
    std::string name;
    std::string data;
    parse_error expected;
};

class http_request_refused : public ::testing::TestWithParam<bad_request_case> {};

TEST_P(http_request_refused, with_the_exact_error)
{
    const auto& c = GetParam();
    request_head head;
    parse_error err = parse_error::none;
    EXPECT_EQ(parse_request_head(c.data, limits{}, head, err), parse_status::error);
    EXPECT_EQ(err, c.expected);
}

// A prefix is either incomplete or refused with the error of the whole input, never accepted or refused
// differently: what we answer must not depend on how the bytes were split into reads.
TEST_P(http_request_refused, every_prefix_is_incomplete_or_the_same_error)
{
    const auto& c = GetParam();
    for (std::size_t n = 0; n < c.data.size(); ++n) {
        request_head head;
        parse_error err = parse_error::none;
        const auto status = parse_request_head(std::string_view(c.data).substr(0, n), limits{}, head, err);
        if (status == parse_status::incomplete) {
            EXPECT_EQ(err, parse_error::none) << "prefix of " << n << " bytes";
            continue;
        }
        EXPECT_EQ(status, parse_status::error) << "prefix of " << n << " bytes";
        EXPECT_EQ(err, c.expected) << "prefix of " << n << " bytes";
    }
}

INSTANTIATE_TEST_SUITE_P(
    request_line, http_request_refused,
    ::testing::Values(
        bad_request_case{"no_space", "GET\r\n\r\n", parse_error::bad_request_line},
        bad_request_case{"http_0_9", "GET /\r\n\r\n", parse_error::bad_request_line},
        bad_request_case{"leading_space", " GET / HTTP/1.1\r\n\r\n", parse_error::bad_request_line},
        bad_request_case{"tab_separator", "GET\t/ HTTP/1.1\r\n\r\n", parse_error::bad_method},
        bad_request_case{"bare_cr_in_line", "GET / HTTP/1.1\rX\r\n\r\n", parse_error::bad_request_line},
        bad_request_case{"bare_cr_before_line", "\rGET / HTTP/1.1\r\n\r\n", parse_error::bad_request_line},
        bad_request_case{"bare_cr_early", "GET /\rx", parse_error::bad_request_line},
        bad_request_case{"method_slash", "GE/T / HTTP/1.1\r\n\r\n", parse_error::bad_method},
        bad_request_case{"method_tab", "G\tET / HTTP/1.1\r\n\r\n", parse_error::bad_method},
        bad_request_case{"method_non_ascii", "G\xc3\x89T / HTTP/1.1\r\n\r\n", parse_error::bad_method},
        bad_request_case{"method_nul", "G\0T / HTTP/1.1\r\n\r\n"s, parse_error::bad_method},
        bad_request_case{"method_colon", "GET: / HTTP/1.1\r\n\r\n", parse_error::bad_method},
        bad_request_case{"target_empty", "GET  HTTP/1.1\r\n\r\n", parse_error::bad_target},
        bad_request_case{"target_double_space", "GET  / HTTP/1.1\r\n\r\n", parse_error::bad_target},
        // Split at the first two SPs: a third one lands in the version.
        bad_request_case{"target_space", "GET /a b HTTP/1.1\r\n\r\n", parse_error::bad_version},
        bad_request_case{"target_control", "GET /a\x01 HTTP/1.1\r\n\r\n", parse_error::bad_target},
        bad_request_case{"target_tab", "GET /a\tb HTTP/1.1\r\n\r\n", parse_error::bad_target},
        bad_request_case{"target_del", "GET /a\x7f HTTP/1.1\r\n\r\n", parse_error::bad_target},
        bad_request_case{"target_nul", "GET /a\0b HTTP/1.1\r\n\r\n"s, parse_error::bad_target},
        bad_request_case{"target_non_ascii", "GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", parse_error::bad_target},
        bad_request_case{"version_2", "GET / HTTP/2.0\r\n\r\n", parse_error::bad_version},
        bad_request_case{"version_1_2", "GET / HTTP/1.2\r\n\r\n", parse_error::bad_version},
        bad_request_case{"version_lower_case", "GET / http/1.1\r\n\r\n", parse_error::bad_version},
        bad_request_case{"version_short", "GET / HTTP/1\r\n\r\n", parse_error::bad_version},
        bad_request_case{"version_trailing_space", "GET / HTTP/1.1 \r\n\r\n", parse_error::bad_version},
        bad_request_case{"version_leading_zero", "GET / HTTP/01.1\r\n\r\n", parse_error::bad_version},
        bad_request_case{"bad_line_detected_before_end_of_head", "GET / HTTP/9.9\r\nHost: h\r\n",
                         parse_error::bad_version},
        // Detected at the first byte, before any line end: a TLS ClientHello sent to the plain port.
        bad_request_case{"tls_client_hello", "\x16\x03\x01\x02\x00\x01"s, parse_error::bad_method},
        bad_request_case{"bad_method_early", "GE(", parse_error::bad_method},
        bad_request_case{"bad_target_early", "GET /\x01", parse_error::bad_target},
        bad_request_case{"bad_version_early", "GET / HTTX", parse_error::bad_version}),
    case_name<bad_request_case>);

INSTANTIATE_TEST_SUITE_P(
    fields, http_request_refused,
    ::testing::Values(
        bad_request_case{"no_colon", "GET / HTTP/1.1\r\nHost example.com\r\n\r\n", parse_error::bad_header},
        bad_request_case{"empty_name", "GET / HTTP/1.1\r\n: x\r\n\r\n", parse_error::bad_header},
        bad_request_case{"space_before_colon", "GET / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n",
                         parse_error::bad_header},
        bad_request_case{"tab_before_colon", "GET / HTTP/1.1\r\nContent-Length\t: 5\r\n\r\n", parse_error::bad_header},
        bad_request_case{"space_in_name", "GET / HTTP/1.1\r\nX Y: z\r\n\r\n", parse_error::bad_header},
        bad_request_case{"non_token_name", "GET / HTTP/1.1\r\nX(y): z\r\n\r\n", parse_error::bad_header},
        bad_request_case{"non_ascii_name", "GET / HTTP/1.1\r\nX\xc3\xa9: z\r\n\r\n", parse_error::bad_header},
        bad_request_case{"nul_in_value", "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n"s, parse_error::bad_header},
        bad_request_case{"nul_in_name", "GET / HTTP/1.1\r\nX\0: a\r\n\r\n"s, parse_error::bad_header},
        bad_request_case{"control_in_value", "GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n", parse_error::bad_header},
        bad_request_case{"del_in_value", "GET / HTTP/1.1\r\nX: a\x7fz\r\n\r\n", parse_error::bad_header},
        bad_request_case{"vertical_tab_in_value", "GET / HTTP/1.1\r\nX: a\vz\r\n\r\n", parse_error::bad_header},
        bad_request_case{"bare_cr_in_value", "GET / HTTP/1.1\r\nX: a\rz\r\n\r\n", parse_error::bad_header},
        bad_request_case{"bare_cr_as_final_line", "GET / HTTP/1.1\r\nX: a\r\n\rz", parse_error::bad_header},
        bad_request_case{"obs_fold_space", "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", parse_error::obs_fold},
        bad_request_case{"obs_fold_tab", "GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", parse_error::obs_fold},
        bad_request_case{"obs_fold_transfer_encoding",
                         "POST / HTTP/1.1\r\nTransfer-Encoding: gzip,\r\n chunked\r\n\r\n", parse_error::obs_fold},
        bad_request_case{"whitespace_before_first_field", "GET / HTTP/1.1\r\n Host: h\r\n\r\n", parse_error::obs_fold},
        bad_request_case{"obs_fold_detected_early", "GET / HTTP/1.1\r\nX: a\r\n ", parse_error::obs_fold}),
    case_name<bad_request_case>);

INSTANTIATE_TEST_SUITE_P(
    line_endings, http_request_refused,
    ::testing::Values(
        bad_request_case{"bare_lf_request_line", "GET / HTTP/1.1\nHost: h\r\n\r\n", parse_error::bare_lf},
        bad_request_case{"bare_lf_header", "GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", parse_error::bare_lf},
        bad_request_case{"bare_lf_final_line", "GET / HTTP/1.1\r\nHost: h\r\n\n", parse_error::bare_lf},
        bad_request_case{"bare_lf_everywhere", "GET / HTTP/1.1\nHost: h\n\n", parse_error::bare_lf},
        bad_request_case{"bare_lf_leading_line", "\nGET / HTTP/1.1\r\n\r\n", parse_error::bare_lf},
        bad_request_case{"bare_lf_after_leading_crlf", "\r\n\nGET / HTTP/1.1\r\n\r\n", parse_error::bare_lf},
        bad_request_case{"bare_lf_detected_early", "GET / HTTP/1.1\r\nX: y\n", parse_error::bare_lf},
        bad_request_case{"lf_cr_reversed", "GET / HTTP/1.1\n\r\n\r", parse_error::bare_lf}),
    case_name<bad_request_case>);

// --- Limits ---------------------------------------------------------------------------------------------------

parse_status parse(std::string_view data, const limits& lim, parse_error& err)
{
    request_head head;
    return parse_request_head(data, lim, head, err);
}

// A request line of exactly n bytes (without its CRLF).
std::string request_line(std::size_t n)
{
    const std::string fixed = "GET / HTTP/1.1";
    return "GET /" + std::string(n - fixed.size(), 'a') + " HTTP/1.1";
}

TEST(http_request_limits, request_line_at_the_limit_passes_one_over_fails)
{
    limits lim;
    lim.max_request_line = 100;
    parse_error err = parse_error::none;
    EXPECT_EQ(parse(request_line(100) + "\r\n\r\n", lim, err), parse_status::complete) << to_string(err);
    EXPECT_EQ(parse(request_line(101) + "\r\n\r\n", lim, err), parse_status::error);
    EXPECT_EQ(err, parse_error::request_line_too_long);
}

TEST(http_request_limits, request_line_too_long_detected_before_its_end)
{
    limits lim;
    lim.max_request_line = 100;
    parse_error err = parse_error::none;
    const auto line = request_line(200);
    EXPECT_EQ(parse(line.substr(0, 100), lim, err), parse_status::incomplete);
    EXPECT_EQ(parse(line.substr(0, 100) + "\r", lim, err), parse_status::incomplete);
    EXPECT_EQ(parse(line.substr(0, 101), lim, err), parse_status::error);
    EXPECT_EQ(err, parse_error::request_line_too_long);
}

TEST(http_request_limits, leading_empty_lines_do_not_count_as_request_line)
{
    limits lim;
    lim.max_request_line = 100;
    parse_error err = parse_error::none;
    EXPECT_EQ(parse("\r\n\r\n\r\n" + request_line(100) + "\r\n\r\n", lim, err), parse_status::complete)
        << to_string(err);
}

// A head of exactly n bytes: one request line and one padding header.
std::string head_of(std::size_t n)
{
    const std::string start = "GET / HTTP/1.1\r\nX: ";
    const std::string end = "\r\n\r\n";
    return start + std::string(n - start.size() - end.size(), 'v') + end;
}

TEST(http_request_limits, head_at_the_limit_passes_one_over_fails)
{
    limits lim;
    lim.max_head_bytes = 1000;
    request_head head;
    parse_error err = parse_error::none;
    ASSERT_EQ(parse_request_head(head_of(1000) + "body", lim, head, err), parse_status::complete) << to_string(err);
    EXPECT_EQ(head.head_size, 1000U);
    EXPECT_EQ(parse(head_of(1001), lim, err), parse_status::error);
    EXPECT_EQ(err, parse_error::head_too_large);
}

TEST(http_request_limits, every_prefix_of_a_head_at_the_limit_is_incomplete)
{
    limits lim;
    lim.max_head_bytes = 1000;
    lim.max_request_line = 16;
    const auto head = "\r\n" + head_of(998);
    for (std::size_t n = 0; n < head.size(); ++n) {
        parse_error err = parse_error::none;
        EXPECT_EQ(parse(std::string_view(head).substr(0, n), lim, err), parse_status::incomplete)
            << n << ": " << to_string(err);
    }
    parse_error err = parse_error::none;
    EXPECT_EQ(parse(head, lim, err), parse_status::complete) << to_string(err);
}

TEST(http_request_limits, head_too_large_detected_before_its_end)
{
    limits lim;
    lim.max_head_bytes = 1000;
    parse_error err = parse_error::none;
    const auto head = head_of(5000);
    // A line whose content reaches byte 999 cannot end (CRLF) within 1000 bytes: refused then.
    EXPECT_EQ(parse(head.substr(0, 998), lim, err), parse_status::incomplete);
    EXPECT_EQ(parse(head.substr(0, 999), lim, err), parse_status::error);
    EXPECT_EQ(err, parse_error::head_too_large);
    // Also when the head is many complete short lines.
    std::string many = "GET / HTTP/1.1\r\n";
    while (many.size() <= 1000) {
        many += "A: b\r\n";
    }
    lim.max_headers = 1000;
    EXPECT_EQ(parse(many, lim, err), parse_status::error);
    EXPECT_EQ(err, parse_error::head_too_large);
}

TEST(http_request_limits, leading_empty_lines_count_as_head)
{
    limits lim;
    lim.max_head_bytes = 100;
    parse_error err = parse_error::none;
    std::string crlfs;
    for (int i = 0; i < 51; ++i) {
        crlfs += "\r\n";
    }
    EXPECT_EQ(parse(crlfs, lim, err), parse_status::error);
    EXPECT_EQ(err, parse_error::head_too_large);
    EXPECT_EQ(parse(crlfs.substr(0, 100 - 18) + "GET / HTTP/1.1\r\n\r\n", lim, err), parse_status::complete);
    EXPECT_EQ(parse(crlfs.substr(0, 102 - 18) + "GET / HTTP/1.1\r\n\r\n", lim, err), parse_status::error);
    EXPECT_EQ(err, parse_error::head_too_large);
}

std::string with_headers(std::size_t n)
{
    std::string out = "GET / HTTP/1.1\r\n";
    for (std::size_t i = 0; i < n; ++i) {
        out += "X-" + std::to_string(i) + ": v\r\n";
    }
    return out + "\r\n";
}

TEST(http_request_limits, default_header_count_passes_one_more_fails)
{
    request_head head;
    parse_error err = parse_error::none;
    ASSERT_EQ(parse_request_head(with_headers(100), limits{}, head, err), parse_status::complete) << to_string(err);
    EXPECT_EQ(head.headers.size(), 100U);
    EXPECT_EQ(parse(with_headers(101), limits{}, err), parse_status::error);
    EXPECT_EQ(err, parse_error::too_many_headers);
}

TEST(http_request_limits, too_many_headers_detected_when_the_extra_line_starts)
{
    limits lim;
    lim.max_headers = 2;
    parse_error err = parse_error::none;
    EXPECT_EQ(parse("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n", lim, err), parse_status::incomplete);
    EXPECT_EQ(parse("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r", lim, err), parse_status::incomplete);
    EXPECT_EQ(parse("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC", lim, err), parse_status::error);
    EXPECT_EQ(err, parse_error::too_many_headers);
}

TEST(http_request_limits, zero_headers_allowed_means_none)
{
    limits lim;
    lim.max_headers = 0;
    parse_error err = parse_error::none;
    EXPECT_EQ(parse("GET / HTTP/1.1\r\n\r\n", lim, err), parse_status::complete);
    EXPECT_EQ(parse("GET / HTTP/1.1\r\nA: 1\r\n\r\n", lim, err), parse_status::error);
    EXPECT_EQ(err, parse_error::too_many_headers);
}

TEST(http_request_parse, reused_head_is_reset)
{
    request_head head;
    parse_error err = parse_error::none;
    ASSERT_EQ(parse_request_head("GET /1 HTTP/1.1\r\nA: 1\r\n\r\n", limits{}, head, err), parse_status::complete);
    ASSERT_EQ(parse_request_head("GET /2 HTTP/1.0\r\n\r\n", limits{}, head, err), parse_status::complete);
    EXPECT_EQ(head.target, "/2");
    EXPECT_EQ(head.version_minor, 0);
    EXPECT_TRUE(head.headers.empty());
}

TEST(http_request_parse, empty_input_and_only_empty_lines_are_incomplete)
{
    parse_error err = parse_error::none;
    EXPECT_EQ(parse("", limits{}, err), parse_status::incomplete);
    EXPECT_EQ(parse("\r", limits{}, err), parse_status::incomplete);
    EXPECT_EQ(parse("\r\n\r\n\r", limits{}, err), parse_status::incomplete);
    EXPECT_EQ(err, parse_error::none);
}

}  // namespace
}  // namespace egressd::protocol::http
