// policy test and policy explain with plain-HTTP requests (method and path), in process: the request is
// normalised as the proxy normalises it, rules naming methods and paths, deny lists of groups and clients and
// list files decide it, and the output (text and JSON) names the request and the rule's methods and paths.

#include "tests/proxy/cli_support.hpp"
#include "tests/proxy/mini_json.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

namespace egressd::proxy {
namespace {

using test::contains;
using test::run;
using test::show;

const std::string policy_text = "version: 1\n"
                                "groups:\n"
                                "  pypi:\n"
                                "    rules:\n"
                                "      - description: the index\n"
                                "        ports: [80]\n"
                                "        destinations: [pypi.org]\n"
                                "        methods: [GET, HEAD]\n"
                                "        paths: [/simple/, /packages/]\n"
                                "      - ports: [443]\n"
                                "        destinations_file: lists/vendor.txt\n"
                                "      - ports: [80]\n"
                                "        destinations: [www.example.org]\n"
                                "    deny:\n"
                                "      - destinations: [pypi.org, www.example.org]\n"
                                "        paths: [/admin]\n"
                                "clients:\n"
                                "  web:\n"
                                "    sources: [10.0.0.0/8]\n"
                                "    groups: [pypi]\n"
                                "    deny:\n"
                                "      - destinations: [pypi.org]\n"
                                "        methods: [DELETE]\n";

// The policy and its list in a temporary directory.
struct written_policy {
    test_support::temp_dir dir;
    std::string path;
    written_policy()
    {
        std::filesystem::create_directories(dir.path() / "lists");
        dir.write("lists/vendor.txt", "# vendors\napi.vendor.example\n");
        path = dir.write("policy.yaml", policy_text).string();
    }
};

test::cli_result policy_test(const written_policy& p, const std::string& cases, std::vector<std::string> extra = {})
{
    auto file = p.dir.write("cases.yaml", cases).string();
    std::vector<std::string> args{"policy", "test", p.path, file};
    args.insert(args.end(), extra.begin(), extra.end());
    return run(args);
}

TEST(policy_test_requests, cases_with_methods_and_paths)
{
    written_policy p;
    std::string cases = "- name: the index\n"
                        "  client: web\n"
                        "  dest: pypi.org:80\n"
                        "  method: GET\n"
                        "  path: /simple/requests/\n"
                        "  expect: allow\n"
                        "- name: a tunnel to port 80 (no method)\n"
                        "  client: web\n"
                        "  dest: pypi.org:80\n"
                        "  expect: deny\n"
                        "  reason: method_not_allowed\n"
                        "- name: CONNECT written out is a tunnel too\n"
                        "  client: web\n"
                        "  dest: pypi.org:80\n"
                        "  method: CONNECT\n"
                        "  expect: deny\n"
                        "  reason: method_not_allowed\n"
                        "- name: upload\n"
                        "  source: 10.1.2.3\n"
                        "  dest: pypi.org:80\n"
                        "  method: POST\n"
                        "  path: /simple/\n"
                        "  expect: deny\n"
                        "  reason: method_not_allowed\n"
                        "- name: the JSON API is not listed\n"
                        "  client: web\n"
                        "  dest: pypi.org:80\n"
                        "  method: GET\n"
                        "  path: /pypi/requests/json\n"
                        "  expect: deny\n"
                        "  reason: path_not_allowed\n"
                        "- name: method without path is /\n"
                        "  client: web\n"
                        "  dest: pypi.org:80\n"
                        "  method: HEAD\n"
                        "  expect: deny\n"
                        "  reason: path_not_allowed\n"
                        "- name: encoded dots are decoded, then removed\n"
                        "  client: web\n"
                        "  dest: pypi.org:80\n"
                        "  method: GET\n"
                        "  path: /simple/%2e%2e/admin/\n"
                        "  expect: deny\n"
                        "  reason: explicit_deny\n"
                        "- name: encoded unreserved letters are decoded\n"
                        "  client: web\n"
                        "  dest: pypi.org:80\n"
                        "  method: GET\n"
                        "  path: /%61dmin\n"
                        "  expect: deny\n"
                        "  reason: explicit_deny\n"
                        "- name: an encoded slash escape is denied by its loose form\n"
                        "  client: web\n"
                        "  dest: pypi.org:80\n"
                        "  method: GET\n"
                        "  path: /simple/%2F..%2Fadmin\n"
                        "  expect: deny\n"
                        "  reason: explicit_deny\n"
                        "- name: a parameter escape is denied by its loose form\n"
                        "  client: web\n"
                        "  dest: pypi.org:80\n"
                        "  method: GET\n"
                        "  path: /simple/..;/admin\n"
                        "  expect: deny\n"
                        "  reason: explicit_deny\n"
                        "- name: the client's own deny list\n"
                        "  client: web\n"
                        "  dest: pypi.org:80\n"
                        "  method: DELETE\n"
                        "  path: /simple/\n"
                        "  expect: deny\n"
                        "  reason: explicit_deny\n"
                        "- name: a list file's destination\n"
                        "  client: web\n"
                        "  dest: api.vendor.example:443\n"
                        "  expect: allow\n"
                        "- name: a rule without methods takes any request\n"
                        "  client: web\n"
                        "  dest: www.example.org:80\n"
                        "  method: PATCH\n"
                        "  path: /x\n"
                        "  expect: allow\n";
    auto r = policy_test(p, cases);
    EXPECT_EQ(r.code, exit_ok) << show(r);
    EXPECT_TRUE(r.out.starts_with("ok: ")) << show(r);
    EXPECT_FALSE(contains(r.out, "FAIL")) << show(r);
}

TEST(policy_test_requests, a_failing_request_case_names_the_request)
{
    written_policy p;
    std::string cases = "- name: expected to pass\n"
                        "  client: web\n"
                        "  dest: pypi.org:80\n"
                        "  method: GET\n"
                        "  path: /pypi/x/json?x=1\n"  // a query is not a path: a case error
                        "  expect: allow\n";
    auto bad = policy_test(p, cases);
    EXPECT_EQ(bad.code, exit_invalid) << show(bad);

    cases = "- name: expected to pass\n"
            "  client: web\n"
            "  dest: pypi.org:80\n"
            "  method: GET\n"
            "  path: /simple/./x/../y\n"
            "  expect: deny\n";
    auto r = policy_test(p, cases);
    EXPECT_EQ(r.code, exit_check_failed) << show(r);
    // The request as decided: normal form.
    EXPECT_TRUE(contains(r.out, "client web -> GET http://pypi.org:80/simple/y at ")) << show(r);
    EXPECT_TRUE(contains(r.out, "got:      allow by pypi#0 \"the index\"")) << show(r);

    auto j = policy_test(p, cases, {"--json"});
    EXPECT_EQ(j.code, exit_check_failed) << show(j);
    std::string error;
    auto doc = test_support::json_reader::parse(j.out, &error);
    ASSERT_TRUE(doc) << error << "\n" << j.out;
    const auto& rows = doc->get("cases")->items;
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].get("method")->text, "GET");
    EXPECT_EQ(rows[0].get("path")->text, "/simple/y");

    // A tunnel case: method CONNECT and path null.
    auto t = policy_test(p, "- client: web\n  dest: pypi.org:80\n  expect: allow\n", {"--json"});
    auto tdoc = test_support::json_reader::parse(t.out, &error);
    ASSERT_TRUE(tdoc) << error << "\n" << t.out;
    const auto& trow = tdoc->get("cases")->items.at(0);
    EXPECT_EQ(trow.get("method")->text, "CONNECT");
    EXPECT_EQ(trow.get("path")->type, test_support::json_value::kind::null);
    EXPECT_EQ(trow.get("reason")->text, "method_not_allowed");
}

TEST(policy_test_requests, request_mistakes_are_reported_with_their_position)
{
    written_policy p;
    std::string cases = "- client: web\n"          // 1
                        "  dest: pypi.org:80\n"    // 2
                        "  path: /simple/\n"       // 3: a path without a method
                        "  expect: deny\n"         // 4
                        "- client: web\n"          // 5
                        "  dest: pypi.org:80\n"    // 6
                        "  method: CONNECT\n"      // 7
                        "  path: /\n"              // 8: a tunnel has no path
                        "  expect: deny\n"         // 9
                        "- client: web\n"          // 10
                        "  dest: pypi.org:80\n"    // 11
                        "  method: GET\n"          // 12
                        "  path: simple/\n"        // 13: not starting with '/'
                        "  expect: deny\n"         // 14
                        "- client: web\n"          // 15
                        "  dest: pypi.org:80\n"    // 16
                        "  method: \"G T\"\n"      // 17: not a method
                        "  expect: deny\n";        // 18
    auto file = p.dir.write("cases.yaml", cases).string();
    auto r = run({"policy", "test", p.path, file});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_TRUE(contains(r.err, file + ":3:9: error: path needs a method other than CONNECT")) << show(r);
    EXPECT_TRUE(contains(r.err, file + ":8:9: error: path needs a method other than CONNECT")) << show(r);
    EXPECT_TRUE(contains(r.err, file + ":13:9: error: expected a path starting with '/'")) << show(r);
    EXPECT_TRUE(contains(r.err, file + ":17:11: error: expected an HTTP method like GET")) << show(r);
}

// The proxy forwards the normal form, so the normal form must mean what was decided. "%%32E" is a stray '%'
// followed by "%32" (the digit 2) and "E": were the stray '%' kept, the normal form would be "%2E", an encoded dot
// that the upstream reads as '.', so "/simple/%%32E%%32E/admin" would reach "/admin" through the /simple/ rule.
// The stray '%' is written %25 instead: the upstream gets "/simple/%252E%252E/admin", a name under /simple/.
TEST(policy_test_requests, a_malformed_percent_cannot_smuggle_an_encoded_dot_segment)
{
    written_policy p;
    std::string cases = "- name: malformed percent before an encoded digit\n"
                        "  client: web\n"
                        "  dest: pypi.org:80\n"
                        "  method: GET\n"
                        "  path: /simple/%%32E%%32E/admin\n"
                        "  expect: allow\n"
                        "- name: the same for a letter\n"
                        "  client: web\n"
                        "  dest: www.example.org:80\n"
                        "  method: GET\n"
                        "  path: /%%361dmin\n"
                        "  expect: allow\n";
    auto r = policy_test(p, cases, {"--json"});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    // What was decided (and would be forwarded): the stray '%' as %25, no escape formed after it.
    EXPECT_TRUE(contains(r.out, "\"path\":\"/simple/%252E%252E/admin\"")) << show(r);
    EXPECT_TRUE(contains(r.out, "\"path\":\"/%2561dmin\"")) << show(r);
}

// A lenient server (Tomcat) drops ";parameters" and merges the slashes left: "/;x/admin" is "/admin" to it. The
// loose form must read it so too, or a deny on /admin misses it.
TEST(policy_test_requests, a_parameters_only_segment_cannot_hide_a_denied_path)
{
    written_policy p;
    auto r = policy_test(p, "- client: web\n"
                            "  dest: www.example.org:80\n"
                            "  method: GET\n"
                            "  path: /;x/admin\n"
                            "  expect: deny\n"
                            "  reason: explicit_deny\n");
    EXPECT_EQ(r.code, exit_ok) << show(r);
}

test::cli_result explain(const written_policy& p, std::vector<std::string> extra)
{
    std::vector<std::string> args{"policy", "explain", p.path, "--client", "web", "--at", "2026-06-01T12:00:00Z"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run(args);
}

TEST(explain_requests, text_names_the_request_and_the_rule_limits)
{
    written_policy p;
    auto allowed = explain(p, {"--dest", "pypi.org:80", "--method", "GET", "--path", "/simple/%72equests/?q=1"});
    EXPECT_EQ(allowed.code, exit_ok) << show(allowed);
    EXPECT_TRUE(contains(allowed.out, "request:     GET /simple/requests/\n")) << show(allowed);
    EXPECT_TRUE(contains(allowed.out, "name phase:  allow by group pypi rule 0 \"the index\" (" + p.path +
                                          ":5:9, methods GET, HEAD, paths /simple/, /packages/)"))
        << show(allowed);

    auto denied = explain(p, {"--dest", "pypi.org:80", "--method", "GET", "--path", "/simple/%2F..%2Fadmin"});
    EXPECT_EQ(denied.code, exit_denied) << show(denied);
    EXPECT_TRUE(contains(denied.out, "request:     GET /simple/%2F..%2Fadmin\n")) << show(denied);
    EXPECT_TRUE(contains(denied.out, "name phase:  deny [explicit_deny] by deny rule 0 of group pypi (" + p.path +
                                         ":15:9, paths /admin)"))
        << show(denied);

    auto own = explain(p, {"--dest", "pypi.org:80", "--method", "DELETE", "--path", "/simple/"});
    EXPECT_EQ(own.code, exit_denied) << show(own);
    EXPECT_TRUE(contains(own.out, "by deny rule 0 of client web (" + p.path + ":22:9, methods DELETE)")) << show(own);

    auto tunnel = explain(p, {"--dest", "pypi.org:80"});
    EXPECT_EQ(tunnel.code, exit_denied) << show(tunnel);
    EXPECT_TRUE(contains(tunnel.out, "request:     CONNECT\n")) << show(tunnel);
    EXPECT_TRUE(contains(tunnel.out, "deny [method_not_allowed], nearest rule: group pypi rule 0")) << show(tunnel);

    auto root = explain(p, {"--dest", "pypi.org:80", "--method", "GET"});
    EXPECT_EQ(root.code, exit_denied) << show(root);
    EXPECT_TRUE(contains(root.out, "request:     GET /\n")) << show(root);
    EXPECT_TRUE(contains(root.out, "deny [path_not_allowed]")) << show(root);
}

TEST(explain_requests, json_names_the_request_and_the_rule_limits)
{
    written_policy p;
    auto r = explain(p, {"--dest", "pypi.org:80", "--method", "HEAD", "--path", "/packages/./a.whl", "--json"});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    std::string error;
    auto doc = test_support::json_reader::parse(r.out, &error);
    ASSERT_TRUE(doc) << error << "\n" << r.out;
    EXPECT_EQ(doc->get("method")->text, "HEAD");
    EXPECT_EQ(doc->get("path")->text, "/packages/a.whl");
    const auto* rule = doc->get("name_phase")->get("rule");
    ASSERT_NE(rule, nullptr) << r.out;
    EXPECT_EQ(rule->get("group")->text, "pypi");
    ASSERT_EQ(rule->get("methods")->items.size(), 2u) << r.out;
    EXPECT_EQ(rule->get("methods")->items[1].text, "HEAD");
    ASSERT_EQ(rule->get("paths")->items.size(), 2u) << r.out;
    EXPECT_EQ(rule->get("paths")->items[0].text, "/simple/");

    auto d = explain(p, {"--dest", "pypi.org:80", "--method", "GET", "--path", "/admin", "--json"});
    EXPECT_EQ(d.code, exit_denied) << show(d);
    auto ddoc = test_support::json_reader::parse(d.out, &error);
    ASSERT_TRUE(ddoc) << error << "\n" << d.out;
    EXPECT_EQ(ddoc->get("name_phase")->get("reason")->text, "explicit_deny");
    EXPECT_EQ(ddoc->get("name_phase")->get("rule")->get("group")->text, "group:pypi/deny");
    EXPECT_EQ(ddoc->get("name_phase")->get("rule")->get("methods"), nullptr) << d.out;

    auto t = explain(p, {"--dest", "api.vendor.example:443", "--json"});
    EXPECT_EQ(t.code, exit_ok) << show(t);
    auto tdoc = test_support::json_reader::parse(t.out, &error);
    ASSERT_TRUE(tdoc) << error << "\n" << t.out;
    EXPECT_EQ(tdoc->get("method")->text, "CONNECT");
    EXPECT_EQ(tdoc->get("path")->type, test_support::json_value::kind::null);
}

TEST(explain_requests, usage_errors)
{
    written_policy p;
    struct usage {
        std::vector<std::string> args;
        std::string message;
    };
    for (const auto& u : std::vector<usage>{
             {{"--dest", "pypi.org:80", "--path", "/simple/"}, "--path needs --method (other than CONNECT)"},
             {{"--dest", "pypi.org:80", "--method", "CONNECT", "--path", "/"}, "--path needs --method (other than CONNECT)"},
             {{"--dest", "pypi.org:80", "--method", "GET", "--path", "simple/"}, "--path 'simple/' does not start with '/'"},
         }) {
        auto r = explain(p, u.args);
        EXPECT_EQ(r.code, exit_usage) << show(r);
        EXPECT_TRUE(contains(r.err, u.message)) << show(r);
    }
}

}  // namespace
}  // namespace egressd::proxy
