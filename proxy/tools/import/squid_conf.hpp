#pragma once

// Reads a squid.conf (with its includes and quoted ACL files) into plain data: the ACLs, the http_access
// list, listeners, parents and every other directive with where it was written. No decisions here: the
// evaluator (squid_model) and the translation (import_squid) read what this produces.

#include "policy/address.hpp"
#include "policy/spec.hpp"

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <vector>

namespace egressd::proxy::tools::squid {

// file:line(:column) of a directive or a value, as Squid users know it.
struct where {
    std::string file;
    std::size_t line = 0;
    std::size_t column = 0;
    std::string to_string() const { return file + ":" + std::to_string(line); }
};

// One directive: its words, its full text (continuation lines joined) and where it starts.
struct directive {
    where at;
    std::string text;
    std::vector<std::string> words;
    std::vector<std::size_t> columns;  // 1-based column of each word on the directive's first line
};

enum class acl_type : std::uint8_t {
    src,
    dst,
    dstdomain,
    dstdom_regex,
    url_regex,
    urlpath_regex,
    port,
    method,
    proxy_auth,
    manager,       // the predefined cache manager ACL: egressd has no cache manager
    unsupported,   // time, ssl::server_name, browser, ...: kept so that lines naming them are reported
};

// A regex value with the case flag in force where it was written (-i / +i).
struct regex_value {
    std::string text;
    bool icase = false;
    std::regex compiled;
    where at;
};

// A value read from the ACL line or from a quoted file, with its origin (for lists/NAME.txt and the report).
struct acl_value {
    std::string text;
    where at;
};

struct acl {
    std::string name;
    acl_type type = acl_type::unsupported;
    std::string type_text;  // as written: "dstdomain", "time", ...
    std::vector<directive> lines;  // every "acl NAME ..." line (several append)
    bool predefined = false;
    bool icase = false;            // -i (proxy_auth; dstdomain is without case always)
    std::vector<acl_value> values;
    // The quoted files values came from, in order, each with its text lines (comments kept for lists/).
    struct file_source {
        std::string path;
        std::vector<std::string> lines;
        where at;
    };
    std::vector<file_source> files;

    std::vector<policy::cidr> cidrs;            // src, dst (ranges and masks turned into CIDRs)
    std::vector<policy::port_range> ports;      // port
    std::vector<std::string> methods;           // method
    std::vector<std::string> users;             // proxy_auth
    bool any_user = false;                      // proxy_auth REQUIRED
    std::vector<std::string> domains;           // dstdomain: lower case, ".example.com" or "example.com"
    std::vector<regex_value> regexes;           // *_regex
};

struct access_term {
    bool negated = false;
    std::string acl;
    std::size_t column = 0;
};

struct access_line {
    directive d;
    bool allow = false;
    std::vector<access_term> terms;
    std::size_t index = 0;  // 1-based position in the http_access list
};

struct listen_port {
    directive d;
    std::string address;  // empty: every address
    std::uint16_t port = 0;
    std::vector<std::string> options;
};

struct parent_peer {
    directive d;
    std::string host;
    std::uint16_t port = 0;
    std::string type;
};

struct parse_problem {
    where at;
    std::string message;
    std::string format() const
    {
        // A file that could not be read has no line to name.
        std::string place = at.line == 0 ? at.file
                                         : at.file + ":" + std::to_string(at.line) + ":" +
                                               std::to_string(at.column == 0 ? 1 : at.column);
        return place + ": error: " + message;
    }
};

struct config {
    std::string main_dir;            // the main file's directory: file names are shown relative to it
    std::vector<std::string> files;  // every file read, the main one first (quoted ACL files too)
    std::size_t lines_read = 0;
    std::map<std::string, acl> acls;
    std::vector<access_line> http_access;
    std::vector<access_line> never_direct;
    std::vector<listen_port> http_ports;
    std::vector<parent_peer> parents;
    std::vector<directive> auth_params;
    std::vector<directive> others;  // every other directive, in order
    std::vector<parse_problem> errors;

    // A file's name as the report and the comments show it: relative to the main file's directory when inside it.
    std::string shown(const std::string& file) const;
    std::string shown(const where& w) const { return shown(w.file) + ":" + std::to_string(w.line); }
};

// Squid's IP ACL values: an address, address/length, address/netmask, first-last, "all"; host bits are
// masked as Squid does. nullopt with error set when the value is none of these.
std::optional<std::vector<policy::cidr>> parse_ip_value(std::string_view text, std::string& error);

// The address of like's family with these bytes (the first 4 for IPv4).
policy::address address_from_bytes(const policy::address& like, const std::array<std::uint8_t, 16>& bytes);

// ASCII lower case (Squid compares host and, with -i, user names without case).
std::string lower(std::string s);

// Reads path and everything it includes. Errors (unreadable files, unknown ACL names, bad values) are all
// collected in config::errors, each with file:line:column.
config read_config(const std::string& path);

}  // namespace egressd::proxy::tools::squid
