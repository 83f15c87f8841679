#pragma once

#include <array>
#include <string_view>

namespace egressd::certs {

// SHA-256 of data (OpenSSL EVP). Used to key caches by secrets without keeping the secrets.
std::array<unsigned char, 32> sha256(std::string_view data);

}  // namespace egressd::certs
