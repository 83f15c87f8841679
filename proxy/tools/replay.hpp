#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace egressd::proxy::tools {

// egressd policy replay CANDIDATE --events FILE... [--since ..] [--client NAME] [--json]: every recorded
// decision decided again by a candidate policy; what would change. args: what follows "policy replay".
// Exit 0 nothing allowed before would be denied, 4 something would be, 1 invalid candidate or unreadable file,
// 2 usage.
int policy_replay(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace egressd::proxy::tools
