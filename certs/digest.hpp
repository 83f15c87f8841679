#pragma once

#include <array>
#include <span>
#include <string>
#include <string_view>

namespace egressd::certs {

// SHA-256 of data (OpenSSL EVP). Used to key caches by secrets without keeping the secrets.
std::array<unsigned char, 32> sha256(std::string_view data);

// Equal digests, in time that does not depend on where they differ (CRYPTO_memcmp).
bool same_digest(const std::array<unsigned char, 32>& a, const std::array<unsigned char, 32>& b);

// Lower-case hex of bytes: digests, tokens, signatures.
std::string hex(std::span<const unsigned char> bytes);

}  // namespace egressd::certs
