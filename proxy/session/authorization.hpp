#pragma once

#include "policy/connection.hpp"
#include "policy/policy.hpp"
#include "proxy/observe/codes.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace egressd::proxy {

// What the authorizer hands on when the policy lets a request through: everything the connector, the tunnel
// and the forwarder need, and everything a later snapshot needs to decide the connection again (a tunnel keeps
// it for its whole life). Immutable once the connection is established, except `client_hello` (set by the SNI
// peek) and `connected` (set by the connector).
struct authorization {
    std::shared_ptr<const policy::policy> snapshot;  // the one that decided
    std::uint64_t policy_version = 0;                // of that snapshot
    std::shared_ptr<const policy::grant_set> grants;  // the approvers' grants consulted with it
    std::optional<policy::client_id> client;
    std::string client_name;                         // empty: no client matched (report mode lets it through)
    policy::client_facts who;                        // source and identity, to match the client again
    observe::identity_source identity_from = observe::identity_source::none;
    policy::host target;
    std::uint16_t port = 0;
    std::optional<policy::http_request_facts> request;  // a forwarded plain-HTTP request's method and path
    // Through a parent proxy: egressd connects to the parent and asks it for target:port; vetted and connected are
    // then the parent's addresses (the destination's are the parent's business).
    std::optional<policy::parent_proxy> parent;
    std::vector<policy::address> vetted;             // addresses that passed, in the resolver's order
    policy::decision decision;                       // the allowing decision (name phase for literals, else address)
    policy::tls_mode tls = policy::tls_mode::off;    // CONNECT: what the first client bytes must be
    std::optional<policy::address> connected;        // the vetted address the upstream is connected to
    std::optional<policy::tunnel_start> client_hello;  // CONNECT under a tls mode: what the ClientHello said

    // The facts to decide the established connection again; needs `connected`.
    policy::established facts() const
    {
        return {who, target, port, *connected, client_hello, parent.has_value(), request};
    }
    // A CONNECT tunnel, not a forwarded plain-HTTP request.
    bool tunnel() const { return !request.has_value(); }
    // The port to connect to: the parent's, or the destination's.
    std::uint16_t connect_port() const { return parent ? parent->port : port; }
};

}  // namespace egressd::proxy
