// The fake DNS server checked with hand-built queries, so resolver failures point at the resolver.

#include "proxy/dns/fake_dns_server.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/udp.hpp>

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
using udp = asio::ip::udp;
using egressd::test_support::fake_dns_server;

std::vector<std::uint8_t> make_query(std::uint16_t id, const std::string& name, std::uint16_t qtype)
{
    std::vector<std::uint8_t> q = {static_cast<std::uint8_t>(id >> 8), static_cast<std::uint8_t>(id & 0xff),
                                   0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
    std::size_t start = 0;
    while (start < name.size()) {
        auto dot = name.find('.', start);
        if (dot == std::string::npos) {
            dot = name.size();
        }
        q.push_back(static_cast<std::uint8_t>(dot - start));
        q.insert(q.end(), name.begin() + static_cast<std::ptrdiff_t>(start),
                 name.begin() + static_cast<std::ptrdiff_t>(dot));
        start = dot + 1;
    }
    q.push_back(0);
    q.push_back(static_cast<std::uint8_t>(qtype >> 8));
    q.push_back(static_cast<std::uint8_t>(qtype & 0xff));
    q.push_back(0);
    q.push_back(1);
    return q;
}

// Sends one query and returns the reply, or nothing within a generous limit.
std::vector<std::uint8_t> ask(const fake_dns_server& server, const std::vector<std::uint8_t>& query)
{
    asio::io_context io;
    udp::socket socket(io, udp::endpoint(asio::ip::make_address_v4("127.0.0.1"), 0));
    const udp::endpoint to(asio::ip::make_address_v4("127.0.0.1"), server.port());
    socket.send_to(asio::buffer(query), to);
    std::array<std::uint8_t, 4096> buffer{};
    std::vector<std::uint8_t> reply;
    socket.async_receive(asio::buffer(buffer), [&](boost::system::error_code ec, std::size_t n) {
        if (!ec) {
            reply.assign(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(n));
        }
    });
    io.run_for(std::chrono::seconds(5));
    return reply;
}

std::uint16_t read16(const std::vector<std::uint8_t>& m, std::size_t at)
{
    return static_cast<std::uint16_t>(m.at(at) << 8 | m.at(at + 1));
}

TEST(dns_fake_server, answers_a_with_compressed_records)
{
    fake_dns_server server;
    server.set("Api.Example", {.a = {"192.0.2.10", "192.0.2.11"}, .ttl = 42});
    const auto query = make_query(0x1234, "api.example", fake_dns_server::type_a);
    const auto reply = ask(server, query);
    ASSERT_GE(reply.size(), query.size());
    EXPECT_EQ(read16(reply, 0), 0x1234);
    EXPECT_EQ(reply[2] & 0x80, 0x80);  // QR
    EXPECT_EQ(reply[3] & 0x0f, 0);     // NOERROR
    EXPECT_EQ(read16(reply, 4), 1);    // QDCOUNT
    EXPECT_EQ(read16(reply, 6), 2);    // ANCOUNT
    std::size_t pos = query.size();
    for (const int last : {10, 11}) {
        EXPECT_EQ(read16(reply, pos), 0xc00c);
        EXPECT_EQ(read16(reply, pos + 2), fake_dns_server::type_a);
        EXPECT_EQ(read16(reply, pos + 6), 0);
        EXPECT_EQ(read16(reply, pos + 8), 42);
        EXPECT_EQ(read16(reply, pos + 10), 4);
        EXPECT_EQ(reply.at(pos + 12), 192);
        EXPECT_EQ(reply.at(pos + 15), last);
        pos += 16;
    }
    EXPECT_EQ(pos, reply.size());
    EXPECT_EQ(server.queries("api.example", fake_dns_server::type_a), 1u);
    EXPECT_EQ(server.queries("API.EXAMPLE."), 1u);
    EXPECT_EQ(server.qnames(), std::vector<std::string>{"api.example."});
}

TEST(dns_fake_server, nodata_for_the_other_type)
{
    fake_dns_server server;
    server.set("v4.example", {.a = {"192.0.2.1"}});
    const auto reply = ask(server, make_query(7, "v4.example", fake_dns_server::type_aaaa));
    ASSERT_GE(reply.size(), 12u);
    EXPECT_EQ(reply[3] & 0x0f, 0);
    EXPECT_EQ(read16(reply, 6), 0);
    EXPECT_EQ(server.queries("v4.example", fake_dns_server::type_aaaa), 1u);
    EXPECT_EQ(server.queries("v4.example", fake_dns_server::type_a), 0u);
}

TEST(dns_fake_server, rcodes_and_default)
{
    fake_dns_server server;
    server.set("fail.example", {.rcode = fake_dns_server::servfail});
    server.set("refuse.example", {.rcode = fake_dns_server::refused});
    EXPECT_EQ(ask(server, make_query(1, "fail.example", fake_dns_server::type_a)).at(3) & 0x0f, 2);
    EXPECT_EQ(ask(server, make_query(2, "refuse.example", fake_dns_server::type_a)).at(3) & 0x0f, 5);
    EXPECT_EQ(ask(server, make_query(3, "unknown.example", fake_dns_server::type_a)).at(3) & 0x0f, 3);
    server.set_default({.a = {"192.0.2.99"}});
    const auto reply = ask(server, make_query(4, "unknown.example", fake_dns_server::type_a));
    EXPECT_EQ(reply.at(3) & 0x0f, 0);
    EXPECT_EQ(read16(reply, 6), 1);
    EXPECT_EQ(server.total_queries(), 4u);
    server.reset_stats();
    EXPECT_EQ(server.total_queries(), 0u);
    EXPECT_TRUE(server.qnames().empty());
}

TEST(dns_fake_server, drop_counts_but_never_answers)
{
    fake_dns_server server;
    server.set("black.hole", {.drop = true});
    asio::io_context io;
    udp::socket socket(io, udp::endpoint(asio::ip::make_address_v4("127.0.0.1"), 0));
    socket.send_to(asio::buffer(make_query(9, "black.hole", fake_dns_server::type_a)),
                   udp::endpoint(asio::ip::make_address_v4("127.0.0.1"), server.port()));
    // A second, answered question proves the first was processed (and dropped) before it.
    server.set("after.example", {.a = {"192.0.2.5"}});
    const auto reply = ask(server, make_query(10, "after.example", fake_dns_server::type_a));
    EXPECT_EQ(read16(reply, 0), 10);
    EXPECT_EQ(server.queries("black.hole", fake_dns_server::type_a), 1u);
    socket.non_blocking(true);
    std::array<std::uint8_t, 512> buffer{};
    boost::system::error_code ec;
    socket.receive(asio::buffer(buffer), 0, ec);
    EXPECT_EQ(ec, asio::error::would_block);
}

TEST(dns_fake_server, rejects_bad_addresses)
{
    fake_dns_server server;
    EXPECT_THROW(server.set("x.example", {.a = {"not-an-ip"}}), std::invalid_argument);
    EXPECT_THROW(server.set("x.example", {.aaaa = {"192.0.2.1"}}), std::invalid_argument);
}

}  // namespace
