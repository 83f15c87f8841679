#pragma once

#include "policy/domain.hpp"

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace egressd::policy {

// Where a domain pattern stands in a policy: which group and rule, and how it matches.
struct domain_entry {
    std::uint32_t group;
    std::uint32_t rule;
    pattern_kind kind;
};

// Domain patterns keyed by their base name. A lookup of a host costs one hash probe per label
// (the host itself, then each parent), never a scan of the rules. Entries under one key are sorted
// by group, so a client's groups are found by binary search. Immutable after build().
class domain_index {
public:
    void add(std::string name, domain_entry entry);
    void build();

    // Entries under the exact key, sorted by (group, rule).
    std::span<const domain_entry> at(std::string_view key) const;

    // Calls visit(entries, own_key) for the host's own key, then for each parent key, most specific first,
    // until visit returns false. At the own key, exact and domain patterns match; at a parent, subdomains and domain.
    template <typename Visit>
    void for_each_key(std::string_view host, Visit&& visit) const
    {
        bool own_key = true;
        for (std::string_view key = host;;) {
            if (auto entries = at(key); !entries.empty() && !visit(entries, own_key)) {
                return;
            }
            std::size_t dot = key.find('.');
            if (dot == std::string_view::npos) {
                return;
            }
            key.remove_prefix(dot + 1);
            own_key = false;
        }
    }

    static bool matches_at(pattern_kind kind, bool own_key)
    {
        return own_key ? kind != pattern_kind::subdomains : kind != pattern_kind::exact;
    }

    // Calls visit(key, entries) for every key, in no particular order.
    template <typename Visit>
    void for_each_entry_list(Visit&& visit) const
    {
        for (const auto& [key, id] : keys_) {
            visit(std::string_view(key), std::span<const domain_entry>(entries_).subspan(offsets_[id], offsets_[id + 1] - offsets_[id]));
        }
    }

    std::size_t key_count() const { return keys_.size(); }
    std::size_t entry_count() const { return entries_.size(); }

private:
    struct string_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };

    std::unordered_map<std::string, std::uint32_t, string_hash, std::equal_to<>> keys_;
    std::vector<std::pair<std::uint32_t, domain_entry>> pending_;
    std::vector<domain_entry> entries_;
    std::vector<std::uint32_t> offsets_;  // key id -> first entry; offsets_[id + 1] ends it
};

}  // namespace egressd::policy
