#pragma once

#include "certs/credentials.hpp"
#include "config/server_config.hpp"
#include "policy/policy.hpp"
#include "proxy/event_log.hpp"

#include <memory>

namespace egressd::proxy {

// Runs egressd: binds the listeners, starts the workers, and handles signals. SIGTERM or SIGINT stops
// accepting, lets in-flight work finish within timeouts.shutdown_grace, then closes what is left.
// Returns the process exit code. Throws std::runtime_error at start-up (a listener cannot bind, ...).
// credentials: the loaded proxy-authentication store when config.proxy_auth is set, else null.
int serve(const config::server_config& config, std::shared_ptr<const policy::policy> snapshot, event_log& log,
          std::shared_ptr<const certs::credential_store> credentials);

}  // namespace egressd::proxy
