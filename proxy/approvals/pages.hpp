#pragma once

// The approvals web page, rendered on the server: plain HTML and one stylesheet, no script, no external
// asset (the listener sends Content-Security-Policy: default-src 'none'; style-src 'self'; img-src 'self';
// form-action 'self'; frame-ancestors 'none'; base-uri 'none'). Every form carries the CSRF token as a hidden
// field named "csrf". Readable on a laptop and a phone (one column below 720px).
//
// Pure functions from data to a whole HTML document; every piece of text from users, clients or the store is
// HTML-escaped. The routes the forms post to are those the web server serves:
//   GET  /                     pending requests (approvers) / the requester's view of pending requests
//   GET  /requests/{id}        one request: facts, justifications, votes, forms, "make permanent" snippet
//   POST /requests/{id}/justify  fields: csrf, text
//   POST /requests/{id}/approve  fields: csrf, destination, group ("" = this client), duration ("8h"), note
//   POST /requests/{id}/deny     fields: csrf, note
//   GET  /grants               active grants with time left, revoke and extend forms
//   POST /grants/{id}/revoke     fields: csrf, note
//   POST /grants/{id}/extend     fields: csrf, duration, note
//   GET  /history              query: client, host, actor, event, request, limit
//   GET  /login, POST /login     fields: user, password (no csrf: there is no session yet; SameSite=Strict
//                                cookies and the sign-in rate limit stand in)
//   POST /logout                 fields: csrf
//   GET  /static/style.css

#include "proxy/approvals/service.hpp"
#include "proxy/approvals/store.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace egressd::proxy::approvals::pages {

// What every page shows in its header and needs for its forms.
struct frame {
    std::optional<user> who;       // nullopt: not signed in (the login page)
    std::string csrf;              // the session's token, for every form
    std::string flash;             // a message after a post ("Approved: grant 4 until 18:00 UTC")
    bool flash_is_error = false;
    std::chrono::sys_seconds now;  // for "3 minutes ago", "2h 10m left"
};

std::string login(const frame& f, const std::string& error, const std::string& user_value);
std::string pending(const frame& f, const std::vector<access_request>& requests);
struct request_view {
    access_request request;
    std::vector<scope_choice> scopes;       // for the approve form
    std::vector<std::string> groups;        // the client's groups, for the approve form
    unsigned required_approvals = 1;
    std::string default_duration;           // "8h"
    std::string max_duration;               // "7d"
    std::optional<grant_record> grant;      // approved: the grant it led to
    std::string snippet;                    // "make permanent" YAML, when there is a grant
    std::vector<history_entry> history;     // of this request
};
std::string request_detail(const frame& f, const request_view& v);
std::string grants(const frame& f, const std::vector<grant_record>& active, const std::string& max_duration);
std::string history(const frame& f, const std::vector<history_entry>& entries, const history_filter& filter);
std::string error_page(const frame& f, unsigned status, const std::string& message);

const std::string& stylesheet();

// Helpers shared with the server (exposed for tests).
std::string escape(std::string_view text);              // & < > " '
std::string format_time(std::chrono::sys_seconds t);    // "2026-12-06 10:00 UTC"
std::string format_left(std::chrono::seconds left);     // "2h 10m", "45s", "3d 4h"
std::string format_ago(std::chrono::seconds ago);       // "just now", "5m ago", "2d ago"

}  // namespace egressd::proxy::approvals::pages
