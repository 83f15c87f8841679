#include "proxy/session/connector.hpp"

#include "proxy/worker.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

namespace egressd::proxy {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

tcp::endpoint endpoint_of(const policy::address& a, std::uint16_t port)
{
    if (a.is_v4()) {
        return {asio::ip::address_v4(a.v4_value()), port};
    }
    asio::ip::address_v6::bytes_type bytes;
    std::copy(a.bytes().begin(), a.bytes().end(), bytes.begin());
    return {asio::ip::address_v6(bytes), port};
}

}  // namespace

asio::awaitable<std::variant<policy::address, failure>> connector::connect(const std::vector<policy::address>& vetted,
                                                                          std::uint16_t port)
{
    c_.watch.expire_after(c_.owner.config().timeouts.connect);
    for (const auto& addr : vetted) {
        boost::system::error_code ignored;
        c_.upstream.close(ignored);  // the attempt before this one failed
        c_.upstream_in.clear();
        auto started = std::chrono::steady_clock::now();
        auto [ec] = co_await c_.upstream.async_connect(endpoint_of(addr, port), asio::as_tuple(asio::use_awaitable));
        auto took = std::chrono::steady_clock::now() - started;
        if (!ec) {
            c_.owner.metrics().upstream_connect(observe::connect_result::ok, took);
            c_.upstream.set_option(tcp::no_delay(true), ignored);
            co_return addr;
        }
        if (c_.watch.expired() || c_.closed_by) {
            c_.owner.metrics().upstream_connect(observe::connect_result::timeout, took);
            co_return failure{failure_kind::connect_timeout, observe::reason::connect_timeout};
        }
        c_.owner.metrics().upstream_connect(observe::connect_result::failed, took);
    }
    co_return failure{failure_kind::connect_failed, observe::reason::connect_failed};
}

}  // namespace egressd::proxy
