// The HTTP/1 request head parser. Invariants: a prefix of the input is incomplete or gets the whole input's
// verdict; a parsed head, rewritten and serialised the way egressd forwards it, parses again to the same
// method, target, fields and body framing (so the upstream reads the message egressd checked).
#include "fuzz/invariant.hpp"
#include "fuzz/http_forwarding.hpp"
#include "policy/domain.hpp"
#include "protocol/http/message.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using egressd::fuzz::require;

namespace http = egressd::protocol::http;

// Small enough that the fuzzer reaches the 414 and 431 limits.
constexpr http::limits tight{2048, 16, 512};
// The forwarded head has a few more fields than the one received.
constexpr http::limits roomy{1 << 20, 1000, 1 << 20};

void check_prefixes(std::string_view data, http::parse_status whole, const http::request_head& head,
                    http::parse_error whole_err)
{
    std::size_t end = whole == http::parse_status::complete ? head.head_size : data.size();
    std::size_t step = end <= 1024 ? 1 : end / 512;
    for (std::size_t n = 0; n < end; n += step) {
        http::request_head part;
        http::parse_error err = http::parse_error::none;
        auto status = http::parse_request_head(data.substr(0, n), tight, part, err);
        if (whole == http::parse_status::complete) {
            require(status == http::parse_status::incomplete);
        } else {
            require(status == http::parse_status::incomplete || (status == whole && err == whole_err));
        }
    }
}

// The host egressd writes into Host: the URI's host normalised, with the port unless it is 80.
std::string forwarded_host(const http::absolute_target& uri)
{
    auto host = egressd::policy::host::parse(uri.host);
    std::string text = host.value ? host.value->to_string() : uri.host;
    return uri.port == 80 ? text : text + ":" + std::to_string(uri.port);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size)
{
    std::string_view data(reinterpret_cast<const char*>(bytes), size);
    http::request_head head;
    http::parse_error err = http::parse_error::none;
    auto status = http::parse_request_head(data, tight, head, err);
    check_prefixes(data, status, head, err);
    if (status != http::parse_status::complete) {
        require(status == http::parse_status::incomplete || err != http::parse_error::none);
        return 0;
    }
    require(head.head_size <= data.size() && head.head_size >= 4);
    require(data.substr(head.head_size - 4, 4) == "\r\n\r\n");
    require(head.version_minor == 0 || head.version_minor == 1);
    require(!head.method.empty() && !head.target.empty());

    http::parse_error framing_err = http::parse_error::none;
    auto framing = http::request_framing(head, framing_err);
    if (!framing) {
        require(framing_err != http::parse_error::none);
        return 0;
    }
    http::target_error target_err = http::target_error::none;
    auto uri = http::parse_absolute_target(head.target, target_err);
    std::string target = uri ? uri->origin_form : head.target;
    std::string host = uri ? forwarded_host(*uri) : "example.com";
    auto headers = http::forwarded_request_headers(head, *framing, host);
    std::string forwarded = http::serialize_request_head(head.method, target, headers);

    http::request_head again;
    http::parse_error again_err = http::parse_error::none;
    require(http::parse_request_head(forwarded, roomy, again, again_err) == http::parse_status::complete);
    require(again.head_size == forwarded.size());
    require(again.method == head.method && again.target == target && again.version_minor == 1);
    require(egressd::fuzz::same_headers(again.headers, headers));
    auto again_framing = http::request_framing(again, again_err);
    require(again_framing && egressd::fuzz::same_framing(*again_framing, *framing));
    // Nothing hop-by-hop reaches the upstream except the framing egressd wrote itself.
    require(http::header_tokens(again.headers, "connection").empty());
    require(http::find_header(again.headers, "proxy-authorization") == nullptr);
    require(http::header_values(again.headers, "host").size() == 1);
    return 0;
}
