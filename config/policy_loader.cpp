#include "config/policy_loader.hpp"

#include "config/rfc3339.hpp"
#include "config/server_config.hpp"
#include "protocol/http/path.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <thread>
#include <tuple>

namespace egressd::config {
namespace {

namespace pol = egressd::policy;

constexpr std::int64_t supported_version = 1;

// What one file contributes, read independently of the others so files can be parsed in parallel.
struct file_part {
    pol::policy_spec spec;
    std::vector<diagnostic> errors;
    mark mode_mark;
    mark guard_mark;
    mark tls_mark;
    mark revoke_mark;
    mark requests_mark;
    bool has_mode = false;
    bool has_guard = false;
    bool has_tls = false;
    bool has_revoke = false;
    bool has_requests = false;
    // The destinations_file lists this file's rules name, each once: (resolved path, exact bytes read).
    std::vector<std::pair<std::string, std::string>> lists;
    // The lists its rules name that could not be read: the file watch follows them too, to reload once written.
    std::vector<std::string> unreadable_lists;
};

bool valid_name(std::string_view name)
{
    if (name.empty() || name.size() > 128) {
        return false;
    }
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
               c == '.';
    });
}

// An HTTP method as a rule names it: a token (RFC 9110 5.6.2).
bool valid_method(std::string_view m)
{
    return !m.empty() && m.size() <= 32 && std::all_of(m.begin(), m.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    });
}

std::string upper(std::string_view s)
{
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return out;
}

constexpr std::size_t max_errors_per_list = 100;
constexpr std::uint64_t max_list_bytes = std::uint64_t{1} << 30;

class policy_reader {
public:
    policy_reader(std::uint32_t file_index, std::string file_name, schema_reader& r, file_part& part)
        : file_(file_index), file_name_(std::move(file_name)), r_(r), part_(part)
    {
    }

    void read(const yaml_node& root)
    {
        if (!r_.expect_map(root, "a policy document")) {
            return;
        }
        r_.check_keys(root, "the policy",
                      {"version", "mode", "tls", "address_guard", "groups", "clients", "deny", "on_revoke",
                       "requests"});
        if (const auto* v = r_.require(root, "version", "the policy")) {
            if (auto version = r_.integer_value(*v, "version", 1, 1'000'000); version && *version != supported_version) {
                r_.error(*v, "unsupported policy version " + std::to_string(*version) + ": expected version 1");
            }
        }
        if (const auto* m = r_.find(root, "mode")) {
            part_.has_mode = true;
            part_.mode_mark = m->where;
            if (auto mode = read_mode(*m)) {
                part_.spec.default_mode = *mode;
            }
        }
        if (const auto* t = r_.find(root, "tls")) {
            part_.has_tls = true;
            part_.tls_mark = t->where;
            if (auto m = read_tls(*t)) {
                part_.spec.default_tls = *m;
            }
        }
        if (const auto* o = r_.find(root, "on_revoke")) {
            part_.has_revoke = true;
            part_.revoke_mark = o->where;
            if (auto action = read_revoke(*o)) {
                part_.spec.on_revoke = *action;
            }
        }
        if (const auto* q = r_.find(root, "requests")) {
            part_.has_requests = true;
            part_.requests_mark = q->where;
            if (auto on = read_requests(*q)) {
                part_.spec.requests = *on;
            }
        }
        if (const auto* g = r_.find(root, "address_guard")) {
            part_.has_guard = true;
            part_.guard_mark = g->where;
            read_guard(*g);
        }
        if (const auto* groups = r_.find(root, "groups")) {
            read_groups(*groups);
        }
        if (const auto* clients = r_.find(root, "clients")) {
            read_clients(*clients);
        }
        if (const auto* deny = r_.find(root, "deny")) {
            read_deny(*deny, part_.spec.deny, "deny rule");
        }
    }

private:
    pol::source_location at(const yaml_node& n) const { return {file_, n.where.line, n.where.column}; }

    std::optional<pol::mode> read_mode(const yaml_node& n)
    {
        auto text = r_.string_value(n, "mode: enforce or report");
        if (!text) {
            return std::nullopt;
        }
        if (*text == "enforce") {
            return pol::mode::enforce;
        }
        if (*text == "report") {
            return pol::mode::report;
        }
        r_.error(n, "unknown mode '" + *text + "': expected enforce or report");
        return std::nullopt;
    }

    std::optional<pol::tls_mode> read_tls(const yaml_node& n)
    {
        auto text = r_.string_value(n, "tls: require, allow or off");
        if (!text) {
            return std::nullopt;
        }
        auto m = pol::parse_tls_mode(*text);
        if (!m) {
            r_.error(n, "unknown tls mode '" + *text + "': expected require, allow or off");
        }
        return m;
    }

    std::optional<pol::revoke_action> read_revoke(const yaml_node& n)
    {
        auto text = r_.string_value(n, "on_revoke: close or keep");
        if (!text) {
            return std::nullopt;
        }
        auto action = pol::parse_revoke_action(*text);
        if (!action) {
            r_.error(n, "unknown on_revoke action '" + *text + "': expected close or keep");
        }
        return action;
    }

    // "requests: on|off" (true and false too): whether denials may become access requests.
    std::optional<bool> read_requests(const yaml_node& n)
    {
        auto text = r_.string_value(n, "requests: on or off");
        if (!text) {
            return std::nullopt;
        }
        if (*text == "on" || *text == "true") {
            return true;
        }
        if (*text == "off" || *text == "false") {
            return false;
        }
        r_.error(n, "unknown requests setting '" + *text + "': expected on or off");
        return std::nullopt;
    }

    // "approvals: {required: 1|2}": how many distinct approvers a request of this client needs.
    void read_approvals(const yaml_node& n, pol::client_spec& client)
    {
        std::string where = "approvals of client '" + client.name + "'";
        if (!r_.expect_map(n, where)) {
            return;
        }
        r_.check_keys(n, where, {"required"});
        if (const auto* required = r_.find(n, "required")) {
            client.approvals_where = at(*required);
            if (auto count = r_.integer_value(*required, "required approvals", 1, 2)) {
                client.required_approvals = static_cast<unsigned>(*count);
            }
        }
    }

    // The operator's own NAT64 prefixes: addresses in them are guarded by the IPv4 address they carry.
    void read_nat64_prefixes(const yaml_node& n)
    {
        const auto items = r_.scalar_list(n, "address_guard.nat64_prefixes");
        if (items.size() > pol::max_nat64_prefixes) {
            r_.error(n, "too many nat64_prefixes: at most " + std::to_string(pol::max_nat64_prefixes));
            return;
        }
        for (const auto* item : items) {
            std::string error;
            auto prefix = pol::cidr::parse(item->value, &error);
            if (!prefix) {
                r_.error(*item, error);
            } else if (prefix->base().is_v4() || !pol::valid_nat64_prefix_length(prefix->length())) {
                r_.error(*item, "invalid NAT64 prefix '" + item->value +
                                    "': expected an IPv6 prefix of length 32, 40, 48, 56, 64 or 96 (RFC 6052)");
            } else {
                part_.spec.nat64_prefixes.push_back(*prefix);
            }
        }
    }

    void read_guard(const yaml_node& n)
    {
        if (!r_.expect_map(n, "address_guard settings")) {
            return;
        }
        r_.check_keys(n, "address_guard", {"except", "nat64_prefixes"});
        if (const auto* prefixes = r_.find(n, "nat64_prefixes")) {
            read_nat64_prefixes(*prefixes);
        }
        const auto* except = r_.find(n, "except");
        if (except == nullptr) {
            return;
        }
        for (const auto* item : r_.scalar_list(*except, "address_guard.except")) {
            auto category = pol::parse_guard_category(item->value);
            if (!category) {
                std::vector<std::string_view> names;
                for (int i = 0; i < pol::guard_category_count; ++i) {
                    names.push_back(pol::to_string(static_cast<pol::guard_category>(i)));
                }
                r_.error(*item, "unknown guarded set '" + item->value + "'; expected one of: " + join(names, ", "));
                continue;
            }
            part_.spec.guarded.remove(*category);
        }
    }

    bool read_name(const yaml_node& key, std::string_view what)
    {
        if (!r_.expect_scalar(key, std::string(what) + " name")) {
            return false;
        }
        if (!valid_name(key.value)) {
            r_.error(key, "invalid " + std::string(what) + " name '" + key.value +
                              "': expected 1 to 128 letters, digits, '-', '_' or '.'");
            return false;
        }
        if (what == "client" && key.value == "-") {
            // Metrics label decisions for no client with "-"; a client of that name would merge with them.
            r_.error(key, "the client name '-' is reserved (it stands for no client)");
            return false;
        }
        return true;
    }

    void read_groups(const yaml_node& n)
    {
        if (!r_.expect_map(n, "groups: a mapping of group names to groups")) {
            return;
        }
        for (const auto& [key, value] : n.entries) {
            if (!read_name(key, "group")) {
                continue;
            }
            pol::group_spec group;
            group.name = key.value;
            group.where = at(key);
            if (r_.expect_map(value, "group '" + key.value + "'")) {
                std::string where = "group '" + key.value + "'";
                r_.check_keys(value, where, {"description", "rules", "upstream_proxy", "deny"});
                if (const auto* d = r_.find(value, "description")) {
                    group.description = r_.string_value(*d, "description text").value_or("");
                }
                if (const auto* deny = r_.find(value, "deny")) {
                    read_deny(*deny, group.deny, "deny rule of group '" + key.value + "'");
                }
                if (const auto* u = r_.find(value, "upstream_proxy")) {
                    group.upstream = read_route(*u, where);
                }
                if (const auto* rules = r_.require(value, "rules", where)) {
                    read_rules(*rules, group);
                }
            }
            // Kept even when its rules had errors, so references to it do not add spurious errors.
            part_.spec.groups.push_back(std::move(group));
        }
    }

    // "direct", or a parent proxy's "http://host:port".
    pol::upstream_route read_route(const yaml_node& n, const std::string& where)
    {
        pol::upstream_route route;
        route.where = at(n);
        if (n.is_scalar() && n.value == "direct") {
            route.kind = pol::route_kind::direct;
            return route;
        }
        if (n.is_scalar() && !n.value.starts_with("http://")) {
            r_.error(n, "expected upstream_proxy of " + where +
                            ": direct, or http://host:port (a parent proxy); found '" + n.value + "'");
            return route;
        }
        if (auto parent = read_upstream_proxy(n, r_, "upstream_proxy of " + where)) {
            route.kind = pol::route_kind::parent;
            route.parent = {std::move(parent->host), parent->port};
        }
        return route;
    }

    void read_rules(const yaml_node& n, pol::group_spec& group)
    {
        if (!n.is_sequence()) {
            r_.error(n, "expected the rules of group '" + group.name + "' (a list of rules)");
            return;
        }
        std::string where = "rule of group '" + group.name + "'";
        group.rules.reserve(n.items.size());
        for (const auto& item : n.items) {
            if (auto rule = read_rule(item, where, false)) {
                group.rules.push_back(std::move(*rule));
            }
        }
    }

    std::optional<pol::rule_spec> read_rule(const yaml_node& n, const std::string& where, bool is_deny)
    {
        if (!r_.expect_map(n, where)) {
            return std::nullopt;
        }
        std::size_t errors_before = r_.error_count();
        if (is_deny) {
            r_.check_keys(n, where, {"description", "ports", "destinations", "destinations_file", "expires",
                                     "protocol", "methods", "paths"});
        } else {
            r_.check_keys(n, where, {"description", "ports", "destinations", "destinations_file", "expires",
                                     "protocol", "tls", "methods", "paths"});
        }
        pol::rule_spec rule;
        rule.where = at(n);
        if (const auto* d = r_.find(n, "description")) {
            rule.description = r_.string_value(*d, "description text").value_or("");
        }
        if (const auto* t = is_deny ? nullptr : r_.find(n, "tls")) {
            rule.tls = read_tls(*t);
        }
        if (const auto* p = r_.find(n, "protocol")) {
            if (auto proto = r_.string_value(*p, "protocol"); proto && *proto != "tcp") {
                r_.error(*p, "unsupported protocol '" + *proto + "': expected tcp");
            }
        }
        const auto* ports = is_deny ? r_.find(n, "ports") : r_.require(n, "ports", where);
        if (ports != nullptr) {
            read_ports(*ports, rule.ports);
        }
        const auto* dests = r_.find(n, "destinations");
        const auto* list = r_.find(n, "destinations_file");
        if (dests == nullptr && list == nullptr) {
            r_.error(n, "missing required key 'destinations' (or 'destinations_file') in " + where);
        }
        if (dests != nullptr) {
            read_destinations(*dests, rule);
        }
        if (list != nullptr) {
            read_destinations_file(*list, rule);
        }
        if (const auto* m = r_.find(n, "methods")) {
            read_methods(*m, rule);
        }
        if (const auto* p = r_.find(n, "paths")) {
            read_paths(*p, rule, is_deny);
        }
        if (const auto* e = r_.find(n, "expires")) {
            if (auto text = r_.string_value(*e, "an RFC 3339 time")) {
                rule.expires = parse_rfc3339(*text);
                if (!rule.expires) {
                    r_.error(*e, "unparseable time '" + *text +
                                     "': expected RFC 3339 with an offset, like 2026-12-31T23:59:59Z");
                }
            }
        }
        if (r_.error_count() != errors_before) {
            return std::nullopt;
        }
        return rule;
    }

    void read_ports(const yaml_node& n, std::vector<pol::port_range>& out)
    {
        // Only a list written empty: a list whose items were all wrong has had them reported already.
        bool empty = n.is_sequence() && n.items.empty();
        if (n.is_sequence()) {
            out.reserve(n.items.size());
        }
        r_.for_each_scalar(n, "ports", [&](const yaml_node& item) {
            if (auto range = read_port_range(item)) {
                out.push_back(*range);
            }
        });
        if (empty) {
            r_.error(n, "empty port list: expected ports like 443, 20-21 or all");
        }
    }

    std::optional<pol::port_range> read_port_range(const yaml_node& n)
    {
        const std::string& text = n.value;
        if (text == "all") {
            return pol::port_range{1, 65535};
        }
        std::size_t dash = text.find('-', 1);  // a leading '-' is a sign, reported as a bad port below
        if (dash == std::string::npos) {
            auto port = r_.integer_value(n, "a port", 1, 65535);
            if (!port) {
                return std::nullopt;
            }
            auto p = static_cast<std::uint16_t>(*port);
            return pol::port_range{p, p};
        }
        yaml_node first = n;
        yaml_node last = n;
        first.value = text.substr(0, dash);
        last.value = text.substr(dash + 1);
        auto lo = r_.integer_value(first, "the first port of range '" + text + "'", 1, 65535);
        auto hi = r_.integer_value(last, "the last port of range '" + text + "'", 1, 65535);
        if (!lo || !hi) {
            return std::nullopt;
        }
        if (*lo > *hi) {
            r_.error(n, "reversed port range '" + text + "': expected the lower port first, as in " +
                            std::to_string(*hi) + "-" + std::to_string(*lo));
            return std::nullopt;
        }
        return pol::port_range{static_cast<std::uint16_t>(*lo), static_cast<std::uint16_t>(*hi)};
    }

    // A domain pattern or a CIDR into the rule; the error when it is neither.
    static std::optional<std::string> add_destination(std::string_view text, pol::rule_spec& rule)
    {
        if (text.find('/') != std::string_view::npos || text.find(':') != std::string_view::npos ||
            pol::address::parse(text)) {
            std::string error;
            if (auto net = pol::cidr::parse(text, &error)) {
                rule.cidrs.push_back(*net);
                return std::nullopt;
            }
            return error;
        }
        auto pattern = pol::parse_domain_pattern(text);
        if (!pattern.value) {
            return "invalid destination '" + std::string(text) + "': " + pattern.error;
        }
        rule.domains.push_back(std::move(*pattern.value));
        return std::nullopt;
    }

    void read_destinations(const yaml_node& n, pol::rule_spec& rule)
    {
        if (n.is_sequence() && n.items.empty()) {
            r_.error(n, "empty destination list: expected domain patterns or CIDRs");
        }
        if (n.is_sequence()) {
            rule.domains.reserve(n.items.size());
        }
        r_.for_each_scalar(n, "destinations", [&](const yaml_node& node) {
            if (auto error = add_destination(node.value, rule)) {
                r_.error(node, std::move(*error));
            }
        });
    }

    // destinations_file: one pattern per line, '#' comments, relative to the directory of the policy file. Read and
    // checked once per policy file however many rules name it; its errors are reported once.
    void read_destinations_file(const yaml_node& n, pol::rule_spec& rule)
    {
        auto name = r_.string_value(n, "destinations_file: the path of a list file");
        if (!name) {
            return;
        }
        std::filesystem::path path(*name);
        if (path.is_relative()) {
            path = std::filesystem::path(file_name_).parent_path() / path;
        }
        std::string resolved = path.lexically_normal().string();
        auto cached = parsed_lists_.find(resolved);
        if (cached == parsed_lists_.end()) {
            std::string problem;
            auto text = read_list_file(resolved, problem);
            if (!text) {
                r_.error(n, "cannot read destinations_file '" + resolved + "': " + problem);
                if (std::find(part_.unreadable_lists.begin(), part_.unreadable_lists.end(), resolved) ==
                    part_.unreadable_lists.end()) {
                    part_.unreadable_lists.push_back(resolved);
                }
                return;
            }
            part_.lists.emplace_back(resolved, std::move(*text));
            cached = parsed_lists_.emplace(resolved, parse_list(resolved, part_.lists.back().second)).first;
        }
        const parsed_list& list = cached->second;
        if (list.destinations.domains.empty() && list.destinations.cidrs.empty() && list.errors == 0) {
            r_.error(n, "destinations_file '" + resolved + "' names no destination");
        }
        rule.domains.insert(rule.domains.end(), list.destinations.domains.begin(), list.destinations.domains.end());
        rule.cidrs.insert(rule.cidrs.end(), list.destinations.cidrs.begin(), list.destinations.cidrs.end());
    }

    struct parsed_list {
        pol::rule_spec destinations;  // only its domains and cidrs
        std::size_t errors = 0;
    };

    // A regular file only (a FIFO would block the reload thread, a device never end), at most max_list_bytes.
    static std::optional<std::string> read_list_file(const std::string& path, std::string& problem)
    {
        int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) {
            problem = std::strerror(errno);
            return std::nullopt;
        }
        struct stat st {};
        std::optional<std::string> text;
        if (::fstat(fd, &st) != 0) {
            problem = std::strerror(errno);
        } else if (!S_ISREG(st.st_mode)) {
            problem = "not a regular file";
        } else if (static_cast<std::uint64_t>(st.st_size) > max_list_bytes) {
            problem = "larger than " + std::to_string(max_list_bytes >> 20) + " MiB";
        } else {
            text.emplace();
            char buffer[1 << 16];
            for (;;) {
                ssize_t n = ::read(fd, buffer, sizeof buffer);
                if (n < 0 && errno == EINTR) {
                    continue;
                }
                if (n < 0) {
                    problem = std::strerror(errno);
                    text.reset();
                    break;
                }
                if (n == 0) {
                    break;
                }
                text->append(buffer, static_cast<std::size_t>(n));
                if (text->size() > max_list_bytes) {
                    problem = "larger than " + std::to_string(max_list_bytes >> 20) + " MiB";
                    text.reset();
                    break;
                }
            }
        }
        ::close(fd);
        return text;
    }

    // A list's line as an error quotes it: at most 40 characters, control characters as '?', so that a list
    // pointed at some other file does not copy that file into logs and reload answers.
    static std::string shown(std::string_view text)
    {
        std::string out;
        for (char c : text.substr(0, 40)) {
            out += static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? '?' : c;
        }
        return text.size() > 40 ? out + "..." : out;
    }

    parsed_list parse_list(const std::string& resolved, std::string_view text)
    {
        parsed_list list;
        std::uint32_t line = 0;
        for (std::size_t start = 0; start < text.size();) {
            std::size_t end = text.find('\n', start);
            std::string_view content = text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
            start = end == std::string_view::npos ? text.size() : end + 1;
            ++line;
            content = content.substr(0, content.find('#'));
            std::size_t first = content.find_first_not_of(" \t\r");
            if (first == std::string_view::npos) {
                continue;
            }
            std::size_t last = content.find_last_not_of(" \t\r");
            std::string_view pattern = content.substr(first, last - first + 1);
            std::optional<std::string> error;
            if (pattern.find_first_of(" \t") != std::string_view::npos) {
                error = "expected one destination per line, found '" + shown(pattern) + "'";
            } else if (pattern.size() > 253) {
                error = "invalid destination '" + shown(pattern) + "': longer than any name (253 characters)";
            } else if (auto why = add_destination(pattern, list.destinations)) {
                // The parser's own words quote the whole line: only when that is short and printable.
                error = shown(pattern) == pattern ? std::move(*why)
                                                  : "invalid destination '" + shown(pattern) + "': expected a domain "
                                                                                             "pattern or a CIDR";
            }
            if (error && ++list.errors <= max_errors_per_list) {
                part_.errors.push_back({resolved, mark{line, static_cast<std::uint32_t>(first + 1)}, std::move(*error)});
            }
        }
        if (list.errors > max_errors_per_list) {
            part_.errors.push_back({resolved, mark{line, 1},
                                    std::to_string(list.errors - max_errors_per_list) + " more invalid destinations (" +
                                        std::to_string(list.errors) + " in all)"});
        }
        return list;
    }

    void read_methods(const yaml_node& n, pol::rule_spec& rule)
    {
        if (n.is_sequence() && n.items.empty()) {
            r_.error(n, "empty method list: expected methods like GET, HEAD (or leave methods out: any method)");
        }
        r_.for_each_scalar(n, "methods", [&](const yaml_node& item) {
            const std::string& m = item.value;
            if (!valid_method(m)) {
                r_.error(item, "invalid method '" + m + "': expected an HTTP method like GET or POST");
            } else if (m != upper(m)) {
                r_.error(item, "method '" + m + "' is not upper case: methods are case-sensitive, write " + upper(m));
            } else if (std::find(rule.methods.begin(), rule.methods.end(), m) == rule.methods.end()) {
                rule.methods.push_back(m);
            }
        });
    }

    void read_paths(const yaml_node& n, pol::rule_spec& rule, bool is_deny)
    {
        if (n.is_sequence() && n.items.empty()) {
            r_.error(n, "empty path list: expected path prefixes like /simple/ (or leave paths out: any path)");
        }
        r_.for_each_scalar(n, "paths", [&](const yaml_node& item) {
            const std::string& p = item.value;
            bool printable = std::all_of(p.begin(), p.end(), [](char c) { return c > ' ' && c < 0x7f; });
            if (p.empty() || p.front() != '/' || !printable || p.find_first_of("?#") != std::string::npos) {
                r_.error(item, "invalid path prefix '" + p +
                                   "': expected a path starting with '/', without spaces, query or fragment");
            } else if (!protocol::http::is_normal_path(p)) {
                r_.error(item, "path prefix '" + p + "' is not in normal form: requests are matched after " +
                                   "percent-decoding and dot-segment removal, so write '" +
                                   protocol::http::normalise_path(p) + "'");
            } else if (!is_deny && protocol::http::loose_path(p) != p) {
                // An allow needs the prefix on the lenient reading too, which has none of these: it could never allow.
                r_.error(item, "path prefix '" + p + "' can never allow a request: a request's path must also fit " +
                                   "it read leniently (no '//', ';', '\\' or encoded slash), so write '" +
                                   protocol::http::loose_path(p) + "'");
            } else {
                rule.paths.push_back(p);
            }
        });
        bool connect = std::find(rule.methods.begin(), rule.methods.end(), "CONNECT") != rule.methods.end();
        if (connect && !rule.paths.empty()) {
            r_.error(n, "paths cannot apply to CONNECT (a tunnel's requests are encrypted): list CONNECT in a rule "
                        "without paths");
        }
    }

    void read_clients(const yaml_node& n)
    {
        if (!r_.expect_map(n, "clients: a mapping of client names to clients")) {
            return;
        }
        for (const auto& [key, value] : n.entries) {
            if (!read_name(key, "client")) {
                continue;
            }
            std::string where = "client '" + key.value + "'";
            if (!r_.expect_map(value, where)) {
                continue;
            }
            r_.check_keys(value, where,
                          {"description", "sources", "identities", "groups", "mode", "requests", "approvals", "deny"});
            pol::client_spec client;
            client.name = key.value;
            client.where = at(key);
            if (const auto* d = r_.find(value, "description")) {
                client.description = r_.string_value(*d, "description text").value_or("");
            }
            if (const auto* m = r_.find(value, "mode")) {
                client.mode_override = read_mode(*m);
            }
            if (const auto* q = r_.find(value, "requests")) {
                client.requests = read_requests(*q);
            }
            if (const auto* a = r_.find(value, "approvals")) {
                read_approvals(*a, client);
            }
            if (const auto* sources = r_.find(value, "sources")) {
                for (const auto* item : r_.scalar_list(*sources, "sources")) {
                    std::string error;
                    if (auto net = pol::cidr::parse(item->value, &error)) {
                        client.sources.push_back({*net, at(*item)});
                    } else {
                        r_.error(*item, error);
                    }
                }
            }
            if (const auto* identities = r_.find(value, "identities")) {
                for (const auto* item : r_.scalar_list(*identities, "identities")) {
                    if (auto pattern = read_identity(*item)) {
                        client.identities.push_back(std::move(*pattern));
                    }
                }
            }
            if (const auto* groups = r_.require(value, "groups", where)) {
                for (const auto* item : r_.scalar_list(*groups, "groups")) {
                    client.groups.push_back({item->value, at(*item)});
                }
            }
            if (const auto* deny = r_.find(value, "deny")) {
                read_deny(*deny, client.deny, "deny rule of client '" + key.value + "'");
            }
            part_.spec.clients.push_back(std::move(client));
        }
    }

    // Exact ("alice", "spiffe://corp/ns/batch/sa/worker") or a prefix pattern ending in "*".
    std::optional<pol::identity_pattern> read_identity(const yaml_node& n)
    {
        const std::string& text = n.value;
        bool printable = !text.empty() && text.size() <= 2048 &&
                         std::all_of(text.begin(), text.end(), [](char c) { return c > ' ' && c < 0x7f; });
        std::size_t star = text.find('*');
        if (!printable || (star != std::string::npos && star + 1 != text.size())) {
            r_.error(n, "invalid identity '" + text +
                            "': expected printable ASCII without spaces, with '*' only at the end (a prefix pattern)");
            return std::nullopt;
        }
        pol::identity_pattern p;
        p.prefix = star != std::string::npos;
        p.text = p.prefix ? text.substr(0, star) : text;
        p.where = at(n);
        return p;
    }

    void read_deny(const yaml_node& n, std::vector<pol::rule_spec>& into, const std::string& where)
    {
        if (!n.is_sequence()) {
            r_.error(n, "expected deny: a list of deny rules");
            return;
        }
        for (const auto& item : n.items) {
            if (auto rule = read_rule(item, where, true)) {
                into.push_back(std::move(*rule));
            }
        }
    }

    std::uint32_t file_;
    std::string file_name_;
    std::map<std::string, parsed_list> parsed_lists_;
    schema_reader& r_;
    file_part& part_;
};

file_part read_file(std::uint32_t index, const std::string& name, std::string_view text)
{
    file_part part;
    yaml_error parse_error;
    auto root = parse_yaml(text, parse_error);
    if (!root) {
        part.errors.push_back({name, parse_error.where, parse_error.message});
        return part;
    }
    schema_reader reader(name, part.errors);
    policy_reader(index, name, reader, part).read(*root);
    return part;
}

// Runs read(i) for i in [0, count) on up to hardware_concurrency threads.
void for_each_parallel(std::size_t count, const std::function<void(std::size_t)>& read)
{
    std::size_t threads = std::min<std::size_t>(count, std::max(1u, std::thread::hardware_concurrency()));
    if (threads <= 1) {
        for (std::size_t i = 0; i < count; ++i) {
            read(i);
        }
        return;
    }
    std::atomic<std::size_t> next{0};
    std::vector<std::jthread> pool;
    for (std::size_t t = 0; t < threads; ++t) {
        pool.emplace_back([&] {
            for (std::size_t i = next++; i < count; i = next++) {
                read(i);
            }
        });
    }
}

loaded_policy merge_and_compile(std::vector<std::string> names, std::vector<file_part> parts,
                                std::vector<std::pair<std::string, std::string>> sources)
{
    loaded_policy result;
    result.sources = std::move(sources);
    pol::policy_spec merged;
    merged.files = names;
    std::optional<std::size_t> mode_from;
    std::optional<std::size_t> guard_from;
    std::optional<std::size_t> tls_from;
    std::optional<std::size_t> revoke_from;
    std::optional<std::size_t> requests_from;
    // A policy-wide setting may be written in one file only; a second one names the first.
    auto once = [&](std::size_t i, bool present, mark file_part::*where, std::optional<std::size_t>& first,
                    std::string_view key, auto apply) {
        if (!present) {
            return;
        }
        if (first) {
            const mark& at = parts[*first].*where;
            result.errors.push_back({names[i], parts[i].*where,
                                     std::string(key) + " is also set at " + names[*first] + ":" +
                                         std::to_string(at.line) + ":" + std::to_string(at.column) +
                                         ": set it in one file only"});
            return;
        }
        first = i;
        apply();
    };
    for (std::size_t i = 0; i < parts.size(); ++i) {
        auto& part = parts[i];
        result.errors.insert(result.errors.end(), part.errors.begin(), part.errors.end());
        once(i, part.has_mode, &file_part::mode_mark, mode_from, "mode",
             [&] { merged.default_mode = part.spec.default_mode; });
        once(i, part.has_tls, &file_part::tls_mark, tls_from, "tls", [&] { merged.default_tls = part.spec.default_tls; });
        once(i, part.has_guard, &file_part::guard_mark, guard_from, "address_guard",
             [&] {
                 merged.guarded = part.spec.guarded;
                 merged.nat64_prefixes = part.spec.nat64_prefixes;
             });
        once(i, part.has_revoke, &file_part::revoke_mark, revoke_from, "on_revoke",
             [&] { merged.on_revoke = part.spec.on_revoke; });
        once(i, part.has_requests, &file_part::requests_mark, requests_from, "requests",
             [&] { merged.requests = part.spec.requests; });
        std::move(part.spec.groups.begin(), part.spec.groups.end(), std::back_inserter(merged.groups));
        std::move(part.spec.clients.begin(), part.spec.clients.end(), std::back_inserter(merged.clients));
        std::move(part.spec.deny.begin(), part.spec.deny.end(), std::back_inserter(merged.deny));
    }
    // List files count as files of the policy: the file watch reloads on their change, the digest covers them.
    std::vector<std::string> list_names;
    for (auto& part : parts) {
        for (auto& [name, text] : part.lists) {
            if (std::find(list_names.begin(), list_names.end(), name) == list_names.end()) {
                list_names.push_back(name);
                result.sources.emplace_back(name, std::move(text));
            }
        }
        for (auto& name : part.unreadable_lists) {
            if (std::find(result.unreadable_lists.begin(), result.unreadable_lists.end(), name) ==
                result.unreadable_lists.end()) {
                result.unreadable_lists.push_back(std::move(name));
            }
        }
    }
    // Clients' mode overrides that were not set fall back to the merged default inside compile.
    auto compiled = pol::policy::compile(std::move(merged));
    auto convert = [&](const pol::diagnostic& d) {
        std::string file = d.where.file < names.size() ? names[d.where.file] : std::string("<policy>");
        return diagnostic{file, mark{d.where.line, d.where.column}, d.message};
    };
    for (const auto& e : compiled.errors) {
        result.errors.push_back(convert(e));
    }
    for (const auto& w : compiled.warnings) {
        result.warnings.push_back(convert(w));
    }
    // Schema, merge and compile errors read best together, in file order and then by position.
    auto by_place = [](const std::vector<diagnostic>& list, const std::vector<std::string>& order) {
        std::vector<diagnostic> sorted = list;
        auto rank = [&](const diagnostic& d) {
            return std::find(order.begin(), order.end(), d.file) - order.begin();
        };
        std::stable_sort(sorted.begin(), sorted.end(), [&](const diagnostic& a, const diagnostic& b) {
            return std::tuple(rank(a), a.where.line, a.where.column) < std::tuple(rank(b), b.where.line, b.where.column);
        });
        return sorted;
    };
    names.insert(names.end(), list_names.begin(), list_names.end());
    result.list_files = std::move(list_names);
    result.errors = by_place(result.errors, names);
    result.warnings = by_place(result.warnings, names);
    if (result.errors.empty()) {
        result.snapshot = std::move(compiled.snapshot);
    }
    result.files = std::move(names);
    return result;
}

}  // namespace

loaded_policy load_policy(const std::filesystem::path& path)
{
    std::vector<std::string> names;
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
        for (const auto& entry : std::filesystem::directory_iterator(path, ec)) {
            auto ext = entry.path().extension();
            if (entry.is_regular_file() && (ext == ".yaml" || ext == ".yml")) {
                names.push_back(entry.path().string());
            }
        }
        std::sort(names.begin(), names.end());
        if (names.empty() && !ec) {
            loaded_policy result;
            result.errors.push_back({path.string(), mark{}, "no *.yaml or *.yml files in the policy directory"});
            return result;
        }
    } else {
        // Not a directory, or nothing there: read it as a file, whose opening reports what is wrong.
        ec.clear();
        names.push_back(path.string());
    }
    if (ec) {
        loaded_policy result;
        result.errors.push_back({path.string(), mark{}, "cannot read the policy directory: " + ec.message()});
        return result;
    }
    std::vector<file_part> parts(names.size());
    std::vector<std::pair<std::string, std::string>> sources(names.size());
    for_each_parallel(names.size(), [&](std::size_t i) {
        sources[i].first = names[i];
        std::ifstream in(names[i], std::ios::binary);
        if (!in) {
            parts[i].errors.push_back({names[i], mark{}, "cannot open the policy file"});
            return;
        }
        // Read whole, then parsed from memory: the bytes parsed are then exactly the bytes kept in sources.
        std::ostringstream text;
        text << in.rdbuf();
        sources[i].second = std::move(text).str();
        parts[i] = read_file(static_cast<std::uint32_t>(i), names[i], sources[i].second);
    });
    return merge_and_compile(std::move(names), std::move(parts), std::move(sources));
}

loaded_policy load_policy_texts(const std::vector<std::pair<std::string, std::string>>& files)
{
    std::vector<std::string> names;
    std::vector<file_part> parts;
    for (std::size_t i = 0; i < files.size(); ++i) {
        names.push_back(files[i].first);
        parts.push_back(read_file(static_cast<std::uint32_t>(i), files[i].first, files[i].second));
    }
    return merge_and_compile(std::move(names), std::move(parts), files);
}

}  // namespace egressd::config
