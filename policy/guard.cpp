#include "policy/guard.hpp"

#include <algorithm>
#include <array>
#include <vector>

namespace egressd::policy {
namespace {

struct category_entry {
    guard_category category;
    std::string_view name;
    std::vector<cidr> ranges;
};

cidr net(std::string_view text) { return *cidr::parse(text); }

const std::vector<category_entry>& categories()
{
    // Order matters: the first matching category names the hit, so specific sets precede broad ones.
    static const std::vector<category_entry> table = {
        {guard_category::cloud_metadata, "cloud_metadata", {net("169.254.169.254/32"), net("fd00:ec2::254/128")}},
        {guard_category::loopback, "loopback", {net("127.0.0.0/8"), net("::1/128")}},
        {guard_category::unspecified, "unspecified", {net("0.0.0.0/8"), net("::/128")}},
        {guard_category::private_network, "private", {net("10.0.0.0/8"), net("172.16.0.0/12"), net("192.168.0.0/16")}},
        {guard_category::cgnat, "cgnat", {net("100.64.0.0/10")}},
        {guard_category::link_local, "link_local", {net("169.254.0.0/16"), net("fe80::/10")}},
        {guard_category::unique_local, "unique_local", {net("fc00::/7")}},
        {guard_category::multicast, "multicast", {net("224.0.0.0/4"), net("ff00::/8")}},
        {guard_category::broadcast, "broadcast", {net("255.255.255.255/32")}},
        {guard_category::reserved, "reserved", {net("240.0.0.0/4")}},
        {guard_category::benchmarking, "benchmarking", {net("198.18.0.0/15"), net("2001:2::/48")}},
        {guard_category::documentation,
         "documentation",
         {net("192.0.2.0/24"), net("198.51.100.0/24"), net("203.0.113.0/24"), net("2001:db8::/32")}},
    };
    return table;
}

std::optional<guard_hit> direct_hit(const address& a, guard_set guarded, embedding form)
{
    for (const auto& entry : categories()) {
        if (!guarded.has(entry.category)) {
            continue;
        }
        for (const auto& range : entry.ranges) {
            if (range.contains(a)) {
                return guard_hit{entry.category, form, a, range.length()};
            }
        }
    }
    return std::nullopt;
}

address v4_at(const std::array<std::uint8_t, 16>& b, std::size_t offset, std::uint32_t flip = 0)
{
    std::uint32_t v = std::uint32_t{b[offset]} << 24 | std::uint32_t{b[offset + 1]} << 16 |
                      std::uint32_t{b[offset + 2]} << 8 | std::uint32_t{b[offset + 3]};
    return address::from_v4(v ^ flip);
}

bool zeros(const std::array<std::uint8_t, 16>& b, std::size_t from, std::size_t to)
{
    for (std::size_t i = from; i < to; ++i) {
        if (b[i] != 0) {
            return false;
        }
    }
    return true;
}

// RFC 6052 section 2.2: where the IPv4 address's four bytes sit under a prefix of this length. Byte 8 (bits
// 64-71, the "u" octet) never carries any.
std::optional<std::array<std::size_t, 4>> nat64_layout(int prefix_length)
{
    switch (prefix_length) {
    case 32:
        return std::array<std::size_t, 4>{4, 5, 6, 7};
    case 40:
        return std::array<std::size_t, 4>{5, 6, 7, 9};
    case 48:
        return std::array<std::size_t, 4>{6, 7, 9, 10};
    case 56:
        return std::array<std::size_t, 4>{7, 9, 10, 11};
    case 64:
        return std::array<std::size_t, 4>{9, 10, 11, 12};
    case 96:
        return std::array<std::size_t, 4>{12, 13, 14, 15};
    default:
        return std::nullopt;
    }
}

address v4_in_layout(const std::array<std::uint8_t, 16>& b, const std::array<std::size_t, 4>& at)
{
    return address::from_v4(std::uint32_t{b[at[0]]} << 24 | std::uint32_t{b[at[1]]} << 16 |
                            std::uint32_t{b[at[2]]} << 8 | std::uint32_t{b[at[3]]});
}

int known_embeddings(const address& a, embedded_v4* out)
{
    if (a.is_v4()) {
        return 0;
    }
    const auto& b = a.bytes();
    // ::ffff:a.b.c.d
    if (zeros(b, 0, 10) && b[10] == 0xff && b[11] == 0xff) {
        out[0] = {embedding::ipv4_mapped, v4_at(b, 12)};
        return 1;
    }
    // ::ffff:0:a.b.c.d (SIIT)
    if (zeros(b, 0, 8) && b[8] == 0xff && b[9] == 0xff && b[10] == 0 && b[11] == 0) {
        out[0] = {embedding::ipv4_translated, v4_at(b, 12)};
        return 1;
    }
    // ::a.b.c.d (deprecated IPv4-compatible); :: and ::1 are IPv6 addresses in their own right, guarded (or not)
    // as such: reading ::1 as 0.0.0.1 would refuse it as "unspecified" when loopback is not guarded.
    if (zeros(b, 0, 12) && !(zeros(b, 12, 15) && b[15] <= 1)) {
        out[0] = {embedding::ipv4_compatible, v4_at(b, 12)};
        return 1;
    }
    const bool nat64_space = b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b;
    // 64:ff9b::a.b.c.d (NAT64 well-known prefix, /96 only: RFC 6052 section 2.1)
    if (nat64_space && zeros(b, 4, 12)) {
        out[0] = {embedding::nat64, v4_at(b, 12)};
        return 1;
    }
    // 64:ff9b:1::/48 (local-use, RFC 8215): any of the layouts of a /48, /56, /64 or /96 prefix inside it.
    if (nat64_space && b[4] == 0 && b[5] == 1) {
        int count = 0;
        for (int length : {96, 64, 56, 48}) {
            out[count++] = {embedding::nat64, v4_in_layout(b, *nat64_layout(length))};
        }
        return count;
    }
    // 2002:a.b.c.d::/48 (6to4)
    if (b[0] == 0x20 && b[1] == 0x02) {
        out[0] = {embedding::six_to_four, v4_at(b, 2)};
        return 1;
    }
    // 2001:0::/32 Teredo: server address in bits 32-63, client address inverted in the last 32 bits.
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0) {
        out[0] = {embedding::teredo, v4_at(b, 12, 0xffffffffu)};
        out[1] = {embedding::teredo, v4_at(b, 4)};
        return 2;
    }
    return 0;
}

}  // namespace

std::string_view to_string(guard_category category)
{
    return categories()[static_cast<std::size_t>(category)].name;
}

std::optional<guard_category> parse_guard_category(std::string_view name)
{
    for (const auto& entry : categories()) {
        if (entry.name == name) {
            return entry.category;
        }
    }
    return std::nullopt;
}

std::string_view to_string(embedding form)
{
    switch (form) {
    case embedding::none:
        return "none";
    case embedding::ipv4_mapped:
        return "ipv4_mapped";
    case embedding::ipv4_compatible:
        return "ipv4_compatible";
    case embedding::ipv4_translated:
        return "ipv4_translated";
    case embedding::nat64:
        return "nat64";
    case embedding::six_to_four:
        return "6to4";
    case embedding::teredo:
        return "teredo";
    }
    return "none";
}

bool valid_nat64_prefix_length(int length)
{
    return nat64_layout(length).has_value();
}

int embedded_addresses(const address& a, embedded_v4 (&out)[max_embedded], std::span<const cidr> nat64_prefixes)
{
    // An operator who names the prefix says which layout it uses: only that one is read (the local-use prefix's
    // every-layout reading would otherwise find 0.0.0.0/8 in most of its addresses and refuse them).
    int count = 0;
    for (const auto& prefix : nat64_prefixes.first(std::min(nat64_prefixes.size(), max_nat64_prefixes))) {
        if (auto layout = nat64_layout(prefix.length()); layout && prefix.contains(a)) {
            out[count++] = {embedding::nat64, v4_in_layout(a.bytes(), *layout)};
        }
    }
    return count > 0 ? count : known_embeddings(a, out);
}

std::optional<guard_hit> classify(const address& a, guard_set guarded, std::span<const cidr> nat64_prefixes)
{
    if (auto hit = direct_hit(a, guarded, embedding::none)) {
        return hit;
    }
    embedded_v4 inner[max_embedded];
    int count = embedded_addresses(a, inner, nat64_prefixes);
    for (int i = 0; i < count; ++i) {
        if (auto hit = direct_hit(inner[i].v4, guarded, inner[i].form)) {
            return hit;
        }
    }
    return std::nullopt;
}

}  // namespace egressd::policy
