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

    // tunnel: a CONNECT, which keeps the authorization for its whole life.
    boost::asio::awaitable<std::variant<authorization, refusal>> authorize(const policy::destination& dest,
                                                                           bool tunnel);

private:
    // An allow-list miss of a client that may ask becomes (or counts towards) an access request, when the
    // approvals workflow is on: c_.request.access_request names it.
    boost::asio::awaitable<void> note_request(const authorization& a, const policy::decision& d);

    connection& c_;
};

// A decision event about the request in progress, which c.request names.
struct decision_details {
    std::string_view client;   // the matched client's name
    std::string_view address;  // the address decided on; empty in the name phase
    std::string_view detail = {};
    std::optional<observe::reason> reason = {};  // instead of the policy's: a DNS status
    std::string_view sni = {};                   // the tunnel phase: the ClientHello's server name
    bool dns_error = false;  // an allowed name DNS could not resolve: egress.error, not a denial
};
void log_decision(connection& c, const policy::policy& snapshot, const policy::decision& d, const decision_details& x);

}  // namespace egressd::proxy
