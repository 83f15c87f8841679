#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::policy {

// Interns strings to dense ids 0..size()-1. Open addressing over a flat slot array, keys packed in one
// arena: at a million keys it costs a third of std::unordered_map's memory and one cache miss per probe.
// Not thread-safe while inserting; concurrent const use is safe.
class string_table {
public:
    static std::uint64_t hash(std::string_view s);

    // The id of s, adding it if new.
    std::uint32_t intern(std::string_view s);
    std::optional<std::uint32_t> find(std::string_view s) const { return find(s, hash(s)); }
    std::optional<std::uint32_t> find(std::string_view s, std::uint64_t h) const;

    std::string_view key(std::uint32_t id) const
    {
        return std::string_view(arena_).substr(offsets_[id], offsets_[id + 1] - offsets_[id]);
    }
    std::uint64_t hash_of(std::uint32_t id) const { return hashes_[id]; }
    std::size_t size() const { return hashes_.size(); }
    void shrink_to_fit();

private:
    struct slot {
        std::uint32_t tag = 0;  // high half of the hash, to skip most key comparisons
        std::uint32_t id_plus_one = 0;  // 0: empty
    };

    void grow();

    std::vector<slot> slots_;
    std::vector<std::uint64_t> hashes_;  // per id, for rehashing without touching the keys
    std::vector<std::uint32_t> offsets_{0};
    std::string arena_;
};

}  // namespace egressd::policy
