#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace egressd::proxy {

// Exit codes of the command line, documented in `egressd --help`.
enum exit_code : int {
    exit_ok = 0,
    exit_invalid = 1,  // the policy or config does not load, or an input file cannot be read
    exit_usage = 2,
    exit_denied = 3,  // policy explain: the policy denies the destination
    exit_check_failed = 4,  // policy replay: newly denied traffic; policy test: a case failed
};

// Runs the command line; args excludes the program name. Output goes to out, diagnostics to err.
int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace egressd::proxy
