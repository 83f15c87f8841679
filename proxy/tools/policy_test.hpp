#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace egressd::proxy::tools {

// egressd policy test POLICY CASES.yaml [--json]: each case (who, destination, resolved addresses, time) decided
// by the policy and compared with its expectation. args: what follows "policy test".
// Exit 0 every case passes, 4 some failed, 1 invalid policy or cases file, 2 usage.
int policy_test(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace egressd::proxy::tools
