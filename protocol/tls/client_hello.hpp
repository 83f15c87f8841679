#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::protocol::tls {

// Strict parsing of the first thing a TLS client sends (RFC 8446 4.1.2, RFC 5246 7.4.1.2), so that a CONNECT
// tunnel's SNI can be checked before any byte is forwarded. Pure code: no I/O, no OpenSSL. The session peeks
// the client's first bytes, calls parse_client_hello on all of them after each read, and forwards them
// unchanged once the policy has decided. A TLS 1.3 server may answer with a HelloRetryRequest and so read a
// second ClientHello: scan_server_hello tells it from the server's bytes, and parse_retry_client_hello reads
// the second hello, so that its name is checked too. Anything this parser might read differently from the
// server behind the tunnel is refused rather than guessed: a name we check must be the name the server sees.

enum class hello_status : std::uint8_t {
    incomplete,  // a prefix of a ClientHello so far: read more (within the caller's deadline)
    complete,    // the whole ClientHello handshake message has arrived and parsed; out is filled
    not_tls,     // the first record is not a TLS handshake record: first byte != 0x16 or version major != 3
    malformed,   // a TLS handshake record, but not a well-formed ClientHello (see parse_client_hello)
    too_large,   // the ClientHello (or the records carrying it) would exceed max_bytes (see parse_client_hello)
};
std::string_view to_string(hello_status s);

struct client_hello {
    // The host_name entry of server_name (extension 0): lower-cased, one trailing dot removed, LDH labels or
    // "_" only. nullopt when there is no server_name extension or it has no host_name entry. An IPv4 dotted
    // quad is reported as it came (RFC 6066 forbids it, but the policy decides what to make of it).
    std::optional<std::string> sni;
    // encrypted_client_hello (0xfe0d) is present: sni is then the outer, public name, which is what the
    // server's TLS front end routes on and what the policy checks.
    bool has_ech = false;
    std::uint16_t legacy_version = 0;  // ClientHello.legacy_version (0x0303 from TLS 1.2 and 1.3 clients)
    std::vector<std::string> alpn;     // application_layer_protocol_negotiation (16) names, in order
    // Bytes of data taken by the records that carry the ClientHello (a leading ChangeCipherSpec included, see
    // parse_retry_client_hello): what a caller forwards while it holds back whatever the client sent after it.
    std::size_t records_size = 0;
};

// data: every byte received on the tunnel so far, from the first one. Returns incomplete until the whole
// ClientHello handshake message is there, which may span several handshake records (content type 22, at most
// 2^14 payload bytes each) and any number of reads; complete with out filled. out is reset on every call and
// filled only on complete. Bytes after the ClientHello's last record (early data) are not looked at.
//
// not_tls: decided from the first two bytes (first byte != 0x16, or record version major != 3).
// malformed: a later record that is not a handshake record with version major 3; a record payload of 0 or
// more than 2^14 bytes; a handshake type other than ClientHello (1); the ClientHello not ending at a record
// boundary (RFC 8446 5.1); any length that overruns or leaves bytes over (session id, cipher suites,
// compression methods, extensions block, each extension, server_name list and entries, ALPN list); two
// extensions of one type (RFC 8446 4.2); two server_name entries of one type (RFC 6066 3); a host_name that
// is empty, has an empty label (after one trailing dot is removed), a label over 63 or a name over 253
// bytes, or any byte other than ASCII letters, digits, '-', '_' and '.' (so NUL, controls, spaces, non-ASCII
// and IPv6 literals are all malformed).
// too_large: the handshake message (4-byte header included) is longer than max_bytes, or the records
// carrying it would end beyond 2 * max_bytes bytes of data (a hello cut into tiny records).
//
// Checks run in a fixed order on whatever has arrived, so a bad first record fails at once and a prefix of
// the input is always either incomplete or given the same verdict as the whole input. incomplete is only
// returned while data.size() < 2 * max_bytes (max_bytes > 0): a caller that has buffered that much always has
// a verdict, whatever the framing.
hello_status parse_client_hello(std::string_view data, client_hello& out, std::size_t max_bytes = 16 * 1024);

// The ClientHello a client sends after a HelloRetryRequest (RFC 8446 4.1.4): data is every client byte after the
// first ClientHello's records. A TLS 1.3 client in middlebox compatibility mode sends one ChangeCipherSpec
// record (RFC 8446 D.4: type 20, version major 3, payload the single byte 1) first; it is skipped and counted
// in out.records_size. Otherwise as parse_client_hello, except that anything other than a ClientHello (an
// alert, application data, a second or malformed ChangeCipherSpec, bytes that are not TLS) is malformed: the
// server reads whatever comes here as its second ClientHello.
hello_status parse_retry_client_hello(std::string_view data, client_hello& out, std::size_t max_bytes = 16 * 1024);

// What the server's first handshake message after a ClientHello is, as far as a HelloRetryRequest matters.
enum class server_hello_kind : std::uint8_t {
    incomplete,           // read more
    server_hello,         // a ServerHello that is not a HelloRetryRequest: the handshake goes on without a retry
    hello_retry_request,  // a ServerHello whose random is the RFC 8446 4.1.3 constant: a second ClientHello comes
    other,                // not a TLS handshake (another protocol, an alert, TLS framing a TLS stack would refuse)
    malformed,            // a HelloRetryRequest that is cut short, too large, or shares its last record
};
std::string_view to_string(server_hello_kind k);

struct server_hello_scan {
    server_hello_kind kind = server_hello_kind::incomplete;
    // hello_retry_request: the bytes of data up to the end of the record that ends it (leading ChangeCipherSpec
    // records included), so that the next scan starts right after it.
    std::size_t records_size = 0;
};

// data: every server byte since the ClientHello was forwarded. Leading ChangeCipherSpec records are skipped (a
// TLS 1.3 server in compatibility mode sends one right after its HelloRetryRequest, so the scan for the
// ServerHello that answers the second ClientHello may begin with one). Only the first handshake message is
// looked at, and of a ServerHello only its first 38 bytes unless it is a HelloRetryRequest, which must arrive
// whole (at most max_bytes) and end at a record boundary. Like parse_client_hello, a prefix of the input is
// incomplete or has the verdict of the whole input, and a verdict comes before 2 * max_bytes bytes of data.
server_hello_scan scan_server_hello(std::string_view data, std::size_t max_bytes = 16 * 1024);

}  // namespace egressd::protocol::tls
