#include "proxy/approvals/store.hpp"

#include "proxy/approvals/store_rules.hpp"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <variant>

namespace egressd::proxy::approvals {

namespace {

// Each entry moves the schema from version i to i + 1, in one transaction. Entries are only ever appended:
// a released migration is never edited, because databases out there already ran it. The tables and their
// meaning are those of the SQLite store; times are seconds since the epoch, as there.
constexpr std::array<std::string_view, 1> migrations{
    R"sql(
CREATE TABLE requests (
    id BIGSERIAL PRIMARY KEY,
    client TEXT NOT NULL,
    host TEXT NOT NULL,
    port INTEGER NOT NULL CHECK (port BETWEEN 0 AND 65535),
    state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'expired')),
    hits BIGINT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    reason TEXT NOT NULL,
    last_source TEXT NOT NULL,
    last_identity TEXT NOT NULL,
    grant_id BIGINT,
    decided_by TEXT NOT NULL DEFAULT '',
    decision_note TEXT NOT NULL DEFAULT '',
    decided_at BIGINT
);
-- At most one pending request per key, across every replica: a second denial counts a hit on it.
CREATE UNIQUE INDEX requests_pending_key ON requests (client, host, port) WHERE state = 'pending';
CREATE INDEX requests_state ON requests (state, id);

CREATE TABLE justifications (
    id BIGSERIAL PRIMARY KEY,
    request_id BIGINT NOT NULL REFERENCES requests (id),
    user_name TEXT NOT NULL,
    body TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX justifications_request ON justifications (request_id, id);

CREATE TABLE votes (
    id BIGSERIAL PRIMARY KEY,
    request_id BIGINT NOT NULL REFERENCES requests (id),
    approver TEXT NOT NULL,
    note TEXT NOT NULL,
    at BIGINT NOT NULL,
    scope TEXT NOT NULL,
    scope_name TEXT NOT NULL,
    destination TEXT NOT NULL,
    duration BIGINT NOT NULL,
    UNIQUE (request_id, approver)
);

CREATE TABLE grants (
    id BIGSERIAL PRIMARY KEY,
    request_id BIGINT NOT NULL REFERENCES requests (id),
    scope TEXT NOT NULL CHECK (scope IN ('client', 'group')),
    scope_name TEXT NOT NULL,
    destination TEXT NOT NULL,
    port INTEGER NOT NULL CHECK (port BETWEEN 0 AND 65535),
    created BIGINT NOT NULL,
    expires BIGINT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('active', 'revoked', 'expired')),
    approved_by TEXT NOT NULL,
    note TEXT NOT NULL,
    ended_at BIGINT,
    ended_by TEXT NOT NULL DEFAULT ''
);
CREATE INDEX grants_state ON grants (state, id);
CREATE INDEX grants_request ON grants (request_id);
ALTER TABLE requests ADD FOREIGN KEY (grant_id) REFERENCES grants (id);

CREATE TABLE history (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    event TEXT NOT NULL,
    actor TEXT NOT NULL,
    request_id BIGINT REFERENCES requests (id),
    grant_id BIGINT REFERENCES grants (id),
    client TEXT NOT NULL,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX history_request ON history (request_id);
CREATE INDEX history_grant ON history (grant_id);
CREATE INDEX history_client ON history (client, id);
CREATE INDEX history_actor ON history (actor, id);
CREATE INDEX history_event ON history (event, id);
CREATE INDEX history_at ON history (at);

-- One row that every change other replicas must see bumps as its last statement. The row lock orders the
-- changes: a replica that reads version n has every change up to n committed (sequence ids do not promise
-- that, since they are taken before commit).
CREATE TABLE changes (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO changes (id, version) VALUES (1, 0);
)sql",
};
constexpr int schema_version = static_cast<int>(migrations.size());

// pg_advisory_xact_lock's key for migrations: replicas starting together migrate one after the other.
constexpr std::int64_t migration_lock_key = 0x6567726573736431;  // "egressd1"
constexpr auto first_backoff = std::chrono::milliseconds(250);
constexpr auto max_backoff = std::chrono::seconds(5);
// NOTIFY'd with every change: a wake-up for the other replicas' listeners.
constexpr const char* change_channel = "egressd_approvals";

// A libpq call failed. Carries the server's (or libpq's) message up to the one place that knows what was being
// done.
class pg_failure : public backend_failure {
public:
    using backend_failure::backend_failure;
};

struct connection_closer {
    void operator()(PGconn* c) const { PQfinish(c); }
};
using connection_handle = std::unique_ptr<PGconn, connection_closer>;

struct result_clearer {
    void operator()(PGresult* r) const { PQclear(r); }
};
using result_handle = std::unique_ptr<PGresult, result_clearer>;

std::string trimmed(const char* message)
{
    std::string out = message != nullptr ? message : "";
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) {
        out.pop_back();
    }
    for (auto& c : out) {
        if (c == '\n') {
            c = ' ';
        }
    }
    return out;
}

// Statement parameters, all sent as text (PostgreSQL casts them to the columns' types).
class params {
public:
    params& add(std::int64_t v)
    {
        values_.push_back(std::to_string(v));
        return *this;
    }
    params& add(time_point t) { return add(seconds_of(t)); }
    params& add(std::string_view v)
    {
        values_.emplace_back(std::string(v));
        return *this;
    }
    params& add(std::optional<std::int64_t> v)
    {
        if (!v) {
            values_.emplace_back(std::nullopt);
            return *this;
        }
        return add(*v);
    }
    std::size_t size() const { return values_.size(); }
    std::vector<const char*> pointers() const
    {
        std::vector<const char*> out;
        for (const auto& v : values_) {
            out.push_back(v ? v->c_str() : nullptr);
        }
        return out;
    }

private:
    std::vector<std::optional<std::string>> values_;
};

// One row of a result, read as text.
class row : public typed_columns<row> {
public:
    row(const PGresult* r, int index) : r_(r), index_(index) {}

    bool null(int column) const { return PQgetisnull(r_, index_, column) != 0; }
    std::string text(int column) const
    {
        return std::string(PQgetvalue(r_, index_, column), static_cast<std::size_t>(PQgetlength(r_, index_, column)));
    }
    std::int64_t int64(int column) const
    {
        const char* v = PQgetvalue(r_, index_, column);
        const char* end = v + PQgetlength(r_, index_, column);
        std::int64_t out = 0;
        auto [ptr, ec] = std::from_chars(v, end, out);
        if (ec != std::errc() || ptr != end) {
            throw pg_failure("not an integer: '" + std::string(v, end) + "'");
        }
        return out;
    }

private:
    const PGresult* r_;
    int index_;
};

// The rows of one result.
class rows {
public:
    explicit rows(result_handle r) : r_(std::move(r)) {}

    int size() const { return PQntuples(r_.get()); }
    row at(int index) const { return row(r_.get(), index); }

private:
    result_handle r_;
};

// As strings, for building statements with +.
const std::string request_fields(request_columns);
const std::string grant_fields(grant_columns);

// Connects with egressd's defaults first: the URL (dbname, expanded) may override any of them. The keepalives and
// the user timeout bound how long a call can hang on a database that vanished from the network.
connection_handle open_connection(const std::string& url)
{
    const std::array<const char*, 9> keywords{"connect_timeout",  "keepalives",       "keepalives_idle",
                                              "keepalives_interval", "keepalives_count", "tcp_user_timeout",
                                              "application_name", "dbname",           nullptr};
    const std::array<const char*, 9> values{"5", "1", "10", "5", "3", "15000", "egressd", url.c_str(), nullptr};
    connection_handle c(PQconnectdbParams(keywords.data(), values.data(), 1));
    if (!c) {
        throw pg_failure("out of memory");
    }
    if (PQstatus(c.get()) != CONNECTION_OK) {
        throw pg_failure(trimmed(PQerrorMessage(c.get())));
    }
    // Notices (such as "relation already exists, skipping") are not for egressd's stderr.
    PQsetNoticeProcessor(c.get(), [](void*, const char*) {}, nullptr);
    return c;
}

// After a failed attempt the next waits: 250 ms, doubling to 5 s.
std::chrono::milliseconds next_backoff(std::chrono::milliseconds last)
{
    return last.count() == 0 ? first_backoff : std::min<std::chrono::milliseconds>(last * 2, max_backoff);
}

// LISTEN on its own connection, so that waiting never holds up the store's calls.
class postgres_listener final : public change_listener {
public:
    explicit postgres_listener(std::string url) : url_(std::move(url)) {}

    bool wait(std::chrono::milliseconds timeout) override
    {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        if (!conn_ || PQstatus(conn_.get()) != CONNECTION_OK) {
            return reconnect(deadline);
        }
        pollfd p{PQsocket(conn_.get()), POLLIN, 0};
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(left.count(), 0))) <= 0) {
            return false;
        }
        if (PQconsumeInput(conn_.get()) == 0) {
            conn_.reset();  // the next wait connects again, and says so
            return false;
        }
        bool notified = false;
        while (PGnotify* n = PQnotifies(conn_.get())) {
            notified = true;
            PQfreemem(n);
        }
        return notified;
    }

private:
    bool reconnect(std::chrono::steady_clock::time_point deadline)
    {
        conn_.reset();
        const auto now = std::chrono::steady_clock::now();
        if (now < retry_at_) {
            std::this_thread::sleep_until(std::min(deadline, retry_at_));
            return false;
        }
        try {
            auto c = open_connection(url_);
            result_handle r(PQexec(c.get(), (std::string("LISTEN ") + change_channel).c_str()));
            if (!r || PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
                throw pg_failure(trimmed(PQerrorMessage(c.get())));
            }
            conn_ = std::move(c);
        } catch (const pg_failure&) {
            backoff_ = next_backoff(backoff_);
            retry_at_ = now + backoff_;
            return false;
        }
        backoff_ = std::chrono::milliseconds(0);
        // What changed while it was not listening was announced to nobody.
        return true;
    }

    std::string url_;
    connection_handle conn_;
    std::chrono::milliseconds backoff_{0};
    std::chrono::steady_clock::time_point retry_at_;
};

// Thread contract: one thread at a time (one connection, used synchronously).
//
// Concurrency with other replicas: writes run in READ COMMITTED transactions that lock the rows they check
// (SELECT ... FOR UPDATE) before deciding, so two replicas deciding one request take turns and the second sees
// the first's outcome; expiry locks with SKIP LOCKED, so each due grant is expired (and written to history) by
// exactly one replica.
class postgres_store final : public store {
public:
    explicit postgres_store(std::string url) : url_(std::move(url)) {}

    std::vector<access_request> pending_requests() override
    {
        return read("read pending requests", [&] {
            return load_requests("SELECT " + request_fields + " FROM requests WHERE state = 'pending' ORDER BY id",
                                 params{});
        });
    }

    std::vector<grant_record> active_grants() override
    {
        return read("read active grants", [&] {
            return load_grants("SELECT " + grant_fields + " FROM grants WHERE state = 'active' ORDER BY id",
                               params{});
        });
    }

    access_request create_request(const request_key& key, time_point seen, const std::string& reason,
                                  const std::string& source, const std::string& identity) override
    {
        return write("create a request for " + describe(key), [&] {
            // One statement decides between a new request and a hit on the pending one another replica made.
            auto made = exec(
                "INSERT INTO requests (client, host, port, state, hits, first_seen, last_seen, reason, last_source, "
                "last_identity) VALUES ($1, $2, $3, 'pending', 1, $4, $4, $5, $6, $7) "
                "ON CONFLICT (client, host, port) WHERE state = 'pending' DO UPDATE SET hits = requests.hits + 1, "
                "last_seen = greatest(requests.last_seen, excluded.last_seen), reason = excluded.reason, "
                "last_source = excluded.last_source, last_identity = excluded.last_identity RETURNING id, hits",
                params{}
                    .add(key.client)
                    .add(key.host)
                    .add(std::int64_t{key.port})
                    .add(seen)
                    .add(reason)
                    .add(source)
                    .add(identity));
            const std::int64_t id = made.at(0).int64(0);
            if (made.at(0).int64(1) == 1) {
                add_history(seen, "requested", system_actor, id, std::nullopt, key, reason);
                bump_version();
            }
            return must_load_request(id);
        });
    }

    void add_hits(const std::vector<hit_update>& updates) override
    {
        if (updates.empty()) {
            return;
        }
        write("count hits on " + std::to_string(updates.size()) + " requests", [&] {
            for (const auto& u : updates) {
                exec("UPDATE requests SET hits = hits + $2, last_seen = greatest(last_seen, $3), reason = $4, "
                     "last_source = $5, last_identity = $6 WHERE id = $1 AND state = 'pending'",
                     params{}.add(u.request_id).add(u.hits).add(u.last_seen).add(u.reason).add(u.last_source).add(
                         u.last_identity));
            }
            return true;
        });
    }

    bool justify(std::int64_t request_id, const std::string& user, const std::string& text, time_point at) override
    {
        return write("record a justification of request " + std::to_string(request_id), [&] {
            const auto r = load_request(request_id, lock::for_update);
            if (!r || r->state != request_state::pending) {
                return false;
            }
            exec("INSERT INTO justifications (request_id, user_name, body, at) VALUES ($1, $2, $3, $4)",
                 params{}.add(request_id).add(user).add(text).add(at));
            add_history(at, "justified", user, request_id, std::nullopt, r->key, text);
            bump_version();
            return true;
        });
    }

    approval_result approve(std::int64_t request_id, const approval_input& input, time_point at) override
    {
        return write("record approval of request " + std::to_string(request_id), [&] {
            // Locked: another replica's approver waits here and then sees this one's vote or grant.
            const auto r = load_request(request_id, lock::for_update);
            auto decision = decide_approval(r, input, at);
            if (decision.next == approval_decision::step::report) {
                return std::move(decision.unchanged);
            }
            if (decision.next == approval_decision::step::record_vote) {
                exec("INSERT INTO votes (request_id, approver, note, at, scope, scope_name, destination, duration) "
                     "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                     params{}
                         .add(request_id)
                         .add(input.approver)
                         .add(input.note)
                         .add(at)
                         .add(scope_name_of(input.scope))
                         .add(input.scope_name)
                         .add(input.destination)
                         .add(static_cast<std::int64_t>(decision.duration.count())));
                add_history(at, "voted", input.approver, request_id, std::nullopt, r->key, input.note);
                bump_version();
                return result_of_vote(must_load_request(request_id));
            }
            auto made = exec("INSERT INTO grants (request_id, scope, scope_name, destination, port, created, expires, "
                             "state, approved_by, note) VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8, $9) "
                             "RETURNING id",
                             params{}
                                 .add(request_id)
                                 .add(scope_name_of(input.scope))
                                 .add(input.scope_name)
                                 .add(input.destination)
                                 .add(std::int64_t{input.port})
                                 .add(at)
                                 .add(input.expires)
                                 .add(decision.approved_by)
                                 .add(input.note));
            const std::int64_t grant_id = made.at(0).int64(0);
            exec("UPDATE requests SET state = 'approved', grant_id = $2, decided_by = $3, decision_note = $4, "
                 "decided_at = $5 WHERE id = $1",
                 params{}.add(request_id).add(grant_id).add(decision.approved_by).add(input.note).add(at));
            add_history(at, "approved", input.approver, request_id, grant_id, r->key, input.note);
            bump_version();
            return result_of_grant(must_load_grant(grant_id), must_load_request(request_id));
        });
    }

    std::optional<access_request> deny(std::int64_t request_id, const std::string& approver, const std::string& note,
                                       time_point at) override
    {
        return write("record denial of request " + std::to_string(request_id), [&]() -> std::optional<access_request> {
            const auto r = load_request(request_id, lock::for_update);
            if (!r || r->state != request_state::pending) {
                return std::nullopt;
            }
            exec("UPDATE requests SET state = 'denied', decided_by = $2, decision_note = $3, decided_at = $4 "
                 "WHERE id = $1",
                 params{}.add(request_id).add(approver).add(note).add(at));
            add_history(at, "denied", approver, request_id, std::nullopt, r->key, note);
            bump_version();
            return must_load_request(request_id);
        });
    }

    std::optional<grant_record> revoke_grant(std::int64_t grant_id, const std::string& actor, const std::string& note,
                                             time_point at) override
    {
        return write("revoke grant " + std::to_string(grant_id), [&]() -> std::optional<grant_record> {
            const auto g = load_grant(grant_id, lock::for_update);
            if (!g || g->state != grant_state::active) {
                return std::nullopt;
            }
            exec("UPDATE grants SET state = 'revoked', ended_at = $2, ended_by = $3 WHERE id = $1",
                 params{}.add(grant_id).add(at).add(actor));
            add_history(at, "revoked", actor, g->request_id, grant_id, key_of(g->request_id), note);
            bump_version();
            return must_load_grant(grant_id);
        });
    }

    std::optional<grant_record> extend_grant(std::int64_t grant_id, const std::string& actor, time_point new_expires,
                                             const std::string& note, time_point at) override
    {
        return write("extend grant " + std::to_string(grant_id), [&]() -> std::optional<grant_record> {
            const auto g = load_grant(grant_id, lock::for_update);
            if (!g || g->state != grant_state::active) {
                return std::nullopt;
            }
            exec("UPDATE grants SET expires = $2 WHERE id = $1", params{}.add(grant_id).add(new_expires));
            add_history(at, "extended", actor, g->request_id, grant_id, key_of(g->request_id),
                        extension_detail(g->expires, new_expires, note));
            bump_version();
            return must_load_grant(grant_id);
        });
    }

    expired_items expire(time_point now, time_point stale_before) override
    {
        return write("expire grants and requests", [&] {
            expired_items out;
            // SKIP LOCKED: a row another replica is expiring (or revoking) right now is left to it, so each
            // expiry is written once; a row it has already expired no longer matches when it is re-checked.
            auto grants = exec("UPDATE grants SET state = 'expired', ended_at = $1, ended_by = $2 WHERE id IN "
                               "(SELECT id FROM grants WHERE state = 'active' AND expires <= $1 ORDER BY id "
                               "FOR UPDATE SKIP LOCKED) RETURNING " +
                                   grant_fields,
                               params{}.add(now).add(system_actor));
            for (int i = 0; i < grants.size(); ++i) {
                out.grants.push_back(grant_from_row(grants.at(i)));
            }
            std::sort(out.grants.begin(), out.grants.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
            for (const auto& g : out.grants) {
                // The expiry the grant had: extend cannot have moved it, the row is locked by this transaction.
                add_history(now, "expired", system_actor, g.request_id, g.id, key_of(g.request_id),
                            grant_expiry_detail(g));
            }

            auto stale = exec("UPDATE requests SET state = 'expired', decided_at = $1 WHERE id IN "
                              "(SELECT id FROM requests WHERE state = 'pending' AND last_seen < $2 ORDER BY id "
                              "FOR UPDATE SKIP LOCKED) RETURNING " +
                                  request_fields,
                              params{}.add(now).add(stale_before));
            for (int i = 0; i < stale.size(); ++i) {
                out.requests.push_back(request_from_row(stale.at(i)));
            }
            std::sort(out.requests.begin(), out.requests.end(),
                      [](const auto& a, const auto& b) { return a.id < b.id; });
            fill_details(out.requests);
            for (const auto& r : out.requests) {
                add_history(now, "request_expired", system_actor, r.id, std::nullopt, r.key,
                            request_expiry_detail(r));
            }
            if (!out.grants.empty() || !out.requests.empty()) {
                bump_version();
            }
            return out;
        });
    }

    std::int64_t change_version() override
    {
        return read("read the change version", [&] {
            auto q = exec("SELECT version FROM changes WHERE id = 1", params{});
            if (q.size() != 1) {
                throw pg_failure("the changes table has no row");
            }
            return q.at(0).int64(0);
        });
    }

    std::unique_ptr<change_listener> listen_for_changes() override
    {
        return std::make_unique<postgres_listener>(url_);
    }

    std::vector<access_request> requests(std::optional<request_state> state, std::size_t limit) override
    {
        return read("read requests", [&] {
            if (state) {
                return load_requests(
                    "SELECT " + request_fields + " FROM requests WHERE state = $1 ORDER BY id DESC LIMIT $2",
                    params{}.add(to_string(*state)).add(sql_limit(limit)));
            }
            return load_requests("SELECT " + request_fields + " FROM requests ORDER BY id DESC LIMIT $1",
                                 params{}.add(sql_limit(limit)));
        });
    }

    std::optional<access_request> request(std::int64_t id) override
    {
        return read("read request " + std::to_string(id), [&] { return load_request(id, lock::none); });
    }

    std::vector<grant_record> grants(std::optional<grant_state> state, std::size_t limit) override
    {
        return read("read grants", [&] {
            if (state) {
                return load_grants("SELECT " + grant_fields + " FROM grants WHERE state = $1 ORDER BY id DESC LIMIT $2",
                                   params{}.add(to_string(*state)).add(sql_limit(limit)));
            }
            return load_grants("SELECT " + grant_fields + " FROM grants ORDER BY id DESC LIMIT $1",
                               params{}.add(sql_limit(limit)));
        });
    }

    std::optional<grant_record> grant(std::int64_t id) override
    {
        return read("read grant " + std::to_string(id), [&] { return load_grant(id, lock::none); });
    }

    std::vector<history_entry> history(const history_filter& filter) override
    {
        return read("read history", [&] {
            // The statement's shape depends on which filters are set (so the indexes can serve them); the values
            // are always bound.
            std::string sql = "SELECT " + std::string(history_columns) + " FROM history WHERE true";
            params values;
            for (const auto& c : history_conditions(filter)) {
                std::visit([&](auto v) { values.add(v); }, c.value);
                const std::string placeholder = "$" + std::to_string(values.size());
                // strpos: a literal substring, never a LIKE pattern.
                sql += c.contains ? " AND strpos(" + std::string(c.column) + ", " + placeholder + ") > 0"
                                  : " AND " + std::string(c.column) + " " + std::string(c.comparison) + " " +
                                        placeholder;
            }
            values.add(sql_limit(filter.limit));
            sql += " ORDER BY id DESC LIMIT $" + std::to_string(values.size());

            auto q = exec(sql, values);
            std::vector<history_entry> out;
            for (int i = 0; i < q.size(); ++i) {
                out.push_back(history_from_row(q.at(i)));
            }
            return out;
        });
    }

private:
    enum class lock : std::uint8_t { none, for_update };

    // The open connection, connecting (and migrating) first when there is none. After a failed attempt the next
    // waits out a backoff, so that a replica whose database is down does not hammer it on every call; meanwhile
    // calls fail at once with the last reason.
    PGconn* connection()
    {
        if (conn_ && PQstatus(conn_.get()) == CONNECTION_OK) {
            return conn_.get();
        }
        conn_.reset();
        const auto now = std::chrono::steady_clock::now();
        if (now < retry_at_) {
            throw pg_failure("the database is unreachable (" + last_error_ + "); egressd tries again shortly");
        }
        try {
            conn_ = open_connection(url_);
            // Acknowledged means durable: whatever the database's or the role's default says.
            exec("SET synchronous_commit = on", params{});
            exec("SET statement_timeout = '15s'", params{});
            migrate();
        } catch (const pg_failure& e) {
            conn_.reset();
            last_error_ = e.what();
            backoff_ = next_backoff(backoff_);
            retry_at_ = now + backoff_;
            throw;
        }
        backoff_ = std::chrono::milliseconds(0);
        retry_at_ = {};
        return conn_.get();
    }

    rows exec(const std::string& sql, const params& p)
    {
        PGconn* c = connection();
        const auto values = p.pointers();
        result_handle r(PQexecParams(c, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                                     nullptr, 0));
        return checked(c, std::move(r));
    }

    // For statements without parameters, several at once (migrations).
    void exec_script(std::string_view sql)
    {
        PGconn* c = connection();
        result_handle r(PQexec(c, std::string(sql).c_str()));
        checked(c, std::move(r));
    }

    rows checked(PGconn* c, result_handle r)
    {
        const auto status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
        if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
            return rows(std::move(r));
        }
        std::string message = trimmed(r ? PQresultErrorMessage(r.get()) : PQerrorMessage(c));
        if (message.empty()) {
            message = trimmed(PQerrorMessage(c));
        }
        if (PQstatus(c) != CONNECTION_OK) {
            // The next call connects again (at once: the database may have restarted).
            conn_.reset();
        }
        throw pg_failure(message);
    }

    void migrate()
    {
        exec("BEGIN", params{});
        try {
            exec("SELECT pg_advisory_xact_lock($1)", params{}.add(migration_lock_key));
            exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)", params{});
            auto v = exec("SELECT version FROM schema_version", params{});
            int version = 0;
            if (v.size() == 0) {
                exec("INSERT INTO schema_version (version) VALUES (0)", params{});
            } else {
                version = static_cast<int>(v.at(0).int64(0));
            }
            if (version < 0 || version > schema_version) {
                throw pg_failure("its schema version " + std::to_string(version) +
                                 " is newer than this egressd knows (" + std::to_string(schema_version) +
                                 "); use a newer egressd");
            }
            for (; version < schema_version; ++version) {
                exec_script(migrations.at(static_cast<std::size_t>(version)));
            }
            exec("UPDATE schema_version SET version = $1", params{}.add(std::int64_t{schema_version}));
            exec("COMMIT", params{});
        } catch (const pg_failure&) {
            rollback();
            throw;
        }
    }

    void rollback()
    {
        if (conn_ && PQstatus(conn_.get()) == CONNECTION_OK) {
            result_handle ignored(PQexec(conn_.get(), "ROLLBACK"));
        }
    }

    template <typename Body>
    auto transaction(const std::string& what, const char* begin, Body&& body) -> decltype(body())
    {
        try {
            exec(begin, params{});
            try {
                auto result = body();
                exec("COMMIT", params{});
                return result;
            } catch (...) {
                // Whatever went wrong, the connection must not stay inside this transaction.
                rollback();
                throw;
            }
        } catch (const backend_failure& e) {
            throw store_error("cannot " + what + ": " + e.what());
        }
    }

    template <typename Body>
    auto write(const std::string& what, Body&& body) -> decltype(body())
    {
        return transaction(what, "BEGIN ISOLATION LEVEL READ COMMITTED", std::forward<Body>(body));
    }

    // One snapshot, so that a request and its justifications and votes agree.
    template <typename Body>
    auto read(const std::string& what, Body&& body) -> decltype(body())
    {
        return transaction(what, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", std::forward<Body>(body));
    }

    // The last statements of a change other replicas must apply (see the changes table). The notification goes
    // out when the transaction commits, and never if it does not.
    void bump_version()
    {
        exec("SELECT pg_notify($1, '')", params{}.add(std::string_view(change_channel)));
        exec("UPDATE changes SET version = version + 1 WHERE id = 1", params{});
    }

    void add_history(time_point at, std::string_view event, std::string_view actor,
                     std::optional<std::int64_t> request_id, std::optional<std::int64_t> grant_id,
                     const request_key& key, std::string_view detail)
    {
        exec("INSERT INTO history (at, event, actor, request_id, grant_id, client, host, port, detail) "
             "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
             params{}
                 .add(at)
                 .add(event)
                 .add(actor)
                 .add(request_id)
                 .add(grant_id)
                 .add(key.client)
                 .add(key.host)
                 .add(std::int64_t{key.port})
                 .add(detail));
    }

    std::vector<access_request> load_requests(const std::string& sql, const params& p)
    {
        auto q = exec(sql, p);
        std::vector<access_request> out;
        for (int i = 0; i < q.size(); ++i) {
            out.push_back(request_from_row(q.at(i)));
        }
        fill_details(out);
        return out;
    }

    std::vector<grant_record> load_grants(const std::string& sql, const params& p)
    {
        auto q = exec(sql, p);
        std::vector<grant_record> out;
        for (int i = 0; i < q.size(); ++i) {
            out.push_back(grant_from_row(q.at(i)));
        }
        return out;
    }

    // Justifications and votes of every request in one query each, however many requests (a replica re-reads all
    // pending requests whenever another one changes something).
    void fill_details(std::vector<access_request>& requests)
    {
        if (requests.empty()) {
            return;
        }
        std::unordered_map<std::int64_t, access_request*> by_id;
        std::string ids = "{";
        for (auto& r : requests) {
            by_id[r.id] = &r;
            ids += (ids.size() > 1 ? "," : "") + std::to_string(r.id);
        }
        ids += "}";
        // Column 0 is the request id; the detail's own columns follow.
        auto j = exec("SELECT request_id, " + std::string(justification_columns) +
                          " FROM justifications WHERE request_id = ANY($1::bigint[]) ORDER BY id",
                      params{}.add(std::string_view(ids)));
        for (int i = 0; i < j.size(); ++i) {
            const auto found = j.at(i);
            by_id.at(found.int64(0))->justifications.push_back(justification_from_row(found, 1));
        }
        auto v = exec("SELECT request_id, " + std::string(vote_columns) +
                          " FROM votes WHERE request_id = ANY($1::bigint[]) ORDER BY id",
                      params{}.add(std::string_view(ids)));
        for (int i = 0; i < v.size(); ++i) {
            const auto found = v.at(i);
            by_id.at(found.int64(0))->votes.push_back(vote_from_row(found, 1));
        }
    }

    std::optional<access_request> load_request(std::int64_t id, lock how)
    {
        auto q = exec("SELECT " + request_fields + " FROM requests WHERE id = $1" +
                          (how == lock::for_update ? " FOR UPDATE" : ""),
                      params{}.add(id));
        if (q.size() == 0) {
            return std::nullopt;
        }
        std::vector<access_request> one{request_from_row(q.at(0))};
        fill_details(one);
        return std::move(one.front());
    }

    // Inside a transaction that has just written the row: its absence means the database is inconsistent.
    access_request must_load_request(std::int64_t id)
    {
        auto r = load_request(id, lock::none);
        if (!r) {
            throw pg_failure("request " + std::to_string(id) + " vanished");
        }
        return std::move(*r);
    }

    std::optional<grant_record> load_grant(std::int64_t id, lock how)
    {
        auto q = exec("SELECT " + grant_fields + " FROM grants WHERE id = $1" +
                          (how == lock::for_update ? " FOR UPDATE" : ""),
                      params{}.add(id));
        if (q.size() == 0) {
            return std::nullopt;
        }
        return grant_from_row(q.at(0));
    }

    grant_record must_load_grant(std::int64_t id)
    {
        auto g = load_grant(id, lock::none);
        if (!g) {
            throw pg_failure("grant " + std::to_string(id) + " vanished");
        }
        return std::move(*g);
    }

    request_key key_of(std::int64_t request_id)
    {
        auto q = exec("SELECT client, host, port FROM requests WHERE id = $1", params{}.add(request_id));
        if (q.size() == 0) {
            throw pg_failure("grant's request " + std::to_string(request_id) + " is missing");
        }
        const auto found = q.at(0);
        return {found.text(0), found.text(1), found.port(2)};
    }

    std::string url_;
    connection_handle conn_;
    std::string last_error_;
    std::chrono::milliseconds backoff_{0};
    std::chrono::steady_clock::time_point retry_at_;
};

}  // namespace

std::unique_ptr<store> open_postgres_store(const std::string& url)
{
    return std::make_unique<postgres_store>(url);
}

}  // namespace egressd::proxy::approvals
