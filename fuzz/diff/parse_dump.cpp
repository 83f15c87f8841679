// egressd_parse_dump MODE DIR...: egressd's reading of every file under the directories, one JSON line each,
// for the differential runs (fuzz/diff/compare.py sets it beside Node's llhttp and OpenSSL). The files are fuzz
// corpus entries, so the mode also says how the target reads them:
//   request        an HTTP/1 request head and whatever follows it (body, next request)
//   response       the first byte picks the request method (GET, HEAD, CONNECT), then a response
//   chunked        two bytes of read sizes, then a chunked body
//   client_hello   a byte of record size, then the client's first bytes
// Strings are written byte for byte as code points 0-255 (latin-1), the way Node hands header bytes to JS.
#include "protocol/http/message.hpp"
#include "protocol/tls/client_hello.hpp"
#include "fuzz/input_files.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace http = egressd::protocol::http;
namespace tls = egressd::protocol::tls;

std::string json_string(std::string_view s)
{
    std::string out = "\"";
    for (char ch : s) {
        auto byte = static_cast<unsigned char>(ch);
        if (byte == '"' || byte == '\\') {
            out += '\\';
            out += ch;
        } else if (byte < 0x20 || byte >= 0x7f) {
            std::array<char, 8> escaped{};
            std::snprintf(escaped.data(), escaped.size(), "\\u%04x", byte);
            out += escaped.data();
        } else {
            out += ch;
        }
    }
    return out + "\"";
}

std::string headers_json(const std::vector<http::header>& headers)
{
    std::string out = "[";
    for (const auto& h : headers) {
        out += (out.size() > 1 ? ",[" : "[") + json_string(h.name) + "," + json_string(h.value) + "]";
    }
    return out + "]";
}

// The body as egressd reads it after the head: complete, its bytes, and where the message ends in rest.
std::string body_json(const http::body_framing& framing, std::string_view rest, bool eof_ends)
{
    using kind = http::body_framing::kind;
    std::string data;
    std::optional<std::size_t> end;
    bool ok = true;
    switch (framing.type) {
    case kind::none:
        end = 0;
        break;
    case kind::content_length:
        data = rest.substr(0, static_cast<std::size_t>(std::min<std::uint64_t>(framing.length, rest.size())));
        if (framing.length <= rest.size()) {
            end = static_cast<std::size_t>(framing.length);
        }
        break;
    case kind::chunked: {
        http::chunked_decoder decoder;
        std::size_t consumed = 0;
        http::parse_error err = http::parse_error::none;
        auto status = decoder.feed_data(rest, data, consumed, err);
        ok = status != http::parse_status::error;
        if (status == http::parse_status::complete) {
            end = consumed;
        }
        break;
    }
    case kind::until_close:
        data = rest;
        if (eof_ends) {
            end = rest.size();
        }
        break;
    }
    static constexpr std::array<std::string_view, 4> names{"none", "content_length", "chunked", "until_close"};
    std::string out = "{\"framing\":" + json_string(names[static_cast<std::size_t>(framing.type)]) +
                      ",\"ok\":" + (ok ? "true" : "false") + ",\"data\":" + json_string(data) + ",\"end\":";
    return out + (end ? std::to_string(*end) : "null") + "}";
}

std::string dump_request(std::string_view data)
{
    http::request_head head;
    http::parse_error err = http::parse_error::none;
    auto status = http::parse_request_head(data, {}, head, err);
    if (status != http::parse_status::complete) {
        return "\"head\":" + json_string(status == http::parse_status::incomplete ? "incomplete" : "error") +
               ",\"error\":" + json_string(http::to_string(err));
    }
    std::string out = "\"head\":\"complete\",\"method\":" + json_string(head.method) + ",\"target\":" + json_string(head.target) +
                      ",\"version\":\"1." + std::to_string(head.version_minor) + "\",\"headers\":" +
                      headers_json(head.headers) + ",\"head_size\":" + std::to_string(head.head_size);
    auto framing = http::request_framing(head, err);
    if (!framing) {
        return out + ",\"body\":{\"framing\":\"error\",\"error\":" + json_string(http::to_string(err)) + "}";
    }
    return out + ",\"body\":" + body_json(*framing, data.substr(head.head_size), false);
}

std::string dump_response(std::string_view data)
{
    static constexpr std::array<std::string_view, 3> methods{"GET", "HEAD", "CONNECT"};
    if (data.empty()) {
        return "\"head\":\"incomplete\"";
    }
    std::string_view method = methods[static_cast<unsigned char>(data[0]) % methods.size()];
    data.remove_prefix(1);
    http::response_head head;
    http::parse_error err = http::parse_error::none;
    auto status = http::parse_response_head(data, {}, head, err);
    std::string out = "\"request_method\":" + json_string(method);
    if (status != http::parse_status::complete) {
        return out + ",\"head\":" + json_string(status == http::parse_status::incomplete ? "incomplete" : "error") +
               ",\"error\":" + json_string(http::to_string(err));
    }
    out += ",\"head\":\"complete\",\"status\":" + std::to_string(head.status) + ",\"reason\":" + json_string(head.reason) +
           ",\"version\":\"1." + std::to_string(head.version_minor) + "\",\"headers\":" + headers_json(head.headers) +
           ",\"head_size\":" + std::to_string(head.head_size);
    auto framing = http::response_framing(head, method, err);
    if (!framing) {
        return out + ",\"body\":{\"framing\":\"error\",\"error\":" + json_string(http::to_string(err)) + "}";
    }
    return out + ",\"body\":" + body_json(*framing, data.substr(head.head_size), true);
}

std::string dump_chunked(std::string_view data)
{
    data.remove_prefix(std::min<std::size_t>(2, data.size()));
    http::body_framing chunked{http::body_framing::kind::chunked, 0};
    return "\"head\":\"complete\",\"body\":" + body_json(chunked, data, false);
}

std::string dump_client_hello(std::string_view data)
{
    data.remove_prefix(std::min<std::size_t>(1, data.size()));
    tls::client_hello hello;
    auto status = tls::parse_client_hello(data, hello);
    std::string out = "\"status\":" + json_string(tls::to_string(status));
    if (status == tls::hello_status::complete) {
        out += ",\"sni\":" + (hello.sni ? json_string(*hello.sni) : std::string("null")) +
               ",\"records_size\":" + std::to_string(hello.records_size);
    }
    return out;
}

}  // namespace

int main(int argc, char** argv)
{
    if (argc < 3) {
        std::fprintf(stderr, "usage: egressd_parse_dump request|response|chunked|client_hello DIR...\n");
        return 2;
    }
    std::string_view mode = argv[1];
    auto dump = mode == "request"        ? dump_request
                : mode == "response"     ? dump_response
                : mode == "chunked"      ? dump_chunked
                : mode == "client_hello" ? dump_client_hello
                                         : nullptr;
    if (dump == nullptr) {
        std::fprintf(stderr, "unknown mode %s\n", argv[1]);
        return 2;
    }
    for (int i = 2; i < argc; ++i) {
        for (const auto& file : egressd::fuzz::input_files(argv[i])) {
            std::ifstream in(file, std::ios::binary);
            std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
            std::printf("{\"file\":%s,%s}\n", json_string(file.string()).c_str(), dump(bytes).c_str());
        }
    }
    return 0;
}
