// The scan of the server's first handshake message for a HelloRetryRequest (which decides whether egressd must
// check a second ClientHello). Invariants: every prefix is incomplete or gets the whole input's verdict; a
// verdict comes before 2 * max_bytes bytes; a HelloRetryRequest's records alone give the same verdict and size,
// and any bytes after them (the server's next records) change nothing.
#include "fuzz/invariant.hpp"
#include "protocol/tls/client_hello.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using egressd::fuzz::require;

namespace tls = egressd::protocol::tls;

constexpr std::size_t max_bytes = 2048;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size)
{
    std::string_view data(reinterpret_cast<const char*>(bytes), size);
    auto whole = tls::scan_server_hello(data, max_bytes);
    require(whole.kind != tls::server_hello_kind::incomplete || data.size() < 2 * max_bytes);
    bool retry = whole.kind == tls::server_hello_kind::hello_retry_request;
    std::size_t end = retry ? whole.records_size : data.size();
    require(end <= data.size());
    std::size_t step = end <= 2048 ? 1 : end / 1024;
    for (std::size_t n = 0; n < end; n += step) {
        auto part = tls::scan_server_hello(data.substr(0, n), max_bytes);
        require(part.kind == tls::server_hello_kind::incomplete || (part.kind == whole.kind && !retry));
    }
    if (!retry) {
        return 0;
    }
    std::string_view records = data.substr(0, whole.records_size);
    auto exact = tls::scan_server_hello(records, max_bytes);
    require(exact.kind == whole.kind && exact.records_size == whole.records_size);
    std::string followed = std::string(records) + std::string("\x17\x03\x03\x00\x01\x00", 6);
    auto more = tls::scan_server_hello(followed, max_bytes);
    require(more.kind == whole.kind && more.records_size == whole.records_size);
    return 0;
}
