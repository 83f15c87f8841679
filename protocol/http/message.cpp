#include "protocol/http/message.hpp"

#include "protocol/hex.hpp"
#include "protocol/host_port.hpp"

#include <algorithm>
#include <array>
#include <charconv>

namespace egressd::protocol::http {

namespace {

// Content-Length values above 2^53 are refused: no real body is that large, and the bound keeps every
// arithmetic step far from overflow (and the value exact wherever it is logged as a JSON number).
constexpr std::uint64_t max_content_length = std::uint64_t{1} << 53;

// A chunk-size line (size plus extensions) or one trailer line longer than this is refused: both are dropped,
// so a long one can only be an attempt to make us buffer or scan without bound.
constexpr std::size_t max_chunk_line = 4096;
constexpr std::size_t max_trailer_bytes = 64 * 1024;

// 16 hex digits fill a uint64; a 17th would overflow.
constexpr std::size_t max_size_digits = 16;

char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

using protocol::hex_value;

// RFC 9110 5.6.2: tchar.
bool is_tchar(char c)
{
    if (is_digit(c) || is_alpha(c)) {
        return true;
    }
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-': case '.':
    case '^': case '_': case '`': case '|': case '~':
        return true;
    default:
        return false;
    }
}

bool is_token(std::string_view s)
{
    return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar);
}

bool is_ows(char c) { return c == ' ' || c == '\t'; }

// Field values and reason phrases: HTAB, SP, VCHAR, obs-text. Every other control (NUL, CR, LF, DEL...) is
// refused, since peers disagree on what they mean.
bool is_field_char(char c)
{
    const auto u = static_cast<unsigned char>(c);
    return c == '\t' || (u >= 0x20 && u != 0x7f);
}

std::string_view trim_ows(std::string_view s)
{
    while (!s.empty() && is_ows(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && is_ows(s.back())) {
        s.remove_suffix(1);
    }
    return s;
}

// Calls f(element) for each comma-separated element, trimmed of OWS (empty ones included).
template <typename F>
void for_each_element(std::string_view value, F&& f)
{
    for (;;) {
        const auto comma = value.find(',');
        f(trim_ows(value.substr(0, comma)));
        if (comma == std::string_view::npos) {
            return;
        }
        value.remove_prefix(comma + 1);
    }
}

// --- Lines ------------------------------------------------------------------------------------------------------
//
// Heads are checked left to right on whatever has arrived, so garbage (a TLS ClientHello sent to the plain port,
// a bare LF) fails at its first bad byte instead of waiting for a limit or a timeout, and a prefix never gets a
// different verdict from the whole message: it is either incomplete or refused with the same error.

enum class line_kind : std::uint8_t { complete, incomplete, bare_lf, bare_cr };

struct line_scan {
    line_kind kind;
    std::size_t end;  // where the line's content ends: its CR or bare LF, or the end of the data so far
};

// Finds the end of the line starting at pos. Only CRLF ends a line: a bare LF, or a CR followed by anything
// but LF, is an error. A CR as the last byte so far is not content: its LF may still come.
line_scan scan_line(std::string_view data, std::size_t pos)
{
    const auto i = data.find_first_of("\r\n", pos);
    if (i == std::string_view::npos) {
        return {line_kind::incomplete, data.size()};
    }
    if (data[i] == '\n') {
        return {line_kind::bare_lf, i};
    }
    if (i + 1 == data.size()) {
        return {line_kind::incomplete, i};
    }
    if (data[i + 1] != '\n') {
        return {line_kind::bare_cr, i};
    }
    return {line_kind::complete, i};
}

constexpr std::string_view http_1_0 = "HTTP/1.0";
constexpr std::string_view http_1_1 = "HTTP/1.1";

bool is_version_prefix(std::string_view v) { return http_1_0.starts_with(v) || http_1_1.starts_with(v); }

bool is_target_char(char c)
{
    // Printable ASCII only: no SP, controls or raw UTF-8. Finer URI syntax is the target parser's business.
    const auto u = static_cast<unsigned char>(c);
    return u >= 0x21 && u <= 0x7e;
}

// The checks a request line prefix can fail: method SP request-target SP HTTP-version, split at the first two
// SPs, so a doubled SP makes an empty target and an extra SP lands in the version.
parse_error check_request_line_prefix(std::string_view s)
{
    const auto sp1 = s.find(' ');
    if (!std::all_of(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(std::min(sp1, s.size())), is_tchar)) {
        return parse_error::bad_method;
    }
    if (sp1 == std::string_view::npos) {
        return parse_error::none;
    }
    if (sp1 == 0) {
        return parse_error::bad_request_line;
    }
    const auto rest = s.substr(sp1 + 1);
    const auto sp2 = rest.find(' ');
    const auto target = rest.substr(0, sp2);
    if (!std::all_of(target.begin(), target.end(), is_target_char)) {
        return parse_error::bad_target;
    }
    if (sp2 == std::string_view::npos) {
        return parse_error::none;
    }
    if (target.empty()) {
        return parse_error::bad_target;
    }
    return is_version_prefix(rest.substr(sp2 + 1)) ? parse_error::none : parse_error::bad_version;
}

parse_error parse_request_line(std::string_view line, request_head& out)
{
    if (auto e = check_request_line_prefix(line); e != parse_error::none) {
        return e;
    }
    const auto sp1 = line.find(' ');
    const auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos) {
        return parse_error::bad_request_line;  // no target or no version (HTTP/0.9)
    }
    const auto version = line.substr(sp2 + 1);
    if (version != http_1_0 && version != http_1_1) {
        return parse_error::bad_version;
    }
    out.method = std::string(line.substr(0, sp1));
    out.target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
    out.version_minor = version == http_1_1 ? 1 : 0;
    return parse_error::none;
}

// Only the version is checked early in a status line: a peer that does not speak HTTP/1.x fails at once.
parse_error check_status_line_prefix(std::string_view s)
{
    const auto sp = s.find(' ');
    const auto version = s.substr(0, sp);
    const bool ok = sp == std::string_view::npos ? is_version_prefix(version)
                                                 : (version == http_1_0 || version == http_1_1);
    if (ok) {
        return parse_error::none;
    }
    return version.starts_with("HTTP/") ? parse_error::bad_version : parse_error::bad_status_line;
}

// HTTP-version SP 3DIGIT SP reason-phrase. Leniency, on purpose: "HTTP/1.1 200" without the SP before an
// empty reason is accepted, because some upstream servers send it and the reason carries no framing meaning.
parse_error parse_status_line(std::string_view line, response_head& out)
{
    const auto sp = line.find(' ');
    if (sp == std::string_view::npos) {
        return line.starts_with("HTTP/") && line != http_1_0 && line != http_1_1 ? parse_error::bad_version
                                                                                  : parse_error::bad_status_line;
    }
    if (auto e = check_status_line_prefix(line); e != parse_error::none) {
        return e;
    }
    auto rest = line.substr(sp + 1);
    if (rest.size() < 3 || !is_digit(rest[0]) || !is_digit(rest[1]) || !is_digit(rest[2]) || rest[0] == '0') {
        return parse_error::bad_status_line;
    }
    const int status = (rest[0] - '0') * 100 + (rest[1] - '0') * 10 + (rest[2] - '0');
    rest.remove_prefix(3);
    if (!rest.empty()) {
        if (rest.front() != ' ') {
            return parse_error::bad_status_line;
        }
        rest.remove_prefix(1);
    }
    if (!std::all_of(rest.begin(), rest.end(), is_field_char)) {
        return parse_error::bad_status_line;
    }
    out.version_minor = line.starts_with(http_1_1) ? 1 : 0;
    out.status = status;
    out.reason = std::string(rest);
    return parse_error::none;
}

// field-name ":" OWS field-value OWS. No whitespace between name and colon (RFC 9112 5.1: must be rejected,
// it is a classic smuggling shape); no control characters but HTAB in the value.
parse_error check_field_prefix(std::string_view s)
{
    const auto colon = s.find(':');
    const auto name = s.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), is_tchar)) {
        return parse_error::bad_header;
    }
    if (colon == std::string_view::npos) {
        return parse_error::none;
    }
    const auto value = s.substr(colon + 1);
    if (name.empty() || !std::all_of(value.begin(), value.end(), is_field_char)) {
        return parse_error::bad_header;
    }
    return parse_error::none;
}

parse_error parse_field_line(std::string_view line, std::vector<header>& headers)
{
    if (auto e = check_field_prefix(line); e != parse_error::none) {
        return e;
    }
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) {
        return parse_error::bad_header;
    }
    headers.push_back(header{std::string(line.substr(0, colon)), std::string(trim_ows(line.substr(colon + 1)))});
    return parse_error::none;
}

constexpr std::size_t no_limit = std::string_view::npos;

// The checks every head line goes through, in an order that gives every prefix the verdict of the whole line:
// content first, but only bytes that every prefix tripping a limit also holds; then the limits (line_limit bounds
// the line's content, the head limit everything through the line's CRLF); then how the line ends. Returns
// nothing when the line is complete and may be parsed.
template <typename Check>
std::optional<parse_status> check_line(std::string_view data, std::size_t pos, const line_scan& line,
                                       const limits& lim, std::size_t line_limit, parse_error line_limit_error,
                                       parse_error bare_cr_error, Check check, parse_error& err)
{
    auto fail = [&err](parse_error e) {
        err = e;
        return parse_status::error;
    };
    auto checked_end = std::min(line.end, lim.max_head_bytes == 0 ? 0 : lim.max_head_bytes - 1);
    if (line_limit < data.size()) {  // otherwise the line cannot be over it yet (and pos + limit might overflow)
        checked_end = std::min(checked_end, pos + line_limit + 1);
    }
    if (checked_end > pos) {
        if (auto e = check(data.substr(pos, checked_end - pos)); e != parse_error::none) {
            return fail(e);
        }
    }
    if (line_limit != no_limit && line.end - pos > line_limit) {
        return fail(line_limit_error);
    }
    if (line.end + 2 > lim.max_head_bytes) {
        return fail(parse_error::head_too_large);
    }
    switch (line.kind) {
    case line_kind::bare_lf:
        return fail(parse_error::bare_lf);
    case line_kind::bare_cr:
        return fail(bare_cr_error);
    case line_kind::incomplete:
        return parse_status::incomplete;
    case line_kind::complete:
        break;
    }
    return std::nullopt;
}

// Reads field lines from pos up to and including the empty line.
parse_status parse_fields(std::string_view data, std::size_t pos, const limits& lim, std::vector<header>& headers,
                          std::size_t& head_size, parse_error& err)
{
    auto fail = [&err](parse_error e) {
        err = e;
        return parse_status::error;
    };
    for (;;) {
        if (pos >= data.size()) {
            return parse_status::incomplete;
        }
        const char first = data[pos];
        if (first != '\r' && first != '\n') {
            if (headers.size() >= lim.max_headers) {
                return fail(parse_error::too_many_headers);
            }
            if (is_ows(first)) {
                return fail(parse_error::obs_fold);
            }
        }
        const auto line = scan_line(data, pos);
        if (auto r = check_line(data, pos, line, lim, no_limit, parse_error::none, parse_error::bad_header,
                                check_field_prefix, err)) {
            return *r;
        }
        if (line.end == pos) {
            head_size = pos + 2;
            return parse_status::complete;
        }
        if (auto e = parse_field_line(data.substr(pos, line.end - pos), headers); e != parse_error::none) {
            return fail(e);
        }
        pos = line.end + 2;
    }
}

// --- Framing ----------------------------------------------------------------------------------------------------

struct content_length {
    bool present = false;
    bool valid = true;
    std::uint64_t value = 0;
};

// Every Content-Length field and every list element in it must be 1*DIGIT and all must agree (RFC 9112 6.3
// rule 5). No sign, no empty element, no trailing garbage.
content_length read_content_length(const std::vector<header>& headers)
{
    content_length out;
    std::optional<std::uint64_t> seen;
    for (const auto& h : headers) {
        if (!iequals(h.name, "Content-Length")) {
            continue;
        }
        out.present = true;
        for_each_element(h.value, [&](std::string_view e) {
            if (e.empty() || !std::all_of(e.begin(), e.end(), is_digit)) {
                out.valid = false;
                return;
            }
            std::uint64_t v = 0;
            for (const char c : e) {
                v = v * 10 + static_cast<std::uint64_t>(c - '0');
                if (v > max_content_length) {
                    out.valid = false;
                    return;
                }
            }
            if (seen && *seen != v) {
                out.valid = false;
                return;
            }
            seen = v;
        });
    }
    out.value = seen.value_or(0);
    return out;
}

bool has_header(const std::vector<header>& headers, std::string_view name)
{
    return find_header(headers, name) != nullptr;
}

std::optional<body_framing> content_length_framing(const content_length& cl, parse_error& err)
{
    if (!cl.valid) {
        err = parse_error::bad_content_length;
        return std::nullopt;
    }
    return body_framing{body_framing::kind::content_length, cl.value};
}

// Response Transfer-Encoding: the list of codings, chunked at most once and only last. Returns nullopt on a
// malformed list; otherwise whether the body is chunked.
std::optional<bool> response_chunked(const std::vector<header>& headers)
{
    std::vector<std::string_view> codings;
    bool ok = true;
    for (const auto& h : headers) {
        if (!iequals(h.name, "Transfer-Encoding")) {
            continue;
        }
        for_each_element(h.value, [&](std::string_view e) {
            if (e.empty()) {
                return;  // list syntax allows empty elements (RFC 9110 5.6.1)
            }
            // A coding with parameters is its name, then ';'. "chunked" takes no parameters.
            const auto semi = e.find(';');
            const auto name = trim_ows(e.substr(0, semi));
            if (!is_token(name) || (semi != std::string_view::npos && iequals(name, "chunked"))) {
                ok = false;
                return;
            }
            codings.push_back(name);
        });
    }
    if (!ok || codings.empty()) {
        return std::nullopt;
    }
    const auto chunked = std::count_if(codings.begin(), codings.end(),
                                       [](std::string_view c) { return iequals(c, "chunked"); });
    if (chunked == 0) {
        return false;
    }
    if (chunked > 1 || !iequals(codings.back(), "chunked")) {
        return std::nullopt;
    }
    return true;
}

void append_hex(std::string& out, std::uint64_t v)
{
    std::array<char, 16> buf{};
    const auto r = std::to_chars(buf.data(), buf.data() + buf.size(), v, 16);
    out.append(buf.data(), r.ptr);
}

bool is_reg_name_char(char c)
{
    // RFC 3986 reg-name without pct-encoded: unreserved / sub-delims.
    if (is_alpha(c) || is_digit(c)) {
        return true;
    }
    switch (c) {
    case '-': case '.': case '_': case '~':
    case '!': case '$': case '&': case '\'': case '(': case ')': case '*': case '+': case ',': case ';': case '=':
        return true;
    default:
        return false;
    }
}

void append_head_fields(std::string& out, const std::vector<header>& headers)
{
    for (const auto& h : headers) {
        out += h.name;
        out += ": ";
        out += h.value;
        out += "\r\n";
    }
    out += "\r\n";
}

}  // namespace

std::string_view to_string(parse_error e)
{
    switch (e) {
    case parse_error::none: return "none";
    case parse_error::bad_request_line: return "bad_request_line";
    case parse_error::bad_method: return "bad_method";
    case parse_error::bad_target: return "bad_target";
    case parse_error::bad_version: return "bad_version";
    case parse_error::bad_status_line: return "bad_status_line";
    case parse_error::bad_header: return "bad_header";
    case parse_error::obs_fold: return "obs_fold";
    case parse_error::bare_lf: return "bare_lf";
    case parse_error::head_too_large: return "head_too_large";
    case parse_error::too_many_headers: return "too_many_headers";
    case parse_error::request_line_too_long: return "request_line_too_long";
    case parse_error::bad_content_length: return "bad_content_length";
    case parse_error::conflicting_framing: return "conflicting_framing";
    case parse_error::bad_transfer_encoding: return "bad_transfer_encoding";
    case parse_error::bad_chunk: return "bad_chunk";
    }
    return "unknown";
}

std::string_view to_string(target_error e)
{
    switch (e) {
    case target_error::none: return "none";
    case target_error::not_absolute: return "not_absolute";
    case target_error::https_scheme: return "https_scheme";
    case target_error::other_scheme: return "other_scheme";
    case target_error::userinfo: return "userinfo";
    case target_error::bad_authority: return "bad_authority";
    case target_error::bad_port: return "bad_port";
    }
    return "unknown";
}

// --- Heads ------------------------------------------------------------------------------------------------------

parse_status parse_request_head(std::string_view data, const limits& lim, request_head& out, parse_error& err)
{
    err = parse_error::none;
    out = request_head{};
    auto fail = [&err](parse_error e) {
        err = e;
        return parse_status::error;
    };
    // RFC 9112 2.2: a server should ignore at least one empty line before the request line. They count as head.
    std::size_t pos = 0;
    while (pos + 1 < data.size() && data[pos] == '\r') {
        if (data[pos + 1] != '\n') {
            return fail(parse_error::bad_request_line);
        }
        pos += 2;
        if (pos > lim.max_head_bytes) {
            return fail(parse_error::head_too_large);
        }
    }
    const auto line = scan_line(data, pos);
    if (auto r = check_line(data, pos, line, lim, lim.max_request_line, parse_error::request_line_too_long,
                            parse_error::bad_request_line, check_request_line_prefix, err)) {
        return *r;
    }
    if (auto e = parse_request_line(data.substr(pos, line.end - pos), out); e != parse_error::none) {
        return fail(e);
    }
    return parse_fields(data, line.end + 2, lim, out.headers, out.head_size, err);
}

// Unlike requests, no empty lines are skipped before a status line, and the status line has no limit of its own
// (max_request_line is about requests; the head limit bounds it).
parse_status parse_response_head(std::string_view data, const limits& lim, response_head& out, parse_error& err)
{
    err = parse_error::none;
    out = response_head{};
    const auto line = scan_line(data, 0);
    if (auto r = check_line(data, 0, line, lim, no_limit, parse_error::none, parse_error::bad_status_line,
                            check_status_line_prefix, err)) {
        return *r;
    }
    if (auto e = parse_status_line(data.substr(0, line.end), out); e != parse_error::none) {
        err = e;
        return parse_status::error;
    }
    return parse_fields(data, line.end + 2, lim, out.headers, out.head_size, err);
}

// --- Header access ----------------------------------------------------------------------------------------------

bool iequals(std::string_view a, std::string_view b)
{
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return lower(x) == lower(y);
           });
}

const std::string* find_header(const std::vector<header>& headers, std::string_view name)
{
    for (const auto& h : headers) {
        if (iequals(h.name, name)) {
            return &h.value;
        }
    }
    return nullptr;
}

std::vector<std::string_view> header_values(const std::vector<header>& headers, std::string_view name)
{
    std::vector<std::string_view> out;
    for (const auto& h : headers) {
        if (iequals(h.name, name)) {
            out.emplace_back(h.value);
        }
    }
    return out;
}

std::vector<std::string> header_tokens(const std::vector<header>& headers, std::string_view name)
{
    std::vector<std::string> out;
    for (const auto& h : headers) {
        if (!iequals(h.name, name)) {
            continue;
        }
        for_each_element(h.value, [&out](std::string_view e) {
            if (e.empty()) {
                return;
            }
            std::string t(e);
            std::transform(t.begin(), t.end(), t.begin(), lower);
            out.push_back(std::move(t));
        });
    }
    return out;
}

// --- Framing ----------------------------------------------------------------------------------------------------

std::optional<body_framing> request_framing(const request_head& head, parse_error& err)
{
    err = parse_error::none;
    const bool has_te = has_header(head.headers, "Transfer-Encoding");
    const auto cl = read_content_length(head.headers);
    if (has_te && cl.present) {
        // RFC 9112 6.1 allows a server to drop Content-Length and go on; a proxy must not guess which framing the
        // next hop will believe.
        err = parse_error::conflicting_framing;
        return std::nullopt;
    }
    if (has_te) {
        // Exactly one list element in total, "chunked". Anything else (other codings, chunked twice, empty
        // elements, parameters) is a framing the origin might read differently. HTTP/1.0 has no
        // Transfer-Encoding: RFC 9112 6.1 says to treat its presence as faulty framing.
        std::size_t elements = 0;
        bool ok = head.version_minor == 1;
        for (const auto& v : header_values(head.headers, "Transfer-Encoding")) {
            for_each_element(v, [&](std::string_view e) {
                ++elements;
                ok = ok && iequals(e, "chunked");
            });
        }
        if (!ok || elements != 1) {
            err = parse_error::bad_transfer_encoding;
            return std::nullopt;
        }
        return body_framing{body_framing::kind::chunked, 0};
    }
    if (cl.present) {
        return content_length_framing(cl, err);
    }
    return body_framing{};
}

std::optional<body_framing> response_framing(const response_head& head, std::string_view request_method,
                                             parse_error& err)
{
    err = parse_error::none;
    // RFC 9112 6.3 rules 1 and 2: these never have content, whatever their headers say.
    if ((head.status >= 100 && head.status < 200) || head.status == 204 || head.status == 304 ||
        request_method == "HEAD" || (request_method == "CONNECT" && head.status >= 200 && head.status < 300)) {
        return body_framing{};
    }
    if (has_header(head.headers, "Transfer-Encoding")) {
        // Rule 3: Transfer-Encoding overrides Content-Length, which is then ignored (the forwarder re-frames and
        // must not pass the stale Content-Length on). HTTP/1.0 has no Transfer-Encoding (RFC 9112 6.1).
        const auto chunked = response_chunked(head.headers);
        if (!chunked || head.version_minor == 0) {
            err = parse_error::bad_transfer_encoding;
            return std::nullopt;
        }
        if (*chunked) {
            return body_framing{body_framing::kind::chunked, 0};
        }
        // Rule 4, responses: a final coding other than chunked means the body runs to the close.
        return body_framing{body_framing::kind::until_close, 0};
    }
    const auto cl = read_content_length(head.headers);
    if (cl.present) {
        return content_length_framing(cl, err);
    }
    return body_framing{body_framing::kind::until_close, 0};
}

// --- Chunked bodies ---------------------------------------------------------------------------------------------

parse_status chunked_decoder::feed(std::string_view in, std::string& out, std::size_t& consumed, parse_error& err)
{
    return decode(in, out, consumed, err, true);
}

parse_status chunked_decoder::feed_data(std::string_view in, std::string& out, std::size_t& consumed,
                                        parse_error& err)
{
    return decode(in, out, consumed, err, false);
}

parse_status chunked_decoder::feed_framing(std::string_view in, std::string& out, std::size_t& consumed,
                                           parse_error& err, bool reframe)
{
    return decode(in, out, consumed, err, reframe, false);
}

void chunked_decoder::skip_data(std::uint64_t n)
{
    if (n == 0) {
        return;  // outside chunk data, where a zero remaining_ must not end a chunk that never began
    }
    remaining_ -= n;
    if (remaining_ == 0) {
        state_ = state::data_cr;
    }
}

parse_status chunked_decoder::decode(std::string_view in, std::string& out, std::size_t& consumed, parse_error& err,
                                     bool reframe, bool copy_data)
{
    err = parse_error::none;
    consumed = 0;
    if (state_ == state::done) {
        return parse_status::complete;
    }
    if (state_ == state::failed) {
        err = parse_error::bad_chunk;
        return parse_status::error;
    }
    std::size_t i = 0;
    auto fail = [&]() {
        state_ = state::failed;
        consumed = i;
        err = parse_error::bad_chunk;
        return parse_status::error;
    };
    // Size lines and extensions share one bound; trailer lines have their own and a section-wide one.
    auto count_line_byte = [this]() { return ++line_bytes_ <= max_chunk_line; };
    while (i < in.size()) {
        const char c = in[i];
        switch (state_) {
        case state::size: {
            const int d = hex_value(c);
            if (d >= 0) {
                if (++size_digits_ > max_size_digits) {
                    return fail();
                }
                remaining_ = (remaining_ << 4) | static_cast<std::uint64_t>(d);
            } else if (size_digits_ == 0) {
                return fail();  // "-1", ";ext" or an empty line where a size belongs
            } else if (c == ';') {
                state_ = state::extension;
            } else if (is_ows(c)) {
                state_ = state::size_ws;
            } else if (c == '\r') {
                state_ = state::size_lf;
            } else {
                return fail();  // "0x5", "5g"
            }
            if (!count_line_byte()) {
                return fail();
            }
            ++i;
            break;
        }
        case state::size_ws:
            // BWS is allowed only before a chunk extension (RFC 9112 7.1.1).
            if (c == ';') {
                state_ = state::extension;
            } else if (!is_ows(c)) {
                return fail();
            }
            if (!count_line_byte()) {
                return fail();
            }
            ++i;
            break;
        case state::extension:
            // Dropped, so only its bytes matter: no controls, no bare LF.
            if (c == '\r') {
                state_ = state::size_lf;
            } else if (!is_field_char(c)) {
                return fail();
            }
            if (!count_line_byte()) {
                return fail();
            }
            ++i;
            break;
        case state::size_lf:
            if (c != '\n') {
                return fail();
            }
            ++i;
            line_bytes_ = 0;
            if (remaining_ == 0) {
                state_ = state::trailer_start;
            } else {
                if (reframe) {
                    append_hex(out, remaining_);
                    out += "\r\n";
                }
                state_ = state::data;
            }
            break;
        case state::data: {
            if (!copy_data) {
                consumed = i;
                return parse_status::incomplete;
            }
            const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, in.size() - i));
            out.append(in.substr(i, n));
            remaining_ -= n;
            i += n;
            if (remaining_ == 0) {
                state_ = state::data_cr;
            }
            break;
        }
        case state::data_cr:
            if (c != '\r') {
                return fail();  // data longer than its size, or a missing CRLF
            }
            state_ = state::data_lf;
            ++i;
            break;
        case state::data_lf:
            if (c != '\n') {
                return fail();
            }
            if (reframe) {
                out += "\r\n";
            }
            state_ = state::size;
            size_digits_ = 0;
            ++i;
            break;
        case state::trailer_start:
            if (c == '\r') {
                state_ = state::end_lf;
                ++i;
                break;
            }
            state_ = state::trailer_line;
            [[fallthrough]];
        case state::trailer_line:
            if (c == '\r') {
                state_ = state::trailer_lf;
            } else if (!is_field_char(c)) {
                return fail();
            }
            if (!count_line_byte() || ++trailer_bytes_ > max_trailer_bytes) {
                return fail();
            }
            ++i;
            break;
        case state::trailer_lf:
            if (c != '\n') {
                return fail();
            }
            line_bytes_ = 0;
            state_ = state::trailer_start;
            ++i;
            break;
        case state::end_lf:
            if (c != '\n') {
                return fail();
            }
            ++i;
            if (reframe) {
                out += "0\r\n\r\n";
            }
            state_ = state::done;
            consumed = i;
            return parse_status::complete;
        case state::done:
        case state::failed:
            return fail();  // unreachable: handled before the loop
        }
    }
    consumed = in.size();
    return parse_status::incomplete;
}

// --- Targets ----------------------------------------------------------------------------------------------------

std::optional<absolute_target> parse_absolute_target(std::string_view target, target_error& err)
{
    err = target_error::none;
    auto fail = [&err](target_error e) -> std::optional<absolute_target> {
        err = e;
        return std::nullopt;
    };
    // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then "://". "host:443" (authority-form) and "/x"
    // (origin-form) are not absolute.
    std::size_t i = 0;
    if (target.empty() || !is_alpha(target[0])) {
        return fail(target_error::not_absolute);
    }
    while (i < target.size() &&
           (is_alpha(target[i]) || is_digit(target[i]) || target[i] == '+' || target[i] == '-' || target[i] == '.')) {
        ++i;
    }
    const auto scheme = target.substr(0, i);
    if (!target.substr(i).starts_with("://")) {
        if (i < target.size() && target[i] == ':' && iequals(scheme, "http")) {
            return fail(target_error::bad_authority);  // "http:/x" or "http:x"
        }
        if (i < target.size() && target[i] == ':' && iequals(scheme, "https")) {
            return fail(target_error::https_scheme);
        }
        return fail(target_error::not_absolute);
    }
    if (iequals(scheme, "https")) {
        return fail(target_error::https_scheme);
    }
    if (!iequals(scheme, "http")) {
        return fail(target_error::other_scheme);
    }
    auto rest = target.substr(i + 3);
    // No fragments (clients must not send them) and nothing a request line could not carry. The enum has no
    // better name than bad_authority for a malformed URI.
    const bool printable = std::all_of(rest.begin(), rest.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u >= 0x21 && u <= 0x7e && c != '#';
    });
    if (!printable) {
        return fail(target_error::bad_authority);
    }
    const auto authority_end = rest.find_first_of("/?");
    const auto authority = rest.substr(0, authority_end);
    const auto path_query = authority_end == std::string_view::npos ? std::string_view{} : rest.substr(authority_end);
    if (authority.find('@') != std::string_view::npos) {
        return fail(target_error::userinfo);
    }
    // No percent-encoding anywhere in the authority: a host must be compared exactly as the policy saw it.
    if (authority.find('%') != std::string_view::npos) {
        return fail(target_error::bad_authority);
    }
    absolute_target out;
    std::string_view host;
    std::string_view after_host;
    if (!authority.empty() && authority.front() == '[') {
        const auto close = authority.find(']');
        if (close == std::string_view::npos || close == 1) {
            return fail(target_error::bad_authority);
        }
        host = authority.substr(0, close + 1);
        // The literal itself is checked by the policy's host parser; here just the character set of IPv6
        // (and an embedded IPv4 tail). IPvFuture and zone ids are refused.
        const auto inner = host.substr(1, host.size() - 2);
        if (!std::all_of(inner.begin(), inner.end(), [](char c) { return hex_value(c) >= 0 || c == ':' || c == '.'; })) {
            return fail(target_error::bad_authority);
        }
        after_host = authority.substr(close + 1);
        if (!after_host.empty() && after_host.front() != ':') {
            return fail(target_error::bad_authority);
        }
    } else {
        const auto colon = authority.find(':');
        host = authority.substr(0, colon);
        after_host = colon == std::string_view::npos ? std::string_view{} : authority.substr(colon);
        if (host.empty() || !std::all_of(host.begin(), host.end(), is_reg_name_char)) {
            return fail(target_error::bad_authority);
        }
    }
    if (!after_host.empty()) {
        // ":" port with 1 to 5 digits, 1..65535. An empty port means 80 by RFC 3986, but nobody needs to send it.
        const auto port = parse_port(after_host.substr(1), {.allow_leading_zeros = true});
        if (!port) {
            return fail(target_error::bad_port);
        }
        out.port = *port;
    }
    out.host = std::string(host);
    if (path_query.empty() || path_query.front() == '?') {
        out.origin_form = "/";
    }
    out.origin_form += path_query;
    return out;
}

// --- Forwarding -------------------------------------------------------------------------------------------------

void remove_hop_by_hop(std::vector<header>& headers)
{
    static constexpr std::array<std::string_view, 9> fixed = {
        "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Proxy-Authenticate",
        "TE",         "Trailer",    "Transfer-Encoding", "Upgrade"};
    const auto named = header_tokens(headers, "Connection");
    std::erase_if(headers, [&named](const header& h) {
        if (std::any_of(fixed.begin(), fixed.end(), [&h](std::string_view f) { return iequals(h.name, f); })) {
            return true;
        }
        // A client must not be able to strip the fields the forwarder relies on (RFC 9110 7.6.1: connection
        // options never name end-to-end fields). Dropping Content-Length through "Connection: content-length"
        // would turn the body into a smuggled next request.
        if (iequals(h.name, "Content-Length") || iequals(h.name, "Host")) {
            return false;
        }
        return std::any_of(named.begin(), named.end(), [&h](const std::string& n) { return iequals(h.name, n); });
    });
}

namespace {

void set_header(std::vector<header>& headers, std::string_view name, std::string value)
{
    std::erase_if(headers, [&](const header& h) { return iequals(h.name, name); });
    headers.push_back({std::string(name), std::move(value)});
}

void append_via(std::vector<header>& headers)
{
    for (auto& h : headers) {
        if (iequals(h.name, "via")) {
            h.value += ", 1.1 egressd";
            return;
        }
    }
    headers.push_back({"Via", "1.1 egressd"});
}

}  // namespace

void remove_request_overrides(std::vector<header>& headers)
{
    static constexpr std::array<std::string_view, 5> overrides = {
        "X-Original-URL", "X-Rewrite-URL", "X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"};
    std::erase_if(headers, [](const header& h) {
        return std::any_of(overrides.begin(), overrides.end(), [&](std::string_view name) { return iequals(h.name, name); });
    });
}

std::vector<header> forwarded_request_headers(const request_head& head, const body_framing& framing,
                                              std::string_view host)
{
    auto headers = head.headers;
    remove_hop_by_hop(headers);
    // The destination is the URI's authority, never the Host header: a Host that disagrees is replaced.
    set_header(headers, "Host", std::string(host));
    append_via(headers);
    if (framing.type == body_framing::kind::content_length) {
        set_header(headers, "Content-Length", std::to_string(framing.length));
    } else if (framing.type == body_framing::kind::chunked) {
        headers.push_back({"Transfer-Encoding", "chunked"});
    }
    return headers;
}

std::vector<header> forwarded_response_headers(const response_head& head, const body_framing& framing,
                                               int client_version_minor, bool client_keep_alive)
{
    using kind = body_framing::kind;
    auto headers = head.headers;
    remove_hop_by_hop(headers);
    append_via(headers);
    if (framing.type == kind::content_length) {
        set_header(headers, "Content-Length", std::to_string(framing.length));
    } else if (framing.type != kind::none) {
        // Chunked or until-close: a Content-Length beside it would be a second, conflicting framing.
        // (none keeps it: a HEAD or 304 response's length describes the representation, not this body.)
        std::erase_if(headers, [](const header& h) { return iequals(h.name, "content-length"); });
    }
    if (framing.type == kind::chunked && client_version_minor >= 1) {
        headers.push_back({"Transfer-Encoding", "chunked"});
    }
    if (!client_keep_alive) {
        headers.push_back({"Connection", "close"});
    } else if (client_version_minor == 0) {
        headers.push_back({"Connection", "keep-alive"});
    }
    return headers;
}

std::string serialize_request_head(std::string_view method, std::string_view target,
                                   const std::vector<header>& headers)
{
    std::string out;
    out.reserve(method.size() + target.size() + 12 + headers.size() * 32);
    out += method;
    out += ' ';
    out += target;
    out += " HTTP/1.1\r\n";
    append_head_fields(out, headers);
    return out;
}

std::string serialize_response_head(int status, std::string_view reason, const std::vector<header>& headers)
{
    std::string out = "HTTP/1.1 ";
    out += std::to_string(status);
    out += ' ';
    out += reason;
    out += "\r\n";
    append_head_fields(out, headers);
    return out;
}

}  // namespace egressd::protocol::http
