#include "protocol/host_port.hpp"

#include <gtest/gtest.h>

namespace egressd::protocol {
namespace {

TEST(ParsePort, AcceptsOneToFiveDigitsInRange)
{
    EXPECT_EQ(parse_port("1"), 1);
    EXPECT_EQ(parse_port("443"), 443);
    EXPECT_EQ(parse_port("65535"), 65535);
}

TEST(ParsePort, RefusesEverythingElse)
{
    for (const char* bad : {"", "0", "65536", "99999", "123456", "-1", "+1", " 80", "80 ", "8a", "0x50", "08"}) {
        EXPECT_FALSE(parse_port(bad).has_value()) << bad;
    }
}

TEST(ParsePort, ZeroAndLeadingZerosOnlyWhenAsked)
{
    EXPECT_EQ(parse_port("0", {.allow_zero = true}), 0);
    EXPECT_FALSE(parse_port("00", {.allow_zero = true}).has_value());
    EXPECT_EQ(parse_port("0081", {.allow_leading_zeros = true}), 81);
    EXPECT_FALSE(parse_port("000", {.allow_leading_zeros = true}).has_value());
    EXPECT_FALSE(parse_port("000080", {.allow_leading_zeros = true}).has_value());
}

TEST(SplitHostPort, Forms)
{
    auto v4 = split_host_port("192.0.2.1:80");
    ASSERT_TRUE(v4);
    EXPECT_EQ(v4->host, "192.0.2.1");
    EXPECT_EQ(v4->port, "80");
    EXPECT_FALSE(v4->bracketed);

    auto v6 = split_host_port("[2001:db8::1]:443");
    ASSERT_TRUE(v6);
    EXPECT_EQ(v6->host, "[2001:db8::1]");
    EXPECT_EQ(v6->port, "443");
    EXPECT_TRUE(v6->bracketed);

    auto bare_v6 = split_host_port("2001:db8::1");
    ASSERT_TRUE(bare_v6);
    EXPECT_TRUE(bare_v6->unbracketed_v6);
    EXPECT_FALSE(bare_v6->port);

    auto no_port = split_host_port("example.com");
    ASSERT_TRUE(no_port);
    EXPECT_FALSE(no_port->port);

    EXPECT_FALSE(split_host_port("[2001:db8::1"));
    EXPECT_FALSE(split_host_port("[::1]x80"));
}

TEST(ParseIpPort, ListenerAndServerForms)
{
    auto v4 = parse_ip_port("192.0.2.53:53");
    ASSERT_TRUE(v4);
    EXPECT_EQ(v4->address.to_string(), "192.0.2.53");
    EXPECT_EQ(v4->port, 53);
    auto v6 = parse_ip_port("[2001:db8::53]:5353");
    ASSERT_TRUE(v6);
    EXPECT_EQ(v6->address.to_string(), "2001:db8::53");
    EXPECT_EQ(v6->port, 5353);
    for (const char* no_port : {"192.0.2.53", "[::1]", "::1"}) {
        auto p = parse_ip_port(no_port);
        ASSERT_TRUE(p) << no_port;
        EXPECT_FALSE(p->port) << no_port;
    }
    EXPECT_EQ(parse_ip_port("127.0.0.1:0", {.allow_zero = true})->port, 0);
    for (const char* bad : {"127.0.0.1:0", "1.2.3.4:99999", "1.2.3.4:", "01.2.3.4", "[1.2.3.4]:53", "[::1]53",
                            "::1::2", "", "example.com:53", "::1:53x"}) {
        EXPECT_FALSE(parse_ip_port(bad)) << bad;
    }
}

TEST(ParseDestination, NamesLiteralsAndErrors)
{
    auto d = parse_destination("Example.COM:443");
    ASSERT_TRUE(d.value) << d.error;
    EXPECT_EQ(d.value->target.to_string(), "example.com");
    EXPECT_EQ(d.value->port, 443);

    auto v6 = parse_destination("[2001:db8::1]:8443");
    ASSERT_TRUE(v6.value) << v6.error;
    EXPECT_EQ(v6.value->target.to_string(), "[2001:db8::1]");

    EXPECT_EQ(parse_destination("example.com").error, "missing port: expected host:port");
    EXPECT_EQ(parse_destination("[::1]").error, "missing port: expected host:port");
    EXPECT_EQ(parse_destination("::1:443").error, "IPv6 literal without brackets: expected [address]:port");
    EXPECT_EQ(parse_destination("example.com:0443").error, "invalid port '0443': expected 1 to 65535");
    EXPECT_EQ(parse_destination("example.com:70000").error, "invalid port '70000': expected 1 to 65535");
    EXPECT_FALSE(parse_destination("127.1:80").value);
}

}  // namespace
}  // namespace egressd::protocol
