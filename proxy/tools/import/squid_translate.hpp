#pragma once

// Squid's first-match http_access list turned into egressd's union model (allows are a union, denies win),
// one client per class of requesters Squid tells apart (source partitions, proxy-auth users).
//
// A line's destination side becomes a condition in disjunctive form: a union of boxes, each a product of a
// destination set, ports, methods and path prefixes. Per client class the lines are walked in order:
//   - a deny that only names ports, methods or negated destinations (deny !Safe_ports, deny CONNECT !SSL_ports,
//     deny !allowed_sites) is subtracted from every later allow: exact;
//   - a deny naming destinations becomes an egressd deny rule: exact for later allows; when an earlier allow
//     overlaps it, egressd denies the overlap too (reported);
//   - an allow becomes allow rules after the subtractions; an allow of every name cannot be written (egressd
//     has no "every name" pattern): it is left out, so egressd denies more (reported).
// Whatever is not carried over exactly errs towards denying, and is recorded so that the sample cases that
// depend on it go to policy.inexact-cases.yaml.

#include "proxy/tools/import/squid_model.hpp"

#include <map>
#include <set>
#include <string>
#include <vector>

namespace egressd::proxy::tools::squid {

// A destination pattern in egressd's text ("api.example.com", ".example.com", "*.example.com", "10.0.0.0/8")
// and the ACL whose quoted file it came from (empty when written inline), for destinations_file.
struct dest_entry {
    std::string pattern;
    std::string list;
    friend auto operator<=>(const dest_entry&, const dest_entry&) = default;
};

struct dest_set {
    bool any = true;
    std::vector<dest_entry> entries;
    friend auto operator<=>(const dest_set&, const dest_set&) = default;
};

// Every method (cofinite with no names), every method but names (cofinite), or exactly names.
struct method_set {
    bool cofinite = true;
    std::set<std::string> names;
    bool any() const { return cofinite && names.empty(); }
    friend auto operator<=>(const method_set&, const method_set&) = default;
};

struct path_set {
    bool any = true;
    std::vector<std::string> prefixes;
    friend auto operator<=>(const path_set&, const path_set&) = default;
};

struct box {
    dest_set dest;
    std::vector<policy::port_range> ports{{1, 65535}};
    method_set methods;
    path_set paths;
    std::vector<dest_set> not_dests;  // negated destination ACLs (deny !allowed_sites)
    std::vector<path_set> not_paths;
    bool empty() const;
    friend bool operator==(const box&, const box&) = default;
};

// Whether the request falls in the box as egressd matches it (names by pattern, literals by CIDR).
bool box_contains(const box& b, const request& r);

// A client, group or file name: what is not a letter, digit, '-', '_' or '.' becomes '_'.
std::string name_chars(std::string_view name);

// Whether the ranges cover every port 1-65535 (in any order or split).
bool all_ports(const std::vector<policy::port_range>& ports);

// The methods an egressd allow rule lists when Squid's condition is "every method but ..." (a method Squid
// does not know by name is denied; a deny rule of that shape is written without methods instead).
const std::vector<std::string>& known_methods();

struct client_class {
    std::string name;
    std::vector<std::string> src_acls;        // the src ACLs containing this class's addresses
    std::vector<policy::cidr> sources;        // its own CIDRs (most specific match); empty: no src ACL
    enum class who : std::uint8_t { anyone, user, other_user } identity = who::anyone;
    std::string user;                         // who::user
    std::optional<policy::address> sample_source;
};

struct class_rules {
    std::vector<std::pair<std::size_t, std::vector<box>>> allows;  // http_access index, the boxes it allows
    std::vector<std::pair<std::size_t, box>> denies;                // http_access index, an egressd deny rule
    std::set<std::size_t> not_carried;  // lines whose decision for this class egressd does not make exactly
    bool implicit_allow = false;        // the implicit last rule allows what is left: not expressible
    friend bool operator==(const class_rules&, const class_rules&) = default;
};

// A squid.conf directive that was not carried over exactly, and why (each reason once).
struct report_entry {
    where at;
    std::string text;
    std::vector<std::string> why;
};

struct translation {
    std::vector<client_class> classes;  // source classes first, then identity classes
    std::vector<class_rules> rules;     // per class
    std::map<std::pair<std::string, std::size_t>, report_entry> inexact;  // by (file, line)
    // Per ACL read from a quoted file: the translated lines of lists/NAME.txt.
    std::map<std::string, std::vector<std::string>> lists;
    std::set<std::string> used_acls;
    bool uses_auth = false;
    std::vector<parse_problem> errors;  // the translation stopped (a configuration too big to translate)
};

translation translate(const config& c);

// The src class of an address: the src ACLs that contain it (the predefined "all" left out).
std::vector<std::string> source_signature(const config& c, const policy::address& a);

}  // namespace egressd::proxy::tools::squid
