#pragma once

// The approvals listener (Boost.Beast, like the admin listener, on the service's io_context): the page for
// approvers and requesters (proxy/approvals/pages.hpp lists its routes) and the JSON API.
//
// Who is asking:
//   - a session cookie "egressd_session" (HttpOnly; Secure; SameSite=Strict; Path=/), made by POST /login
//     against the approvers or requesters credentials file (PBKDF2, checked off the io_context thread; failures
//     per source address are answered more and more slowly, like proxy authentication); sessions last 12 hours
//     and end at POST /logout or when the user is gone from a reloaded file;
//   - HTTP Basic on the API (and the page), against the same files;
//   - a trusted header from a configured source (an authenticating reverse proxy in front).
// A page asked for without a user redirects (303) to /login; the API answers 401 with WWW-Authenticate.
// Every POST to the page needs the session's CSRF token (field "csrf"): without it, 403.
//
// JSON API, all under /api/v1, answers application/json; errors are {"error": "..."} with 400, 401, 403, 404,
// 409, 422 or 503. A POST must say Content-Type: application/json (its body may be empty, meaning {}): a
// cross-site form cannot send that, so a browser holding Basic credentials cannot be made to decide.
// Bodies hold only the string fields listed, with the page's text rule (no control characters, well-formed
// UTF-8); anything else (another field, a number, an escape for a control character) is a 400:
//   GET  /api/v1/requests?state=pending|approved|denied|expired&limit=N
//        {"requests":[{"id","client","host","port","state","hits","first_seen","last_seen","reason",
//                      "last_source","last_identity","justifications":[{"user","text","at"}],
//                      "votes":[{"approver","note","at"}],"grant_id","decided_by","decision_note","decided_at",
//                      "url"}]}
//   GET  /api/v1/requests/{id}                       one request (the object above)
//   POST /api/v1/requests/{id}/justify   {"text":"..."}                                  -> the request
//   POST /api/v1/requests/{id}/approve   {"duration":"8h","scope":"host"|"<pattern>","group":"","note":""}
//        -> {"request":{...},"grant":{...}|null}  (grant null: recorded, a second approver is needed)
//        scope "host" (or absent) is the exact host; otherwise a pattern covering it ("*.example.com")
//   POST /api/v1/requests/{id}/deny      {"note":"..."}                                  -> the request
//   GET  /api/v1/grants?state=active|revoked|expired
//        {"grants":[{"id","request_id","scope","scope_name","destination","port","created","expires",
//                    "state","approved_by","note","ended_at","ended_by","seconds_left"}]}
//   GET  /api/v1/grants/{id}
//   POST /api/v1/grants/{id}/revoke      {"note":"..."}                                  -> the grant
//   POST /api/v1/grants/{id}/extend      {"duration":"4h","note":"..."}                  -> the grant
//   GET  /api/v1/history?client=&host=&actor=&event=&request=&grant=&limit=&before=
//        {"history":[{"id","at","event","actor","request_id","grant_id","client","host","port","detail"}]}
//   GET  /api/v1/whoami                                 {"user":"alice","role":"approver"}
// Times are RFC 3339 UTC ("2026-12-06T10:00:00Z"). Deciding needs the approver role (else 403).

#include "certs/credentials.hpp"
#include "config/server_config.hpp"
#include "proxy/approvals/service.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>

namespace egressd::proxy::approvals {

// The users who may sign in. Replaced whole on reload.
struct directory {
    std::shared_ptr<const certs::credential_store> approvers;   // null: none
    std::shared_ptr<const certs::credential_store> requesters;  // null: none
    std::optional<config::trusted_header_config> trusted_header;
};

struct web_settings {
    boost::asio::ip::tcp::endpoint endpoint;         // port 0: the kernel picks (see local_endpoint)
    std::shared_ptr<boost::asio::ssl::context> tls;  // set: HTTPS only
    std::size_t max_connections = 256;
    std::chrono::milliseconds request_timeout{10'000};
    std::chrono::milliseconds idle_timeout{60'000};
    std::chrono::hours session_lifetime{12};
    // Told, on the io_context thread, what went wrong inside the server (a handler that threw: answered 500).
    // Optional; it must not throw.
    std::function<void(std::string_view what)> internal_error;
};

// Thread contract: construct, start, stop, set_directory, set_tls and destroy on the service's io_context thread (or
// while it is not running). Password checks run on `pool`.
class web_server {
public:
    // Binds and listens at once, exclusively. Throws std::runtime_error("cannot bind approvals listener ...").
    web_server(service& svc, web_settings settings, directory users, boost::asio::thread_pool& pool);
    ~web_server();
    web_server(const web_server&) = delete;
    web_server& operator=(const web_server&) = delete;

    boost::asio::ip::tcp::endpoint local_endpoint() const;
    // A reload read the credentials files again: sessions of users no longer in them end.
    void set_directory(directory users);
    // Rotated TLS files: connections accepted from now on use this context, established ones keep theirs. Only
    // for a server started with TLS (its being on or off is fixed at start). On the service's io_context thread.
    void set_tls(std::shared_ptr<boost::asio::ssl::context> tls);
    void start();
    void stop();

private:
    struct state;
    std::shared_ptr<state> state_;
    boost::asio::ip::tcp::endpoint local_endpoint_;
};

}  // namespace egressd::proxy::approvals
