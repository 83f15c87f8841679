#pragma once

#include "policy/decision.hpp"
#include "policy/domain_index.hpp"
#include "policy/grants.hpp"
#include "policy/prefix_trie.hpp"
#include "policy/spec.hpp"

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace egressd::policy {

struct diagnostic {
    source_location where;
    std::string message;
};

// What the proxy knows about who is asking.
struct client_facts {
    std::optional<address> source = std::nullopt;
    std::optional<std::string> identity = std::nullopt;  // proxy-authentication user or mTLS certificate name
};

class policy;

struct compile_result {
    std::shared_ptr<const policy> snapshot;  // null when there are errors: a bad policy is never partly applied
    std::vector<diagnostic> errors;
    std::vector<diagnostic> warnings;
};

// A compiled, immutable policy snapshot. Build it with compile(); share it as shared_ptr<const policy>;
// all const member functions are safe to call from any number of threads at once.
// Decisions never scan the rules: domains go through a hash per label, CIDRs through a prefix trie,
// and a client's groups are found by binary search.
class policy {
public:
    static compile_result compile(policy_spec spec);

    // Client lookup: by identity first (exact, then the longest "prefix*" pattern; a client that also lists
    // sources needs the source to match too, the most specific one winning), then by source address among
    // clients without identities (most specific CIDR wins), then "default". Or by name.
    std::optional<client_id> match_client(const client_facts& facts) const;
    std::optional<client_id> find_client(std::string_view name) const;

    // Name phase, before DNS: may this client go to host:port at time now?
    // For an IP-literal host this is the whole decision (the address is known).
    // grants: consulted when no base rule allows (an allow-list miss: no_matching_rule, port_not_allowed,
    // method_not_allowed, path_not_allowed, expired) and no deny list of the client matches; a matching grant
    // turns the decision into allow with reason granted. Grants never open what the address guard guards, and
    // never override a deny list.
    // request: a plain-HTTP request's method and path; null for a CONNECT tunnel.
    // Deny lists: the global one, the client's own and its groups' all win over every allow.
    decision decide_name(std::optional<client_id> client, const host& target, std::uint16_t port,
                         time_point now, const grant_set* grants = nullptr,
                         const http_request* request = nullptr) const;

    // Address phase, after DNS: may the connection go to this resolved address? Repeats the name phase,
    // then applies deny CIDRs and the address guard. For an IP-literal host, addr must be that literal.
    decision decide_address(std::optional<client_id> client, const host& target, std::uint16_t port,
                            const address& addr, time_point now, const grant_set* grants = nullptr,
                            const http_request* request = nullptr) const;

    // Tunnel phase, after "200 Connection established" and before any client byte is forwarded: do the
    // tunnel's first bytes agree with the CONNECT target, under the tls mode of the rule that allowed it?
    // Repeats the name phase; for an IP literal the SNI must itself be a name this client may reach on port.
    decision decide_tls(std::optional<client_id> client, const host& target, std::uint16_t port,
                        const tunnel_start& start, time_point now, const grant_set* grants = nullptr) const;
    // The tls mode that applies to a CONNECT the name phase allowed with this rule.
    tls_mode tls_for(const std::optional<rule_ref>& rule) const;
    // The tls mode of an allowing decision: its rule's, or for a grant the policy's default, but never off: a
    // granted CONNECT that speaks TLS must name the granted host (no fronting through an approved address).
    tls_mode tls_for(const decision& d) const;

    struct rule_view {
        // "deny" for the global deny list, "group:NAME/deny" and "client:NAME/deny" for the others
        std::string_view group;
        std::uint32_t index;     // 0-based position in the group's rules
        std::string_view description;
        source_location where;
        std::optional<time_point> expires;
        std::span<const std::string> methods;
        std::span<const std::string> paths;
    };
    rule_view describe(rule_ref ref) const;
    // Where the traffic a decision allows goes: the route of the allowing rule's group. A grant or a report-mode
    // would_deny rests on no allowing rule, so it inherits (the server's upstream_proxy).
    const upstream_route& route_for(const decision& d) const;
    std::string_view client_name(client_id id) const { return client_names_[id]; }
    mode client_mode(client_id id) const { return clients_hot_[id].effective_mode; }
    // The names of the groups a client belongs to, each once, in the order the policy defines the groups.
    std::vector<std::string_view> group_names(client_id id) const;
    // The same without allocating (a grant lookup does this on every decision that no base rule allows).
    template <typename Visit>
    void for_each_group_name(client_id id, Visit&& visit) const
    {
        if (id >= clients_hot_.size()) {
            return;
        }
        for (auto g : groups_of(id)) {
            visit(std::string_view(groups_[g].name));
        }
    }
    bool has_group(std::string_view name) const;
    // Whether a denial of this client may become an access request (requests: off opts out, per client or for
    // the whole policy), and how many distinct approvers a request of this client needs (1 or 2).
    bool requests_enabled(client_id id) const;
    unsigned required_approvals(client_id id) const;
    std::string describe_location(source_location where) const;

    struct counts {
        std::size_t clients = 0;
        std::size_t groups = 0;
        std::size_t rules = 0;
        std::size_t deny_rules = 0;  // on every deny list
        std::size_t domain_patterns = 0;  // in allow rules
        std::size_t cidrs = 0;            // in allow rules
    };
    counts stats() const { return counts_; }
    // Whether any rule names methods or paths (then headers that override a request's method or path are dropped).
    bool names_requests() const { return !requests_.empty(); }
    // Whether any allow rule has `expires` (else no established connection can expire by the clock alone).
    bool has_expiring_rules() const { return has_expiring_rules_; }
    mode default_mode() const { return default_mode_; }
    tls_mode default_tls() const { return default_tls_; }
    // Whether connections this snapshot no longer allows are closed when it replaces an older one.
    revoke_action on_revoke() const { return on_revoke_; }
    guard_set guarded() const { return guarded_; }
    // The operator's own NAT64 prefixes (address_guard.nat64_prefixes), for classify().
    std::span<const cidr> nat64_prefixes() const { return nat64_prefixes_; }

private:
    struct compiled_rule {
        rule_terms terms;
        std::string description;
        source_location where;
        std::optional<tls_mode> tls;
    };
    struct compiled_group {
        std::string name;
        std::vector<compiled_rule> rules;
        upstream_route upstream;
    };
    // Decision-time view of a client, kept small and flat: groups live in client_groups_.
    struct client_hot {
        std::uint32_t groups_begin = 0;
        std::uint32_t groups_count = 0;
        std::uint32_t deny_begin = 0;  // every deny list of the client (0, the global one, first), in client_deny_lists_
        std::uint16_t deny_count = 0;
        mode effective_mode = mode::enforce;
    };
    // What a rule's methods and paths ask of a request (rule_terms::request indexes these).
    struct request_terms {
        std::vector<std::string> methods;
        std::vector<std::string> paths;
        bool allows_connect = false;  // methods name CONNECT and there are no paths
        friend bool operator==(const request_terms&, const request_terms&) = default;
    };
    // What a decision asks of each rule it looks at.
    struct probe {
        std::uint16_t port;
        std::int64_t now;
        const http_request* request;
        bool deny;  // a deny rule naming paths matches either form of the path; an allow rule needs both
    };
    struct cidr_entry {
        std::uint32_t group;
        std::uint32_t rule;
        rule_terms terms;
    };
    using group_list = std::span<const std::uint32_t>;

    // How well a rule fits a request, in the order a decision prefers them.
    enum class fit : std::uint8_t { none, port_miss, method_miss, path_miss, expired, match };
    struct best_fit {
        fit level = fit::none;
        std::optional<rule_ref> rule;
        // The better fit wins; on a tie the earlier offer stays unless prefer_later (longer CIDR prefixes).
        void offer(fit f, rule_ref r, bool prefer_later = false)
        {
            if (f > level || (prefer_later && f == level && f != fit::none)) {
                level = f;
                rule = r;
            }
        }
    };

    fit evaluate(const rule_terms& terms, const probe& q) const;
    fit evaluate_request(const request_terms& terms, const probe& q) const;
    group_list groups_of(client_id id) const
    {
        return group_list(client_groups_).subspan(clients_hot_[id].groups_begin, clients_hot_[id].groups_count);
    }
    group_list deny_lists_of(client_id id) const
    {
        return group_list(client_deny_lists_).subspan(clients_hot_[id].deny_begin, clients_hot_[id].deny_count);
    }
    best_fit match_domain(const domain_index& index, const domain_index::host_keys& keys,
                          const domain_index::located& at, const group_list* groups, const probe& q) const;
    best_fit match_cidr(const prefix_trie<std::vector<cidr_entry>>& trie, const group_list* groups,
                        const address& addr, const probe& q, int min_length) const;
    // Every deny list of the client, the global one first; the rule that matched, if any.
    best_fit match_deny_address(client_id client, const address& addr, const probe& q) const;
    decision finish(decision d, const best_fit& allow) const;
    decision finish(decision d) const;
    void warn_shadowed_domains(std::vector<diagnostic>& warnings) const;
    void warn_shadowed_cidrs(const std::vector<std::vector<cidr>>& rule_cidrs, std::vector<diagnostic>& warnings) const;
    bool ports_cover(const compiled_rule& wide, const compiled_rule& narrow) const;
    const compiled_rule& rule_at(rule_ref ref) const;
    decision decide_literal(decision d, const address& addr, std::uint16_t port, time_point now,
                            const grant_set* grants, const http_request* request) const;
    // An allow-list miss that a grant may turn into an allow; nullopt when no grant matches.
    template <typename Target>
    std::optional<decision> grant_for(decision d, const Target& target, std::uint16_t port, time_point now,
                                      const grant_set* grants) const;

    std::vector<std::string> files_;
    mode default_mode_ = mode::enforce;
    tls_mode default_tls_ = tls_mode::allow;
    revoke_action on_revoke_ = revoke_action::close;
    guard_set guarded_ = guard_set::all();
    std::vector<cidr> nat64_prefixes_;
    std::vector<port_range> ports_;  // every rule's ranges after its first, sliced by rule_terms::more_ports_*
    std::vector<compiled_group> groups_;
    // Every deny list: 0 the global one (rule_ref group deny_group), then groups' and clients' (first_deny_list + index).
    std::vector<compiled_group> deny_lists_;
    std::vector<std::uint32_t> client_deny_lists_;
    upstream_route inherit_route_;
    std::vector<request_terms> requests_;
    std::vector<std::string> client_names_;
    std::vector<client_hot> clients_hot_;
    std::vector<std::uint32_t> client_groups_;
    std::unordered_map<std::string, client_id> clients_by_name_;
    std::unordered_map<std::string, std::uint32_t> groups_by_name_;
    // Per client: whether its denials may become access requests, and how many approvers a request needs.
    struct client_approvals {
        bool requests = true;
        unsigned required = 1;
    };
    std::vector<client_approvals> client_approvals_;
    std::optional<client_id> default_client_;
    prefix_trie<std::optional<client_id>> client_sources_;  // clients without identities
    // Identity specs: exact and prefix patterns, each to the clients that list it (with their sources).
    std::unordered_map<std::string, std::vector<client_id>> exact_identities_;
    std::unordered_map<std::string, std::vector<client_id>> prefix_identities_;
    std::vector<std::vector<cidr>> identity_client_sources_;  // per client; empty: any source
    std::optional<client_id> match_identity_group(const std::vector<client_id>& group, const std::optional<address>& source) const;
    domain_index allow_domains_;
    domain_index deny_domains_;  // every deny list's patterns in one index (one probe per label); entries' group: the list
    prefix_trie<std::vector<cidr_entry>> allow_cidrs_;
    prefix_trie<std::vector<cidr_entry>> deny_cidrs_;
    counts counts_;
    bool has_expiring_rules_ = false;
};

}  // namespace egressd::policy
