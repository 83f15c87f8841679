#include "http_support.hpp"

#include <algorithm>
#include <cstdint>
#include <string>

namespace egressd::protocol::http {
namespace {

using namespace fixtures;
using namespace std::string_literals;

const std::string next_request = "GET /next HTTP/1.1\r\n\r\n";

struct decoded {
    parse_status status = parse_status::incomplete;
    parse_error error = parse_error::none;
    std::string out;
    std::size_t consumed = 0;  // total input bytes taken, over all feeds
};

// Feeds data in pieces of at most `piece` bytes, stopping at the first non-incomplete result.
decoded feed_in_pieces(std::string_view data, std::size_t piece)
{
    chunked_decoder dec;
    decoded r;
    std::size_t pos = 0;
    do {
        const auto in = data.substr(pos, piece);
        std::size_t used = 0;
        r.status = dec.feed(in, r.out, used, r.error);
        r.consumed += used;
        pos += in.size();
        if (r.status != parse_status::incomplete) {
            break;
        }
        EXPECT_EQ(used, in.size()) << "incomplete must consume everything";
    } while (pos < data.size());
    return r;
}

// --- Valid bodies ---------------------------------------------------------------------------------------------

struct valid_chunked_case {
    std::string name;
    std::string body;      // exactly the chunked body
    std::string expected;  // canonical re-encoding
};

class http_chunked_valid : public ::testing::TestWithParam<valid_chunked_case> {};

TEST_P(http_chunked_valid, re_encodes_and_stops_at_the_end_of_the_body)
{
    const auto& c = GetParam();
    chunked_decoder dec;
    std::string out;
    std::size_t consumed = 0;
    parse_error err = parse_error::none;
    ASSERT_EQ(dec.feed(c.body + next_request, out, consumed, err), parse_status::complete) << to_string(err);
    EXPECT_EQ(err, parse_error::none);
    EXPECT_EQ(out, c.expected);
    EXPECT_EQ(consumed, c.body.size());
}

TEST_P(http_chunked_valid, byte_by_byte_equals_one_shot)
{
    const auto& c = GetParam();
    const auto r = feed_in_pieces(c.body + next_request, 1);
    ASSERT_EQ(r.status, parse_status::complete) << to_string(r.error);
    EXPECT_EQ(r.out, c.expected);
    EXPECT_EQ(r.consumed, c.body.size());
}

TEST_P(http_chunked_valid, every_split_point_equals_one_shot)
{
    const auto& c = GetParam();
    const auto data = c.body + next_request;
    for (std::size_t split = 0; split <= c.body.size(); ++split) {
        chunked_decoder dec;
        std::string out;
        std::size_t used = 0;
        parse_error err = parse_error::none;
        const auto first = dec.feed(std::string_view(data).substr(0, split), out, used, err);
        if (split < c.body.size()) {
            ASSERT_EQ(first, parse_status::incomplete) << "split at " << split << ": " << to_string(err);
            ASSERT_EQ(used, split);
            ASSERT_EQ(dec.feed(std::string_view(data).substr(split), out, used, err), parse_status::complete)
                << "split at " << split << ": " << to_string(err);
            EXPECT_EQ(split + used, c.body.size()) << "split at " << split;
        } else {
            ASSERT_EQ(first, parse_status::complete) << to_string(err);
            EXPECT_EQ(used, c.body.size());
        }
        EXPECT_EQ(out, c.expected) << "split at " << split;
    }
}

// The data of a canonical chunked body (what feed produces), for checking feed_data.
std::string data_of(std::string_view canonical)
{
    std::string data;
    for (;;) {
        const auto eol = canonical.find("\r\n");
        const auto size = std::stoull(std::string(canonical.substr(0, eol)), nullptr, 16);
        if (size == 0) {
            return data;
        }
        data += canonical.substr(eol + 2, size);
        canonical.remove_prefix(eol + 2 + size + 2);
    }
}

// What the forwarder does with feed_framing: framing comes out of the decoder, chunk data is taken from the
// buffer by the caller (as much as is there, reported with skip_data, zero included), and the next piece of
// input arrives only once the buffer is used up. The result must equal feed (reframe) or feed_data.
std::string relay_with_framing(std::string_view data, std::size_t split, bool reframe, parse_status& status)
{
    chunked_decoder dec;
    std::string out;
    std::string buffer(data.substr(0, split));
    std::string_view rest = data.substr(split);
    std::size_t pos = 0;
    status = parse_status::incomplete;
    for (int rounds = 0; rounds < 10'000; ++rounds) {
        std::size_t used = 0;
        parse_error err = parse_error::none;
        status = dec.feed_framing(std::string_view(buffer).substr(pos), out, used, err, reframe);
        if (status == parse_status::error) {
            return out;
        }
        pos += used;
        const auto here = static_cast<std::size_t>(std::min<std::uint64_t>(dec.data_left(), buffer.size() - pos));
        out += buffer.substr(pos, here);
        dec.skip_data(here);
        pos += here;
        if (status == parse_status::complete) {
            return out;
        }
        if (pos < buffer.size()) {
            continue;
        }
        if (rest.empty()) {
            return out;
        }
        buffer.assign(rest);
        rest = {};
        pos = 0;
    }
    ADD_FAILURE() << "no progress";
    return out;
}

TEST_P(http_chunked_valid, feed_framing_with_data_taken_by_the_caller_equals_feed_at_every_split)
{
    const auto& c = GetParam();
    const auto data = c.body + next_request;
    for (const bool reframe : {true, false}) {
        for (std::size_t split = 0; split <= c.body.size(); ++split) {
            parse_status status = parse_status::incomplete;
            const auto out = relay_with_framing(data, split, reframe, status);
            ASSERT_EQ(status, parse_status::complete) << "split at " << split << (reframe ? ", reframed" : "");
            EXPECT_EQ(out, reframe ? c.expected : data_of(c.expected)) << "split at " << split;
        }
    }
}

TEST_P(http_chunked_valid, feed_data_emits_only_the_data)
{
    const auto& c = GetParam();
    const auto data = c.body + next_request;
    const auto expected = data_of(c.expected);
    for (const std::size_t piece : {data.size(), std::size_t{1}, std::size_t{3}}) {
        chunked_decoder dec;
        std::string out;
        std::size_t consumed = 0;
        parse_status status = parse_status::incomplete;
        for (std::size_t pos = 0; pos < data.size() && status == parse_status::incomplete; pos += piece) {
            std::size_t used = 0;
            parse_error err = parse_error::none;
            status = dec.feed_data(std::string_view(data).substr(pos, piece), out, used, err);
            consumed += used;
        }
        EXPECT_EQ(status, parse_status::complete) << "pieces of " << piece;
        EXPECT_EQ(out, expected) << "pieces of " << piece;
        EXPECT_EQ(consumed, c.body.size()) << "pieces of " << piece;
    }
}

INSTANTIATE_TEST_SUITE_P(
    cases, http_chunked_valid,
    ::testing::Values(
        valid_chunked_case{"one_chunk", "5\r\nhello\r\n0\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n"},
        valid_chunked_case{"empty_body", "0\r\n\r\n", "0\r\n\r\n"},
        valid_chunked_case{"several_chunks", "5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n",
                           "5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n"},
        valid_chunked_case{"upper_case_hex_lowered", "A\r\n0123456789\r\n0\r\n\r\n", "a\r\n0123456789\r\n0\r\n\r\n"},
        valid_chunked_case{"leading_zeros_dropped", "0005\r\nhello\r\n000\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n"},
        valid_chunked_case{"sixteen_digits", "000000000000000a\r\n0123456789\r\n0\r\n\r\n",
                           "a\r\n0123456789\r\n0\r\n\r\n"},
        valid_chunked_case{"extensions_dropped", "5;name=value;flag\r\nhello\r\n0;last=\"yes\"\r\n\r\n",
                           "5\r\nhello\r\n0\r\n\r\n"},
        valid_chunked_case{"extension_after_whitespace", "5 \t; a = \"b c\"\r\nhello\r\n0\r\n\r\n",
                           "5\r\nhello\r\n0\r\n\r\n"},
        valid_chunked_case{"trailers_dropped", "5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other: d e\r\n\r\n",
                           "5\r\nhello\r\n0\r\n\r\n"},
        valid_chunked_case{"data_looks_like_framing", "6\r\n0\r\n\r\nX\r\n0\r\n\r\n", "6\r\n0\r\n\r\nX\r\n0\r\n\r\n"},
        valid_chunked_case{"binary_data", "4\r\n\0\r\n\xff\r\n0\r\n\r\n"s, "4\r\n\0\r\n\xff\r\n0\r\n\r\n"s},
        valid_chunked_case{"large_chunk", "1000\r\n" + std::string(4096, 'x') + "\r\n0\r\n\r\n",
                           "1000\r\n" + std::string(4096, 'x') + "\r\n0\r\n\r\n"}),
    case_name<valid_chunked_case>);

// --- Refused bodies -------------------------------------------------------------------------------------------

struct bad_chunked_case {
    std::string name;
    std::string body;
};

class http_chunked_refused : public ::testing::TestWithParam<bad_chunked_case> {};

TEST_P(http_chunked_refused, one_shot_and_byte_by_byte)
{
    const auto& c = GetParam();
    for (const std::size_t piece : {c.body.size(), std::size_t{1}}) {
        const auto r = feed_in_pieces(c.body, piece);
        EXPECT_EQ(r.status, parse_status::error) << "pieces of " << piece;
        EXPECT_EQ(r.error, parse_error::bad_chunk) << "pieces of " << piece;
    }
}

TEST_P(http_chunked_refused, feed_data_validates_the_same)
{
    const auto& c = GetParam();
    chunked_decoder dec;
    std::string out;
    std::size_t used = 0;
    parse_error err = parse_error::none;
    EXPECT_EQ(dec.feed_data(c.body, out, used, err), parse_status::error);
    EXPECT_EQ(err, parse_error::bad_chunk);
}

std::string trailer_of(std::size_t n) { return "0\r\nX: " + std::string(n, 'v') + "\r\n\r\n"; }

INSTANTIATE_TEST_SUITE_P(
    cases, http_chunked_refused,
    ::testing::Values(
        bad_chunked_case{"negative_size", "-1\r\nx\r\n0\r\n\r\n"},
        bad_chunked_case{"hex_prefix", "0x5\r\nhello\r\n0\r\n\r\n"},
        bad_chunked_case{"plus_sign", "+5\r\nhello\r\n0\r\n\r\n"},
        bad_chunked_case{"non_hex_digit", "5g\r\nhello\r\n0\r\n\r\n"},
        bad_chunked_case{"seventeen_digits", "fffffffffffffffff\r\n"},
        bad_chunked_case{"seventeen_digits_leading_zeros", "00000000000000005\r\nhello\r\n0\r\n\r\n"},
        bad_chunked_case{"empty_size_line", "\r\nhello\r\n0\r\n\r\n"},
        bad_chunked_case{"extension_without_size", ";ext\r\nhello\r\n0\r\n\r\n"},
        bad_chunked_case{"space_before_size", " 5\r\nhello\r\n0\r\n\r\n"},
        bad_chunked_case{"space_after_size_without_extension", "5 \r\nhello\r\n0\r\n\r\n"},
        bad_chunked_case{"bare_lf_after_size", "5\nhello\r\n0\r\n\r\n"},
        bad_chunked_case{"bare_cr_after_size", "5\rhello\r\n0\r\n\r\n"},
        bad_chunked_case{"bare_lf_after_extension", "5;a=b\nhello\r\n0\r\n\r\n"},
        bad_chunked_case{"control_in_extension", "5;a\x01\r\nhello\r\n0\r\n\r\n"},
        bad_chunked_case{"extension_too_long", "5;" + std::string(5000, 'a') + "\r\nhello\r\n0\r\n\r\n"},
        bad_chunked_case{"missing_crlf_after_data", "5\r\nhello0\r\n\r\n"},
        bad_chunked_case{"data_longer_than_size", "5\r\nhello world\r\n0\r\n\r\n"},
        bad_chunked_case{"bare_lf_after_data", "5\r\nhello\n0\r\n\r\n"},
        bad_chunked_case{"cr_without_lf_after_data", "5\r\nhello\rX0\r\n\r\n"},
        bad_chunked_case{"bare_lf_in_trailer", "0\r\nX: y\n\r\n"},
        bad_chunked_case{"nul_in_trailer", "0\r\nX: a\0b\r\n\r\n"s},
        bad_chunked_case{"trailer_line_too_long", trailer_of(5000)},
        bad_chunked_case{"bare_lf_final_line", "0\r\n\n"},
        bad_chunked_case{"cr_without_lf_final_line", "0\r\n\rX"}),
    case_name<bad_chunked_case>);

// --- Behaviour across feeds -----------------------------------------------------------------------------------

TEST(http_chunked_decoder, forwards_data_as_it_arrives)
{
    chunked_decoder dec;
    std::string out;
    std::size_t used = 0;
    parse_error err = parse_error::none;
    EXPECT_EQ(dec.feed("5;ext=1\r\nhe", out, used, err), parse_status::incomplete);
    EXPECT_EQ(out, "5\r\nhe");
    EXPECT_EQ(used, 11U);
    EXPECT_EQ(dec.feed("llo", out, used, err), parse_status::incomplete);
    EXPECT_EQ(out, "5\r\nhello");
    EXPECT_EQ(dec.feed("\r\n", out, used, err), parse_status::incomplete);
    EXPECT_EQ(out, "5\r\nhello\r\n");
    EXPECT_EQ(dec.feed("0\r\nTrailer: x\r\n", out, used, err), parse_status::incomplete);
    EXPECT_EQ(out, "5\r\nhello\r\n");
    EXPECT_EQ(dec.feed("\r\nGET", out, used, err), parse_status::complete);
    EXPECT_EQ(used, 2U);
    EXPECT_EQ(out, "5\r\nhello\r\n0\r\n\r\n");
}

TEST(http_chunked_decoder, pipelined_request_after_the_body_is_left_alone)
{
    const std::string body = "3\r\nabc\r\n0\r\n\r\n";
    const std::string data = body + next_request;
    chunked_decoder dec;
    std::string out;
    std::size_t used = 0;
    parse_error err = parse_error::none;
    ASSERT_EQ(dec.feed(data, out, used, err), parse_status::complete);
    ASSERT_EQ(used, body.size());
    request_head head;
    ASSERT_EQ(parse_request_head(std::string_view(data).substr(used), limits{}, head, err), parse_status::complete);
    EXPECT_EQ(head.target, "/next");
}

TEST(http_chunked_decoder, complete_is_final)
{
    chunked_decoder dec;
    std::string out;
    std::size_t used = 0;
    parse_error err = parse_error::none;
    ASSERT_EQ(dec.feed("0\r\n\r\n", out, used, err), parse_status::complete);
    EXPECT_EQ(dec.feed("5\r\nhello\r\n", out, used, err), parse_status::complete);
    EXPECT_EQ(used, 0U);
    EXPECT_EQ(out, "0\r\n\r\n");
}

TEST(http_chunked_decoder, error_is_sticky)
{
    chunked_decoder dec;
    std::string out;
    std::size_t used = 0;
    parse_error err = parse_error::none;
    ASSERT_EQ(dec.feed("5\r\nhelloXX", out, used, err), parse_status::error);
    EXPECT_EQ(err, parse_error::bad_chunk);
    err = parse_error::none;
    EXPECT_EQ(dec.feed("\r\n0\r\n\r\n", out, used, err), parse_status::error);
    EXPECT_EQ(err, parse_error::bad_chunk);
}

TEST(http_chunked_decoder, empty_feed_is_incomplete)
{
    chunked_decoder dec;
    std::string out;
    std::size_t used = 1;
    parse_error err = parse_error::none;
    EXPECT_EQ(dec.feed("", out, used, err), parse_status::incomplete);
    EXPECT_EQ(used, 0U);
    EXPECT_TRUE(out.empty());
}

TEST(http_chunked_decoder, largest_size_is_accepted_and_streamed)
{
    // 16 hex digits is the most we accept; the data itself never has to be held.
    chunked_decoder dec;
    std::string out;
    std::size_t used = 0;
    parse_error err = parse_error::none;
    EXPECT_EQ(dec.feed("ffffffffffffffff\r\nabc", out, used, err), parse_status::incomplete) << to_string(err);
    EXPECT_EQ(out, "ffffffffffffffff\r\nabc");
}

TEST(http_chunked_decoder, size_line_and_trailer_line_limits)
{
    // 4096 bytes per size line (size and extensions) and per trailer line, CR included.
    const auto size_line = [](std::size_t n) { return "5;" + std::string(n - 3, 'a') + "\r\nhello\r\n0\r\n\r\n"; };
    EXPECT_EQ(feed_in_pieces(size_line(4096), 7).status, parse_status::complete);
    EXPECT_EQ(feed_in_pieces(size_line(4097), 7).status, parse_status::error);
    EXPECT_EQ(feed_in_pieces(trailer_of(4096 - 4), 7).status, parse_status::complete);
    EXPECT_EQ(feed_in_pieces(trailer_of(4096 - 3), 7).status, parse_status::error);
}

TEST(http_chunked_decoder, trailer_section_is_bounded)
{
    std::string body = "0\r\n";
    for (int i = 0; i < 100; ++i) {
        body += "X: " + std::string(1000, 'v') + "\r\n";
    }
    body += "\r\n";
    const auto r = feed_in_pieces(body, 1000);
    EXPECT_EQ(r.status, parse_status::error);
    EXPECT_EQ(r.error, parse_error::bad_chunk);
}

}  // namespace
}  // namespace egressd::protocol::http
