#include "proxy/approvals/pages.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <tuple>

namespace egressd::proxy::approvals::pages {

namespace {

using std::chrono::seconds;
using std::chrono::sys_seconds;

constexpr std::string_view product = "egressd approvals";

enum class tab : std::uint8_t { none, pending, grants, history };

std::string number(std::int64_t n) { return std::to_string(n); }

// A UTC time in printf's hands: year, month, day, hour, minute, second, in that order.
std::string print_utc(const char* format, sys_seconds t) {
    const auto day = std::chrono::floor<std::chrono::days>(t);
    const std::chrono::year_month_day ymd{day};
    const std::chrono::hh_mm_ss hms{t - day};
    std::array<char, 40> buf{};
    std::snprintf(buf.data(), buf.size(), format, static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                  static_cast<unsigned>(ymd.day()), static_cast<int>(hms.hours().count()),
                  static_cast<int>(hms.minutes().count()), static_cast<int>(hms.seconds().count()));
    return buf.data();
}

// "2026-12-06T10:00:00Z", for <time datetime>.
std::string rfc3339(sys_seconds t) { return print_utc("%04d-%02u-%02uT%02d:%02d:%02dZ", t); }

// An IPv6 literal needs its brackets before the port, as a person would type it into curl.
std::string destination_text(const std::string& host, std::uint16_t port) {
    const bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// Relative time for reading at a glance, the exact time on hover and for machines.
std::string time_ago(sys_seconds t, sys_seconds now) {
    return "<time datetime=\"" + rfc3339(t) + "\" title=\"" + format_time(t) + "\">" + format_ago(now - t) +
           "</time>";
}

std::string time_left(sys_seconds expires, sys_seconds now) {
    return "<time datetime=\"" + rfc3339(expires) + "\" title=\"until " + format_time(expires) + "\">" +
           format_left(expires - now) + " left</time>";
}

std::string badge(std::string_view state) {
    const std::string s = escape(state);
    return "<span class=\"badge badge-" + s + "\">" + s + "</span>";
}

// The reason codes a request can carry, as words; nullopt for anything else.
std::optional<std::string_view> reason_words(std::string_view code) {
    if (code == "no_matching_rule") {
        return "no matching rule";
    }
    if (code == "port_not_allowed") {
        return "port not allowed";
    }
    if (code == "expired") {
        return "rule expired";
    }
    return std::nullopt;
}

// An unknown code is shown as it is.
std::string reason_text(const std::string& reason) {
    const auto words = reason_words(reason);
    return words ? std::string(*words) : escape(reason);
}

// A "requested" entry's detail is the denial's reason code; every other detail is free text from a person.
std::string history_detail(const history_entry& e) {
    return e.event == "requested" ? reason_text(e.detail) : escape(e.detail);
}

std::string event_badge(const std::string& event) {
    std::string_view tone = "info";
    if (event == "requested") {
        tone = "pending";
    } else if (event == "approved") {
        tone = "approved";
    } else if (event == "denied" || event == "revoked") {
        tone = "denied";
    } else if (event == "expired" || event == "request_expired") {
        tone = "expired";
    }
    std::string label = escape(event);
    std::replace(label.begin(), label.end(), '_', ' ');
    return "<span class=\"badge badge-" + std::string(tone) + "\">" + label + "</span>";
}

std::string scope_text(policy::grant_scope scope, const std::string& name) {
    const std::string_view kind = scope == policy::grant_scope::group ? "group" : "client";
    return std::string(kind) + " <span class=\"mono\">" + escape(name) + "</span>";
}

std::string csrf_field(const frame& f) {
    return "<input type=\"hidden\" name=\"csrf\" value=\"" + escape(f.csrf) + "\">";
}

std::string form_open(const frame& f, const std::string& action, std::string_view css_class) {
    return "<form method=\"post\" action=\"" + escape(action) + "\" class=\"" + std::string(css_class) + "\">" +
           csrf_field(f);
}

std::string url_encode(std::string_view text) {
    static constexpr std::string_view hex = "0123456789ABCDEF";
    std::string out;
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (std::isalnum(u) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
            out += c;
        } else {
            out += '%';
            out += hex[u >> 4U];
            out += hex[u & 0x0FU];
        }
    }
    return out;
}

// "alice,bob" as the store keeps it reads "alice, bob".
std::string people(const std::string& names) {
    std::string out;
    for (const char c : escape(names)) {
        out += c;
        if (c == ',') {
            out += ' ';
        }
    }
    return out;
}

bool is_approver(const frame& f) { return f.who && f.who->level == role::approver; }

std::string top_bar(const frame& f, tab current) {
    std::string out = "<header class=\"topbar\"><div class=\"topbar-inner\">";
    out += "<a class=\"brand\" href=\"/\"><span class=\"brand-mark\" aria-hidden=\"true\"></span>";
    out += std::string(product) + "</a>";
    if (f.who) {
        out += "<nav class=\"nav\" aria-label=\"Main\">";
        const std::array<std::tuple<tab, std::string_view, std::string_view>, 3> items{{
            {tab::pending, "/", "Pending"},
            {tab::grants, "/grants", "Grants"},
            {tab::history, "/history", "History"},
        }};
        for (const auto& [t, href, label] : items) {
            out += "<a href=\"" + std::string(href) + "\"";
            if (t == current) {
                out += " aria-current=\"page\"";
            }
            out += ">" + std::string(label) + "</a>";
        }
        out += "</nav><div class=\"account\"><span class=\"who\"><span class=\"who-name\">" + escape(f.who->name) +
               "</span><span class=\"role\">" + escape(to_string(f.who->level)) + "</span></span>";
        out += form_open(f, "/logout", "signout") +
               "<button type=\"submit\" class=\"btn btn-quiet\">Sign out</button></form></div>";
    }
    out += "</div></header>";
    return out;
}

std::string flash_area(const frame& f) {
    if (f.flash.empty()) {
        return {};
    }
    if (f.flash_is_error) {
        return "<div class=\"flash flash-error\" role=\"alert\">" + escape(f.flash) + "</div>";
    }
    return "<div class=\"flash flash-ok\" role=\"status\">" + escape(f.flash) + "</div>";
}

std::string document(const frame& f, tab current, std::string_view title, const std::string& body) {
    std::string out;
    out.reserve(body.size() + 2048);
    out += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">";
    out += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">";
    out += "<meta name=\"referrer\" content=\"no-referrer\">";
    out += "<title>" + escape(title) + " · " + std::string(product) + "</title>";
    out += "<link rel=\"stylesheet\" href=\"/static/style.css\"></head><body>";
    out += top_bar(f, current);
    out += "<main class=\"main\">" + flash_area(f) + body + "</main></body></html>\n";
    return out;
}

std::string empty_state(std::string_view title, std::string_view text) {
    return "<div class=\"empty\"><p class=\"empty-title\">" + std::string(title) + "</p><p>" + std::string(text) +
           "</p></div>";
}

std::string cell(std::string_view label, const std::string& content, std::string_view css_class = "") {
    std::string out = "<td data-label=\"" + std::string(label) + "\"";
    if (!css_class.empty()) {
        out += " class=\"" + std::string(css_class) + "\"";
    }
    return out + ">" + content + "</td>";
}

std::string request_link(std::int64_t id, const std::string& content) {
    return "<a href=\"/requests/" + number(id) + "\">" + content + "</a>";
}

std::string justification_list(const frame& f, const std::vector<justification>& list) {
    if (list.empty()) {
        return "<p class=\"muted\">No justification yet.</p>";
    }
    std::string out = "<ul class=\"notes\">";
    for (const auto& j : list) {
        out += "<li><div class=\"note-meta\"><strong>" + escape(j.user) + "</strong> " + time_ago(j.at, f.now) +
               "</div><p class=\"note-text\">" + escape(j.text) + "</p></li>";
    }
    return out + "</ul>";
}

std::string history_list(const frame& f, const std::vector<history_entry>& entries) {
    if (entries.empty()) {
        return "<p class=\"muted\">No history yet.</p>";
    }
    std::string out = "<ol class=\"timeline\">";
    for (const auto& e : entries) {
        out += "<li>" + event_badge(e.event) + " <span class=\"timeline-actor\">" + escape(e.actor) + "</span> " +
               time_ago(e.at, f.now);
        if (!e.detail.empty()) {
            out += "<p class=\"note-text\">" + history_detail(e) + "</p>";
        }
        out += "</li>";
    }
    return out + "</ol>";
}

std::string fact(std::string_view term, const std::string& value, bool wide = false) {
    return std::string(wide ? "<div class=\"wide\">" : "<div>") + "<dt>" + std::string(term) + "</dt><dd>" + value +
           "</dd></div>";
}

std::string vote_summary(const frame& f, const request_view& v) {
    const auto& r = v.request;
    std::string out = "<p class=\"votes-count\"><strong>" + std::to_string(r.votes.size()) + " of " +
                      std::to_string(v.required_approvals) + "</strong> approvers</p>";
    if (!r.votes.empty()) {
        out += "<ul class=\"notes\">";
        for (const auto& vt : r.votes) {
            out += "<li><div class=\"note-meta\"><strong>" + escape(vt.approver) + "</strong> approved " +
                   time_ago(vt.at, f.now) + "</div>";
            if (!vt.note.empty()) {
                out += "<p class=\"note-text\">" + escape(vt.note) + "</p>";
            }
            out += "</li>";
        }
        out += "</ul>";
    }
    return out;
}

std::string approve_form(const frame& f, const request_view& v) {
    const auto& r = v.request;
    std::string out = form_open(f, "/requests/" + number(r.id) + "/approve", "stack");

    out += "<fieldset><legend>Destination</legend>";
    for (std::size_t i = 0; i < v.scopes.size(); ++i) {
        const auto& s = v.scopes[i];
        const std::string id = "scope-" + std::to_string(i);
        out += "<div class=\"choice\"><input type=\"radio\" name=\"destination\" id=\"" + id + "\" value=\"" +
               escape(s.destination) + "\"" + (i == 0 ? " checked" : "") + "><label for=\"" + id +
               "\"><span class=\"mono\">" + escape(destination_text(s.destination, r.key.port)) +
               "</span><span class=\"hint\">" + escape(s.label) + "</span></label></div>";
    }
    if (v.scopes.empty()) {
        out += "<input type=\"hidden\" name=\"destination\" value=\"\"><p class=\"mono\">" +
               escape(destination_text(r.key.host, r.key.port)) + "</p>";
    }
    out += "</fieldset>";

    // Who and for how long side by side where there is room: the form stays short enough for deny to show below.
    out += "<div class=\"pair\"><div class=\"field\"><label for=\"group\">Who</label><select name=\"group\" "
           "id=\"group\"><option value=\"\" selected>this client only (" +
           escape(r.key.client) + ")</option>";
    for (const auto& g : v.groups) {
        out += "<option value=\"" + escape(g) + "\">every client in group " + escape(g) + "</option>";
    }
    out += "</select></div>";
    out += "<div class=\"field\"><label for=\"duration\">Duration</label><input type=\"text\" name=\"duration\" "
           "id=\"duration\" value=\"" +
           escape(v.default_duration) +
           "\" required autocomplete=\"off\" spellcheck=\"false\" aria-describedby=\"duration-hint\">"
           "<p class=\"hint\" id=\"duration-hint\">30m, 8h or 2d; at most " +
           escape(v.max_duration) + ".</p></div></div>";
    out += "<label for=\"approve-note\">Note <span class=\"optional\">(optional)</span></label>"
           "<input type=\"text\" name=\"note\" id=\"approve-note\" maxlength=\"2000\">";
    if (v.required_approvals > 1) {
        out += "<p class=\"hint\">This client needs " + std::to_string(v.required_approvals) +
               " different approvers; " + std::to_string(r.votes.size()) + " approved so far.</p>";
    }
    return out + "<button type=\"submit\" class=\"btn btn-primary\">Approve</button></form>";
}

// Compact, right under the approve button, and set apart: a separator, its own heading, a danger button.
std::string deny_form(const frame& f, const access_request& r) {
    return "<div class=\"deny\"><h2>Deny</h2>" + form_open(f, "/requests/" + number(r.id) + "/deny", "deny-form") +
           "<label for=\"deny-note\">Note <span class=\"optional\">(optional; the requester sees it)</span></label>"
           "<div class=\"inline\"><input type=\"text\" name=\"note\" id=\"deny-note\" maxlength=\"2000\">"
           "<button type=\"submit\" class=\"btn btn-danger\">Deny</button></div></form></div>";
}

std::string justify_form(const frame& f, const access_request& r) {
    return "<section class=\"panel\"><h2>Add a justification</h2>" +
           form_open(f, "/requests/" + number(r.id) + "/justify", "stack") +
           "<label for=\"justify-text\">Why does this workload need " +
           escape(destination_text(r.key.host, r.key.port)) +
           "?</label><textarea name=\"text\" id=\"justify-text\" rows=\"3\" maxlength=\"2000\" required "
           "placeholder=\"A ticket link, what calls it and why\"></textarea>"
           "<button type=\"submit\" class=\"btn btn-primary\">Add justification</button></form></section>";
}

// What an approver can do on a pending request, or why they cannot.
std::string decision_panels(const frame& f, const request_view& v) {
    const auto& r = v.request;
    const std::string& me = f.who->name;
    const auto justified = std::any_of(r.justifications.begin(), r.justifications.end(),
                                       [&](const justification& j) { return j.user == me; });
    if (justified) {
        return "<section class=\"panel panel-info\"><h2>Decision</h2><p>You justified this request, so another "
               "approver decides it.</p></section>";
    }
    const auto voted =
        std::any_of(r.votes.begin(), r.votes.end(), [&](const vote& vt) { return vt.approver == me; });
    std::string out = "<section class=\"panel decide\"><h2>Approve</h2>";
    if (voted) {
        out += "<p>You approved this request. It needs " + std::to_string(v.required_approvals) +
               " different approvers before it is granted.</p>";
    } else {
        out += approve_form(f, v);
    }
    return out + deny_form(f, r) + "</section>";
}

std::string grant_panel(const frame& f, const request_view& v) {
    const auto& g = *v.grant;
    std::string out = "<section class=\"panel panel-ok\"><h2>Grant " + number(g.id) + " " +
                      badge(to_string(g.state)) + "</h2><dl class=\"facts facts-compact\">";
    out += fact("For", scope_text(g.scope, g.scope_name));
    out += fact("Destination", "<span class=\"mono\">" + escape(destination_text(g.destination, g.port)) + "</span>");
    out += fact("Approved by", people(g.approved_by));
    if (g.state == grant_state::active) {
        out += fact("Expires", time_left(g.expires, f.now) + " <span class=\"muted\">(" + format_time(g.expires) +
                                   ")</span>");
    } else if (g.ended_at) {
        out += fact("Ended", time_ago(*g.ended_at, f.now) +
                                 (g.ended_by.empty() ? std::string{} : " by " + escape(g.ended_by)));
    }
    out += "</dl>";
    if (g.state == grant_state::active && is_approver(f)) {
        out += "<p><a href=\"/grants\">Revoke or extend it on the grants page</a></p>";
    }
    out += "</section>";
    if (!v.snippet.empty()) {
        out += "<section class=\"panel\"><h2>Make permanent</h2><p>The grant ends at its expiry. To allow this for "
               "good, add this to the policy repository (egressd never edits the policy files):</p>"
               "<pre class=\"snippet\"><code>" +
               escape(v.snippet) + "</code></pre></section>";
    }
    return out;
}

std::string decision_summary(const frame& f, const access_request& r) {
    std::string out = "<section class=\"panel\"><h2>Decision</h2>";
    if (r.state == request_state::expired) {
        out += "<p>Nobody decided this request in time, so it expired. The next denial of this destination opens a "
               "new request.</p>";
    } else {
        out += "<p>" + badge(to_string(r.state));
        if (!r.decided_by.empty()) {
            out += " by <strong>" + people(r.decided_by) + "</strong>";
        }
        if (r.decided_at) {
            out += " " + time_ago(*r.decided_at, f.now);
        }
        out += "</p>";
        if (!r.decision_note.empty()) {
            out += "<p class=\"note-text\">" + escape(r.decision_note) + "</p>";
        }
    }
    return out + "</section>";
}

std::string pending_row(const frame& f, const access_request& r) {
    std::string row = "<tr>";
    row += cell("Destination",
                request_link(r.id, "<span class=\"mono\">" + escape(destination_text(r.key.host, r.key.port)) +
                                       "</span>"),
                "primary");
    row += cell("Client", "<span class=\"mono\">" + escape(r.key.client) + "</span>");
    row += cell("Hits", number(r.hits), "num");
    row += cell("First seen", time_ago(r.first_seen, f.now));
    row += cell("Last seen", time_ago(r.last_seen, f.now));
    row += cell("Reason", reason_text(r.reason), "nowrap");
    if (r.justifications.empty()) {
        row += cell("Justification", "<span class=\"muted\">none yet</span>");
    } else {
        const auto& j = r.justifications.back();
        row += cell("Justification", "<span class=\"clamp\" title=\"" + escape(j.text) + "\">" + escape(j.text) +
                                         "</span><span class=\"byline\">" + escape(j.user) + "</span>");
    }
    return row + "</tr>";
}

std::string note_input(const std::string& id, std::string_view label) {
    return "<label for=\"" + id + "\">" + std::string(label) +
           " <span class=\"optional\">(optional)</span></label><input type=\"text\" "
           "name=\"note\" id=\"" + id + "\" maxlength=\"2000\">";
}

std::string grant_row(const frame& f, const grant_record& g, const std::string& max_duration) {
    std::string row = "<tr>";
    row += cell("Grant", "<span class=\"grant-id\">#" + number(g.id) + "</span><span class=\"byline\">request " +
                             request_link(g.request_id, "#" + number(g.request_id)) + "</span>");
    row += cell("Destination",
                "<span class=\"mono\">" + escape(destination_text(g.destination, g.port)) + "</span>", "primary");
    row += cell("For", scope_text(g.scope, g.scope_name));
    row += cell("Approved by", people(g.approved_by));
    const bool soon = g.expires - f.now < std::chrono::hours{1};
    row += cell("Time left", "<span class=\"left" + std::string(soon ? " left-soon" : "") + "\">" +
                                 time_left(g.expires, f.now) + "</span>");
    if (is_approver(f)) {
        const std::string base = "/grants/" + number(g.id);
        const std::string id = std::to_string(g.id);
        std::string actions =
            "<details class=\"actions\"><summary>Revoke or extend</summary><div class=\"actions-body\">";
        // Each form under its own heading, so the two note fields cannot be taken for one another.
        actions += form_open(f, base + "/extend", "stack") +
                   "<h3 class=\"form-title\">Extend</h3><label for=\"extend-" + id +
                   "\">Expires in</label><input type=\"text\" name=\"duration\" id=\"extend-" + id +
                   "\" required autocomplete=\"off\" spellcheck=\"false\" placeholder=\"" + escape(max_duration) +
                   "\"><p class=\"hint\">Counted from now; at most " + escape(max_duration) + ".</p>" +
                   note_input("extend-note-" + id, "Note") +
                   "<button type=\"submit\" class=\"btn\">Extend</button></form>";
        actions += form_open(f, base + "/revoke", "stack") +
                   "<h3 class=\"form-title form-title-danger\">Revoke</h3>" +
                   note_input("revoke-note-" + id, "Reason") +
                   "<button type=\"submit\" class=\"btn btn-danger\">Revoke now</button></form>";
        actions += "</div></details>";
        row += cell("Actions", actions, "actions-cell");
    }
    return row + "</tr>";
}

std::string filter_input(std::string_view name, std::string_view label, const std::string& value,
                         std::string_view css_class = "") {
    std::string out = "<div class=\"field\"><label for=\"f-" + std::string(name) + "\">" + std::string(label) +
                      "</label><input type=\"text\" name=\"" + std::string(name) + "\" id=\"f-" + std::string(name) +
                      "\" value=\"" + escape(value) + "\" autocomplete=\"off\" spellcheck=\"false\"";
    if (!css_class.empty()) {
        out += " class=\"" + std::string(css_class) + "\"";
    }
    return out + "></div>";
}

std::string history_query(const history_filter& filter, std::size_t limit) {
    std::string q;
    const auto add = [&](std::string_view key, const std::string& value) {
        if (!value.empty()) {
            q += std::string(key) + "=" + url_encode(value) + "&";
        }
    };
    add("client", filter.client);
    add("host", filter.host);
    add("actor", filter.actor);
    add("event", filter.event);
    add("request", filter.request_id ? number(*filter.request_id) : std::string{});
    return "/history?" + q + "limit=" + std::to_string(limit);
}

}  // namespace

std::string escape(std::string_view text) {
    std::string out;
    out.reserve(text.size() + text.size() / 8);
    for (const char c : text) {
        switch (c) {
        case '&':
            out += "&amp;";
            break;
        case '<':
            out += "&lt;";
            break;
        case '>':
            out += "&gt;";
            break;
        case '"':
            out += "&quot;";
            break;
        case '\'':
            out += "&#39;";
            break;
        default:
            out += c;
        }
    }
    return out;
}

std::string format_time(sys_seconds t) { return print_utc("%04d-%02u-%02u %02d:%02d UTC", t); }

// Two units at most: enough to act on, short enough for a table cell. Rounded up to the smallest unit shown, as a
// countdown reads: a fresh 2m grant shows "2m", not "1m". Zero or less reads "0s".
std::string format_left(seconds left) {
    const auto round_up = [](std::int64_t value, std::int64_t unit) { return (value + unit - 1) / unit * unit; };
    const auto two = [](std::int64_t big, std::string_view big_unit, std::int64_t small, std::string_view small_unit) {
        std::string out = std::to_string(big) + std::string(big_unit);
        if (small > 0) {
            out += " " + std::to_string(small) + std::string(small_unit);
        }
        return out;
    };
    std::int64_t s = std::max<std::int64_t>(left.count(), 0);
    if (s < 60) {
        return std::to_string(s) + "s";
    }
    s = round_up(s, 60);
    if (s < 3600) {
        return std::to_string(s / 60) + "m";
    }
    if (s < 86400) {
        return two(s / 3600, "h", (s % 3600) / 60, "m");
    }
    s = round_up(s, 3600);
    return two(s / 86400, "d", (s % 86400) / 3600, "h");
}

// One unit, rounded down. The future (a clock a little ahead) also reads "just now".
std::string format_ago(seconds ago) {
    const std::int64_t s = ago.count();
    if (s < 60) {
        return "just now";
    }
    if (s < 3600) {
        return std::to_string(s / 60) + "m ago";
    }
    if (s < 86400) {
        return std::to_string(s / 3600) + "h ago";
    }
    return std::to_string(s / 86400) + "d ago";
}

std::string login(const frame& f, const std::string& error, const std::string& user_value) {
    std::string body = "<div class=\"login\"><section class=\"panel login-panel\"><h1>Sign in</h1>"
                       "<p class=\"muted\">Approve or request access to destinations the egress proxy denied.</p>";
    if (!error.empty()) {
        body += "<div class=\"flash flash-error\" role=\"alert\">" + escape(error) + "</div>";
    }
    body += "<form method=\"post\" action=\"/login\" class=\"stack\">"
            "<label for=\"user\">User</label><input type=\"text\" name=\"user\" id=\"user\" value=\"" +
            escape(user_value) +
            "\" required autocomplete=\"username\" autocapitalize=\"none\" spellcheck=\"false\"" +
            (user_value.empty() ? " autofocus" : "") +
            "><label for=\"password\">Password</label><input type=\"password\" name=\"password\" id=\"password\" "
            "required autocomplete=\"current-password\"" +
            (user_value.empty() ? "" : " autofocus") +
            "><button type=\"submit\" class=\"btn btn-primary\">Sign in</button></form></section></div>";
    return document(f, tab::none, "Sign in", body);
}

std::string pending(const frame& f, const std::vector<access_request>& requests) {
    std::string body = "<div class=\"page-head\"><h1>Pending requests";
    if (!requests.empty()) {
        body += " <span class=\"count\">" + std::to_string(requests.size()) + "</span>";
    }
    body += "</h1><p class=\"muted\">";
    body += is_approver(f) ? "Open a request to approve or deny it."
                           : "Open a request to say why a workload needs it; an approver decides.";
    body += "</p></div>";
    if (requests.empty()) {
        body += empty_state("No pending requests.",
                            "Denied destinations appear here when a client asks for them.");
        return document(f, tab::pending, "Pending requests", body);
    }
    body += "<div class=\"table-wrap\"><table class=\"cards\"><thead><tr><th scope=\"col\">Destination</th>"
            "<th scope=\"col\">Client</th><th scope=\"col\" class=\"num\">Hits</th><th scope=\"col\">First seen</th>"
            "<th scope=\"col\">Last seen</th><th scope=\"col\">Reason</th><th scope=\"col\">Justification</th>"
            "</tr></thead><tbody>";
    for (const auto& r : requests) {
        body += pending_row(f, r);
    }
    body += "</tbody></table></div>";
    return document(f, tab::pending, "Pending requests", body);
}

std::string request_detail(const frame& f, const request_view& v) {
    const auto& r = v.request;
    const std::string dest = escape(destination_text(r.key.host, r.key.port));
    // A decided request is no longer among the pending ones: it is found through the history.
    const bool pending_now = r.state == request_state::pending;
    std::string body = "<nav class=\"crumbs\" aria-label=\"Breadcrumb\">" +
                       std::string(pending_now ? "<a href=\"/\">Pending</a>" : "<a href=\"/history\">History</a>") +
                       " / Request " + number(r.id) + "</nav>";
    body += "<div class=\"page-head\"><h1><span class=\"mono\">" + dest + "</span> " + badge(to_string(r.state)) +
            "</h1><p class=\"muted\">Request " + number(r.id) + " from <span class=\"mono\">" + escape(r.key.client) +
            "</span></p></div>";

    body += "<div class=\"detail\"><div class=\"detail-main\">";
    body += "<section class=\"panel\"><h2>Facts</h2><dl class=\"facts\">";
    body += fact("Client", "<span class=\"mono\">" + escape(r.key.client) + "</span>");
    body += fact("Destination", "<span class=\"mono\">" + dest + "</span>", true);
    body += fact("Hits", number(r.hits));
    body += fact("Reason", reason_text(r.reason));
    body += fact("First seen", time_ago(r.first_seen, f.now) + " <span class=\"muted\">" +
                                   format_time(r.first_seen) + "</span>");
    body += fact("Last seen", time_ago(r.last_seen, f.now) + " <span class=\"muted\">" + format_time(r.last_seen) +
                                  "</span>");
    if (!r.last_source.empty()) {
        body += fact("Last source", "<span class=\"mono\">" + escape(r.last_source) + "</span>");
    }
    if (!r.last_identity.empty()) {
        body += fact("Identity", "<span class=\"mono\">" + escape(r.last_identity) + "</span>");
    }
    body += "</dl></section>";

    body += "<section class=\"panel\"><h2>Justifications</h2>" + justification_list(f, r.justifications) +
            "</section>";
    if (v.required_approvals > 1 || !r.votes.empty()) {
        body += "<section class=\"panel\"><h2>Votes</h2>" + vote_summary(f, v) + "</section>";
    }
    body += "</div><div class=\"detail-side\">";

    if (pending_now) {
        if (is_approver(f)) {
            body += decision_panels(f, v);
        } else {
            body += justify_form(f, r);
        }
    } else {
        body += decision_summary(f, r);
    }
    if (v.grant) {
        body += grant_panel(f, v);
    }
    body += "</div><div class=\"detail-history\"><section class=\"panel\"><h2>History</h2>" +
            history_list(f, v.history) + "</section></div></div>";
    return document(f, pending_now ? tab::pending : tab::none, "Request " + number(r.id), body);
}

std::string grants(const frame& f, const std::vector<grant_record>& active, const std::string& max_duration) {
    std::string body = "<div class=\"page-head\"><h1>Active grants";
    if (!active.empty()) {
        body += " <span class=\"count\">" + std::to_string(active.size()) + "</span>";
    }
    body += "</h1><p class=\"muted\">What approvers allowed for a while. A grant ends at its expiry or when revoked, "
            "and closes the connections it allowed.</p></div>";
    if (active.empty()) {
        body += empty_state("No active grants.", "Approved requests appear here until they expire or are revoked.");
        return document(f, tab::grants, "Grants", body);
    }
    body += "<div class=\"table-wrap\"><table class=\"cards\"><thead><tr><th scope=\"col\">Grant</th>"
            "<th scope=\"col\">Destination</th><th scope=\"col\">For</th><th scope=\"col\">Approved by</th>"
            "<th scope=\"col\">Time left</th>";
    if (is_approver(f)) {
        body += "<th scope=\"col\"><span class=\"visually-hidden\">Actions</span></th>";
    }
    body += "</tr></thead><tbody>";
    for (const auto& g : active) {
        body += grant_row(f, g, max_duration);
    }
    body += "</tbody></table></div>";
    return document(f, tab::grants, "Grants", body);
}

std::string history(const frame& f, const std::vector<history_entry>& entries, const history_filter& filter) {
    std::string body = "<div class=\"page-head\"><h1>History</h1><p class=\"muted\">Every request, justification, "
                       "decision, revocation and expiry, newest first.</p></div>";
    body += "<form method=\"get\" action=\"/history\" class=\"filters\">";
    body += filter_input("client", "Client", filter.client, "mono");
    body += filter_input("host", "Host contains", filter.host, "mono");
    body += filter_input("actor", "Actor", filter.actor);
    body += "<div class=\"field\"><label for=\"f-event\">Event</label><select name=\"event\" id=\"f-event\">"
            "<option value=\"\">any</option>";
    constexpr std::array<std::string_view, 9> events{"requested", "justified", "voted",   "approved",       "denied",
                                                     "revoked",   "extended",  "expired", "request_expired"};
    for (const auto e : events) {
        std::string label(e);
        std::replace(label.begin(), label.end(), '_', ' ');
        body += "<option value=\"" + std::string(e) + "\"" + (filter.event == e ? " selected" : "") + ">" + label +
                "</option>";
    }
    body += "</select></div>";
    body += "<div class=\"field field-narrow\"><label for=\"f-request\">Request</label><input type=\"text\" "
            "name=\"request\" id=\"f-request\" inputmode=\"numeric\" pattern=\"[0-9]*\" value=\"" +
            (filter.request_id ? number(*filter.request_id) : std::string{}) + "\" autocomplete=\"off\"></div>";
    body += "<div class=\"filter-actions\"><button type=\"submit\" class=\"btn btn-primary\">Filter</button>"
            "<a class=\"btn btn-quiet\" href=\"/history\">Clear</a></div></form>";

    if (entries.empty()) {
        const bool filtered = !filter.client.empty() || !filter.host.empty() || !filter.actor.empty() ||
                              !filter.event.empty() || filter.request_id.has_value();
        body += filtered ? empty_state("Nothing matches these filters.", "Clear a filter to see more.")
                         : empty_state("No history yet.",
                                       "Requests, decisions and expiries are recorded here as they happen.");
        return document(f, tab::history, "History", body);
    }
    body += "<div class=\"table-wrap\"><table class=\"cards\"><thead><tr><th scope=\"col\">When</th>"
            "<th scope=\"col\">Event</th><th scope=\"col\">Actor</th><th scope=\"col\">Request</th>"
            "<th scope=\"col\">Client</th><th scope=\"col\">Destination</th><th scope=\"col\">Detail</th>"
            "</tr></thead><tbody>";
    for (const auto& e : entries) {
        body += "<tr>";
        body += cell("When", time_ago(e.at, f.now) + "<span class=\"byline\">" + format_time(e.at) + "</span>");
        body += cell("Event", event_badge(e.event));
        body += cell("Actor", escape(e.actor));
        std::string ids;
        if (e.request_id) {
            ids += request_link(*e.request_id, "#" + number(*e.request_id));
        }
        if (e.grant_id) {
            ids += "<span class=\"byline\">grant " + number(*e.grant_id) + "</span>";
        }
        body += cell("Request", ids.empty() ? "<span class=\"muted\">-</span>" : ids);
        body += cell("Client", "<span class=\"mono\">" + escape(e.client) + "</span>");
        body += cell("Destination",
                     e.host.empty() ? std::string{}
                                    : "<span class=\"mono\">" + escape(destination_text(e.host, e.port)) + "</span>",
                     "primary");
        body += cell("Detail", "<span class=\"clamp\">" + history_detail(e) + "</span>");
        body += "</tr>";
    }
    body += "</tbody></table></div>";
    if (filter.limit > 0 && entries.size() >= filter.limit) {
        body += "<p class=\"more\">Showing the newest " + std::to_string(entries.size()) + " entries. <a href=\"" +
                escape(history_query(filter, filter.limit * 2)) + "\">Show more</a></p>";
    }
    return document(f, tab::history, "History", body);
}

std::string error_page(const frame& f, unsigned status, const std::string& message) {
    std::string body = "<section class=\"panel error-panel\"><p class=\"status-code\">" + std::to_string(status) +
                       "</p><h1>" + escape(message) + "</h1><p><a class=\"btn\" href=\"/\">Back to pending requests</a>"
                       "</p></section>";
    return document(f, tab::none, "Error " + std::to_string(status), body);
}

const std::string& stylesheet() {
    // Light and dark palettes share one set of custom properties; tables become cards below 720px.
    static const std::string css = R"css(:root {
  color-scheme: light dark;
  --bg: #f5f6f8;
  --surface: #ffffff;
  --surface-2: #f0f2f5;
  --text: #1b2230;
  --muted: #5a6474;
  --border: #dde1e7;
  --accent: #2452c2;
  --accent-hover: #1b3f98;
  --accent-text: #ffffff;
  --danger: #b42318;
  --danger-hover: #8f1b12;
  --focus: #2f6bff;
  --topbar: #16203a;
  --topbar-text: #e8ecf4;
  --topbar-muted: #a9b3c7;
  --pending-bg: #fff3d1; --pending-fg: #7a4a00;
  --ok-bg: #e2f3e8; --ok-fg: #15623a;
  --bad-bg: #fde7e4; --bad-fg: #a1241a;
  --off-bg: #eaecf0; --off-fg: #485263;
  --info-bg: #e5edfd; --info-fg: #1f4aa8;
  --radius: 10px;
  --mono: ui-monospace, "SFMono-Regular", "JetBrains Mono", Menlo, Consolas, "DejaVu Sans Mono", monospace;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0f1319;
    --surface: #171c24;
    --surface-2: #1e2430;
    --text: #e4e8ef;
    --muted: #9aa4b4;
    --border: #2b3340;
    --accent: #7ba0ff;
    --accent-hover: #a3bdff;
    --accent-text: #0d1424;
    --danger: #ff8a7e;
    --danger-hover: #ffb0a7;
    --focus: #8fb0ff;
    --topbar: #121826;
    --topbar-text: #e4e8ef;
    --topbar-muted: #97a2b6;
    --pending-bg: #3a2d0f; --pending-fg: #f5cf78;
    --ok-bg: #10301f; --ok-fg: #86dca8;
    --bad-bg: #3a1714; --bad-fg: #ff9d92;
    --off-bg: #262c36; --off-fg: #b3bccb;
    --info-bg: #17254a; --info-fg: #a9c0ff;
  }
}
*, *::before, *::after { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body {
  margin: 0;
  background: var(--bg);
  color: var(--text);
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif;
}
a { color: var(--accent); text-underline-offset: 2px; }
a:hover { color: var(--accent-hover); }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; border-radius: 4px; }
h1 { font-size: 1.6rem; line-height: 1.25; margin: 0 0 .25rem; font-weight: 650; overflow-wrap: anywhere; }
h2 { font-size: 1.05rem; margin: 0 0 .75rem; font-weight: 650; }
p { margin: 0 0 .75rem; }
.mono { font-family: var(--mono); font-size: .94em; overflow-wrap: anywhere; }
.muted { color: var(--muted); }
.hint { color: var(--muted); font-size: .875rem; margin: 0; }
.optional { color: var(--muted); font-weight: 400; }
.visually-hidden {
  position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap;
}

/* Top bar */
.topbar { background: var(--topbar); color: var(--topbar-text); }
.topbar-inner {
  max-width: 1240px; margin: 0 auto; padding: .5rem 1.25rem;
  display: flex; align-items: center; gap: 1.5rem; flex-wrap: wrap; min-height: 60px;
}
.brand {
  color: var(--topbar-text); text-decoration: none; font-weight: 700; letter-spacing: .01em;
  display: inline-flex; align-items: center; gap: .55rem; font-size: 1.05rem;
}
.brand:hover { color: var(--topbar-text); }
.brand-mark {
  width: 14px; height: 14px; border-radius: 4px; display: inline-block;
  background: linear-gradient(135deg, #5b8cff, #3ecf8e);
}
.nav { display: flex; gap: .25rem; }
.nav a {
  color: var(--topbar-muted); text-decoration: none; padding: .55rem .8rem; border-radius: 8px;
  font-weight: 550; min-height: 44px; display: inline-flex; align-items: center;
}
.nav a:hover { color: var(--topbar-text); background: rgba(255, 255, 255, .08); }
.nav a[aria-current="page"] { color: var(--topbar-text); background: rgba(255, 255, 255, .14); }
.account { margin-left: auto; display: flex; align-items: center; gap: .75rem; }
.who { display: inline-flex; align-items: center; gap: .5rem; }
.who-name { font-weight: 600; }
.role {
  font-size: .75rem; text-transform: uppercase; letter-spacing: .06em; color: var(--topbar-muted);
  border: 1px solid rgba(255, 255, 255, .25); border-radius: 999px; padding: .05rem .5rem;
}
.signout { margin: 0; }
.topbar .btn-quiet { color: var(--topbar-text); border-color: rgba(255, 255, 255, .25); background: transparent; }
.topbar .btn-quiet:hover { background: rgba(255, 255, 255, .1); color: var(--topbar-text); }

/* Layout */
.main { max-width: 1240px; margin: 0 auto; padding: 1.5rem 1.25rem 3rem; }
.page-head { margin-bottom: 1.25rem; }
.page-head p { margin: 0; }
.crumbs { font-size: .9rem; color: var(--muted); margin-bottom: .5rem; }
.count {
  display: inline-block; font-size: .95rem; font-weight: 600; vertical-align: middle;
  background: var(--surface-2); color: var(--muted); border-radius: 999px; padding: .1rem .6rem;
  border: 1px solid var(--border);
}
.panel {
  background: var(--surface); border: 1px solid var(--border); border-radius: var(--radius);
  padding: 1.1rem 1.25rem; margin-bottom: 1rem;
}
.panel-ok { border-left: 4px solid var(--ok-fg); }
.panel-info { border-left: 4px solid var(--info-fg); }
.panel > :last-child { margin-bottom: 0; }
.detail { display: grid; gap: 0 1.25rem; grid-template-columns: minmax(0, 1fr); }
@media (min-width: 960px) {
  .detail {
    grid-template-columns: minmax(0, 1.35fr) minmax(0, 1fr);
    grid-template-areas: "main side" "history side";
    grid-template-rows: auto 1fr;
    align-items: start;
  }
  .detail-main { grid-area: main; }
  .detail-side { grid-area: side; }
  .detail-history { grid-area: history; }
}

/* Flash messages and empty states */
.flash {
  border-radius: var(--radius); padding: .8rem 1rem; margin-bottom: 1.25rem; font-weight: 550;
  border: 1px solid transparent;
}
.flash-ok { background: var(--ok-bg); color: var(--ok-fg); border-color: var(--ok-fg); }
.flash-error { background: var(--bad-bg); color: var(--bad-fg); border-color: var(--bad-fg); }
.empty {
  background: var(--surface); border: 1px dashed var(--border); border-radius: var(--radius);
  padding: 3rem 1.5rem; text-align: center; color: var(--muted);
}
.empty-title { color: var(--text); font-weight: 650; font-size: 1.1rem; margin-bottom: .35rem; }
.empty p:last-child { margin: 0; }

/* Badges */
.badge {
  display: inline-block; font-size: .78rem; font-weight: 650; line-height: 1.4; letter-spacing: .02em;
  padding: .12rem .55rem; border-radius: 999px; vertical-align: middle; white-space: nowrap;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif;
}
.badge-pending { background: var(--pending-bg); color: var(--pending-fg); }
.badge-approved, .badge-active { background: var(--ok-bg); color: var(--ok-fg); }
.badge-denied, .badge-revoked { background: var(--bad-bg); color: var(--bad-fg); }
.badge-expired { background: var(--off-bg); color: var(--off-fg); }
.badge-info { background: var(--info-bg); color: var(--info-fg); }

/* Tables */
.table-wrap {
  background: var(--surface); border: 1px solid var(--border); border-radius: var(--radius); overflow-x: auto;
}
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; padding: .75rem 1rem; vertical-align: top; }
thead th {
  font-size: .78rem; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); font-weight: 650;
  background: var(--surface-2); border-bottom: 1px solid var(--border); white-space: nowrap;
}
tbody tr + tr td { border-top: 1px solid var(--border); }
tbody tr:hover td { background: var(--surface-2); }
td .mono, td time, td .byline, td.nowrap { white-space: nowrap; overflow-wrap: normal; }
td.primary a { font-weight: 600; text-decoration: none; }
td.primary a:hover { text-decoration: underline; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
time { white-space: nowrap; }
.byline { display: block; color: var(--muted); font-size: .85rem; }
.clamp {
  display: -webkit-box; -webkit-box-orient: vertical; -webkit-line-clamp: 2; line-clamp: 2; overflow: hidden;
  overflow-wrap: anywhere; max-width: 32rem;
}
.grant-id { font-weight: 650; font-variant-numeric: tabular-nums; margin-right: .25rem; }
.left-soon { color: var(--pending-fg); font-weight: 650; }
.more { margin-top: 1rem; color: var(--muted); }

/* Grant actions: a disclosure keeps the table readable without script */
.actions summary {
  cursor: pointer; color: var(--accent); font-weight: 600; list-style: none; white-space: nowrap;
  display: inline-block; padding: .65rem .25rem; margin: -.65rem 0;
}
.actions summary::-webkit-details-marker { display: none; }
.actions summary::after { content: " \25BE"; }
.actions[open] summary::after { content: " \25B4"; }
.actions-body { display: grid; gap: 1rem; padding-top: .5rem; min-width: 16rem; }
.actions-body form { padding-top: .75rem; border-top: 1px solid var(--border); }

/* Facts, notes and history */
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(13rem, 1fr)); gap: .9rem 1.5rem; margin: 0; }
.facts-compact { grid-template-columns: minmax(0, 1fr); gap: .6rem; margin-bottom: .75rem; }
.facts dt {
  font-size: .78rem; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); font-weight: 650;
}
.facts dd { margin: .1rem 0 0; overflow-wrap: anywhere; }
.facts dd .muted { display: block; font-size: .85rem; }
.notes, .timeline { list-style: none; margin: 0; padding: 0; }
.notes li { padding: .7rem 0; border-top: 1px solid var(--border); }
.notes li:first-child { border-top: 0; padding-top: 0; }
.note-meta { font-size: .9rem; color: var(--muted); }
.note-meta strong { color: var(--text); }
.note-text { margin: .3rem 0 0; white-space: pre-wrap; overflow-wrap: anywhere; }
.timeline li {
  position: relative; padding: 0 0 .9rem 1.25rem; border-left: 2px solid var(--border); margin-left: .35rem;
}
.timeline li:last-child { padding-bottom: 0; }
.timeline li::before {
  content: ""; position: absolute; left: -6px; top: .45rem; width: 10px; height: 10px; border-radius: 50%;
  background: var(--surface); border: 2px solid var(--muted);
}
.timeline time { color: var(--muted); font-size: .9rem; }
.timeline-actor { font-weight: 600; }
.votes-count { font-size: 1.05rem; }
.snippet {
  font-family: var(--mono); font-size: .88rem; line-height: 1.5; background: var(--surface-2);
  border: 1px solid var(--border); border-radius: 8px; padding: .85rem 1rem; overflow-x: auto; margin: 0;
}

/* Forms */
form { margin: 0; }
.stack { display: grid; gap: .4rem; }
.stack label, .field label { font-weight: 600; font-size: .92rem; }
.stack label:not(:first-of-type) { margin-top: .5rem; }
.stack .btn { margin-top: .75rem; justify-self: start; }
.stack .pair + label { margin-top: .5rem; }
.pair { display: grid; grid-template-columns: repeat(auto-fit, minmax(11rem, 1fr)); gap: .5rem 1rem; }
.pair .field { align-content: start; }
.form-title { font-size: .95rem; font-weight: 650; margin: 0 0 .1rem; }
.form-title-danger, .deny h2 { color: var(--danger); }
.deny { margin-top: 1rem; padding-top: .85rem; border-top: 1px solid var(--border); }
.deny h2 { margin-bottom: .4rem; }
.deny-form { display: grid; gap: .4rem; }
.deny-form label { font-weight: 600; font-size: .92rem; }
.inline { display: flex; gap: .5rem; align-items: stretch; }
.inline input { flex: 1; min-width: 0; }
.inline .btn { flex: none; }
fieldset { border: 0; margin: 0 0 .25rem; padding: 0; min-width: 0; }
legend { font-weight: 600; font-size: .92rem; margin-bottom: .4rem; padding: 0; }
input[type="text"], input[type="password"], select, textarea {
  font: inherit; color: var(--text); background: var(--surface); width: 100%;
  border: 1px solid var(--border); border-radius: 8px; padding: .55rem .75rem; min-height: 44px;
}
textarea { resize: vertical; min-height: 4.5rem; }
input:hover, select:hover, textarea:hover { border-color: var(--muted); }
input:focus-visible, select:focus-visible, textarea:focus-visible { outline-offset: 0; border-color: var(--focus); }
.choice {
  display: flex; gap: .65rem; align-items: flex-start; padding: .5rem .75rem; border: 1px solid var(--border);
  border-radius: 8px; margin-bottom: .4rem; background: var(--surface);
}
.choice:hover { border-color: var(--muted); }
.choice:has(input:checked) { border-color: var(--accent); background: var(--info-bg); }
.choice input { margin: .3rem 0 0; width: 1.1rem; height: 1.1rem; accent-color: var(--accent); flex: none; }
.choice label { display: grid; gap: .05rem; margin: 0; font-weight: 600; cursor: pointer; flex: 1; }
.choice .hint { font-weight: 400; }
.btn {
  font: inherit; font-weight: 600; display: inline-flex; align-items: center; justify-content: center;
  min-height: 44px; padding: .5rem 1.1rem; border-radius: 8px; cursor: pointer; text-decoration: none;
  border: 1px solid var(--border); background: var(--surface); color: var(--text);
}
.btn:hover { background: var(--surface-2); color: var(--text); }
.btn-primary { background: var(--accent); border-color: var(--accent); color: var(--accent-text); }
.btn-primary:hover { background: var(--accent-hover); border-color: var(--accent-hover); color: var(--accent-text); }
.btn-danger { background: transparent; border-color: var(--danger); color: var(--danger); }
.btn-danger:hover { background: var(--danger); color: var(--surface); }
.btn-quiet { background: transparent; }
.filters {
  display: flex; flex-wrap: wrap; gap: .75rem 1rem; align-items: flex-end; margin-bottom: 1.25rem;
  background: var(--surface); border: 1px solid var(--border); border-radius: var(--radius); padding: 1rem 1.25rem;
}
.field { display: grid; gap: .3rem; flex: 1 1 10rem; }
.field-narrow { flex: 0 1 7rem; }
.filter-actions { display: flex; gap: .5rem; }

/* Sign-in and errors */
.login { display: grid; place-items: center; min-height: 60vh; }
.login-panel { width: 100%; max-width: 25rem; padding: 1.75rem; }
.login-panel .btn { width: 100%; }
.error-panel { max-width: 36rem; margin: 3rem auto; text-align: center; padding: 2.5rem 1.5rem; }
.status-code { font-size: 3rem; font-weight: 750; color: var(--muted); margin: 0; line-height: 1.1; }
.error-panel h1 { font-size: 1.25rem; margin: .5rem 0 1.5rem; }

/* Phones: one column, and every table row becomes a card */
@media (max-width: 719px) {
  .topbar-inner { gap: .25rem .5rem; padding: .5rem 1rem .25rem; }
  .brand { font-size: 1rem; }
  .topbar .btn { min-height: 40px; padding: .35rem .75rem; font-size: .92rem; }
  .nav { order: 3; width: 100%; margin: 0 -.5rem; }
  .nav a { flex: 1; justify-content: center; }
  .account { gap: .5rem; }
  .who .role { display: none; }
  .main { padding: 1rem 1rem 2.5rem; }
  h1 { font-size: 1.35rem; }
  .table-wrap { background: transparent; border: 0; border-radius: 0; overflow: visible; }
  table.cards, table.cards tbody, table.cards tr { display: block; width: 100%; }
  table.cards thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  table.cards tr {
    display: flex; flex-direction: column;
    background: var(--surface); border: 1px solid var(--border); border-radius: var(--radius);
    margin-bottom: .75rem; padding: .4rem 0;
  }
  tbody tr + tr td { border-top: 0; }
  tbody tr:hover td { background: transparent; }
  table.cards td {
    display: block; position: relative; padding: .35rem 1rem .35rem 8.5rem; min-height: 2.2rem; text-align: left;
  }
  table.cards td::before {
    content: attr(data-label); position: absolute; left: 1rem; top: .55rem; width: 7rem; color: var(--muted);
    font-size: .75rem; font-weight: 650; text-transform: uppercase; letter-spacing: .04em; line-height: 1.3;
  }
  table.cards td .mono { white-space: normal; overflow-wrap: anywhere; }
  table.cards td.primary {
    display: block; font-size: 1.05rem; padding: .5rem 1rem .6rem; margin-bottom: .25rem;
    border-bottom: 1px solid var(--border); order: -1;
  }
  table.cards td.primary::before { content: none; }
  table.cards td.actions-cell { padding-left: 1rem; }
  table.cards td.actions-cell::before { content: none; }
  .clamp { max-width: none; }
  .facts { grid-template-columns: repeat(auto-fill, minmax(8.5rem, 1fr)); gap: .8rem 1rem; }
  .facts-compact { grid-template-columns: minmax(0, 1fr); }
  .facts .wide { grid-column: 1 / -1; }
  .filters { padding: 1rem; gap: .6rem .75rem; }
  .field, .field-narrow { flex: 1 1 calc(50% - .75rem); min-width: 0; }
  .filter-actions { flex: 1 1 calc(50% - .75rem); }
  .filter-actions .btn { flex: 1; }
  .stack .btn { justify-self: stretch; }
  .actions-body { min-width: 0; }
}
)css";
    return css;
}

}  // namespace egressd::proxy::approvals::pages
