#pragma once

#include "certs/credentials.hpp"
#include "config/server_config.hpp"
#include "policy/policy.hpp"

#include <boost/asio/ssl/context.hpp>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace egressd::proxy::startup {

// Everything egressd runs with, read from the server configuration and the files it names. Built whole or
// not at all, off the event loops; immutable once built, shared by pointer.
struct loaded_state {
    std::shared_ptr<const config::server_config> config;
    std::shared_ptr<const policy::policy> policy;
    std::string policy_digest;  // SHA-256 (hex) of the policy's file names and bytes, in merge order
    std::vector<std::string> policy_files;
    std::shared_ptr<const certs::credential_store> credentials;              // null: no proxy authentication
    std::vector<std::shared_ptr<boost::asio::ssl::context>> listener_tls;  // per listener; null when plain
    std::shared_ptr<boost::asio::ssl::context> admin_tls;                  // null: plain HTTP (or no admin)
    std::optional<std::string> admin_token;
    // Approvals (all empty or null without them): who may sign in to the approvals page, each null when its
    // setting is absent; one signing secret per approvals.notify entry, in order ("" for none); its TLS.
    std::shared_ptr<const certs::credential_store> approvers;
    std::shared_ptr<const certs::credential_store> requesters;
    std::vector<std::string> webhook_secrets;
    std::shared_ptr<boost::asio::ssl::context> approvals_tls;  // null: plain HTTP (or no approvals)
    // One signing secret per alerts entry, in order ("" for a sink without secret_file).
    std::vector<std::string> alert_secrets;
};

struct load_result {
    std::optional<loaded_state> state;  // nullopt when there is any error
    std::vector<std::string> errors;    // "file:line:column: error: ...", every one of them
    std::vector<std::string> warnings;  // "file:line:column: warning: ..."
    // What a failed load named, for the file watch: the configuration as read (null if it did not load) and every
    // file of the policy, the unreadable ones too. A list file that the failed edit names but that does not exist
    // yet then reloads as soon as it is written.
    std::shared_ptr<const config::server_config> attempted_config;
    std::vector<std::string> attempted_policy_files;
};

// The one loading path, at start (`run`, `config check`) and at every reload: the server configuration, the
// policy, the proxy-authentication credentials, the TLS files of the listeners and of the admin listener, the
// approvals' credentials files, webhook secrets and TLS files, and the alert sinks' secrets (and their reason
// codes, which the configuration alone cannot check).
// Independent files are all read, so one run reports every problem with any of them.
load_result load(const std::filesystem::path& config_path);

// What a reload cannot apply to a running process: the settings that differ between the two configurations
// and take effect only at start ("listeners", "workers", ...). Empty when everything can change live.
std::vector<std::string> restart_needed(const config::server_config& running, const config::server_config& loaded);

// SHA-256 (hex) of (name, bytes) pairs: the same files with the same bytes give the same digest on every
// replica, wherever they are mounted (only a file's name, not its directory, is hashed).
std::string digest_of(const std::vector<std::pair<std::string, std::string>>& sources);

}  // namespace egressd::proxy::startup
