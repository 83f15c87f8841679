#include "policy/domain.hpp"
#include "spec_builder.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace egressd::policy {
namespace {

using namespace fixtures;

template <typename Case>
std::string case_name(const ::testing::TestParamInfo<Case>& info)
{
    return info.param.name;
}

std::string long_label(std::size_t n) { return std::string(n, 'a'); }

// A name of exactly n characters made of 63-character labels and a short last label.
std::string long_name(std::size_t n)
{
    std::string out;
    while (out.size() + 64 < n) {
        out += long_label(63) + ".";
    }
    out += long_label(n - out.size() - 4) + ".com";
    return out;
}

// --- Pattern syntax -------------------------------------------------------------------------------------------

struct pattern_case {
    std::string name;
    std::string text;
    std::optional<domain_pattern> expected;  // nullopt: error expected
    std::string error_mentions;
};

class pattern_parse : public ::testing::TestWithParam<pattern_case> {};

TEST_P(pattern_parse, normalizes_or_explains)
{
    const auto& c = GetParam();
    auto p = parse_domain_pattern(c.text);
    if (!c.expected) {
        EXPECT_FALSE(p.value.has_value()) << "parsed as " << p.value->to_string();
        EXPECT_NE(p.error.find(c.error_mentions), std::string::npos) << p.error;
        return;
    }
    ASSERT_TRUE(p.value.has_value()) << p.error;
    EXPECT_EQ(p.value->kind, c.expected->kind);
    EXPECT_EQ(p.value->name, c.expected->name);
    EXPECT_EQ(p.value->to_string(), c.expected->to_string());
}

domain_pattern exact(std::string n) { return {pattern_kind::exact, std::move(n)}; }
domain_pattern subdomains(std::string n) { return {pattern_kind::subdomains, std::move(n)}; }
domain_pattern whole_domain(std::string n) { return {pattern_kind::domain, std::move(n)}; }

INSTANTIATE_TEST_SUITE_P(
    accepted, pattern_parse,
    ::testing::Values(
        pattern_case{"exact", "api.example.com", exact("api.example.com"), ""},
        pattern_case{"subdomains", "*.example.com", subdomains("example.com"), ""},
        pattern_case{"domain", ".example.com", whole_domain("example.com"), ""},
        pattern_case{"upper_case", "API.Example.COM", exact("api.example.com"), ""},
        pattern_case{"upper_case_wildcard", "*.EXAMPLE.com", subdomains("example.com"), ""},
        pattern_case{"one_trailing_dot", "example.com.", exact("example.com"), ""},
        pattern_case{"wildcard_trailing_dot", "*.example.com.", subdomains("example.com"), ""},
        pattern_case{"domain_trailing_dot", ".example.com.", whole_domain("example.com"), ""},
        pattern_case{"punycode", "xn--bcher-kva.de", exact("xn--bcher-kva.de"), ""},
        pattern_case{"underscore", "_dmarc.example.com", exact("_dmarc.example.com"), ""},
        pattern_case{"inner_hyphen", "my-host.example.com", exact("my-host.example.com"), ""},
        pattern_case{"single_label", "localhost", exact("localhost"), ""},
        pattern_case{"numeric_first_label", "123.example.com", exact("123.example.com"), ""},
        pattern_case{"label_63", long_label(63) + ".com", exact(long_label(63) + ".com"), ""},
        pattern_case{"name_253", long_name(253), exact(long_name(253)), ""},
        pattern_case{"name_253_trailing_dot", long_name(253) + ".", exact(long_name(253)), ""}),
    case_name<pattern_case>);

INSTANTIATE_TEST_SUITE_P(
    refused, pattern_parse,
    ::testing::Values(
        pattern_case{"two_trailing_dots", "example.com..", std::nullopt, "empty label"},
        pattern_case{"wildcard_inside_label", "a*.example.com", std::nullopt, "leftmost label"},
        pattern_case{"wildcard_suffix_label", "*a.example.com", std::nullopt, "leftmost label"},
        pattern_case{"wildcard_middle_label", "foo.*.com", std::nullopt, "leftmost label"},
        pattern_case{"wildcard_alone", "*", std::nullopt, "leftmost label"},
        pattern_case{"double_wildcard", "**.x.com", std::nullopt, "leftmost label"},
        pattern_case{"two_wildcard_labels", "*.*.x.com", std::nullopt, "leftmost label"},
        pattern_case{"wildcard_without_domain", "*.", std::nullopt, "needs a domain"},
        pattern_case{"dot_alone", ".", std::nullopt, "needs a domain"},
        pattern_case{"two_leading_dots", "..example.com", std::nullopt, "empty label"},
        pattern_case{"u_label", "b\xC3\xBC" "cher.de", std::nullopt, "punycode"},
        pattern_case{"u_label_in_wildcard", "*.b\xC3\xBC" "cher.de", std::nullopt, "punycode"},
        pattern_case{"label_64", long_label(64) + ".com", std::nullopt, "63"},
        pattern_case{"name_254", long_name(254), std::nullopt, "253"},
        pattern_case{"empty", "", std::nullopt, "empty"},
        pattern_case{"empty_inner_label", "a..example.com", std::nullopt, "empty label"},
        pattern_case{"leading_hyphen", "-bad.example.com", std::nullopt, "'-'"},
        pattern_case{"trailing_hyphen", "bad-.example.com", std::nullopt, "'-'"},
        pattern_case{"space", "exa mple.com", std::nullopt, "not allowed"},
        pattern_case{"slash", "example.com/path", std::nullopt, "not allowed"},
        pattern_case{"port", "example.com:443", std::nullopt, "not allowed"},
        // An IP address is never a domain pattern: it belongs in a CIDR rule.
        pattern_case{"dotted_quad", "127.0.0.1", std::nullopt, "IP address"},
        pattern_case{"short_ip", "127.1", std::nullopt, "IP address"},
        pattern_case{"numeric_last_label", "example.123", std::nullopt, "IP address"}),
    case_name<pattern_case>);

// --- Host names -----------------------------------------------------------------------------------------------

struct host_name_case {
    std::string name;
    std::string text;
    std::optional<std::string> normalized;  // nullopt: refused
    std::string error_mentions;
};

class host_name : public ::testing::TestWithParam<host_name_case> {};

TEST_P(host_name, normalizes_names_and_refuses_numeric_ones)
{
    const auto& c = GetParam();
    auto h = host::parse(c.text);
    if (!c.normalized) {
        EXPECT_FALSE(h.value.has_value()) << "parsed as " << h.value->to_string();
        EXPECT_NE(h.error.find(c.error_mentions), std::string::npos) << h.error;
        return;
    }
    ASSERT_TRUE(h.value.has_value()) << h.error;
    ASSERT_FALSE(h.value->is_address());
    ASSERT_NE(h.value->name(), nullptr);
    EXPECT_EQ(*h.value->name(), *c.normalized);
    EXPECT_EQ(h.value->to_string(), *c.normalized);
}

INSTANTIATE_TEST_SUITE_P(
    all, host_name,
    ::testing::Values(
        host_name_case{"lower_case", "www.example.com", "www.example.com", ""},
        host_name_case{"upper_case", "WWW.Example.COM", "www.example.com", ""},
        host_name_case{"one_trailing_dot", "www.example.com.", "www.example.com", ""},
        host_name_case{"punycode", "xn--bcher-kva.de", "xn--bcher-kva.de", ""},
        host_name_case{"two_trailing_dots", "www.example.com..", std::nullopt, "empty label"},
        host_name_case{"u_label", "b\xC3\xBC" "cher.de", std::nullopt, "punycode"},
        host_name_case{"wildcard", "*.example.com", std::nullopt, "not allowed"},
        host_name_case{"label_64", long_label(64) + ".com", std::nullopt, "63"},
        host_name_case{"name_254", long_name(254), std::nullopt, "253"},
        host_name_case{"leading_hyphen", "-a.example.com", std::nullopt, "'-'"},
        host_name_case{"trailing_hyphen", "a-.example.com", std::nullopt, "'-'"},
        host_name_case{"leading_dot", ".example.com", std::nullopt, "empty label"},
        // Numeric last labels are IPv4 in a form some resolver would accept: never names.
        host_name_case{"short_ip", "127.1", std::nullopt, "IP address"},
        host_name_case{"hex_short_ip", "0x7f.1", std::nullopt, "IP address"},
        host_name_case{"hex_last_label", "127.0.0.0x1", std::nullopt, "IP address"},
        host_name_case{"bare_hex_prefix_last_label", "1.0x", std::nullopt, "IP address"},
        host_name_case{"octal_quad", "0177.0.0.1", std::nullopt, "IP address"},
        host_name_case{"decimal_integer", "2130706433", std::nullopt, "IP address"},
        host_name_case{"hex_integer", "0x7f000001", std::nullopt, "IP address"},
        host_name_case{"numeric_tld", "example.123", std::nullopt, "IP address"},
        host_name_case{"colon_not_v6", "example.com:443", std::nullopt, "IPv6"}),
    case_name<host_name_case>);

// --- Matching is label-based ----------------------------------------------------------------------------------

struct match_case {
    std::string name;
    std::string pattern;
    std::string host;
    bool matches = false;
};

class pattern_match : public ::testing::TestWithParam<match_case> {};

// Matching lives in the compiled policy (domain_index), so each case is a one-rule policy.
TEST_P(pattern_match, matches_whole_labels_only)
{
    const auto& c = GetParam();
    auto p = spec_builder{}
                 .group("g", {rule{}.domain(c.pattern).port(443)})
                 .client("default", {}, {"g"})
                 .compile_ok();
    ASSERT_TRUE(p);
    auto d = p->decide_name(p->find_client("default"), target(c.host), 443, t0);
    if (c.matches) {
        EXPECT_EQ(d.outcome, verdict::allow);
        EXPECT_EQ(d.why, reason::allowed);
        ASSERT_TRUE(d.rule.has_value());
        EXPECT_EQ(p->describe(*d.rule).group, "g");
    } else {
        EXPECT_EQ(d.outcome, verdict::deny);
        EXPECT_EQ(d.why, reason::no_matching_rule);
        EXPECT_FALSE(d.rule.has_value());
    }
}

INSTANTIATE_TEST_SUITE_P(
    all, pattern_match,
    ::testing::Values(
        match_case{"exact_itself", "api.example.com", "api.example.com", true},
        match_case{"exact_case_insensitive", "api.example.com", "API.EXAMPLE.COM", true},
        match_case{"exact_trailing_dot_host", "api.example.com", "api.example.com.", true},
        match_case{"exact_pattern_upper", "API.Example.com", "api.example.com", true},
        match_case{"exact_not_subdomain", "example.com", "api.example.com", false},
        match_case{"exact_not_parent", "api.example.com", "example.com", false},
        match_case{"subdomains_one_level", "*.example.com", "api.example.com", true},
        match_case{"subdomains_deep", "*.example.com", "a.b.c.example.com", true},
        match_case{"subdomains_not_apex", "*.example.com", "example.com", false},
        match_case{"subdomains_case_insensitive", "*.example.com", "Api.Example.Com", true},
        match_case{"subdomains_trailing_dot_host", "*.example.com", "api.example.com.", true},
        match_case{"subdomains_hyphen_prefix", "*.example.com", "evil-example.com", false},
        match_case{"subdomains_suffix_glued", "*.example.com", "evilexample.com", false},
        match_case{"subdomains_as_prefix", "*.example.com", "example.com.evil.net", false},
        match_case{"subdomains_inside", "*.example.com", "api.example.com.evil.net", false},
        match_case{"domain_apex", ".example.com", "example.com", true},
        match_case{"domain_one_level", ".example.com", "api.example.com", true},
        match_case{"domain_deep", ".example.com", "a.b.c.example.com", true},
        match_case{"domain_case_insensitive", ".example.com", "EXAMPLE.COM.", true},
        match_case{"domain_hyphen_prefix", ".example.com", "evil-example.com", false},
        match_case{"domain_suffix_glued", ".example.com", "evilexample.com", false},
        match_case{"domain_as_prefix", ".example.com", "example.com.evil.net", false},
        match_case{"domain_parent", ".example.com", "com", false},
        match_case{"domain_sibling", ".example.com", "example.net", false},
        match_case{"punycode_exact", "xn--bcher-kva.de", "XN--BCHER-KVA.DE", true}),
    case_name<match_case>);

}  // namespace
}  // namespace egressd::policy
