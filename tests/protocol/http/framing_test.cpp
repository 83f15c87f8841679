#include "http_support.hpp"

#include <optional>
#include <string>

namespace egressd::protocol::http {
namespace {

using namespace fixtures;
using kind = body_framing::kind;
using namespace std::string_literals;

// expected: the framing, or nullopt and the error.
struct framing_expectation {
    std::optional<body_framing> framing;
    parse_error error = parse_error::none;
};

framing_expectation framed(kind k, std::uint64_t length = 0) { return {body_framing{k, length}, parse_error::none}; }
framing_expectation refused(parse_error e) { return {std::nullopt, e}; }

void expect_framing(const std::optional<body_framing>& got, parse_error err, const framing_expectation& want)
{
    if (!want.framing) {
        EXPECT_FALSE(got.has_value());
        EXPECT_EQ(err, want.error);
        return;
    }
    ASSERT_TRUE(got.has_value()) << to_string(err);
    EXPECT_EQ(err, parse_error::none);
    EXPECT_EQ(got->type, want.framing->type);
    EXPECT_EQ(got->length, want.framing->length);
}

// --- Requests -------------------------------------------------------------------------------------------------

struct request_framing_case {
    std::string name;
    field_list headers;
    framing_expectation expected;
    int version_minor = 1;
};

class http_request_framing : public ::testing::TestWithParam<request_framing_case> {};

TEST_P(http_request_framing, is_exact_or_refused)
{
    const auto& c = GetParam();
    request_head head;
    head.method = "POST";
    head.target = "http://h/";
    head.version_minor = c.version_minor;
    head.headers = make_headers(c.headers);
    parse_error err = parse_error::none;
    const auto got = request_framing(head, err);
    expect_framing(got, err, c.expected);
}

INSTANTIATE_TEST_SUITE_P(
    content_length, http_request_framing,
    ::testing::Values(
        request_framing_case{"no_body_headers", {{"Host", "h"}}, framed(kind::none)},
        request_framing_case{"length", {{"Content-Length", "5"}}, framed(kind::content_length, 5)},
        request_framing_case{"zero", {{"Content-Length", "0"}}, framed(kind::content_length, 0)},
        request_framing_case{"name_case_insensitive", {{"content-LENGTH", "7"}}, framed(kind::content_length, 7)},
        request_framing_case{"leading_zeros", {{"Content-Length", "005"}}, framed(kind::content_length, 5)},
        request_framing_case{"same_value_listed", {{"Content-Length", "5, 5"}}, framed(kind::content_length, 5)},
        request_framing_case{"same_value_twice", {{"Content-Length", "5"}, {"Content-Length", "5"}},
                             framed(kind::content_length, 5)},
        request_framing_case{"largest", {{"Content-Length", "9007199254740992"}},
                             framed(kind::content_length, 9007199254740992ULL)},
        request_framing_case{"too_large", {{"Content-Length", "9007199254740993"}},
                             refused(parse_error::bad_content_length)},
        request_framing_case{"overflow", {{"Content-Length", "99999999999999999999999999"}},
                             refused(parse_error::bad_content_length)},
        request_framing_case{"different_values_listed", {{"Content-Length", "5, 6"}},
                             refused(parse_error::bad_content_length)},
        request_framing_case{"different_values_twice", {{"Content-Length", "5"}, {"Content-Length", "6"}},
                             refused(parse_error::bad_content_length)},
        request_framing_case{"different_values_apart",
                             {{"Content-Length", "5"}, {"Host", "h"}, {"Content-Length", "5, 0"}},
                             refused(parse_error::bad_content_length)},
        request_framing_case{"plus_sign", {{"Content-Length", "+5"}}, refused(parse_error::bad_content_length)},
        request_framing_case{"negative", {{"Content-Length", "-1"}}, refused(parse_error::bad_content_length)},
        request_framing_case{"empty", {{"Content-Length", ""}}, refused(parse_error::bad_content_length)},
        request_framing_case{"trailing_letter", {{"Content-Length", "5a"}}, refused(parse_error::bad_content_length)},
        request_framing_case{"hex", {{"Content-Length", "0x5"}}, refused(parse_error::bad_content_length)},
        request_framing_case{"decimal_point", {{"Content-Length", "5.0"}}, refused(parse_error::bad_content_length)},
        request_framing_case{"inner_space", {{"Content-Length", "5 5"}}, refused(parse_error::bad_content_length)},
        request_framing_case{"empty_element", {{"Content-Length", "5,"}}, refused(parse_error::bad_content_length)},
        request_framing_case{"only_commas", {{"Content-Length", ","}}, refused(parse_error::bad_content_length)},
        request_framing_case{"valid_then_empty", {{"Content-Length", "5"}, {"Content-Length", ""}},
                             refused(parse_error::bad_content_length)}),
    case_name<request_framing_case>);

INSTANTIATE_TEST_SUITE_P(
    transfer_encoding, http_request_framing,
    ::testing::Values(
        request_framing_case{"chunked", {{"Transfer-Encoding", "chunked"}}, framed(kind::chunked)},
        request_framing_case{"chunked_upper_case", {{"TRANSFER-ENCODING", "CHUNKED"}}, framed(kind::chunked)},
        request_framing_case{"chunked_mixed_case", {{"transfer-encoding", "ChUnKeD"}}, framed(kind::chunked)},
        request_framing_case{"te_then_cl", {{"Transfer-Encoding", "chunked"}, {"Content-Length", "5"}},
                             refused(parse_error::conflicting_framing)},
        request_framing_case{"cl_then_te", {{"Content-Length", "5"}, {"Transfer-Encoding", "chunked"}},
                             refused(parse_error::conflicting_framing)},
        request_framing_case{"bad_te_with_cl", {{"Transfer-Encoding", "xchunked"}, {"Content-Length", "5"}},
                             refused(parse_error::conflicting_framing)},
        request_framing_case{"te_with_bad_cl", {{"Transfer-Encoding", "chunked"}, {"Content-Length", "x"}},
                             refused(parse_error::conflicting_framing)},
        request_framing_case{"chunked_twice_listed", {{"Transfer-Encoding", "chunked, chunked"}},
                             refused(parse_error::bad_transfer_encoding)},
        request_framing_case{"chunked_twice", {{"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "chunked"}},
                             refused(parse_error::bad_transfer_encoding)},
        request_framing_case{"chunked_identity", {{"Transfer-Encoding", "chunked, identity"}},
                             refused(parse_error::bad_transfer_encoding)},
        request_framing_case{"gzip_chunked", {{"Transfer-Encoding", "gzip, chunked"}},
                             refused(parse_error::bad_transfer_encoding)},
        request_framing_case{"gzip_then_chunked_headers",
                             {{"Transfer-Encoding", "gzip"}, {"Transfer-Encoding", "chunked"}},
                             refused(parse_error::bad_transfer_encoding)},
        request_framing_case{"identity", {{"Transfer-Encoding", "identity"}},
                             refused(parse_error::bad_transfer_encoding)},
        request_framing_case{"xchunked", {{"Transfer-Encoding", "xchunked"}},
                             refused(parse_error::bad_transfer_encoding)},
        request_framing_case{"chunked_with_parameter", {{"Transfer-Encoding", "chunked;q=1"}},
                             refused(parse_error::bad_transfer_encoding)},
        request_framing_case{"chunked_trailing_comma", {{"Transfer-Encoding", "chunked,"}},
                             refused(parse_error::bad_transfer_encoding)},
        request_framing_case{"chunked_leading_comma", {{"Transfer-Encoding", ", chunked"}},
                             refused(parse_error::bad_transfer_encoding)},
        request_framing_case{"empty", {{"Transfer-Encoding", ""}}, refused(parse_error::bad_transfer_encoding)},
        request_framing_case{"empty_and_chunked", {{"Transfer-Encoding", ""}, {"Transfer-Encoding", "chunked"}},
                             refused(parse_error::bad_transfer_encoding)},
        request_framing_case{"quoted", {{"Transfer-Encoding", "\"chunked\""}},
                             refused(parse_error::bad_transfer_encoding)},
        // RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing.
        request_framing_case{"http_1_0_chunked", {{"Transfer-Encoding", "chunked"}},
                             refused(parse_error::bad_transfer_encoding), 0}),
    case_name<request_framing_case>);

// --- Smuggling shapes, end to end: the raw bytes must be refused by the head parser or the framing ---------------

struct smuggling_case {
    std::string name;
    std::string data;
    parse_error expected;
};

class http_smuggling : public ::testing::TestWithParam<smuggling_case> {};

TEST_P(http_smuggling, is_refused)
{
    const auto& c = GetParam();
    request_head head;
    parse_error err = parse_error::none;
    const auto status = parse_request_head(c.data, limits{}, head, err);
    if (status == parse_status::complete) {
        const auto framing = request_framing(head, err);
        EXPECT_FALSE(framing.has_value());
    } else {
        EXPECT_EQ(status, parse_status::error);
    }
    EXPECT_EQ(err, c.expected);
}

INSTANTIATE_TEST_SUITE_P(
    cases, http_smuggling,
    ::testing::Values(
        smuggling_case{"cl_te", "POST / HTTP/1.1\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n",
                       parse_error::conflicting_framing},
        smuggling_case{"te_cl", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n",
                       parse_error::conflicting_framing},
        smuggling_case{"te_te", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                       parse_error::bad_transfer_encoding},
        smuggling_case{"te_chunked_chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
                       parse_error::bad_transfer_encoding},
        smuggling_case{"te_chunked_identity", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
                       parse_error::bad_transfer_encoding},
        smuggling_case{"te_xchunked", "POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n",
                       parse_error::bad_transfer_encoding},
        smuggling_case{"te_space_before_colon", "POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n",
                       parse_error::bad_header},
        smuggling_case{"te_leading_space_in_name", "POST / HTTP/1.1\r\n Transfer-Encoding: chunked\r\n\r\n",
                       parse_error::obs_fold},
        smuggling_case{"te_vertical_tab", "POST / HTTP/1.1\r\nTransfer-Encoding:\vchunked\r\n\r\n",
                       parse_error::bad_header},
        smuggling_case{"te_obs_fold",
                       "POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n chunked\r\nContent-Length: 3\r\n\r\n",
                       parse_error::obs_fold},
        smuggling_case{"cl_different_twice", "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                       parse_error::bad_content_length},
        smuggling_case{"cl_list", "POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n", parse_error::bad_content_length},
        smuggling_case{"cl_plus", "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", parse_error::bad_content_length},
        smuggling_case{"cl_space_before_colon", "POST / HTTP/1.1\r\nContent-Length : 5\r\n\r\n",
                       parse_error::bad_header},
        smuggling_case{"bare_lf_hides_header", "POST / HTTP/1.1\r\nX: a\nTransfer-Encoding: chunked\r\n\r\n",
                       parse_error::bare_lf},
        smuggling_case{"bare_cr_hides_header", "POST / HTTP/1.1\r\nX: a\rTransfer-Encoding: chunked\r\n\r\n",
                       parse_error::bad_header},
        smuggling_case{"nul_hides_header", "POST / HTTP/1.1\r\nX: a\0\r\nContent-Length: 5\r\n\r\n"s,
                       parse_error::bad_header}),
    case_name<smuggling_case>);

// --- Responses ------------------------------------------------------------------------------------------------

struct response_framing_case {
    std::string name;
    int status;
    std::string method;
    field_list headers;
    framing_expectation expected;
    int version_minor = 1;
};

class http_response_framing : public ::testing::TestWithParam<response_framing_case> {};

TEST_P(http_response_framing, follows_rfc_9112_section_6_3)
{
    const auto& c = GetParam();
    response_head head;
    head.status = c.status;
    head.version_minor = c.version_minor;
    head.headers = make_headers(c.headers);
    parse_error err = parse_error::none;
    const auto got = response_framing(head, c.method, err);
    expect_framing(got, err, c.expected);
}

INSTANTIATE_TEST_SUITE_P(
    cases, http_response_framing,
    ::testing::Values(
        response_framing_case{"head_with_length", 200, "HEAD", {{"Content-Length", "100"}}, framed(kind::none)},
        response_framing_case{"head_with_chunked", 200, "HEAD", {{"Transfer-Encoding", "chunked"}},
                              framed(kind::none)},
        response_framing_case{"no_content", 204, "GET", {{"Content-Length", "5"}}, framed(kind::none)},
        response_framing_case{"not_modified", 304, "GET", {{"Content-Length", "5"}}, framed(kind::none)},
        response_framing_case{"switching_protocols", 101, "GET", {}, framed(kind::none)},
        response_framing_case{"continue", 100, "POST", {}, framed(kind::none)},
        response_framing_case{"early_hints", 103, "GET", {{"Link", "</a>"}}, framed(kind::none)},
        response_framing_case{"informational_199", 199, "GET", {}, framed(kind::none)},
        response_framing_case{"connect_200", 200, "CONNECT", {}, framed(kind::none)},
        response_framing_case{"connect_2xx_with_length", 299, "CONNECT", {{"Content-Length", "5"}},
                              framed(kind::none)},
        response_framing_case{"connect_refused_has_body", 407, "CONNECT", {{"Content-Length", "5"}},
                              framed(kind::content_length, 5)},
        response_framing_case{"chunked", 200, "GET", {{"Transfer-Encoding", "chunked"}}, framed(kind::chunked)},
        response_framing_case{"gzip_then_chunked", 200, "GET", {{"Transfer-Encoding", "gzip, chunked"}},
                              framed(kind::chunked)},
        response_framing_case{"gzip_then_chunked_headers", 200, "GET",
                              {{"Transfer-Encoding", "gzip"}, {"Transfer-Encoding", "Chunked"}},
                              framed(kind::chunked)},
        response_framing_case{"empty_elements_ignored", 200, "GET", {{"Transfer-Encoding", ", gzip,, chunked,"}},
                              framed(kind::chunked)},
        response_framing_case{"chunked_overrides_length", 200, "GET",
                              {{"Content-Length", "5"}, {"Transfer-Encoding", "chunked"}}, framed(kind::chunked)},
        response_framing_case{"gzip_only", 200, "GET", {{"Transfer-Encoding", "gzip"}}, framed(kind::until_close)},
        response_framing_case{"gzip_only_overrides_length", 200, "GET",
                              {{"Transfer-Encoding", "gzip"}, {"Content-Length", "5"}}, framed(kind::until_close)},
        response_framing_case{"chunked_not_last", 200, "GET", {{"Transfer-Encoding", "chunked, gzip"}},
                              refused(parse_error::bad_transfer_encoding)},
        response_framing_case{"chunked_twice", 200, "GET", {{"Transfer-Encoding", "chunked, chunked"}},
                              refused(parse_error::bad_transfer_encoding)},
        response_framing_case{"chunked_with_parameter", 200, "GET", {{"Transfer-Encoding", "chunked;x=1"}},
                              refused(parse_error::bad_transfer_encoding)},
        response_framing_case{"empty_transfer_encoding", 200, "GET", {{"Transfer-Encoding", ""}},
                              refused(parse_error::bad_transfer_encoding)},
        response_framing_case{"non_token_coding", 200, "GET", {{"Transfer-Encoding", "gz/ip, chunked"}},
                              refused(parse_error::bad_transfer_encoding)},
        response_framing_case{"http_1_0_chunked", 200, "GET", {{"Transfer-Encoding", "chunked"}},
                              refused(parse_error::bad_transfer_encoding), 0},
        response_framing_case{"length", 200, "GET", {{"Content-Length", "10"}}, framed(kind::content_length, 10)},
        response_framing_case{"length_on_error_status", 500, "POST", {{"Content-Length", "3"}},
                              framed(kind::content_length, 3)},
        response_framing_case{"http_1_0_length", 200, "GET", {{"Content-Length", "1"}},
                              framed(kind::content_length, 1), 0},
        response_framing_case{"no_framing", 200, "GET", {}, framed(kind::until_close)},
        response_framing_case{"bad_length", 200, "GET", {{"Content-Length", "abc"}},
                              refused(parse_error::bad_content_length)},
        response_framing_case{"conflicting_lengths", 200, "GET", {{"Content-Length", "1"}, {"Content-Length", "2"}},
                              refused(parse_error::bad_content_length)}),
    case_name<response_framing_case>);

}  // namespace
}  // namespace egressd::protocol::http
