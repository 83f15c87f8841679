// The approvals listener's requests: raw bytes through the same Beast parser and limits the server reads with,
// then the rules it reads them with (proxy/approvals/request_rules). Invariants:
// - a route matched is exactly one of the documented paths, rebuilt from its action and id (the id is the one in
//   the path), served only for a method the route allows, its errors JSON exactly under /api/;
// - a form or query string decoded holds at most max_form_fields fields with non-empty names, every name and value
//   acceptable text (nothing the decoder must have refused: control characters, broken UTF-8), and encoded again
//   it decodes to the same fields; a query accepted by an API call names only that call's parameters;
// - a served page POST carries exactly the session's CSRF token, and the constant-time compare agrees with ==;
// - the session cookie read from the headers is exactly one cookie's value: it reads back the same from
//   "egressd_session=<v>" and from no other layout, and two of them read as none;
// - a trusted header's user is 1 to max_header_user visible ASCII characters taken from the one header;
// - a JSON body accepted holds only the call's fields, all strings of acceptable text (what the form would take:
//   the API is no way around the page's rules), and serialised again by Boost.JSON it is accepted to the same
//   fields; a duration accepted is whole positive seconds and duration_text reads back to it;
// - ids and limits accepted are positive and print back to their text.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include "fuzz/invariant.hpp"
#include "proxy/approvals/request_rules.hpp"

namespace {

using egressd::fuzz::require;

namespace ap = egressd::proxy::approvals;
namespace http = boost::beast::http;
namespace json = boost::json;

constexpr std::string_view session_csrf = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
constexpr std::string_view user_header = "X-Forwarded-User";
constexpr std::string_view groups_header = "X-Forwarded-Groups";
constexpr std::string_view approver_group = "approvers";

constexpr ap::action api_posts[] = {ap::action::api_justify, ap::action::api_approve, ap::action::api_deny,
                                    ap::action::api_revoke, ap::action::api_extend};
constexpr ap::action api_lists[] = {ap::action::api_requests, ap::action::api_grants, ap::action::api_history};

// The documented path of an action ("{id}" where the route has one); pages.hpp and web_server.hpp list them.
std::string_view documented_path(ap::action a)
{
    switch (a) {
    case ap::action::style: return "/static/style.css";
    case ap::action::login_page:
    case ap::action::login: return "/login";
    case ap::action::logout: return "/logout";
    case ap::action::pending_page: return "/";
    case ap::action::request_page: return "/requests/{id}";
    case ap::action::grants_page: return "/grants";
    case ap::action::history_page: return "/history";
    case ap::action::justify: return "/requests/{id}/justify";
    case ap::action::approve: return "/requests/{id}/approve";
    case ap::action::deny: return "/requests/{id}/deny";
    case ap::action::revoke: return "/grants/{id}/revoke";
    case ap::action::extend: return "/grants/{id}/extend";
    case ap::action::api_whoami: return "/api/v1/whoami";
    case ap::action::api_requests: return "/api/v1/requests";
    case ap::action::api_request: return "/api/v1/requests/{id}";
    case ap::action::api_grants: return "/api/v1/grants";
    case ap::action::api_grant: return "/api/v1/grants/{id}";
    case ap::action::api_history: return "/api/v1/history";
    case ap::action::api_justify: return "/api/v1/requests/{id}/justify";
    case ap::action::api_approve: return "/api/v1/requests/{id}/approve";
    case ap::action::api_deny: return "/api/v1/requests/{id}/deny";
    case ap::action::api_revoke: return "/api/v1/grants/{id}/revoke";
    case ap::action::api_extend: return "/api/v1/grants/{id}/extend";
    }
    require(false);
    return {};
}

bool is_api(ap::action a)
{
    return documented_path(a).starts_with("/api/");
}

std::string expected_path(const ap::route& r)
{
    std::string path(documented_path(r.get ? *r.get : *r.post));
    if (const auto at = path.find("{id}"); at != std::string::npos) {
        require(r.id > 0);
        path.replace(at, 4, std::to_string(r.id));
    } else {
        require(r.id == 0);
    }
    return path;
}

void check_route(const ap::route& r, std::string_view path)
{
    require(r.get || r.post);
    require(expected_path(r) == path);
    require(r.api == path.starts_with("/api/"));
    for (const auto& a : {r.get, r.post}) {
        if (a) {
            require(is_api(*a) == r.api);
            require(documented_path(*a) == documented_path(r.get ? *r.get : *r.post));
        }
    }
    const std::string_view allow = ap::allow_text(r);
    require((allow.find("GET") != std::string_view::npos) == r.get.has_value());
    require((allow.find("POST") != std::string_view::npos) == r.post.has_value());
    if (r.post) {
        require(ap::decides(*r.post) ==
                (r.post == ap::action::approve || r.post == ap::action::deny || r.post == ap::action::revoke ||
                 r.post == ap::action::extend || r.post == ap::action::api_approve ||
                 r.post == ap::action::api_deny || r.post == ap::action::api_revoke ||
                 r.post == ap::action::api_extend));
    }
    if (r.get) {
        require(!ap::decides(*r.get));
    }
}

void check_admission(http::verb method, std::string_view target)
{
    const auto in = ap::admit(method, target);
    require((in.result == ap::admission_result::bad_target) == (target.empty() || target.front() != '/'));
    if (in.result == ap::admission_result::bad_target) {
        require(!in.to && !in.chosen);
        return;
    }
    const auto question = target.find('?');
    const std::string_view path = target.substr(0, question);
    require(in.query == (question == std::string_view::npos ? std::string_view() : target.substr(question + 1)));
    require(in.api == path.starts_with("/api/"));
    if (in.result == ap::admission_result::not_found) {
        require(!in.to && !in.chosen && !ap::find_route(path));
        return;
    }
    require(in.to.has_value());
    check_route(*in.to, path);
    const bool reads = method == http::verb::get || method == http::verb::head;
    const auto allowed = reads ? in.to->get : (method == http::verb::post ? in.to->post : std::nullopt);
    if (in.result == ap::admission_result::method_not_allowed) {
        require(!allowed && !in.chosen);
        return;
    }
    require(in.result == ap::admission_result::serve && in.chosen && in.chosen == allowed);
}

std::string encode_component(std::string_view text)
{
    static constexpr char digits[] = "0123456789ABCDEF";
    std::string out;
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if ((u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') || c == '-' || c == '.' ||
            c == '_' || c == '~') {
            out.push_back(c);
        } else if (c == ' ') {
            out.push_back('+');
        } else {
            out.push_back('%');
            out.push_back(digits[u >> 4]);
            out.push_back(digits[u & 15]);
        }
    }
    return out;
}

void check_form(std::string_view text, const std::optional<ap::form_fields>& form)
{
    if (!form) {
        return;
    }
    require(form->size() <= ap::max_form_fields);
    require(text.empty() ? form->empty() : form->size() == 1 + static_cast<std::size_t>(std::count(
                                                                    text.begin(), text.end(), '&')));
    std::string again;
    for (const auto& [name, value] : *form) {
        require(!name.empty());
        require(ap::acceptable_text(name) && ap::acceptable_text(value));
        require(name.size() <= text.size() && value.size() <= text.size());
        if (!again.empty()) {
            again.push_back('&');
        }
        again += encode_component(name) + "=" + encode_component(value);
    }
    require(ap::decode_form(again) == form);
}

void check_csrf(const ap::form_fields& form)
{
    const std::string sent = ap::field_or_empty(form, ap::csrf_field);
    require(ap::same_text(sent, session_csrf) == (sent == session_csrf));
    require(ap::csrf_matches(form, session_csrf) == (sent == session_csrf));
    require(!ap::csrf_matches(form, ""));
    // Another session's token (one byte apart) never passes for this one.
    std::string other(session_csrf);
    other.back() = other.back() == '0' ? '1' : '0';
    require(!(ap::csrf_matches(form, session_csrf) && ap::csrf_matches(form, other)));
}

void check_cookie(const std::vector<std::string_view>& headers)
{
    const auto token = ap::session_cookie(headers);
    if (!token) {
        return;
    }
    require(token->find(';') == std::string::npos);
    require(token->empty() || (token->back() != ' ' && token->back() != '\t'));
    const std::string alone = std::string(ap::session_cookie_name) + "=" + *token;
    const std::vector<std::string_view> one{alone};
    require(ap::session_cookie(one) == token);
    const std::string among = "theme=dark; " + alone + "; lang=en";
    const std::vector<std::string_view> shared{among};
    require(ap::session_cookie(shared) == token);
    std::vector<std::string_view> twice = headers;
    twice.insert(twice.end(), headers.begin(), headers.end());
    require(!ap::session_cookie(twice));
}

void check_trusted(const std::vector<std::string_view>& users, const std::vector<std::string_view>& groups)
{
    if (const auto name = ap::trusted_user(users)) {
        require(users.size() == 1);
        require(!name->empty() && name->size() <= ap::max_header_user);
        require(std::all_of(name->begin(), name->end(), [](char c) { return c > 0x20 && c < 0x7f; }));
        require(users.front().find(*name) != std::string_view::npos);
    }
    require(!ap::names_group(groups, ""));
    if (ap::names_group(groups, approver_group)) {
        require(std::any_of(groups.begin(), groups.end(),
                            [](std::string_view g) { return g.find(approver_group) != std::string_view::npos; }));
    }
}

void check_seconds(std::string_view text)
{
    const auto d = ap::parse_seconds(text);
    if (!d) {
        return;
    }
    require(d->count() > 0);
    require(ap::parse_seconds(ap::duration_text(*d)) == d);
}

void check_numbers(std::string_view text)
{
    if (const auto id = ap::parse_id(text)) {
        require(*id > 0 && std::to_string(*id) == text);
    }
    if (const auto limit = ap::parse_limit(text)) {
        require(*limit >= 1 && *limit <= ap::max_list_limit && std::to_string(*limit) == text);
    }
}

void check_json(std::string_view content_type, std::string_view body, ap::action a)
{
    const auto allowed = ap::json_body_fields(a);
    require(!allowed.empty());
    std::string problem;
    const auto fields = ap::json_fields(content_type, body, allowed, problem);
    if (!fields) {
        require(!problem.empty());
        return;
    }
    require(boost::beast::iequals(ap::media_type(content_type), ap::json_media_type));
    json::object again;
    for (const auto& [name, value] : *fields) {
        require(std::find(allowed.begin(), allowed.end(), name) != allowed.end());
        require(value.size() <= body.size());
        require(ap::acceptable_text(value));
        again[name] = value;
    }
    if (const auto it = fields->find("duration"); it != fields->end()) {
        check_seconds(it->second);
    }
    std::string again_problem;
    const auto reread = ap::json_fields(ap::json_media_type, json::serialize(again), allowed, again_problem);
    require(reread == fields);
}

void check_query(std::string_view query, ap::action a)
{
    const auto allowed = ap::query_parameters(a);
    require(!allowed.empty());
    std::string problem;
    const auto params = ap::query_fields(query, allowed, problem);
    require(params.has_value() == problem.empty());
    check_form(query, params);
    if (!params) {
        return;
    }
    for (const auto& [name, value] : *params) {
        require(std::find(allowed.begin(), allowed.end(), name) != allowed.end());
    }
    std::string limit_problem;
    if (const auto limit = ap::limit_field(*params, ap::default_list_limit, limit_problem)) {
        require(*limit >= 1 && *limit <= ap::max_list_limit && limit_problem.empty());
    } else {
        require(params->contains("limit") && !limit_problem.empty());
    }
}

template <typename Name>
std::vector<std::string_view> header_values(const http::request<http::string_body>& req, const Name& name)
{
    std::vector<std::string_view> values;
    auto [begin, end] = req.equal_range(name);
    for (auto it = begin; it != end; ++it) {
        values.push_back(it->value());
    }
    return values;
}

void check_request(const http::request<http::string_body>& req)
{
    require(req.version() == 10 || req.version() == 11);
    require(req.body().size() <= ap::max_body_bytes);
    check_admission(req.method(), req.target());
    check_cookie(header_values(req, http::field::cookie));
    check_trusted(header_values(req, user_header), header_values(req, groups_header));

    const std::string_view content_type = req[http::field::content_type];
    const auto form = ap::read_form(content_type, req.body());
    require(!form || ap::media_type(content_type) == ap::form_media_type);
    check_form(req.body(), form);
    if (form) {
        check_csrf(*form);
    }
    for (const auto a : api_posts) {
        check_json(content_type, req.body(), a);
    }
    const auto in = ap::admit(req.method(), req.target());
    if (in.result != ap::admission_result::serve) {
        return;
    }
    const auto a = *in.chosen;
    if (std::find(std::begin(api_lists), std::end(api_lists), a) != std::end(api_lists)) {
        check_query(in.query, a);
    }
    // What page_post does first: a page POST is served only with the session's token, exactly.
    if (in.to->post == a && !in.to->api && a != ap::action::login && form && ap::csrf_matches(*form, session_csrf)) {
        require(ap::field_or_empty(*form, ap::csrf_field) == session_csrf);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    // The grammars on their own first: most inputs are no HTTP request.
    if (size <= ap::max_body_bytes) {
        check_form(bytes, ap::decode_form(bytes));
        check_numbers(bytes);
        check_seconds(bytes);
        const std::vector<std::string_view> one{bytes};
        check_cookie(one);
        check_trusted(one, one);
        check_json(ap::json_media_type, bytes, ap::action::api_approve);
    }

    http::request_parser<http::string_body> parser;
    parser.header_limit(ap::max_head_bytes);
    parser.body_limit(ap::max_body_bytes);
    parser.eager(true);
    boost::beast::error_code ec;
    const std::size_t used = parser.put(boost::asio::buffer(bytes.data(), bytes.size()), ec);
    require(used <= bytes.size());
    // The server answers only a request read whole.
    if (!parser.is_done()) {
        return 0;
    }
    check_request(parser.get());
    return 0;
}
