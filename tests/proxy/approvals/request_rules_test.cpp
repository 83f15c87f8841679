#include "proxy/approvals/request_rules.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::proxy::approvals {
namespace {

namespace http = boost::beast::http;
using namespace std::chrono_literals;

constexpr std::string_view json = "application/json";

std::optional<form_fields> form(std::string_view text)
{
    return decode_form(text);
}

std::optional<std::string> cookie(std::vector<std::string_view> headers)
{
    return session_cookie(headers);
}

// json_fields for an API call, the problem reported kept for the assertion messages.
struct json_result {
    std::optional<form_fields> fields;
    std::string problem;
};

json_result read_json(action a, std::string_view body, std::string_view content_type = json)
{
    json_result r;
    r.fields = json_fields(content_type, body, json_body_fields(a), r.problem);
    return r;
}

TEST(ApprovalsRequestRules, RoutesOfThePageAndTheApi)
{
    const auto approve = find_route("/requests/17/approve");
    ASSERT_TRUE(approve);
    EXPECT_EQ(approve->post, action::approve);
    EXPECT_FALSE(approve->get);
    EXPECT_EQ(approve->id, 17);
    EXPECT_FALSE(approve->api);

    const auto api_extend = find_route("/api/v1/grants/9/extend");
    ASSERT_TRUE(api_extend);
    EXPECT_EQ(api_extend->post, action::api_extend);
    EXPECT_EQ(api_extend->id, 9);
    EXPECT_TRUE(api_extend->api);

    const auto login = find_route("/login");
    ASSERT_TRUE(login);
    EXPECT_EQ(login->get, action::login_page);
    EXPECT_EQ(login->post, action::login);
    EXPECT_EQ(allow_text(*login), "GET, HEAD, POST");

    EXPECT_EQ(find_route("/api/v1/grants/9")->get, action::api_grant);
    EXPECT_EQ(find_route("/")->get, action::pending_page);
    EXPECT_EQ(find_route("/static/style.css")->get, action::style);
}

TEST(ApprovalsRequestRules, PathsThatAreNoRoute)
{
    for (const std::string_view path :
         {"", "requests/1", "/requests", "/requests/0", "/requests/017", "/requests/+5", "/requests/-5",
          "/requests/1234567890123456789", "/requests/1/", "/requests/1/revoke", "/grants/1/approve", "/grants/1",
          "/api/v1", "/api/v1/", "/api/v2/whoami", "/api/v1/login", "/api/v1/static/style.css", "/whoami",
          "//requests/1", "/requests//1", "/requests/1/approve/x", "/REQUESTS/1", "/requests/%31"}) {
        EXPECT_FALSE(find_route(path)) << path;
    }
    EXPECT_EQ(find_route("/requests/123456789012345678")->id, 123456789012345678);
}

TEST(ApprovalsRequestRules, AdmissionByMethodAndTarget)
{
    EXPECT_EQ(admit(http::verb::get, "http://127.0.0.1/").result, admission_result::bad_target);
    EXPECT_EQ(admit(http::verb::options, "*").result, admission_result::bad_target);

    const auto missing = admit(http::verb::get, "/api/v1/nothing?x=1");
    EXPECT_EQ(missing.result, admission_result::not_found);
    EXPECT_TRUE(missing.api);  // answered in JSON

    const auto wrong = admit(http::verb::get, "/requests/3/deny");
    EXPECT_EQ(wrong.result, admission_result::method_not_allowed);
    EXPECT_EQ(allow_text(*wrong.to), "POST");
    EXPECT_EQ(admit(http::verb::put, "/grants").result, admission_result::method_not_allowed);

    const auto list = admit(http::verb::head, "/api/v1/requests?state=pending&limit=5");
    EXPECT_EQ(list.result, admission_result::serve);
    EXPECT_EQ(list.chosen, action::api_requests);
    EXPECT_EQ(list.query, "state=pending&limit=5");
    EXPECT_EQ(admit(http::verb::post, "/logout").chosen, action::logout);
}

TEST(ApprovalsRequestRules, OnlyDecisionsNeedTheApproverRole)
{
    for (const auto a : {action::approve, action::deny, action::revoke, action::extend, action::api_approve,
                         action::api_deny, action::api_revoke, action::api_extend}) {
        EXPECT_TRUE(decides(a));
    }
    for (const auto a : {action::justify, action::api_justify, action::logout, action::api_requests}) {
        EXPECT_FALSE(decides(a));
    }
}

TEST(ApprovalsRequestRules, FormsArePercentAndPlusDecoded)
{
    const auto f = form("note=a+b%2Bc%20d&csrf=T0k&text=caf%C3%A9&empty=");
    ASSERT_TRUE(f);
    EXPECT_EQ(field_or_empty(*f, "note"), "a b+c d");
    EXPECT_EQ(field_or_empty(*f, "csrf"), "T0k");
    EXPECT_EQ(field_or_empty(*f, "text"), "caf\xC3\xA9");
    EXPECT_EQ(field_or_empty(*f, "empty"), "");
    EXPECT_EQ(field_or_empty(*f, "missing"), "");
    EXPECT_TRUE(form("")->empty());
    EXPECT_EQ(field_or_empty(*form("multi=line%0D%0Atext%09tab"), "multi"), "line\r\ntext\ttab");
}

TEST(ApprovalsRequestRules, BadEscapesAndBytesRefuseTheWholeForm)
{
    for (const std::string_view text :
         {"note=%", "note=%4", "note=%zz", "note=%4g", "note=100%", "note=a b", "note=\x01", "note=caf\xC3\xA9",
          // decoded bytes that are no acceptable text: controls, DEL, broken or overlong UTF-8, surrogates
          "note=%00", "note=%1B%5B2J", "note=%7F", "note=%C3", "note=%C0%AF", "note=%ED%A0%80", "note=%F4%90%80%80",
          "%00=x"}) {
        EXPECT_FALSE(form(text)) << text;
    }
}

TEST(ApprovalsRequestRules, RepeatedMissingAndTooManyFields)
{
    EXPECT_FALSE(form("csrf=a&csrf=b"));
    EXPECT_FALSE(form("csrf=a&c%73rf=b"));  // the same name once decoded
    EXPECT_FALSE(form("=x"));
    EXPECT_FALSE(form("note"));
    EXPECT_FALSE(form("a=1&"));
    EXPECT_FALSE(form("&a=1"));
    EXPECT_FALSE(form("a=1&&b=2"));

    std::string many;
    for (std::size_t i = 0; i < max_form_fields; ++i) {
        many += (i == 0 ? "f" : "&f") + std::to_string(i) + "=v";
    }
    EXPECT_EQ(form(many)->size(), max_form_fields);
    EXPECT_FALSE(form(many + "&one=more"));
}

TEST(ApprovalsRequestRules, PageFormsNeedTheFormMediaType)
{
    EXPECT_TRUE(read_form("application/x-www-form-urlencoded", "csrf=t"));
    EXPECT_TRUE(read_form(" application/x-www-form-urlencoded ; charset=UTF-8", "csrf=t"));
    EXPECT_FALSE(read_form("application/json", "csrf=t"));
    EXPECT_FALSE(read_form("multipart/form-data; boundary=x", "csrf=t"));
    EXPECT_FALSE(read_form("", "csrf=t"));
}

TEST(ApprovalsRequestRules, SessionCookieForms)
{
    EXPECT_EQ(cookie({"egressd_session=abc"}), "abc");
    EXPECT_EQ(cookie({"theme=dark; egressd_session=abc; lang=en"}), "abc");
    EXPECT_EQ(cookie({"theme=dark;egressd_session=abc"}), "abc");
    EXPECT_EQ(cookie({"theme=dark", "egressd_session=abc "}), "abc");
    EXPECT_EQ(cookie({"egressd_session=a=b"}), "a=b");
    EXPECT_EQ(cookie({"egressd_session="}), "");
    // None, another name, or two: no session at all rather than a guess.
    EXPECT_FALSE(cookie({}));
    EXPECT_FALSE(cookie({"theme=dark"}));
    EXPECT_FALSE(cookie({"egressd_session"}));
    EXPECT_FALSE(cookie({"Egressd_Session=abc"}));
    EXPECT_FALSE(cookie({"xegressd_session=abc"}));
    EXPECT_FALSE(cookie({"egressd_session=abc; egressd_session=abc"}));
    EXPECT_FALSE(cookie({"egressd_session=abc", "egressd_session=def"}));
}

TEST(ApprovalsRequestRules, CsrfMustMatchExactly)
{
    const std::string token = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
    EXPECT_TRUE(csrf_matches(*form("csrf=" + token + "&note=x"), token));
    EXPECT_FALSE(csrf_matches(*form("note=x"), token));
    EXPECT_FALSE(csrf_matches(*form("csrf=&note=x"), token));
    EXPECT_FALSE(csrf_matches(*form("csrf=" + token.substr(1)), token));
    EXPECT_FALSE(csrf_matches(*form("csrf=" + token + "0"), token));
    EXPECT_FALSE(csrf_matches(*form("csrf=0123456789abcdef"), token));
    EXPECT_FALSE(csrf_matches(*form("CSRF=" + token), token));
    // A caller without a token (none has one today) is matched by no form, not by one without the field.
    EXPECT_FALSE(csrf_matches(*form("note=x"), ""));
    EXPECT_FALSE(csrf_matches(*form("csrf="), ""));
    EXPECT_TRUE(same_text("abc", "abc"));
    EXPECT_FALSE(same_text("abc", "abd"));
    EXPECT_FALSE(same_text("abc", "ab"));
}

TEST(ApprovalsRequestRules, TrustedHeaderUserAndGroups)
{
    const std::vector<std::string_view> carol{"  carol\t"};
    EXPECT_EQ(trusted_user(carol), "carol");
    EXPECT_FALSE(trusted_user(std::vector<std::string_view>{}));
    EXPECT_FALSE(trusted_user(std::vector<std::string_view>{"carol", "mallory"}));
    EXPECT_FALSE(trusted_user(std::vector<std::string_view>{"  "}));
    EXPECT_FALSE(trusted_user(std::vector<std::string_view>{"carol smith"}));
    EXPECT_FALSE(trusted_user(std::vector<std::string_view>{"caf\xC3\xA9"}));
    const std::string longest(max_header_user, 'u');
    EXPECT_TRUE(trusted_user(std::vector<std::string_view>{longest}));
    const std::string too_long(max_header_user + 1, 'u');
    EXPECT_FALSE(trusted_user(std::vector<std::string_view>{too_long}));

    const std::vector<std::string_view> groups{"devs, ops", " approvers ,x"};
    EXPECT_TRUE(names_group(groups, "approvers"));
    EXPECT_FALSE(names_group(groups, "approver"));
    EXPECT_FALSE(names_group(std::vector<std::string_view>{"approvers-ro"}, "approvers"));
    EXPECT_FALSE(names_group(std::vector<std::string_view>{"a,,b"}, ""));
}

TEST(ApprovalsRequestRules, JsonBodiesOfTheApi)
{
    const auto approve = read_json(action::api_approve, R"({"duration":"8h","scope":"*.example.com","note":"ok"})");
    ASSERT_TRUE(approve.fields) << approve.problem;
    EXPECT_EQ(field_or_empty(*approve.fields, "duration"), "8h");
    EXPECT_EQ(field_or_empty(*approve.fields, "scope"), "*.example.com");
    EXPECT_EQ(field_or_empty(*approve.fields, "group"), "");

    EXPECT_TRUE(read_json(action::api_deny, "").fields->empty());
    EXPECT_TRUE(read_json(action::api_deny, " \t").fields->empty());
    EXPECT_TRUE(read_json(action::api_deny, "{}", "Application/JSON; charset=utf-8").fields);
    EXPECT_EQ(field_or_empty(*read_json(action::api_justify, R"({"text":"caf\u00e9 \ud83d\ude00"})").fields, "text"),
              "caf\xC3\xA9 \xF0\x9F\x98\x80");
    EXPECT_EQ(field_or_empty(*read_json(action::api_justify, R"({"text":"line\nbreak\ttab"})").fields, "text"),
              "line\nbreak\ttab");
}

TEST(ApprovalsRequestRules, JsonWrongTypesFieldsAndMediaTypes)
{
    const std::vector<std::pair<action, std::string_view>> refused{
        {action::api_extend, R"({"duration":8})"},
        {action::api_extend, R"({"duration":"8h","note":null})"},
        {action::api_deny, R"({"note":["a"]})"},
        {action::api_deny, R"({"note":{"text":"a"}})"},
        {action::api_deny, R"({"note":true})"},
        {action::api_deny, R"(["note"])"},
        {action::api_deny, R"("note")"},
        {action::api_deny, "null"},
        {action::api_deny, R"({"note":"a")"},
        {action::api_deny, R"({"note":"a"} {})"},
        {action::api_approve, R"({"duration":"8h","admin":"true"})"},
        {action::api_justify, R"({"note":"a"})"},  // justify takes text, not note
        {action::api_revoke, R"({"duration":"1h"})"},
    };
    for (const auto& [a, body] : refused) {
        const auto r = read_json(a, body);
        EXPECT_FALSE(r.fields) << body;
        EXPECT_FALSE(r.problem.empty()) << body;
    }
    EXPECT_FALSE(read_json(action::api_deny, "{}", "application/x-www-form-urlencoded").fields);
    EXPECT_FALSE(read_json(action::api_deny, "{}", "text/plain").fields);
    EXPECT_FALSE(read_json(action::api_deny, "{}", "").fields);
    EXPECT_FALSE(read_json(action::api_deny, "{}", "application/jsonx").fields);
}

// Found by fuzz/approvals_http: JSON escapes spelled control characters the page's form refuses, so a requester
// could store an escape sequence for an approver's terminal, a NUL, or a broken surrogate through the API.
TEST(ApprovalsRequestRules, JsonTextIsNoWayAroundTheFormsRules)
{
    for (const std::string_view body :
         {R"({"text":"ok\u001b]0;owned\u0007\u001b[2J"})", R"({"text":"a\u0000b"})", R"({"text":"\u007f"})",
          R"({"text":"\u001d"})", R"({"text":"\ud800"})"}) {
        const auto r = read_json(action::api_justify, body);
        EXPECT_FALSE(r.fields) << body;
        EXPECT_FALSE(r.problem.empty()) << body;
    }
    EXPECT_FALSE(read_json(action::api_approve, R"({"duration":"8h","note":"\u001b[31mred"})").fields);
    EXPECT_EQ(read_json(action::api_deny, R"({"note":"\u001d"})").problem, "field \"note\" holds a control character");
}

// A key given twice is refused like a form field given twice, also when spelled with an escape: json::parse keeps
// the last, while a reader in front of egressd may have read the first.
TEST(ApprovalsRequestRules, JsonKeyGivenTwiceIsRefused)
{
    for (const std::string_view body :
         {R"({"duration":"1h","duration":"30d"})", R"({"duration":"1h","scope":"a.test","duration":"1h"})",
          R"({"duration":"1h","d\u0075ration":"30d"})", R"({"note":{"a":1,"a":2}})"}) {
        const auto r = read_json(action::api_approve, body);
        EXPECT_FALSE(r.fields) << body;
        EXPECT_FALSE(r.problem.empty()) << body;
    }
    EXPECT_EQ(read_json(action::api_approve, R"({"duration":"1h","duration":"30d"})").problem,
              "field \"duration\" is given twice");
    // Thousands of keys cost a hash lookup each, and a key is quoted at most 64 bytes long.
    std::string many = "{";
    for (int i = 0; i < 9000; ++i) {
        many += "\"k" + std::to_string(i) + "\":0,";
    }
    EXPECT_EQ(read_json(action::api_approve, many + "\"k17\":1}").problem, "field \"k17\" is given twice");
    EXPECT_EQ(read_json(action::api_approve, "{\"" + std::string(100, 'x') + "\":\"1h\"}").problem,
              "unknown field \"" + std::string(64, 'x') + "...\"");
    // The same key in two objects is no repeat.
    EXPECT_EQ(read_json(action::api_approve, R"({"note":{"note":"1h"}})").problem,
              "field \"note\" must be a string");
}

TEST(ApprovalsRequestRules, QueryParametersOfTheApi)
{
    std::string problem;
    const auto list = query_fields("state=pending&limit=10", query_parameters(action::api_requests), problem);
    ASSERT_TRUE(list) << problem;
    EXPECT_EQ(limit_field(*list, default_list_limit, problem), 10u);
    EXPECT_EQ(limit_field(form_fields{}, default_list_limit, problem), default_list_limit);
    EXPECT_FALSE(query_fields("colour=red", query_parameters(action::api_history), problem));
    EXPECT_EQ(problem, "unknown query parameter \"colour\"");
    EXPECT_FALSE(query_fields("state=%zz", query_parameters(action::api_grants), problem));
    EXPECT_TRUE(query_fields("before=900&grant=2", query_parameters(action::api_history), problem));
    for (const std::string_view limit : {"0", "10001", "-1", "abc", "01", ""}) {
        problem.clear();
        EXPECT_FALSE(limit_field(form_fields{{"limit", std::string(limit)}}, default_list_limit, problem)) << limit;
        EXPECT_FALSE(problem.empty());
    }
}

TEST(ApprovalsRequestRules, DurationsAndIds)
{
    EXPECT_EQ(parse_seconds("8h"), 8h);
    EXPECT_EQ(parse_seconds("2d"), std::chrono::seconds(2 * 86400));
    EXPECT_EQ(parse_seconds("1000ms"), 1s);
    for (const std::string_view text : {"", "0s", "8", "h", "1500ms", "-1h", "8 h", "8H"}) {
        EXPECT_FALSE(parse_seconds(text)) << text;
    }
    for (const auto s : {1s, 45s, 90s, 60s, 5400s, 3600s, 86400s, 7 * 86400s}) {
        EXPECT_EQ(parse_seconds(duration_text(s)), s) << duration_text(s);
    }
    EXPECT_EQ(duration_text(8h), "8h");
    EXPECT_EQ(duration_text(90min), "90m");

    EXPECT_EQ(parse_id("17"), 17);
    EXPECT_FALSE(parse_id("0"));
    EXPECT_FALSE(parse_id("017"));
    EXPECT_FALSE(parse_id("1234567890123456789"));
    EXPECT_FALSE(parse_id("+1"));
    EXPECT_FALSE(parse_id("-5"));
    EXPECT_FALSE(parse_id("1 "));
    EXPECT_EQ(parse_limit("10000"), 10000u);
    EXPECT_FALSE(parse_limit("10001"));
}

}  // namespace
}  // namespace egressd::proxy::approvals
