// `egressd config check` and the start-up half of `egressd run`, in process: run_cli with string streams, on
// the shipped example configuration and on configurations written to a temporary directory. No test here
// serves traffic: `run` is only driven into start-up failures (the end-to-end tests start a real proxy).

#include "tests/proxy/cli_support.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <initializer_list>
#include <ostream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace egressd::proxy {
namespace {

using namespace std::chrono_literals;
using test::contains;
using test::run;
using test::show;
using test_support::temp_dir;

// Joins lines with '\n' (and ends with one): line N of the document is the Nth string.
std::string lines(std::initializer_list<std::string_view> text)
{
    std::string out;
    for (auto l : text) {
        out += l;
        out += '\n';
    }
    return out;
}

const std::string example_config = std::string(EGRESSD_SOURCE_DIR) + "/config/examples/egressd.yaml";

// `run` serves until SIGTERM if start-up unexpectedly succeeds; fail the suite then rather than hang it. A
// deadlock guard with a generous bound, not a timing assertion.
test::cli_result run_bounded(const std::vector<std::string>& args)
{
    auto result = std::async(std::launch::async, [args] { return run(args); });
    if (result.wait_for(120s) != std::future_status::ready) {
        std::fprintf(stderr, "FATAL: egressd %s did not return: it must fail at start-up here, not serve\n",
                     args.empty() ? "" : args[0].c_str());
        std::fflush(stderr);
        std::_Exit(1);
    }
    return result.get();
}

// A server configuration in dir, with the policy next to it (the example policy unless given).
struct config_files {
    temp_dir dir;
    std::string config_path;
    std::string policy_path;

    explicit config_files(const std::string& config_text,
                          const std::string& policy_text = test::read_text(test::example_path))
    {
        config_path = dir.write("egressd.yaml", config_text).string();
        policy_path = dir.write("policy.yaml", policy_text).string();
    }
};

// No output on stdout from the event log, one worker (start-up fails before any serves), and the listeners given.
std::string run_config(const std::string& listeners, const std::string& logging_extra = "")
{
    return "version: 1\n"
           "policy: policy.yaml\n"
           "listeners: " + listeners + "\n"
           "workers: 1\n"
           "logging:\n"
           "  stdout: false\n" + logging_extra;
}

// --- config check --------------------------------------------------------------------------------------------

TEST(cli_config_check, example_is_valid)
{
    auto r = run({"config", "check", example_config});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    // Listeners and the policy, resolved next to the configuration, with its size (the counts are left to the
    // policy tests, so that editing the example policy does not break this one).
    EXPECT_TRUE(r.out.starts_with(example_config + ": valid (2 listener(s), policy " + std::string(EGRESSD_SOURCE_DIR) +
                                  "/config/examples/policy.yaml: "))
        << show(r);
    EXPECT_TRUE(contains(r.out, " clients, ")) << show(r);
    EXPECT_TRUE(contains(r.out, " rules, 0 warning(s))\n")) << show(r);
    EXPECT_EQ(test::count_containing(r.out, ""), 1u) << show(r);
    EXPECT_TRUE(r.err.empty()) << show(r);
}

TEST(cli_config_check, copy_in_another_directory_uses_the_policy_next_to_it)
{
    config_files files(test::read_text(example_config));
    for (const char* name : {"approvers.passwd", "requesters.passwd"}) {
        files.dir.write(name, test::read_text(std::string(EGRESSD_SOURCE_DIR "/config/examples/") + name));
    }
    auto r = run({"config", "check", files.config_path});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    EXPECT_TRUE(contains(r.out, "policy " + files.policy_path + ":")) << show(r);
}

TEST(cli_config_check, broken_config_lists_every_error_with_its_position)
{
    config_files files(lines({
        "version: 2",  // 1:10
        "policy: policy.yaml",
        "listeners: [127.0.0.1, '[::1]:3128']",  // 3:13
        "timeouts:",
        "  header: 10",  // 5:11
        "colour: true",  // 6:1
    }));
    auto r = run({"config", "check", files.config_path});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_EQ(r.out, files.config_path + ": invalid\n") << show(r);
    const auto& p = files.config_path;
    EXPECT_TRUE(contains(r.err, p + ":1:10: error: unsupported configuration version 2")) << show(r);
    EXPECT_TRUE(contains(r.err, p + ":3:13: error: invalid listener '127.0.0.1'")) << show(r);
    EXPECT_TRUE(contains(r.err, p + ":5:11: error: invalid duration '10' for header")) << show(r);
    EXPECT_TRUE(contains(r.err, p + ":6:1: error: unknown key 'colour' in the configuration")) << show(r);
    EXPECT_EQ(test::count_containing(r.err, ": error: "), 4u) << show(r);
    // The policy is not read while the configuration is wrong: its path might be one of the mistakes.
    EXPECT_FALSE(contains(r.err, files.policy_path)) << show(r);
}

TEST(cli_config_check, broken_policy_prints_the_policy_errors)
{
    auto broken = test::break_example();
    config_files files(lines({"version: 1", "policy: policy.yaml"}), broken.text);
    auto r = run({"config", "check", files.config_path});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_EQ(r.out, files.config_path + ": invalid\n") << show(r);
    for (const auto& position : broken.positions) {
        EXPECT_TRUE(contains(r.err, files.policy_path + ":" + position + ": error: ")) << position << "\n" << show(r);
    }
    EXPECT_EQ(test::count_containing(r.err, ": error: "), broken.positions.size()) << show(r);
}

TEST(cli_config_check, missing_files)
{
    temp_dir dir;
    auto absent = (dir.path() / "absent.yaml").string();
    auto r = run({"config", "check", absent});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_TRUE(contains(r.err, absent + ": error: cannot open the configuration file")) << show(r);

    // The configuration is fine but names a policy that is not there.
    config_files files(lines({"version: 1", "policy: elsewhere/policy.yaml"}));
    r = run({"config", "check", files.config_path});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_TRUE(contains(r.err, "elsewhere/policy.yaml")) << show(r);
    EXPECT_TRUE(contains(r.err, ": error: ")) << show(r);
}

// --- config check: TLS listeners ------------------------------------------------------------------------------

// A development PKI made by certs/egressd-certs (the openssl CLI) in dir/pki: ca.pem, crl.pem (no entries) and
// proxy.pem/proxy.key, a server certificate from that CA. The TLS files are what the check reads.
bool make_dev_pki(const temp_dir& dir)
{
    const std::string pki = (dir.path() / "pki").string();
    const std::string log = (dir.path() / "egressd-certs.log").string();
    const std::string script = "bash '" + std::string(EGRESSD_SOURCE_DIR) + "/certs/egressd-certs' ";
    for (const std::string& args : {"ca '" + pki + "'", "server '" + pki + "' proxy"}) {
        if (std::system((script + args + " >>'" + log + "' 2>&1").c_str()) != 0) {
            ADD_FAILURE() << "egressd-certs " << args << " failed:\n" << test::read_text(log);
            return false;
        }
    }
    return true;
}

// A configuration whose second listener is TLS with the given lines:
//   1 version: 1
//   2 policy: policy.yaml
//   3 listeners:
//   4   - 127.0.0.1:3128
//   5   - address: 127.0.0.1:3443
//   6     tls:
//   7..   <tls_lines>          written with 6 spaces, the values of certificate, key, client_ca and crl start at
//                              columns 20, 12, 18 and 12: where an error in the file each names is reported
std::string tls_config(std::initializer_list<std::string_view> tls_lines)
{
    return lines({"version: 1", "policy: policy.yaml", "listeners:", "  - 127.0.0.1:3128",
                  "  - address: 127.0.0.1:3443", "    tls:"}) +
           lines(tls_lines);
}

TEST(cli_config_check_tls, dev_pki_files_are_valid)
{
    // Relative paths start from the configuration's directory, whatever the working directory is.
    config_files files(tls_config({"      certificate: pki/proxy.pem", "      key: pki/proxy.key",
                                   "      client_ca: pki/ca.pem", "      crl: pki/crl.pem",
                                   "      client_certificate: optional"}));
    ASSERT_TRUE(make_dev_pki(files.dir));
    auto r = run({"config", "check", files.config_path});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    EXPECT_TRUE(r.out.starts_with(files.config_path + ": valid (2 listener(s), policy " + files.policy_path + ": "))
        << show(r);
    EXPECT_TRUE(r.err.empty()) << show(r);
}

TEST(cli_config_check_tls, mtls_example_is_valid_with_the_pki_its_comments_make)
{
    // config/examples/egressd-mtls.yaml and the policy next to it, with the CA, CRL and server files its comments
    // make with egressd-certs (the client certificate is not read by the check).
    const std::string examples = std::string(EGRESSD_SOURCE_DIR) + "/config/examples/";
    config_files files(test::read_text(examples + "egressd-mtls.yaml"), test::read_text(examples + "policy.yaml"));
    ASSERT_TRUE(make_dev_pki(files.dir));
    auto r = run({"config", "check", files.config_path});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    EXPECT_TRUE(r.out.starts_with(files.config_path + ": valid (2 listener(s), policy " + files.policy_path + ": "))
        << show(r);
    EXPECT_TRUE(r.err.empty()) << show(r);
}

TEST(cli_config_check_tls, file_errors_are_reported_at_the_setting_that_names_the_file)
{
    config_files files(tls_config({"      certificate: pki/absent.pem",  // 7:20
                                   "      key: pki/proxy.key",
                                   "      client_ca: pki/absent-ca.pem"}));  // 9:18
    ASSERT_TRUE(make_dev_pki(files.dir));
    const auto pki = files.dir.path() / "pki";
    auto r = run({"config", "check", files.config_path});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_EQ(r.out, files.config_path + ": invalid\n") << show(r);
    // Both files in one run, each named, each at the value that names it.
    EXPECT_EQ(r.err, files.config_path + ":7:20: error: " + (pki / "absent.pem").string() +
                         ": cannot read the certificate: No such file or directory\n" + files.config_path +
                         ":9:18: error: " + (pki / "absent-ca.pem").string() +
                         ": cannot read the client CA file: No such file or directory\n")
        << show(r);
}

TEST(cli_config_check_tls, each_listener_reports_its_own_files)
{
    config_files files(lines({
        "version: 1",
        "policy: policy.yaml",
        "listeners:",
        "  - address: 127.0.0.1:3443",
        "    tls:",
        "      certificate: pki/proxy.pem",
        "      key: pki/absent.key",  // 7:12
        "  - address: 127.0.0.1:3444",
        "    tls: {certificate: pki/proxy.pem, key: pki/proxy.key}",  // valid
        "  - address: 127.0.0.1:3445",
        "    tls:",
        "      certificate: pki/proxy.pem",
        "      key: pki/proxy.key",
        "      client_ca: pki/ca.pem",
        "      crl: pki/not-a-crl.pem",  // 15:12
    }));
    ASSERT_TRUE(make_dev_pki(files.dir));
    files.dir.write("pki/not-a-crl.pem", "not a CRL\n");
    const auto pki = files.dir.path() / "pki";
    auto r = run({"config", "check", files.config_path});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_EQ(r.out, files.config_path + ": invalid\n") << show(r);
    EXPECT_EQ(r.err, files.config_path + ":7:12: error: " + (pki / "absent.key").string() +
                         ": cannot read the private key: No such file or directory\n" + files.config_path +
                         ":15:12: error: " + (pki / "not-a-crl.pem").string() +
                         ": no CRL in the file: expected PEM blocks \"-----BEGIN X509 CRL-----\"\n")
        << show(r);
}

// Ends an expected message whose last words are OpenSSL's reason: they differ between OpenSSL versions, so only
// their presence is checked; everything before them is exact.
const std::string any_reason = "<OpenSSL's reason>";

// One file wrong: exactly one line, "CONFIG:LINE:COLUMN: error: FILE: MESSAGE".
struct tls_file_case {
    std::string name;
    std::vector<std::string> tls_lines;  // from line 7, each written with 6 spaces
    std::string file;                    // in pki/; written with `text` unless that is empty
    std::string text;
    std::uint32_t line;  // of the setting that names the file
    std::uint32_t column;
    std::string message;  // after "FILE: "
};

void PrintTo(const tls_file_case& c, std::ostream* os) { *os << c.name; }

class cli_config_check_tls_file : public ::testing::TestWithParam<tls_file_case> {};

TEST_P(cli_config_check_tls_file, is_one_error_at_the_setting_naming_it)
{
    const auto& c = GetParam();
    std::string tls;
    for (const auto& l : c.tls_lines) {
        tls += "      " + l + "\n";
    }
    config_files files(tls_config({}) + tls);
    ASSERT_TRUE(make_dev_pki(files.dir));
    if (!c.text.empty()) {
        files.dir.write("pki/" + c.file, c.text);
    }
    auto r = run({"config", "check", files.config_path});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_EQ(r.out, files.config_path + ": invalid\n") << show(r);
    // "<proxy.pem>" in a message stands for that file's full path.
    std::string message = c.message;
    if (auto at = message.find("<proxy.pem>"); at != std::string::npos) {
        message.replace(at, std::string_view("<proxy.pem>").size(), (files.dir.path() / "pki/proxy.pem").string());
    }
    std::string want = files.config_path + ":" + std::to_string(c.line) + ":" + std::to_string(c.column) +
                       ": error: " + (files.dir.path() / "pki" / c.file).string() + ": " + message + "\n";
    if (want.ends_with(any_reason + "\n")) {
        want.resize(want.size() - any_reason.size() - 1);
        EXPECT_TRUE(r.err.starts_with(want)) << show(r);
        EXPECT_GT(r.err.size(), want.size() + 1) << "no reason after the message\n" << show(r);
    } else {
        EXPECT_EQ(r.err, want) << show(r);
    }
    EXPECT_EQ(test::count_containing(r.err, ""), 1u) << show(r);
}

INSTANTIATE_TEST_SUITE_P(
    files, cli_config_check_tls_file,
    ::testing::Values(
        tls_file_case{"certificate_not_pem",
                      {"certificate: pki/garbage.pem", "key: pki/proxy.key"},
                      "garbage.pem",
                      "not a certificate\n",
                      7,
                      20,
                      "not a PEM certificate chain: " + any_reason},
        tls_file_case{"key_missing",
                      {"certificate: pki/proxy.pem", "key: pki/absent.key"},
                      "absent.key",
                      "",
                      8,
                      12,
                      "cannot read the private key: No such file or directory"},
        tls_file_case{"key_not_pem",
                      {"certificate: pki/proxy.pem", "key: pki/garbage.key"},
                      "garbage.key",
                      "not a key\n",
                      8,
                      12,
                      "not a PEM private key: " + any_reason},
        // The key of another certificate from the same script: a real key, not this certificate's.
        tls_file_case{"key_of_another_certificate",
                      {"certificate: pki/proxy.pem", "key: pki/ca.key"},
                      "ca.key",
                      "",
                      8,
                      12,
                      "the private key does not match the certificate in <proxy.pem>"},
        tls_file_case{"client_ca_not_pem",
                      {"certificate: pki/proxy.pem", "key: pki/proxy.key", "client_ca: pki/garbage-ca.pem"},
                      "garbage-ca.pem",
                      "not a CA\n",
                      9,
                      18,
                      "not a PEM CA certificate file: " + any_reason},
        tls_file_case{"crl_missing",
                      {"certificate: pki/proxy.pem", "key: pki/proxy.key", "client_ca: pki/ca.pem",
                       "crl: pki/absent-crl.pem"},
                      "absent-crl.pem",
                      "",
                      10,
                      12,
                      "cannot read the CRL file: No such file or directory"},
        tls_file_case{"crl_holds_no_crl",
                      {"certificate: pki/proxy.pem", "key: pki/proxy.key", "client_ca: pki/ca.pem",
                       "crl: pki/empty-crl.pem"},
                      "empty-crl.pem",
                      "\n",
                      10,
                      12,
                      "no CRL in the file: expected PEM blocks \"-----BEGIN X509 CRL-----\""}),
    [](const ::testing::TestParamInfo<tls_file_case>& param) { return param.param.name; });

// One file may rightly be named twice: a certificate and its key in one PEM file, CA certificates and their CRLs
// in another. Both load; and an error in such a file is about one setting, which must be the one reported.
TEST(cli_config_check_tls, one_file_named_by_two_settings_is_valid)
{
    config_files files(tls_config({"      certificate: pki/both.pem", "      key: pki/both.pem",
                                   "      client_ca: pki/ca-and-crl.pem", "      crl: pki/ca-and-crl.pem"}));
    ASSERT_TRUE(make_dev_pki(files.dir));
    const auto pki = files.dir.path() / "pki";
    files.dir.write("pki/both.pem", test::read_text((pki / "proxy.pem").string()) +
                                        test::read_text((pki / "proxy.key").string()));
    files.dir.write("pki/ca-and-crl.pem", test::read_text((pki / "ca.pem").string()) +
                                              test::read_text((pki / "crl.pem").string()));
    auto r = run({"config", "check", files.config_path});
    EXPECT_EQ(r.code, exit_ok) << show(r);
    EXPECT_TRUE(r.err.empty()) << show(r);
}

TEST(cli_config_check_tls, key_missing_from_a_combined_file_is_reported_at_key)
{
    // pki/both.pem holds the certificate only: the error is the key's, at "key:" (8:12), not "certificate:".
    config_files files(tls_config({"      certificate: pki/both.pem", "      key: pki/both.pem"}));
    ASSERT_TRUE(make_dev_pki(files.dir));
    const auto pki = files.dir.path() / "pki";
    files.dir.write("pki/both.pem", test::read_text((pki / "proxy.pem").string()));
    auto r = run({"config", "check", files.config_path});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_TRUE(r.err.starts_with(files.config_path + ":8:12: error: " + (pki / "both.pem").string() +
                                  ": not a PEM private key: "))
        << show(r);
    EXPECT_EQ(test::count_containing(r.err, ""), 1u) << show(r);
}

TEST(cli_config_check_tls, ca_file_given_as_the_crl_is_reported_at_crl)
{
    // The CA file named as the CRL by mistake: the error is the CRL's, at "crl:" (10:12), not "client_ca:".
    config_files files(tls_config({"      certificate: pki/proxy.pem", "      key: pki/proxy.key",
                                   "      client_ca: pki/ca.pem", "      crl: pki/ca.pem"}));
    ASSERT_TRUE(make_dev_pki(files.dir));
    const auto pki = files.dir.path() / "pki";
    auto r = run({"config", "check", files.config_path});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_EQ(r.err, files.config_path + ":10:12: error: " + (pki / "ca.pem").string() +
                         ": no CRL in the file: expected PEM blocks \"-----BEGIN X509 CRL-----\"\n")
        << show(r);
}

TEST(cli_config_check_tls, configuration_errors_come_first_and_no_file_is_read)
{
    // crl without client_ca is a configuration error (9:12); the certificate named is not there, and is not
    // reported: the files are only read from a valid configuration.
    config_files files(tls_config({"      certificate: pki/absent.pem", "      key: pki/absent.key",
                                   "      crl: pki/crl.pem"}));
    auto r = run({"config", "check", files.config_path});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_EQ(r.out, files.config_path + ": invalid\n") << show(r);
    EXPECT_EQ(r.err, files.config_path +
                         ":9:12: error: needs client_ca: client certificates are only asked for when client_ca is set\n")
        << show(r);
}

// --- usage errors ---------------------------------------------------------------------------------------------

struct usage_case {
    std::string name;
    std::vector<std::string> args;
    std::string fragment;
};

void PrintTo(const usage_case& c, std::ostream* os) { *os << c.name; }

std::string usage_case_name(const ::testing::TestParamInfo<usage_case>& param) { return param.param.name; }

class cli_config_usage : public ::testing::TestWithParam<usage_case> {};

TEST_P(cli_config_usage, exits_2_without_reading_anything)
{
    const auto& c = GetParam();
    auto r = run(c.args);
    EXPECT_EQ(r.code, exit_usage) << show(r);
    EXPECT_TRUE(r.out.empty()) << show(r);
    EXPECT_TRUE(contains(r.err, c.fragment)) << show(r);
    EXPECT_TRUE(contains(r.err, "Run 'egressd --help' for usage.")) << show(r);
}

const std::string check_usage = "usage: egressd config check PATH";
const std::string run_usage = "usage: egressd run --config PATH";

INSTANTIATE_TEST_SUITE_P(
    commands, cli_config_usage,
    ::testing::Values(usage_case{"config_alone", {"config"}, check_usage},
                      usage_case{"check_without_path", {"config", "check"}, check_usage},
                      usage_case{"check_two_paths", {"config", "check", "a.yaml", "b.yaml"}, check_usage},
                      usage_case{"unknown_config_command", {"config", "verify", "a.yaml"}, check_usage},
                      usage_case{"run_alone", {"run"}, run_usage},
                      usage_case{"run_config_without_path", {"run", "--config"}, run_usage},
                      usage_case{"run_misspelt_option", {"run", "--conf", "x.yaml"}, run_usage},
                      usage_case{"run_path_without_option", {"run", "x.yaml"}, run_usage},
                      usage_case{"run_extra_argument", {"run", "--config", "x.yaml", "--workers"}, run_usage}),
    usage_case_name);

// --- run: start-up failures ---------------------------------------------------------------------------------

TEST(cli_run, invalid_config_exits_1_before_starting)
{
    config_files files(lines({"version: 1", "policy: policy.yaml", "listeners: [localhost:3128]"}));
    auto r = run_bounded({"run", "--config", files.config_path});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_TRUE(contains(r.err, files.config_path + ":3:13: error: invalid listener 'localhost:3128'")) << show(r);
    EXPECT_FALSE(contains(r.err, "cannot start")) << show(r);
}

TEST(cli_run, invalid_policy_exits_1_before_starting)
{
    auto broken = test::break_example();
    config_files files(run_config("[127.0.0.1:0]"), broken.text);
    auto r = run_bounded({"run", "--config", files.config_path});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    for (const auto& position : broken.positions) {
        EXPECT_TRUE(contains(r.err, files.policy_path + ":" + position + ": error: ")) << position << "\n" << show(r);
    }
    EXPECT_EQ(test::count_containing(r.err, ": error: "), broken.positions.size()) << show(r);
    EXPECT_FALSE(contains(r.err, "cannot start")) << show(r);
}

TEST(cli_run, tls_files_that_do_not_load_exit_1_before_starting)
{
    // 192.0.2.1 is on no interface: were the files not checked first, start-up would fail at the bind instead.
    config_files files(run_config("[{address: '192.0.2.1:1', tls: {certificate: absent.pem, key: absent.key}}]"));
    const auto dir = std::filesystem::path(files.config_path).parent_path();
    auto r = run_bounded({"run", "--config", files.config_path});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_TRUE(contains(r.err, ": error: " + (dir / "absent.pem").string() +
                                    ": cannot read the certificate: No such file or directory\n"))
        << show(r);
    EXPECT_TRUE(contains(r.err, ": error: " + (dir / "absent.key").string() +
                                    ": cannot read the private key: No such file or directory\n"))
        << show(r);
    EXPECT_EQ(test::count_containing(r.err, ": error: "), 2u) << show(r);
    EXPECT_FALSE(contains(r.err, "cannot start")) << show(r);
    EXPECT_FALSE(contains(r.err, "cannot bind")) << show(r);
}

TEST(cli_run, listener_on_an_address_not_here_cannot_start)
{
    // With ip_nonlocal_bind the kernel would let the bind succeed and the proxy would serve: not this test.
    if (test::read_text("/proc/sys/net/ipv4/ip_nonlocal_bind").starts_with("1")) {
        GTEST_SKIP() << "net.ipv4.ip_nonlocal_bind is on: binding 192.0.2.1 would succeed";
    }
    // 192.0.2.1 (TEST-NET-1) is on no interface here: bind fails with EADDRNOTAVAIL, and no packet is sent.
    config_files files(run_config("[192.0.2.1:1]"));
    auto r = run_bounded({"run", "--config", files.config_path});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_TRUE(contains(r.err, "egressd: cannot start: ")) << show(r);
    EXPECT_TRUE(contains(r.err, "cannot bind 192.0.2.1:1")) << show(r);
}

TEST(cli_run, listener_on_a_port_in_use_cannot_start)
{
    // A loopback socket bound and listening without SO_REUSEPORT: the proxy's SO_REUSEPORT acceptor cannot
    // share its port, so the bind fails (EADDRINUSE) whatever the proxy sets.
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::listen(fd, 1), 0);
    socklen_t len = sizeof addr;
    ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    const std::string port = std::to_string(ntohs(addr.sin_port));

    config_files files(run_config("[127.0.0.1:" + port + "]"));
    auto r = run_bounded({"run", "--config", files.config_path});
    ::close(fd);
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_TRUE(contains(r.err, "egressd: cannot start: cannot bind 127.0.0.1:" + port)) << show(r);
}

TEST(cli_run, log_file_that_cannot_open_cannot_start)
{
    // The event log opens before any socket: a log path under a regular file fails first, and nothing binds.
    config_files files(run_config("[192.0.2.1:1]", "  file: {path: egressd.yaml/events.log}\n"));
    auto r = run_bounded({"run", "--config", files.config_path});
    EXPECT_EQ(r.code, exit_invalid) << show(r);
    EXPECT_TRUE(contains(r.err, "egressd: cannot start: cannot open a log sink")) << show(r);
    EXPECT_FALSE(contains(r.err, "cannot bind")) << show(r);
}

}  // namespace
}  // namespace egressd::proxy
