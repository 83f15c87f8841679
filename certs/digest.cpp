#include "certs/digest.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <stdexcept>

namespace egressd::certs {

std::array<unsigned char, 32> sha256(std::string_view data)
{
    std::array<unsigned char, 32> out{};
    unsigned int length = 0;
    if (EVP_Digest(data.data(), data.size(), out.data(), &length, EVP_sha256(), nullptr) != 1 || length != out.size()) {
        throw std::runtime_error("OpenSSL SHA-256 failed");
    }
    return out;
}

std::string hex(std::span<const unsigned char> bytes)
{
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (unsigned char b : bytes) {
        out += digits[b >> 4];
        out += digits[b & 0xf];
    }
    return out;
}

bool same_digest(const std::array<unsigned char, 32>& a, const std::array<unsigned char, 32>& b)
{
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace egressd::certs
