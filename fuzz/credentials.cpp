// The proxy-auth credentials file, the Basic Proxy-Authorization value and the strict base64 under both.
// Invariants:
// - base64: whatever decodes encodes back to exactly the same text (one accepted encoding per byte string);
// - Basic: a parsed user and password, encoded again, parse to the same pair; the user is never empty and
//   carries no control character;
// - the file: every error names a line of the text; a loaded store holds only valid user names that the text
//   starts a line with; for an entry with a "#password <text>" comment line in the input, verify() accepts
//   exactly when PBKDF2 of that text with the entry's salt and iterations is the entry's hash, and never
//   accepts the password with a byte added.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/invariant.hpp"
#include "certs/credentials.hpp"

namespace {

using egressd::fuzz::require;

namespace certs = egressd::certs;

// PBKDF2 is deliberately slow: verify only entries this cheap, at most this many per input.
constexpr unsigned max_verified_iterations = 200'000;
constexpr int max_verifications = 1;

std::vector<std::string_view> split(std::string_view text, char separator)
{
    std::vector<std::string_view> parts;
    for (std::size_t start = 0;;) {
        auto end = text.find(separator, start);
        parts.push_back(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
        if (end == std::string_view::npos) {
            return parts;
        }
        start = end + 1;
    }
}

// A line as the file format reads it: without surrounding spaces and tabs and a trailing CR.
std::string_view trimmed(std::string_view line)
{
    if (line.ends_with('\r')) {
        line.remove_suffix(1);
    }
    auto first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos) {
        return {};
    }
    auto last = line.find_last_not_of(" \t");
    return line.substr(first, last - first + 1);
}

void check_base64(std::string_view text)
{
    if (auto bytes = certs::detail::base64_decode(text)) {
        require(certs::detail::base64_encode(*bytes) == text);
    }
}

void check_basic(std::string_view text)
{
    auto parsed = certs::parse_basic_authorization(text);
    if (!parsed) {
        return;
    }
    const auto& [user, password] = *parsed;
    require(!user.empty() && user.find(':') == std::string::npos);
    for (char c : user) {
        require(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f);
    }
    auto again = certs::parse_basic_authorization("Basic " + certs::detail::base64_encode(user + ":" + password));
    require(again && *again == *parsed);
}

// The entry's own hash check, done here from the text: salt and hash decoded, PBKDF2 run.
bool matches(std::string_view entry, std::string_view password)
{
    auto fields = split(entry, '$');
    if (fields.size() != 5) {
        return false;
    }
    auto salt = certs::detail::base64_decode(fields[3]);
    auto hash = certs::detail::base64_decode(fields[4]);
    unsigned iterations = static_cast<unsigned>(std::strtoul(std::string(fields[2]).c_str(), nullptr, 10));
    std::array<unsigned char, certs::credential_store::hash_bytes> out{};
    require(salt && hash && certs::detail::pbkdf2_sha256(password, *salt, iterations, out));
    return std::string_view(reinterpret_cast<const char*>(out.data()), out.size()) == *hash;
}

// Whether this entry and password have not been verified yet in this process: mutations mostly leave both
// alone, and each check costs PBKDF2 runs of a tenth of a second or more.
bool first_time(std::string_view entry, std::string_view password)
{
    static std::set<std::string> seen;
    if (seen.size() >= 100'000) {
        seen.clear();
    }
    return seen.insert(std::string(entry) + '\n' + std::string(password)).second;
}

void check_file(std::string_view text)
{
    auto lines = split(text, '\n');
    auto [store, errors] = certs::credential_store::parse(text);
    for (const auto& e : errors) {
        require(e.line >= 1 && e.line <= lines.size() && !e.message.empty());
    }
    require(store.has_value() == errors.empty());
    if (!store) {
        return;
    }
    std::size_t entries = 0;
    std::string password;
    bool has_password = false;
    int verified = 0;
    for (auto raw : lines) {
        auto line = trimmed(raw);
        if (line.starts_with("#password ")) {
            password = line.substr(10);
            has_password = true;
            continue;
        }
        if (line.empty() || line.starts_with('#')) {
            continue;
        }
        ++entries;
        auto colon = line.find(':');
        require(colon != std::string_view::npos);
        auto user = line.substr(0, colon);
        require(certs::detail::valid_user_name(user) && store->has_user(user));
        auto fields = split(line.substr(colon + 1), '$');
        require(fields.size() == 5);
        auto iterations = std::strtoul(std::string(fields[2]).c_str(), nullptr, 10);
        if (has_password && iterations <= max_verified_iterations && verified < max_verifications &&
            first_time(line, password)) {
            ++verified;
            bool accepted = store->verify(user, password);
            require(accepted == matches(line.substr(colon + 1), password));
            if (accepted) {
                require(!store->verify(user, password + "x"));
            }
        }
    }
    // Each entry line is one user: a user written twice is an error, so a store never has fewer.
    require(store->size() == entries);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    std::string_view text(reinterpret_cast<const char*>(data), size);
    check_base64(text);
    check_basic(text);
    check_file(text);
    return 0;
}
