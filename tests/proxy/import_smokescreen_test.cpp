// egressd import smokescreen: the ACL reader (every field, smokescreen's errors with their positions), the
// evaluator of smokescreen's decisions (checked against the decisions smokescreen's own acl_test.go expects), the
// translation loaded by the real policy loader and its derived cases decided by the real engine through
// `egressd policy test`, and the command line (files written, no overwrite, exit codes).

#include "config/policy_loader.hpp"
#include "proxy/tools/import_smokescreen.hpp"
#include "tests/proxy/cli_support.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace egressd::proxy {
namespace {

namespace ss = tools::smokescreen;
using test::contains;
using test::read_text;
using test::run;
using test::show;

const std::string fixtures = std::string(EGRESSD_SOURCE_DIR) + "/tests/import/smokescreen/";

ss::acl load_fixture(const std::string& name)
{
    auto r = ss::read_acl(name, read_text(fixtures + name));
    if (!r.value) {
        std::string all;
        for (const auto& e : r.errors) {
            all += e.format("error") + "\n";
        }
        ADD_FAILURE() << name << " does not load:\n" << all;
        return {};
    }
    return std::move(*r.value);
}

std::vector<std::string> error_lines(const ss::read_result& r)
{
    std::vector<std::string> out;
    for (const auto& e : r.errors) {
        out.push_back(e.format("error"));
    }
    return out;
}

std::string joined(const std::vector<std::string>& lines)
{
    std::string all;
    for (const auto& l : lines) {
        all += l + "\n";
    }
    return all;
}

// ----- reading

TEST(smokescreen_reader, reads_every_field_with_its_position)
{
    auto a = load_fixture("payments.yaml");
    ASSERT_EQ(a.services.size(), 4u);
    const auto& api = a.services[0];
    EXPECT_EQ(api.name, "payments-api");
    EXPECT_EQ(api.project, "payments");
    EXPECT_EQ(api.policy, ss::action::enforce);
    EXPECT_EQ(api.where.line, 7u);
    EXPECT_EQ(api.where.column, 5u);
    ASSERT_EQ(api.allowed_domains.size(), 4u);
    EXPECT_EQ(api.allowed_domains[1].text, "*.partner-bank.example");
    EXPECT_EQ(api.allowed_domains[1].where.line, 12u);
    EXPECT_EQ(api.allowed_domains[1].where.column, 9u);
    ASSERT_EQ(api.mitm_domains.size(), 1u);
    EXPECT_EQ(api.mitm_domains[0].text, "hooks.slack.com");
    EXPECT_EQ(api.mitm_domains[0].where.line, 16u);

    const auto& sender = a.services[1];
    EXPECT_EQ(sender.name, "webhooks/sender");
    EXPECT_EQ(sender.policy, ss::action::report);
    EXPECT_EQ(sender.action_at.line, 23u);
    ASSERT_EQ(sender.allowed_external_proxies.size(), 1u);
    EXPECT_EQ(sender.allowed_external_proxies[0].text, "*.corp-proxy.example");
    EXPECT_EQ(a.services[3].policy, ss::action::open);

    ASSERT_TRUE(a.default_rule);
    EXPECT_EQ(a.default_rule->project, "unowned");
    EXPECT_EQ(a.default_rule->policy, ss::action::enforce);
    ASSERT_EQ(a.global_allow_list.size(), 2u);
    EXPECT_EQ(a.global_allow_list[0].text, "*.amazonaws.com");
    ASSERT_EQ(a.global_deny_list.size(), 3u);
    EXPECT_EQ(a.global_deny_list[2].text, "s3.amazonaws.com");
    EXPECT_EQ(a.global_deny_list[2].where.line, 59u);

    // Keys smokescreen does not read are not errors (it reads loosely), but they are listed.
    ASSERT_EQ(a.ignored.size(), 1u);
    EXPECT_EQ(a.ignored[0].where.line, 33u);
    EXPECT_TRUE(contains(a.ignored[0].message, "'owner_team'")) << a.ignored[0].message;
}

TEST(smokescreen_reader, an_acl_without_default_or_global_lists)
{
    auto a = load_fixture("no_default.yaml");
    EXPECT_FALSE(a.default_rule);
    EXPECT_TRUE(a.global_deny_list.empty());
    ASSERT_EQ(a.services.size(), 1u);
}

TEST(smokescreen_reader, reports_every_error_at_once_with_line_and_column)
{
    auto r = ss::read_acl("invalid.yaml", read_text(fixtures + "invalid.yaml"));
    EXPECT_FALSE(r.value);
    auto lines = error_lines(r);
    auto all = joined(lines);
    std::vector<std::string> expected = {
        "invalid.yaml:6:13: error: unknown action 'allow' in a service 'unknown-action': expected open, report or enforce",
        "invalid.yaml:12:9: error: service 'bad-globs': '*': domain glob must not match everything",
        "invalid.yaml:13:9: error: service 'bad-globs': '*example.com': domain glob must represent a full prefix "
        "(sub)domain",
        "invalid.yaml:14:9: error: service 'bad-globs': 'api.*.example.com': domain globs are only supported as prefix",
        "invalid.yaml:15:9: error: service 'bad-globs': 'Example.COM': incorrect ACL entry; use \"example.com\"",
        "invalid.yaml:16:9: error: service 'bad-globs': '': glob cannot be empty",
        "invalid.yaml:17:5: error: rule already exists for service 'bad-globs' (line 9)",
        "invalid.yaml:24:17: error: domain b.example.com was added to mitm_domains but is missing in allowed_domains",
        "invalid.yaml:25:19: error: expected global_deny_list: a list of strings, found a scalar",
    };
    for (const auto& e : expected) {
        EXPECT_TRUE(contains(all, e + "\n")) << "missing: " << e << "\nall:\n" << all;
    }
    EXPECT_EQ(lines.size(), expected.size()) << all;
}

struct bad_acl {
    std::string name;
    std::string text;
    std::string error;  // the whole first line, with position
};

class smokescreen_reader_refuses : public ::testing::TestWithParam<bad_acl> {};

TEST_P(smokescreen_reader_refuses, with_position)
{
    auto r = ss::read_acl("acl.yaml", GetParam().text);
    EXPECT_FALSE(r.value);
    ASSERT_FALSE(r.errors.empty());
    EXPECT_EQ(r.errors[0].format("error"), GetParam().error) << joined(error_lines(r));
}

INSTANTIATE_TEST_SUITE_P(
    cases, smokescreen_reader_refuses,
    ::testing::Values(
        bad_acl{"no_version", "services: []\n", "acl.yaml:1:1: error: expected version \"v1\": the ACL has no version"},
        bad_acl{"version_2", "version: v2\nservices: []\n", "acl.yaml:1:10: error: expected version \"v1\", found \"v2\""},
        bad_acl{"no_services", "version: v1\n", "acl.yaml:1:1: error: top level list 'services' is missing"},
        bad_acl{"null_services", "version: v1\nservices:\n",
                "acl.yaml:2:1: error: top level list 'services' is missing"},
        bad_acl{"services_a_map", "version: v1\nservices: {a: b}\n",
                "acl.yaml:2:11: error: expected services: a list of services, found a mapping"},
        bad_acl{"missing_action", "version: v1\nservices:\n  - name: x\n    allowed_domains: [a.com]\n",
                "acl.yaml:3:5: error: unknown action '' in a service 'x': expected open, report or enforce"},
        bad_acl{"domains_a_map", "version: v1\nservices:\n  - name: x\n    action: open\n    allowed_domains: {a: b}\n",
                "acl.yaml:5:22: error: expected allowed_domains: a list of strings, found a mapping"},
        bad_acl{"duplicate_key", "version: v1\nservices: []\nversion: v1\n",
                "acl.yaml:3:1: error: key 'version' already set in the ACL (line 1)"},
        bad_acl{"default_bad_glob", "version: v1\nservices: []\ndefault:\n  action: report\n  allowed_domains: [\"*.*.x.com\"]\n",
                "acl.yaml:5:21: error: default_rule: '*.*.x.com': domain globs are only supported as prefix"},
        bad_acl{"u_label", "version: v1\nservices: []\nglobal_allow_list: [\"\xc3\xa9x\xc3\xa4mple.com\"]\n",
                "acl.yaml:3:21: error: global_allow_list: '\xc3\xa9x\xc3\xa4mple.com': incorrect ACL entry: the name "
                "must be written in Punycode (xn--...)"}),
    [](const ::testing::TestParamInfo<bad_acl>& p) { return p.param.name; });

TEST(smokescreen_reader, a_yaml_syntax_error_names_its_position)
{
    auto r = ss::read_acl("acl.yaml", "version: v1\nservices:\n  - name: a\n    allowed_domains: [*.example.com]\n");
    ASSERT_FALSE(r.value);
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].where.line, 4u) << r.errors[0].format("error");
    EXPECT_GT(r.errors[0].where.column, 0u);
}

// ----- smokescreen's decisions

TEST(smokescreen_glob, matches_as_host_matches_glob_does)
{
    struct row {
        const char* host;
        const char* glob;
        bool match;
    };
    for (const auto& r : std::vector<row>{
             {"example.com", "example.com", true},
             {"contrived.example.com", "*.example.com", true},
             {"more.contrived.example.com", "*.example.com", true},  // any depth
             {"example.com", "*.example.com", false},                // never the apex
             {"evil-example.com", "*.example.com", false},           // whole labels only
             {"example.com.evil.net", "*.example.com", false},
             {"www.example.com", "example.com", false},
             {"example.com.", "example.com", true},  // trailing dots ignored
             {"EXAMPLE.COM", "example.com", true},
             {"example.com", "EXAMPLE.COM", true},
             {"", "example.com", false},
         }) {
        EXPECT_EQ(ss::host_matches_glob(r.host, r.glob), r.match) << r.host << " vs " << r.glob;
    }
}

TEST(smokescreen_decide, as_smokescreen_acl_tests_expect)
{
    struct row {
        const char* file;
        const char* role;
        const char* host;
        ss::result outcome;
        const char* reason;
    };
    auto sample = load_fixture("sample_config.yaml");
    auto global = load_fixture("sample_config_with_global.yaml");
    auto none = load_fixture("no_default.yaml");
    using enum ss::result;
    for (const auto& r : std::vector<row>{
             {"s", "enforce-dummy-srv", "example1.com", allow, "host matched allowed domain in rule"},
             {"s", "enforce-dummy-srv", "www.example1.com", deny, "rule has enforce policy"},
             {"s", "report-dummy-srv", "example3.com", allow, "host matched allowed domain in rule"},
             {"s", "report-dummy-srv", "example1.com", allow_and_report, "rule has allow and report policy"},
             {"s", "open-dummy-srv", "anythingisgoodreally.com", allow, "rule has open enforcement policy"},
             {"s", "dummy-glob", "shouldbreak.com", deny, "rule has enforce policy"},
             {"s", "dummy-glob", "example.com", deny, "rule has enforce policy"},
             {"s", "dummy-glob", "api.example.com", allow, "host matched allowed domain in rule"},
             {"s", "unknown-service", "nope.example.com", deny, "default rule policy used"},
             {"s", "unknown-service", "default.example.com", allow, "host matched allowed domain in rule"},
             {"g", "enforce-dummy-srv", "goodexample1.com", allow, "host matched rule in global allow list"},
             {"g", "unknown-service", "goodexample2.com", allow, "host matched rule in global allow list"},
             {"g", "enforce-dummy-srv", "badexample1.com", allow, "host matched allowed domain in rule"},
             {"g", "report-dummy-srv", "badexample1.com", deny, "host matched rule in global deny list"},
             {"g", "unknown-service", "badexample2.com", deny, "host matched rule in global deny list"},
             {"g", "open-dummy-srv", "badexample2.com", deny, "host matched rule in global deny list"},
             {"g", "open-dummy-srv", "badexample2.com.", deny, "host matched rule in global deny list"},
             {"g", "open-dummy-srv", "bAdExAmPlE2.cOm", deny, "host matched rule in global deny list"},
             {"g", "open-dummy-srv", "conflictingexample.com", deny, "host matched rule in global deny list"},
             {"g", "unknown-service", "nope.example.com", allow_and_report, "default rule policy used"},
             {"n", "unk", "example.com", deny, "no rule matched"},
             {"n", "unk", "goodexample1.com", deny, "no rule matched"},
         }) {
        const auto& a = r.file[0] == 's' ? sample : r.file[0] == 'g' ? global : none;
        auto d = ss::decide(a, r.role, r.host);
        EXPECT_EQ(d.outcome, r.outcome) << r.role << " -> " << r.host << ": " << d.reason;
        EXPECT_EQ(d.reason, r.reason) << r.role << " -> " << r.host;
    }
}

// ----- the translation

config::loaded_policy load_translation(const ss::import_output& out)
{
    return config::load_policy_texts({{"policy.yaml", out.policy_yaml}});
}

std::string diagnostics(const config::loaded_policy& p)
{
    std::string all;
    for (const auto& e : p.errors) {
        all += e.format("error") + "\n";
    }
    return all;
}

std::string client_of(const policy::policy& p, const std::string& identity)
{
    auto id = p.match_client(policy::client_facts{.source = std::nullopt, .identity = identity});
    return id ? std::string(p.client_name(*id)) : std::string("(none)");
}

TEST(smokescreen_translate, services_become_clients_by_identity_with_their_modes)
{
    auto out = ss::translate(load_fixture("sample_config.yaml"), "sample_config.yaml");
    auto loaded = load_translation(out);
    ASSERT_TRUE(loaded.snapshot) << diagnostics(loaded) << out.policy_yaml;
    const auto& p = *loaded.snapshot;
    EXPECT_EQ(client_of(p, "enforce-dummy-srv"), "enforce-dummy-srv");
    EXPECT_EQ(client_of(p, "dummy-glob"), "dummy-glob");
    EXPECT_EQ(client_of(p, "some-other-role"), "default");  // as smokescreen's default rule
    EXPECT_EQ(p.client_mode(*p.find_client("enforce-dummy-srv")), policy::mode::enforce);
    EXPECT_EQ(p.client_mode(*p.find_client("report-dummy-srv")), policy::mode::report);
    EXPECT_EQ(p.client_mode(*p.find_client("open-dummy-srv")), policy::mode::report);
    EXPECT_EQ(p.client_mode(*p.find_client("default")), policy::mode::enforce);
    EXPECT_TRUE(contains(out.policy_yaml, "project usersec")) << out.policy_yaml;
    // smokescreen's *.example.com is egressd's *.example.com (subdomains only), not .example.com.
    EXPECT_TRUE(contains(out.policy_yaml, "- \"*.example.com\"  # sample_config.yaml:27\n")) << out.policy_yaml;
    EXPECT_FALSE(contains(out.policy_yaml, "\".example.com\"")) << out.policy_yaml;
    EXPECT_TRUE(contains(out.policy_yaml, "ports: all")) << out.policy_yaml;
}

TEST(smokescreen_translate, without_a_default_rule_there_is_no_default_client)
{
    auto out = ss::translate(load_fixture("no_default.yaml"), "no_default.yaml");
    auto loaded = load_translation(out);
    ASSERT_TRUE(loaded.snapshot) << diagnostics(loaded) << out.policy_yaml;
    EXPECT_EQ(client_of(*loaded.snapshot, "unk"), "(none)");
    EXPECT_TRUE(contains(out.cases_yaml, "reason: unknown_client")) << out.cases_yaml;
}

TEST(smokescreen_translate, a_globally_denied_name_a_service_lists_stays_allowed_for_it)
{
    auto out = ss::translate(load_fixture("sample_config_with_global.yaml"), "g.yaml");
    auto loaded = load_translation(out);
    ASSERT_TRUE(loaded.snapshot) << diagnostics(loaded) << out.policy_yaml;
    const auto& p = *loaded.snapshot;
    auto host = *policy::host::parse("badexample1.com").value;
    auto at = std::chrono::sys_seconds{};
    auto enforce = p.find_client("enforce-dummy-srv");
    auto dummy = p.find_client("dummy-glob");
    ASSERT_TRUE(enforce && dummy);
    EXPECT_EQ(p.decide_name(enforce, host, 443, at).why, policy::reason::allowed);
    EXPECT_EQ(p.decide_name(dummy, host, 443, at).why, policy::reason::explicit_deny);
    // Everyone else still has the rest of the deny list.
    auto bad2 = *policy::host::parse("badexample2.com").value;
    EXPECT_EQ(p.decide_name(enforce, bad2, 443, at).why, policy::reason::explicit_deny);
    EXPECT_TRUE(contains(out.report_text, "g.yaml:45:5: note: global_deny_list 'badexample1.com' does not apply to "
                                          "service 'enforce-dummy-srv'"))
        << out.report_text;
}

TEST(smokescreen_translate, the_report_names_what_does_not_carry_over_with_acl_lines)
{
    auto out = ss::translate(load_fixture("payments.yaml"), "payments.yaml");
    auto loaded = load_translation(out);
    ASSERT_TRUE(loaded.snapshot) << diagnostics(loaded) << out.policy_yaml;
    const auto& r = out.report_text;
    for (const char* line : {
             "payments.yaml:14:9: inexact: service 'payments-api' allowed_domains IP address 203.0.113.10 becomes the "
             "CIDR 203.0.113.10/32",
             "payments.yaml:16:17: not carried over: service 'payments-api' mitm_domains 'hooks.slack.com'",
             "payments.yaml:23:13: inexact: service 'webhooks/sender' has action report",
             "payments.yaml:26:9: inexact: service 'webhooks/sender' allowed_domains 'paste.tracker.example' lies "
             "inside global_deny_list '*.tracker.example' (payments.yaml:57)",
             "payments.yaml:28:9: not carried over: service 'webhooks/sender' allowed_external_proxies",
             "payments.yaml:33:5: ignored: 'owner_team' in a service is not a key smokescreen reads",
             "payments.yaml:42:13: inexact: service 'legacy-batch' has action open",
             "payments.yaml: ports: smokescreen's ACL does not look at ports",
             "payments.yaml: identities: smokescreen's role is the client certificate's subject CN",
         }) {
        EXPECT_TRUE(contains(r, line)) << "missing: " << line << "\n" << r;
    }
    // A service name that is no egressd client name keeps its identity.
    EXPECT_EQ(client_of(*loaded.snapshot, "webhooks/sender"), "webhooks-sender");
    EXPECT_TRUE(contains(out.policy_yaml, "203.0.113.10/32")) << out.policy_yaml;
    EXPECT_FALSE(contains(out.policy_yaml, "corp-proxy")) << out.policy_yaml;
}

TEST(smokescreen_translate, unusable_roles_and_dot_globs_are_reported_not_translated)
{
    auto r = ss::read_acl("acl.yaml", "version: v1\nservices:\n  - name: my service\n    action: enforce\n"
                                      "    allowed_domains: [a.example]\n  - name: dot\n    action: enforce\n"
                                      "    allowed_domains: [.example.org, b.example]\n");
    ASSERT_TRUE(r.value) << joined(error_lines(r));
    auto out = ss::translate(*r.value, "acl.yaml");
    auto loaded = load_translation(out);
    ASSERT_TRUE(loaded.snapshot) << diagnostics(loaded) << out.policy_yaml;
    EXPECT_TRUE(contains(out.report_text, "acl.yaml:3:5: not carried over: service 'my service' cannot be an egressd "
                                          "identity"))
        << out.report_text;
    EXPECT_TRUE(contains(out.report_text, "acl.yaml:8:23: not carried over: service 'dot' allowed_domains "
                                          "'.example.org' matches no host in smokescreen"))
        << out.report_text;
    EXPECT_FALSE(contains(out.policy_yaml, "example.org")) << out.policy_yaml;
    EXPECT_FALSE(contains(out.policy_yaml, "my service")) << out.policy_yaml;
    EXPECT_EQ(out.clients, 1u);
}

TEST(smokescreen_translate, a_service_named_default_is_not_the_catch_all)
{
    auto r = ss::read_acl("acl.yaml", "version: v1\nservices:\n  - name: default\n    action: enforce\n"
                                      "    allowed_domains: [a.example]\n  - name: \"-\"\n    action: enforce\n"
                                      "default:\n  action: enforce\n  allowed_domains: [b.example]\n");
    ASSERT_TRUE(r.value) << joined(error_lines(r));
    auto out = ss::translate(*r.value, "acl.yaml");
    auto loaded = load_translation(out);
    ASSERT_TRUE(loaded.snapshot) << diagnostics(loaded) << out.policy_yaml;
    const auto& p = *loaded.snapshot;
    EXPECT_EQ(client_of(p, "default"), "default-2");  // the certificate CN "default" is that service
    EXPECT_EQ(client_of(p, "-"), "--2");
    EXPECT_EQ(client_of(p, "anyone-else"), "default");
    EXPECT_TRUE(contains(out.report_text, "acl.yaml:3:5: note: service 'default' is the egressd client 'default-2'"))
        << out.report_text;
}

// A role with '*' is a certificate CN egressd accepts, but no policy identity names it exactly: left out, it would
// be the default client (here open, so everything would pass). It must be caught and denied instead.
TEST(smokescreen_translate, a_role_with_a_star_is_denied_everything_not_the_default_client)
{
    auto r = ss::read_acl("acl.yaml", "version: v1\nservices:\n  - name: \"batch*\"\n    action: enforce\n"
                                      "    allowed_domains: [a.example]\n  - name: batchjob\n    action: enforce\n"
                                      "    allowed_domains: [c.example]\n  - name: \"x*y\"\n    action: open\n"
                                      "default:\n  action: open\n  allowed_domains: [b.example]\n");
    ASSERT_TRUE(r.value) << joined(error_lines(r));
    auto out = ss::translate(*r.value, "acl.yaml");
    auto loaded = load_translation(out);
    ASSERT_TRUE(loaded.snapshot) << diagnostics(loaded) << out.policy_yaml;
    const auto& p = *loaded.snapshot;
    EXPECT_EQ(client_of(p, "batch*"), "wildcard-role-batch");
    EXPECT_EQ(client_of(p, "x*y"), "wildcard-role-x");
    EXPECT_EQ(client_of(p, "batchjob"), "batchjob");          // an exact identity wins over the pattern
    EXPECT_EQ(client_of(p, "batch-other"), "wildcard-role-batch");  // the pattern's collateral, reported
    EXPECT_EQ(client_of(p, "someone"), "default");
    auto caught = p.find_client("wildcard-role-batch");
    ASSERT_TRUE(caught) << out.policy_yaml;
    EXPECT_EQ(p.client_mode(*caught), policy::mode::enforce);
    EXPECT_TRUE(contains(out.policy_yaml, "  wildcard-role-batch:\n")) << out.policy_yaml;
    EXPECT_TRUE(contains(out.policy_yaml, "    identities: [\"batch*\"]\n    groups: []\n")) << out.policy_yaml;
    EXPECT_TRUE(contains(out.report_text, "acl.yaml:3:5: FAIL CLOSED: service 'batch*' has '*' in its name. egressd "
                                          "takes a certificate with this CN as the identity 'batch*'"))
        << out.report_text;
    EXPECT_TRUE(contains(out.report_text, "egressd DENIES it everything")) << out.report_text;
    EXPECT_TRUE(contains(out.report_text, "every unlisted role starting with 'batch'")) << out.report_text;
    EXPECT_EQ(out.wildcard_roles, 2u);
    EXPECT_EQ(out.clients, 4u);
    // Its derived cases say so: smokescreen allows a.example for it, egressd denies it.
    EXPECT_TRUE(contains(out.inexact_cases_yaml, "# egressd: deny [no_matching_rule]; traffic blocked\n"
                                                 "- name: \"service batch* (its CN has '*': fail closed) -> "
                                                 "a.example:443"))
        << out.inexact_cases_yaml;
}

TEST(smokescreen_translate, a_role_starting_with_a_star_catches_every_unlisted_certificate)
{
    auto r = ss::read_acl("acl.yaml", "version: v1\nservices:\n  - name: \"*.svc\"\n    action: enforce\n"
                                      "  - name: web\n    action: enforce\n    allowed_domains: [a.example]\n"
                                      "default:\n  action: open\n");
    ASSERT_TRUE(r.value) << joined(error_lines(r));
    auto out = ss::translate(*r.value, "acl.yaml");
    auto loaded = load_translation(out);
    ASSERT_TRUE(loaded.snapshot) << diagnostics(loaded) << out.policy_yaml;
    const auto& p = *loaded.snapshot;
    EXPECT_EQ(client_of(p, "*.svc"), "wildcard-role-all");
    EXPECT_EQ(client_of(p, "anyone"), "wildcard-role-all");
    EXPECT_EQ(client_of(p, "web"), "web");
    EXPECT_TRUE(contains(out.report_text, "every certificate whose CN no service names exactly")) << out.report_text;
}

// 300 services and 30,000 deny globs: the derived cases are a bounded, deterministic sample.
TEST(smokescreen_translate, a_large_acl_gives_a_bounded_sample_of_cases)
{
    std::string text = "version: v1\nservices:\n";
    for (int i = 0; i < 300; ++i) {
        text += "  - name: svc" + std::to_string(i) + "\n    action: enforce\n    allowed_domains: [\"*.s" +
                std::to_string(i) + ".example\", api" + std::to_string(i) + ".example]\n";
    }
    text += "default:\n  action: enforce\nglobal_deny_list:\n";
    for (int i = 0; i < 30000; ++i) {
        text += "  - \"" + std::string(i % 2 == 0 ? "*." : "") + "d" + std::to_string(i) + ".example\"\n";
    }
    auto r = ss::read_acl("big.yaml", text);
    ASSERT_TRUE(r.value) << joined(error_lines(r));
    auto out = ss::translate(*r.value, "big.yaml");
    EXPECT_TRUE(out.sampled);
    EXPECT_GT(out.derived_cases, 300u * 30000u);
    EXPECT_LE(out.exact_cases + out.inexact_cases, 2000u);
    EXPECT_GE(out.exact_cases + out.inexact_cases, 1900u);  // only hosts egressd refuses may drop out
    // Every role enforces and no allow overlaps a deny: smokescreen's indexed decision and the indexed prediction
    // of egressd's must agree on every sampled case.
    EXPECT_EQ(out.inexact_cases, 0u) << out.inexact_cases_yaml.substr(0, 2000);
    EXPECT_TRUE(contains(out.report_text, "cases were derived; an even sample of 2000 is written")) << out.report_text;
    // Services and the deny list both appear in the sample, not just the first subjects.
    EXPECT_TRUE(contains(out.cases_yaml, "identity: \"svc299\"")) << out.cases_yaml.substr(0, 2000);
    EXPECT_TRUE(contains(out.cases_yaml, "reason: explicit_deny")) << out.cases_yaml.substr(0, 2000);
    auto again = ss::translate(*r.value, "big.yaml");
    EXPECT_EQ(again.cases_yaml, out.cases_yaml);
}

// ----- the command, and the derived cases decided by the engine

struct imported {
    test_support::temp_dir dir;
    test::cli_result result;
    std::string path(const std::string& name) const { return (dir.path() / "out" / name).string(); }
};

void import_fixture(imported& i, const std::string& fixture)
{
    i.result = run({"import", "smokescreen", fixtures + fixture, "--out", (i.dir.path() / "out").string()});
}

// The "# egressd: ..." line above each inexact case says what egressd does; the engine must agree.
void expect_inexact_cases_say_what_egressd_does(const imported& i)
{
    auto text = read_text(i.path("policy.inexact-cases.yaml"));
    auto r = run({"policy", "test", i.path("policy.yaml"), i.path("policy.inexact-cases.yaml"), "--json"});
    ASSERT_NE(r.code, exit_invalid) << show(r);
    std::regex said(R"(# egressd: (allow|deny)(?: \[([a-z_]+)\])?;)");
    std::regex verdict(R"re("result":"(allow|deny)","verdict":"[a-z_]+","reason":"([a-z_]+)")re");
    std::vector<std::pair<std::string, std::string>> claims;
    for (std::sregex_iterator it(text.begin(), text.end(), said), end; it != end; ++it) {
        claims.emplace_back((*it)[1], (*it)[1] == "allow" ? "allowed" : std::string((*it)[2]));
    }
    std::vector<std::pair<std::string, std::string>> decided;
    for (std::sregex_iterator it(r.out.begin(), r.out.end(), verdict), end; it != end; ++it) {
        decided.emplace_back((*it)[1], (*it)[2]);
    }
    EXPECT_EQ(claims, decided) << text << "\n" << show(r);
}

TEST(smokescreen_import, writes_the_five_files_and_the_cases_pass_under_egressd)
{
    // How many derived cases each fixture has that egressd decides otherwise: the model the translation predicts
    // with could move cases between the files without any case failing, so the split itself is pinned. Each
    // inexact case is accounted for by a reported cause (open and report actions against the global deny list,
    // the partial overlap in payments.yaml).
    struct expectation {
        const char* fixture;
        std::size_t exact;
        std::size_t inexact;
    };
    for (const auto& [fixture, n_exact, n_inexact] : std::vector<expectation>{{"sample_config.yaml", 19, 1},
                                                                             {"sample_config_with_global.yaml", 41, 10},
                                                                             {"payments.yaml", 50, 10},
                                                                             {"no_default.yaml", 7, 0}}) {
        SCOPED_TRACE(fixture);
        imported i;
        import_fixture(i, fixture);
        ASSERT_EQ(i.result.code, exit_ok) << show(i.result);
        EXPECT_TRUE(contains(i.result.out, "policy.cases.yaml          " + std::to_string(n_exact) + " case(s)"))
            << show(i.result);
        EXPECT_TRUE(contains(i.result.out, "policy.inexact-cases.yaml  " + std::to_string(n_inexact) + " case(s)"))
            << show(i.result);
        EXPECT_TRUE(contains(i.result.out, "egressd policy check: valid")) << show(i.result);
        EXPECT_TRUE(contains(i.result.out, "egressd policy test ")) << show(i.result);
        for (const char* name : {"policy.yaml", "egressd.yaml", "policy.cases.yaml", "policy.inexact-cases.yaml",
                                 "import-report.txt"}) {
            EXPECT_TRUE(std::filesystem::exists(i.path(name))) << name;
        }
        auto check = run({"policy", "check", i.path("policy.yaml")});
        EXPECT_EQ(check.code, exit_ok) << show(check);
        auto cases = run({"policy", "test", i.path("policy.yaml"), i.path("policy.cases.yaml")});
        EXPECT_EQ(cases.code, exit_ok) << show(cases) << read_text(i.path("policy.yaml"));
        EXPECT_TRUE(cases.out.starts_with("ok: ")) << show(cases);
        expect_inexact_cases_say_what_egressd_does(i);
    }
}

TEST(smokescreen_import, a_role_with_a_star_is_flagged_in_the_summary_and_its_cases_hold_under_egressd)
{
    imported i;
    auto acl = i.dir.write("acl.yaml", "version: v1\nservices:\n  - name: \"batch*\"\n    action: enforce\n"
                                       "    allowed_domains: [a.example]\n  - name: batchjob\n    action: enforce\n"
                                       "    allowed_domains: [c.example]\ndefault:\n  action: enforce\n"
                                       "  allowed_domains: [a.example]\nglobal_deny_list: [d.example]\n");
    i.result = run({"import", "smokescreen", acl.string(), "--out", (i.dir.path() / "out").string()});
    ASSERT_EQ(i.result.code, exit_ok) << show(i.result);
    EXPECT_TRUE(contains(i.result.out, "  FAIL CLOSED: 1 service(s) with '*' in the role: such a certificate is "
                                       "denied everything (see import-report.txt)\n"))
        << show(i.result);
    // The default rule allows a.example, so the role would reach it on the default client: it must not.
    auto inexact = read_text(i.path("policy.inexact-cases.yaml"));
    EXPECT_TRUE(contains(inexact, "  identity: \"batch*\"\n  dest: \"a.example:443\"\n  expect: allow\n")) << inexact;
    EXPECT_TRUE(contains(inexact, "  identity: \"batchsmokescreen-import-other\"\n  dest: \"a.example:443\"\n"
                                  "  expect: allow\n"))
        << inexact;
    auto cases = run({"policy", "test", i.path("policy.yaml"), i.path("policy.cases.yaml")});
    EXPECT_EQ(cases.code, exit_ok) << show(cases);
    expect_inexact_cases_say_what_egressd_does(i);
}

TEST(smokescreen_import, the_derived_cases_cover_names_subdomains_apexes_and_the_global_lists)
{
    imported i;
    import_fixture(i, "sample_config_with_global.yaml");
    ASSERT_EQ(i.result.code, exit_ok) << show(i.result);
    auto exact = read_text(i.path("policy.cases.yaml"));
    auto inexact = read_text(i.path("policy.inexact-cases.yaml"));
    // *.example.com: a subdomain and a deeper one are allowed, the apex is not.
    EXPECT_TRUE(contains(exact, "  identity: \"dummy-glob\"\n  dest: \"sub.example.com:443\"\n  expect: allow\n")) << exact;
    EXPECT_TRUE(contains(exact, "  identity: \"dummy-glob\"\n  dest: \"deep.sub.example.com:443\"\n  expect: allow\n"))
        << exact;
    EXPECT_TRUE(contains(exact, "  identity: \"dummy-glob\"\n  dest: \"example.com:443\"\n  expect: deny\n"
                                "  reason: no_matching_rule\n"))
        << exact;
    // The service that lists a globally denied name reaches it, in smokescreen and in egressd.
    EXPECT_TRUE(contains(exact, "  identity: \"enforce-dummy-srv\"\n  dest: \"badexample1.com:443\"\n  expect: allow\n"))
        << exact;
    // A report service: what it does not list is allowed and reported (would_deny in egressd: passes).
    EXPECT_TRUE(contains(exact, "# smokescreen: allow_and_report (rule has allow and report policy); traffic passes\n"
                                "- name: \"service report-dummy-srv -> smokescreen-import-unlisted.example:443"))
        << exact;
    // ... but smokescreen blocks the global deny list for it; egressd's report mode lets it through.
    EXPECT_TRUE(contains(inexact, "# smokescreen: deny (host matched rule in global deny list: badexample2.com, " +
                                      fixtures + "sample_config_with_global.yaml:46); traffic blocked\n"
                                  "# egressd: deny [explicit_deny]; traffic passes (report mode: egress.would_deny)\n"
                                  "- name: \"service report-dummy-srv -> badexample2.com:443"))
        << inexact;
    // An open service: a name no list names is allowed by smokescreen, would_deny in egressd.
    EXPECT_TRUE(contains(inexact, "# smokescreen: allow (rule has open enforcement policy); traffic passes\n"
                                  "# egressd: deny [no_matching_rule]; traffic passes"))
        << inexact;
    EXPECT_TRUE(contains(exact, "dest: \"example1.com:8443\"")) << exact;  // any port
}

TEST(smokescreen_import, never_overwrites_without_force)
{
    imported i;
    import_fixture(i, "sample_config.yaml");
    ASSERT_EQ(i.result.code, exit_ok) << show(i.result);
    std::ofstream(i.path("policy.yaml")) << "# edited by hand\n";
    auto again = run({"import", "smokescreen", fixtures + "sample_config.yaml", "--out", (i.dir.path() / "out").string()});
    EXPECT_EQ(again.code, exit_usage) << show(again);
    EXPECT_TRUE(contains(again.err, "will not overwrite")) << show(again);
    EXPECT_TRUE(contains(again.err, "pass --force")) << show(again);
    EXPECT_EQ(read_text(i.path("policy.yaml")), "# edited by hand\n");
    auto forced = run({"import", "smokescreen", fixtures + "sample_config.yaml", "--out",
                       (i.dir.path() / "out").string(), "--force"});
    EXPECT_EQ(forced.code, exit_ok) << show(forced);
    EXPECT_TRUE(contains(read_text(i.path("policy.yaml")), "version: 1\n"));
}

TEST(smokescreen_import, an_invalid_acl_writes_nothing_and_lists_every_error)
{
    imported i;
    import_fixture(i, "invalid.yaml");
    EXPECT_EQ(i.result.code, exit_invalid) << show(i.result);
    EXPECT_EQ(test::lines_starting(i.result.err, fixtures + "invalid.yaml:").size(), 9u) << show(i.result);
    EXPECT_TRUE(contains(i.result.err, fixtures + "invalid.yaml:6:13: error: unknown action 'allow'")) << show(i.result);
    EXPECT_FALSE(std::filesystem::exists(i.dir.path() / "out")) << show(i.result);
}

TEST(smokescreen_import, usage_and_unreadable_files)
{
    EXPECT_EQ(run({"import"}).code, exit_usage);
    EXPECT_EQ(run({"import", "squidgy"}).code, exit_usage);
    EXPECT_EQ(run({"import", "smokescreen"}).code, exit_usage);
    EXPECT_EQ(run({"import", "smokescreen", "a.yaml", "b.yaml"}).code, exit_usage);
    EXPECT_EQ(run({"import", "smokescreen", "a.yaml", "--out"}).code, exit_usage);
    EXPECT_EQ(run({"import", "smokescreen", "a.yaml", "--bogus"}).code, exit_usage);
    auto help = run({"import", "smokescreen", "--help"});
    EXPECT_EQ(help.code, exit_ok);
    EXPECT_TRUE(contains(help.out, "policy.inexact-cases.yaml")) << show(help);
    test_support::temp_dir dir;
    auto missing = run({"import", "smokescreen", (dir.path() / "nope.yaml").string(), "--out",
                        (dir.path() / "out").string()});
    EXPECT_EQ(missing.code, exit_invalid) << show(missing);
    EXPECT_TRUE(contains(missing.err, "cannot read")) << show(missing);
}

TEST(smokescreen_import, the_server_configuration_passes_config_check_once_its_files_exist)
{
    imported i;
    import_fixture(i, "sample_config.yaml");
    ASSERT_EQ(i.result.code, exit_ok) << show(i.result);
    auto without = run({"config", "check", i.path("egressd.yaml")});
    EXPECT_EQ(without.code, exit_invalid) << show(without);
    // Real files at the placeholder paths, made by the development PKI script's openssl calls.
    auto pki = (i.dir.path() / "out" / "pki").string();
    std::filesystem::create_directories(pki);
    std::string script = std::string(EGRESSD_SOURCE_DIR) + "/certs/egressd-certs";
    auto sh = [](const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); };
    ASSERT_EQ(sh(script + " ca " + pki), 0);
    ASSERT_EQ(sh(script + " server " + pki + " server"), 0);
    std::filesystem::copy_file(pki + "/ca.pem", pki + "/client-ca.pem");
    auto with = run({"config", "check", i.path("egressd.yaml")});
    EXPECT_EQ(with.code, exit_ok) << show(with) << read_text(i.path("egressd.yaml"));
}

}  // namespace
}  // namespace egressd::proxy
