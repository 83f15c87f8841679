#include "policy/connection.hpp"

namespace egressd::policy {

address_vetting vet_addresses(const policy& p, std::optional<client_id> client, const host& target,
                              std::uint16_t port, std::span<const address> resolved, time_point now,
                              const grant_set* grants, const http_request* request)
{
    address_vetting v;
    v.decisions.reserve(resolved.size());
    for (const auto& addr : resolved) {
        auto d = p.decide_address(client, target, port, addr, now, grants, request);
        if (d.allows_traffic()) {
            if (!v.first_allowed) {
                v.first_allowed = v.decisions.size();
            }
            v.vetted.push_back(addr);
        } else if (!v.first_refused) {
            v.first_refused = v.decisions.size();
        }
        v.decisions.push_back(d);
    }
    return v;
}

decision vet_parent(const policy& p, const decision& name, const address& parent)
{
    auto hit = classify(parent, p.guarded(), p.nat64_prefixes());
    if (!hit || !name.allowed()) {
        return name;  // a report-mode would_deny keeps the reason it already has
    }
    decision d = name;
    d.why = reason::address_guard;
    d.outcome = d.applied_mode == mode::report ? verdict::would_deny : verdict::deny;
    d.guard = hit;
    d.grant.reset();
    return d;
}

decision decide_established(const policy& p, const established& e, time_point now, const grant_set* grants)
{
    auto client = p.match_client(e.who);
    auto request = e.request ? std::optional(e.request->view()) : std::nullopt;
    const http_request* asked = request ? &*request : nullptr;
    auto d = e.through_parent ? p.decide_name(client, e.target, e.port, now, grants, asked)
                              : p.decide_address(client, e.target, e.port, e.connected, now, grants, asked);
    if (e.through_parent && d.allowed()) {
        d = vet_parent(p, d, e.connected);
    }
    if (!d.allowed() || !e.tunnel) {
        return d;
    }
    auto t = p.decide_tls(client, e.target, e.port, *e.tunnel, now, grants);
    return t.allowed() ? d : t;
}

std::optional<time_point> expiry_of(const policy& p, const established& e, time_point now, const grant_set* grants)
{
    // Asked for every connection: most policies have nothing that expires, and then two decisions are wasted.
    if (!p.has_expiring_rules() && (grants == nullptr || grants->is_empty())) {
        return std::nullopt;
    }
    auto client = p.match_client(e.who);
    auto request = e.request ? std::optional(e.request->view()) : std::nullopt;
    const http_request* asked = request ? &*request : nullptr;
    auto name = p.decide_name(client, e.target, e.port, now, grants, asked);
    std::vector<decision> rests_on{name};
    if (!e.through_parent) {
        rests_on.push_back(p.decide_address(client, e.target, e.port, e.connected, now, grants, asked));
    }
    // A tunnel to an IP literal rests on its SNI too: under a tls mode, that name must stay allowed.
    if (e.tunnel && e.tunnel->sni && e.target.is_address() && p.tls_for(name) != tls_mode::off) {
        if (auto sni = host::parse(*e.tunnel->sni); sni.value && !sni.value->is_address()) {
            rests_on.push_back(p.decide_name(client, *sni.value, e.port, now, grants));
        }
    }
    std::optional<time_point> earliest;
    auto consider = [&](std::optional<time_point> expires) {
        if (expires && (!earliest || *expires < *earliest)) {
            earliest = expires;
        }
    };
    for (const auto& d : rests_on) {
        if (!d.allowed()) {
            return std::nullopt;
        }
        if (d.rule) {
            consider(p.describe(*d.rule).expires);
        }
        if (d.grant) {
            consider(d.grant->expires);
        }
    }
    return earliest;
}

}  // namespace egressd::policy
