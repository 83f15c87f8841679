// RFC 3339 times as policy files write them (rule expiry) and the CLI reads them (--at).

#include "config/rfc3339.hpp"

#include <gtest/gtest.h>

#include <ostream>

#include <chrono>
#include <optional>
#include <string>

namespace egressd::config {
namespace {

struct parse_case {
    std::string name;
    std::string text;
    std::optional<std::string> utc;  // the same instant in "Z" form; nullopt: must be refused
};

// Test names already say which case failed; print just the name instead of the bytes.
void PrintTo(const parse_case& c, std::ostream* os) { *os << c.name; }

class config_rfc3339_parse : public ::testing::TestWithParam<parse_case> {};

TEST_P(config_rfc3339_parse, reads_the_instant)
{
    const auto& c = GetParam();
    auto t = parse_rfc3339(c.text);
    if (!c.utc) {
        EXPECT_FALSE(t.has_value()) << "read as " << format_rfc3339(*t);
        return;
    }
    ASSERT_TRUE(t.has_value());
    EXPECT_EQ(format_rfc3339(*t), *c.utc);
}

std::string case_name(const ::testing::TestParamInfo<parse_case>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(
    accepted, config_rfc3339_parse,
    ::testing::Values(parse_case{"utc_z", "2026-12-31T23:59:59Z", "2026-12-31T23:59:59Z"},
                      parse_case{"lower_z", "2026-12-31T23:59:59z", "2026-12-31T23:59:59Z"},
                      parse_case{"lower_t", "2026-12-31t23:59:59Z", "2026-12-31T23:59:59Z"},
                      parse_case{"epoch", "1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"},
                      parse_case{"plus_offset", "2026-12-31T23:59:59+02:00", "2026-12-31T21:59:59Z"},
                      parse_case{"minus_offset_crosses_day", "2026-12-31T23:59:59-05:30", "2027-01-01T05:29:59Z"},
                      parse_case{"plus_offset_crosses_year", "2027-01-01T00:30:00+01:00", "2026-12-31T23:30:00Z"},
                      parse_case{"zero_offset_plus", "2026-06-01T12:00:00+00:00", "2026-06-01T12:00:00Z"},
                      parse_case{"zero_offset_minus", "2026-06-01T12:00:00-00:00", "2026-06-01T12:00:00Z"},
                      parse_case{"max_offset", "2026-06-01T12:00:00+23:59", "2026-05-31T12:01:00Z"},
                      // Fractions of a second are dropped, never rounded up.
                      parse_case{"fraction", "2026-12-31T23:59:59.5Z", "2026-12-31T23:59:59Z"},
                      parse_case{"long_fraction_and_offset", "2026-12-31T23:59:59.999999999+01:00",
                                 "2026-12-31T22:59:59Z"},
                      // A leap second reads as the first second of the next minute.
                      parse_case{"leap_second", "2016-12-31T23:59:60Z", "2017-01-01T00:00:00Z"},
                      parse_case{"leap_day", "2024-02-29T00:00:00Z", "2024-02-29T00:00:00Z"},
                      parse_case{"leap_day_2000", "2000-02-29T00:00:00Z", "2000-02-29T00:00:00Z"},
                      parse_case{"last_second", "9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z"},
                      parse_case{"first_second", "0000-01-01T00:00:00Z", "0000-01-01T00:00:00Z"}),
    case_name);

INSTANTIATE_TEST_SUITE_P(
    refused, config_rfc3339_parse,
    ::testing::Values(parse_case{"empty", "", std::nullopt},
                      parse_case{"word", "tomorrow", std::nullopt},
                      parse_case{"no_offset", "2026-12-31T23:59:59", std::nullopt},
                      parse_case{"date_only", "2026-12-31", std::nullopt},
                      parse_case{"no_seconds", "2026-12-31T23:59Z", std::nullopt},
                      parse_case{"february_30", "2026-02-30T00:00:00Z", std::nullopt},
                      parse_case{"february_29_not_leap", "2023-02-29T00:00:00Z", std::nullopt},
                      parse_case{"february_29_1900", "1900-02-29T00:00:00Z", std::nullopt},
                      parse_case{"april_31", "2026-04-31T00:00:00Z", std::nullopt},
                      parse_case{"month_13", "2026-13-01T00:00:00Z", std::nullopt},
                      parse_case{"month_0", "2026-00-01T00:00:00Z", std::nullopt},
                      parse_case{"day_0", "2026-01-00T00:00:00Z", std::nullopt},
                      parse_case{"hour_24", "2026-01-01T24:00:00Z", std::nullopt},
                      parse_case{"minute_60", "2026-01-01T23:60:00Z", std::nullopt},
                      parse_case{"second_61", "2026-01-01T23:59:61Z", std::nullopt},
                      parse_case{"space_separator", "2026-12-31 23:59:59Z", std::nullopt},
                      parse_case{"slash_date", "2026/12/31T23:59:59Z", std::nullopt},
                      parse_case{"dot_time", "2026-12-31T23.59.59Z", std::nullopt},
                      parse_case{"two_digit_year", "26-12-31T23:59:59Z", std::nullopt},
                      parse_case{"one_digit_month", "2026-1-31T23:59:59Z", std::nullopt},
                      parse_case{"empty_fraction", "2026-12-31T23:59:59.Z", std::nullopt},
                      parse_case{"offset_without_colon", "2026-12-31T23:59:59+0200", std::nullopt},
                      parse_case{"offset_hours_only", "2026-12-31T23:59:59+02", std::nullopt},
                      parse_case{"offset_hour_24", "2026-12-31T23:59:59+24:00", std::nullopt},
                      parse_case{"offset_minute_60", "2026-12-31T23:59:59+02:60", std::nullopt},
                      parse_case{"offset_letter", "2026-12-31T23:59:59UTC", std::nullopt},
                      parse_case{"trailing_text", "2026-12-31T23:59:59Zx", std::nullopt},
                      parse_case{"trailing_space", "2026-12-31T23:59:59Z ", std::nullopt},
                      parse_case{"leading_space", " 2026-12-31T23:59:59Z", std::nullopt},
                      parse_case{"signed_digits", "2026-+1-31T23:59:59Z", std::nullopt},
                      // Found by fuzzing: instants outside the four-digit years, which no UTC text can name.
                      parse_case{"leap_second_into_year_10000", "9999-12-31T23:59:60Z", std::nullopt},
                      parse_case{"offset_into_year_10000", "9999-12-31T23:59:59-00:01", std::nullopt},
                      parse_case{"offset_before_year_0", "0000-01-01T00:00:00+00:01", std::nullopt}),
    case_name);

TEST(config_rfc3339_format, writes_utc_with_z)
{
    using std::chrono::seconds;
    using std::chrono::sys_seconds;
    EXPECT_EQ(format_rfc3339(sys_seconds{seconds{0}}), "1970-01-01T00:00:00Z");
    EXPECT_EQ(format_rfc3339(sys_seconds{seconds{-1}}), "1969-12-31T23:59:59Z");
    EXPECT_EQ(format_rfc3339(sys_seconds{seconds{1'700'000'000}}), "2023-11-14T22:13:20Z");
    EXPECT_EQ(format_rfc3339(sys_seconds{seconds{4'102'444'799}}), "2099-12-31T23:59:59Z");
}

TEST(config_rfc3339_format, round_trips_through_parse)
{
    for (std::int64_t s : {0LL, 59LL, 86'399LL, 951'782'400LL, 1'798'761'599LL}) {
        std::chrono::sys_seconds t{std::chrono::seconds{s}};
        auto back = parse_rfc3339(format_rfc3339(t));
        ASSERT_TRUE(back.has_value()) << format_rfc3339(t);
        EXPECT_EQ(*back, t) << format_rfc3339(t);
    }
}

}  // namespace
}  // namespace egressd::config
