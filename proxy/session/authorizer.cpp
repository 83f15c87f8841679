#include "proxy/session/authorizer.hpp"

#include "policy/connection.hpp"
#include "proxy/approvals/service.hpp"
#include "proxy/event_log.hpp"
#include "proxy/worker.hpp"

#include <chrono>

namespace egressd::proxy {

namespace {

observe::reason reason_for(dns::dns_status s)
{
    switch (s) {
    case dns::dns_status::nxdomain:
        return observe::reason::dns_nxdomain;
    case dns::dns_status::no_addresses:
        return observe::reason::dns_no_addresses;
    case dns::dns_status::servfail:
        return observe::reason::dns_servfail;
    case dns::dns_status::timeout:
        return observe::reason::dns_timeout;
    case dns::dns_status::resource_exhausted:
        return observe::reason::resource_exhausted;
    case dns::dns_status::ok:
    case dns::dns_status::error:
        break;
    }
    return observe::reason::dns_error;
}

failure_kind kind_for(dns::dns_status s)
{
    switch (s) {
    case dns::dns_status::timeout:
        return failure_kind::dns_timeout;
    case dns::dns_status::resource_exhausted:
        return failure_kind::resource_exhausted;  // egressd's own shortage, not the name's: 503
    default:
        return failure_kind::dns_failed;
    }
}

// The parent proxy a decision's traffic goes through: its group's, none for a group that goes direct, else the
// server's.
std::optional<policy::parent_proxy> parent_for(const policy::upstream_route& route, const config::server_config& cfg)
{
    switch (route.kind) {
    case policy::route_kind::parent:
        return route.parent;
    case policy::route_kind::direct:
        return std::nullopt;
    case policy::route_kind::inherit:
        break;
    }
    if (!cfg.upstream_proxy) {
        return std::nullopt;
    }
    return policy::parent_proxy{cfg.upstream_proxy->host, cfg.upstream_proxy->port};
}

decision_event event_of(connection& c, const policy::policy& snapshot, const policy::decision& d,
                        const decision_details& x)
{
    decision_event e;
    e.event = x.dns_error ? observe::event_kind::error : observe::event_for(d.outcome);
    e.request_id = c.request.id;
    e.client = x.client;
    e.source = c.source_text;
    e.method = c.request.method;
    e.host = c.request.host;
    e.port = c.request.port;
    e.address = x.address;
    e.reason = x.reason ? *x.reason : observe::from_policy(d.why);
    e.mode = policy::to_string(d.applied_mode);
    if (d.rule) {
        auto view = snapshot.describe(*d.rule);
        e.rule_group = view.group;
        e.rule_index = view.index;
        e.rule_description = view.description;
    }
    if (d.guard) {
        e.guard = policy::to_string(d.guard->category);
    }
    if (d.grant) {
        e.grant_id = d.grant->id;
    }
    e.access_request = c.request.access_request;
    e.sni = x.sni;
    e.detail = x.detail;
    if (c.identity) {
        e.identity = *c.identity;
        e.identity_source = c.identity_from;
    }
    e.path = c.request.path;
    e.query = c.request.query;
    e.upstream = x.upstream;
    return e;
}

}  // namespace

void log_decision(connection& c, const policy::policy& snapshot, const policy::decision& d, const decision_details& x)
{
    auto e = event_of(c, snapshot, d, x);
    if (e.path.empty()) {
        c.owner.events().decision(e);
    } else {
        // Forwarded plain HTTP: the event names the response's status, so it waits for it (settle_decision).
        c.settle_decision(0);
        c.decision = c.owner.events().open(e);
    }
    if (x.dns_error) {
        c.owner.metrics().decision_error(snapshot, e.reason, d.client);
    } else {
        c.owner.metrics().decision(snapshot, d.outcome, e.reason, d.client);
    }
}

void log_parent_error(connection& c, const authorization& a, const failure& f, std::string_view detail)
{
    std::string parent = a.parent->to_string();
    std::string literal = a.target.is_address() ? a.target.literal()->to_string() : std::string();
    decision_details x{.client = a.client_name,
                       .address = literal,
                       .detail = detail,
                       .reason = f.why,
                       .dns_error = true,
                       .upstream = parent};
    // Written at once: the decision event already went (with the status of egressd's answer, for plain HTTP).
    c.owner.events().decision(event_of(c, *a.snapshot, a.decision, x));
}

boost::asio::awaitable<void> authorizer::note_request(const authorization& a, const policy::decision& d)
{
    auto* approvals = c_.owner.rt().approvals;
    bool requestable = d.why == policy::reason::no_matching_rule || d.why == policy::reason::port_not_allowed ||
                       d.why == policy::reason::expired;
    // Report mode denies nothing, so there is nothing to ask for.
    if (approvals == nullptr || !requestable || d.outcome != policy::verdict::deny || !a.client ||
        !a.snapshot->requests_enabled(*a.client)) {
        co_return;
    }
    // A guarded address literal is refused as an allow-list miss, yet no grant could ever open it.
    if (const auto* literal = a.target.literal(); literal && policy::classify(*literal, a.snapshot->guarded(), a.snapshot->nat64_prefixes())) {
        co_return;
    }
    approvals::denial asked{{a.client_name, a.target.to_string(), a.port}, d.why, c_.source_text,
                            a.who.identity.value_or("")};
    auto id = co_await approvals->note_denial(asked);
    c_.request.access_request = id.value_or(0);
}

boost::asio::awaitable<std::variant<authorization, refusal>> authorizer::authorize(
    const policy::destination& dest, const policy::http_request_facts* request)
{
    c_.watch.disarm();  // DNS has its own timeout; the head's deadline is spent
    authorization a;
    a.snapshot = c_.owner.policy_snapshot();  // one snapshot for the whole request
    a.policy_version = c_.owner.policy_version();
    a.grants = c_.owner.grants();
    a.who = policy::client_facts{.source = c_.source, .identity = c_.identity};
    a.identity_from = c_.identity_from;
    a.client = a.snapshot->match_client(a.who);
    a.client_name = a.client ? std::string(a.snapshot->client_name(*a.client)) : std::string();
    a.target = dest.target;
    a.port = dest.port;
    if (request != nullptr) {
        a.request = *request;
    }
    std::optional<policy::http_request> request_view;
    if (a.request) {
        request_view = a.request->view();
    }
    const policy::http_request* http = request_view ? &*request_view : nullptr;
    const auto& p = *a.snapshot;
    auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
    auto log = [&](const policy::decision& d, std::string_view address, std::string_view detail = {}) {
        log_decision(c_, p, d, {a.client_name, address, detail});
    };
    auto denied = [&](const policy::decision& d, std::string address) {
        return refusal{{failure_kind::denied, observe::from_policy(d.why)}, a.client_name, std::move(address)};
    };

    const auto* grants = a.grants.get();
    auto name_decision = p.decide_name(a.client, a.target, a.port, now, grants, http);
    a.tls = p.tls_for(name_decision);
    const auto* literal = a.target.literal();
    std::string literal_text = literal != nullptr ? literal->to_string() : std::string();
    if (!name_decision.allows_traffic()) {
        co_await note_request(a, name_decision);
        log(name_decision, literal_text);
        co_return denied(name_decision, std::move(literal_text));
    }
    a.parent = parent_for(p.route_for(name_decision), c_.owner.config());
    if (a.parent) {
        co_return co_await through_parent(a, name_decision);
    }
    if (literal != nullptr) {
        log(name_decision, literal_text);
        a.vetted.push_back(*literal);
        a.decision = name_decision;
        co_return a;
    }
    auto asked = std::chrono::steady_clock::now();
    auto answer = co_await c_.owner.resolver().resolve(*a.target.name());
    c_.owner.metrics().dns_lookup(answer.status, answer.from_cache, std::chrono::steady_clock::now() - asked);
    if (answer.status != dns::dns_status::ok) {
        // Refused for want of an address: an error with a DNS reason (egress.error), neither allowed traffic nor a
        // policy denial.
        failure why{kind_for(answer.status), reason_for(answer.status)};
        policy::decision refused = name_decision;
        refused.outcome = policy::verdict::deny;
        log_decision(c_, p, refused,
                     {.client = a.client_name, .address = {}, .reason = why.why, .dns_error = true});
        co_return refusal{std::move(why), a.client_name, {}};
    }
    auto vetting = policy::vet_addresses(p, a.client, a.target, a.port, answer.addresses, now, grants, http);
    std::string refused_address;
    if (vetting.first_refused) {
        refused_address = answer.addresses[*vetting.first_refused].to_string();
    }
    if (!vetting.allowed()) {
        const auto& d = vetting.decisions[*vetting.first_refused];
        log(d, refused_address);
        co_return denied(d, std::move(refused_address));
    }
    a.vetted = std::move(vetting.vetted);
    a.decision = vetting.decisions[*vetting.first_allowed];
    std::string detail;
    if (vetting.first_refused) {
        detail = "refused " + std::to_string(answer.addresses.size() - a.vetted.size()) + " of " +
                 std::to_string(answer.addresses.size()) + " addresses (" +
                 std::string(policy::to_string(vetting.decisions[*vetting.first_refused].why)) + ", " +
                 refused_address + ")";
    }
    log(a.decision, a.vetted.front().to_string(), detail);
    co_return a;
}

// The destination is the parent's to resolve: what egressd checks is the name phase (already passed) and the
// parent's own addresses against the address guard.
boost::asio::awaitable<std::variant<authorization, refusal>> authorizer::through_parent(
    authorization& a, const policy::decision& name_decision)
{
    const auto& p = *a.snapshot;
    std::string parent = a.parent->to_string();
    std::string destination = a.target.is_address() ? a.target.literal()->to_string() : std::string();
    std::vector<policy::address> candidates;
    if (auto literal = policy::address::parse(a.parent->host)) {
        candidates.push_back(*literal);
    } else {
        auto asked = std::chrono::steady_clock::now();
        auto answer = co_await c_.owner.resolver().resolve(a.parent->host);
        c_.owner.metrics().dns_lookup(answer.status, answer.from_cache, std::chrono::steady_clock::now() - asked);
        if (answer.status != dns::dns_status::ok) {
            failure why{kind_for(answer.status), reason_for(answer.status), "the parent proxy's name did not resolve"};
            std::string detail = "parent proxy " + parent + ": its name did not resolve";
            policy::decision refused = name_decision;
            refused.outcome = policy::verdict::deny;
            log_decision(c_, p, refused,
                         {.client = a.client_name,
                          .address = destination,
                          .detail = detail,
                          .reason = why.why,
                          .dns_error = true,
                          .upstream = parent});
            co_return refusal{why, a.client_name, destination};
        }
        candidates = std::move(answer.addresses);
    }
    std::optional<policy::decision> guarded;
    std::string guarded_address;
    for (const auto& addr : candidates) {
        auto d = policy::vet_parent(p, name_decision, addr);
        if (d.allows_traffic()) {
            a.vetted.push_back(addr);
            if (a.vetted.size() == 1) {
                a.decision = d;
            }
        } else if (!guarded) {
            guarded = d;
            guarded_address = addr.to_string();
        }
    }
    if (a.vetted.empty()) {
        std::string detail = "parent proxy " + parent + " is at " + guarded_address +
                             ", a guarded address (address_guard.except lets it through)";
        log_decision(c_, p, *guarded, {.client = a.client_name, .address = destination, .detail = detail,
                                       .upstream = parent});
        failure why{failure_kind::denied, observe::reason::address_guard, "the parent proxy's address is guarded"};
        co_return refusal{why, a.client_name, destination};
    }
    std::string detail;
    if (guarded) {
        detail = "refused " + std::to_string(candidates.size() - a.vetted.size()) + " of " +
                 std::to_string(candidates.size()) + " parent proxy addresses (address_guard, " + guarded_address + ")";
    }
    log_decision(c_, p, a.decision,
                 {.client = a.client_name, .address = destination, .detail = detail, .upstream = parent});
    co_return std::move(a);
}

}  // namespace egressd::proxy
