#include "http_support.hpp"

#include <string>
#include <vector>

namespace egressd::protocol::http {
namespace {

using namespace fixtures;

// --- Header access --------------------------------------------------------------------------------------------

TEST(http_fields, iequals_is_ascii_case_insensitive)
{
    EXPECT_TRUE(iequals("Content-Length", "content-length"));
    EXPECT_TRUE(iequals("", ""));
    EXPECT_FALSE(iequals("Content-Length", "Content-Length "));
    EXPECT_FALSE(iequals("a", "b"));
    // Only ASCII letters fold: '@' and '`' sit next to 'A' and 'a' but are not letters.
    EXPECT_FALSE(iequals("@", "`"));
    EXPECT_FALSE(iequals("\xc3\x89", "\xc3\xa9"));
}

TEST(http_fields, find_header_returns_the_first_value)
{
    const auto headers = make_headers({{"A", "1"}, {"b", "2"}, {"a", "3"}});
    ASSERT_NE(find_header(headers, "a"), nullptr);
    EXPECT_EQ(*find_header(headers, "a"), "1");
    ASSERT_NE(find_header(headers, "B"), nullptr);
    EXPECT_EQ(*find_header(headers, "B"), "2");
    EXPECT_EQ(find_header(headers, "c"), nullptr);
}

TEST(http_fields, header_values_returns_every_value_in_order)
{
    const auto headers = make_headers({{"A", "1"}, {"b", "2"}, {"a", "3"}});
    EXPECT_EQ(header_values(headers, "A"), (std::vector<std::string_view>{"1", "3"}));
    EXPECT_TRUE(header_values(headers, "c").empty());
}

TEST(http_fields, header_tokens_split_trim_lower_and_skip_empty)
{
    const auto headers = make_headers(
        {{"Connection", "Keep-Alive, X-Foo"}, {"Other", "x"}, {"connection", " ,\tUPGRADE ,, close ,"}});
    EXPECT_EQ(header_tokens(headers, "Connection"),
              (std::vector<std::string>{"keep-alive", "x-foo", "upgrade", "close"}));
    EXPECT_TRUE(header_tokens(headers, "Missing").empty());
    EXPECT_TRUE(header_tokens(make_headers({{"Connection", ""}}), "Connection").empty());
}

// --- Hop-by-hop removal ---------------------------------------------------------------------------------------

struct hop_case {
    std::string name;
    field_list in;
    field_list kept;
};

class http_hop_by_hop : public ::testing::TestWithParam<hop_case> {};

TEST_P(http_hop_by_hop, removes_them_and_keeps_the_order_of_the_rest)
{
    const auto& c = GetParam();
    auto headers = make_headers(c.in);
    remove_hop_by_hop(headers);
    EXPECT_EQ(flat(headers), c.kept);
}

INSTANTIATE_TEST_SUITE_P(
    cases, http_hop_by_hop,
    ::testing::Values(
        hop_case{"nothing_to_remove", {{"Host", "h"}, {"Accept", "*/*"}}, {{"Host", "h"}, {"Accept", "*/*"}}},
        hop_case{"every_listed_header",
                 {{"Host", "h"},
                  {"Connection", "close"},
                  {"Keep-Alive", "timeout=5"},
                  {"Proxy-Connection", "keep-alive"},
                  {"Proxy-Authorization", "Basic eDp5"},
                  {"Proxy-Authenticate", "Basic"},
                  {"TE", "trailers"},
                  {"Trailer", "X-Sum"},
                  {"Transfer-Encoding", "chunked"},
                  {"Upgrade", "websocket"},
                  {"Accept", "*/*"}},
                 {{"Host", "h"}, {"Accept", "*/*"}}},
        hop_case{"case_insensitive",
                 {{"CONNECTION", "close"}, {"keep-alive", "1"}, {"PROXY-authorization", "x"}, {"te", "trailers"},
                  {"transfer-ENCODING", "chunked"}, {"X", "y"}},
                 {{"X", "y"}}},
        hop_case{"connection_names_custom_header",
                 {{"X-Secret", "1"}, {"Connection", "X-Secret"}, {"X-Keep", "2"}, {"x-secret", "3"}},
                 {{"X-Keep", "2"}}},
        hop_case{"connection_token_case_and_spacing",
                 {{"Connection", " x-A ,\tX-b"}, {"X-a", "1"}, {"X-B", "2"}, {"X-C", "3"}}, {{"X-C", "3"}}},
        hop_case{"several_connection_headers",
                 {{"Connection", "x-a"}, {"X-A", "1"}, {"Connection", "x-b"}, {"X-B", "2"}, {"X-C", "3"}},
                 {{"X-C", "3"}}},
        hop_case{"connection_names_listed_header_once", {{"Connection", "upgrade"}, {"Upgrade", "h2c"}}, {}},
        // Kept on purpose: a client must not be able to strip the framing or the Host the forwarder relies on.
        hop_case{"connection_cannot_remove_framing_or_host",
                 {{"Connection", "Content-Length, Host, X-A"}, {"Host", "h"}, {"Content-Length", "5"}, {"X-A", "1"}},
                 {{"Host", "h"}, {"Content-Length", "5"}}},
        hop_case{"similar_names_kept", {{"TE-X", "1"}, {"X-Upgrade", "2"}, {"Connections", "3"}},
                 {{"TE-X", "1"}, {"X-Upgrade", "2"}, {"Connections", "3"}}},
        hop_case{"empty", {}, {}}),
    case_name<hop_case>);

// --- Serialization --------------------------------------------------------------------------------------------

TEST(http_serialize, request_head_exact_bytes)
{
    EXPECT_EQ(serialize_request_head("GET", "/a?b", make_headers({{"Host", "h"}, {"X-Empty", ""}})),
              "GET /a?b HTTP/1.1\r\nHost: h\r\nX-Empty: \r\n\r\n");
    EXPECT_EQ(serialize_request_head("OPTIONS", "*", {}), "OPTIONS * HTTP/1.1\r\n\r\n");
}

TEST(http_serialize, response_head_exact_bytes)
{
    EXPECT_EQ(serialize_response_head(200, "OK", make_headers({{"Content-Length", "0"}})),
              "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    EXPECT_EQ(serialize_response_head(200, "", {}), "HTTP/1.1 200 \r\n\r\n");
    EXPECT_EQ(serialize_response_head(407, "Proxy Authentication Required", {}),
              "HTTP/1.1 407 Proxy Authentication Required\r\n\r\n");
}

TEST(http_serialize, round_trips_through_the_parser)
{
    const auto fields = make_headers({{"Host", "h"}, {"A", "b c"}});
    const auto bytes = serialize_request_head("POST", "/x", fields);
    request_head head;
    parse_error err = parse_error::none;
    ASSERT_EQ(parse_request_head(bytes, limits{}, head, err), parse_status::complete);
    EXPECT_EQ(head.method, "POST");
    EXPECT_EQ(head.target, "/x");
    EXPECT_EQ(flat(head.headers), flat(fields));
    EXPECT_EQ(head.head_size, bytes.size());
}

// --- Names ----------------------------------------------------------------------------------------------------

TEST(http_names, parse_errors_are_named_after_their_enumerators)
{
    const std::vector<std::pair<parse_error, std::string_view>> names = {
        {parse_error::none, "none"},
        {parse_error::bad_request_line, "bad_request_line"},
        {parse_error::bad_method, "bad_method"},
        {parse_error::bad_target, "bad_target"},
        {parse_error::bad_version, "bad_version"},
        {parse_error::bad_status_line, "bad_status_line"},
        {parse_error::bad_header, "bad_header"},
        {parse_error::obs_fold, "obs_fold"},
        {parse_error::bare_lf, "bare_lf"},
        {parse_error::head_too_large, "head_too_large"},
        {parse_error::too_many_headers, "too_many_headers"},
        {parse_error::request_line_too_long, "request_line_too_long"},
        {parse_error::bad_content_length, "bad_content_length"},
        {parse_error::conflicting_framing, "conflicting_framing"},
        {parse_error::bad_transfer_encoding, "bad_transfer_encoding"},
        {parse_error::bad_chunk, "bad_chunk"},
    };
    for (const auto& [e, name] : names) {
        EXPECT_EQ(to_string(e), name);
    }
    // Every enumerator is listed above: the one after the last has no name.
    EXPECT_EQ(to_string(static_cast<parse_error>(names.size())), "unknown");
}

TEST(http_names, target_errors_are_named_after_their_enumerators)
{
    const std::vector<std::pair<target_error, std::string_view>> names = {
        {target_error::none, "none"},
        {target_error::not_absolute, "not_absolute"},
        {target_error::https_scheme, "https_scheme"},
        {target_error::other_scheme, "other_scheme"},
        {target_error::userinfo, "userinfo"},
        {target_error::bad_authority, "bad_authority"},
        {target_error::bad_port, "bad_port"},
    };
    for (const auto& [e, name] : names) {
        EXPECT_EQ(to_string(e), name);
    }
    EXPECT_EQ(to_string(static_cast<target_error>(names.size())), "unknown");
}

}  // namespace
}  // namespace egressd::protocol::http
