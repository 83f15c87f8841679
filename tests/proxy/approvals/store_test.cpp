#include "proxy/approvals/store.hpp"

#include "tests/support/temp_dir.hpp"
#include "tests/support/file_size_limit.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace egressd::proxy::approvals {
namespace {

using namespace std::chrono_literals;
using outcome = approval_result::outcome;

const time_point t0{std::chrono::seconds{1'700'000'000}};

request_key key(std::string client, std::string host, std::uint16_t port = 443)
{
    return {std::move(client), std::move(host), port};
}

approval_input approval(std::string approver, unsigned required = 1, time_point expires = t0 + 8h)
{
    approval_input in;
    in.approver = std::move(approver);
    in.scope = policy::grant_scope::client;
    in.scope_name = "build-runner";
    in.destination = "api.example.com";
    in.port = 443;
    in.expires = expires;
    in.note = "for the release";
    in.required = required;
    return in;
}

// Direct SQLite access to the file, for what the interface does not show (schema version, integrity).
class raw_db {
public:
    explicit raw_db(const std::filesystem::path& file)
    {
        if (sqlite3_open_v2(file.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
            ADD_FAILURE() << "cannot open " << file << ": " << sqlite3_errmsg(db_);
        }
    }
    ~raw_db() { sqlite3_close_v2(db_); }
    raw_db(const raw_db&) = delete;
    raw_db& operator=(const raw_db&) = delete;

    // The first column of every row, as text.
    std::vector<std::string> column(const std::string& sql)
    {
        std::vector<std::string> out;
        sqlite3_stmt* stmt = nullptr;
        if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
            ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
            return out;
        }
        int rc = SQLITE_ROW;
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
            const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
            out.emplace_back(text != nullptr ? text : "");
        }
        if (rc != SQLITE_DONE) {
            ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
        }
        sqlite3_finalize(stmt);
        return out;
    }
    std::string value(const std::string& sql)
    {
        auto rows = column(sql);
        return rows.empty() ? std::string() : rows.front();
    }

private:
    sqlite3* db_ = nullptr;
};

class store_test : public ::testing::Test {
protected:
    std::unique_ptr<store> open() { return open_sqlite_store(file_); }

    std::vector<history_entry> all_history(store& s)
    {
        history_filter f;
        f.limit = 10'000;
        return s.history(f);
    }

    test_support::temp_dir dir_;
    std::filesystem::path file_ = dir_.path() / "approvals.db";
};

TEST(store_names, request_and_grant_states_round_trip)
{
    for (auto s : {request_state::pending, request_state::approved, request_state::denied, request_state::expired}) {
        EXPECT_EQ(parse_request_state(to_string(s)), s);
    }
    for (auto s : {grant_state::active, grant_state::revoked, grant_state::expired}) {
        EXPECT_EQ(parse_grant_state(to_string(s)), s);
    }
    EXPECT_EQ(to_string(request_state::pending), "pending");
    EXPECT_EQ(to_string(grant_state::revoked), "revoked");
    EXPECT_FALSE(parse_request_state("Pending"));
    EXPECT_FALSE(parse_request_state(""));
    EXPECT_FALSE(parse_grant_state("active "));
}

TEST_F(store_test, create_request_is_pending_and_written_to_history)
{
    auto s = open();
    auto r = s->create_request(key("build-runner", "api.example.com"), t0, "no_matching_rule", "10.0.0.5:40000",
                               "ci@example.com");
    EXPECT_GT(r.id, 0);
    EXPECT_EQ(r.key, key("build-runner", "api.example.com"));
    EXPECT_EQ(r.state, request_state::pending);
    EXPECT_EQ(r.hits, 1);
    EXPECT_EQ(r.first_seen, t0);
    EXPECT_EQ(r.last_seen, t0);
    EXPECT_EQ(r.reason, "no_matching_rule");
    EXPECT_EQ(r.last_source, "10.0.0.5:40000");
    EXPECT_EQ(r.last_identity, "ci@example.com");
    EXPECT_FALSE(r.grant_id);
    EXPECT_FALSE(r.decided_at);

    auto h = all_history(*s);
    ASSERT_EQ(h.size(), 1U);
    EXPECT_EQ(h[0].event, "requested");
    EXPECT_EQ(h[0].actor, "egressd");
    EXPECT_EQ(h[0].request_id, r.id);
    EXPECT_FALSE(h[0].grant_id);
    EXPECT_EQ(h[0].client, "build-runner");
    EXPECT_EQ(h[0].host, "api.example.com");
    EXPECT_EQ(h[0].port, 443);
    EXPECT_EQ(h[0].at, t0);
    EXPECT_EQ(h[0].detail, "no_matching_rule");

    auto pending = s->pending_requests();
    ASSERT_EQ(pending.size(), 1U);
    EXPECT_EQ(pending[0].id, r.id);
}

TEST_F(store_test, one_pending_request_per_key_until_it_is_decided)
{
    auto s = open();
    auto first = s->create_request(key("a", "api.example.com"), t0, "no_matching_rule", "src", "");
    try {
        s->create_request(key("a", "api.example.com"), t0 + 1s, "no_matching_rule", "src", "");
        FAIL() << "a second pending request for one key was created";
    } catch (const store_error& e) {
        EXPECT_NE(std::string(e.what()).find("cannot create a request for a to api.example.com:443"), std::string::npos)
            << e.what();
        EXPECT_NE(std::string(e.what()).find("pending request"), std::string::npos) << e.what();
    }
    EXPECT_EQ(all_history(*s).size(), 1U) << "the refused request left a history row";

    // Another port, host or client is another key.
    EXPECT_NO_THROW(s->create_request(key("a", "api.example.com", 8443), t0, "port_not_allowed", "src", ""));
    EXPECT_NO_THROW(s->create_request(key("a", "www.example.com"), t0, "no_matching_rule", "src", ""));
    EXPECT_NO_THROW(s->create_request(key("b", "api.example.com"), t0, "no_matching_rule", "src", ""));

    ASSERT_TRUE(s->deny(first.id, "alice", "no", t0 + 2s));
    auto second = s->create_request(key("a", "api.example.com"), t0 + 3s, "no_matching_rule", "src", "");
    EXPECT_NE(second.id, first.id);
    ASSERT_EQ(s->approve(second.id, approval("alice"), t0 + 4s).result, outcome::granted);
    auto third = s->create_request(key("a", "api.example.com"), t0 + 5s, "expired", "src", "");
    EXPECT_EQ(third.state, request_state::pending);
    EXPECT_THROW(s->create_request(key("a", "api.example.com"), t0 + 6s, "expired", "src", ""), store_error);
}

TEST_F(store_test, add_hits_counts_on_pending_requests_without_history)
{
    auto s = open();
    auto a = s->create_request(key("a", "one.example"), t0, "no_matching_rule", "s1", "");
    auto b = s->create_request(key("b", "two.example"), t0, "no_matching_rule", "s1", "");
    auto decided = s->create_request(key("c", "three.example"), t0, "no_matching_rule", "s1", "");
    ASSERT_TRUE(s->deny(decided.id, "alice", "", t0));
    const auto history_before = all_history(*s).size();

    s->add_hits({
        {a.id, 3, t0 + 10s, "port_not_allowed", "s2", "id2"},
        {b.id, 1, t0 + 5s, "expired", "s3", ""},
        {a.id, 2, t0 + 7s, "no_matching_rule", "s4", ""},  // older than the last one: last_seen stays
        {decided.id, 5, t0 + 9s, "no_matching_rule", "s5", ""},
        {999, 5, t0 + 9s, "no_matching_rule", "s5", ""},
    });

    auto ra = s->request(a.id);
    ASSERT_TRUE(ra);
    EXPECT_EQ(ra->hits, 6);
    EXPECT_EQ(ra->last_seen, t0 + 10s);
    EXPECT_EQ(ra->first_seen, t0);
    EXPECT_EQ(ra->reason, "no_matching_rule");
    EXPECT_EQ(ra->last_source, "s4");
    auto rb = s->request(b.id);
    ASSERT_TRUE(rb);
    EXPECT_EQ(rb->hits, 2);
    EXPECT_EQ(rb->last_seen, t0 + 5s);
    EXPECT_EQ(rb->reason, "expired");
    EXPECT_EQ(rb->last_source, "s3");
    EXPECT_EQ(s->request(decided.id)->hits, 1) << "a decided request counted hits";
    EXPECT_EQ(all_history(*s).size(), history_before);
    EXPECT_NO_THROW(s->add_hits({}));
}

TEST_F(store_test, justify_records_the_text_and_history)
{
    auto s = open();
    auto r = s->create_request(key("a", "api.example.com"), t0, "no_matching_rule", "src", "");
    EXPECT_TRUE(s->justify(r.id, "carol", "TICKET-42: release upload", t0 + 1s));
    EXPECT_TRUE(s->justify(r.id, "dave", "me too", t0 + 2s));
    EXPECT_FALSE(s->justify(4242, "carol", "nothing here", t0 + 3s));

    auto got = s->request(r.id);
    ASSERT_TRUE(got);
    ASSERT_EQ(got->justifications.size(), 2U);
    EXPECT_EQ(got->justifications[0].user, "carol");
    EXPECT_EQ(got->justifications[0].text, "TICKET-42: release upload");
    EXPECT_EQ(got->justifications[0].at, t0 + 1s);
    EXPECT_EQ(got->justifications[1].user, "dave");

    auto h = all_history(*s);
    ASSERT_EQ(h.size(), 3U);
    EXPECT_EQ(h[0].event, "justified");
    EXPECT_EQ(h[0].actor, "dave");
    EXPECT_EQ(h[1].event, "justified");
    EXPECT_EQ(h[1].actor, "carol");
    EXPECT_EQ(h[1].detail, "TICKET-42: release upload");
    EXPECT_EQ(h[1].request_id, r.id);

    ASSERT_TRUE(s->deny(r.id, "alice", "", t0 + 4s));
    EXPECT_FALSE(s->justify(r.id, "carol", "too late", t0 + 5s));
    EXPECT_EQ(s->request(r.id)->justifications.size(), 2U);
}

TEST_F(store_test, one_approver_grants_at_once)
{
    auto s = open();
    auto r = s->create_request(key("build-runner", "api.example.com"), t0, "no_matching_rule", "src", "");
    auto in = approval("alice");
    in.scope = policy::grant_scope::group;
    in.scope_name = "ci";
    in.destination = "*.example.com";
    auto res = s->approve(r.id, in, t0 + 60s);
    ASSERT_EQ(res.result, outcome::granted);
    ASSERT_TRUE(res.grant);
    ASSERT_TRUE(res.request);

    const auto& g = *res.grant;
    EXPECT_GT(g.id, 0);
    EXPECT_EQ(g.request_id, r.id);
    EXPECT_EQ(g.scope, policy::grant_scope::group);
    EXPECT_EQ(g.scope_name, "ci");
    EXPECT_EQ(g.destination, "*.example.com");
    EXPECT_EQ(g.port, 443);
    EXPECT_EQ(g.created, t0 + 60s);
    EXPECT_EQ(g.expires, t0 + 8h);
    EXPECT_EQ(g.state, grant_state::active);
    EXPECT_EQ(g.approved_by, "alice");
    EXPECT_EQ(g.note, "for the release");
    EXPECT_FALSE(g.ended_at);

    EXPECT_EQ(res.request->state, request_state::approved);
    EXPECT_EQ(res.request->grant_id, g.id);
    EXPECT_EQ(res.request->decided_by, "alice");
    EXPECT_EQ(res.request->decision_note, "for the release");
    EXPECT_EQ(res.request->decided_at, t0 + 60s);

    auto active = s->active_grants();
    ASSERT_EQ(active.size(), 1U);
    EXPECT_EQ(active[0].id, g.id);
    EXPECT_TRUE(s->pending_requests().empty());

    auto h = all_history(*s);
    ASSERT_EQ(h.size(), 2U);
    EXPECT_EQ(h[0].event, "approved");
    EXPECT_EQ(h[0].actor, "alice");
    EXPECT_EQ(h[0].request_id, r.id);
    EXPECT_EQ(h[0].grant_id, g.id);
    EXPECT_EQ(h[0].host, "api.example.com");
    EXPECT_EQ(h[0].detail, "for the release");
}

TEST_F(store_test, two_approvers_vote_then_grant)
{
    auto s = open();
    auto r = s->create_request(key("payments", "api.bank.example"), t0, "no_matching_rule", "src", "");

    auto first = s->approve(r.id, approval("alice", 2), t0 + 1s);
    EXPECT_EQ(first.result, outcome::vote_recorded);
    EXPECT_FALSE(first.grant);
    ASSERT_TRUE(first.request);
    EXPECT_EQ(first.request->state, request_state::pending);
    ASSERT_EQ(first.request->votes.size(), 1U);
    EXPECT_EQ(first.request->votes[0].approver, "alice");
    EXPECT_EQ(first.request->votes[0].note, "for the release");
    EXPECT_EQ(first.request->votes[0].at, t0 + 1s);
    EXPECT_TRUE(s->active_grants().empty());

    auto again = s->approve(r.id, approval("alice", 2), t0 + 2s);
    EXPECT_EQ(again.result, outcome::already_voted);
    EXPECT_FALSE(again.grant);
    EXPECT_EQ(s->request(r.id)->votes.size(), 1U);

    // The second approver must agree to what the first did: the same scope and the same duration.
    auto wider = approval("bob", 2, t0 + 3s + 8h);
    wider.destination = "*.bank.example";
    EXPECT_EQ(s->approve(r.id, wider, t0 + 3s).result, outcome::differs_from_vote);
    EXPECT_EQ(s->approve(r.id, approval("bob", 2, t0 + 3s + 9h), t0 + 3s).result, outcome::differs_from_vote);
    ASSERT_EQ(s->request(r.id)->votes[0].destination, "api.example.com");
    EXPECT_EQ(s->request(r.id)->votes[0].duration, std::chrono::seconds(8h - 1s));

    auto second = s->approve(r.id, approval("bob", 2, t0 + 3s + 8h - 1s), t0 + 3s);
    ASSERT_EQ(second.result, outcome::granted);
    ASSERT_TRUE(second.grant);
    EXPECT_EQ(second.grant->approved_by, "alice,bob");
    EXPECT_EQ(second.request->decided_by, "alice,bob");
    EXPECT_EQ(second.request->state, request_state::approved);
    EXPECT_EQ(second.request->grant_id, second.grant->id);

    auto h = all_history(*s);
    std::vector<std::string> events;
    for (const auto& e : h) {
        events.push_back(e.event + ":" + e.actor);
    }
    EXPECT_EQ(events, (std::vector<std::string>{"approved:bob", "voted:alice", "requested:egressd"}));

    EXPECT_EQ(s->approve(r.id, approval("carol", 2), t0 + 4s).result, outcome::not_pending);
}

TEST_F(store_test, an_approver_who_justified_cannot_approve)
{
    auto s = open();
    auto r = s->create_request(key("a", "api.example.com"), t0, "no_matching_rule", "src", "");
    ASSERT_TRUE(s->justify(r.id, "carol", "I need it", t0 + 1s));

    auto self = s->approve(r.id, approval("carol"), t0 + 2s);
    EXPECT_EQ(self.result, outcome::self_approval);
    EXPECT_FALSE(self.grant);
    ASSERT_TRUE(self.request);
    EXPECT_EQ(self.request->state, request_state::pending);

    // Nor as one of two approvers.
    ASSERT_EQ(s->approve(r.id, approval("alice", 2), t0 + 3s).result, outcome::vote_recorded);
    EXPECT_EQ(s->approve(r.id, approval("carol", 2), t0 + 4s).result, outcome::self_approval);
    EXPECT_TRUE(s->active_grants().empty());
    EXPECT_EQ(s->request(r.id)->votes.size(), 1U);

    std::set<std::string> events;
    for (const auto& e : all_history(*s)) {
        events.insert(e.event);
    }
    EXPECT_EQ(events, (std::set<std::string>{"requested", "justified", "voted"}));
}

TEST_F(store_test, approve_reports_missing_and_decided_requests)
{
    auto s = open();
    auto missing = s->approve(77, approval("alice"), t0);
    EXPECT_EQ(missing.result, outcome::not_found);
    EXPECT_FALSE(missing.request);

    auto denied = s->create_request(key("a", "one.example"), t0, "no_matching_rule", "src", "");
    ASSERT_TRUE(s->deny(denied.id, "bob", "no", t0 + 1s));
    auto late = s->approve(denied.id, approval("alice"), t0 + 2s);
    EXPECT_EQ(late.result, outcome::not_pending);
    ASSERT_TRUE(late.request);
    EXPECT_EQ(late.request->state, request_state::denied);

    auto approved = s->create_request(key("a", "two.example"), t0, "no_matching_rule", "src", "");
    ASSERT_EQ(s->approve(approved.id, approval("alice"), t0 + 1s).result, outcome::granted);
    EXPECT_EQ(s->approve(approved.id, approval("bob"), t0 + 2s).result, outcome::not_pending);
    EXPECT_EQ(s->active_grants().size(), 1U);
}

TEST_F(store_test, deny_decides_a_pending_request_once)
{
    auto s = open();
    auto r = s->create_request(key("a", "api.example.com"), t0, "no_matching_rule", "src", "");
    auto denied = s->deny(r.id, "alice", "use the mirror", t0 + 5s);
    ASSERT_TRUE(denied);
    EXPECT_EQ(denied->state, request_state::denied);
    EXPECT_EQ(denied->decided_by, "alice");
    EXPECT_EQ(denied->decision_note, "use the mirror");
    EXPECT_EQ(denied->decided_at, t0 + 5s);
    EXPECT_FALSE(denied->grant_id);

    EXPECT_FALSE(s->deny(r.id, "bob", "again", t0 + 6s));
    EXPECT_FALSE(s->deny(999, "bob", "none", t0 + 6s));

    auto h = all_history(*s);
    ASSERT_EQ(h.size(), 2U);
    EXPECT_EQ(h[0].event, "denied");
    EXPECT_EQ(h[0].actor, "alice");
    EXPECT_EQ(h[0].detail, "use the mirror");
    EXPECT_EQ(h[0].request_id, r.id);
}

TEST_F(store_test, revoke_ends_an_active_grant)
{
    auto s = open();
    auto r = s->create_request(key("a", "api.example.com", 8443), t0, "no_matching_rule", "src", "");
    auto g = s->approve(r.id, approval("alice"), t0).grant;
    ASSERT_TRUE(g);

    auto revoked = s->revoke_grant(g->id, "bob", "leaked token", t0 + 30s);
    ASSERT_TRUE(revoked);
    EXPECT_EQ(revoked->state, grant_state::revoked);
    EXPECT_EQ(revoked->ended_at, t0 + 30s);
    EXPECT_EQ(revoked->ended_by, "bob");
    EXPECT_TRUE(s->active_grants().empty());

    EXPECT_FALSE(s->revoke_grant(g->id, "bob", "again", t0 + 31s));
    EXPECT_FALSE(s->revoke_grant(12345, "bob", "none", t0 + 31s));
    EXPECT_FALSE(s->extend_grant(g->id, "bob", t0 + 9h, "", t0 + 32s));

    auto h = all_history(*s);
    ASSERT_EQ(h.size(), 3U);
    EXPECT_EQ(h[0].event, "revoked");
    EXPECT_EQ(h[0].actor, "bob");
    EXPECT_EQ(h[0].grant_id, g->id);
    EXPECT_EQ(h[0].request_id, r.id);
    EXPECT_EQ(h[0].client, "a");
    EXPECT_EQ(h[0].port, 8443);
    EXPECT_EQ(h[0].detail, "leaked token");
}

TEST_F(store_test, extend_moves_the_expiry_and_records_both)
{
    auto s = open();
    auto r = s->create_request(key("a", "api.example.com"), t0, "no_matching_rule", "src", "");
    auto g = s->approve(r.id, approval("alice", 1, t0 + 2h), t0).grant;
    ASSERT_TRUE(g);

    auto extended = s->extend_grant(g->id, "bob", t0 + 10h, "migration runs long", t0 + 1h);
    ASSERT_TRUE(extended);
    EXPECT_EQ(extended->expires, t0 + 10h);
    EXPECT_EQ(extended->state, grant_state::active);
    EXPECT_EQ(s->grant(g->id)->expires, t0 + 10h);
    EXPECT_FALSE(s->extend_grant(999, "bob", t0 + 10h, "", t0));

    auto h = all_history(*s);
    ASSERT_EQ(h.size(), 3U);
    EXPECT_EQ(h[0].event, "extended");
    EXPECT_EQ(h[0].actor, "bob");
    EXPECT_EQ(h[0].grant_id, g->id);
    EXPECT_EQ(h[0].at, t0 + 1h);
    // 1'700'000'000 is 2023-11-14T22:13:20Z.
    EXPECT_EQ(h[0].detail, "expires 2023-11-15T00:13:20Z -> 2023-11-15T08:13:20Z: migration runs long");
}

TEST_F(store_test, expire_ends_due_grants_and_stale_requests)
{
    auto s = open();
    auto r1 = s->create_request(key("a", "one.example"), t0, "no_matching_rule", "src", "");
    auto r2 = s->create_request(key("a", "two.example"), t0, "no_matching_rule", "src", "");
    auto r3 = s->create_request(key("a", "three.example"), t0, "no_matching_rule", "src", "");
    auto due = s->approve(r1.id, approval("alice", 1, t0 + 1h), t0).grant;
    auto later = s->approve(r2.id, approval("alice", 1, t0 + 1h + 1s), t0).grant;
    auto revoked = s->approve(r3.id, approval("alice", 1, t0 + 1s), t0).grant;
    ASSERT_TRUE(due && later && revoked);
    ASSERT_TRUE(s->revoke_grant(revoked->id, "alice", "", t0));

    auto stale = s->create_request(key("b", "old.example"), t0 - 20 * 24h, "no_matching_rule", "src", "");
    auto fresh = s->create_request(key("b", "new.example"), t0, "no_matching_rule", "src", "");
    auto boundary = s->create_request(key("b", "edge.example"), t0 - 14 * 24h, "no_matching_rule", "src", "");

    auto changed = s->expire(t0 + 1h, t0 - 14 * 24h);
    ASSERT_EQ(changed.grants.size(), 1U);
    EXPECT_EQ(changed.grants[0].id, due->id);
    EXPECT_EQ(changed.grants[0].state, grant_state::expired);
    EXPECT_EQ(changed.grants[0].ended_at, t0 + 1h);
    EXPECT_EQ(changed.grants[0].ended_by, "egressd");
    ASSERT_EQ(changed.requests.size(), 1U);
    EXPECT_EQ(changed.requests[0].id, stale.id);
    EXPECT_EQ(changed.requests[0].state, request_state::expired);

    EXPECT_EQ(s->grant(later->id)->state, grant_state::active);
    EXPECT_EQ(s->grant(revoked->id)->state, grant_state::revoked);
    EXPECT_EQ(s->request(fresh.id)->state, request_state::pending);
    EXPECT_EQ(s->request(boundary.id)->state, request_state::pending);

    history_filter f;
    f.actor = "egressd";
    f.event = "expired";
    auto grant_rows = s->history(f);
    ASSERT_EQ(grant_rows.size(), 1U);
    EXPECT_EQ(grant_rows[0].grant_id, due->id);
    EXPECT_EQ(grant_rows[0].request_id, r1.id);
    EXPECT_EQ(grant_rows[0].host, "one.example");
    f.event = "request_expired";
    auto request_rows = s->history(f);
    ASSERT_EQ(request_rows.size(), 1U);
    EXPECT_EQ(request_rows[0].request_id, stale.id);
    EXPECT_EQ(request_rows[0].host, "old.example");

    // Nothing left to do a second time; the stale key may be requested again.
    auto none = s->expire(t0 + 1h, t0 - 14 * 24h);
    EXPECT_TRUE(none.grants.empty());
    EXPECT_TRUE(none.requests.empty());
    EXPECT_NO_THROW(s->create_request(key("b", "old.example"), t0 + 1h, "no_matching_rule", "src", ""));
}

TEST_F(store_test, reads_are_newest_first_with_details_and_limits)
{
    auto s = open();
    std::vector<std::int64_t> ids;
    for (int i = 0; i < 5; ++i) {
        ids.push_back(s->create_request(key("a", "h" + std::to_string(i) + ".example"), t0 + std::chrono::seconds{i},
                                        "no_matching_rule", "src", "")
                          .id);
    }
    ASSERT_TRUE(s->justify(ids[3], "carol", "why", t0 + 10s));
    ASSERT_EQ(s->approve(ids[3], approval("alice", 2), t0 + 11s).result, outcome::vote_recorded);
    ASSERT_EQ(s->approve(ids[1], approval("alice"), t0 + 12s).result, outcome::granted);
    ASSERT_TRUE(s->deny(ids[0], "alice", "", t0 + 13s));

    auto all = s->requests(std::nullopt, 100);
    ASSERT_EQ(all.size(), 5U);
    for (std::size_t i = 0; i < all.size(); ++i) {
        EXPECT_EQ(all[i].id, ids[4 - i]);
    }
    auto pending = s->requests(request_state::pending, 100);
    ASSERT_EQ(pending.size(), 3U);
    EXPECT_EQ(pending[0].id, ids[4]);
    EXPECT_EQ(pending[1].id, ids[3]);
    ASSERT_EQ(pending[1].justifications.size(), 1U);
    ASSERT_EQ(pending[1].votes.size(), 1U);
    EXPECT_EQ(pending[1].votes[0].approver, "alice");
    EXPECT_EQ(s->requests(request_state::pending, 2).size(), 2U);
    EXPECT_EQ(s->requests(request_state::approved, 100).size(), 1U);
    EXPECT_EQ(s->requests(request_state::denied, 100).size(), 1U);
    EXPECT_TRUE(s->requests(request_state::expired, 100).empty());

    auto startup = s->pending_requests();
    ASSERT_EQ(startup.size(), 3U);
    EXPECT_EQ(startup[1].justifications.size(), 1U);

    EXPECT_FALSE(s->request(9999));
    auto one = s->request(ids[3]);
    ASSERT_TRUE(one);
    EXPECT_EQ(one->justifications.size(), 1U);

    ASSERT_EQ(s->approve(ids[2], approval("bob"), t0 + 14s).result, outcome::granted);
    auto grants = s->grants(std::nullopt, 10);
    ASSERT_EQ(grants.size(), 2U);
    EXPECT_GT(grants[0].id, grants[1].id);
    EXPECT_EQ(grants[0].request_id, ids[2]);
    ASSERT_TRUE(s->revoke_grant(grants[1].id, "bob", "", t0 + 15s));
    EXPECT_EQ(s->grants(grant_state::active, 10).size(), 1U);
    EXPECT_EQ(s->grants(grant_state::revoked, 10).size(), 1U);
    EXPECT_TRUE(s->grants(grant_state::expired, 10).empty());
    EXPECT_EQ(s->grants(std::nullopt, 1).size(), 1U);
    EXPECT_FALSE(s->grant(9999));
    EXPECT_EQ(s->grant(grants[0].id)->request_id, ids[2]);
}

TEST_F(store_test, history_filters_and_paging)
{
    auto s = open();
    auto r1 = s->create_request(key("web", "api.example.com"), t0, "no_matching_rule", "src", "");
    auto r2 = s->create_request(key("batch", "a_b.example.org", 8443), t0 + 10s, "port_not_allowed", "src", "");
    auto r3 = s->create_request(key("batch", "axb.example.org"), t0 + 20s, "no_matching_rule", "src", "");
    ASSERT_TRUE(s->justify(r1.id, "carol", "ticket", t0 + 30s));
    auto g = s->approve(r1.id, approval("alice"), t0 + 40s).grant;
    ASSERT_TRUE(g);
    ASSERT_TRUE(s->deny(r2.id, "bob", "no", t0 + 50s));
    ASSERT_TRUE(s->revoke_grant(g->id, "bob", "done", t0 + 60s));
    // history, newest first: revoked, denied, approved, justified, requested r3, requested r2, requested r1

    const auto events = [&](const history_filter& f) {
        std::vector<std::string> out;
        for (const auto& e : s->history(f)) {
            out.push_back(e.event);
        }
        return out;
    };
    using list = std::vector<std::string>;

    history_filter f;
    EXPECT_EQ(events(f), (list{"revoked", "denied", "approved", "justified", "requested", "requested", "requested"}));

    f = {};
    f.request_id = r1.id;
    EXPECT_EQ(events(f), (list{"revoked", "approved", "justified", "requested"}));
    f = {};
    f.grant_id = g->id;
    EXPECT_EQ(events(f), (list{"revoked", "approved"}));
    f = {};
    f.client = "batch";
    EXPECT_EQ(events(f), (list{"denied", "requested", "requested"}));
    f = {};
    f.host = "example.org";
    EXPECT_EQ(events(f), (list{"denied", "requested", "requested"}));
    f.host = "a_b";  // a literal substring, not a LIKE pattern: axb.example.org must not match
    EXPECT_EQ(events(f), (list{"denied", "requested"}));
    f.host = "%";
    EXPECT_TRUE(events(f).empty());
    f = {};
    f.actor = "bob";
    EXPECT_EQ(events(f), (list{"revoked", "denied"}));
    f = {};
    f.event = "requested";
    EXPECT_EQ(s->history(f).size(), 3U);
    f = {};
    f.since = t0 + 20s;
    f.until = t0 + 40s;
    EXPECT_EQ(events(f), (list{"approved", "justified", "requested"}));
    f = {};
    f.actor = "bob";
    f.client = "web";
    EXPECT_EQ(events(f), (list{"revoked"}));

    // Paging: three at a time, each page continuing below the last id seen.
    std::vector<std::int64_t> seen;
    f = {};
    f.limit = 3;
    for (int page = 0; page < 10; ++page) {
        auto rows = s->history(f);
        if (rows.empty()) {
            break;
        }
        EXPECT_LE(rows.size(), 3U);
        for (const auto& row : rows) {
            seen.push_back(row.id);
        }
        f.before_id = rows.back().id;
    }
    ASSERT_EQ(seen.size(), 7U);
    EXPECT_TRUE(std::is_sorted(seen.rbegin(), seen.rend()));
    EXPECT_EQ(std::set<std::int64_t>(seen.begin(), seen.end()).size(), 7U);
    f = {};
    f.limit = 0;
    EXPECT_TRUE(s->history(f).empty());
}

TEST_F(store_test, reopened_file_keeps_everything_and_migrates_once)
{
    std::int64_t request_id = 0;
    std::int64_t grant_id = 0;
    {
        auto s = open();
        auto r = s->create_request(key("a", "api.example.com"), t0, "no_matching_rule", "src", "who");
        ASSERT_TRUE(s->justify(r.id, "carol", "why", t0 + 1s));
        auto res = s->approve(r.id, approval("alice"), t0 + 2s);
        ASSERT_TRUE(res.grant);
        request_id = r.id;
        grant_id = res.grant->id;
        s->create_request(key("b", "pending.example"), t0 + 3s, "expired", "src", "");
    }
    const std::string schema_sql = "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_schema ORDER BY name)";
    std::string schema_before;
    {
        raw_db raw(file_);
        EXPECT_EQ(raw.value("PRAGMA user_version"), "1");
        EXPECT_EQ(raw.value("PRAGMA journal_mode"), "wal");
        schema_before = raw.value(schema_sql);
    }
    for (int i = 0; i < 2; ++i) {
        auto s = open();
        auto r = s->request(request_id);
        ASSERT_TRUE(r);
        EXPECT_EQ(r->state, request_state::approved);
        EXPECT_EQ(r->grant_id, grant_id);
        EXPECT_EQ(r->last_identity, "who");
        ASSERT_EQ(r->justifications.size(), 1U);
        auto active = s->active_grants();
        ASSERT_EQ(active.size(), 1U);
        EXPECT_EQ(active[0].id, grant_id);
        EXPECT_EQ(active[0].expires, t0 + 8h);
        EXPECT_EQ(s->pending_requests().size(), 1U);
        EXPECT_EQ(all_history(*s).size(), 4U);
    }
    raw_db raw(file_);
    EXPECT_EQ(raw.value("PRAGMA user_version"), "1");
    EXPECT_EQ(raw.value(schema_sql), schema_before);
    EXPECT_EQ(raw.value("PRAGMA integrity_check"), "ok");
}

TEST_F(store_test, a_newer_schema_is_refused)
{
    {
        auto s = open();
        s->create_request(key("a", "api.example.com"), t0, "no_matching_rule", "src", "");
    }
    {
        raw_db raw(file_);
        raw.column("PRAGMA user_version = 99");
    }
    try {
        open();
        FAIL() << "a store with schema version 99 was opened";
    } catch (const store_error& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find(file_.string()), std::string::npos) << message;
        EXPECT_NE(message.find("schema version 99 is newer"), std::string::npos) << message;
    }
    raw_db raw(file_);
    EXPECT_EQ(raw.value("PRAGMA user_version"), "99") << "the refusing open changed the file";
}

TEST_F(store_test, a_file_that_is_not_a_database_is_refused)
{
    dir_.write("approvals.db", std::string(8192, 'x'));
    try {
        open();
        FAIL() << "a file of garbage was opened as a store";
    } catch (const store_error& e) {
        EXPECT_NE(std::string(e.what()).find("not a database"), std::string::npos) << e.what();
    }
}

TEST_F(store_test, a_missing_directory_is_refused)
{
    EXPECT_THROW(open_sqlite_store(dir_.path() / "no" / "such" / "approvals.db"), store_error);
}

using test_support::file_size_limit;

TEST_F(store_test, a_store_that_cannot_be_written_throws_and_changes_nothing)
{
    auto s = open();
    auto pending = s->create_request(key("a", "pending.example"), t0, "no_matching_rule", "src", "");
    auto voting = s->create_request(key("a", "voting.example"), t0, "no_matching_rule", "src", "");
    ASSERT_EQ(s->approve(voting.id, approval("alice", 2), t0).result, outcome::vote_recorded);
    auto granted = s->create_request(key("a", "granted.example"), t0, "no_matching_rule", "src", "");
    auto g = s->approve(granted.id, approval("alice", 1, t0 + 1h), t0).grant;
    ASSERT_TRUE(g);
    const auto history_before = all_history(*s);

    // Test results are gathered while writes fail and checked afterwards: gtest's own output may be a file.
    std::vector<std::string> messages;
    std::vector<std::string> not_thrown;
    std::size_t active_during = 0;
    bool limited = false;
    {
        file_size_limit limit;
        limited = limit.ok();
        const auto attempt = [&](const char* name, auto&& call) {
            try {
                call();
                not_thrown.emplace_back(name);
            } catch (const store_error& e) {
                messages.emplace_back(e.what());
            }
        };
        attempt("create_request",
                [&] { s->create_request(key("b", "new.example"), t0, "no_matching_rule", "src", ""); });
        attempt("add_hits", [&] { s->add_hits({{pending.id, 1, t0 + 1s, "no_matching_rule", "src", ""}}); });
        attempt("justify", [&] { s->justify(pending.id, "carol", "why", t0); });
        attempt("approve", [&] { s->approve(pending.id, approval("bob"), t0); });
        attempt("approve (vote)", [&] { s->approve(voting.id, approval("bob", 3), t0); });
        attempt("deny", [&] { s->deny(pending.id, "bob", "", t0); });
        attempt("revoke_grant", [&] { s->revoke_grant(g->id, "bob", "", t0); });
        attempt("extend_grant", [&] { s->extend_grant(g->id, "bob", t0 + 2h, "", t0); });
        attempt("expire", [&] { s->expire(t0 + 2h, t0 + 1h); });
        // Reading goes on: the proxy keeps applying the grants it has.
        active_during = s->active_grants().size();
    }
    ASSERT_TRUE(limited) << "setrlimit(RLIMIT_FSIZE) failed";
    EXPECT_TRUE(not_thrown.empty()) << "did not throw: " << not_thrown.front();
    EXPECT_EQ(messages.size(), 9U);
    ASSERT_GE(messages.size(), 4U);
    EXPECT_EQ(messages[3].rfind("cannot record approval of request " + std::to_string(pending.id) + ": ", 0), 0U)
        << messages[3];
    EXPECT_EQ(active_during, 1U);

    const auto unchanged = [&](store& st) {
        EXPECT_EQ(all_history(st).size(), history_before.size());
        EXPECT_EQ(all_history(st).front().id, history_before.front().id);
        auto p = st.request(pending.id);
        ASSERT_TRUE(p);
        EXPECT_EQ(p->state, request_state::pending);
        EXPECT_EQ(p->hits, 1);
        EXPECT_TRUE(p->justifications.empty());
        EXPECT_EQ(st.request(voting.id)->votes.size(), 1U);
        auto grant = st.grant(g->id);
        ASSERT_TRUE(grant);
        EXPECT_EQ(grant->state, grant_state::active);
        EXPECT_EQ(grant->expires, t0 + 1h);
        EXPECT_EQ(st.requests(std::nullopt, 100).size(), 3U);
    };
    unchanged(*s);

    // Once the disk takes writes again, the same store works again.
    EXPECT_TRUE(s->justify(pending.id, "carol", "after", t0 + 5s));
    s.reset();
    auto reopened = open();
    EXPECT_EQ(reopened->request(pending.id)->justifications.size(), 1U);
    raw_db raw(file_);
    EXPECT_EQ(raw.value("PRAGMA integrity_check"), "ok");
}

// File permissions only stop writes for users other than root (the file-size limit test above covers root).
class read_only_store_test : public store_test {
protected:
    void SetUp() override
    {
        if (::geteuid() == 0) {
            GTEST_SKIP() << "root ignores file permissions";
        }
        auto s = open();
        request_id_ = s->create_request(key("a", "api.example.com"), t0, "no_matching_rule", "src", "").id;
        ASSERT_EQ(s->approve(request_id_, approval("alice", 2), t0).result, outcome::vote_recorded);
    }
    void TearDown() override
    {
        std::filesystem::permissions(dir_.path(), std::filesystem::perms::owner_all);
    }

    std::int64_t request_id_ = 0;
};

TEST_F(read_only_store_test, a_read_only_file_opens_for_reading_and_refuses_writes)
{
    std::filesystem::permissions(file_, std::filesystem::perms::owner_read);
    auto s = open();
    EXPECT_EQ(s->pending_requests().size(), 1U);
    try {
        s->approve(request_id_, approval("bob", 2), t0);
        FAIL() << "a read-only store took a vote";
    } catch (const store_error& e) {
        EXPECT_NE(std::string(e.what()).find("cannot record approval of request " + std::to_string(request_id_) +
                                             ": attempt to write a readonly database"),
                  std::string::npos)
            << e.what();
    }
    EXPECT_THROW(s->create_request(key("b", "x.example"), t0, "no_matching_rule", "src", ""), store_error);
    EXPECT_EQ(s->request(request_id_)->votes.size(), 1U);
}

TEST_F(read_only_store_test, a_read_only_directory_is_refused_at_open)
{
    // SQLite cannot make the WAL index next to the file, so it cannot even read: refused, with the reason.
    std::filesystem::permissions(file_, std::filesystem::perms::owner_read);
    std::filesystem::permissions(dir_.path(), std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
    try {
        open();
        FAIL() << "a store in a read-only directory was opened";
    } catch (const store_error& e) {
        EXPECT_NE(std::string(e.what()).find("cannot open approvals store " + file_.string() +
                                             ": attempt to write a readonly database"),
                  std::string::npos)
            << e.what();
    }
}

// What a call acknowledged is on disk: a child process approves in a loop and reports each grant id right
// after the call returns; it is killed with SIGKILL mid-stream, and every reported grant must be there.
TEST_F(store_test, acknowledged_grants_survive_kill_9)
{
    constexpr int attempts = 1000;
    constexpr int kill_after = 50;
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::close(fds[0]);
        try {
            auto s = open();
            for (int i = 0; i < attempts; ++i) {
                auto r = s->create_request(key("c", "host" + std::to_string(i) + ".example"), t0, "no_matching_rule",
                                           "src", "");
                auto res = s->approve(r.id, approval("alice"), t0);
                if (res.result != outcome::granted) {
                    ::_exit(3);
                }
                const std::int64_t id = res.grant->id;
                if (::write(fds[1], &id, sizeof id) != static_cast<ssize_t>(sizeof id)) {
                    ::_exit(4);
                }
            }
        } catch (...) {
            ::_exit(2);
        }
        ::_exit(0);
    }
    ::close(fds[1]);

    std::vector<std::int64_t> acknowledged;
    bool killed = false;
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    for (;;) {
        if (!killed && acknowledged.size() >= static_cast<std::size_t>(kill_after)) {
            ::kill(child, SIGKILL);
            killed = true;
        }
        if (std::chrono::steady_clock::now() > deadline) {
            ::kill(child, SIGKILL);
            ADD_FAILURE() << "the child did not finish in time";
            break;
        }
        pollfd p{fds[0], POLLIN, 0};
        if (::poll(&p, 1, 1000) <= 0) {
            continue;
        }
        std::int64_t id = 0;
        // Eight-byte writes to a pipe are atomic: a read gets a whole id or the end.
        const ssize_t n = ::read(fds[0], &id, sizeof id);
        if (n <= 0) {
            break;
        }
        ASSERT_EQ(n, static_cast<ssize_t>(sizeof id));
        acknowledged.push_back(id);
    }
    ::close(fds[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the child finished all " << attempts << " approvals (exit status "
                                     << WEXITSTATUS(status) << ") before it could be killed";
    EXPECT_EQ(WTERMSIG(status), SIGKILL);
    ASSERT_GE(acknowledged.size(), static_cast<std::size_t>(kill_after));

    {
        raw_db raw(file_);
        EXPECT_EQ(raw.value("PRAGMA integrity_check"), "ok");
    }
    auto s = open();
    for (auto id : acknowledged) {
        auto g = s->grant(id);
        ASSERT_TRUE(g) << "acknowledged grant " << id << " is lost";
        EXPECT_EQ(g->state, grant_state::active);
    }
    // Every grant on disk came with its decided request and its history row: no half-written approvals.
    auto grants = s->active_grants();
    EXPECT_GE(grants.size(), acknowledged.size());
    for (const auto& g : grants) {
        auto r = s->request(g.request_id);
        ASSERT_TRUE(r);
        EXPECT_EQ(r->state, request_state::approved);
        EXPECT_EQ(r->grant_id, g.id);
        history_filter f;
        f.grant_id = g.id;
        EXPECT_EQ(s->history(f).size(), 1U) << "grant " << g.id;
    }
    // The store goes on after the crash.
    auto r = s->create_request(key("c", "after.example"), t0, "no_matching_rule", "src", "");
    EXPECT_EQ(s->approve(r.id, approval("alice"), t0).result, outcome::granted);
}

}  // namespace
}  // namespace egressd::proxy::approvals
