// The HTTP/1 response head parser. The first byte picks the request method the response answers (GET, HEAD or
// CONNECT: they frame responses differently); the rest is the upstream's bytes. Invariants: a prefix is
// incomplete or gets the whole input's verdict; a parsed head, rewritten the way egressd forwards it to an
// HTTP/1.1 client, parses again to the same status, reason, fields and body framing.
#include "fuzz/invariant.hpp"
#include "fuzz/http_forwarding.hpp"
#include "protocol/http/message.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using egressd::fuzz::require;

namespace http = egressd::protocol::http;

constexpr http::limits tight{2048, 16, 512};
constexpr http::limits roomy{1 << 20, 1000, 1 << 20};
constexpr std::array<std::string_view, 3> methods{"GET", "HEAD", "CONNECT"};

void check_prefixes(std::string_view data, http::parse_status whole, const http::response_head& head,
                    http::parse_error whole_err)
{
    std::size_t end = whole == http::parse_status::complete ? head.head_size : data.size();
    std::size_t step = end <= 1024 ? 1 : end / 512;
    for (std::size_t n = 0; n < end; n += step) {
        http::response_head part;
        http::parse_error err = http::parse_error::none;
        auto status = http::parse_response_head(data.substr(0, n), tight, part, err);
        if (whole == http::parse_status::complete) {
            require(status == http::parse_status::incomplete);
        } else {
            require(status == http::parse_status::incomplete || (status == whole && err == whole_err));
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size)
{
    if (size == 0) {
        return 0;
    }
    std::string_view method = methods[bytes[0] % methods.size()];
    std::string_view data(reinterpret_cast<const char*>(bytes) + 1, size - 1);
    http::response_head head;
    http::parse_error err = http::parse_error::none;
    auto status = http::parse_response_head(data, tight, head, err);
    check_prefixes(data, status, head, err);
    if (status != http::parse_status::complete) {
        return 0;
    }
    require(head.head_size <= data.size() && data.substr(head.head_size - 4, 4) == "\r\n\r\n");
    require(head.status >= 100 && head.status <= 999);
    require(head.version_minor == 0 || head.version_minor == 1);

    http::parse_error framing_err = http::parse_error::none;
    auto framing = http::response_framing(head, method, framing_err);
    if (!framing) {
        require(framing_err != http::parse_error::none);
        return 0;
    }
    if (method == "HEAD" || head.status == 204 || head.status == 304 || head.status < 200 ||
        (method == "CONNECT" && head.status < 300)) {
        require(framing->type == http::body_framing::kind::none);
    }
    auto headers = http::forwarded_response_headers(head, *framing, 1, true);
    std::string forwarded = http::serialize_response_head(head.status, head.reason, headers);

    http::response_head again;
    http::parse_error again_err = http::parse_error::none;
    require(http::parse_response_head(forwarded, roomy, again, again_err) == http::parse_status::complete);
    require(again.head_size == forwarded.size());
    require(again.status == head.status && again.reason == head.reason && again.version_minor == 1);
    require(egressd::fuzz::same_headers(again.headers, headers));
    auto again_framing = http::response_framing(again, method, again_err);
    require(again_framing && egressd::fuzz::same_framing(*again_framing, *framing));
    return 0;
}
