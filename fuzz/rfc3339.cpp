// RFC 3339 times (expires_at, grant ends, history filters). Invariant: whatever parses formats to the canonical
// UTC form, which parses back to the same instant.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "config/rfc3339.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto parsed = egressd::config::parse_rfc3339(text);
    if (!parsed) {
        return 0;
    }
    auto canonical = egressd::config::format_rfc3339(*parsed);
    auto again = egressd::config::parse_rfc3339(canonical);
    if (!again || *again != *parsed) {
        std::abort();
    }
    return 0;
}
