#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace egressd::proxy::tools {

// egressd import squid SQUID_CONF [--out DIR] [--force]: writes DIR/policy.yaml, egressd.yaml, lists/*.txt,
// policy.cases.yaml (sample requests with Squid's own decision on the original squid.conf, which the policy must
// pass), policy.inexact-cases.yaml (samples the translation cannot carry over exactly) and import-report.txt.
// args: what follows "import squid". Exit 0 written, 1 unreadable or invalid squid.conf, 2 usage (or files in the
// way without --force).
int import_squid(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace egressd::proxy::tools
