#pragma once

// Webhooks about access requests: one delivery::webhook_sender per target (its own bounded queue that never
// blocks the caller, its own sending thread, retries with exponential back-off), and counters of what became of
// each notification.
//
// Body (format json), one JSON object:
//   {"event":"requested|approved|denied|revoked|extended|expiring","at":"2026-12-06T10:00:00Z",
//    "request_id":12,"grant_id":3,"client":"ci","host":"api.example.com","port":443,
//    "actor":"alice","note":"...","expires":"...","reason":"no_matching_rule","hits":4,"url":"https://.../requests/12"}
//   (fields that do not apply are left out). Headers: Content-Type: application/json,
//   X-Egressd-Event: <event>, X-Egressd-Timestamp: <unix seconds>, X-Egressd-Delivery: <unique id>, and with
//   a secret X-Egressd-Signature: sha256=<lower-case hex HMAC-SHA256(secret, timestamp + "." + body)>.
// Body (format slack): {"text":"..."} readable in a Slack channel (mrkdwn), with the link to the request.
//
// A delivery succeeds on any 2xx. A 5xx, 429, timeout or connection error is retried after 1 s, 2 s, 4 s, ...
// (at most 5 attempts, at most 60 s apart); a 4xx other than 429 is not retried. Each attempt is signed again
// with a fresh timestamp; X-Egressd-Delivery stays the same, so a receiver can drop a duplicate.

#include "config/server_config.hpp"
#include "proxy/delivery/webhook_sender.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::proxy::approvals {

struct notification {
    std::string event;  // requested, approved, denied, revoked, extended, expiring
    std::chrono::sys_seconds at;
    std::optional<std::int64_t> request_id;
    std::optional<std::int64_t> grant_id;
    std::string client;
    std::string host;
    std::uint16_t port = 0;
    std::string actor;
    std::string note;
    std::optional<std::chrono::sys_seconds> expires;
    std::string reason;
    std::optional<std::int64_t> hits;
    std::string url;
};

// Which webhook events a notification is ("decided" covers approved, denied, revoked and extended).
std::string_view event_class(std::string_view event);

// The bytes a webhook receives (exposed for tests).
std::string json_body(const notification& n);
std::string slack_body(const notification& n);
// The signature and URL parsing live with the sender; these names stay for the notifier's callers.
using delivery::parse_webhook_url;
using delivery::signature;
using delivery::webhook_url;

struct notifier_counts {
    std::uint64_t delivered = 0;
    std::uint64_t failed = 0;    // gave up: attempts exhausted, a 4xx (not 429) or 3xx, or an unusable URL
    std::uint64_t retried = 0;   // attempts after the first
    std::uint64_t dropped = 0;   // the queue was full, or the notifier stopped before the delivery ended
};

// Thread contract: enqueue, counts and set_secrets from any thread; the constructor starts one sending thread
// per target, the destructor stops them (what is still queued is dropped, counted; an attempt in flight is cut
// short, and the destructor never waits for a back-off delay).
class notifier {
public:
    struct target {
        config::webhook_config hook;
        std::string secret;  // empty: no signature
    };
    using options = delivery::webhook_sender::options;  // queue_limit is per target

    notifier(std::vector<target> targets, options o);
    ~notifier();
    notifier(const notifier&) = delete;
    notifier& operator=(const notifier&) = delete;

    // Queues n for every target whose events include it. Never blocks; a full queue drops and counts.
    void enqueue(const notification& n);
    // A reload read the secret files again (same targets, in the same order).
    void set_secrets(std::vector<std::string> secrets);
    notifier_counts counts() const;

private:
    std::vector<config::webhook_config> hooks_;
    std::vector<std::unique_ptr<delivery::webhook_sender>> senders_;  // senders_[i] posts to hooks_[i].url
};

}  // namespace egressd::proxy::approvals
