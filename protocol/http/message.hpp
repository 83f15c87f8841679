#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::protocol::http {

// Strict HTTP/1.x parsing for a proxy (RFC 9112). Anything ambiguous is an error, never a guess: a proxy
// that reads a message differently from the server behind it is how requests get smuggled.

enum class parse_status : std::uint8_t { incomplete, complete, error };

enum class parse_error : std::uint8_t {
    none,
    bad_request_line,      // not "METHOD SP target SP HTTP/1.x CRLF"
    bad_method,            // not a token
    bad_target,            // empty, or characters outside RFC 3986 / control characters
    bad_version,           // not HTTP/1.0 or HTTP/1.1
    bad_status_line,       // response: not "HTTP/1.x SP 3DIGIT SP reason CRLF"
    bad_header,            // no colon, empty or non-token name, space before colon, control chars in value
    obs_fold,              // a header line starting with space or tab (obsolete line folding)
    bare_lf,               // a line ended by LF without CR
    head_too_large,        // more than limits::max_head_bytes before the empty line (431)
    too_many_headers,      // more than limits::max_headers (431)
    request_line_too_long, // more than limits::max_request_line (414)
    bad_content_length,    // not digits, several different values, or too large
    conflicting_framing,   // both Content-Length and Transfer-Encoding
    bad_transfer_encoding, // request: anything but exactly "chunked"; response: chunked present but not last
    bad_chunk,             // chunked body: bad size line, missing CRLF, size overflow
};
std::string_view to_string(parse_error e);

struct limits {
    std::size_t max_head_bytes = 64 * 1024;
    std::size_t max_headers = 100;
    std::size_t max_request_line = 8 * 1024;
};

struct header {
    std::string name;   // as received
    std::string value;  // leading and trailing whitespace removed
};

struct request_head {
    std::string method;
    std::string target;
    int version_minor = 1;  // HTTP/1.<minor>: 0 or 1
    std::vector<header> headers;
    std::size_t head_size = 0;  // bytes through the empty line
};

struct response_head {
    int version_minor = 1;
    int status = 0;
    std::string reason;
    std::vector<header> headers;
    std::size_t head_size = 0;
};

// Parses a head at the start of data. complete: out is filled and out.head_size says how much of data it took
// (bytes after it stay for the body). incomplete: need more bytes (and none of the limits is exceeded yet).
// Checks run on whatever has arrived, so bad bytes fail at once; a prefix of the input is always either
// incomplete or refused with the same error as the whole input.
parse_status parse_request_head(std::string_view data, const limits& lim, request_head& out, parse_error& err);
parse_status parse_response_head(std::string_view data, const limits& lim, response_head& out, parse_error& err);

// Case-insensitive header access. find_header returns the first value; header_values every value.
bool iequals(std::string_view a, std::string_view b);
const std::string* find_header(const std::vector<header>& headers, std::string_view name);
std::vector<std::string_view> header_values(const std::vector<header>& headers, std::string_view name);
// The comma-separated tokens of every `name` header, lower-cased, empty elements skipped (Connection, TE...).
std::vector<std::string> header_tokens(const std::vector<header>& headers, std::string_view name);

// How a message body is delimited (RFC 9112 section 6.3).
struct body_framing {
    enum class kind : std::uint8_t { none, content_length, chunked, until_close };
    kind type = kind::none;
    std::uint64_t length = 0;  // content_length only
};
// Requests: Transfer-Encoding must be exactly "chunked" (anything else: bad_transfer_encoding, 501-worthy but
// answered 400 here); Content-Length with Transfer-Encoding: conflicting_framing; repeated Content-Length with
// equal values is accepted as one, different values are bad_content_length. No body headers: kind::none.
std::optional<body_framing> request_framing(const request_head& head, parse_error& err);
// Responses: no body for 1xx, 204, 304 and responses to HEAD (and 2xx to CONNECT); chunked must be the final
// coding; otherwise Content-Length, or until_close.
std::optional<body_framing> response_framing(const response_head& head, std::string_view request_method,
                                             parse_error& err);

// Incremental chunked-body validator and re-encoder. It forwards the chunk data re-framed canonically
// (hex size, no extensions) and ends with "0\r\n\r\n": chunk extensions and trailer fields are dropped, so
// the next hop never sees framing the proxy did not itself check.
class chunked_decoder {
public:
    // Consumes from in; appends re-encoded output to out. Returns complete once the last chunk and the
    // trailer section are read (consumed says how much of in belonged to the body), incomplete if more input
    // is needed (all of in consumed), error on malformed framing.
    parse_status feed(std::string_view in, std::string& out, std::size_t& consumed, parse_error& err);
    // The same validation, but only the chunk data is appended to out (for HTTP/1.0 clients, which get the
    // body delimited by the connection closing).
    parse_status feed_data(std::string_view in, std::string& out, std::size_t& consumed, parse_error& err);
    // For callers that move chunk data themselves (without copying it, or between sockets): parses and emits
    // like feed (reframe) or feed_data, but stops where chunk data begins, with consumed short of in's end.
    // data_left() bytes of chunk data come next; the caller moves them and reports them with skip_data().
    parse_status feed_framing(std::string_view in, std::string& out, std::size_t& consumed, parse_error& err,
                              bool reframe);
    std::uint64_t data_left() const { return state_ == state::data ? remaining_ : 0; }
    // n <= data_left().
    void skip_data(std::uint64_t n);

private:
    // reframe: emit size lines, CRLFs and the last chunk (feed) or the chunk data alone (feed_data).
    // copy_data false: stop at chunk data instead of appending it (feed_framing).
    parse_status decode(std::string_view in, std::string& out, std::size_t& consumed, parse_error& err, bool reframe,
                        bool copy_data = true);

    // size_ws: bad whitespace after the size, allowed only before a chunk extension. failed: errors are sticky.
    enum class state : std::uint8_t {
        size, size_ws, extension, size_lf, data, data_cr, data_lf,
        trailer_start, trailer_line, trailer_lf, end_lf, done, failed
    };
    state state_ = state::size;
    std::uint64_t remaining_ = 0;
    std::size_t size_digits_ = 0;
    std::size_t line_bytes_ = 0;     // bounds size lines, extensions and trailer lines
    std::size_t trailer_bytes_ = 0;  // bounds the whole (dropped) trailer section
};

// An absolute-form request target: "http://host[:port]/path?query".
struct absolute_target {
    std::string host;         // as written: a name, a dotted quad, or a bracketed IPv6 literal
    std::uint16_t port = 80;  // explicit port or 80
    std::string origin_form;  // "/path?query"; "/" when the URI has no path
};
enum class target_error : std::uint8_t { none, not_absolute, https_scheme, other_scheme, userinfo, bad_authority, bad_port };
std::string_view to_string(target_error e);
std::optional<absolute_target> parse_absolute_target(std::string_view target, target_error& err);

// Hop-by-hop handling for forwarding: removes Connection and every header it names, Keep-Alive,
// Proxy-Connection, Proxy-Authorization, Proxy-Authenticate, TE, Trailer, Transfer-Encoding and Upgrade.
// (The proxy re-frames bodies itself.) Content-Length and Host are kept even when Connection names them: a
// client must not be able to strip the framing or the Host the forwarder relies on.
void remove_hop_by_hop(std::vector<header>& headers);

// The fields of a request egressd forwards: hop-by-hop fields removed, Host from the URI (never the client's Host
// header), Via appended, and the body framed by egressd.
// Removes the fields some servers and frameworks take over the request line (X-Original-URL, X-Rewrite-URL,
// X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override): under rules that name methods or paths, they would let
// the upstream act on a path or method other than the one decided.
void remove_request_overrides(std::vector<header>& headers);

std::vector<header> forwarded_request_headers(const request_head& head, const body_framing& framing,
                                              std::string_view host);
// The fields of a response egressd forwards to a client speaking HTTP/1.<client_version_minor>: hop-by-hop fields
// removed, Via appended, egressd's own framing (chunked only to a client that reads chunks), and Connection as
// client_keep_alive says.
std::vector<header> forwarded_response_headers(const response_head& head, const body_framing& framing,
                                               int client_version_minor, bool client_keep_alive);

// "METHOD origin-form HTTP/1.1\r\n" + headers + "\r\n".
std::string serialize_request_head(std::string_view method, std::string_view target, const std::vector<header>& headers);
// "HTTP/1.1 status reason\r\n" + headers + "\r\n".
std::string serialize_response_head(int status, std::string_view reason, const std::vector<header>& headers);

}  // namespace egressd::protocol::http
