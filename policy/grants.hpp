#pragma once

// Grants: temporary allow rules an approver decided, consulted after the deny list and the base rules.
// A grant set is immutable and swapped in whole, like a policy snapshot, so the base policy (which may hold a
// million rules) is never recompiled when an approver clicks.

#include "policy/decision.hpp"
#include "policy/domain.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace egressd::policy {

class policy;

// Who a grant is for: one client, or every client in one of the policy's groups (by name, so a grant outlives
// reloads that renumber clients and groups).
enum class grant_scope : std::uint8_t { client, group };

struct grant {
    std::uint64_t id = 0;
    grant_scope scope = grant_scope::client;
    std::string scope_name;  // the client's or the group's name
    // What it opens: a domain pattern (exact, "*.parent" or ".apex"), or, for a request to an IP literal,
    // exactly that address (kind exact, name the address's canonical text).
    domain_pattern destination;
    std::uint16_t port = 0;
    time_point expires;  // the grant allows nothing from this second on
};

// Thread contract: immutable after make(); const members are safe from any number of threads.
class grant_set {
public:
    // Grants with the same id: the last one given wins.
    static std::shared_ptr<const grant_set> make(std::vector<grant> grants);
    static const std::shared_ptr<const grant_set>& empty();

    // The grant that lets this client reach target:port at now, if any: one scoped to the client's name or to
    // one of its groups in p, whose destination matches, for this port, not expired. Among several, the one
    // expiring last (then the lowest id). Names only match name patterns; an IP literal only an exact address.
    // Never a scan of the grants: each suffix of the host is first checked against a small filter of every
    // granted name (most misses stop there), and only suffixes that pass are looked up in the client's scope
    // and in each of its groups' scopes.
    const grant* match(const policy& p, client_id client, const host& target, std::uint16_t port,
                       time_point now) const;
    // The same for a destination that is an address (an IP-literal request, or the address it was resolved to).
    const grant* match(const policy& p, client_id client, const address& target, std::uint16_t port,
                       time_point now) const;
    const grant* find(std::uint64_t id) const;

    std::size_t size() const { return grants_.size(); }
    bool is_empty() const { return grants_.empty(); }
    const std::vector<grant>& all() const { return grants_; }

private:
    // Lookups by string_view, without building a key string per decision.
    struct text_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };
    template <typename Value>
    using text_map = std::unordered_map<std::string, Value, text_hash, std::equal_to<>>;
    using index_list = std::vector<std::uint32_t>;  // into grants_

    // The grants of one client or one group: name patterns by their base name, addresses by value.
    struct scope_index {
        text_map<index_list> names;
        std::unordered_map<address, index_list> addresses;
    };

    // Two bits per granted name in a bit array; false positives only cost the exact lookups that follow.
    bool may_hold(std::uint64_t name_hash) const
    {
        std::uint64_t mask = name_filter_.size() * 64 - 1;
        std::uint64_t a = name_hash & mask;
        std::uint64_t b = (name_hash >> 32) & mask;
        return ((name_filter_[a / 64] >> (a % 64)) & (name_filter_[b / 64] >> (b % 64)) & 1u) != 0;
    }

    template <typename Lookup>
    const grant* best_of(const policy& p, client_id client, std::uint16_t port, time_point now,
                         Lookup&& lookup) const;

    std::vector<grant> grants_;
    text_map<scope_index> clients_;
    text_map<scope_index> groups_;
    std::unordered_map<std::uint64_t, std::uint32_t> by_id_;
    std::vector<std::uint64_t> name_filter_ = std::vector<std::uint64_t>(1, 0);  // a power of two of 64-bit words
};

}  // namespace egressd::policy
