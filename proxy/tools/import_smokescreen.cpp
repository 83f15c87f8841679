#include "proxy/tools/import_smokescreen.hpp"

#include "config/policy_loader.hpp"
#include "policy/address.hpp"
#include "policy/domain.hpp"
#include "proxy/cli.hpp"
#include "proxy/tools/yaml_quote.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <ostream>
#include <random>
#include <set>
#include <sstream>
#include <system_error>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

namespace egressd::proxy::tools {
namespace smokescreen {
namespace {

using config::diagnostic;
using config::mark;
using config::yaml_node;

// ---------------------------------------------------------------------------------------------------------
// Reading the ACL

std::string lower(std::string_view s)
{
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c); });
    return out;
}

std::string in_quotes(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string_view kind_of(const yaml_node& n)
{
    return n.is_map() ? "a mapping" : n.is_sequence() ? "a list" : n.is_scalar() ? "a scalar" : "nothing";
}

// Reads the tree as smokescreen's yaml.Unmarshal into YAMLConfig does: the keys it knows, with their types;
// other keys are ignored (smokescreen does not read strictly), but listed so the report can name them.
class acl_reader {
public:
    acl_reader(std::string file, std::vector<diagnostic>& errors, std::vector<diagnostic>& ignored)
        : file_(std::move(file)), errors_(errors), ignored_(ignored)
    {
    }

    void error(mark at, std::string message) { errors_.push_back({file_, at, std::move(message)}); }

    std::optional<acl> read(const yaml_node& root)
    {
        acl out;
        out.file = file_;
        if (!root.is_map()) {
            error(root.where, "expected a smokescreen ACL (a mapping with version: v1 and services), found " +
                                  std::string(kind_of(root)));
            return std::nullopt;
        }
        const yaml_node* version = nullptr;
        const yaml_node* services = nullptr;
        for_each_entry(root, "the ACL", [&](const std::string& key, const yaml_node& k, const yaml_node& v) {
            if (key == "version") {
                version = &v;
            } else if (key == "services") {
                services = &v;
            } else if (key == "default") {
                out.default_at = k.where;
                if (!v.is_null()) {
                    out.default_rule = read_rule(v, "the default rule", true);
                }
            } else if (key == "global_allow_list") {
                out.global_allow_at = k.where;
                out.global_allow_list = string_list(v, "global_allow_list");
            } else if (key == "global_deny_list") {
                out.global_deny_at = k.where;
                out.global_deny_list = string_list(v, "global_deny_list");
            } else {
                ignore(k, "the ACL");
            }
        });
        if (version == nullptr) {
            error(root.where, "expected version \"v1\": the ACL has no version");
        } else if (!version->is_scalar() || version->value != "v1") {
            std::string found = version->is_scalar() ? "\"" + version->value + "\"" : std::string(kind_of(*version));
            error(version->where, "expected version \"v1\", found " + found);
        }
        if (services == nullptr || services->is_null()) {
            error(services == nullptr ? root.where : services->where, "top level list 'services' is missing");
        } else if (!services->is_sequence()) {
            error(services->where, "expected services: a list of services, found " + std::string(kind_of(*services)));
        } else {
            for (const auto& item : services->items) {
                if (auto r = read_rule(item, "a service", false)) {
                    out.services.push_back(std::move(*r));
                }
            }
        }
        return out;
    }

private:
    template <typename F>
    void for_each_entry(const yaml_node& map, std::string_view where, F&& f)
    {
        std::map<std::string, mark> seen;
        for (const auto& e : map.entries) {
            if (!e.key.is_scalar()) {
                error(e.key.where, "expected a key (a string) in " + std::string(where));
                continue;
            }
            if (auto [it, fresh] = seen.emplace(e.key.value, e.key.where); !fresh) {
                error(e.key.where, "key " + in_quotes(e.key.value) + " already set in " + std::string(where) + " (line " +
                                       std::to_string(it->second.line) + ")");
                continue;
            }
            f(e.key.value, e.key, e.value);
        }
    }

    void ignore(const yaml_node& key, std::string_view where)
    {
        ignored_.push_back({file_, key.where, in_quotes(key.value) + " in " + std::string(where) +
                                                  " is not a key smokescreen reads: ignored (smokescreen ignores it too)"});
    }

    // A Go string field: a scalar, or nothing (the empty string).
    std::string scalar(const yaml_node& n, std::string_view what)
    {
        if (n.is_null()) {
            return {};
        }
        if (!n.is_scalar()) {
            error(n.where, "expected " + std::string(what) + ": a string, found " + std::string(kind_of(n)));
            return {};
        }
        return n.value;
    }

    // A Go []string field: a list of scalars, or nothing.
    std::vector<located> string_list(const yaml_node& n, std::string_view what)
    {
        std::vector<located> out;
        if (n.is_null()) {
            return out;
        }
        if (!n.is_sequence()) {
            error(n.where, "expected " + std::string(what) + ": a list of strings, found " + std::string(kind_of(n)));
            return out;
        }
        for (const auto& item : n.items) {
            if (!item.is_scalar()) {
                error(item.where, "expected " + std::string(what) + " items to be strings, found " +
                                      std::string(kind_of(item)));
                continue;
            }
            out.push_back({item.value, item.where});
        }
        return out;
    }

    std::optional<rule> read_rule(const yaml_node& n, std::string_view what, bool is_default)
    {
        if (!n.is_map()) {
            error(n.where, "expected " + std::string(what) + ": a mapping, found " + std::string(kind_of(n)));
            return std::nullopt;
        }
        rule r;
        r.where = n.where;
        r.action_at = n.where;
        std::optional<std::string> action_text;
        for_each_entry(n, what, [&](const std::string& key, const yaml_node& k, const yaml_node& v) {
            if (key == "name") {
                // The default rule's name is read by smokescreen's YAML struct but never used.
                r.name = scalar(v, "name");
                if (is_default) {
                    ignored_.push_back({file_, k.where, "the default rule's name is not used by smokescreen: ignored"});
                }
            } else if (key == "project") {
                r.project = scalar(v, "project");
            } else if (key == "action") {
                action_text = scalar(v, "action");
                r.action_at = v.where;
            } else if (key == "allowed_domains") {
                r.allowed_domains = string_list(v, "allowed_domains");
            } else if (key == "allowed_external_proxies") {
                r.allowed_external_proxies = string_list(v, "allowed_external_proxies");
            } else if (key == "mitm_domains") {
                read_mitm_domains(v, r);
            } else {
                ignore(k, what);
            }
        });
        std::string text = action_text.value_or("");
        if (text == "open") {
            r.policy = action::open;
        } else if (text == "report") {
            r.policy = action::report;
        } else if (text == "enforce") {
            r.policy = action::enforce;
        } else {
            error(r.action_at, "unknown action " + in_quotes(text) + " in " + std::string(what) +
                                   (r.name.empty() ? "" : " " + in_quotes(r.name)) + ": expected open, report or enforce");
            return std::nullopt;
        }
        return r;
    }

    void read_mitm_domains(const yaml_node& n, rule& r)
    {
        if (n.is_null()) {
            return;
        }
        if (!n.is_sequence()) {
            error(n.where, "expected mitm_domains: a list of mappings, found " + std::string(kind_of(n)));
            return;
        }
        for (const auto& item : n.items) {
            if (!item.is_map()) {
                error(item.where, "expected a mitm_domains item: a mapping, found " + std::string(kind_of(item)));
                continue;
            }
            bool has_domain = false;
            for_each_entry(item, "a mitm_domains item", [&](const std::string& key, const yaml_node& k,
                                                             const yaml_node& v) {
                if (key == "domain") {
                    r.mitm_domains.push_back({scalar(v, "domain"), v.where});
                    has_domain = true;
                } else if (key != "add_headers" && key != "detailed_http_logs" &&
                           key != "detailed_http_logs_full_headers") {
                    ignore(k, "a mitm_domains item");
                }
            });
            if (!has_domain) {
                r.mitm_domains.push_back({"", item.where});
            }
        }
    }

    std::string file_;
    std::vector<diagnostic>& errors_;
    std::vector<diagnostic>& ignored_;
};

// smokescreen's ValidateDomainGlob. The name after "*." must be what hostport.NormalizeHost makes of it: lower
// case (Go's strings.ToLower), ASCII (Punycode: idna.Lookup.ToASCII), an IP literal in Go's canonical form.
std::optional<std::string> glob_error(std::string_view glob)
{
    if (glob.empty()) {
        return "glob cannot be empty";
    }
    if (glob == "*" || glob == "*.") {
        return "domain glob must not match everything";
    }
    if (glob.starts_with("*") && !glob.starts_with("*.")) {
        return "domain glob must represent a full prefix (sub)domain";
    }
    std::string_view rest = glob.starts_with("*.") ? glob.substr(2) : glob;
    if (rest.find('*') != std::string_view::npos) {
        return "domain globs are only supported as prefix";
    }
    if (auto a = policy::address::parse(rest)) {
        if (a->to_string() != rest) {
            return "incorrect ACL entry; use \"" + std::string(glob.starts_with("*.") ? "*." : "") + a->to_string() +
                   "\"";
        }
        return std::nullopt;
    }
    if (std::any_of(rest.begin(), rest.end(), [](unsigned char c) { return c >= 0x80; })) {
        return "incorrect ACL entry: the name must be written in Punycode (xn--...)";
    }
    if (lower(rest) != rest) {
        return "incorrect ACL entry; use \"" + lower(glob) + "\"";
    }
    return std::nullopt;
}

void validate(const acl& a, std::vector<diagnostic>& errors)
{
    auto check = [&](const std::vector<located>& globs, std::string_view owner) {
        for (const auto& g : globs) {
            if (auto e = glob_error(g.text)) {
                errors.push_back({a.file, g.where, std::string(owner) + ": " + in_quotes(g.text) + ": " + *e});
            }
        }
    };
    auto check_rule = [&](const rule& r, const std::string& owner) {
        check(r.allowed_domains, owner);
        check(r.mitm_domains, owner + " mitm_domains");
        check(r.allowed_external_proxies, owner + " allowed_external_proxies");
        for (const auto& m : r.mitm_domains) {
            bool listed = std::any_of(r.allowed_domains.begin(), r.allowed_domains.end(),
                                      [&](const located& d) { return d.text == m.text; });
            if (!m.text.empty() && !listed) {
                errors.push_back({a.file, m.where, "domain " + m.text +
                                                       " was added to mitm_domains but is missing in allowed_domains"});
            }
        }
    };
    std::map<std::string, mark> seen;
    for (const auto& s : a.services) {
        if (auto [it, fresh] = seen.emplace(s.name, s.where); !fresh) {
            errors.push_back({a.file, s.where, "rule already exists for service " + in_quotes(s.name) + " (line " +
                                                   std::to_string(it->second.line) + ")"});
        }
        check_rule(s, "service " + in_quotes(s.name));
    }
    if (a.default_rule) {
        check_rule(*a.default_rule, "default_rule");
    }
    check(a.global_deny_list, "global_deny_list");
    check(a.global_allow_list, "global_allow_list");
}

// ---------------------------------------------------------------------------------------------------------
// smokescreen's decision

std::string trim_dots(std::string s)
{
    while (!s.empty() && s.back() == '.') {
        s.pop_back();
    }
    return s;
}

enum class stage : std::uint8_t { no_rule, allowed_domains, global_deny, global_allow, rule_action };

struct staged_decision {
    decision d;
    stage at = stage::no_rule;
    const located* matched = nullptr;
};

// Globs indexed by the name they are about, so that a host is looked up, not compared with every glob: an exact
// glob under its name, "*.example.com" under example.com (found from the host's parent names). Matches are
// reported in list order, as smokescreen's loops see them.
class glob_index {
public:
    glob_index() = default;
    explicit glob_index(const std::vector<std::string_view>& globs)
    {
        for (std::size_t i = 0; i < globs.size(); ++i) {
            std::string_view g = globs[i];
            bool wild = g.starts_with("*.");
            (wild ? below_ : exact_)[trim_dots(lower(wild ? g.substr(2) : g))].push_back(i);
        }
    }

    // Every index whose glob matches host (host_matches_glob), in increasing order.
    std::vector<std::size_t> matches(std::string_view host) const
    {
        std::vector<std::size_t> out;
        if (host.empty()) {
            return out;
        }
        std::string h = trim_dots(lower(host));
        auto take = [&](const std::unordered_map<std::string, std::vector<std::size_t>>& m, const std::string& k) {
            if (auto it = m.find(k); it != m.end()) {
                out.insert(out.end(), it->second.begin(), it->second.end());
            }
        };
        take(exact_, h);
        for (std::size_t dot = h.find('.'); dot != std::string::npos && dot + 1 < h.size(); dot = h.find('.', dot + 1)) {
            if (dot > 0) {
                take(below_, h.substr(dot + 1));
            }
        }
        std::sort(out.begin(), out.end());
        return out;
    }

    std::optional<std::size_t> first(std::string_view host) const
    {
        auto all = matches(host);
        return all.empty() ? std::nullopt : std::optional(all.front());
    }

private:
    std::unordered_map<std::string, std::vector<std::size_t>> exact_;
    std::unordered_map<std::string, std::vector<std::size_t>> below_;
};

std::vector<std::string_view> texts(const std::vector<located>& list)
{
    std::vector<std::string_view> out;
    out.reserve(list.size());
    for (const auto& g : list) {
        out.push_back(g.text);
    }
    return out;
}

// The ACL's lists, indexed once for many decisions.
struct acl_index {
    explicit acl_index(const acl& a)
        : deny(texts(a.global_deny_list)), allow(texts(a.global_allow_list))
    {
        for (const auto& s : a.services) {
            roles.emplace(s.name, &s);  // read_acl refuses a service named twice
            allowed.emplace(&s, glob_index(texts(s.allowed_domains)));
        }
        if (a.default_rule) {
            allowed.emplace(&*a.default_rule, glob_index(texts(a.default_rule->allowed_domains)));
        }
    }
    glob_index deny;
    glob_index allow;
    std::unordered_map<std::string, const rule*> roles;
    std::unordered_map<const rule*, glob_index> allowed;
};

const rule* rule_for(const acl& a, const acl_index& x, std::string_view role)
{
    if (auto it = x.roles.find(std::string(role)); it != x.roles.end()) {
        return it->second;
    }
    return a.default_rule ? &*a.default_rule : nullptr;
}

const located* first_match(const std::vector<located>& globs, const glob_index& index, std::string_view host)
{
    auto i = index.first(host);
    return i ? &globs[*i] : nullptr;
}

staged_decision decide_staged(const acl& a, const acl_index& x, std::string_view role, std::string_view host)
{
    staged_decision s;
    const rule* r = rule_for(a, x, role);
    if (r == nullptr) {
        s.d = {result::deny, "no rule matched"};
        return s;
    }
    if ((s.matched = first_match(r->allowed_domains, x.allowed.at(r), host))) {
        s.d = {result::allow, "host matched allowed domain in rule"};
        s.at = stage::allowed_domains;
        return s;
    }
    if ((s.matched = first_match(a.global_deny_list, x.deny, host))) {
        s.d = {result::deny, "host matched rule in global deny list"};
        s.at = stage::global_deny;
        return s;
    }
    if ((s.matched = first_match(a.global_allow_list, x.allow, host))) {
        s.d = {result::allow, "host matched rule in global allow list"};
        s.at = stage::global_allow;
        return s;
    }
    s.at = stage::rule_action;
    switch (r->policy) {
    case action::report:
        s.d = {result::allow_and_report, "rule has allow and report policy"};
        break;
    case action::enforce:
        s.d = {result::deny, "rule has enforce policy"};
        break;
    case action::open:
        s.d = {result::allow, "rule has open enforcement policy"};
        break;
    }
    if (a.default_rule && r == &*a.default_rule) {
        s.d.reason = "default rule policy used";
    }
    return s;
}

}  // namespace

std::string_view to_string(action a)
{
    switch (a) {
    case action::open:
        return "open";
    case action::report:
        return "report";
    case action::enforce:
        return "enforce";
    }
    return "enforce";
}

std::string_view to_string(result r)
{
    switch (r) {
    case result::allow:
        return "allow";
    case result::allow_and_report:
        return "allow_and_report";
    case result::deny:
        return "deny";
    }
    return "deny";
}

bool host_matches_glob(std::string_view host, std::string_view glob)
{
    if (host.empty()) {
        return false;
    }
    std::string h = trim_dots(lower(host));
    if (glob.starts_with("*.")) {
        std::string suffix = "." + trim_dots(lower(glob.substr(2)));
        return h.size() > suffix.size() && h.ends_with(suffix);
    }
    return h == trim_dots(lower(glob));
}

decision decide(const acl& a, std::string_view role, std::string_view host)
{
    return decide_staged(a, acl_index(a), role, host).d;
}

read_result read_acl(std::string file, std::string_view text)
{
    read_result out;
    config::yaml_error yerr;
    auto root = config::parse_yaml(text, yerr);
    if (!root) {
        out.errors.push_back({file, yerr.where, yerr.message});
        return out;
    }
    std::vector<diagnostic> ignored;
    acl_reader reader(file, out.errors, ignored);
    auto a = reader.read(*root);
    if (a) {
        validate(*a, out.errors);
    }
    if (!out.errors.empty() || !a) {
        std::stable_sort(out.errors.begin(), out.errors.end(), [](const diagnostic& x, const diagnostic& y) {
            return std::tie(x.where.line, x.where.column) < std::tie(y.where.line, y.where.column);
        });
        return out;
    }
    a->ignored = std::move(ignored);
    out.value = std::move(a);
    return out;
}

// ---------------------------------------------------------------------------------------------------------
// The translation

namespace {

// egressd's client and group names: 1 to 128 of letters, digits, '-', '_', '.'.
std::string sanitize_name(std::string_view s)
{
    std::string out;
    for (char c : s.substr(0, 100)) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                  c == '_' || c == '.';
        out += ok ? c : '-';
    }
    return out.empty() ? std::string("service") : out;
}

// What egressd's TLS listener takes as a certificate's identity (certs/tls.cpp, usable_identity): printable ASCII
// without spaces, at most 2048 bytes. A CN that is not is refused (client_identity_invalid).
bool certificate_identity(std::string_view s)
{
    return !s.empty() && s.size() <= 2048 && std::all_of(s.begin(), s.end(), [](char c) { return c > ' ' && c < 0x7f; });
}

// An exact egressd identity: also no '*', which in a policy makes a prefix pattern.
bool usable_identity(std::string_view s) { return certificate_identity(s) && s.find('*') == std::string_view::npos; }

// The most derived cases written: a large ACL gives an even sample (the Squid importer's bound).
constexpr std::size_t max_cases = 2000;

struct note {
    mark where;  // line 0: about the ACL as a whole
    std::string text;
};

// A smokescreen glob as an egressd destination, when egressd can say exactly the same thing.
struct carried {
    const located* src = nullptr;
    std::string dest;
};

enum class overlap : std::uint8_t { none, partial, covered };

// How much of what deny glob d matches is also matched by allow glob a (both valid smokescreen globs).
overlap overlap_of(std::string_view d, std::string_view a)
{
    std::string dn = trim_dots(lower(d.starts_with("*.") ? d.substr(2) : d));
    std::string an = trim_dots(lower(a.starts_with("*.") ? a.substr(2) : a));
    bool d_wild = d.starts_with("*.");
    bool a_wild = a.starts_with("*.");
    auto below = [](const std::string& name, const std::string& parent) {
        return name.size() > parent.size() + 1 && name.ends_with("." + parent);
    };
    if (!d_wild) {
        if (a_wild ? below(dn, an) : dn == an) {
            return overlap::covered;
        }
        return overlap::none;
    }
    if (!a_wild) {
        return below(an, dn) ? overlap::partial : overlap::none;
    }
    if (dn == an || below(dn, an)) {
        return overlap::covered;
    }
    return below(an, dn) ? overlap::partial : overlap::none;
}

struct client_model {
    std::string name;      // the egressd client name
    std::string identity;  // the role; empty for the default client
    const rule* src = nullptr;
    bool is_default = false;
    std::string group;  // the egressd group of its allowed_domains; empty when none carried over
    std::vector<carried> allow;
    std::vector<std::size_t> own_deny;  // deny entries (index) that apply to this client and not to all
    bool report_mode = false;
};

// A role with '*' in it: egressd takes such a certificate CN as the identity, but no policy identity names it
// exactly (a trailing '*' makes a prefix pattern). Left alone it would be the default client; instead the longest
// prefix pattern that catches it (what comes before the first '*') goes to a client with no groups, so the role is
// denied everything. The same pattern also catches unlisted roles that start with that prefix.
struct catch_client {
    std::string name;
    std::string prefix;
    std::vector<const rule*> roles;  // the services it stands for
};

struct deny_entry {
    carried glob;
    std::vector<bool> applies;  // per client model
    bool everyone = true;
};

// What egressd's `policy test` says, and whether the traffic passes (report mode lets a denial through).
struct outcome {
    bool allow = false;
    std::string reason;  // egressd reason code
    bool passes = false;
    friend bool operator==(const outcome&, const outcome&) = default;
};

std::string outcome_text(const outcome& o)
{
    return std::string(o.allow ? "allow" : "deny [" + o.reason + "]") +
           (o.passes ? "; traffic passes" : "; traffic blocked") +
           (!o.allow && o.passes ? " (report mode: egress.would_deny)" : "");
}

class translator {
public:
    translator(const acl& a, std::string acl_name) : a_(a), acl_name_(std::move(acl_name)) {}

    import_output run()
    {
        build_clients();
        build_global_allow();
        build_deny();
        build_indexes();
        general_notes();
        import_output out;
        out.policy_yaml = policy_text();
        out.server_yaml = server_text();
        write_cases(out);
        out.clients = clients_.size() + catches_.size();
        for (const auto& c : catches_) {
            out.wildcard_roles += c.roles.size();
        }
        out.groups = std::count_if(clients_.begin(), clients_.end(), [](const client_model& c) {
                         return !c.group.empty();
                     }) + (global_allow_.empty() ? 0 : 1);
        for (const auto& d : a_.ignored) {
            notes_.push_back({d.where, "ignored: " + d.message});
        }
        out.report_text = report_text();
        out.report_lines = notes_.size();
        return out;
    }

private:
    std::string at(mark m) const
    {
        return m.line == 0 ? acl_name_ : acl_name_ + ":" + std::to_string(m.line) + ":" + std::to_string(m.column);
    }
    std::string line_of(mark m) const { return acl_name_ + ":" + std::to_string(m.line); }

    // The egressd destination for a smokescreen glob, or a note saying why there is none.
    std::optional<carried> carry(const located& g, const std::string& owner)
    {
        if (g.text.starts_with(".")) {
            // smokescreen compares it as an exact name, which no host is; egressd would read ".x" as x and
            // every name below it.
            notes_.push_back({g.where, "not carried over: " + owner + " " + in_quotes(g.text) +
                                           " matches no host in smokescreen (an exact name starting with a dot); "
                                           "in egressd it would mean the domain and every name below it"});
            return std::nullopt;
        }
        if (auto addr = policy::address::parse(g.text)) {
            std::string cidr = addr->to_string() + (addr->is_v4() ? "/32" : "/128");
            notes_.push_back({g.where, "inexact: " + owner + " IP address " + g.text + " becomes the CIDR " + cidr +
                                           ": egressd matches it only for a CONNECT to that literal, as smokescreen "
                                           "does, but an allow CIDR also opens the address guard for it (smokescreen "
                                           "still refuses private ranges unless --allow-range) and a deny CIDR also "
                                           "refuses names that resolve to it"});
            return carried{&g, cidr};
        }
        auto p = policy::parse_domain_pattern(g.text);
        if (!p.value) {
            notes_.push_back({g.where, "not carried over: " + owner + " " + in_quotes(g.text) +
                                           ": egressd refuses the pattern: " + p.error});
            return std::nullopt;
        }
        return carried{&g, p.value->to_string()};
    }

    std::string unique_client_name(std::string base)
    {
        std::string name = base;
        for (int i = 2; used_names_.count(name) > 0; ++i) {
            name = base + "-" + std::to_string(i);
        }
        used_names_.insert(name);
        return name;
    }

    void build_clients()
    {
        // "default" is egressd's catch-all client; "-" is reserved (it stands for no client).
        used_names_.insert("default");
        used_names_.insert("-");
        for (const auto& s : a_.services) {
            if (!certificate_identity(s.name)) {
                notes_.push_back(
                    {s.where, "not carried over: service " + in_quotes(s.name) +
                                  " cannot be an egressd identity (printable ASCII without spaces, at most 2048 "
                                  "bytes): egressd's TLS listener refuses a certificate with this CN "
                                  "(client_identity_invalid). Its cases are left out"});
                continue;
            }
            if (!usable_identity(s.name)) {
                add_catch(s);
                continue;
            }
            client_model c;
            c.src = &s;
            c.identity = s.name;
            c.name = unique_client_name(sanitize_name(s.name));
            if (c.name != s.name) {
                notes_.push_back({s.where, "note: service " + in_quotes(s.name) + " is the egressd client " +
                                               in_quotes(c.name) + " (client names are letters, digits, '-', '_', '.'; "
                                               "default is egressd's catch-all); its identity stays " +
                                               in_quotes(s.name)});
            }
            add_allow(c, "service " + in_quotes(s.name));
            clients_.push_back(std::move(c));
        }
        if (a_.default_rule) {
            client_model c;
            c.src = &*a_.default_rule;
            c.is_default = true;
            c.name = "default";
            add_allow(c, "the default rule");
            clients_.push_back(std::move(c));
        }
        for (auto& c : clients_) {
            c.report_mode = c.src->policy != action::enforce;
            if (!c.allow.empty()) {
                c.group = unique_client_name(c.is_default ? "default-allowed-domains" : "service-" + c.name);
            }
            action_notes(c);
        }
    }

    void add_catch(const rule& s)
    {
        std::string prefix = s.name.substr(0, s.name.find('*'));
        auto it = std::find_if(catches_.begin(), catches_.end(), [&](const catch_client& c) { return c.prefix == prefix; });
        if (it == catches_.end()) {
            catches_.push_back({unique_client_name("wildcard-role-" + sanitize_name(prefix.empty() ? "all" : prefix)),
                                prefix, {}});
            it = std::prev(catches_.end());
        }
        it->roles.push_back(&s);
        std::string others = prefix.empty()
                                 ? std::string("every certificate whose CN no service names exactly: the default rule "
                                               "then applies only to clients without a certificate")
                                 : "every unlisted role starting with " + in_quotes(prefix) +
                                       " (smokescreen gives those the default rule)";
        notes_.push_back(
            {s.where, "FAIL CLOSED: service " + in_quotes(s.name) + " has '*' in its name. egressd takes a certificate "
                      "with this CN as the identity " + in_quotes(s.name) + ", but no policy identity names it exactly "
                      "(a trailing '*' is a prefix pattern), so it would land on the default client. It is caught by "
                      "client " + in_quotes(it->name) + " (identities: [" + in_quotes(prefix + "*") + "], no groups): "
                      "egressd DENIES it everything, where smokescreen applies its rule. The pattern also denies " +
                      others + "; services listed by exact name keep their own clients. Rename the role (a "
                      "certificate CN without '*') to carry its rule over"});
    }

    void add_allow(client_model& c, const std::string& who)
    {
        for (const auto& g : c.src->allowed_domains) {
            if (auto k = carry(g, who + " allowed_domains")) {
                c.allow.push_back(std::move(*k));
            }
        }
        for (const auto& m : c.src->mitm_domains) {
            notes_.push_back({m.where, "not carried over: " + who + " mitm_domains " +
                                           in_quotes(m.text) +
                                           ": egressd does not intercept TLS (no added headers, no detailed HTTP "
                                           "logs); the domain itself stays allowed through allowed_domains"});
        }
        for (const auto& p : c.src->allowed_external_proxies) {
            notes_.push_back(
                {p.where, "not carried over: " + who + " allowed_external_proxies " +
                              in_quotes(p.text) +
                              ": egressd has no client-chosen external proxy (smokescreen's X-Upstream-Https-Proxy); "
                              "a group's parent proxy is set in the policy (upstream_proxy), not by the client"});
        }
    }

    void action_notes(const client_model& c)
    {
        std::string who = c.is_default ? std::string("the default rule") : "service " + in_quotes(c.identity);
        bool denies = !a_.global_deny_list.empty();
        if (c.src->policy == action::open) {
            notes_.push_back(
                {c.src->action_at,
                 "inexact: " + who + " has action open: smokescreen allows every host that is not globally denied. "
                 "egressd has no rule that allows every name (a domain pattern names a domain; 0.0.0.0/0 and ::/0 "
                 "match IP literals only), so client " + in_quotes(c.name) +
                 " runs in report mode: every host passes, and those outside its allowed_domains and the global allow "
                 "list are logged as egress.would_deny (no_matching_rule) where smokescreen logs an allow" +
                 (denies ? std::string("; globally denied hosts pass too (smokescreen blocks them)") : std::string())});
        } else if (c.src->policy == action::report && denies) {
            notes_.push_back({c.src->action_at,
                              "inexact: " + who + " has action report: client " + in_quotes(c.name) +
                                  " runs in egressd's report mode, where every denial passes as egress.would_deny; "
                                  "smokescreen still blocks the hosts of global_deny_list for a report service"});
        }
    }

    void build_global_allow()
    {
        for (const auto& g : a_.global_allow_list) {
            if (auto k = carry(g, "global_allow_list")) {
                global_allow_.push_back(std::move(*k));
            }
        }
        if (!global_allow_.empty()) {
            global_allow_group_ = unique_client_name("global-allow-list");
        }
    }

    // smokescreen checks a service's allowed_domains before the global deny list, so a service may reach a
    // globally denied name it lists itself; in egressd every deny wins. A deny glob therefore applies only to
    // the clients whose allowed_domains do not cover it: for everyone in the policy's deny list, otherwise in the
    // deny lists of the clients it applies to.
    void build_deny()
    {
        for (const auto& g : a_.global_deny_list) {
            auto k = carry(g, "global_deny_list");
            if (!k) {
                continue;
            }
            deny_entry e;
            e.glob = *k;
            for (const auto& c : clients_) {
                overlap worst = overlap::none;
                const located* by = nullptr;
                for (const auto& a : c.src->allowed_domains) {
                    auto o = overlap_of(g.text, a.text);
                    if (o > worst) {
                        worst = o;
                        by = &a;
                    }
                }
                std::string who = c.is_default ? std::string("the default rule") : "service " + in_quotes(c.identity);
                if (worst == overlap::covered) {
                    notes_.push_back({g.where, "note: global_deny_list " + in_quotes(g.text) + " does not apply to " +
                                                   who + ": its allowed_domains " + in_quotes(by->text) + " (" +
                                                   line_of(by->where) +
                                                   ") wins in smokescreen; the deny is written into the deny lists "
                                                   "of the other clients"});
                } else if (worst == overlap::partial) {
                    notes_.push_back({by->where, "inexact: " + who + " allowed_domains " + in_quotes(by->text) +
                                                     " lies inside global_deny_list " + in_quotes(g.text) + " (" +
                                                     line_of(g.where) +
                                                     "): smokescreen allows those names for it, egressd denies them "
                                                     "(every deny wins; the deny is kept rather than lost for the "
                                                     "rest of " + in_quotes(g.text) + ")"});
                }
                e.applies.push_back(worst != overlap::covered);
            }
            e.everyone = std::all_of(e.applies.begin(), e.applies.end(), [](bool b) { return b; });
            for (std::size_t i = 0; i < clients_.size() && !e.everyone; ++i) {
                if (e.applies[i]) {
                    clients_[i].own_deny.push_back(deny_.size());
                }
            }
            deny_.push_back(std::move(e));
        }
    }

    void build_indexes()
    {
        for (std::size_t i = 0; i < clients_.size(); ++i) {
            if (!clients_[i].is_default) {
                by_identity_.emplace(clients_[i].identity, i);
            }
        }
        auto carried_texts = [](const auto& list, auto text_of) {
            std::vector<std::string_view> out;
            for (const auto& k : list) {
                out.push_back(text_of(k));
            }
            return out;
        };
        auto text_of = [](const carried& k) { return std::string_view(k.src->text); };
        for (const auto& c : clients_) {
            allow_index_.emplace_back(carried_texts(c.allow, text_of));
        }
        global_allow_index_ = glob_index(carried_texts(global_allow_, text_of));
        deny_index_ = glob_index(carried_texts(deny_, [](const deny_entry& e) { return std::string_view(e.glob.src->text); }));
    }

    void general_notes()
    {
        notes_.push_back({{}, "ports: smokescreen's ACL does not look at ports, so every allow rule has ports: all "
                              "(egressd warns about it); narrow them to what the services use, e.g. [443]"});
        notes_.push_back(
            {{}, "identities: smokescreen's role is the client certificate's subject CN (main.go, "
                 "defaultRoleFromRequest); egressd's identity is the certificate's first URI SAN, else its first DNS "
                 "SAN, else its CN. Certificates without SANs are identified alike; one with a SAN is identified by "
                 "it, and falls to the default client unless a client lists that SAN"});
        notes_.push_back(
            {{}, "note: egressd checks the TLS ClientHello inside a CONNECT tunnel (the policy's default tls: allow): "
                 "a TLS SNI must be the CONNECT host, or the tunnel is refused (sni_mismatch); smokescreen does not "
                 "look inside tunnels. Add tls: off to policy.yaml to match it (README, \"TLS inside CONNECT "
                 "tunnels\")"});
        notes_.push_back(
            {{}, "server settings (not in the ACL): --tls-server-bundle-file, --tls-client-ca-file and "
                 "--tls-crl-file become the TLS listener's certificate, key, client_ca and crl in egressd.yaml; "
                 "allow_missing_role: true becomes client_certificate: optional (a client without a certificate is "
                 "then the default client); --deny-range/--allow-range/--deny-address/--allow-address are not "
                 "imported: egressd's address guard refuses private, loopback, link-local and metadata addresses "
                 "(README, \"The address guard\"), opened with address_guard.except or CIDR rules"});
    }

    // ----- policy.yaml

    static void destinations(std::ostream& o, const std::vector<const carried*>& list, const std::string& indent,
                             const translator& t)
    {
        o << indent << "destinations:\n";
        for (const auto* k : list) {
            o << indent << "  - " << yaml_quoted(k->dest) << "  # " << t.line_of(k->src->where) << '\n';
        }
    }

    std::string policy_text() const
    {
        std::ostringstream o;
        o << "# egressd policy imported from the smokescreen ACL " << acl_name_ << " by `egressd import smokescreen`.\n"
          << "# What does not carry over exactly: import-report.txt. Each destination names its ACL line.\n"
          << "# smokescreen's ACL does not look at ports: every allow rule allows every port (ports: all).\n"
          << "version: 1\n";
        bool any_group = !global_allow_.empty() ||
                         std::any_of(clients_.begin(), clients_.end(), [](const client_model& c) {
                             return !c.group.empty();
                         });
        if (any_group) {
            o << "groups:\n";
        }
        for (const auto& c : clients_) {
            if (c.group.empty()) {
                continue;
            }
            std::string who = c.is_default ? std::string("the default rule") : "service " + c.identity;
            o << "  " << c.group << ":\n"
              << "    description: "
              << yaml_quoted("allowed_domains of smokescreen " + who + " (" + line_of(c.src->where) + ")")
              << "\n    rules:\n"
              << "      - description: " << yaml_quoted("allowed_domains") << "\n"
              << "        ports: all\n";
            std::vector<const carried*> list;
            for (const auto& k : c.allow) {
                list.push_back(&k);
            }
            destinations(o, list, "        ", *this);
        }
        if (!global_allow_.empty()) {
            o << "  " << global_allow_group_ << ":\n"
              << "    description: "
              << yaml_quoted("smokescreen global_allow_list (" + line_of(a_.global_allow_at) + "); every client has it")
              << "\n    rules:\n"
              << "      - description: " << yaml_quoted("global_allow_list") << "\n"
              << "        ports: all\n";
            std::vector<const carried*> list;
            for (const auto& k : global_allow_) {
                list.push_back(&k);
            }
            destinations(o, list, "        ", *this);
        }
        o << "clients:\n";
        for (const auto& c : clients_) {
            const rule& r = *c.src;
            std::string what = c.is_default ? std::string("smokescreen default rule") : "smokescreen service " + r.name;
            if (!r.project.empty()) {
                what += ", project " + r.project;
            }
            what += ", action " + std::string(to_string(r.policy)) + " (" + line_of(r.where) + ")";
            o << "  " << c.name << ":\n    description: " << yaml_quoted(what) << '\n';
            if (!c.is_default) {
                o << "    identities: [" << yaml_quoted(c.identity) << "]\n";
            }
            std::vector<std::string> groups;
            if (!c.group.empty()) {
                groups.push_back(c.group);
            }
            if (!global_allow_.empty()) {
                groups.push_back(global_allow_group_);
            }
            o << "    groups: [";
            for (std::size_t i = 0; i < groups.size(); ++i) {
                o << (i > 0 ? ", " : "") << groups[i];
            }
            o << "]\n";
            if (r.policy == action::report) {
                o << "    mode: report   # action report: denials are logged as egress.would_deny, traffic passes\n";
            } else if (r.policy == action::open) {
                o << "    mode: report   # action open: egressd cannot allow every name; see import-report.txt\n";
            }
            if (!c.own_deny.empty()) {
                o << "    deny:\n      - description: "
                  << yaml_quoted("global_deny_list entries its allowed_domains do not cover (" +
                                line_of(a_.global_deny_at) + ")")
                  << '\n';
                std::vector<const carried*> list;
                for (auto i : c.own_deny) {
                    list.push_back(&deny_[i].glob);
                }
                destinations(o, list, "        ", *this);
            }
        }
        for (const auto& c : catches_) {
            std::string roles;
            for (const auto* r : c.roles) {
                roles += (roles.empty() ? "" : ", ") + r->name + " (" + line_of(r->where) + ")";
            }
            o << "  " << c.name << ":\n    description: "
              << yaml_quoted("fail closed: smokescreen service(s) " + roles +
                             " with '*' in the name; no identity names such a CN exactly, so the prefix pattern "
                             "catches it and allows nothing (see import-report.txt)")
              << "\n    identities: [" << yaml_quoted(c.prefix + "*") << "]\n    groups: []\n";
        }
        std::vector<const carried*> everyone;
        for (const auto& e : deny_) {
            if (e.everyone) {
                everyone.push_back(&e.glob);
            }
        }
        if (!everyone.empty()) {
            o << "deny:\n  - description: "
              << yaml_quoted("smokescreen global_deny_list (" + line_of(a_.global_deny_at) + ")")
              << '\n';
            destinations(o, everyone, "    ", *this);
        }
        return o.str();
    }

    std::string server_text() const
    {
        bool has_default = a_.default_rule.has_value();
        std::ostringstream o;
        o << "# egressd server configuration written by `egressd import smokescreen` for " << acl_name_ << ".\n"
          << "# smokescreen is usually run with mutual TLS: clients present a certificate and its CN is their role.\n"
          << "# Replace the placeholder files below with yours (relative paths start from this file's directory);\n"
          << "# `egressd config check egressd.yaml` passes once they exist. README: \"Clients and identities\".\n"
          << "version: 1\n"
          << "listeners:\n"
          << "  - address: 0.0.0.0:4750          # smokescreen's default --listen-port, on every interface\n"
          << "    tls:\n"
          << "      certificate: pki/server.pem  # --tls-server-bundle-file: the certificate chain (PEM) ...\n"
          << "      key: pki/server.key          # ... and its unencrypted key (smokescreen keeps both in one file)\n"
          << "      client_ca: pki/client-ca.pem # --tls-client-ca-file: the CAs that issue client certificates\n"
          << "      client_certificate: required # allow_missing_role: true -> optional (such clients are "
          << (has_default ? "the default client)\n" : "denied: this ACL has no default rule)\n")
          << "      # --tls-crl-file: add crl: FILE here (a CRL for every CA; a missing one fails closed)\n"
          << "policy: policy.yaml\n";
        return o.str();
    }

    // ----- cases

    // The egressd decision this translation makes, by the same rules the policy above is written with.
    outcome predict(std::string_view role, std::string_view host) const
    {
        // egressd's client lookup (policy::match_client): the exact identity, then the longest prefix pattern,
        // then default.
        const client_model* c = nullptr;
        std::size_t index = 0;
        if (auto it = by_identity_.find(std::string(role)); it != by_identity_.end()) {
            index = it->second;
            c = &clients_[index];
        }
        const catch_client* caught = nullptr;
        for (const auto& k : catches_) {
            if (c == nullptr && role.starts_with(k.prefix) && (caught == nullptr || k.prefix.size() > caught->prefix.size())) {
                caught = &k;
            }
        }
        for (std::size_t i = 0; c == nullptr && caught == nullptr && i < clients_.size(); ++i) {
            if (clients_[i].is_default) {
                c = &clients_[i];
                index = i;
            }
        }
        if (c == nullptr && caught == nullptr) {
            return {false, "unknown_client", false};
        }
        for (auto i : deny_index_.matches(host)) {
            if (caught != nullptr ? deny_[i].everyone : deny_[i].applies[index]) {
                return {false, "explicit_deny", caught == nullptr && c->report_mode};
            }
        }
        if (caught != nullptr) {
            return {false, "no_matching_rule", false};
        }
        if (allow_index_[index].first(host) || global_allow_index_.first(host)) {
            return {true, "allowed", true};
        }
        return {false, "no_matching_rule", c->report_mode};
    }

    // smokescreen's decision, as egressd's `policy test` would state it if the translation were exact.
    static outcome expected(const staged_decision& s)
    {
        switch (s.d.outcome) {
        case result::allow:
            return {true, "allowed", true};
        case result::allow_and_report:
            return {false, "no_matching_rule", true};
        case result::deny:
            break;
        }
        return {false, s.at == stage::no_rule ? "unknown_client" : s.at == stage::global_deny ? "explicit_deny"
                                                                                              : "no_matching_rule",
                false};
    }

    struct probe {
        std::string host;
        std::uint16_t port = 443;
        std::string why;
    };

    // The name a glob is about: "*.example.com" -> example.com.
    static std::string name_of(const located& g)
    {
        return trim_dots(lower(g.text.starts_with("*.") ? g.text.substr(2) : g.text));
    }

    // The probes of a rule's own allowed_domains (own), or of the lists every role shares (shared).
    std::vector<probe> probes_for(const rule* r, bool own) const
    {
        std::vector<probe> out;
        auto add_glob = [&](const located& g, const std::string& list, bool full) {
            std::string where = " (" + line_of(g.where) + ")";
            std::string n = name_of(g);
            if (policy::address::parse(n)) {
                out.push_back({n, 443, list + " " + g.text + where});
                return;
            }
            if (g.text.starts_with("*.")) {
                out.push_back({"sub." + n, 443, "a subdomain, under " + list + " " + g.text + where});
                if (full) {
                    out.push_back({"deep.sub." + n, 443, "a deeper subdomain, under " + list + " " + g.text + where});
                    out.push_back({n, 443, "the apex, under " + list + " " + g.text + where});
                }
                return;
            }
            out.push_back({n, 443, list + " " + g.text + where});
            if (full) {
                out.push_back({"sub." + n, 443, "a subdomain of the exact name " + list + " " + g.text + where});
            }
        };
        if (own) {
            if (r == nullptr) {
                return out;
            }
            for (const auto& g : r->allowed_domains) {
                add_glob(g, "allowed_domains", true);
            }
            if (!r->allowed_domains.empty()) {
                probe p = out.front();
                p.port = 8443;
                p.why = "another port (smokescreen does not filter ports): " + p.why;
                out.push_back(p);
            }
            return out;
        }
        out.push_back({"smokescreen-import-unlisted.example", 443, "a name no list of the ACL names"});
        for (const auto& g : a_.global_deny_list) {
            add_glob(g, "global_deny_list", false);
        }
        for (const auto& g : a_.global_allow_list) {
            add_glob(g, "global_allow_list", false);
        }
        return out;
    }

    void write_cases(import_output& out)
    {
        std::ostringstream exact;
        std::ostringstream inexact;
        std::string head = "# `egressd policy test` cases derived from the smokescreen ACL " + acl_name_ +
                           " by `egressd import smokescreen`.\n"
                           "# Expectations come from smokescreen's own decision (acl.go, Decide) on the ACL, not from "
                           "the translation:\n"
                           "#   allow            -> expect allow\n"
                           "#   allow_and_report -> expect deny, reason no_matching_rule (a report-mode client: "
                           "egress.would_deny, the traffic passes)\n"
                           "#   deny             -> expect deny\n"
                           "# Each case says smokescreen's decision and whether the traffic passes.\n";
        exact << head << "# These are the cases egressd decides exactly as smokescreen does.\n";
        inexact << head
                << "# These are the cases egressd does NOT decide as smokescreen does: each also says what egressd does.\n"
                << "# `egressd policy test` fails or passes them for that reason; see import-report.txt.\n";
        std::size_t n_exact = 0;
        std::size_t n_inexact = 0;
        std::set<std::string> names;
        for (const auto& s : a_.services) {
            names.insert(s.name);
        }
        std::string unlisted_role = "smokescreen-import-unlisted-role";
        for (int i = 2; names.count(unlisted_role) > 0; ++i) {
            unlisted_role = "smokescreen-import-unlisted-role-" + std::to_string(i);
        }
        struct subject {
            std::string role;
            const rule* r;
            std::string label;
        };
        const rule* fallback = a_.default_rule ? &*a_.default_rule : nullptr;
        std::vector<subject> subjects;
        for (const auto& s : a_.services) {
            if (usable_identity(s.name)) {
                subjects.push_back({s.name, &s, "service " + s.name});
            } else if (certificate_identity(s.name)) {
                subjects.push_back({s.name, &s, "service " + s.name + " (its CN has '*': fail closed)"});
            }
        }
        for (const auto& k : catches_) {
            std::string other = k.prefix + "smokescreen-import-other";
            if (!k.prefix.empty() && names.count(other) == 0) {
                subjects.push_back({other, fallback, "an unlisted role starting with " + k.prefix + " (caught by " +
                                                         k.name + ")"});
            }
        }
        subjects.push_back({unlisted_role, fallback,
                            a_.default_rule ? "a role no service names (the default rule)"
                                            : "a role no service names (no default rule)"});
        // Every subject meets its own probes, then the shared ones it does not already have (each host:port once).
        auto key = [](const probe& p) { return p.host + ":" + std::to_string(p.port); };
        auto unique = [&](std::vector<probe> list) {
            std::unordered_set<std::string> seen;
            std::erase_if(list, [&](const probe& p) { return !seen.insert(key(p)).second; });
            return list;
        };
        std::vector<probe> shared = unique(probes_for(nullptr, false));
        std::vector<std::string> shared_keys;
        for (const auto& p : shared) {
            shared_keys.push_back(key(p));
        }
        std::vector<std::vector<probe>> own;
        std::vector<std::unordered_set<std::string>> own_keys;
        for (const auto& sub : subjects) {
            own.push_back(unique(probes_for(sub.r, true)));
            own_keys.emplace_back();
            for (const auto& p : own.back()) {
                own_keys.back().insert(key(p));
            }
        }
        auto visit = [&](const std::function<void(std::size_t, const probe&)>& f) {
            for (std::size_t k = 0; k < subjects.size(); ++k) {
                for (const auto& p : own[k]) {
                    f(k, p);
                }
                for (std::size_t j = 0; j < shared.size(); ++j) {
                    if (own_keys[k].empty() || own_keys[k].count(shared_keys[j]) == 0) {
                        f(k, shared[j]);
                    }
                }
            }
        };
        // Counted, then an even sample of at most max_cases kept (Knuth's selection sampling with a fixed seed,
        // as the Squid importer does: the same files every run).
        std::size_t total = 0;
        visit([&](std::size_t, const probe&) { ++total; });
        std::size_t wanted = std::min(total, max_cases);
        std::size_t visited = 0;
        std::mt19937_64 rng(20261207);
        std::vector<std::pair<std::size_t, probe>> sample;
        sample.reserve(wanted);
        visit([&](std::size_t k, const probe& p) {
            std::size_t left = total - visited++;
            std::size_t need = wanted - sample.size();
            if (need == 0 || std::uniform_int_distribution<std::size_t>(0, left - 1)(rng) >= need) {
                return;
            }
            sample.emplace_back(k, p);
        });
        std::size_t skipped_hosts = 0;
        for (const auto& [k, p] : sample) {
            const subject& sub = subjects[k];
            auto host = policy::host::parse(p.host);
            if (!host.value) {
                ++skipped_hosts;
                continue;
            }
            auto s = decide_staged(a_, index_, sub.role, p.host);
            outcome want = expected(s);
            outcome got = predict(sub.role, p.host);
            bool same = want == got;
            std::ostringstream& o = same ? exact : inexact;
            (same ? n_exact : n_inexact)++;
            std::string dest = host.value->to_string() + ":" + std::to_string(p.port);
            o << "\n# smokescreen: " << to_string(s.d.outcome) << " (" << s.d.reason;
            if (s.matched != nullptr) {
                o << ": " << s.matched->text << ", " << line_of(s.matched->where);
            }
            o << ")" << (want.passes ? "; traffic passes" : "; traffic blocked") << '\n';
            if (!same) {
                o << "# egressd: " << outcome_text(got) << '\n';
            }
            o << "- name: " << yaml_quoted(sub.label + " -> " + dest + ": " + p.why) << '\n'
              << "  identity: " << yaml_quoted(sub.role) << '\n'
              << "  dest: " << yaml_quoted(dest) << '\n'
              << "  expect: " << (want.allow ? "allow" : "deny") << '\n';
            if (!want.allow) {
                o << "  reason: " << want.reason << '\n';
            }
        }
        if (n_exact == 0) {
            exact << "[]\n";
        }
        if (n_inexact == 0) {
            inexact << "[]\n";
        }
        if (n_inexact > 0) {
            notes_.push_back({{}, "inexact: " + std::to_string(n_inexact) +
                                      " derived case(s) are decided otherwise by egressd: policy.inexact-cases.yaml "
                                      "says, for each, what smokescreen and egressd do"});
        }
        if (total > wanted) {
            notes_.push_back({{}, "note: " + std::to_string(total) + " cases were derived; an even sample of " +
                                      std::to_string(wanted) + " is written (the same sample every run)"});
        }
        if (skipped_hosts > 0) {
            notes_.push_back({{}, "note: " + std::to_string(skipped_hosts) +
                                      " derived case(s) were left out: their host is not a name egressd accepts"});
        }
        out.cases_yaml = exact.str();
        out.inexact_cases_yaml = inexact.str();
        out.exact_cases = n_exact;
        out.inexact_cases = n_inexact;
        out.derived_cases = total;
        out.sampled = total > wanted;
    }

    std::string report_text()
    {
        std::stable_sort(notes_.begin(), notes_.end(), [](const note& x, const note& y) {
            return std::tie(x.where.line, x.where.column) < std::tie(y.where.line, y.where.column);
        });
        std::ostringstream o;
        o << "egressd import smokescreen: " << acl_name_ << "\n"
          << "What did not carry over exactly (inexact, not carried over), what was ignored, and notes.\n"
          << "Lines name the ACL's file:line:column; lines without a position are about the whole ACL.\n\n";
        for (const auto& n : notes_) {
            o << at(n.where) << ": " << n.text << '\n';
        }
        return o.str();
    }

    const acl& a_;
    std::string acl_name_;
    std::vector<client_model> clients_;
    std::vector<carried> global_allow_;
    std::string global_allow_group_;
    std::vector<deny_entry> deny_;
    std::vector<note> notes_;
    std::set<std::string> used_names_;
    std::vector<catch_client> catches_;
    acl_index index_{a_};
    std::unordered_map<std::string, std::size_t> by_identity_;  // client identity -> clients_ index
    std::vector<glob_index> allow_index_;                        // per clients_ entry
    glob_index global_allow_index_;
    glob_index deny_index_;                                      // per deny_ entry
};

}  // namespace

import_output translate(const acl& a, const std::string& acl_name) { return translator(a, acl_name).run(); }

}  // namespace smokescreen

// ---------------------------------------------------------------------------------------------------------
// The command

namespace {

constexpr std::string_view import_help = R"(Usage:
  egressd import smokescreen ACL.yaml [--out DIR] [--force]
      Translate a smokescreen egress ACL (version: v1) into DIR (default ./egressd-import, created):
        policy.yaml                each service a client (identities: [ROLE], the certificate CN smokescreen
                                   uses as the role), its allowed_domains a group, global_allow_list a group every
                                   client has, global_deny_list the deny list; report and open -> mode: report
        egressd.yaml               a TLS listener requiring client certificates (placeholder paths to edit)
        policy.cases.yaml          policy test cases derived from smokescreen's own decisions
        policy.inexact-cases.yaml  derived cases egressd decides otherwise, each saying how
        import-report.txt          what did not carry over exactly, with the ACL's line numbers
        --out DIR   where to write
        --force     overwrite those files when they exist
      Exit 0 written, 1 the ACL is unreadable or invalid (every error with file:line:column) or a file could not
      be written, 2 usage error (or files exist and --force is not given).
)";

int usage(std::ostream& err, const std::string& message)
{
    err << "egressd: " << message << "\nRun 'egressd import --help' for usage.\n";
    return exit_usage;
}

bool write_file(const std::filesystem::path& path, const std::string& text, std::ostream& err)
{
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << text;
    f.close();
    if (!f) {
        err << "egressd: cannot write " << path.string() << ": " << std::strerror(errno) << '\n';
        return false;
    }
    return true;
}

}  // namespace

int import_smokescreen(const std::vector<std::string>& args, std::ostream& out, std::ostream& err)
{
    std::string acl_path;
    std::filesystem::path dir = "egressd-import";
    bool force = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a == "--help" || a == "-h") {
            out << import_help;
            return exit_ok;
        }
        if (a == "--force") {
            force = true;
        } else if (a == "--out") {
            if (i + 1 >= args.size() || args[i + 1].empty()) {
                return usage(err, "--out needs a directory");
            }
            dir = args[++i];
        } else if (a.starts_with("-")) {
            return usage(err, "unknown option '" + a + "'");
        } else if (!acl_path.empty()) {
            return usage(err, "import smokescreen takes one ACL file; unexpected '" + a + "'");
        } else {
            acl_path = a;
        }
    }
    if (acl_path.empty()) {
        return usage(err, "import smokescreen needs the ACL file (ACL.yaml)");
    }
    std::ifstream in(acl_path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    if (!in.is_open() || in.bad()) {
        err << "egressd: cannot read " << acl_path << ": " << std::strerror(errno) << '\n';
        return exit_invalid;
    }
    auto read = smokescreen::read_acl(acl_path, text.str());
    if (!read.value) {
        for (const auto& e : read.errors) {
            err << e.format("error") << '\n';
        }
        out << acl_path << ": invalid smokescreen ACL: " << read.errors.size() << " error(s); nothing written\n";
        return exit_invalid;
    }
    auto result = smokescreen::translate(*read.value, acl_path);
    const std::vector<std::pair<std::string, const std::string*>> files = {
        {"policy.yaml", &result.policy_yaml},
        {"egressd.yaml", &result.server_yaml},
        {"policy.cases.yaml", &result.cases_yaml},
        {"policy.inexact-cases.yaml", &result.inexact_cases_yaml},
        {"import-report.txt", &result.report_text},
    };
    std::error_code ec;
    if (!force) {
        std::vector<std::string> present;
        for (const auto& [name, _] : files) {
            if (std::filesystem::exists(dir / name, ec)) {
                present.push_back((dir / name).string());
            }
        }
        if (!present.empty()) {
            std::string list;
            for (const auto& p : present) {
                list += (list.empty() ? "" : ", ") + p;
            }
            return usage(err, "will not overwrite " + list + ": pass --force, or choose another --out DIR");
        }
    }
    std::filesystem::create_directories(dir, ec);
    if (ec) {
        err << "egressd: cannot create " << dir.string() << ": " << ec.message() << '\n';
        return exit_invalid;
    }
    for (const auto& [name, body] : files) {
        if (!write_file(dir / name, *body, err)) {
            return exit_invalid;
        }
    }
    // The written policy, loaded as egressd will load it: a translation egressd refuses is said at once.
    auto loaded = config::load_policy(dir / "policy.yaml");
    for (const auto& e : loaded.errors) {
        err << e.format("error") << '\n';
    }
    const auto& acl = *read.value;
    std::string d = dir.string();
    out << "Imported " << acl_path << " (smokescreen ACL v1): " << acl.services.size() << " service(s), "
        << (acl.default_rule ? "a default rule" : "no default rule") << ", " << acl.global_allow_list.size()
        << " global allow and " << acl.global_deny_list.size() << " global deny entries\n"
        << "Wrote " << d << "/:\n"
        << "  policy.yaml                " << result.clients << " client(s), " << result.groups << " group(s); "
        << (loaded.snapshot ? "egressd policy check: valid"
                            : "egressd policy check: INVALID (" + std::to_string(loaded.errors.size()) +
                                  " error(s) above)")
        << '\n';
    if (result.wildcard_roles > 0) {
        out << "  FAIL CLOSED: " << result.wildcard_roles
            << " service(s) with '*' in the role: such a certificate is denied everything (see import-report.txt)\n";
    }
    out << "  egressd.yaml               mTLS listener on 0.0.0.0:4750; edit its certificate paths "
           "(config check passes once the files exist)\n"
        << "  policy.cases.yaml          " << result.exact_cases << " case(s) egressd decides as smokescreen does"
        << (result.sampled ? " (a sample: " + std::to_string(result.derived_cases) + " derived)" : std::string())
        << '\n'
        << "  policy.inexact-cases.yaml  " << result.inexact_cases << " case(s) it decides otherwise\n"
        << "  import-report.txt          " << result.report_lines << " line(s): read it before you switch\n"
        << "Next:\n"
        << "  egressd policy check " << d << "/policy.yaml\n"
        << "  egressd policy test " << d << "/policy.yaml " << d << "/policy.cases.yaml\n"
        << "  $EDITOR " << d << "/egressd.yaml      # the certificate, key and client CA files\n"
        << "  egressd config check " << d << "/egressd.yaml\n"
        << "  egressd run --config " << d << "/egressd.yaml\n";
    return exit_ok;
}

}  // namespace egressd::proxy::tools
