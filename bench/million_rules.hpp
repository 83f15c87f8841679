#pragma once

// The million-rule policy shape both policy benchmarks use, so that their numbers compare: 10,000 clients, each
// with its own group of 100 single-domain rules and its neighbour's group; every tenth rule a wildcard.

#include <malloc.h>

#include <cstddef>
#include <string>

namespace egressd::bench {

constexpr int client_count = 10'000;
constexpr int rules_per_group = 100;
constexpr int total_rules = client_count * rules_per_group;

inline std::string rule_domain(int group, int rule)
{
    std::string base = "svc" + std::to_string(group) + ".example.com";
    if (rule % 10 == 9) {
        return "*.r" + std::to_string(rule) + "." + base;
    }
    return "h" + std::to_string(rule) + "." + base;
}

inline std::string source_cidr(int client)
{
    return "10." + std::to_string(client / 256) + "." + std::to_string(client % 256) + ".0/24";
}

// Bytes the allocator holds for the program: the difference around a load is what the load keeps.
inline std::size_t heap_in_use()
{
    struct mallinfo2 info = mallinfo2();
    return info.uordblks + info.hblkhd;
}

}  // namespace egressd::bench
