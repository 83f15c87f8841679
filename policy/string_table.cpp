#include "policy/string_table.hpp"

#include <functional>

namespace egressd::policy {

std::uint64_t string_table::hash(std::string_view s) { return std::hash<std::string_view>{}(s); }

std::optional<std::uint32_t> string_table::find(std::string_view s, std::uint64_t h) const
{
    if (slots_.empty()) {
        return std::nullopt;
    }
    std::size_t mask = slots_.size() - 1;
    auto tag = static_cast<std::uint32_t>(h >> 32);
    for (std::size_t i = h & mask;; i = (i + 1) & mask) {
        const slot& sl = slots_[i];
        if (sl.id_plus_one == 0) {
            return std::nullopt;
        }
        if (sl.tag == tag && key(sl.id_plus_one - 1) == s) {
            return sl.id_plus_one - 1;
        }
    }
}

std::uint32_t string_table::intern(std::string_view s)
{
    if ((hashes_.size() + 1) * 2 > slots_.size()) {
        grow();
    }
    std::uint64_t h = hash(s);
    std::size_t mask = slots_.size() - 1;
    auto tag = static_cast<std::uint32_t>(h >> 32);
    for (std::size_t i = h & mask;; i = (i + 1) & mask) {
        slot& sl = slots_[i];
        if (sl.id_plus_one == 0) {
            auto id = static_cast<std::uint32_t>(hashes_.size());
            sl = slot{tag, id + 1};
            hashes_.push_back(h);
            arena_.append(s);
            offsets_.push_back(static_cast<std::uint32_t>(arena_.size()));
            return id;
        }
        if (sl.tag == tag && key(sl.id_plus_one - 1) == s) {
            return sl.id_plus_one - 1;
        }
    }
}

void string_table::grow()
{
    // At most half full, so probe runs stay short.
    std::vector<slot> bigger(slots_.empty() ? 16 : slots_.size() * 2);
    std::size_t mask = bigger.size() - 1;
    for (std::uint32_t id = 0; id < hashes_.size(); ++id) {
        std::size_t i = hashes_[id] & mask;
        while (bigger[i].id_plus_one != 0) {
            i = (i + 1) & mask;
        }
        bigger[i] = slot{static_cast<std::uint32_t>(hashes_[id] >> 32), id + 1};
    }
    slots_ = std::move(bigger);
}

void string_table::shrink_to_fit()
{
    hashes_.shrink_to_fit();
    offsets_.shrink_to_fit();
    arena_.shrink_to_fit();
}

}  // namespace egressd::policy
