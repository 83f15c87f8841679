#include "proxy/approvals/pages.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <regex>
#include <set>
#include <string>
#include <vector>

namespace egressd::proxy::approvals::pages {
namespace {

using namespace std::chrono_literals;
using std::chrono::sys_seconds;

const std::string token = "tok-3f9a_c0ffee";
const std::string hostile = "<script>alert(\"x\")</script>'\"&";
// What the hostile string must look like after escaping.
const std::string hostile_escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;&quot;&amp;";

sys_seconds at(int h, int m = 0, int s = 0) {
    // 2026-12-06 00:00:00 UTC
    return sys_seconds{std::chrono::seconds{1796515200}} + std::chrono::hours{h} + std::chrono::minutes{m} +
           std::chrono::seconds{s};
}

frame make_frame(std::string name, role level) {
    frame f;
    f.who = user{std::move(name), level};
    f.csrf = token;
    f.now = at(12);
    return f;
}

access_request make_request(std::int64_t id, std::string client, std::string host, std::uint16_t port) {
    access_request r;
    r.id = id;
    r.key = {std::move(client), std::move(host), port};
    r.hits = 7;
    r.first_seen = at(11, 0);
    r.last_seen = at(11, 55);
    r.reason = "no_matching_rule";
    r.last_source = "10.0.0.7:51234";
    return r;
}

request_view make_view(access_request r) {
    request_view v;
    v.scopes = {{r.key.host, "only " + r.key.host}, {"*.example.com", "every name below example.com"}};
    v.groups = {"build", "ci"};
    v.default_duration = "8h";
    v.max_duration = "7d";
    v.request = std::move(r);
    return v;
}

// The page shows who voted, their note and when; what they agreed to is the service's business.
vote make_vote(std::string approver, std::string note, sys_seconds when) {
    vote vt;
    vt.approver = std::move(approver);
    vt.note = std::move(note);
    vt.at = when;
    return vt;
}

grant_record make_grant(std::int64_t id, std::chrono::seconds left, sys_seconds now) {
    grant_record g;
    g.id = id;
    g.request_id = id + 10;
    g.scope = policy::grant_scope::client;
    g.scope_name = "ci-runner";
    g.destination = "api.example.com";
    g.port = 443;
    g.created = now - 1h;
    g.expires = now + left;
    g.approved_by = "bob";
    return g;
}

struct form_info {
    std::string method;
    std::string action;
    std::string body;
};

// Every <form ...>...</form> of a document, with its method and action attributes.
std::vector<form_info> forms_of(const std::string& html) {
    std::vector<form_info> out;
    static const std::regex form_re(R"re(<form([^>]*)>([\s\S]*?)</form>)re");
    static const std::regex method_re(R"re(method="([^"]*)")re");
    static const std::regex action_re(R"re(action="([^"]*)")re");
    for (auto it = std::sregex_iterator(html.begin(), html.end(), form_re); it != std::sregex_iterator(); ++it) {
        form_info fi;
        const std::string attrs = (*it)[1];
        fi.body = (*it)[2];
        std::smatch m;
        if (std::regex_search(attrs, m, method_re)) {
            fi.method = m[1];
        }
        if (std::regex_search(attrs, m, action_re)) {
            fi.action = m[1];
        }
        out.push_back(fi);
    }
    return out;
}

std::set<std::string> post_actions(const std::string& html) {
    std::set<std::string> out;
    for (const auto& fi : forms_of(html)) {
        if (fi.method == "post") {
            out.insert(fi.action);
        }
    }
    return out;
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

// What every page must satisfy: a whole document, no script, no inline style, nothing external, every POST form
// with the token (except the sign-in form), nothing hostile left unescaped.
void expect_safe_document(const std::string& html) {
    SCOPED_TRACE(html);
    EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0U);
    EXPECT_NE(html.find("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"),
              std::string::npos);
    EXPECT_NE(html.find("<link rel=\"stylesheet\" href=\"/static/style.css\">"), std::string::npos);
    const std::string l = lower(html);
    EXPECT_EQ(l.find("<script"), std::string::npos);
    EXPECT_EQ(l.find(" style="), std::string::npos);
    EXPECT_EQ(l.find("<style"), std::string::npos);
    EXPECT_EQ(l.find("http://"), std::string::npos);
    EXPECT_EQ(l.find("https://"), std::string::npos);
    EXPECT_FALSE(std::regex_search(l, std::regex(R"re(<[^>]+\son[a-z]+=)re"))) << "an event handler attribute";
    for (const auto& fi : forms_of(html)) {
        SCOPED_TRACE(fi.action);
        if (fi.action == "/login") {
            EXPECT_EQ(fi.method, "post");
            EXPECT_EQ(fi.body.find("name=\"csrf\""), std::string::npos);
            continue;
        }
        if (fi.method == "get") {
            continue;
        }
        EXPECT_EQ(fi.method, "post");
        EXPECT_NE(fi.body.find("<input type=\"hidden\" name=\"csrf\" value=\"" + token + "\">"), std::string::npos);
    }
}

// --- the helpers ---

TEST(PagesEscape, EscapesTheFiveCharacters) {
    struct row {
        std::string in, out;
    };
    const std::vector<row> rows{
        {"", ""},
        {"plain text", "plain text"},
        {"a & b", "a &amp; b"},
        {"<b>", "&lt;b&gt;"},
        {"\"quoted\"", "&quot;quoted&quot;"},
        {"it's", "it&#39;s"},
        {"&amp;", "&amp;amp;"},
        {hostile, hostile_escaped},
        {"ünïcødé ✓", "ünïcødé ✓"},
    };
    for (const auto& r : rows) {
        EXPECT_EQ(escape(r.in), r.out) << r.in;
    }
}

TEST(PagesFormat, Time) {
    EXPECT_EQ(format_time(at(10)), "2026-12-06 10:00 UTC");
    EXPECT_EQ(format_time(at(23, 59, 59)), "2026-12-06 23:59 UTC");
    EXPECT_EQ(format_time(at(24)), "2026-12-07 00:00 UTC");
    EXPECT_EQ(format_time(sys_seconds{}), "1970-01-01 00:00 UTC");
    EXPECT_EQ(format_time(sys_seconds{std::chrono::seconds{951782400}}), "2000-02-29 00:00 UTC");
}

TEST(PagesFormat, Left) {
    struct row {
        std::chrono::seconds in;
        std::string out;
    };
    const std::vector<row> rows{
        {-5s, "0s"},
        {0s, "0s"},
        {1s, "1s"},
        {45s, "45s"},
        {59s, "59s"},
        // Rounded up to the unit shown, as a countdown: a fresh 2m grant reads "2m", a minute later "1m".
        {60s, "1m"},
        {61s, "2m"},
        {119s, "2m"},
        {120s, "2m"},
        {121s, "3m"},
        {59min, "59m"},
        {58min + 1s, "59m"},
        {59min + 1s, "1h"},
        {1h, "1h"},
        {1h + 1s, "1h 1m"},
        {2h + 10min, "2h 10m"},
        {2h + 9min + 1s, "2h 10m"},
        {23h + 59min, "23h 59m"},
        {23h + 59min + 1s, "1d"},
        {24h, "1d"},
        {24h + 1s, "1d 1h"},
        {3 * 24h + 4h, "3d 4h"},
        {3 * 24h + 3h + 1min, "3d 4h"},
        {400 * 24h, "400d"},
    };
    for (const auto& r : rows) {
        EXPECT_EQ(format_left(r.in), r.out) << r.in.count();
    }
}

TEST(PagesFormat, Ago) {
    struct row {
        std::chrono::seconds in;
        std::string out;
    };
    const std::vector<row> rows{
        {-30s, "just now"}, {0s, "just now"}, {59s, "just now"},  {60s, "1m ago"},   {5min, "5m ago"},
        {59min + 59s, "59m ago"}, {1h, "1h ago"}, {23h + 59min, "23h ago"}, {24h, "1d ago"}, {2 * 24h + 5h, "2d ago"},
    };
    for (const auto& r : rows) {
        EXPECT_EQ(format_ago(r.in), r.out) << r.in.count();
    }
}

TEST(PagesStylesheet, NothingExternal) {
    const std::string& css = stylesheet();
    ASSERT_GT(css.size(), 1000U);
    const std::string l = lower(css);
    EXPECT_EQ(l.find("url("), std::string::npos);
    EXPECT_EQ(l.find("@import"), std::string::npos);
    EXPECT_EQ(l.find("http"), std::string::npos);
    EXPECT_EQ(l.find("expression("), std::string::npos);
    // The phone layout and the dark palette are there.
    EXPECT_NE(css.find("@media (max-width: 719px)"), std::string::npos);
    EXPECT_NE(css.find("prefers-color-scheme: dark"), std::string::npos);
    EXPECT_NE(css.find(":focus-visible"), std::string::npos);
}

// --- the pages ---

TEST(PagesLogin, FormWithoutCsrfAndEscapedValues) {
    frame f;
    f.now = at(12);
    const std::string html = login(f, hostile, hostile);
    expect_safe_document(html);
    EXPECT_EQ(post_actions(html), (std::set<std::string>{"/login"}));
    EXPECT_NE(html.find("name=\"user\""), std::string::npos);
    EXPECT_NE(html.find("name=\"password\""), std::string::npos);
    EXPECT_NE(html.find("value=\"" + hostile_escaped + "\""), std::string::npos);
    EXPECT_NE(html.find(hostile_escaped + "</div>"), std::string::npos);
    // Not signed in: no navigation, no sign-out.
    EXPECT_EQ(html.find("/logout"), std::string::npos);
    EXPECT_EQ(html.find("href=\"/grants\""), std::string::npos);
}

TEST(PagesLogin, NoErrorNoAlert) {
    frame f;
    const std::string html = login(f, "", "");
    expect_safe_document(html);
    EXPECT_EQ(html.find("role=\"alert\""), std::string::npos);
}

TEST(PagesFrame, TopBarShowsUserRoleNavAndSignOut) {
    auto f = make_frame(hostile, role::approver);
    const std::string html = pending(f, {});
    expect_safe_document(html);
    EXPECT_NE(html.find(hostile_escaped), std::string::npos);
    EXPECT_NE(html.find(">approver<"), std::string::npos);
    EXPECT_NE(html.find("href=\"/\" aria-current=\"page\">Pending"), std::string::npos);
    EXPECT_NE(html.find("href=\"/grants\">Grants"), std::string::npos);
    EXPECT_NE(html.find("href=\"/history\">History"), std::string::npos);
    EXPECT_EQ(post_actions(html), (std::set<std::string>{"/logout"}));

    const std::string g = grants(make_frame("carol", role::requester), {}, "7d");
    EXPECT_NE(g.find(">requester<"), std::string::npos);
    EXPECT_NE(g.find("href=\"/grants\" aria-current=\"page\""), std::string::npos);
}

TEST(PagesFrame, FlashMessages) {
    auto f = make_frame("alice", role::approver);
    f.flash = "Approved: " + hostile;
    std::string html = pending(f, {});
    expect_safe_document(html);
    EXPECT_NE(html.find("<div class=\"flash flash-ok\" role=\"status\">Approved: " + hostile_escaped + "</div>"),
              std::string::npos);

    f.flash = "Could not save";
    f.flash_is_error = true;
    html = pending(f, {});
    EXPECT_NE(html.find("<div class=\"flash flash-error\" role=\"alert\">Could not save</div>"), std::string::npos);

    f.flash.clear();
    html = pending(f, {});
    EXPECT_EQ(html.find("class=\"flash"), std::string::npos);
}

TEST(PagesPending, EmptyState) {
    const std::string html = pending(make_frame("alice", role::approver), {});
    expect_safe_document(html);
    EXPECT_NE(html.find("No pending requests."), std::string::npos);
    EXPECT_NE(html.find("Denied destinations appear here when a client asks for them."), std::string::npos);
    EXPECT_EQ(html.find("<table"), std::string::npos);
}

TEST(PagesPending, RowsShowTheFactsEscaped) {
    const auto f = make_frame("alice", role::approver);
    auto r1 = make_request(12, hostile, "api.example.com", 443);
    r1.justifications = {{"dave", "old reason", at(11, 10)}, {hostile, "ticket " + hostile, at(11, 20)}};
    auto r2 = make_request(13, "build-7", "2001:db8::1", 8443);
    r2.first_seen = at(9);
    r2.last_seen = at(11, 55);
    r2.reason = "port_not_allowed";
    const std::string html = pending(f, {r1, r2});
    expect_safe_document(html);

    EXPECT_NE(html.find("<a href=\"/requests/12\"><span class=\"mono\">api.example.com:443</span></a>"),
              std::string::npos);
    EXPECT_NE(html.find("<a href=\"/requests/13\"><span class=\"mono\">[2001:db8::1]:8443</span></a>"),
              std::string::npos);
    EXPECT_NE(html.find("<span class=\"mono\">" + hostile_escaped + "</span>"), std::string::npos);
    // The latest justification, not the first.
    EXPECT_NE(html.find("ticket " + hostile_escaped), std::string::npos);
    EXPECT_EQ(html.find("old reason"), std::string::npos);
    EXPECT_NE(html.find("none yet"), std::string::npos);
    // Relative times with the exact time in the title.
    EXPECT_NE(html.find("title=\"2026-12-06 11:00 UTC\">1h ago</time>"), std::string::npos);
    EXPECT_NE(html.find("title=\"2026-12-06 11:55 UTC\">5m ago</time>"), std::string::npos);
    EXPECT_NE(html.find("datetime=\"2026-12-06T09:00:00Z\""), std::string::npos);
    EXPECT_NE(html.find("no matching rule"), std::string::npos);
    EXPECT_NE(html.find("port not allowed"), std::string::npos);
    EXPECT_NE(html.find("data-label=\"Hits\" class=\"num\">7<"), std::string::npos);
    EXPECT_NE(html.find("<span class=\"count\">2</span>"), std::string::npos);
    // The list itself decides nothing.
    EXPECT_EQ(post_actions(html), (std::set<std::string>{"/logout"}));
}

TEST(PagesPending, UnknownReasonIsEscaped) {
    auto r = make_request(1, "c", "h.example", 80);
    r.reason = hostile;
    const std::string html = pending(make_frame("alice", role::requester), {r});
    expect_safe_document(html);
    EXPECT_NE(html.find(hostile_escaped), std::string::npos);
}

TEST(PagesRequest, ApproverSeesApproveAndDenyForms) {
    const auto f = make_frame("alice", role::approver);
    auto v = make_view(make_request(12, "ci-runner", "api.example.com", 443));
    v.request.justifications = {{"dave", "JIRA-42: " + hostile, at(11, 10)}, {"erin", "second", at(11, 30)}};
    v.history = {{1, at(11), "requested", "egressd", 12, std::nullopt, "ci-runner", "api.example.com", 443,
                  "no_matching_rule"},
                 {2, at(11, 10), "justified", "dave", 12, std::nullopt, "ci-runner", "api.example.com", 443,
                  "JIRA-42: " + hostile}};
    const std::string html = request_detail(f, v);
    expect_safe_document(html);

    EXPECT_EQ(post_actions(html),
              (std::set<std::string>{"/requests/12/approve", "/requests/12/deny", "/logout"}));
    EXPECT_EQ(html.find("/justify"), std::string::npos);
    // Scope radio buttons from v.scopes, the narrowest checked.
    EXPECT_NE(html.find("type=\"radio\" name=\"destination\" id=\"scope-0\" value=\"api.example.com\" checked"),
              std::string::npos);
    EXPECT_NE(html.find("type=\"radio\" name=\"destination\" id=\"scope-1\" value=\"*.example.com\">"),
              std::string::npos);
    EXPECT_NE(html.find("every name below example.com"), std::string::npos);
    // Group select: this client only, then each group.
    EXPECT_NE(html.find("<select name=\"group\" id=\"group\"><option value=\"\" selected>this client only (ci-runner)"),
              std::string::npos);
    EXPECT_NE(html.find("<option value=\"build\">"), std::string::npos);
    EXPECT_NE(html.find("<option value=\"ci\">"), std::string::npos);
    EXPECT_NE(html.find("name=\"duration\" id=\"duration\" value=\"8h\""), std::string::npos);
    EXPECT_NE(html.find("at most 7d"), std::string::npos);
    EXPECT_NE(html.find("name=\"note\" id=\"approve-note\""), std::string::npos);
    EXPECT_NE(html.find("name=\"note\" id=\"deny-note\""), std::string::npos);
    // Deny comes right after the approve button, in the same panel, as a danger action: reachable at a glance
    // without scrolling past another panel, and not a second primary button.
    const auto approve_button = html.find(">Approve</button></form>");
    const auto deny_heading = html.find("<div class=\"deny\"><h2>Deny</h2>");
    ASSERT_NE(approve_button, std::string::npos);
    ASSERT_NE(deny_heading, std::string::npos);
    EXPECT_LT(approve_button, deny_heading);
    EXPECT_LT(deny_heading, html.find("</section>", approve_button));
    EXPECT_NE(html.find("<button type=\"submit\" class=\"btn btn-danger\">Deny</button>"), std::string::npos);
    // A pending request belongs to the Pending tab.
    EXPECT_NE(html.find("href=\"/\" aria-current=\"page\">Pending"), std::string::npos);
    EXPECT_NE(html.find("<a href=\"/\">Pending</a> / Request 12"), std::string::npos);
    // Both justifications and the history, escaped.
    EXPECT_NE(html.find("JIRA-42: " + hostile_escaped), std::string::npos);
    EXPECT_NE(html.find("second"), std::string::npos);
    EXPECT_NE(html.find(">requested</span>"), std::string::npos);
    // The 'requested' entry's detail is a reason code: shown in the same words as the facts.
    EXPECT_NE(html.find("<p class=\"note-text\">no matching rule</p>"), std::string::npos);
    EXPECT_EQ(html.find("no_matching_rule"), std::string::npos);
    EXPECT_NE(html.find("10.0.0.7:51234"), std::string::npos);
    // A one-approver client has no votes section.
    EXPECT_EQ(html.find(" of 1</strong>"), std::string::npos);
}

TEST(PagesRequest, RequesterSeesOnlyTheJustifyForm) {
    const auto f = make_frame("dave", role::requester);
    auto v = make_view(make_request(12, "ci-runner", "api.example.com", 443));
    const std::string html = request_detail(f, v);
    expect_safe_document(html);
    EXPECT_EQ(post_actions(html), (std::set<std::string>{"/requests/12/justify", "/logout"}));
    EXPECT_NE(html.find("<textarea name=\"text\""), std::string::npos);
    EXPECT_EQ(html.find("/approve"), std::string::npos);
    EXPECT_EQ(html.find("/deny"), std::string::npos);
    EXPECT_EQ(html.find("name=\"destination\""), std::string::npos);
    EXPECT_NE(html.find("No justification yet."), std::string::npos);
}

TEST(PagesRequest, HostileFieldsEverywhere) {
    const auto f = make_frame(hostile, role::approver);
    auto r = make_request(5, hostile, hostile, 443);
    r.last_source = hostile;
    r.last_identity = hostile;
    r.justifications = {{"x", hostile, at(11)}};
    r.votes = {make_vote("<b>bob</b>", hostile, at(11, 30))};
    auto v = make_view(r);
    v.scopes = {{hostile, hostile}};
    v.groups = {hostile};
    v.default_duration = hostile;
    v.max_duration = hostile;
    v.required_approvals = 2;
    v.history = {{1, at(11), hostile, hostile, 5, 9, hostile, hostile, 443, hostile}};
    const std::string html = request_detail(f, v);
    expect_safe_document(html);
    EXPECT_NE(html.find("value=\"" + hostile_escaped + "\""), std::string::npos);
    // Without the escaping of the user, of the scopes and of the history, the raw string would show somewhere.
    EXPECT_EQ(html.find(hostile), std::string::npos);
    EXPECT_EQ(html.find("<b>"), std::string::npos);
    EXPECT_NE(html.find("&lt;b&gt;bob&lt;/b&gt;"), std::string::npos);
}

TEST(PagesRequest, TwoApproversOneVote) {
    auto v = make_view(make_request(20, "payments", "api.stripe.test", 443));
    v.required_approvals = 2;
    v.request.votes = {make_vote("bob", "looks fine", at(11, 40))};

    const std::string for_alice = request_detail(make_frame("alice", role::approver), v);
    expect_safe_document(for_alice);
    EXPECT_NE(for_alice.find("<strong>1 of 2</strong> approvers"), std::string::npos);
    EXPECT_NE(for_alice.find("looks fine"), std::string::npos);
    EXPECT_EQ(post_actions(for_alice),
              (std::set<std::string>{"/requests/20/approve", "/requests/20/deny", "/logout"}));

    // Bob voted already: he may still deny, but not approve twice.
    const std::string for_bob = request_detail(make_frame("bob", role::approver), v);
    expect_safe_document(for_bob);
    EXPECT_EQ(post_actions(for_bob), (std::set<std::string>{"/requests/20/deny", "/logout"}));
    EXPECT_NE(for_bob.find("You approved this request"), std::string::npos);
}

TEST(PagesRequest, ApproverWhoJustifiedCannotDecide) {
    auto v = make_view(make_request(21, "ci-runner", "api.example.com", 443));
    v.request.justifications = {{"alice", "I need it", at(11)}};
    const std::string html = request_detail(make_frame("alice", role::approver), v);
    expect_safe_document(html);
    EXPECT_EQ(post_actions(html), (std::set<std::string>{"/logout"}));
    EXPECT_NE(html.find("another approver decides it"), std::string::npos);
}

TEST(PagesRequest, ApprovedShowsGrantAndSnippet) {
    const auto f = make_frame("alice", role::approver);
    auto r = make_request(30, "ci-runner", "api.example.com", 443);
    r.state = request_state::approved;
    r.decided_by = "bob";
    r.decided_at = at(11, 50);
    r.decision_note = "until the vendor " + hostile;
    r.grant_id = 4;
    auto v = make_view(r);
    v.grant = make_grant(4, 2h + 10min, f.now);
    v.snippet = "clients:\n  - name: ci-runner\n    allow:\n      - host: api.example.com\n        ports: [443]\n# " +
                hostile;
    for (const auto& who : {make_frame("alice", role::approver), make_frame("dave", role::requester)}) {
        const std::string html = request_detail(who, v);
        expect_safe_document(html);
        EXPECT_EQ(post_actions(html), (std::set<std::string>{"/logout"}));
        EXPECT_NE(html.find("badge-approved"), std::string::npos);
        EXPECT_NE(html.find("until the vendor " + hostile_escaped), std::string::npos);
        EXPECT_NE(html.find("Grant 4"), std::string::npos);
        EXPECT_NE(html.find("2h 10m left"), std::string::npos);
        EXPECT_NE(html.find("Make permanent"), std::string::npos);
        EXPECT_NE(html.find("policy repository"), std::string::npos);
        EXPECT_NE(html.find("<pre class=\"snippet\"><code>clients:\n  - name: ci-runner\n"), std::string::npos);
        EXPECT_NE(html.find("# " + hostile_escaped + "</code></pre>"), std::string::npos);
    }
}

TEST(PagesRequest, DeniedAndExpiredHaveNoForms) {
    auto r = make_request(31, "ci-runner", "evil.example", 443);
    r.state = request_state::denied;
    r.decided_by = "bob";
    r.decided_at = at(11);
    r.decision_note = "no";
    const std::string denied = request_detail(make_frame("alice", role::approver), make_view(r));
    expect_safe_document(denied);
    EXPECT_EQ(post_actions(denied), (std::set<std::string>{"/logout"}));
    EXPECT_NE(denied.find("badge-denied"), std::string::npos);
    EXPECT_EQ(denied.find("Make permanent"), std::string::npos);

    r.state = request_state::expired;
    const std::string expired = request_detail(make_frame("dave", role::requester), make_view(r));
    EXPECT_EQ(post_actions(expired), (std::set<std::string>{"/logout"}));
    EXPECT_NE(expired.find("badge-expired"), std::string::npos);
}

TEST(PagesRequest, DecidedRequestIsNotUnderThePendingTab) {
    for (const auto state : {request_state::approved, request_state::denied, request_state::expired}) {
        auto r = make_request(32, "ci-runner", "api.example.com", 443);
        r.state = state;
        r.decided_by = "bob";
        r.decided_at = at(11);
        const std::string html = request_detail(make_frame("alice", role::approver), make_view(r));
        SCOPED_TRACE(to_string(state));
        expect_safe_document(html);
        EXPECT_EQ(html.find("aria-current"), std::string::npos);
        EXPECT_NE(html.find("href=\"/\">Pending</a>"), std::string::npos);
        EXPECT_NE(html.find("<a href=\"/history\">History</a> / Request 32"), std::string::npos);
    }
}

TEST(PagesGrants, EmptyState) {
    const std::string html = grants(make_frame("alice", role::approver), {}, "7d");
    expect_safe_document(html);
    EXPECT_NE(html.find("No active grants."), std::string::npos);
    EXPECT_EQ(html.find("<table"), std::string::npos);
}

TEST(PagesGrants, ApproverCanRevokeAndExtend) {
    const auto f = make_frame("alice", role::approver);
    auto g1 = make_grant(4, 25min, f.now);
    auto g2 = make_grant(5, 3h + 5min, f.now);
    g2.scope = policy::grant_scope::group;
    g2.scope_name = hostile;
    g2.destination = hostile;
    g2.approved_by = hostile;
    auto g3 = make_grant(6, 2 * 24h + 4h, f.now);
    const std::string html = grants(f, {g1, g2, g3}, "7d");
    expect_safe_document(html);
    EXPECT_EQ(post_actions(html), (std::set<std::string>{"/grants/4/revoke", "/grants/4/extend", "/grants/5/revoke",
                                                         "/grants/5/extend", "/grants/6/revoke", "/grants/6/extend",
                                                         "/logout"}));
    for (const auto& fi : forms_of(html)) {
        if (fi.action.find("/extend") != std::string::npos) {
            EXPECT_NE(fi.body.find("name=\"duration\""), std::string::npos);
            EXPECT_NE(fi.body.find("name=\"note\""), std::string::npos);
        }
        if (fi.action.find("/revoke") != std::string::npos) {
            EXPECT_NE(fi.body.find("name=\"note\""), std::string::npos);
        }
    }
    EXPECT_NE(html.find("25m left"), std::string::npos);
    EXPECT_NE(html.find("3h 5m left"), std::string::npos);
    EXPECT_NE(html.find("2d 4h left"), std::string::npos);
    EXPECT_NE(html.find("at most 7d"), std::string::npos);
    EXPECT_NE(html.find("group <span class=\"mono\">" + hostile_escaped), std::string::npos);
    EXPECT_EQ(html.find(hostile), std::string::npos);
    EXPECT_NE(html.find("href=\"/requests/14\""), std::string::npos);
}

TEST(PagesGrants, ExtendAndRevokeAreTitledAndTheHintFitsTheMaximum) {
    const auto f = make_frame("alice", role::approver);
    const std::string html = grants(f, {make_grant(7, 2min, f.now)}, "1h");
    expect_safe_document(html);
    // A fresh 2m grant does not read "1m left".
    EXPECT_NE(html.find(">2m left</time>"), std::string::npos);
    int seen = 0;
    for (const auto& fi : forms_of(html)) {
        if (fi.action == "/grants/7/extend") {
            ++seen;
            EXPECT_NE(fi.body.find("<h3 class=\"form-title\">Extend</h3>"), std::string::npos);
            EXPECT_NE(fi.body.find("placeholder=\"1h\""), std::string::npos);
            EXPECT_NE(fi.body.find("at most 1h."), std::string::npos);
        }
        if (fi.action == "/grants/7/revoke") {
            ++seen;
            EXPECT_NE(fi.body.find(">Revoke</h3>"), std::string::npos);
            EXPECT_NE(fi.body.find("id=\"revoke-note-7\""), std::string::npos);
        }
    }
    EXPECT_EQ(seen, 2);
    EXPECT_EQ(html.find("placeholder=\"8h\""), std::string::npos);
}

TEST(PagesGrants, RequesterSeesNoForms) {
    const auto f = make_frame("dave", role::requester);
    const std::string html = grants(f, {make_grant(4, 25min, f.now)}, "7d");
    expect_safe_document(html);
    EXPECT_EQ(post_actions(html), (std::set<std::string>{"/logout"}));
    EXPECT_EQ(html.find("/revoke"), std::string::npos);
    EXPECT_EQ(html.find("/extend"), std::string::npos);
    EXPECT_NE(html.find("api.example.com:443"), std::string::npos);
}

TEST(PagesHistory, FilterFormAndRows) {
    const auto f = make_frame("alice", role::approver);
    history_filter filter;
    filter.client = hostile;
    filter.host = "example";
    filter.actor = "bob";
    filter.event = "approved";
    filter.request_id = 12;
    filter.limit = 2;
    const std::vector<history_entry> entries{
        {9, at(11, 50), "approved", hostile, 12, 4, "ci-runner", "api.example.com", 443, "note " + hostile},
        {8, at(11, 45), "request_expired", "egressd", 11, std::nullopt, "ci-runner", "old.example.com", 80, ""},
    };
    const std::string html = history(f, entries, filter);
    expect_safe_document(html);

    const auto forms = forms_of(html);
    const auto get = std::find_if(forms.begin(), forms.end(), [](const form_info& fi) { return fi.method == "get"; });
    ASSERT_NE(get, forms.end());
    EXPECT_EQ(get->action, "/history");
    EXPECT_NE(get->body.find("name=\"client\" id=\"f-client\" value=\"" + hostile_escaped + "\""), std::string::npos);
    EXPECT_NE(get->body.find("name=\"host\" id=\"f-host\" value=\"example\""), std::string::npos);
    EXPECT_NE(get->body.find("name=\"actor\" id=\"f-actor\" value=\"bob\""), std::string::npos);
    EXPECT_NE(get->body.find("<option value=\"approved\" selected>"), std::string::npos);
    EXPECT_NE(get->body.find("name=\"request\" id=\"f-request\""), std::string::npos);
    EXPECT_NE(get->body.find("value=\"12\""), std::string::npos);
    EXPECT_EQ(post_actions(html), (std::set<std::string>{"/logout"}));

    EXPECT_NE(html.find("href=\"/requests/12\""), std::string::npos);
    EXPECT_NE(html.find("grant 4"), std::string::npos);
    EXPECT_NE(html.find("request expired"), std::string::npos);
    EXPECT_NE(html.find("note " + hostile_escaped), std::string::npos);
    EXPECT_EQ(html.find(hostile), std::string::npos);
    // A full page offers more, keeping the filters (URL-encoded, then HTML-escaped).
    EXPECT_NE(html.find("href=\"/history?client=%3Cscript%3Ealert%28%22x%22%29%3C%2Fscript%3E%27%22%26&amp;host="
                        "example&amp;actor=bob&amp;event=approved&amp;request=12&amp;limit=4\""),
              std::string::npos);
}

TEST(PagesHistory, ReasonCodesReadAsWords) {
    const auto f = make_frame("alice", role::approver);
    const std::vector<history_entry> entries{
        {4, at(11, 50), "requested", "egressd", 3, std::nullopt, "ci", "a.example", 443, "no_matching_rule"},
        {3, at(11, 40), "requested", "egressd", 2, std::nullopt, "ci", "b.example", 8443, "port_not_allowed"},
        {2, at(11, 30), "requested", "egressd", 1, std::nullopt, "ci", "c.example", 443, "expired"},
        // Free text that happens to look like a code is somebody's words: shown as written.
        {1, at(11, 20), "denied", "bob", 1, std::nullopt, "ci", "c.example", 443, "port_not_allowed"},
    };
    const std::string html = history(f, entries, history_filter{});
    expect_safe_document(html);
    EXPECT_NE(html.find("<span class=\"clamp\">no matching rule</span>"), std::string::npos);
    EXPECT_NE(html.find("<span class=\"clamp\">port not allowed</span>"), std::string::npos);
    EXPECT_NE(html.find("<span class=\"clamp\">rule expired</span>"), std::string::npos);
    EXPECT_NE(html.find("<span class=\"clamp\">port_not_allowed</span>"), std::string::npos);
    EXPECT_EQ(html.find("no_matching_rule"), std::string::npos);

    // An unknown code is shown as it is, escaped.
    const std::string odd = history(
        f, {{5, at(11), "requested", "egressd", 4, std::nullopt, "ci", "d.example", 443, "new_code " + hostile}},
        history_filter{});
    EXPECT_NE(odd.find("<span class=\"clamp\">new_code " + hostile_escaped + "</span>"), std::string::npos);
}

TEST(PagesHistory, EmptyStates) {
    const auto f = make_frame("alice", role::approver);
    const std::string none = history(f, {}, history_filter{});
    expect_safe_document(none);
    EXPECT_NE(none.find("No history yet."), std::string::npos);
    EXPECT_EQ(none.find("<table"), std::string::npos);

    history_filter filter;
    filter.actor = "nobody";
    const std::string filtered = history(f, {}, filter);
    EXPECT_NE(filtered.find("Nothing matches these filters."), std::string::npos);
}

TEST(PagesError, StatusAndEscapedMessage) {
    const std::string html = error_page(make_frame("alice", role::approver), 404, "No request " + hostile);
    expect_safe_document(html);
    EXPECT_NE(html.find(">404<"), std::string::npos);
    EXPECT_NE(html.find("No request " + hostile_escaped), std::string::npos);

    frame anonymous;
    const std::string signed_out = error_page(anonymous, 429, "Too many attempts");
    expect_safe_document(signed_out);
    EXPECT_EQ(signed_out.find("/logout"), std::string::npos);
}

}  // namespace
}  // namespace egressd::proxy::approvals::pages
