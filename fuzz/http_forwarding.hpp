// Comparisons for the HTTP fuzz targets, which check that the head egressd forwards (http::forwarded_*_headers,
// what proxy/session/forwarder.cpp sends) parses back to the same message.
#pragma once

#include "protocol/http/message.hpp"

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::fuzz {

namespace http = protocol::http;

inline bool same_headers(const std::vector<http::header>& a, const std::vector<http::header>& b)
{
    return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                      [](const http::header& x, const http::header& y) { return x.name == y.name && x.value == y.value; });
}

inline bool same_framing(const http::body_framing& a, const http::body_framing& b)
{
    return a.type == b.type && a.length == b.length;
}

}  // namespace egressd::fuzz
