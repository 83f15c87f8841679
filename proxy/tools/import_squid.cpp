#include "proxy/tools/import_squid.hpp"

#include "config/policy_loader.hpp"
#include "config/schema.hpp"
#include "policy/guard.hpp"
#include "proxy/cli.hpp"
#include "proxy/tools/import/squid_conf.hpp"
#include "proxy/tools/import/squid_model.hpp"
#include "proxy/tools/import/squid_translate.hpp"
#include "proxy/tools/yaml_quote.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <ostream>
#include <random>
#include <set>
#include <sstream>
#include <unordered_set>

namespace egressd::proxy::tools {
namespace {

namespace fs = std::filesystem;
namespace pol = egressd::policy;
using namespace squid;

// A big configuration still tests in seconds.
constexpr std::size_t max_cases = 2000;

// Directives that change how Squid caches, logs or runs, never what it allows.
const std::set<std::string, std::less<>> no_effect = {
    "cache_dir", "coredump_dir", "refresh_pattern", "logformat", "access_log", "cache_log", "cache_store_log",
    "cache_mem", "maximum_object_size", "minimum_object_size", "maximum_object_size_in_memory", "visible_hostname",
    "pid_filename", "cache_effective_user", "cache_effective_group", "shutdown_lifetime", "logfile_rotate",
    "memory_pools", "cache_replacement_policy", "memory_replacement_policy", "cache_swap_low", "cache_swap_high",
    "error_directory", "error_default_language", "forwarded_for", "via", "httpd_suppress_version_string",
    "dns_nameservers", "dns_v4_first", "hosts_file", "positive_dns_ttl", "negative_dns_ttl", "client_lifetime",
    "read_timeout", "connect_timeout", "request_timeout", "persistent_request_timeout", "half_closed_clients",
    "workers", "cpu_affinity_map", "cache_mgr", "unique_hostname", "logfile_daemon", "strip_query_terms",
    "buffered_logs", "debug_options", "max_filedescriptors", "netdb_filename", "icp_port", "htcp_port",
    "snmp_port", "cache", "store_id_program", "pipeline_prefetch", "append_domain", "mime_table",
    "announce_period", "cachemgr_passwd", "icp_access", "htcp_access", "snmp_access", "sslcrtd_program",
    "sslcrtd_children", "request_header_access", "reply_header_access", "header_replace", "deny_info",
    "umask", "dns_timeout", "pconn_timeout", "range_offset_limit", "quick_abort_min", "quick_abort_max",
    "collapsed_forwarding", "digest_generation", "client_db", "ipcache_size", "fqdncache_size", "delay_pools",
    "delay_class", "delay_access", "delay_parameters", "client_persistent_connections",
    "server_persistent_connections", "detect_broken_pconn", "dns_defnames", "ignore_unknown_nameservers",
    "check_hostnames", "max_stale", "store_avg_object_size", "store_objects_per_bucket", "cache_swap_state",
    "access_log_format", "icon_directory", "err_html_text", "email_err_data", "retry_on_error"};

// Access directives egressd has no equivalent of: what they deny, egressd allows.
const std::set<std::string, std::less<>> other_access = {
    "adapted_http_access", "http_reply_access", "miss_access", "ssl_bump", "reply_body_max_size",
    "request_body_max_size", "url_rewrite_access", "url_rewrite_program", "http_access2"};

std::string join(const std::vector<std::string>& v, const std::string& sep)
{
    return egressd::config::join(std::vector<std::string_view>(v.begin(), v.end()), sep);
}


std::string flow(const std::vector<std::string>& items, bool quoted)
{
    std::vector<std::string> q;
    for (const auto& i : items) {
        q.push_back(quoted ? yaml_quoted(i) : i);
    }
    return "[" + join(q, ", ") + "]";
}

std::string ports_text(const std::vector<pol::port_range>& ports)
{
    std::vector<std::string> out;
    for (const auto& p : ports) {
        if (p.is_all()) {
            out.push_back("all");
        } else {
            out.push_back(p.first == p.last ? std::to_string(p.first)
                                            : std::to_string(p.first) + "-" + std::to_string(p.last));
        }
    }
    return flow(out, false);
}

std::vector<std::string> method_list(const method_set& m)
{
    if (!m.cofinite) {
        return {m.names.begin(), m.names.end()};
    }
    std::vector<std::string> out;
    for (const auto& name : known_methods()) {
        if (!m.names.contains(name)) {
            out.push_back(name);
        }
    }
    return out;
}

std::string host_port(const request& r)
{
    std::string h = r.host_address && !r.host_address->is_v4() ? "[" + r.host + "]" : r.host;
    return h + ":" + std::to_string(r.port);
}

struct sample {
    request req;
    std::size_t klass = 0;
    evaluation verdict;
    std::optional<std::pair<std::string, std::size_t>> inexact;  // the report entry it depends on
};

class importer {
public:
    importer(const config& c, translation t, std::string conf_path)
        : c_(c), t_(std::move(t)), conf_path_(std::move(conf_path))
    {
        for (std::size_t i = 0; i < c_.files.size(); ++i) {
            file_order_.try_emplace(c_.files[i], i);
        }
        // Which entries of each file-backed ACL are in its list, for destinations_file.
        for (const auto& [name, a] : c_.acls) {
            if (!t_.lists.contains(name)) {
                continue;
            }
            for (const auto& line : t_.lists.at(name)) {
                if (!line.empty() && line.front() != '#') {
                    list_entries_[name].insert(line.substr(0, line.find(' ')));
                }
            }
        }
    }

    std::map<std::string, std::string> files;  // relative path -> contents
    std::size_t cases_written = 0;
    std::size_t inexact_cases = 0;
    std::size_t exact_directives = 0;
    std::size_t inexact_directives = 0;
    std::size_t ignored_directives = 0;

    void build()
    {
        config_notes();
        auto samples = make_samples();
        for (auto& s : samples) {
            classify(s);
        }
        std::map<std::pair<std::string, std::size_t>, std::size_t> report_lines;
        files["import-report.txt"] = report(report_lines);
        files["policy.yaml"] = policy_yaml();
        files["egressd.yaml"] = server_yaml();
        for (const auto& [name, lines] : t_.lists) {
            files["lists/" + list_file(name)] = join(lines, "\n") + "\n";
        }
        if (t_.uses_auth) {
            files["users.txt"] = users_file();
        }
        write_cases(samples, report_lines);
    }

private:
    const config& c_;
    translation t_;
    std::string conf_path_;
    std::map<std::string, std::size_t> file_order_;
    std::map<std::string, std::set<std::string>> list_entries_;
    std::vector<std::pair<where, std::string>> ignored_;
    std::string upstream_;
    std::string upstream_comment_;
    std::vector<std::pair<std::string, std::string>> listeners_;  // address, comment

    static std::string list_file(const std::string& acl_name) { return name_chars(acl_name) + ".txt"; }

    void note(const directive& d, const std::string& why)
    {
        auto& e = t_.inexact[{d.at.file, d.at.line}];
        e.at = d.at;
        e.text = d.text;
        if (std::find(e.why.begin(), e.why.end(), why) == e.why.end()) {
            e.why.push_back(why);
        }
    }

    // Listeners, the parent, authentication and the directives the policy does not come from.
    void config_notes()
    {
        for (const auto& p : c_.http_ports) {
            // The modes that change who connects and how; the rest (name=, tcpkeepalive, ...) change neither.
            std::vector<std::string> modes;
            for (const auto& o : p.options) {
                for (std::string_view m : {"intercept", "transparent", "tproxy", "accel", "ssl-bump", "vhost", "vport",
                                           "defaultsite", "require-proxy-header", "protocol"}) {
                    if (o == m || o.starts_with(std::string(m) + "=")) {
                        modes.push_back(o);
                    }
                }
            }
            if (!modes.empty()) {
                note(p.d, "http_port options (" + join(modes, " ") +
                              ") are not carried over: egressd listens as an explicit forward proxy (the PROXY "
                              "protocol and TLS are listener settings in egressd.yaml)");
            }
            std::string comment = c_.shown(p.d.at) + " " + p.d.text;
            std::vector<std::string> addresses;
            if (p.address.empty()) {
                // Squid listens on every address of both families; egressd's IPv6 listener is IPv6-only.
                addresses = {"0.0.0.0:" + std::to_string(p.port), "[::]:" + std::to_string(p.port)};
            } else if (auto a = pol::address::parse(p.address)) {
                addresses = {a->to_string(p.port)};
            } else {
                note(p.d, "egressd listens on IP addresses only: '" + p.address + "' is written as 0.0.0.0");
                addresses = {"0.0.0.0:" + std::to_string(p.port)};
            }
            for (const auto& address : addresses) {
                // The same port twice is refused by Squid too; written once.
                if (std::none_of(listeners_.begin(), listeners_.end(), [&](const auto& l) { return l.first == address; })) {
                    listeners_.push_back({address, comment});
                }
            }
        }
        if (c_.http_ports.empty()) {
            listeners_.push_back({"0.0.0.0:3128", "Squid's default http_port 3128"});
            listeners_.push_back({"[::]:3128", "Squid's default http_port 3128"});
        }
        const access_line* never_all = nullptr;
        for (const auto& l : c_.never_direct) {
            if (l.allow && l.terms.size() == 1 && l.terms[0].acl == "all" && !l.terms[0].negated) {
                never_all = &l;
            } else {
                note(l.d, "only 'never_direct allow all' is carried over (every request through the parent)");
            }
        }
        std::vector<const parent_peer*> parents;
        for (const auto& p : c_.parents) {
            if (p.type == "parent") {
                parents.push_back(&p);
            } else {
                note(p.d, "a " + p.type + " cache_peer only shares cached objects: egressd does not cache");
            }
        }
        if (!parents.empty() && never_all != nullptr) {
            const auto& p = *parents.front();
            std::string host = p.host.find(':') != std::string::npos ? "[" + p.host + "]" : p.host;
            upstream_ = "http://" + host + ":" + std::to_string(p.port);
            upstream_comment_ = c_.shown(p.d.at) + " " + p.d.text + "; " +
                                c_.shown(never_all->d.at) + " " + never_all->d.text;
            for (std::size_t i = 1; i < parents.size(); ++i) {
                note(parents[i]->d, "egressd chains to one parent: the first cache_peer parent is used");
            }
            if (std::any_of(p.d.words.begin() + 4, p.d.words.end(),
                            [](const std::string& w) { return w.starts_with("login=") || w == "ssl" || w.starts_with("tls"); })) {
                note(p.d, "egressd does not log in to the parent nor speak TLS to it (login=, tls options)");
            }
        } else if (!parents.empty()) {
            note(parents.front()->d, "without 'never_direct allow all' Squid may go direct or through this parent; "
                                     "egressd goes direct (set upstream_proxy in egressd.yaml to use the parent)");
        }
        for (const auto& d : c_.auth_params) {
            std::string scheme = d.words.size() > 1 ? d.words[1] : "";
            if (d.words.size() < 3 || d.words[2] != "program") {
                ignored_.push_back({d.at, d.text});  // children, realm, credentialsttl: how, not who
                continue;
            }
            note(d, scheme == "basic"
                        ? "passwords are not carried over: egressd checks users against its own credentials file "
                          "(users.txt); add each user with 'egressd passwd USER >> users.txt'"
                        : "egressd authenticates with Basic proxy authentication only, not " + scheme);
        }
        for (const auto& [name, a] : c_.acls) {
            if (a.predefined && a.lines.empty()) {
                continue;
            }
            if (!t_.used_acls.contains(name)) {
                for (const auto& d : a.lines) {
                    ignored_.push_back({d.at, d.text + "   (not used by http_access)"});
                }
            }
        }
        for (const auto& l : c_.http_access) {
            if (std::any_of(l.terms.begin(), l.terms.end(), [&](const access_term& t) {
                    return !t.negated && c_.acls.at(t.acl).type == acl_type::manager;
                })) {
                note(l.d, "egressd has no cache manager: a request for Squid's (cache_object://, a "
                          "/squid-internal-mgr/ path) is decided like any other request to its destination, where "
                          "Squid decides it on this line");
            }
        }
        for (const auto& d : c_.others) {
            if (no_effect.contains(d.words[0])) {
                ignored_.push_back({d.at, d.text});
            } else if (other_access.contains(d.words[0])) {
                note(d, "egressd has no equivalent of " + d.words[0] + ": egressd ALLOWS what this denies (it "
                        "decides on the request alone, as http_access does); deny it in the policy by hand");
            } else {
                note(d, "egressd has no equivalent of " + d.words[0] + "; check whether it matters for what is allowed");
            }
        }
    }

    // ---- samples ----

    std::vector<sample> make_samples()
    {
        std::vector<std::string> dests;
        std::unordered_set<std::string> dest_seen;  // block lists run to many thousands of names
        std::map<std::string, std::vector<std::string>> dest_paths;
        std::vector<std::string> paths = {"/"};
        std::set<std::uint16_t> port_set = {80, 443};
        std::set<std::string> methods = {"GET", "CONNECT"};
        auto add_dest = [&](const std::string& d) {
            // Only what a client can ask for (a value egressd refuses is in the report, not in the samples).
            if (pol::host::parse(d).value && dest_seen.insert(d).second) {
                dests.push_back(d);
            }
        };
        auto add_address = [&](const pol::address& a) { add_dest(a.to_string()); };
        for (const auto& name : t_.used_acls) {
            const auto& a = c_.acls.at(name);
            switch (a.type) {
            case acl_type::dstdomain:
                for (const auto& d : a.domains) {
                    if (d.starts_with(".")) {
                        add_dest(d.substr(1));
                        add_dest("sub" + d);
                    } else {
                        add_dest(d);
                        if (!pol::address::parse(d)) {
                            add_dest("sub." + d);
                        }
                    }
                }
                break;
            case acl_type::dst:
                for (const auto& cidr : a.cidrs) {
                    add_address(inside(cidr));
                    if (auto o = outside(cidr)) {
                        add_address(*o);
                    }
                }
                break;
            case acl_type::dstdom_regex:
                for (const auto& r : a.regexes) {
                    // The domain the regex names, and a name below it.
                    std::string d;
                    for (std::size_t i = 0; i < r.text.size(); ++i) {
                        char ch = r.text[i];
                        if (ch == '\\' && i + 1 < r.text.size()) {
                            d += r.text[++i];
                        } else if (std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '.') {
                            d += ch;
                        }
                    }
                    while (!d.empty() && d.front() == '.') {
                        d.erase(0, 1);
                    }
                    if (!d.empty() && pol::parse_domain_pattern(d).value) {
                        add_dest(d);
                        add_dest("sub." + d);
                    }
                }
                break;
            case acl_type::url_regex:
            case acl_type::urlpath_regex:
                for (const auto& r : a.regexes) {
                    std::string text = r.text;
                    auto scheme = text.find("://");
                    std::string rest = scheme == std::string::npos ? text : text.substr(scheme + 3);
                    auto slash = rest.find('/');
                    std::string path;
                    for (char ch : slash == std::string::npos ? std::string() : rest.substr(slash)) {
                        if (std::isalnum(static_cast<unsigned char>(ch)) || ch == '/' || ch == '-' || ch == '_') {
                            path += ch;
                        } else if (ch != '\\') {
                            break;
                        }
                    }
                    if (a.type == acl_type::url_regex && scheme != std::string::npos) {
                        std::string host;
                        for (char ch : rest.substr(0, slash)) {
                            if (std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '.') {
                                host += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
                            }
                        }
                        if (!host.empty() && pol::parse_domain_pattern(host).value) {
                            add_dest(host);
                            if (!path.empty()) {
                                dest_paths[host].push_back(path);
                            }
                        }
                    } else if (!path.empty() && path.front() == '/') {
                        paths.push_back(path);
                    }
                }
                break;
            case acl_type::port:
                for (const auto& p : a.ports) {
                    port_set.insert(p.first);
                    port_set.insert(p.last);
                }
                break;
            case acl_type::method:
                methods.insert(a.methods.begin(), a.methods.end());
                break;
            default:
                break;
            }
        }
        add_dest("unlisted.example.org");
        add_dest("93.184.216.34");
        for (std::uint16_t p : std::initializer_list<std::uint16_t>{25, 8, 9, 7, 1, 1024}) {
            bool named = false;
            for (const auto& name : t_.used_acls) {
                const auto& a = c_.acls.at(name);
                named = named || std::any_of(a.ports.begin(), a.ports.end(), [&](const auto& r) { return r.contains(p); });
            }
            if (!named) {
                port_set.insert(p);
                break;
            }
        }
        std::set<std::string> users;
        for (const auto& k : t_.classes) {
            if (k.identity == client_class::who::user) {
                users.insert(k.user);
            }
        }
        std::string other_user = "someone-else";
        while (users.contains(other_user)) {
            other_user += "_";
        }
        // Every combination of class, destination, port, method and path, visited twice: once to count, once to
        // keep an even sample of at most max_cases (Knuth's selection sampling with a fixed seed: the same files
        // every run, and no list of millions of requests for a big configuration).
        auto visit = [&](const std::function<void(std::size_t, const std::string&, std::uint16_t, const std::string&,
                                                  const std::string&)>& f) {
            for (std::size_t k = 0; k < t_.classes.size(); ++k) {
                if (!t_.classes[k].sample_source) {
                    continue;
                }
                for (const auto& d : dests) {
                    for (auto port : port_set) {
                        for (const auto& m : methods) {
                            if (m == "CONNECT") {
                                f(k, d, port, m, "");
                                continue;
                            }
                            for (const auto& path : paths) {
                                f(k, d, port, m, path);
                            }
                            if (auto it = dest_paths.find(d); it != dest_paths.end()) {
                                for (const auto& path : it->second) {
                                    f(k, d, port, m, path);
                                }
                            }
                        }
                    }
                }
            }
        };
        std::size_t total = 0;
        visit([&](std::size_t, const std::string&, std::uint16_t, const std::string&, const std::string&) { ++total; });
        std::size_t wanted = std::min(total, max_cases);
        std::size_t seen = 0;
        std::mt19937_64 rng(20261207);
        std::vector<sample> all;
        all.reserve(wanted);
        visit([&](std::size_t k, const std::string& d, std::uint16_t port, const std::string& m, const std::string& path) {
            std::size_t left = total - seen++;
            std::size_t need = wanted - all.size();
            if (need == 0 || std::uniform_int_distribution<std::size_t>(0, left - 1)(rng) >= need) {
                return;
            }
            const auto& klass = t_.classes[k];
            sample x;
            x.klass = k;
            x.req.source = klass.sample_source;
            if (klass.identity == client_class::who::user) {
                x.req.identity = klass.user;
            } else if (klass.identity == client_class::who::other_user) {
                x.req.identity = other_user;
            }
            x.req.host = d;
            x.req.host_address = pol::address::parse(d);
            x.req.port = port;
            x.req.method = m;
            x.req.path = path;
            all.push_back(std::move(x));
        });
        for (auto& s : all) {
            s.verdict = evaluate(c_, s.req);
        }
        return all;
    }

    // An address inside the block (base + 1 unless the block is one address).
    static pol::address inside(const pol::cidr& c)
    {
        if (c.length() == c.base().width()) {
            return c.base();
        }
        auto b = c.base().bytes();
        for (int i = c.base().width() / 8 - 1; i >= 0 && ++b[i] == 0; --i) {
        }
        return address_from_bytes(c.base(), b);
    }

    // The first address after the block, if there is one.
    static std::optional<pol::address> outside(const pol::cidr& c)
    {
        auto b = c.base().bytes();
        for (int i = c.length(); i < c.base().width(); ++i) {
            b[i / 8] |= static_cast<std::uint8_t>(1u << (7 - i % 8));
        }
        int i = c.base().width() / 8 - 1;
        for (; i >= 0 && ++b[i] == 0; --i) {
        }
        if (i < 0) {
            return std::nullopt;
        }
        return address_from_bytes(c.base(), b);
    }

    void mark(sample& s, std::size_t line, const std::string& why = {})
    {
        const auto& l = c_.http_access[line];
        auto key = std::pair(l.d.at.file, l.d.at.line);
        if (!why.empty() || !t_.inexact.contains(key)) {
            // Every inexact case points at a report line that says why.
            note(l.d, why.empty() ? "egressd does not decide every request here as Squid does" : why);
        }
        s.inexact = key;
    }

    void classify(sample& s)
    {
        const auto& rules = t_.rules[s.klass];
        const auto& e = s.verdict;
        if (!e.uncertain.empty()) {
            mark(s, e.uncertain.front(), uncertain_why(e.uncertain.front()));
            return;
        }
        if (e.deciding && rules.not_carried.contains(*e.deciding)) {
            mark(s, *e.deciding);
            return;
        }
        if (!e.deciding && e.allowed) {
            mark(s, c_.http_access.size() - 1);
            return;
        }
        if (!e.allowed) {
            return;
        }
        for (const auto& [line, b] : rules.denies) {
            if (box_contains(b, s.req)) {
                mark(s, line);
                return;
            }
        }
        if (s.req.host_address) {
            auto hit = pol::classify(*s.req.host_address, pol::guard_set::all());
            if (hit && !opens_guard(rules, s.req, hit->range_length)) {
                mark(s, *e.deciding,
                     "egressd's address guard refuses " + std::string(pol::to_string(hit->category)) +
                         " addresses such as " + s.req.host + " unless an allow rule names a CIDR inside that "
                         "range; Squid allows them here");
            }
        }
    }

    // Why the samples that reach this line prove nothing: what its ACLs depend on that no sample carries.
    std::string uncertain_why(std::size_t line) const
    {
        std::vector<std::string> what;
        for (const auto& t : c_.http_access[line].terms) {
            const auto& a = c_.acls.at(t.acl);
            if (a.type == acl_type::dst) {
                what.push_back("dst ACL " + a.name + " matches a name by the addresses it resolves to");
            } else if (a.type == acl_type::unsupported) {
                what.push_back(a.type_text + " ACL " + a.name + " depends on what a sample does not carry");
            }
        }
        return "Squid's decision here is not known for every sample (" + join(what, "; ") +
               "): the samples that reach this line are kept apart";
    }

    static bool opens_guard(const class_rules& rules, const request& r, int range_length)
    {
        for (const auto& [line, boxes] : rules.allows) {
            for (const auto& b : boxes) {
                if (!box_contains(b, r)) {
                    continue;
                }
                for (const auto& e : b.dest.entries) {
                    auto c = pol::cidr::parse(e.pattern);
                    if (c && c->contains(*r.host_address) && c->length() >= range_length) {
                        return true;
                    }
                }
            }
        }
        return false;
    }

    // ---- report ----

    std::string location(const where& w) const { return c_.shown(w); }

    std::vector<const report_entry*> sorted_entries() const
    {
        std::vector<const report_entry*> out;
        for (const auto& [key, e] : t_.inexact) {
            out.push_back(&e);
        }
        auto order = [&](const report_entry* e) {
            auto it = file_order_.find(e->at.file);
            return std::pair(it == file_order_.end() ? file_order_.size() : it->second, e->at.line);
        };
        std::sort(out.begin(), out.end(), [&](auto* a, auto* b) { return order(a) < order(b); });
        return out;
    }

    std::string report(std::map<std::pair<std::string, std::size_t>, std::size_t>& lines_of)
    {
        std::vector<std::string> lines;
        lines.push_back("egressd import squid: " + conf_path_ + " (file names below are relative to its directory)");
        lines.push_back("");
        lines.push_back("Not carried over exactly (egressd errs towards denying unless a line says otherwise):");
        lines.push_back("");
        auto entries = sorted_entries();
        for (const auto* e : entries) {
            lines_of[{e->at.file, e->at.line}] = lines.size() + 1;
            lines.push_back(location(e->at) + ": " + e->text);
            for (const auto& why : e->why) {
                lines.push_back("    why: " + why);
            }
        }
        if (entries.empty()) {
            lines.push_back("  (nothing: every line was carried over exactly)");
        }
        lines.push_back("");
        lines.push_back("Ignored (no effect on what is allowed):");
        std::sort(ignored_.begin(), ignored_.end(), [&](const auto& a, const auto& b) {
            return std::pair(file_order_[a.first.file], a.first.line) < std::pair(file_order_[b.first.file], b.first.line);
        });
        for (const auto& [w, text] : ignored_) {
            lines.push_back("  " + location(w) + ": " + text);
        }
        std::size_t relevant = 0;
        for (const auto& [name, a] : c_.acls) {
            if (t_.used_acls.contains(name)) {
                relevant += a.lines.size();
            }
        }
        relevant += c_.http_access.size() + c_.http_ports.size() + c_.parents.size() + c_.never_direct.size() +
                    static_cast<std::size_t>(std::count_if(c_.auth_params.begin(), c_.auth_params.end(), [](const directive& d) {
                        return d.words.size() > 2 && d.words[2] == "program";
                    })) + (c_.others.size() - std::count_if(c_.others.begin(), c_.others.end(), [](const directive& d) {
                        return no_effect.contains(d.words[0]);
                    }));
        inexact_directives = entries.size();
        exact_directives = relevant > inexact_directives ? relevant - inexact_directives : 0;
        ignored_directives = ignored_.size();
        lines.push_back("");
        lines.push_back("Counts: " + std::to_string(c_.lines_read) + " lines read in " + std::to_string(c_.files.size()) +
                        " file(s); " + std::to_string(exact_directives) + " directive(s) carried over exactly, " +
                        std::to_string(inexact_directives) + " inexact, " + std::to_string(ignored_directives) +
                        " ignored.");
        return join(lines, "\n") + "\n";
    }

    // ---- policy.yaml ----

    std::string comment_of(std::size_t line) const
    {
        const auto& l = c_.http_access[line];
        return location(l.d.at) + " " + l.d.text;
    }

    // The rule's destinations: inline entries, and one whole list file when the rule has all of its entries.
    void destinations(std::ostringstream& o, const std::string& indent, const dest_set& d) const
    {
        std::map<std::string, std::set<std::string>> by_list;
        for (const auto& e : d.entries) {
            if (!e.list.empty()) {
                by_list[e.list].insert(e.pattern);
            }
        }
        std::string file;
        for (const auto& [list, entries] : by_list) {
            auto it = list_entries_.find(list);
            if (it != list_entries_.end() && entries == it->second && !it->second.empty()) {
                file = list;
                break;
            }
        }
        std::vector<std::string> inline_entries;
        for (const auto& e : d.entries) {
            if (file.empty() || e.list != file) {
                inline_entries.push_back(e.pattern);
            }
        }
        if (!inline_entries.empty()) {
            o << indent << "destinations: " << flow(inline_entries, true) << '\n';
        }
        if (!file.empty()) {
            o << indent << "destinations_file: lists/" << list_file(file) << '\n';
        }
    }

    void rule(std::ostringstream& o, std::size_t line, const box& b, bool deny) const
    {
        o << "      # " << comment_of(line) << '\n';
        const auto& terms = c_.http_access[line].terms;
        if (deny && std::any_of(terms.begin(), terms.end(), [](const access_term& t) {
                return !t.negated && (t.acl == "to_localhost" || t.acl == "to_linklocal");
            })) {
            o << "      # egressd's address guard refuses these ranges anyway (loopback, unspecified, link_local); the\n"
              << "      # rule keeps them refused even if address_guard.except is relaxed later\n";
        }
        o << "      - description: " << yaml_quoted(location(c_.http_access[line].d.at)) << '\n';
        if (!deny || !all_ports(b.ports)) {
            o << "        ports: " << ports_text(b.ports) << '\n';
        }
        destinations(o, "        ", b.dest);
        if (!b.methods.any()) {
            if (b.methods.cofinite) {
                o << "        # every method but " << join({b.methods.names.begin(), b.methods.names.end()}, ", ")
                  << " (egressd rules list methods)\n";
            }
            o << "        methods: " << flow(method_list(b.methods), false) << '\n';
        }
        if (!b.paths.any) {
            o << "        paths: " << flow(b.paths.prefixes, true) << '\n';
        }
    }

    std::string group_name(std::size_t line) const
    {
        const auto& l = c_.http_access[line];
        std::string name = "r" + std::to_string(l.index);
        for (const auto& t : l.terms) {
            name += "-" + std::string(t.negated ? "not_" : "") + t.acl;
        }
        return name_chars(std::string_view(name).substr(0, 100));
    }

    // The clients written: identity classes whose rules are the same from every source become one client.
    struct client_out {
        std::string name;
        std::vector<std::size_t> classes;  // the classes it stands for (the first one's rules are written)
        bool with_sources = true;
    };

    std::vector<client_out> clients() const
    {
        std::vector<client_out> out;
        std::map<std::pair<int, std::string>, std::vector<std::size_t>> by_identity;
        for (std::size_t k = 0; k < t_.classes.size(); ++k) {
            const auto& c = t_.classes[k];
            if (c.identity == client_class::who::anyone) {
                out.push_back({c.name, {k}, true});
            } else {
                by_identity[{static_cast<int>(c.identity), c.user}].push_back(k);
            }
        }
        for (const auto& entry : by_identity) {
            const auto& ks = entry.second;  // named, not a structured binding: clang 14 cannot capture one
            bool same = std::all_of(ks.begin(), ks.end(), [&](std::size_t k) { return t_.rules[k] == t_.rules[ks[0]]; });
            if (same) {
                // The class without sources (always there) has the bare name: user-alice, authenticated.
                std::string base;
                for (auto k : ks) {
                    if (t_.classes[k].sources.empty()) {
                        base = t_.classes[k].name;
                    }
                }
                out.push_back({base, ks, false});
            } else {
                for (auto k : ks) {
                    out.push_back({t_.classes[k].name, {k}, true});
                }
            }
        }
        return out;
    }

    std::string policy_yaml() const
    {
        std::ostringstream o;
        o << "# egressd policy imported from " << conf_path_ << " by 'egressd import squid'.\n"
          << "# Each part names the squid.conf line it came from. import-report.txt lists what was not carried over\n"
          << "# exactly; 'egressd policy test policy.yaml policy.cases.yaml' checks sample requests against Squid's\n"
          << "# own decisions on the original configuration.\n"
          << "version: 1\n";
        auto cl = clients();
        // Groups: one per allow line and set of boxes (classes differ only by what earlier lines took away).
        std::map<std::string, std::string> group_of_key;
        std::map<std::string, int> used_names;
        std::vector<std::pair<std::string, std::pair<std::size_t, const std::vector<box>*>>> groups;
        std::map<std::size_t, std::vector<std::string>> groups_of_class;
        for (const auto& c : cl) {
            std::size_t k = c.classes.front();
            for (const auto& [line, boxes] : t_.rules[k].allows) {
                std::ostringstream key;
                key << line;
                for (const auto& b : boxes) {
                    rule(key, line, b, false);
                }
                auto [it, created] = group_of_key.try_emplace(key.str());
                if (created) {
                    std::string name = group_name(line);
                    int n = ++used_names[name];
                    it->second = n == 1 ? name : name + "-" + std::to_string(n);
                    groups.push_back({it->second, {line, &boxes}});
                }
                groups_of_class[k].push_back(it->second);
            }
        }
        std::stable_sort(groups.begin(), groups.end(),
                         [](const auto& a, const auto& b) { return a.second.first < b.second.first; });
        if (groups.empty()) {
            o << "groups: {}\n";
        } else {
            o << "groups:\n";
            for (const auto& [name, g] : groups) {
                o << "  " << name << ":\n"
                  << "    description: " << yaml_quoted(comment_of(g.first)) << '\n'
                  << "    rules:\n";
                for (const auto& b : *g.second) {
                    std::ostringstream r;
                    rule(r, g.first, b, false);
                    o << r.str();
                }
            }
        }
        // A deny rule every written client has goes to the global deny list.
        std::vector<std::pair<std::size_t, box>> global;
        if (!cl.empty()) {
            for (const auto& d : t_.rules[cl.front().classes.front()].denies) {
                bool everywhere = std::all_of(cl.begin(), cl.end(), [&](const client_out& c) {
                    const auto& ds = t_.rules[c.classes.front()].denies;
                    return std::find(ds.begin(), ds.end(), d) != ds.end();
                });
                if (everywhere && std::find(global.begin(), global.end(), d) == global.end()) {
                    global.push_back(d);
                }
            }
        }
        o << "clients:\n";
        for (const auto& c : cl) {
            std::size_t k = c.classes.front();
            const auto& klass = t_.classes[k];
            o << "  " << c.name << ":\n";
            std::string who;
            if (klass.identity == client_class::who::user) {
                who = "proxy_auth user " + klass.user;
            } else if (klass.identity == client_class::who::other_user) {
                who = "any other proxy_auth user";
            } else {
                who = "no credentials";
            }
            std::string from = !c.with_sources || klass.src_acls.empty() ? "sources in no src ACL"
                                                                         : "src ACLs " + join(klass.src_acls, ", ");
            if (!c.with_sources) {
                from = "any source";
            }
            o << "    description: " << yaml_quoted(from + "; " + who) << '\n';
            if (c.with_sources && !klass.sources.empty()) {
                for (const auto& name : klass.src_acls) {
                    for (const auto& d : c_.acls.at(name).lines) {
                        o << "    # " << location(d.at) << " " << d.text << '\n';
                    }
                }
                std::vector<std::string> s;
                for (const auto& cidr : klass.sources) {
                    s.push_back(cidr.to_string());
                }
                o << "    sources: " << flow(s, true) << '\n';
            }
            if (klass.identity == client_class::who::user) {
                o << "    identities: " << flow({klass.user}, true) << '\n';
            } else if (klass.identity == client_class::who::other_user) {
                o << "    identities: [\"*\"]\n";
            }
            o << "    groups: " << flow(groups_of_class[k], false) << '\n';
            std::vector<std::pair<std::size_t, box>> own;
            for (const auto& d : t_.rules[k].denies) {
                if (std::find(global.begin(), global.end(), d) == global.end()) {
                    own.push_back(d);
                }
            }
            if (!own.empty()) {
                o << "    deny:\n";
                for (const auto& [line, b] : own) {
                    std::ostringstream r;
                    rule(r, line, b, true);
                    o << r.str();  // a client's deny rules sit where a group's rules do
                }
            }
        }
        if (!global.empty()) {
            o << "deny:\n";
            for (const auto& [line, b] : global) {
                std::ostringstream r;
                rule(r, line, b, true);
                std::istringstream in(r.str());
                for (std::string text; std::getline(in, text);) {
                    o << text.substr(4) << '\n';
                }
            }
        }
        return o.str();
    }

    std::string server_yaml() const
    {
        std::ostringstream o;
        o << "# egressd server configuration imported from " << conf_path_ << " by 'egressd import squid'.\n"
          << "# Check it with: egressd config check egressd.yaml\n"
          << "version: 1\n"
          << "listeners:\n";
        for (const auto& [address, comment] : listeners_) {
            o << "  # " << comment << '\n' << "  - " << yaml_quoted(address) << '\n';
        }
        o << "policy: policy.yaml\n";
        if (!upstream_.empty()) {
            o << "# " << upstream_comment_ << '\n' << "upstream_proxy: " << upstream_ << '\n';
        }
        if (t_.uses_auth) {
            o << "# proxy_auth ACLs: users authenticate with Basic proxy authentication against users.txt\n"
              << "proxy_auth:\n"
              << "  credentials: users.txt\n"
              << "  required: false\n";
        }
        return o.str();
    }

    std::string users_file() const
    {
        std::string out = "# The users squid.conf's proxy_auth ACLs name. Squid's passwords cannot be carried over:\n"
                          "# add each user with  egressd passwd USER >> users.txt\n";
        for (const auto& k : t_.classes) {
            if (k.identity == client_class::who::user && k.sources.empty()) {
                out += "# " + k.user + "\n";
            }
        }
        return out;
    }

    // ---- cases ----

    std::string case_yaml(const sample& s) const
    {
        const auto& klass = t_.classes[s.klass];
        const auto& e = s.verdict;
        std::string by;
        if (e.auth_required) {
            by = "no credentials: 407 at " + location(c_.http_access[*e.deciding].d.at);
        } else if (e.deciding) {
            by = location(c_.http_access[*e.deciding].d.at) + " " +
                 (c_.http_access[*e.deciding].allow ? "allow" : "deny");
        } else {
            by = "the implicit last rule";
        }
        std::string what = s.req.is_connect() ? "CONNECT " + host_port(s.req)
                                              : s.req.method + " http://" + host_port(s.req) + s.req.path;
        std::ostringstream o;
        o << "- name: " << yaml_quoted(klass.name + ": " + what + " -> " + (e.allowed ? "allow" : "deny") + " (" + by + ")")
          << '\n'
          << "  source: " << yaml_quoted(s.req.source->to_string()) << '\n';
        if (s.req.identity) {
            o << "  identity: " << yaml_quoted(*s.req.identity) << '\n';
        }
        o << "  dest: " << yaml_quoted(host_port(s.req)) << '\n';
        if (!s.req.is_connect()) {
            o << "  method: " << s.req.method << '\n' << "  path: " << yaml_quoted(s.req.path) << '\n';
        }
        o << "  expect: " << (e.allowed ? "allow" : "deny") << '\n';
        return o.str();
    }

    void write_cases(const std::vector<sample>& samples,
                     const std::map<std::pair<std::string, std::size_t>, std::size_t>& report_lines)
    {
        std::string header = "# Sample requests decided by Squid's own rules on " + conf_path_ +
                             " (not by the translated policy).\n";
        std::string exact = header + "# Run: egressd policy test policy.yaml policy.cases.yaml\n";
        std::string inexact = header + "# Requests whose decision the translation does not carry over exactly: "
                                       "egressd decides them differently (see import-report.txt).\n";
        std::size_t n_exact = 0;
        for (const auto& s : samples) {
            if (s.inexact) {
                auto it = report_lines.find(*s.inexact);
                inexact += "# inexact: see import-report.txt line " +
                           (it == report_lines.end() ? std::string("?") : std::to_string(it->second)) + "\n" +
                           case_yaml(s);
                ++inexact_cases;
            } else {
                exact += case_yaml(s);
                ++n_exact;
            }
        }
        if (n_exact == 0) {
            exact += "[]\n";
        }
        if (inexact_cases == 0) {
            inexact += "[]\n";
        }
        cases_written = n_exact;
        files["policy.cases.yaml"] = exact;
        files["policy.inexact-cases.yaml"] = inexact;
    }
};

constexpr std::string_view help = R"(Usage: egressd import squid SQUID_CONF [--out DIR] [--force]

Translates a squid.conf (its includes, globs and quoted ACL files too) into an egressd policy that decides the
same, and writes into DIR (default ./egressd-import; existing files are kept unless --force):
  policy.yaml                 one client per class of requesters Squid tells apart (src ACLs, proxy_auth users),
                              groups of allow rules and deny rules, each naming its squid.conf line
  egressd.yaml                listeners from http_port, upstream_proxy from a cache_peer parent with
                              never_direct allow all, proxy_auth (users.txt) when proxy_auth ACLs are used
  lists/NAME.txt              each dstdomain or dst ACL read from a quoted file, translated
  policy.cases.yaml           sample requests with Squid's own decision on the original squid.conf: the policy
                              passes every one (egressd policy test DIR/policy.yaml DIR/policy.cases.yaml)
  policy.inexact-cases.yaml   samples the translation cannot carry over exactly, each naming its report line
  import-report.txt           every line not carried over exactly and why; the lines that do not matter
Squid's first match becomes egressd's union of allows with winning denies: a deny before every allow it
touches is exact; one after an overlapping allow, an allow of every name and Squid's implicit last allow are
reported, and egressd then denies more; each report line says which way egressd errs (a few lines make egressd
ALLOW more: the report says so in capitals). Exit 0 written, 1 unreadable, invalid or too big squid.conf (every
error as file:line:column) or an internal error (the written policy does not load), 2 usage error (or files
exist and --force is not given).
)";

int usage(std::ostream& err, const std::string& message)
{
    err << "egressd: " << message << "\nUsage: egressd import squid SQUID_CONF [--out DIR] [--force]\n";
    return exit_usage;
}

}  // namespace

int import_squid(const std::vector<std::string>& args, std::ostream& out, std::ostream& err)
{
    std::string conf;
    std::string dir = "egressd-import";
    bool force = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const auto& a = args[i];
        if (a == "--help" || a == "-h") {
            out << help;
            return exit_ok;
        }
        if (a == "--out") {
            if (i + 1 >= args.size()) {
                return usage(err, "--out needs a directory");
            }
            dir = args[++i];
        } else if (a == "--force") {
            force = true;
        } else if (a.starts_with("-")) {
            return usage(err, "unknown option '" + a + "'");
        } else if (conf.empty()) {
            conf = a;
        } else {
            return usage(err, "unexpected argument '" + a + "'");
        }
    }
    if (conf.empty()) {
        return usage(err, "import squid needs the path of a squid.conf");
    }
    auto parsed = read_config(conf);
    if (!parsed.errors.empty()) {
        for (const auto& e : parsed.errors) {
            err << e.format() << '\n';
        }
        err << conf << ": " << parsed.errors.size() << " error(s); nothing written\n";
        return exit_invalid;
    }
    auto translated = translate(parsed);
    if (!translated.errors.empty()) {
        for (const auto& e : translated.errors) {
            err << e.format() << '\n';
        }
        err << conf << ": nothing written\n";
        return exit_invalid;
    }
    importer imp(parsed, std::move(translated), conf);
    imp.build();
    fs::path base(dir);
    if (!force) {
        std::vector<std::string> existing;
        for (const auto& [name, text] : imp.files) {
            if (fs::exists(base / name)) {
                existing.push_back((base / name).string());
            }
        }
        if (!existing.empty()) {
            err << "egressd: " << join(existing, ", ") << (existing.size() == 1 ? " exists" : " exist")
                << ": nothing written (--force overwrites)\n";
            return exit_usage;
        }
    }
    for (const auto& [name, text] : imp.files) {
        std::error_code ec;
        fs::create_directories((base / name).parent_path(), ec);
        std::ofstream f(base / name, std::ios::binary | std::ios::trunc);
        f << text;
        f.close();
        if (!f) {
            err << "egressd: cannot write " << (base / name).string() << '\n';
            return exit_invalid;
        }
    }
    // What was written must load as egressd loads it (lists/ too): a policy egressd refuses is the importer's bug.
    auto loaded = egressd::config::load_policy(base / "policy.yaml");
    if (!loaded.snapshot) {
        err << "egressd: internal error: the written policy does not load: " << (base / "policy.yaml").string()
            << "\n";
        for (const auto& e : loaded.errors) {
            err << e.format("error") << '\n';
        }
        return exit_invalid;
    }
    out << "Imported " << conf << " into " << dir << "/\n";
    for (const auto& [name, text] : imp.files) {
        out << "  " << (base / name).string() << '\n';
    }
    out << parsed.lines_read << " lines read in " << parsed.files.size() << " file(s): " << imp.exact_directives
        << " directive(s) carried over exactly, " << imp.inexact_directives << " inexact, " << imp.ignored_directives
        << " ignored (see " << (base / "import-report.txt").string() << ")\n"
        << imp.cases_written << " sample case(s) in policy.cases.yaml, " << imp.inexact_cases
        << " in policy.inexact-cases.yaml\n"
        << "Next:\n"
        << "  egressd policy test " << (base / "policy.yaml").string() << " " << (base / "policy.cases.yaml").string()
        << '\n'
        << "  egressd config check " << (base / "egressd.yaml").string() << '\n';
    return exit_ok;
}

}  // namespace egressd::proxy::tools
