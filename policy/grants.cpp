#include "policy/grants.hpp"

#include "policy/domain_index.hpp"
#include "policy/policy.hpp"

namespace egressd::policy {

std::shared_ptr<const grant_set> grant_set::make(std::vector<grant> grants)
{
    auto set = std::make_shared<grant_set>();
    set->grants_.reserve(grants.size());
    for (auto& g : grants) {
        auto [it, inserted] = set->by_id_.try_emplace(g.id, static_cast<std::uint32_t>(set->grants_.size()));
        if (inserted) {
            set->grants_.push_back(std::move(g));
        } else {
            set->grants_[it->second] = std::move(g);
        }
    }
    // About 16 bits per name: some 1.5% of the names no grant holds pass the filter.
    std::size_t words = 1;
    while (words * 64 < set->grants_.size() * 16) {
        words *= 2;
    }
    set->name_filter_.assign(words, 0);
    for (std::uint32_t i = 0; i < set->grants_.size(); ++i) {
        const grant& g = set->grants_[i];
        auto& scopes = g.scope == grant_scope::client ? set->clients_ : set->groups_;
        auto& scope = scopes[g.scope_name];
        if (auto literal = address::parse(g.destination.name)) {
            // An address is not a name: only an exact address grant can match it, and nothing else can.
            if (g.destination.kind == pattern_kind::exact) {
                scope.addresses[*literal].push_back(i);
            }
            continue;
        }
        scope.names[g.destination.name].push_back(i);
        std::uint64_t h = text_hash{}(g.destination.name);
        std::uint64_t mask = words * 64 - 1;
        for (std::uint64_t bit : {h & mask, (h >> 32) & mask}) {
            set->name_filter_[bit / 64] |= std::uint64_t{1} << (bit % 64);
        }
    }
    return set;
}

const std::shared_ptr<const grant_set>& grant_set::empty()
{
    static const std::shared_ptr<const grant_set> none = std::make_shared<const grant_set>();
    return none;
}

template <typename Lookup>
const grant* grant_set::best_of(const policy& p, client_id client, std::uint16_t port, time_point now,
                                Lookup&& lookup) const
{
    if (grants_.empty() || client >= p.stats().clients) {
        return nullptr;
    }
    const grant* best = nullptr;
    auto offer = [&](std::uint32_t index) {
        const grant& g = grants_[index];
        if (g.port != port || now >= g.expires) {
            return;
        }
        if (best == nullptr || g.expires > best->expires || (g.expires == best->expires && g.id < best->id)) {
            best = &g;
        }
    };
    auto visit = [&](const text_map<scope_index>& scopes, std::string_view name) {
        if (auto it = scopes.find(name); it != scopes.end()) {
            lookup(it->second, offer);
        }
    };
    if (!clients_.empty()) {
        visit(clients_, p.client_name(client));
    }
    if (!groups_.empty()) {
        p.for_each_group_name(client, [&](std::string_view group) { visit(groups_, group); });
    }
    return best;
}

const grant* grant_set::match(const policy& p, client_id client, const host& target, std::uint16_t port,
                              time_point now) const
{
    if (const auto* literal = target.literal()) {
        return match(p, client, *literal, port, now);
    }
    if (grants_.empty()) {
        return nullptr;
    }
    // The host itself, then each parent ("a.b.example.com", "b.example.com", "example.com", "com"): those some
    // grant may name.
    std::string_view name = *target.name();
    std::string_view candidates[domain_index::max_labels];
    bool own[domain_index::max_labels];
    std::size_t count = 0;
    for (std::size_t start = 0; count < domain_index::max_labels;) {
        std::string_view suffix = name.substr(start);
        if (may_hold(text_hash{}(suffix))) {
            candidates[count] = suffix;
            own[count] = start == 0;
            ++count;
        }
        auto dot = name.find('.', start);
        if (dot == std::string_view::npos) {
            break;
        }
        start = dot + 1;
    }
    if (count == 0) {
        return nullptr;
    }
    return best_of(p, client, port, now, [&](const scope_index& scope, auto& offer) {
        if (scope.names.empty()) {
            return;
        }
        for (std::size_t i = 0; i < count; ++i) {
            if (auto it = scope.names.find(candidates[i]); it != scope.names.end()) {
                for (auto index : it->second) {
                    if (domain_index::matches_at(grants_[index].destination.kind, own[i])) {
                        offer(index);
                    }
                }
            }
        }
    });
}

const grant* grant_set::match(const policy& p, client_id client, const address& target, std::uint16_t port,
                              time_point now) const
{
    return best_of(p, client, port, now, [&](const scope_index& scope, auto& offer) {
        if (auto it = scope.addresses.find(target); it != scope.addresses.end()) {
            for (auto index : it->second) {
                offer(index);
            }
        }
    });
}

const grant* grant_set::find(std::uint64_t id) const
{
    auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : &grants_[it->second];
}

}  // namespace egressd::policy
