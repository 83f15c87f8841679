// Policy YAML text in, errors or a snapshot out. The input is one policy file, or several separated by a line
// "#@file" (a policy directory's files, merged in order). Invariants:
// - every error and warning names one of the files and a line:column inside that file's text;
// - a loaded policy's decisions (as `egressd policy explain` makes them) for destinations taken from the input
//   name rules that exist: the rule's group is one the input defines, and its index, position and description
//   are those of that rule in the input.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fuzz/invariant.hpp"
#include "config/policy_loader.hpp"
#include "config/yaml_tree.hpp"
#include "fuzz/text_position.hpp"
#include "policy/connection.hpp"
#include "policy/domain.hpp"

namespace {

using egressd::fuzz::require;

using egressd::config::yaml_node;
namespace pol = egressd::policy;

constexpr std::string_view file_separator = "\n#@file\n";
constexpr std::size_t max_files = 3;
constexpr std::size_t max_hosts = 12;
constexpr std::size_t max_ports = 4;
constexpr std::size_t max_clients = 6;

std::vector<std::pair<std::string, std::string>> split_files(std::string_view input)
{
    std::vector<std::pair<std::string, std::string>> files;
    while (files.size() + 1 < max_files) {
        auto at = input.find(file_separator);
        if (at == std::string_view::npos) {
            break;
        }
        files.emplace_back("policy-" + std::to_string(files.size()) + ".yaml", std::string(input.substr(0, at + 1)));
        input.remove_prefix(at + file_separator.size());
    }
    files.emplace_back("policy-" + std::to_string(files.size()) + ".yaml", std::string(input));
    return files;
}

const yaml_node* find(const yaml_node& map, std::string_view key)
{
    for (const auto& entry : map.entries) {
        if (entry.key.is_scalar() && entry.key.value == key) {
            return &entry.value;
        }
    }
    return nullptr;
}

// The rule items of the input as the policy numbers them: per group name, and the deny list across files.
struct input_rule {
    std::uint32_t file;
    const yaml_node* node;
};
struct input_rules {
    std::map<std::string, std::vector<input_rule>, std::less<>> groups;
    std::vector<input_rule> deny;
};

void collect_rules(const yaml_node& root, std::uint32_t file, input_rules& out)
{
    if (!root.is_map()) {
        return;
    }
    if (const auto* groups = find(root, "groups"); groups != nullptr && groups->is_map()) {
        for (const auto& [key, group] : groups->entries) {
            const auto* rules = group.is_map() ? find(group, "rules") : nullptr;
            auto& list = out.groups[key.value];
            if (rules != nullptr) {
                for (const auto& item : rules->items) {
                    list.push_back({file, &item});
                }
            }
        }
    }
    if (const auto* deny = find(root, "deny"); deny != nullptr) {
        for (const auto& item : deny->items) {
            out.deny.push_back({file, &item});
        }
    }
}

// Hosts and ports the input itself names, so that decisions reach its rules: "*.x" becomes "a.x", ".x" and CIDRs
// their base name or address.
void collect_destinations(const yaml_node& n, std::vector<pol::host>& hosts, std::vector<std::uint16_t>& ports)
{
    if (n.is_scalar()) {
        std::string_view text = n.value;
        if (auto number = text.find_first_not_of("0123456789"); number != 0 && ports.size() < max_ports) {
            unsigned long value = std::strtoul(std::string(text.substr(0, number)).c_str(), nullptr, 10);
            if (value >= 1 && value <= 65535) {
                ports.push_back(static_cast<std::uint16_t>(value));
            }
        }
        std::string name(text.substr(0, text.find('/')));
        if (name.starts_with("*.")) {
            name = "a" + name.substr(1);
        } else if (name.starts_with(".")) {
            name.erase(0, 1);
        }
        if (hosts.size() < max_hosts) {
            if (auto parsed = pol::host::parse(name); parsed.value) {
                hosts.push_back(*parsed.value);
            }
        }
        return;
    }
    for (const auto& item : n.items) {
        collect_destinations(item, hosts, ports);
    }
    for (const auto& entry : n.entries) {
        collect_destinations(entry.value, hosts, ports);
    }
}

std::optional<std::string_view> description_of(const yaml_node& rule)
{
    const auto* d = rule.is_map() ? find(rule, "description") : nullptr;
    if (d == nullptr || !d->is_scalar()) {
        return std::nullopt;
    }
    return std::string_view(d->value);
}

void check_rule(const pol::policy& p, const input_rules& input, const pol::decision& d)
{
    if (d.why == pol::reason::allowed) {
        require(d.rule.has_value() && !d.rule->is_deny());
    }
    if (d.why == pol::reason::explicit_deny) {
        require(d.rule.has_value() && d.rule->is_deny());
    }
    if (!d.rule) {
        return;
    }
    auto view = p.describe(*d.rule);
    const std::vector<input_rule>* rules = &input.deny;
    if (!d.rule->is_deny()) {
        auto group = input.groups.find(view.group);
        require(group != input.groups.end());
        rules = &group->second;
    }
    require(view.index == d.rule->rule && view.index < rules->size());
    const auto& rule = (*rules)[view.index];
    require(view.where.file == rule.file && view.where.line == rule.node->where.line &&
            view.where.column == rule.node->where.column);
    if (auto description = description_of(*rule.node)) {
        require(view.description == *description);
    }
}

void check_decisions(const pol::policy& p, const input_rules& input, const std::vector<const yaml_node*>& trees)
{
    std::vector<pol::host> hosts;
    std::vector<std::uint16_t> ports{443};
    for (const auto* tree : trees) {
        collect_destinations(*tree, hosts, ports);
    }
    auto at = pol::time_point(std::chrono::seconds(1'780'000'000));
    std::vector<std::optional<pol::client_id>> clients{std::nullopt};
    for (std::size_t c = 0; c < p.stats().clients && c < max_clients; ++c) {
        clients.emplace_back(static_cast<pol::client_id>(c));
    }
    for (const auto& client : clients) {
        for (const auto& target : hosts) {
            for (auto port : ports) {
                check_rule(p, input, p.decide_name(client, target, port, at));
                if (const auto* literal = target.literal()) {
                    check_rule(p, input, p.decide_address(client, target, port, *literal, at));
                }
                pol::tunnel_start start{true, target.name() != nullptr ? std::optional(*target.name()) : std::nullopt};
                check_rule(p, input, p.decide_tls(client, target, port, start, at));
            }
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    auto files = split_files(std::string_view(reinterpret_cast<const char*>(data), size));
    auto loaded = egressd::config::load_policy_texts(files);
    auto located = [&](const egressd::config::diagnostic& d) {
        for (const auto& [name, text] : files) {
            if (name == d.file) {
                return egressd::fuzz::inside(egressd::fuzz::line_lengths(text), d.where.line, d.where.column);
            }
        }
        return false;
    };
    for (const auto& e : loaded.errors) {
        require(located(e));
        require(egressd::fuzz::free_of_controls(e.format("error")));
    }
    for (const auto& w : loaded.warnings) {
        require(located(w));
        require(egressd::fuzz::free_of_controls(w.format("warning")));
    }
    require((loaded.snapshot != nullptr) == loaded.errors.empty());
    if (!loaded.snapshot) {
        return 0;
    }

    input_rules input;
    std::vector<const yaml_node*> roots;
    // The trees the loader read (it loaded, so each file parses).
    std::vector<yaml_node> trees;
    for (const auto& [name, text] : files) {
        egressd::config::yaml_error error;
        auto tree = egressd::config::parse_yaml(text, error);
        require(tree.has_value());
        trees.push_back(std::move(*tree));
    }
    for (std::uint32_t i = 0; i < trees.size(); ++i) {
        collect_rules(trees[i], i, input);
        roots.push_back(&trees[i]);
    }
    check_decisions(*loaded.snapshot, input, roots);
    return 0;
}
