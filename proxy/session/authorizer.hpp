#pragma once

#include "policy/policy.hpp"
#include "proxy/observe/codes.hpp"
#include "proxy/session/authorization.hpp"
#include "proxy/session/connection.hpp"
#include "proxy/session/responses.hpp"

#include <boost/asio/awaitable.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace egressd::proxy {

// What the authorizer hands on when the policy (or DNS) refuses a request.
struct refusal {
    failure why;          // denied with the policy's reason, or dns_failed / dns_timeout with the DNS status
    std::string client;   // the matched client's name, for the close event
    std::string address;  // the address the refusing decision was about; empty in the name phase
};

// Decides one request (a CONNECT or a forwarded plain-HTTP request) with the worker's current policy snapshot:
// the client, the name phase, DNS for a name (never for an IP literal), and every resolved address (the address
// phase, policy::vet_addresses). Logs the decision event, and returns the authorization or the refusal.
// Thread contract: its connection's (the worker's) thread.
class authorizer {
public:
    explicit authorizer(connection& c) : c_(c) {}

    // request: a forwarded plain-HTTP request's method and normal path; none for a CONNECT, which keeps the
    // authorization for its whole life. By pointer: a by-value argument would be a temporary inside the
    // caller's co_await, which g++ 12 may destroy twice.
    boost::asio::awaitable<std::variant<authorization, refusal>> authorize(const policy::destination& dest,
                                                                           const policy::http_request_facts* request);

private:
    // An allow-list miss of a client that may ask becomes (or counts towards) an access request, when the
    // approvals workflow is on: c_.request.access_request names it.
    boost::asio::awaitable<void> note_request(const authorization& a, const policy::decision& d);
    // The name phase allowed a request whose route names a parent proxy (a.parent): the parent's addresses are
    // vetted instead of the destination's. By reference (the caller awaits at once): a by-value argument would be
    // a temporary inside the co_await, which g++ 12 may destroy twice.
    boost::asio::awaitable<std::variant<authorization, refusal>> through_parent(
        authorization& a, const policy::decision& name_decision);

    connection& c_;
};

// A decision event about the request in progress, which c.request names.
struct decision_details {
    std::string_view client;   // the matched client's name
    std::string_view address;  // the address decided on; empty in the name phase
    std::string_view detail = {};
    std::optional<observe::reason> reason = {};  // instead of the policy's: a DNS status
    std::string_view sni = {};                   // the tunnel phase: the ClientHello's server name
    bool dns_error = false;  // an allowed request that could not go on (DNS, a parent proxy): egress.error
    std::string_view upstream = {};  // the parent proxy the request goes through ("host:port"); empty: direct
};
void log_decision(connection& c, const policy::policy& snapshot, const policy::decision& d, const decision_details& x);

// An allowed request through a parent proxy that the parent did not carry (unreachable, or it refused): an
// egress.error naming the parent, besides the decision event already written.
void log_parent_error(connection& c, const authorization& a, const failure& f, std::string_view detail);

}  // namespace egressd::proxy
