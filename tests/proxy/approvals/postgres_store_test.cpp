// The PostgreSQL store against a real server that this process starts (tests/support/postgres_server.hpp): the
// shared contract (store_conformance.hpp), replicas (several store objects on one database) racing on the same
// rows, migrations, and the database going away and coming back. One server serves the whole binary; every
// test gets its own database.

#include "proxy/approvals/store.hpp"

#include "tests/proxy/approvals/store_conformance.hpp"
#include "tests/support/postgres_server.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace egressd::proxy::approvals {
namespace {

test_support::postgres_server& shared_server()
{
    static test_support::postgres_server server;
    return server;
}

// A fresh database on the shared server, named after a counter (each test runs once per process).
std::string fresh_database()
{
    static std::atomic<int> counter{0};
    return shared_server().create_database("approvals_" + std::to_string(++counter));
}

struct postgres_backend {
    postgres_backend()
    {
        if (!shared_server().problem().empty()) {
            return;
        }
        url = fresh_database();
    }
    std::unique_ptr<store> open()
    {
        if (url.empty()) {
            throw store_error("no PostgreSQL server: " + shared_server().problem());
        }
        return open_postgres_store(url);
    }
    std::string url;
};
INSTANTIATE_TYPED_TEST_SUITE_P(postgres, store_conformance, postgres_backend);

class replicas_test : public ::testing::Test {
protected:
    void SetUp() override
    {
        ASSERT_EQ(shared_server().problem(), "") << "the test PostgreSQL server did not start";
        url_ = fresh_database();
    }

    std::vector<history_entry> events(store& s, const std::string& event)
    {
        history_filter f;
        f.event = event;
        f.limit = 10'000;
        return s.history(f);
    }

    std::string url_;
};

TEST_F(replicas_test, replicas_racing_on_one_key_share_one_request_and_add_up_their_hits)
{
    constexpr int per_replica = 40;
    auto a = open_postgres_store(url_);
    auto b = open_postgres_store(url_);
    ASSERT_GE(a->change_version(), 0);  // migrated before the race
    std::atomic<int> failures{0};
    const auto deny_often = [&](store& s, const std::string& source) {
        for (int i = 0; i < per_replica; ++i) {
            try {
                s.create_request(key("ci", "api.example.com"), t0 + std::chrono::seconds{i}, "no_matching_rule",
                                 source, "");
            } catch (const store_error&) {
                ++failures;
            }
        }
    };
    std::thread ta([&] { deny_often(*a, "replica-a"); });
    std::thread tb([&] { deny_often(*b, "replica-b"); });
    ta.join();
    tb.join();
    EXPECT_EQ(failures, 0);
    auto pending = a->pending_requests();
    ASSERT_EQ(pending.size(), 1U);
    EXPECT_EQ(pending[0].hits, 2 * per_replica);
    EXPECT_EQ(events(*b, "requested").size(), 1U);
}

TEST_F(replicas_test, replicas_expiring_together_write_one_history_row_per_grant)
{
    constexpr int grants = 30;
    auto a = open_postgres_store(url_);
    auto b = open_postgres_store(url_);
    for (int i = 0; i < grants; ++i) {
        auto r = a->create_request(key("ci", "h" + std::to_string(i) + ".example"), t0, "no_matching_rule", "src", "");
        ASSERT_EQ(a->approve(r.id, approval("alice", 1, t0 + 1h), t0).result, outcome::granted);
    }
    std::atomic<std::size_t> expired_a{0};
    std::atomic<std::size_t> expired_b{0};
    std::atomic<int> failures{0};
    const auto expire_all = [&](store& s, std::atomic<std::size_t>& count) {
        for (int round = 0; round < 5; ++round) {
            try {
                count += s.expire(t0 + 2h, t0 - 24h).grants.size();
            } catch (const store_error&) {
                ++failures;
            }
        }
    };
    std::thread ta([&] { expire_all(*a, expired_a); });
    std::thread tb([&] { expire_all(*b, expired_b); });
    ta.join();
    tb.join();
    EXPECT_EQ(failures, 0);
    EXPECT_EQ(expired_a + expired_b, static_cast<std::size_t>(grants));
    EXPECT_EQ(events(*a, "expired").size(), static_cast<std::size_t>(grants));
    EXPECT_TRUE(b->active_grants().empty());
}

TEST_F(replicas_test, two_approvers_through_two_replicas_make_one_grant)
{
    auto a = open_postgres_store(url_);
    auto b = open_postgres_store(url_);
    auto r = a->create_request(key("payments", "api.bank.example"), t0, "no_matching_rule", "src", "");
    ASSERT_EQ(a->approve(r.id, approval("alice", 2), t0).result, outcome::vote_recorded);
    auto second = b->approve(r.id, approval("bob", 2), t0);
    ASSERT_EQ(second.result, outcome::granted);
    EXPECT_EQ(second.grant->approved_by, "alice,bob");
    EXPECT_EQ(a->approve(r.id, approval("carol", 2), t0).result, outcome::not_pending);

    // Both first votes at the same moment, one through each replica: one grant, never two, never none.
    for (int round = 0; round < 10; ++round) {
        auto req = a->create_request(key("payments", "r" + std::to_string(round) + ".example"), t0, "no_matching_rule",
                                     "src", "");
        approval_result ra;
        approval_result rb;
        std::thread ta([&] { ra = a->approve(req.id, approval("alice", 2), t0); });
        std::thread tb([&] { rb = b->approve(req.id, approval("bob", 2), t0); });
        ta.join();
        tb.join();
        const int granted = (ra.result == outcome::granted ? 1 : 0) + (rb.result == outcome::granted ? 1 : 0);
        const int voted = (ra.result == outcome::vote_recorded ? 1 : 0) + (rb.result == outcome::vote_recorded ? 1 : 0);
        EXPECT_EQ(granted, 1) << "round " << round;
        EXPECT_EQ(voted, 1) << "round " << round;
        history_filter f;
        f.request_id = req.id;
        f.event = "approved";
        EXPECT_EQ(a->history(f).size(), 1U);
    }
    EXPECT_EQ(a->active_grants().size(), 11U);
}

TEST_F(replicas_test, a_change_through_one_replica_moves_the_version_the_other_polls)
{
    auto a = open_postgres_store(url_);
    auto b = open_postgres_store(url_);
    auto r = a->create_request(key("ci", "api.example.com"), t0, "no_matching_rule", "src", "");
    const auto before = b->change_version();
    auto g = a->approve(r.id, approval("alice"), t0).grant;
    ASSERT_TRUE(g);
    EXPECT_GT(b->change_version(), before);
    auto active = b->active_grants();
    ASSERT_EQ(active.size(), 1U);
    EXPECT_EQ(active[0].id, g->id);
    const auto approved = b->change_version();
    ASSERT_TRUE(b->revoke_grant(g->id, "bob", "", t0 + 1s));
    EXPECT_GT(a->change_version(), approved);
    EXPECT_TRUE(a->active_grants().empty());
}

TEST_F(replicas_test, a_listener_wakes_up_when_another_replica_commits_a_change)
{
    auto a = open_postgres_store(url_);
    auto b = open_postgres_store(url_);
    auto listener = b->listen_for_changes();
    ASSERT_TRUE(listener);
    EXPECT_TRUE(listener->wait(5s)) << "connecting is reported: what changed before was announced to nobody";
    EXPECT_FALSE(listener->wait(300ms)) << "woken up with no change";
    auto r = a->create_request(key("ci", "api.example.com"), t0, "no_matching_rule", "src", "");
    EXPECT_TRUE(listener->wait(5s)) << "a new request did not wake the listener";
    a->add_hits({{r.id, 2, t0 + 1s, "no_matching_rule", "src", ""}});
    EXPECT_FALSE(listener->wait(300ms)) << "hit counts woke the listener";
    ASSERT_EQ(a->approve(r.id, approval("alice"), t0).result, outcome::granted);
    EXPECT_TRUE(listener->wait(5s)) << "an approval did not wake the listener";
    // A call that changes nothing announces nothing.
    EXPECT_FALSE(a->deny(r.id, "bob", "", t0));
    EXPECT_FALSE(listener->wait(300ms));
}

TEST_F(replicas_test, replicas_starting_together_migrate_once)
{
    constexpr int replicas = 6;
    std::vector<std::unique_ptr<store>> stores;
    for (int i = 0; i < replicas; ++i) {
        stores.push_back(open_postgres_store(url_));
    }
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (auto& s : stores) {
        threads.emplace_back([&failures, &s] {
            try {
                s->active_grants();
            } catch (const store_error&) {
                ++failures;
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    EXPECT_EQ(failures, 0);
    const auto database = url_.substr(url_.rfind('/') + 1);
    EXPECT_EQ(shared_server().value("SELECT count(*) || ':' || max(version) FROM schema_version", database), "1:1");
}

TEST_F(replicas_test, a_newer_schema_is_refused)
{
    {
        auto s = open_postgres_store(url_);
        s->create_request(key("a", "api.example.com"), t0, "no_matching_rule", "src", "");
    }
    const auto database = url_.substr(url_.rfind('/') + 1);
    ASSERT_EQ(shared_server().exec("UPDATE schema_version SET version = 99", database), "");
    auto s = open_postgres_store(url_);
    try {
        s->pending_requests();
        FAIL() << "a database with schema version 99 was used";
    } catch (const store_error& e) {
        EXPECT_NE(std::string(e.what()).find("schema version 99 is newer"), std::string::npos) << e.what();
    }
    EXPECT_EQ(shared_server().value("SELECT version FROM schema_version", database), "99");
}

TEST(postgres_store, an_unreachable_database_opens_and_every_call_fails_with_the_reason)
{
    test_support::postgres_server probe_port_source;
    ASSERT_EQ(probe_port_source.problem(), "");
    const auto url = probe_port_source.url();
    probe_port_source.stop();
    auto s = open_postgres_store(url);  // never throws: the database may come later
    for (int i = 0; i < 3; ++i) {
        try {
            s->active_grants();
            FAIL() << "a call on a stopped database succeeded";
        } catch (const store_error& e) {
            EXPECT_EQ(std::string(e.what()).rfind("cannot read active grants: ", 0), 0U) << e.what();
        }
    }
    EXPECT_THROW(s->create_request(key("a", "b.example"), t0, "no_matching_rule", "src", ""), store_error);
}

// The database crashes (SIGKILL, fsync on) under a store that acknowledged grants: calls fail with store_error
// while it is down, work again once it is back without reopening the store, and every acknowledged grant is there.
TEST(postgres_store, a_crashed_database_fails_calls_then_recovers_with_everything_acknowledged)
{
    test_support::postgres_server server(true);
    ASSERT_EQ(server.problem(), "");
    const auto url = server.create_database("outage");
    auto s = open_postgres_store(url);
    std::vector<std::int64_t> acknowledged;
    for (int i = 0; i < 20; ++i) {
        auto r = s->create_request(key("ci", "h" + std::to_string(i) + ".example"), t0, "no_matching_rule", "src", "");
        auto res = s->approve(r.id, approval("alice"), t0);
        ASSERT_EQ(res.result, outcome::granted);
        acknowledged.push_back(res.grant->id);
    }
    server.stop(SIGKILL);

    EXPECT_THROW(s->active_grants(), store_error);
    EXPECT_THROW(s->approve(1, approval("bob"), t0), store_error);
    EXPECT_THROW(s->create_request(key("ci", "down.example"), t0, "no_matching_rule", "src", ""), store_error);

    server.start();
    ASSERT_EQ(server.problem(), "");
    // The store waits out its backoff (at most 5 s) before it connects again.
    std::vector<grant_record> active;
    bool back = false;
    for (int i = 0; i < 100 && !back; ++i) {
        try {
            active = s->active_grants();
            back = true;
        } catch (const store_error&) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }
    ASSERT_TRUE(back) << "the store did not reconnect within 10 s";
    std::set<std::int64_t> ids;
    for (const auto& g : active) {
        ids.insert(g.id);
    }
    for (auto id : acknowledged) {
        EXPECT_TRUE(ids.contains(id)) << "acknowledged grant " << id << " is lost";
    }
    auto r = s->create_request(key("ci", "after.example"), t0, "no_matching_rule", "src", "");
    EXPECT_EQ(s->approve(r.id, approval("alice"), t0).result, outcome::granted);
}

}  // namespace
}  // namespace egressd::proxy::approvals
