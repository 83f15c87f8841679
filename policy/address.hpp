#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace egressd::policy {

// An IPv4 or IPv6 address. Value type; safe to share between threads.
// IPv4 bytes live in the first four of the array so bit(i) walks either family from the top.
class address {
public:
    enum class family : std::uint8_t { v4, v6 };

    // Strict: IPv4 only as canonical dotted quad (no leading zeros, no shortened or numeric forms);
    // IPv6 as RFC 4291 text without brackets or zone. Anything else is nullopt, because resolvers and
    // clients disagree about the other forms (0177.0.0.1, 127.1, 2130706433).
    static std::optional<address> parse(std::string_view text);
    static std::optional<address> parse_v4(std::string_view text);
    static std::optional<address> parse_v6(std::string_view text);

    static address from_v4(std::uint32_t value);
    static address from_v6(const std::array<std::uint8_t, 16>& bytes);

    family fam() const { return family_; }
    bool is_v4() const { return family_ == family::v4; }
    int width() const { return is_v4() ? 32 : 128; }
    bool bit(int index) const { return ((bytes_[index / 8] >> (7 - index % 8)) & 1) != 0; }
    std::uint32_t v4_value() const;
    const std::array<std::uint8_t, 16>& bytes() const { return bytes_; }

    std::string to_string() const;
    // "192.0.2.1:80", "[2001:db8::1]:80": how sources and endpoints appear in events.
    std::string to_string(std::uint16_t port) const;
    // ::ffff:a.b.c.d as the IPv4 address a.b.c.d (how a dual-stack socket reports IPv4 peers); others unchanged.
    address unmapped() const;

    friend auto operator<=>(const address&, const address&) = default;

private:
    family family_ = family::v4;
    std::array<std::uint8_t, 16> bytes_{};
};

// A network prefix. Host bits below the prefix are always zero (parse refuses them).
class cidr {
public:
    // "10.0.0.0/8", "2001:db8::/32", or a bare address meaning a /32 or /128.
    // On failure returns nullopt and, if error is given, says what was expected.
    static std::optional<cidr> parse(std::string_view text, std::string* error = nullptr);
    static std::optional<cidr> make(const address& base, int length);

    const address& base() const { return base_; }
    int length() const { return length_; }
    bool contains(const address& a) const;
    bool is_everything() const { return length_ == 0; }
    std::string to_string() const;

    friend auto operator<=>(const cidr&, const cidr&) = default;

private:
    address base_;
    int length_ = 0;
};

}  // namespace egressd::policy

// Addresses as keys of unordered containers (per-source counters in the proxy).
template <>
struct std::hash<egressd::policy::address> {
    std::size_t operator()(const egressd::policy::address& a) const noexcept
    {
        std::size_t h = a.is_v4() ? 4 : 6;
        for (auto b : a.bytes()) {
            h = h * 131 + b;
        }
        return h;
    }
};
