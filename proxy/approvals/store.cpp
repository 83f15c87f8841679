#include "proxy/approvals/store.hpp"

#include "config/rfc3339.hpp"
#include "config/server_config.hpp"
#include "proxy/approvals/store_rules.hpp"

#include <algorithm>
#include <array>
#include <limits>

namespace egressd::proxy::approvals {

namespace {

constexpr std::array<std::string_view, 4> request_state_names{"pending", "approved", "denied", "expired"};
static_assert(static_cast<std::size_t>(request_state::expired) + 1 == request_state_names.size());

constexpr std::array<std::string_view, 3> grant_state_names{"active", "revoked", "expired"};
static_assert(static_cast<std::size_t>(grant_state::expired) + 1 == grant_state_names.size());

template <typename Enum, std::size_t N>
std::optional<Enum> parse_name(const std::array<std::string_view, N>& names, std::string_view text)
{
    for (std::size_t i = 0; i < N; ++i) {
        if (names[i] == text) {
            return static_cast<Enum>(i);
        }
    }
    return std::nullopt;
}

std::string join(const std::vector<std::string>& names)
{
    std::string out;
    for (const auto& name : names) {
        if (!out.empty()) {
            out += ',';
        }
        out += name;
    }
    return out;
}

}  // namespace

std::string_view to_string(request_state s)
{
    return request_state_names.at(static_cast<std::size_t>(s));
}

std::optional<request_state> parse_request_state(std::string_view text)
{
    return parse_name<request_state>(request_state_names, text);
}

std::string_view to_string(grant_state s)
{
    return grant_state_names.at(static_cast<std::size_t>(s));
}

std::optional<grant_state> parse_grant_state(std::string_view text)
{
    return parse_name<grant_state>(grant_state_names, text);
}

std::int64_t seconds_of(time_point t)
{
    return static_cast<std::int64_t>(t.time_since_epoch().count());
}

time_point time_of(std::int64_t seconds)
{
    return time_point{std::chrono::seconds{seconds}};
}

std::int64_t sql_limit(std::size_t limit)
{
    return static_cast<std::int64_t>(
        std::min<std::size_t>(limit, static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max())));
}

std::uint16_t port_of(std::int64_t stored)
{
    if (stored < 0 || stored > std::numeric_limits<std::uint16_t>::max()) {
        throw backend_failure("port out of range: " + std::to_string(stored));
    }
    return static_cast<std::uint16_t>(stored);
}

std::string_view scope_name_of(policy::grant_scope s)
{
    return s == policy::grant_scope::group ? "group" : "client";
}

policy::grant_scope parse_scope(const std::string& text)
{
    if (text == "client") {
        return policy::grant_scope::client;
    }
    if (text == "group") {
        return policy::grant_scope::group;
    }
    throw backend_failure("unknown grant scope '" + text + "'");
}

request_state stored_request_state(const std::string& text)
{
    if (const auto s = parse_request_state(text)) {
        return *s;
    }
    throw backend_failure("unknown request state '" + text + "'");
}

grant_state stored_grant_state(const std::string& text)
{
    if (const auto s = parse_grant_state(text)) {
        return *s;
    }
    throw backend_failure("unknown grant state '" + text + "'");
}

std::string describe(const request_key& key)
{
    return key.client + " to " + key.host + ":" + std::to_string(key.port);
}

approval_decision decide_approval(const std::optional<access_request>& request, const approval_input& input,
                                  time_point at)
{
    using outcome = approval_result::outcome;
    approval_decision d;
    d.unchanged.request = request;
    const auto report = [&](outcome o) {
        d.unchanged.result = o;
        return d;
    };
    if (!request) {
        return report(outcome::not_found);
    }
    if (request->state != request_state::pending) {
        return report(outcome::not_pending);
    }
    const bool justified = std::any_of(request->justifications.begin(), request->justifications.end(),
                                       [&](const justification& j) { return j.user == input.approver; });
    if (justified) {
        return report(outcome::self_approval);
    }
    std::vector<std::string> approvers;
    for (const auto& v : request->votes) {
        approvers.push_back(v.approver);
    }
    const bool voted = std::find(approvers.begin(), approvers.end(), input.approver) != approvers.end();
    if (!voted) {
        approvers.push_back(input.approver);
    }
    const std::chrono::seconds duration = input.expires - at;
    if (approvers.size() < std::max(1U, input.required)) {
        if (voted) {
            return report(outcome::already_voted);
        }
        d.next = approval_decision::step::record_vote;
        d.duration = duration;
        return d;
    }
    // Every approver agrees to the same grant: what the first proposed, nothing wider or longer.
    for (const auto& v : request->votes) {
        if (v.scope != input.scope || v.scope_name != input.scope_name || v.destination != input.destination ||
            v.duration != duration) {
            return report(outcome::differs_from_vote);
        }
    }
    d.next = approval_decision::step::make_grant;
    d.approved_by = join(approvers);
    return d;
}

approval_result result_of_vote(access_request request)
{
    approval_result r;
    r.result = approval_result::outcome::vote_recorded;
    r.request = std::move(request);
    return r;
}

approval_result result_of_grant(grant_record grant, access_request request)
{
    approval_result r;
    r.result = approval_result::outcome::granted;
    r.grant = std::move(grant);
    r.request = std::move(request);
    return r;
}

std::vector<history_condition> history_conditions(const history_filter& filter)
{
    std::vector<history_condition> out;
    if (filter.request_id) {
        out.push_back({"request_id", "=", *filter.request_id});
    }
    if (filter.grant_id) {
        out.push_back({"grant_id", "=", *filter.grant_id});
    }
    if (!filter.client.empty()) {
        out.push_back({"client", "=", std::string_view(filter.client)});
    }
    if (!filter.host.empty()) {
        out.push_back({"host", "", std::string_view(filter.host), true});
    }
    if (!filter.actor.empty()) {
        out.push_back({"actor", "=", std::string_view(filter.actor)});
    }
    if (!filter.event.empty()) {
        out.push_back({"event", "=", std::string_view(filter.event)});
    }
    if (filter.since) {
        out.push_back({"at", ">=", seconds_of(*filter.since)});
    }
    if (filter.until) {
        out.push_back({"at", "<=", seconds_of(*filter.until)});
    }
    if (filter.before_id) {
        out.push_back({"id", "<", *filter.before_id});
    }
    return out;
}

std::string extension_detail(time_point old_expires, time_point new_expires, const std::string& note)
{
    std::string detail = "expires " + config::format_rfc3339(old_expires) + " -> " + config::format_rfc3339(new_expires);
    if (!note.empty()) {
        detail += ": " + note;
    }
    return detail;
}

std::string grant_expiry_detail(const grant_record& g)
{
    return "expires " + config::format_rfc3339(g.expires);
}

std::string request_expiry_detail(const access_request& r)
{
    return "last seen " + config::format_rfc3339(r.last_seen);
}

std::unique_ptr<store> open_store(const config::approvals_config& settings)
{
    if (!settings.store_url.empty()) {
        return open_postgres_store(settings.store_url);
    }
    return open_sqlite_store(settings.store);
}

}  // namespace egressd::proxy::approvals
