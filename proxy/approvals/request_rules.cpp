#include "proxy/approvals/request_rules.hpp"

#include "config/server_config.hpp"
#include "protocol/hex.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>

#include <openssl/crypto.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <system_error>
#include <unordered_set>
#include <utility>
#include <vector>

namespace egressd::proxy::approvals {

namespace http = boost::beast::http;
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

std::string_view trim(std::string_view s)
{
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

using egressd::protocol::hex_value;

// Finds the first key written twice in one JSON object. json::parse keeps the last of them without a word; a
// reader in front (a gateway, an audit log) may have taken the first, so an approval could say one thing there
// and another here. Used only on text json::parse accepted.
class duplicate_key_finder {
public:
    static constexpr std::size_t max_object_size = std::size_t(-1);
    static constexpr std::size_t max_array_size = std::size_t(-1);
    static constexpr std::size_t max_key_size = std::size_t(-1);
    static constexpr std::size_t max_string_size = std::size_t(-1);

    std::optional<std::string> duplicate;

    bool on_document_begin(boost::system::error_code&) { return true; }
    bool on_document_end(boost::system::error_code&) { return true; }
    bool on_array_begin(boost::system::error_code&) { return true; }
    bool on_array_end(std::size_t, boost::system::error_code&) { return true; }
    bool on_object_begin(boost::system::error_code&)
    {
        keys_.emplace_back();
        return true;
    }
    bool on_object_end(std::size_t, boost::system::error_code&)
    {
        keys_.pop_back();
        return true;
    }
    bool on_string_part(json::string_view, std::size_t, boost::system::error_code&) { return true; }
    bool on_string(json::string_view, std::size_t, boost::system::error_code&) { return true; }
    bool on_key_part(json::string_view s, std::size_t, boost::system::error_code&)
    {
        key_.append(s.data(), s.size());
        return true;
    }
    bool on_key(json::string_view s, std::size_t, boost::system::error_code& ec)
    {
        key_.append(s.data(), s.size());
        if (!keys_.back().insert(key_).second) {
            duplicate = std::move(key_);
            ec = std::make_error_code(std::errc::invalid_argument);
            return false;
        }
        key_.clear();
        return true;
    }
    bool on_number_part(json::string_view, boost::system::error_code&) { return true; }
    bool on_int64(std::int64_t, json::string_view, boost::system::error_code&) { return true; }
    bool on_uint64(std::uint64_t, json::string_view, boost::system::error_code&) { return true; }
    bool on_double(double, json::string_view, boost::system::error_code&) { return true; }
    bool on_bool(bool, boost::system::error_code&) { return true; }
    bool on_null(boost::system::error_code&) { return true; }
    bool on_comment_part(json::string_view, boost::system::error_code&) { return true; }
    bool on_comment(json::string_view, boost::system::error_code&) { return true; }

private:
    // Per open object, its keys so far: a hash set, since the sender decides how many (a body of 64 KiB holds
    // thousands) and a linear search would make that quadratic.
    std::vector<std::unordered_set<std::string>> keys_;
    std::string key_;
};

// A key as an error message quotes it: at most 64 bytes (cut at a character's start), since the sender chose it.
std::string shown_key(std::string_view key)
{
    constexpr std::size_t most = 64;
    if (key.size() <= most) {
        return std::string(key);
    }
    std::size_t cut = most;
    while (cut > 0 && (static_cast<unsigned char>(key[cut]) & 0xc0) == 0x80) {
        --cut;
    }
    return std::string(key.substr(0, cut)) + "...";
}

std::optional<std::string> duplicate_key(std::string_view text)
{
    json::basic_parser<duplicate_key_finder> parser{json::parse_options{}};
    boost::system::error_code ec;
    parser.write_some(false, text.data(), text.size(), ec);
    return parser.handler().duplicate;
}

bool listed(std::span<const std::string_view> names, std::string_view name)
{
    return std::find(names.begin(), names.end(), name) != names.end();
}

std::vector<std::string_view> split_path(std::string_view path)
{
    std::vector<std::string_view> parts;
    path.remove_prefix(1);
    while (true) {
        const auto slash = std::min(path.find('/'), path.size());
        parts.push_back(path.substr(0, slash));
        if (slash == path.size()) {
            return parts;
        }
        path.remove_prefix(slash + 1);
    }
}

constexpr std::array<std::string_view, 1> text_only{"text"};
constexpr std::array<std::string_view, 4> approve_body{"duration", "scope", "group", "note"};
constexpr std::array<std::string_view, 1> note_only{"note"};
constexpr std::array<std::string_view, 2> extend_body{"duration", "note"};
constexpr std::array<std::string_view, 2> list_query{"state", "limit"};
constexpr std::array<std::string_view, 8> history_query{"client", "host",  "actor", "event",
                                                        "request", "grant", "limit", "before"};

}  // namespace

// --- routes -----------------------------------------------------------------------------------------------------

bool decides(action a)
{
    return a == action::approve || a == action::deny || a == action::revoke || a == action::extend ||
           a == action::api_approve || a == action::api_deny || a == action::api_revoke ||
           a == action::api_extend;
}

std::optional<route> find_route(std::string_view path)
{
    if (path == "/") {
        return route{action::pending_page, std::nullopt};
    }
    if (path.empty() || path.front() != '/') {
        return std::nullopt;
    }
    auto parts = split_path(path);
    const bool api = parts.size() >= 2 && parts[0] == "api" && parts[1] == "v1";
    if (api) {
        parts.erase(parts.begin(), parts.begin() + 2);
    }
    const auto pick = [api](action page, action json_api) { return api ? json_api : page; };
    if (parts.size() == 1) {
        if (parts[0] == "requests") {
            return api ? std::optional<route>(route{action::api_requests, std::nullopt, 0, true}) : std::nullopt;
        }
        if (parts[0] == "grants") {
            return route{pick(action::grants_page, action::api_grants), std::nullopt, 0, api};
        }
        if (parts[0] == "history") {
            return route{pick(action::history_page, action::api_history), std::nullopt, 0, api};
        }
        if (api && parts[0] == "whoami") {
            return route{action::api_whoami, std::nullopt, 0, true};
        }
        if (!api && parts[0] == "login") {
            return route{action::login_page, action::login};
        }
        if (!api && parts[0] == "logout") {
            return route{std::nullopt, action::logout};
        }
        return std::nullopt;
    }
    if (!api && parts.size() == 2 && parts[0] == "static" && parts[1] == "style.css") {
        return route{action::style, std::nullopt};
    }
    if (parts.size() < 2 || parts.size() > 3 || (parts[0] != "requests" && parts[0] != "grants")) {
        return std::nullopt;
    }
    const auto id = parse_id(parts[1]);
    if (!id) {
        return std::nullopt;
    }
    const bool requests = parts[0] == "requests";
    if (parts.size() == 2) {
        const auto get = requests ? pick(action::request_page, action::api_request)
                                  : (api ? std::optional<action>(action::api_grant) : std::nullopt);
        if (!get) {
            return std::nullopt;
        }
        return route{get, std::nullopt, *id, api};
    }
    const std::string_view verb = parts[2];
    std::optional<action> post;
    if (requests && verb == "justify") {
        post = pick(action::justify, action::api_justify);
    } else if (requests && verb == "approve") {
        post = pick(action::approve, action::api_approve);
    } else if (requests && verb == "deny") {
        post = pick(action::deny, action::api_deny);
    } else if (!requests && verb == "revoke") {
        post = pick(action::revoke, action::api_revoke);
    } else if (!requests && verb == "extend") {
        post = pick(action::extend, action::api_extend);
    }
    if (!post) {
        return std::nullopt;
    }
    return route{std::nullopt, post, *id, api};
}

std::optional<action> action_for(const route& r, http::verb method)
{
    if (method == http::verb::get || method == http::verb::head) {
        return r.get;
    }
    return method == http::verb::post ? r.post : std::nullopt;
}

std::string_view allow_text(const route& r)
{
    if (r.get && r.post) {
        return "GET, HEAD, POST";
    }
    return r.get ? "GET, HEAD" : "POST";
}

admission admit(http::verb method, std::string_view target)
{
    admission a;
    // Origin-form only: an absolute URI would name another host, and "*" means nothing here.
    if (target.empty() || target.front() != '/') {
        return a;
    }
    const auto question = target.find('?');
    const std::string_view path = target.substr(0, question);
    a.query = question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
    a.api = path.starts_with("/api/");
    a.to = find_route(path);
    if (!a.to) {
        a.result = admission_result::not_found;
        return a;
    }
    a.chosen = action_for(*a.to, method);
    a.result = a.chosen ? admission_result::serve : admission_result::method_not_allowed;
    return a;
}

// --- forms, query strings, ids, durations ----------------------------------------------------------------------

bool acceptable_text(std::string_view s)
{
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) {
                return false;
            }
            ++i;
            continue;
        }
        std::size_t length = 0;
        std::uint32_t code = 0;
        std::uint32_t least = 0;
        if (c >= 0xc2 && c <= 0xdf) {
            length = 2;
            code = c & 0x1fu;
            least = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            length = 3;
            code = c & 0x0fu;
            least = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            length = 4;
            code = c & 0x07u;
            least = 0x10000;
        } else {
            return false;
        }
        if (i + length > s.size()) {
            return false;
        }
        for (std::size_t k = 1; k < length; ++k) {
            const auto next = static_cast<unsigned char>(s[i + k]);
            if ((next & 0xc0) != 0x80) {
                return false;
            }
            code = (code << 6) | (next & 0x3fu);
        }
        if (code < least || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
            return false;
        }
        i += length;
    }
    return true;
}

std::optional<std::string> decode_component(std::string_view text)
{
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '+') {
            out.push_back(' ');
        } else if (c == '%') {
            if (i + 2 >= text.size()) {
                return std::nullopt;
            }
            const int high = hex_value(text[i + 1]);
            const int low = hex_value(text[i + 2]);
            if (high < 0 || low < 0) {
                return std::nullopt;
            }
            out.push_back(static_cast<char>(high * 16 + low));
            i += 2;
        } else if (c > 0x20 && c < 0x7f) {
            out.push_back(c);
        } else {
            return std::nullopt;
        }
    }
    if (!acceptable_text(out)) {
        return std::nullopt;
    }
    return out;
}

std::optional<form_fields> decode_form(std::string_view text)
{
    form_fields out;
    if (text.empty()) {
        return out;
    }
    std::size_t start = 0;
    for (std::size_t count = 0;; ++count) {
        const auto end = std::min(text.find('&', start), text.size());
        const auto pair = text.substr(start, end - start);
        const auto equals = pair.find('=');
        if (count == max_form_fields || equals == std::string_view::npos || equals == 0) {
            return std::nullopt;
        }
        auto name = decode_component(pair.substr(0, equals));
        auto value = decode_component(pair.substr(equals + 1));
        if (!name || !value || !out.emplace(std::move(*name), std::move(*value)).second) {
            return std::nullopt;
        }
        if (end == text.size()) {
            return out;
        }
        start = end + 1;
    }
}

std::optional<form_fields> read_form(std::string_view content_type, std::string_view body)
{
    if (media_type(content_type) != form_media_type) {
        return std::nullopt;
    }
    return decode_form(body);
}

std::string field_or_empty(const form_fields& f, std::string_view name)
{
    const auto it = f.find(name);
    return it == f.end() ? std::string() : it->second;
}

std::optional<std::int64_t> parse_id(std::string_view text)
{
    // from_chars alone would take "-5": the first digit is checked here.
    if (text.empty() || text.front() < '1' || text.front() > '9' || text.size() > 18) {
        return std::nullopt;
    }
    std::int64_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return value;
}

std::optional<std::size_t> parse_limit(std::string_view text)
{
    const auto value = parse_id(text);
    if (!value || static_cast<std::size_t>(*value) > max_list_limit) {
        return std::nullopt;
    }
    return static_cast<std::size_t>(*value);
}

std::optional<std::size_t> limit_field(const form_fields& params, std::size_t absent, std::string& problem)
{
    const auto it = params.find("limit");
    if (it == params.end()) {
        return absent;
    }
    auto parsed = parse_limit(it->second);
    if (!parsed) {
        problem = "limit is a number from 1 to 10000";
    }
    return parsed;
}

std::optional<std::chrono::seconds> parse_seconds(std::string_view text)
{
    const auto d = config::parse_duration(text);
    if (!d || *d <= 0ms || *d % 1s != 0ms) {
        return std::nullopt;
    }
    return std::chrono::duration_cast<std::chrono::seconds>(*d);
}

std::string duration_text(std::chrono::seconds s)
{
    const auto n = s.count();
    if (n > 0 && n % 86400 == 0) {
        return std::to_string(n / 86400) + "d";
    }
    if (n > 0 && n % 3600 == 0) {
        return std::to_string(n / 3600) + "h";
    }
    if (n > 0 && n % 60 == 0) {
        return std::to_string(n / 60) + "m";
    }
    return std::to_string(n) + "s";
}

// --- who is asking ----------------------------------------------------------------------------------------------

std::string_view media_type(std::string_view content_type)
{
    return trim(content_type.substr(0, content_type.find(';')));
}

std::optional<std::string> session_cookie(std::span<const std::string_view> cookie_headers)
{
    std::optional<std::string> found;
    for (std::string_view rest : cookie_headers) {
        while (!rest.empty()) {
            const auto semicolon = std::min(rest.find(';'), rest.size());
            const auto pair = trim(rest.substr(0, semicolon));
            rest.remove_prefix(std::min(semicolon + 1, rest.size()));
            const auto equals = pair.find('=');
            if (equals == std::string_view::npos || pair.substr(0, equals) != session_cookie_name) {
                continue;
            }
            if (found) {
                return std::nullopt;
            }
            found = std::string(pair.substr(equals + 1));
        }
    }
    return found;
}

bool same_text(std::string_view a, std::string_view b)
{
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool csrf_matches(const form_fields& form, std::string_view expected)
{
    // Callers always have a token; should one ever be empty, a form without the field must not pass.
    return !expected.empty() && same_text(field_or_empty(form, csrf_field), expected);
}

std::optional<std::string_view> trusted_user(std::span<const std::string_view> values)
{
    if (values.size() != 1) {
        return std::nullopt;
    }
    const std::string_view name = trim(values.front());
    if (name.empty() || name.size() > max_header_user ||
        !std::all_of(name.begin(), name.end(), [](char c) { return c > 0x20 && c < 0x7f; })) {
        return std::nullopt;
    }
    return name;
}

bool names_group(std::span<const std::string_view> values, std::string_view group)
{
    if (group.empty()) {
        return false;
    }
    for (std::string_view rest : values) {
        while (!rest.empty()) {
            const auto comma = std::min(rest.find(','), rest.size());
            if (trim(rest.substr(0, comma)) == group) {
                return true;
            }
            rest.remove_prefix(std::min(comma + 1, rest.size()));
        }
    }
    return false;
}

// --- the JSON API -----------------------------------------------------------------------------------------------

std::span<const std::string_view> json_body_fields(action a)
{
    switch (a) {
    case action::api_justify:
        return text_only;
    case action::api_approve:
        return approve_body;
    case action::api_deny:
    case action::api_revoke:
        return note_only;
    case action::api_extend:
        return extend_body;
    default:
        return {};
    }
}

std::span<const std::string_view> query_parameters(action a)
{
    switch (a) {
    case action::api_requests:
    case action::api_grants:
        return list_query;
    case action::api_history:
        return history_query;
    default:
        return {};
    }
}

std::optional<form_fields> json_fields(std::string_view content_type, std::string_view body,
                                       std::span<const std::string_view> allowed, std::string& problem)
{
    if (!boost::beast::iequals(media_type(content_type), json_media_type)) {
        problem = "send Content-Type: application/json";
        return std::nullopt;
    }
    form_fields out;
    if (trim(body).empty()) {
        return out;
    }
    boost::system::error_code ec;
    const json::value parsed = json::parse(body, ec);
    if (ec) {
        problem = "the body is not JSON: " + ec.message();
        return std::nullopt;
    }
    if (!parsed.is_object()) {
        problem = "the body must be a JSON object";
        return std::nullopt;
    }
    if (auto key = duplicate_key(body)) {
        problem = "field \"" + shown_key(*key) + "\" is given twice";
        return std::nullopt;
    }
    for (const auto& [key, value] : parsed.get_object()) {
        if (!listed(allowed, key)) {
            problem = "unknown field \"" + shown_key(key) + "\"";
            return std::nullopt;
        }
        if (!value.is_string()) {
            problem = "field \"" + std::string(key) + "\" must be a string";
            return std::nullopt;
        }
        // JSON escapes can spell any control character ("\u001b"): the API takes no text the page's form would
        // refuse, so neither is a way around the other into the store, the pages, the logs and the webhooks.
        if (!acceptable_text(value.get_string())) {
            problem = "field \"" + std::string(key) + "\" holds a control character";
            return std::nullopt;
        }
        out.emplace(std::string(key), std::string(value.get_string()));
    }
    return out;
}

std::optional<form_fields> query_fields(std::string_view query, std::span<const std::string_view> allowed,
                                        std::string& problem)
{
    auto out = decode_form(query);
    if (!out) {
        problem = "the query string is not valid";
        return std::nullopt;
    }
    for (const auto& [key, value] : *out) {
        if (!listed(allowed, key)) {
            problem = "unknown query parameter \"" + key + "\"";
            return std::nullopt;
        }
    }
    return out;
}

}  // namespace egressd::proxy::approvals
