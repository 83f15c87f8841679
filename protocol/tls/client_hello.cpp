#include "protocol/tls/client_hello.hpp"

#include <algorithm>
#include <array>
#include <limits>
#include <utility>

namespace egressd::protocol::tls {

namespace {

constexpr std::uint8_t content_change_cipher_spec = 20;
constexpr std::uint8_t content_handshake = 22;
constexpr std::uint8_t handshake_client_hello = 1;
constexpr std::uint8_t handshake_server_hello = 2;
constexpr std::uint8_t record_version_major = 3;
constexpr std::size_t record_header_size = 5;
// RFC 8446 5.1 (and RFC 5246 6.2.1): a plaintext record carries at most 2^14 bytes.
constexpr std::size_t max_record_payload = std::size_t{1} << 14;
constexpr std::size_t handshake_header_size = 4;
constexpr std::size_t random_size = 32;
constexpr std::size_t max_session_id = 32;
// RFC 8446 D.4: the compatibility ChangeCipherSpec record, whose one payload byte is 1.
constexpr std::size_t change_cipher_spec_size = record_header_size + 1;
// A ServerHello's type, length, legacy_version and random: enough to tell a HelloRetryRequest.
constexpr std::size_t server_hello_prefix = handshake_header_size + 2 + random_size;
// RFC 8446 4.1.3: SHA-256("HelloRetryRequest"), the random of every HelloRetryRequest.
constexpr std::string_view hello_retry_random =
    "\xcf\x21\xad\x74\xe5\x9a\x61\x11\xbe\x1d\x8c\x02\x1e\x65\xb8\x91"
    "\xc2\xa2\x11\x16\x7a\xbb\x8c\x5e\x07\x9e\x09\xe2\xc8\xa8\x33\x9c";
static_assert(hello_retry_random.size() == random_size);

constexpr std::uint16_t ext_server_name = 0;
constexpr std::uint16_t ext_alpn = 16;
constexpr std::uint16_t ext_encrypted_client_hello = 0xfe0d;
constexpr std::uint8_t name_type_host_name = 0;

constexpr std::size_t max_name = 253;
constexpr std::size_t max_label = 63;

std::uint8_t byte_at(std::string_view s, std::size_t i) { return static_cast<std::uint8_t>(s[i]); }

// Records may be cut as small as one payload byte each, which costs 5 header bytes per byte of message.
// Bounding the records too (not only the message) keeps the caller's buffer bounded.
std::size_t records_limit(std::size_t max_bytes)
{
    return max_bytes > std::numeric_limits<std::size_t>::max() / 2 ? std::numeric_limits<std::size_t>::max()
                                                                    : 2 * max_bytes;
}

enum class ccs_match : std::uint8_t { incomplete, matched, mismatched };

// A compatibility ChangeCipherSpec record at data[pos], checked byte by byte so that a prefix of it is
// incomplete and a wrong byte is known as soon as it arrives.
ccs_match change_cipher_spec_at(std::string_view data, std::size_t pos)
{
    // Type, version major, version minor (any), length 1, payload 1.
    constexpr std::array<int, change_cipher_spec_size> expected{content_change_cipher_spec, 3, -1, 0, 1, 1};
    for (std::size_t i = 0; i < expected.size(); ++i) {
        if (data.size() <= pos + i) {
            return ccs_match::incomplete;
        }
        if (expected[i] >= 0 && byte_at(data, pos + i) != expected[i]) {
            return ccs_match::mismatched;
        }
    }
    return ccs_match::matched;
}

std::size_t be16(std::string_view s, std::size_t i)
{
    return (std::size_t{byte_at(s, i)} << 8) | byte_at(s, i + 1);
}

std::size_t be24(std::string_view s, std::size_t i)
{
    return (std::size_t{byte_at(s, i)} << 16) | (std::size_t{byte_at(s, i + 1)} << 8) | byte_at(s, i + 2);
}

// A bounds-checked cursor over a complete structure: every read either succeeds or leaves the caller to
// refuse the message, so no length field can make us read past what arrived.
class reader {
public:
    explicit reader(std::string_view data) : data_(data) {}

    bool empty() const { return data_.empty(); }
    std::size_t remaining() const { return data_.size(); }

    bool u8(std::uint8_t& v)
    {
        if (data_.empty()) {
            return false;
        }
        v = byte_at(data_, 0);
        data_.remove_prefix(1);
        return true;
    }

    bool u16(std::uint16_t& v)
    {
        if (data_.size() < 2) {
            return false;
        }
        v = static_cast<std::uint16_t>(be16(data_, 0));
        data_.remove_prefix(2);
        return true;
    }

    bool bytes(std::size_t n, std::string_view& v)
    {
        if (data_.size() < n) {
            return false;
        }
        v = data_.substr(0, n);
        data_.remove_prefix(n);
        return true;
    }

    // opaque field<..2^8-1> and <..2^16-1>: a length prefix, then that many bytes.
    bool prefixed8(std::string_view& v)
    {
        std::uint8_t n = 0;
        return u8(n) && bytes(n, v);
    }

    bool prefixed16(std::string_view& v)
    {
        std::uint16_t n = 0;
        return u16(n) && bytes(n, v);
    }

private:
    std::string_view data_;
};

bool is_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// RFC 6066 3: HostName is a DNS host name in ASCII. Only LDH labels and "_" pass, so a name the server might
// cut at a NUL, or read differently because of a control byte or a U-label, never reaches the policy. Dotted
// quads pass (they are LDH): the policy, not the parser, decides that an address is no name.
std::optional<std::string> normalize_host_name(std::string_view name)
{
    if (!name.empty() && name.back() == '.') {
        name.remove_suffix(1);
    }
    if (name.empty() || name.size() > max_name) {
        return std::nullopt;
    }
    std::string out;
    out.reserve(name.size());
    std::size_t label = 0;
    for (const char raw : name) {
        const char c = lower(raw);
        if (!is_host_char(c)) {
            return std::nullopt;
        }
        if (c == '.') {
            if (label == 0) {
                return std::nullopt;
            }
            label = 0;
        } else if (++label > max_label) {
            return std::nullopt;
        }
        out.push_back(c);
    }
    // The last label: a name ending in ".." (one dot removed above) ends with an empty label.
    if (label == 0) {
        return std::nullopt;
    }
    return out;
}

// RFC 6066 3: ServerNameList server_name_list<1..2^16-1>; each ServerName is a name_type byte and, for
// host_name, HostName<1..2^16-1>. Entries of other types are read with the same 16-bit length (as OpenSSL and
// Go do) and skipped; no type may appear twice.
bool parse_server_name(std::string_view ext, client_hello& out)
{
    reader r(ext);
    std::string_view list;
    if (!r.prefixed16(list) || !r.empty() || list.empty()) {
        return false;
    }
    reader entries(list);
    std::array<bool, 256> seen{};
    while (!entries.empty()) {
        std::uint8_t type = 0;
        std::string_view name;
        if (!entries.u8(type) || !entries.prefixed16(name)) {
            return false;
        }
        if (seen[type]) {
            return false;
        }
        seen[type] = true;
        if (type == name_type_host_name) {
            auto host = normalize_host_name(name);
            if (!host) {
                return false;
            }
            out.sni = std::move(host);
        }
    }
    return true;
}

// RFC 7301 3.1: ProtocolName protocol_name_list<2..2^16-1>, each ProtocolName<1..2^8-1>.
bool parse_alpn(std::string_view ext, client_hello& out)
{
    reader r(ext);
    std::string_view list;
    if (!r.prefixed16(list) || !r.empty() || list.empty()) {
        return false;
    }
    reader names(list);
    while (!names.empty()) {
        std::string_view name;
        if (!names.prefixed8(name) || name.empty()) {
            return false;
        }
        out.alpn.emplace_back(name);
    }
    return true;
}

// The ClientHello body (after the 4-byte handshake header), which is complete here.
hello_status parse_body(std::string_view body, client_hello& out)
{
    reader r(body);
    std::string_view random;
    std::string_view session_id;
    std::string_view cipher_suites;
    std::string_view compression;
    if (!r.u16(out.legacy_version) || !r.bytes(random_size, random) || !r.prefixed8(session_id)
        || session_id.size() > max_session_id || !r.prefixed16(cipher_suites) || cipher_suites.empty()
        || cipher_suites.size() % 2 != 0 || !r.prefixed8(compression) || compression.empty()) {
        return hello_status::malformed;
    }
    // A TLS 1.2 hello may end here (RFC 5246 7.4.1.2); otherwise an extensions block fills the rest exactly.
    if (r.empty()) {
        return hello_status::complete;
    }
    std::string_view block;
    if (!r.prefixed16(block) || !r.empty()) {
        return hello_status::malformed;
    }
    reader extensions(block);
    std::vector<std::uint16_t> types;
    while (!extensions.empty()) {
        std::uint16_t type = 0;
        std::string_view ext;
        if (!extensions.u16(type) || !extensions.prefixed16(ext)) {
            return hello_status::malformed;
        }
        types.push_back(type);
        if (type == ext_server_name && !parse_server_name(ext, out)) {
            return hello_status::malformed;
        }
        if (type == ext_alpn && !parse_alpn(ext, out)) {
            return hello_status::malformed;
        }
        if (type == ext_encrypted_client_hello) {
            out.has_ech = true;
        }
    }
    // RFC 8446 4.2: at most one extension of each type. A duplicate server_name is the classic way to show a
    // filter one name and the server another.
    std::sort(types.begin(), types.end());
    if (std::adjacent_find(types.begin(), types.end()) != types.end()) {
        return hello_status::malformed;
    }
    return hello_status::complete;
}

}  // namespace

std::string_view to_string(hello_status s)
{
    switch (s) {
    case hello_status::incomplete: return "incomplete";
    case hello_status::complete: return "complete";
    case hello_status::not_tls: return "not_tls";
    case hello_status::malformed: return "malformed";
    case hello_status::too_large: return "too_large";
    }
    return "unknown";
}

hello_status parse_client_hello(std::string_view data, client_hello& out, std::size_t max_bytes)
{
    out = client_hello{};
    const std::size_t raw_limit = records_limit(max_bytes);

    // The handshake message: a view into data while it sits in one record (the usual case), a copy once it
    // spans several.
    std::string joined;
    std::string_view message;
    std::size_t message_size = 0;  // known once the 4-byte handshake header has arrived
    std::size_t pos = 0;

    // Checks run strictly in byte order and each waits (incomplete) for the bytes it needs, so a prefix of
    // the input gets either incomplete or the verdict of the whole input.
    for (;;) {
        const bool first = pos == 0;
        // A continuation record must fit under raw_limit (its payload is at least one byte).
        if (!first && pos + record_header_size + 1 > raw_limit) {
            return hello_status::too_large;
        }
        if (data.size() <= pos) {
            return hello_status::incomplete;
        }
        // The first record decides whether this is TLS at all; later ones are part of a hello already begun,
        // and anything else between its pieces (a ChangeCipherSpec, an alert, application data) is an error.
        if (byte_at(data, pos) != content_handshake) {
            return first ? hello_status::not_tls : hello_status::malformed;
        }
        if (data.size() <= pos + 1) {
            return hello_status::incomplete;
        }
        if (byte_at(data, pos + 1) != record_version_major) {
            return first ? hello_status::not_tls : hello_status::malformed;
        }
        if (first && record_header_size + 1 > raw_limit) {
            return hello_status::too_large;
        }
        if (data.size() < pos + record_header_size) {
            return hello_status::incomplete;
        }
        const std::size_t record_size = be16(data, pos + 3);
        // RFC 8446 5.1: no zero-length handshake fragments, none over 2^14.
        if (record_size == 0 || record_size > max_record_payload) {
            return hello_status::malformed;
        }
        const std::size_t record_end = pos + record_header_size + record_size;
        if (record_end > raw_limit) {
            return hello_status::too_large;
        }
        const bool record_complete = data.size() >= record_end;
        const std::string_view payload =
            data.substr(pos + record_header_size, std::min(record_size, data.size() - pos - record_header_size));

        const std::size_t before = message.size();
        if (first) {
            message = payload;
        } else {
            if (joined.empty()) {
                joined.assign(message);
            }
            joined.append(payload);
            message = joined;
        }

        if (message.empty()) {
            return hello_status::incomplete;
        }
        if (byte_at(message, 0) != handshake_client_hello) {
            return hello_status::malformed;
        }
        if (message.size() < handshake_header_size) {
            if (!record_complete) {
                return hello_status::incomplete;
            }
            pos = record_end;
            continue;
        }
        if (message_size == 0) {
            message_size = handshake_header_size + be24(message, 1);
            if (message_size > max_bytes) {
                return hello_status::too_large;
            }
        }
        // RFC 8446 5.1: the ClientHello must end at a record boundary (a key change may follow it), so a
        // record holding more than the rest of it is refused rather than parsed as something else.
        if (before + record_size > message_size) {
            return hello_status::malformed;
        }
        if (message.size() == message_size) {
            // Parsed into a local so that a malformed hello leaves out empty, never half filled.
            client_hello hello;
            const auto status = parse_body(message.substr(handshake_header_size), hello);
            if (status == hello_status::complete) {
                hello.records_size = record_end;
                out = std::move(hello);
            }
            return status;
        }
        if (!record_complete) {
            return hello_status::incomplete;
        }
        pos = record_end;
    }
}

hello_status parse_retry_client_hello(std::string_view data, client_hello& out, std::size_t max_bytes)
{
    out = client_hello{};
    std::size_t skipped = 0;
    if (!data.empty() && byte_at(data, 0) == content_change_cipher_spec) {
        switch (change_cipher_spec_at(data, 0)) {
        case ccs_match::incomplete: return hello_status::incomplete;
        case ccs_match::mismatched: return hello_status::malformed;
        case ccs_match::matched: break;
        }
        skipped = change_cipher_spec_size;
    }
    const auto status = parse_client_hello(data.substr(skipped), out, max_bytes);
    if (status == hello_status::not_tls) {
        return hello_status::malformed;
    }
    if (status == hello_status::complete) {
        out.records_size += skipped;
    }
    return status;
}

std::string_view to_string(server_hello_kind k)
{
    switch (k) {
    case server_hello_kind::incomplete: return "incomplete";
    case server_hello_kind::server_hello: return "server_hello";
    case server_hello_kind::hello_retry_request: return "hello_retry_request";
    case server_hello_kind::other: return "other";
    case server_hello_kind::malformed: return "malformed";
    }
    return "unknown";
}

server_hello_scan scan_server_hello(std::string_view data, std::size_t max_bytes)
{
    const std::size_t raw_limit = records_limit(max_bytes);
    std::size_t pos = 0;
    // Every record must end within raw_limit: a verdict comes before that much data, whatever the framing.
    while (data.size() > pos && byte_at(data, pos) == content_change_cipher_spec) {
        if (pos + change_cipher_spec_size > raw_limit) {
            return {server_hello_kind::other};
        }
        switch (change_cipher_spec_at(data, pos)) {
        case ccs_match::incomplete: return {};
        case ccs_match::mismatched: return {server_hello_kind::other};
        case ccs_match::matched: break;
        }
        pos += change_cipher_spec_size;
    }
    // Until the random shows a HelloRetryRequest, anything unexpected only means that no retry follows; once
    // it has, the retry must be exact, or the second ClientHello could be read in more than one way.
    bool retry = false;
    const auto refuse = [&] {
        return server_hello_scan{retry ? server_hello_kind::malformed : server_hello_kind::other};
    };
    std::string message;
    std::size_t message_size = 0;  // known once the random shows a retry
    for (;;) {
        if (pos + record_header_size + 1 > raw_limit) {
            return refuse();
        }
        if (data.size() <= pos) {
            return {};
        }
        if (byte_at(data, pos) != content_handshake) {
            return refuse();
        }
        if (data.size() <= pos + 1) {
            return {};
        }
        if (byte_at(data, pos + 1) != record_version_major) {
            return refuse();
        }
        if (data.size() < pos + record_header_size) {
            return {};
        }
        const std::size_t record_size = be16(data, pos + 3);
        const std::size_t record_end = pos + record_header_size + record_size;
        if (record_size == 0 || record_size > max_record_payload || record_end > raw_limit) {
            return refuse();
        }
        const bool record_complete = data.size() >= record_end;
        const std::size_t before = message.size();
        message.append(
            data.substr(pos + record_header_size, std::min(record_size, data.size() - pos - record_header_size)));
        if (message.empty()) {
            return {};
        }
        if (byte_at(message, 0) != handshake_server_hello) {
            return refuse();
        }
        if (message.size() < server_hello_prefix) {
            if (!record_complete) {
                return {};
            }
            pos = record_end;
            continue;
        }
        if (!retry) {
            if (std::string_view(message).substr(handshake_header_size + 2, random_size) != hello_retry_random) {
                return {server_hello_kind::server_hello};
            }
            retry = true;
            message_size = handshake_header_size + be24(message, 1);
            if (message_size < server_hello_prefix || message_size > max_bytes) {
                return refuse();
            }
        }
        // Nothing may share the retry's last record: the next handshake message is the server's answer to the
        // second ClientHello.
        if (before + record_size > message_size) {
            return refuse();
        }
        if (before + record_size == message_size) {
            if (!record_complete) {
                return {};
            }
            return {server_hello_kind::hello_retry_request, record_end};
        }
        if (!record_complete) {
            return {};
        }
        pos = record_end;
    }
}

}  // namespace egressd::protocol::tls
