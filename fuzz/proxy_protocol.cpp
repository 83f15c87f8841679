// PROXY protocol v1 and v2 headers. Invariants: every prefix is incomplete or gets the whole input's verdict
// (the session peeks and parses again after each read); an accepted header says the same from exactly its own
// bytes and with anything after it; its addresses and ports, written out again as v1 and as v2, parse back to
// the same client; a v1 line stays within max_v1_size.
#include "fuzz/invariant.hpp"
#include "protocol/proxy_protocol/proxy_protocol.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using egressd::fuzz::require;

namespace pp = egressd::protocol::proxy_protocol;

bool same_client(const pp::header& a, const pp::header& b)
{
    return a.local == b.local && a.source == b.source && a.destination == b.destination &&
           a.source_port == b.source_port && a.destination_port == b.destination_port;
}

std::string as_v1(const pp::header& h)
{
    if (h.local) {
        return "PROXY UNKNOWN\r\n";
    }
    return std::string("PROXY ") + (h.source->is_v4() ? "TCP4 " : "TCP6 ") + h.source->to_string() + " " +
           h.destination->to_string() + " " + std::to_string(h.source_port) + " " +
           std::to_string(h.destination_port) + "\r\n";
}

void append_be16(std::string& out, std::uint16_t value)
{
    out += static_cast<char>(value >> 8);
    out += static_cast<char>(value & 0xff);
}

void append_address(std::string& out, const egressd::policy::address& a)
{
    const auto& raw = a.bytes();
    out.append(reinterpret_cast<const char*>(raw.data()), a.is_v4() ? 4 : 16);
}

std::string as_v2(const pp::header& h)
{
    std::string out("\r\n\r\n\0\r\nQUIT\n", 12);
    if (h.local) {
        out += '\x20';
        out += '\x00';
        append_be16(out, 0);
        return out;
    }
    bool v4 = h.source->is_v4();
    out += '\x21';
    out += v4 ? '\x11' : '\x21';
    append_be16(out, v4 ? 12 : 36);
    append_address(out, *h.source);
    append_address(out, *h.destination);
    append_be16(out, h.source_port);
    append_be16(out, h.destination_port);
    return out;
}

void check_round_trip(const std::string& encoded, const pp::header& original)
{
    pp::header again;
    require(pp::parse(encoded, again) == pp::status::complete);
    require(again.size == encoded.size() && same_client(again, original));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size)
{
    std::string_view data(reinterpret_cast<const char*>(bytes), size);
    pp::header header;
    auto status = pp::parse(data, header);
    std::size_t end = status == pp::status::complete ? header.size : data.size();
    require(end <= data.size());
    for (std::size_t n = 0; n < end; ++n) {
        pp::header part;
        auto verdict = pp::parse(data.substr(0, n), part);
        require(verdict == pp::status::incomplete || (verdict == status && status != pp::status::complete));
    }
    require(status != pp::status::incomplete || data.size() < pp::v2_fixed_size + pp::max_v2_length);
    if (status != pp::status::complete) {
        return 0;
    }
    require(header.version == 1 || header.version == 2);
    require(header.version != 1 || header.size <= pp::max_v1_size);
    require(header.local != header.source.has_value() && header.source.has_value() == header.destination.has_value());
    if (header.source) {
        require(header.source->fam() == header.destination->fam());
    }
    pp::header exact;
    require(pp::parse(data.substr(0, header.size), exact) == pp::status::complete);
    require(exact.size == header.size && exact.version == header.version && same_client(exact, header));
    pp::header followed;
    require(pp::parse(std::string(data.substr(0, header.size)) + "GET / HTTP/1.1\r\n", followed) ==
          pp::status::complete);
    require(followed.size == header.size && same_client(followed, header));
    check_round_trip(as_v1(header), header);
    check_round_trip(as_v2(header), header);
    return 0;
}
