// A group's upstream_proxy: where its allowed traffic goes (a parent proxy, direct, or the server's), how a
// mistake is reported (file:line:column), and how a connection through a parent is decided: the name phase for
// the destination, the address guard for the parent.

#include "policy/connection.hpp"
#include "tests/config/policy_text.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <ostream>
#include <string>
#include <vector>

namespace egressd::config {
namespace {

using test::lines;
using test::located;
namespace pol = egressd::policy;

const pol::time_point now{std::chrono::sys_days{std::chrono::year{2026} / 1 / 1}};

// Four groups, one client in all of them:
//   1 version: 1
//   2 address_guard: <guard line, or a comment>
//   3 groups:
//   4   corp:     through its own parent          (line 6 holds its upstream_proxy, the value at column 21)
//   9   inside:   direct
//  14   plain:    nothing said: the server's
//  18   six:      a parent by IPv6 literal, default port
std::string routed_policy(std::string_view guard_line = "# no exceptions", std::string_view mode_line = "# enforce")
{
    return lines({
        "version: 1",                                      // 1
        guard_line,                                        // 2
        "groups:",                                         // 3
        "  corp:",                                         // 4
        "    description: through the corporate proxy",    // 5
        "    upstream_proxy: http://proxy.corp.example:8080",  // 6
        "    rules:",                                      // 7
        "      - {ports: [443], destinations: [api.example.com]}",  // 8
        "  inside:",                                       // 9
        "    upstream_proxy: direct",                      // 10
        "    rules:",                                      // 11
        "      - {ports: [443], destinations: [git.internal.example, 198.51.100.7]}",  // 12
        "      - {ports: [80], destinations: [10.1.2.3/32]}",  // 13
        "  plain:",                                        // 14
        "    rules:",                                      // 15
        "      - {ports: [443], destinations: [docs.example.org]}",  // 16
        "      - {ports: [443], destinations: [203.0.113.9]}",  // 17
        "  six:",                                          // 18
        "    upstream_proxy: 'http://[2001:db8::3128]'",   // 19
        "    rules:",                                      // 20
        "      - {ports: [443], destinations: [six.example.net]}",  // 21
        "clients:",                                        // 22
        "  app:",                                          // 23
        "    sources: [10.0.0.0/8]",                       // 24
        "    groups: [corp, inside, plain, six]",          // 25
        std::string(mode_line),                            // 26
    });
}

struct routed : ::testing::Test {
    void SetUp() override { load(routed_policy()); }

    void load(const std::string& text)
    {
        loaded = load_policy_texts({{"policy.yaml", text}});
        ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
        client = loaded.snapshot->find_client("app");
        ASSERT_TRUE(client.has_value());
    }

    pol::decision name(std::string_view target, std::uint16_t port = 443) const
    {
        auto h = pol::host::parse(target);
        return loaded.snapshot->decide_name(client, *h.value, port, now);
    }

    const pol::upstream_route& route(std::string_view target, std::uint16_t port = 443) const
    {
        return loaded.snapshot->route_for(name(target, port));
    }

    loaded_policy loaded;
    std::optional<pol::client_id> client;
};

TEST_F(routed, a_group_names_its_own_parent)
{
    const auto& r = route("api.example.com");
    EXPECT_EQ(r.kind, pol::route_kind::parent);
    EXPECT_EQ(r.parent.host, "proxy.corp.example");
    EXPECT_EQ(r.parent.port, 8080);
    EXPECT_EQ(r.parent.to_string(), "proxy.corp.example:8080");
    EXPECT_EQ(r.where.line, 6u);
    EXPECT_EQ(r.where.column, 21u);
}

TEST_F(routed, direct_overrides_the_server_parent_for_names_and_literals)
{
    EXPECT_EQ(route("git.internal.example").kind, pol::route_kind::direct);
    EXPECT_EQ(route("198.51.100.7").kind, pol::route_kind::direct);
    EXPECT_EQ(route("10.1.2.3", 80).kind, pol::route_kind::direct);
}

TEST_F(routed, a_group_that_says_nothing_inherits)
{
    EXPECT_EQ(route("docs.example.org").kind, pol::route_kind::inherit);
    EXPECT_EQ(route("203.0.113.9").kind, pol::route_kind::inherit);
}

TEST_F(routed, an_ipv6_parent_gets_the_default_port_and_brackets_in_text)
{
    const auto& r = route("six.example.net");
    ASSERT_EQ(r.kind, pol::route_kind::parent);
    EXPECT_EQ(r.parent.host, "2001:db8::3128");
    EXPECT_EQ(r.parent.port, 3128);
    EXPECT_EQ(r.parent.to_string(), "[2001:db8::3128]:3128");
}

TEST_F(routed, denials_have_no_route_of_their_own)
{
    // The deny carries the nearest miss (a rule of corp), yet nothing goes anywhere: the route is not corp's.
    auto d = name("api.example.com", 8443);
    EXPECT_EQ(d.why, pol::reason::port_not_allowed);
    EXPECT_EQ(loaded.snapshot->route_for(d).kind, pol::route_kind::inherit);
    EXPECT_EQ(route("nowhere.example").kind, pol::route_kind::inherit);
}

TEST_F(routed, report_mode_lets_misses_through_the_server_route)
{
    ASSERT_NO_FATAL_FAILURE(load(routed_policy("# no exceptions", "    mode: report")));
    auto d = name("nowhere.example");
    EXPECT_EQ(d.outcome, pol::verdict::would_deny);
    EXPECT_EQ(loaded.snapshot->route_for(d).kind, pol::route_kind::inherit);
}

TEST_F(routed, a_guarded_parent_address_is_refused)
{
    auto d = name("api.example.com");
    ASSERT_TRUE(d.allowed());
    auto parent = *pol::address::parse("10.20.30.40");
    auto vetted = pol::vet_parent(*loaded.snapshot, d, parent);
    EXPECT_EQ(vetted.outcome, pol::verdict::deny);
    EXPECT_EQ(vetted.why, pol::reason::address_guard);
    ASSERT_TRUE(vetted.guard.has_value());
    EXPECT_EQ(vetted.guard->category, pol::guard_category::private_network);
    // A public parent passes untouched.
    auto public_parent = *pol::address::parse("192.0.0.170");
    EXPECT_EQ(pol::vet_parent(*loaded.snapshot, d, public_parent).why, pol::reason::allowed);
    // The guard sees through IPv6 embeddings of a guarded address, as for destinations.
    auto mapped = *pol::address::parse("::ffff:127.0.0.1");
    EXPECT_EQ(pol::vet_parent(*loaded.snapshot, d, mapped).why, pol::reason::address_guard);
}

TEST_F(routed, a_cidr_rule_does_not_open_the_guard_for_a_parent)
{
    // inside's rule names 10.1.2.3/32 as a destination; a parent there is still guarded.
    auto d = name("api.example.com");
    auto parent = *pol::address::parse("10.1.2.3");
    EXPECT_EQ(pol::vet_parent(*loaded.snapshot, d, parent).why, pol::reason::address_guard);
}

TEST_F(routed, address_guard_except_lets_a_private_parent_through)
{
    ASSERT_NO_FATAL_FAILURE(load(routed_policy("address_guard: {except: [private]}")));
    auto d = name("api.example.com");
    auto parent = *pol::address::parse("10.20.30.40");
    EXPECT_EQ(pol::vet_parent(*loaded.snapshot, d, parent).why, pol::reason::allowed);
    auto loopback = *pol::address::parse("127.0.0.1");
    EXPECT_EQ(pol::vet_parent(*loaded.snapshot, d, loopback).why, pol::reason::address_guard);
}

TEST_F(routed, report_mode_only_reports_a_guarded_parent)
{
    ASSERT_NO_FATAL_FAILURE(load(routed_policy("# no exceptions", "    mode: report")));
    auto d = name("api.example.com");
    auto vetted = pol::vet_parent(*loaded.snapshot, d, *pol::address::parse("10.20.30.40"));
    EXPECT_EQ(vetted.outcome, pol::verdict::would_deny);
    EXPECT_EQ(vetted.why, pol::reason::address_guard);
    EXPECT_TRUE(vetted.allows_traffic());
}

TEST_F(routed, an_established_connection_through_a_parent_is_decided_by_name_and_parent)
{
    auto host = *pol::host::parse("api.example.com").value;
    pol::established e{{.source = pol::address::parse("10.9.9.9")}, host, 443, *pol::address::parse("192.0.0.170"),
                       std::nullopt, true};
    // The parent's address would never pass the address phase as a destination of api.example.com; by name it does.
    EXPECT_EQ(pol::decide_established(*loaded.snapshot, e, now).why, pol::reason::allowed);
    e.through_parent = false;
    EXPECT_EQ(pol::decide_established(*loaded.snapshot, e, now).why, pol::reason::allowed)
        << "a public address: the address phase repeats the name phase";
    e.through_parent = true;
    e.connected = *pol::address::parse("169.254.169.254");
    auto d = pol::decide_established(*loaded.snapshot, e, now);
    EXPECT_EQ(d.why, pol::reason::address_guard);
    ASSERT_TRUE(d.guard.has_value());
    EXPECT_EQ(d.guard->category, pol::guard_category::cloud_metadata);
}

TEST_F(routed, a_policy_change_revokes_by_name_through_a_parent)
{
    auto host = *pol::host::parse("api.example.com").value;
    pol::established e{{.source = pol::address::parse("10.9.9.9")}, host, 443, *pol::address::parse("192.0.0.170"),
                       std::nullopt, true};
    auto text = routed_policy();
    text.replace(text.find("api.example.com"), 15, "www.example.com");
    ASSERT_NO_FATAL_FAILURE(load(text));
    EXPECT_EQ(pol::decide_established(*loaded.snapshot, e, now).why, pol::reason::no_matching_rule);
}

TEST_F(routed, expiry_through_a_parent_rests_on_the_name_phase)
{
    auto text = routed_policy();
    text.replace(text.find("{ports: [443], destinations: [api.example.com]}"), 47,
                 "{ports: [443], destinations: [api.example.com], expires: '2026-06-01T00:00:00Z'}");
    ASSERT_NO_FATAL_FAILURE(load(text));
    auto host = *pol::host::parse("api.example.com").value;
    pol::established e{{.source = pol::address::parse("10.9.9.9")}, host, 443, *pol::address::parse("192.0.0.170"),
                       std::nullopt, true};
    auto expires = pol::expiry_of(*loaded.snapshot, e, now);
    ASSERT_TRUE(expires.has_value());
    EXPECT_EQ(*expires, pol::time_point{std::chrono::sys_days{std::chrono::year{2026} / 6 / 1}});
}

// --- mistakes ----------------------------------------------------------------------------------------------

struct route_error {
    std::string name;
    std::string value;  // written as line 4's upstream_proxy value, at column 21
    std::string fragment;
};

void PrintTo(const route_error& c, std::ostream* os) { *os << c.name; }

class upstream_proxy_error : public ::testing::TestWithParam<route_error> {};

TEST_P(upstream_proxy_error, is_reported_once_with_its_location)
{
    const auto& c = GetParam();
    auto text = lines({"version: 1", "groups:", "  web:", "    upstream_proxy: " + c.value, "    rules:",
                       "      - {ports: [443], destinations: [api.example.com]}", "clients:", "  app:",
                       "    sources: [10.0.0.0/8]", "    groups: [web]"});
    auto loaded = load_policy_texts({{"policy.yaml", text}});
    EXPECT_EQ(loaded.snapshot, nullptr);
    ASSERT_EQ(loaded.errors.size(), 1u) << test::show(loaded);
    test::expect_diagnostic(loaded.errors[0], located{"policy.yaml", 4, 21, c.fragment});
}

INSTANTIATE_TEST_SUITE_P(
    group, upstream_proxy_error,
    ::testing::Values(
        route_error{"other_word", "none",
                    "expected upstream_proxy of group 'web': direct, or http://host:port (a parent proxy); found 'none'"},
        route_error{"capitalized_direct", "DIRECT", "direct, or http://host:port"},
        route_error{"https_parent", "https://proxy.example:3128", "direct, or http://host:port"},
        route_error{"socks_parent", "socks5://proxy.example:1080", "found 'socks5://proxy.example:1080'"},
        route_error{"with_path", "http://proxy.example:3128/path", "without a path"},
        route_error{"with_password", "http://user:secret@proxy.example:3128",
                    "a user name or password in upstream_proxy of group 'web' is not allowed"},
        route_error{"bad_port", "http://proxy.example:99999", "invalid port '99999' in upstream_proxy of group 'web'"},
        route_error{"unbracketed_v6", "http://2001:db8::1:3128", "(IPv6 in brackets)"},
        route_error{"bad_host", "http://proxy..example:3128", "invalid host in upstream_proxy of group 'web'"},
        route_error{"a_list", "[http://proxy.example:3128]", "a parent proxy URL"}),
    test::param_name<route_error>);

}  // namespace
}  // namespace egressd::config
