#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace egressd::proxy::tools {

// egressd events summary FILE... [--since 1h|TIME] [--client NAME] [--json]: what was denied, grouped by
// client, destination and reason with counts. args: what follows "events summary".
int events_summary(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace egressd::proxy::tools
