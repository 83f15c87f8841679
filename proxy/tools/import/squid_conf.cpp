#include "proxy/tools/import/squid_conf.hpp"

#include "protocol/host_port.hpp"

#include <glob.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

namespace egressd::proxy::tools::squid {
namespace {

namespace fs = std::filesystem;
namespace pol = egressd::policy;

// Squid refuses deeper nesting, to stop include loops.
constexpr int max_include_depth = 16;
// Files read in all (includes and quoted ACL files): a fan-out of includes stops here, not at memory's end.
constexpr std::size_t max_files = 10000;

// The ACL types Squid 5 knows that the importer does not translate: lines naming them are reported.
const std::set<std::string, std::less<>> other_acl_types = {
    "arp", "srcdomain", "srcdom_regex", "src_as", "dst_as", "peername", "peername_regex", "time", "urllogin",
    "localport", "myportname", "proto", "http_status", "browser", "referer_regex", "ident", "ident_regex",
    "proxy_auth_regex", "snmp_community", "maxconn", "max_user_ip", "random", "req_mime_type", "req_header",
    "rep_mime_type", "rep_header", "external", "user_cert", "ca_cert", "ext_user", "ext_user_regex", "tag",
    "hier_code", "note", "annotate_transaction", "annotate_client", "adaptation_service",
    "transaction_initiator", "has", "any-of", "all-of", "ssl_error", "server_cert_fingerprint", "at_step",
    "ssl::server_name", "ssl::server_name_regex", "connections_encrypted", "squid_error", "myip", "localip",
    "clientside_mark", "client_connection_mark", "myport"};

std::string trim(std::string_view s)
{
    auto b = s.find_first_not_of(" \t\r\n");
    if (b == std::string_view::npos) {
        return {};
    }
    auto e = s.find_last_not_of(" \t\r\n");
    return std::string(s.substr(b, e - b + 1));
}

bool has_glob(std::string_view s) { return s.find_first_of("*?[") != std::string_view::npos; }

// Squid reads numbers with leading zeros ("0080").
std::optional<std::uint16_t> parse_u16(std::string_view s, bool allow_zero = false)
{
    return protocol::parse_port(s, {.allow_zero = allow_zero, .allow_leading_zeros = true});
}

// The smallest list of CIDRs covering first..last (same family).
std::vector<pol::cidr> range_to_cidrs(const pol::address& first, const pol::address& last)
{
    std::vector<pol::cidr> out;
    auto bytes = first.bytes();
    const auto end = last.bytes();
    const int width = first.width();
    const int nbytes = width / 8;
    auto less_equal = [&](const std::array<std::uint8_t, 16>& a) {
        return std::lexicographical_compare(a.begin(), a.begin() + nbytes, end.begin(), end.begin() + nbytes) ||
               std::equal(a.begin(), a.begin() + nbytes, end.begin());
    };
    // Bounded: each step covers at least one address and at most 2 * width blocks are ever needed.
    for (int guard = 0; guard < 4 * width && less_equal(bytes); ++guard) {
        // The largest block starting at bytes that is aligned and ends at or before last.
        int length = width;
        while (length > 0) {
            int bit = length - 1;  // the bit that becomes host bit when the block doubles
            if ((bytes[bit / 8] >> (7 - bit % 8) & 1) != 0) {
                break;
            }
            // The block of length-1 would end at bytes with the low (width - length + 1) bits set.
            auto probe = bytes;
            for (int i = length - 1; i < width; ++i) {
                probe[i / 8] |= static_cast<std::uint8_t>(1u << (7 - i % 8));
            }
            if (!less_equal(probe)) {
                break;
            }
            --length;
        }
        out.push_back(*pol::cidr::make(address_from_bytes(first, bytes), length));
        // Next start: the block's last address plus one.
        auto next = bytes;
        for (int i = length; i < width; ++i) {
            next[i / 8] |= static_cast<std::uint8_t>(1u << (7 - i % 8));
        }
        int i = nbytes - 1;
        for (; i >= 0; --i) {
            if (++next[i] != 0) {
                break;
            }
        }
        if (i < 0) {
            break;  // wrapped past the top of the family
        }
        bytes = next;
    }
    return out;
}

// A dotted netmask as a prefix length; nullopt unless contiguous.
std::optional<int> mask_length(const pol::address& mask)
{
    int length = 0;
    bool ended = false;
    for (int i = 0; i < mask.width(); ++i) {
        if (mask.bit(i)) {
            if (ended) {
                return std::nullopt;
            }
            ++length;
        } else {
            ended = true;
        }
    }
    return length;
}

// An address that may carry host bits: the network part only (Squid masks them; egressd refuses them).
pol::cidr network_of(const pol::address& a, int length)
{
    auto bytes = a.bytes();
    for (int i = length; i < a.width(); ++i) {
        bytes[i / 8] &= static_cast<std::uint8_t>(~(1u << (7 - i % 8)));
    }
    return *pol::cidr::make(address_from_bytes(a, bytes), length);
}

}  // namespace

pol::address address_from_bytes(const pol::address& like, const std::array<std::uint8_t, 16>& b)
{
    return like.is_v4() ? pol::address::from_v4(static_cast<std::uint32_t>(b[0]) << 24 |
                                                static_cast<std::uint32_t>(b[1]) << 16 |
                                                static_cast<std::uint32_t>(b[2]) << 8 | b[3])
                        : pol::address::from_v6(b);
}

std::string lower(std::string s)
{
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

// Squid's IP ACL values: an address, address/length, address/netmask, first-last (optionally /mask), "all".
std::optional<std::vector<pol::cidr>> parse_ip_value(std::string_view text, std::string& error)
{
    if (text == "all") {
        return std::vector<pol::cidr>{*pol::cidr::parse("0.0.0.0/0"), *pol::cidr::parse("::/0")};
    }
    std::string_view body = text;
    std::optional<int> length;
    if (auto slash = body.find('/'); slash != std::string_view::npos) {
        std::string_view m = body.substr(slash + 1);
        body = body.substr(0, slash);
        if (auto n = parse_u16(m, true)) {
            length = *n;
        } else if (auto mask = pol::address::parse(std::string(m))) {
            length = mask_length(*mask);
            if (!length) {
                error = "netmask '" + std::string(m) + "' is not contiguous";
                return std::nullopt;
            }
        } else {
            error = "'" + std::string(m) + "' is neither a prefix length nor a netmask";
            return std::nullopt;
        }
    }
    if (auto dash = body.find('-'); dash != std::string_view::npos) {
        auto first = pol::address::parse(std::string(body.substr(0, dash)));
        auto last = pol::address::parse(std::string(body.substr(dash + 1)));
        if (!first || !last || first->is_v4() != last->is_v4() || *last < *first) {
            error = "'" + std::string(text) + "' is not an address range first-last";
            return std::nullopt;
        }
        if (length && *length != first->width()) {
            error = "a masked address range '" + std::string(text) + "' is not supported";
            return std::nullopt;
        }
        return range_to_cidrs(*first, *last);
    }
    auto a = pol::address::parse(std::string(body));
    if (!a) {
        error = "'" + std::string(body) + "' is not an IP address (host names in IP ACLs are resolved once by Squid "
                                          "at start-up; write the addresses)";
        return std::nullopt;
    }
    int len = length.value_or(a->width());
    if (len > a->width()) {
        error = "prefix length " + std::to_string(len) + " is too long for " + a->to_string();
        return std::nullopt;
    }
    return std::vector<pol::cidr>{network_of(*a, len)};
}

namespace {

class reader {
public:
    config out;

    void read_main(const std::string& path)
    {
        main_ = path;
        out.main_dir = fs::path(path).parent_path().string();
        add_predefined();
        std::ifstream in(path, std::ios::binary);
        if (!in) {
            where at;
            at.file = path;
            error(at, std::string("cannot read the Squid configuration: ") + std::strerror(errno));
            return;
        }
        open_.push_back(canonical(path));
        read_file(path, in, 0);
    }

private:
    std::string main_;
    std::vector<std::string> open_;  // the files being read, the main one first: an include of one is a loop
    bool too_many_ = false;

    static std::string canonical(const std::string& path)
    {
        std::error_code ec;
        auto c = fs::weakly_canonical(path, ec);
        return ec ? fs::path(path).lexically_normal().string() : c.string();
    }

    void add_predefined()
    {
        auto define = [&](const std::string& name, acl_type type, const std::string& type_text,
                          std::vector<std::string> values) {
            acl a;
            a.name = name;
            a.type = type;
            a.type_text = type_text;
            a.predefined = true;
            for (auto& v : values) {
                a.values.push_back({v, {"(predefined)", 0, 0}});
            }
            out.acls[name] = std::move(a);
        };
        // Squid 5's built-in ACLs; to_linklocal is Squid 6's, accepted so that newer configurations import.
        define("all", acl_type::src, "src", {"0.0.0.0/0", "::/0"});
        define("localhost", acl_type::src, "src", {"127.0.0.1/32", "::1/128"});
        define("to_localhost", acl_type::dst, "dst", {"127.0.0.0/8", "0.0.0.0/32", "::/128", "::1/128"});
        define("to_linklocal", acl_type::dst, "dst", {"169.254.0.0/16", "fe80::/10"});
        define("CONNECT", acl_type::method, "method", {"CONNECT"});
        define("manager", acl_type::manager, "url_regex", {});
        for (auto& [name, a] : out.acls) {
            for (const auto& v : a.values) {
                std::string error;
                if (a.type == acl_type::src || a.type == acl_type::dst) {
                    auto c = parse_ip_value(v.text, error);
                    a.cidrs.insert(a.cidrs.end(), c->begin(), c->end());
                } else if (a.type == acl_type::method) {
                    a.methods.push_back(v.text);
                }
            }
        }
    }

    void error(const where& at, std::string message)
    {
        parse_problem p;
        p.at = at;
        p.message = std::move(message);
        out.errors.push_back(std::move(p));
    }

    // Words of one logical line: whitespace-separated, "quoted" kept with their quotes, a word starting with
    // '#' ends the line (a trailing comment).
    static void split(const std::string& text, std::vector<std::string>& words, std::vector<std::size_t>& columns)
    {
        std::size_t i = 0;
        while (i < text.size()) {
            while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) {
                ++i;
            }
            if (i >= text.size() || text[i] == '#') {
                break;
            }
            std::size_t start = i;
            if (text[i] == '"') {
                auto close = text.find('"', i + 1);
                i = close == std::string::npos ? text.size() : close + 1;
            } else {
                while (i < text.size() && text[i] != ' ' && text[i] != '\t') {
                    ++i;
                }
            }
            words.push_back(text.substr(start, i - start));
            columns.push_back(start + 1);
        }
    }

    void read_file(const std::string& path, std::istream& in, int depth)
    {
        out.files.push_back(path);
        std::string line;
        std::size_t number = 0;
        directive pending;
        bool continuing = false;
        while (std::getline(in, line)) {
            ++number;
            ++out.lines_read;
            if (!line.empty() && line.back() == '\r') {
                line.pop_back();
            }
            if (!continuing) {
                auto first = line.find_first_not_of(" \t");
                if (first == std::string::npos || line[first] == '#') {
                    continue;
                }
                pending = directive{};
                pending.at = {path, number, 1};
            }
            bool more = !line.empty() && line.back() == '\\';
            if (more) {
                line.pop_back();
            }
            pending.text += continuing ? " " + trim(line) : line;
            continuing = more;
            if (!continuing) {
                pending.text = trim(pending.text);
                split(pending.text, pending.words, pending.columns);
                if (!pending.words.empty()) {
                    handle(pending, depth);
                }
            }
        }
        if (continuing) {
            pending.text = trim(pending.text);
            split(pending.text, pending.words, pending.columns);
            if (!pending.words.empty()) {
                handle(pending, depth);
            }
        }
    }

    where at_word(const directive& d, std::size_t i) const
    {
        where w = d.at;
        w.column = i < d.columns.size() ? d.columns[i] : 1;
        return w;
    }

    void handle(const directive& d, int depth)
    {
        const std::string& name = d.words[0];
        if (name == "include") {
            include(d, depth);
        } else if (name == "acl") {
            read_acl(d);
        } else if (name == "http_access") {
            read_access(d, out.http_access);
        } else if (name == "never_direct") {
            read_access(d, out.never_direct);
        } else if (name == "http_port") {
            read_port(d);
        } else if (name == "cache_peer") {
            read_peer(d);
        } else if (name == "auth_param") {
            out.auth_params.push_back(d);
        } else {
            out.others.push_back(d);
        }
    }

    static std::string unquote(const std::string& w)
    {
        return w.size() >= 2 && w.front() == '"' && w.back() == '"' ? w.substr(1, w.size() - 2) : w;
    }

    // A relative name: Squid resolves it against its working directory, usually the main file's directory;
    // the including file's directory is tried first, then the main file's, then the working directory.
    std::vector<std::string> candidates(const std::string& including, const std::string& name) const
    {
        fs::path p(name);
        if (p.is_absolute()) {
            return {name};
        }
        std::vector<std::string> found;
        for (const auto& base : {fs::path(including).parent_path(), fs::path(main_).parent_path(), fs::path()}) {
            auto c = (base / p).lexically_normal().string();
            if (std::find(found.begin(), found.end(), c) == found.end()) {
                found.push_back(c);
            }
        }
        return found;
    }

    std::string resolve(const std::string& including, const std::string& name) const
    {
        auto all = candidates(including, name);
        for (const auto& c : all) {
            std::error_code ec;
            if (fs::exists(c, ec)) {
                return c;
            }
        }
        return all.front();
    }

    void include(const directive& d, int depth)
    {
        if (d.words.size() < 2) {
            error(at_word(d, 0), "include needs a file name");
            return;
        }
        if (depth + 1 >= max_include_depth) {
            error(at_word(d, 0), "includes nested deeper than " + std::to_string(max_include_depth) +
                                     " levels (an include loop?)");
            return;
        }
        for (std::size_t i = 1; i < d.words.size(); ++i) {
            std::string name = unquote(d.words[i]);
            std::vector<std::string> paths;
            if (has_glob(name)) {
                // The first base directory where the pattern matches anything (glob sorts the names).
                for (const auto& pattern : candidates(d.at.file, name)) {
                    glob_t g{};
                    if (::glob(pattern.c_str(), 0, nullptr, &g) == 0) {
                        for (std::size_t k = 0; k < g.gl_pathc; ++k) {
                            paths.emplace_back(g.gl_pathv[k]);
                        }
                    }
                    ::globfree(&g);
                    if (!paths.empty()) {
                        break;
                    }
                }
            } else {
                paths.push_back(resolve(d.at.file, name));
            }
            for (const auto& p : paths) {
                auto c = canonical(p);
                if (std::find(open_.begin(), open_.end(), c) != open_.end()) {
                    error(at_word(d, i), "include loop: " + p + " is already being read (it includes itself)");
                    continue;
                }
                if (out.files.size() >= max_files) {
                    if (!too_many_) {
                        error(at_word(d, i), "more than " + std::to_string(max_files) +
                                                 " files read: the includes fan out too far; nothing more is read");
                    }
                    too_many_ = true;
                    return;
                }
                std::ifstream in(p, std::ios::binary);
                if (!in) {
                    error(at_word(d, i), "cannot read included file " + p);
                    continue;
                }
                open_.push_back(c);
                read_file(p, in, depth + 1);
                open_.pop_back();
            }
        }
    }

    // The values of a quoted file: one per line, '#' comment lines and blank lines skipped.
    void read_values_file(acl& a, const directive& d, std::size_t word, std::vector<acl_value>& values)
    {
        std::string path = resolve(d.at.file, unquote(d.words[word]));
        std::ifstream in(path, std::ios::binary);
        if (!in) {
            error(at_word(d, word), "cannot read the ACL file " + path);
            return;
        }
        out.files.push_back(path);
        acl::file_source source{path, {}, at_word(d, word)};
        std::string line;
        std::size_t number = 0;
        bool whole_line = a.type == acl_type::dstdom_regex || a.type == acl_type::url_regex ||
                          a.type == acl_type::urlpath_regex;
        while (std::getline(in, line)) {
            ++number;
            if (!line.empty() && line.back() == '\r') {
                line.pop_back();
            }
            source.lines.push_back(line);
            std::string t = trim(line);
            if (t.empty() || t.front() == '#') {
                continue;
            }
            if (!whole_line) {
                t = t.substr(0, t.find_first_of(" \t"));
            }
            values.push_back({t, {path, number, 1}});
        }
        a.files.push_back(std::move(source));
    }

    static acl_type type_of(const std::string& t)
    {
        static const std::map<std::string, acl_type, std::less<>> known = {
            {"src", acl_type::src},
            {"dst", acl_type::dst},
            {"dstdomain", acl_type::dstdomain},
            {"dstdom_regex", acl_type::dstdom_regex},
            {"url_regex", acl_type::url_regex},
            {"urlpath_regex", acl_type::urlpath_regex},
            {"port", acl_type::port},
            {"method", acl_type::method},
            {"proxy_auth", acl_type::proxy_auth},
        };
        auto it = known.find(t);
        return it == known.end() ? acl_type::unsupported : it->second;
    }

    void read_acl(const directive& d)
    {
        if (d.words.size() < 3) {
            error(at_word(d, 0), "acl needs a name, a type and values: acl NAME TYPE VALUE...");
            return;
        }
        const std::string& name = d.words[1];
        const std::string& type_text = d.words[2];
        acl_type type = type_of(type_text);
        if (type == acl_type::unsupported && !other_acl_types.contains(type_text)) {
            error(at_word(d, 2), "unknown ACL type '" + type_text + "'");
            return;
        }
        auto [it, created] = out.acls.try_emplace(name);
        acl& a = it->second;
        if (created) {
            a.name = name;
            a.type = type;
            a.type_text = type_text;
        } else if (a.type_text != type_text && !(a.type == acl_type::manager)) {
            error(at_word(d, 2), "ACL '" + name + "' is already defined with type " + a.type_text + ", not " +
                                     type_text);
            return;
        }
        a.lines.push_back(d);
        if (a.type == acl_type::manager) {
            return;  // redefining the manager ACL (Squid 3 configurations) changes nothing egressd could use
        }
        bool icase = false;
        std::vector<acl_value> values;
        bool flags = true;
        for (std::size_t i = 3; i < d.words.size(); ++i) {
            const std::string& w = d.words[i];
            if (flags && w == "--") {
                flags = false;
                continue;
            }
            if (flags && (w == "-i" || w == "+i")) {
                icase = w == "-i";
                if (a.type == acl_type::proxy_auth) {
                    a.icase = icase;
                }
                continue;
            }
            // Options (-m, -x, dst's -n: no DNS lookup, which egressd never makes for a CIDR) change nothing the
            // importer reads; src and port values may start with '-' only as errors.
            if (flags && w.size() > 1 && w[0] == '-' && a.type != acl_type::port && a.type != acl_type::src &&
                (a.type != acl_type::dst || w == "-n")) {
                continue;
            }
            // Regex ACLs take -i / +i between values; the others take options only before the first value.
            if (a.type != acl_type::dstdom_regex && a.type != acl_type::url_regex &&
                a.type != acl_type::urlpath_regex) {
                flags = false;
            }
            std::size_t before = values.size();
            if (w.size() >= 2 && w.front() == '"' && w.back() == '"') {
                read_values_file(a, d, i, values);
            } else {
                values.push_back({w, at_word(d, i)});
            }
            for (std::size_t k = before; k < values.size(); ++k) {
                add_value(a, values[k], icase);
            }
        }
        a.values.insert(a.values.end(), values.begin(), values.end());
    }

    void add_value(acl& a, const acl_value& v, bool icase)
    {
        std::string error_text;
        switch (a.type) {
        case acl_type::src:
        case acl_type::dst: {
            auto c = parse_ip_value(v.text, error_text);
            if (!c) {
                error(v.at, "ACL " + a.name + ": " + error_text);
                return;
            }
            a.cidrs.insert(a.cidrs.end(), c->begin(), c->end());
            return;
        }
        case acl_type::port: {
            auto dash = v.text.find('-');
            auto lo = parse_u16(v.text.substr(0, dash), true);
            auto hi = dash == std::string::npos ? lo : parse_u16(v.text.substr(dash + 1), true);
            if (!lo || !hi || *hi < *lo) {
                error(v.at, "ACL " + a.name + ": '" + v.text + "' is not a port or a port range like 1025-65535");
                return;
            }
            // Port 0 never reaches a proxy: a range from 0 starts at 1.
            a.ports.push_back({std::max<std::uint16_t>(*lo, 1), *hi});
            return;
        }
        case acl_type::method:
            a.methods.push_back(v.text);
            return;
        case acl_type::proxy_auth:
            if (v.text == "REQUIRED") {
                a.any_user = true;
            } else {
                a.users.push_back(v.text);
            }
            return;
        case acl_type::dstdomain:
            a.domains.push_back(lower(v.text));
            return;
        case acl_type::dstdom_regex:
        case acl_type::url_regex:
        case acl_type::urlpath_regex:
            try {
                auto flags = std::regex::extended | std::regex::nosubs;
                if (icase) {
                    flags |= std::regex::icase;
                }
                a.regexes.push_back({v.text, icase, std::regex(v.text, flags), v.at});
            } catch (const std::regex_error& e) {
                error(v.at, "ACL " + a.name + ": invalid regular expression '" + v.text + "': " + e.what());
            }
            return;
        case acl_type::manager:
        case acl_type::unsupported:
            return;
        }
    }

    void read_access(const directive& d, std::vector<access_line>& list)
    {
        if (d.words.size() < 2 || (d.words[1] != "allow" && d.words[1] != "deny")) {
            error(at_word(d, 1), d.words[0] + " needs allow or deny");
            return;
        }
        if (d.words.size() < 3) {
            error(at_word(d, 1), d.words[0] + " " + d.words[1] + " needs at least one ACL name");
            return;
        }
        access_line l;
        l.d = d;
        l.allow = d.words[1] == "allow";
        for (std::size_t i = 2; i < d.words.size(); ++i) {
            access_term t;
            std::string w = d.words[i];
            t.column = d.columns[i];
            if (w.starts_with("!")) {
                t.negated = true;
                w = w.substr(1);
            }
            t.acl = w;
            // Squid reads the file top to bottom: an ACL must be defined before a line names it.
            if (!out.acls.contains(w)) {
                where at = d.at;
                at.column = t.column + (t.negated ? 1 : 0);
                error(at, "ACL not found: " + w + (w.empty() ? " (a lone '!')" : ""));
            }
            l.terms.push_back(t);
        }
        l.index = list.size() + 1;
        list.push_back(std::move(l));
    }

    void read_port(const directive& d)
    {
        if (d.words.size() < 2) {
            error(at_word(d, 0), "http_port needs a port");
            return;
        }
        listen_port p;
        p.d = d;
        const std::string& w = d.words[1];
        auto split = protocol::split_host_port(w);
        if (!split || split->unbracketed_v6 || (split->bracketed && !split->port)) {
            error(at_word(d, 1), "expected PORT, ADDRESS:PORT or [IPv6]:PORT, found '" + w + "'");
            return;
        }
        std::string_view port_text = split->port.value_or(split->host);
        if (split->port) {
            std::string_view host = split->host;
            p.address = split->bracketed ? std::string(host.substr(1, host.size() - 2)) : std::string(host);
        }
        auto port = parse_u16(port_text);
        if (!port) {
            error(at_word(d, 1), "invalid port in http_port '" + w + "'");
            return;
        }
        p.port = *port;
        p.options.assign(d.words.begin() + 2, d.words.end());
        out.http_ports.push_back(std::move(p));
    }

    void read_peer(const directive& d)
    {
        if (d.words.size() < 4) {
            error(at_word(d, 0), "cache_peer needs a host, a type and a port: cache_peer HOST parent PORT ICP-PORT");
            return;
        }
        auto port = parse_u16(d.words[3]);
        if (!port) {
            error(at_word(d, 3), "invalid cache_peer port '" + d.words[3] + "'");
            return;
        }
        out.parents.push_back({d, d.words[1], *port, d.words[2]});
    }
};

}  // namespace

std::string config::shown(const std::string& file) const
{
    auto rel = fs::path(file).lexically_relative(main_dir.empty() ? fs::path(".") : fs::path(main_dir));
    if (rel.empty() || rel.string().starts_with("..") || fs::path(file).is_absolute() != fs::path(main_dir).is_absolute()) {
        return file;
    }
    return rel.string();
}

config read_config(const std::string& path)
{
    reader r;
    r.read_main(path);
    return std::move(r.out);
}

}  // namespace egressd::proxy::tools::squid
