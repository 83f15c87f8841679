#pragma once

// The rules that turn phase decisions into connection decisions, in one place: the proxy, the command line's
// explain and the re-decision of established connections all use these.

#include "policy/policy.hpp"

#include <optional>
#include <span>
#include <vector>

namespace egressd::policy {

struct address_vetting {
    std::vector<decision> decisions;           // one per address given, in that order
    std::vector<address> vetted;               // the addresses that passed: the only ones to connect to
    std::optional<std::size_t> first_allowed;  // index into decisions
    std::optional<std::size_t> first_refused;
    bool allowed() const { return first_allowed.has_value(); }
};

// After the name phase allowed a name, each resolved address is decided (address phase); the connection is
// allowed when at least one passes, and the proxy connects only to those.
address_vetting vet_addresses(const policy& p, std::optional<client_id> client, const host& target,
                              std::uint16_t port, std::span<const address> resolved, time_point now,
                              const grant_set* grants = nullptr, const http_request* request = nullptr);

// Through a parent proxy egressd connects to the parent, which resolves the destination: the name phase is the
// whole decision about the destination (as for an IP literal), and each of the parent's addresses must pass the
// address guard (address_guard.except is how a parent on a private network is let through; CIDR rules name
// destinations, not parents). name: the name phase's decision. Returns it, or, when it allowed and the parent's
// address is guarded, address_guard (would_deny in report mode).
decision vet_parent(const policy& p, const decision& name, const address& parent);

// What an established connection was allowed on: who asked, where to, the address it is connected to, and
// (for a CONNECT tunnel whose first bytes were checked) what the tunnel started with.
struct established {
    client_facts who;
    host target;
    std::uint16_t port = 0;
    address connected;  // through a parent: the parent's address
    std::optional<tunnel_start> tunnel;
    bool through_parent = false;
    std::optional<http_request_facts> request = std::nullopt;  // a forwarded plain-HTTP request's; none for a tunnel
};

// Decides an established connection again, under another snapshot or at a later time: the client is matched
// anew, then the address phase (which repeats the name phase) for the connected address (through a parent: the
// name phase, and the parent's address against the guard), then the tunnel phase. The first decision that is
// not `allowed` is returned (deny, or would_deny in report mode); otherwise the allowing decision.
decision decide_established(const policy& p, const established& e, time_point now,
                            const grant_set* grants = nullptr);

// When an established connection that is allowed now stops being allowed by the clock alone: the earliest
// `expires` of the rules its decision rests on (the name phase's rule; the address phase's, which for a
// guarded address is the CIDR rule that opens it; for a checked tunnel to an IP literal, the rule allowing
// its SNI), and of the grants it rests on. nullopt: no such rule or grant expires, or it is not allowed now.
std::optional<time_point> expiry_of(const policy& p, const established& e, time_point now,
                                    const grant_set* grants = nullptr);

}  // namespace egressd::policy
