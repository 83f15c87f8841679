// A client's identities in the policy file: read into patterns, decided through match_client.

#include "config/policy_loader.hpp"
#include "tests/config/policy_text.hpp"

#include <gtest/gtest.h>

namespace egressd::config {
namespace {

using test::lines;

std::string identity_policy(std::string_view identities_line)
{
    return lines({"version: 1", "groups:", "  g:", "    rules:", "      - ports: [443]",
                  "        destinations: [example.com]", "clients:", "  svc:", std::string(identities_line),
                  "    groups: [g]"});
}

TEST(config_identities, exact_and_prefix_patterns_are_read)
{
    auto loaded = load_policy_texts({{"p.yaml", identity_policy("    identities: [alice, \"spiffe://corp/ns/batch/*\"]")}});
    ASSERT_TRUE(loaded.snapshot) << test::show(loaded);
    EXPECT_TRUE(loaded.warnings.empty()) << test::show(loaded);
    const auto& p = *loaded.snapshot;
    auto by = [&](std::string identity) {
        auto id = p.match_client(policy::client_facts{.source = std::nullopt, .identity = std::move(identity)});
        return id ? std::string(p.client_name(*id)) : std::string("(none)");
    };
    EXPECT_EQ(by("alice"), "svc");
    EXPECT_EQ(by("spiffe://corp/ns/batch/sa/worker"), "svc");
    EXPECT_EQ(by("bob"), "(none)");
    EXPECT_EQ(by("spiffe://corp/ns/batch"), "(none)");  // the pattern is "…/batch/" and more
}

struct bad_identity_case {
    std::string name;
    std::string line;
    std::uint32_t column;
};

class config_identities_refused : public ::testing::TestWithParam<bad_identity_case> {};

TEST_P(config_identities_refused, with_its_position)
{
    const auto& c = GetParam();
    auto loaded = load_policy_texts({{"p.yaml", identity_policy(c.line)}});
    EXPECT_FALSE(loaded.snapshot);
    ASSERT_EQ(loaded.errors.size(), 1u) << test::show(loaded);
    EXPECT_EQ(loaded.errors[0].where.line, 9u);
    EXPECT_EQ(loaded.errors[0].where.column, c.column);
    EXPECT_NE(loaded.errors[0].message.find("invalid identity"), std::string::npos) << loaded.errors[0].message;
}

INSTANTIATE_TEST_SUITE_P(cases, config_identities_refused,
                         ::testing::Values(bad_identity_case{"star_in_the_middle", "    identities: [\"a*b\"]", 18},
                                           bad_identity_case{"space", "    identities: [\"a b\"]", 18},
                                           bad_identity_case{"empty", "    identities: [\"\"]", 18},
                                           bad_identity_case{"non_ascii", "    identities: [\"b\xc3\xbc\"]", 18}),
                         [](const ::testing::TestParamInfo<bad_identity_case>& param_info) {
                             return param_info.param.name;
                         });

}  // namespace
}  // namespace egressd::config
