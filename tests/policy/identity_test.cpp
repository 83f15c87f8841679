// Clients matched by identity (proxy-authentication user, certificate name), alone or with sources.

#include "tests/policy/spec_builder.hpp"

#include <gtest/gtest.h>

namespace egressd::policy {
namespace {

using fixtures::rule;
using fixtures::spec_builder;

std::shared_ptr<const policy> identity_policy()
{
    return spec_builder{}
        .group("g", {rule{}.domain("example.com").port(443)})
        .client("alice", {}, {"g"})
        .identities({"alice"})
        .client("batch-any", {}, {"g"})
        .identities({"spiffe://corp/ns/batch/*"})
        .client("batch-workers", {}, {"g"})
        .identities({"spiffe://corp/ns/batch/sa/*"})
        .client("batch-office", {"10.1.0.0/16"}, {"g"})
        .identities({"spiffe://corp/ns/batch/sa/*"})
        .client("bob-office-only", {"10.2.0.0/16"}, {"g"})
        .identities({"bob"})
        .client("office", {"10.0.0.0/8"}, {"g"})
        .client("default", {}, {})
        .compile_ok();
}

struct identity_case {
    std::string name;
    std::optional<std::string> identity;
    std::optional<std::string> source;
    std::string expected;  // client name
};

class policy_identity_match : public ::testing::TestWithParam<identity_case> {};

TEST_P(policy_identity_match, picks_the_most_specific_client)
{
    const auto& c = GetParam();
    auto p = identity_policy();
    ASSERT_TRUE(p);
    client_facts facts;
    facts.identity = c.identity;
    if (c.source) {
        facts.source = address::parse(*c.source);
    }
    auto id = p->match_client(facts);
    ASSERT_TRUE(id.has_value());
    EXPECT_EQ(p->client_name(*id), c.expected);
}

INSTANTIATE_TEST_SUITE_P(
    cases, policy_identity_match,
    ::testing::Values(
        identity_case{"exact_identity", "alice", "192.0.2.1", "alice"},
        identity_case{"exact_is_case_sensitive", "Alice", "192.0.2.1", "default"},
        identity_case{"identity_beats_source", "alice", "10.9.9.9", "alice"},
        identity_case{"longest_prefix_wins", "spiffe://corp/ns/batch/sa/worker", "192.0.2.1", "batch-workers"},
        identity_case{"shorter_prefix", "spiffe://corp/ns/batch/job/7", "192.0.2.1", "batch-any"},
        identity_case{"same_prefix_more_specific_source", "spiffe://corp/ns/batch/sa/worker", "10.1.2.3",
                      "batch-office"},
        identity_case{"prefix_is_not_a_substring_match", "spiffe://corp/ns/batchx/sa/worker", "192.0.2.1",
                      "default"},
        identity_case{"identity_and_source_both_needed", "bob", "10.2.0.5", "bob-office-only"},
        identity_case{"identity_without_its_source_falls_back", "bob", "10.3.0.5", "office"},
        identity_case{"identity_without_any_source", "bob", std::nullopt, "default"},
        identity_case{"no_identity_source_only", std::nullopt, "10.1.2.3", "office"},
        identity_case{"identity_clients_never_match_by_source_alone", std::nullopt, "10.2.0.5", "office"},
        identity_case{"unknown_identity_known_source", "mallory", "10.5.5.5", "office"},
        identity_case{"mapped_source", "bob", "::ffff:10.2.0.5", "bob-office-only"}),
    [](const ::testing::TestParamInfo<identity_case>& param_info) { return param_info.param.name; });

TEST(policy_identity_compile, same_identity_and_sources_in_two_clients_is_an_error)
{
    auto result = spec_builder{}
                      .group("g", {rule{}.domain("example.com").port(443)})
                      .client("a", {"10.0.0.0/8"}, {"g"})
                      .identities({"svc"})
                      .client("b", {"10.0.0.0/8"}, {"g"})
                      .identities({"svc"})
                      .compile();
    EXPECT_FALSE(result.snapshot);
    ASSERT_EQ(result.errors.size(), 1u);
    EXPECT_NE(result.errors[0].message.find("identity 'svc' of client 'b' is also an identity of client 'a'"),
              std::string::npos)
        << result.errors[0].message;
}

TEST(policy_identity_compile, same_identity_different_sources_is_fine)
{
    auto result = spec_builder{}
                      .group("g", {rule{}.domain("example.com").port(443)})
                      .client("a", {"10.0.0.0/8"}, {"g"})
                      .identities({"svc"})
                      .client("b", {"192.168.0.0/16"}, {"g"})
                      .identities({"svc"})
                      .compile();
    EXPECT_TRUE(result.snapshot);
    EXPECT_TRUE(result.errors.empty());
    EXPECT_TRUE(result.warnings.empty());
}

TEST(policy_identity_compile, identity_only_client_is_not_warned_about_missing_sources)
{
    auto result = spec_builder{}
                      .group("g", {rule{}.domain("example.com").port(443)})
                      .client("a", {}, {"g"})
                      .identities({"svc"})
                      .compile();
    EXPECT_TRUE(result.warnings.empty());
}

}  // namespace
}  // namespace egressd::policy
