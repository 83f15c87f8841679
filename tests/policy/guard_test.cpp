#include "policy/guard.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace egressd::policy {
namespace {

template <typename Case>
std::string case_name(const ::testing::TestParamInfo<Case>& info)
{
    return info.param.name;
}

address parse_or_die(const std::string& text)
{
    auto a = address::parse(text);
    if (!a) {
        ADD_FAILURE() << "fixture address does not parse: " << text;
        return address{};
    }
    return *a;
}

// A Teredo address (2001:0::/32) carrying the given IPv4 client address, stored inverted in the last
// 32 bits as RFC 4380 requires; the server part is Microsoft's old public Teredo server 65.54.227.120.
std::string teredo_for(std::uint32_t client_v4)
{
    std::uint32_t inverted = ~client_v4;
    char buf[64];
    std::snprintf(buf, sizeof buf, "2001:0:4136:e378:8000:63bf:%x:%x", static_cast<unsigned>(inverted >> 16),
                  static_cast<unsigned>(inverted & 0xffffu));
    return buf;
}

constexpr std::uint32_t v4(unsigned a, unsigned b, unsigned c, unsigned d)
{
    return static_cast<std::uint32_t>(a << 24 | b << 16 | c << 8 | d);
}

TEST(guard_teredo_helper, matches_the_brief_example)
{
    // 127.0.0.1 inverted is 80ff:fffe.
    EXPECT_EQ(teredo_for(v4(127, 0, 0, 1)), "2001:0:4136:e378:8000:63bf:80ff:fffe");
}

// --- Direct categories ----------------------------------------------------------------------------------------

struct category_case {
    std::string name;
    std::string text;
    std::optional<guard_category> category;  // nullopt: not guarded
};

class guard_classify : public ::testing::TestWithParam<category_case> {};

TEST_P(guard_classify, names_the_category)
{
    const auto& c = GetParam();
    auto a = parse_or_die(c.text);
    auto hit = classify(a, guard_set::all());
    if (!c.category) {
        EXPECT_FALSE(hit.has_value()) << "guarded as " << to_string(hit->category);
        return;
    }
    ASSERT_TRUE(hit.has_value());
    EXPECT_EQ(hit->category, *c.category) << to_string(hit->category);
    EXPECT_EQ(hit->form, embedding::none);
    EXPECT_EQ(hit->checked, a);
}

using gc = guard_category;

INSTANTIATE_TEST_SUITE_P(
    all, guard_classify,
    ::testing::Values(
        category_case{"loopback_127_0_0_1", "127.0.0.1", gc::loopback},
        category_case{"loopback_127_0_0_2", "127.0.0.2", gc::loopback},
        category_case{"loopback_top", "127.255.255.255", gc::loopback},
        category_case{"loopback_v6", "::1", gc::loopback},
        category_case{"private_10", "10.0.0.1", gc::private_network},
        category_case{"private_172_16", "172.16.0.1", gc::private_network},
        category_case{"private_172_31", "172.31.255.254", gc::private_network},
        category_case{"private_192_168", "192.168.1.1", gc::private_network},
        category_case{"cgnat", "100.64.0.1", gc::cgnat},
        category_case{"cgnat_top", "100.127.255.255", gc::cgnat},
        category_case{"link_local", "169.254.1.1", gc::link_local},
        category_case{"link_local_v6", "fe80::1", gc::link_local},
        // Metadata sits inside link-local and ULA: the more specific category must win.
        category_case{"cloud_metadata", "169.254.169.254", gc::cloud_metadata},
        category_case{"cloud_metadata_v6", "fd00:ec2::254", gc::cloud_metadata},
        category_case{"unspecified", "0.0.0.0", gc::unspecified},
        category_case{"this_network", "0.1.2.3", gc::unspecified},
        category_case{"unspecified_v6", "::", gc::unspecified},
        category_case{"unique_local", "fd12::1", gc::unique_local},
        category_case{"unique_local_fc", "fc00::1", gc::unique_local},
        category_case{"multicast", "224.0.0.1", gc::multicast},
        category_case{"multicast_top", "239.255.255.255", gc::multicast},
        category_case{"multicast_v6", "ff02::1", gc::multicast},
        // Broadcast is inside 240/4: the more specific category must win.
        category_case{"broadcast", "255.255.255.255", gc::broadcast},
        category_case{"reserved", "240.0.0.1", gc::reserved},
        category_case{"benchmarking", "198.18.0.1", gc::benchmarking},
        category_case{"benchmarking_19", "198.19.255.255", gc::benchmarking},
        category_case{"benchmarking_v6", "2001:2::1", gc::benchmarking},
        category_case{"documentation", "192.0.2.1", gc::documentation},
        category_case{"documentation_2", "198.51.100.1", gc::documentation},
        category_case{"documentation_3", "203.0.113.1", gc::documentation},
        category_case{"documentation_v6", "2001:db8::1", gc::documentation},
        category_case{"public_v4", "93.184.216.34", std::nullopt},
        category_case{"public_v6", "2606:2800:220:1:248:1893:25c8:1946", std::nullopt},
        category_case{"just_below_private_172", "172.15.255.255", std::nullopt},
        category_case{"just_above_private_172", "172.32.0.0", std::nullopt},
        category_case{"just_above_cgnat", "100.128.0.0", std::nullopt},
        category_case{"just_below_benchmarking", "198.17.255.255", std::nullopt},
        // Embedded public IPv4 is fine: only forbidden embedded addresses are refused.
        category_case{"mapped_public", "::ffff:93.184.216.34", std::nullopt},
        category_case{"nat64_public", "64:ff9b::5db8:d822", std::nullopt},
        category_case{"six_to_four_public", "2002:5db8:d822::1", std::nullopt}),
    case_name<category_case>);

// --- Embedded IPv4 --------------------------------------------------------------------------------------------

struct embedded_case {
    std::string name;
    std::string text;
    guard_category category;
    embedding form;
    std::string checked;  // the IPv4 address the guard found
};

class guard_embedded : public ::testing::TestWithParam<embedded_case> {};

TEST_P(guard_embedded, finds_forbidden_ipv4_inside_ipv6)
{
    const auto& c = GetParam();
    auto a = parse_or_die(c.text);
    auto hit = classify(a, guard_set::all());
    ASSERT_TRUE(hit.has_value()) << c.text << " passed the guard";
    EXPECT_EQ(hit->category, c.category) << to_string(hit->category);
    EXPECT_EQ(hit->form, c.form) << to_string(hit->form);
    EXPECT_EQ(hit->checked.to_string(), c.checked);
}

using em = embedding;

INSTANTIATE_TEST_SUITE_P(
    all, guard_embedded,
    ::testing::Values(
        embedded_case{"mapped_loopback", "::ffff:127.0.0.1", gc::loopback, em::ipv4_mapped, "127.0.0.1"},
        embedded_case{"mapped_metadata", "::ffff:169.254.169.254", gc::cloud_metadata, em::ipv4_mapped,
                      "169.254.169.254"},
        embedded_case{"mapped_private", "::ffff:10.0.0.1", gc::private_network, em::ipv4_mapped, "10.0.0.1"},
        embedded_case{"compatible_loopback", "::127.0.0.1", gc::loopback, em::ipv4_compatible, "127.0.0.1"},
        embedded_case{"compatible_metadata", "::169.254.169.254", gc::cloud_metadata, em::ipv4_compatible,
                      "169.254.169.254"},
        embedded_case{"compatible_private", "::10.0.0.1", gc::private_network, em::ipv4_compatible, "10.0.0.1"},
        embedded_case{"translated_loopback", "::ffff:0:127.0.0.1", gc::loopback, em::ipv4_translated, "127.0.0.1"},
        embedded_case{"translated_metadata", "::ffff:0:169.254.169.254", gc::cloud_metadata, em::ipv4_translated,
                      "169.254.169.254"},
        embedded_case{"translated_private", "::ffff:0:10.0.0.1", gc::private_network, em::ipv4_translated,
                      "10.0.0.1"},
        embedded_case{"nat64_loopback", "64:ff9b::7f00:1", gc::loopback, em::nat64, "127.0.0.1"},
        embedded_case{"nat64_metadata", "64:ff9b::a9fe:a9fe", gc::cloud_metadata, em::nat64, "169.254.169.254"},
        embedded_case{"nat64_private", "64:ff9b::10.0.0.1", gc::private_network, em::nat64, "10.0.0.1"},
        embedded_case{"nat64_local_use_metadata", "64:ff9b:1::a9fe:a9fe", gc::cloud_metadata, em::nat64,
                      "169.254.169.254"},
        // RFC 8215 lets the local-use prefix be split into /48, /56 and /64 prefixes, which put the IPv4 address
        // elsewhere (RFC 6052 section 2.2). 10.88.0.1 in each layout:
        embedded_case{"nat64_local_use_64_layout", "64:ff9b:1:0:a:5800:100:0", gc::private_network, em::nat64,
                      "10.88.0.1"},

        embedded_case{"six_to_four_loopback", "2002:7f00:1::1", gc::loopback, em::six_to_four, "127.0.0.1"},
        embedded_case{"six_to_four_metadata", "2002:a9fe:a9fe::1", gc::cloud_metadata, em::six_to_four,
                      "169.254.169.254"},
        embedded_case{"six_to_four_private", "2002:a00:1:ffff::1", gc::private_network, em::six_to_four,
                      "10.0.0.1"},
        embedded_case{"teredo_loopback", teredo_for(v4(127, 0, 0, 1)), gc::loopback, em::teredo, "127.0.0.1"},
        embedded_case{"teredo_metadata", teredo_for(v4(169, 254, 169, 254)), gc::cloud_metadata, em::teredo,
                      "169.254.169.254"},
        embedded_case{"teredo_private", teredo_for(v4(10, 0, 0, 1)), gc::private_network, em::teredo, "10.0.0.1"},
        // The Teredo server field is an IPv4 address too.
        embedded_case{"teredo_server_private", "2001:0:a00:1:8000:63bf:a247:27dd", gc::private_network, em::teredo,
                      "10.0.0.1"}),
    case_name<embedded_case>);

TEST(guard_embedded_addresses, the_local_use_nat64_prefix_is_read_in_every_layout)
{
    // 10.88.0.1 in the /56 and /48 layouts. Their /96 reading is 0.0.0.x (unspecified, refused too): without
    // that set, the private address must still be found.
    auto guarded = guard_set::all();
    guarded.remove(guard_category::unspecified);
    for (const char* text : {"64:ff9b:1:a:58:1::", "64:ff9b:1:a58:0:100::"}) {
        auto hit = classify(parse_or_die(text), guarded);
        ASSERT_TRUE(hit.has_value()) << text;
        EXPECT_EQ(hit->category, guard_category::private_network) << text;
        EXPECT_EQ(hit->checked.to_string(), "10.88.0.1") << text;
        EXPECT_TRUE(classify(parse_or_die(text), guard_set::all()).has_value()) << text;
    }
    // A public address in the /96 layout is refused too unless the operator names the prefix and its length.
    const auto public_96 = parse_or_die("64:ff9b:1::5db8:d822");
    EXPECT_TRUE(classify(public_96, guard_set::all()).has_value());
    const std::vector<cidr> named{*cidr::parse("64:ff9b:1::/96")};
    EXPECT_FALSE(classify(public_96, guard_set::all(), named).has_value());
    EXPECT_TRUE(classify(parse_or_die("64:ff9b:1::a00:1"), guard_set::all(), named).has_value());
}

TEST(guard_embedded_addresses, an_operators_nat64_prefix_is_read_in_its_own_layout)
{
    // 2001:470:64::/48 (a public prefix), a /48 layout: 169.254.169.254 sits in bytes 6, 7, 9 and 10.
    const auto prefix = *cidr::parse("2001:470:64::/48");
    const auto metadata = parse_or_die("2001:470:64:a9fe:a9:fe00::");
    EXPECT_FALSE(classify(metadata, guard_set::all()).has_value()) << "without the prefix it is a public address";
    const std::vector<cidr> prefixes{prefix};
    auto hit = classify(metadata, guard_set::all(), prefixes);
    ASSERT_TRUE(hit.has_value());
    EXPECT_EQ(hit->category, guard_category::cloud_metadata);
    EXPECT_EQ(hit->form, embedding::nat64);
    EXPECT_EQ(hit->checked.to_string(), "169.254.169.254");
    // A public IPv4 address in the same prefix passes; an address outside the prefix is not read as NAT64.
    EXPECT_FALSE(classify(parse_or_die("2001:470:64:5db8:d8:2200::"), guard_set::all(), prefixes).has_value());
    EXPECT_FALSE(classify(parse_or_die("2001:470:65:a9fe:a9:fe00::"), guard_set::all(), prefixes).has_value());
    EXPECT_TRUE(valid_nat64_prefix_length(96));
    EXPECT_FALSE(valid_nat64_prefix_length(80));
}

TEST(guard_embedded_addresses, lists_every_embedded_ipv4)
{
    embedded_v4 out[max_embedded];
    EXPECT_EQ(embedded_addresses(parse_or_die("127.0.0.1"), out), 0);
    EXPECT_EQ(embedded_addresses(parse_or_die("2606:2800:220:1:248:1893:25c8:1946"), out), 0);

    ASSERT_EQ(embedded_addresses(parse_or_die(teredo_for(v4(192, 0, 2, 45))), out), 2);
    EXPECT_EQ(out[0].form, embedding::teredo);
    EXPECT_EQ(out[0].v4.to_string(), "192.0.2.45");
    EXPECT_EQ(out[1].v4.to_string(), "65.54.227.120");

    ASSERT_EQ(embedded_addresses(parse_or_die("2002:c000:22a::1"), out), 1);
    EXPECT_EQ(out[0].form, embedding::six_to_four);
    EXPECT_EQ(out[0].v4.to_string(), "192.0.2.42");
}

// --- guard_set and names --------------------------------------------------------------------------------------

TEST(guard_set, disabling_a_category_lets_its_addresses_through)
{
    auto set = guard_set::all();
    set.remove(guard_category::loopback);
    EXPECT_FALSE(set.has(guard_category::loopback));
    EXPECT_TRUE(set.has(guard_category::cloud_metadata));
    EXPECT_FALSE(classify(parse_or_die("127.0.0.2"), set).has_value());
    EXPECT_FALSE(classify(parse_or_die("::ffff:127.0.0.1"), set).has_value());
    EXPECT_TRUE(classify(parse_or_die("10.0.0.1"), set).has_value());

    // With cloud_metadata off, the metadata address is still link-local.
    auto no_metadata = guard_set::all();
    no_metadata.remove(guard_category::cloud_metadata);
    auto hit = classify(parse_or_die("169.254.169.254"), no_metadata);
    ASSERT_TRUE(hit.has_value());
    EXPECT_EQ(hit->category, guard_category::link_local);

    EXPECT_FALSE(classify(parse_or_die("10.0.0.1"), guard_set::none()).has_value());
    auto one = guard_set::none();
    one.add(guard_category::private_network);
    EXPECT_TRUE(classify(parse_or_die("10.0.0.1"), one).has_value());
    EXPECT_FALSE(classify(parse_or_die("127.0.0.1"), one).has_value());
}

TEST(guard_category_names, round_trip)
{
    for (int i = 0; i < guard_category_count; ++i) {
        auto c = static_cast<guard_category>(i);
        SCOPED_TRACE(std::string(to_string(c)));
        auto back = parse_guard_category(to_string(c));
        ASSERT_TRUE(back.has_value());
        EXPECT_EQ(*back, c);
    }
    EXPECT_EQ(to_string(guard_category::private_network), "private");
    EXPECT_EQ(to_string(guard_category::cloud_metadata), "cloud_metadata");
    EXPECT_FALSE(parse_guard_category("private_network").has_value());
    EXPECT_EQ(to_string(embedding::six_to_four), "6to4");
    EXPECT_EQ(to_string(embedding::ipv4_mapped), "ipv4_mapped");
}

}  // namespace
}  // namespace egressd::policy
