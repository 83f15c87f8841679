#include "policy/domain_index.hpp"

#include <algorithm>
#include <tuple>

namespace egressd::policy {

void domain_index::add(std::string name, domain_entry entry)
{
    auto [it, inserted] = keys_.try_emplace(std::move(name), static_cast<std::uint32_t>(keys_.size()));
    pending_.emplace_back(it->second, entry);
}

void domain_index::build()
{
    std::sort(pending_.begin(), pending_.end(), [](const auto& a, const auto& b) {
        return std::tie(a.first, a.second.group, a.second.rule) < std::tie(b.first, b.second.group, b.second.rule);
    });
    entries_.clear();
    entries_.reserve(pending_.size());
    offsets_.assign(keys_.size() + 1, 0);
    for (const auto& [key, entry] : pending_) {
        ++offsets_[key + 1];
        entries_.push_back(entry);
    }
    for (std::size_t i = 1; i < offsets_.size(); ++i) {
        offsets_[i] += offsets_[i - 1];
    }
    pending_.clear();
    pending_.shrink_to_fit();
}

std::span<const domain_entry> domain_index::at(std::string_view key) const
{
    auto it = keys_.find(key);
    if (it == keys_.end()) {
        return {};
    }
    return std::span<const domain_entry>(entries_).subspan(offsets_[it->second],
                                                           offsets_[it->second + 1] - offsets_[it->second]);
}

}  // namespace egressd::policy
