// The one loading path (startup::load) against real files in a temporary directory, the policy digest, and which
// configuration changes a reload cannot apply (restart_needed).

#include "proxy/startup/loader.hpp"
#include "tests/config/policy_text.hpp"
#include "tests/config/server_text.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace egressd::proxy::startup {
namespace {

using config::test::lines;
using config::test::rule_policy;
using test_support::temp_dir;

std::string show(const load_result& r)
{
    std::string out = "errors:\n";
    for (const auto& e : r.errors) {
        out += "  " + e + "\n";
    }
    out += "warnings:\n";
    for (const auto& w : r.warnings) {
        out += "  " + w + "\n";
    }
    return out;
}

bool is_lower_hex(const std::string& s)
{
    return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// The error that starts with prefix; fails (and returns "") when there is not exactly one.
std::string error_starting(const load_result& r, const std::string& prefix)
{
    auto n = std::count_if(r.errors.begin(), r.errors.end(),
                           [&](const std::string& e) { return e.starts_with(prefix); });
    EXPECT_EQ(n, 1) << "errors starting with " << prefix << "\n" << show(r);
    for (const auto& e : r.errors) {
        if (e.starts_with(prefix)) {
            return e;
        }
    }
    return {};
}

// A valid policy: client "app" (10.0.0.0/8) may reach api.example.com:443.
const std::string good_policy = rule_policy("[443]", "[api.example.com]");
// The same policy with an unknown key in the rule: line 7, column 9.
const std::string bad_policy = rule_policy("[443]", "[api.example.com]", {"        bogus: 1"});
// The smallest configuration: default listener (127.0.0.1:3128, plain), admin on 127.0.0.1:9090 without a token.
const std::string minimal_config = lines({"version: 1", "policy: policy.yaml"});

// --- load ---------------------------------------------------------------------------------------------------------

TEST(startup_load, good_config_and_policy_give_the_whole_state)
{
    temp_dir dir;
    auto config_path = dir.write("egressd.yaml", minimal_config);
    auto policy_path = dir.write("policy.yaml", good_policy);

    auto r = load(config_path);
    ASSERT_TRUE(r.state) << show(r);
    EXPECT_TRUE(r.errors.empty()) << show(r);
    EXPECT_TRUE(r.warnings.empty()) << show(r);
    const auto& s = *r.state;
    ASSERT_TRUE(s.config);
    EXPECT_EQ(s.config->file, config_path.string());
    EXPECT_EQ(s.config->policy_path, policy_path);
    ASSERT_TRUE(s.policy);
    EXPECT_EQ(s.policy->stats().clients, 1u);
    EXPECT_EQ(s.policy->stats().rules, 1u);
    EXPECT_EQ(s.policy_digest.size(), 64u);
    EXPECT_TRUE(is_lower_hex(s.policy_digest)) << s.policy_digest;
    // The digest is of the file's name (not its directory) and bytes.
    EXPECT_EQ(s.policy_digest, digest_of({{"policy.yaml", good_policy}}));
    EXPECT_EQ(s.policy_files, std::vector<std::string>{policy_path.string()});
    EXPECT_FALSE(s.credentials);
    ASSERT_EQ(s.listener_tls.size(), 1u);
    EXPECT_FALSE(s.listener_tls[0]);
    EXPECT_FALSE(s.admin_tls);
    EXPECT_FALSE(s.admin_token);
    // No approvals section: nothing of it is read.
    EXPECT_FALSE(s.approvers);
    EXPECT_FALSE(s.requesters);
    EXPECT_TRUE(s.webhook_secrets.empty());
    EXPECT_FALSE(s.approvals_tls);
}

TEST(startup_load, policy_directory_files_in_merge_order)
{
    temp_dir dir;
    std::filesystem::create_directory(dir.path() / "policy.d");
    auto config_path = dir.write("egressd.yaml", lines({"version: 1", "policy: policy.d"}));
    const std::string groups = lines({"version: 1", "groups:", "  web:", "    rules:", "      - ports: [443]",
                                      "        destinations: [api.example.com]"});
    const std::string clients = lines({"version: 1", "clients:", "  app:", "    sources: [10.0.0.0/8]",
                                       "    groups: [web]"});
    // Written out of order: merge order is name order.
    auto second = dir.write("policy.d/20-clients.yaml", clients);
    auto first = dir.write("policy.d/10-groups.yaml", groups);

    auto r = load(config_path);
    ASSERT_TRUE(r.state) << show(r);
    EXPECT_EQ(r.state->policy_files, (std::vector<std::string>{first.string(), second.string()}));
    EXPECT_EQ(r.state->policy_digest, digest_of({{"10-groups.yaml", groups}, {"20-clients.yaml", clients}}));
    EXPECT_NE(r.state->policy_digest, digest_of({{"20-clients.yaml", clients}, {"10-groups.yaml", groups}}));
}

TEST(startup_load, errors_of_every_file_are_reported_together)
{
    temp_dir dir;
    // The listener's certificate and key and the credentials file do not exist, the admin token is too short,
    // and the policy has an unknown key.
    auto config_path = dir.write("egressd.yaml", lines({
                                                     "version: 1",
                                                     "policy: policy.yaml",
                                                     "listeners:",
                                                     "  - address: 127.0.0.1:3128",
                                                     "    tls:",
                                                     "      certificate: server.pem",  // value at 6:20
                                                     "      key: server.key",          // value at 7:12
                                                     "proxy_auth:",
                                                     "  credentials: users.txt",
                                                     "admin:",
                                                     "  token_file: admin.token",  // value at 11:15
                                                 }));
    auto policy_path = dir.write("policy.yaml", bad_policy);
    dir.write("admin.token", "short\n");
    const auto config_file = config_path.string();

    auto r = load(config_path);
    EXPECT_FALSE(r.state) << show(r);
    auto policy_error = error_starting(r, policy_path.string() + ":7:9: error: ");
    EXPECT_NE(policy_error.find("bogus"), std::string::npos) << policy_error;
    // A file that cannot be read has no position: "file: error: ...".
    auto credentials_error = error_starting(r, (dir.path() / "users.txt").string() + ": error: ");
    EXPECT_FALSE(credentials_error.empty());
    // An error about a file the configuration names points at the setting that names it.
    auto certificate_error = error_starting(r, config_file + ":6:20: error: ");
    EXPECT_NE(certificate_error.find("server.pem"), std::string::npos) << certificate_error;
    auto key_error = error_starting(r, config_file + ":7:12: error: ");
    EXPECT_NE(key_error.find("server.key"), std::string::npos) << key_error;
    auto token_error = error_starting(r, config_file + ":11:15: error: ");
    EXPECT_NE(token_error.find("at least 16 characters"), std::string::npos) << token_error;
    EXPECT_EQ(r.errors.size(), 5u) << show(r);
    for (const auto& e : r.errors) {
        EXPECT_NE(e.find(": error: "), std::string::npos) << e;
    }
}

TEST(startup_load, missing_credentials_file_alone_gives_no_state)
{
    temp_dir dir;
    auto config_path = dir.write("egressd.yaml", lines({"version: 1", "policy: policy.yaml", "proxy_auth:",
                                                        "  credentials: users.txt"}));
    dir.write("policy.yaml", good_policy);

    auto r = load(config_path);
    EXPECT_FALSE(r.state);
    ASSERT_EQ(r.errors.size(), 1u) << show(r);
    EXPECT_TRUE(r.errors[0].starts_with((dir.path() / "users.txt").string() + ": error: ")) << r.errors[0];
}

TEST(startup_load, empty_credentials_file_loads_an_empty_store)
{
    temp_dir dir;
    auto config_path = dir.write("egressd.yaml", lines({"version: 1", "policy: policy.yaml", "proxy_auth:",
                                                        "  credentials: users.txt"}));
    dir.write("policy.yaml", good_policy);
    dir.write("users.txt", "# nobody yet\n");

    auto r = load(config_path);
    ASSERT_TRUE(r.state) << show(r);
    ASSERT_TRUE(r.state->credentials);
    EXPECT_EQ(r.state->credentials->size(), 0u);
}

TEST(startup_load, server_config_errors_give_no_state)
{
    temp_dir dir;
    // "workers: many": the value at 3:10.
    auto config_path = dir.write("egressd.yaml", lines({"version: 1", "policy: policy.yaml", "workers: many"}));
    dir.write("policy.yaml", good_policy);

    auto r = load(config_path);
    EXPECT_FALSE(r.state);
    error_starting(r, config_path.string() + ":3:10: error: ");
}

TEST(startup_load, missing_config_file)
{
    temp_dir dir;
    auto config_path = dir.path() / "egressd.yaml";

    auto r = load(config_path);
    EXPECT_FALSE(r.state);
    ASSERT_EQ(r.errors.size(), 1u) << show(r);
    EXPECT_TRUE(r.errors[0].starts_with(config_path.string() + ": error: ")) << r.errors[0];
}

TEST(startup_load, missing_policy_file)
{
    temp_dir dir;
    auto config_path = dir.write("egressd.yaml", minimal_config);

    auto r = load(config_path);
    EXPECT_FALSE(r.state);
    ASSERT_FALSE(r.errors.empty());
    EXPECT_NE(r.errors[0].find("policy.yaml"), std::string::npos) << show(r);
    EXPECT_NE(r.errors[0].find(": error: "), std::string::npos) << show(r);
}

// The admin token file, named at 4:15:
//   1 version: 1
//   2 policy: policy.yaml
//   3 admin:
//   4   token_file: admin.token
struct token_case {
    std::string name;
    std::optional<std::string> file_text;  // nullopt: the file does not exist
    std::optional<std::string> token;      // nullopt: an error naming the token_file setting
    std::string fragment{};                // part of that error
};

TEST(startup_load, admin_token_file)
{
    const std::string sixteen = "0123456789abcdef";
    const std::string hex64 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    const std::vector<token_case> cases = {
        {"good_with_newline", hex64 + "\n", hex64},
        {"good_with_crlf", hex64 + "\r\n", hex64},
        {"good_without_newline", hex64, hex64},
        {"good_several_newlines", hex64 + "\n\n", hex64},
        {"sixteen_characters", sixteen + "\n", sixteen},
        {"fifteen_characters", sixteen.substr(1) + "\n", std::nullopt, "at least 16 characters"},
        {"too_short", "short\n", std::nullopt, "at least 16 characters"},
        {"empty", "", std::nullopt, "at least 16 characters"},
        {"only_newline", "\n", std::nullopt, "at least 16 characters"},
        {"space_inside", sixteen + " " + sixteen + "\n", std::nullopt, "printable ASCII without spaces"},
        {"two_lines", sixteen + "\n" + sixteen + "\n", std::nullopt, "printable ASCII without spaces"},
        {"tab_inside", sixteen + "\t\n", std::nullopt, "printable ASCII without spaces"},
        {"missing_file", std::nullopt, std::nullopt, "cannot read the token file"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        temp_dir dir;
        auto config_path = dir.write("egressd.yaml", lines({"version: 1", "policy: policy.yaml", "admin:",
                                                            "  token_file: admin.token"}));
        dir.write("policy.yaml", good_policy);
        auto token_path = dir.path() / "admin.token";
        if (c.file_text) {
            dir.write("admin.token", *c.file_text);
        }

        auto r = load(config_path);
        if (c.token) {
            ASSERT_TRUE(r.state) << show(r);
            EXPECT_EQ(r.state->admin_token, c.token);
            continue;
        }
        EXPECT_FALSE(r.state);
        ASSERT_EQ(r.errors.size(), 1u) << show(r);
        const auto& e = r.errors[0];
        EXPECT_TRUE(e.starts_with(config_path.string() + ":4:15: error: " + token_path.string() + ": ")) << e;
        EXPECT_NE(e.find(c.fragment), std::string::npos) << e;
        // The token itself is never echoed.
        if (c.file_text && c.file_text->size() >= 16) {
            EXPECT_EQ(e.find(sixteen), std::string::npos) << e;
        }
    }
}

// --- approvals ----------------------------------------------------------------------------------------------------

// An approvals section whose files sit next to the configuration:
//   1 version: 1
//   2 policy: policy.yaml
//   3 approvals:
//   4   store: approvals.db
//   5   approvers: approvers.passwd        (value at 5:14)
//   6   requesters: requesters.passwd      (value at 6:15)
//   7   notify:
//   8     - url: http://127.0.0.1:9/hook
//   9       secret_file: hook.secret      (value at 9:20)
//  10     - url: http://127.0.0.1:9/slack
//  11       format: slack
//  12     - url: http://127.0.0.1:9/third
//  13       secret_file: third.secret     (value at 13:20)
const std::string approvals_config = lines({
    "version: 1",
    "policy: policy.yaml",
    "approvals:",
    "  store: approvals.db",
    "  approvers: approvers.passwd",
    "  requesters: requesters.passwd",
    "  notify:",
    "    - url: http://127.0.0.1:9/hook",
    "      secret_file: hook.secret",
    "    - url: http://127.0.0.1:9/slack",
    "      format: slack",
    "    - url: http://127.0.0.1:9/third",
    "      secret_file: third.secret",
});

// One credentials line at the lowest iteration count, so the test spends little time in PBKDF2.
std::string user_line(std::string_view user, std::string_view password)
{
    return certs::credential_store::make_entry(user, password, certs::credential_store::min_iterations) + "\n";
}

TEST(startup_load_approvals, credentials_files_and_secrets_are_read)
{
    temp_dir dir;
    auto config_path = dir.write("egressd.yaml", approvals_config);
    dir.write("policy.yaml", good_policy);
    dir.write("approvers.passwd", "# approvers\n" + user_line("alice", "correct horse") + user_line("bob", "b"));
    dir.write("requesters.passwd", "# nobody yet\n");
    dir.write("hook.secret", "0123456789abcdef\n");
    dir.write("third.secret", "with spaces inside\r\n\n");

    auto r = load(config_path);
    ASSERT_TRUE(r.state) << show(r);
    const auto& s = *r.state;
    ASSERT_TRUE(s.approvers);
    EXPECT_EQ(s.approvers->size(), 2u);
    EXPECT_TRUE(s.approvers->has_user("alice"));
    EXPECT_TRUE(s.approvers->verify("alice", "correct horse"));
    EXPECT_FALSE(s.approvers->verify("alice", "wrong"));
    // An empty file is an empty store: nobody signs in as a requester, which is not an error.
    ASSERT_TRUE(s.requesters);
    EXPECT_EQ(s.requesters->size(), 0u);
    // One secret per webhook, in order; "" for the one without (Slack); trailing line breaks removed.
    EXPECT_EQ(s.webhook_secrets, (std::vector<std::string>{"0123456789abcdef", "", "with spaces inside"}));
    EXPECT_FALSE(s.approvals_tls);
    // Proxy authentication is a separate thing.
    EXPECT_FALSE(s.credentials);
}

TEST(startup_load_approvals, absent_settings_leave_their_parts_empty)
{
    temp_dir dir;
    auto config_path = dir.write("egressd.yaml", lines({"version: 1", "policy: policy.yaml", "approvals:",
                                                        "  store: approvals.db",
                                                        "  trusted_header: {from: 127.0.0.1/32}"}));
    dir.write("policy.yaml", good_policy);

    auto r = load(config_path);
    ASSERT_TRUE(r.state) << show(r);
    EXPECT_FALSE(r.state->approvers);
    EXPECT_FALSE(r.state->requesters);
    EXPECT_TRUE(r.state->webhook_secrets.empty());
    EXPECT_FALSE(r.state->approvals_tls);
    // The store is the service's to open: loading never creates it.
    EXPECT_FALSE(std::filesystem::exists(dir.path() / "approvals.db"));
}

TEST(startup_load_approvals, a_bad_credentials_line_points_at_the_setting_and_the_line)
{
    temp_dir dir;
    auto config_path = dir.write("egressd.yaml", approvals_config);
    dir.write("policy.yaml", good_policy);
    dir.write("approvers.passwd", user_line("alice", "a"));
    // Line 2: not a credentials entry.
    auto requesters = dir.write("requesters.passwd", "# requesters\ncarol:plaintext\n");
    dir.write("hook.secret", "k\n");
    dir.write("third.secret", "k\n");

    auto r = load(config_path);
    EXPECT_FALSE(r.state);
    ASSERT_EQ(r.errors.size(), 1u) << show(r);
    EXPECT_TRUE(r.errors[0].starts_with(config_path.string() + ":6:15: error: " + requesters.string() + ":2: "))
        << r.errors[0];
}

TEST(startup_load_approvals, every_missing_file_is_reported_at_its_setting)
{
    temp_dir dir;
    auto config_path = dir.write("egressd.yaml", approvals_config);
    dir.write("policy.yaml", good_policy);
    dir.write("third.secret", "\n");  // only a line break: empty
    const auto file = config_path.string();

    auto r = load(config_path);
    EXPECT_FALSE(r.state);
    // A file that cannot be opened: its message names it.
    auto approvers =
        error_starting(r, file + ":5:14: error: cannot open " + (dir.path() / "approvers.passwd").string());
    EXPECT_FALSE(approvers.empty());
    auto requesters =
        error_starting(r, file + ":6:15: error: cannot open " + (dir.path() / "requesters.passwd").string());
    EXPECT_FALSE(requesters.empty());
    auto hook = error_starting(r, file + ":9:20: error: " + (dir.path() / "hook.secret").string() + ": ");
    EXPECT_NE(hook.find("cannot read the secret file"), std::string::npos) << hook;
    auto third = error_starting(r, file + ":13:20: error: " + (dir.path() / "third.secret").string() + ": ");
    EXPECT_NE(third.find("the secret file is empty"), std::string::npos) << third;
    EXPECT_EQ(r.errors.size(), 4u) << show(r);
}

TEST(startup_load_approvals, secrets_are_trimmed_of_line_breaks_only)
{
    struct secret_case {
        std::string name;
        std::string text;
        std::optional<std::string> secret;  // nullopt: the empty-secret error
    };
    const std::vector<secret_case> cases = {
        {"newline", "key\n", "key"},
        {"crlf", "key\r\n", "key"},
        {"none", "key", "key"},
        {"several", "key\n\n\r\n", "key"},
        // Anything else is the key's: spaces, and line breaks inside.
        {"spaces_kept", " key \n", " key "},
        {"inner_line_break_kept", "a\nb\n", "a\nb"},
        {"empty", "", std::nullopt},
        {"only_line_breaks", "\r\n\n", std::nullopt},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        temp_dir dir;
        auto config_path =
            dir.write("egressd.yaml", lines({"version: 1", "policy: policy.yaml", "approvals:", "  store: approvals.db",
                                             "  approvers: approvers.passwd",
                                             "  notify: [{url: 'http://127.0.0.1:9/', secret_file: s}]"}));
        dir.write("policy.yaml", good_policy);
        dir.write("approvers.passwd", "");
        dir.write("s", c.text);

        auto r = load(config_path);
        if (c.secret) {
            ASSERT_TRUE(r.state) << show(r);
            EXPECT_EQ(r.state->webhook_secrets, std::vector<std::string>{*c.secret});
            continue;
        }
        EXPECT_FALSE(r.state);
        ASSERT_EQ(r.errors.size(), 1u) << show(r);
        // "  notify: [{url: 'http://127.0.0.1:9/', secret_file: " is 53 characters.
        EXPECT_TRUE(r.errors[0].starts_with(config_path.string() + ":6:54: error: " + (dir.path() / "s").string() +
                                            ": the secret file is empty"))
            << r.errors[0];
    }
}

// A self-signed certificate and its key, made by the openssl command (as certs/egressd-certs does).
bool make_certificate(const temp_dir& dir)
{
    const std::string command = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
                                "-subj /CN=approvals.test -keyout '" + (dir.path() / "approvals.key").string() +
                                "' -out '" + (dir.path() / "approvals.pem").string() + "' >/dev/null 2>&1";
    return std::system(command.c_str()) == 0;
}

TEST(startup_load_approvals, tls_files_are_loaded_and_their_errors_point_at_the_settings)
{
    const std::string config_text = lines({
        "version: 1",
        "policy: policy.yaml",
        "approvals:",
        "  store: approvals.db",
        "  approvers: approvers.passwd",
        "  tls:",
        "    certificate: approvals.pem",  // value at 7:18
        "    key: approvals.key",          // value at 8:10
    });
    {
        temp_dir dir;
        auto config_path = dir.write("egressd.yaml", config_text);
        dir.write("policy.yaml", good_policy);
        dir.write("approvers.passwd", "");
        ASSERT_TRUE(make_certificate(dir));

        auto r = load(config_path);
        ASSERT_TRUE(r.state) << show(r);
        EXPECT_TRUE(r.state->approvals_tls);
        EXPECT_FALSE(r.state->admin_tls);
    }
    {
        temp_dir dir;
        auto config_path = dir.write("egressd.yaml", config_text);
        dir.write("policy.yaml", good_policy);
        dir.write("approvers.passwd", "");

        auto r = load(config_path);
        EXPECT_FALSE(r.state);
        auto certificate = error_starting(r, config_path.string() + ":7:18: error: ");
        EXPECT_NE(certificate.find("approvals.pem"), std::string::npos) << certificate;
        auto key = error_starting(r, config_path.string() + ":8:10: error: ");
        EXPECT_NE(key.find("approvals.key"), std::string::npos) << key;
    }
}

TEST(startup_load_approvals, off_reads_nothing)
{
    temp_dir dir;
    auto config_path = dir.write("egressd.yaml", lines({"version: 1", "policy: policy.yaml", "approvals: off"}));
    dir.write("policy.yaml", good_policy);

    auto r = load(config_path);
    ASSERT_TRUE(r.state) << show(r);
    EXPECT_FALSE(r.state->config->approvals);
    EXPECT_FALSE(r.state->approvers);
    EXPECT_TRUE(r.state->webhook_secrets.empty());
}

TEST(startup_load_approvals, the_shipped_example_loads)
{
    const std::filesystem::path path = std::filesystem::path(EGRESSD_SOURCE_DIR) / "config/examples/egressd.yaml";
    auto r = load(path);
    ASSERT_TRUE(r.state) << show(r);
    // Its credentials files are empty: nobody signs in until an operator adds someone.
    ASSERT_TRUE(r.state->approvers);
    EXPECT_EQ(r.state->approvers->size(), 0u);
    ASSERT_TRUE(r.state->requesters);
    EXPECT_EQ(r.state->requesters->size(), 0u);
}

// --- digest_of ----------------------------------------------------------------------------------------------------

TEST(startup_digest, same_names_and_bytes_in_another_directory_give_the_same_digest)
{
    temp_dir one;
    temp_dir two;
    std::filesystem::create_directories(two.path() / "mounted" / "elsewhere");
    auto config_one = one.write("egressd.yaml", minimal_config);
    one.write("policy.yaml", good_policy);
    auto config_two = two.write("mounted/elsewhere/egressd.yaml", minimal_config);
    two.write("mounted/elsewhere/policy.yaml", good_policy);

    auto r1 = load(config_one);
    auto r2 = load(config_two);
    ASSERT_TRUE(r1.state) << show(r1);
    ASSERT_TRUE(r2.state) << show(r2);
    EXPECT_EQ(r1.state->policy_digest, r2.state->policy_digest);
    EXPECT_NE(r1.state->policy_files, r2.state->policy_files);
}

TEST(startup_digest, changes_with_any_byte_and_any_name)
{
    using sources = std::vector<std::pair<std::string, std::string>>;
    struct digest_case {
        std::string name;
        sources a;
        sources b;
        bool same;
    };
    const std::vector<digest_case> cases = {
        {"directory_not_hashed", {{"/etc/egressd/policy.yaml", "x: 1\n"}}, {{"/srv/policy.yaml", "x: 1\n"}}, true},
        {"relative_and_absolute", {{"policy.yaml", "x: 1\n"}}, {{"/etc/egressd/policy.yaml", "x: 1\n"}}, true},
        {"identical", {{"a.yaml", "x"}, {"b.yaml", "y"}}, {{"a.yaml", "x"}, {"b.yaml", "y"}}, true},
        {"one_byte_changed", {{"policy.yaml", "x: 1\n"}}, {{"policy.yaml", "x: 2\n"}}, false},
        {"one_byte_added", {{"policy.yaml", "x: 1\n"}}, {{"policy.yaml", "x: 1\n\n"}}, false},
        {"file_renamed", {{"policy.yaml", "x: 1\n"}}, {{"policy.yml", "x: 1\n"}}, false},
        {"file_renamed_same_directory", {{"/p/10-a.yaml", "x"}}, {{"/p/20-a.yaml", "x"}}, false},
        {"order_swapped", {{"a.yaml", "x"}, {"b.yaml", "y"}}, {{"b.yaml", "y"}, {"a.yaml", "x"}}, false},
        {"file_added", {{"a.yaml", "x"}}, {{"a.yaml", "x"}, {"b.yaml", ""}}, false},
        // Lengths frame each part: moving bytes between a name and its text, or between files, shows.
        {"boundary_name_text", {{"ab", "c"}}, {{"a", "bc"}}, false},
        {"boundary_between_files", {{"a", "b"}, {"c", "d"}}, {{"a", "b1:c1:d"}}, false},
        {"nothing_vs_empty_file", {}, {{"", ""}}, false},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        auto da = digest_of(c.a);
        auto db = digest_of(c.b);
        EXPECT_EQ(da.size(), 64u);
        EXPECT_TRUE(is_lower_hex(da)) << da;
        EXPECT_EQ(da == db, c.same) << da << " vs " << db;
    }
}

TEST(startup_digest, known_values)
{
    // SHA-256 of nothing, and of "11:policy.yaml5:hello" (name length, name, text length, text).
    EXPECT_EQ(digest_of({}), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(digest_of({{"/any/where/policy.yaml", "hello"}}),
              "01656151a50583391c73ca9292fd665bc80a4b9411f2eaadbd070d4df84d7af9");
}

// --- restart_needed -----------------------------------------------------------------------------------------------

struct restart_case {
    std::string name;
    std::vector<std::string> running;  // configuration lines after "version: 1" and "policy: policy.yaml"
    std::vector<std::string> loaded;
    std::vector<std::string> want;
};

config::server_config parse(const std::vector<std::string>& more)
{
    std::string text = minimal_config;
    for (const auto& l : more) {
        text += l + "\n";
    }
    auto loaded = config::test::server::load(text);
    EXPECT_TRUE(loaded.config) << text << config::test::server::show(loaded);
    return loaded.config.value_or(config::server_config{});
}

TEST(startup_restart_needed, names_the_settings_that_apply_only_at_start)
{
    const std::vector<std::string> full = {
        "listeners:",
        "  - address: 127.0.0.1:3128",
        "    tls: {certificate: a.pem, key: a.key, client_ca: ca.pem}",
        "  - '[::1]:3128'",
        "workers: 4",
        "dns: {servers: [127.0.0.1:5353], timeout: 1s}",
        "logging: {stdout: false, file: {path: events.log}}",
        "admin: {listen: 127.0.0.1:9091, token_file: admin.token}",
    };
    const std::vector<std::string> approvals = {"approvals:", "  store: approvals.db", "  approvers: approvers.passwd"};
    auto plus = [](std::vector<std::string> base, std::initializer_list<std::string> more) {
        base.insert(base.end(), more.begin(), more.end());
        return base;
    };
    const std::vector<restart_case> cases = {
        {"identical_minimal", {}, {}, {}},
        {"identical_full", full, full, {}},
        // Listeners.
        {"listener_port", {}, {"listeners: [127.0.0.1:3129]"}, {"listeners"}},
        {"listener_address", {"listeners: [127.0.0.1:3128]"}, {"listeners: ['[::1]:3128']"}, {"listeners"}},
        {"listener_added", {"listeners: [127.0.0.1:3128]"}, {"listeners: [127.0.0.1:3128, '[::1]:3128']"},
         {"listeners"}},
        {"listeners_reordered", {"listeners: [127.0.0.1:3128, '[::1]:3128']"},
         {"listeners: ['[::1]:3128', 127.0.0.1:3128]"}, {"listeners"}},
        {"default_listener_written_out", {}, {"listeners: [127.0.0.1:3128]"}, {}},
        {"listener_tls_added", {"listeners: [127.0.0.1:3128]"},
         {"listeners:", "  - address: 127.0.0.1:3128", "    tls: {certificate: a.pem, key: a.key}"}, {"listeners"}},
        {"listener_client_ca_added",
         {"listeners:", "  - address: 127.0.0.1:3128", "    tls: {certificate: a.pem, key: a.key}"},
         {"listeners:", "  - address: 127.0.0.1:3128", "    tls: {certificate: a.pem, key: a.key, client_ca: ca.pem}"},
         {"listeners"}},
        {"listener_client_certificate_optional",
         {"listeners:", "  - address: 127.0.0.1:3128", "    tls: {certificate: a.pem, key: a.key, client_ca: ca.pem}"},
         {"listeners:", "  - address: 127.0.0.1:3128",
          "    tls: {certificate: a.pem, key: a.key, client_ca: ca.pem, client_certificate: optional}"},
         {"listeners"}},
        {"listener_proxy_protocol_added", {"listeners: [127.0.0.1:3128]"},
         {"listeners:", "  - address: 127.0.0.1:3128", "    proxy_protocol: {trusted: [10.0.0.0/8]}"}, {"listeners"}},
        // The TLS files themselves are read again at every reload.
        {"listener_tls_files_renamed",
         {"listeners:", "  - address: 127.0.0.1:3128", "    tls: {certificate: a.pem, key: a.key}"},
         {"listeners:", "  - address: 127.0.0.1:3128", "    tls: {certificate: b.pem, key: b.key}"}, {}},
        // Workers, DNS, logging, admin.
        {"workers", {}, {"workers: 4"}, {"workers"}},
        {"workers_changed", {"workers: 4"}, {"workers: 8"}, {"workers"}},
        {"dns_servers", {}, {"dns: {servers: [127.0.0.1:5353]}"}, {"dns"}},
        {"dns_timeout", {}, {"dns: {timeout: 500ms}"}, {"dns"}},
        {"dns_tries", {}, {"dns: {tries: 3}"}, {"dns"}},
        {"dns_ttls", {}, {"dns: {min_ttl: 1s, max_ttl: 1h, negative_ttl: 5s}"}, {"dns"}},
        {"dns_cache_entries", {}, {"dns: {cache_entries: 10}"}, {"dns"}},
        {"logging_stdout", {}, {"logging: {stdout: false}"}, {"logging"}},
        {"logging_file", {}, {"logging: {file: {path: events.log}}"}, {"logging"}},
        {"logging_file_size", {"logging: {file: {path: events.log}}"},
         {"logging: {file: {path: events.log, max_bytes: 4096}}"}, {"logging"}},
        {"logging_deny_file", {}, {"logging: {deny_file: {path: deny.log}}"}, {"logging"}},
        {"logging_syslog", {}, {"logging: {syslog: {ident: proxy}}"}, {"logging"}},
        {"logging_queue_size", {}, {"logging: {queue_size: 16}"}, {"logging"}},
        {"logging_format", {}, {"logging: {format: ecs}"}, {"logging"}},
        {"logging_instance", {}, {"logging: {instance: egress-gw-1}"}, {"logging"}},
        {"logging_http_query", {}, {"logging: {http_query: true}"}, {"logging"}},
        {"admin_off", {}, {"admin: off"}, {"admin"}},
        {"admin_port", {}, {"admin: {listen: 127.0.0.1:9091}"}, {"admin"}},
        {"admin_token_file_added", {}, {"admin: {token_file: admin.token}"}, {"admin"}},
        {"admin_tls_added", {}, {"admin: {tls: {certificate: a.pem, key: a.key}}"}, {"admin"}},
        {"admin_defaults_written_out", {}, {"admin: {listen: 127.0.0.1:9090}"}, {}},
        // Everything that applies live.
        {"timeouts", {}, {"timeouts: {idle: 1m, header: 2s, connect: 3s, tunnel_lifetime: 1h, drain_delay: 5s}"}, {}},
        {"limits", {}, {"limits: {max_connections: 5, max_connections_per_client: 1, max_headers: 10}"}, {}},
        {"proxy_auth_added", {}, {"proxy_auth: {credentials: users.txt, required: true}"}, {}},
        {"reload_settings", {}, {"reload: {watch: false, debounce: 2s}"}, {}},
        // Approvals: the listener and the store are opened at start; who signs in, secrets, durations, limits
        // and webhooks apply live.
        {"approvals_added", {}, approvals, {"approvals"}},
        {"approvals_off", approvals, {"approvals: off"}, {"approvals"}},
        {"approvals_listen", approvals, plus(approvals, {"  listen: 127.0.0.1:9092"}), {"approvals"}},
        {"approvals_listen_address", approvals, plus(approvals, {"  listen: '[::1]:9091'"}), {"approvals"}},
        {"approvals_default_listen_written_out", approvals, plus(approvals, {"  listen: 127.0.0.1:9091"}), {}},
        {"approvals_tls_added", approvals, plus(approvals, {"  tls: {certificate: a.pem, key: a.key}"}),
         {"approvals"}},
        {"approvals_store", approvals, {"approvals:", "  store: other.db", "  approvers: approvers.passwd"},
         {"approvals"}},
        {"approvals_tls_files_renamed", plus(approvals, {"  tls: {certificate: a.pem, key: a.key}"}),
         plus(approvals, {"  tls: {certificate: b.pem, key: b.key, client_ca: ca.pem}"}), {}},
        {"approvals_credentials_files", approvals,
         {"approvals:", "  store: approvals.db", "  approvers: other.passwd", "  requesters: requesters.passwd"}, {}},
        {"approvals_trusted_header", approvals, plus(approvals, {"  trusted_header: {from: 127.0.0.1/32}"}), {}},
        {"approvals_public_url", approvals, plus(approvals, {"  public_url: https://egress.example.com"}), {}},
        {"approvals_durations_and_limits", approvals,
         plus(approvals, {"  default_grant: 1h", "  max_grant: 1d", "  max_pending: 5", "  request_ttl: 1d",
                          "  requests_per_client_per_minute: 1", "  notify_cooldown: 1m", "  expiry_warning: 1m"}),
         {}},
        {"approvals_notify", approvals,
         plus(approvals, {"  notify: [{url: 'http://127.0.0.1:9/', secret_file: hook.secret}]"}), {}},
        // All at once, in one order.
        {"all_restart_settings", {}, plus(full, {"approvals:", "  listen: 127.0.0.1:9092", "  store: a.db",
                                                 "  approvers: a.passwd"}),
         {"listeners", "workers", "dns", "logging", "admin", "approvals"}},
        {"all_restart_settings_plus_live_ones", full, plus(full, {"timeouts: {idle: 1m}"}), {}},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        auto running = parse(c.running);
        auto loaded = parse(c.loaded);
        EXPECT_EQ(restart_needed(running, loaded), c.want);
        // Either way round: going back needs a restart just the same.
        EXPECT_EQ(restart_needed(loaded, running), c.want);
    }
}

TEST(startup_restart_needed, policy_path_change_applies_live)
{
    auto a = config::test::server::load(lines({"version: 1", "policy: policy.yaml"}));
    auto b = config::test::server::load(lines({"version: 1", "policy: /srv/egressd/policy.d"}));
    ASSERT_TRUE(a.config && b.config);
    EXPECT_TRUE(restart_needed(*a.config, *b.config).empty());
}

}  // namespace
}  // namespace egressd::proxy::startup
