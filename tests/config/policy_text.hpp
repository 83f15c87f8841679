#pragma once

// Builders for policy YAML in the config tests. Every document is written line by line so that a case's
// expected line number can be read straight off the text; the column comments give the arithmetic.

#include "config/policy_loader.hpp"
#include "config/rfc3339.hpp"
#include "policy/domain.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <initializer_list>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::config::test {

// Joins lines with '\n' (and ends with one): line N of the document is the Nth string.
inline std::string lines(std::initializer_list<std::string_view> text)
{
    std::string out;
    for (auto l : text) {
        out += l;
        out += '\n';
    }
    return out;
}

// A valid policy with one group "web" holding one rule, used by client "app" (source 10.0.0.0/8):
//   1 version: 1
//   2 groups:
//   3   web:
//   4     rules:
//   5       - ports: <ports>                 the rule's map starts at 5:9, <ports> at column 16
//   6         destinations: <destinations>   <destinations> at column 23
//   7..       <extra>, verbatim              rule keys written with 8 spaces start at column 9
//   then      clients: / app: / sources / groups
inline std::string rule_policy(std::string_view ports, std::string_view destinations,
                               std::initializer_list<std::string_view> extra = {})
{
    std::string out = lines({"version: 1", "groups:", "  web:", "    rules:"});
    out += "      - ports: " + std::string(ports) + "\n";
    out += "        destinations: " + std::string(destinations) + "\n";
    for (auto l : extra) {
        out += std::string(l) + "\n";
    }
    out += lines({"clients:", "  app:", "    sources: [10.0.0.0/8]", "    groups: [web]"});
    return out;
}

// A valid group "web" (lines 1-6) and client "app" whose body is given:
//   7 clients:
//   8   app:                 the client's key at 8:3
//   9.. <client_lines>       client keys written with 4 spaces start at column 5
inline std::string client_policy(std::initializer_list<std::string_view> client_lines)
{
    std::string out = lines({"version: 1", "groups:", "  web:", "    rules:", "      - ports: [443]",
                             "        destinations: [api.example.com]", "clients:", "  app:"});
    for (auto l : client_lines) {
        out += std::string(l) + "\n";
    }
    return out;
}

// Names parameterized cases after their `name` field.
template <typename Case>
std::string param_name(const ::testing::TestParamInfo<Case>& param)
{
    return param.param.name;
}

inline std::string show(const std::vector<diagnostic>& diagnostics, std::string_view severity)
{
    std::string out;
    for (const auto& d : diagnostics) {
        out += "  " + d.format(severity) + "\n";
    }
    return out;
}

// Everything a failed expectation needs to explain itself.
inline std::string show(const loaded_policy& loaded)
{
    return "errors:\n" + show(loaded.errors, "error") + "warnings:\n" + show(loaded.warnings, "warning");
}

// Fixed instants written as RFC 3339: tests never read the clock.
inline policy::time_point utc(std::string_view rfc3339_text)
{
    auto t = parse_rfc3339(rfc3339_text);
    if (!t) {
        throw std::invalid_argument("bad time in test: " + std::string(rfc3339_text));
    }
    return *t;
}

inline policy::host target(std::string_view text)
{
    auto h = policy::host::parse(text);
    if (!h.value) {
        throw std::invalid_argument("bad host in test: " + std::string(text) + ": " + h.error);
    }
    return *h.value;
}

// Expected position and message fragment of one diagnostic.
struct located {
    std::string file;
    std::uint32_t line = 0;
    std::uint32_t column = 0;
    std::string fragment;
};

inline void expect_diagnostic(const diagnostic& d, const located& want)
{
    EXPECT_EQ(d.file, want.file);
    EXPECT_EQ(d.where.line, want.line) << d.format("diagnostic");
    EXPECT_EQ(d.where.column, want.column) << d.format("diagnostic");
    EXPECT_NE(d.message.find(want.fragment), std::string::npos)
        << "message: " << d.message << "\nexpected to contain: " << want.fragment;
}

}  // namespace egressd::config::test
