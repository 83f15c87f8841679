#pragma once

// What the admin endpoint does with a request, decided from its method, target and Authorization headers alone:
// plain functions, so that the rules are tested and fuzzed without a socket.

// <ostream> first: Boost 1.81's string_view.hpp uses std::basic_ostream without including it (clang 14 refuses).
#include <ostream>

#include <boost/beast/http/verb.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace egressd::proxy::admin {

// A request head over this is answered 431, a body over that 413.
constexpr std::size_t max_head_bytes = 8 * 1024;
constexpr std::size_t max_body_bytes = 64 * 1024;

enum class route : std::uint8_t { healthz, readyz, status, metrics, reload };

enum class outcome : std::uint8_t {
    serve,               // the route's handler answers
    bad_target,          // 400: not origin-form
    not_found,           // 404
    method_not_allowed,  // 405, with allow_header(route)
    unauthorized,        // 401: the route needs the bearer token and the request does not carry it
};

struct admission {
    outcome result = outcome::bad_target;
    std::optional<route> to;  // set for serve, method_not_allowed and unauthorized
};

using token_digest = std::array<unsigned char, 32>;

// The route of a path (the target up to '?'), matched exactly.
std::optional<route> find_route(std::string_view path);
// Probes must work without the token: a kubelet cannot be given one.
bool needs_token(route r);
bool method_allowed(route r, boost::beast::http::verb method);
std::string_view allow_header(route r);

// The token of "Bearer <token>" (RFC 6750; the scheme case-insensitive, one or more spaces after it), or
// nullopt for another scheme or no token.
std::optional<std::string_view> bearer_token(std::string_view authorization);

// authorization: the values of every Authorization header, in order. expected: the SHA-256 of the token
// callers must send, or nullopt when none is needed. Exactly one Authorization header with the right token
// passes; the comparison takes the same time whatever the token.
admission admit(boost::beast::http::verb method, std::string_view target,
                std::span<const std::string_view> authorization, const std::optional<token_digest>& expected);

}  // namespace egressd::proxy::admin
