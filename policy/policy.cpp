#include "policy/policy.hpp"

#include <algorithm>
#include <tuple>

namespace egressd::policy {
namespace {

constexpr int embedded_exemption_min_length = 96;

// An exempting CIDR must lie inside the guarded range. For an embedded IPv4 address that range sits below
// bit 96, so 64:ff9b::/96 or ::ffff:0:0/96 alone must not exempt every embedded loopback or metadata address.
int exemption_min_length(const guard_hit& hit)
{
    return hit.form == embedding::none ? hit.range_length : embedded_exemption_min_length + hit.range_length;
}

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

bool covers(pattern_kind wide, pattern_kind narrow)
{
    return wide == narrow || wide == pattern_kind::domain;
}

// request_terms as a map key.
template <typename Terms>
std::string request_key(const Terms& t)
{
    std::string key;
    for (const auto& m : t.methods) {
        key += m + ' ';
    }
    key += '\n';
    for (const auto& path : t.paths) {
        key += path + ' ';
    }
    return key;
}

}  // namespace

compile_result policy::compile(policy_spec spec)
{
    compile_result result;
    auto p = std::shared_ptr<policy>(new policy());
    auto& errors = result.errors;
    auto& warnings = result.warnings;
    p->files_ = std::move(spec.files);
    p->default_mode_ = spec.default_mode;
    p->default_tls_ = spec.default_tls;
    p->on_revoke_ = spec.on_revoke;
    p->guarded_ = spec.guarded;
    p->nat64_prefixes_ = spec.nat64_prefixes;

    std::vector<std::vector<cidr>> rule_cidrs;  // per compiled allow rule, in group order, for the shadow check
    std::unordered_map<std::string, std::uint32_t> request_ids;  // request_terms already compiled, by request_key
    auto compile_rule = [&](rule_spec& r, std::uint32_t group, std::uint32_t index, compiled_group& into,
                            domain_index& domains, prefix_trie<std::vector<cidr_entry>>& cidrs) {
        compiled_rule c;
        if (!r.ports.empty()) {
            c.terms.first_ports = r.ports.front();
            c.terms.more_ports_begin = static_cast<std::uint32_t>(p->ports_.size());
            c.terms.more_ports_count = static_cast<std::uint16_t>(r.ports.size() - 1);
            p->ports_.insert(p->ports_.end(), r.ports.begin() + 1, r.ports.end());
        }
        if (r.expires) {
            c.terms.expires = r.expires->time_since_epoch().count();
        }
        if (!r.methods.empty() || !r.paths.empty()) {
            bool allows_connect =
                r.paths.empty() && std::find(r.methods.begin(), r.methods.end(), "CONNECT") != r.methods.end();
            request_terms terms{std::move(r.methods), std::move(r.paths), allows_connect};
            // Rules mostly share a few method and path lists: one copy each keeps a decision's memory reads few.
            auto [it, added] = request_ids.try_emplace(request_key(terms), static_cast<std::uint32_t>(p->requests_.size() + 1));
            if (added) {
                p->requests_.push_back(std::move(terms));
            }
            c.terms.request = it->second;
        }
        c.description = std::move(r.description);
        c.where = r.where;
        c.tls = r.tls;
        for (auto& d : r.domains) {
            domains.add(d.name, domain_entry{group, index, c.terms, d.kind});
        }
        for (const auto& net : r.cidrs) {
            cidrs.at(net).push_back(cidr_entry{group, index, c.terms});
        }
        if (&domains == &p->allow_domains_) {
            p->counts_.domain_patterns += r.domains.size();
            p->counts_.cidrs += r.cidrs.size();
        }
        into.rules.push_back(std::move(c));
    };

    // A deny list: its index among deny_lists_, or nullopt when a group or client has none.
    auto add_deny_list = [&](std::string label, std::vector<rule_spec>& rules) -> std::optional<std::uint32_t> {
        if (rules.empty() && !p->deny_lists_.empty()) {
            return std::nullopt;
        }
        auto index = static_cast<std::uint32_t>(p->deny_lists_.size());
        p->deny_lists_.push_back(compiled_group{std::move(label), {}, {}});
        for (std::uint32_t i = 0; i < rules.size(); ++i) {
            compile_rule(rules[i], index, i, p->deny_lists_.back(), p->deny_domains_, p->deny_cidrs_);
            ++p->counts_.deny_rules;
        }
        return index;
    };
    add_deny_list("deny", spec.deny);  // list 0, which every client has
    std::unordered_map<std::string_view, std::uint32_t> group_ids;
    std::vector<source_location> group_where;
    std::vector<std::optional<std::uint32_t>> group_deny_list;  // per compiled group
    for (auto& g : spec.groups) {
        auto [it, inserted] = group_ids.try_emplace(g.name, static_cast<std::uint32_t>(p->groups_.size()));
        if (!inserted) {
            errors.push_back({g.where, "group " + quoted(g.name) + " is defined twice; first definition at " +
                                           p->describe_location(group_where[it->second])});
            continue;
        }
        group_where.push_back(g.where);
        auto id = static_cast<std::uint32_t>(p->groups_.size());
        p->groups_by_name_.emplace(g.name, id);
        p->groups_.push_back(compiled_group{g.name, {}, g.upstream});
        group_deny_list.push_back(add_deny_list("group:" + g.name + "/deny", g.deny));
        for (std::uint32_t i = 0; i < g.rules.size(); ++i) {
            auto& r = g.rules[i];
            for (const auto& net : r.cidrs) {
                if (net.is_everything()) {
                    warnings.push_back({r.where, "rule " + std::to_string(i) + " of group " + quoted(g.name) +
                                                     " allows every address (" + net.to_string() +
                                                     "); guarded addresses stay refused"});
                }
            }
            for (const auto& range : r.ports) {
                if (range.is_all()) {
                    warnings.push_back(
                        {r.where, "rule " + std::to_string(i) + " of group " + quoted(g.name) + " allows all ports"});
                }
            }
            rule_cidrs.push_back(r.cidrs);
            p->has_expiring_rules_ = p->has_expiring_rules_ || r.expires.has_value();
            compile_rule(r, id, i, p->groups_.back(), p->allow_domains_, p->allow_cidrs_);
            ++p->counts_.rules;
        }
    }
    // Group names stay referenced by group_ids; they live in spec.groups, which outlives the map.


    std::vector<bool> group_used(p->groups_.size(), false);
    std::vector<source_location> client_where;
    for (auto& c : spec.clients) {
        auto id = static_cast<client_id>(p->client_names_.size());
        auto [it, inserted] = p->clients_by_name_.try_emplace(c.name, id);
        if (!inserted) {
            errors.push_back({c.where, "client " + quoted(c.name) + " is defined twice; first definition at " +
                                           p->describe_location(client_where[it->second])});
            continue;
        }
        client_where.push_back(c.where);
        std::vector<std::uint32_t> groups;
        for (const auto& ref : c.groups) {
            auto g = group_ids.find(ref.name);
            if (g == group_ids.end()) {
                errors.push_back({ref.where, "client " + quoted(c.name) + " uses group " + quoted(ref.name) +
                                                 ", which is not defined"});
                continue;
            }
            group_used[g->second] = true;
            groups.push_back(g->second);
        }
        std::sort(groups.begin(), groups.end());
        groups.erase(std::unique(groups.begin(), groups.end()), groups.end());
        std::vector<std::uint32_t> deny_lists{0};
        if (auto own = add_deny_list("client:" + c.name + "/deny", c.deny)) {
            deny_lists.push_back(*own);
        }
        for (auto g : groups) {
            if (group_deny_list[g]) {
                deny_lists.push_back(*group_deny_list[g]);
            }
        }
        std::sort(deny_lists.begin(), deny_lists.end());
        if (deny_lists.size() > UINT16_MAX) {
            errors.push_back({c.where, "client " + quoted(c.name) + " has more than 65535 deny lists (its own and its groups')"});
            deny_lists.resize(UINT16_MAX);
        }
        if (!c.identities.empty()) {
            // Identity clients keep their sources to themselves: they are a condition, not a way to be matched.
            std::vector<cidr> own;
            for (const auto& source : c.sources) {
                own.push_back(source.value);
            }
            p->identity_client_sources_.resize(id + 1);
            p->identity_client_sources_[id] = std::move(own);
            for (const auto& identity : c.identities) {
                auto& table = identity.prefix ? p->prefix_identities_ : p->exact_identities_;
                auto& group = table[identity.text];
                for (auto other : group) {
                    const auto& theirs = p->identity_client_sources_[other];
                    const auto& mine = p->identity_client_sources_[id];
                    bool clash = theirs.empty() && mine.empty();
                    for (const auto& a : theirs) {
                        clash = clash || std::find(mine.begin(), mine.end(), a) != mine.end();
                    }
                    if (clash) {
                        errors.push_back({identity.where, "identity '" + identity.text + (identity.prefix ? "*" : "") +
                                                              "' of client " + quoted(c.name) + " is also an identity of client " +
                                                              quoted(p->client_names_[other]) +
                                                              " with the same sources: a connection would match both"});
                    }
                }
                group.push_back(id);
            }
        }
        for (const auto& source : c.identities.empty() ? c.sources : std::vector<located_cidr>{}) {
            auto& slot = p->client_sources_.at(source.value);
            if (slot) {
                errors.push_back({source.where, "source " + source.value.to_string() + " of client " + quoted(c.name) +
                                                    " is also a source of client " +
                                                    quoted(p->client_names_[*slot]) +
                                                    ": the most specific source must name one client"});
                continue;
            }
            slot = id;
        }
        if (c.required_approvals != 1 && c.required_approvals != 2) {
            bool located = c.approvals_where.line != 0;
            errors.push_back({located ? c.approvals_where : c.where,
                              "client " + quoted(c.name) + " requires " + std::to_string(c.required_approvals) +
                                  " approvals: expected 1 or 2"});
        }
        p->client_approvals_.push_back(client_approvals{c.requests.value_or(spec.requests), c.required_approvals});
        if (c.name == "default") {
            p->default_client_ = id;
        } else if (c.sources.empty() && c.identities.empty()) {
            warnings.push_back({c.where, "client " + quoted(c.name) +
                                             " has no sources: no connection will match it (only policy explain "
                                             "--client can name it)"});
        }
        p->client_names_.push_back(c.name);
        p->clients_hot_.push_back(client_hot{static_cast<std::uint32_t>(p->client_groups_.size()),
                                             static_cast<std::uint32_t>(groups.size()),
                                             static_cast<std::uint32_t>(p->client_deny_lists_.size()),
                                             static_cast<std::uint16_t>(deny_lists.size()),
                                             c.mode_override.value_or(spec.default_mode)});
        p->client_groups_.insert(p->client_groups_.end(), groups.begin(), groups.end());
        p->client_deny_lists_.insert(p->client_deny_lists_.end(), deny_lists.begin(), deny_lists.end());
    }
    for (std::size_t g = 0; g < p->groups_.size(); ++g) {
        if (!group_used[g]) {
            warnings.push_back({group_where[g], "group " + quoted(p->groups_[g].name) + " is not used by any client"});
        }
    }

    p->allow_domains_.build();
    p->deny_domains_.build();
    p->allow_cidrs_.shrink_to_fit();
    p->deny_cidrs_.shrink_to_fit();
    p->client_sources_.shrink_to_fit();
    p->warn_shadowed_domains(warnings);
    p->warn_shadowed_cidrs(rule_cidrs, warnings);
    p->counts_.clients = p->client_names_.size();
    p->counts_.groups = p->groups_.size();

    auto by_place = [](const diagnostic& a, const diagnostic& b) {
        return std::tie(a.where.file, a.where.line, a.where.column) <
               std::tie(b.where.file, b.where.line, b.where.column);
    };
    std::stable_sort(errors.begin(), errors.end(), by_place);
    std::stable_sort(warnings.begin(), warnings.end(), by_place);
    if (errors.empty()) {
        result.snapshot = std::move(p);
    }
    return result;
}

const policy::compiled_rule& policy::rule_at(rule_ref ref) const
{
    if (ref.group == deny_group) {
        return deny_lists_[0].rules[ref.rule];
    }
    return ref.is_deny() ? deny_lists_[ref.group - first_deny_list].rules[ref.rule] : groups_[ref.group].rules[ref.rule];
}

bool policy::ports_cover(const compiled_rule& wide, const compiled_rule& narrow) const
{
    auto ranges = [&](const rule_terms& t) {
        std::vector<port_range> out{t.first_ports};
        out.insert(out.end(), ports_.begin() + t.more_ports_begin,
                   ports_.begin() + t.more_ports_begin + t.more_ports_count);
        return out;
    };
    auto wide_ranges = ranges(wide.terms);
    for (const auto& n : ranges(narrow.terms)) {
        bool covered = std::any_of(wide_ranges.begin(), wide_ranges.end(),
                                   [&](const port_range& w) { return w.first <= n.first && n.last <= w.last; });
        if (!covered) {
            return false;
        }
    }
    // A rule limited to some methods or paths covers only a rule with the same limits.
    if (wide.terms.request != 0 &&
        (narrow.terms.request == 0 || requests_[wide.terms.request - 1].methods != requests_[narrow.terms.request - 1].methods ||
         requests_[wide.terms.request - 1].paths != requests_[narrow.terms.request - 1].paths)) {
        return false;
    }
    // An expiring rule does not stand in for a lasting one.
    return wide.terms.expires >= narrow.terms.expires;
}

void policy::warn_shadowed_domains(std::vector<diagnostic>& warnings) const
{
    auto report = [&](std::string_view key, const domain_entry& narrow, const domain_entry& wide,
                      std::string_view wide_key) {
        const auto& g = groups_[narrow.group];
        bool same = key == wide_key && narrow.kind == wide.kind;
        domain_pattern narrow_pattern{narrow.kind, std::string(key)};
        domain_pattern wide_pattern{wide.kind, std::string(wide_key)};
        warnings.push_back({g.rules[narrow.rule].where,
                            "group " + quoted(g.name) + " rule " + std::to_string(narrow.rule) + ": destination " +
                                quoted(narrow_pattern.to_string()) + (same ? " duplicates" : " is shadowed by") +
                                " rule " + std::to_string(wide.rule) + " (" + wide_pattern.to_string() + ")"});
    };
    // Keys holding patterns that can cover names below them; usually few, so probing them is cheap.
    string_table covering_keys;
    allow_domains_.for_each_entry_list([&](std::string_view key, std::span<const domain_entry> entries) {
        for (const auto& e : entries) {
            if (e.kind != pattern_kind::exact) {
                covering_keys.intern(key);
                return;
            }
        }
    });
    allow_domains_.for_each_entry_list([&](std::string_view key, std::span<const domain_entry> entries) {
        // Same key, same group: a pattern whose kind and ports another rule already covers.
        for (std::size_t i = 0; i < entries.size(); ++i) {
            for (std::size_t j = i + 1; j < entries.size() && entries[j].group == entries[i].group; ++j) {
                const auto& a = entries[i];
                const auto& b = entries[j];
                if (a.rule == b.rule) {
                    continue;
                }
                if (covers(a.kind, b.kind) && ports_cover(groups_[a.group].rules[a.rule], groups_[b.group].rules[b.rule])) {
                    report(key, b, a, key);
                } else if (covers(b.kind, a.kind) &&
                           ports_cover(groups_[b.group].rules[b.rule], groups_[a.group].rules[a.rule])) {
                    report(key, a, b, key);
                }
            }
        }
        // A parent key's subdomains or domain pattern in the same group covers every pattern here.
        for (std::string_view parent = key;;) {
            std::size_t dot = parent.find('.');
            if (dot == std::string_view::npos) {
                break;
            }
            parent.remove_prefix(dot + 1);
            if (!covering_keys.find(parent)) {
                continue;
            }
            auto wide_entries = allow_domains_.at(parent);
            for (const auto& narrow : entries) {
                auto [lo, hi] = std::equal_range(wide_entries.begin(), wide_entries.end(), narrow,
                                                 [](const domain_entry& x, const domain_entry& y) { return x.group < y.group; });
                for (auto it = lo; it != hi; ++it) {
                    if (it->kind != pattern_kind::exact &&
                        ports_cover(groups_[it->group].rules[it->rule], groups_[narrow.group].rules[narrow.rule])) {
                        report(key, narrow, *it, parent);
                        break;
                    }
                }
            }
        }
    });
}

void policy::warn_shadowed_cidrs(const std::vector<std::vector<cidr>>& rule_cidrs,
                                 std::vector<diagnostic>& warnings) const
{
    std::size_t flat = 0;
    for (std::uint32_t g = 0; g < groups_.size(); ++g) {
        for (std::uint32_t r = 0; r < groups_[g].rules.size(); ++r, ++flat) {
            for (const auto& net : rule_cidrs[flat]) {
                std::optional<std::string> found;
                allow_cidrs_.for_each_containing(net.base(), [&](int depth, const std::vector<cidr_entry>& entries) {
                    if (found || depth > net.length()) {
                        return;
                    }
                    for (const auto& e : entries) {
                        if (e.group != g || e.rule == r) {
                            continue;
                        }
                        bool same = depth == net.length();
                        // Of two identical destinations, only the later rule is reported.
                        if (same && e.rule > r && ports_cover(groups_[g].rules[r], groups_[g].rules[e.rule])) {
                            continue;
                        }
                        if (ports_cover(groups_[g].rules[e.rule], groups_[g].rules[r])) {
                            found = std::string(same ? " duplicates" : " is shadowed by") + " rule " +
                                    std::to_string(e.rule);
                            return;
                        }
                    }
                });
                if (found) {
                    warnings.push_back({groups_[g].rules[r].where, "group " + quoted(groups_[g].name) + " rule " +
                                                                        std::to_string(r) + ": destination " +
                                                                        net.to_string() + *found});
                }
            }
        }
    }
}

std::optional<client_id> policy::match_identity_group(const std::vector<client_id>& group,
                                                      const std::optional<address>& source) const
{
    std::optional<client_id> best;
    int best_length = -2;
    for (auto id : group) {
        const auto& sources = identity_client_sources_[id];
        int length = sources.empty() ? -1 : -2;  // no sources: any source, least specific
        for (const auto& c : sources) {
            if (source && c.contains(*source) && c.length() > length) {
                length = c.length();
            }
        }
        if (length > best_length) {
            best = id;
            best_length = length;
        }
    }
    return best_length > -2 ? best : std::nullopt;
}

std::optional<client_id> policy::match_client(const client_facts& facts) const
{
    // A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; they match IPv4 sources.
    std::optional<address> source = facts.source ? std::optional(facts.source->unmapped()) : std::nullopt;
    if (facts.identity) {
        const std::string& identity = *facts.identity;
        if (auto it = exact_identities_.find(identity); it != exact_identities_.end()) {
            if (auto id = match_identity_group(it->second, source)) {
                return id;
            }
        }
        // Longest pattern first: one hash probe per prefix length, never a scan of the clients.
        for (std::size_t length = identity.size() + 1; length-- > 0;) {
            auto it = prefix_identities_.find(identity.substr(0, length));
            if (it == prefix_identities_.end()) {
                continue;
            }
            if (auto id = match_identity_group(it->second, source)) {
                return id;
            }
        }
    }
    if (source) {
        if (const auto* slot = client_sources_.longest_match(*source); slot != nullptr && slot->has_value()) {
            return *slot;
        }
    }
    return default_client_;
}

std::optional<client_id> policy::find_client(std::string_view name) const
{
    auto it = clients_by_name_.find(std::string(name));
    if (it == clients_by_name_.end()) {
        return std::nullopt;
    }
    return it->second;
}

policy::fit policy::evaluate(const rule_terms& terms, const probe& q) const
{
    bool port_ok = terms.first_ports.contains(q.port);
    for (std::uint32_t i = 0; i < terms.more_ports_count && !port_ok; ++i) {
        port_ok = ports_[terms.more_ports_begin + i].contains(q.port);
    }
    if (!port_ok) {
        return fit::port_miss;
    }
    if (terms.request != 0) {
        if (auto f = evaluate_request(requests_[terms.request - 1], q); f != fit::match) {
            return f;
        }
    }
    return q.now >= terms.expires ? fit::expired : fit::match;
}

policy::fit policy::evaluate_request(const request_terms& terms, const probe& q) const
{
    auto listed = [&](std::string_view method) {
        return terms.methods.empty() || std::find(terms.methods.begin(), terms.methods.end(), method) != terms.methods.end();
    };
    if (q.request == nullptr) {
        // A tunnel's requests are encrypted: only a rule that names CONNECT itself, and no paths, can speak for it.
        return terms.allows_connect ? fit::match : fit::method_miss;
    }
    if (!listed(q.request->method)) {
        return fit::method_miss;
    }
    if (terms.paths.empty()) {
        return fit::match;
    }
    auto under = [&](std::string_view path) {
        return std::any_of(terms.paths.begin(), terms.paths.end(),
                           [&](const std::string& prefix) { return path.starts_with(prefix); });
    };
    bool strict = under(q.request->path);
    bool loose = under(q.request->loose_path);
    return (q.deny ? strict || loose : strict && loose) ? fit::match : fit::path_miss;
}

policy::best_fit policy::match_domain(const domain_index& index, const domain_index::host_keys& keys,
                                      const domain_index::located& at, const group_list* groups, const probe& q) const
{
    best_fit best;
    index.visit_keys(keys, at, [&](std::span<const domain_entry> entries, bool own_key) {
        auto consider = [&](const domain_entry& e) {
            if (domain_index::matches_at(e.kind, own_key)) {
                best.offer(evaluate(e.terms, q), rule_ref{e.group, e.rule});
            }
            return best.level != fit::match;
        };
        if (groups == nullptr) {
            for (const auto& e : entries) {
                if (!consider(e)) {
                    return false;
                }
            }
        } else if (entries.size() <= 4 * groups->size()) {
            for (const auto& e : entries) {
                if (std::binary_search(groups->begin(), groups->end(), e.group) && !consider(e)) {
                    return false;
                }
            }
        } else {
            // A key many groups share: look up only this client's groups.
            for (auto g : *groups) {
                auto [lo, hi] = std::equal_range(entries.begin(), entries.end(), domain_entry{g, 0, {}, pattern_kind::exact},
                                                 [](const domain_entry& x, const domain_entry& y) { return x.group < y.group; });
                for (auto it = lo; it != hi; ++it) {
                    if (!consider(*it)) {
                        return false;
                    }
                }
            }
        }
        return true;
    });
    return best;
}

policy::best_fit policy::match_cidr(const prefix_trie<std::vector<cidr_entry>>& trie,
                                    const group_list* groups, const address& addr, const probe& q,
                                    int min_length) const
{
    best_fit best;
    trie.for_each_containing(addr, [&](int depth, const std::vector<cidr_entry>& entries) {
        if (depth < min_length) {
            return;
        }
        for (const auto& e : entries) {
            if (groups == nullptr || std::binary_search(groups->begin(), groups->end(), e.group)) {
                best.offer(evaluate(e.terms, q), rule_ref{e.group, e.rule}, true);
            }
        }
    });
    return best;
}

namespace {

// A deny list's match names the list by its id among all rule groups: deny_group for the global list (0).
template <typename Fit>
Fit as_deny_list(Fit f)
{
    if (f.rule) {
        f.rule->group = f.rule->group == 0 ? deny_group : first_deny_list + f.rule->group;
    }
    return f;
}


}  // namespace

policy::best_fit policy::match_deny_address(client_id client, const address& addr, const probe& q) const
{
    auto lists = deny_lists_of(client);
    auto one = [&](const address& a) { return as_deny_list(match_cidr(deny_cidrs_, &lists, a, q, 0)); };
    best_fit deny = one(addr);
    embedded_v4 inner[max_embedded];
    int count = embedded_addresses(addr, inner, nat64_prefixes_);
    for (int i = 0; i < count && deny.level != fit::match; ++i) {
        deny = one(inner[i].v4);
    }
    return deny;
}

decision policy::finish(decision d) const
{
    if (d.allowed()) {
        d.outcome = verdict::allow;
    } else {
        d.outcome = d.applied_mode == mode::report ? verdict::would_deny : verdict::deny;
    }
    return d;
}

decision policy::finish(decision d, const best_fit& allow) const
{
    d.rule = allow.rule;
    switch (allow.level) {
    case fit::match:
        d.why = reason::allowed;
        break;
    case fit::expired:
        d.why = reason::expired;
        break;
    case fit::port_miss:
        d.why = reason::port_not_allowed;
        break;
    case fit::method_miss:
        d.why = reason::method_not_allowed;
        break;
    case fit::path_miss:
        d.why = reason::path_not_allowed;
        break;
    case fit::none:
        d.why = reason::no_matching_rule;
        break;
    }
    return finish(d);
}

template <typename Target>
std::optional<decision> policy::grant_for(decision d, const Target& target, std::uint16_t port, time_point now,
                                          const grant_set* grants) const
{
    if (grants == nullptr) {
        return std::nullopt;
    }
    const grant* g = grants->match(*this, *d.client, target, port, now);
    if (g == nullptr) {
        return std::nullopt;
    }
    d.why = reason::granted;
    d.rule.reset();  // no rule of the policy allows it: tls_for gives the policy's default
    d.grant = grant_ref{g->id, g->expires};
    return finish(d);
}

decision policy::decide_literal(decision d, const address& addr, std::uint16_t port, time_point now,
                                const grant_set* grants, const http_request* request) const
{
    std::int64_t t = now.time_since_epoch().count();
    if (auto deny = match_deny_address(*d.client, addr, probe{port, t, request, true}); deny.level == fit::match) {
        d.why = reason::explicit_deny;
        d.rule = deny.rule;
        return finish(d);
    }
    auto groups = groups_of(*d.client);
    probe q{port, t, request, false};
    best_fit allow = match_cidr(allow_cidrs_, &groups, addr, q, 0);
    if (allow.level != fit::match) {
        auto granted = grant_for(d, addr, port, now, grants);
        if (!granted) {
            return finish(d, allow);
        }
        // A grant never opens a guarded address: only a CIDR rule does, and none matched here.
        if (auto hit = classify(addr, guarded_, nat64_prefixes_)) {
            d.why = reason::address_guard;
            d.guard = hit;
            return finish(d);
        }
        return *granted;
    }
    if (auto hit = classify(addr, guarded_, nat64_prefixes_)) {
        int min_length = exemption_min_length(*hit);
        best_fit exempt = match_cidr(allow_cidrs_, &groups, addr, q, min_length);
        if (exempt.level != fit::match) {
            d.why = reason::address_guard;
            d.guard = hit;
            return finish(d);
        }
        allow = exempt;
    }
    return finish(d, allow);
}

decision policy::decide_name(std::optional<client_id> client, const host& target, std::uint16_t port,
                             time_point now, const grant_set* grants, const http_request* request) const
{
    decision d;
    d.client = client;
    d.applied_mode = default_mode_;
    // Check the id before using it: an id from another snapshot may be out of range here.
    if (!client || *client >= clients_hot_.size()) {
        d.client.reset();
        d.why = reason::unknown_client;
        return finish(d);
    }
    d.applied_mode = clients_hot_[*client].effective_mode;
    std::int64_t t = now.time_since_epoch().count();
    if (const auto* literal = target.literal()) {
        return decide_literal(d, *literal, port, now, grants, request);
    }
    const std::string& name = *target.name();
    auto groups = groups_of(*client);
    auto deny_lists = deny_lists_of(*client);
    __builtin_prefetch(groups.data());  // loads while the deny lists are consulted
    // Both indexes' loads start before either is waited on: a decision costs about the misses of one lookup.
    domain_index::host_keys keys;
    domain_index::split(name, keys);
    deny_domains_.prefetch_slots(keys);
    allow_domains_.prefetch_slots(keys);
    domain_index::located deny_at;
    domain_index::located allow_at;
    deny_domains_.locate(keys, deny_at);
    allow_domains_.locate(keys, allow_at);
    auto deny = as_deny_list(match_domain(deny_domains_, keys, deny_at, &deny_lists, probe{port, t, request, true}));
    if (deny.level == fit::match) {
        d.why = reason::explicit_deny;
        d.rule = deny.rule;
        return finish(d);
    }
    best_fit allow = match_domain(allow_domains_, keys, allow_at, &groups, probe{port, t, request, false});
    if (allow.level != fit::match) {
        if (auto granted = grant_for(d, target, port, now, grants)) {
            return *granted;
        }
    }
    return finish(d, allow);
}

decision policy::decide_address(std::optional<client_id> client, const host& target, std::uint16_t port,
                                const address& addr, time_point now, const grant_set* grants,
                                const http_request* request) const
{
    if (target.is_address()) {
        // The address connected to is what gets decided, whatever the caller parsed.
        decision d = decide_name(client, target, port, now, grants, request);
        if (d.why == reason::unknown_client || *target.literal() == addr) {
            return d;
        }
        d.rule.reset();
        d.grant.reset();
        d.why = reason::allowed;
        return decide_literal(d, addr, port, now, grants, request);
    }
    decision d = decide_name(client, target, port, now, grants, request);
    if (!d.allowed()) {
        return d;
    }
    std::int64_t t = now.time_since_epoch().count();
    if (auto deny = match_deny_address(*client, addr, probe{port, t, request, true}); deny.level == fit::match) {
        d.why = reason::explicit_deny;
        d.rule = deny.rule;
        d.grant.reset();
        return finish(d);
    }
    // A name a grant allows reaches a guarded address only if a CIDR rule of the client opens that address.
    if (auto hit = classify(addr, guarded_, nat64_prefixes_)) {
        int min_length = exemption_min_length(*hit);
        auto groups = groups_of(*client);
        best_fit exempt = match_cidr(allow_cidrs_, &groups, addr, probe{port, t, request, false}, min_length);
        if (exempt.level != fit::match) {
            d.why = reason::address_guard;
            d.guard = hit;
            d.rule.reset();
            d.grant.reset();
            return finish(d);
        }
        d.rule = exempt.rule;
    }
    return finish(d);
}

tls_mode policy::tls_for(const std::optional<rule_ref>& rule) const
{
    if (!rule || rule->is_deny()) {
        return default_tls_;
    }
    return rule_at(*rule).tls.value_or(default_tls_);
}

tls_mode policy::tls_for(const decision& d) const
{
    if (d.grant) {
        return default_tls_ == tls_mode::off ? tls_mode::allow : default_tls_;
    }
    return tls_for(d.rule);
}

decision policy::decide_tls(std::optional<client_id> client, const host& target, std::uint16_t port,
                            const tunnel_start& start, time_point now, const grant_set* grants) const
{
    decision d = decide_name(client, target, port, now, grants);
    if (!d.allowed()) {
        return d;
    }
    tls_mode m = tls_for(d);
    if (m == tls_mode::off) {
        return d;
    }
    auto refuse = [&](reason why) {
        d.why = why;
        d.grant.reset();
        return finish(d);
    };
    if (!start.is_tls) {
        return m == tls_mode::require ? refuse(reason::not_tls) : d;
    }
    if (!start.sni) {
        return m == tls_mode::require ? refuse(reason::sni_missing) : d;
    }
    if (const auto* name = target.name()) {
        return *name == *start.sni ? d : refuse(reason::sni_mismatch);
    }
    // An IP-literal CONNECT: the name inside must be one this client may reach on this port.
    auto sni_host = host::parse(*start.sni);
    if (!sni_host.value || sni_host.value->is_address()) {
        return refuse(reason::sni_mismatch);
    }
    auto by_name = decide_name(client, *sni_host.value, port, now, grants);
    return by_name.allowed() ? d : refuse(reason::sni_mismatch);
}

policy::rule_view policy::describe(rule_ref ref) const
{
    const auto& r = rule_at(ref);
    std::string_view group = ref.group == deny_group ? std::string_view(deny_lists_[0].name)
                             : ref.is_deny()          ? std::string_view(deny_lists_[ref.group - first_deny_list].name)
                                                      : std::string_view(groups_[ref.group].name);
    rule_view v{group, ref.rule, r.description, r.where, std::nullopt, {}, {}};
    if (r.terms.expires != INT64_MAX) {
        v.expires = time_point{std::chrono::seconds{r.terms.expires}};
    }
    if (r.terms.request != 0) {
        const auto& terms = requests_[r.terms.request - 1];
        v.methods = terms.methods;
        v.paths = terms.paths;
    }
    return v;
}

const upstream_route& policy::route_for(const decision& d) const
{
    if (d.why != reason::allowed || !d.rule || d.rule->is_deny()) {
        return inherit_route_;
    }
    return groups_[d.rule->group].upstream;
}

std::vector<std::string_view> policy::group_names(client_id id) const
{
    std::vector<std::string_view> names;
    for_each_group_name(id, [&](std::string_view name) { names.push_back(name); });
    return names;
}

bool policy::has_group(std::string_view name) const { return groups_by_name_.contains(std::string(name)); }

bool policy::requests_enabled(client_id id) const
{
    return id < client_approvals_.size() && client_approvals_[id].requests;
}

unsigned policy::required_approvals(client_id id) const
{
    return id < client_approvals_.size() ? client_approvals_[id].required : 1;
}

std::string policy::describe_location(source_location where) const
{
    std::string file = where.file < files_.size() ? files_[where.file] : std::string("<policy>");
    return file + ":" + std::to_string(where.line) + ":" + std::to_string(where.column);
}

}  // namespace egressd::policy
