#include "proxy/approvals/store.hpp"

#include "proxy/approvals/store_rules.hpp"

#include <sqlite3.h>

#include <array>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>

namespace egressd::proxy::approvals {

namespace {

// Each entry moves the schema from version i to i + 1, in one transaction. Entries are only ever appended:
// a released migration is never edited, because files out there already ran it.
constexpr std::array<std::string_view, 1> migrations{
    R"sql(
CREATE TABLE requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    client TEXT NOT NULL,
    host TEXT NOT NULL,
    port INTEGER NOT NULL CHECK (port BETWEEN 0 AND 65535),
    state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'expired')),
    hits INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    reason TEXT NOT NULL,
    last_source TEXT NOT NULL,
    last_identity TEXT NOT NULL,
    grant_id INTEGER REFERENCES grants (id),
    decided_by TEXT NOT NULL DEFAULT '',
    decision_note TEXT NOT NULL DEFAULT '',
    decided_at INTEGER
) STRICT;
-- At most one pending request per key: the proxy updates it instead of creating another.
CREATE UNIQUE INDEX requests_pending_key ON requests (client, host, port) WHERE state = 'pending';
CREATE INDEX requests_state ON requests (state, id);

CREATE TABLE justifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id INTEGER NOT NULL REFERENCES requests (id),
    user_name TEXT NOT NULL,
    body TEXT NOT NULL,
    at INTEGER NOT NULL
) STRICT;
CREATE INDEX justifications_request ON justifications (request_id, id);

CREATE TABLE votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id INTEGER NOT NULL REFERENCES requests (id),
    approver TEXT NOT NULL,
    note TEXT NOT NULL,
    at INTEGER NOT NULL,
    scope TEXT NOT NULL,
    scope_name TEXT NOT NULL,
    destination TEXT NOT NULL,
    duration INTEGER NOT NULL,
    UNIQUE (request_id, approver)
) STRICT;

CREATE TABLE grants (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id INTEGER NOT NULL REFERENCES requests (id),
    scope TEXT NOT NULL CHECK (scope IN ('client', 'group')),
    scope_name TEXT NOT NULL,
    destination TEXT NOT NULL,
    port INTEGER NOT NULL CHECK (port BETWEEN 0 AND 65535),
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('active', 'revoked', 'expired')),
    approved_by TEXT NOT NULL,
    note TEXT NOT NULL,
    ended_at INTEGER,
    ended_by TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX grants_state ON grants (state, id);
CREATE INDEX grants_request ON grants (request_id);

CREATE TABLE history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    event TEXT NOT NULL,
    actor TEXT NOT NULL,
    request_id INTEGER REFERENCES requests (id),
    grant_id INTEGER REFERENCES grants (id),
    client TEXT NOT NULL,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    detail TEXT NOT NULL
) STRICT;
CREATE INDEX history_request ON history (request_id);
CREATE INDEX history_grant ON history (grant_id);
CREATE INDEX history_client ON history (client, id);
CREATE INDEX history_actor ON history (actor, id);
CREATE INDEX history_event ON history (event, id);
CREATE INDEX history_at ON history (at);
)sql",
};
constexpr int schema_version = static_cast<int>(migrations.size());

constexpr int busy_timeout_ms = 5000;

// An SQLite call failed. Carries SQLite's message (taken at once: a later call, such as the rollback,
// replaces it) up to the one place that knows what was being done.
class sqlite_failure : public backend_failure {
public:
    sqlite_failure(const std::string& message, int code) : backend_failure(message), code_(code) {}
    int code() const { return code_; }

private:
    int code_;
};

[[noreturn]] void fail(sqlite3* db, int rc)
{
    throw sqlite_failure(db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc), rc);
}

void exec(sqlite3* db, const char* sql)
{
    if (int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr); rc != SQLITE_OK) {
        fail(db, rc);
    }
}

struct db_closer {
    void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using db_handle = std::unique_ptr<sqlite3, db_closer>;

struct statement_finalizer {
    void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using statement_handle = std::unique_ptr<sqlite3_stmt, statement_finalizer>;

// One use of a cached prepared statement: bind, step, read columns. Resets the statement when it goes, so an
// unfinished statement never keeps a read snapshot open, and the next use starts with no parameters bound.
// Only one query per statement may be alive at a time.
class query : public typed_columns<query> {
public:
    query(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
    ~query()
    {
        sqlite3_reset(stmt_);
        sqlite3_clear_bindings(stmt_);
    }
    query(const query&) = delete;
    query& operator=(const query&) = delete;

    query& bind(int index, std::int64_t value)
    {
        return check(sqlite3_bind_int64(stmt_, index, static_cast<sqlite3_int64>(value)));
    }
    query& bind(int index, time_point value) { return bind(index, seconds_of(value)); }
    query& bind(int index, std::string_view value)
    {
        return check(sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
    }
    query& bind(int index, std::optional<std::int64_t> value)
    {
        return value ? bind(index, *value) : check(sqlite3_bind_null(stmt_, index));
    }

    // True: a row is ready to read. False: the statement is done.
    bool step()
    {
        const int rc = sqlite3_step(stmt_);
        if (rc == SQLITE_ROW) {
            return true;
        }
        if (rc == SQLITE_DONE) {
            return false;
        }
        fail(db_, rc);
    }
    void run()
    {
        while (step()) {
        }
    }

    std::int64_t int64(int column) const { return static_cast<std::int64_t>(sqlite3_column_int64(stmt_, column)); }
    bool null(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
    std::string text(int column) const
    {
        const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
        const int size = sqlite3_column_bytes(stmt_, column);
        return data != nullptr ? std::string(data, static_cast<std::size_t>(size)) : std::string();
    }

private:
    query& check(int rc)
    {
        if (rc != SQLITE_OK) {
            fail(db_, rc);
        }
        return *this;
    }

    sqlite3* db_;
    sqlite3_stmt* stmt_;
};

// BEGIN ... COMMIT, rolled back when left without commit (an exception). IMMEDIATE for writes: the write lock
// is taken before anything is read, so the checks a call makes still hold when it writes.
class transaction {
public:
    enum class kind : std::uint8_t { read, write };
    transaction(sqlite3* db, kind k) : db_(db) { exec(db_, k == kind::write ? "BEGIN IMMEDIATE" : "BEGIN"); }
    ~transaction()
    {
        // A failed COMMIT may already have rolled back (disk full); then there is nothing left to undo.
        if (sqlite3_get_autocommit(db_) == 0) {
            sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        }
    }
    transaction(const transaction&) = delete;
    transaction& operator=(const transaction&) = delete;

    void commit() { exec(db_, "COMMIT"); }

private:
    sqlite3* db_;
};

const std::string request_select = "SELECT " + std::string(request_columns) + " FROM requests ";
const std::string grant_select = "SELECT " + std::string(grant_columns) + " FROM grants ";

// Thread contract: one thread at a time (the connection is opened without SQLite's own mutex).
class sqlite_store final : public store {
public:
    explicit sqlite_store(const std::filesystem::path& file)
    {
        sqlite3* raw = nullptr;
        const int rc = sqlite3_open_v2(file.c_str(), &raw,
                                       SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                                           SQLITE_OPEN_EXRESCODE,
                                       nullptr);
        db_.reset(raw);
        if (rc != SQLITE_OK) {
            throw store_error("cannot open approvals store " + file.string() + ": " +
                              (raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
        }
        try {
            configure();
            migrate(file);
        } catch (const backend_failure& e) {
            throw store_error("cannot open approvals store " + file.string() + ": " + e.what());
        }
    }

    std::vector<access_request> pending_requests() override
    {
        return read("read pending requests", [&] {
            static const std::string sql = request_select + "WHERE state = 'pending' ORDER BY id";
            auto q = prepare(sql);
            return load_requests(q);
        });
    }

    std::vector<grant_record> active_grants() override
    {
        return read("read active grants", [&] {
            static const std::string sql = grant_select + "WHERE state = 'active' ORDER BY id";
            auto q = prepare(sql);
            return load_grants(q);
        });
    }

    access_request create_request(const request_key& key, time_point seen, const std::string& reason,
                                  const std::string& source, const std::string& identity) override
    {
        return write("create a request for " + describe(key), [&] {
            // The write lock is held: the pending request found here cannot be decided before the hit counts.
            std::optional<std::int64_t> existing;
            {
                auto q = prepare("SELECT id FROM requests WHERE client = ?1 AND host = ?2 AND port = ?3 "
                                 "AND state = 'pending'");
                q.bind(1, key.client).bind(2, key.host).bind(3, std::int64_t{key.port});
                if (q.step()) {
                    existing = q.int64(0);
                }
            }
            if (existing) {
                count_hit({*existing, 1, seen, reason, source, identity});
                return must_load_request(*existing);
            }
            {
                auto q = prepare(
                    "INSERT INTO requests (client, host, port, state, hits, first_seen, last_seen, reason, "
                    "last_source, last_identity) VALUES (?1, ?2, ?3, 'pending', 1, ?4, ?4, ?5, ?6, ?7)");
                q.bind(1, key.client).bind(2, key.host).bind(3, std::int64_t{key.port}).bind(4, seen);
                q.bind(5, reason).bind(6, source).bind(7, identity);
                q.run();
            }
            const std::int64_t id = sqlite3_last_insert_rowid(db_.get());
            add_history(seen, "requested", system_actor, id, std::nullopt, key, reason);
            return must_load_request(id);
        });
    }

    void add_hits(const std::vector<hit_update>& updates) override
    {
        write("count hits on " + std::to_string(updates.size()) + " requests", [&] {
            for (const auto& u : updates) {
                count_hit(u);
            }
            return true;
        });
    }

    bool justify(std::int64_t request_id, const std::string& user, const std::string& text, time_point at) override
    {
        return write("record a justification of request " + std::to_string(request_id), [&] {
            const auto r = load_request(request_id);
            if (!r || r->state != request_state::pending) {
                return false;
            }
            {
                auto q = prepare(
                    "INSERT INTO justifications (request_id, user_name, body, at) VALUES (?1, ?2, ?3, ?4)");
                q.bind(1, request_id).bind(2, user).bind(3, text).bind(4, at);
                q.run();
            }
            add_history(at, "justified", user, request_id, std::nullopt, r->key, text);
            return true;
        });
    }

    approval_result approve(std::int64_t request_id, const approval_input& input, time_point at) override
    {
        return write("record approval of request " + std::to_string(request_id), [&] {
            const auto r = load_request(request_id);
            auto decision = decide_approval(r, input, at);
            if (decision.next == approval_decision::step::report) {
                return std::move(decision.unchanged);
            }
            if (decision.next == approval_decision::step::record_vote) {
                auto q = prepare(
                    "INSERT INTO votes (request_id, approver, note, at, scope, scope_name, destination, duration) "
                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
                q.bind(1, request_id).bind(2, input.approver).bind(3, input.note).bind(4, at);
                q.bind(5, scope_name_of(input.scope)).bind(6, input.scope_name).bind(7, input.destination);
                q.bind(8, static_cast<std::int64_t>(decision.duration.count()));
                q.run();
                add_history(at, "voted", input.approver, request_id, std::nullopt, r->key, input.note);
                return result_of_vote(must_load_request(request_id));
            }
            {
                auto q = prepare(
                    "INSERT INTO grants (request_id, scope, scope_name, destination, port, created, expires, state, "
                    "approved_by, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'active', ?8, ?9)");
                q.bind(1, request_id).bind(2, scope_name_of(input.scope)).bind(3, input.scope_name);
                q.bind(4, input.destination).bind(5, std::int64_t{input.port}).bind(6, at).bind(7, input.expires);
                q.bind(8, decision.approved_by).bind(9, input.note);
                q.run();
            }
            const std::int64_t grant_id = sqlite3_last_insert_rowid(db_.get());
            {
                auto q = prepare(
                    "UPDATE requests SET state = 'approved', grant_id = ?2, decided_by = ?3, decision_note = ?4, "
                    "decided_at = ?5 WHERE id = ?1");
                q.bind(1, request_id).bind(2, grant_id).bind(3, decision.approved_by).bind(4, input.note).bind(5, at);
                q.run();
            }
            add_history(at, "approved", input.approver, request_id, grant_id, r->key, input.note);
            return result_of_grant(must_load_grant(grant_id), must_load_request(request_id));
        });
    }

    std::optional<access_request> deny(std::int64_t request_id, const std::string& approver, const std::string& note,
                                       time_point at) override
    {
        return write("record denial of request " + std::to_string(request_id), [&]() -> std::optional<access_request> {
            const auto r = load_request(request_id);
            if (!r || r->state != request_state::pending) {
                return std::nullopt;
            }
            {
                auto q = prepare(
                    "UPDATE requests SET state = 'denied', decided_by = ?2, decision_note = ?3, decided_at = ?4 "
                    "WHERE id = ?1");
                q.bind(1, request_id).bind(2, approver).bind(3, note).bind(4, at);
                q.run();
            }
            add_history(at, "denied", approver, request_id, std::nullopt, r->key, note);
            return must_load_request(request_id);
        });
    }

    std::optional<grant_record> revoke_grant(std::int64_t grant_id, const std::string& actor, const std::string& note,
                                             time_point at) override
    {
        return write("revoke grant " + std::to_string(grant_id), [&]() -> std::optional<grant_record> {
            const auto g = load_grant(grant_id);
            if (!g || g->state != grant_state::active) {
                return std::nullopt;
            }
            {
                auto q = prepare("UPDATE grants SET state = 'revoked', ended_at = ?2, ended_by = ?3 WHERE id = ?1");
                q.bind(1, grant_id).bind(2, at).bind(3, actor);
                q.run();
            }
            add_history(at, "revoked", actor, g->request_id, grant_id, key_of(g->request_id), note);
            return must_load_grant(grant_id);
        });
    }

    std::optional<grant_record> extend_grant(std::int64_t grant_id, const std::string& actor, time_point new_expires,
                                             const std::string& note, time_point at) override
    {
        return write("extend grant " + std::to_string(grant_id), [&]() -> std::optional<grant_record> {
            const auto g = load_grant(grant_id);
            if (!g || g->state != grant_state::active) {
                return std::nullopt;
            }
            {
                auto q = prepare("UPDATE grants SET expires = ?2 WHERE id = ?1");
                q.bind(1, grant_id).bind(2, new_expires);
                q.run();
            }
            add_history(at, "extended", actor, g->request_id, grant_id, key_of(g->request_id),
                        extension_detail(g->expires, new_expires, note));
            return must_load_grant(grant_id);
        });
    }

    expired_items expire(time_point now, time_point stale_before) override
    {
        return write("expire grants and requests", [&] {
            expired_items out;
            std::vector<grant_record> grants;
            {
                static const std::string sql = grant_select + "WHERE state = 'active' AND expires <= ?1 ORDER BY id";
                auto q = prepare(sql);
                q.bind(1, now);
                while (q.step()) {
                    grants.push_back(grant_from_row(q));
                }
            }
            for (const auto& g : grants) {
                {
                    auto q = prepare(
                        "UPDATE grants SET state = 'expired', ended_at = ?2, ended_by = ?3 WHERE id = ?1");
                    q.bind(1, g.id).bind(2, now).bind(3, system_actor);
                    q.run();
                }
                add_history(now, "expired", system_actor, g.request_id, g.id, key_of(g.request_id),
                            grant_expiry_detail(g));
                out.grants.push_back(must_load_grant(g.id));
            }

            std::vector<access_request> stale;
            {
                static const std::string sql =
                    request_select + "WHERE state = 'pending' AND last_seen < ?1 ORDER BY id";
                auto q = prepare(sql);
                q.bind(1, stale_before);
                while (q.step()) {
                    stale.push_back(request_from_row(q));
                }
            }
            for (const auto& r : stale) {
                {
                    auto q = prepare("UPDATE requests SET state = 'expired', decided_at = ?2 WHERE id = ?1");
                    q.bind(1, r.id).bind(2, now);
                    q.run();
                }
                add_history(now, "request_expired", system_actor, r.id, std::nullopt, r.key,
                            request_expiry_detail(r));
                out.requests.push_back(must_load_request(r.id));
            }
            return out;
        });
    }

    // Writers take SQLite's one write lock, so history ids are committed in order: the newest is a version.
    std::int64_t change_version() override
    {
        return read("read the change version", [&] {
            auto q = prepare("SELECT coalesce(max(id), 0) FROM history");
            return q.step() ? q.int64(0) : std::int64_t{0};
        });
    }

    std::vector<access_request> requests(std::optional<request_state> state, std::size_t limit) override
    {
        return read("read requests", [&] {
            if (state) {
                static const std::string sql = request_select + "WHERE state = ?1 ORDER BY id DESC LIMIT ?2";
                auto q = prepare(sql);
                q.bind(1, to_string(*state)).bind(2, sql_limit(limit));
                return load_requests(q);
            }
            static const std::string sql = request_select + "ORDER BY id DESC LIMIT ?1";
            auto q = prepare(sql);
            q.bind(1, sql_limit(limit));
            return load_requests(q);
        });
    }

    std::optional<access_request> request(std::int64_t id) override
    {
        return read("read request " + std::to_string(id), [&] { return load_request(id); });
    }

    std::vector<grant_record> grants(std::optional<grant_state> state, std::size_t limit) override
    {
        return read("read grants", [&] {
            if (state) {
                static const std::string sql = grant_select + "WHERE state = ?1 ORDER BY id DESC LIMIT ?2";
                auto q = prepare(sql);
                q.bind(1, to_string(*state)).bind(2, sql_limit(limit));
                return load_grants(q);
            }
            static const std::string sql = grant_select + "ORDER BY id DESC LIMIT ?1";
            auto q = prepare(sql);
            q.bind(1, sql_limit(limit));
            return load_grants(q);
        });
    }

    std::optional<grant_record> grant(std::int64_t id) override
    {
        return read("read grant " + std::to_string(id), [&] { return load_grant(id); });
    }

    std::vector<history_entry> history(const history_filter& filter) override
    {
        return read("read history", [&] {
            // The statement's shape depends on which filters are set (so the indexes can serve them); the values
            // are always bound.
            std::string sql = "SELECT " + std::string(history_columns) + " FROM history WHERE 1";
            const auto conditions = history_conditions(filter);
            for (const auto& c : conditions) {
                sql += c.contains ? " AND instr(" + std::string(c.column) + ", ?) > 0"
                                  : " AND " + std::string(c.column) + " " + std::string(c.comparison) + " ?";
            }
            sql += " ORDER BY id DESC LIMIT ?";

            auto q = prepare(sql);
            int index = 0;
            for (const auto& c : conditions) {
                std::visit([&](auto v) { q.bind(++index, v); }, c.value);
            }
            q.bind(++index, sql_limit(filter.limit));
            std::vector<history_entry> out;
            while (q.step()) {
                out.push_back(history_from_row(q));
            }
            return out;
        });
    }

private:
    void configure()
    {
        sqlite3* db = db_.get();
        if (int rc = sqlite3_busy_timeout(db, busy_timeout_ms); rc != SQLITE_OK) {
            fail(db, rc);
        }
        {
            auto q = prepare("PRAGMA journal_mode = WAL");
            const std::string mode = q.step() ? q.text(0) : std::string();
            if (mode != "wal") {
                throw sqlite_failure("cannot use write-ahead logging (journal mode is '" + mode + "')", SQLITE_ERROR);
            }
        }
        // FULL: a commit returns only after the WAL is on disk, which is what "acknowledged" promises.
        exec(db, "PRAGMA synchronous = FULL");
        exec(db, "PRAGMA foreign_keys = ON");
    }

    int user_version()
    {
        auto q = prepare("PRAGMA user_version");
        return q.step() ? static_cast<int>(q.int64(0)) : 0;
    }

    void migrate(const std::filesystem::path& file)
    {
        const auto refuse_unknown = [&](int version) {
            if (version < 0) {
                throw store_error("cannot open approvals store " + file.string() + ": its schema version " +
                                  std::to_string(version) + " is not one egressd writes");
            }
            if (version > schema_version) {
                throw store_error("cannot open approvals store " + file.string() + ": its schema version " +
                                  std::to_string(version) + " is newer than this egressd knows (" +
                                  std::to_string(schema_version) + "); use a newer egressd");
            }
        };
        int version = user_version();
        refuse_unknown(version);
        // Nothing is written when the schema is current: a store that cannot be written still opens for reading.
        while (version < schema_version) {
            transaction tx(db_.get(), transaction::kind::write);
            // Read again under the write lock: another process may have migrated the file meanwhile.
            version = user_version();
            refuse_unknown(version);
            if (version < schema_version) {
                exec(db_.get(), std::string(migrations.at(static_cast<std::size_t>(version))).c_str());
                ++version;
                // PRAGMA takes no parameters; the value is this build's own constant.
                exec(db_.get(), ("PRAGMA user_version = " + std::to_string(version)).c_str());
            }
            tx.commit();
        }
    }

    query prepare(const std::string& sql)
    {
        auto it = statements_.find(sql);
        if (it == statements_.end()) {
            sqlite3_stmt* raw = nullptr;
            const int rc = sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()),
                                              SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
            statement_handle stmt(raw);
            if (rc != SQLITE_OK) {
                fail(db_.get(), rc);
            }
            it = statements_.emplace(sql, std::move(stmt)).first;
        }
        return query(db_.get(), it->second.get());
    }

    template <typename Body>
    auto write(const std::string& what, Body&& body) -> decltype(body())
    {
        try {
            transaction tx(db_.get(), transaction::kind::write);
            auto result = body();
            tx.commit();
            return result;
        } catch (const backend_failure& e) {
            throw store_error("cannot " + what + ": " + e.what());
        }
    }

    // Reads run in one (deferred) transaction too, so a request and its justifications come from one snapshot.
    template <typename Body>
    auto read(const std::string& what, Body&& body) -> decltype(body())
    {
        try {
            transaction tx(db_.get(), transaction::kind::read);
            auto result = body();
            tx.commit();
            return result;
        } catch (const backend_failure& e) {
            throw store_error("cannot " + what + ": " + e.what());
        }
    }

    void count_hit(const hit_update& u)
    {
        auto q = prepare(
            "UPDATE requests SET hits = hits + ?2, last_seen = max(last_seen, ?3), reason = ?4, "
            "last_source = ?5, last_identity = ?6 WHERE id = ?1 AND state = 'pending'");
        q.bind(1, u.request_id).bind(2, u.hits).bind(3, u.last_seen).bind(4, u.reason);
        q.bind(5, u.last_source).bind(6, u.last_identity);
        q.run();
    }

    void add_history(time_point at, std::string_view event, std::string_view actor,
                     std::optional<std::int64_t> request_id, std::optional<std::int64_t> grant_id,
                     const request_key& key, std::string_view detail)
    {
        auto q = prepare(
            "INSERT INTO history (at, event, actor, request_id, grant_id, client, host, port, detail) "
            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
        q.bind(1, at).bind(2, event).bind(3, actor).bind(4, request_id).bind(5, grant_id);
        q.bind(6, key.client).bind(7, key.host).bind(8, std::int64_t{key.port}).bind(9, detail);
        q.run();
    }

    std::vector<access_request> load_requests(query& q)
    {
        std::vector<access_request> out;
        while (q.step()) {
            out.push_back(request_from_row(q));
        }
        for (auto& r : out) {
            fill_details(r);
        }
        return out;
    }

    std::vector<grant_record> load_grants(query& q)
    {
        std::vector<grant_record> out;
        while (q.step()) {
            out.push_back(grant_from_row(q));
        }
        return out;
    }

    void fill_details(access_request& r)
    {
        {
            static const std::string sql = "SELECT " + std::string(justification_columns) +
                                           " FROM justifications WHERE request_id = ?1 ORDER BY id";
            auto q = prepare(sql);
            q.bind(1, r.id);
            while (q.step()) {
                r.justifications.push_back(justification_from_row(q, 0));
            }
        }
        static const std::string sql =
            "SELECT " + std::string(vote_columns) + " FROM votes WHERE request_id = ?1 ORDER BY id";
        auto q = prepare(sql);
        q.bind(1, r.id);
        while (q.step()) {
            r.votes.push_back(vote_from_row(q, 0));
        }
    }

    std::optional<access_request> load_request(std::int64_t id)
    {
        std::optional<access_request> r;
        {
            static const std::string sql = request_select + "WHERE id = ?1";
            auto q = prepare(sql);
            q.bind(1, id);
            if (q.step()) {
                r = request_from_row(q);
            }
        }
        if (r) {
            fill_details(*r);
        }
        return r;
    }

    // Inside a transaction that has just written the row: its absence means the database is inconsistent.
    access_request must_load_request(std::int64_t id)
    {
        auto r = load_request(id);
        if (!r) {
            throw sqlite_failure("request " + std::to_string(id) + " vanished", SQLITE_INTERNAL);
        }
        return std::move(*r);
    }

    std::optional<grant_record> load_grant(std::int64_t id)
    {
        static const std::string sql = grant_select + "WHERE id = ?1";
        auto q = prepare(sql);
        q.bind(1, id);
        if (q.step()) {
            return grant_from_row(q);
        }
        return std::nullopt;
    }

    grant_record must_load_grant(std::int64_t id)
    {
        auto g = load_grant(id);
        if (!g) {
            throw sqlite_failure("grant " + std::to_string(id) + " vanished", SQLITE_INTERNAL);
        }
        return std::move(*g);
    }

    request_key key_of(std::int64_t request_id)
    {
        auto q = prepare("SELECT client, host, port FROM requests WHERE id = ?1");
        q.bind(1, request_id);
        if (!q.step()) {
            throw sqlite_failure("grant's request " + std::to_string(request_id) + " is missing", SQLITE_CORRUPT);
        }
        return {q.text(0), q.text(1), q.port(2)};
    }

    // Declared first so that it is destroyed last: statements are finalized before the connection closes.
    db_handle db_;
    std::unordered_map<std::string, statement_handle> statements_;
};

}  // namespace

std::unique_ptr<store> open_sqlite_store(const std::filesystem::path& file)
{
    return std::make_unique<sqlite_store>(file);
}

}  // namespace egressd::proxy::approvals
