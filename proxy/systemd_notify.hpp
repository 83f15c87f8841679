#pragma once

namespace egressd::proxy::systemd {

// The service manager's view of the process (sd_notify(3)): a Type=notify unit is started once READY=1 comes,
// and a reload ends at the next READY=1. Without NOTIFY_SOCKET (not started by systemd) each call does nothing.
// Thread contract: callable from any thread; the server calls them from its control thread.
void notify_ready();
// With MONOTONIC_USEC, which systemd 253 and later require to match a reload to the ExecReload= that caused it.
void notify_reloading();
void notify_stopping();

}  // namespace egressd::proxy::systemd
