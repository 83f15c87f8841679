// The shipped example policy: it must load cleanly and decide the way its comments say it does.

#include "config/policy_loader.hpp"
#include "tests/config/policy_text.hpp"

#include <gtest/gtest.h>

#include <ostream>

#include <memory>
#include <optional>
#include <string>

#ifndef EGRESSD_SOURCE_DIR
#error "EGRESSD_SOURCE_DIR must be defined by the build"
#endif

namespace egressd::config {
namespace {

namespace pol = egressd::policy;

using test::target;
using test::utc;

const std::string example_path = std::string(EGRESSD_SOURCE_DIR) + "/config/examples/policy.yaml";

// Before the monitoring rule's expiry (2027-06-30T23:59:59Z).
const pol::time_point before_expiry = utc("2026-06-01T12:00:00Z");

struct example_case {
    std::string name;
    std::string source;  // the client's source address
    std::string host;
    std::uint16_t port;
    std::string at;  // RFC 3339; empty: before_expiry
    std::optional<std::string> client;  // the client it must match; nullopt: none
    pol::verdict outcome;
    pol::reason why;
    std::optional<std::string> group;  // the deciding (or nearest) rule's group, "deny" for the deny list
    std::uint32_t rule_index = 0;
};

// Test names already say which case failed; print just the name instead of the bytes.
void PrintTo(const example_case& c, std::ostream* os) { *os << c.name; }

std::shared_ptr<const pol::policy> load_example()
{
    static const auto loaded = load_policy(example_path);
    return loaded.snapshot;
}

class config_example : public ::testing::TestWithParam<example_case> {};

TEST_P(config_example, decides_as_documented)
{
    const auto& c = GetParam();
    auto p = load_example();
    ASSERT_NE(p, nullptr);
    auto source = pol::address::parse(c.source);
    ASSERT_TRUE(source.has_value()) << c.source;
    auto client = p->match_client(pol::client_facts{.source = source});
    if (c.client) {
        ASSERT_TRUE(client.has_value()) << c.source;
        EXPECT_EQ(p->client_name(*client), *c.client);
    } else {
        EXPECT_FALSE(client.has_value());
    }
    auto now = c.at.empty() ? before_expiry : utc(c.at);
    auto d = p->decide_name(client, target(c.host), c.port, now);
    EXPECT_EQ(pol::to_string(d.why), pol::to_string(c.why));
    EXPECT_EQ(pol::to_string(d.outcome), pol::to_string(c.outcome));
    if (c.group) {
        ASSERT_TRUE(d.rule.has_value());
        auto rule = p->describe(*d.rule);
        EXPECT_EQ(rule.group, *c.group);
        EXPECT_EQ(rule.index, c.rule_index);
    } else {
        EXPECT_FALSE(d.rule.has_value());
    }
}

using pol::reason;
using pol::verdict;

INSTANTIATE_TEST_SUITE_P(
    policy_yaml, config_example,
    ::testing::Values(
        example_case{"batch_debian_https", "10.20.1.7", "deb.debian.org", 443, "", "batch-workers", verdict::allow,
                     reason::allowed, "package-mirrors", 0},
        example_case{"batch_debian_mirror_below_domain", "10.20.1.7", "ftp.de.debian.net", 80, "", "batch-workers",
                     verdict::allow, reason::allowed, "package-mirrors", 0},
        example_case{"batch_ubuntu_apex", "10.20.1.7", "ubuntu.com", 443, "", "batch-workers", verdict::allow,
                     reason::allowed, "package-mirrors", 1},
        example_case{"batch_ftp_control", "10.20.1.7", "ftp.vendor.example", 21, "", "batch-workers", verdict::allow,
                     reason::allowed, "package-mirrors", 3},
        example_case{"batch_ftp_data", "10.20.1.7", "ftp.vendor.example", 20, "", "batch-workers", verdict::allow,
                     reason::allowed, "package-mirrors", 3},
        example_case{"batch_ftp_ssh_port", "10.20.1.7", "ftp.vendor.example", 22, "", "batch-workers", verdict::deny,
                     reason::port_not_allowed, "package-mirrors", 3},
        example_case{"batch_payment_api", "10.20.1.7", "api.payments.example", 443, "", "batch-workers",
                     verdict::deny, reason::no_matching_rule, std::nullopt},
        example_case{"web_payment_api", "10.30.1.1", "api.payments.example", 443, "", "web", verdict::allow,
                     reason::allowed, "payment-api", 0},
        example_case{"web_debian", "10.30.1.1", "deb.debian.org", 443, "", "web", verdict::deny,
                     reason::no_matching_rule, std::nullopt},
        example_case{"web_partner_sftp", "10.30.1.1", "198.51.100.10", 22, "", "web", verdict::deny,
                     reason::no_matching_rule, std::nullopt},
        // The canary's more specific source wins over 10.30.0.0/16, and it runs in report mode.
        example_case{"canary_would_deny", "10.30.99.5", "deb.debian.org", 443, "", "web-canary", verdict::would_deny,
                     reason::no_matching_rule, std::nullopt},
        example_case{"canary_payment_api", "10.30.99.5", "api.payments.example", 443, "", "web-canary",
                     verdict::allow, reason::allowed, "payment-api", 0},
        example_case{"canary_partner_sftp", "10.30.99.5", "198.51.100.10", 22, "", "web-canary", verdict::allow,
                     reason::allowed, "partner-sftp", 0},
        example_case{"database_debian", "10.40.0.9", "deb.debian.org", 443, "", "database", verdict::deny,
                     reason::no_matching_rule, std::nullopt},
        example_case{"database_metrics", "10.40.0.9", "eu.ingest.metrics.example", 443, "", "database",
                     verdict::deny, reason::no_matching_rule, std::nullopt},
        example_case{"database_address", "10.40.0.9", "8.8.8.8", 53, "", "database", verdict::deny,
                     reason::no_matching_rule, std::nullopt},
        // The deny list is checked first, for every client.
        example_case{"batch_pastebin", "10.20.1.7", "pastebin.com", 443, "", "batch-workers", verdict::deny,
                     reason::explicit_deny, "deny", 0},
        example_case{"web_pastebin_subdomain", "10.30.1.1", "x.pastebin.com", 443, "", "web", verdict::deny,
                     reason::explicit_deny, "deny", 0},
        example_case{"database_pastebin_any_port", "10.40.0.9", "pastebin.com", 8080, "", "database", verdict::deny,
                     reason::explicit_deny, "deny", 0},
        example_case{"canary_pastebin_reported", "10.30.99.5", "x.pastebin.com", 443, "", "web-canary",
                     verdict::would_deny, reason::explicit_deny, "deny", 0},
        example_case{"monitoring_before_expiry", "10.20.1.7", "eu.ingest.metrics.example", 443, "", "batch-workers",
                     verdict::allow, reason::allowed, "monitoring", 0},
        example_case{"monitoring_last_second", "10.30.1.1", "eu.ingest.metrics.example", 443, "2027-06-30T23:59:58Z",
                     "web", verdict::allow, reason::allowed, "monitoring", 0},
        example_case{"monitoring_after_expiry", "10.30.1.1", "eu.ingest.metrics.example", 443,
                     "2027-07-01T00:00:00Z", "web", verdict::deny, reason::expired, "monitoring", 0},
        example_case{"monitoring_apex_not_covered", "10.20.1.7", "ingest.metrics.example", 443, "", "batch-workers",
                     verdict::deny, reason::no_matching_rule, std::nullopt},
        // The README's quick start, from this machine.
        example_case{"local_example_com", "127.0.0.1", "example.com", 80, "", "local-trial", verdict::deny,
                     reason::no_matching_rule, std::nullopt},
        example_case{"local_pastebin", "127.0.0.1", "pastebin.com", 80, "", "local-trial", verdict::deny,
                     reason::explicit_deny, "deny", 0},
        example_case{"local_debian", "127.0.0.1", "deb.debian.org", 80, "", "local-trial", verdict::allow,
                     reason::allowed, "package-mirrors", 0},
        example_case{"local_pypi_tls", "::1", "pypi.org", 443, "", "local-trial", verdict::allow, reason::allowed,
                     "package-mirrors", 2},
        example_case{"local_debian_8080", "127.0.0.1", "deb.debian.org", 8080, "", "local-trial", verdict::deny,
                     reason::port_not_allowed, "package-mirrors", 0},
        // No client matches and there is no "default" client.
        example_case{"unknown_source", "192.0.2.55", "deb.debian.org", 443, "", std::nullopt, verdict::deny,
                     reason::unknown_client, std::nullopt}),
    test::param_name<example_case>);

TEST(config_example_file, loads_without_errors_or_warnings)
{
    auto loaded = load_policy(example_path);
    ASSERT_NE(loaded.snapshot, nullptr) << test::show(loaded);
    EXPECT_TRUE(loaded.errors.empty()) << test::show(loaded);
    EXPECT_TRUE(loaded.warnings.empty()) << test::show(loaded);
    EXPECT_EQ(loaded.files, std::vector<std::string>{example_path});

    auto s = loaded.snapshot->stats();
    EXPECT_EQ(s.clients, 6u);
    EXPECT_EQ(s.groups, 4u);
    EXPECT_EQ(s.rules, 7u);
    EXPECT_EQ(s.deny_rules, 1u);
    EXPECT_EQ(loaded.snapshot->default_mode(), pol::mode::enforce);
    EXPECT_TRUE(loaded.snapshot->guarded() == pol::guard_set::all());
}

TEST(config_example_file, names_the_clients_it_documents)
{
    auto p = load_example();
    ASSERT_NE(p, nullptr);
    for (const char* name : {"batch-workers", "web", "web-canary", "database"}) {
        auto id = p->find_client(name);
        ASSERT_TRUE(id.has_value()) << name;
        EXPECT_EQ(p->client_mode(*id), std::string_view(name) == "web-canary" ? pol::mode::report : pol::mode::enforce)
            << name;
    }
    EXPECT_FALSE(p->find_client("default").has_value());
}

// The identity client that README's client-certificate walk-through relies on: a SPIFFE id under the batch
// namespace is batch-jobs from any source; one outside it falls back to the source's client.
TEST(config_example_file, matches_batch_jobs_by_spiffe_id)
{
    auto p = load_example();
    ASSERT_NE(p, nullptr);
    auto source = pol::address::parse("127.0.0.1");
    ASSERT_TRUE(source.has_value());
    auto batch = p->match_client({.source = *source, .identity = "spiffe://example.org/ns/batch/sa/worker"});
    ASSERT_TRUE(batch.has_value());
    EXPECT_EQ(p->client_name(*batch), "batch-jobs");
    auto other = p->match_client({.source = *source, .identity = "spiffe://example.org/ns/web/sa/frontend"});
    ASSERT_TRUE(other.has_value());
    EXPECT_EQ(p->client_name(*other), "local-trial");
}

}  // namespace
}  // namespace egressd::config
