#pragma once

#include "proxy/event_log.hpp"
#include "proxy/startup/loader.hpp"

#include <filesystem>

namespace egressd::proxy {

// Runs egressd with what startup::load read from config_path: binds the listeners (each address exclusively
// this process's), starts the workers, the admin listener and the file watch, and handles signals.
//
// Reload (SIGHUP, POST /reload, or a change of the policy's files): startup::load runs again off the event
// loops; a result with any error changes nothing and is reported (egressd.reload_failed); a good one gets the
// next policy version, and every worker swaps it in and decides its established connections again, closing
// those the new policy, CRL or credentials no longer allow. Settings that only apply at start are reported as
// needing a restart.
//
// SIGTERM or SIGINT: readiness turns 503, listeners keep accepting for timeouts.drain_delay, then stop;
// in-flight work may finish within timeouts.shutdown_grace, and what is left is closed.
// Returns the process exit code. Throws std::runtime_error at start-up (a listener cannot bind, ...).
int serve(const std::filesystem::path& config_path, startup::loaded_state initial, event_log& log);

}  // namespace egressd::proxy
