#include "policy/policy.hpp"
#include "policy/string_table.hpp"
#include "spec_builder.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <unordered_map>
#include <utility>
#include <string>
#include <vector>

// Correctness at a realistic size: many groups sharing keys exercise the index paths that a handful of rules
// never reaches (binary search per group vs. scanning a key's entries). No timings are asserted: that is bench/.

namespace egressd::policy {
namespace {

using namespace fixtures;

constexpr int group_count = 2000;
constexpr int rules_per_group = 50;

std::string team(int g) { return "team" + std::to_string(g); }

// Rule 0 of every group is the shared ".debian.org"; rule r > 0 names svcR.teamG.example, every seventh
// one as a wildcard so that parent-key lookups happen too.
std::string pattern_text(int g, int r)
{
    std::string base = "svc" + std::to_string(r) + "." + team(g) + ".example";
    return r % 7 == 0 ? "*." + base : base;
}

std::string host_for(int g, int r)
{
    std::string base = "svc" + std::to_string(r) + "." + team(g) + ".example";
    return r % 7 == 0 ? "a." + base : base;
}

// Client g sits in 10.(g / 256).(g % 256).0/24.
std::string source_net(int g) { return "10." + std::to_string(g / 256) + "." + std::to_string(g % 256) + ".0/24"; }
std::string source_addr(int g) { return "10." + std::to_string(g / 256) + "." + std::to_string(g % 256) + ".5"; }

policy_spec big_spec()
{
    policy_spec spec;
    spec.files = {"big.yaml"};
    spec.groups.reserve(group_count);
    for (int g = 0; g < group_count; ++g) {
        group_spec group;
        group.name = team(g);
        group.rules.reserve(rules_per_group);
        group.rules.push_back(rule{}.domain(".debian.org").port(443));
        for (int r = 1; r < rules_per_group; ++r) {
            group.rules.push_back(rule{}.domain(pattern_text(g, r)).port(443));
        }
        spec.groups.push_back(std::move(group));
    }
    for (int g = 0; g < group_count; ++g) {
        client_spec c;
        c.name = "client" + std::to_string(g);
        c.sources.push_back({net(source_net(g)), {}});
        c.groups.push_back({team(g), {}});
        spec.clients.push_back(std::move(c));
    }
    client_spec pair;
    pair.name = "pair";
    pair.sources.push_back({net("172.16.0.0/24"), {}});
    pair.groups = {{team(6), {}}, {team(5), {}}};
    spec.clients.push_back(std::move(pair));
    client_spec everyone;
    everyone.name = "everyone";
    everyone.sources.push_back({net("172.16.1.0/24"), {}});
    for (int g = group_count - 1; g >= 0; --g) {
        everyone.groups.push_back({team(g), {}});
    }
    spec.clients.push_back(std::move(everyone));
    spec.deny.push_back(rule{}.domain(".mirror.debian.org"));
    spec.deny.push_back(rule{}.domain(host_for(7, 3)).port(443));
    return spec;
}

class scale : public ::testing::Test {
protected:
    static void SetUpTestSuite()
    {
        auto result = policy::compile(big_spec());
        errors_ = result.errors.size();
        warnings_ = result.warnings.size();
        snapshot_ = result.snapshot;
    }
    static void TearDownTestSuite() { snapshot_.reset(); }

    static decision ask(const std::string& source, const std::string& host, std::uint16_t port)
    {
        client_facts facts{addr(source)};
        return snapshot_->decide_name(snapshot_->match_client(facts), target(host), port, t0);
    }

    static std::string rule_name(const decision& d)
    {
        if (!d.rule) {
            return "(none)";
        }
        auto v = snapshot_->describe(*d.rule);
        return std::string(v.group) + "#" + std::to_string(v.index);
    }

    static void expect(const std::string& name, const std::string& source, const std::string& host,
                       std::uint16_t port, verdict outcome, reason why, const std::string& rule)
    {
        SCOPED_TRACE(name);
        auto d = ask(source, host, port);
        EXPECT_EQ(to_string(d.outcome), to_string(outcome));
        EXPECT_EQ(to_string(d.why), to_string(why));
        EXPECT_EQ(rule_name(d), rule);
    }

    static inline std::shared_ptr<const policy> snapshot_;
    static inline std::size_t errors_ = 0;
    static inline std::size_t warnings_ = 0;
};

TEST_F(scale, compiles_cleanly)
{
    EXPECT_EQ(errors_, 0u);
    // Nothing is shadowed or unused: any warning here is a false positive of the shadow checks.
    EXPECT_EQ(warnings_, 0u);
    ASSERT_TRUE(snapshot_);
    auto s = snapshot_->stats();
    EXPECT_EQ(s.groups, static_cast<std::size_t>(group_count));
    EXPECT_EQ(s.rules, static_cast<std::size_t>(group_count * rules_per_group));
    // Allow patterns only; the deny list is counted in deny_rules.
    EXPECT_EQ(s.domain_patterns, static_cast<std::size_t>(group_count * rules_per_group));
    EXPECT_EQ(s.clients, static_cast<std::size_t>(group_count + 2));
    EXPECT_EQ(s.deny_rules, 2u);
}

TEST_F(scale, each_client_reaches_its_own_rules_only)
{
    ASSERT_TRUE(snapshot_);
    for (int g : {0, 1, 255, 256, 1000, 1999}) {
        for (int r : {1, 7, 25, 49}) {
            std::string tag = "client" + std::to_string(g) + "_rule" + std::to_string(r);
            expect(tag + "_own", source_addr(g), host_for(g, r), 443, verdict::allow, reason::allowed,
                   team(g) + "#" + std::to_string(r));
            expect(tag + "_port", source_addr(g), host_for(g, r), 80, verdict::deny, reason::port_not_allowed,
                   team(g) + "#" + std::to_string(r));
            int other = (g + 1) % group_count;
            expect(tag + "_neighbours", source_addr(g), host_for(other, r), 443, verdict::deny,
                   reason::no_matching_rule, "(none)");
        }
    }
    expect("no_client_for_source", "10.9.0.5", host_for(0, 1), 443, verdict::deny, reason::unknown_client,
           "(none)");
}

TEST_F(scale, shared_key_resolves_to_the_asking_clients_group)
{
    ASSERT_TRUE(snapshot_);
    for (int g : {0, 2, 999, 1500, 1999}) {
        std::string tag = "client" + std::to_string(g);
        expect(tag + "_subdomain", source_addr(g), "deb.debian.org", 443, verdict::allow, reason::allowed,
               team(g) + "#0");
        expect(tag + "_apex", source_addr(g), "debian.org", 443, verdict::allow, reason::allowed, team(g) + "#0");
        expect(tag + "_port", source_addr(g), "deb.debian.org", 80, verdict::deny, reason::port_not_allowed,
               team(g) + "#0");
        expect(tag + "_deny_wins", source_addr(g), "ftp.mirror.debian.org", 443, verdict::deny,
               reason::explicit_deny, "deny#0");
    }
    // A client with two groups: the lower group index is offered first, and both groups' own keys work.
    expect("pair_shared", "172.16.0.9", "deb.debian.org", 443, verdict::allow, reason::allowed, team(5) + "#0");
    expect("pair_first", "172.16.0.9", host_for(5, 2), 443, verdict::allow, reason::allowed, team(5) + "#2");
    expect("pair_second", "172.16.0.9", host_for(6, 14), 443, verdict::allow, reason::allowed, team(6) + "#14");
    expect("pair_not_third", "172.16.0.9", host_for(7, 2), 443, verdict::deny, reason::no_matching_rule, "(none)");
    expect("pair_deny", "172.16.0.9", "a.mirror.debian.org", 443, verdict::deny, reason::explicit_deny, "deny#0");
    // A client with every group takes the other lookup path (few entries per group at a key).
    expect("everyone_shared", "172.16.1.9", "deb.debian.org", 443, verdict::allow, reason::allowed, team(0) + "#0");
    expect("everyone_own", "172.16.1.9", host_for(1234, 2), 443, verdict::allow, reason::allowed,
           team(1234) + "#2");
    expect("everyone_wildcard", "172.16.1.9", host_for(1234, 21), 443, verdict::allow, reason::allowed,
           team(1234) + "#21");
    expect("everyone_deny", "172.16.1.9", "mirror.debian.org", 80, verdict::deny, reason::explicit_deny, "deny#0");
}

TEST_F(scale, deny_of_one_name_spares_the_others)
{
    ASSERT_TRUE(snapshot_);
    expect("denied_on_443", source_addr(7), host_for(7, 3), 443, verdict::deny, reason::explicit_deny, "deny#1");
    expect("same_name_other_port", source_addr(7), host_for(7, 3), 80, verdict::deny, reason::port_not_allowed,
           team(7) + "#3");
    expect("same_client_other_rule", source_addr(7), host_for(7, 4), 443, verdict::allow, reason::allowed,
           team(7) + "#4");
}

// The index compares the high half of a key's hash (its tag) before the key itself. Two names sharing the
// tag and the first probe slot (low 4 bits: the table has at least 16 slots) must still find their own rules,
// and a name sharing both with an indexed key must find nothing.
std::optional<std::pair<std::string, std::string>> names_with_equal_tags()
{
    std::unordered_map<std::uint64_t, std::string> seen;
    for (int i = 0; i < 4'000'000; ++i) {
        std::string name = "k" + std::to_string(i) + ".example";
        std::uint64_t h = string_table::hash(name);
        std::uint64_t tag_and_slot = (h >> 32) << 4 | (h & 15);
        auto [it, inserted] = seen.try_emplace(tag_and_slot, name);
        if (!inserted) {
            return std::pair{it->second, name};
        }
    }
    return std::nullopt;
}

TEST(domain_index_tags, equal_tags_resolve_to_their_own_keys)
{
    auto pair = names_with_equal_tags();
    if (!pair) {
        GTEST_SKIP() << "no two names with equal hash tags found";
    }
    const auto& [first, second] = *pair;
    SCOPED_TRACE(first + " / " + second);
    auto both = spec_builder{}
                    .group("a", {rule{}.domain(first).port(443)})
                    .group("b", {rule{}.domain(second).port(443)})
                    .client("default", {}, {"a", "b"})
                    .compile_ok();
    ASSERT_TRUE(both);
    for (const auto& [host, group] : {std::pair{first, "a"}, std::pair{second, "b"}}) {
        auto d = both->decide_name(both->find_client("default"), target(host), 443, t0);
        EXPECT_EQ(d.why, reason::allowed) << host;
        ASSERT_TRUE(d.rule.has_value());
        EXPECT_EQ(both->describe(*d.rule).group, group);
    }
    auto only_first = spec_builder{}
                          .group("a", {rule{}.domain(first).port(443)})
                          .client("default", {}, {"a"})
                          .compile_ok();
    ASSERT_TRUE(only_first);
    auto d = only_first->decide_name(only_first->find_client("default"), target(second), 443, t0);
    EXPECT_EQ(d.why, reason::no_matching_rule);
    EXPECT_FALSE(d.rule.has_value());
}

}  // namespace
}  // namespace egressd::policy
