#pragma once

// Shared by the in-process CLI tests and the tests that run the built binary.

#include "proxy/cli.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#ifndef EGRESSD_SOURCE_DIR
#error "EGRESSD_SOURCE_DIR must be defined by the build"
#endif

namespace egressd::proxy::test {

inline const std::string example_path = std::string(EGRESSD_SOURCE_DIR) + "/config/examples/policy.yaml";

struct cli_result {
    int code = -1;
    std::string out;
    std::string err;
};

inline cli_result run(const std::vector<std::string>& args)
{
    std::ostringstream out;
    std::ostringstream err;
    cli_result r;
    r.code = run_cli(args, out, err);
    r.out = out.str();
    r.err = err.str();
    return r;
}

inline std::string show(const cli_result& r)
{
    return "exit " + std::to_string(r.code) + "\n--- stdout\n" + r.out + "--- stderr\n" + r.err;
}

inline std::string read_text(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

inline bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

// The lines of text that start with prefix.
inline std::vector<std::string> lines_starting(const std::string& text, std::string_view prefix)
{
    std::vector<std::string> found;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (line.starts_with(prefix)) {
            found.push_back(line);
        }
    }
    return found;
}

inline std::size_t count_containing(const std::string& text, std::string_view part)
{
    std::size_t n = 0;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        n += contains(line, part) ? 1 : 0;
    }
    return n;
}

// "line:column" of the one occurrence of needle in text, so expectations follow the example file as it is
// edited instead of hard-coding its line numbers.
inline std::string position_of(const std::string& text, std::string_view needle)
{
    auto at = text.find(needle);
    EXPECT_NE(at, std::string::npos) << "not in the text: " << needle;
    EXPECT_EQ(text.find(needle, at + 1), std::string::npos) << "more than once in the text: " << needle;
    if (at == std::string::npos) {
        return "?:?";
    }
    std::size_t line = 1;
    std::size_t line_start = 0;
    for (std::size_t i = 0; i < at; ++i) {
        if (text[i] == '\n') {
            ++line;
            line_start = i + 1;
        }
    }
    return std::to_string(line) + ":" + std::to_string(at - line_start + 1);
}

// Replaces the one occurrence of from (which must exist, once).
inline void replace_once(std::string& text, std::string_view from, std::string_view to)
{
    auto at = text.find(from);
    ASSERT_NE(at, std::string::npos) << "not in the text: " << from;
    ASSERT_EQ(text.find(from, at + 1), std::string::npos) << "more than once in the text: " << from;
    text.replace(at, from.size(), to);
}

// The example policy with three independent mistakes, and where each must be reported ("line:column").
struct broken_example {
    std::string text;
    std::vector<std::string> positions;
};

inline broken_example break_example()
{
    broken_example b;
    b.text = read_text(example_path);
    replace_once(b.text, "mode: enforce\n", "mode: enforced\n");
    replace_once(b.text, "ports: [20-21]", "ports: [21-20]");
    replace_once(b.text, "sources: [10.40.0.0/16]", "sources: [10.40.0.1/16]");
    b.positions = {position_of(b.text, "enforced\n"), position_of(b.text, "21-20]"),
                   position_of(b.text, "10.40.0.1/16")};
    return b;
}

}  // namespace egressd::proxy::test
