#pragma once

// Posting JSON to one HTTP(S) endpoint without ever holding up the caller: the approvals notifier and the alert
// sinks each own one webhook_sender per target, so a target that is down or slow delays only its own queue.
//
// Every POST carries Content-Type: application/json, X-Egressd-Event: <event>, X-Egressd-Timestamp: <unix
// seconds>, X-Egressd-Delivery: <unique id>, and with a secret X-Egressd-Signature: sha256=<lower-case hex
// HMAC-SHA256(secret, timestamp + "." + body)>.
//
// A delivery succeeds on any 2xx. A 5xx, 429, timeout or connection error is retried after 1 s, 2 s, 4 s, ...
// (at most 5 attempts, at most 60 s apart); a 4xx other than 429 (or a 3xx) is not retried. Each attempt is
// signed again with a fresh timestamp; X-Egressd-Delivery stays the same, so a receiver can drop a duplicate.

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

namespace egressd::proxy::delivery {

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

// "sha256=" + lower-case hex of HMAC-SHA256(secret, timestamp + "." + body).
std::string signature(std::string_view secret, std::string_view timestamp, std::string_view body);

// Text for Slack's mrkdwn: &, < and > are its control characters.
std::string slack_escape(std::string_view s);
// "api.example.com:443", "[2001:db8::1]:443"; port 0: the host alone.
std::string host_port(std::string_view host, std::uint16_t port);

struct sender_counts {
    std::uint64_t delivered = 0;
    std::uint64_t failed = 0;   // gave up: attempts exhausted, a 4xx (not 429) or 3xx, or an unusable URL
    std::uint64_t retried = 0;  // attempts after the first
    std::uint64_t dropped = 0;  // the queue was full, or the sender stopped before the delivery ended
    std::size_t queued = 0;     // waiting now (first attempts and retries), not counting one in flight
};

// One target, one queue, one sending thread.
// Thread contract: send, set_secret and counts from any thread; the constructor starts the sending thread, the
// destructor stops it (what is still queued is dropped, counted; an attempt in flight is cut short, and the
// destructor never waits for a back-off delay).
class webhook_sender {
public:
    struct options {
        std::size_t queue_limit = 1000;
        std::chrono::milliseconds first_retry{1000};
        std::chrono::milliseconds max_retry{60'000};
        unsigned max_attempts = 5;
        std::chrono::milliseconds timeout{10'000};  // connect + send + response, per attempt
    };

    // url: an unusable one fails every delivery at once (counted). secret: empty, no signature.
    webhook_sender(std::string_view url, std::string secret, options o);
    ~webhook_sender();
    webhook_sender(const webhook_sender&) = delete;
    webhook_sender& operator=(const webhook_sender&) = delete;

    // Queues one POST of body. Never blocks on I/O; false (counted dropped) when the queue is full or stopping.
    bool send(std::string event, std::string body);
    void set_secret(std::string secret);
    sender_counts counts() const;

private:
    struct delivery {
        std::string event;
        std::string body;
        unsigned attempts = 0;
        std::chrono::steady_clock::time_point due;
        std::string id;
    };
    void run();
    // Puts d in due order, after the deliveries due at the same time (the caller holds mutex_).
    void schedule(delivery d);

    const std::optional<webhook_url> url_;  // nullopt: unusable
    const options options_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::string secret_;          // guarded by mutex_
    std::deque<delivery> queue_;  // ordered by due, so a delivery waiting for a retry does not hold up the rest
    sender_counts counts_;
    bool stopping_ = false;
    std::string id_prefix_;  // random per sender: delivery ids stay unique across restarts
    std::uint64_t next_id_ = 0;
    std::function<void()> abort_attempt_;  // set while an attempt runs: ends it at once (for the destructor)
    std::thread thread_;
};

}  // namespace egressd::proxy::delivery
