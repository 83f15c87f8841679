// A listener's `tls` settings in the server configuration: certificate and key (required), client_ca, crl and
// client_certificate (required|optional), paths resolved against the configuration's directory, and where each
// file is named (`config check` reports a file's errors there). Only the configuration is read here: the
// files themselves are loaded by certs::make_tls_server_context (tests/certs/tls_test.cpp).
// Every error must be the only one, with its exact file:line:column and message.

#include "config/server_config.hpp"
#include "tests/config/policy_text.hpp"
#include "tests/config/server_text.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace egressd::config {
namespace {

using test::lines;
using test::server::base_dir;
using test::server::file_name;
using test::server::load;
using test::server::show;
using test::server::with;

// A configuration whose one listener has a block-style tls mapping with the given lines:
//   3 listeners:
//   4   - address: 127.0.0.1:3443
//   5     tls:                 the tls key at 5:5
//   6..   <tls_lines>          written with 6 spaces, so their keys start at column 7
std::string tls_listener(std::initializer_list<std::string_view> tls_lines)
{
    return with({"listeners:", "  - address: 127.0.0.1:3443", "    tls:"}) + lines(tls_lines);
}

// The one listener's tls settings, failing the test when there are none.
const listener_tls_config* only_tls(const loaded_server_config& loaded)
{
    EXPECT_TRUE(loaded.config) << show(loaded);
    EXPECT_TRUE(loaded.errors.empty()) << show(loaded);
    if (!loaded.config || loaded.config->listeners.size() != 1 || !loaded.config->listeners[0].tls) {
        ADD_FAILURE() << "expected one listener with tls settings\n" << show(loaded);
        return nullptr;
    }
    return &*loaded.config->listeners[0].tls;
}

// --- values --------------------------------------------------------------------------------------------------

TEST(config_listener_tls, every_key_written_out)
{
    auto loaded = load(tls_listener({
        "      certificate: server.pem",
        "      key: keys/server.key",
        "      client_ca: ca.pem",
        "      crl: crl.pem",
        "      client_certificate: optional",
    }));
    const auto* tls = only_tls(loaded);
    ASSERT_NE(tls, nullptr);
    EXPECT_EQ(loaded.config->listeners[0].address, "127.0.0.1");
    EXPECT_EQ(loaded.config->listeners[0].port, 3443);
    // Relative paths start from the configuration's directory, never the working directory.
    EXPECT_EQ(tls->certificate, base_dir / "server.pem");
    EXPECT_EQ(tls->key, base_dir / "keys/server.key");
    EXPECT_EQ(tls->client_ca, std::optional<std::filesystem::path>(base_dir / "ca.pem"));
    EXPECT_EQ(tls->crl, std::optional<std::filesystem::path>(base_dir / "crl.pem"));
    EXPECT_FALSE(tls->require_client_certificate);
}

TEST(config_listener_tls, certificate_and_key_alone_ask_no_client_certificate)
{
    auto loaded = load(tls_listener({"      certificate: server.pem", "      key: server.key"}));
    const auto* tls = only_tls(loaded);
    ASSERT_NE(tls, nullptr);
    EXPECT_EQ(tls->certificate, base_dir / "server.pem");
    EXPECT_EQ(tls->key, base_dir / "server.key");
    EXPECT_FALSE(tls->client_ca);
    EXPECT_FALSE(tls->crl);
    // The default, which only matters once client_ca is set.
    EXPECT_TRUE(tls->require_client_certificate);
}

TEST(config_listener_tls, client_certificate_defaults_to_required_with_client_ca)
{
    auto loaded = load(tls_listener({"      certificate: server.pem", "      key: server.key", "      client_ca: ca.pem"}));
    const auto* tls = only_tls(loaded);
    ASSERT_NE(tls, nullptr);
    EXPECT_EQ(tls->client_ca, std::optional<std::filesystem::path>(base_dir / "ca.pem"));
    EXPECT_FALSE(tls->crl);
    EXPECT_TRUE(tls->require_client_certificate);
}

TEST(config_listener_tls, client_certificate_required_written_out)
{
    auto loaded = load(tls_listener({"      certificate: server.pem", "      key: server.key", "      client_ca: ca.pem",
                                     "      client_certificate: required"}));
    const auto* tls = only_tls(loaded);
    ASSERT_NE(tls, nullptr);
    EXPECT_TRUE(tls->require_client_certificate);
}

TEST(config_listener_tls, absolute_paths_are_kept)
{
    auto loaded = load(tls_listener({"      certificate: /srv/tls/server.pem", "      key: /srv/tls/server.key",
                                     "      client_ca: /srv/tls/ca.pem", "      crl: /srv/tls/crl.pem"}));
    const auto* tls = only_tls(loaded);
    ASSERT_NE(tls, nullptr);
    EXPECT_EQ(tls->certificate, std::filesystem::path("/srv/tls/server.pem"));
    EXPECT_EQ(tls->key, std::filesystem::path("/srv/tls/server.key"));
    EXPECT_EQ(tls->client_ca, std::optional<std::filesystem::path>("/srv/tls/ca.pem"));
    EXPECT_EQ(tls->crl, std::optional<std::filesystem::path>("/srv/tls/crl.pem"));
}

TEST(config_listener_tls, flow_style_mapping_is_the_same)
{
    auto loaded = load(with({"listeners:",
                             "  - {address: 127.0.0.1:3443, tls: {certificate: s.pem, key: s.key, client_ca: ca.pem, "
                             "client_certificate: optional}}"}));
    const auto* tls = only_tls(loaded);
    ASSERT_NE(tls, nullptr);
    EXPECT_EQ(tls->certificate, base_dir / "s.pem");
    EXPECT_EQ(tls->key, base_dir / "s.key");
    EXPECT_EQ(tls->client_ca, std::optional<std::filesystem::path>(base_dir / "ca.pem"));
    EXPECT_FALSE(tls->require_client_certificate);
}

TEST(config_listener_tls, only_the_listener_that_has_it_speaks_tls)
{
    auto loaded = load(with({
        "listeners:",
        "  - 127.0.0.1:3128",                                      // 4: plain, written as an address
        "  - {address: '[::1]:3128', proxy_protocol: {trusted: [10.0.0.0/8]}}",  // 5: a map without tls
        "  - address: 127.0.0.1:3443",                             // 6
        "    proxy_protocol: {trusted: [10.0.0.0/8]}",
        "    tls: {certificate: a.pem, key: a.key}",               // 8
    }));
    ASSERT_TRUE(loaded.config) << show(loaded);
    const auto& l = loaded.config->listeners;
    ASSERT_EQ(l.size(), 3u);
    EXPECT_FALSE(l[0].tls);
    EXPECT_FALSE(l[1].tls);
    ASSERT_TRUE(l[2].tls);
    EXPECT_EQ(l[2].port, 3443);
    EXPECT_EQ(l[2].proxy_protocol_trusted.size(), 1u);
    EXPECT_EQ(l[2].tls->certificate, base_dir / "a.pem");
}

TEST(config_listener_tls, two_tls_listeners_keep_their_own_files)
{
    auto loaded = load(with({
        "listeners:",
        "  - address: 127.0.0.1:3443",
        "    tls:",
        "      certificate: one.pem",
        "      key: one.key",
        "  - address: '[::1]:3443'",
        "    tls:",
        "      certificate: two.pem",
        "      key: two.key",
        "      client_ca: ca.pem",
    }));
    ASSERT_TRUE(loaded.config) << show(loaded);
    const auto& l = loaded.config->listeners;
    ASSERT_EQ(l.size(), 2u);
    ASSERT_TRUE(l[0].tls);
    ASSERT_TRUE(l[1].tls);
    EXPECT_EQ(l[0].tls->certificate, base_dir / "one.pem");
    EXPECT_FALSE(l[0].tls->client_ca);
    EXPECT_EQ(l[1].tls->certificate, base_dir / "two.pem");
    EXPECT_EQ(l[1].tls->client_ca, std::optional<std::filesystem::path>(base_dir / "ca.pem"));
}

TEST(config_listener_tls, file_on_disk_resolves_paths_against_its_directory)
{
    // The files named need not exist: the configuration only names them (they are read when the proxy starts).
    test_support::temp_dir dir;
    auto path = dir.write("egressd.yaml", tls_listener({"      certificate: pki/server.pem", "      key: pki/server.key",
                                                        "      client_ca: ../ca.pem"}));
    auto loaded = load_server_config(path);
    ASSERT_TRUE(loaded.config) << show(loaded);
    ASSERT_EQ(loaded.config->listeners.size(), 1u);
    const auto& tls = loaded.config->listeners[0].tls;
    ASSERT_TRUE(tls);
    EXPECT_EQ(tls->certificate, dir.path() / "pki/server.pem");
    EXPECT_EQ(tls->key, dir.path() / "pki/server.key");
    EXPECT_EQ(tls->client_ca, std::optional<std::filesystem::path>(dir.path() / "../ca.pem"));
}

// --- where each setting is: for errors found when the files are read --------------------------------------------

// The positions `config check` reports a file's error at (the value naming the file), and `where`, the tls
// settings themselves, for an error that names no file.
struct where_case {
    std::string name;
    std::string yaml;
    std::size_t listener;
    mark where;
    mark certificate_at;
    mark key_at;
    mark client_ca_at;  // {0, 0}: not set
    mark crl_at;
};

void PrintTo(const where_case& c, std::ostream* os) { *os << c.name; }

std::string show(const mark& m) { return std::to_string(m.line) + ":" + std::to_string(m.column); }

class config_listener_tls_where : public ::testing::TestWithParam<where_case> {};

TEST_P(config_listener_tls_where, names_each_setting)
{
    const auto& c = GetParam();
    auto loaded = load(c.yaml);
    ASSERT_TRUE(loaded.config) << show(loaded);
    ASSERT_LT(c.listener, loaded.config->listeners.size());
    const auto& tls = loaded.config->listeners[c.listener].tls;
    ASSERT_TRUE(tls);
    EXPECT_EQ(show(tls->where), show(c.where));
    EXPECT_EQ(show(tls->certificate_at), show(c.certificate_at));
    EXPECT_EQ(show(tls->key_at), show(c.key_at));
    EXPECT_EQ(show(tls->client_ca_at), show(c.client_ca_at));
    EXPECT_EQ(show(tls->crl_at), show(c.crl_at));
}

INSTANTIATE_TEST_SUITE_P(
    styles, config_listener_tls_where,
    ::testing::Values(
        // A block mapping is where its first key is (6:7); values at 6:20, 7:12, 8:18, 9:12.
        where_case{"block_mapping",
                   tls_listener({"      certificate: s.pem", "      key: s.key", "      client_ca: ca.pem",
                                 "      crl: crl.pem"}),
                   0, {6, 7}, {6, 20}, {7, 12}, {8, 18}, {9, 12}},
        // Written in another order: each position follows its own setting.
        where_case{"block_mapping_reordered",
                   tls_listener({"      client_ca: ca.pem", "      key: s.key", "      certificate: s.pem"}), 0, {6, 7},
                   {8, 20}, {7, 12}, {6, 18}, {0, 0}},
        // "    tls: {certificate: s.pem, key: s.key}": the mapping at 10, the values at 24 and 36.
        where_case{"flow_mapping_in_a_block_listener",
                   with({"listeners:", "  - address: 127.0.0.1:3443", "    tls: {certificate: s.pem, key: s.key}"}), 0,
                   {5, 10}, {5, 24}, {5, 36}, {0, 0}, {0, 0}},
        // "  - {address: 127.0.0.1:3443, tls: {certificate: s.pem, key: s.key}}": the mapping at 36.
        where_case{"flow_listener",
                   with({"listeners:", "  - {address: 127.0.0.1:3443, tls: {certificate: s.pem, key: s.key}}"}), 0,
                   {4, 36}, {4, 50}, {4, 62}, {0, 0}, {0, 0}},
        where_case{"second_of_two",
                   with({"listeners:", "  - address: 127.0.0.1:3443", "    tls:", "      certificate: one.pem",
                         "      key: one.key", "  - address: '[::1]:3443'", "    tls:", "      certificate: two.pem",
                         "      key: two.key", "      client_ca: ca.pem"}),
                   1, {10, 7}, {10, 20}, {11, 12}, {12, 18}, {0, 0}}),
    test::param_name<where_case>);

// --- one mistake, exactly one error ------------------------------------------------------------------------

struct error_case {
    std::string name;
    std::string yaml;
    std::uint32_t line;
    std::uint32_t column;
    std::string message;  // the whole message
};

void PrintTo(const error_case& c, std::ostream* os) { *os << c.name; }

class config_listener_tls_error : public ::testing::TestWithParam<error_case> {};

TEST_P(config_listener_tls_error, is_reported_once_with_its_location)
{
    const auto& c = GetParam();
    auto loaded = load(c.yaml);
    // Any error means no configuration: a listener must never start without the TLS it was given.
    EXPECT_FALSE(loaded.config);
    ASSERT_EQ(loaded.errors.size(), 1u) << show(loaded);
    const auto& e = loaded.errors[0];
    EXPECT_EQ(e.file, file_name);
    EXPECT_EQ(e.where.line, c.line) << e.format("error");
    EXPECT_EQ(e.where.column, c.column) << e.format("error");
    EXPECT_EQ(e.message, c.message);
}

const std::string tls_settings = "tls settings (certificate, key, and optionally client_ca, crl, client_certificate)";
const std::string tls_keys = "certificate, key, client_ca, crl, client_certificate";
const std::string needs_client_ca = "needs client_ca: client certificates are only asked for when client_ca is set";

INSTANTIATE_TEST_SUITE_P(
    shape, config_listener_tls_error,
    ::testing::Values(
        // "    tls: on": the value at column 10.
        error_case{"a_scalar", with({"listeners:", "  - address: 127.0.0.1:3443", "    tls: on"}), 5, 10,
                   "expected " + tls_settings + " (a mapping), found a scalar"},
        error_case{"a_list", with({"listeners:", "  - address: 127.0.0.1:3443", "    tls: [server.pem, server.key]"}),
                   5, 10, "expected " + tls_settings + " (a mapping), found a list"},
        // An empty value is placed at its key.
        error_case{"empty", with({"listeners:", "  - address: 127.0.0.1:3443", "    tls:"}), 5, 5,
                   "expected " + tls_settings + " (a mapping), found nothing"},
        // A missing key is reported at the mapping that lacks it: its first key, at 6:7.
        error_case{"certificate_missing", tls_listener({"      key: server.key"}), 6, 7,
                   "missing required key 'certificate' in a listener's tls"},
        error_case{"key_missing", tls_listener({"      certificate: server.pem"}), 6, 7,
                   "missing required key 'key' in a listener's tls"},
        error_case{"unknown_key", tls_listener({"      certificate: s.pem", "      key: s.key", "      ca: ca.pem"}), 8,
                   7, "unknown key 'ca' in a listener's tls; expected one of: " + tls_keys},
        error_case{"misspelt_key",
                   tls_listener({"      certificate: s.pem", "      key: s.key", "      client_ca: ca.pem",
                                 "      client_certificates: optional"}),
                   9, 7, "unknown key 'client_certificates' in a listener's tls; expected one of: " + tls_keys},
        error_case{"key_twice", tls_listener({"      certificate: s.pem", "      key: s.key", "      key: t.key"}), 8, 7,
                   "key 'key' appears twice in a listener's tls"},
        error_case{"listener_unknown_key",
                   with({"listeners:", "  - {address: 127.0.0.1:3128, tls: {certificate: s.pem, key: s.key}, port: 1}"}),
                   4, 70, "unknown key 'port' in a listener; expected one of: address, proxy_protocol, tls"}),
    test::param_name<error_case>);

INSTANTIATE_TEST_SUITE_P(
    paths, config_listener_tls_error,
    ::testing::Values(
        // "      certificate: ": the value at column 20; "      key: " column 12; "      client_ca: " column 18;
        // "      crl: " column 12.
        error_case{"certificate_empty", tls_listener({"      certificate: ''", "      key: s.key"}), 6, 20,
                   "empty path: expected the server certificate file (PEM)"},
        error_case{"certificate_a_list", tls_listener({"      certificate: [a.pem, b.pem]", "      key: s.key"}), 6, 20,
                   "expected the server certificate file (PEM), found a list"},
        error_case{"certificate_a_mapping", tls_listener({"      certificate: {file: a.pem}", "      key: s.key"}), 6, 20,
                   "expected the server certificate file (PEM), found a mapping"},
        error_case{"key_empty", tls_listener({"      certificate: s.pem", "      key: \"\""}), 7, 12,
                   "empty path: expected the server private key file (PEM)"},
        error_case{"key_a_list", tls_listener({"      certificate: s.pem", "      key: [s.key]"}), 7, 12,
                   "expected the server private key file (PEM), found a list"},
        error_case{"client_ca_empty", tls_listener({"      certificate: s.pem", "      key: s.key", "      client_ca: ''"}),
                   8, 18, "empty path: expected the CA file (PEM) client certificates must chain to"},
        error_case{"client_ca_a_list",
                   tls_listener({"      certificate: s.pem", "      key: s.key", "      client_ca: [a.pem, b.pem]"}), 8, 18,
                   "expected the CA file (PEM) client certificates must chain to, found a list"},
        error_case{"crl_empty",
                   tls_listener({"      certificate: s.pem", "      key: s.key", "      client_ca: ca.pem",
                                 "      crl: ''"}),
                   9, 12, "empty path: expected the CRL file (PEM) of revoked client certificates"}),
    test::param_name<error_case>);

INSTANTIATE_TEST_SUITE_P(
    client_certificates, config_listener_tls_error,
    ::testing::Values(
        // "      client_certificate: ": the value at column 27.
        error_case{"mode_unknown",
                   tls_listener({"      certificate: s.pem", "      key: s.key", "      client_ca: ca.pem",
                                 "      client_certificate: maybe"}),
                   9, 27, "expected client_certificate: required or optional, found 'maybe'"},
        // Exact words: "Required" is not "required", and a YAML boolean is not a mode.
        error_case{"mode_upper_case",
                   tls_listener({"      certificate: s.pem", "      key: s.key", "      client_ca: ca.pem",
                                 "      client_certificate: Required"}),
                   9, 27, "expected client_certificate: required or optional, found 'Required'"},
        error_case{"mode_a_boolean",
                   tls_listener({"      certificate: s.pem", "      key: s.key", "      client_ca: ca.pem",
                                 "      client_certificate: true"}),
                   9, 27, "expected client_certificate: required or optional, found 'true'"},
        error_case{"mode_a_list",
                   tls_listener({"      certificate: s.pem", "      key: s.key", "      client_ca: ca.pem",
                                 "      client_certificate: [required]"}),
                   9, 27, "expected client_certificate: required or optional, found a list"},
        // Without client_ca no certificate is asked for, so a CRL or a mode could only mislead the reader.
        error_case{"crl_without_client_ca",
                   tls_listener({"      certificate: s.pem", "      key: s.key", "      crl: crl.pem"}), 8, 12,
                   needs_client_ca},
        error_case{"required_without_client_ca",
                   tls_listener({"      certificate: s.pem", "      key: s.key", "      client_certificate: required"}), 8,
                   27, needs_client_ca},
        error_case{"optional_without_client_ca",
                   tls_listener({"      certificate: s.pem", "      key: s.key", "      client_certificate: optional"}), 8,
                   27, needs_client_ca}),
    test::param_name<error_case>);

// --- several mistakes, all reported --------------------------------------------------------------------------

using position = std::tuple<std::uint32_t, std::uint32_t>;

std::vector<position> positions_of(const loaded_server_config& loaded)
{
    std::vector<position> positions;
    for (const auto& e : loaded.errors) {
        EXPECT_EQ(e.file, file_name);
        positions.emplace_back(e.where.line, e.where.column);
    }
    // The order of reading is not part of the contract; the set of positions is.
    std::sort(positions.begin(), positions.end());
    return positions;
}

TEST(config_listener_tls_errors, every_mistake_in_one_tls_mapping_is_reported)
{
    auto loaded = load(tls_listener({
        "      key: ''",                        // 6:12 empty path; the mapping (6:7) lacks certificate
        "      crl: crl.pem",                   // 7:12 needs client_ca
        "      client_certificate: sometimes",  // 8:27 neither required nor optional, and needs client_ca
        "      ocsp: true",                     // 9:7 unknown
    }));
    EXPECT_FALSE(loaded.config);
    EXPECT_EQ(positions_of(loaded),
              (std::vector<position>{{6, 7}, {6, 12}, {7, 12}, {8, 27}, {8, 27}, {9, 7}}))
        << show(loaded);
}

TEST(config_listener_tls_errors, mistakes_in_two_listeners_are_all_reported)
{
    auto loaded = load(with({
        "listeners:",
        "  - address: 127.0.0.1:3443",
        "    tls: {certificate: a.pem}",  // 5:10 lacks key
        "  - address: 127.0.0.1:3444",
        "    tls: {certificate: b.pem, key: b.key, crl: b.crl}",  // 7:48 needs client_ca
    }));
    EXPECT_FALSE(loaded.config);
    EXPECT_EQ(positions_of(loaded), (std::vector<position>{{5, 10}, {7, 48}})) << show(loaded);
}

TEST(config_listener_tls_errors, mistakes_in_tls_are_reported_even_when_the_address_is_wrong)
{
    // The loader promises every error in one run, so fixing the address must not reveal a second round.
    auto loaded = load(with({
        "listeners:",
        "  - address: localhost:3443",  // 4:14 not an IP address
        "    tls:",
        "      certificate: ''",  // 6:20 empty path
        "      key: s.key",
    }));
    EXPECT_FALSE(loaded.config);
    EXPECT_EQ(positions_of(loaded), (std::vector<position>{{4, 14}, {6, 20}})) << show(loaded);
}

TEST(config_listener_tls_errors, diagnostics_format_as_file_line_column)
{
    auto loaded = load(tls_listener({"      certificate: s.pem", "      key: s.key", "      crl: crl.pem"}));
    ASSERT_EQ(loaded.errors.size(), 1u) << show(loaded);
    EXPECT_EQ(loaded.errors[0].format("error"), "egressd.yaml:8:12: error: " + needs_client_ca);
}

}  // namespace
}  // namespace egressd::config
