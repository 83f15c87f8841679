// The ClientHello parser (and the parser of the second ClientHello after a HelloRetryRequest). Invariants:
// every prefix of the input (every split of the records into reads) is incomplete or gets the whole input's
// verdict; a complete hello gives the same result from exactly its records and from the same handshake message
// cut into records of another size (the first byte picks it); after a ChangeCipherSpec the retry parser agrees;
// an SNI, when found, is one the strict host grammar accepts as it stands.
#include "fuzz/invariant.hpp"
#include "policy/domain.hpp"
#include "protocol/tls/client_hello.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace {

using egressd::fuzz::require;

namespace tls = egressd::protocol::tls;

// Small enough that the fuzzer reaches too_large.
constexpr std::size_t max_bytes = 2048;

bool same_hello(const tls::client_hello& a, const tls::client_hello& b)
{
    return a.sni == b.sni && a.has_ech == b.has_ech && a.legacy_version == b.legacy_version && a.alpn == b.alpn;
}

using parser = tls::hello_status (*)(std::string_view, tls::client_hello&, std::size_t);

void check_prefixes(parser parse, std::string_view data, tls::hello_status whole, std::size_t end)
{
    std::size_t step = end <= 2048 ? 1 : end / 1024;
    for (std::size_t n = 0; n < end; n += step) {
        tls::client_hello part;
        auto status = parse(data.substr(0, n), part, max_bytes);
        if (whole == tls::hello_status::complete) {
            require(status == tls::hello_status::incomplete);
        } else {
            require(status == tls::hello_status::incomplete || status == whole);
        }
    }
}

// The handshake bytes carried by the records of a complete hello (whose framing the parser has checked).
std::string handshake_of(std::string_view records)
{
    std::string message;
    while (records.size() >= 5) {
        std::size_t length = (std::size_t{static_cast<unsigned char>(records[3])} << 8) |
                             static_cast<unsigned char>(records[4]);
        message.append(records.substr(5, length));
        records.remove_prefix(std::min(records.size(), 5 + length));
    }
    return message;
}

std::string in_records(std::string_view message, std::size_t record_size)
{
    std::string out;
    for (std::size_t pos = 0; pos < message.size(); pos += record_size) {
        std::string_view piece = message.substr(pos, record_size);
        out += '\x16';
        out += '\x03';
        out += '\x01';
        out += static_cast<char>(piece.size() >> 8);
        out += static_cast<char>(piece.size() & 0xff);
        out.append(piece);
    }
    return out;
}

void check_sni(const std::optional<std::string>& sni)
{
    if (!sni) {
        return;
    }
    auto host = egressd::policy::host::parse(*sni);
    require(host.value.has_value());
    if (const auto* name = host.value->name()) {
        require(*name == *sni);
    } else {
        require(host.value->literal()->is_v4() && host.value->to_string() == *sni);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size)
{
    if (size == 0) {
        return 0;
    }
    std::size_t record_size = std::size_t{bytes[0]} * 64 + 64;
    std::string_view data(reinterpret_cast<const char*>(bytes) + 1, size - 1);

    tls::client_hello hello;
    auto status = tls::parse_client_hello(data, hello, max_bytes);
    require(status != tls::hello_status::incomplete || data.size() < 2 * max_bytes);
    check_prefixes(tls::parse_client_hello, data, status,
                   status == tls::hello_status::complete ? hello.records_size : data.size());

    tls::client_hello retry;
    auto retry_status = tls::parse_retry_client_hello(data, retry, max_bytes);
    check_prefixes(tls::parse_retry_client_hello, data, retry_status,
                   retry_status == tls::hello_status::complete ? retry.records_size : data.size());
    if (retry_status == tls::hello_status::complete) {
        check_sni(retry.sni);
        require(retry.records_size <= data.size());
    }
    if (status != tls::hello_status::complete) {
        return 0;
    }
    require(retry_status == tls::hello_status::complete && same_hello(retry, hello));
    require(retry.records_size == hello.records_size);
    require(hello.records_size <= data.size());
    check_sni(hello.sni);

    std::string_view records = data.substr(0, hello.records_size);
    tls::client_hello exact;
    require(tls::parse_client_hello(records, exact, max_bytes) == tls::hello_status::complete);
    require(same_hello(exact, hello) && exact.records_size == hello.records_size);

    std::string reframed = in_records(handshake_of(records), record_size);
    tls::client_hello other;
    require(tls::parse_client_hello(reframed, other, max_bytes) == tls::hello_status::complete);
    require(same_hello(other, hello) && other.records_size == reframed.size());

    // A compatibility-mode client's second hello: one ChangeCipherSpec record first.
    std::string after_ccs = std::string("\x14\x03\x03\x00\x01\x01", 6) + std::string(records);
    tls::client_hello second;
    require(tls::parse_retry_client_hello(after_ccs, second, max_bytes) == tls::hello_status::complete);
    require(same_hello(second, hello) && second.records_size == after_ccs.size());
    return 0;
}
