#pragma once

// Webhooks about access requests. A bounded queue that never blocks the caller, one sending thread, retries
// with exponential back-off, and counters of what became of each notification.
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

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
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
// "sha256=" + lower-case hex of HMAC-SHA256(secret, timestamp + "." + body).
std::string signature(std::string_view secret, std::string_view timestamp, std::string_view body);

// A webhook URL taken apart: http:// or https://, a host name, IPv4 or [IPv6] literal (host holds it without
// brackets), an optional port (default 80 or 443), and the path with its query (default "/"). User info and
// anything else unusable is nullopt; a fragment is dropped.
struct webhook_url {
    bool tls = false;
    std::string host;
    std::uint16_t port = 0;
    std::string target;
};
std::optional<webhook_url> parse_webhook_url(std::string_view url);

struct notifier_counts {
    std::uint64_t delivered = 0;
    std::uint64_t failed = 0;    // gave up: attempts exhausted, a 4xx (not 429) or 3xx, or an unusable URL
    std::uint64_t retried = 0;   // attempts after the first
    std::uint64_t dropped = 0;   // the queue was full, or the notifier stopped before the delivery ended
};

// Thread contract: enqueue, counts and set_secrets from any thread; the constructor starts the sending thread,
// the destructor stops it (what is still queued is dropped, counted; an attempt in flight is cut short, and
// the destructor never waits for a back-off delay).
class notifier {
public:
    struct target {
        config::webhook_config hook;
        std::string secret;  // empty: no signature
    };
    struct options {
        std::size_t queue_limit = 1000;
        std::chrono::milliseconds first_retry{1000};
        std::chrono::milliseconds max_retry{60'000};
        unsigned max_attempts = 5;
        std::chrono::milliseconds timeout{10'000};  // connect + send + response, per attempt
    };

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
    struct delivery {
        std::size_t target = 0;
        std::string event;
        std::string body;
        unsigned attempts = 0;
        std::chrono::steady_clock::time_point due;
        std::string id;
    };
    void run();
    // Puts d in due order, after the deliveries due at the same time (the caller holds mutex_).
    void schedule(delivery d);

    std::vector<target> targets_;                   // secrets guarded by mutex_, the rest immutable
    std::vector<std::optional<webhook_url>> urls_;  // urls_[i] is targets_[i].hook.url; nullopt: unusable
    options options_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<delivery> queue_;  // ordered by due, so a delivery waiting for a retry does not hold up the rest
    notifier_counts counts_;
    bool stopping_ = false;
    std::string id_prefix_;  // random per notifier: delivery ids stay unique across restarts
    std::uint64_t next_id_ = 0;
    std::function<void()> abort_attempt_;  // set while an attempt runs: ends it at once (for the destructor)
    std::thread thread_;
};

}  // namespace egressd::proxy::approvals
