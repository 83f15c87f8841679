#include "proxy/tools/decide.hpp"

#include "protocol/http/path.hpp"

namespace egressd::proxy::tools {

connection_verdict decide_connection(const policy::policy& p, std::optional<policy::client_id> client,
                                     const policy::host& target, std::uint16_t port,
                                     std::span<const policy::address> resolved, policy::time_point at,
                                     const std::optional<policy::tunnel_start>& tunnel,
                                     const std::optional<policy::http_request_facts>& request)
{
    connection_verdict v;
    auto view = request ? std::optional(request->view()) : std::nullopt;
    const policy::http_request* asked = view ? &*view : nullptr;
    v.deciding = p.decide_name(client, target, port, at, nullptr, asked);
    if (!v.deciding.allowed()) {
        return v;
    }
    if (!resolved.empty()) {
        auto vetting = policy::vet_addresses(p, client, target, port, resolved, at, nullptr, asked);
        // vet_addresses lets would_deny through (report mode); here only a real allow passes.
        const policy::decision* passing = nullptr;
        for (const auto& d : vetting.decisions) {
            if (d.allowed()) {
                passing = &d;
                break;
            }
        }
        if (passing == nullptr) {
            v.deciding = vetting.decisions.front();
            for (const auto& d : vetting.decisions) {
                if (d.outcome == policy::verdict::deny) {
                    v.deciding = d;
                    break;
                }
            }
            return v;
        }
        v.deciding = *passing;
    }
    if (tunnel) {
        auto t = p.decide_tls(client, target, port, *tunnel, at);
        if (!t.allowed()) {
            v.deciding = t;
            return v;
        }
    }
    v.allowed = true;
    return v;
}

policy::http_request_facts http_request_of(std::string method, std::string_view path)
{
    policy::http_request_facts facts{std::move(method), protocol::http::normalise_path(path), {}};
    facts.loose_path = protocol::http::loose_path(facts.path);
    return facts;
}

std::string rule_label(const policy::policy& p, const policy::decision& d)
{
    if (!d.rule) {
        return {};
    }
    auto r = p.describe(*d.rule);
    std::string text = std::string(r.group) + "#" + std::to_string(r.index);
    if (!r.description.empty()) {
        text += " \"" + std::string(r.description) + "\"";
    }
    return text;
}

std::string verdict_label(const policy::policy& p, const policy::decision& d)
{
    std::string text(policy::to_string(d.outcome));
    if (d.why != policy::reason::allowed) {
        text += " [" + std::string(policy::to_string(d.why)) + "]";
    }
    if (auto rule = rule_label(p, d); !rule.empty()) {
        bool decided_by_rule = d.why == policy::reason::allowed || d.why == policy::reason::explicit_deny;
        text += (decided_by_rule ? " by " : ", nearest rule ") + rule;
    }
    return text;
}

}  // namespace egressd::proxy::tools
