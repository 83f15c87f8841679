#pragma once

#include "certs/credentials.hpp"
#include "certs/tls.hpp"
#include "config/server_config.hpp"
#include "policy/policy.hpp"
#include "proxy/event_log.hpp"

#include <memory>
#include <vector>

namespace egressd::proxy {

// Reads a TLS listener's certificate, key, CAs and CRLs (at start, and again on SIGHUP).
certs::tls_server_context load_listener_tls(const config::listener_tls_config& tls);

// Runs egressd: binds the listeners, starts the workers, and handles signals. SIGTERM or SIGINT stops
// accepting, lets in-flight work finish within timeouts.shutdown_grace, then closes what is left. SIGHUP
// reloads the TLS listeners' files: new connections use them, established ones keep what they started with;
// files that fail to load leave the running ones in place.
// Returns the process exit code. Throws std::runtime_error at start-up (a listener cannot bind, ...).
// credentials: the loaded proxy-authentication store when config.proxy_auth is set, else null.
// tls_contexts: one per listener, in config.listeners' order; null for a plain listener.
int serve(const config::server_config& config, std::shared_ptr<const policy::policy> snapshot, event_log& log,
          std::shared_ptr<const certs::credential_store> credentials,
          std::vector<std::shared_ptr<boost::asio::ssl::context>> tls_contexts);

}  // namespace egressd::proxy
