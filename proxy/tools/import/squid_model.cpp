#include "proxy/tools/import/squid_model.hpp"

#include <algorithm>
#include <cctype>

namespace egressd::proxy::tools::squid {
namespace {

bool iequal(const std::string& a, const std::string& b)
{
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

}  // namespace

std::string request::url() const
{
    std::string h = host_address && !host_address->is_v4() ? "[" + host + "]" : host;
    if (is_connect()) {
        return h + ":" + std::to_string(port);
    }
    return "http://" + h + (port == 80 ? "" : ":" + std::to_string(port)) + path;
}

bool domain_matches(const std::string& value, const std::string& host)
{
    if (value.starts_with(".")) {
        std::string_view bare = std::string_view(value).substr(1);
        return host == bare || (host.size() > value.size() && host.ends_with(value));
    }
    return host == value;
}

match acl_match(const acl& a, const request& r)
{
    auto yes = [](bool b) { return b ? match::yes : match::no; };
    switch (a.type) {
    case acl_type::src:
        return yes(r.source && std::any_of(a.cidrs.begin(), a.cidrs.end(), [&](const policy::cidr& c) {
                       return c.contains(r.source->unmapped());
                   }));
    case acl_type::dst:
        if (!r.host_address) {
            // Squid resolves the name and matches its addresses: taken as outside (the samples resolve nothing).
            return match::unresolved;
        }
        return yes(std::any_of(a.cidrs.begin(), a.cidrs.end(),
                               [&](const policy::cidr& c) { return c.contains(*r.host_address); }));
    case acl_type::dstdomain:
        // An IP literal is compared as text; without -n Squid would then try its reverse DNS name, which egressd
        // never does (and which the samples never depend on: their literals have no PTR record to rely on).
        return yes(std::any_of(a.domains.begin(), a.domains.end(),
                               [&](const std::string& v) { return domain_matches(v, r.host); }));
    case acl_type::dstdom_regex:
        return yes(std::any_of(a.regexes.begin(), a.regexes.end(),
                               [&](const regex_value& v) { return std::regex_search(r.host, v.compiled); }));
    case acl_type::url_regex: {
        std::string url = r.url();
        return yes(std::any_of(a.regexes.begin(), a.regexes.end(),
                               [&](const regex_value& v) { return std::regex_search(url, v.compiled); }));
    }
    case acl_type::urlpath_regex: {
        std::string path = r.is_connect() ? std::string() : r.path;
        return yes(std::any_of(a.regexes.begin(), a.regexes.end(),
                               [&](const regex_value& v) { return std::regex_search(path, v.compiled); }));
    }
    case acl_type::port:
        return yes(std::any_of(a.ports.begin(), a.ports.end(),
                               [&](const policy::port_range& p) { return p.contains(r.port); }));
    case acl_type::method:
        return yes(std::find(a.methods.begin(), a.methods.end(), r.method) != a.methods.end());
    case acl_type::proxy_auth:
        if (!r.identity) {
            return match::auth_required;
        }
        if (a.any_user) {
            return match::yes;
        }
        return yes(std::any_of(a.users.begin(), a.users.end(), [&](const std::string& u) {
            return a.icase ? iequal(u, *r.identity) : u == *r.identity;
        }));
    case acl_type::manager:
        // Cache manager requests (cache_object://, /squid-internal-mgr/): never sampled, egressd has none.
        return yes(!r.is_connect() && r.path.starts_with("/squid-internal-mgr/"));
    case acl_type::unsupported:
        return match::unknown;
    }
    return match::unknown;
}

evaluation evaluate(const config& c, const request& r)
{
    evaluation e;
    for (std::size_t i = 0; i < c.http_access.size(); ++i) {
        const auto& line = c.http_access[i];
        bool matched = true;
        for (const auto& t : line.terms) {
            auto it = c.acls.find(t.acl);
            if (it == c.acls.end()) {
                matched = false;
                break;
            }
            match m = acl_match(it->second, r);
            if (m == match::auth_required) {
                // Squid cannot decide without credentials: it answers 407, a refusal.
                e.allowed = false;
                e.deciding = i;
                e.auth_required = true;
                return e;
            }
            bool value = (m == match::yes) != t.negated;
            if (m == match::unknown) {
                // The side egressd errs on: an allow line does not match, a deny line does.
                e.uncertain.push_back(i);
                value = !line.allow;
            } else if (m == match::unresolved && (line.allow || t.negated)) {
                // A dst ACL for a name: egressd's deny CIDRs vet the resolved addresses as Squid does, but an
                // allow (or a negated deny) would need the name's addresses, which egressd never allows by.
                e.uncertain.push_back(i);
            }
            if (!value) {
                matched = false;
                break;
            }
        }
        if (matched) {
            e.allowed = line.allow;
            e.deciding = i;
            return e;
        }
    }
    e.allowed = !c.http_access.empty() && !c.http_access.back().allow;
    return e;
}

}  // namespace egressd::proxy::tools::squid
