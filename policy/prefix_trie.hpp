#pragma once

#include "policy/address.hpp"

#include <cstdint>
#include <vector>

namespace egressd::policy {

// Binary trie over address bits, one root per family. Each prefix holds a Value.
// Lookups walk at most 32 or 128 nodes, whatever the number of prefixes.
// Immutable after building; concurrent const use is safe.
template <typename Value>
class prefix_trie {
public:
    prefix_trie() { nodes_.resize(2); }  // roots: [0] IPv4, [1] IPv6

    // Returns the value slot for the prefix, creating it default-constructed.
    Value& at(const cidr& prefix)
    {
        std::uint32_t node = root(prefix.base());
        for (int i = 0; i < prefix.length(); ++i) {
            int side = prefix.base().bit(i) ? 1 : 0;
            std::uint32_t child = nodes_[node].child[side];
            if (child == 0) {
                child = static_cast<std::uint32_t>(nodes_.size());
                nodes_[node].child[side] = child;
                nodes_.emplace_back();  // invalidates references into nodes_: none is held here
            }
            node = child;
        }
        nodes_[node].has_value = true;
        return nodes_[node].value;
    }

    // Calls visit(prefix_length, value) for every prefix containing a, shortest first.
    template <typename Visit>
    void for_each_containing(const address& a, Visit&& visit) const
    {
        std::uint32_t node = root(a);
        for (int depth = 0;; ++depth) {
            const auto& n = nodes_[node];
            if (n.has_value) {
                visit(depth, n.value);
            }
            if (depth == a.width()) {
                return;
            }
            node = n.child[a.bit(depth) ? 1 : 0];
            if (node == 0) {
                return;
            }
        }
    }

    // The value of the longest prefix containing a, or nullptr.
    const Value* longest_match(const address& a) const
    {
        const Value* best = nullptr;
        for_each_containing(a, [&](int, const Value& v) { best = &v; });
        return best;
    }

    void shrink_to_fit() { nodes_.shrink_to_fit(); }

private:
    struct trie_node {
        std::uint32_t child[2] = {0, 0};
        bool has_value = false;
        Value value{};
    };

    static std::uint32_t root(const address& a) { return a.is_v4() ? 0 : 1; }

    std::vector<trie_node> nodes_;
};

}  // namespace egressd::policy
