#include "proxy/session/responses.hpp"

#include "protocol/http/message.hpp"
#include "proxy/approvals/service.hpp"
#include "proxy/session/connection.hpp"
#include "proxy/worker.hpp"

#include <vector>

namespace egressd::proxy {

namespace http = protocol::http;
using observe::close_cause;

failure_traits traits_of(failure_kind k)
{
    switch (k) {
    case failure_kind::bad_request:
        return {400, blame::client, close_cause::bad_request};
    case failure_kind::head_too_large:
        return {431, blame::client, close_cause::bad_request};
    case failure_kind::request_line_too_long:
        return {414, blame::client, close_cause::bad_request};
    case failure_kind::header_timeout:
        return {408, blame::client, close_cause::header_timeout};
    case failure_kind::proxy_auth:
        return {407, blame::client, close_cause::proxy_auth};
    case failure_kind::denied:
        return {403, blame::policy, close_cause::denied};
    case failure_kind::dns_failed:
        return {502, blame::upstream, close_cause::dns_failed};
    case failure_kind::dns_timeout:
        return {504, blame::upstream, close_cause::dns_timeout};
    case failure_kind::connect_failed:
        return {502, blame::upstream, close_cause::connect_failed};
    case failure_kind::connect_timeout:
        return {504, blame::upstream, close_cause::connect_timeout};
    case failure_kind::bad_upstream_response:
        return {502, blame::upstream, close_cause::bad_upstream_response};
    case failure_kind::upstream_timeout:
        return {504, blame::upstream, close_cause::upstream_timeout};
    case failure_kind::upstream_closed:
        return {502, blame::upstream, close_cause::upstream_closed};
    case failure_kind::resource_exhausted:
        return {503, blame::internal, close_cause::resource_exhausted};
    }
    return {500, blame::internal, close_cause::internal_error};
}

namespace {

std::string_view reason_phrase(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 408:
        return "Request Timeout";
    case 407:
        return "Proxy Authentication Required";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Error";
    }
}

}  // namespace

boost::asio::awaitable<bool> respond(connection& c, const failure& f, bool keep_alive)
{
    int status = traits_of(f.kind).status;
    c.settle_decision(status);  // egressd answers instead of the upstream: the decision event names this status
    std::string_view reason = observe::to_string(f.why);
    std::string request_id = c.request.id.empty() ? std::string("-") : c.request.id;
    std::string body = "egressd: " + std::string(reason_phrase(status)) + " (" + std::string(reason) + ")";
    if (!f.detail.empty()) {
        body += ": " + std::string(f.detail);
    }
    body += "\r\nrequest id: " + request_id + "\r\n";
    std::string access_request;
    if (f.kind == failure_kind::denied && c.request.access_request != 0 && c.owner.rt().approvals != nullptr) {
        // The person behind the workload learns how to ask for this destination.
        access_request = std::to_string(c.request.access_request);
        body += "access request: " + access_request + "\r\nask for access (add a justification) at " +
                c.owner.rt().approvals->request_url(c.request.access_request) + "\r\n";
    }
    std::vector<http::header> headers{
        {"Content-Type", "text/plain; charset=utf-8"},
        {"Content-Length", std::to_string(body.size())},
        {"X-Egressd-Request-Id", request_id},
        {"X-Egressd-Reason", std::string(reason)},
    };
    if (!access_request.empty()) {
        headers.push_back({"X-Egressd-Access-Request", access_request});
    }
    if (f.kind == failure_kind::proxy_auth) {
        if (auto auth = c.owner.authenticator()) {
            headers.push_back({"Proxy-Authenticate", "Basic realm=\"" + auth->settings().realm + "\", charset=\"UTF-8\""});
        }
    }
    if (!keep_alive) {
        headers.push_back({"Connection", "close"});
    }
    std::string out = http::serialize_response_head(status, reason_phrase(status), headers) + body;
    c.watch.expire_after(c.owner.config().timeouts.idle);
    co_return co_await c.write_all(c.client, out);
}

}  // namespace egressd::proxy
