#pragma once

// What the SQLite and PostgreSQL stores decide and read alike: the checks an approval passes, the rows' columns
// and their mapping to structs, the history texts. Internal to the stores (store.cpp and the two backends); each
// backend keeps its own SQL and transactions.

#include "proxy/approvals/store.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace egressd::proxy::approvals {

// A database call failed, or a row holds what egressd never writes. The one place that knows what was being done
// turns it into store_error.
class backend_failure : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

inline constexpr std::string_view system_actor = "egressd";

std::int64_t seconds_of(time_point t);
time_point time_of(std::int64_t seconds);
std::int64_t sql_limit(std::size_t limit);
std::uint16_t port_of(std::int64_t stored);  // throws backend_failure when out of range

std::string_view scope_name_of(policy::grant_scope s);
policy::grant_scope parse_scope(const std::string& text);  // throws backend_failure
request_state stored_request_state(const std::string& text);  // throws backend_failure
grant_state stored_grant_state(const std::string& text);  // throws backend_failure

std::string describe(const request_key& key);

// The typed reads a backend's result row offers on top of its own int64(column) and null(column).
template <typename Row>
class typed_columns {
public:
    time_point time(int column) const { return time_of(self().int64(column)); }
    std::optional<std::int64_t> optional_int64(int column) const
    {
        if (self().null(column)) {
            return std::nullopt;
        }
        return self().int64(column);
    }
    std::optional<time_point> optional_time(int column) const
    {
        if (auto v = optional_int64(column)) {
            return time_of(*v);
        }
        return std::nullopt;
    }
    std::uint16_t port(int column) const { return port_of(self().int64(column)); }

private:
    const Row& self() const { return static_cast<const Row&>(*this); }
};

// Each list's order is the one its *_from_row reads.
inline constexpr std::string_view request_columns = "id, client, host, port, state, hits, first_seen, last_seen, "
                                                    "reason, last_source, last_identity, grant_id, decided_by, "
                                                    "decision_note, decided_at";
inline constexpr std::string_view grant_columns = "id, request_id, scope, scope_name, destination, port, created, "
                                                  "expires, state, approved_by, note, ended_at, ended_by";
inline constexpr std::string_view history_columns = "id, at, event, actor, request_id, grant_id, client, host, port, "
                                                    "detail";
inline constexpr std::string_view justification_columns = "user_name, body, at";
inline constexpr std::string_view vote_columns = "approver, note, at, scope, scope_name, destination, duration";

// Row: a typed_columns with text(column) too. The request comes without its justifications and votes.
template <typename Row>
access_request request_from_row(const Row& row)
{
    access_request r;
    r.id = row.int64(0);
    r.key.client = row.text(1);
    r.key.host = row.text(2);
    r.key.port = row.port(3);
    r.state = stored_request_state(row.text(4));
    r.hits = row.int64(5);
    r.first_seen = row.time(6);
    r.last_seen = row.time(7);
    r.reason = row.text(8);
    r.last_source = row.text(9);
    r.last_identity = row.text(10);
    r.grant_id = row.optional_int64(11);
    r.decided_by = row.text(12);
    r.decision_note = row.text(13);
    r.decided_at = row.optional_time(14);
    return r;
}

template <typename Row>
grant_record grant_from_row(const Row& row)
{
    grant_record g;
    g.id = row.int64(0);
    g.request_id = row.int64(1);
    g.scope = parse_scope(row.text(2));
    g.scope_name = row.text(3);
    g.destination = row.text(4);
    g.port = row.port(5);
    g.created = row.time(6);
    g.expires = row.time(7);
    g.state = stored_grant_state(row.text(8));
    g.approved_by = row.text(9);
    g.note = row.text(10);
    g.ended_at = row.optional_time(11);
    g.ended_by = row.text(12);
    return g;
}

template <typename Row>
history_entry history_from_row(const Row& row)
{
    history_entry h;
    h.id = row.int64(0);
    h.at = row.time(1);
    h.event = row.text(2);
    h.actor = row.text(3);
    h.request_id = row.optional_int64(4);
    h.grant_id = row.optional_int64(5);
    h.client = row.text(6);
    h.host = row.text(7);
    h.port = row.port(8);
    h.detail = row.text(9);
    return h;
}

// first: the column justification_columns (or vote_columns) start at.
template <typename Row>
justification justification_from_row(const Row& row, int first)
{
    return {row.text(first), row.text(first + 1), row.time(first + 2)};
}

template <typename Row>
vote vote_from_row(const Row& row, int first)
{
    return {row.text(first),
            row.text(first + 1),
            row.time(first + 2),
            parse_scope(row.text(first + 3)),
            row.text(first + 4),
            row.text(first + 5),
            std::chrono::seconds{row.int64(first + 6)}};
}

// What approve() does with the request it has read (and locked): write nothing and report why, record the
// approver's vote, or make the grant.
struct approval_decision {
    enum class step : std::uint8_t { report, record_vote, make_grant };
    step next = step::report;
    approval_result unchanged;         // report: the outcome, with the request as read
    std::chrono::seconds duration{0};  // record_vote: what the approver agrees to (stored with the vote)
    std::string approved_by;           // make_grant: every approver, comma-separated
};
approval_decision decide_approval(const std::optional<access_request>& request, const approval_input& input,
                                  time_point at);
// What approve() reports after writing: the vote, or the grant, and the request as it is now.
approval_result result_of_vote(access_request request);
approval_result result_of_grant(grant_record grant, access_request request);

// One condition of a history query: column, comparison and value, or (contains) a literal substring of the
// column, which each SQL dialect tests its own way. In the order the statement lists them.
struct history_condition {
    std::string_view column;
    std::string_view comparison;  // "=", ">=", "<=", "<"; empty with contains
    std::variant<std::int64_t, std::string_view> value;
    bool contains = false;
};
std::vector<history_condition> history_conditions(const history_filter& filter);

// History details.
std::string extension_detail(time_point old_expires, time_point new_expires, const std::string& note);
std::string grant_expiry_detail(const grant_record& g);
std::string request_expiry_detail(const access_request& r);

}  // namespace egressd::proxy::approvals
