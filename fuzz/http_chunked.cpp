// The chunked body decoder. The first two bytes choose how the body is cut into reads; the rest is the body.
// Invariants: the verdict, the bytes consumed and the output do not depend on how the input is split into
// reads, nor on whether the caller moves the chunk data itself (feed_framing + skip_data, as the splice path
// does); the re-encoded body is canonical (it decodes to the same data and re-encodes to itself).
#include "fuzz/invariant.hpp"
#include "protocol/http/message.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using egressd::fuzz::require;

namespace http = egressd::protocol::http;

struct outcome {
    http::parse_status status = http::parse_status::incomplete;
    std::size_t consumed = 0;  // of the whole body; meaningful when complete
    std::string out;
};

bool operator==(const outcome& a, const outcome& b)
{
    if (a.status != b.status) {
        return false;
    }
    if (a.status == http::parse_status::error) {
        return true;
    }
    return a.out == b.out && (a.status != http::parse_status::complete || a.consumed == b.consumed);
}

outcome decode_whole(std::string_view body, bool reframe)
{
    http::chunked_decoder d;
    outcome r;
    http::parse_error err = http::parse_error::none;
    r.status = reframe ? d.feed(body, r.out, r.consumed, err) : d.feed_data(body, r.out, r.consumed, err);
    require((r.status == http::parse_status::error) == (err != http::parse_error::none));
    return r;
}

outcome decode_in_reads(std::string_view body, std::size_t read_size, bool reframe)
{
    http::chunked_decoder d;
    outcome r;
    for (std::size_t pos = 0; pos < body.size() || pos == 0; pos += read_size) {
        std::string_view piece = body.substr(pos, read_size);
        std::size_t consumed = 0;
        http::parse_error err = http::parse_error::none;
        r.status = reframe ? d.feed(piece, r.out, consumed, err) : d.feed_data(piece, r.out, consumed, err);
        if (r.status == http::parse_status::complete) {
            r.consumed = pos + consumed;
            return r;
        }
        if (r.status == http::parse_status::error) {
            return r;
        }
        require(consumed == piece.size());
        if (body.empty()) {
            break;
        }
    }
    return r;
}

// As the forwarder's splice path: framing parsed by the decoder, chunk data moved by the caller.
outcome decode_moving_data(std::string_view body, std::size_t read_size, bool reframe)
{
    http::chunked_decoder d;
    outcome r;
    std::size_t pos = 0;
    std::size_t available = std::min(body.size(), read_size);
    for (std::size_t rounds = 0; rounds < 4 * body.size() + 8; ++rounds) {
        if (d.data_left() > 0) {
            auto n = static_cast<std::size_t>(std::min<std::uint64_t>(d.data_left(), available - pos));
            if (n > 0) {
                r.out.append(body.substr(pos, n));
                d.skip_data(n);
                pos += n;
                continue;
            }
        } else {
            std::size_t consumed = 0;
            http::parse_error err = http::parse_error::none;
            r.status = d.feed_framing(body.substr(pos, available - pos), r.out, consumed, err, reframe);
            pos += consumed;
            if (r.status != http::parse_status::incomplete) {
                r.consumed = pos;
                return r;
            }
            if (d.data_left() > 0) {
                continue;
            }
            require(pos == available);
        }
        if (available == body.size()) {
            r.status = http::parse_status::incomplete;
            return r;
        }
        available = std::min(body.size(), available + read_size);
    }
    std::abort();  // no progress: the decoder neither consumed nor asked for data
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size)
{
    if (size < 2) {
        return 0;
    }
    std::size_t read_size = std::size_t{bytes[0]} + 1;
    std::size_t move_size = std::size_t{bytes[1]} + 1;
    std::string_view body(reinterpret_cast<const char*>(bytes) + 2, size - 2);

    outcome whole = decode_whole(body, true);
    outcome data = decode_whole(body, false);
    require(whole.status == data.status);
    if (whole.status == http::parse_status::complete) {
        require(whole.consumed == data.consumed && whole.consumed <= body.size());
    }
    require(decode_in_reads(body, read_size, true) == whole);
    require(decode_in_reads(body, read_size, false) == data);
    require(decode_moving_data(body, move_size, true) == whole);
    require(decode_moving_data(body, move_size, false) == data);
    if (whole.status != http::parse_status::complete) {
        return 0;
    }
    outcome decoded_again = decode_whole(whole.out, false);
    require(decoded_again.status == http::parse_status::complete);
    require(decoded_again.consumed == whole.out.size() && decoded_again.out == data.out);
    outcome encoded_again = decode_whole(whole.out, true);
    require(encoded_again.out == whole.out);
    return 0;
}
