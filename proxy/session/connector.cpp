#include "proxy/session/connector.hpp"

#include "protocol/http/message.hpp"
#include "proxy/observe/exhaustion.hpp"
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
        if (ec.category() == boost::system::system_category() && observe::is_exhaustion(ec.value())) {
            // No socket (or no memory to connect one): the next address would fare no better, and the upstream
            // is not to blame.
            c_.owner.resource_exhausted(observe::exhaustion_site::upstream, ec.value());
            co_return failure{failure_kind::resource_exhausted, observe::reason::resource_exhausted};
        }
    }
    co_return failure{failure_kind::connect_failed, observe::reason::connect_failed};
}

asio::awaitable<std::optional<failure>> connector::open_parent_tunnel(const authorization& a, std::string& detail)
{
    namespace http = protocol::http;
    const auto& cfg = c_.owner.config();
    std::string authority = a.target.to_string() + ":" + std::to_string(a.port);
    std::string parent = a.parent->to_string();
    std::string ask = "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n";
    c_.watch.expire_after(cfg.timeouts.connect);
    if (!co_await c_.write_all(c_.upstream, ask)) {
        detail = "parent proxy " + parent + " closed the connection before the CONNECT was sent";
        co_return failure{failure_kind::connect_failed, observe::reason::connect_failed};
    }
    http::limits lim{cfg.limits.max_head_bytes, cfg.limits.max_headers, cfg.limits.max_request_line};
    auto& in = c_.upstream_in;
    for (;;) {
        http::response_head head;
        http::parse_error err = http::parse_error::none;
        auto status = http::parse_response_head(in, lim, head, err);
        if (status == http::parse_status::error) {
            detail = "parent proxy " + parent + " answered the CONNECT with a malformed response";
            co_return failure{failure_kind::bad_upstream_response, observe::reason::bad_upstream_response};
        }
        if (status == http::parse_status::incomplete) {
            if (!co_await c_.read_more(c_.upstream, in)) {
                if (c_.watch.expired()) {
                    detail = "parent proxy " + parent + " did not answer the CONNECT in time";
                    co_return failure{failure_kind::connect_timeout, observe::reason::connect_timeout};
                }
                detail = "parent proxy " + parent + " closed the connection without answering the CONNECT";
                co_return failure{failure_kind::connect_failed, observe::reason::connect_failed};
            }
            continue;
        }
        in.erase(0, head.head_size);
        if (head.status >= 100 && head.status < 200) {
            continue;  // interim answers carry nothing for a CONNECT
        }
        if (head.status >= 200 && head.status < 300) {
            co_return std::nullopt;
        }
        // What the parent said is for egressd's log, not the client's tunnel: its body is never relayed.
        detail = "parent proxy " + parent + " refused the CONNECT: " + std::to_string(head.status) +
                 (head.reason.empty() ? std::string() : " " + head.reason);
        co_return failure{failure_kind::connect_failed, observe::reason::connect_failed};
    }
}

}  // namespace egressd::proxy
