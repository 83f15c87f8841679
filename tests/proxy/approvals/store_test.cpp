// The SQLite store: the shared contract (store_conformance.hpp), and what only a local file has (reopening,
// schema versions, a damaged or read-only file, a full disk, kill -9).

#include "proxy/approvals/store.hpp"

#include "tests/proxy/approvals/store_conformance.hpp"
#include "tests/support/file_size_limit.hpp"
#include "tests/support/temp_dir.hpp"

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

struct sqlite_backend {
    std::unique_ptr<store> open() { return open_sqlite_store(dir.path() / "approvals.db"); }
    test_support::temp_dir dir;
};
INSTANTIATE_TYPED_TEST_SUITE_P(sqlite, store_conformance, sqlite_backend);

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
