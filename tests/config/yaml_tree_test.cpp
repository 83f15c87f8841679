// parse_yaml on its own: node kinds and positions, document counting, the alias expansion budget, and the fast
// parser (libfyaml) building exactly the tree, or the error, that the reference (yaml-cpp) does.

#include "config/yaml_tree.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <sstream>
#include <string>

namespace egressd::config {
namespace {

std::optional<yaml_node> parse(const std::string& text, yaml_error& error, std::size_t max_nodes = 50'000'000)
{
    std::istringstream in(text);
    return parse_yaml(in, error, max_nodes);
}

void expect_at(const yaml_node& n, std::uint32_t line, std::uint32_t column)
{
    EXPECT_EQ(n.where.line, line) << "node '" << n.value << "'";
    EXPECT_EQ(n.where.column, column) << "node '" << n.value << "'";
}

TEST(config_yaml, builds_a_tree_with_positions)
{
    yaml_error error;
    auto root = parse("name: egressd\nports: [80, '443']\nnested:\n  key: value\n", error);
    ASSERT_TRUE(root.has_value()) << error.message;
    ASSERT_TRUE(root->is_map());
    ASSERT_EQ(root->entries.size(), 3u);

    const auto& [name_key, name] = root->entries[0];
    EXPECT_EQ(name_key.value, "name");
    expect_at(name_key, 1, 1);
    EXPECT_TRUE(name.is_scalar());
    EXPECT_EQ(name.value, "egressd");
    expect_at(name, 1, 7);

    const auto& ports = root->entries[1].value;
    ASSERT_TRUE(ports.is_sequence());
    expect_at(ports, 2, 8);
    ASSERT_EQ(ports.items.size(), 2u);
    EXPECT_EQ(ports.items[0].value, "80");
    EXPECT_TRUE(ports.items[0].plain);
    expect_at(ports.items[0], 2, 9);
    // Quoting is remembered, so "443" and 443 can be told apart.
    EXPECT_EQ(ports.items[1].value, "443");
    EXPECT_FALSE(ports.items[1].plain);
    expect_at(ports.items[1], 2, 13);

    const auto& nested = root->entries[2].value;
    ASSERT_TRUE(nested.is_map());
    expect_at(nested, 4, 3);
    ASSERT_EQ(nested.entries.size(), 1u);
    EXPECT_EQ(nested.entries[0].value.value, "value");
    expect_at(nested.entries[0].value, 4, 8);
}

TEST(config_yaml, an_empty_value_is_null_and_located_at_its_key)
{
    yaml_error error;
    auto root = parse("first:\nsecond: 2\n", error);
    ASSERT_TRUE(root.has_value()) << error.message;
    ASSERT_EQ(root->entries.size(), 2u);
    const auto& first = root->entries[0].value;
    EXPECT_TRUE(first.is_null());
    // Not at "second" on the next line: a message about this value must point at the key that has it.
    expect_at(first, 1, 1);
}

TEST(config_yaml, keeps_repeated_keys_for_the_schema_to_report)
{
    yaml_error error;
    auto root = parse("a: 1\na: 2\n", error);
    ASSERT_TRUE(root.has_value()) << error.message;
    ASSERT_EQ(root->entries.size(), 2u);
    expect_at(root->entries[1].key, 2, 1);
}

TEST(config_yaml, refuses_anything_but_one_document)
{
    yaml_error error;
    EXPECT_FALSE(parse("", error).has_value());
    EXPECT_EQ(error.message, "empty document: expected a mapping");
    EXPECT_EQ(error.where.line, 1u);
    EXPECT_EQ(error.where.column, 1u);

    error = {};
    EXPECT_FALSE(parse("a: 1\n---\nb: 2\n", error).has_value());
    EXPECT_EQ(error.message, "more than one YAML document: expected exactly one");
    EXPECT_EQ(error.where.line, 2u);
    EXPECT_EQ(error.where.column, 1u);

    // An explicit start marker on a single document is fine.
    error = {};
    EXPECT_TRUE(parse("---\na: 1\n", error).has_value()) << error.message;
}

TEST(config_yaml, reports_syntax_errors_with_their_position)
{
    yaml_error error;
    EXPECT_FALSE(parse("a: 1\nb: [1, 2\n", error).has_value());
    EXPECT_EQ(error.message, "YAML syntax error: end of sequence flow not found");
    EXPECT_EQ(error.where.line, 3u);
    EXPECT_EQ(error.where.column, 1u);
}

TEST(config_yaml, expands_aliases_in_place)
{
    yaml_error error;
    auto root = parse("a: &web [80, 443]\nb: *web\n", error);
    ASSERT_TRUE(root.has_value()) << error.message;
    const auto& b = root->entries[1].value;
    ASSERT_TRUE(b.is_sequence());
    ASSERT_EQ(b.items.size(), 2u);
    EXPECT_EQ(b.items[1].value, "443");
    expect_at(b, 2, 4);  // the alias node is where the alias is written
}

TEST(config_yaml, counts_expanded_aliases_against_the_budget)
{
    // Nodes: the root map, key a, the list and its 3 items (6), key b (7), the alias copies the 4-node list (11).
    const std::string text = "a: &a [1, 2, 3]\nb: *a\n";
    yaml_error error;
    EXPECT_TRUE(parse(text, error, 11).has_value()) << error.message;

    error = {};
    EXPECT_FALSE(parse(text, error, 10).has_value());
    EXPECT_EQ(error.message, "aliases expand to more than 10 nodes");
    EXPECT_EQ(error.where.line, 2u);
    EXPECT_EQ(error.where.column, 4u);
}

TEST(config_yaml, refuses_an_alias_bomb_within_a_small_budget)
{
    // Level a holds 9 scalars; every further level holds 9 aliases of the one before.
    std::string text = "a: &a [x, x, x, x, x, x, x, x, x]\n";
    std::string previous = "a";
    for (char level = 'b'; level <= 'i'; ++level) {
        std::string name(1, level);
        text += name + ": &" + name + " [";
        for (int i = 0; i < 9; ++i) {
            text += (i == 0 ? "*" : ", *") + previous;
        }
        text += "]\n";
        previous = name;
    }
    yaml_error error;
    EXPECT_FALSE(parse(text, error, 1000).has_value());
    EXPECT_EQ(error.message, "aliases expand to more than 1000 nodes");
    // The root map and levels a to c take 925 nodes; key d and its list make 927, and the first *c
    // (820 nodes) goes over.
    // "d: &d [" is 7 characters, so that alias is at 4:8.
    EXPECT_EQ(error.where.line, 4u);
    EXPECT_EQ(error.where.column, 8u);
}

// --- the fast path against the reference ------------------------------------------------------------------

std::string describe(const yaml_node& n)
{
    std::string out = std::to_string(static_cast<int>(n.type)) + (n.plain ? "p" : "q") + "@" +
                      std::to_string(n.where.line) + ":" + std::to_string(n.where.column);
    if (n.is_scalar()) {
        out += "'" + n.value + "'";
    }
    for (const auto& item : n.items) {
        out += " [" + describe(item) + "]";
    }
    for (const auto& [key, value] : n.entries) {
        out += " {" + describe(key) + " => " + describe(value) + "}";
    }
    return out;
}

std::string outcome(const std::string& text, yaml_engine engine)
{
    yaml_error error;
    auto root = parse_yaml(std::string_view(text), error, 1000, engine);
    if (!root) {
        return "error@" + std::to_string(error.where.line) + ":" + std::to_string(error.where.column) + " " +
               error.message;
    }
    return describe(*root);
}

std::string long_flow_line()
{
    std::string text = "destinations: [";
    for (int i = 0; i < 300; ++i) {
        text += (i == 0 ? "\"h" : ", \"h") + std::to_string(i) + ".example.com\"";
    }
    return text + "]\nnext: [a, 'b']\n";
}

TEST(config_yaml, refuses_control_characters_at_the_first)
{
    for (auto engine : {yaml_engine::libfyaml, yaml_engine::yaml_cpp}) {
        yaml_error error;
        std::string text("version: 1\nlogging:\tv\x10\0bose\n", 28);
        EXPECT_FALSE(parse_yaml(std::string_view(text), error, 1000, engine).has_value());
        EXPECT_EQ(error.where.line, 2u);
        EXPECT_EQ(error.where.column, 11u);
        EXPECT_EQ(error.message, "control character 0x10: expected printable text");
    }
}

TEST(config_yaml, refuses_malformed_utf8_at_the_first_byte)
{
    for (auto engine : {yaml_engine::libfyaml, yaml_engine::yaml_cpp}) {
        yaml_error error;
        // "é" is two bytes: the truncated three-byte sequence after it starts at byte column 14.
        EXPECT_FALSE(parse_yaml("version: 1\non_revoke: \xc3\xa9\xe1{tunnels: keep}\n", error, 1000, engine));
        EXPECT_EQ(error.where.line, 2u);
        EXPECT_EQ(error.where.column, 14u);
        EXPECT_EQ(error.message, "invalid UTF-8: expected text in UTF-8");
    }
    yaml_error error;
    EXPECT_TRUE(parse_yaml("a: \xf0\x9f\x98\x80 \xe2\x82\xac \xc3\xa9\n", error).has_value()) << error.message;
}

TEST(config_yaml, refuses_a_carriage_return_without_a_line_feed)
{
    yaml_error error;
    EXPECT_FALSE(parse_yaml("version: 1\r\nworkers: 0 # one per core\r\r0: x\r\n", error).has_value());
    EXPECT_EQ(error.where.line, 2u);
    EXPECT_EQ(error.where.column, 26u);
    EXPECT_EQ(error.message, "carriage return without a line feed: expected LF or CRLF line ends");
}

TEST(config_yaml, survives_an_error_libfyaml_cannot_display)
{
    // libfyaml 0.7 crashed drawing the source line under this error (found by fuzzing): errors are collected now.
    std::string text = "a: ";
    for (int i = 0; i < 113; ++i) {
        text += "[x, ";
    }
    text += "'" + std::string(280, 'y') + "\n  " + std::string(410, 'z');
    yaml_error error;
    EXPECT_FALSE(parse_yaml(std::string_view(text), error).has_value());
    EXPECT_EQ(error.where.line, 2u);
    EXPECT_EQ(error.where.column, 413u);
    EXPECT_EQ(error.message, "YAML syntax error: illegal EOF in scalar");
}

TEST(config_yaml, an_escape_cut_off_by_the_end_is_reported_inside_the_text)
{
    // yaml-cpp put this one column past the last byte and quoted its end-of-input sentinel 0x04 (found by fuzzing).
    for (auto engine : {yaml_engine::libfyaml, yaml_engine::yaml_cpp}) {
        yaml_error error;
        EXPECT_FALSE(parse_yaml("version: 1\na: \"x\\", error, 1000, engine).has_value());
        EXPECT_EQ(error.where.line, 2u);
        EXPECT_EQ(error.where.column, 7u);
        EXPECT_EQ(error.message, "YAML syntax error: unknown escape character: the end of the input");
        // An escape of a multi-byte character: yaml-cpp quotes its first byte alone, which is no UTF-8.
        EXPECT_FALSE(parse_yaml("a: \"x\\\xc3\xa9\"\n", error, 1000, engine).has_value());
        EXPECT_EQ(error.message, "YAML syntax error: unknown escape character: \\xC3");
    }
}

class config_yaml_engines : public ::testing::TestWithParam<std::string> {};

TEST_P(config_yaml_engines, build_the_same_tree_or_error)
{
    const auto& text = GetParam();
    EXPECT_EQ(outcome(text, yaml_engine::libfyaml), outcome(text, yaml_engine::yaml_cpp)) << text;
}

INSTANTIATE_TEST_SUITE_P(
    policy_shapes, config_yaml_engines,
    ::testing::Values(
        // Quoted and plain scalars: "443" and 443 differ only in the plain flag.
        "ports: [443, \"443\", '443', 80-81, all]\n",
        "a: 'it''s'\nb: \"tab\\there \\\"q\\\" \\u00e9\"\nc: plain with  spaces\nd: 'x' \n",
        // Nulls: empty values, ~ and null; a quoted null is a string; a tagged null is not plain.
        "a:\nb: ~\nc: null\nd: 'null'\ne: !!str null\nf: NULL\n",
        "groups:\n  web:\n    rules:\n      - ports: [443]\n        destinations:\n          - a.example.com\n"
        "          - \"*.b.example.com\"\n          - .c.example.com # a comment\n",
        // Comments everywhere, blank lines, an explicit document start and end.
        "# head\n---\n# after\nversion: 1 # trailing\n\n\nmode: enforce\n...\n",
        // Multi-line scalars: plain continuation, literal and folded blocks, quoted across lines.
        "description: one\n  two\n  three\nnext: x\n",
        "a: |\n  line one\n  line two\nb: >-\n  folded\n  text\nc: \"across\n  lines\"\nd: 'single\n\n  quoted'\n",
        // Anchors and aliases, on scalars, lists and maps, with tags and redefinitions.
        "a: &web [80, 443]\nb: *web\nc: &s str\nd: *s\ne: &m {k: v}\nf: *m\ng: &s other\nh: *s\n",
        "a: &x !!str 5\nb: !!int &y 6\nc: [*x, *y]\n",
        // Flow maps and nested flow collections, spread over lines.
        "a: {b: 1, c: [x, y], 'd': \"e\"}\nf: [\n  1,\n  2,\n]\ng: [a: b]\n",
        // Repeated keys are kept for the schema to report.
        "a: 1\na: 2\nb:\n  c: 1\n  c: 1\n",
        // Non-ASCII text before another scalar on the same line: columns count bytes.
        "a: {d: 'café', e: x}\n'ключ': значение\n",
        // A UTF-8 byte order mark: the first line's columns count from after it (found by fuzzing).
        "\xEF\xBB\xBFversion: 1\r\ngroups:\r\n  web: x\r\n",
        // Control characters and NUL bytes: refused at the first, where the two parsers disagreed (fuzzing).
        std::string("version: 1\nlogging: v\x10\0bose\n", 28), "a: \x7f\n",
        // Malformed UTF-8: a truncated sequence, an overlong form, a surrogate, a stray continuation byte.
        "version: 1\non_revoke:\xe1{tunnels: keep}\n", "a: \xc0\xafx\n", "a: \xed\xa0\x80\n", "a: x\x80\n",
        // A key over two lines in a flow mapping: libfyaml joined it, yaml-cpp refuses it (found by fuzzing).
        "deny: [{destinations: [a.example], p\r\norts: [443]}]\n", "a: {b\n c: 1}\n", "\"a\n b\": 1\n",
        // A tag with a flow indicator: libfyaml took it whole, yaml-cpp refuses it (found by fuzzing).
        "a: !x,y 1\n", "!x,y: 1\n", "a: !x{y} [1]\n", "!son,on: 0\naddres!soj, intra::/!s",
        "!stk/32s!soj     ra::/!sj, intr/61s!soj     ra::/!s", "a: !b/c!d 1\n", "a: !!str!x 1\n",
        // A tab starting a plain scalar's continuation line: libfyaml folded it, yaml-cpp refuses it (fuzzing).
        "version: 1\nersion: 1\n\t g\n", "a: x\n\ty\n",
        // A lone CR, which YAML reads as a line break: refused, positions count LF only (fuzzing).
        "a: 1 # note\r0: x\n", "a: 1\r",
        // A second document with a syntax error: the reference's error, not the fast path's "more than one".
        "version: 1\n---\nvdirectersion:versios:\n ~ web:\n    rules   :\n   - ports: [443]\n",
        // A scalar value on the next line at its key's column: libfyaml took it as the value (fuzzing).
        "version: 1\naddress_gu#rd:\n0::/80\"]\n", "a:\nb\n", "a:\n  b\n", "a:\n- b\n",
        // A '?' inside a plain scalar: libfyaml read "[192?.0.2.0/24]" as one scalar, yaml-cpp refuses (fuzzing).
        "a: [192?.0.2.0/24]\n", "a: b?c\n", "a: {k: x?}\n",
        // A tab at a line's start outside a scalar: the parsers told the cases apart differently (fuzzing).
        ":: e\n\t", "a: 1\n\t\nb: 2\n", "\ta: 1\n",
        // A bare non-specific tag: the parsers disagreed (fuzzing); every tag goes to the reference.
        "!", "a: !\n", "a: ! x\n",
        // A single pair in a flow sequence is a map placed at its key; libfyaml placed it at its ':' (fuzzing).
        "sources: [10.0.0.0: /8]\n", "a: [x, &k y: *k]\n", "a: [[x]: b, {c: d}: e]\n", "a: [ k : v ]\n",
        "a: [::]\nb: [1::]\n",
        // An anchored plain scalar over two lines: libfyaml folded it, yaml-cpp mostly refuses it (fuzzing).
        "&ion: 1\nspiffe://\n", "- &a 1\n  b\n", "k:\n  &a 1\n  b\n", "k: &a 1\n  b\n", "k:\n  &a\n  1\n  b\n",
        // An anchor or alias glued to a '[' or '{': libfyaml read on, yaml-cpp refuses it (fuzzing).
        "ports: &pz[443, 81]\n", "a: &p{b: 1}\n", "a: &p 1\nb: *p[\n", "a: [&p 1, *p]\nb: {&q x: 1, y: *q}\n",
        // An anchor on the key's line, the value on the next at the key's column: libfyaml took it as the value,
        // yaml-cpp as a key (fuzzing).
        "a: &a-upstream_proxy\na:/&a-upstream_proxy\n", "a: &x\nb\n", "a: &x\n'b'\n", "a: &x\n- 1\n", "a: &x\n  b\n",
        // A byte order mark after the first: libfyaml skipped it, yaml-cpp keeps it in the scalar (fuzzing).
        "\xEF\xBB\xBF\xEF\xBB\xBF l22\"\n", "a: \xEF\xBB\xBFx\n",
        // A double-quoted escape yaml-cpp writes as a lone byte (\N, \_) or refuses (a UTF-16 surrogate pair, which
        // libfyaml joins): left to it (fuzzing); the others agree.
        "a: \"\\ud83d\\ude00\"\n", "a: \"\\uDC00\"\n",
        "a: \"w\\N4\"\n", "a: \"\\_\"\n", "a: \"x\\\ty\"\n", "a: \"\\L \\P \\x41 \\u00e9 \\U0001F600 \\0\"\n",
        // An implicit key longer than YAML's 1024 characters: yaml-cpp refuses it, libfyaml read it (fuzzing).
        "\"" + std::string(1100, 'k') + "\": v\n", std::string(1100, 'k') + ": v\n",
        "[" + std::string(1100, 'k') + "]: v\n", "a: {" + std::string(1100, 'k') + ": v}\n",
        "\"" + std::string(900, 'k') + "\": v\n",
        // Empty lines or a CRLF before a closing quote: the parsers kept different line breaks (fuzzing).
        "'a\n\nb\n\n\n'", "k: \"a\n\n\n  \"\n", "k: 'a \n \n \n '\n", "k: 'a\r\n\r\n\r\n'\n", "k: 'a\n\n  '\n",
        "k: 'a\n\n\nb'\n", "'=\r\n'", "k: \"a\r\n  \"\r\n", "k: 'a\r\n  b'\r\n", "k: 'a\n'\n",
        // An anchor on nothing on the line after a key: libfyaml gave it to the key's empty value (fuzzing).
        "bbbk: \n&6upstream_proxyps-*", "a: \n&x", "a: 1\n&x :\n", "a: &x\nb: 1\n",
        // Runs of doubled quotes in single quotes: libfyaml 0.7 read "''''" inside as three quotes (fuzzing).
        "a: '''''mode: ep'''''''''\n", "a: 'a''''b'\n", "a: ''''''\n", "a: 'x\n  y''''z'\n", "a: ' '' '\n",
        // An explicit key on the next line at the '?' column: libfyaml took it as the key (fuzzing).
        "?\n)'", "? \nk: v\n", "- ?\n  k\n",
        // A tab after a block indicator, a directive, a lone document end marker (fuzzing).
        "deny:\n  -\t61r: 1\n", "- \tx: 1\n", "-\tx\n", " &a%\n%\nbroaL br\n", "...\n", "...\n---\na: 1\n",
        // A sequence item at its '-' column on a later line: libfyaml took it as the item (fuzzing).
        "\n-\n-c", "-\n[x]\n", "- a\n-\nb\n", "- a\n-\n\"k\": v\n", "k:\n-\n-c\n", "      - &r\n      p  orts: 1\n",
        // A plain key glued to its ':' and a flow collection: libfyaml read a pair, yaml-cpp refuses it (fuzzing).
        "{a:[b]}\n", "[a:[b]]\n", "{a :[b]}\n", "{\"a\":[b]}\n", "{a:b}\n",
        // CRLF line ends, and a key with spaces.
        "a: 1\r\nb: [x, y]\r\nthe key: v\r\n",
        // Empty sequence items and empty keys go to the reference, which places them.
        "- \n- x\n-\n", "a: [x, , y]\n", "? \n: v\n", "? complex\n: v\n",
        // Documents: none, several, only comments, a bare scalar, a top-level list.
        "", "# only a comment\n", "a: 1\n---\nb: 2\n", "---\n", "just a scalar\n", "- a\n- b\n",
        // Errors: each worded and placed by the reference.
        "version: 1\nmode: enforce: report\n", "version: 1\ngroups: [a, b\n", "version: 1\n\tmode: enforce\n",
        "a: [*.example.com]\n", "a: *nowhere\n", "a: 'unterminated\n", "a: b\n c: d\n", "a:\n- b\n c\n",
        "a: &a [*a]\n", "%YAML 1.2\n---\na: 1\n", "a: @x\n", "{a: 1\n",
        // Tags on collections; a long flow line (columns far from the line's start).
        "a: !!seq [1]\nb: !!map {k: v}\nc: !custom x\n",
        long_flow_line(),
        // Aliases over the budget fail where the reference says, even after text the two read differently
        // (fuzzing).
        "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &p[1]\ne: [*c, *c]\n",
        // Aliases over the budget of 1000 nodes fail at the same alias in both.
        "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c]\n"));

}  // namespace
}  // namespace egressd::config
