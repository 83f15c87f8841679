#include "policy/policy.hpp"
#include "spec_builder.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

namespace egressd::policy {
namespace {

using namespace fixtures;

// A diagnostic we expect: where it points, and words its message must contain.
struct expected_diagnostic {
    std::uint32_t line = 0;
    std::vector<std::string> mentions;
};

struct compile_case {
    std::string name;
    std::function<spec_builder()> build;
    std::vector<expected_diagnostic> errors;    // exactly these, in this order
    std::vector<expected_diagnostic> warnings;  // exactly these, in this order
};

std::string listing(const std::vector<diagnostic>& list)
{
    std::string out;
    for (const auto& d : list) {
        out += "\n  line " + std::to_string(d.where.line) + ": " + d.message;
    }
    return out.empty() ? " (none)" : out;
}

void expect_diagnostics(const char* kind, const std::vector<diagnostic>& actual,
                        const std::vector<expected_diagnostic>& expected)
{
    SCOPED_TRACE(kind);
    ASSERT_EQ(actual.size(), expected.size()) << "got:" << listing(actual);
    for (std::size_t i = 0; i < expected.size(); ++i) {
        EXPECT_EQ(actual[i].where.line, expected[i].line) << actual[i].message;
        for (const auto& word : expected[i].mentions) {
            EXPECT_NE(actual[i].message.find(word), std::string::npos)
                << "'" << word << "' missing from: " << actual[i].message;
        }
    }
}

class compile_diagnostics : public ::testing::TestWithParam<compile_case> {};

TEST_P(compile_diagnostics, reports_with_locations)
{
    const auto& c = GetParam();
    auto result = c.build().compile();
    expect_diagnostics("errors", result.errors, c.errors);
    expect_diagnostics("warnings", result.warnings, c.warnings);
    // A policy with errors is never partly applied.
    EXPECT_EQ(result.snapshot == nullptr, !c.errors.empty());
}

// Lines: groups at 1-9 with rules at 2, 3, 4; clients from 20 on (sources and group references follow).
spec_builder with_client(spec_builder b, std::initializer_list<std::string_view> groups)
{
    b.client("app", {"10.0.0.0/8"}, groups, {.line = 20});
    return b;
}

std::vector<compile_case> cases()
{
    return {
        {"clean",
         [] {
             return spec_builder{}
                 .group("web", {rule{}.domain("api.example.com").port(443).at_line(2)}, 1)
                 .client("app", {"10.0.0.0/8"}, {"web"}, {.line = 20})
                 .client("narrow", {"10.1.0.0/16"}, {"web"}, {.line = 30})
                 .client("default", {}, {"web"}, {.line = 40});
         },
         {},
         {}},
        {"duplicate_group",
         [] {
             return with_client(spec_builder{}
                                    .group("web", {rule{}.domain("a.example.com").port(443).at_line(2)}, 1)
                                    .group("web", {rule{}.domain("b.example.com").port(443).at_line(6)}, 5),
                                {"web"});
         },
         {{5, {"'web'", "defined twice", "test.yaml:1:1"}}},
         {}},
        {"duplicate_client",
         [] {
             return spec_builder{}
                 .group("web", {rule{}.domain("a.example.com").port(443).at_line(2)}, 1)
                 .client("app", {"10.0.0.0/8"}, {"web"}, {.line = 20})
                 .client("app", {"10.1.0.0/16"}, {"web"}, {.line = 30});
         },
         {{30, {"'app'", "defined twice", "test.yaml:20:1"}}},
         {}},
        {"undefined_group",
         [] {
             // Line 20 client, 21 source, 22 "web", 23 "missing".
             return with_client(
                 spec_builder{}.group("web", {rule{}.domain("a.example.com").port(443).at_line(2)}, 1),
                 {"web", "missing"});
         },
         {{23, {"'app'", "'missing'", "not defined"}}},
         {}},
        {"source_tie",
         [] {
             return spec_builder{}
                 .group("web", {rule{}.domain("a.example.com").port(443).at_line(2)}, 1)
                 .client("first", {"10.0.0.0/8"}, {"web"}, {.line = 20})
                 .client("second", {"192.168.0.0/16", "10.0.0.0/8"}, {"web"}, {.line = 30});
         },
         {{32, {"10.0.0.0/8", "'first'", "'second'"}}},
         {}},
        {"errors_sorted_by_place",
         [] {
             return spec_builder{}
                 .group("web", {rule{}.domain("a.example.com").port(443).at_line(2)}, 1)
                 .client("app", {"10.0.0.0/8"}, {"web", "nope"}, {.line = 20})
                 .group("web", {rule{}.domain("b.example.com").port(443).at_line(11)}, 10);
         },
         {{10, {"'web'", "defined twice"}}, {23, {"'nope'"}}},
         {}},
        {"every_v4_address",
         [] {
             return with_client(spec_builder{}.group("net", {rule{}.cidr("0.0.0.0/0").port(443).at_line(2)}, 1),
                                {"net"});
         },
         {},
         {{2, {"'net'", "0.0.0.0/0", "every address"}}}},
        {"every_v6_address",
         [] {
             return with_client(spec_builder{}.group("net", {rule{}.cidr("::/0").port(443).at_line(2)}, 1),
                                {"net"});
         },
         {},
         {{2, {"'net'", "::/0", "every address"}}}},
        {"all_ports",
         [] {
             return with_client(
                 spec_builder{}.group("web", {rule{}.domain("a.example.com").ports(1, 65535).at_line(2)}, 1),
                 {"web"});
         },
         {},
         {{2, {"'web'", "all ports"}}}},
        {"nearly_all_ports_is_fine",
         [] {
             return with_client(
                 spec_builder{}.group("web", {rule{}.domain("a.example.com").ports(1024, 65535).at_line(2)}, 1),
                 {"web"});
         },
         {},
         {}},
        {"duplicate_domain",
         [] {
             return with_client(spec_builder{}.group("web",
                                                     {rule{}.domain("api.example.com").port(443).at_line(2),
                                                      rule{}.domain("API.example.com.").port(443).at_line(3)},
                                                     1),
                                {"web"});
         },
         {},
         {{3, {"'web'", "'api.example.com'", "duplicates rule 0"}}}},
        {"duplicate_domain_in_other_groups_is_fine",
         [] {
             return with_client(
                 spec_builder{}
                     .group("web", {rule{}.domain("api.example.com").port(443).at_line(2)}, 1)
                     .group("more", {rule{}.domain("api.example.com").port(443).at_line(6)}, 5),
                 {"web", "more"});
         },
         {},
         {}},
        {"exact_shadowed_by_domain",
         [] {
             return with_client(spec_builder{}.group("web",
                                                     {rule{}.domain(".example.com").port(443).port(80).at_line(2),
                                                      rule{}.domain("api.example.com").port(443).at_line(3)},
                                                     1),
                                {"web"});
         },
         {},
         {{3, {"'web'", "'api.example.com'", "shadowed by rule 0", ".example.com"}}}},
        {"apex_shadowed_by_domain",
         [] {
             return with_client(spec_builder{}.group("web",
                                                     {rule{}.domain(".example.com").ports(1, 1024).at_line(2),
                                                      rule{}.domain("example.com").port(443).at_line(3)},
                                                     1),
                                {"web"});
         },
         {},
         {{3, {"'example.com'", "shadowed by rule 0"}}}},
        {"earlier_exact_shadowed_by_later_domain",
         [] {
             return with_client(spec_builder{}.group("web",
                                                     {rule{}.domain("api.example.com").port(443).at_line(2),
                                                      rule{}.domain(".example.com").port(443).at_line(3)},
                                                     1),
                                {"web"});
         },
         {},
         {{2, {"'api.example.com'", "shadowed by rule 1"}}}},
        {"deep_name_shadowed_by_wildcard",
         [] {
             return with_client(spec_builder{}.group("web",
                                                     {rule{}.domain("*.example.com").port(443).at_line(2),
                                                      rule{}.domain("a.b.example.com").port(443).at_line(3)},
                                                     1),
                                {"web"});
         },
         {},
         {{3, {"'a.b.example.com'", "shadowed by rule 0", "*.example.com"}}}},
        {"not_shadowed_when_ports_not_covered",
         [] {
             return with_client(spec_builder{}.group("web",
                                                     {rule{}.domain(".example.com").port(443).at_line(2),
                                                      rule{}.domain("api.example.com").port(8443).at_line(3)},
                                                     1),
                                {"web"});
         },
         {},
         {}},
        {"not_shadowed_when_range_partly_covered",
         [] {
             return with_client(spec_builder{}.group("web",
                                                     {rule{}.domain(".example.com").ports(1000, 2000).at_line(2),
                                                      rule{}.domain("api.example.com").ports(1500, 2500).at_line(3)},
                                                     1),
                                {"web"});
         },
         {},
         {}},
        {"wildcard_does_not_shadow_apex",
         [] {
             return with_client(spec_builder{}.group("web",
                                                     {rule{}.domain("*.example.com").port(443).at_line(2),
                                                      rule{}.domain("example.com").port(443).at_line(3)},
                                                     1),
                                {"web"});
         },
         {},
         {}},
        {"label_lookalike_not_shadowed",
         [] {
             return with_client(spec_builder{}.group("web",
                                                     {rule{}.domain(".example.com").port(443).at_line(2),
                                                      rule{}.domain("evil-example.com").port(443).at_line(3)},
                                                     1),
                                {"web"});
         },
         {},
         {}},
        {"not_shadowed_across_groups",
         [] {
             return with_client(spec_builder{}
                                    .group("wide", {rule{}.domain(".example.com").port(443).at_line(2)}, 1)
                                    .group("narrow", {rule{}.domain("api.example.com").port(443).at_line(6)}, 5),
                                {"wide", "narrow"});
         },
         {},
         {}},
        {"expiring_rule_does_not_shadow_lasting_one",
         [] {
             return with_client(
                 spec_builder{}.group("web",
                                      {rule{}.domain(".example.com").port(443).expires(at(3600)).at_line(2),
                                       rule{}.domain("api.example.com").port(443).at_line(3)},
                                      1),
                 {"web"});
         },
         {},
         {}},
        {"cidr_shadowed",
         [] {
             return with_client(spec_builder{}.group("net",
                                                     {rule{}.cidr("93.184.0.0/16").port(443).at_line(2),
                                                      rule{}.cidr("93.184.216.0/24").port(443).at_line(3)},
                                                     1),
                                {"net"});
         },
         {},
         {{3, {"'net'", "93.184.216.0/24", "shadowed by rule 0"}}}},
        {"cidr_shadowed_v6",
         [] {
             return with_client(spec_builder{}.group("net",
                                                     {rule{}.cidr("2606:2800:220:1::/64").port(443).at_line(2),
                                                      rule{}.cidr("2606:2800::/32").ports(1, 1024).at_line(3)},
                                                     1),
                                {"net"});
         },
         {},
         {{2, {"'net'", "2606:2800:220:1::/64", "shadowed by rule 1"}}}},
        {"cidr_duplicate",
         [] {
             return with_client(spec_builder{}.group("net",
                                                     {rule{}.cidr("93.184.216.0/24").port(443).at_line(2),
                                                      rule{}.cidr("93.184.216.0/24").port(443).at_line(3)},
                                                     1),
                                {"net"});
         },
         {},
         {{3, {"'net'", "93.184.216.0/24", "duplicates rule 0"}}}},
        {"cidr_not_shadowed_when_ports_not_covered",
         [] {
             return with_client(spec_builder{}.group("net",
                                                     {rule{}.cidr("93.184.0.0/16").port(80).at_line(2),
                                                      rule{}.cidr("93.184.216.0/24").port(443).at_line(3)},
                                                     1),
                                {"net"});
         },
         {},
         {}},
        {"cidr_not_shadowed_across_groups",
         [] {
             return with_client(spec_builder{}
                                    .group("wide", {rule{}.cidr("93.184.0.0/16").port(443).at_line(2)}, 1)
                                    .group("narrow", {rule{}.cidr("93.184.216.0/24").port(443).at_line(6)}, 5),
                                {"wide", "narrow"});
         },
         {},
         {}},
        {"unused_group",
         [] {
             return with_client(spec_builder{}
                                    .group("web", {rule{}.domain("a.example.com").port(443).at_line(2)}, 1)
                                    .group("spare", {rule{}.domain("b.example.com").port(443).at_line(6)}, 5),
                                {"web"});
         },
         {},
         {{5, {"'spare'", "not used"}}}},
        {"client_without_sources",
         [] {
             return spec_builder{}
                 .group("web", {rule{}.domain("a.example.com").port(443).at_line(2)}, 1)
                 .client("app", {}, {"web"}, {.line = 20})
                 .client("default", {}, {"web"}, {.line = 30});
         },
         {},
         {{20, {"'app'", "no sources"}}}},
        {"warnings_sorted_by_place",
         [] {
             return spec_builder{}
                 .group("spare", {rule{}.domain("b.example.com").port(443).at_line(11)}, 10)
                 .group("net", {rule{}.cidr("0.0.0.0/0").ports(1, 65535).at_line(2)}, 1)
                 .client("app", {}, {"net"}, {.line = 20});
         },
         {},
         {{2, {"every address"}}, {2, {"all ports"}}, {10, {"'spare'"}}, {20, {"no sources"}}}},
    };
}

std::string case_name(const ::testing::TestParamInfo<compile_case>& param_info) { return param_info.param.name; }

INSTANTIATE_TEST_SUITE_P(all, compile_diagnostics, ::testing::ValuesIn(cases()), case_name);

TEST(compile, counts_what_it_compiled)
{
    auto p = spec_builder{}
                 .group("web", {rule{}.domain("a.example.com").domain("*.b.example.com").port(443),
                                rule{}.cidr("93.184.216.0/24").cidr("2606:2800::/32").port(443)})
                 .group("more", {rule{}.domain("c.example.com").port(443)})
                 .client("app", {"10.0.0.0/8"}, {"web", "more"})
                 .client("default", {}, {"web"})
                 .deny(rule{}.domain("blocked.example.com"))
                 .compile_ok();
    ASSERT_TRUE(p);
    auto s = p->stats();
    EXPECT_EQ(s.clients, 2u);
    EXPECT_EQ(s.groups, 2u);
    EXPECT_EQ(s.rules, 3u);
    EXPECT_EQ(s.deny_rules, 1u);
    EXPECT_EQ(s.domain_patterns, 3u);  // allow rules only: the deny pattern is not counted here
    EXPECT_EQ(s.cidrs, 2u);
}

}  // namespace
}  // namespace egressd::policy
