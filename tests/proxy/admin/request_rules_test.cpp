// The admin endpoint's request rules on their own: which route answers, which method it takes, and when the
// bearer token lets a request through.

#include "certs/digest.hpp"
#include "proxy/admin/request_rules.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string_view>
#include <vector>

namespace egressd::proxy::admin {
namespace {

namespace http = boost::beast::http;

const token_digest expected = certs::sha256("s3cr3t");

admission guarded(http::verb method, std::string_view target, std::vector<std::string_view> authorization)
{
    return admit(method, target, authorization, expected);
}

TEST(admin_request_rules, routes_only_exact_origin_form_paths)
{
    EXPECT_EQ(admit(http::verb::get, "/healthz?x=1", {}, std::nullopt).to, route::healthz);
    EXPECT_EQ(admit(http::verb::get, "/status/", {}, std::nullopt).result, outcome::not_found);
    EXPECT_EQ(admit(http::verb::get, "/%73tatus", {}, std::nullopt).result, outcome::not_found);
    EXPECT_EQ(admit(http::verb::get, "http://127.0.0.1/status", {}, std::nullopt).result, outcome::bad_target);
    EXPECT_EQ(admit(http::verb::get, "", {}, std::nullopt).result, outcome::bad_target);
    auto wrong = admit(http::verb::get, "/reload", {}, std::nullopt);
    EXPECT_EQ(wrong.result, outcome::method_not_allowed);
    EXPECT_EQ(allow_header(*wrong.to), "POST");
}

TEST(admin_request_rules, needs_exactly_one_header_with_the_token)
{
    EXPECT_EQ(guarded(http::verb::get, "/status", {"Bearer s3cr3t"}).result, outcome::serve);
    EXPECT_EQ(guarded(http::verb::get, "/metrics", {"bearer    s3cr3t"}).result, outcome::serve);
    EXPECT_EQ(guarded(http::verb::get, "/status", {}).result, outcome::unauthorized);
    EXPECT_EQ(guarded(http::verb::get, "/status", {"Bearer s3cr3T"}).result, outcome::unauthorized);
    EXPECT_EQ(guarded(http::verb::get, "/status", {"Bearer s3cr3t", "Bearer s3cr3t"}).result, outcome::unauthorized);
    EXPECT_EQ(guarded(http::verb::get, "/status", {"Bearer\ts3cr3t"}).result, outcome::unauthorized);
    EXPECT_EQ(guarded(http::verb::get, "/status", {"Basic czNjcjN0"}).result, outcome::unauthorized);
    // Probes never need it.
    EXPECT_EQ(guarded(http::verb::get, "/healthz", {}).result, outcome::serve);
    EXPECT_EQ(guarded(http::verb::head, "/readyz", {"Bearer wrong"}).result, outcome::serve);
}

TEST(admin_request_rules, reads_the_bearer_token)
{
    EXPECT_EQ(bearer_token("Bearer abc"), "abc");
    EXPECT_EQ(bearer_token("BEARER   abc "), "abc ");
    EXPECT_EQ(bearer_token("Bearer "), std::nullopt);
    EXPECT_EQ(bearer_token("Bearer"), std::nullopt);
    EXPECT_EQ(bearer_token("Bearerabc"), std::nullopt);
}

}  // namespace
}  // namespace egressd::proxy::admin
