#include "proxy/tools/import/squid_translate.hpp"

#include "config/schema.hpp"
#include "policy/domain.hpp"

#include <algorithm>
#include <functional>
#include <unordered_map>
#include <unordered_set>

namespace egressd::proxy::tools::squid {
namespace {

namespace pol = egressd::policy;
using ports_t = std::vector<pol::port_range>;

// ---- destination patterns ----------------------------------------------------------------------------

struct pattern {
    enum class kind : std::uint8_t { exact, domain, subdomains, net } k = kind::exact;
    std::string name;  // without "." or "*."
    std::optional<pol::cidr> cidr;
};

std::optional<pattern> parse_pattern(const std::string& text)
{
    if (auto c = pol::cidr::parse(text)) {
        return pattern{pattern::kind::net, {}, c};
    }
    if (text.starts_with("*.")) {
        return pattern{pattern::kind::subdomains, text.substr(2), {}};
    }
    if (text.starts_with(".")) {
        return pattern{pattern::kind::domain, text.substr(1), {}};
    }
    return pattern{pattern::kind::exact, text, {}};
}

std::string to_text(const pattern& p)
{
    switch (p.k) {
    case pattern::kind::exact:
        return p.name;
    case pattern::kind::domain:
        return "." + p.name;
    case pattern::kind::subdomains:
        return "*." + p.name;
    case pattern::kind::net:
        return p.cidr->to_string();
    }
    return p.name;
}

// name is strictly below parent
bool below(std::string_view name, std::string_view parent)
{
    return name.size() > parent.size() + 1 && name.ends_with(parent) && name[name.size() - parent.size() - 1] == '.';
}

bool pattern_matches(const pattern& p, const request& r)
{
    if (p.k == pattern::kind::net) {
        return r.host_address && p.cidr->contains(*r.host_address);
    }
    if (r.host_address) {
        return false;  // egressd: an IP literal matches CIDR rules only
    }
    switch (p.k) {
    case pattern::kind::exact:
        return r.host == p.name;
    case pattern::kind::domain:
        return r.host == p.name || below(r.host, p.name);
    case pattern::kind::subdomains:
        return below(r.host, p.name);
    case pattern::kind::net:
        break;
    }
    return false;
}

// The pattern matching exactly what both match, if any (the languages are closed under intersection).
std::optional<pattern> intersect(const pattern& a, const pattern& b)
{
    using k = pattern::kind;
    if ((a.k == k::net) != (b.k == k::net)) {
        return std::nullopt;
    }
    if (a.k == k::net) {
        if (a.cidr->contains(b.cidr->base()) && b.cidr->length() >= a.cidr->length()) {
            return b;
        }
        if (b.cidr->contains(a.cidr->base()) && a.cidr->length() >= b.cidr->length()) {
            return a;
        }
        return std::nullopt;
    }
    if (a.k == k::exact || b.k == k::exact) {
        const pattern& e = a.k == k::exact ? a : b;
        const pattern& o = a.k == k::exact ? b : a;
        request probe;
        probe.host = e.name;
        return pattern_matches(o, probe) ? std::optional(e) : std::nullopt;
    }
    // Both are .d or *.d: the one below the other wins; equal names keep the narrower kind.
    if (a.name == b.name) {
        return a.k == k::subdomains ? a : b;
    }
    if (below(a.name, b.name)) {
        return a;
    }
    if (below(b.name, a.name)) {
        return b;
    }
    return std::nullopt;
}

dest_set intersect(const dest_set& a, const dest_set& b)
{
    if (a.any) {
        return b;
    }
    if (b.any) {
        return a;
    }
    dest_set out;
    out.any = false;
    for (const auto& x : a.entries) {
        auto px = parse_pattern(x.pattern);
        for (const auto& y : b.entries) {
            auto py = parse_pattern(y.pattern);
            if (auto i = intersect(*px, *py)) {
                std::string text = to_text(*i);
                // Keep the list origin when the entry is one side's own entry.
                std::string list = text == x.pattern ? x.list : text == y.pattern ? y.list : std::string();
                dest_entry e{text, list};
                if (std::find(out.entries.begin(), out.entries.end(), e) == out.entries.end()) {
                    out.entries.push_back(e);
                }
            }
        }
    }
    return out;
}

// The strict label suffixes of a name: "a.b.c" -> "b.c", "c".
std::vector<std::string_view> strict_suffixes(std::string_view name)
{
    std::vector<std::string_view> out;
    for (auto dot = name.find('.'); dot != std::string_view::npos; dot = name.find('.', dot + 1)) {
        out.push_back(name.substr(dot + 1));
    }
    return out;
}

// Whether some destination matches both: by index, not pair by pair (block lists run to many thousands).
bool dest_overlap(const dest_set& a, const dest_set& b)
{
    if (a.any || b.any) {
        return true;
    }
    enum : int { exact = 1, domain = 2, subdomains = 4 };
    std::unordered_map<std::string, int> kinds;  // b's names and how b names them
    std::unordered_set<std::string> above;       // every strict suffix of a b name: b has names below these
    std::vector<pol::cidr> nets;
    for (const auto& e : b.entries) {
        auto p = parse_pattern(e.pattern);
        if (p->k == pattern::kind::net) {
            nets.push_back(*p->cidr);
            continue;
        }
        kinds[p->name] |= p->k == pattern::kind::exact ? exact : p->k == pattern::kind::domain ? domain : subdomains;
        for (auto suffix : strict_suffixes(p->name)) {
            above.emplace(suffix);
        }
    }
    auto bits = [&](std::string_view name) {
        auto it = kinds.find(std::string(name));
        return it == kinds.end() ? 0 : it->second;
    };
    for (const auto& e : a.entries) {
        auto p = parse_pattern(e.pattern);
        if (p->k == pattern::kind::net) {
            for (const auto& n : nets) {
                if (n.contains(p->cidr->base()) || p->cidr->contains(n.base())) {
                    return true;
                }
            }
            continue;
        }
        // b names the same name in a way that shares a name with a.
        int same = bits(p->name);
        if ((p->k == pattern::kind::exact && (same & (exact | domain)) != 0) ||
            (p->k == pattern::kind::domain && same != 0) ||
            (p->k == pattern::kind::subdomains && (same & (domain | subdomains)) != 0)) {
            return true;
        }
        // b covers a whole tree above a's name.
        for (auto suffix : strict_suffixes(p->name)) {
            if ((bits(suffix) & (domain | subdomains)) != 0) {
                return true;
            }
        }
        // a covers a tree holding one of b's names.
        if (p->k != pattern::kind::exact && above.contains(p->name)) {
            return true;
        }
    }
    return false;
}

// ---- ports, methods, paths ---------------------------------------------------------------------------

ports_t normalise(ports_t p)
{
    std::sort(p.begin(), p.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
    ports_t out;
    for (const auto& r : p) {
        if (!out.empty() && r.first <= static_cast<unsigned>(out.back().last) + 1) {
            out.back().last = std::max(out.back().last, r.last);
        } else {
            out.push_back(r);
        }
    }
    return out;
}

ports_t complement(const ports_t& p)
{
    ports_t out;
    unsigned next = 1;
    for (const auto& r : normalise(p)) {
        if (r.first > next) {
            out.push_back({static_cast<std::uint16_t>(next), static_cast<std::uint16_t>(r.first - 1)});
        }
        next = static_cast<unsigned>(r.last) + 1;
    }
    if (next <= 65535) {
        out.push_back({static_cast<std::uint16_t>(next), 65535});
    }
    return out;
}

ports_t intersect(const ports_t& a, const ports_t& b)
{
    ports_t out;
    for (const auto& x : a) {
        for (const auto& y : b) {
            auto lo = std::max(x.first, y.first);
            auto hi = std::min(x.last, y.last);
            if (lo <= hi) {
                out.push_back({lo, hi});
            }
        }
    }
    return normalise(out);
}

}  // namespace

std::string name_chars(std::string_view name)
{
    std::string out;
    for (char ch : name) {
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                  ch == '_' || ch == '.';
        out += ok ? ch : '_';
    }
    return out;
}

bool all_ports(const ports_t& p)
{
    auto n = normalise(p);
    return n.size() == 1 && n[0].is_all();
}

namespace {

method_set intersect(const method_set& a, const method_set& b)
{
    method_set out;
    if (a.cofinite && b.cofinite) {
        out.names = a.names;
        out.names.insert(b.names.begin(), b.names.end());
        return out;
    }
    out.cofinite = false;
    if (!a.cofinite && !b.cofinite) {
        std::set_intersection(a.names.begin(), a.names.end(), b.names.begin(), b.names.end(),
                              std::inserter(out.names, out.names.end()));
        return out;
    }
    const auto& listed = a.cofinite ? b : a;
    const auto& except = a.cofinite ? a : b;
    for (const auto& m : listed.names) {
        if (!except.names.contains(m)) {
            out.names.insert(m);
        }
    }
    return out;
}

method_set complement(const method_set& m)
{
    method_set out;
    out.cofinite = !m.cofinite;
    out.names = m.names;
    return out;
}

bool prefix_overlap(const std::string& a, const std::string& b) { return a.starts_with(b) || b.starts_with(a); }

path_set intersect(const path_set& a, const path_set& b)
{
    if (a.any) {
        return b;
    }
    if (b.any) {
        return a;
    }
    path_set out;
    out.any = false;
    for (const auto& x : a.prefixes) {
        for (const auto& y : b.prefixes) {
            if (prefix_overlap(x, y)) {
                const auto& longer = x.size() >= y.size() ? x : y;
                if (std::find(out.prefixes.begin(), out.prefixes.end(), longer) == out.prefixes.end()) {
                    out.prefixes.push_back(longer);
                }
            }
        }
    }
    return out;
}

bool path_overlap(const path_set& a, const path_set& b) { return a.any || b.any || !intersect(a, b).prefixes.empty(); }

box intersect(const box& a, const box& b)
{
    box out;
    out.dest = intersect(a.dest, b.dest);
    out.ports = intersect(a.ports, b.ports);
    out.methods = intersect(a.methods, b.methods);
    out.paths = intersect(a.paths, b.paths);
    out.not_dests = a.not_dests;
    out.not_dests.insert(out.not_dests.end(), b.not_dests.begin(), b.not_dests.end());
    out.not_paths = a.not_paths;
    out.not_paths.insert(out.not_paths.end(), b.not_paths.begin(), b.not_paths.end());
    return out;
}

bool boxes_overlap(const box& a, const box& b)
{
    auto methods = intersect(a.methods, b.methods);
    return !intersect(a.ports, b.ports).empty() && !(!methods.cofinite && methods.names.empty()) &&
           path_overlap(a.paths, b.paths) && dest_overlap(a.dest, b.dest);
}

// Whether every name or address a matches, b matches too.
bool dest_within(const dest_set& a, const dest_set& b)
{
    if (b.any) {
        return true;
    }
    if (a.any) {
        return false;
    }
    return std::all_of(a.entries.begin(), a.entries.end(), [&](const dest_entry& x) {
        auto px = parse_pattern(x.pattern);
        return std::any_of(b.entries.begin(), b.entries.end(), [&](const dest_entry& y) {
            auto py = parse_pattern(y.pattern);
            using k = pattern::kind;
            if (px->k == k::net || py->k == k::net) {
                return px->k == k::net && py->k == k::net && py->cidr->contains(px->cidr->base()) &&
                       py->cidr->length() <= px->cidr->length();
            }
            bool at_or_below = px->name == py->name || below(px->name, py->name);
            switch (py->k) {
            case k::exact:
                return px->k == k::exact && px->name == py->name;
            case k::domain:
                return at_or_below;
            case k::subdomains:
                return px->k == k::subdomains ? at_or_below : below(px->name, py->name);
            case k::net:
                break;
            }
            return false;
        });
    });
}

// Whether every request in a is in b (sufficient: b's negations make it answer no).
bool within(const box& a, const box& b)
{
    if (!b.not_dests.empty() || !b.not_paths.empty()) {
        return false;
    }
    bool ports = intersect(a.ports, b.ports) == normalise(a.ports);
    bool methods = intersect(a.methods, b.methods) == a.methods;
    bool paths = b.paths.any || (!a.paths.any && std::all_of(a.paths.prefixes.begin(), a.paths.prefixes.end(), [&](const std::string& p) {
                                     return std::any_of(b.paths.prefixes.begin(), b.paths.prefixes.end(),
                                                        [&](const std::string& q) { return p.starts_with(q); });
                                 }));
    return ports && methods && paths && dest_within(a.dest, b.dest);
}

using cond = std::vector<box>;

// The parts an allow line may be cut into by the deny lines before it: a bound on time and memory.
// (Pruning the parts held by others is quadratic: it runs on at most four times as many.)
constexpr std::size_t max_pieces = 512;

// The pieces without those another piece holds (the first of equal ones is kept).
cond drop_contained(cond pieces)
{
    cond out;
    for (std::size_t i = 0; i < pieces.size(); ++i) {
        bool held = false;
        for (std::size_t j = 0; j < pieces.size() && !held; ++j) {
            held = j != i && within(pieces[i], pieces[j]) && (j < i || !within(pieces[j], pieces[i]));
        }
        if (!held) {
            out.push_back(std::move(pieces[i]));
        }
    }
    return out;
}

std::string join(const std::vector<std::string>& words, const std::string& sep = ", ", std::size_t from = 0)
{
    std::vector<std::string_view> v(words.begin() + static_cast<std::ptrdiff_t>(std::min(from, words.size())), words.end());
    return egressd::config::join(v, sep);
}

cond conjoin(const cond& a, const cond& b)
{
    cond out;
    for (const auto& x : a) {
        for (const auto& y : b) {
            auto i = intersect(x, y);
            if (!i.empty()) {
                out.push_back(std::move(i));
            }
        }
    }
    return out;
}

// c minus d, as a union of boxes (d names no positive destinations or paths).
cond subtract(const box& c, const box& d)
{
    cond out;
    auto add = [&](box b) {
        if (!b.empty()) {
            out.push_back(std::move(b));
        }
    };
    if (!all_ports(d.ports)) {
        box b = c;
        b.ports = intersect(c.ports, complement(d.ports));
        add(b);
    }
    if (!d.methods.any()) {
        box b = c;
        b.methods = intersect(c.methods, complement(d.methods));
        add(b);
    }
    for (const auto& n : d.not_dests) {
        box b = c;
        b.dest = intersect(c.dest, n);
        add(b);
    }
    for (const auto& n : d.not_paths) {
        box b = c;
        b.paths = intersect(c.paths, n);
        add(b);
    }
    return out;
}

// ---- regexes Squid users write for domains and URLs ----------------------------------------------------

// "example\.com" -> "example.com"; nullopt unless only escaped dots between name characters.
std::optional<std::string> literal_domain(std::string_view re)
{
    std::string out;
    for (std::size_t i = 0; i < re.size(); ++i) {
        char c = re[i];
        if (c == '\\' && i + 1 < re.size() && re[i + 1] == '.') {
            out += '.';
            ++i;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                   c == '_') {
            out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        } else {
            return std::nullopt;
        }
    }
    if (out.empty() || out.front() == '.' || out.back() == '.') {
        return std::nullopt;
    }
    return out;
}

// dstdom_regex shapes with an exact pattern equivalent.
std::optional<std::string> domain_regex_pattern(const std::string& re)
{
    struct shape {
        std::string_view head;
        std::string_view tail;
        std::string_view prefix;  // the egressd pattern's prefix
    };
    static const shape shapes[] = {
        {"^(.*\\.)?", "$", "."}, {"(^|\\.)", "$", "."},  {"^(.+\\.)?", "$", "."}, {"^.*\\.", "$", "*."},
        {"^.+\\.", "$", "*."},   {"\\.", "$", "*."},     {"^", "$", ""},
    };
    for (const auto& s : shapes) {
        if (re.size() > s.head.size() + s.tail.size() && re.starts_with(s.head) && re.ends_with(s.tail)) {
            auto body = std::string_view(re).substr(s.head.size(), re.size() - s.head.size() - s.tail.size());
            if (auto d = literal_domain(body)) {
                return std::string(s.prefix) + *d;
            }
        }
    }
    return std::nullopt;
}

// A literal path: no regex metacharacters.
bool literal_path(std::string_view p)
{
    return std::all_of(p.begin(), p.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               std::string_view("/-_~%=,;:@!'").find(c) != std::string_view::npos;
    });
}

// "\." in a path regex is a literal dot.
std::string unescape_dots(std::string_view p)
{
    std::string out;
    for (std::size_t i = 0; i < p.size(); ++i) {
        if (p[i] == '\\' && i + 1 < p.size() && p[i + 1] == '.') {
            out += '.';
            ++i;
        } else {
            out += p[i];
        }
    }
    return out;
}

std::optional<std::string> path_prefix(std::string_view re, bool icase)
{
    if (re.ends_with(".*")) {
        re.remove_suffix(2);
    }
    // Only "\." is a literal dot: a bare '.' matches any character (/a.min matches /admin).
    std::string check(re);
    for (auto at = check.find("\\."); at != std::string::npos; at = check.find("\\.", at)) {
        check.replace(at, 2, "-");
    }
    std::string path = unescape_dots(re);
    if (path.empty() || path.front() != '/' || !literal_path(check)) {
        return std::nullopt;
    }
    // egressd compares paths case-sensitively: a case-insensitive regex over letters is not the same.
    if (icase && std::any_of(path.begin(), path.end(), [](char c) { return std::isalpha(static_cast<unsigned char>(c)); })) {
        return std::nullopt;
    }
    return path;
}

// For a deny line: a literal prefix every path the regex matches starts with ("/a.min" -> "/a"), "/" at least;
// nullopt for an alternation, where the head is not common to every branch.
std::optional<std::string> wider_path_prefix(std::string_view re, bool icase)
{
    if (re.empty() || re.front() != '/' || re.find('|') != std::string_view::npos) {
        return std::nullopt;
    }
    std::string out;
    std::size_t i = 0;
    while (i < re.size()) {
        char c = re[i];
        if (c == '\\' && i + 1 < re.size() && re[i + 1] == '.') {
            out += '.';
            i += 2;
        } else if (literal_path(std::string_view(&c, 1)) && !(icase && std::isalpha(static_cast<unsigned char>(c)))) {
            out += c;
            ++i;
        } else {
            break;
        }
    }
    // A quantifier after the prefix applies to its last character, which may then be absent.
    if (i < re.size() && std::string_view("?*{").find(re[i]) != std::string_view::npos && !out.empty()) {
        out.pop_back();
    }
    return out.empty() ? std::string("/") : out;
}

// url_regex "^https?://host/path..." (or "^http://"): the host, and the path prefix; wider: a path prefix
// holding every path the regex matches (for a deny line).
std::optional<box> url_regex_box(const regex_value& v, bool wider = false)
{
    std::string_view re = v.text;
    bool matched = false;
    for (std::string_view head : {"^https?://", "^http://", "^(http|https)://"}) {
        if (re.starts_with(head)) {
            re.remove_prefix(head.size());
            matched = true;
            break;
        }
    }
    if (!matched) {
        return std::nullopt;
    }
    auto slash = re.find('/');
    if (slash == std::string_view::npos) {
        return std::nullopt;  // "^http://host" also matches http://host.evil.net/
    }
    auto host = literal_domain(re.substr(0, slash));
    auto path = wider ? wider_path_prefix(re.substr(slash), v.icase) : path_prefix(re.substr(slash), v.icase);
    if (!host || !path) {
        return std::nullopt;
    }
    box b;
    b.dest.any = false;
    b.dest.entries.push_back({*host, {}});
    // Squid writes the port into a plain-HTTP URL unless it is 80; tunnels have no http:// URL at all.
    b.ports = {{80, 80}};
    b.paths.any = false;
    b.paths.prefixes.push_back(*path);
    return b;
}

std::optional<box> urlpath_regex_box(const regex_value& v, bool wider = false)
{
    std::string_view re = v.text;
    if (!re.starts_with("^")) {
        return std::nullopt;
    }
    auto path = wider ? wider_path_prefix(re.substr(1), v.icase) : path_prefix(re.substr(1), v.icase);
    if (!path) {
        return std::nullopt;
    }
    box b;
    b.paths.any = false;
    b.paths.prefixes.push_back(*path);
    return b;
}

// ---- translation ------------------------------------------------------------------------------------

struct translated_acl {
    std::optional<cond> positive;  // nullopt: cannot be expressed
    std::optional<box> negative;
    std::string why;               // why not, for the report
    std::optional<cond> wider;     // when positive is nullopt: a condition holding it, for a deny line
};

bool is_everything_src(const acl& a)
{
    bool v4 = false;
    bool v6 = false;
    for (const auto& c : a.cidrs) {
        v4 = v4 || (c.is_everything() && c.base().is_v4());
        v6 = v6 || (c.is_everything() && !c.base().is_v4());
    }
    return v4 && v6;
}

std::string sanitize(const std::string& s)
{
    std::string out = name_chars(s);
    return out.empty() ? std::string("_") : out;
}

class translator {
public:
    explicit translator(const config& c) : c_(c) {}

    translation run()
    {
        collect_used();
        translate_acls();
        build_classes();
        for (std::size_t k = 0; k < out_.classes.size(); ++k) {
            out_.rules.push_back(compile(out_.classes[k]));
            if (!out_.errors.empty()) {
                return std::move(out_);
            }
        }
        name_clients();
        return std::move(out_);
    }

private:
    const config& c_;
    translation out_;
    std::map<std::string, translated_acl> acls_;
    std::map<std::pair<std::string, std::size_t>, std::map<std::string, std::vector<std::string>>> per_client_;

    void note(const where& at, const std::string& text, const std::string& why)
    {
        auto& e = out_.inexact[{at.file, at.line}];
        if (e.text.empty()) {  // several values of one line: the entry keeps the line, each why names its value
            e.at = at;
            e.text = text;
        }
        if (std::find(e.why.begin(), e.why.end(), why) == e.why.end()) {
            e.why.push_back(why);
        }
    }

    void note(const access_line& l, const std::string& why) { note(l.d.at, l.d.text, why); }

    // A reason that holds for some client classes: one line in the report naming them all ("{clients}").
    void note(const access_line& l, const std::string& why, const std::string& client)
    {
        note(l.d.at, l.d.text, why);
        auto& clients = per_client_[{l.d.at.file, l.d.at.line}][why];
        if (std::find(clients.begin(), clients.end(), client) == clients.end()) {
            clients.push_back(client);
        }
    }

    void name_clients()
    {
        for (const auto& [key, reasons] : per_client_) {
            for (auto& why : out_.inexact.at(key).why) {
                auto it = reasons.find(why);
                if (it == reasons.end()) {
                    continue;
                }
                std::string names = (it->second.size() == 1 ? "client " : "clients ");
                for (std::size_t n = 0; n < it->second.size(); ++n) {
                    names += (n > 0 ? ", " : "") + it->second[n];
                }
                why.replace(why.find("{clients}"), 9, names);
            }
        }
    }

    void collect_used()
    {
        for (const auto& l : c_.http_access) {
            for (const auto& t : l.terms) {
                out_.used_acls.insert(t.acl);
                auto it = c_.acls.find(t.acl);
                if (it != c_.acls.end() && it->second.type == acl_type::proxy_auth) {
                    out_.uses_auth = true;
                }
            }
        }
    }

    // The report's text for a value: its acl line when written there, else the value alone.
    static std::string value_text(const acl& a, const acl_value& v)
    {
        for (const auto& d : a.lines) {
            if (d.at.file == v.at.file && d.at.line == v.at.line) {
                return d.text;
            }
        }
        return "acl " + a.name + " " + a.type_text + " " + v.text;
    }

    // A destination value in egressd's syntax, or a note on the ACL line why not.
    std::optional<std::string> domain_value(const acl& a, const acl_value& v, const std::string& d)
    {
        if (auto ip = pol::address::parse(d)) {
            return pol::cidr::make(*ip, ip->width())->to_string();
        }
        if (d.find('*') != std::string::npos) {
            // In egressd '*.' opens every subdomain; Squid matches the name as spelled, which no request has.
            note(v.at, value_text(a, v),
                 "Squid's dstdomain has no wildcards: '" + d + "' matches only a host spelled with '*', which no "
                 "request has; it is left out (egressd's '*.' would open every subdomain)");
            return std::nullopt;
        }
        auto p = pol::parse_domain_pattern(d);
        if (!p.value) {
            note(v.at, value_text(a, v),
                 "egressd refuses the pattern '" + d + "' (" + p.error + "); it is left out, so egressd "
                                                                         "matches less");
            return std::nullopt;
        }
        return p.value->to_string();
    }

    // lists/NAME.txt: the quoted files' lines, values translated, comments kept.
    std::vector<std::string> list_lines(const acl& a)
    {
        std::vector<std::string> lines;
        for (const auto& f : a.files) {
            lines.push_back("# " + a.name + " (" + a.type_text + ") from " + c_.shown(f.path));
            for (std::size_t n = 0; n < f.lines.size(); ++n) {
                const std::string& raw = f.lines[n];
                auto first = raw.find_first_not_of(" \t");
                if (first == std::string::npos || raw[first] == '#') {
                    lines.push_back(raw);
                    continue;
                }
                auto end = raw.find_first_of(" \t", first);
                std::string value = raw.substr(first, end == std::string::npos ? std::string::npos : end - first);
                auto hash = raw.find('#', first);
                std::string comment = hash == std::string::npos ? std::string() : "  " + raw.substr(hash);
                std::vector<std::string> translated;
                if (a.type == acl_type::dstdomain) {
                    if (auto p = domain_value(a, {value, {f.path, n + 1, 1}}, lower(value))) {
                        translated.push_back(*p);
                    }
                } else {
                    std::string error;
                    for (const auto& cidr : parse_ip_value(value, error).value_or(std::vector<pol::cidr>{})) {
                        translated.push_back(cidr.to_string());
                    }
                }
                if (translated.empty()) {
                    lines.push_back("# not carried over: " + raw);
                }
                for (std::size_t i = 0; i < translated.size(); ++i) {
                    lines.push_back(translated[i] + (i == 0 ? comment : std::string()));
                }
            }
        }
        return lines;
    }

    void translate_acls()
    {
        for (const auto& entry : c_.acls) {
            // Named, not a structured binding: clang 14 cannot capture one in a lambda.
            const auto& name = entry.first;
            const auto& a = entry.second;
            if (!out_.used_acls.contains(name)) {
                continue;
            }
            translated_acl t;
            std::string list = a.files.empty() ? std::string() : name;
            auto from_file = [&](const acl_value& v) {
                return std::any_of(a.files.begin(), a.files.end(),
                                   [&](const acl::file_source& f) { return f.path == v.at.file; });
            };
            switch (a.type) {
            case acl_type::dstdomain:
            case acl_type::dst: {
                box b;
                b.dest.any = false;
                if (a.type == acl_type::dstdomain) {
                    for (std::size_t i = 0; i < a.values.size() && i < a.domains.size(); ++i) {
                        if (auto p = domain_value(a, a.values[i], a.domains[i])) {
                            b.dest.entries.push_back({*p, from_file(a.values[i]) ? list : std::string()});
                        }
                    }
                } else {
                    for (const auto& v : a.values) {
                        std::string error;
                        for (const auto& cidr : parse_ip_value(v.text, error).value_or(std::vector<pol::cidr>{})) {
                            b.dest.entries.push_back({cidr.to_string(), from_file(v) ? list : std::string()});
                        }
                    }
                }
                t.positive = cond{b};
                box n;
                n.not_dests.push_back(b.dest);
                t.negative = n;
                if (!a.files.empty()) {
                    out_.lists[name] = list_lines(a);
                }
                break;
            }
            case acl_type::dstdom_regex: {
                box b;
                b.dest.any = false;
                for (const auto& r : a.regexes) {
                    auto p = domain_regex_pattern(r.text);
                    if (!p) {
                        t.why = "the dstdom_regex '" + r.text + "' has no egressd domain pattern equivalent";
                        break;
                    }
                    b.dest.entries.push_back({*p, {}});
                }
                if (t.why.empty()) {
                    t.positive = cond{b};
                    box n;
                    n.not_dests.push_back(b.dest);
                    t.negative = n;
                }
                break;
            }
            case acl_type::url_regex:
            case acl_type::urlpath_regex: {
                cond u;
                cond wide;
                bool all_wide = true;
                for (const auto& r : a.regexes) {
                    auto w = a.type == acl_type::url_regex ? url_regex_box(r, true) : urlpath_regex_box(r, true);
                    all_wide = all_wide && w.has_value();
                    if (w) {
                        wide.push_back(*w);
                    }
                }
                if (all_wide) {
                    t.wider = wide;
                }
                for (const auto& r : a.regexes) {
                    auto b = a.type == acl_type::url_regex ? url_regex_box(r) : urlpath_regex_box(r);
                    if (!b) {
                        t.why = "the " + a.type_text + " '" + r.text + "' is not of the form " +
                                (a.type == acl_type::url_regex ? "^https?://host/path" : "^/path") +
                                " (a destination and a path prefix)";
                        break;
                    }
                    u.push_back(*b);
                }
                if (t.why.empty()) {
                    t.positive = u;
                    // A negated URL regex would need every other destination: only a single path-only one
                    // can be negated (every path but these prefixes).
                    if (a.type == acl_type::urlpath_regex) {
                        box n;
                        path_set ps;
                        ps.any = false;
                        for (const auto& b : u) {
                            ps.prefixes.push_back(b.paths.prefixes.front());
                        }
                        n.not_paths.push_back(ps);
                        t.negative = n;
                    }
                }
                break;
            }
            case acl_type::port: {
                box b;
                b.ports = normalise(a.ports);
                t.positive = cond{b};
                box n;
                n.ports = complement(a.ports);
                t.negative = n;
                break;
            }
            case acl_type::method: {
                box b;
                b.methods.cofinite = false;
                b.methods.names.insert(a.methods.begin(), a.methods.end());
                t.positive = cond{b};
                box n;
                n.methods.names = b.methods.names;
                t.negative = n;
                break;
            }
            case acl_type::manager:
                t.positive = cond{};  // never matches a proxied request
                t.negative = box{};
                break;
            case acl_type::unsupported:
                t.why = "egressd has no equivalent of the " + a.type_text + " ACL " + name;
                break;
            case acl_type::proxy_auth:
                if (a.icase) {
                    for (const auto& d : a.lines) {
                        note(d.at, d.text, "-i: Squid compares these user names without case, egressd's identities "
                                           "match exactly; a user who logs in as 'Alice' is not the client 'alice' "
                                           "(on allow lines egressd denies them; on deny lines every other user is "
                                           "denied what the line denies)");
                    }
                }
                break;  // client side: decided per client class
            case acl_type::src:
                break;
            }
            acls_[name] = std::move(t);
        }
    }

    // ---- client classes ----

    std::vector<std::string> src_acls_in_use() const
    {
        std::vector<std::string> out;
        for (const auto& name : out_.used_acls) {
            const auto& a = c_.acls.at(name);
            if (a.type == acl_type::src && !is_everything_src(a)) {
                out.push_back(name);
            }
        }
        return out;
    }

    void build_classes()
    {
        auto srcs = src_acls_in_use();
        // Every distinct CIDR of the src ACLs; each address's class is that of the most specific CIDR holding it.
        std::vector<pol::cidr> all;
        for (const auto& name : srcs) {
            for (const auto& cidr : c_.acls.at(name).cidrs) {
                if (std::find(all.begin(), all.end(), cidr) == all.end()) {
                    all.push_back(cidr);
                }
            }
        }
        std::map<std::vector<std::string>, std::size_t> by_signature;
        std::vector<client_class> source_classes;
        for (const auto& cidr : all) {
            // The CIDR's own addresses are in every ACL that has a CIDR containing it.
            std::vector<std::string> sig;
            for (const auto& name : srcs) {
                const auto& cs = c_.acls.at(name).cidrs;
                if (std::any_of(cs.begin(), cs.end(), [&](const pol::cidr& o) {
                        return o.base().is_v4() == cidr.base().is_v4() && o.length() <= cidr.length() &&
                               o.contains(cidr.base());
                    })) {
                    sig.push_back(name);
                }
            }
            auto [it, created] = by_signature.try_emplace(sig, source_classes.size());
            if (created) {
                client_class k;
                k.src_acls = sig;
                std::string name;
                for (const auto& s : sig) {
                    name += (name.empty() ? "" : ".") + s;
                }
                k.name = sanitize(name);
                source_classes.push_back(k);
            }
            source_classes[it->second].sources.push_back(cidr);
        }
        client_class anyone;
        anyone.name = "default";
        source_classes.push_back(anyone);
        for (auto& k : source_classes) {
            k.sample_source = sample_address(k);
        }
        out_.classes = source_classes;
        if (out_.uses_auth) {
            add_identity_classes(source_classes);
        }
        // Client names are unique, and only the class without sources is egressd's "default" (a src ACL may be
        // called default, or authenticated).
        std::set<std::string> taken;
        for (auto& k : out_.classes) {
            bool is_default = k.sources.empty() && k.identity == client_class::who::anyone;
            if (!is_default && (k.name == "default" || k.name == "-")) {
                k.name = "src-" + k.name;
            }
            std::string base = k.name;
            for (int n = 2; !taken.insert(k.name).second; ++n) {
                k.name = base + "-" + std::to_string(n);
            }
        }
    }

    void add_identity_classes(const std::vector<client_class>& source_classes)
    {
        std::set<std::string> users;
        for (const auto& name : out_.used_acls) {
            const auto& a = c_.acls.at(name);
            if (a.type != acl_type::proxy_auth) {
                continue;
            }
            for (std::size_t i = 0; i < a.users.size(); ++i) {
                if (a.users[i].find('*') == std::string::npos) {
                    users.insert(a.users[i]);
                    continue;
                }
                // An egressd identity with '*' is a pattern (bob* matches bobby); Squid's is the literal name.
                for (const auto& d : a.lines) {
                    if (d.text.find(a.users[i]) != std::string::npos) {
                        note(d.at, d.text, "the user name '" + a.users[i] + "' has a '*', which egressd's identities "
                                           "read as a wildcard; it is left out: that user is decided as any "
                                           "other user");
                    }
                }
            }
        }
        auto add_identity = [&](client_class::who who, const std::string& user) {
            for (const auto& s : source_classes) {
                client_class k = s;
                k.identity = who;
                k.user = user;
                std::string base = who == client_class::who::user ? "user-" + sanitize(user) : "authenticated";
                k.name = s.sources.empty() ? base : base + "." + s.name;
                out_.classes.push_back(k);
            }
        };
        for (const auto& u : users) {
            add_identity(client_class::who::user, u);
        }
        add_identity(client_class::who::other_user, {});
    }

    std::optional<pol::address> sample_address(const client_class& k) const
    {
        auto fits = [&](const pol::address& a) { return source_signature(c_, a) == k.src_acls; };
        if (k.sources.empty()) {
            for (const char* text : {"198.51.100.10", "203.0.113.10", "192.0.2.10", "100.100.100.100", "8.8.8.8",
                                     "2001:db8::10"}) {
                auto a = pol::address::parse(text);
                if (fits(*a)) {
                    return a;
                }
            }
            return std::nullopt;
        }
        for (const auto& cidr : k.sources) {
            auto bytes = cidr.base().bytes();
            const int nbytes = cidr.base().width() / 8;
            // The base, base + 1, the middle and the last address of the block.
            std::vector<std::array<std::uint8_t, 16>> candidates;
            auto plus_one = bytes;
            for (int i = nbytes - 1; i >= 0 && ++plus_one[i] == 0; --i) {
            }
            auto last = bytes;
            for (int i = cidr.length(); i < cidr.base().width(); ++i) {
                last[i / 8] |= static_cast<std::uint8_t>(1u << (7 - i % 8));
            }
            auto middle = bytes;
            if (cidr.length() < cidr.base().width()) {
                int i = cidr.length();
                middle[i / 8] |= static_cast<std::uint8_t>(1u << (7 - i % 8));
            }
            for (const auto& b : {plus_one, bytes, middle, last}) {
                auto a = address_from_bytes(cidr.base(), b);
                if (cidr.contains(a) && fits(a)) {
                    return a;
                }
            }
        }
        return std::nullopt;
    }

    // ---- per class ----

    struct line_view {
        bool applies = false;
        bool allow = false;
        cond condition;        // destination side
        bool unsupported = false;
        std::vector<std::string> unsupported_why;
        bool dst_allow = false;  // a dst ACL on an allow line
        bool icase_forced = false;  // a proxy_auth -i ACL on a deny line counted as matching any other user
        bool widened = false;       // a regex on a deny line was replaced by a wider path prefix
    };

    line_view view(const access_line& l, const client_class& k)
    {
        line_view v;
        v.allow = l.allow;
        v.condition = cond{box{}};
        for (const auto& t : l.terms) {
            const auto& a = c_.acls.at(t.acl);
            if (a.type == acl_type::src) {
                bool in = is_everything_src(a) ||
                          std::find(k.src_acls.begin(), k.src_acls.end(), t.acl) != k.src_acls.end();
                if (in == t.negated) {
                    return v;
                }
                continue;
            }
            if (a.type == acl_type::proxy_auth) {
                if (k.identity == client_class::who::anyone) {
                    v.allow = false;  // no credentials reached a proxy_auth ACL: a 407, a refusal
                    break;
                }
                bool in = a.any_user || (k.identity == client_class::who::user &&
                                         std::any_of(a.users.begin(), a.users.end(), [&](const std::string& u) {
                                             return a.icase ? lower(u) == lower(k.user) : u == k.user;
                                         }));
                // -i on a deny line: any other user may be a case variant of a listed one (MALLORY), and egressd
                // cannot tell: fail closed, the line denies every other user.
                if (!in && !t.negated && !l.allow && a.icase && k.identity == client_class::who::other_user) {
                    in = true;
                    v.icase_forced = true;
                }
                if (in == t.negated) {
                    return v;
                }
                continue;
            }
            const auto& tr = acls_.at(t.acl);
            if (a.type == acl_type::dst && l.allow && !t.negated) {
                v.dst_allow = true;
            }
            std::optional<cond> part =
                t.negated ? (tr.negative ? std::optional(cond{*tr.negative}) : std::nullopt) : tr.positive;
            if (!part && !t.negated && !l.allow && tr.wider) {
                // A regex with no exact equivalent on a deny line: denied by a literal prefix of its paths.
                part = tr.wider;
                v.widened = true;
                v.unsupported_why.push_back(tr.why + "; the deny is written for the literal head of its paths, so "
                                                     "egressd denies more");
            }
            if (!part) {
                v.unsupported = true;
                v.unsupported_why.push_back(tr.why.empty() ? "the negated ACL " + t.acl +
                                                                 " cannot be expressed in egressd"
                                                           : tr.why);
                continue;  // decided below by the line's action
            }
            v.condition = conjoin(v.condition, *part);
        }
        v.applies = true;
        return v;
    }

    static bool everything(const cond& c)
    {
        return std::any_of(c.begin(), c.end(), [](const box& b) {
            return b.dest.any && all_ports(b.ports) && b.methods.any() && b.paths.any && b.not_dests.empty() &&
                   b.not_paths.empty();
        });
    }

    static bool positive_place(const box& b) { return !b.dest.any || !b.paths.any; }

    class_rules compile(const client_class& k)
    {
        class_rules r;
        std::vector<box> subtractions;
        std::vector<std::pair<std::size_t, box>> allowed_so_far;
        std::vector<box> decided;  // the exact conditions of the lines so far: what they decide is decided
        std::vector<std::size_t> path_denies;  // indexes into r.denies: denies on paths alone
        bool terminal = false;
        for (std::size_t i = 0; i < c_.http_access.size() && !terminal; ++i) {
            const auto& l = c_.http_access[i];
            auto v = view(l, k);
            if (!v.applies) {
                continue;
            }
            if (v.icase_forced) {
                // What the later allow lines let through for a user egressd now denies is not carried over.
                for (std::size_t later = i + 1; later < c_.http_access.size(); ++later) {
                    if (c_.http_access[later].allow) {
                        r.not_carried.insert(later);
                    }
                }
                note(l, "a proxy_auth -i ACL on a deny line: egressd cannot compare user names without case, so "
                        "this line denies every user not named in an identity client ({clients}); egressd denies "
                        "more",
                     k.name);
            }
            if (v.widened) {
                r.not_carried.insert(i);
                for (const auto& why : v.unsupported_why) {
                    note(l, why);
                }
            }
            if (v.unsupported) {
                r.not_carried.insert(i);
                // A deny without its inexpressible part would deny every destination: then it is left out
                // instead, the one place where egressd allows more than Squid (reported as such).
                bool drop = l.allow || everything(v.condition);
                for (const auto& why : v.unsupported_why) {
                    note(l, why + (l.allow ? "; the line is left out, so egressd denies what it allows"
                                   : drop ? "; the line is left out, so egressd ALLOWS what it denies when a later "
                                            "line allows it: add those destinations to a deny list by hand"
                                          : "; the deny is applied without it, so egressd denies more"));
                }
                if (drop) {
                    continue;
                }
            }
            if (v.dst_allow) {
                note(l, "a dst ACL allows by address: egressd allows IP-literal destinations in it, but never a "
                        "name because of the address it resolves to (Squid does); such names are denied");
            }
            // What this line decides is decided for the lines below (unless an ACL was dropped from it: then its
            // condition is wider than what it decides).
            auto record = [&] {
                if (!v.unsupported && !v.widened) {
                    decided.insert(decided.end(), v.condition.begin(), v.condition.end());
                }
            };
            if (!v.allow) {
                for (const auto& b : v.condition) {
                    // Every request in it was decided by an earlier line of this class (allow admins admin; deny
                    // admin): the deny never decides anything here.
                    if (std::any_of(decided.begin(), decided.end(), [&](const box& earlier) { return within(b, earlier); })) {
                        continue;
                    }
                    if (!positive_place(b)) {
                        subtractions.push_back(b);
                        continue;
                    }
                    box rule = b;
                    if (!rule.not_dests.empty() || !rule.not_paths.empty()) {
                        note(l, "a negated destination or path next to a listed one cannot be written in an "
                                "egressd deny rule; the rule denies the listed destinations whole, so egressd "
                                "denies more");
                        rule.not_dests.clear();
                        rule.not_paths.clear();
                        r.not_carried.insert(i);
                    }
                    if (rule.methods.cofinite && !rule.methods.any()) {
                        // egressd accepts any method token: a list of the known methods would let BREW through.
                        note(l, "denies every method but " +
                                    join(std::vector<std::string>(rule.methods.names.begin(), rule.methods.names.end())) +
                                    ": an egressd rule lists methods, so this deny is written without methods and "
                                    "also denies " + join(std::vector<std::string>(rule.methods.names.begin(),
                                                                                   rule.methods.names.end())) +
                                    "; egressd denies more");
                        rule.methods = method_set{};
                        r.not_carried.insert(i);
                    }
                    for (const auto& [line, earlier] : allowed_so_far) {
                        if (boxes_overlap(earlier, rule)) {
                            note(l, "deny after allow: " + c_.shown(c_.http_access[line].d.at) + " (" +
                                        c_.http_access[line].d.text +
                                        ") allows some of what this line denies, and Squid's first match lets "
                                        "those through; egressd's deny wins over every allow, so egressd denies "
                                        "them ({clients})",
                                 k.name);
                            break;
                        }
                    }
                    if (rule.dest.any) {
                        path_denies.push_back(r.denies.size());
                    }
                    r.denies.push_back({i, rule});
                }
                if (everything(v.condition)) {
                    terminal = true;
                }
                record();
                continue;
            }
            cond pieces = v.condition;
            for (const auto& d : subtractions) {
                cond next;
                for (const auto& p : pieces) {
                    if (!boxes_overlap(p, d)) {
                        next.push_back(p);  // the deny takes nothing from it
                        continue;
                    }
                    auto s = subtract(p, d);
                    next.insert(next.end(), s.begin(), s.end());
                }
                pieces = next.size() > 4 * max_pieces ? std::move(next) : drop_contained(std::move(next));
                if (pieces.size() > max_pieces) {
                    out_.errors.push_back({l.d.at, "the deny lines before 'http_access " + join(l.d.words, " ", 1) +
                                                       "' cut what it allows into more than " +
                                                       std::to_string(max_pieces) +
                                                       " parts: the importer stops here; combine those deny lines"});
                    return r;
                }
            }
            std::vector<box> kept;
            bool lost = false;
            for (auto& p : pieces) {
                // Negations disjoint from what is listed say nothing.
                auto& nd = p.not_dests;
                nd.erase(std::remove_if(nd.begin(), nd.end(), [&](const dest_set& n) { return !dest_overlap(p.dest, n); }),
                         nd.end());
                auto& np = p.not_paths;
                np.erase(std::remove_if(np.begin(), np.end(), [&](const path_set& n) { return !path_overlap(p.paths, n); }),
                         np.end());
                if (p.dest.any) {
                    note(l, "allows every destination name" +
                                std::string(all_ports(p.ports) ? "" : " on some ports") +
                                " ({clients}): egressd has no pattern for every name, so this is left out and "
                                "egressd denies it; list the destinations these clients need",
                         k.name);
                    lost = true;
                    continue;
                }
                if (!p.not_dests.empty() || !p.not_paths.empty()) {
                    note(l, "allows listed destinations except a negated ACL that overlaps them: egressd cannot "
                            "subtract from an allow rule, so this part is left out and egressd denies it");
                    lost = true;
                    continue;
                }
                kept.push_back(p);
                allowed_so_far.push_back({i, p});
            }
            if (lost) {
                r.not_carried.insert(i);
            }
            if (!kept.empty()) {
                r.allows.push_back({i, kept});
            }
            if (everything(v.condition)) {
                terminal = true;
            }
            record();
        }
        // A deny on paths alone (urlpath_regex): egressd deny rules need destinations. Within the destinations
        // this client's allow rules name it denies the same; elsewhere egressd denies anyway.
        std::set<std::size_t> drop;
        for (auto n : path_denies) {
            auto& [line, rule] = r.denies[n];
            rule.dest = dest_set{false, {}};
            std::set<std::string> seen;
            for (const auto& [allow_line, boxes] : r.allows) {
                for (const auto& b : boxes) {
                    for (const auto& e : b.dest.entries) {
                        if (seen.insert(e.pattern).second) {
                            rule.dest.entries.push_back(e);
                        }
                    }
                }
            }
            note(c_.http_access[line], "a deny on paths alone: an egressd deny rule needs destinations, so it is "
                                       "written with the destinations the allow rules of a client name (the same "
                                       "decisions; egressd denies every other destination anyway)");
            if (rule.dest.entries.empty()) {
                drop.insert(n);
            }
        }
        for (auto it = drop.rbegin(); it != drop.rend(); ++it) {
            r.denies.erase(r.denies.begin() + static_cast<std::ptrdiff_t>(*it));
        }
        if (!terminal && !c_.http_access.empty() && !c_.http_access.back().allow) {
            r.implicit_allow = true;
            const auto& last = c_.http_access.back();
            note(last, "the last http_access line is a deny, so Squid allows everything no line matches (the "
                       "implicit last rule); egressd cannot allow every name, so it denies those requests "
                       "({clients}); end the list with 'http_access deny all'",
             k.name);
        }
        return r;
    }
};

}  // namespace

bool box::empty() const
{
    return (!dest.any && dest.entries.empty()) || ports.empty() || (!methods.cofinite && methods.names.empty()) ||
           (!paths.any && paths.prefixes.empty());
}

const std::vector<std::string>& known_methods()
{
    // The methods Squid knows by name (its HttpRequestMethod list: RFC 9110, PATCH, WebDAV, DeltaV, PURGE).
    static const std::vector<std::string> methods = {
        "GET",       "HEAD",       "POST",         "PUT",         "DELETE",   "CONNECT",  "OPTIONS",
        "TRACE",     "PATCH",      "PROPFIND",     "PROPPATCH",   "MKCOL",    "COPY",     "MOVE",
        "LOCK",      "UNLOCK",     "SEARCH",       "REPORT",      "CHECKOUT", "CHECKIN",  "UNCHECKOUT",
        "MKACTIVITY", "MKWORKSPACE", "VERSION-CONTROL", "BASELINE-CONTROL", "MERGE", "LABEL", "UPDATE",
        "ACL",       "SUBSCRIBE",  "UNSUBSCRIBE",  "POLL",        "BMOVE",    "BDELETE",  "BPROPFIND",
        "BPROPPATCH", "BCOPY",     "PURGE"};
    return methods;
}

bool box_contains(const box& b, const request& r)
{
    // On the pattern's text: a deny list of many thousands is checked for every sample.
    auto entry_matches = [&](const std::string& p) {
        if (p.find('/') != std::string::npos) {
            return r.host_address && pol::cidr::parse(p)->contains(*r.host_address);
        }
        if (r.host_address) {
            return false;
        }
        if (p.starts_with("*.")) {
            return below(r.host, p.substr(2));
        }
        if (p.starts_with(".")) {
            return domain_matches(p, r.host);
        }
        return r.host == p;
    };
    auto in_dest = [&](const dest_set& d) {
        return d.any || std::any_of(d.entries.begin(), d.entries.end(),
                                    [&](const dest_entry& e) { return entry_matches(e.pattern); });
    };
    auto in_paths = [&](const path_set& p) {
        if (p.any) {
            return true;
        }
        return !r.is_connect() && std::any_of(p.prefixes.begin(), p.prefixes.end(),
                                              [&](const std::string& x) { return r.path.starts_with(x); });
    };
    bool method_ok = b.methods.cofinite ? !b.methods.names.contains(r.method) : b.methods.names.contains(r.method);
    bool port_ok = std::any_of(b.ports.begin(), b.ports.end(), [&](const auto& p) { return p.contains(r.port); });
    return in_dest(b.dest) && port_ok && method_ok && in_paths(b.paths) &&
           std::none_of(b.not_dests.begin(), b.not_dests.end(), in_dest) &&
           std::none_of(b.not_paths.begin(), b.not_paths.end(), in_paths);
}

std::vector<std::string> source_signature(const config& c, const policy::address& a)
{
    std::vector<std::string> out;
    std::set<std::string> used;
    for (const auto& l : c.http_access) {
        for (const auto& t : l.terms) {
            used.insert(t.acl);
        }
    }
    for (const auto& name : used) {
        auto it = c.acls.find(name);
        if (it == c.acls.end() || it->second.type != acl_type::src || is_everything_src(it->second)) {
            continue;
        }
        const auto& cs = it->second.cidrs;
        if (std::any_of(cs.begin(), cs.end(), [&](const pol::cidr& x) { return x.contains(a); })) {
            out.push_back(name);
        }
    }
    return out;
}

translation translate(const config& c) { return translator(c).run(); }

}  // namespace egressd::proxy::tools::squid
