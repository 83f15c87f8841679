// parse_yaml on its own: node kinds and positions, document counting, and the alias expansion budget.

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

    const auto& ports = root->entries[1].second;
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

    const auto& nested = root->entries[2].second;
    ASSERT_TRUE(nested.is_map());
    expect_at(nested, 4, 3);
    ASSERT_EQ(nested.entries.size(), 1u);
    EXPECT_EQ(nested.entries[0].second.value, "value");
    expect_at(nested.entries[0].second, 4, 8);
}

TEST(config_yaml, an_empty_value_is_null_and_located_at_its_key)
{
    yaml_error error;
    auto root = parse("first:\nsecond: 2\n", error);
    ASSERT_TRUE(root.has_value()) << error.message;
    ASSERT_EQ(root->entries.size(), 2u);
    const auto& first = root->entries[0].second;
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
    expect_at(root->entries[1].first, 2, 1);
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
    const auto& b = root->entries[1].second;
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

}  // namespace
}  // namespace egressd::config
