#include "proxy/admin/request_rules.hpp"

#include "certs/digest.hpp"

#include <boost/beast/core/string.hpp>

#include <algorithm>

namespace egressd::proxy::admin {

namespace http = boost::beast::http;

std::optional<route> find_route(std::string_view path)
{
    if (path == "/healthz") {
        return route::healthz;
    }
    if (path == "/readyz") {
        return route::readyz;
    }
    if (path == "/status") {
        return route::status;
    }
    if (path == "/metrics") {
        return route::metrics;
    }
    if (path == "/reload") {
        return route::reload;
    }
    return std::nullopt;
}

bool needs_token(route r)
{
    return r == route::status || r == route::metrics || r == route::reload;
}

bool method_allowed(route r, http::verb method)
{
    if (r == route::reload) {
        return method == http::verb::post;
    }
    return method == http::verb::get || method == http::verb::head;
}

std::string_view allow_header(route r)
{
    return r == route::reload ? "POST" : "GET, HEAD";
}

std::optional<std::string_view> bearer_token(std::string_view authorization)
{
    constexpr std::string_view scheme = "Bearer";
    if (authorization.size() <= scheme.size() || !boost::beast::iequals(authorization.substr(0, scheme.size()), scheme) ||
        authorization[scheme.size()] != ' ') {
        return std::nullopt;
    }
    std::string_view token = authorization.substr(scheme.size());
    token.remove_prefix(std::min(token.find_first_not_of(' '), token.size()));
    if (token.empty()) {
        return std::nullopt;
    }
    return token;
}

admission admit(http::verb method, std::string_view target, std::span<const std::string_view> authorization,
                const std::optional<token_digest>& expected)
{
    // Only origin-form ("/path?query"): absolute-form would name another host, and "*" or authority-form
    // mean nothing here.
    if (target.empty() || target.front() != '/') {
        return {outcome::bad_target, std::nullopt};
    }
    auto r = find_route(target.substr(0, target.find('?')));
    if (!r) {
        return {outcome::not_found, std::nullopt};
    }
    if (!method_allowed(*r, method)) {
        return {outcome::method_not_allowed, r};
    }
    if (!needs_token(*r) || !expected) {
        return {outcome::serve, r};
    }
    auto token = authorization.size() == 1 ? bearer_token(authorization.front()) : std::nullopt;
    if (!token || !certs::same_digest(certs::sha256(*token), *expected)) {
        return {outcome::unauthorized, r};
    }
    return {outcome::serve, r};
}

}  // namespace egressd::proxy::admin
