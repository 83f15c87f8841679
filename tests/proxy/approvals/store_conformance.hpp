#pragma once

// The store's contract, whatever the backend: one typed test suite, instantiated for SQLite (store_test.cpp)
// and PostgreSQL (postgres_store_test.cpp). A backend type makes a fresh, empty store with open(); calling
// open() again opens the same database once more.

#include "proxy/approvals/store.hpp"

#include <gtest/gtest.h>

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

template <typename Backend>
class store_conformance : public ::testing::Test {
protected:
    std::unique_ptr<store> open() { return backend_.open(); }

    std::vector<history_entry> all_history(store& s)
    {
        history_filter f;
        f.limit = 10'000;
        return s.history(f);
    }

    Backend backend_;
};

TYPED_TEST_SUITE_P(store_conformance);

TYPED_TEST_P(store_conformance, create_request_is_pending_and_written_to_history)
{
    auto s = this->open();
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

    auto h = this->all_history(*s);
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

TYPED_TEST_P(store_conformance, one_pending_request_per_key_until_it_is_decided)
{
    auto s = this->open();
    auto first = s->create_request(key("a", "api.example.com"), t0, "no_matching_rule", "src", "");
    // Another replica (or the same one) seeing the key again counts a hit on the pending request.
    auto again = s->create_request(key("a", "api.example.com"), t0 + 1s, "port_not_allowed", "src2", "id2");
    EXPECT_EQ(again.id, first.id);
    EXPECT_EQ(again.hits, 2);
    EXPECT_EQ(again.first_seen, t0);
    EXPECT_EQ(again.last_seen, t0 + 1s);
    EXPECT_EQ(again.reason, "port_not_allowed");
    EXPECT_EQ(again.last_source, "src2");
    EXPECT_EQ(again.last_identity, "id2");
    EXPECT_EQ(this->all_history(*s).size(), 1U) << "a hit on the pending request left a history row";
    EXPECT_EQ(s->pending_requests().size(), 1U);

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
    EXPECT_EQ(s->create_request(key("a", "api.example.com"), t0 + 6s, "expired", "src", "").id, third.id);
}

TYPED_TEST_P(store_conformance, add_hits_counts_on_pending_requests_without_history)
{
    auto s = this->open();
    auto a = s->create_request(key("a", "one.example"), t0, "no_matching_rule", "s1", "");
    auto b = s->create_request(key("b", "two.example"), t0, "no_matching_rule", "s1", "");
    auto decided = s->create_request(key("c", "three.example"), t0, "no_matching_rule", "s1", "");
    ASSERT_TRUE(s->deny(decided.id, "alice", "", t0));
    const auto history_before = this->all_history(*s).size();

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
    EXPECT_EQ(this->all_history(*s).size(), history_before);
    EXPECT_NO_THROW(s->add_hits({}));
}

TYPED_TEST_P(store_conformance, justify_records_the_text_and_history)
{
    auto s = this->open();
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

    auto h = this->all_history(*s);
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

TYPED_TEST_P(store_conformance, one_approver_grants_at_once)
{
    auto s = this->open();
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

    auto h = this->all_history(*s);
    ASSERT_EQ(h.size(), 2U);
    EXPECT_EQ(h[0].event, "approved");
    EXPECT_EQ(h[0].actor, "alice");
    EXPECT_EQ(h[0].request_id, r.id);
    EXPECT_EQ(h[0].grant_id, g.id);
    EXPECT_EQ(h[0].host, "api.example.com");
    EXPECT_EQ(h[0].detail, "for the release");
}

TYPED_TEST_P(store_conformance, two_approvers_vote_then_grant)
{
    auto s = this->open();
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

    auto h = this->all_history(*s);
    std::vector<std::string> events;
    for (const auto& e : h) {
        events.push_back(e.event + ":" + e.actor);
    }
    EXPECT_EQ(events, (std::vector<std::string>{"approved:bob", "voted:alice", "requested:egressd"}));

    EXPECT_EQ(s->approve(r.id, approval("carol", 2), t0 + 4s).result, outcome::not_pending);
}

TYPED_TEST_P(store_conformance, an_approver_who_justified_cannot_approve)
{
    auto s = this->open();
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
    for (const auto& e : this->all_history(*s)) {
        events.insert(e.event);
    }
    EXPECT_EQ(events, (std::set<std::string>{"requested", "justified", "voted"}));
}

TYPED_TEST_P(store_conformance, approve_reports_missing_and_decided_requests)
{
    auto s = this->open();
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

TYPED_TEST_P(store_conformance, deny_decides_a_pending_request_once)
{
    auto s = this->open();
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

    auto h = this->all_history(*s);
    ASSERT_EQ(h.size(), 2U);
    EXPECT_EQ(h[0].event, "denied");
    EXPECT_EQ(h[0].actor, "alice");
    EXPECT_EQ(h[0].detail, "use the mirror");
    EXPECT_EQ(h[0].request_id, r.id);
}

TYPED_TEST_P(store_conformance, revoke_ends_an_active_grant)
{
    auto s = this->open();
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

    auto h = this->all_history(*s);
    ASSERT_EQ(h.size(), 3U);
    EXPECT_EQ(h[0].event, "revoked");
    EXPECT_EQ(h[0].actor, "bob");
    EXPECT_EQ(h[0].grant_id, g->id);
    EXPECT_EQ(h[0].request_id, r.id);
    EXPECT_EQ(h[0].client, "a");
    EXPECT_EQ(h[0].port, 8443);
    EXPECT_EQ(h[0].detail, "leaked token");
}

TYPED_TEST_P(store_conformance, extend_moves_the_expiry_and_records_both)
{
    auto s = this->open();
    auto r = s->create_request(key("a", "api.example.com"), t0, "no_matching_rule", "src", "");
    auto g = s->approve(r.id, approval("alice", 1, t0 + 2h), t0).grant;
    ASSERT_TRUE(g);

    auto extended = s->extend_grant(g->id, "bob", t0 + 10h, "migration runs long", t0 + 1h);
    ASSERT_TRUE(extended);
    EXPECT_EQ(extended->expires, t0 + 10h);
    EXPECT_EQ(extended->state, grant_state::active);
    EXPECT_EQ(s->grant(g->id)->expires, t0 + 10h);
    EXPECT_FALSE(s->extend_grant(999, "bob", t0 + 10h, "", t0));

    auto h = this->all_history(*s);
    ASSERT_EQ(h.size(), 3U);
    EXPECT_EQ(h[0].event, "extended");
    EXPECT_EQ(h[0].actor, "bob");
    EXPECT_EQ(h[0].grant_id, g->id);
    EXPECT_EQ(h[0].at, t0 + 1h);
    // 1'700'000'000 is 2023-11-14T22:13:20Z.
    EXPECT_EQ(h[0].detail, "expires 2023-11-15T00:13:20Z -> 2023-11-15T08:13:20Z: migration runs long");
}

TYPED_TEST_P(store_conformance, expire_ends_due_grants_and_stale_requests)
{
    auto s = this->open();
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

TYPED_TEST_P(store_conformance, reads_are_newest_first_with_details_and_limits)
{
    auto s = this->open();
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

TYPED_TEST_P(store_conformance, history_filters_and_paging)
{
    auto s = this->open();
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

TYPED_TEST_P(store_conformance, change_version_moves_with_every_change_replicas_apply)
{
    auto s = this->open();
    const auto v0 = s->change_version();
    auto r = s->create_request(key("a", "api.example.com"), t0, "no_matching_rule", "src", "");
    const auto v1 = s->change_version();
    EXPECT_GT(v1, v0);
    // Hits are not changes other replicas must apply.
    s->add_hits({{r.id, 3, t0 + 1s, "no_matching_rule", "src", ""}});
    s->create_request(key("a", "api.example.com"), t0 + 2s, "no_matching_rule", "src", "");
    EXPECT_EQ(s->change_version(), v1);
    auto g = s->approve(r.id, approval("alice", 1, t0 + 1h), t0 + 3s).grant;
    ASSERT_TRUE(g);
    const auto v2 = s->change_version();
    EXPECT_GT(v2, v1);
    s->expire(t0 + 4s, t0 - 24h);
    EXPECT_EQ(s->change_version(), v2) << "an expiry that changed nothing moved the version";
    ASSERT_TRUE(s->extend_grant(g->id, "bob", t0 + 2h, "", t0 + 5s));
    const auto v3 = s->change_version();
    EXPECT_GT(v3, v2);
    s->expire(t0 + 3h, t0 - 24h);
    EXPECT_GT(s->change_version(), v3);
}

REGISTER_TYPED_TEST_SUITE_P(store_conformance,
                            create_request_is_pending_and_written_to_history,
                            one_pending_request_per_key_until_it_is_decided,
                            add_hits_counts_on_pending_requests_without_history,
                            justify_records_the_text_and_history,
                            one_approver_grants_at_once,
                            two_approvers_vote_then_grant,
                            an_approver_who_justified_cannot_approve,
                            approve_reports_missing_and_decided_requests,
                            deny_decides_a_pending_request_once,
                            revoke_ends_an_active_grant,
                            extend_moves_the_expiry_and_records_both,
                            expire_ends_due_grants_and_stale_requests,
                            reads_are_newest_first_with_details_and_limits,
                            history_filters_and_paging,
                            change_version_moves_with_every_change_replicas_apply);

}  // namespace
}  // namespace egressd::proxy::approvals
