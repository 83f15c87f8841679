#include "protocol/utf8.hpp"

namespace egressd::protocol {

std::size_t utf8_sequence(std::string_view text, std::size_t i)
{
    auto at = [&](std::size_t k) { return i + k < text.size() ? static_cast<unsigned char>(text[i + k]) : 0u; };
    auto continuation = [&](std::size_t k, unsigned low = 0x80, unsigned high = 0xbf) {
        return at(k) >= low && at(k) <= high;
    };
    unsigned lead = at(0);
    if (lead < 0x80) {
        return 1;
    }
    if (lead >= 0xc2 && lead <= 0xdf) {
        return continuation(1) ? 2 : 0;
    }
    if (lead >= 0xe0 && lead <= 0xef) {
        unsigned low = lead == 0xe0 ? 0xa0 : 0x80;
        unsigned high = lead == 0xed ? 0x9f : 0xbf;
        return continuation(1, low, high) && continuation(2) ? 3 : 0;
    }
    if (lead >= 0xf0 && lead <= 0xf4) {
        unsigned low = lead == 0xf0 ? 0x90 : 0x80;
        unsigned high = lead == 0xf4 ? 0x8f : 0xbf;
        return continuation(1, low, high) && continuation(2) && continuation(3) ? 4 : 0;
    }
    return 0;
}

}  // namespace egressd::protocol
