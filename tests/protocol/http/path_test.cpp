// Request paths as rules naming paths see them: the normal form (RFC 3986 6.2.2: percent-decoding of unreserved
// characters, upper-case hex, dot segments removed), the loose form a lenient server may make of it, and the
// check that a policy's prefix is already normal.

#include "protocol/http/path.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace egressd::protocol::http {
namespace {

using pair = std::pair<std::string, std::string>;

void expect_each(const std::vector<pair>& cases, std::string (*f)(std::string_view))
{
    for (const auto& [in, out] : cases) {
        EXPECT_EQ(f(in), out) << "input: " << in;
    }
}

// RFC 3986 5.4.1 and 5.4.2: each reference merged with the base path "/b/c/d;p" (5.2.3), then 5.2.4 applied.
// The merged paths are written out here; the expected results are the RFC's.
TEST(normalise_path, rfc3986_reference_examples)
{
    expect_each(
        {
            {"/b/c/g", "/b/c/g"},
            {"/b/c/./g", "/b/c/g"},
            {"/b/c/g/", "/b/c/g/"},
            {"/g", "/g"},
            {"/b/c/d;p", "/b/c/d;p"},
            {"/b/c/.", "/b/c/"},
            {"/b/c/./", "/b/c/"},
            {"/b/c/..", "/b/"},
            {"/b/c/../", "/b/"},
            {"/b/c/../g", "/b/g"},
            {"/b/c/../..", "/"},
            {"/b/c/../../", "/"},
            {"/b/c/../../g", "/g"},
            // 5.4.2, abnormal examples: more ".." than segments stop at the root.
            {"/b/c/../../../g", "/g"},
            {"/b/c/../../../../g", "/g"},
            {"/./g", "/g"},
            {"/../g", "/g"},
            {"/b/c/g.", "/b/c/g."},
            {"/b/c/.g", "/b/c/.g"},
            {"/b/c/g..", "/b/c/g.."},
            {"/b/c/..g", "/b/c/..g"},
            {"/b/c/./../g", "/b/g"},
            {"/b/c/./g/.", "/b/c/g/"},
            {"/b/c/g/./h", "/b/c/g/h"},
            {"/b/c/g/../h", "/b/c/h"},
            {"/b/c/g;x=1/./y", "/b/c/g;x=1/y"},
            {"/b/c/g;x=1/../y", "/b/c/y"},
            // 5.2.4's own walk-through.
            {"/a/b/c/./../../g", "/a/g"},
        },
        normalise_path);
}

TEST(normalise_path, unreserved_characters_are_decoded)
{
    expect_each(
        {
            {"/%41", "/A"},
            {"/%7e", "/~"},
            {"/%7E", "/~"},
            {"/%61dmin", "/admin"},
            {"/%2D%2e%5F%30", "/-._0"},
            // Decoded dots are dot segments (RFC 3986 6.2.2.3 removes them after decoding).
            {"/simple/%2e%2e/admin", "/admin"},
            {"/simple/%2E/x", "/simple/x"},
            {"/simple/.%2e/admin", "/admin"},
        },
        normalise_path);
}

TEST(normalise_path, reserved_and_other_encodings_are_kept_with_upper_case_hex)
{
    expect_each(
        {
            {"/a%2fb", "/a%2Fb"},
            {"/a%2Fb", "/a%2Fb"},
            {"/a%3ab", "/a%3Ab"},
            {"/%5c", "/%5C"},
            {"/%20x", "/%20x"},
            {"/%c3%a9", "/%C3%A9"},
            // An encoded percent sign stays encoded: one decoding pass, never two.
            {"/%25", "/%25"},
            {"/%2541", "/%2541"},
            // Sub-delimiters and their encodings are different resources: neither is rewritten into the other.
            {"/a+b", "/a+b"},
            {"/a%2Bb", "/a%2Bb"},
        },
        normalise_path);
}

// A '%' that starts no escape is a literal percent sign, written %25: what follows can then never form an escape.
TEST(normalise_path, stray_percent_signs_are_encoded)
{
    expect_each(
        {
            {"/%", "/%25"},
            {"/a%", "/a%25"},
            {"/a%4", "/a%254"},
            {"/%zz", "/%25zz"},
            {"/%g1/x", "/%25g1/x"},
            {"/%%32E", "/%252E"},
        },
        normalise_path);
}

TEST(normalise_path, trailing_dot_segments_leave_a_directory)
{
    expect_each(
        {
            {"/a/.", "/a/"},
            {"/a/..", "/"},
            {"/a/b/..", "/a/"},
            {"/.", "/"},
            {"/..", "/"},
            {"/a/%2e", "/a/"},
        },
        normalise_path);
}

TEST(normalise_path, root_empty_and_empty_segments)
{
    expect_each(
        {
            {"/", "/"},
            {"", "/"},
            // Empty segments are segments (RFC 3986): "//" is not "/", and ".." removes one of them.
            {"//", "//"},
            {"/a//b", "/a//b"},
            {"//../a", "/a"},
        },
        normalise_path);
}

TEST(normalise_path, parameters_and_backslashes_are_not_touched)
{
    // The strict form is what RFC 3986 says; lenient readings belong to loose_path.
    expect_each(
        {
            {"/a;b/c", "/a;b/c"},
            {"/simple/..;/admin", "/simple/..;/admin"},
            {"/a\\..\\b", "/a\\..\\b"},
        },
        normalise_path);
}

// The proxy decides on the normal form and forwards it: the upstream must get a path that means what was
// decided. So the normal form must be a fixed point: normalising it again must not change it. A malformed '%'
// kept as it is must not combine with the characters decoded after it into a new escape: "/%%361dmin" is
// decided as "/%61dmin" (under no prefix "/admin"), forwarded as that, and read by the upstream as "/admin".
TEST(normalise_path, the_normal_form_is_a_fixed_point)
{
    for (std::string in : {"/a/b/../c", "/%7e%41/%2f", "/%4%41", "/%%341dmin", "/%%361dmin", "/simple/%%32E%%32E/admin",
                           "/%2%35%34"}) {
        std::string once = normalise_path(in);
        EXPECT_EQ(normalise_path(once), once) << "input: " << in << ", normal form: " << once;
    }
}

TEST(loose_path, encoded_and_raw_backslashes_and_slashes_are_separators)
{
    expect_each(
        {
            {"/simple/%2F..%2Fadmin", "/admin"},
            {"/simple/%5C..%5Cadmin", "/admin"},
            {"/simple\\..\\admin", "/admin"},
            {"/a%2Fb", "/a/b"},
            {"/a%5Cb", "/a/b"},
        },
        loose_path);
}

TEST(loose_path, runs_of_slashes_are_merged)
{
    expect_each(
        {
            {"//", "/"},
            {"/a//b///c", "/a/b/c"},
            {"/a/%2F%2F/b", "/a/b"},
            {"//..//admin", "/admin"},
        },
        loose_path);
}

TEST(loose_path, segment_parameters_are_dropped)
{
    expect_each(
        {
            {"/a;b/c", "/a/c"},
            {"/simple/..;/admin", "/admin"},
            {"/simple/..;jsessionid=1/admin", "/admin"},
            {"/a;x=1;y=2", "/a"},
        },
        loose_path);
}

// A segment that is only parameters leaves an empty segment; the loose form must merge that too, or a deny on
// "/admin" misses "/;x/admin", which a server that drops parameters and merges slashes (Tomcat) serves as "/admin".
TEST(loose_path, a_segment_of_parameters_only_leaves_no_empty_segment)
{
    expect_each(
        {
            {"/;x/a", "/a"},
            {"/;x/admin", "/admin"},
            {"/simple/;/admin", "/simple/admin"},
        },
        loose_path);
}

TEST(loose_path, a_plain_normal_path_is_unchanged)
{
    expect_each(
        {
            {"/", "/"},
            {"/simple/requests/", "/simple/requests/"},
            {"/packages/a/b.whl", "/packages/a/b.whl"},
            {"/a%20b", "/a%20b"},
        },
        loose_path);
}

TEST(is_normal_path, accepts_only_the_normal_form)
{
    EXPECT_TRUE(is_normal_path("/"));
    EXPECT_TRUE(is_normal_path("/simple/"));
    EXPECT_TRUE(is_normal_path("/a%2Fb"));
    EXPECT_TRUE(is_normal_path("/a;b"));
    EXPECT_FALSE(is_normal_path(""));
    EXPECT_FALSE(is_normal_path("simple/"));
    EXPECT_FALSE(is_normal_path("/a%2fb"));
    EXPECT_FALSE(is_normal_path("/%7e"));
    EXPECT_FALSE(is_normal_path("/a/../b"));
    EXPECT_FALSE(is_normal_path("/a/./b"));
    EXPECT_FALSE(is_normal_path("/a/."));
}

}  // namespace
}  // namespace egressd::protocol::http
