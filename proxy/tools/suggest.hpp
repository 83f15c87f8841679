#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace egressd::proxy::tools {

// egressd policy suggest --events FILE... [--policy CURRENT] [--client NAME] [--since DURATION] [--collapse N]
// args: what follows "policy suggest". Exit codes as the rest of the CLI: 0 ok, 1 CURRENT invalid or an event
// file unreadable, 2 usage.
// Writes to `out` a complete policy that would allow what the event logs show was asked for, one group per
// client, never anything the deny list or the address guard refused.
int policy_suggest(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace egressd::proxy::tools
