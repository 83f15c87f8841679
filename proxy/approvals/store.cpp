#include "proxy/approvals/store.hpp"

#include "config/server_config.hpp"

#include <array>

namespace egressd::proxy::approvals {

namespace {

constexpr std::array<std::string_view, 4> request_state_names{"pending", "approved", "denied", "expired"};
static_assert(static_cast<std::size_t>(request_state::expired) + 1 == request_state_names.size());

constexpr std::array<std::string_view, 3> grant_state_names{"active", "revoked", "expired"};
static_assert(static_cast<std::size_t>(grant_state::expired) + 1 == grant_state_names.size());

template <typename Enum, std::size_t N>
std::optional<Enum> parse_name(const std::array<std::string_view, N>& names, std::string_view text)
{
    for (std::size_t i = 0; i < N; ++i) {
        if (names[i] == text) {
            return static_cast<Enum>(i);
        }
    }
    return std::nullopt;
}

}  // namespace

std::string_view to_string(request_state s)
{
    return request_state_names.at(static_cast<std::size_t>(s));
}

std::optional<request_state> parse_request_state(std::string_view text)
{
    return parse_name<request_state>(request_state_names, text);
}

std::string_view to_string(grant_state s)
{
    return grant_state_names.at(static_cast<std::size_t>(s));
}

std::optional<grant_state> parse_grant_state(std::string_view text)
{
    return parse_name<grant_state>(grant_state_names, text);
}

std::unique_ptr<store> open_store(const config::approvals_config& settings)
{
    if (!settings.store_url.empty()) {
        return open_postgres_store(settings.store_url);
    }
    return open_sqlite_store(settings.store);
}

}  // namespace egressd::proxy::approvals
