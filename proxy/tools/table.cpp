#include "proxy/tools/table.hpp"

#include <algorithm>
#include <ostream>

namespace egressd::proxy::tools {

void print_table(std::ostream& out, const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows)
{
    std::vector<std::size_t> widths(header.size(), 0);
    auto measure = [&](const std::vector<std::string>& row) {
        for (std::size_t c = 0; c < row.size() && c < widths.size(); ++c) {
            widths[c] = std::max(widths[c], row[c].size());
        }
    };
    measure(header);
    std::for_each(rows.begin(), rows.end(), measure);
    auto print_row = [&](const std::vector<std::string>& row) {
        std::string line = "  ";
        for (std::size_t c = 0; c < row.size() && c < widths.size(); ++c) {
            std::string pad(widths[c] - row[c].size(), ' ');
            bool last = c + 1 == row.size();
            if (c == 0) {
                line += pad + row[c];
            } else {
                line += row[c] + (last ? std::string() : pad);
            }
            if (!last) {
                line += "  ";
            }
        }
        out << line << '\n';
    };
    print_row(header);
    std::for_each(rows.begin(), rows.end(), print_row);
}

}  // namespace egressd::proxy::tools
