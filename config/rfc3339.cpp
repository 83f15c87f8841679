#include "config/rfc3339.hpp"

#include <cstdio>

namespace egressd::config {
namespace {

// Reads exactly `width` digits at pos.
std::optional<int> digits(std::string_view s, std::size_t pos, std::size_t width)
{
    if (pos + width > s.size()) {
        return std::nullopt;
    }
    int value = 0;
    for (std::size_t i = pos; i < pos + width; ++i) {
        if (s[i] < '0' || s[i] > '9') {
            return std::nullopt;
        }
        value = value * 10 + (s[i] - '0');
    }
    return value;
}

bool at(std::string_view s, std::size_t pos, char c) { return pos < s.size() && s[pos] == c; }

}  // namespace

std::optional<std::chrono::sys_seconds> parse_rfc3339(std::string_view s)
{
    using namespace std::chrono;
    auto y = digits(s, 0, 4);
    auto mo = digits(s, 5, 2);
    auto d = digits(s, 8, 2);
    auto h = digits(s, 11, 2);
    auto mi = digits(s, 14, 2);
    auto sec = digits(s, 17, 2);
    if (!y || !mo || !d || !h || !mi || !sec || !at(s, 4, '-') || !at(s, 7, '-') ||
        !(at(s, 10, 'T') || at(s, 10, 't')) || !at(s, 13, ':') || !at(s, 16, ':')) {
        return std::nullopt;
    }
    year_month_day date{year{*y}, month{static_cast<unsigned>(*mo)}, day{static_cast<unsigned>(*d)}};
    if (!date.ok() || *h > 23 || *mi > 59 || *sec > 60) {
        return std::nullopt;
    }
    std::size_t pos = 19;
    if (at(s, pos, '.')) {
        ++pos;
        std::size_t start = pos;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
            ++pos;
        }
        if (pos == start) {
            return std::nullopt;
        }
    }
    seconds offset{0};
    if (at(s, pos, 'Z') || at(s, pos, 'z')) {
        ++pos;
    } else if (at(s, pos, '+') || at(s, pos, '-')) {
        auto oh = digits(s, pos + 1, 2);
        auto om = digits(s, pos + 4, 2);
        if (!oh || !om || !at(s, pos + 3, ':') || *oh > 23 || *om > 59) {
            return std::nullopt;
        }
        offset = hours{*oh} + minutes{*om};
        if (s[pos] == '-') {
            offset = -offset;
        }
        pos += 6;
    } else {
        return std::nullopt;
    }
    if (pos != s.size()) {
        return std::nullopt;
    }
    // A leap second (:60) is read as the first second of the next minute.
    auto instant = sys_days{date} + hours{*h} + minutes{*mi} + seconds{*sec} - offset;
    // An offset or a leap second can carry the instant outside the four-digit years, which no RFC 3339 UTC text
    // can name: it could never be written back (grants, history) and read again.
    constexpr sys_seconds earliest = sys_days{year{0} / January / 1};
    constexpr sys_seconds latest = sys_days{year{9999} / December / 31} + hours{23} + minutes{59} + seconds{59};
    if (instant < earliest || instant > latest) {
        return std::nullopt;
    }
    return instant;
}

namespace {

template <typename Duration>
std::string format_utc(std::chrono::sys_time<Duration> t, bool millis)
{
    using namespace std::chrono;
    auto day_start = floor<days>(t);
    year_month_day date{day_start};
    hh_mm_ss<milliseconds> time{duration_cast<milliseconds>(t - day_start)};
    char buffer[64];
    int n = std::snprintf(buffer, sizeof buffer, "%04d-%02u-%02uT%02d:%02d:%02d", static_cast<int>(date.year()),
                          static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()),
                          static_cast<int>(time.hours().count()), static_cast<int>(time.minutes().count()),
                          static_cast<int>(time.seconds().count()));
    if (millis) {
        std::snprintf(buffer + n, sizeof buffer - static_cast<std::size_t>(n), ".%03dZ",
                      static_cast<int>(time.subseconds().count()));
    } else {
        std::snprintf(buffer + n, sizeof buffer - static_cast<std::size_t>(n), "Z");
    }
    return buffer;
}

}  // namespace

std::string format_rfc3339(std::chrono::sys_seconds t) { return format_utc(t, false); }

std::string format_rfc3339(std::chrono::sys_time<std::chrono::milliseconds> t) { return format_utc(t, true); }

}  // namespace egressd::config
