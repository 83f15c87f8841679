#include "certs/credentials.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <system_error>

namespace egressd::certs {
namespace {

constexpr std::string_view scheme_name = "pbkdf2-sha256";
constexpr std::string_view line_form = "user:$pbkdf2-sha256$<iterations>$<salt base64>$<hash base64>";
constexpr std::string_view user_rule = "1-64 characters of A-Z a-z 0-9 . _ @ -";

constexpr std::string_view base64_alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// 0-63 for an alphabet character, -1 for anything else.
int base64_value(char c) noexcept
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

struct file_closer {
    void operator()(std::FILE* f) const noexcept { std::fclose(f); }
};

bool is_blank(char c) noexcept { return c == ' ' || c == '\t'; }

std::string_view trim_blanks(std::string_view s) noexcept
{
    while (!s.empty() && is_blank(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && is_blank(s.back())) {
        s.remove_suffix(1);
    }
    return s;
}

// Text from the file, quoted for a message: printable ASCII as is, everything else as \xNN, and cut short
// so that a pasted hash or a binary file does not flood the terminal.
std::string quoted(std::string_view s)
{
    constexpr std::size_t limit = 40;
    static constexpr char hex[] = "0123456789abcdef";
    std::string out = "\"";
    for (std::size_t i = 0; i < s.size() && i < limit; ++i) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            out += static_cast<char>(c);
        } else if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 0x0f];
        }
    }
    if (s.size() > limit) {
        out += "...";
    }
    out += '"';
    return out;
}

// Splits s at every sep.
std::vector<std::string_view> split(std::string_view s, char sep)
{
    std::vector<std::string_view> parts;
    std::size_t start = 0;
    while (true) {
        auto pos = s.find(sep, start);
        if (pos == std::string_view::npos) {
            parts.push_back(s.substr(start));
            return parts;
        }
        parts.push_back(s.substr(start, pos - start));
        start = pos + 1;
    }
}

struct parsed_line {
    std::string user;
    unsigned iterations = 0;
    std::string salt;
    std::string hash;
};

// One non-blank, non-comment line. Each independent mistake adds one error; the result is only used when
// none was added.
parsed_line parse_line(std::string_view line, std::size_t number, std::vector<credential_error>& errors)
{
    parsed_line out;
    auto fail = [&](std::string message) { errors.push_back({number, std::move(message)}); };

    auto colon = line.find(':');
    if (colon == std::string_view::npos) {
        fail("expected " + std::string(line_form) + ": no ':' after the user name");
        return out;
    }
    auto user = line.substr(0, colon);
    auto rest = line.substr(colon + 1);
    if (!detail::valid_user_name(user)) {
        fail("user name " + quoted(user) + " is not valid: expected " + std::string(user_rule));
    }
    out.user = std::string(user);

    if (rest.empty() || rest.front() != '$') {
        fail("expected " + std::string(line_form) + ": the hash after the user name must start with '$'");
        return out;
    }
    auto fields = split(rest.substr(1), '$');
    if (fields[0] != scheme_name) {
        fail("unknown hash scheme " + quoted(fields[0]) + ": expected $pbkdf2-sha256$");
        return out;
    }
    if (fields.size() != 4) {
        fail("expected " + std::string(line_form) + ": found " + std::to_string(fields.size() - 1) +
             " fields after $pbkdf2-sha256$ instead of 3");
        return out;
    }

    auto iterations_text = fields[1];
    unsigned long long iterations = 0;
    bool all_digits = !iterations_text.empty() && std::all_of(iterations_text.begin(), iterations_text.end(),
                                                              [](char c) { return c >= '0' && c <= '9'; });
    auto parsed_iterations =
        std::from_chars(iterations_text.data(), iterations_text.data() + iterations_text.size(), iterations);
    if (!all_digits) {
        fail("iterations " + quoted(iterations_text) + " is not a decimal number");
    } else if (parsed_iterations.ec == std::errc::result_out_of_range ||
               iterations > credential_store::max_iterations) {
        fail("iterations " + quoted(iterations_text) + " above the maximum " +
             std::to_string(credential_store::max_iterations));
    } else if (iterations < credential_store::min_iterations) {
        fail("iterations " + quoted(iterations_text) + " below the minimum " +
             std::to_string(credential_store::min_iterations));
    } else {
        out.iterations = static_cast<unsigned>(iterations);
    }

    if (auto salt = detail::base64_decode(fields[2]); !salt) {
        fail("salt is not valid base64 (RFC 4648, standard alphabet, '=' padding)");
    } else if (salt->size() < credential_store::min_salt_bytes) {
        fail("salt is " + std::to_string(salt->size()) + " bytes: at least " +
             std::to_string(credential_store::min_salt_bytes) + " expected");
    } else {
        out.salt = std::move(*salt);
    }

    if (auto hash = detail::base64_decode(fields[3]); !hash) {
        fail("hash is not valid base64 (RFC 4648, standard alphabet, '=' padding)");
    } else if (hash->size() != credential_store::hash_bytes) {
        fail("hash is " + std::to_string(hash->size()) + " bytes: " + std::to_string(credential_store::hash_bytes) +
             " expected (PBKDF2-HMAC-SHA256)");
    } else {
        out.hash = std::move(*hash);
    }
    return out;
}

// The iteration count most entries use (the higher on a tie), so that an unknown user costs what a typical
// known one does.
unsigned typical_iterations(const std::map<unsigned, std::size_t>& counts)
{
    unsigned best = credential_store::default_iterations;
    std::size_t best_count = 0;
    for (const auto& [iterations, count] : counts) {
        if (count >= best_count) {  // ascending keys: ties go to the higher count of iterations
            best = iterations;
            best_count = count;
        }
    }
    return best;
}

}  // namespace

namespace detail {

bool pbkdf2_sha256(std::string_view password, std::string_view salt, unsigned iterations,
                   std::span<unsigned char> out) noexcept
{
    if (out.empty()) {
        return true;
    }
    if (password.size() > INT_MAX || salt.size() > INT_MAX || out.size() > INT_MAX || iterations == 0 ||
        iterations > INT_MAX) {
        std::fill(out.begin(), out.end(), static_cast<unsigned char>(0));
        return false;
    }
    // Never hand OpenSSL a null pointer with a length of 0: -1 and null have special meanings in some of its
    // entry points.
    static constexpr char empty[] = "";
    static constexpr unsigned char empty_salt[] = {0};
    const char* pass = password.empty() ? empty : password.data();
    const auto* salt_bytes = salt.empty() ? empty_salt : reinterpret_cast<const unsigned char*>(salt.data());
    int ok = PKCS5_PBKDF2_HMAC(pass, static_cast<int>(password.size()), salt_bytes, static_cast<int>(salt.size()),
                               static_cast<int>(iterations), EVP_sha256(), static_cast<int>(out.size()),
                               out.data());
    if (ok != 1) {
        std::fill(out.begin(), out.end(), static_cast<unsigned char>(0));
        return false;
    }
    return true;
}

std::string base64_encode(std::string_view bytes)
{
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    auto byte = [&](std::size_t at) { return static_cast<unsigned>(static_cast<unsigned char>(bytes[at])); };
    for (; i + 3 <= bytes.size(); i += 3) {
        unsigned v = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
        out += base64_alphabet[v >> 18 & 0x3f];
        out += base64_alphabet[v >> 12 & 0x3f];
        out += base64_alphabet[v >> 6 & 0x3f];
        out += base64_alphabet[v & 0x3f];
    }
    if (bytes.size() - i == 1) {
        unsigned v = byte(i) << 16;
        out += base64_alphabet[v >> 18 & 0x3f];
        out += base64_alphabet[v >> 12 & 0x3f];
        out += "==";
    } else if (bytes.size() - i == 2) {
        unsigned v = byte(i) << 16 | byte(i + 1) << 8;
        out += base64_alphabet[v >> 18 & 0x3f];
        out += base64_alphabet[v >> 12 & 0x3f];
        out += base64_alphabet[v >> 6 & 0x3f];
        out += '=';
    }
    return out;
}

std::optional<std::string> base64_decode(std::string_view text)
{
    if (text.size() % 4 != 0) {
        return std::nullopt;
    }
    std::size_t padding = 0;
    if (!text.empty() && text.back() == '=') {
        padding = text.size() >= 2 && text[text.size() - 2] == '=' ? 2 : 1;
    }
    std::string out;
    out.reserve(text.size() / 4 * 3);
    for (std::size_t i = 0; i < text.size(); i += 4) {
        bool last = i + 4 == text.size();
        std::size_t pad_here = last ? padding : 0;
        unsigned v = 0;
        for (std::size_t j = 0; j < 4; ++j) {
            if (j >= 4 - pad_here) {
                v <<= 6;  // a '=' checked above
                continue;
            }
            int d = base64_value(text[i + j]);
            if (d < 0) {
                return std::nullopt;  // includes a '=' anywhere but the last one or two places
            }
            v = v << 6 | static_cast<unsigned>(d);
        }
        out += static_cast<char>(v >> 16 & 0xff);
        if (pad_here == 2) {
            if ((v & 0xffff) != 0) {
                return std::nullopt;  // bits in the unused part of the last character: not canonical
            }
            break;
        }
        out += static_cast<char>(v >> 8 & 0xff);
        if (pad_here == 1) {
            if ((v & 0xff) != 0) {
                return std::nullopt;
            }
            break;
        }
        out += static_cast<char>(v & 0xff);
    }
    return out;
}

bool valid_user_name(std::string_view user) noexcept
{
    if (user.empty() || user.size() > credential_store::max_user_length) {
        return false;
    }
    return std::all_of(user.begin(), user.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
               c == '_' || c == '@' || c == '-';
    });
}

}  // namespace detail

std::pair<std::optional<credential_store>, std::vector<credential_error>> credential_store::load(
    const std::filesystem::path& file)
{
    std::vector<credential_error> errors;
    // stdio rather than iostreams: a directory opens fine and then fails on reading, which an ifstream
    // reports with an exception, and load() throws nothing.
    std::unique_ptr<std::FILE, file_closer> in(std::fopen(file.c_str(), "rb"));
    if (!in) {
        int saved = errno;
        errors.push_back({0, "cannot open " + file.string() + ": " + std::generic_category().message(saved)});
        return {std::nullopt, std::move(errors)};
    }
    std::string text;
    std::array<char, 4096> buffer{};
    while (true) {
        std::size_t n = std::fread(buffer.data(), 1, buffer.size(), in.get());
        text.append(buffer.data(), n);
        if (n < buffer.size()) {
            break;
        }
    }
    if (std::ferror(in.get()) != 0) {
        int saved = errno;
        errors.push_back({0, "cannot read " + file.string() + ": " + std::generic_category().message(saved)});
        return {std::nullopt, std::move(errors)};
    }
    return parse(text);
}

std::pair<std::optional<credential_store>, std::vector<credential_error>> credential_store::parse(
    std::string_view text)
{
    std::vector<credential_error> errors;
    credential_store store;
    std::map<std::string, std::size_t, std::less<>> first_line;  // user -> line it was first seen on
    std::map<unsigned, std::size_t> iteration_counts;

    std::size_t number = 0;
    std::size_t start = 0;
    while (start < text.size()) {
        ++number;
        auto newline = text.find('\n', start);
        auto raw = text.substr(start, newline == std::string_view::npos ? std::string_view::npos : newline - start);
        start = newline == std::string_view::npos ? text.size() : newline + 1;
        if (!raw.empty() && raw.back() == '\r') {
            raw.remove_suffix(1);
        }
        auto line = trim_blanks(raw);
        if (line.empty() || line.front() == '#') {
            continue;
        }

        auto errors_before = errors.size();
        auto parsed = parse_line(line, number, errors);
        if (!parsed.user.empty() && detail::valid_user_name(parsed.user)) {
            auto [it, inserted] = first_line.try_emplace(parsed.user, number);
            if (!inserted) {
                errors.push_back({number, "duplicate user \"" + parsed.user + "\": first defined on line " +
                                              std::to_string(it->second)});
            }
        }
        if (errors.size() != errors_before) {
            continue;
        }
        entry e;
        e.iterations = parsed.iterations;
        e.salt = std::move(parsed.salt);
        std::copy(parsed.hash.begin(), parsed.hash.end(), e.hash.begin());
        ++iteration_counts[e.iterations];
        store.entries_.emplace(std::move(parsed.user), std::move(e));
    }

    if (!errors.empty()) {
        return {std::nullopt, std::move(errors)};
    }
    // The dummy never matches (verify returns false for it whatever the comparison says); only its cost
    // matters, and that depends on the iteration count alone.
    store.dummy_.iterations = typical_iterations(iteration_counts);
    store.dummy_.salt = std::string(min_salt_bytes, '\0');
    return {std::move(store), std::move(errors)};
}

bool credential_store::verify(std::string_view user, std::string_view password) const noexcept
{
    auto it = entries_.find(user);
    bool known = it != entries_.end();
    const entry& e = known ? it->second : dummy_;
    std::array<unsigned char, hash_bytes> computed{};
    bool ok = detail::pbkdf2_sha256(password, e.salt, e.iterations, computed);
    bool match = CRYPTO_memcmp(computed.data(), e.hash.data(), hash_bytes) == 0;
    OPENSSL_cleanse(computed.data(), computed.size());
    return known && ok && match;
}

std::string credential_store::make_entry(std::string_view user, std::string_view password, unsigned iterations)
{
    if (!detail::valid_user_name(user)) {
        throw std::invalid_argument("user name " + quoted(user) + " is not valid: expected " + std::string(user_rule));
    }
    if (iterations < min_iterations || iterations > max_iterations) {
        throw std::invalid_argument("iterations " + std::to_string(iterations) + " outside " +
                                    std::to_string(min_iterations) + "-" + std::to_string(max_iterations));
    }
    std::array<unsigned char, min_salt_bytes> salt{};
    if (RAND_bytes(salt.data(), static_cast<int>(salt.size())) != 1) {
        throw std::runtime_error("RAND_bytes failed: cannot make a salt");
    }
    std::string_view salt_view(reinterpret_cast<const char*>(salt.data()), salt.size());
    std::array<unsigned char, hash_bytes> hash{};
    if (!detail::pbkdf2_sha256(password, salt_view, iterations, hash)) {
        throw std::runtime_error("PKCS5_PBKDF2_HMAC failed");
    }
    std::string line = std::string(user) + ":$" + std::string(scheme_name) + "$" + std::to_string(iterations) + "$" +
                       detail::base64_encode(salt_view) + "$" +
                       detail::base64_encode({reinterpret_cast<const char*>(hash.data()), hash.size()});
    return line;
}

std::optional<std::pair<std::string, std::string>> parse_basic_authorization(std::string_view header_value)
{
    auto value = trim_blanks(header_value);
    constexpr std::string_view scheme = "basic";
    if (value.size() <= scheme.size() || value[scheme.size()] != ' ') {
        return std::nullopt;
    }
    for (std::size_t i = 0; i < scheme.size(); ++i) {
        char c = value[i];
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
        if (c != scheme[i]) {
            return std::nullopt;
        }
    }
    auto token = value.substr(scheme.size());
    while (!token.empty() && token.front() == ' ') {
        token.remove_prefix(1);
    }
    if (token.empty()) {
        return std::nullopt;
    }
    auto decoded = detail::base64_decode(token);
    if (!decoded) {
        return std::nullopt;
    }
    std::optional<std::pair<std::string, std::string>> result;
    auto colon = decoded->find(':');
    if (colon != std::string::npos && colon != 0) {
        std::string_view user(decoded->data(), colon);
        bool has_control = std::any_of(user.begin(), user.end(), [](char c) {
            auto u = static_cast<unsigned char>(c);
            return u < 0x20 || u == 0x7f;
        });
        if (!has_control) {
            result.emplace(std::string(user), decoded->substr(colon + 1));
        }
    }
    OPENSSL_cleanse(decoded->data(), decoded->size());  // the password, decoded
    return result;
}

}  // namespace egressd::certs
