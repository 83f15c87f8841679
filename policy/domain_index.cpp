#include "policy/domain_index.hpp"

#include <algorithm>
#include <tuple>

namespace egressd::policy {

void domain_index::add(std::string_view name, const domain_entry& entry)
{
    pending_.emplace_back(building_keys_.intern(name), entry);
}

void domain_index::build()
{
    key_count_ = building_keys_.size();
    // Counting sort by key: stable, so entries added in (group, rule) order stay sorted under each key.
    std::vector<std::uint32_t> offsets(key_count_ + 1, 0);
    for (const auto& item : pending_) {
        ++offsets[item.first + 1];
    }
    for (std::size_t i = 1; i < offsets.size(); ++i) {
        offsets[i] += offsets[i - 1];
    }
    std::vector<domain_entry> entries(pending_.size());
    {
        std::vector<std::uint32_t> next(offsets.begin(), offsets.end() - 1);
        for (const auto& [key, entry] : pending_) {
            entries[next[key]++] = entry;
        }
    }
    pending_.clear();
    pending_.shrink_to_fit();

    std::size_t total = 0;
    for (std::uint32_t id = 0; id < key_count_; ++id) {
        total += record_size({static_cast<std::uint32_t>(building_keys_.key(id).size()), offsets[id + 1] - offsets[id]});
    }
    records_.assign(total, std::byte{0});
    std::size_t slot_count = 16;
    while (slot_count < key_count_ * 2) {
        slot_count *= 2;
    }
    slots_.assign(slot_count, slot{});
    auto by_group_rule = [](const domain_entry& a, const domain_entry& b) {
        return std::tie(a.group, a.rule) < std::tie(b.group, b.rule);
    };
    std::size_t offset = 0;
    for (std::uint32_t id = 0; id < key_count_; ++id) {
        std::string_view key = building_keys_.key(id);
        auto first = entries.begin() + offsets[id];
        auto last = entries.begin() + offsets[id + 1];
        if (!std::is_sorted(first, last, by_group_rule)) {
            std::sort(first, last, by_group_rule);
        }
        record_header header{static_cast<std::uint32_t>(key.size()), offsets[id + 1] - offsets[id]};
        std::memcpy(&records_[offset], &header, sizeof header);
        std::memcpy(&records_[offset + sizeof header], key.data(), key.size());
        std::memcpy(&records_[offset + sizeof header + padded(key.size())], &*first,
                    header.entry_count * sizeof(domain_entry));

        std::uint64_t h = building_keys_.hash_of(id);
        std::size_t mask = slots_.size() - 1;
        std::size_t i = h & mask;
        while (slots_[i].record_plus_one != 0) {
            i = (i + 1) & mask;
        }
        slots_[i] = slot{static_cast<std::uint32_t>(h >> 32), static_cast<std::uint32_t>(offset + 1)};
        offset += record_size(header);
    }
    building_keys_ = string_table{};
}

std::uint32_t domain_index::probe(std::uint64_t h) const
{
    std::size_t mask = slots_.size() - 1;
    auto tag = static_cast<std::uint32_t>(h >> 32);
    for (std::size_t i = h & mask;; i = (i + 1) & mask) {
        if (slots_[i].record_plus_one == 0 || slots_[i].tag == tag) {
            return slots_[i].record_plus_one;
        }
    }
}

std::span<const domain_entry> domain_index::verify(std::uint32_t candidate, std::string_view key,
                                                   std::uint64_t h) const
{
    std::size_t offset = candidate - 1;
    auto header = read_header(offset);
    if (key_at(offset, header) == key) {
        return entries_at(offset, header);
    }
    // A tag collision: keep probing past this slot the slow way.
    std::size_t mask = slots_.size() - 1;
    auto tag = static_cast<std::uint32_t>(h >> 32);
    for (std::size_t i = h & mask; slots_[i].record_plus_one != 0; i = (i + 1) & mask) {
        if (slots_[i].tag != tag) {
            continue;
        }
        offset = slots_[i].record_plus_one - 1;
        header = read_header(offset);
        if (key_at(offset, header) == key) {
            return entries_at(offset, header);
        }
    }
    return {};
}

std::span<const domain_entry> domain_index::lookup(std::string_view key, std::uint64_t h) const
{
    if (slots_.empty()) {
        return {};
    }
    std::uint32_t candidate = probe(h);
    return candidate == 0 ? std::span<const domain_entry>{} : verify(candidate, key, h);
}

}  // namespace egressd::policy
