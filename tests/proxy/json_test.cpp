#include "proxy/json.hpp"

#include <gtest/gtest.h>

namespace {

using egressd::proxy::json_string;

struct json_case {
    std::string name;
    std::string input;
    std::string expected;
};

class json_cli_escaping : public ::testing::TestWithParam<json_case> {};

TEST_P(json_cli_escaping, produces_valid_json_text)
{
    EXPECT_EQ(json_string(GetParam().input), GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(
    all, json_cli_escaping,
    ::testing::Values(json_case{"plain", "abc", "\"abc\""}, json_case{"quote_and_backslash", "a\"b\\c", "\"a\\\"b\\\\c\""},
                      json_case{"controls", std::string("\n\r\t\x01\x7f", 5), "\"\\n\\r\\t\\u0001\\u007f\""},
                      json_case{"utf8_two_bytes", "B\xc3\xbc" "cher", "\"B\xc3\xbc" "cher\""},
                      json_case{"utf8_four_bytes", "\xf0\x9f\x94\x92", "\"\xf0\x9f\x94\x92\""},
                      json_case{"lone_continuation", "a\x80z", "\"a\\ufffdz\""},
                      json_case{"truncated_sequence", "a\xc3", "\"a\\ufffd\""},
                      json_case{"overlong_slash", "\xc0\xaf", "\"\\ufffd\\ufffd\""},
                      json_case{"surrogate", "\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""},
                      json_case{"above_unicode", "\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""},
                      json_case{"nul", std::string("a\0b", 3), "\"a\\u0000b\""}),
    [](const ::testing::TestParamInfo<json_case>& param_info) { return param_info.param.name; });

}  // namespace
