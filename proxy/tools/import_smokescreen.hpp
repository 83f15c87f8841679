#pragma once

// egressd import smokescreen: reads a smokescreen egress ACL (stripe/smokescreen, pkg/smokescreen/acl/v1,
// "version: v1") and writes an egressd policy, a server configuration with an mTLS listener, policy test cases
// derived from smokescreen's own semantics, and a report of what does not carry over exactly.

#include "config/schema.hpp"
#include "config/yaml_tree.hpp"

#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::proxy::tools::smokescreen {

// The ACL as smokescreen's YAML loader reads it (yaml_loader.go), each value with its position.
enum class action : std::uint8_t { open, report, enforce };
std::string_view to_string(action a);

struct located {
    std::string text;
    config::mark where;
};

struct rule {
    std::string name;  // the role: the client certificate's subject CN (smokescreen's defaultRoleFromRequest)
    config::mark where;
    std::string project;
    action policy = action::enforce;
    config::mark action_at;
    std::vector<located> allowed_domains;
    std::vector<located> mitm_domains;              // mitm_domains[].domain
    std::vector<located> allowed_external_proxies;
};

struct acl {
    std::string file;
    std::vector<rule> services;
    std::optional<rule> default_rule;
    config::mark default_at;
    std::vector<located> global_allow_list;
    config::mark global_allow_at;
    std::vector<located> global_deny_list;
    config::mark global_deny_at;
    std::vector<config::diagnostic> ignored;  // keys smokescreen ignores (it does not read them strictly either)
};

struct read_result {
    std::optional<acl> value;                  // unset when there is any error
    std::vector<config::diagnostic> errors;    // every error at once, each with file:line:column
};

// Reads and validates an ACL as smokescreen's acl.New would: version "v1", a services list, known actions, no
// service twice, domain globs of smokescreen's form (ValidateDomainGlob), mitm_domains within allowed_domains.
read_result read_acl(std::string file, std::string_view text);

// smokescreen's decision for a role and a host (acl.go, Decide): the role's rule (or the default rule), then
// its allowed_domains, the global deny list, the global allow list, and last the rule's action.
enum class result : std::uint8_t { allow, allow_and_report, deny };
std::string_view to_string(result r);

struct decision {
    result outcome = result::deny;
    std::string reason;  // smokescreen's words ("host matched allowed domain in rule", ...)
};

// HostMatchesGlob: lower case, trailing dots ignored; "*.example.com" is every name below example.com at any
// depth, never example.com itself; anything else is that exact name.
bool host_matches_glob(std::string_view host, std::string_view glob);

decision decide(const acl& a, std::string_view role, std::string_view host);

// What the import writes. Each text is a whole file.
struct import_output {
    std::string policy_yaml;
    std::string server_yaml;
    std::string cases_yaml;          // cases egressd decides as smokescreen does
    std::string inexact_cases_yaml;  // cases it does not (each says what egressd does instead)
    std::string report_text;
    std::size_t clients = 0;
    std::size_t groups = 0;
    std::size_t exact_cases = 0;
    std::size_t inexact_cases = 0;
    std::size_t report_lines = 0;
    std::size_t wildcard_roles = 0;  // services with '*' in the name: denied everything (fail closed)
    std::size_t derived_cases = 0;   // every case derived, before the sample of at most 2,000 is written
    bool sampled = false;            // derived_cases was more than that
};

// acl_name: how the files name the ACL (its path as given on the command line).
import_output translate(const acl& a, const std::string& acl_name);

}  // namespace egressd::proxy::tools::smokescreen

namespace egressd::proxy::tools {

// egressd import smokescreen ACL.yaml [--out DIR] [--force]; args: what follows "import smokescreen".
// Exit 0 written, 1 the ACL is unreadable or invalid (every error with file:line:column) or a file cannot be
// written, 2 usage (including output files that exist without --force).
int import_smokescreen(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace egressd::proxy::tools
