#pragma once

#include "policy/address.hpp"

#include <cstdint>
#include <optional>
#include <string_view>

namespace egressd::protocol::proxy_protocol {

// The PROXY protocol, versions 1 (text) and 2 (binary), as HAProxy's "The PROXY protocol" specifies it: the
// header a load balancer in front of egressd prepends to a connection to say whom it is relaying. Pure code, no
// I/O: the session reads bytes and calls parse until it stops answering incomplete.
//
// Strict, because the header decides which client the policy sees: anything the spec does not allow is
// malformed, never repaired. The spec asks receivers to abort "as soon as possible", so every byte is checked as
// it arrives: a prefix of any input is either incomplete or gets the same answer as the whole input. (One
// imprecision: a v1 line whose fields are all still legal but which can no longer end within max_v1_size bytes,
// say TCP6 with two 45-character addresses, is refused only at its 107th byte.)

enum class status : std::uint8_t {
    incomplete,  // need more bytes; those so far are a valid prefix of a v1 or v2 header
    complete,    // out is filled
    not_proxy,   // the bytes cannot be a PROXY header (they diverge from both "PROXY " and the v2 signature)
    malformed,   // they start like a PROXY header but break the spec
};
std::string_view to_string(status s);

struct header {
    int version = 0;  // 1 or 2
    // v2 LOCAL, v2 PROXY with the UNSPEC family, or v1 "UNKNOWN": no address is announced, and the
    // connection's own addresses apply (typically a load balancer's health check).
    bool local = false;
    std::optional<policy::address> source;       // set exactly when !local
    std::optional<policy::address> destination;  // set exactly when !local
    std::uint16_t source_port = 0;
    std::uint16_t destination_port = 0;
    std::size_t size = 0;  // bytes of the header, to strip from the stream; the rest is the client's payload
};

// Limits. v1: the spec's longest line ("PROXY UNKNOWN" with two full IPv6 addresses and ports), CRLF
// included. v2: our own bound on the address length field (addresses plus TLVs), so a sender cannot make us
// buffer 64 KiB before we decide; real senders' TLVs (ALPN, authority, unique id, SSL) fit easily.
inline constexpr std::size_t max_v1_size = 107;
inline constexpr std::size_t max_v2_length = 1024;
inline constexpr std::size_t v2_fixed_size = 16;

// Parses a header at the start of data, the first bytes of a connection. out is reset on every call and filled
// only on complete; then out.size bytes belong to the header and everything after it is the client's.
//
// v1: "PROXY TCP4 <src> <dst> <sport> <dport>\r\n" (TCP6 likewise), addresses strictly canonical in the
// announced family (policy::address::parse_v4 / parse_v6), ports 0-65535 without leading zeros, single
// spaces, at most max_v1_size bytes. "PROXY UNKNOWN\r\n", or UNKNOWN followed by a space and printable ASCII,
// is local: the spec says the rest of the line is ignored.
// v2: version 2; command LOCAL (the family is ignored, as the spec says, but must be one of the defined
// values) or PROXY with TCP over IPv4 or IPv6, or UNSPEC (local). UDP and UNIX stream/datagram are refused
// (egressd relays TCP only). The address block must fit in the length; the TLVs after it must tile the rest
// exactly, and a CRC32C TLV, if present, must be 4 bytes and match.
status parse(std::string_view data, header& out);

}  // namespace egressd::protocol::proxy_protocol
