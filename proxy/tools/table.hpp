#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace egressd::proxy::tools {

// A text table: a header row and rows of cells, columns padded to their widest cell, the first column (the
// counts) aligned right; indented by two spaces.
void print_table(std::ostream& out, const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows);

}  // namespace egressd::proxy::tools
