#pragma once

// What the approvals listener reads from a request before it asks the service anything: the route and the
// method, form bodies and query strings, the session cookie, the CSRF field, a trusted reverse proxy's user and
// groups headers, the API's Content-Type and JSON bodies, durations and ids. Plain functions, so that they are
// tested and fuzzed (fuzz/approvals_http.cpp) without a socket, a store or a clock; web_server.cpp runs exactly
// these.

// <ostream> first: Boost 1.81's string_view.hpp uses std::basic_ostream without including it (clang 14 refuses).
#include <ostream>

#include <boost/beast/http/verb.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace egressd::proxy::approvals {

// A request head over this is answered 431, a body over that 413.
constexpr std::size_t max_head_bytes = 8 * 1024;
constexpr std::size_t max_body_bytes = 64 * 1024;
// A form or query string with more fields than this is refused whole.
constexpr std::size_t max_form_fields = 32;
// The largest "limit" of a list; a list without one gets default_list_limit.
constexpr std::size_t max_list_limit = 10'000;
constexpr std::size_t default_list_limit = 500;
// The longest user name a trusted header may carry.
constexpr std::size_t max_header_user = 256;

constexpr std::string_view session_cookie_name = "egressd_session";
constexpr std::string_view csrf_field = "csrf";
constexpr std::string_view form_media_type = "application/x-www-form-urlencoded";
constexpr std::string_view json_media_type = "application/json";

// Decoded names and values of a form, a query string or an API body; each name once.
using form_fields = std::map<std::string, std::string, std::less<>>;

// --- routes -----------------------------------------------------------------------------------------------------

enum class action : std::uint8_t {
    style,
    login_page,
    login,
    logout,
    pending_page,
    request_page,
    grants_page,
    history_page,
    justify,
    approve,
    deny,
    revoke,
    extend,
    api_whoami,
    api_requests,
    api_request,
    api_grants,
    api_grant,
    api_history,
    api_justify,
    api_approve,
    api_deny,
    api_revoke,
    api_extend,
};

// Approving, denying, revoking and extending need the approver role.
bool decides(action a);

struct route {
    std::optional<action> get;  // and HEAD
    std::optional<action> post;
    std::int64_t id = 0;        // the {id} of /requests/{id}/... and /grants/{id}/...; 0 elsewhere
    bool api = false;           // under /api/v1
};

// The route of a path (the target up to '?'), matched exactly: the page's and the API's routes share their shape
// (/requests/{id}/verb, /grants/{id}/verb), the API's under /api/v1.
std::optional<route> find_route(std::string_view path);
// The action a method asks of a route (GET and HEAD its get, POST its post), or nullopt (405).
std::optional<action> action_for(const route& r, boost::beast::http::verb method);
// The Allow header of a 405.
std::string_view allow_text(const route& r);

enum class admission_result : std::uint8_t {
    serve,               // chosen is what to do, for whoever is signed in
    bad_target,          // 400: not origin-form
    not_found,           // 404
    method_not_allowed,  // 405, with allow_text(*to)
};

struct admission {
    admission_result result = admission_result::bad_target;
    std::optional<route> to;         // set for serve and method_not_allowed
    std::optional<action> chosen;    // set for serve
    bool api = false;                // the path is under /api/: errors are JSON
    std::string_view query;          // the target after '?'
};

// The first look at a request: only its method and target.
admission admit(boost::beast::http::verb method, std::string_view target);

// --- forms, query strings, ids, durations ----------------------------------------------------------------------

// Well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF) without control characters other than
// tab and line breaks: what a field may carry into the store, the pages, the logs and an approver's terminal.
bool acceptable_text(std::string_view s);

// One name or value of application/x-www-form-urlencoded: '+' is a space, %XX a byte; any other byte must be a
// visible ASCII character (a browser encodes everything else); the result must be acceptable_text.
std::optional<std::string> decode_component(std::string_view text);
// A whole form body or query string: "name=value" pairs joined by '&', each name once and not empty, at most
// max_form_fields of them; "" is no fields. nullopt for anything else.
std::optional<form_fields> decode_form(std::string_view text);
// The form of a page POST: decode_form of the body when Content-Type says form_media_type, else nullopt.
std::optional<form_fields> read_form(std::string_view content_type, std::string_view body);

std::string field_or_empty(const form_fields& f, std::string_view name);

// "17": a positive decimal id without sign or leading zero, at most 18 digits.
std::optional<std::int64_t> parse_id(std::string_view text);
// An id from 1 to max_list_limit.
std::optional<std::size_t> parse_limit(std::string_view text);
// A list query's "limit": the value given, or `absent` when there is none; nullopt (with problem set) when it is
// not a number from 1 to max_list_limit.
std::optional<std::size_t> limit_field(const form_fields& params, std::size_t absent, std::string& problem);

// "8h", "30m", "2d" (config::parse_duration) as whole seconds, more than zero.
std::optional<std::chrono::seconds> parse_seconds(std::string_view text);
// The largest whole unit: "7d", "8h", "90m", "45s"; parse_seconds reads it back.
std::string duration_text(std::chrono::seconds s);

// --- who is asking ----------------------------------------------------------------------------------------------

// The media type of a Content-Type value: up to ';', without surrounding blanks.
std::string_view media_type(std::string_view content_type);

// The session token of the Cookie header values (every Cookie header, in order), when exactly one cookie is
// named session_cookie_name; nullopt for none or several.
std::optional<std::string> session_cookie(std::span<const std::string_view> cookie_headers);

// Equality that takes the same time wherever the two differ (CRYPTO_memcmp), for tokens.
bool same_text(std::string_view a, std::string_view b);
// A page POST carries the caller's CSRF token in its csrf field; an empty expected token matches nothing.
bool csrf_matches(const form_fields& form, std::string_view expected);

// The user a trusted reverse proxy names: its user header must come exactly once (values: every such header) and
// hold, without surrounding blanks, 1 to max_header_user visible ASCII characters.
std::optional<std::string_view> trusted_user(std::span<const std::string_view> values);
// Whether the groups headers (comma-separated lists) name the group; an empty group is named by none.
bool names_group(std::span<const std::string_view> values, std::string_view group);

// --- the JSON API -----------------------------------------------------------------------------------------------

// The string fields the body of each API POST may hold (empty for other actions).
std::span<const std::string_view> json_body_fields(action a);
// The parameters the query string of each API GET may hold (empty for other actions).
std::span<const std::string_view> query_parameters(action a);

// An API body: Content-Type json_media_type (parameters allowed), and a JSON object of the allowed string fields
// only, each acceptable_text; an empty or blank body is {}. nullopt, with the reason in problem, for anything else.
std::optional<form_fields> json_fields(std::string_view content_type, std::string_view body,
                                       std::span<const std::string_view> allowed, std::string& problem);
// An API query string with only the allowed parameters; nullopt with the reason in problem otherwise.
std::optional<form_fields> query_fields(std::string_view query, std::span<const std::string_view> allowed,
                                        std::string& problem);

}  // namespace egressd::proxy::approvals
