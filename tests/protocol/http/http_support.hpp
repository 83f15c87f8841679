#pragma once

#include "protocol/http/message.hpp"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace egressd::protocol::http::fixtures {

template <typename Case>
std::string case_name(const ::testing::TestParamInfo<Case>& info)
{
    return info.param.name;
}

// Headers as plain pairs, so that EXPECT_EQ prints them on failure.
using field_list = std::vector<std::pair<std::string, std::string>>;

inline field_list flat(const std::vector<header>& headers)
{
    field_list out;
    for (const auto& h : headers) {
        out.emplace_back(h.name, h.value);
    }
    return out;
}

inline std::vector<header> make_headers(const field_list& fields)
{
    std::vector<header> out;
    for (const auto& [n, v] : fields) {
        out.push_back(header{n, v});
    }
    return out;
}

}  // namespace egressd::protocol::http::fixtures

namespace egressd::protocol::http {

// gtest would print the enums as numbers; names make failures readable.
inline void PrintTo(parse_error e, std::ostream* os) { *os << to_string(e); }
inline void PrintTo(target_error e, std::ostream* os) { *os << to_string(e); }
inline void PrintTo(parse_status s, std::ostream* os)
{
    *os << (s == parse_status::complete ? "complete" : s == parse_status::incomplete ? "incomplete" : "error");
}
inline void PrintTo(body_framing::kind k, std::ostream* os)
{
    switch (k) {
    case body_framing::kind::none: *os << "none"; return;
    case body_framing::kind::content_length: *os << "content_length"; return;
    case body_framing::kind::chunked: *os << "chunked"; return;
    case body_framing::kind::until_close: *os << "until_close"; return;
    }
}

}  // namespace egressd::protocol::http
