// destinations_file lists, methods and paths, and deny lists on groups and clients, as the loader reads them from
// real files: what a list may hold, where a relative list is looked for, how its errors are placed and capped,
// that a list counts as a file of the policy (once), and that one bad line leaves nothing applied.

#include "config/policy_loader.hpp"
#include "tests/config/policy_text.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::config {
namespace {

namespace pol = egressd::policy;
namespace fs = std::filesystem;

using test::lines;
using test::target;
using test::utc;

const pol::time_point early = utc("2025-01-01T00:00:00Z");

// Writes text to dir/relative, creating the directories on the way.
fs::path put(const test_support::temp_dir& dir, const std::string& relative, std::string_view text)
{
    fs::create_directories((dir.path() / relative).parent_path());
    return dir.write(relative, text);
}

std::string all(const std::vector<diagnostic>& list)
{
    std::string out;
    for (const auto& d : list) {
        out += d.format("error") + "\n";
    }
    return out;
}

// The one diagnostic whose message contains part; fails the test when there is not exactly one.
const diagnostic* only(const std::vector<diagnostic>& list, std::string_view part)
{
    const diagnostic* found = nullptr;
    int count = 0;
    for (const auto& d : list) {
        if (d.message.find(part) != std::string::npos) {
            found = &d;
            ++count;
        }
    }
    EXPECT_EQ(count, 1) << "diagnostics containing '" << part << "':\n" << all(list);
    return count == 1 ? found : nullptr;
}

void expect_at(const diagnostic* d, const fs::path& file, std::uint32_t line, std::uint32_t column)
{
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->file, file.lexically_normal().string()) << d->message;
    EXPECT_EQ(d->where.line, line) << d->message;
    EXPECT_EQ(d->where.column, column) << d->message;
}

std::string why(const pol::policy& p, std::string_view client, std::string_view host, std::uint16_t port)
{
    auto id = p.find_client(client);
    EXPECT_TRUE(id.has_value()) << client;
    return std::string(pol::to_string(p.decide_name(id, target(host), port, early).why));
}

// A policy whose group "web" has one rule on port 443 with the given destination keys (8-space indent); client
// "app" uses it.
std::string list_policy(std::initializer_list<std::string_view> rule_lines)
{
    std::string out = lines({"version: 1", "groups:", "  web:", "    rules:", "      - ports: [443]"});
    for (auto l : rule_lines) {
        out += std::string(l) + "\n";
    }
    out += lines({"clients:", "  app:", "    sources: [10.0.0.0/8]", "    groups: [web]"});
    return out;
}

TEST(list_file, comments_blank_lines_crlf_cidrs_and_patterns)
{
    test_support::temp_dir dir;
    put(dir, "lists/vendor.txt",
        "# vendor endpoints\n"
        "\n"
        "api.vendor.example\r\n"
        "   *.cdn.vendor.example   # subdomains only\n"
        "\t.apex.example\t\n"
        "203.0.113.0/24\r\n"
        "2001:db8::/32\n"
        "   \n"
        "# the end, without a final newline\n"
        "last.vendor.example");
    auto policy = put(dir, "policy.yaml", list_policy({"        destinations: [inline.example]",
                                                        "        destinations_file: lists/vendor.txt"}));
    auto loaded = load_policy(policy);
    ASSERT_TRUE(loaded.snapshot) << all(loaded.errors);
    const auto& p = *loaded.snapshot;
    EXPECT_EQ(why(p, "app", "api.vendor.example", 443), "allowed");
    EXPECT_EQ(why(p, "app", "img.cdn.vendor.example", 443), "allowed");
    EXPECT_EQ(why(p, "app", "cdn.vendor.example", 443), "no_matching_rule");
    EXPECT_EQ(why(p, "app", "apex.example", 443), "allowed");
    EXPECT_EQ(why(p, "app", "a.b.apex.example", 443), "allowed");
    EXPECT_EQ(why(p, "app", "203.0.113.9", 443), "allowed");
    EXPECT_EQ(why(p, "app", "[2001:db8::1]", 443), "allowed");
    EXPECT_EQ(why(p, "app", "last.vendor.example", 443), "allowed");
    // The inline destinations and the list's are one union.
    EXPECT_EQ(why(p, "app", "inline.example", 443), "allowed");
    EXPECT_EQ(why(p, "app", "vendor.example", 443), "no_matching_rule");
    EXPECT_EQ(why(p, "app", "api.vendor.example", 80), "port_not_allowed");
    EXPECT_EQ(p.stats().domain_patterns, 5u);
    EXPECT_EQ(p.stats().cidrs, 2u);
}

TEST(list_file, relative_to_the_policy_file_not_the_working_directory)
{
    test_support::temp_dir dir;
    put(dir, "etc/lists/a.txt", "a.example\n");
    put(dir, "lists/a.txt", "wrong.example\n");  // where a working-directory-relative lookup would land
    auto policy = put(dir, "etc/policy.yaml", list_policy({"        destinations_file: lists/a.txt"}));
    auto cwd = fs::current_path();
    fs::current_path(dir.path());
    auto loaded = load_policy(policy);
    auto relative = load_policy("etc/policy.yaml");  // a relative policy path: its directory is etc/
    fs::current_path(cwd);
    ASSERT_TRUE(loaded.snapshot) << all(loaded.errors);
    EXPECT_EQ(why(*loaded.snapshot, "app", "a.example", 443), "allowed");
    EXPECT_EQ(why(*loaded.snapshot, "app", "wrong.example", 443), "no_matching_rule");
    ASSERT_TRUE(relative.snapshot) << all(relative.errors);
    EXPECT_EQ(why(*relative.snapshot, "app", "a.example", 443), "allowed");
    // An absolute path is taken as it is.
    auto absolute = put(dir, "other.yaml",
                        list_policy({"        destinations_file: " + (dir.path() / "etc/lists/a.txt").string()}));
    auto loaded_absolute = load_policy(absolute);
    ASSERT_TRUE(loaded_absolute.snapshot) << all(loaded_absolute.errors);
    EXPECT_EQ(why(*loaded_absolute.snapshot, "app", "a.example", 443), "allowed");
}

TEST(list_file, a_policy_directory_shares_one_list_listed_once)
{
    test_support::temp_dir dir;
    std::string list_text = "shared.example\r\n# comment\n10.20.0.0/16\n";
    auto list = put(dir, "policy.d/lists/shared.txt", list_text);
    put(dir, "policy.d/a.yaml",
        lines({"version: 1", "groups:", "  one:", "    rules:", "      - ports: [443]",
               "        destinations_file: lists/shared.txt", "      - ports: [80]",
               "        destinations_file: lists/shared.txt", "clients:", "  app:", "    sources: [10.0.0.0/8]",
               "    groups: [one, two]"}));
    put(dir, "policy.d/b.yaml",
        lines({"version: 1", "groups:", "  two:", "    rules:", "      - ports: [8443]", "        destinations_file: ./lists/shared.txt",
               "    deny:", "      - destinations_file: lists/../lists/shared.txt", "        ports: [22]"}));
    auto loaded = load_policy(dir.path() / "policy.d");
    ASSERT_TRUE(loaded.snapshot) << all(loaded.errors);
    const auto& p = *loaded.snapshot;
    EXPECT_EQ(why(p, "app", "shared.example", 443), "allowed");
    EXPECT_EQ(why(p, "app", "shared.example", 80), "allowed");
    EXPECT_EQ(why(p, "app", "shared.example", 8443), "allowed");
    EXPECT_EQ(why(p, "app", "shared.example", 22), "explicit_deny");
    EXPECT_EQ(why(p, "app", "10.20.1.1", 8443), "allowed");

    std::string name = list.lexically_normal().string();
    std::string files;
    for (const auto& f : loaded.files) {
        files += f + "\n";
    }
    EXPECT_EQ(std::count(loaded.files.begin(), loaded.files.end(), name), 1) << files;
    EXPECT_EQ(loaded.files.size(), 3u);
    EXPECT_EQ(loaded.list_files, std::vector<std::string>{name});
    auto in_sources = std::count_if(loaded.sources.begin(), loaded.sources.end(),
                                    [&](const auto& s) { return s.first == name; });
    EXPECT_EQ(in_sources, 1);
    auto it = std::find_if(loaded.sources.begin(), loaded.sources.end(), [&](const auto& s) { return s.first == name; });
    ASSERT_NE(it, loaded.sources.end());
    EXPECT_EQ(it->second, list_text);  // the exact bytes, CR and comments included
    EXPECT_EQ(loaded.sources.size(), loaded.files.size());
}

TEST(list_file, errors_name_the_list_line_and_column)
{
    test_support::temp_dir dir;
    auto list = put(dir, "lists/bad.txt",
                    "good.example\n"        // 1
                    "\n"                    // 2
                    "  bad..example\n"      // 3: column 3
                    "10.0.0.0/33   # x\n"   // 4: column 1
                    "\ttwo words\n"         // 5: column 2
                    "ok.example # fine\r\n"  // 6
                    "*.*.example\n");       // 7
    auto policy = put(dir, "policy.yaml", list_policy({"        destinations_file: lists/bad.txt"}));
    auto loaded = load_policy(policy);
    EXPECT_FALSE(loaded.snapshot);
    EXPECT_EQ(loaded.errors.size(), 4u) << all(loaded.errors);
    expect_at(only(loaded.errors, "bad..example"), list, 3, 3);
    expect_at(only(loaded.errors, "10.0.0.0/33"), list, 4, 1);
    expect_at(only(loaded.errors, "expected one destination per line, found 'two words'"), list, 5, 2);
    expect_at(only(loaded.errors, "*.*.example"), list, 7, 1);
}

TEST(list_file, at_most_100_errors_per_list_then_a_count)
{
    test_support::temp_dir dir;
    std::string text;
    for (int i = 0; i < 150; ++i) {
        text += "bad_" + std::to_string(i) + "..example\n";
    }
    text += "fine.example\n";
    auto list = put(dir, "lists/many.txt", text);
    auto policy = put(dir, "policy.yaml", list_policy({"        destinations: [bad..inline]",
                                                        "        destinations_file: lists/many.txt"}));
    auto loaded = load_policy(policy);
    EXPECT_FALSE(loaded.snapshot);
    auto in_list = std::count_if(loaded.errors.begin(), loaded.errors.end(),
                                 [&](const diagnostic& d) { return d.file == list.string(); });
    EXPECT_EQ(in_list, 101) << all(loaded.errors);
    expect_at(only(loaded.errors, "50 more invalid destinations (150 in all)"), list, 151, 1);
    expect_at(only(loaded.errors, "bad_99..example"), list, 100, 1);
    EXPECT_EQ(std::count_if(loaded.errors.begin(), loaded.errors.end(),
                            [](const diagnostic& d) { return d.message.find("bad_100.") != std::string::npos; }),
              0);
    // The policy file's own error is still reported, before the list's.
    ASSERT_FALSE(loaded.errors.empty());
    EXPECT_EQ(loaded.errors.front().file, policy.string()) << all(loaded.errors);
    EXPECT_NE(loaded.errors.front().message.find("bad..inline"), std::string::npos) << all(loaded.errors);
}

TEST(list_file, empty_or_missing_list_is_an_error_at_the_key)
{
    test_support::temp_dir dir;
    put(dir, "lists/empty.txt", "# nothing yet\n\n   \n");
    put(dir, "lists/zero.txt", "");
    auto policy = put(dir, "policy.yaml",
                      lines({"version: 1", "groups:", "  web:", "    rules:", "      - ports: [443]",
                             "        destinations_file: lists/empty.txt",  // 6, value at column 28
                             "      - ports: [443]", "        destinations_file: lists/zero.txt",  // 8
                             "      - ports: [443]", "        destinations_file: lists/missing.txt",  // 10
                             "      - ports: [443]", "        destinations_file: lists",  // 12: a directory
                             "      - ports: [443]",                             // 13: neither key
                             "        description: nothing", "clients:", "  app:", "    sources: [10.0.0.0/8]",
                             "    groups: [web]"}));
    auto loaded = load_policy(policy);
    EXPECT_FALSE(loaded.snapshot);
    auto empty = (dir.path() / "lists/empty.txt").string();
    expect_at(only(loaded.errors, "destinations_file '" + empty + "' names no destination"), policy, 6, 28);
    expect_at(only(loaded.errors, "lists/zero.txt' names no destination"), policy, 8, 28);
    expect_at(only(loaded.errors, "cannot read destinations_file '" + (dir.path() / "lists/missing.txt").string() +
                                      "': No such file or directory"),
              policy, 10, 28);
    const diagnostic* directory = nullptr;
    for (const auto& d : loaded.errors) {
        if (d.where.line == 12) {
            directory = &d;
        }
    }
    ASSERT_NE(directory, nullptr) << "a directory named as a list must be an error\n" << all(loaded.errors);
    EXPECT_EQ(directory->where.column, 28u);
    expect_at(only(loaded.errors, "missing required key 'destinations' (or 'destinations_file')"), policy, 13, 9);
    EXPECT_EQ(loaded.errors.size(), 5u) << all(loaded.errors);
    // The lists that could not be read are named, so that the file watch follows them until they can be.
    EXPECT_EQ(loaded.unreadable_lists, (std::vector<std::string>{(dir.path() / "lists/missing.txt").string(),
                                                                 (dir.path() / "lists").string()}));
}

// A FIFO would block the load (and every reload after it) for ever; a device would never end.
TEST(list_file, only_a_regular_file_is_read)
{
    test_support::temp_dir dir;
    auto fifo = dir.path() / "feed.fifo";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    auto policy = put(dir, "policy.yaml", list_policy({"        destinations_file: feed.fifo"}));
    auto loaded = load_policy(policy);
    EXPECT_FALSE(loaded.snapshot);
    expect_at(only(loaded.errors, "cannot read destinations_file '" + fifo.string() + "': not a regular file"),
              policy, 6, 28);
}

// Two rules naming one bad list: its errors once, not once per rule.
TEST(list_file, a_list_named_twice_reports_its_errors_once)
{
    test_support::temp_dir dir;
    put(dir, "bad.txt", "ok.example\nbad*.example\n");
    auto policy = put(dir, "policy.yaml",
                      list_policy({"        destinations_file: bad.txt", "      - ports: [80]",
                                   "        destinations_file: bad.txt"}));
    auto loaded = load_policy(policy);
    EXPECT_FALSE(loaded.snapshot);
    expect_at(only(loaded.errors, "invalid destination 'bad*.example'"), dir.path() / "bad.txt", 2, 1);
    EXPECT_EQ(loaded.errors.size(), 1u) << all(loaded.errors);
}

// A list pointed at some other file must not copy it into logs and reload answers: a line is quoted in part.
TEST(list_file, an_error_quotes_at_most_40_characters_of_a_line)
{
    test_support::temp_dir dir;
    std::string secret = "root:x:0:0:root:/root:/bin/bash:" + std::string(300, 'k');
    put(dir, "passwd", secret + "\n");
    auto policy = put(dir, "policy.yaml", list_policy({"        destinations_file: passwd"}));
    auto loaded = load_policy(policy);
    ASSERT_EQ(loaded.errors.size(), 1u) << all(loaded.errors);
    const auto& message = loaded.errors[0].message;
    EXPECT_EQ(message.find(secret.substr(0, 41)), std::string::npos) << message;
    EXPECT_NE(message.find("'" + secret.substr(0, 40) + "...'"), std::string::npos) << message;
    EXPECT_LT(message.size(), 160u) << message;
}

// An allow needs its prefix on the lenient reading of a path too, which has no "//", ';' or encoded slash: such a
// prefix could never allow, so it is refused; a deny may name it (the normal reading can match it).
TEST(list_file, an_allow_prefix_no_lenient_path_can_fit_is_an_error)
{
    auto loaded = load_policy_texts(
        {{"policy.yaml",
          lines({"version: 1", "groups:", "  web:", "    rules:", "      - ports: [80]",
                 "        destinations: [a.example]", "        paths: [\"/a//b\", \"/x;y/\", /ok/]", "clients:",
                 "  app:", "    sources: [10.0.0.0/8]", "    groups: [web]", "deny:",
                 "  - destinations: [a.example]", "    paths: [\"/a//b\"]"})}});
    EXPECT_FALSE(loaded.snapshot);
    expect_at(only(loaded.errors, "path prefix '/a//b' can never allow a request"), "policy.yaml", 7, 17);
    expect_at(only(loaded.errors, "path prefix '/x;y/' can never allow a request"), "policy.yaml", 7, 26);
    EXPECT_EQ(loaded.errors.size(), 2u) << all(loaded.errors);
}

TEST(list_file, a_bad_list_leaves_nothing_applied)
{
    test_support::temp_dir dir;
    put(dir, "lists/ok.txt", "ok.example\n");
    put(dir, "lists/bad.txt", "ok2.example\nnot a name\n");
    auto policy = put(dir, "policy.yaml",
                      list_policy({"        destinations_file: lists/ok.txt", "      - ports: [80]",
                                   "        destinations_file: lists/bad.txt"}));
    auto loaded = load_policy(policy);
    EXPECT_FALSE(loaded.snapshot) << "one bad line in one list must make the whole policy invalid";
    ASSERT_EQ(loaded.errors.size(), 1u) << all(loaded.errors);
    EXPECT_EQ(loaded.errors[0].file, (dir.path() / "lists/bad.txt").string());
    EXPECT_EQ(loaded.errors[0].where.line, 2u);
    // The lists read are still reported as files of the policy, so a file watch sees their repair.
    EXPECT_EQ(std::count(loaded.files.begin(), loaded.files.end(), (dir.path() / "lists/bad.txt").string()), 1);
}

struct key_error {
    std::string name;
    std::string value;  // the rule line after "        "
    std::string message;
    std::uint32_t column;
};

class request_key_error : public ::testing::TestWithParam<key_error> {};

TEST_P(request_key_error, is_reported_at_its_position)
{
    const auto& c = GetParam();
    // line 6: destinations; line 7: the key under test, its value at column 9 + the key's length + 2.
    auto text = list_policy({"        destinations: [pypi.org]", "        " + c.value});
    auto loaded = load_policy_texts({{"p.yaml", text}});
    EXPECT_FALSE(loaded.snapshot);
    ASSERT_EQ(loaded.errors.size(), 1u) << all(loaded.errors);
    EXPECT_NE(loaded.errors[0].message.find(c.message), std::string::npos) << all(loaded.errors);
    EXPECT_EQ(loaded.errors[0].where.line, 7u) << all(loaded.errors);
    EXPECT_EQ(loaded.errors[0].where.column, c.column) << all(loaded.errors);
}

INSTANTIATE_TEST_SUITE_P(
    list_file, request_key_error,
    ::testing::Values(
        key_error{"lower_case_method", "methods: [GET, get]", "method 'get' is not upper case", 24},
        key_error{"not_a_token", "methods: [\"GE T\"]", "invalid method 'GE T'", 19},
        key_error{"empty_methods", "methods: []", "empty method list", 18},
        key_error{"methods_not_a_list", "methods: {a: b}", "methods", 18},
        key_error{"relative_path", "paths: [simple/]", "invalid path prefix 'simple/'", 17},
        key_error{"path_with_query", "paths: [\"/a?b\"]", "invalid path prefix '/a?b'", 17},
        key_error{"path_with_space", "paths: [\"/a b\"]", "invalid path prefix '/a b'", 17},
        key_error{"dot_segments", "paths: [/a/../b]", "is not in normal form", 17},
        key_error{"encoded_unreserved", "paths: [\"/%7e/\"]", "write '/~/'", 17},
        key_error{"lower_case_hex", "paths: [\"/a%2fb\"]", "write '/a%2Fb'", 17},
        key_error{"empty_paths", "paths: []", "empty path list", 16}),
    test::param_name<key_error>);

TEST(list_file, connect_with_paths_is_an_error_at_the_paths)
{
    auto text = list_policy({"        destinations: [pypi.org]", "        methods: [GET, CONNECT]", "        paths: [/a/]"});
    auto loaded = load_policy_texts({{"p.yaml", text}});
    EXPECT_FALSE(loaded.snapshot);
    ASSERT_EQ(loaded.errors.size(), 1u) << all(loaded.errors);
    EXPECT_NE(loaded.errors[0].message.find("paths cannot apply to CONNECT"), std::string::npos);
    EXPECT_EQ(loaded.errors[0].where.line, 8u);
    EXPECT_EQ(loaded.errors[0].where.column, 16u);
}

TEST(list_file, deny_lists_on_groups_and_clients_take_every_rule_key)
{
    test_support::temp_dir dir;
    put(dir, "lists/deny.txt", "blocked.example\n198.51.100.0/24\n");
    auto policy = put(dir, "policy.yaml",
                      lines({"version: 1",
                             "groups:",
                             "  web:",
                             "    rules:",
                             "      - ports: [80, 443]",
                             "        destinations: [.example, 198.51.100.0/24, pypi.org]",
                             "    deny:",
                             "      - description: no uploads",
                             "        destinations: [upload.example]",
                             "        destinations_file: lists/deny.txt",
                             "        ports: [443]",
                             "        protocol: tcp",
                             "        expires: 2030-01-01T00:00:00Z",
                             "      - destinations: [pypi.org]",
                             "        methods: [POST]",
                             "        paths: [/legacy/]",
                             "clients:",
                             "  app:",
                             "    sources: [10.0.0.0/8]",
                             "    groups: [web]",
                             "    deny:",
                             "      - destinations: [secret.example]",
                             "        methods: [GET]",
                             "      - destinations_file: lists/deny.txt",
                             "        ports: [80]",
                             "  other:",
                             "    sources: [10.1.0.0/16]",
                             "    groups: [web]"}));
    auto loaded = load_policy(policy);
    ASSERT_TRUE(loaded.snapshot) << all(loaded.errors);
    const auto& p = *loaded.snapshot;
    // The group's list applies to both clients; app's own list to app alone.
    for (const char* client : {"app", "other"}) {
        SCOPED_TRACE(client);
        EXPECT_EQ(why(p, client, "upload.example", 443), "explicit_deny");
        EXPECT_EQ(why(p, client, "blocked.example", 443), "explicit_deny");
        EXPECT_EQ(why(p, client, "198.51.100.7", 443), "explicit_deny");
        EXPECT_EQ(why(p, client, "upload.example", 80), "allowed");  // the deny rule's ports: [443]
    }
    EXPECT_EQ(why(p, "app", "blocked.example", 80), "explicit_deny");
    EXPECT_EQ(why(p, "other", "blocked.example", 80), "allowed");
    // The expired deny rule denies nothing after its expiry.
    auto app = p.find_client("app");
    auto late = p.decide_name(app, target("upload.example"), 443, utc("2031-01-01T00:00:00Z"));
    EXPECT_EQ(pol::to_string(late.why), "allowed");
    // Methods and paths on deny rules: plain HTTP only.
    pol::http_request post{"POST", "/legacy/x", "/legacy/x"};
    pol::http_request get{"GET", "/legacy/x", "/legacy/x"};
    EXPECT_EQ(pol::to_string(p.decide_name(app, target("pypi.org"), 80, early, nullptr, &post).why), "explicit_deny");
    EXPECT_EQ(pol::to_string(p.decide_name(app, target("pypi.org"), 80, early, nullptr, &get).why), "allowed");
    pol::http_request secret{"GET", "/", "/"};
    EXPECT_EQ(pol::to_string(p.decide_name(app, target("secret.example"), 80, early, nullptr, &secret).why),
              "explicit_deny");
    auto d = p.decide_name(app, target("upload.example"), 443, early);
    ASSERT_TRUE(d.rule.has_value());
    EXPECT_EQ(p.describe(*d.rule).group, "group:web/deny");
    EXPECT_EQ(p.describe(*d.rule).description, "no uploads");
    EXPECT_EQ(p.describe_location(p.describe(*d.rule).where), policy.string() + ":8:9");
    auto own = p.decide_name(app, target("blocked.example"), 80, early);
    ASSERT_TRUE(own.rule.has_value());
    EXPECT_EQ(p.describe(*own.rule).group, "client:app/deny");
    EXPECT_EQ(p.describe(*own.rule).index, 1u);
}

TEST(list_file, deny_list_keys_are_checked)
{
    auto text = lines({"version: 1", "groups:", "  web:", "    rules:", "      - ports: [443]",
                       "        destinations: [a.example]", "    deny:", "      - destinations: [b.example]",
                       "        tls: require",  // 9: no tls on a deny rule
                       "clients:", "  app:", "    sources: [10.0.0.0/8]", "    groups: [web]", "    deny:",
                       "      - ports: [443]",  // 15: a deny rule without destinations
                       "    deny_extra: []"});  // 16: unknown client key
    auto loaded = load_policy_texts({{"p.yaml", text}});
    EXPECT_FALSE(loaded.snapshot);
    EXPECT_EQ(loaded.errors.size(), 3u) << all(loaded.errors);
    expect_at(only(loaded.errors, "unknown key 'tls'"), "p.yaml", 9, 9);
    expect_at(only(loaded.errors, "missing required key 'destinations'"), "p.yaml", 15, 9);
    expect_at(only(loaded.errors, "unknown key 'deny_extra'"), "p.yaml", 16, 5);
}

}  // namespace
}  // namespace egressd::config
