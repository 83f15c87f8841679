#include "proxy/tools/suggest.hpp"

#include "config/policy_loader.hpp"
#include "config/yaml_tree.hpp"
#include "policy/guard.hpp"
#include "policy/policy.hpp"
#include "proxy/cli.hpp"
#include "proxy/tools/event_options.hpp"
#include "proxy/tools/event_reader.hpp"
#include "proxy/tools/yaml_quote.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace egressd::proxy::tools {
namespace {

namespace pol = egressd::policy;
using clock = std::chrono::system_clock;

constexpr std::size_t default_collapse = 5;
// How many folded names a pattern's comment lists, and how many refused destinations the closing comment
// names per client: enough to review, not a copy of the log.
constexpr std::size_t listed_members = 8;
constexpr std::size_t listed_refusals = 20;

struct suggest_options {
    event_options events;
    std::optional<std::string> current_path;
    std::size_t collapse = default_collapse;  // 0: never collapse
};

std::optional<std::string> parse_suggest_args(const std::vector<std::string>& args, suggest_options& options)
{
    // --policy and --collapse are this command's own; the rest are the options every event reader takes.
    std::vector<std::string> rest;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a != "--policy" && a != "--collapse") {
            rest.push_back(a);
            continue;
        }
        if (i + 1 >= args.size()) {
            return a + " needs a value";
        }
        const std::string& value = args[++i];
        if (a == "--policy") {
            options.current_path = value;
            continue;
        }
        bool digits = !value.empty() && value.size() <= 6 &&
                      std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; });
        options.collapse = digits ? std::stoul(value) : 1;
        if (options.collapse == 1) {
            return "--collapse '" + value + "': expected a number of sibling names, 2 or more (0: never collapse)";
        }
    }
    if (auto problem = parse_event_options(rest, true, clock::now(), options.events)) {
        return problem;
    }
    if (!options.events.positional.empty()) {
        return "unexpected argument '" + options.events.positional.front() + "': event files follow --events";
    }
    if (options.events.json) {
        return "policy suggest writes YAML; --json is not one of its options";
    }
    return std::nullopt;
}

struct sightings {
    std::size_t hits = 0;
    clock::time_point first = clock::time_point::max();
    clock::time_point last = clock::time_point::min();

    void add(clock::time_point t)
    {
        ++hits;
        first = std::min(first, t);
        last = std::max(last, t);
    }
    void add(const sightings& other)
    {
        hits += other.hits;
        first = std::min(first, other.first);
        last = std::max(last, other.last);
    }
};

// A destination's sightings on one port, counted once per request: a CONNECT's name and tunnel phases each log
// a decision under one request id. The last few ids are enough, as a request's events are logged together.
struct request_sightings {
    sightings seen;
    std::array<std::string, 4> recent;
    std::size_t next = 0;

    void add(clock::time_point t, const std::string& request_id)
    {
        bool repeated = !request_id.empty() && std::find(recent.begin(), recent.end(), request_id) != recent.end();
        if (repeated) {
            seen.first = std::min(seen.first, t);
            seen.last = std::max(seen.last, t);
            return;
        }
        seen.add(t);
        recent[next] = request_id;
        next = (next + 1) % recent.size();
    }
};

using port_sightings = std::map<std::uint16_t, request_sightings>;

// What one client was seen asking for, and how it was identified.
struct client_traffic {
    std::map<std::string, port_sightings> names;
    std::map<pol::address, port_sightings> literals;
    std::set<pol::address> sources;
    std::set<std::string> identities;
    bool without_identity = false;  // some request carried no identity (or one no client pattern can name)
    std::vector<std::string> refused;  // "host:port (why)": seen, but refused by the current policy or the guard
    std::size_t refused_hits = 0;
};

struct traffic {
    std::map<std::string, client_traffic> clients;
    std::size_t decisions = 0;  // egress.allow, egress.deny and egress.would_deny events read
    std::size_t used = 0;
    std::size_t other_events = 0;
    std::size_t without_client = 0;
    std::size_t bad_client = 0;  // a client name no policy could hold
    std::size_t bad_destination = 0;
    std::map<std::string, std::size_t> skipped_reasons;
    sightings span;
};

// Only an allow, or a miss of the allow list, says "this client wants this destination". Deny-list hits, the
// address guard and the tunnel checks refused on purpose; DNS, authentication, handshake and request reasons
// (which parse_reason does not know) are no policy decision at all.
bool learnable(std::string_view reason_text)
{
    auto r = pol::parse_reason(reason_text);
    if (!r) {
        return false;
    }
    switch (*r) {
    case pol::reason::allowed:
    case pol::reason::granted:
    case pol::reason::no_matching_rule:
    case pol::reason::port_not_allowed:
    case pol::reason::expired:
        return true;
    default:
        return false;
    }
}

// What a policy accepts as a client name, with room for the "learned-" of its group's name.
bool valid_client_name(std::string_view name)
{
    return !name.empty() && name.size() <= 120 && name != "-" && std::all_of(name.begin(), name.end(), [](char ch) {
               return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                      ch == '_' || ch == '.';
           });
}

void observe(const recorded_event& e, traffic& seen)
{
    if (e.event != "egress.allow" && e.event != "egress.deny" && e.event != "egress.would_deny") {
        ++seen.other_events;
        return;
    }
    ++seen.decisions;
    if (e.client.empty()) {
        ++seen.without_client;
        return;
    }
    if (!valid_client_name(e.client)) {
        ++seen.bad_client;
        return;
    }
    if (!learnable(e.reason)) {
        ++seen.skipped_reasons[e.reason.empty() ? std::string("(no reason)") : e.reason];
        return;
    }
    auto target = pol::host::parse(e.host);
    if (!target.value || e.port == 0) {
        ++seen.bad_destination;
        return;
    }
    auto& c = seen.clients[e.client];
    if (const auto* literal = target.value->literal()) {
        c.literals[*literal][e.port].add(e.time, e.request_id);
    } else {
        c.names[*target.value->name()][e.port].add(e.time, e.request_id);
    }
    if (auto source = pol::address::parse(e.source_ip)) {
        c.sources.insert(source->unmapped());
    }
    // A '*' would turn the identity into a prefix pattern: such a client is identified by its sources instead.
    if (e.identity.empty() || e.identity.find('*') != std::string::npos) {
        c.without_identity = true;
    } else {
        c.identities.insert(e.identity);
    }
    ++seen.used;
    seen.span.add(e.time);
}

// The policy the suggestion is for: what its deny list and guard refuse is never suggested, and its clients'
// identification, deny list and policy-wide settings are copied into the suggestion.
struct current_policy {
    std::string path;
    config::loaded_policy loaded;
    std::vector<config::yaml_node> roots;  // each file's document, in merge order

    const pol::policy& compiled() const { return *loaded.snapshot; }

    // The client's entry in the files, or nullptr.
    const config::yaml_node* client_entry(std::string_view name) const
    {
        for (const auto& root : roots) {
            if (const auto* clients = find(root, "clients"); clients != nullptr && clients->is_map()) {
                if (const auto* entry = find(*clients, name)) {
                    return entry;
                }
            }
        }
        return nullptr;
    }

    // The deny list of the group of this name in the files, or nullptr when it has none.
    const config::yaml_node* group_deny(std::string_view name) const
    {
        for (const auto& root : roots) {
            if (const auto* groups = find(root, "groups"); groups != nullptr && groups->is_map()) {
                if (const auto* entry = find(*groups, name); entry != nullptr && entry->is_map()) {
                    const auto* deny = find(*entry, "deny");
                    return deny != nullptr && deny->is_sequence() && !deny->items.empty() ? deny : nullptr;
                }
            }
        }
        return nullptr;
    }

    static const config::yaml_node* find(const config::yaml_node& map, std::string_view key)
    {
        for (const auto& [k, v] : map.entries) {
            if (k.is_scalar() && k.value == key) {
                return &v;
            }
        }
        return nullptr;
    }
};

std::string destination_text(const std::string& host, std::uint16_t port)
{
    return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// Drops what the current deny list refuses and every IP literal in a guarded set: a rule naming a guarded
// address would open the guard for it.
void drop_refused(client_traffic& c, std::string_view client_name, const current_policy* current)
{
    auto now = std::chrono::floor<std::chrono::seconds>(clock::now());
    std::optional<pol::client_id> probe;
    bool own_client = false;
    if (current != nullptr) {
        // The client's own deny lists apply when the current policy has it; otherwise any client lets
        // decide_name reach the global list, the only one certain to apply.
        probe = current->compiled().find_client(client_name);
        own_client = probe.has_value();
        if (!probe && current->compiled().stats().clients > 0) {
            probe = pol::client_id{0};
        }
    }
    auto refused_by_deny_list = [&](const pol::host& target, std::uint16_t port) {
        if (!probe) {
            return false;
        }
        auto d = current->compiled().decide_name(probe, target, port, now);
        return d.why == pol::reason::explicit_deny &&
               (own_client || (d.rule && current->compiled().describe(*d.rule).group == "deny"));
    };
    auto refuse = [&](std::string text, std::string_view why, const sightings& s) {
        c.refused.push_back(std::move(text) + " (" + std::string(why) + ")");
        c.refused_hits += s.hits;
    };
    for (auto name = c.names.begin(); name != c.names.end();) {
        auto target = pol::host::parse(name->first);
        for (auto port = name->second.begin(); port != name->second.end();) {
            if (target.value && refused_by_deny_list(*target.value, port->first)) {
                refuse(destination_text(name->first, port->first), "explicit_deny in the current policy",
                       port->second.seen);
                port = name->second.erase(port);
            } else {
                ++port;
            }
        }
        name = name->second.empty() ? c.names.erase(name) : std::next(name);
    }
    auto guarded = current != nullptr ? current->compiled().guarded() : pol::guard_set::all();
    auto nat64_prefixes = current != nullptr ? current->compiled().nat64_prefixes() : std::span<const pol::cidr>();
    for (auto literal = c.literals.begin(); literal != c.literals.end();) {
        auto hit = pol::classify(literal->first, guarded, nat64_prefixes);
        auto target = pol::host::parse(literal->first.to_string());
        for (auto port = literal->second.begin(); port != literal->second.end();) {
            auto text = destination_text(literal->first.to_string(), port->first);
            if (hit) {
                refuse(text, "address_guard: " + std::string(pol::to_string(hit->category)), port->second.seen);
                port = literal->second.erase(port);
            } else if (target.value && refused_by_deny_list(*target.value, port->first)) {
                refuse(text, "explicit_deny in the current policy", port->second.seen);
                port = literal->second.erase(port);
            } else {
                ++port;
            }
        }
        literal = literal->second.empty() ? c.literals.erase(literal) : std::next(literal);
    }
}

std::string_view parent_of(std::string_view name)
{
    auto dot = name.find('.');
    return dot == std::string_view::npos ? std::string_view() : name.substr(dot + 1);
}

// Collapsing to "*.co.uk" would allow a whole country's companies. Without a public suffix list: a parent needs
// two labels, and a two-label parent that reads like a registry's second level (co.uk, com.au, ac.jp) is out.
bool collapsible(std::string_view parent)
{
    auto dot = parent.find('.');
    if (dot == std::string_view::npos) {
        return false;
    }
    auto second = parent.substr(0, dot);
    auto top = parent.substr(dot + 1);
    if (top.find('.') != std::string_view::npos) {
        return true;
    }
    constexpr std::array<std::string_view, 11> registry_labels{"ac", "co", "com", "edu", "go", "gov",
                                                               "mil", "ne", "net", "or", "org"};
    bool country = top.size() == 2;
    return !(country && std::find(registry_labels.begin(), registry_labels.end(), second) != registry_labels.end());
}

// One destination of a suggested rule.
struct destination {
    std::string text;  // as written in the policy
    bool is_cidr = false;
    std::set<std::uint16_t> ports;
    sightings seen;
    std::vector<std::string> members;  // the names a collapsed pattern stands for
};

void merge_ports(destination& d, const port_sightings& ports)
{
    for (const auto& [port, s] : ports) {
        d.ports.insert(port);
        d.seen.add(s.seen);
    }
}

std::vector<destination> destinations_of(const client_traffic& c, std::size_t collapse)
{
    std::map<std::string, std::size_t> children;
    for (const auto& [name, ports] : c.names) {
        if (auto parent = parent_of(name); !parent.empty()) {
            ++children[std::string(parent)];
        }
    }
    std::set<std::string, std::less<>> collapsed;
    for (const auto& [parent, count] : children) {
        if (collapse > 0 && count >= collapse && collapsible(parent)) {
            collapsed.insert(parent);
        }
    }
    std::vector<destination> out;
    std::map<std::string, destination> patterns;  // by collapsed parent
    for (const auto& [name, ports] : c.names) {
        // The highest collapsed parent above the name (or the name itself, when it is one) takes it in, so that
        // no rule repeats what a wider one allows.
        const std::string* home = nullptr;
        for (std::string_view at = name; !at.empty(); at = parent_of(at)) {
            if (auto it = collapsed.find(at); it != collapsed.end()) {
                home = &*it;
            }
        }
        destination* d = nullptr;
        if (home == nullptr) {
            d = &out.emplace_back();
            d->text = name;
        } else {
            d = &patterns[*home];
            d->members.push_back(name);
        }
        merge_ports(*d, ports);
    }
    for (auto& [parent, d] : patterns) {
        // ".parent" also allows the parent itself: only when it was seen too; otherwise just what is below it.
        d.text = (c.names.contains(parent) ? "." : "*.") + parent;
        out.push_back(std::move(d));
    }
    for (const auto& [literal, ports] : c.literals) {
        auto& d = out.emplace_back();
        d.text = pol::cidr::make(literal, literal.width())->to_string();
        d.is_cidr = true;
        merge_ports(d, ports);
    }
    return out;
}

// --- YAML output ---------------------------------------------------------------------------------------------


// Client and group names (letters, digits, '-', '_', '.') as keys: plain unless YAML would read them as
// something other than a string.
std::string key_text(std::string_view name)
{
    constexpr std::array<std::string_view, 11> special{"true", "false", "null", "yes", "no", "on",
                                                       "off",  "y",     "n",    "~",   ""};
    std::string lower(name);
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) {
        return static_cast<char>(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
    });
    bool letter_first = !name.empty() && ((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z'));
    bool is_special = std::find(special.begin(), special.end(), lower) != special.end();
    return letter_first && !is_special ? std::string(name) : yaml_quoted(name);
}

// A scalar copied from the current policy: plain as it was written when that is safe in any context (so that
// ports stay numbers), quoted otherwise.
std::string scalar_text(const config::yaml_node& n)
{
    bool safe = n.plain && !n.value.empty() && n.value[0] != ':' &&
                std::all_of(n.value.begin(), n.value.end(), [](char ch) {
                    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                           ch == '.' || ch == '-' || ch == '_' || ch == '/' || ch == ':';
                });
    return safe ? n.value : yaml_quoted(n.value);
}

void emit_node(std::ostream& out, const config::yaml_node& n, int indent);

// A value after "key:" (or after "- "): inline when it is a scalar or a list of scalars, else on the lines below.
void emit_value(std::ostream& out, const config::yaml_node& n, int indent)
{
    if (n.is_scalar()) {
        out << ' ' << scalar_text(n) << '\n';
        return;
    }
    bool flat = n.is_sequence() && std::all_of(n.items.begin(), n.items.end(), [](const config::yaml_node& item) {
                    return item.is_scalar();
                });
    if (flat) {
        out << " [";
        for (std::size_t i = 0; i < n.items.size(); ++i) {
            out << (i > 0 ? ", " : "") << scalar_text(n.items[i]);
        }
        out << "]\n";
        return;
    }
    if (n.is_null() || (n.is_map() && n.entries.empty())) {
        out << (n.is_map() ? " {}\n" : "\n");
        return;
    }
    out << '\n';
    emit_node(out, n, indent + 2);
}

// A map or a list of maps in block style at this indentation.
void emit_node(std::ostream& out, const config::yaml_node& n, int indent)
{
    std::string pad(static_cast<std::size_t>(indent), ' ');
    if (n.is_map()) {
        for (const auto& [k, v] : n.entries) {
            out << pad << scalar_text(k) << ':';
            emit_value(out, v, indent);
        }
        return;
    }
    for (const auto& item : n.items) {
        if (!item.is_map() || item.entries.empty()) {
            out << pad << '-';
            emit_value(out, item, indent);
            continue;
        }
        // "- first: value", the other keys under it.
        bool first = true;
        for (const auto& [k, v] : item.entries) {
            out << (first ? pad + "- " : pad + "  ") << scalar_text(k) << ':';
            emit_value(out, v, indent + 2);
            first = false;
        }
    }
}

std::string ports_text(const std::set<std::uint16_t>& ports)
{
    std::string text = "[";
    for (auto p : ports) {
        text += (text.size() > 1 ? ", " : "") + std::to_string(p);
    }
    return text + "]";
}

std::string seen_text(const sightings& s)
{
    return std::to_string(s.hits) + (s.hits == 1 ? " hit" : " hits") + ", first " + format_time(s.first) +
           ", last " + format_time(s.last);
}

void emit_group(std::ostream& out, const std::string& client, const client_traffic& c, std::size_t collapse)
{
    // Rules by identical port sets, each with its destinations: names, patterns, then CIDRs, sorted.
    std::map<std::set<std::uint16_t>, std::vector<destination>> rules;
    sightings total;
    for (auto& d : destinations_of(c, collapse)) {
        total.add(d.seen);
        rules[d.ports].push_back(std::move(d));
    }
    out << "  " << key_text("learned-" + client) << ":\n"
        << "    description: " << yaml_quoted("learned from " + std::to_string(total.hits) + " requests of " + client +
                                         ", " + format_time(total.first) + " to " + format_time(total.last))
        << "\n    rules:\n";
    for (auto& [ports, list] : rules) {
        std::sort(list.begin(), list.end(), [](const destination& a, const destination& b) {
            return std::tie(a.is_cidr, a.text) < std::tie(b.is_cidr, b.text);
        });
        auto port_list = ports_text(ports);
        out << "      - description: "
            << yaml_quoted("learned: " + std::to_string(list.size()) + " destination(s) on port(s) " +
                           port_list.substr(1, port_list.size() - 2))
            << "\n        ports: " << port_list << "\n        destinations:\n";
        for (const auto& d : list) {
            out << "          - " << yaml_quoted(d.text) << "  # " << seen_text(d.seen);
            if (!d.members.empty()) {
                out << "; " << d.members.size() << " names seen:";
                for (std::size_t i = 0; i < d.members.size() && i < listed_members; ++i) {
                    out << ' ' << d.members[i];
                }
                if (d.members.size() > listed_members) {
                    out << " ...";
                }
            }
            out << '\n';
        }
    }
}

void emit_quoted_list(std::ostream& out, std::string_view key, const std::vector<std::string>& items)
{
    out << "    " << key << ": [";
    for (std::size_t i = 0; i < items.size(); ++i) {
        out << (i > 0 ? ", " : "") << yaml_quoted(items[i]);
    }
    out << "]\n";
}

// The client's deny lists in the current policy, its own and its groups', become its own list here: the learned
// group takes the place of its groups, and what they refused must stay refused (a collapsed *.parent would
// otherwise open a name one of them denied).
void emit_client_deny(std::ostream& out, const config::yaml_node& entry, const current_policy& current)
{
    std::vector<std::pair<std::string, const config::yaml_node*>> lists;
    if (const auto* own = current_policy::find(entry, "deny"); own != nullptr && own->is_sequence() &&
                                                                !own->items.empty()) {
        lists.emplace_back("its own deny list", own);
    }
    auto add_group = [&](const config::yaml_node& group) {
        if (const auto* deny = group.is_scalar() ? current.group_deny(group.value) : nullptr) {
            lists.emplace_back("the deny list of its group " + group.value, deny);
        }
    };
    // `groups: base` names one group as `groups: [base]` does.
    if (const auto* groups = current_policy::find(entry, "groups"); groups != nullptr) {
        if (groups->is_sequence()) {
            std::for_each(groups->items.begin(), groups->items.end(), add_group);
        } else {
            add_group(*groups);
        }
    }
    if (lists.empty()) {
        return;
    }
    out << "    deny:\n";
    for (const auto& [what, deny] : lists) {
        out << "      # " << what << ", copied from " << current.path << '\n';
        emit_node(out, *deny, 6);
    }
}

// How the client is recognized: as the current policy says, or else by the sources and identities seen.
void emit_client(std::ostream& out, const std::string& name, const client_traffic& c, const current_policy* current,
                 const std::set<pol::address>& shared_sources)
{
    out << "  " << key_text(name) << ":\n";
    const config::yaml_node* entry = current != nullptr ? current->client_entry(name) : nullptr;
    if (entry != nullptr) {
        out << "    # identification copied from " << current->path << '\n';
        for (std::string_view key : {"description", "sources", "identities"}) {
            if (const auto* value = current_policy::find(*entry, key)) {
                out << "    " << key << ':';
                emit_value(out, *value, 4);
            }
        }
    } else if (name != "default") {
        out << "    # identification: as seen in the events"
            << (current != nullptr ? " (no client of this name in " + current->path + ")" : std::string()) << '\n';
        std::vector<std::string> sources;
        for (const auto& s : c.sources) {
            if (!shared_sources.contains(s)) {
                sources.push_back(pol::cidr::make(s, s.width())->to_string());
            }
        }
        if (!shared_sources.empty()) {
            out << "    # sources also seen for another client are left out: add the right ones by hand\n";
        }
        emit_quoted_list(out, "sources", sources);
        bool by_identity = !c.without_identity && !c.identities.empty();
        if (by_identity) {
            emit_quoted_list(out, "identities", std::vector<std::string>(c.identities.begin(), c.identities.end()));
        } else if (!c.identities.empty()) {
            out << "    # identities seen, but not on every request (so matched by source):";
            for (const auto& id : c.identities) {
                out << ' ' << id;
            }
            out << '\n';
        }
    }
    if (entry != nullptr) {
        emit_client_deny(out, *entry, *current);
    }
    out << "    groups: [" << key_text("learned-" + name) << "]\n";
}

void emit_settings(std::ostream& out, const pol::policy& p)
{
    out << "tls: " << pol::to_string(p.default_tls()) << '\n' << "on_revoke: " << pol::to_string(p.on_revoke()) << '\n';
    std::vector<std::string_view> unguarded;
    for (int i = 0; i < pol::guard_category_count; ++i) {
        auto category = static_cast<pol::guard_category>(i);
        if (!p.guarded().has(category)) {
            unguarded.push_back(pol::to_string(category));
        }
    }
    if (!unguarded.empty()) {
        out << "address_guard:\n  except: [";
        for (std::size_t i = 0; i < unguarded.size(); ++i) {
            out << (i > 0 ? ", " : "") << unguarded[i];
        }
        out << "]\n";
    }
}

void emit_header(std::ostream& out, const suggest_options& options, const traffic& seen,
                 const current_policy* current)
{
    out << "# A policy learned by egressd policy suggest: it allows what these event logs show each client asked\n"
        << "# for, except what a deny list, the address guard or a TLS check refused.\n"
        << "#   events:  ";
    for (const auto& f : options.events.files) {
        out << ' ' << f;
    }
    out << '\n';
    if (seen.used > 0) {
        out << "#   seen:     " << format_time(seen.span.first) << " to " << format_time(seen.span.last) << '\n';
    }
    out << "#   counts:   " << seen.decisions << " decisions read, " << seen.used << " used, "
        << seen.decisions - seen.used << " skipped (see the end); " << seen.other_events
        << " other events (closes, revocations, errors) ignored\n";
    if (options.events.filter.client) {
        out << "#   client:   " << *options.events.filter.client << '\n';
    }
    if (options.events.filter.since) {
        out << "#   since:    " << format_time(*options.events.filter.since) << '\n';
    }
    out << "#   collapse: "
        << (options.collapse == 0 ? std::string("never")
                                  : std::to_string(options.collapse) + " or more sibling names under one parent")
        << '\n';
    if (current != nullptr) {
        out << "#   current:  " << current->path
            << " (its clients' sources and identities, the deny lists, tls, on_revoke and address_guard are copied)\n";
    }
    out << "#\n"
        << "# Review:  egressd policy check FILE; egressd policy explain FILE --client NAME --dest HOST:PORT\n"
        << "# Test:    egressd policy replay FILE --events LOG... --client NAME   (nothing allowed may become denied)\n"
        << "# Merge:   copy each learned-<client> group into the real policy, add it to that client's groups,\n"
        << "#          remove the client's mode: report, then reload (kill -HUP, POST /reload, or save the file).\n";
}

void emit_footer(std::ostream& out, const traffic& seen)
{
    out << "# Skipped:\n";
    if (seen.without_client > 0) {
        out << "#   " << seen.without_client << " decision(s) without a client (unknown_client or refused before one "
            << "was known)\n";
    }
    for (const auto& [reason, count] : seen.skipped_reasons) {
        out << "#   " << count << " decision(s) with reason " << reason << '\n';
    }
    if (seen.bad_client > 0) {
        out << "#   " << seen.bad_client << " decision(s) with a client name a policy cannot hold\n";
    }
    if (seen.bad_destination > 0) {
        out << "#   " << seen.bad_destination << " decision(s) with no usable host and port\n";
    }
    for (const auto& [name, c] : seen.clients) {
        if (c.refused.empty()) {
            continue;
        }
        out << "#   " << name << ": " << c.refused.size() << " destination(s), " << c.refused_hits
            << " hit(s), refused by the current policy or the address guard:\n";
        for (std::size_t i = 0; i < c.refused.size() && i < listed_refusals; ++i) {
            out << "#     " << c.refused[i] << '\n';
        }
        if (c.refused.size() > listed_refusals) {
            out << "#     ...\n";
        }
    }
}

// Sources seen for more than one client that is identified by what was seen: the same CIDR in two clients is
// an error, and which client it belongs to is for a person to say.
std::set<pol::address> shared_sources(const traffic& seen, const current_policy* current)
{
    std::map<pol::address, std::size_t> owners;
    for (const auto& [name, c] : seen.clients) {
        bool copied = current != nullptr && current->client_entry(name) != nullptr;
        bool by_identity = !c.without_identity && !c.identities.empty();
        if (copied || by_identity || name == "default") {
            continue;
        }
        for (const auto& s : c.sources) {
            ++owners[s];
        }
    }
    std::set<pol::address> shared;
    for (const auto& [s, count] : owners) {
        if (count > 1) {
            shared.insert(s);
        }
    }
    return shared;
}

void emit_policy(std::ostream& out, const suggest_options& options, const traffic& seen, const current_policy* current)
{
    emit_header(out, options, seen, current);
    out << "version: 1\nmode: enforce\n";
    if (current != nullptr) {
        emit_settings(out, current->compiled());
    }
    std::vector<const std::string*> learned;
    for (const auto& [name, c] : seen.clients) {
        if (!c.names.empty() || !c.literals.empty()) {
            learned.push_back(&name);
        }
    }
    out << (learned.empty() ? "groups: {}\n" : "groups:\n");
    for (const auto* name : learned) {
        emit_group(out, *name, seen.clients.at(*name), options.collapse);
    }
    auto shared = shared_sources(seen, current);
    out << (learned.empty() ? "clients: {}\n" : "clients:\n");
    for (const auto* name : learned) {
        emit_client(out, *name, seen.clients.at(*name), current, shared);
    }
    if (current != nullptr) {
        bool first = true;
        for (const auto& root : current->roots) {
            const auto* deny = current_policy::find(root, "deny");
            if (deny == nullptr || !deny->is_sequence() || deny->items.empty()) {
                continue;
            }
            if (first) {
                out << "deny:  # copied from " << current->path << '\n';
                first = false;
            }
            emit_node(out, *deny, 2);
        }
    }
    emit_footer(out, seen);
}

std::optional<current_policy> load_current(const std::string& path, std::ostream& err)
{
    current_policy current;
    current.path = path;
    current.loaded = config::load_policy(path);
    if (!current.loaded.snapshot) {
        for (const auto& e : current.loaded.errors) {
            err << e.format("error") << '\n';
        }
        return std::nullopt;
    }
    for (const auto& [file, text] : current.loaded.sources) {
        const auto& lists = current.loaded.list_files;
        if (std::find(lists.begin(), lists.end(), file) != lists.end()) {
            continue;  // a destinations_file: one name per line, not a policy document
        }
        config::yaml_error error;
        auto root = config::parse_yaml(text, error);
        if (!root) {
            // It parsed a moment ago as part of the policy: only a file replaced in between gets here.
            err << file << ": " << error.message << '\n';
            return std::nullopt;
        }
        current.roots.push_back(std::move(*root));
    }
    return current;
}

}  // namespace

int policy_suggest(const std::vector<std::string>& args, std::ostream& out, std::ostream& err)
{
    suggest_options options;
    if (auto problem = parse_suggest_args(args, options)) {
        return usage_error(err, *problem, "policy");
    }
    std::optional<current_policy> current;
    if (options.current_path) {
        current = load_current(*options.current_path, err);
        if (!current) {
            err << "egressd: " << *options.current_path << ": invalid policy\n";
            return exit_invalid;
        }
    }
    traffic seen;
    read_report report;
    try {
        report = read_events(options.events.files, options.events.filter,
                             [&](const recorded_event& e) { observe(e, seen); });
    } catch (const std::runtime_error& e) {
        err << "egressd: " << e.what() << '\n';
        return exit_invalid;
    }
    print_read_problems(report, err);
    const current_policy* current_ptr = current ? &*current : nullptr;
    for (auto& [name, c] : seen.clients) {
        drop_refused(c, name, current_ptr);
    }
    emit_policy(out, options, seen, current_ptr);
    return exit_ok;
}

}  // namespace egressd::proxy::tools
