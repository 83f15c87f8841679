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
// unchanged once the policy has decided. Anything this parser might read differently from the server behind
// the tunnel is refused rather than guessed: a name we check must be the name the server sees.

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

}  // namespace egressd::protocol::tls
