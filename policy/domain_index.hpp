#pragma once

#include "policy/domain.hpp"
#include "policy/spec.hpp"
#include "policy/string_table.hpp"

#include <cstddef>
#include <cstring>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace egressd::policy {

// What a decision needs to know about a rule, copied next to each of its destinations so that
// matching a destination costs no further memory access (at a million rules every access is a cache miss).
struct rule_terms {
    std::int64_t expires = INT64_MAX;  // seconds since the epoch; the rule stops matching at this instant
    port_range first_ports;
    std::uint32_t more_ports_begin = 0;  // further ranges, in the policy's shared port table
    std::uint16_t more_ports_count = 0;
    std::uint32_t request = 0;  // methods and paths: 0 none, else their index in the policy's table + 1
};

// Where a domain pattern stands in a policy: which group and rule, how it matches, and the rule's terms.
struct domain_entry {
    std::uint32_t group;
    std::uint32_t rule;
    rule_terms terms;
    pattern_kind kind;
};

// Domain patterns keyed by their base name. A lookup of a host costs one hash probe per label (the host
// itself, then each parent), never a scan of the rules. Each key's record holds the key and its entries
// side by side, and the probes for all labels are prefetched together, so a decision waits on about two
// cache misses whatever the policy's size. Entries under one key are sorted by (group, rule), so a
// client's groups are found by binary search. Immutable after build(); concurrent const use is safe.
class domain_index {
public:
    static constexpr std::size_t max_labels = 128;  // a 253-character name has at most 127 labels

    void add(std::string_view name, const domain_entry& entry);
    void build();

    // Entries under the exact key, sorted by (group, rule).
    std::span<const domain_entry> at(std::string_view key) const { return lookup(key, string_table::hash(key)); }

    // A host's own key and each parent key, most specific first, with their hashes: computed once for every
    // index a decision looks in.
    struct host_keys {
        std::string_view suffixes[max_labels];
        std::uint64_t hashes[max_labels];
        std::size_t count = 0;
    };
    static void split(std::string_view host, host_keys& keys)
    {
        keys.count = 0;
        for (std::size_t start = 0; keys.count < max_labels;) {
            keys.suffixes[keys.count] = host.substr(start);
            keys.hashes[keys.count] = string_table::hash(keys.suffixes[keys.count]);
            ++keys.count;
            while (start < host.size() && host[start] != '.') {
                ++start;
            }
            if (start == host.size()) {
                break;
            }
            ++start;
        }
    }

    // The three steps of a lookup, apart so that a decision can start the memory loads of two indexes before it
    // waits on either: prefetch the keys' slots, then locate the records (and prefetch them), then visit.
    struct located {
        std::uint32_t candidates[max_labels];
    };
    void prefetch_slots(const host_keys& keys) const
    {
        if (slots_.empty()) {
            return;
        }
        for (std::size_t i = 0; i < keys.count; ++i) {
            __builtin_prefetch(&slots_[keys.hashes[i] & (slots_.size() - 1)]);
        }
    }
    void locate(const host_keys& keys, located& at) const
    {
        for (std::size_t i = 0; i < keys.count; ++i) {
            at.candidates[i] = slots_.empty() ? 0 : probe(keys.hashes[i]);
            if (at.candidates[i] != 0) {
                __builtin_prefetch(&records_[at.candidates[i] - 1]);
            }
        }
    }
    // Calls visit(entries, own_key) for the host's own key, then for each parent key, most specific first,
    // until visit returns false. At the own key, exact and domain patterns match; at a parent, subdomains and domain.
    template <typename Visit>
    void visit_keys(const host_keys& keys, const located& at, Visit&& visit) const
    {
        for (std::size_t i = 0; i < keys.count; ++i) {
            if (at.candidates[i] == 0) {
                continue;
            }
            auto entries = verify(at.candidates[i], keys.suffixes[i], keys.hashes[i]);
            if (!entries.empty() && !visit(entries, i == 0)) {
                return;
            }
        }
    }


    static bool matches_at(pattern_kind kind, bool own_key)
    {
        return own_key ? kind != pattern_kind::subdomains : kind != pattern_kind::exact;
    }

    // Calls visit(key, entries) for every key.
    template <typename Visit>
    void for_each_entry_list(Visit&& visit) const
    {
        for (std::size_t offset = 0; offset < records_.size();) {
            auto header = read_header(offset);
            visit(key_at(offset, header), entries_at(offset, header));
            offset += record_size(header);
        }
    }

    std::size_t key_count() const { return key_count_; }

private:
    // Record layout in records_, 8-byte aligned: header, key bytes padded to 8, entries.
    struct record_header {
        std::uint32_t key_length;
        std::uint32_t entry_count;
    };
    struct slot {
        std::uint32_t tag = 0;           // high half of the key's hash
        std::uint32_t record_plus_one = 0;  // 0: empty; else the record's offset in records_ + 1
    };

    static std::size_t padded(std::size_t n) { return (n + 7) & ~std::size_t{7}; }
    static std::size_t record_size(record_header h)
    {
        return sizeof(record_header) + padded(h.key_length) + h.entry_count * sizeof(domain_entry);
    }
    record_header read_header(std::size_t offset) const
    {
        record_header h;
        std::memcpy(&h, &records_[offset], sizeof h);
        return h;
    }
    std::string_view key_at(std::size_t offset, record_header h) const
    {
        return {reinterpret_cast<const char*>(&records_[offset + sizeof(record_header)]), h.key_length};
    }
    std::span<const domain_entry> entries_at(std::size_t offset, record_header h) const
    {
        // The entries were memcpy'd into this storage, which creates them (C++20 implicit object creation).
        const auto* first = reinterpret_cast<const domain_entry*>(
            &records_[offset + sizeof(record_header) + padded(h.key_length)]);
        return {first, h.entry_count};
    }

    // The first slot whose tag matches, as record offset + 1, or 0. Tag collisions are settled by verify().
    std::uint32_t probe(std::uint64_t h) const;
    std::span<const domain_entry> verify(std::uint32_t candidate, std::string_view key, std::uint64_t h) const;
    std::span<const domain_entry> lookup(std::string_view key, std::uint64_t h) const;

    // While building: keys interned to dense ids and the entries under them.
    string_table building_keys_;
    std::vector<std::pair<std::uint32_t, domain_entry>> pending_;

    std::vector<slot> slots_;
    std::vector<std::byte> records_;
    std::size_t key_count_ = 0;
};

}  // namespace egressd::policy
