// The credentials file: entries made here and entries made elsewhere (Python's hashlib) verify; every way a
// line can be wrong is reported once with its line and what was expected; a store with errors is never built.
// Entries use 100000 iterations (the minimum the store accepts) to keep the suite fast.

#include "certs/credentials.hpp"

#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <ostream>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace egressd::certs {
namespace {

using namespace std::string_literals;

constexpr unsigned fast = credential_store::min_iterations;

// Made with Python: hashlib.pbkdf2_hmac("sha256", password, salt, iterations, 32), base64.b64encode.
// alice / "correct horse battery staple", salt bytes 0..15, 100000 iterations.
const std::string alice_line = "alice:$pbkdf2-sha256$100000$AAECAwQFBgcICQoLDA0ODw==$"
                               "SdScJfWXhGIJ8Nkud3CrZOHHXpS0zmxQkmXuZxddKh4=";
const std::string alice_password = "correct horse battery staple";
// bob@example.com / "p\xc3\xa4ss:w\0rd" (UTF-8, a colon and a NUL), 19-byte salt, 120000 iterations.
const std::string bob_line = "bob@example.com:$pbkdf2-sha256$120000$MDEyMzQ1Njc4OWFiY2RlZlhZWg==$"
                             "QffKcDUUit83/Yy+0CkA9Nl6xGP4ZGV6Tm+MK70r4vI=";
const std::string bob_password = "p\xc3\xa4ss:w\0rd"s;

const std::string salt16 = "AAECAwQFBgcICQoLDA0ODw==";                        // 16 bytes
const std::string hash32 = "SdScJfWXhGIJ8Nkud3CrZOHHXpS0zmxQkmXuZxddKh4=";  // 32 bytes

std::string entry(const std::string& user, const std::string& iterations = "100000",
                  const std::string& salt = salt16, const std::string& hash = hash32)
{
    return user + ":$pbkdf2-sha256$" + iterations + "$" + salt + "$" + hash;
}

std::string show(const std::vector<credential_error>& errors)
{
    std::string out;
    for (const auto& e : errors) {
        out += "  line " + std::to_string(e.line) + ": " + e.message + "\n";
    }
    return out;
}

credential_store parsed(std::string_view text)
{
    auto [store, errors] = credential_store::parse(text);
    EXPECT_TRUE(errors.empty()) << show(errors);
    if (!store) {
        throw std::runtime_error("no store");
    }
    return std::move(*store);
}

// --- entries made here -------------------------------------------------------------------------------------

TEST(certs_credential_store, made_entry_verifies_only_its_password_and_user)
{
    auto line = credential_store::make_entry("alice", "s3cret", fast);
    auto store = parsed(line + "\n");
    EXPECT_EQ(store.size(), 1u);
    EXPECT_TRUE(store.verify("alice", "s3cret"));
    EXPECT_FALSE(store.verify("alice", "s3cre"));
    EXPECT_FALSE(store.verify("alice", "s3crett"));
    EXPECT_FALSE(store.verify("alice", "S3cret"));
    EXPECT_FALSE(store.verify("alice", ""));
    EXPECT_FALSE(store.verify("mallory", "s3cret"));
    EXPECT_FALSE(store.verify("Alice", "s3cret"));  // users are case-sensitive
    EXPECT_FALSE(store.verify("", "s3cret"));
    EXPECT_FALSE(store.verify("alice ", "s3cret"));
}

TEST(certs_credential_store, made_entry_has_the_documented_shape)
{
    auto line = credential_store::make_entry("svc.build-01@ci", "pw", fast);
    // 16-byte salt: 24 base64 characters; 32-byte hash: 44.
    static const std::regex shape(
        R"(svc\.build-01@ci:\$pbkdf2-sha256\$100000\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=)");
    EXPECT_TRUE(std::regex_match(line, shape)) << line;
    EXPECT_EQ(line.find('\n'), std::string::npos);
}

TEST(certs_credential_store, made_entries_get_fresh_salts)
{
    auto a = credential_store::make_entry("alice", "same", fast);
    auto b = credential_store::make_entry("alice", "same", fast);
    EXPECT_NE(a, b);
    auto store_b = parsed(b);
    EXPECT_TRUE(parsed(a).verify("alice", "same"));
    EXPECT_TRUE(store_b.verify("alice", "same"));
}

TEST(certs_credential_store, made_entry_defaults_to_600000_iterations)
{
    auto line = credential_store::make_entry("alice", "pw");
    EXPECT_NE(line.find(":$pbkdf2-sha256$600000$"), std::string::npos) << line;
    EXPECT_EQ(credential_store::default_iterations, 600000u);
}

TEST(certs_credential_store, made_entry_accepts_the_iteration_bounds)
{
    auto low = credential_store::make_entry("alice", "pw", credential_store::min_iterations);
    EXPECT_TRUE(parsed(low).verify("alice", "pw"));
    // The maximum is only parsed here: verifying it would cost seconds.
    auto [store, errors] = credential_store::parse(entry("alice", "10000000"));
    EXPECT_TRUE(store.has_value()) << show(errors);
}

TEST(certs_credential_store, password_bytes_are_arbitrary)
{
    const std::string passwords[] = {"", "a:b:c", "with space", "p\0nul"s, "\xff\xfe\x01", std::string(1000, 'x')};
    std::string text;
    for (std::size_t i = 0; i < std::size(passwords); ++i) {
        text += credential_store::make_entry("user" + std::to_string(i), passwords[i], fast) + "\n";
    }
    auto store = parsed(text);
    ASSERT_EQ(store.size(), std::size(passwords));
    for (std::size_t i = 0; i < std::size(passwords); ++i) {
        auto user = "user" + std::to_string(i);
        EXPECT_TRUE(store.verify(user, passwords[i])) << user;
        EXPECT_FALSE(store.verify(user, passwords[i] + "x")) << user;
    }
    EXPECT_FALSE(store.verify("user1", "a:b"));
    EXPECT_FALSE(store.verify("user3", "p"));  // a NUL does not end the password
}

TEST(certs_credential_store, make_entry_refuses_what_parse_would_refuse)
{
    EXPECT_THROW(credential_store::make_entry("", "pw", fast), std::invalid_argument);
    EXPECT_THROW(credential_store::make_entry("al ice", "pw", fast), std::invalid_argument);
    EXPECT_THROW(credential_store::make_entry("alice:x", "pw", fast), std::invalid_argument);
    EXPECT_THROW(credential_store::make_entry(std::string(65, 'a'), "pw", fast), std::invalid_argument);
    EXPECT_THROW(credential_store::make_entry("alice", "pw", fast - 1), std::invalid_argument);
    EXPECT_THROW(credential_store::make_entry("alice", "pw", credential_store::max_iterations + 1),
                 std::invalid_argument);
    EXPECT_NO_THROW(credential_store::make_entry(std::string(64, 'a'), "pw", fast));
}

// --- entries made elsewhere --------------------------------------------------------------------------------

TEST(certs_credential_store, entries_made_with_python_hashlib_verify)
{
    auto store = parsed(alice_line + "\n" + bob_line + "\n");
    EXPECT_EQ(store.size(), 2u);
    EXPECT_TRUE(store.verify("alice", alice_password));
    EXPECT_TRUE(store.verify("bob@example.com", bob_password));
    EXPECT_FALSE(store.verify("alice", bob_password));
    EXPECT_FALSE(store.verify("bob@example.com", alice_password));
    EXPECT_FALSE(store.verify("bob@example.com", "p\xc3\xa4ss:w"));  // cut at the NUL
    EXPECT_FALSE(store.verify("bob", bob_password));
}

// --- layout of the file ------------------------------------------------------------------------------------

TEST(certs_credential_store, comments_blank_lines_and_whitespace_are_skipped)
{
    auto text = "# egressd proxy users\n"
                "\n"
                "   \t \n"
                "  # indented comment\n" +
                alice_line + "\r\n" +        // CRLF
                "\t  " + bob_line + "  \t\n" +  // surrounding blanks
                "#alice:nothing here is read\n"
                "\n";
    auto store = parsed(text);
    EXPECT_EQ(store.size(), 2u);
    EXPECT_TRUE(store.verify("alice", alice_password));
    EXPECT_TRUE(store.verify("bob@example.com", bob_password));
}

TEST(certs_credential_store, last_line_needs_no_line_break)
{
    auto store = parsed("# users\n" + alice_line);
    EXPECT_EQ(store.size(), 1u);
    EXPECT_TRUE(store.verify("alice", alice_password));
}

TEST(certs_credential_store, empty_and_comment_only_files_give_an_empty_store)
{
    for (std::string_view text : {"", "\n\n", "# nobody yet\n", "  \r\n# x\r\n"}) {
        EXPECT_EQ(parsed(text).size(), 0u);
    }
    // The dummy entry of an empty store costs the default 600000 iterations, so verify just once.
    EXPECT_FALSE(parsed("").verify("alice", alice_password));
}

TEST(certs_credential_store, user_names_use_the_whole_allowed_alphabet)
{
    const std::string users[] = {"a", "Z", "0", "a.b", "a_b", "a@b", "a-b", "-", ".", "@",
                                 "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz", "0123456789._@-",
                                 std::string(64, 'x')};
    std::string text;
    for (const auto& u : users) {
        text += entry(u) + "\n";
    }
    auto [store, errors] = credential_store::parse(text);
    ASSERT_TRUE(store.has_value()) << show(errors);
    EXPECT_EQ(store->size(), std::size(users));
    for (const auto& u : users) {
        EXPECT_TRUE(detail::valid_user_name(u)) << u;
    }
}

TEST(certs_credential_store, an_unknown_user_still_costs_a_pbkdf2_run_and_fails)
{
    // Timing is not asserted; this only shows the dummy path is taken safely, also for odd names.
    auto store = parsed(alice_line);
    for (std::string_view user : {"mallory", "", "alice\n", "ALICE", "alic", "alicee", "a\0lice"}) {
        EXPECT_FALSE(store.verify(user, alice_password)) << user;
    }
}

TEST(certs_credential_store, verify_is_safe_from_many_threads)
{
    auto store = parsed(alice_line + "\n" + bob_line + "\n");
    std::atomic<int> wrong{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            bool ok = store.verify("alice", alice_password) && store.verify("bob@example.com", bob_password) &&
                      !store.verify("alice", "x" + std::to_string(t)) && !store.verify("nobody", alice_password);
            if (!ok) {
                ++wrong;
            }
        });
    }
    for (auto& th : threads) {
        th.join();
    }
    EXPECT_EQ(wrong.load(), 0);
}

TEST(certs_credential_store, store_copies_and_moves)
{
    auto store = parsed(alice_line);
    credential_store copy = store;
    credential_store moved = std::move(store);
    EXPECT_TRUE(copy.verify("alice", alice_password));
    EXPECT_TRUE(moved.verify("alice", alice_password));
}

// --- files -------------------------------------------------------------------------------------------------

TEST(certs_credential_store, loads_a_file)
{
    test_support::temp_dir dir;
    auto file = dir.write("users", "# users\n" + alice_line + "\n" + bob_line + "\n");
    auto [store, errors] = credential_store::load(file);
    ASSERT_TRUE(store.has_value()) << show(errors);
    EXPECT_TRUE(errors.empty());
    EXPECT_EQ(store->size(), 2u);
    EXPECT_TRUE(store->verify("bob@example.com", bob_password));
}

TEST(certs_credential_store, a_missing_file_is_an_error_on_line_0)
{
    test_support::temp_dir dir;
    auto file = dir.path() / "no-such-file";
    auto [store, errors] = credential_store::load(file);
    EXPECT_FALSE(store.has_value());
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].line, 0u);
    EXPECT_NE(errors[0].message.find("cannot open " + file.string()), std::string::npos) << errors[0].message;
    EXPECT_NE(errors[0].message.find("No such file"), std::string::npos) << errors[0].message;
}

TEST(certs_credential_store, a_directory_is_not_a_credentials_file)
{
    test_support::temp_dir dir;
    auto [store, errors] = credential_store::load(dir.path());
    EXPECT_FALSE(store.has_value());
    ASSERT_EQ(errors.size(), 1u) << show(errors);
    EXPECT_EQ(errors[0].line, 0u);
    EXPECT_EQ(errors[0].message, "cannot read " + dir.path().string() + ": Is a directory");
}

TEST(certs_credential_store, file_errors_keep_their_line_numbers)
{
    test_support::temp_dir dir;
    auto file = dir.write("users", "# users\r\n" + alice_line + "\r\n\r\nbob\r\n" + entry("carol", "99") + "\r\n");
    auto [store, errors] = credential_store::load(file);
    EXPECT_FALSE(store.has_value());
    ASSERT_EQ(errors.size(), 2u) << show(errors);
    EXPECT_EQ(errors[0].line, 4u);
    EXPECT_EQ(errors[1].line, 5u);
}

// --- errors: one mistake, one error -----------------------------------------------------------------------

struct error_case {
    std::string name;
    std::string line;      // placed on line 3, after a comment and a blank line
    std::string fragment;  // what the message must say
};

void PrintTo(const error_case& c, std::ostream* os) { *os << c.name; }
std::string case_name(const ::testing::TestParamInfo<error_case>& info) { return info.param.name; }

class certs_credential_error : public ::testing::TestWithParam<error_case> {};

TEST_P(certs_credential_error, is_reported_once_on_its_line)
{
    const auto& c = GetParam();
    auto [store, errors] = credential_store::parse("# users\n\n" + c.line + "\n" + alice_line + "\n");
    EXPECT_FALSE(store.has_value());
    ASSERT_EQ(errors.size(), 1u) << show(errors);
    EXPECT_EQ(errors[0].line, 3u);
    EXPECT_NE(errors[0].message.find(c.fragment), std::string::npos) << errors[0].message;
}

const std::string form = "expected user:$pbkdf2-sha256$<iterations>$<salt base64>$<hash base64>";

INSTANTIATE_TEST_SUITE_P(
    format, certs_credential_error,
    ::testing::Values(
        error_case{"no_colon", "bob", form + ": no ':'"},
        error_case{"no_colon_with_hash", "bob$pbkdf2-sha256$100000$" + salt16 + "$" + hash32, form},
        error_case{"nothing_after_colon", "bob:", "must start with '$'"},
        error_case{"no_dollar", "bob:pbkdf2-sha256$100000$" + salt16 + "$" + hash32, "must start with '$'"},
        error_case{"plain_password", "bob:hunter2", "must start with '$'"},
        error_case{"space_after_colon", "bob: " + entry("").substr(1), "must start with '$'"},
        error_case{"too_few_fields", "bob:$pbkdf2-sha256$100000$" + salt16, form + ": found 2 fields"},
        error_case{"scheme_only", "bob:$pbkdf2-sha256", form + ": found 0 fields"},
        error_case{"too_many_fields", entry("bob") + "$extra", form + ": found 4 fields"},
        error_case{"trailing_dollar", entry("bob") + "$", form + ": found 4 fields"},
        error_case{"trailing_comment", entry("bob") + " # comment", "hash is not valid base64"}),
    case_name);

INSTANTIATE_TEST_SUITE_P(
    scheme, certs_credential_error,
    ::testing::Values(
        error_case{"md5", "bob:$md5$salt$hash", "unknown hash scheme \"md5\": expected $pbkdf2-sha256$"},
        error_case{"md5_crypt", "bob:$1$saltsalt$hash", "unknown hash scheme \"1\""},
        error_case{"apache_md5", "bob:$apr1$saltsalt$hash", "unknown hash scheme \"apr1\""},
        error_case{"bcrypt", "bob:$2y$10$abcdefghijklmnopqrstuu", "unknown hash scheme \"2y\""},
        error_case{"sha1", "bob:$pbkdf2-sha1$100000$" + salt16 + "$" + hash32, "unknown hash scheme \"pbkdf2-sha1\""},
        error_case{"sha512", "bob:$pbkdf2-sha512$100000$" + salt16 + "$" + hash32,
                   "unknown hash scheme \"pbkdf2-sha512\""},
        error_case{"upper_case", "bob:$PBKDF2-SHA256$100000$" + salt16 + "$" + hash32,
                   "unknown hash scheme \"PBKDF2-SHA256\""},
        error_case{"empty_scheme", "bob:$$100000$" + salt16 + "$" + hash32, "unknown hash scheme \"\""},
        error_case{"control_characters_are_escaped", "bob:$md\x01\x1b[31m$x$y$z",
                   "unknown hash scheme \"md\\x01\\x1b[31m\""}),
    case_name);

INSTANTIATE_TEST_SUITE_P(
    iterations, certs_credential_error,
    ::testing::Values(
        error_case{"below_minimum", entry("bob", "99999"), "iterations \"99999\" below the minimum 100000"},
        error_case{"tiny", entry("bob", "1"), "iterations \"1\" below the minimum 100000"},
        error_case{"zero", entry("bob", "0"), "iterations \"0\" below the minimum 100000"},
        error_case{"above_maximum", entry("bob", "10000001"), "iterations \"10000001\" above the maximum 10000000"},
        error_case{"overflow", entry("bob", "99999999999999999999999"), "above the maximum 10000000"},
        error_case{"empty", entry("bob", ""), "iterations \"\" is not a decimal number"},
        error_case{"letters", entry("bob", "many"), "iterations \"many\" is not a decimal number"},
        error_case{"plus_sign", entry("bob", "+100000"), "is not a decimal number"},
        error_case{"minus_sign", entry("bob", "-100000"), "is not a decimal number"},
        error_case{"exponent", entry("bob", "1e6"), "is not a decimal number"},
        error_case{"hex", entry("bob", "0x186a0"), "is not a decimal number"},
        error_case{"inner_space", entry("bob", "100 000"), "is not a decimal number"},
        error_case{"trailing_space", entry("bob", "100000 "), "is not a decimal number"}),
    case_name);

INSTANTIATE_TEST_SUITE_P(
    salt, certs_credential_error,
    ::testing::Values(
        error_case{"bad_characters", entry("bob", "100000", "!!!!" + salt16.substr(4)), "salt is not valid base64"},
        error_case{"padding_missing", entry("bob", "100000", "AAECAwQFBgcICQoLDA0ODw"), "salt is not valid base64"},
        error_case{"url_alphabet", entry("bob", "100000", "AAECAwQFBgcICQoLDA0OD_=="), "salt is not valid base64"},
        error_case{"fifteen_bytes", entry("bob", "100000", "AAAAAAAAAAAAAAAAAAAA"),
                   "salt is 15 bytes: at least 16 expected"},
        error_case{"one_byte", entry("bob", "100000", "AA=="), "salt is 1 bytes: at least 16 expected"},
        error_case{"empty", entry("bob", "100000", ""), "salt is 0 bytes: at least 16 expected"}),
    case_name);

INSTANTIATE_TEST_SUITE_P(
    hash, certs_credential_error,
    ::testing::Values(
        error_case{"bad_characters", entry("bob", "100000", salt16, "*" + hash32.substr(1)),
                   "hash is not valid base64"},
        error_case{"padding_missing", entry("bob", "100000", salt16, hash32.substr(0, 43)), "hash is not valid base64"},
        error_case{"thirty_one_bytes",
                   entry("bob", "100000", salt16, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="),
                   "hash is 31 bytes: 32 expected"},
        error_case{"thirty_three_bytes",
                   entry("bob", "100000", salt16, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
                   "hash is 33 bytes: 32 expected"},
        error_case{"sha512_length", entry("bob", "100000", salt16, std::string(86, 'A') + "=="),
                   "hash is 64 bytes: 32 expected"},
        error_case{"empty", entry("bob", "100000", salt16, ""), "hash is 0 bytes: 32 expected"}),
    case_name);

const std::string user_rule = "is not valid: expected 1-64 characters of A-Z a-z 0-9 . _ @ -";

INSTANTIATE_TEST_SUITE_P(
    user, certs_credential_error,
    ::testing::Values(
        error_case{"empty", entry(""), "user name \"\" " + user_rule},
        error_case{"space", entry("bob smith"), "user name \"bob smith\" " + user_rule},
        error_case{"slash", entry("ci/bob"), "user name \"ci/bob\" " + user_rule},
        error_case{"plus", entry("bob+x"), user_rule},
        error_case{"quote", entry("bob\""), "user name \"bob\\\"\" " + user_rule},
        error_case{"non_ascii", entry("j\xc3\xb6rg"), "user name \"j\\xc3\\xb6rg\" " + user_rule},
        error_case{"control", entry("bob\x1b"), "user name \"bob\\x1b\" " + user_rule},
        error_case{"sixty_five_characters", entry(std::string(65, 'b')), user_rule}),
    case_name);

// --- errors: several mistakes ------------------------------------------------------------------------------

TEST(certs_credential_errors, duplicate_user_names_the_first_line)
{
    auto [store, errors] = credential_store::parse(alice_line + "\n# again\n" + alice_line + "\n");
    EXPECT_FALSE(store.has_value());
    ASSERT_EQ(errors.size(), 1u) << show(errors);
    EXPECT_EQ(errors[0].line, 3u);
    EXPECT_EQ(errors[0].message, "duplicate user \"alice\": first defined on line 1");
}

TEST(certs_credential_errors, a_third_duplicate_is_reported_too)
{
    auto [store, errors] = credential_store::parse(alice_line + "\n" + entry("alice") + "\n" + entry("alice") + "\n");
    EXPECT_FALSE(store.has_value());
    ASSERT_EQ(errors.size(), 2u) << show(errors);
    EXPECT_EQ(errors[0].line, 2u);
    EXPECT_EQ(errors[1].line, 3u);
    EXPECT_NE(errors[1].message.find("first defined on line 1"), std::string::npos);
}

TEST(certs_credential_errors, every_bad_line_is_reported_in_order)
{
    auto text = "# users\n" + alice_line + "\n" +  // 2: fine
                "bob\n" +                             // 3
                entry("carol", "1000") + "\n" +      // 4
                "\n" +                                // 5
                "dave:$md5$x$y\n" +                   // 6
                entry("erin", "100000", "AA==") +     // 7, no line break at the end
                "";
    auto [store, errors] = credential_store::parse(text);
    EXPECT_FALSE(store.has_value());
    ASSERT_EQ(errors.size(), 4u) << show(errors);
    EXPECT_EQ(errors[0].line, 3u);
    EXPECT_EQ(errors[1].line, 4u);
    EXPECT_EQ(errors[2].line, 6u);
    EXPECT_EQ(errors[3].line, 7u);
    EXPECT_NE(errors[1].message.find("below the minimum"), std::string::npos);
    EXPECT_NE(errors[2].message.find("unknown hash scheme"), std::string::npos);
    EXPECT_NE(errors[3].message.find("salt is 1 bytes"), std::string::npos);
}

TEST(certs_credential_errors, independent_mistakes_on_one_line_are_each_reported)
{
    auto [store, errors] = credential_store::parse(entry("bad user", "5", "AA==", "AA==") + "\n");
    EXPECT_FALSE(store.has_value());
    ASSERT_EQ(errors.size(), 4u) << show(errors);
    for (const auto& e : errors) {
        EXPECT_EQ(e.line, 1u);
    }
    EXPECT_NE(errors[0].message.find("user name"), std::string::npos);
    EXPECT_NE(errors[1].message.find("iterations"), std::string::npos);
    EXPECT_NE(errors[2].message.find("salt"), std::string::npos);
    EXPECT_NE(errors[3].message.find("hash"), std::string::npos);
}

TEST(certs_credential_errors, long_garbage_is_cut_short_in_messages)
{
    auto [store, errors] = credential_store::parse(std::string(500, 'x') + ":secret\n");
    EXPECT_FALSE(store.has_value());
    ASSERT_EQ(errors.size(), 2u) << show(errors);
    EXPECT_NE(errors[0].message.find("...\""), std::string::npos);
    EXPECT_LT(errors[0].message.size(), 200u);
}

TEST(certs_credential_errors, messages_never_contain_the_hash)
{
    auto [store, errors] = credential_store::parse(entry("bad user", "1") + "\n" + alice_line.substr(0, 40) + "\n");
    EXPECT_FALSE(store.has_value());
    for (const auto& e : errors) {
        EXPECT_EQ(e.message.find(hash32.substr(0, 10)), std::string::npos) << e.message;
        EXPECT_EQ(e.message.find(salt16.substr(0, 10)), std::string::npos) << e.message;
    }
}

}  // namespace
}  // namespace egressd::certs
