// egressd import squid: the squid.conf reader, the model of Squid's decisions, the translation, and the files
// written. The end-to-end checks run the real policy loader and engine (egressd policy test, egressd config
// check, in process) on what the importer wrote; the comparison with a real Squid is tests/e2e/test_import_squid.py.

#include "proxy/tools/import/squid_conf.hpp"
#include "proxy/tools/import/squid_model.hpp"
#include "proxy/tools/import/squid_translate.hpp"
#include "tests/proxy/cli_support.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <regex>
#include <string>
#include <vector>

namespace egressd::proxy {
namespace {

namespace sq = tools::squid;
using test::contains;
using test::read_text;
using test::run;
using test::show;

// The start of most test configurations: Debian's default rules.
const std::string debian_head = "acl SSL_ports port 443\n"
                                "acl Safe_ports port 80 443 1025-65535\n"
                                "http_access deny !Safe_ports\n"
                                "http_access deny CONNECT !SSL_ports\n";

struct imported {
    test::cli_result r;
    std::string dir;
    std::string policy;
    std::string server;
    std::string cases;
    std::string inexact;
    std::string report;

    std::string path(const std::string& name) const { return dir + "/" + name; }
};

imported import_text(const test_support::temp_dir& tmp, const std::string& conf, const std::string& name = "squid.conf")
{
    imported i;
    auto path = tmp.write(name, conf).string();
    i.dir = (tmp.path() / "out").string();
    i.r = run({"import", "squid", path, "--out", i.dir, "--force"});
    i.policy = read_text(i.path("policy.yaml"));
    i.server = read_text(i.path("egressd.yaml"));
    i.cases = read_text(i.path("policy.cases.yaml"));
    i.inexact = read_text(i.path("policy.inexact-cases.yaml"));
    i.report = read_text(i.path("import-report.txt"));
    return i;
}

// The imported policy loads, passes every exact case, and the server configuration passes config check.
void expect_proof(const imported& i)
{
    ASSERT_EQ(i.r.code, exit_ok) << show(i.r);
    auto check = run({"policy", "check", i.path("policy.yaml")});
    EXPECT_EQ(check.code, exit_ok) << show(check) << i.policy;
    auto t = run({"policy", "test", i.path("policy.yaml"), i.path("policy.cases.yaml")});
    EXPECT_EQ(t.code, exit_ok) << show(t) << i.policy;
    EXPECT_TRUE(t.out.starts_with("ok: ")) << show(t);
    auto c = run({"config", "check", i.path("egressd.yaml")});
    EXPECT_EQ(c.code, exit_ok) << show(c) << i.server;
}

std::size_t count_cases(const std::string& text) { return test::count_containing(text, "- name: "); }

sq::request req(const std::string& source, const std::string& host, std::uint16_t port,
                const std::string& method = "CONNECT", const std::string& path = "")
{
    sq::request r;
    r.source = policy::address::parse(source);
    r.host = host;
    r.host_address = policy::address::parse(host);
    r.port = port;
    r.method = method;
    r.path = method == "CONNECT" ? "" : (path.empty() ? "/" : path);
    return r;
}

sq::config parse(const test_support::temp_dir& tmp, const std::string& text)
{
    auto c = sq::read_config(tmp.write("squid.conf", text).string());
    for (const auto& e : c.errors) {
        ADD_FAILURE() << e.format();
    }
    return c;
}

// ---- the reader ----------------------------------------------------------------------------------------

TEST(import_squid_reader, ip_values_ranges_masks_and_host_bits)
{
    std::string error;
    auto v = sq::parse_ip_value("10.0.0.0/255.255.0.0", error);
    ASSERT_TRUE(v) << error;
    EXPECT_EQ(v->at(0).to_string(), "10.0.0.0/16");
    v = sq::parse_ip_value("0.0.0.1-0.255.255.255", error);
    ASSERT_TRUE(v) << error;
    std::vector<std::string> texts;
    for (const auto& c : *v) {
        texts.push_back(c.to_string());
    }
    // 0.0.0.1/32, 0.0.0.2/31, ... 0.128.0.0/9: 24 blocks cover the range exactly.
    EXPECT_EQ(texts.front(), "0.0.0.1/32");
    EXPECT_EQ(texts.back(), "0.128.0.0/9");
    EXPECT_EQ(texts.size(), 24u);
    v = sq::parse_ip_value("192.168.1.7/24", error);  // Squid masks host bits
    ASSERT_TRUE(v) << error;
    EXPECT_EQ(v->at(0).to_string(), "192.168.1.0/24");
    v = sq::parse_ip_value("fc00::/7", error);
    ASSERT_TRUE(v) << error;
    EXPECT_EQ(v->at(0).to_string(), "fc00::/7");
    EXPECT_FALSE(sq::parse_ip_value("10.0.0.0/255.0.255.0", error));
    EXPECT_TRUE(contains(error, "not contiguous")) << error;
    EXPECT_FALSE(sq::parse_ip_value("proxy.example", error));
}

// Squid documents "acl aclname dst [-n] ip-address/mask": the option is read as one, not as a bad address.
TEST(import_squid_reader, dst_takes_the_no_lookup_option)
{
    test_support::temp_dir tmp;
    auto c = parse(tmp, "acl nets dst -n 192.0.2.0/24 2001:db8::/32\nhttp_access deny nets\n");
    ASSERT_TRUE(c.errors.empty());
    ASSERT_EQ(c.acls.count("nets"), 1u);
    EXPECT_EQ(c.acls.at("nets").cidrs.size(), 2u);
}

TEST(import_squid_reader, continuation_comments_appending_acls_and_quoted_files)
{
    test_support::temp_dir tmp;
    tmp.write("sites.txt", "# vendors\n.vendor.example\n\napi.partner.example   # the partner\n");
    auto c = parse(tmp, "# a comment\n"
                        "acl sites dstdomain .first.example \\\n"
                        "    second.example   # trailing comment\n"
                        "acl sites dstdomain \"sites.txt\"\n"
                        "acl Web_Ports port 80 8080-8090\n"
                        "acl users proxy_auth -i Alice\n"
                        "acl CONNECT method CONNECT\n"
                        "http_access allow sites\n");
    const auto& sites = c.acls.at("sites");
    EXPECT_EQ(sites.domains, (std::vector<std::string>{".first.example", "second.example", ".vendor.example",
                                                      "api.partner.example"}));
    ASSERT_EQ(sites.files.size(), 1u);
    EXPECT_EQ(sites.values[3].at.line, 4u);  // the quoted file's own line numbers
    ASSERT_EQ(c.acls.at("Web_Ports").ports.size(), 2u);
    EXPECT_EQ(c.acls.at("Web_Ports").ports[1].first, 8080);
    EXPECT_TRUE(c.acls.at("users").icase);
    EXPECT_EQ(c.http_access.size(), 1u);
    EXPECT_EQ(c.http_access[0].d.at.line, 8u);
}

TEST(import_squid_reader, includes_relative_absolute_and_globs_in_name_order)
{
    test_support::temp_dir tmp;
    std::filesystem::create_directories(tmp.path() / "conf.d");
    tmp.write("conf.d/20-rules.conf", "http_access allow lan\n");
    tmp.write("conf.d/10-acls.conf", "acl lan src 10.0.0.0/8\n");
    tmp.write("abs.conf", "http_access deny all\n");
    auto c = parse(tmp, "include conf.d/*.conf\ninclude " + (tmp.path() / "abs.conf").string() + "\n");
    ASSERT_EQ(c.http_access.size(), 2u);
    EXPECT_TRUE(c.http_access[0].allow);
    EXPECT_TRUE(c.http_access[0].d.at.file.ends_with("conf.d/20-rules.conf")) << c.http_access[0].d.at.file;
    EXPECT_TRUE(c.http_access[1].d.at.file.ends_with("abs.conf"));
    EXPECT_EQ(c.files.size(), 4u);
}

TEST(import_squid_reader, every_error_at_once_with_file_line_column)
{
    test_support::temp_dir tmp;
    tmp.write("inc.conf", "acl p port 99999\n");
    auto path = tmp.write("squid.conf", "include inc.conf\n"
                                        "acl lan src 10.0.0.0/8\n"
                                        "acl bad wibble x\n"
                                        "http_access allow lan !nosuch\n"
                                        "acl m dstdomain \"missing.txt\"\n"
                                        "include gone.conf\n")
                    .string();
    auto r = run({"import", "squid", path, "--out", (tmp.path() / "out").string()});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_TRUE(contains(r.err, "inc.conf:1:12: error: ACL p: '99999' is not a port")) << show(r);
    EXPECT_TRUE(contains(r.err, path + ":3:9: error: unknown ACL type 'wibble'")) << show(r);
    EXPECT_TRUE(contains(r.err, path + ":4:24: error: ACL not found: nosuch")) << show(r);
    EXPECT_TRUE(contains(r.err, path + ":5:17: error: cannot read the ACL file")) << show(r);
    EXPECT_TRUE(contains(r.err, path + ":6:9: error: cannot read included file")) << show(r);
    EXPECT_FALSE(std::filesystem::exists(tmp.path() / "out")) << "nothing is written for a broken squid.conf";
}

TEST(import_squid_reader, an_acl_must_be_defined_before_a_line_names_it)
{
    test_support::temp_dir tmp;
    auto path = tmp.write("squid.conf", "http_access allow lan\nacl lan src 10.0.0.0/8\n").string();
    auto r = run({"import", "squid", path, "--out", (tmp.path() / "out").string()});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_TRUE(contains(r.err, path + ":1:19: error: ACL not found: lan")) << show(r);
}

// ---- Squid's semantics -----------------------------------------------------------------------------------

TEST(import_squid_model, first_match_and_the_and_of_a_line)
{
    test_support::temp_dir tmp;
    auto c = parse(tmp, "acl lan src 10.0.0.0/8\n"
                        "acl sites dstdomain .example.com\n"
                        "acl bad dstdomain bad.example.com\n" +
                            debian_head +
                        "http_access allow lan sites\n"
                        "http_access deny bad\n"
                        "http_access deny all\n");
    // allow lan sites comes first: bad.example.com is allowed for lan (Squid's first match).
    auto e = sq::evaluate(c, req("10.1.1.1", "bad.example.com", 443));
    EXPECT_TRUE(e.allowed);
    EXPECT_EQ(e.deciding, 2u);
    EXPECT_TRUE(sq::evaluate(c, req("10.1.1.1", "example.com", 80, "GET")).allowed);
    EXPECT_FALSE(sq::evaluate(c, req("10.1.1.1", "example.com", 8080, "CONNECT")).allowed);  // !SSL_ports
    EXPECT_FALSE(sq::evaluate(c, req("10.1.1.1", "example.com", 25, "GET")).allowed);       // !Safe_ports
    EXPECT_FALSE(sq::evaluate(c, req("10.1.1.1", "example.org", 443)).allowed);
    EXPECT_FALSE(sq::evaluate(c, req("192.0.2.1", "example.com", 443)).allowed);
}

TEST(import_squid_model, the_implicit_last_rule_is_the_opposite_of_the_last_line)
{
    test_support::temp_dir tmp;
    auto c = parse(tmp, "acl bad dstdomain .bad.example\nhttp_access deny bad\n");
    auto e = sq::evaluate(c, req("192.0.2.1", "good.example", 443));
    EXPECT_TRUE(e.allowed);
    EXPECT_FALSE(e.deciding);
    auto c2 = parse(tmp, "acl good dstdomain .good.example\nhttp_access allow good\n");
    EXPECT_FALSE(sq::evaluate(c2, req("192.0.2.1", "other.example", 443)).allowed);
    auto c3 = parse(tmp, "acl good dstdomain .good.example\n");
    EXPECT_FALSE(sq::evaluate(c3, req("192.0.2.1", "good.example", 443)).allowed) << "no line: deny";
}

TEST(import_squid_model, each_acl_type)
{
    test_support::temp_dir tmp;
    auto c = parse(tmp, "acl s src 10.0.0.0/8 2001:db8::/32\n"
                        "acl d dst 192.0.2.0/24\n"
                        "acl dd dstdomain .example.com api.example.org\n"
                        "acl dr dstdom_regex -i ^mirror[0-9]+\\.example\\.net$\n"
                        "acl ur url_regex ^http://pypi\\.example/simple/\n"
                        "acl up urlpath_regex ^/download/\n"
                        "acl p port 80 8000-8999\n"
                        "acl m method GET HEAD\n"
                        "acl u proxy_auth alice\n"
                        "acl anyone proxy_auth REQUIRED\n"
                        "acl t time MTWHF 08:00-18:00\n"
                        "http_access deny all\n");
    auto m = [&](const std::string& acl, const sq::request& r) { return sq::acl_match(c.acls.at(acl), r); };
    using sq::match;
    EXPECT_EQ(m("s", req("10.9.9.9", "x.example", 443)), match::yes);
    EXPECT_EQ(m("s", req("2001:db8::5", "x.example", 443)), match::yes);
    EXPECT_EQ(m("s", req("11.0.0.1", "x.example", 443)), match::no);
    EXPECT_EQ(m("d", req("10.0.0.1", "192.0.2.77", 443)), match::yes);
    EXPECT_EQ(m("d", req("10.0.0.1", "192.0.3.1", 443)), match::no);
    EXPECT_EQ(m("d", req("10.0.0.1", "a.example", 443)), match::unresolved) << "Squid would resolve the name";
    EXPECT_EQ(m("dd", req("10.0.0.1", "example.com", 443)), match::yes);
    EXPECT_EQ(m("dd", req("10.0.0.1", "a.b.example.com", 443)), match::yes);
    EXPECT_EQ(m("dd", req("10.0.0.1", "evil-example.com", 443)), match::no);
    EXPECT_EQ(m("dd", req("10.0.0.1", "x.api.example.org", 443)), match::no);
    EXPECT_EQ(m("dr", req("10.0.0.1", "mirror12.example.net", 443)), match::yes);
    EXPECT_EQ(m("dr", req("10.0.0.1", "mirrorx.example.net", 443)), match::no);
    EXPECT_EQ(m("ur", req("10.0.0.1", "pypi.example", 80, "GET", "/simple/x/")), match::yes);
    EXPECT_EQ(m("ur", req("10.0.0.1", "pypi.example", 8080, "GET", "/simple/x/")), match::no) << "URL has :8080";
    EXPECT_EQ(m("ur", req("10.0.0.1", "pypi.example", 443)), match::no) << "a CONNECT's URL is host:port";
    EXPECT_EQ(m("up", req("10.0.0.1", "a.example", 8080, "POST", "/download/f")), match::yes);
    EXPECT_EQ(m("p", req("10.0.0.1", "a.example", 8500)), match::yes);
    EXPECT_EQ(m("p", req("10.0.0.1", "a.example", 443)), match::no);
    EXPECT_EQ(m("m", req("10.0.0.1", "a.example", 80, "HEAD")), match::yes);
    EXPECT_EQ(m("m", req("10.0.0.1", "a.example", 443)), match::no);
    auto with = [](sq::request r, const char* user) {
        r.identity = user;
        return r;
    };
    EXPECT_EQ(m("u", req("10.0.0.1", "a.example", 443)), match::auth_required) << "no credentials: 407";
    EXPECT_EQ(m("u", with(req("10.0.0.1", "a.example", 443), "alice")), match::yes);
    EXPECT_EQ(m("u", with(req("10.0.0.1", "a.example", 443), "bob")), match::no);
    EXPECT_EQ(m("anyone", with(req("10.0.0.1", "a.example", 443), "bob")), match::yes);
    EXPECT_EQ(m("t", req("10.0.0.1", "a.example", 443)), match::unknown);
    // The predefined ACLs.
    EXPECT_EQ(m("to_localhost", req("10.0.0.1", "127.0.0.1", 80, "GET")), match::yes);
    EXPECT_EQ(m("localhost", req("::1", "a.example", 443)), match::yes);
    EXPECT_EQ(m("CONNECT", req("10.0.0.1", "a.example", 443)), match::yes);
    EXPECT_EQ(m("manager", req("10.0.0.1", "a.example", 80, "GET", "/")), match::no);
}

TEST(import_squid_model, proxy_auth_without_credentials_ends_the_check_with_407)
{
    test_support::temp_dir tmp;
    auto c = parse(tmp, "acl sites dstdomain .example.com\nacl users proxy_auth REQUIRED\n"
                        "http_access allow sites users\nhttp_access allow all\n");
    auto e = sq::evaluate(c, req("10.0.0.1", "example.com", 443));
    EXPECT_FALSE(e.allowed);
    EXPECT_TRUE(e.auth_required);
    // The line fails on its first ACL before reaching proxy_auth: the next line decides.
    EXPECT_TRUE(sq::evaluate(c, req("10.0.0.1", "example.org", 443)).allowed);
}

// ---- translation and the files written ----------------------------------------------------------------

TEST(import_squid, debian_idioms_carry_over_exactly)
{
    test_support::temp_dir tmp;
    auto i = import_text(tmp, "acl localnet src 10.0.0.0/8\n"
                              "acl allowed dstdomain .debian.org pypi.org\n" +
                                  debian_head +
                              "http_access allow localhost manager\n"
                              "http_access deny manager\n"
                              "http_access deny to_localhost\n"
                              "http_access allow localnet allowed\n"
                              "http_access deny all\n"
                              "http_port 3128\n"
                              "coredump_dir /var/spool/squid\n");
    expect_proof(i);
    EXPECT_EQ(count_cases(i.inexact), 0u) << i.inexact << i.report;
    EXPECT_GT(count_cases(i.cases), 100u);
    // deny CONNECT !SSL_ports subtracted from the allow: tunnels to 443 only, other methods on Safe_ports.
    EXPECT_TRUE(contains(i.policy, "        ports: [443]\n        destinations: [\".debian.org\", \"pypi.org\"]\n"))
        << i.policy;
    EXPECT_TRUE(contains(i.policy, "ports: [80, 443, 1025-65535]")) << i.policy;
    EXPECT_TRUE(contains(i.policy, "# every method but CONNECT")) << i.policy;
    EXPECT_TRUE(contains(i.policy, "# squid.conf:10 http_access allow localnet allowed")) << i.policy;
    EXPECT_TRUE(contains(i.policy, "destinations: [\"127.0.0.0/8\", \"0.0.0.0/32\", \"::/128\", \"::1/128\"]"))
        << i.policy;
    EXPECT_TRUE(contains(i.report, "squid.conf:7: http_access allow localhost manager\n    why: egressd has no cache "
                                   "manager"))
        << i.report;
    EXPECT_TRUE(contains(i.report, "squid.conf:8: http_access deny manager\n")) << i.report;
    EXPECT_TRUE(contains(i.report, "squid.conf:13: coredump_dir /var/spool/squid")) << i.report;
    EXPECT_TRUE(contains(i.server, "  - \"0.0.0.0:3128\"\n")) << i.server;
    EXPECT_TRUE(contains(i.server, "  - \"[::]:3128\"\n")) << i.server;
    EXPECT_TRUE(contains(i.r.out, "egressd policy test " + i.path("policy.yaml"))) << show(i.r);
}

TEST(import_squid, the_cases_prove_the_translation_and_would_catch_a_wrong_one)
{
    test_support::temp_dir tmp;
    auto i = import_text(tmp, "acl lan src 10.0.0.0/8\nacl sites dstdomain .example.com\n" + debian_head +
                                  "http_access allow lan sites\nhttp_access deny all\n");
    expect_proof(i);
    // Break the translation: allow every port. Squid's decisions in the cases catch it.
    std::string broken = i.policy;
    test::replace_once(broken, "        ports: [443]\n", "        ports: [all]\n");
    tmp.write("out/policy.yaml", broken);
    auto t = run({"policy", "test", i.path("policy.yaml"), i.path("policy.cases.yaml")});
    EXPECT_EQ(t.code, exit_check_failed) << show(t);
    EXPECT_TRUE(contains(t.out, "CONNECT example.com:25 -> deny")) << show(t);
}

TEST(import_squid, nested_sources_get_a_client_each_with_the_union_of_their_lines)
{
    test_support::temp_dir tmp;
    auto i = import_text(tmp, "acl staff src 10.20.0.0/16\n"
                              "acl build src 10.20.5.0/24\n"
                              "acl release src 10.20.5.9\n"
                              "acl docs dstdomain docs.example\n"
                              "acl pkgs dstdomain .debian.org\n"
                              "acl code dstdomain github.com\n"
                              "http_access allow staff docs\n"
                              "http_access allow build pkgs\n"
                              "http_access allow release code\n"
                              "http_access deny all\n");
    expect_proof(i);
    EXPECT_TRUE(contains(i.policy, "  staff:\n")) << i.policy;
    EXPECT_TRUE(contains(i.policy, "  build.staff:\n")) << i.policy;
    EXPECT_TRUE(contains(i.policy, "  build.release.staff:\n")) << i.policy;
    EXPECT_TRUE(contains(i.policy, "    sources: [\"10.20.5.9/32\"]\n    groups: [r1-staff-docs, r2-build-pkgs, r3-release-code]"))
        << i.policy;
    // A source in the build farm, and in none: samples of each class.
    EXPECT_TRUE(contains(i.cases, "build.staff: CONNECT docs.example:443 -> allow")) << i.cases;
    EXPECT_TRUE(contains(i.cases, "default: CONNECT docs.example:443 -> deny")) << i.cases;
    EXPECT_EQ(count_cases(i.inexact), 0u) << i.inexact;
}

// egressd's "default" client is the one for sources no src ACL holds; a src ACL of that name gets another.
TEST(import_squid, a_src_acl_named_default_does_not_become_the_default_client)
{
    test_support::temp_dir tmp;
    auto i = import_text(tmp, "acl default src 10.0.0.0/8\nacl s dstdomain .example.com\n"
                              "http_access allow default s\nhttp_access deny all\n");
    expect_proof(i);
    EXPECT_TRUE(contains(i.policy, "  src-default:\n")) << i.policy;
    EXPECT_TRUE(contains(i.cases, "src-default: CONNECT example.com:443 -> allow")) << i.cases;
    EXPECT_TRUE(contains(i.cases, "\"default: CONNECT example.com:443 -> deny")) << i.cases;
}

TEST(import_squid, deny_after_an_overlapping_allow_is_reported_and_its_cases_kept_apart)
{
    test_support::temp_dir tmp;
    auto i = import_text(tmp, "acl lan src 10.0.0.0/8\n"
                              "acl SSL_ports port 443\n"
                              "acl sites dstdomain .example.com\n"
                              "acl bad dstdomain bad.example.com\n"
                              "acl other dstdomain other.example\n"
                              "http_access allow lan sites SSL_ports\n"
                              "http_access deny bad\n"
                              "http_access deny other\n"
                              "http_access allow lan other\n"
                              "http_access deny all\n");
    expect_proof(i);
    EXPECT_TRUE(contains(i.report, "squid.conf:7: http_access deny bad\n    why: deny after allow: squid.conf:6 "))
        << i.report;
    EXPECT_TRUE(contains(i.report, "egressd denies them (client lan)")) << i.report;
    // deny other precedes the only allow it touches: exact, not reported.
    EXPECT_FALSE(contains(i.report, "squid.conf:8:")) << i.report;
    // Squid allows bad.example.com to lan (first match); egressd denies it: an inexact case, pointing at the report.
    auto at = i.inexact.find("lan: CONNECT bad.example.com:443 -> allow");
    ASSERT_NE(at, std::string::npos) << i.inexact;
    std::smatch m;
    std::string before = i.inexact.substr(0, at);
    auto line_ref = before.rfind("# inexact: see import-report.txt line ");
    ASSERT_NE(line_ref, std::string::npos);
    std::size_t n = std::stoul(before.substr(line_ref + 38));
    std::vector<std::string> report_lines;
    std::istringstream in(i.report);
    for (std::string l; std::getline(in, l);) {
        report_lines.push_back(l);
    }
    ASSERT_LE(n, report_lines.size());
    EXPECT_EQ(report_lines[n - 1], "squid.conf:7: http_access deny bad") << "the case names the report's line";
    EXPECT_FALSE(contains(i.cases, "\"lan: CONNECT bad.example.com:443 -> allow")) << "not among the cases that must pass";
    // And those cases do fail against the policy: they are inexact for real.
    auto t = run({"policy", "test", i.path("policy.yaml"), i.path("policy.inexact-cases.yaml")});
    EXPECT_EQ(t.code, exit_check_failed) << show(t);
}

// Overlap is decided by name trees: a deny is reported only when an earlier allow shares a name with it.
TEST(import_squid, deny_after_allow_overlap_follows_the_name_trees)
{
    test_support::temp_dir tmp;
    auto i = import_text(tmp, "acl lan src 10.0.0.0/8\n"
                              "acl web port 443\n"
                              "acl a1 dstdomain .example.com\n"
                              "acl a2 dstdomain api.example.org\n"
                              "acl a3 dstdom_regex \\.example\\.net$\n"
                              "acl d1 dstdomain a.b.example.com\n"
                              "acl d2 dstdomain .example.org\n"
                              "acl d3 dstdomain example.net\n"
                              "acl d4 dstdomain .other.example\n"
                              "http_access allow lan a1 web\n"
                              "http_access allow lan a2 web\n"
                              "http_access allow lan a3 web\n"
                              "http_access deny d1\n"
                              "http_access deny d2\n"
                              "http_access deny d3\n"
                              "http_access deny d4\n"
                              "http_access deny all\n");
    expect_proof(i);
    EXPECT_TRUE(contains(i.report, "squid.conf:13: http_access deny d1\n    why: deny after allow: squid.conf:10"))
        << i.report;
    EXPECT_TRUE(contains(i.report, "squid.conf:14: http_access deny d2\n    why: deny after allow: squid.conf:11"))
        << i.report;
    // *.example.net never matches example.net itself; .other.example shares nothing with any allow.
    EXPECT_FALSE(contains(i.report, "squid.conf:15:")) << i.report;
    EXPECT_FALSE(contains(i.report, "squid.conf:16:")) << i.report;
}

// allow admins admin_sites; deny admin_sites: for the admins every request the deny names was decided by the allow,
// so their client gets no deny rule, and the others do. Exact, nothing to report.
TEST(import_squid, a_deny_wholly_decided_by_an_earlier_line_is_left_out_of_that_client)
{
    test_support::temp_dir tmp;
    auto i = import_text(tmp, "acl lan src 10.0.0.0/8\n"
                              "acl admins src 10.1.0.0/16\n"
                              "acl admin dstdomain console.example .admin.example\n"
                              "acl news dstdomain .news.example\n" +
                                  debian_head +
                              "http_access allow admins admin\n"
                              "http_access deny admin\n"
                              "http_access allow lan news\n"
                              "http_access deny all\n");
    expect_proof(i);
    EXPECT_EQ(count_cases(i.inexact), 0u) << i.inexact << i.report;
    EXPECT_TRUE(contains(i.report, "(nothing: every line was carried over exactly)")) << i.report;
    EXPECT_TRUE(contains(i.cases, "admins.lan: CONNECT console.example:443 -> allow")) << i.cases;
    EXPECT_TRUE(contains(i.cases, "\"lan: CONNECT console.example:443 -> deny")) << i.cases;
    // The deny is the lan client's own, not the global list's.
    EXPECT_TRUE(contains(i.policy, "    deny:\n      # squid.conf:10 http_access deny admin\n")) << i.policy;
    EXPECT_FALSE(contains(i.policy, "\ndeny:\n")) << i.policy;
}

TEST(import_squid, deny_not_a_listed_destination_restricts_the_later_allows)
{
    test_support::temp_dir tmp;
    auto i = import_text(tmp, "acl lan src 10.0.0.0/8\n"
                              "acl allowed dstdomain .example.com vendor.example\n"
                              "acl sub dstdomain api.example.com\n"
                              "http_access deny !allowed\n"
                              "http_access allow lan sub\n"
                              "http_access allow lan\n"
                              "http_access deny all\n");
    expect_proof(i);
    // "allow lan" after "deny !allowed" is exactly the allowed list.
    EXPECT_TRUE(contains(i.policy, "destinations: [\".example.com\", \"vendor.example\"]")) << i.policy;
    EXPECT_EQ(count_cases(i.inexact), 0u) << i.inexact << i.report;
}

TEST(import_squid, the_implicit_allow_cannot_be_written_and_is_reported)
{
    test_support::temp_dir tmp;
    auto i = import_text(tmp, "acl bad dstdomain .paste.example\nhttp_access deny bad\n");
    expect_proof(i);
    EXPECT_TRUE(contains(i.report, "squid.conf:2: http_access deny bad\n")) << i.report;
    EXPECT_TRUE(contains(i.report, "the implicit last rule")) << i.report;
    EXPECT_TRUE(contains(i.inexact, "unlisted.example.org:443 -> allow (the implicit last rule)")) << i.inexact;
    EXPECT_TRUE(contains(i.cases, "paste.example:443 -> deny")) << i.cases;
    EXPECT_TRUE(contains(i.policy, "deny:\n")) << i.policy;
}

TEST(import_squid, allowing_every_name_is_reported_and_left_out)
{
    test_support::temp_dir tmp;
    auto i = import_text(tmp, "acl lan src 10.0.0.0/8\n" + debian_head + "http_access allow lan\nhttp_access deny all\n");
    expect_proof(i);
    EXPECT_TRUE(contains(i.report, "squid.conf:6: http_access allow lan\n    why: allows every destination name on "
                                   "some ports (client lan): egressd has no pattern for every name"))
        << i.report;
    EXPECT_TRUE(contains(i.inexact, "lan: CONNECT unlisted.example.org:443 -> allow")) << i.inexact;
}

TEST(import_squid, regexes_that_are_patterns_translate_and_the_others_are_reported)
{
    test_support::temp_dir tmp;
    auto i = import_text(tmp, "acl lan src 10.0.0.0/8\n"
                              "acl dom dstdom_regex ^(.*\\.)?example\\.com$\n"
                              "acl subs dstdom_regex \\.cdn\\.example$\n"
                              "acl exact dstdom_regex -i ^api\\.example\\.org$\n"
                              "acl idx url_regex ^https?://pypi\\.example/simple/\n"
                              "acl mirrors dstdom_regex ^mirror[0-9]+\\.example\\.net$\n"
                              "acl ads dstdom_regex (^|\\.)ads?\\.\n"
                              "http_access deny ads\n"
                              "http_access allow lan dom\n"
                              "http_access allow lan subs\n"
                              "http_access allow lan exact\n"
                              "http_access allow lan idx\n"
                              "http_access allow lan mirrors\n"
                              "http_access deny all\n");
    expect_proof(i);
    EXPECT_TRUE(contains(i.policy, "destinations: [\".example.com\"]")) << i.policy;
    EXPECT_TRUE(contains(i.policy, "destinations: [\"*.cdn.example\"]")) << i.policy;
    EXPECT_TRUE(contains(i.policy, "destinations: [\"api.example.org\"]")) << i.policy;
    EXPECT_TRUE(contains(i.policy, "        ports: [80]\n        destinations: [\"pypi.example\"]\n        paths: [\"/simple/\"]"))
        << i.policy;
    EXPECT_TRUE(contains(i.report, "squid.conf:13: http_access allow lan mirrors\n    why: the dstdom_regex "
                                   "'^mirror[0-9]+\\.example\\.net$' has no egressd domain pattern equivalent"))
        << i.report;
    EXPECT_TRUE(contains(i.report, "squid.conf:8: http_access deny ads\n")) << i.report;
    EXPECT_TRUE(contains(i.report, "egressd ALLOWS what it denies")) << i.report;
}

TEST(import_squid, proxy_auth_users_become_identity_clients)
{
    test_support::temp_dir tmp;
    auto i = import_text(tmp, "auth_param basic program /usr/lib/squid/basic_ncsa_auth /etc/squid/passwd\n"
                              "auth_param basic realm proxy\n"
                              "acl lan src 10.0.0.0/8\n"
                              "acl kiosk src 10.9.0.0/16\n"
                              "acl users proxy_auth REQUIRED\n"
                              "acl admins proxy_auth alice\n"
                              "acl intranet dstdomain .corp.example\n"
                              "acl admin dstdomain console.example\n"
                              "http_access deny !lan\n"
                              "http_access allow kiosk intranet\n"
                              "http_access allow admins admin\n"
                              "http_access allow users intranet\n"
                              "http_access deny all\n");
    expect_proof(i);
    EXPECT_TRUE(contains(i.policy, "    identities: [\"alice\"]\n")) << i.policy;
    EXPECT_TRUE(contains(i.policy, "    identities: [\"*\"]\n")) << i.policy;
    EXPECT_TRUE(contains(i.server, "proxy_auth:\n  credentials: users.txt\n  required: false\n")) << i.server;
    EXPECT_TRUE(contains(read_text(i.path("users.txt")), "# alice\n"));
    EXPECT_TRUE(contains(i.report, "squid.conf:1: auth_param basic program")) << i.report;
    EXPECT_TRUE(contains(i.report, "squid.conf:2: auth_param basic realm proxy")) << "ignored" << i.report;
    // Without credentials Squid answers 407 on the line asking for them: a refusal egressd makes too.
    EXPECT_TRUE(contains(i.cases, "no credentials: 407 at squid.conf:11")) << i.cases;
    EXPECT_TRUE(contains(i.cases, "  identity: \"alice\"\n")) << i.cases;
    EXPECT_TRUE(contains(i.cases, "  identity: \"someone-else\"\n")) << i.cases;
    EXPECT_EQ(count_cases(i.inexact), 0u) << i.inexact << i.report;
}

TEST(import_squid, quoted_files_become_lists_with_comments_kept)
{
    test_support::temp_dir tmp;
    tmp.write("blocked.txt", "# paste sites\n.pastebin.com\nbad.example   # really bad\nfoo*.example\n");
    tmp.write("nets.txt", "# databases\n10.30.0.0/16\n192.168.7.1-192.168.7.2\n");
    auto i = import_text(tmp, "acl lan src 10.0.0.0/8\n"
                              "acl blocked dstdomain \"blocked.txt\"\n"
                              "acl dbs dst \"nets.txt\"\n"
                              "acl sites dstdomain .example.com\n"
                              "http_access deny blocked\n"
                              "http_access allow lan dbs\n"
                              "http_access allow lan sites\n"
                              "http_access deny all\n");
    expect_proof(i);
    EXPECT_EQ(read_text(i.path("lists/blocked.txt")),
              "# blocked (dstdomain) from blocked.txt"
              "\n# paste sites\n.pastebin.com\nbad.example  # really bad\n# not carried over: foo*.example\n");
    EXPECT_EQ(read_text(i.path("lists/dbs.txt")), "# dbs (dst) from nets.txt"
                                                 "\n# databases\n10.30.0.0/16\n192.168.7.1/32\n192.168.7.2/32\n");
    EXPECT_TRUE(contains(i.policy, "destinations_file: lists/blocked.txt")) << i.policy;
    EXPECT_TRUE(contains(i.policy, "destinations_file: lists/dbs.txt")) << i.policy;
    EXPECT_TRUE(contains(i.report, "blocked.txt:4: acl blocked dstdomain foo*.example\n    why: Squid's dstdomain has no "
                                   "wildcards"))
        << i.report;
    EXPECT_TRUE(contains(i.report, "squid.conf:6: http_access allow lan dbs\n    why: a dst ACL allows by address"))
        << i.report;
    // An address inside the dst list, by IP literal, is allowed by both (the CIDR rule opens the guard).
    EXPECT_TRUE(contains(i.cases, "lan: CONNECT 10.30.0.1:443 -> allow")) << i.cases;
}

TEST(import_squid, parent_proxy_and_listeners)
{
    test_support::temp_dir tmp;
    auto i = import_text(tmp, "acl lan src 10.0.0.0/8\nacl s dstdomain .example.com\n"
                              "http_access allow lan s\nhttp_access deny all\n"
                              "http_port 127.0.0.1:3130\nhttp_port 3129 intercept\n"
                              "cache_peer proxy.corp.example parent 8080 0 no-query default\n"
                              "never_direct allow all\n"
                              "ssl_bump peek all\n");
    expect_proof(i);
    EXPECT_TRUE(contains(i.server, "  - \"127.0.0.1:3130\"\n")) << i.server;
    EXPECT_TRUE(contains(i.server, "upstream_proxy: http://proxy.corp.example:8080\n")) << i.server;
    EXPECT_TRUE(contains(i.report, "squid.conf:6: http_port 3129 intercept\n    why: http_port options (intercept)"))
        << i.report;
    EXPECT_TRUE(contains(i.report, "squid.conf:9: ssl_bump peek all\n    why: egressd has no equivalent of ssl_bump"))
        << i.report;
}

TEST(import_squid, time_acls_are_reported_and_their_cases_kept_apart)
{
    test_support::temp_dir tmp;
    auto i = import_text(tmp, "acl lan src 10.0.0.0/8\nacl office_hours time MTWHF 08:00-18:00\n"
                              "acl social dstdomain .social.example\nacl s dstdomain .example.com\n"
                              "http_access deny social office_hours\n"
                              "http_access allow lan s\nhttp_access deny all\n");
    expect_proof(i);
    EXPECT_TRUE(contains(i.report, "squid.conf:5: http_access deny social office_hours\n    why: egressd has no "
                                   "equivalent of the time ACL office_hours; the deny is applied without it"))
        << i.report;
    EXPECT_TRUE(contains(i.inexact, "social.example:443 -> deny")) << i.inexact;
}

TEST(import_squid, refuses_to_overwrite_without_force_and_usage_errors)
{
    test_support::temp_dir tmp;
    auto conf = tmp.write("squid.conf", "acl s dstdomain .example.com\nhttp_access allow s\n").string();
    auto out = (tmp.path() / "out").string();
    auto first = run({"import", "squid", conf, "--out", out});
    ASSERT_EQ(first.code, exit_ok) << show(first);
    tmp.write("out/policy.yaml", "mine\n");
    auto second = run({"import", "squid", conf, "--out", out});
    EXPECT_EQ(second.code, exit_usage) << show(second);
    EXPECT_TRUE(contains(second.err, "policy.yaml")) << show(second);
    EXPECT_TRUE(contains(second.err, "--force")) << show(second);
    EXPECT_EQ(read_text(out + "/policy.yaml"), "mine\n") << "not overwritten";
    EXPECT_EQ(run({"import", "squid", conf, "--out", out, "--force"}).code, exit_ok);
    EXPECT_NE(read_text(out + "/policy.yaml"), "mine\n");
    EXPECT_EQ(run({"import", "squid"}).code, exit_usage);
    EXPECT_EQ(run({"import", "squid", conf, "--bogus"}).code, exit_usage);
    EXPECT_EQ(run({"import", "squid", conf, "--out"}).code, exit_usage);
    EXPECT_EQ(run({"import", "squid", (tmp.path() / "missing.conf").string(), "--out", out}).code, exit_invalid);
}

TEST(import_squid, a_large_configuration_is_sampled_down_to_the_cap)
{
    test_support::temp_dir tmp;
    std::string conf = "acl lan src 10.0.0.0/8\nacl admins src 10.1.0.0/16\n" + debian_head;
    std::string sites = "acl sites dstdomain";
    for (int n = 0; n < 150; ++n) {
        sites += " .site" + std::to_string(n) + ".example";
    }
    conf += sites + "\nacl m method GET POST PUT\nhttp_access allow lan sites m\nhttp_access allow admins sites\n"
                    "http_access deny all\n";
    auto i = import_text(tmp, conf);
    expect_proof(i);
    EXPECT_EQ(count_cases(i.cases) + count_cases(i.inexact), 2000u);
    // Every class is still sampled.
    EXPECT_TRUE(contains(i.cases, "admins.lan: ")) << "admins";
    EXPECT_TRUE(contains(i.cases, "\"lan: ")) << "lan";
    EXPECT_TRUE(contains(i.cases, "\"default: ")) << "default";
}

// ---- the review's reproducers: each failed (egressd allowed what Squid denies, or worse) before its fix ----

// Requests decided by egressd on the imported policy: `egressd policy test` on cases written here.
test::cli_result egressd_decides(const test_support::temp_dir& tmp, const imported& i, const std::string& cases)
{
    auto path = tmp.write("probe.cases.yaml", cases).string();
    return run({"policy", "test", i.path("policy.yaml"), path});
}

std::string probe(const std::string& dest, const std::string& method, const std::string& path, const std::string& expect,
                  const std::string& identity = "")
{
    std::string c = "- name: " + method + " " + dest + path + "\n  source: 198.51.100.10\n  dest: " + dest + "\n";
    if (!identity.empty()) {
        c += "  identity: " + identity + "\n";
    }
    if (method != "CONNECT") {
        c += "  method: " + method + "\n  path: " + path + "\n";
    }
    return c + "  expect: " + expect + "\n";
}

// egressd accepts any method token: a deny of "every method but CONNECT" listing the methods let BREW through.
TEST(import_squid, a_deny_of_every_method_but_some_denies_every_method_and_says_so)
{
    test_support::temp_dir tmp;
    auto i = import_text(tmp, "acl bad dstdomain .bad.example\nacl good dstdomain .example\n"
                              "http_access deny !CONNECT bad\nhttp_access allow good\nhttp_access deny all\n");
    expect_proof(i);
    auto t = egressd_decides(tmp, i, probe("x.bad.example:80", "BREW", "/", "deny") +
                                         probe("x.bad.example:80", "REPORT", "/", "deny") +
                                         probe("x.bad.example:80", "SEARCH", "/", "deny") +
                                         probe("x.good.example:80", "BREW", "/", "allow"));
    EXPECT_EQ(t.code, exit_ok) << show(t) << i.policy;
    EXPECT_TRUE(contains(i.report, "squid.conf:3: http_access deny !CONNECT bad\n    why: denies every method but "
                                   "CONNECT: an egressd rule lists methods, so this deny is written without methods "
                                   "and also denies CONNECT"))
        << i.report;
    // Squid allows the tunnel, egressd denies it: that sample is kept apart.
    EXPECT_TRUE(contains(i.inexact, "CONNECT bad.example:443 -> allow")) << i.inexact;
}

// Squid's dstdomain has no wildcards (a real Squid answers 403 for foo.example.com); egressd's '*.' would open
// every subdomain.
TEST(import_squid, a_wildcard_in_dstdomain_is_left_out_and_reported)
{
    test_support::temp_dir tmp;
    auto i = import_text(tmp, "acl sites dstdomain *.example.com .ok.example\nhttp_access allow sites\n"
                              "http_access deny all\n");
    expect_proof(i);
    EXPECT_FALSE(contains(i.policy, "*.example.com")) << i.policy;
    auto t = egressd_decides(tmp, i, probe("foo.example.com:443", "CONNECT", "", "deny") +
                                         probe("a.ok.example:443", "CONNECT", "", "allow"));
    EXPECT_EQ(t.code, exit_ok) << show(t) << i.policy;
    EXPECT_TRUE(contains(i.report, "squid.conf:1: acl sites dstdomain *.example.com .ok.example\n    why: Squid's "
                                   "dstdomain has no wildcards"))
        << i.report;
}

// A bare '.' in a path regex matches any character: /a.min matches /admin, so it is no literal prefix.
TEST(import_squid, a_bare_dot_in_a_path_regex_is_not_a_literal_dot)
{
    test_support::temp_dir tmp;
    auto i = import_text(tmp, "acl adm url_regex ^http://www\\.example\\.org/a.min\n"
                              "acl site dstdomain www.example.org\n"
                              "http_access deny adm\nhttp_access allow site\nhttp_access deny all\n");
    expect_proof(i);
    EXPECT_FALSE(contains(i.policy, "/a.min")) << i.policy;
    // Denied by the literal head of the regex's paths: egressd denies more, and says so.
    auto t = egressd_decides(tmp, i, probe("www.example.org:80", "GET", "/admin/", "deny") +
                                         probe("www.example.org:80", "GET", "/a.min", "deny") +
                                         probe("www.example.org:80", "GET", "/other", "allow"));
    EXPECT_EQ(t.code, exit_ok) << show(t) << i.policy;
    EXPECT_TRUE(contains(i.report, "squid.conf:3: http_access deny adm\n    why: the url_regex "
                                   "'^http://www\\.example\\.org/a.min' is not of the form"))
        << i.report;
    EXPECT_TRUE(contains(i.report, "egressd denies more")) << i.report;
}

// An egressd identity with '*' is a pattern: "bob*" would let bobby in.
TEST(import_squid, a_user_name_with_a_star_is_left_out_and_reported)
{
    test_support::temp_dir tmp;
    auto i = import_text(tmp, "acl bob proxy_auth bob*\nacl sites dstdomain .example.com\n"
                              "http_access allow bob sites\nhttp_access deny all\n");
    expect_proof(i);
    EXPECT_FALSE(contains(i.policy, "bob*")) << i.policy;
    auto t = egressd_decides(tmp, i, probe("x.example.com:443", "CONNECT", "", "deny", "bobby"));
    EXPECT_EQ(t.code, exit_ok) << show(t) << i.policy;
    EXPECT_TRUE(contains(i.report, "squid.conf:1: acl bob proxy_auth bob*\n    why: the user name 'bob*' has a '*'"))
        << i.report;
}

// proxy_auth -i on a deny line: Squid denies MALLORY too; egressd cannot compare without case, so every other
// user is denied what the line denies (fail closed).
TEST(import_squid, proxy_auth_case_insensitive_on_a_deny_line_fails_closed)
{
    test_support::temp_dir tmp;
    auto i = import_text(tmp, "acl banned proxy_auth -i mallory\nacl authed proxy_auth REQUIRED\n"
                              "acl good dstdomain .example.com\n"
                              "http_access deny banned\nhttp_access allow authed good\nhttp_access deny all\n");
    expect_proof(i);
    auto t = egressd_decides(tmp, i, probe("x.example.com:443", "CONNECT", "", "deny", "MALLORY") +
                                         probe("x.example.com:443", "CONNECT", "", "deny", "mallory"));
    EXPECT_EQ(t.code, exit_ok) << show(t) << i.policy;
    EXPECT_TRUE(contains(i.report, "squid.conf:4: http_access deny banned\n    why: a proxy_auth -i ACL on a deny "
                                   "line"))
        << i.report;
}

// Access directives egressd has no equivalent of deny what egressd allows: the report says so.
TEST(import_squid, access_directives_without_an_equivalent_say_egressd_allows_more)
{
    test_support::temp_dir tmp;
    auto i = import_text(tmp, "acl sites dstdomain .example.com\nhttp_access allow sites\nhttp_access deny all\n"
                              "http_reply_access deny all\nmiss_access deny all\n");
    expect_proof(i);
    EXPECT_TRUE(contains(i.report, "squid.conf:4: http_reply_access deny all\n    why: egressd has no equivalent of "
                                   "http_reply_access: egressd ALLOWS what this denies"))
        << i.report;
    EXPECT_TRUE(contains(i.report, "squid.conf:5: miss_access deny all\n    why: egressd has no equivalent of "
                                   "miss_access: egressd ALLOWS"))
        << i.report;
}

// A deny on a path alone used to be written as a deny rule without destinations, which egressd refuses.
TEST(import_squid, a_deny_on_a_path_alone_is_written_with_the_allowed_destinations)
{
    test_support::temp_dir tmp;
    auto i = import_text(tmp, "acl adm urlpath_regex ^/admin\nacl site dstdomain .example.com\n"
                              "http_access deny adm\nhttp_access allow site\nhttp_access deny all\n");
    expect_proof(i);
    auto t = egressd_decides(tmp, i, probe("x.example.com:80", "GET", "/admin/x", "deny") +
                                         probe("x.example.com:80", "GET", "/ok", "allow"));
    EXPECT_EQ(t.code, exit_ok) << show(t) << i.policy;
    EXPECT_TRUE(contains(i.report, "squid.conf:3: http_access deny adm\n    why: a deny on paths alone")) << i.report;
}

TEST(import_squid, an_include_loop_is_an_error_not_a_fan_out)
{
    test_support::temp_dir tmp;
    tmp.write("loop2.conf", "include loop2.conf loop2.conf loop2.conf\n");
    auto i = import_text(tmp, "include loop2.conf\nhttp_access deny all\n");
    EXPECT_EQ(i.r.code, exit_invalid) << show(i.r);
    EXPECT_TRUE(contains(i.r.err, "loop2.conf:1:9: error: include loop: ")) << show(i.r);
}

TEST(import_squid, includes_fanning_out_stop_at_a_cap_on_files_read)
{
    test_support::temp_dir tmp;
    // Ten levels of three includes of the next file: 3^10 reads, no loop.
    for (int n = 0; n < 10; ++n) {
        std::string next = "l" + std::to_string(n + 1) + ".conf";
        tmp.write("l" + std::to_string(n) + ".conf", "include " + next + " " + next + " " + next + "\n");
    }
    tmp.write("l10.conf", "acl x src 10.0.0.0/8\n");
    auto i = import_text(tmp, "include l0.conf\nhttp_access deny all\n");
    EXPECT_EQ(i.r.code, exit_invalid) << show(i.r);
    EXPECT_TRUE(contains(i.r.err, "error: more than 10000 files read")) << show(i.r);
}

// Thirty "deny mN !sites" lines used to double the allow's parts thirty times (bad_alloc).
TEST(import_squid, many_deny_lines_before_an_allow_stay_small)
{
    test_support::temp_dir tmp;
    std::string conf = "acl sites dstdomain .example.com\n";
    for (int n = 1; n <= 30; ++n) {
        conf += "acl m" + std::to_string(n) + " method M" + std::to_string(n) + "\n";
    }
    for (int n = 1; n <= 30; ++n) {
        conf += "http_access deny m" + std::to_string(n) + " !sites\n";
    }
    auto i = import_text(tmp, conf + "http_access allow sites\nhttp_access deny all\n");
    expect_proof(i);
}

// Deny lines that do cut an allow apart (each "deny mN pN" splits every part in two: other ports, other
// methods), past the bound: a clear error naming the allow line.
TEST(import_squid, an_allow_cut_into_too_many_parts_is_an_error_naming_the_line)
{
    test_support::temp_dir tmp;
    std::string conf = "acl sites dstdomain .example.com\n";
    for (int n = 1; n <= 13; ++n) {
        auto s = std::to_string(n);
        conf += "acl p" + s + " port " + std::to_string(1000 + n) + "\nacl m" + s + " method M" + s + "\n";
    }
    for (int n = 1; n <= 13; ++n) {
        auto s = std::to_string(n);
        conf += "http_access deny m" + s + " p" + s + "\n";
    }
    auto i = import_text(tmp, conf + "http_access allow sites\nhttp_access deny all\n");
    EXPECT_EQ(i.r.code, exit_invalid) << show(i.r);
    EXPECT_TRUE(contains(i.r.err, "squid.conf:41:1: error: the deny lines before 'http_access allow sites' cut what it "
                                  "allows into more than 512 parts"))
        << show(i.r);
}

// Several refused values of one acl line: the report shows the line, each why names its value.
TEST(import_squid, a_report_entry_for_an_acl_line_shows_the_line)
{
    test_support::temp_dir tmp;
    auto i = import_text(tmp, "acl bad dstdomain .bücher.de foo*.example .ok.example\nhttp_access deny bad\n"
                              "acl sites dstdomain .example.com\nhttp_access allow sites\nhttp_access deny all\n");
    expect_proof(i);
    EXPECT_TRUE(contains(i.report, "squid.conf:1: acl bad dstdomain .bücher.de foo*.example .ok.example\n"
                                   "    why: egressd refuses the pattern '.bücher.de'"))
        << i.report;
    EXPECT_TRUE(contains(i.report, "'foo*.example' matches only a host spelled with '*'")) << i.report;
}

// The inline configurations above are valid Squid, checked by Squid itself where it is installed.
TEST(import_squid, inline_configurations_parse_in_squid)
{
    const char* squid = "/usr/sbin/squid";
    if (!std::filesystem::exists(squid)) {
        GTEST_SKIP() << "no Squid at " << squid;
    }
    test_support::temp_dir tmp;
    tmp.write("blocked.txt", ".pastebin.com\n");
    auto path = tmp.write("squid.conf", "auth_param basic program /usr/lib/squid/basic_ncsa_auth /etc/squid/passwd\n"
                                        "acl lan src 10.0.0.0/8 0.0.0.1-0.255.255.255\n"
                                        "acl kiosk src 10.9.0.0/255.255.0.0\n"
                                        "acl users proxy_auth REQUIRED\n"
                                        "acl admins proxy_auth alice\n"
                                        "acl dom dstdom_regex ^(.*\\.)?example\\.com$\n"
                                        "acl idx url_regex ^https?://pypi\\.example/simple/\n"
                                        "acl office_hours time MTWHF 08:00-18:00\n"
                                        "acl blocked dstdomain \"" + (tmp.path() / "blocked.txt").string() + "\"\n" +
                                        debian_head +
                                        "http_access allow localhost manager\nhttp_access deny manager\n"
                                        "http_access deny to_localhost\nhttp_access deny blocked office_hours\n"
                                        "http_access allow kiosk dom\nhttp_access allow lan idx\n"
                                        "http_access deny all\n")
                    .string();
    std::string command = std::string(squid) + " -k parse -f " + path + " > " + (tmp.path() / "parse.log").string() +
                          " 2>&1";
    EXPECT_EQ(std::system(command.c_str()), 0) << read_text((tmp.path() / "parse.log").string());
}

}  // namespace
}  // namespace egressd::proxy
