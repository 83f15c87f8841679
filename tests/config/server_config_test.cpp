// The server configuration (listeners, policy path, workers, dns, timeouts, limits, logging): the shipped
// example, the defaults, and every way a file can be wrong, each error named with file:line:column. The
// loader is strict like the policy loader, so a typo can never silently fall back to a default.

#include "config/server_config.hpp"
#include "tests/config/policy_text.hpp"
#include "tests/config/server_text.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <unistd.h>

#ifndef EGRESSD_SOURCE_DIR
#error "EGRESSD_SOURCE_DIR must be defined by the build"
#endif

namespace egressd::config {
namespace {

using namespace std::chrono_literals;
using test::lines;
using test::server::base_dir;
using test::server::file_name;
using test::server::load;
using test::server::minimal;
using test::server::show;
using test::server::with;
using test::located;


// --- the shipped example -----------------------------------------------------------------------------------

TEST(config_server_example, loads_with_two_listeners_and_a_policy_next_to_it)
{
    const std::filesystem::path path = std::filesystem::path(EGRESSD_SOURCE_DIR) / "config/examples/egressd.yaml";
    auto loaded = load_server_config(path);
    ASSERT_TRUE(loaded.config) << show(loaded);
    EXPECT_TRUE(loaded.errors.empty()) << show(loaded);
    const auto& c = *loaded.config;
    EXPECT_EQ(c.file, path.string());
    // "policy: policy.yaml" starts from the configuration file's directory, not the working directory.
    EXPECT_EQ(c.policy_path, path.parent_path() / "policy.yaml");
    ASSERT_EQ(c.listeners.size(), 2u);
    EXPECT_EQ(c.listeners[0].address, "127.0.0.1");
    EXPECT_EQ(c.listeners[0].port, 3128);
    // The brackets of "[::1]:3128" are syntax, not part of the address.
    EXPECT_EQ(c.listeners[1].address, "::1");
    EXPECT_EQ(c.listeners[1].port, 3128);
    EXPECT_EQ(c.workers, 0u);
    EXPECT_TRUE(c.dns.servers.empty());
    EXPECT_EQ(c.dns.timeout, 2s);
    EXPECT_EQ(c.dns.tries, 2);
    EXPECT_EQ(c.dns.min_ttl, 5s);
    EXPECT_EQ(c.dns.max_ttl, 5min);
    EXPECT_EQ(c.dns.negative_ttl, 30s);
    EXPECT_EQ(c.dns.cache_entries, 10'000u);
    EXPECT_EQ(c.timeouts.header, 10s);
    EXPECT_EQ(c.timeouts.connect, 10s);
    EXPECT_EQ(c.timeouts.idle, 5min);
    EXPECT_EQ(c.timeouts.tunnel_lifetime, 24h);
    EXPECT_EQ(c.timeouts.upstream_response, 60s);
    EXPECT_EQ(c.timeouts.shutdown_grace, 30s);
    EXPECT_EQ(c.limits.max_head_bytes, 65'536u);
    EXPECT_EQ(c.limits.max_headers, 100u);
    EXPECT_EQ(c.limits.max_request_line, 8192u);
    EXPECT_EQ(c.limits.max_connections, 10'000u);
    EXPECT_EQ(c.limits.max_connections_per_client, 1000u);
    EXPECT_TRUE(c.logging.to_stdout);
    EXPECT_FALSE(c.logging.file);
    EXPECT_FALSE(c.logging.deny_file);
    EXPECT_FALSE(c.logging.syslog_ident);
    EXPECT_EQ(c.logging.queue_size, 8192u);
    EXPECT_EQ(c.logging.format, event_format::egressd);
    EXPECT_FALSE(c.logging.http_query);
    // Every event names its instance: the host name unless the configuration names one.
    std::array<char, 256> host{};
    ASSERT_EQ(::gethostname(host.data(), host.size() - 1), 0);
    EXPECT_EQ(c.logging.instance, host.data());
    EXPECT_EQ(c.timeouts.drain_delay, 0s);
    ASSERT_TRUE(c.admin);
    EXPECT_EQ(c.admin->address, "127.0.0.1");
    EXPECT_EQ(c.admin->port, 9090);
    EXPECT_FALSE(c.admin->token_file);
    EXPECT_FALSE(c.admin->tls);
    EXPECT_TRUE(c.reload.watch);
    EXPECT_EQ(c.reload.debounce, 500ms);
    // Approvals on, on loopback, with the two (empty) credentials files shipped next to it.
    ASSERT_TRUE(c.approvals);
    const auto& a = *c.approvals;
    EXPECT_EQ(a.address, "127.0.0.1");
    EXPECT_EQ(a.port, 9091);
    EXPECT_EQ(a.public_url, "http://127.0.0.1:9091");
    EXPECT_EQ(a.store, path.parent_path() / "approvals.db");
    EXPECT_EQ(a.approvers, path.parent_path() / "approvers.passwd");
    EXPECT_EQ(a.requesters, path.parent_path() / "requesters.passwd");
    EXPECT_TRUE(std::filesystem::is_regular_file(*a.approvers));
    EXPECT_TRUE(std::filesystem::is_regular_file(*a.requesters));
    EXPECT_FALSE(a.tls);
    EXPECT_FALSE(a.trusted_header);
    EXPECT_EQ(a.default_grant, 8h);
    EXPECT_EQ(a.max_grant, 7 * 24h);
    EXPECT_EQ(a.max_pending, 10'000u);
    EXPECT_EQ(a.requests_per_client_per_minute, 30u);
    EXPECT_EQ(a.request_ttl, 14 * 24h);
    EXPECT_EQ(a.notify_cooldown, 1h);
    EXPECT_EQ(a.expiry_warning, 15min);
    EXPECT_TRUE(a.notify.empty());
}

TEST(config_server_example, missing_file_is_one_error_without_a_position)
{
    test_support::temp_dir dir;
    auto path = dir.path() / "absent.yaml";
    auto loaded = load_server_config(path);
    EXPECT_FALSE(loaded.config);
    ASSERT_EQ(loaded.errors.size(), 1u) << show(loaded);
    EXPECT_EQ(loaded.errors[0].file, path.string());
    EXPECT_EQ(loaded.errors[0].where.line, 0u);
    EXPECT_EQ(loaded.errors[0].message, "cannot open the configuration file");
}

TEST(config_server_example, file_on_disk_resolves_relative_paths_against_its_directory)
{
    test_support::temp_dir dir;
    std::filesystem::create_directory(dir.path() / "etc");
    auto path = dir.write("etc/egressd.yaml", lines({"version: 1", "policy: policies", "logging:",
                                                     "  file: {path: ../log/events.log}"}));
    auto loaded = load_server_config(path);
    ASSERT_TRUE(loaded.config) << show(loaded);
    EXPECT_EQ(loaded.config->policy_path, dir.path() / "etc" / "policies");
    ASSERT_TRUE(loaded.config->logging.file);
    EXPECT_EQ(loaded.config->logging.file->path, (dir.path() / "etc" / "../log/events.log").string());
}

// --- defaults and accepted values ----------------------------------------------------------------------------

TEST(config_server_defaults, absent_keys_take_the_header_defaults)
{
    auto loaded = load(minimal);
    ASSERT_TRUE(loaded.config) << show(loaded);
    const auto& c = *loaded.config;
    EXPECT_EQ(c.file, file_name);
    EXPECT_EQ(c.policy_path, base_dir / "policy.yaml");
    // No listeners key: loopback only, never every interface.
    ASSERT_EQ(c.listeners.size(), 1u);
    EXPECT_EQ(c.listeners[0].address, "127.0.0.1");
    EXPECT_EQ(c.listeners[0].port, 3128);
    EXPECT_EQ(c.workers, 0u);

    const dns_config dns;
    EXPECT_EQ(c.dns.servers, dns.servers);
    EXPECT_EQ(c.dns.timeout, dns.timeout);
    EXPECT_EQ(c.dns.tries, dns.tries);
    EXPECT_EQ(c.dns.min_ttl, dns.min_ttl);
    EXPECT_EQ(c.dns.max_ttl, dns.max_ttl);
    EXPECT_EQ(c.dns.negative_ttl, dns.negative_ttl);
    EXPECT_EQ(c.dns.cache_entries, dns.cache_entries);

    // The values, not just "whatever the struct says": the header's comments promise these.
    EXPECT_EQ(c.timeouts.header, 10s);
    EXPECT_EQ(c.timeouts.connect, 10s);
    EXPECT_EQ(c.timeouts.idle, 300s);
    EXPECT_EQ(c.timeouts.tunnel_lifetime, 86'400s);
    EXPECT_EQ(c.timeouts.upstream_response, 60s);
    EXPECT_EQ(c.timeouts.shutdown_grace, 30s);
    EXPECT_EQ(c.limits.max_head_bytes, 64u * 1024);
    EXPECT_EQ(c.limits.max_headers, 100u);
    EXPECT_EQ(c.limits.max_request_line, 8u * 1024);
    EXPECT_EQ(c.limits.max_connections, 10'000u);
    EXPECT_EQ(c.limits.max_connections_per_client, 1'000u);

    EXPECT_TRUE(c.logging.to_stdout);
    EXPECT_FALSE(c.logging.file);
    EXPECT_FALSE(c.logging.deny_file);
    EXPECT_FALSE(c.logging.syslog_ident);
    EXPECT_EQ(c.logging.queue_size, 8192u);

    // SIGTERM closes the listeners at once unless a drain delay is asked for.
    EXPECT_EQ(c.timeouts.drain_delay, 0s);
    // No admin key: the admin endpoint is on, on loopback, without a token (only local callers reach it).
    ASSERT_TRUE(c.admin);
    EXPECT_EQ(c.admin->address, "127.0.0.1");
    EXPECT_EQ(c.admin->port, 9090);
    EXPECT_FALSE(c.admin->token_file);
    EXPECT_FALSE(c.admin->tls);
    EXPECT_EQ(c.admin->where.line, 0u);
    EXPECT_TRUE(c.reload.watch);
    EXPECT_EQ(c.reload.debounce, 500ms);
    // No approvals key: no access requests.
    EXPECT_FALSE(c.approvals);
}

TEST(config_server_defaults, absolute_policy_path_is_kept)
{
    auto loaded = load(lines({"version: 1", "policy: /srv/egressd/policy.d"}));
    ASSERT_TRUE(loaded.config) << show(loaded);
    EXPECT_EQ(loaded.config->policy_path, std::filesystem::path("/srv/egressd/policy.d"));
}

TEST(config_server_defaults, every_section_written_out)
{
    auto loaded = load(with({
        "listeners: [0.0.0.0:0, '[2001:db8::1]:8080', 10.1.2.3:65535]",
        "workers: 256",
        "dns:",
        "  servers: [127.0.0.1, 127.0.0.1:5353, '[::1]:53', '[::1]', '2001:db8::53']",
        "  timeout: 500ms",
        "  tries: 10",
        "  min_ttl: 0s",
        "  max_ttl: 1h",
        "  negative_ttl: 0s",
        "  cache_entries: 1",
        "timeouts:",
        "  header: 1ms",
        "  connect: 3s",
        "  idle: 2m",
        "  tunnel_lifetime: 48h",
        "  upstream_response: 1500ms",
        "  shutdown_grace: 0001s",
        "limits:",
        "  max_head_bytes: 1024",
        "  max_headers: 10000",
        "  max_request_line: 64",
        "  max_connections: 10000000",
        "  max_connections_per_client: 1",
        "logging:",
        "  stdout: false",
        "  file: {path: logs/events.log, max_bytes: 4096, max_files: 1000}",
        "  deny_file:",
        "    path: /var/log/egressd/deny.log",
        "  syslog: {}",
        "  queue_size: 16",
    }));
    ASSERT_TRUE(loaded.config) << show(loaded);
    const auto& c = *loaded.config;
    ASSERT_EQ(c.listeners.size(), 3u);
    // Port 0 asks the kernel for a free port: tests rely on it.
    EXPECT_EQ(c.listeners[0].address, "0.0.0.0");
    EXPECT_EQ(c.listeners[0].port, 0);
    EXPECT_EQ(c.listeners[1].address, "2001:db8::1");
    EXPECT_EQ(c.listeners[1].port, 8080);
    EXPECT_EQ(c.listeners[2].address, "10.1.2.3");
    EXPECT_EQ(c.listeners[2].port, 65535);
    EXPECT_EQ(c.workers, 256u);
    EXPECT_EQ(c.dns.servers,
              (std::vector<std::string>{"127.0.0.1", "127.0.0.1:5353", "[::1]:53", "[::1]", "2001:db8::53"}));
    EXPECT_EQ(c.dns.timeout, 500ms);
    EXPECT_EQ(c.dns.tries, 10);
    // A TTL of 0 means "cache nothing", unlike a timeout of 0, which is refused.
    EXPECT_EQ(c.dns.min_ttl, 0s);
    EXPECT_EQ(c.dns.max_ttl, 1h);
    EXPECT_EQ(c.dns.negative_ttl, 0s);
    EXPECT_EQ(c.dns.cache_entries, 1u);
    EXPECT_EQ(c.timeouts.header, 1ms);
    EXPECT_EQ(c.timeouts.connect, 3s);
    EXPECT_EQ(c.timeouts.idle, 2min);
    EXPECT_EQ(c.timeouts.tunnel_lifetime, 48h);
    EXPECT_EQ(c.timeouts.upstream_response, 1500ms);
    EXPECT_EQ(c.timeouts.shutdown_grace, 1s);
    EXPECT_EQ(c.limits.max_head_bytes, 1024u);
    EXPECT_EQ(c.limits.max_headers, 10'000u);
    EXPECT_EQ(c.limits.max_request_line, 64u);
    EXPECT_EQ(c.limits.max_connections, 10'000'000u);
    EXPECT_EQ(c.limits.max_connections_per_client, 1u);
    EXPECT_FALSE(c.logging.to_stdout);
    ASSERT_TRUE(c.logging.file);
    // Relative log paths start from the configuration's directory; absolute ones are kept.
    EXPECT_EQ(c.logging.file->path, (base_dir / "logs/events.log").string());
    EXPECT_EQ(c.logging.file->max_bytes, 4096u);
    EXPECT_EQ(c.logging.file->max_files, 1000u);
    ASSERT_TRUE(c.logging.deny_file);
    EXPECT_EQ(c.logging.deny_file->path, "/var/log/egressd/deny.log");
    EXPECT_EQ(c.logging.deny_file->max_bytes, rotating_file_config{}.max_bytes);
    EXPECT_EQ(c.logging.deny_file->max_files, rotating_file_config{}.max_files);
    // An empty syslog mapping turns syslog on with the default ident.
    EXPECT_EQ(c.logging.syslog_ident, "egressd");
    EXPECT_EQ(c.logging.queue_size, 16u);
}

TEST(config_server_defaults, event_format_instance_and_query)
{
    auto loaded = load(with({"logging:", "  format: ocsf", "  instance: egress-gw-1", "  http_query: true"}));
    ASSERT_TRUE(loaded.config) << show(loaded);
    EXPECT_EQ(loaded.config->logging.format, event_format::ocsf);
    EXPECT_EQ(loaded.config->logging.instance, "egress-gw-1");
    EXPECT_TRUE(loaded.config->logging.http_query);
    auto ecs = load(with({"logging:", "  format: ecs"}));
    ASSERT_TRUE(ecs.config) << show(ecs);
    EXPECT_EQ(ecs.config->logging.format, event_format::ecs);
}

TEST(config_server_defaults, syslog_ident_and_a_single_dns_server_as_a_scalar)
{
    auto loaded = load(with({"dns:", "  servers: 192.0.2.53:53", "logging:", "  syslog: {ident: proxy}"}));
    ASSERT_TRUE(loaded.config) << show(loaded);
    EXPECT_EQ(loaded.config->dns.servers, std::vector<std::string>{"192.0.2.53:53"});
    EXPECT_EQ(loaded.config->logging.syslog_ident, "proxy");
}

TEST(config_server_defaults, equal_ttls_are_accepted)
{
    // Clamping to [min_ttl, max_ttl] with min == max is a fixed TTL, and 0/0 turns the cache off.
    for (const char* ttl : {"0s", "30s"}) {
        auto loaded = load(with({"dns:", "  min_ttl: " + std::string(ttl), "  max_ttl: " + std::string(ttl)}));
        ASSERT_TRUE(loaded.config) << ttl << "\n" << show(loaded);
        EXPECT_EQ(loaded.config->dns.min_ttl, loaded.config->dns.max_ttl);
    }
}

// --- admin, reload and drain_delay --------------------------------------------------------------------------

TEST(config_server_admin, off_turns_it_off)
{
    for (const char* off : {"admin: off", "admin: 'off'"}) {
        auto loaded = load(with({off}));
        ASSERT_TRUE(loaded.config) << off << "\n" << show(loaded);
        EXPECT_FALSE(loaded.config->admin) << off;
    }
}

TEST(config_server_admin, an_empty_mapping_takes_the_defaults)
{
    auto loaded = load(with({"admin: {}"}));
    ASSERT_TRUE(loaded.config) << show(loaded);
    ASSERT_TRUE(loaded.config->admin);
    const auto& a = *loaded.config->admin;
    EXPECT_EQ(a.address, "127.0.0.1");
    EXPECT_EQ(a.port, 9090);
    EXPECT_FALSE(a.token_file);
    EXPECT_FALSE(a.tls);
    EXPECT_EQ(a.where.line, 3u);
    EXPECT_EQ(a.where.column, 8u);
}

TEST(config_server_admin, every_setting_written_out)
{
    auto loaded = load(with({
        "admin:",
        "  listen: '[2001:db8::9]:0'",
        "  token_file: secrets/admin.token",
        "  tls:",
        "    certificate: pki/admin.pem",
        "    key: /etc/pki/admin.key",
        "    client_ca: pki/ca.pem",
        "    crl: pki/ca.crl",
    }));
    ASSERT_TRUE(loaded.config) << show(loaded);
    ASSERT_TRUE(loaded.config->admin);
    const auto& a = *loaded.config->admin;
    // The brackets are syntax; port 0 asks for a free port, as for listeners.
    EXPECT_EQ(a.address, "2001:db8::9");
    EXPECT_EQ(a.port, 0);
    // Relative paths start from the configuration's directory, like the listeners' tls paths.
    EXPECT_EQ(a.token_file, base_dir / "secrets/admin.token");
    EXPECT_EQ(a.token_file_at.line, 5u);
    EXPECT_EQ(a.token_file_at.column, 15u);
    ASSERT_TRUE(a.tls);
    EXPECT_EQ(a.tls->certificate, base_dir / "pki/admin.pem");
    EXPECT_EQ(a.tls->key, std::filesystem::path("/etc/pki/admin.key"));
    EXPECT_EQ(a.tls->client_ca, base_dir / "pki/ca.pem");
    EXPECT_EQ(a.tls->crl, base_dir / "pki/ca.crl");
    // With client_ca, a caller without a certificate is never let in.
    EXPECT_TRUE(a.tls->require_client_certificate);
    EXPECT_EQ(a.tls->where.line, 7u);
    EXPECT_EQ(a.tls->where.column, 5u);
    EXPECT_EQ(a.tls->certificate_at.line, 7u);
    EXPECT_EQ(a.tls->key_at.line, 8u);
    EXPECT_EQ(a.tls->client_ca_at.line, 9u);
    EXPECT_EQ(a.tls->crl_at.line, 10u);
    EXPECT_EQ(a.where.line, 4u);
}

TEST(config_server_admin, tls_without_client_ca_is_https_only)
{
    auto loaded = load(with({"admin:", "  tls: {certificate: admin.pem, key: admin.key}"}));
    ASSERT_TRUE(loaded.config) << show(loaded);
    ASSERT_TRUE(loaded.config->admin && loaded.config->admin->tls);
    EXPECT_FALSE(loaded.config->admin->tls->client_ca);
    EXPECT_FALSE(loaded.config->admin->tls->crl);
    EXPECT_EQ(loaded.config->admin->tls->certificate, base_dir / "admin.pem");
}

TEST(config_server_admin, loopback_needs_no_credentials_and_other_addresses_need_one)
{
    struct accepted {
        std::vector<std::string> admin;
        std::string address;
        std::uint16_t port;
    };
    const std::vector<accepted> cases = {
        // All of 127.0.0.0/8 is loopback, and so is ::1.
        {{"  listen: 127.0.0.1:9090"}, "127.0.0.1", 9090},
        {{"  listen: 127.45.6.7:1"}, "127.45.6.7", 1},
        {{"  listen: '[::1]:9090'"}, "::1", 9090},
        // Elsewhere a token or client certificates make up for it.
        {{"  listen: 0.0.0.0:9090", "  token_file: admin.token"}, "0.0.0.0", 9090},
        {{"  listen: '[::]:9443'", "  tls: {certificate: a.pem, key: a.key, client_ca: ca.pem}"}, "::", 9443},
        {{"  listen: 10.1.2.3:65535", "  token_file: t", "  tls: {certificate: a.pem, key: a.key}"}, "10.1.2.3",
         65535},
    };
    for (const auto& c : cases) {
        std::string text = minimal + "admin:\n";
        for (const auto& l : c.admin) {
            text += l + "\n";
        }
        auto loaded = load(text);
        ASSERT_TRUE(loaded.config) << text << show(loaded);
        ASSERT_TRUE(loaded.config->admin);
        EXPECT_EQ(loaded.config->admin->address, c.address) << text;
        EXPECT_EQ(loaded.config->admin->port, c.port) << text;
    }
}

TEST(config_server_admin, the_token_file_is_not_read_here)
{
    // The loader reads it (and reports a missing one at token_file_at); the configuration only names it.
    auto loaded = load(with({"admin: {listen: 192.0.2.1:9090, token_file: /nonexistent/admin.token}"}));
    ASSERT_TRUE(loaded.config) << show(loaded);
    EXPECT_EQ(loaded.config->admin->token_file, std::filesystem::path("/nonexistent/admin.token"));
}

TEST(config_server_reload, written_out_and_at_the_bounds)
{
    const std::vector<std::pair<std::string, std::chrono::milliseconds>> cases = {
        {"50ms", 50ms}, {"1m", 1min}, {"2s", 2s}};
    for (const auto& [text, want] : cases) {
        auto loaded = load(with({"reload:", "  watch: false", "  debounce: " + text}));
        ASSERT_TRUE(loaded.config) << text << "\n" << show(loaded);
        EXPECT_FALSE(loaded.config->reload.watch);
        EXPECT_EQ(loaded.config->reload.debounce, want) << text;
    }
    auto loaded = load(with({"reload: {watch: true}"}));
    ASSERT_TRUE(loaded.config) << show(loaded);
    EXPECT_TRUE(loaded.config->reload.watch);
    EXPECT_EQ(loaded.config->reload.debounce, 500ms);
}

TEST(config_server_drain_delay, zero_and_up_to_ten_minutes)
{
    const std::vector<std::pair<std::string, std::chrono::milliseconds>> cases = {
        {"0s", 0ms}, {"15s", 15s}, {"10m", 10min}};
    for (const auto& [text, want] : cases) {
        auto loaded = load(with({"timeouts:", "  drain_delay: " + text}));
        ASSERT_TRUE(loaded.config) << text << "\n" << show(loaded);
        EXPECT_EQ(loaded.config->timeouts.drain_delay, want) << text;
        // shutdown_grace is a separate setting, untouched.
        EXPECT_EQ(loaded.config->timeouts.shutdown_grace, 30s);
    }
}

// --- approvals -----------------------------------------------------------------------------------------------

// The smallest approvals section (lines 3 to 5) followed by more: line 6 of the document is the first of `more`.
std::string approvals_with(std::initializer_list<std::string_view> more)
{
    return minimal + lines({"approvals:", "  store: approvals.db", "  approvers: approvers.passwd"}) + lines(more);
}

TEST(config_server_approvals, off_turns_it_off)
{
    for (const char* off : {"approvals: off", "approvals: 'off'"}) {
        auto loaded = load(with({off}));
        ASSERT_TRUE(loaded.config) << off << "\n" << show(loaded);
        EXPECT_FALSE(loaded.config->approvals) << off;
    }
}

TEST(config_server_approvals, the_smallest_section_takes_the_defaults)
{
    auto loaded = load(approvals_with({}));
    ASSERT_TRUE(loaded.config) << show(loaded);
    ASSERT_TRUE(loaded.config->approvals);
    const auto& a = *loaded.config->approvals;
    EXPECT_EQ(a.where.line, 4u);
    EXPECT_EQ(a.where.column, 3u);
    EXPECT_EQ(a.store, base_dir / "approvals.db");
    EXPECT_EQ(a.address, "127.0.0.1");
    EXPECT_EQ(a.port, 9091);
    EXPECT_EQ(a.public_url, "http://127.0.0.1:9091");
    EXPECT_FALSE(a.tls);
    EXPECT_EQ(a.approvers, base_dir / "approvers.passwd");
    EXPECT_EQ(a.approvers_at.line, 5u);
    EXPECT_EQ(a.approvers_at.column, 14u);
    EXPECT_FALSE(a.requesters);
    EXPECT_FALSE(a.trusted_header);
    // The values the header's comments promise.
    EXPECT_EQ(a.default_grant, 8h);
    EXPECT_EQ(a.max_grant, 168h);
    EXPECT_EQ(a.max_pending, 10'000u);
    EXPECT_EQ(a.requests_per_client_per_minute, 30u);
    EXPECT_EQ(a.request_ttl, 336h);
    EXPECT_EQ(a.notify_cooldown, 1h);
    EXPECT_EQ(a.expiry_warning, 15min);
    EXPECT_TRUE(a.notify.empty());
}

TEST(config_server_approvals, a_postgresql_store_is_kept_as_written)
{
    for (const char* url : {"postgresql://egressd@db.internal:5432/egressd?sslmode=verify-full",
                            "postgres://db/egressd", "postgresql:///egressd?host=/run/postgresql&passfile=/etc/pgpass"}) {
        auto loaded = load(with({"approvals:", std::string("  store: '") + url + "'", "  approvers: a.passwd"}));
        ASSERT_TRUE(loaded.config) << url << "\n" << show(loaded);
        EXPECT_EQ(loaded.config->approvals->store_url, url);
        EXPECT_TRUE(loaded.config->approvals->store.empty()) << url;
    }
    auto sqlite = load(approvals_with({}));
    ASSERT_TRUE(sqlite.config) << show(sqlite);
    EXPECT_TRUE(sqlite.config->approvals->store_url.empty());
}

TEST(config_server_approvals, every_setting_written_out)
{
    auto loaded = load(with({
        "approvals:",
        "  listen: '[::1]:0'",
        "  public_url: https://egress-approvals.example.com/approvals/",
        "  store: /var/lib/egressd/approvals.db",
        "  tls:",
        "    certificate: pki/approvals.pem",
        "    key: pki/approvals.key",
        "    client_ca: pki/ca.pem",
        "    crl: pki/ca.crl",
        "  approvers: approvers.passwd",
        "  requesters: /etc/egressd/requesters.passwd",
        "  trusted_header:",
        "    user: X-Auth-Request-User",
        "    groups: X-Auth-Request-Groups",
        "    approver_group: egress-approvers",
        "    from: [127.0.0.1/32, '::1/128']",
        "  default_grant: 2h",
        "  max_grant: 365d",
        "  max_pending: 1",
        "  requests_per_client_per_minute: 1000000",
        "  request_ttl: 30d",
        "  notify_cooldown: 90s",
        "  expiry_warning: 1m",
        "  notify:",
        "    - url: http://127.0.0.1:9000/hook",
        "      format: json",
        "      secret_file: secrets/hook.secret",
        "      events: [requested, decided, expiring]",
        "    - url: https://hooks.slack.example/services/T0/B0/x?channel=egress",
        "      format: slack",
        "      events: decided",
        "    - {url: 'http://[::1]:8080'}",
    }));
    ASSERT_TRUE(loaded.config) << show(loaded);
    ASSERT_TRUE(loaded.config->approvals);
    const auto& a = *loaded.config->approvals;
    EXPECT_EQ(a.address, "::1");
    EXPECT_EQ(a.port, 0);
    // Trailing slashes go: links are public_url + "/requests/<id>".
    EXPECT_EQ(a.public_url, "https://egress-approvals.example.com/approvals");
    EXPECT_EQ(a.store, std::filesystem::path("/var/lib/egressd/approvals.db"));
    ASSERT_TRUE(a.tls);
    EXPECT_EQ(a.tls->certificate, base_dir / "pki/approvals.pem");
    EXPECT_EQ(a.tls->key, base_dir / "pki/approvals.key");
    EXPECT_EQ(a.tls->client_ca, base_dir / "pki/ca.pem");
    EXPECT_EQ(a.tls->crl, base_dir / "pki/ca.crl");
    EXPECT_TRUE(a.tls->require_client_certificate);
    EXPECT_EQ(a.tls->certificate_at.line, 8u);
    EXPECT_EQ(a.tls->key_at.line, 9u);
    EXPECT_EQ(a.approvers, base_dir / "approvers.passwd");
    EXPECT_EQ(a.approvers_at.line, 12u);
    EXPECT_EQ(a.approvers_at.column, 14u);
    EXPECT_EQ(a.requesters, std::filesystem::path("/etc/egressd/requesters.passwd"));
    EXPECT_EQ(a.requesters_at.line, 13u);
    EXPECT_EQ(a.requesters_at.column, 15u);
    ASSERT_TRUE(a.trusted_header);
    EXPECT_EQ(a.trusted_header->user_header, "X-Auth-Request-User");
    EXPECT_EQ(a.trusted_header->groups_header, "X-Auth-Request-Groups");
    EXPECT_EQ(a.trusted_header->approver_group, "egress-approvers");
    EXPECT_EQ(a.trusted_header->sources,
              (std::vector<policy::cidr>{*policy::cidr::parse("127.0.0.1/32"), *policy::cidr::parse("::1/128")}));
    EXPECT_EQ(a.trusted_header->where.line, 15u);
    EXPECT_EQ(a.default_grant, 2h);
    EXPECT_EQ(a.max_grant, 365 * 24h);
    EXPECT_EQ(a.max_pending, 1u);
    EXPECT_EQ(a.requests_per_client_per_minute, 1'000'000u);
    EXPECT_EQ(a.request_ttl, 30 * 24h);
    EXPECT_EQ(a.notify_cooldown, 90s);
    EXPECT_EQ(a.expiry_warning, 1min);
    ASSERT_EQ(a.notify.size(), 3u);
    EXPECT_EQ(a.notify[0].url, "http://127.0.0.1:9000/hook");
    EXPECT_EQ(a.notify[0].format, webhook_config::body_format::json);
    EXPECT_EQ(a.notify[0].secret_file, base_dir / "secrets/hook.secret");
    EXPECT_EQ(a.notify[0].secret_file_at.line, 29u);
    EXPECT_EQ(a.notify[0].secret_file_at.column, 20u);
    EXPECT_EQ(a.notify[0].events, (std::vector<std::string>{"requested", "decided", "expiring"}));
    EXPECT_EQ(a.notify[0].where.line, 27u);
    // A webhook URL may carry a query (some services take their channel there); it is kept as written.
    EXPECT_EQ(a.notify[1].url, "https://hooks.slack.example/services/T0/B0/x?channel=egress");
    EXPECT_EQ(a.notify[1].format, webhook_config::body_format::slack);
    EXPECT_FALSE(a.notify[1].secret_file);
    EXPECT_EQ(a.notify[1].events, std::vector<std::string>{"decided"});
    // Defaults: json, unsigned, every event.
    EXPECT_EQ(a.notify[2].url, "http://[::1]:8080");
    EXPECT_EQ(a.notify[2].format, webhook_config::body_format::json);
    EXPECT_FALSE(a.notify[2].secret_file);
    EXPECT_TRUE(a.notify[2].events.empty());
}

TEST(config_server_approvals, public_url_default_and_as_written)
{
    struct url_case {
        std::vector<std::string> more;  // after the smallest section
        std::string want;
    };
    const std::vector<url_case> cases = {
        {{}, "http://127.0.0.1:9091"},
        {{"  listen: 127.0.0.2:8443", "  tls: {certificate: a.pem, key: a.key}"}, "https://127.0.0.2:8443"},
        // IPv6 in brackets, in canonical text.
        {{"  listen: '[2001:db8:0::9]:9091'"}, "http://[2001:db8::9]:9091"},
        {{"  public_url: http://egress.example.com"}, "http://egress.example.com"},
        {{"  public_url: https://egress.example.com/"}, "https://egress.example.com"},
        {{"  public_url: https://egress.example.com:8443//"}, "https://egress.example.com:8443"},
        {{"  public_url: https://egress.example.com/tools/approvals"}, "https://egress.example.com/tools/approvals"},
        {{"  public_url: 'http://[::1]:9091/'"}, "http://[::1]:9091"},
        {{"  public_url: http://192.0.2.7"}, "http://192.0.2.7"},
        // Written out, it wins over the listener's address and TLS.
        {{"  listen: 0.0.0.0:9091", "  tls: {certificate: a.pem, key: a.key}", "  public_url: http://proxy.internal"},
         "http://proxy.internal"},
    };
    for (const auto& c : cases) {
        std::string text = approvals_with({});
        for (const auto& l : c.more) {
            text += l + "\n";
        }
        auto loaded = load(text);
        ASSERT_TRUE(loaded.config && loaded.config->approvals) << text << show(loaded);
        EXPECT_EQ(loaded.config->approvals->public_url, c.want) << text;
    }
}

TEST(config_server_approvals, a_trusted_header_alone_is_a_way_to_sign_in)
{
    auto loaded = load(with({"approvals:", "  store: approvals.db", "  trusted_header: {from: 10.0.0.0/8}"}));
    ASSERT_TRUE(loaded.config) << show(loaded);
    ASSERT_TRUE(loaded.config->approvals);
    const auto& a = *loaded.config->approvals;
    EXPECT_FALSE(a.approvers);
    EXPECT_FALSE(a.requesters);
    ASSERT_TRUE(a.trusted_header);
    EXPECT_EQ(a.trusted_header->user_header, "X-Forwarded-User");
    EXPECT_EQ(a.trusted_header->groups_header, "X-Forwarded-Groups");
    // No approver group: people signed in this way request, nobody approves.
    EXPECT_EQ(a.trusted_header->approver_group, "");
    EXPECT_EQ(a.trusted_header->sources, std::vector<policy::cidr>{*policy::cidr::parse("10.0.0.0/8")});
}

TEST(config_server_approvals, durations_in_days_and_at_their_bounds)
{
    // A grant as long as the longest allowed, and everything up to the one-year cap.
    auto loaded = load(approvals_with({"  default_grant: 7d", "  max_grant: 7d", "  request_ttl: 365d",
                                       "  notify_cooldown: 1s", "  expiry_warning: 8760h"}));
    ASSERT_TRUE(loaded.config) << show(loaded);
    const auto& a = *loaded.config->approvals;
    EXPECT_EQ(a.default_grant, 168h);
    EXPECT_EQ(a.max_grant, 168h);
    EXPECT_EQ(a.request_ttl, 8760h);
    EXPECT_EQ(a.notify_cooldown, 1s);
    EXPECT_EQ(a.expiry_warning, 8760h);
    // Other settings take days too.
    auto other = load(with({"timeouts: {tunnel_lifetime: 2d}"}));
    ASSERT_TRUE(other.config) << show(other);
    EXPECT_EQ(other.config->timeouts.tunnel_lifetime, 48h);
}

TEST(config_server_approvals, a_port_of_its_own_is_accepted)
{
    const std::vector<std::vector<std::string>> cases = {
        // The same port on another address, or in the other family.
        {"listeners: [127.0.0.1:3128]", "approvals:", "  listen: 127.0.0.2:3128"},
        {"listeners: [0.0.0.0:3128]", "approvals:", "  listen: '[::1]:3128'"},
        // Port 0: a free port each, never the same one.
        {"listeners: [127.0.0.1:0]", "admin: {listen: 127.0.0.1:0}", "approvals:", "  listen: 127.0.0.1:0"},
        // Without the admin endpoint its port is free.
        {"admin: off", "approvals:", "  listen: 127.0.0.1:9090"},
    };
    for (const auto& c : cases) {
        std::string text = minimal;
        for (const auto& l : c) {
            text += l + "\n";
        }
        text += "  store: approvals.db\n  approvers: approvers.passwd\n";
        auto loaded = load(text);
        EXPECT_TRUE(loaded.config) << text << show(loaded);
    }
}

// --- one mistake, exactly one error ------------------------------------------------------------------------

struct error_case {
    std::string name;
    std::string yaml;
    std::uint32_t line;
    std::uint32_t column;
    std::string fragment;
};

void PrintTo(const error_case& c, std::ostream* os) { *os << c.name; }

class config_server_error : public ::testing::TestWithParam<error_case> {};

TEST_P(config_server_error, is_reported_once_with_its_location)
{
    const auto& c = GetParam();
    auto loaded = load(c.yaml);
    // Any error means no configuration at all: a half-read config must never start a proxy.
    EXPECT_FALSE(loaded.config);
    ASSERT_EQ(loaded.errors.size(), 1u) << show(loaded);
    test::expect_diagnostic(loaded.errors[0], located{file_name, c.line, c.column, c.fragment});
}

INSTANTIATE_TEST_SUITE_P(
    document, config_server_error,
    ::testing::Values(
        error_case{"empty", "", 1, 1, "empty document: expected a mapping"},
        error_case{"top_level_list", lines({"- version: 1"}), 1, 1,
                   "expected an egressd configuration (a mapping), found a list"},
        // "policy: a: b": the second ':' (column 10) cannot start a value here.
        error_case{"yaml_syntax", lines({"version: 1", "policy: a: b"}), 2, 10, "YAML syntax error"},
        error_case{"key_twice", lines({"version: 1", "policy: a.yaml", "version: 1"}), 3, 1,
                   "key 'version' appears twice in the configuration"},
        // A missing key is reported at the mapping that lacks it.
        error_case{"version_missing", lines({"policy: policy.yaml"}), 1, 1,
                   "missing required key 'version' in the configuration"},
        error_case{"version_2", lines({"version: 2", "policy: policy.yaml"}), 1, 10,
                   "unsupported configuration version 2: expected version 1"},
        error_case{"version_0", lines({"version: 0", "policy: policy.yaml"}), 1, 10,
                   "expected version as a whole number from 1 to 1000000, found '0'"},
        error_case{"policy_missing", lines({"version: 1", "workers: 2"}), 1, 1,
                   "missing required key 'policy' in the configuration"},
        error_case{"policy_a_list", lines({"version: 1", "policy: [a.yaml, b.yaml]"}), 2, 9,
                   "expected the policy path (a file or a directory), found a list"},
        error_case{"workers_1000", with({"workers: 1000"}), 3, 10,
                   "expected workers (0: one per core) as a whole number from 0 to 256, found '1000'"},
        error_case{"workers_negative", with({"workers: -1"}), 3, 10,
                   "expected workers (0: one per core) as a whole number from 0 to 256, found '-1'"}),
    test::param_name<error_case>);

INSTANTIATE_TEST_SUITE_P(
    unknown_keys, config_server_error,
    ::testing::Values(
        error_case{"top_level", with({"listen: 127.0.0.1:3128"}), 3, 1,
                   "unknown key 'listen' in the configuration; expected one of: version, listeners, policy, workers, "
                   "dns, timeouts, limits, logging"},
        error_case{"dns", with({"dns:", "  tries: 3", "  server: 127.0.0.1"}), 5, 3,
                   "unknown key 'server' in dns; expected one of: servers, timeout, tries, min_ttl, max_ttl, "
                   "negative_ttl, cache_entries"},
        error_case{"timeouts", with({"timeouts:", "  read: 10s"}), 4, 3,
                   "unknown key 'read' in timeouts; expected one of: header, connect, idle, tunnel_lifetime, "
                   "upstream_response, tls_peek, shutdown_grace"},
        error_case{"limits", with({"limits:", "  max_body_bytes: 4096"}), 4, 3,
                   "unknown key 'max_body_bytes' in limits; expected one of: max_head_bytes, max_headers, "
                   "max_request_line, max_connections, max_connections_per_client"},
        error_case{"logging", with({"logging:", "  level: debug"}), 4, 3,
                   "unknown key 'level' in logging; expected one of: format, instance, http_query, stdout, file, deny_file, syslog, queue_size"},
        error_case{"logging_format", with({"logging:", "  format: splunk"}), 4, 11,
                   "expected format: egressd, ecs or ocsf, found 'splunk'"},
        error_case{"logging_instance", with({"logging:", "  instance: \"\""}), 4, 13,
                   "empty instance name: leave it out to use the host name"},
        error_case{"logging_http_query", with({"logging:", "  http_query: maybe"}), 4, 15,
                   "expected http_query: true or false, found 'maybe'"},
        error_case{"logging_file", with({"logging:", "  file:", "    path: events.log", "    rotate: daily"}), 6, 5,
                   "unknown key 'rotate' in logging.file; expected one of: path, max_bytes, max_files"},
        error_case{"logging_deny_file", with({"logging:", "  deny_file: {path: deny.log, keep: 3}"}), 4, 31,
                   "unknown key 'keep' in logging.deny_file; expected one of: path, max_bytes, max_files"},
        error_case{"logging_syslog", with({"logging:", "  syslog:", "    facility: local0"}), 5, 5,
                   "unknown key 'facility' in logging.syslog; expected one of: ident"}),
    test::param_name<error_case>);

INSTANTIATE_TEST_SUITE_P(
    listeners, config_server_error,
    ::testing::Values(
        error_case{"a_scalar", with({"listeners: 127.0.0.1:3128"}), 3, 12,
                   "expected listeners: a non-empty list of addresses like 127.0.0.1:3128 or [::1]:3128"},
        error_case{"empty_list", with({"listeners: []"}), 3, 12, "expected listeners: a non-empty list"},
        error_case{"a_mapping", with({"listeners:", "  main: 127.0.0.1:3128"}), 4, 3,
                   "expected listeners: a non-empty list"},
        error_case{"entry_mapping_unknown_key", with({"listeners:", "  - {address: 127.0.0.1:3128, port: 3128}"}), 4,
                   31, "unknown key 'port' in a listener; expected one of: address, proxy_protocol"},
        error_case{"entry_mapping_without_address", with({"listeners:", "  - {proxy_protocol: {trusted: [10.0.0.0/8]}}"}),
                   4, 5, "missing required key 'address' in a listener"},
        error_case{"proxy_protocol_empty_trusted",
                   with({"listeners:", "  - {address: 127.0.0.1:3128, proxy_protocol: {trusted: []}}"}), 4, 57,
                   "empty trusted list"},
        error_case{"proxy_protocol_bad_cidr",
                   with({"listeners:", "  - {address: 127.0.0.1:3128, proxy_protocol: {trusted: [10.0.0.1/8]}}"}), 4,
                   58, "has host bits set"},
        error_case{"no_port", with({"listeners:", "  - 127.0.0.1"}), 4, 5,
                   "invalid listener '127.0.0.1': expected an IP address and port, like 127.0.0.1:3128 or "
                   "[::1]:3128"},
        // Quoted: a plain "127.0.0.1:" at the end of a line is a mapping key to YAML.
        error_case{"empty_port", with({"listeners:", "  - '127.0.0.1:'"}), 4, 5, "invalid listener '127.0.0.1:'"},
        // Listeners bind: a name would need DNS at start-up, and could resolve to anything.
        error_case{"a_name", with({"listeners:", "  - localhost:3128"}), 4, 5, "invalid listener 'localhost:3128'"},
        error_case{"v6_without_colon_before_port", with({"listeners:", "  - '[::1]3128'"}), 4, 5,
                   "invalid listener '[::1]3128'"},
        error_case{"v6_without_brackets", with({"listeners:", "  - '::1:3128'"}), 4, 5,
                   "invalid listener '::1:3128'"},
        error_case{"v4_in_brackets", with({"listeners:", "  - '[127.0.0.1]:3128'"}), 4, 5,
                   "invalid listener '[127.0.0.1]:3128'"},
        error_case{"port_70000", with({"listeners:", "  - 1.2.3.4:70000"}), 4, 5, "invalid listener '1.2.3.4:70000'"},
        error_case{"port_negative", with({"listeners:", "  - 1.2.3.4:-1"}), 4, 5, "invalid listener '1.2.3.4:-1'"},
        error_case{"port_with_letters", with({"listeners:", "  - 1.2.3.4:80x"}), 4, 5,
                   "invalid listener '1.2.3.4:80x'"},
        // Octal-looking quads mean 127.0.0.1 to inet_aton but are not canonical: refused, like everywhere.
        error_case{"octal_quad", with({"listeners:", "  - 0177.0.0.1:80"}), 4, 5, "invalid listener '0177.0.0.1:80'"},
        // Only the bad entry is reported, at its own position in a flow list.
        error_case{"second_of_three", with({"listeners: [127.0.0.1:1, 127.0.0.256:2, '[::1]:3']"}), 3, 26,
                   "invalid listener '127.0.0.256:2'"}),
    test::param_name<error_case>);

INSTANTIATE_TEST_SUITE_P(
    durations, config_server_error,
    ::testing::Values(
        error_case{"longer_than_a_year", with({"timeouts:", "  tunnel_lifetime: 3000000h"}), 4, 20,
                   "is longer than a year"},
        error_case{"dns_timeout_over_a_minute", with({"dns:", "  timeout: 2m"}), 4, 12,
                   "dns.timeout is longer than a minute"},
        error_case{"no_unit", with({"timeouts:", "  header: 10"}), 4, 11,
                   "invalid duration '10' for header: expected a positive whole number with ms, s, m, h or d, like 10s"},
        error_case{"bad_unit", with({"timeouts:", "  connect: 10x"}), 4, 12, "invalid duration '10x' for connect"},
        error_case{"negative", with({"timeouts:", "  idle: -1s"}), 4, 9, "invalid duration '-1s' for idle"},
        error_case{"fraction", with({"timeouts:", "  idle: 1.5s"}), 4, 9, "invalid duration '1.5s' for idle"},
        error_case{"zero_timeout", with({"timeouts:", "  shutdown_grace: 0s"}), 4, 19,
                   "invalid duration '0s' for shutdown_grace: expected a positive whole number"},
        error_case{"zero_tunnel_lifetime", with({"timeouts:", "  tunnel_lifetime: 0ms"}), 4, 20,
                   "invalid duration '0ms' for tunnel_lifetime"},
        error_case{"zero_upstream_response", with({"timeouts:", "  upstream_response: 0m"}), 4, 22,
                   "invalid duration '0m' for upstream_response"},
        error_case{"zero_dns_timeout", with({"dns:", "  timeout: 0s"}), 4, 12,
                   "invalid duration '0s' for timeout: expected a positive whole number"},
        error_case{"a_list", with({"timeouts:", "  header: [10s]"}), 4, 11,
                   "expected header (a duration like 500ms, 10s, 5m or 24h), found a list"},
        error_case{"overflow", with({"timeouts:", "  idle: 9223372036854775807h"}), 4, 9,
                   "invalid duration '9223372036854775807h' for idle"},
        // TTLs may be 0, but not negative, and the word in the message says so (no "positive").
        error_case{"negative_ttl", with({"dns:", "  negative_ttl: -5s"}), 4, 17,
                   "invalid duration '-5s' for negative_ttl: expected a whole number"},
        // TTLs are held in whole seconds: 1500ms would be silently cut to 1s.
        error_case{"ttl_not_whole_seconds", with({"dns:", "  min_ttl: 1500ms"}), 4, 12, "min_ttl must be whole seconds"},
        error_case{"max_ttl_not_whole_seconds", with({"dns:", "  max_ttl: 90500ms"}), 4, 12,
                   "max_ttl must be whole seconds"},
        // Reported at the dns mapping: neither value is wrong alone.
        error_case{"min_ttl_over_max_ttl", with({"dns:", "  min_ttl: 10m", "  max_ttl: 5m"}), 4, 3,
                   "dns.min_ttl is longer than dns.max_ttl"},
        // max_ttl 0 alone conflicts with the default min_ttl of 5s.
        error_case{"max_ttl_zero_with_default_min", with({"dns:", "  max_ttl: 0s"}), 4, 3,
                   "dns.min_ttl is longer than dns.max_ttl"}),
    test::param_name<error_case>);

INSTANTIATE_TEST_SUITE_P(
    integers, config_server_error,
    ::testing::Values(
        error_case{"max_head_bytes_100", with({"limits:", "  max_head_bytes: 100"}), 4, 19,
                   "expected max_head_bytes as a whole number from 1024 to 1048576, found '100'"},
        error_case{"max_headers_0", with({"limits:", "  max_headers: 0"}), 4, 16,
                   "expected max_headers as a whole number from 1 to 10000, found '0'"},
        error_case{"max_request_line_63", with({"limits:", "  max_request_line: 63"}), 4, 21,
                   "expected max_request_line as a whole number from 64 to 1048576, found '63'"},
        error_case{"max_connections_words", with({"limits:", "  max_connections: many"}), 4, 20,
                   "expected max_connections as a whole number from 1 to 10000000, found 'many'"},
        error_case{"max_connections_per_client_0", with({"limits:", "  max_connections_per_client: 0"}), 4, 31,
                   "expected max_connections_per_client as a whole number from 1 to 10000000, found '0'"},
        error_case{"dns_tries_0", with({"dns:", "  tries: 0"}), 4, 10,
                   "expected tries as a whole number from 1 to 10, found '0'"},
        error_case{"dns_cache_entries_0", with({"dns:", "  cache_entries: 0"}), 4, 18,
                   "expected cache_entries as a whole number from 1 to 10000000, found '0'"},
        error_case{"queue_size_15", with({"logging:", "  queue_size: 15"}), 4, 15,
                   "expected queue_size as a whole number from 16 to 10000000, found '15'"},
        error_case{"file_max_bytes_4095", with({"logging:", "  file: {path: e.log, max_bytes: 4095}"}), 4, 34,
                   "expected max_bytes as a whole number from 4096 to 1099511627776, found '4095'"},
        error_case{"file_max_files_0", with({"logging:", "  file: {path: e.log, max_files: 0}"}), 4, 34,
                   "expected max_files as a whole number from 1 to 1000, found '0'"},
        error_case{"limit_as_float", with({"limits:", "  max_headers: 1e3"}), 4, 16,
                   "expected max_headers as a whole number from 1 to 10000, found '1e3'"}),
    test::param_name<error_case>);

INSTANTIATE_TEST_SUITE_P(
    dns_servers, config_server_error,
    ::testing::Values(
        // A resolver named by name would need a resolver first.
        error_case{"a_name", with({"dns:", "  servers: [dns.example:53]"}), 4, 13,
                   "invalid DNS server 'dns.example:53': expected an IP address with an optional port"},
        error_case{"port_not_a_number", with({"dns:", "  servers: ['1.2.3.4:x']"}), 4, 13,
                   "invalid DNS server '1.2.3.4:x'"},
        error_case{"port_0", with({"dns:", "  servers: ['1.2.3.4:0']"}), 4, 13, "invalid DNS server '1.2.3.4:0'"},
        error_case{"port_70000", with({"dns:", "  servers: ['[::1]:70000']"}), 4, 13,
                   "invalid DNS server '[::1]:70000'"},
        error_case{"junk_after_brackets", with({"dns:", "  servers: ['[::1]x']"}), 4, 13,
                   "invalid DNS server '[::1]x'"},
        error_case{"unclosed_bracket", with({"dns:", "  servers: ['[::1']"}), 4, 13, "invalid DNS server '[::1'"},
        error_case{"v4_in_brackets", with({"dns:", "  servers: ['[127.0.0.1]:53']"}), 4, 13,
                   "invalid DNS server '[127.0.0.1]:53'"},
        error_case{"octal_quad", with({"dns:", "  servers: [0177.0.0.1]"}), 4, 13,
                   "invalid DNS server '0177.0.0.1'"},
        error_case{"second_is_bad", with({"dns:", "  servers:", "    - 127.0.0.1", "    - 10.0.0.256"}), 6, 7,
                   "invalid DNS server '10.0.0.256'"},
        error_case{"a_mapping", with({"dns:", "  servers: {primary: 127.0.0.1}"}), 4, 12,
                   "expected dns servers (a list), found a mapping"}),
    test::param_name<error_case>);

INSTANTIATE_TEST_SUITE_P(
    logging, config_server_error,
    ::testing::Values(
        error_case{"stdout_yes", with({"logging:", "  stdout: yes"}), 4, 11,
                   "expected stdout: true or false, found 'yes'"},
        error_case{"stdout_1", with({"logging:", "  stdout: 1"}), 4, 11, "expected stdout: true or false, found '1'"},
        error_case{"stdout_a_list", with({"logging:", "  stdout: [true]"}), 4, 11,
                   "expected stdout: true or false, found a list"},
        error_case{"file_without_path", with({"logging:", "  file:", "    max_files: 3"}), 5, 5,
                   "missing required key 'path' in logging.file"},
        error_case{"deny_file_without_path", with({"logging:", "  deny_file: {max_bytes: 8192}"}), 4, 14,
                   "missing required key 'path' in logging.deny_file"},
        error_case{"file_a_scalar", with({"logging:", "  file: /var/log/egressd.log"}), 4, 9,
                   "expected logging.file settings (a mapping), found a scalar"},
        error_case{"file_path_a_list", with({"logging:", "  file: {path: [a.log]}"}), 4, 16,
                   "expected a file path, found a list"},
        error_case{"syslog_a_scalar", with({"logging:", "  syslog: egressd"}), 4, 11,
                   "expected syslog settings (a mapping), found a scalar"},
        error_case{"logging_a_list", with({"logging: [stdout]"}), 3, 10,
                   "expected logging settings (a mapping), found a list"}),
    test::param_name<error_case>);

INSTANTIATE_TEST_SUITE_P(
    admin, config_server_error,
    ::testing::Values(
        // Only the word off turns it off: "on", "false" or nothing are mistakes, not shortcuts.
        error_case{"on", with({"admin: on"}), 3, 8,
                   "expected admin: off, or a mapping with listen, token_file and tls; found 'on'"},
        error_case{"false", with({"admin: false"}), 3, 8, "found 'false'"},
        error_case{"a_list", with({"admin: [off]"}), 3, 8, "expected admin: off, or a mapping"},
        error_case{"unknown_key", with({"admin:", "  port: 9090"}), 4, 3,
                   "unknown key 'port' in admin; expected one of: listen, token_file, tls"},
        error_case{"listen_a_name", with({"admin:", "  listen: localhost:9090"}), 4, 11,
                   "invalid admin listen address 'localhost:9090': expected an IP address and port, like "
                   "127.0.0.1:9090 or [::1]:9090"},
        error_case{"listen_without_port", with({"admin:", "  listen: 127.0.0.1"}), 4, 11,
                   "invalid admin listen address '127.0.0.1'"},
        error_case{"listen_port_70000", with({"admin:", "  listen: 127.0.0.1:70000"}), 4, 11,
                   "invalid admin listen address '127.0.0.1:70000'"},
        error_case{"listen_a_list", with({"admin:", "  listen: [127.0.0.1:9090]"}), 4, 11,
                   "expected the admin listen address, like 127.0.0.1:9090 or [::1]:9090, found a list"},
        // Reported at the address: that is the setting that opened the endpoint to the network.
        error_case{"every_interface_without_credentials", with({"admin:", "  listen: 0.0.0.0:9090"}), 4, 11,
                   "admin listen address '0.0.0.0:9090' is not loopback (127.0.0.0/8 or ::1): set token_file or "
                   "tls.client_ca"},
        error_case{"v6_any_without_credentials", with({"admin:", "  listen: '[::]:9090'"}), 4, 11,
                   "admin listen address '[::]:9090' is not loopback"},
        // An IPv4-mapped loopback address is not taken for loopback: only the two forms the rule names are.
        error_case{"mapped_loopback", with({"admin:", "  listen: '[::ffff:127.0.0.1]:9090'"}), 4, 11,
                   "is not loopback"},
        // TLS alone encrypts but lets anyone in: only client certificates count.
        error_case{"tls_without_client_ca", with({"admin:", "  listen: 10.0.0.1:9090",
                                                  "  tls: {certificate: a.pem, key: a.key}"}),
                   4, 11, "admin listen address '10.0.0.1:9090' is not loopback"},
        // One mistake, one error: the empty token file is the mistake, not the address.
        error_case{"empty_token_file", with({"admin:", "  listen: 10.0.0.1:9090", "  token_file: ''"}), 5, 15,
                   "empty path: expected the file holding the admin token"},
        error_case{"tls_without_key", with({"admin:", "  tls: {certificate: a.pem}"}), 4, 8,
                   "missing required key 'key' in admin.tls"},
        error_case{"tls_without_certificate", with({"admin:", "  tls:", "    key: a.key"}), 5, 5,
                   "missing required key 'certificate' in admin.tls"},
        // "  tls: {certificate: a.pem, key: a.key, crl: " is 45 characters: the CRL path starts at column 46.
        error_case{"crl_without_client_ca", with({"admin:", "  tls: {certificate: a.pem, key: a.key, crl: c.crl}"}),
                   4, 46, "needs client_ca"},
        // The admin endpoint always requires the certificate once client_ca is set: no optional mode.
        error_case{"tls_client_certificate_optional",
                   with({"admin:", "  tls:", "    certificate: a.pem", "    key: a.key", "    client_ca: ca.pem",
                         "    client_certificate: optional"}),
                   8, 5,
                   "unknown key 'client_certificate' in admin.tls; expected one of: certificate, key, client_ca, crl"},
        error_case{"tls_a_scalar", with({"admin:", "  tls: on"}), 4, 8,
                   "expected admin tls settings (certificate, key, and optionally client_ca, crl) (a mapping), found a "
                   "scalar"}),
    test::param_name<error_case>);

INSTANTIATE_TEST_SUITE_P(
    reload, config_server_error,
    ::testing::Values(
        error_case{"a_scalar", with({"reload: true"}), 3, 9, "expected reload settings (a mapping), found a scalar"},
        error_case{"unknown_key", with({"reload:", "  interval: 1s"}), 4, 3,
                   "unknown key 'interval' in reload; expected one of: watch, debounce"},
        error_case{"watch_yes", with({"reload:", "  watch: yes"}), 4, 10, "expected watch: true or false, found 'yes'"},
        error_case{"watch_a_list", with({"reload:", "  watch: [true]"}), 4, 10,
                   "expected watch: true or false, found a list"},
        error_case{"debounce_10ms", with({"reload:", "  debounce: 10ms"}), 4, 13,
                   "reload.debounce must be from 50ms to 1m, found '10ms'"},
        error_case{"debounce_49ms", with({"reload:", "  debounce: 49ms"}), 4, 13,
                   "reload.debounce must be from 50ms to 1m, found '49ms'"},
        error_case{"debounce_zero", with({"reload:", "  debounce: 0s"}), 4, 13,
                   "reload.debounce must be from 50ms to 1m, found '0s'"},
        error_case{"debounce_61s", with({"reload:", "  debounce: 61s"}), 4, 13,
                   "reload.debounce must be from 50ms to 1m, found '61s'"},
        error_case{"debounce_no_unit", with({"reload:", "  debounce: 500"}), 4, 13,
                   "invalid duration '500' for debounce: expected a whole number with ms, s, m, h or d"}),
    test::param_name<error_case>);

INSTANTIATE_TEST_SUITE_P(
    drain_delay, config_server_error,
    ::testing::Values(
        error_case{"over_ten_minutes", with({"timeouts:", "  drain_delay: 601s"}), 4, 16,
                   "timeouts.drain_delay is longer than 10m"},
        error_case{"negative", with({"timeouts:", "  drain_delay: -1s"}), 4, 16,
                   "invalid duration '-1s' for drain_delay: expected a whole number"},
        error_case{"no_unit", with({"timeouts:", "  drain_delay: 5"}), 4, 16, "invalid duration '5' for drain_delay"},
        error_case{"longer_than_a_year", with({"timeouts:", "  drain_delay: 9000h"}), 4, 16,
                   "is longer than a year"}),
    test::param_name<error_case>);

INSTANTIATE_TEST_SUITE_P(
    approvals, config_server_error,
    ::testing::Values(
        // Only the word off turns it off.
        error_case{"on", with({"approvals: on"}), 3, 12,
                   "expected approvals: off, or a mapping with store, approvers and the other approvals settings; "
                   "found 'on'"},
        error_case{"a_list", with({"approvals: [off]"}), 3, 12, "found a list"},
        error_case{"nothing", with({"approvals:"}), 3, 1, "found nothing"},
        error_case{"unknown_key", approvals_with({"  colour: red"}), 6, 3,
                   "unknown key 'colour' in approvals; expected one of: listen, public_url, store, tls, approvers"},
        error_case{"store_missing", with({"approvals:", "  approvers: approvers.passwd"}), 4, 3,
                   "missing required key 'store' in approvals"},
        error_case{"store_empty", with({"approvals:", "  store: ''", "  approvers: a.passwd"}), 4, 10,
                   "empty path: expected the approvals store (an SQLite file, or a postgresql:// URL)"},
        error_case{"store_a_list", with({"approvals:", "  store: [a.db]", "  approvers: a.passwd"}), 4, 10,
                   "expected the approvals store: an SQLite file, or a postgresql:// URL, found a list"},
        // A password in the configuration would end up in backups, diffs and `config check` output.
        error_case{"store_url_password", with({"approvals:", "  store: postgresql://egressd:secret@db/egressd",
                                               "  approvers: a.passwd"}),
                   4, 10, "a password in the store URL is not allowed: give it to libpq in the PGPASSWORD"},
        error_case{"store_url_password_parameter",
                   with({"approvals:", "  store: postgres://db/egressd?sslmode=require&password=secret",
                         "  approvers: a.passwd"}),
                   4, 10, "a password in the store URL is not allowed"},
        error_case{"store_url_space", with({"approvals:", "  store: 'postgresql://db/egress d'",
                                            "  approvers: a.passwd"}),
                   4, 10, "expected a postgresql:// URL of printable characters without spaces"},
        // Requesters cannot decide: someone must be able to approve.
        error_case{"no_way_to_sign_in", with({"approvals:", "  store: a.db", "  requesters: r.passwd"}), 4, 3,
                   "approvals needs a way for approvers to sign in: approvers (a credentials file made with egressd "
                   "passwd) or trusted_header"},
        error_case{"approvers_empty", with({"approvals:", "  store: a.db", "  approvers: ''"}), 5, 14,
                   "empty path: expected the approvers' credentials file (egressd passwd)"},
        error_case{"requesters_empty", approvals_with({"  requesters: ''"}), 6, 15,
                   "empty path: expected the requesters' credentials file (egressd passwd)"},
        // listen
        error_case{"listen_a_name", approvals_with({"  listen: localhost:9091"}), 6, 11,
                   "invalid approvals listen address 'localhost:9091': expected an IP address and port, like "
                   "127.0.0.1:9091 or [::1]:9091"},
        error_case{"listen_without_port", approvals_with({"  listen: 127.0.0.1"}), 6, 11,
                   "invalid approvals listen address '127.0.0.1'"},
        error_case{"listen_a_list", approvals_with({"  listen: [127.0.0.1:9091]"}), 6, 11,
                   "expected the approvals listen address, like 127.0.0.1:9091 or [::1]:9091, found a list"},
        error_case{"listen_on_the_proxy_port", approvals_with({"  listen: 127.0.0.1:3128"}), 6, 11,
                   "the approvals listener 127.0.0.1:3128 takes the port of the proxy listener 127.0.0.1:3128: give "
                   "approvals.listen a port of its own"},
        error_case{"listen_on_every_address_of_the_proxy_port", approvals_with({"  listen: 0.0.0.0:3128"}), 6, 11,
                   "the approvals listener 0.0.0.0:3128 takes the port of the proxy listener 127.0.0.1:3128"},
        error_case{"listen_under_a_wildcard_proxy_listener",
                   lines({"version: 1", "policy: policy.yaml", "listeners: ['[::]:3128']", "approvals:",
                          "  store: a.db", "  approvers: a.passwd", "  listen: '[::1]:3128'"}),
                   7, 11, "the approvals listener [::1]:3128 takes the port of the proxy listener [::]:3128"},
        error_case{"listen_on_the_admin_port", approvals_with({"  listen: 127.0.0.1:9090"}), 6, 11,
                   "the approvals listener 127.0.0.1:9090 takes the port of the admin listener 127.0.0.1:9090"},
        // Without listen, the default address is the one in the way: reported at the section.
        error_case{"default_listen_on_the_admin_port",
                   with({"admin: {listen: 127.0.0.1:9091}", "approvals:", "  store: a.db", "  approvers: a.passwd"}),
                   5, 3, "the approvals listener 127.0.0.1:9091 takes the port of the admin listener 127.0.0.1:9091"},
        // public_url
        error_case{"public_url_ftp", approvals_with({"  public_url: ftp://egress.example.com"}), 6, 15,
                   "invalid public_url 'ftp://egress.example.com': expected an http:// or https:// URL"},
        error_case{"public_url_upper_case_scheme", approvals_with({"  public_url: HTTPS://egress.example.com"}), 6, 15,
                   "expected an http:// or https:// URL"},
        error_case{"public_url_no_scheme", approvals_with({"  public_url: egress.example.com"}), 6, 15,
                   "expected an http:// or https:// URL"},
        error_case{"public_url_no_host", approvals_with({"  public_url: https:///approvals"}), 6, 15,
                   "expected a host after https://"},
        error_case{"public_url_unbracketed_v6", approvals_with({"  public_url: 'http://2001:db8::1/'"}), 6, 15,
                   "expected a host after http://, with an optional port (IPv6 in brackets)"},
        error_case{"public_url_bad_host", approvals_with({"  public_url: https://egress..example.com"}), 6, 15,
                   "invalid public_url 'https://egress..example.com': "},
        error_case{"public_url_port_0", approvals_with({"  public_url: https://egress.example.com:0"}), 6, 15,
                   "invalid port '0': expected 1 to 65535"},
        error_case{"public_url_port_too_big", approvals_with({"  public_url: https://egress.example.com:65536"}), 6,
                   15, "invalid port '65536'"},
        error_case{"public_url_user", approvals_with({"  public_url: https://alice@egress.example.com"}), 6, 15,
                   "a user name or password in the URL is not allowed"},
        error_case{"public_url_query", approvals_with({"  public_url: https://egress.example.com/?a=1"}), 6, 15,
                   "a query (?...) is not allowed"},
        error_case{"public_url_fragment", approvals_with({"  public_url: https://egress.example.com/#top"}), 6, 15,
                   "a fragment (#...) is not allowed"},
        error_case{"public_url_space", approvals_with({"  public_url: 'https://egress.example.com/a b'"}), 6, 15,
                   "expected a path of printable characters without spaces"},
        error_case{"public_url_angle_bracket", approvals_with({"  public_url: 'https://egress.example.com/<a>'"}), 6,
                   15, "expected a path of printable characters"},
        // tls, like the admin endpoint's
        error_case{"tls_without_key", approvals_with({"  tls: {certificate: a.pem}"}), 6, 8,
                   "missing required key 'key' in approvals.tls"},
        error_case{"tls_client_certificate_optional",
                   approvals_with({"  tls: {certificate: a.pem, key: a.key, client_ca: ca.pem, client_certificate: "
                                   "optional}"}),
                   6, 60,
                   "unknown key 'client_certificate' in approvals.tls; expected one of: certificate, key, client_ca, "
                   "crl"},
        error_case{"tls_crl_without_client_ca", approvals_with({"  tls: {certificate: a.pem, key: a.key, crl: c.crl}"}),
                   6, 46, "needs client_ca"},
        error_case{"tls_a_scalar", approvals_with({"  tls: on"}), 6, 8,
                   "expected approvals tls settings (certificate, key, and optionally client_ca, crl) (a mapping), "
                   "found a scalar"},
        // trusted_header
        error_case{"trusted_header_without_from", approvals_with({"  trusted_header: {user: X-User}"}), 6, 19,
                   "missing required key 'from' in approvals.trusted_header"},
        error_case{"trusted_header_from_empty", approvals_with({"  trusted_header: {from: []}"}), 6, 26,
                   "empty from list: expected the CIDRs of the reverse proxies that set the headers"},
        error_case{"trusted_header_from_host_bits", approvals_with({"  trusted_header: {from: [10.0.0.1/8]}"}), 6, 27,
                   "10.0.0.1/8"},
        error_case{"trusted_header_from_a_map", approvals_with({"  trusted_header: {from: {a: b}}"}), 6, 26,
                   "expected trusted sources"},
        error_case{"trusted_header_unknown_key", approvals_with({"  trusted_header: {from: 10.0.0.0/8, group: x}"}), 6,
                   38, "unknown key 'group' in approvals.trusted_header; expected one of: user, groups, "
                       "approver_group, from"},
        error_case{"trusted_header_user_not_a_token",
                   approvals_with({"  trusted_header: {from: 10.0.0.0/8, user: 'X User'}"}), 6, 44,
                   "invalid header name 'X User' for user: expected letters, digits and !#$%&'*+-.^_`|~"},
        error_case{"trusted_header_groups_empty", approvals_with({"  trusted_header: {from: 10.0.0.0/8, groups: ''}"}),
                   6, 46, "invalid header name '' for groups"},
        error_case{"trusted_header_groups_with_colon",
                   approvals_with({"  trusted_header: {from: 10.0.0.0/8, groups: 'X-Groups:'}"}), 6, 46,
                   "invalid header name 'X-Groups:' for groups"},
        error_case{"trusted_header_same_header_twice",
                   approvals_with({"  trusted_header: {from: 10.0.0.0/8, user: X-Who, groups: x-who}"}), 6, 59,
                   "the groups header is the user header"},
        error_case{"trusted_header_approver_group_with_comma",
                   approvals_with({"  trusted_header: {from: 10.0.0.0/8, approver_group: 'a,b'}"}), 6, 54,
                   "invalid approver_group 'a,b': expected a non-empty group name without commas"},
        error_case{"trusted_header_approver_group_empty",
                   approvals_with({"  trusted_header: {from: 10.0.0.0/8, approver_group: ''}"}), 6, 54,
                   "invalid approver_group ''"},
        error_case{"trusted_header_a_scalar", approvals_with({"  trusted_header: X-Forwarded-User"}), 6, 19,
                   "expected trusted_header settings (user, groups, approver_group, from) (a mapping), found a scalar"},
        // durations and limits
        error_case{"default_grant_longer_than_max_grant", approvals_with({"  default_grant: 8d"}), 6, 18,
                   "approvals.default_grant is longer than approvals.max_grant"},
        error_case{"max_grant_shorter_than_the_default_grant", approvals_with({"  max_grant: 1h"}), 6, 14,
                   "approvals.default_grant is longer than approvals.max_grant"},
        error_case{"both_grants_written", approvals_with({"  max_grant: 1h", "  default_grant: 2h"}), 7, 18,
                   "approvals.default_grant is longer than approvals.max_grant"},
        error_case{"max_grant_over_a_year", approvals_with({"  max_grant: 366d"}), 6, 14,
                   "duration '366d' for max_grant is longer than a year (365d)"},
        error_case{"default_grant_zero", approvals_with({"  default_grant: 0s"}), 6, 18,
                   "invalid duration '0s' for default_grant: expected a positive whole number with ms, s, m, h or d"},
        error_case{"request_ttl_not_whole_seconds", approvals_with({"  request_ttl: 1500ms"}), 6, 16,
                   "request_ttl must be whole seconds"},
        error_case{"notify_cooldown_no_unit", approvals_with({"  notify_cooldown: 60"}), 6, 20,
                   "invalid duration '60' for notify_cooldown"},
        error_case{"expiry_warning_weeks", approvals_with({"  expiry_warning: 1w"}), 6, 19,
                   "invalid duration '1w' for expiry_warning"},
        error_case{"max_pending_zero", approvals_with({"  max_pending: 0"}), 6, 16,
                   "expected max_pending as a whole number from 1 to 10000000, found '0'"},
        error_case{"requests_per_client_per_minute_zero", approvals_with({"  requests_per_client_per_minute: 0"}), 6,
                   35, "expected requests_per_client_per_minute as a whole number from 1 to 1000000, found '0'"},
        // notify
        error_case{"notify_a_scalar", approvals_with({"  notify: http://127.0.0.1:9000/hook"}), 6, 11,
                   "expected notify: a list of webhooks, each with url, format, secret_file and events; found "
                   "'http://127.0.0.1:9000/hook'"},
        error_case{"notify_a_mapping", approvals_with({"  notify: {url: 'http://127.0.0.1:9000/hook'}"}), 6, 11,
                   "found a mapping"},
        error_case{"webhook_a_scalar", approvals_with({"  notify: ['http://127.0.0.1:9000/hook']"}), 6, 12,
                   "expected a webhook (url, format, secret_file, events) (a mapping), found a scalar"},
        error_case{"webhook_without_url", approvals_with({"  notify:", "    - format: json"}), 7, 7,
                   "missing required key 'url' in a webhook"},
        error_case{"webhook_unknown_key",
                   approvals_with({"  notify:", "    - url: http://127.0.0.1/", "      retries: 3"}), 8, 7, "unknown key 'retries' in a webhook; expected one of: url, format, secret_file, events"},
        error_case{"webhook_url_ftp", approvals_with({"  notify:", "    - url: ftp://127.0.0.1/"}), 7, 12,
                   "invalid webhook url 'ftp://127.0.0.1/': expected an http:// or https:// URL"},
        error_case{"webhook_url_fragment", approvals_with({"  notify:", "    - url: 'http://127.0.0.1/#x'"}), 7, 12,
                   "a fragment (#...) is not allowed"},
        error_case{"webhook_url_no_host", approvals_with({"  notify:", "    - url: 'http://:8080/hook'"}), 7, 12,
                   "expected a host after http://"},
        error_case{"webhook_format_xml", approvals_with({"  notify:", "    - {url: 'http://127.0.0.1/', format: xml}"}),
                   7, 42, "expected format: json or slack, found 'xml'"},
        error_case{"webhook_slack_with_a_secret",
                   approvals_with({"  notify:", "    - url: https://hooks.example/x", "      format: slack",
                                   "      secret_file: hook.secret"}),
                   9, 20, "secret_file is for format json: a Slack-compatible body carries no signature"},
        error_case{"webhook_secret_file_empty",
                   approvals_with({"  notify:", "    - url: https://hooks.example/x", "      secret_file: ''"}), 8, 20,
                   "empty path: expected the file holding the webhook's signing secret"},
        error_case{"webhook_unknown_event",
                   approvals_with({"  notify:", "    - url: https://hooks.example/x",
                                   "      events: [requested, approved]"}),
                   8, 27, "unknown webhook event 'approved': expected requested, decided or expiring"},
        error_case{"webhook_event_twice",
                   approvals_with({"  notify:", "    - url: https://hooks.example/x",
                                   "      events: [decided, decided]"}),
                   8, 25, "webhook event 'decided' appears twice"},
        error_case{"webhook_events_empty",
                   approvals_with({"  notify:", "    - url: https://hooks.example/x", "      events: []"}), 8, 15,
                   "empty events list: leave events out for all of requested, decided, expiring"}),
    test::param_name<error_case>);

// --- several mistakes, all reported --------------------------------------------------------------------------

TEST(config_server_errors, every_mistake_is_reported_in_one_run)
{
    // The comments give where each error must be reported (line:column).
    auto loaded = load(lines({
        "version: 2",  // 1:10
        "policy: policy.yaml",
        "listeners: [127.0.0.1, '[::1]:3128', localhost:80]",  // 3:13 and 3:38
        "workers: 1000",  // 4:10
        "timeouts:",
        "  header: 10",  // 6:11
        "  idle: 5m",
        "dns:",
        "  servers: [127.0.0.1:x]",  // 9:13
        "logging:",
        "  syslog: on",  // 11:11
        "  queue_size: 1",  // 12:15
        "  colour: true",  // 13:3
    }));
    EXPECT_FALSE(loaded.config);
    std::vector<std::tuple<std::uint32_t, std::uint32_t>> positions;
    for (const auto& e : loaded.errors) {
        EXPECT_EQ(e.file, file_name);
        positions.emplace_back(e.where.line, e.where.column);
    }
    // The order of reading is not part of the contract; the set of positions is.
    std::sort(positions.begin(), positions.end());
    using p = std::tuple<std::uint32_t, std::uint32_t>;
    EXPECT_EQ(positions, (std::vector<p>{p{1, 10}, p{3, 13}, p{3, 38}, p{4, 10}, p{6, 11}, p{9, 13}, p{11, 11},
                                         p{12, 15}, p{13, 3}}))
        << show(loaded);
    EXPECT_EQ(loaded.errors.size(), 9u) << show(loaded);
}

TEST(config_server_errors, admin_reload_and_drain_mistakes_are_reported_together)
{
    auto loaded = load(lines({
        "version: 1",
        "policy: policy.yaml",
        "timeouts:",
        "  drain_delay: 1h",  // 4:16
        "admin:",
        "  listen: 0.0.0.0:9090",  // 6:11 not loopback (tls below has no client_ca)
        "  tls:",  // 7:3 missing key (reported at the mapping, 8:5)
        "    certificate: a.pem",
        "    crl: c.crl",  // 9:10 needs client_ca
        "  colour: true",  // 10:3
        "reload:",
        "  watch: maybe",  // 12:10
        "  debounce: 2m",  // 13:13
    }));
    EXPECT_FALSE(loaded.config);
    std::vector<std::tuple<std::uint32_t, std::uint32_t>> positions;
    for (const auto& e : loaded.errors) {
        positions.emplace_back(e.where.line, e.where.column);
    }
    std::sort(positions.begin(), positions.end());
    using p = std::tuple<std::uint32_t, std::uint32_t>;
    EXPECT_EQ(positions, (std::vector<p>{p{4, 16}, p{6, 11}, p{8, 5}, p{9, 10}, p{10, 3}, p{12, 10}, p{13, 13}}))
        << show(loaded);
}

TEST(config_server_errors, approvals_mistakes_are_reported_together)
{
    auto loaded = load(lines({
        "version: 1",
        "policy: policy.yaml",
        "approvals:",
        "  listen: 127.0.0.1:3128",  // 4:11 the proxy's port
        "  public_url: https://x.example.com/?q",  // 5:15
        "  requesters: ''",  // 6:15
        "  trusted_header: {user: 'a b'}",  // 7:19 no from, 7:26 not a token
        "  default_grant: 8d",  // 8:18 longer than max_grant
        "  max_pending: lots",  // 9:16
        "  notify:",
        "    - {url: 'http://127.0.0.1/', format: slack, secret_file: s, events: [x]}",  // 11:62 and 11:74
        "  colour: red",  // 12:3
    }));  // and the store is missing (4:3)
    EXPECT_FALSE(loaded.config);
    std::vector<std::tuple<std::uint32_t, std::uint32_t>> positions;
    for (const auto& e : loaded.errors) {
        positions.emplace_back(e.where.line, e.where.column);
    }
    std::sort(positions.begin(), positions.end());
    using p = std::tuple<std::uint32_t, std::uint32_t>;
    EXPECT_EQ(positions, (std::vector<p>{p{4, 3}, p{4, 11}, p{5, 15}, p{6, 15}, p{7, 19}, p{7, 26}, p{8, 18},
                                         p{9, 16}, p{11, 62}, p{11, 74}, p{12, 3}}))
        << show(loaded);
}

TEST(config_server_errors, an_empty_approvals_section_lacks_a_store_and_a_way_to_sign_in)
{
    auto loaded = load(with({"approvals: {}"}));
    EXPECT_FALSE(loaded.config);
    ASSERT_EQ(loaded.errors.size(), 2u) << show(loaded);
    test::expect_diagnostic(loaded.errors[0], located{file_name, 3, 12, "missing required key 'store' in approvals"});
    test::expect_diagnostic(loaded.errors[1],
                            located{file_name, 3, 12, "approvals needs a way for approvers to sign in"});
}

TEST(config_server_errors, diagnostics_format_as_file_line_column)
{
    auto loaded = load(with({"workers: many"}));
    ASSERT_EQ(loaded.errors.size(), 1u) << show(loaded);
    EXPECT_EQ(loaded.errors[0].format("error"),
              "egressd.yaml:3:10: error: expected workers (0: one per core) as a whole number from 0 to 256, found "
              "'many'");
}

// --- parse_duration ------------------------------------------------------------------------------------------

struct duration_case {
    std::string name;
    std::string text;
    std::optional<std::chrono::milliseconds> want;
};

void PrintTo(const duration_case& c, std::ostream* os) { *os << c.name; }

class config_server_duration : public ::testing::TestWithParam<duration_case> {};

TEST_P(config_server_duration, parses_to)
{
    const auto& c = GetParam();
    auto got = parse_duration(c.text);
    ASSERT_EQ(got.has_value(), c.want.has_value()) << "'" << c.text << "'";
    if (c.want) {
        EXPECT_EQ(got->count(), c.want->count()) << "'" << c.text << "'";
    }
}

INSTANTIATE_TEST_SUITE_P(
    table, config_server_duration,
    ::testing::Values(
        duration_case{"ms", "250ms", 250ms}, duration_case{"zero_ms", "0ms", 0ms},
        duration_case{"seconds", "10s", 10s}, duration_case{"zero_s", "0s", 0ms},
        duration_case{"minutes", "5m", 5min}, duration_case{"hours", "24h", 24h},
        duration_case{"leading_zeros", "007s", 7s},
        duration_case{"large_ms", "86400000ms", 24h},
        // The largest hour count that fits in int64 milliseconds, and one more.
        duration_case{"max_hours", "2562047788015h", std::chrono::milliseconds{2562047788015LL * 3'600'000}},
        duration_case{"overflow_hours", "2562047788016h", std::nullopt},
        duration_case{"overflow_digits", "99999999999999999999ms", std::nullopt},
        duration_case{"empty", "", std::nullopt}, duration_case{"no_unit", "10", std::nullopt},
        duration_case{"unit_only", "s", std::nullopt}, duration_case{"bad_unit", "10x", std::nullopt},
        duration_case{"days", "1d", 24h}, duration_case{"fourteen_days", "14d", 336h},
        duration_case{"zero_days", "0d", 0ms},
        // The largest day count that fits in int64 milliseconds, and one more.
        duration_case{"max_days", "106751991167d", std::chrono::milliseconds{106751991167LL * 86'400'000}},
        duration_case{"overflow_days", "106751991168d", std::nullopt},
        duration_case{"weeks", "1w", std::nullopt}, duration_case{"upper_case_days", "1D", std::nullopt},
        duration_case{"upper_case", "10S", std::nullopt},
        duration_case{"microseconds", "10us", std::nullopt}, duration_case{"two_units", "1h30m", std::nullopt},
        duration_case{"space_before_unit", "10 s", std::nullopt},
        duration_case{"leading_space", " 10s", std::nullopt}, duration_case{"trailing_space", "10s ", std::nullopt},
        duration_case{"fraction", "1.5s", std::nullopt}, duration_case{"negative", "-1s", std::nullopt},
        duration_case{"plus_sign", "+1s", std::nullopt}),
    test::param_name<duration_case>);

}  // namespace
}  // namespace egressd::config

namespace egressd::config {
namespace {

TEST(config_server_policy_path, empty_is_an_error_not_the_config_directory)
{
    auto loaded = load_server_config_text("egressd.yaml", "version: 1\npolicy: \"\"\n", "/etc/egressd");
    ASSERT_FALSE(loaded.config.has_value());
    ASSERT_EQ(loaded.errors.size(), 1u);
    EXPECT_EQ(loaded.errors[0].where.line, 2u);
    EXPECT_NE(loaded.errors[0].message.find("empty policy path"), std::string::npos);
}

}  // namespace
}  // namespace egressd::config

// --- alerts --------------------------------------------------------------------------------------------------

namespace egressd::config {
namespace {

// minimal, then "alerts:" on line 3 and the sink lines from line 4.
std::string alerts_with(std::initializer_list<std::string_view> more)
{
    return minimal + lines({"alerts:"}) + lines(more);
}

TEST(config_server_alerts, none_by_default)
{
    auto loaded = load(minimal);
    ASSERT_TRUE(loaded.config) << show(loaded);
    EXPECT_TRUE(loaded.config->alerts.empty());
    auto empty = load(with({"alerts: []"}));
    ASSERT_TRUE(empty.config) << show(empty);
    EXPECT_TRUE(empty.config->alerts.empty());
}

TEST(config_server_alerts, every_setting_is_read)
{
    auto loaded = load(alerts_with({
        "  - webhook: http://alerts.internal:8080/egress?team=sec",  // 4
        "    name: security-hook",
        "    secret_file: secrets/alert.secret",  // 6
        "    reasons: [explicit_deny, address_guard, sni_mismatch]",
        "    clients: [web, batch]",
        "    verdicts: [deny, would_deny, revoke, would_revoke, error]",
        "    dedup: 10m",
        "    max_per_minute: 600",
        "    queue: 5000",
        "    severity: {no_matching_rule: high, explicit_deny: low}",
        "  - slack: https://hooks.slack.example/services/T0/B0/x",  // 14
        "  - alertmanager: http://127.0.0.1:9093/",
        "    dedup: 1s",
        "  - {alertmanager: 'http://[::1]:9093/am', name: am.second}",
    }));
    ASSERT_TRUE(loaded.config) << show(loaded);
    const auto& a = loaded.config->alerts;
    ASSERT_EQ(a.size(), 4u);
    using kind = alert_sink_config::sink_kind;
    EXPECT_EQ(a[0].kind, kind::webhook);
    EXPECT_EQ(a[0].url, "http://alerts.internal:8080/egress?team=sec");
    EXPECT_EQ(a[0].name, "security-hook");
    EXPECT_EQ(a[0].secret_file, base_dir / "secrets/alert.secret");
    EXPECT_EQ(a[0].secret_file_at.line, 6u);
    EXPECT_EQ(a[0].secret_file_at.column, 18u);
    EXPECT_EQ(a[0].where.line, 4u);
    EXPECT_EQ(a[0].reasons, (std::vector<std::string>{"explicit_deny", "address_guard", "sni_mismatch"}));
    EXPECT_EQ(a[0].clients, (std::vector<std::string>{"web", "batch"}));
    EXPECT_EQ(a[0].verdicts, (std::vector<std::string>{"deny", "would_deny", "revoke", "would_revoke", "error"}));
    EXPECT_EQ(a[0].dedup, 10min);
    EXPECT_EQ(a[0].max_per_minute, 600u);
    EXPECT_EQ(a[0].queue, 5000u);
    using level = std::pair<std::string, std::string>;
    EXPECT_EQ(a[0].severity, (std::vector<level>{{"no_matching_rule", "high"}, {"explicit_deny", "low"}}));

    // The defaults: every reason and client, denials and revocations, 10 minutes, 60 a minute, 1000 queued.
    EXPECT_EQ(a[1].kind, kind::slack);
    EXPECT_EQ(a[1].url, "https://hooks.slack.example/services/T0/B0/x");
    EXPECT_EQ(a[1].name, "slack-2");
    EXPECT_FALSE(a[1].secret_file);
    EXPECT_TRUE(a[1].reasons.empty());
    EXPECT_TRUE(a[1].clients.empty());
    EXPECT_EQ(a[1].verdicts, (std::vector<std::string>{"deny", "revoke"}));
    EXPECT_EQ(a[1].dedup, 10min);
    EXPECT_EQ(a[1].max_per_minute, 60u);
    EXPECT_EQ(a[1].queue, 1000u);
    EXPECT_TRUE(a[1].severity.empty());

    // Alertmanager's URL is a base: /api/v2/alerts is appended to it, so a trailing slash goes.
    EXPECT_EQ(a[2].kind, kind::alertmanager);
    EXPECT_EQ(a[2].url, "http://127.0.0.1:9093");
    EXPECT_EQ(a[2].name, "alertmanager-3");
    EXPECT_EQ(a[2].dedup, 1s);
    EXPECT_EQ(a[3].url, "http://[::1]:9093/am");
    EXPECT_EQ(a[3].name, "am.second");
}

TEST(config_server_alerts, every_mistake_is_reported_in_one_run)
{
    auto loaded = load(alerts_with({
        "  - webhook: ftp://x/",  // 4:14
        "    dedup: 2d",          // 5:12
        "  - slack: https://hooks.example/x",
        "    secret_file: s",     // 7:18
        "    verdicts: [deny, allow]",  // 8:22
        "  - name: nowhere",      // 9:5 (no destination)
        "    queue: 0",           // 10:12
    }));
    EXPECT_FALSE(loaded.config);
    std::vector<std::tuple<std::uint32_t, std::uint32_t>> positions;
    for (const auto& e : loaded.errors) {
        positions.emplace_back(e.where.line, e.where.column);
    }
    std::sort(positions.begin(), positions.end());
    using p = std::tuple<std::uint32_t, std::uint32_t>;
    EXPECT_EQ(positions, (std::vector<p>{p{4, 14}, p{5, 12}, p{7, 18}, p{8, 22}, p{9, 5}, p{10, 12}})) << show(loaded);
}

class config_server_alert_error : public ::testing::TestWithParam<error_case> {};

TEST_P(config_server_alert_error, is_reported_once_with_its_location)
{
    const auto& c = GetParam();
    auto loaded = load(c.yaml);
    EXPECT_FALSE(loaded.config);
    ASSERT_EQ(loaded.errors.size(), 1u) << show(loaded);
    test::expect_diagnostic(loaded.errors[0], located{file_name, c.line, c.column, c.fragment});
}

INSTANTIATE_TEST_SUITE_P(
    alerts, config_server_alert_error,
    ::testing::Values(
        error_case{"a_mapping", with({"alerts: {webhook: 'http://127.0.0.1/'}"}), 3, 9,
                   "expected alerts: a list of sinks, each with webhook, slack or alertmanager and its URL; found a "
                   "mapping"},
        error_case{"a_scalar_sink", alerts_with({"  - http://127.0.0.1/"}), 4, 5,
                   "expected an alert sink (webhook, slack or alertmanager with its URL) (a mapping), found a scalar"},
        error_case{"no_destination", alerts_with({"  - name: x"}), 4, 5,
                   "an alert sink needs one of webhook, slack or alertmanager, with its URL"},
        error_case{"two_destinations", alerts_with({"  - webhook: http://127.0.0.1/", "    slack: https://h.example/"}),
                   5, 12, "an alert sink has one destination: found both webhook and slack (write two sinks)"},
        error_case{"unknown_key", alerts_with({"  - webhook: http://127.0.0.1/", "    retries: 3"}), 5, 5,
                   "unknown key 'retries' in an alert sink"},
        error_case{"url_not_http", alerts_with({"  - slack: ftp://127.0.0.1/"}), 4, 12,
                   "invalid slack URL 'ftp://127.0.0.1/': expected an http:// or https:// URL"},
        error_case{"url_with_credentials", alerts_with({"  - webhook: 'http://u:p@127.0.0.1/'"}), 4, 14,
                   "a user name or password in the URL is not allowed"},
        error_case{"alertmanager_url_with_query", alerts_with({"  - alertmanager: 'http://127.0.0.1:9093/?x=1'"}), 4,
                   19, "invalid alertmanager URL 'http://127.0.0.1:9093/?x=1': a query (?...) is not allowed"},
        error_case{"secret_file_on_slack", alerts_with({"  - slack: https://h.example/", "    secret_file: s"}), 5, 18,
                   "secret_file is for webhook sinks: slack bodies carry no signature"},
        error_case{"secret_file_on_alertmanager",
                   alerts_with({"  - alertmanager: http://127.0.0.1:9093", "    secret_file: s"}), 5, 18,
                   "secret_file is for webhook sinks: alertmanager bodies carry no signature"},
        error_case{"secret_file_empty", alerts_with({"  - webhook: http://127.0.0.1/", "    secret_file: ''"}), 5, 18,
                   "empty path: expected the file holding the webhook's signing secret"},
        error_case{"name_with_a_space", alerts_with({"  - webhook: http://127.0.0.1/", "    name: 'my hook'"}), 5, 11,
                   "invalid sink name 'my hook': expected 1 to 64 letters, digits"},
        error_case{"name_twice",
                   alerts_with({"  - {webhook: 'http://127.0.0.1/', name: hook}",
                                "  - {webhook: 'http://127.0.0.2/', name: hook}"}),
                   5, 42, "alert sink name 'hook' is already used at line 4"},
        error_case{"name_takes_a_default_name",
                   alerts_with({"  - webhook: http://127.0.0.1/",
                                "  - {slack: 'https://h.example/', name: webhook-1}"}),
                   5, 41, "alert sink name 'webhook-1' is already used at line 4"},
        error_case{"reasons_empty", alerts_with({"  - webhook: http://127.0.0.1/", "    reasons: []"}), 5, 14,
                   "empty reasons list: leave reasons out to match them all"},
        error_case{"reason_twice",
                   alerts_with({"  - webhook: http://127.0.0.1/", "    reasons: [not_tls, not_tls]"}), 5, 24,
                   "reasons entry 'not_tls' appears twice"},
        error_case{"clients_a_map", alerts_with({"  - webhook: http://127.0.0.1/", "    clients: {a: b}"}), 5, 14,
                   "expected client names"},
        error_case{"verdict_unknown", alerts_with({"  - webhook: http://127.0.0.1/", "    verdicts: [deny, close]"}), 5,
                   22,
                   "unknown verdicts entry 'close': expected verdicts: deny, would_deny, revoke, would_revoke, error"},
        error_case{"dedup_zero", alerts_with({"  - webhook: http://127.0.0.1/", "    dedup: 0s"}), 5, 12,
                   "invalid duration '0s' for dedup"},
        error_case{"dedup_below_a_second", alerts_with({"  - webhook: http://127.0.0.1/", "    dedup: 500ms"}), 5, 12,
                   "dedup must be whole seconds"},
        error_case{"dedup_over_a_day", alerts_with({"  - webhook: http://127.0.0.1/", "    dedup: 25h"}), 5, 12,
                   "alert dedup must be from 1s to 24h, found '25h'"},
        error_case{"max_per_minute_zero", alerts_with({"  - webhook: http://127.0.0.1/", "    max_per_minute: 0"}), 5,
                   21, "expected max_per_minute as a whole number from 1 to 100000, found '0'"},
        error_case{"queue_too_long", alerts_with({"  - webhook: http://127.0.0.1/", "    queue: 1000001"}), 5, 12,
                   "expected queue as a whole number from 1 to 1000000"},
        error_case{"severity_unknown_level",
                   alerts_with({"  - webhook: http://127.0.0.1/", "    severity: {not_tls: critical}"}), 5, 25,
                   "expected severity low, medium or high for not_tls, found 'critical'"},
        error_case{"severity_a_list", alerts_with({"  - webhook: http://127.0.0.1/", "    severity: [high]"}), 5, 15,
                   "expected severity: reason codes to low, medium or high (a mapping), found a list"}),
    test::param_name<error_case>);

}  // namespace
}  // namespace egressd::config
