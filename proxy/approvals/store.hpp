#pragma once

// Where access requests, grants and their history live. An interface, so that a fleet can share one database
// (PostgreSQL) where a single proxy keeps a local SQLite file.
//
// Every change is one transaction together with its history row: after a call returns, the change and its
// audit entry are durable (they survive kill -9 and a power cut: SQLite with synchronous=FULL, PostgreSQL with
// synchronous_commit on), or neither happened and the call threw store_error. Nothing is ever deleted: requests
// and grants change state, history only grows. Several store objects (replicas) may share one database: every
// check that a change depends on is made inside the transaction that writes it.

#include "policy/grants.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::config {
struct approvals_config;
}

namespace egressd::proxy::approvals {

using time_point = std::chrono::sys_seconds;

// The store cannot be read or written (disk full, read-only file system, a corrupt file, a lost database).
class store_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

enum class request_state : std::uint8_t { pending, approved, denied, expired };
std::string_view to_string(request_state s);
std::optional<request_state> parse_request_state(std::string_view text);

enum class grant_state : std::uint8_t { active, revoked, expired };
std::string_view to_string(grant_state s);
std::optional<grant_state> parse_grant_state(std::string_view text);

// What a request is for: one client, one host (a name, or an IP literal's canonical text), one port.
struct request_key {
    std::string client;
    std::string host;
    std::uint16_t port = 0;
    friend bool operator==(const request_key&, const request_key&) = default;
};

struct justification {
    std::string user;
    std::string text;
    time_point at;
};

// An approver's "yes" on a request that needs two: recorded, but no grant until a second approver agrees.
struct vote {
    std::string approver;
    std::string note;
    time_point at;
    // The grant this approver agreed to: a second approver must agree to exactly the same.
    policy::grant_scope scope = policy::grant_scope::client;
    std::string scope_name;
    std::string destination;
    std::chrono::seconds duration{0};
};

struct access_request {
    std::int64_t id = 0;
    request_key key;
    request_state state = request_state::pending;
    std::int64_t hits = 0;
    time_point first_seen;
    time_point last_seen;
    std::string reason;  // the last denial's reason: no_matching_rule, port_not_allowed, expired
    std::string last_source;
    std::string last_identity;  // empty: none
    std::vector<justification> justifications;
    std::vector<vote> votes;
    std::optional<std::int64_t> grant_id;  // approved: the grant it led to
    std::string decided_by;                // approved or denied: the approver(s), comma-separated
    std::string decision_note;
    std::optional<time_point> decided_at;
};

struct grant_record {
    std::int64_t id = 0;
    std::int64_t request_id = 0;
    policy::grant_scope scope = policy::grant_scope::client;
    std::string scope_name;
    std::string destination;  // the pattern as written: "api.example.com", "*.example.com", ".example.com"
    std::uint16_t port = 0;
    time_point created;
    time_point expires;
    grant_state state = grant_state::active;
    std::string approved_by;  // comma-separated
    std::string note;
    std::optional<time_point> ended_at;  // revoked or expired
    std::string ended_by;                // revoked: who
};

// One line of the audit trail. event: requested, justified, voted, approved, denied, revoked, extended,
// expired (a grant), request_expired (a pending request nobody decided).
struct history_entry {
    std::int64_t id = 0;
    time_point at;
    std::string event;
    std::string actor;  // a user, or "egressd" for what the proxy did itself
    std::optional<std::int64_t> request_id;
    std::optional<std::int64_t> grant_id;
    std::string client;
    std::string host;
    std::uint16_t port = 0;
    std::string detail;  // a note, a justification, a new expiry
};

struct history_filter {
    std::optional<std::int64_t> request_id;
    std::optional<std::int64_t> grant_id;
    std::string client;  // empty: any
    std::string host;    // substring; empty: any
    std::string actor;   // empty: any
    std::string event;   // empty: any
    std::optional<time_point> since;  // at or after
    std::optional<time_point> until;  // at or before
    std::size_t limit = 200;
    std::optional<std::int64_t> before_id;  // paging: entries with smaller ids
};

// A denial seen again: counted on the pending request without an audit row (hits are not decisions).
struct hit_update {
    std::int64_t request_id = 0;
    std::int64_t hits = 0;  // to add
    time_point last_seen;
    std::string reason;
    std::string last_source;
    std::string last_identity;
};

struct approval_input {
    std::string approver;
    policy::grant_scope scope = policy::grant_scope::client;
    std::string scope_name;
    std::string destination;  // pattern text
    std::uint16_t port = 0;
    time_point expires;
    std::string note;
    unsigned required = 1;  // distinct approvers the client needs
};

struct approval_result {
    enum class outcome : std::uint8_t {
        granted,          // the grant exists now
        vote_recorded,    // one more approver needed
        not_pending,      // already decided or expired
        not_found,
        self_approval,    // the approver justified this request
        already_voted,    // the same approver again on a two-approver request
        differs_from_vote,  // a second approver asked for another scope or duration than the first agreed to
    };
    outcome result = outcome::not_found;
    std::optional<grant_record> grant;
    std::optional<access_request> request;  // the request after the call (when found)
};

// Wakes a replica sooner than its next poll when another replica changed the shared store. Only a hint:
// notifications are lost while disconnected, so replicas still poll change_version().
// Thread contract: one thread at a time, independent of the store it came from (it has its own connection).
class change_listener {
public:
    virtual ~change_listener() = default;
    // Blocks for at most timeout (longer only while a lost database is being reconnected: its connect timeout).
    // True when something may have changed: a notification came, or the listener has just connected again.
    virtual bool wait(std::chrono::milliseconds timeout) = 0;
};

class store {
public:
    virtual ~store() = default;

    // For start-up: what the proxy must know before it is ready.
    virtual std::vector<access_request> pending_requests() = 0;
    virtual std::vector<grant_record> active_grants() = 0;

    // A new pending request (history: requested), with hits 1. When a pending request for the key exists (another
    // replica made it first), the denial counts as one more hit on it and that request is returned (hits > 1, no
    // history row): replicas share one request per key.
    virtual access_request create_request(const request_key& key, time_point seen, const std::string& reason,
                                          const std::string& source, const std::string& identity) = 0;
    virtual void add_hits(const std::vector<hit_update>& updates) = 0;  // one transaction for all
    // history: justified. False when the request is not pending or does not exist.
    virtual bool justify(std::int64_t request_id, const std::string& user, const std::string& text, time_point at) = 0;
    // history: voted or approved. The checks (pending, self-approval, distinct approvers) happen inside the
    // transaction that writes the vote or the grant.
    virtual approval_result approve(std::int64_t request_id, const approval_input& input, time_point at) = 0;
    // history: denied. nullopt when the request is not pending or does not exist; else the request as it is now.
    virtual std::optional<access_request> deny(std::int64_t request_id, const std::string& approver,
                                               const std::string& note, time_point at) = 0;
    // history: revoked / extended. nullopt when the grant is not active or does not exist.
    virtual std::optional<grant_record> revoke_grant(std::int64_t grant_id, const std::string& actor,
                                                     const std::string& note, time_point at) = 0;
    virtual std::optional<grant_record> extend_grant(std::int64_t grant_id, const std::string& actor,
                                                     time_point new_expires, const std::string& note, time_point at) = 0;
    // Marks active grants whose expiry is at or before now as expired (history: expired, actor "egressd"), and
    // pending requests last seen before stale_before as expired (history: request_expired). Returns what changed.
    struct expired_items {
        std::vector<grant_record> grants;
        std::vector<access_request> requests;
    };
    virtual expired_items expire(time_point now, time_point stale_before) = 0;

    // Grows with every change other replicas must apply (requests created and decided, grants made, ended or
    // extended; not hit counts): a replica that sees it move re-reads pending requests and active grants.
    virtual std::int64_t change_version() = 0;
    // nullptr: the store has no notifications (SQLite), and polling alone tells of changes.
    virtual std::unique_ptr<change_listener> listen_for_changes() { return nullptr; }

    // Reads, newest first.
    virtual std::vector<access_request> requests(std::optional<request_state> state, std::size_t limit) = 0;
    virtual std::optional<access_request> request(std::int64_t id) = 0;
    virtual std::vector<grant_record> grants(std::optional<grant_state> state, std::size_t limit) = 0;
    virtual std::optional<grant_record> grant(std::int64_t id) = 0;
    virtual std::vector<history_entry> history(const history_filter& filter) = 0;
};

// SQLite: WAL, synchronous=FULL, a busy timeout, foreign keys on; the schema is created or migrated to the
// newest version (PRAGMA user_version) in one transaction at open. Throws store_error when the file cannot be
// opened, created or migrated, or its schema is newer than this build knows.
// Thread contract: one store object is used from one thread at a time (the caller serializes).
std::unique_ptr<store> open_sqlite_store(const std::filesystem::path& file);

// PostgreSQL, for replicas that share one database. url: a postgresql:// URI without a password (libpq reads
// PGPASSWORD or the passfile). Never throws for an unreachable database: every call connects as needed (after a
// failure, again only after a bounded backoff) and throws store_error while it cannot; the schema is migrated to
// the newest version at the first connection (an advisory lock keeps replicas starting together in turn).
// Thread contract: one store object is used from one thread at a time (the caller serializes).
std::unique_ptr<store> open_postgres_store(const std::string& url);

// The store the settings name: PostgreSQL when store_url is set, else the SQLite file.
std::unique_ptr<store> open_store(const config::approvals_config& settings);

}  // namespace egressd::proxy::approvals
