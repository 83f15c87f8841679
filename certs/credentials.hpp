#pragma once

#include <array>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace egressd::certs {

// Proxy authentication (Proxy-Authorization: Basic) against a credentials file. Each line is
//
//     user:$pbkdf2-sha256$<iterations>$<salt base64>$<hash base64>
//
// hash = PBKDF2-HMAC-SHA256(password, salt, iterations), 32 bytes; salt at least 16 bytes; iterations from
// 100000 to 10000000 (new entries: 600000). Base64 is RFC 4648 section 4, standard alphabet, '=' padding
// required, nothing else allowed (no whitespace, no line breaks). Lines may carry surrounding spaces or tabs
// and a trailing CR; blank lines and lines whose first non-blank character is '#' are skipped.
// Users are 1-64 characters of A-Z a-z 0-9 . _ @ -: they become the client identity in the policy and
// appear in logs, so nothing that could confuse either is accepted.

struct credential_error {
    std::size_t line;  // 1-based; 0 when the file itself could not be read
    std::string message;
};

// Immutable once built. Thread contract: verify() and size() are const and may be called from any number of
// threads at once. verify() costs one full PBKDF2 run (about 0.2 s at 600000 iterations on one core of
// the build machine): call it off the event loop, and cache or rate-limit as the caller sees fit.
class credential_store {
public:
    static constexpr unsigned min_iterations = 100000;
    static constexpr unsigned max_iterations = 10000000;
    static constexpr unsigned default_iterations = 600000;
    static constexpr std::size_t min_salt_bytes = 16;
    static constexpr std::size_t hash_bytes = 32;
    static constexpr std::size_t max_user_length = 64;

    // Throw nothing. Every error is returned (one per mistake, each with its line and what was expected);
    // when there is any error the store is nullopt: nothing is partly loaded. A file with no entries gives an
    // empty store (size() == 0) in which verify() is always false.
    static std::pair<std::optional<credential_store>, std::vector<credential_error>> load(
        const std::filesystem::path& file);
    static std::pair<std::optional<credential_store>, std::vector<credential_error>> parse(std::string_view text);

    // True only for a known user whose password matches (compared with CRYPTO_memcmp). An unknown user
    // costs the same PBKDF2 work as a known one: a dummy entry is verified instead, whose iteration count is
    // the one most entries of the file use (the higher on a tie; 600000 for an empty store). Any OpenSSL
    // failure is false.
    bool verify(std::string_view user, std::string_view password) const noexcept;

    std::size_t size() const noexcept { return entries_.size(); }
    // Whether the file names this user: an identity proven against an earlier store is revoked when its user
    // is gone from a reloaded one.
    bool has_user(std::string_view user) const noexcept { return entries_.find(user) != entries_.end(); }

    // A new line for a credentials file, without a line break: a random 16-byte salt (RAND_bytes) and the
    // hash. Start-up/tooling code, so it throws: std::invalid_argument for a user name parse() would refuse
    // or iterations outside [min_iterations, max_iterations]; std::runtime_error when OpenSSL fails.
    static std::string make_entry(std::string_view user, std::string_view password,
                                  unsigned iterations = default_iterations);

private:
    struct entry {
        unsigned iterations = default_iterations;
        std::string salt;  // raw bytes
        std::array<unsigned char, hash_bytes> hash{};
    };

    credential_store() = default;

    std::map<std::string, entry, std::less<>> entries_;
    entry dummy_;
};

// "Basic <base64(user:password)>" -> {user, password}. The scheme is case-insensitive and followed by one or
// more spaces; spaces and tabs around the whole value are ignored. nullopt for anything else: another
// scheme, no credentials, base64 that is not strict RFC 4648 (see above), no colon, an empty user, or a
// control character (0x00-0x1f, 0x7f) in the user (RFC 7617 section 2 forbids them; the user may reach the
// logs). The user is returned as sent, whatever the store would accept; the password is everything after
// the first colon, as bytes (it may be empty and may contain colons and control characters).
std::optional<std::pair<std::string, std::string>> parse_basic_authorization(std::string_view header_value);

namespace detail {

// Exposed for tests.
// PBKDF2-HMAC-SHA256 (RFC 8018) through OpenSSL's PKCS5_PBKDF2_HMAC; out.size() is dkLen. False when OpenSSL
// fails or a length does not fit an int; out is then zeroed.
bool pbkdf2_sha256(std::string_view password, std::string_view salt, unsigned iterations,
                   std::span<unsigned char> out) noexcept;

// RFC 4648 section 4 with '=' padding.
std::string base64_encode(std::string_view bytes);
// Strict inverse of base64_encode: length a multiple of 4, standard alphabet only, 0-2 '=' only at the end,
// unused bits of the last character zero (so every byte string has exactly one accepted encoding).
std::optional<std::string> base64_decode(std::string_view text);

// 1-64 characters of A-Z a-z 0-9 . _ @ -
bool valid_user_name(std::string_view user) noexcept;

}  // namespace detail

}  // namespace egressd::certs
