#pragma once

// The alert stream: denials (and revocations, and errors) grouped per sink by (client, host, port, reason), one
// alert when a group opens, one summary with the count when its dedup window closes, posted to a webhook, a
// Slack incoming webhook or Alertmanager's API v2. Delivery never holds up the caller: each sink has its own
// bounded queue and sending thread (delivery::webhook_sender).
//
// Per sink, in order: the filter (verdicts, reasons, clients); the group (a client-less observation, such as a
// proxy-auth failure or a refused handshake, is grouped by its source address instead, so a flood from one
// source is one group); the first observation of a group makes an alert, later ones in the window are counted
// (suppressed); when the window closes, a summary if anything was counted, and the group is forgotten. At most
// options::max_groups groups are open per sink: observations of further new keys are counted in one overflow
// group per sink, summarized like the others. Alerts and summaries pass a token bucket of max_per_minute;
// one over it is counted rate_limited (an alert's group stays open, so its count is in the summary).

#include "config/server_config.hpp"
#include "proxy/observe/codes.hpp"

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace egressd::proxy::alerts {

// One denial (or revocation, or error) as the engine sees it.
struct observation {
    std::chrono::system_clock::time_point at;
    observe::event_kind kind = observe::event_kind::deny;  // deny, would_deny, revoke, would_revoke, error
    observe::reason reason = observe::reason::no_matching_rule;
    std::string client;  // empty: no client
    std::string source;  // "ip:port" ("[ip]:port" for IPv6)
    std::string host;
    std::uint16_t port = 0;
    std::string address, identity, rule_group, request_id, detail, mode, sni;
    std::optional<std::uint32_t> rule_index;
};

struct sink_counts {
    std::string name;  // config name
    std::string kind;  // webhook, slack, alertmanager
    std::uint64_t alerts = 0, summaries = 0;  // made and handed to the sink's queue (dropped ones included)
    std::uint64_t delivered = 0, failed = 0, retried = 0, dropped = 0;  // deliveries
    std::uint64_t suppressed = 0;    // observations folded into an open group (dedup)
    std::uint64_t rate_limited = 0;  // alerts and summaries not made because max_per_minute was reached
    std::size_t queued = 0;
};

enum class severity : std::uint8_t { low, medium, high };
std::string_view to_string(severity s);
std::optional<severity> parse_severity(std::string_view name);
// The default: high for revocations and for the reasons an attacker or a misconfiguration shows by, low for a
// policy that is merely incomplete, medium for the rest.
severity default_severity(observe::event_kind kind, observe::reason why);

// Thread contract: wants, submit, set_secrets and counts from any thread. The constructor starts one ticking
// thread (closing windows) and one sending thread per sink; the destructor stops them all promptly: what is
// still queued is dropped, and no back-off is waited out.
class engine {
public:
    struct options {
        std::chrono::milliseconds tick{1000};  // how often closed windows are looked for
        // The senders' retries and deadline (each sink's queue length comes from its configuration).
        std::chrono::milliseconds first_retry{1000};
        std::chrono::milliseconds max_retry{60'000};
        unsigned max_attempts = 5;
        std::chrono::milliseconds timeout{10'000};  // connect + send + response, per attempt
        std::size_t max_groups = 100'000;           // open groups per sink; beyond it the overflow group
    };

    // sinks from config::server_config::alerts; secrets[i] is the content of sinks[i].secret_file ("" for
    // none); instance: logging.instance.
    engine(std::vector<config::alert_sink_config> sinks, std::vector<std::string> secrets, std::string instance,
           options o);
    ~engine();
    engine(const engine&) = delete;
    engine& operator=(const engine&) = delete;

    // Does any sink want this one? Lock-free and allocation-free: called on workers for every decision.
    bool wants(observe::event_kind kind, observe::reason why, std::string_view client) const;
    // Groups the batch under one lock; bodies are built and queued after it, and nothing waits on I/O.
    void submit(std::vector<observation> batch);
    // After a reload re-read the secret files (same sinks, same order).
    void set_secrets(std::vector<std::string> secrets);
    std::vector<sink_counts> counts() const;

private:
    struct sink;
    struct message;

    void run_ticker();
    // Closes the windows that ended by now and returns their summaries (the caller holds mutex_).
    void close_windows(std::chrono::steady_clock::time_point now, std::vector<message>& out);
    void deliver(std::vector<message>& messages);

    std::string instance_;
    options options_;
    std::vector<std::unique_ptr<sink>> sinks_;  // the vector and each sink's filter are immutable
    // wants(): per event kind, a bit per reason: any sink at all, and any sink without a client list.
    std::array<std::uint64_t, observe::event_kind_count> any_sink_{};
    std::array<std::uint64_t, observe::event_kind_count> any_client_{};
    mutable std::mutex mutex_;  // every sink's groups, rate limiter and counters
    std::condition_variable wake_;
    bool stopping_ = false;
    std::thread ticker_;
};

}  // namespace egressd::proxy::alerts
