#pragma once

// Grants: temporary allow rules an approver decided, consulted after the deny list and the base rules.
// A grant set is immutable and swapped in whole, like a policy snapshot, so the base policy (which may hold a
// million rules) is never recompiled when an approver clicks.

#include "policy/decision.hpp"
#include "policy/domain.hpp"

#include <cstdint>
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
    const grant* match(const policy& p, client_id client, const host& target, std::uint16_t port,
                       time_point now) const;
    const grant* find(std::uint64_t id) const;

    std::size_t size() const { return grants_.size(); }
    bool is_empty() const { return grants_.empty(); }
    const std::vector<grant>& all() const { return grants_; }

private:
    std::vector<grant> grants_;
    // scope kind, scope name and destination name, joined with NUL bytes -> indexes into grants_
    std::unordered_map<std::string, std::vector<std::uint32_t>> by_key_;
    std::unordered_map<std::uint64_t, std::uint32_t> by_id_;
};

}  // namespace egressd::policy
