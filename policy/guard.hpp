#pragma once

#include "policy/address.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace egressd::policy {

// Named address sets the guard refuses unless an allow rule of the client names a CIDR containing the address.
enum class guard_category : std::uint8_t {
    cloud_metadata,  // 169.254.169.254, fd00:ec2::254 (checked first: more specific than link_local and ula)
    loopback,        // 127.0.0.0/8, ::1
    unspecified,     // 0.0.0.0/8, ::
    private_network, // 10/8, 172.16/12, 192.168/16
    cgnat,           // 100.64.0.0/10
    link_local,      // 169.254.0.0/16, fe80::/10
    unique_local,    // fc00::/7
    multicast,       // 224.0.0.0/4, ff00::/8
    broadcast,       // 255.255.255.255
    reserved,        // 240.0.0.0/4
    benchmarking,    // 198.18.0.0/15, 2001:2::/48
    documentation,   // 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32
};
inline constexpr int guard_category_count = 12;

std::string_view to_string(guard_category category);
std::optional<guard_category> parse_guard_category(std::string_view name);

// How a forbidden IPv4 address was hidden inside an IPv6 one.
enum class embedding : std::uint8_t { none, ipv4_mapped, ipv4_compatible, ipv4_translated, nat64, six_to_four, teredo };
std::string_view to_string(embedding form);

class guard_set {
public:
    static constexpr guard_set all() { return guard_set{(1u << guard_category_count) - 1}; }
    static constexpr guard_set none() { return guard_set{0}; }
    constexpr bool has(guard_category c) const { return (bits_ >> static_cast<unsigned>(c) & 1u) != 0; }
    constexpr void add(guard_category c) { bits_ |= 1u << static_cast<unsigned>(c); }
    constexpr void remove(guard_category c) { bits_ &= ~(1u << static_cast<unsigned>(c)); }
    friend constexpr bool operator==(guard_set, guard_set) = default;

private:
    constexpr explicit guard_set(unsigned bits) : bits_(bits) {}
    unsigned bits_;
};

struct guard_hit {
    guard_category category;
    embedding form = embedding::none;
    address checked;   // the address found in the category: the input, or the IPv4 address embedded in it
    int range_length;  // prefix length of the guarded range that holds `checked`
};

// An operator's own NAT64 prefix (address_guard.nat64_prefixes): RFC 6052 allows /32, /40, /48, /56, /64 and
// /96, and the length decides where the IPv4 address sits in the IPv6 one.
bool valid_nat64_prefix_length(int length);
inline constexpr std::size_t max_nat64_prefixes = 4;

// The first guarded category the address (or any IPv4 address embedded in it) falls into. nat64_prefixes: the
// operator's own, besides the well-known 64:ff9b::/96 and the local-use 64:ff9b:1::/48.
std::optional<guard_hit> classify(const address& a, guard_set guarded, std::span<const cidr> nat64_prefixes = {});

// Every IPv4 address an IPv6 address carries in one of the known embeddings. Teredo carries two; an address in
// the local-use NAT64 prefix 64:ff9b:1::/48 is read in each RFC 6052 layout its operator may use (/48, /56, /64,
// /96), since egressd cannot know which one the network uses; each operator prefix adds its own layout.
struct embedded_v4 {
    embedding form;
    address v4;
};
inline constexpr std::size_t max_embedded = 4 + max_nat64_prefixes;
int embedded_addresses(const address& a, embedded_v4 (&out)[max_embedded], std::span<const cidr> nat64_prefixes = {});

}  // namespace egressd::policy
