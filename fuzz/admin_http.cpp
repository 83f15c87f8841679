// The admin listener's requests: raw bytes through the same Beast parser and limits the server reads with, then
// the rules that pick the answer (proxy/admin/request_rules). Invariants:
// - a handler runs only for a path that is exactly a route, with a method the route allows;
// - a route that needs the token runs only for exactly one Authorization header carrying that bearer token,
//   and the probes (/healthz, /readyz) never ask for it; without a configured token nothing is unauthorized;
// - a bearer token read from a header reads back the same from "Bearer <token>".
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>

#include "fuzz/invariant.hpp"
#include "certs/digest.hpp"
#include "proxy/admin/request_rules.hpp"

namespace {

using egressd::fuzz::require;

namespace admin = egressd::proxy::admin;
namespace http = boost::beast::http;

constexpr std::string_view configured_token = "s3cr3t-t0ken";

void check_admission(http::verb method, std::string_view target, const std::vector<std::string_view>& authorization)
{
    const admin::token_digest expected = egressd::certs::sha256(configured_token);
    auto open = admin::admit(method, target, authorization, std::nullopt);
    auto guarded = admin::admit(method, target, authorization, expected);
    require(open.result != admin::outcome::unauthorized);
    require((open.result == admin::outcome::bad_target) == (target.empty() || target.front() != '/'));
    for (const auto& a : {open, guarded}) {
        if (a.result == admin::outcome::bad_target || a.result == admin::outcome::not_found) {
            require(!a.to);
            continue;
        }
        require(a.to.has_value());
        require(admin::find_route(target.substr(0, target.find('?'))) == a.to);
        require(admin::method_allowed(*a.to, method) == (a.result != admin::outcome::method_not_allowed));
    }
    if (guarded.result == admin::outcome::unauthorized) {
        require(admin::needs_token(*guarded.to));
    }
    if (guarded.result == admin::outcome::serve && admin::needs_token(*guarded.to)) {
        require(authorization.size() == 1 && admin::bearer_token(authorization.front()) == configured_token);
    }
    // Only the token decides between the two: everything else is answered alike.
    if (guarded.result != admin::outcome::unauthorized) {
        require(guarded.result == open.result && guarded.to == open.to);
    }
}

void check_bearer(std::string_view value)
{
    auto token = admin::bearer_token(value);
    if (!token) {
        return;
    }
    require(!token->empty() && token->front() != ' ');
    require(admin::bearer_token("Bearer " + std::string(*token)) == token);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    std::string_view bytes(reinterpret_cast<const char*>(data), size);
    check_bearer(bytes);

    http::request_parser<http::string_body> parser;
    parser.header_limit(admin::max_head_bytes);
    parser.body_limit(admin::max_body_bytes);
    parser.eager(true);
    boost::beast::error_code ec;
    std::size_t used = parser.put(boost::asio::buffer(bytes.data(), bytes.size()), ec);
    require(used <= bytes.size());
    if (!parser.is_header_done()) {
        return 0;
    }
    const auto& req = parser.get();
    require(req.version() == 10 || req.version() == 11);
    std::vector<std::string_view> authorization;
    for (const auto& field : req) {
        if (field.name() == http::field::authorization) {
            authorization.push_back(field.value());
            check_bearer(field.value());
        }
    }
    check_admission(req.method(), req.target(), authorization);
    return 0;
}
