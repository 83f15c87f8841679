#pragma once

#include "policy/address.hpp"
#include "proxy/session/connection.hpp"
#include "proxy/session/responses.hpp"

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <variant>
#include <vector>

namespace egressd::proxy {

// Connects the connection's upstream socket to a vetted address: each in the resolver's order until one
// accepts, all within the connect deadline. Only addresses the policy vetted ever reach it, so what is connected
// to is what was checked; nothing is resolved again.
// Thread contract: its connection's (the worker's) thread.
class connector {
public:
    explicit connector(connection& c) : c_(c) {}

    // The address connected to, or connect_failed / connect_timeout. The upstream socket must be closed.
    boost::asio::awaitable<std::variant<policy::address, failure>> connect(const std::vector<policy::address>& vetted,
                                                                          std::uint16_t port);

private:
    connection& c_;
};

}  // namespace egressd::proxy
