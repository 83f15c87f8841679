#pragma once

#include "policy/address.hpp"
#include "proxy/session/authorization.hpp"
#include "proxy/session/connection.hpp"
#include "proxy/session/responses.hpp"

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace egressd::proxy {

// Connects the connection's upstream socket to a vetted address: each in the resolver's order until one
// accepts, all within the connect deadline. Only addresses the policy vetted ever reach it, so what is connected
// to is what was checked; nothing is resolved again. Through a parent proxy, the vetted addresses are the
// parent's, and a tunnel is then asked of the parent.
// Thread contract: its connection's (the worker's) thread.
class connector {
public:
    explicit connector(connection& c) : c_(c) {}

    // The address connected to, or connect_failed / connect_timeout, or resource_exhausted when no socket could be
    // had (EMFILE, ENFILE, ENOBUFS, ENOMEM). The upstream socket must be closed.
    boost::asio::awaitable<std::variant<policy::address, failure>> connect(const std::vector<policy::address>& vetted,
                                                                          std::uint16_t port);

    // Through a parent proxy (a.parent, connected): asks it for a tunnel to the destination (CONNECT) and reads its
    // answer within the connect deadline, since the answer is the parent's own connect. Nothing: a 2xx, after which
    // the bytes behind its head (a server that speaks first) wait in upstream_in. Else why not, for egressd's own
    // 502/504: the parent's refusal (its status in `detail`) is never relayed as if the tunnel were open.
    boost::asio::awaitable<std::optional<failure>> open_parent_tunnel(const authorization& a, std::string& detail);

private:
    connection& c_;
};

}  // namespace egressd::proxy
