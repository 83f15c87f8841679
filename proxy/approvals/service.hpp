#pragma once

// The approval workflow: denials become access requests, approvers decide, grants are published to the
// workers as an immutable policy::grant_set, and expiries and revocations close what grants allowed.
//
// Thread contract: everything runs on the service's own io_context (one thread, started by run()), where the
// store is used and the web listener serves, except the members marked "any thread". The data path never
// waits for the store unless a denial creates a new request.

#include "config/server_config.hpp"
#include "policy/grants.hpp"
#include "policy/policy.hpp"
#include "proxy/approvals/notifier.hpp"
#include "proxy/approvals/store.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <variant>
#include <vector>

namespace egressd::proxy {
class event_log;
}

namespace egressd::proxy::approvals {

enum class role : std::uint8_t { requester, approver };
std::string_view to_string(role r);

struct user {
    std::string name;
    role level = role::requester;
};

// A denial on the data path that may become (or count towards) an access request.
struct denial {
    request_key key;
    policy::reason why = policy::reason::no_matching_rule;
    std::string source;    // ip:port
    std::string identity;  // empty: none
};

// A scope an approver may pick for a request: the pattern and how it reads.
struct scope_choice {
    std::string destination;  // "api.example.com", "*.example.com", ".example.com", or an IP literal
    std::string label;        // "only api.example.com", "every name below example.com", ...
};

// What an approver asks for. Empty destination: the exact host. Empty group: the requesting client only.
struct approve_params {
    std::string destination;
    std::string group;  // a group of the policy the client belongs to: every client in it gets the grant
    std::optional<std::chrono::seconds> duration;  // nullopt: default_grant; never more than max_grant
    std::string note;
};

// The outcome of a call from the page, the API or the CLI: ok with a value, or an error for the caller.
enum class failure : std::uint8_t {
    not_found,      // 404
    conflict,       // 409: not pending, not active, already voted
    forbidden,      // 403: self-approval, a requester deciding
    invalid,        // 400/422: a scope that does not cover the host, a duration over max_grant, a bad note
    unavailable,    // 503: the store cannot be written (fail closed: no new grant)
};
struct error {
    failure kind = failure::invalid;
    std::string message;  // for people: says what to do
};
template <typename T>
using outcome = std::variant<T, error>;

struct approve_result {
    access_request request;
    std::optional<grant_record> grant;  // nullopt: the vote was recorded, another approver is needed
};

// For /metrics and /status.
struct service_counts {
    std::size_t pending = 0;
    std::size_t active_grants = 0;
    std::uint64_t requests_created = 0;
    std::uint64_t requests_limited = 0;  // not made: max_pending or the per-client rate
    std::uint64_t store_failures = 0;    // a store call threw: the change was not made
    // Decisions by kind: approved (a grant), voted (one of two), denied, revoked, extended, expired (grants).
    std::uint64_t approved = 0, voted = 0, denied = 0, revoked = 0, extended = 0, expired = 0;
};

class service {
public:
    // Current policy: for group names, opt-outs and required approvers. Called on the service thread.
    using policy_source = std::function<std::shared_ptr<const policy::policy>()>;
    // Publishes a new grant set to every worker (any thread may be the caller's; must not block).
    using grant_sink = std::function<void(std::shared_ptr<const policy::grant_set>)>;

    service(const config::approvals_config& settings, std::unique_ptr<store> s, event_log& log,
            policy_source policy, grant_sink publish);
    ~service();
    service(const service&) = delete;
    service& operator=(const service&) = delete;

    boost::asio::io_context& io() { return io_; }
    // Service thread only (or before run()).
    const config::approvals_config& settings() const { return settings_; }
    // Any thread: a reload's settings (durations, bounds, public_url) apply from now on.
    void apply_settings(config::approvals_config next);
    std::string public_url() const;  // any thread

    // Start-up, before the proxy is ready: loads pending requests and active grants and publishes the grants.
    // Throws store_error; then run() keeps trying (a shared database that is down at start), and loaded()
    // turns true once it succeeds.
    void load();
    bool loaded() const { return loaded_; }  // any thread
    // Called on the service thread when a load that failed at start succeeds later (set before run()).
    void set_on_loaded(std::function<void()> hook) { on_loaded_ = std::move(hook); }
    // Starts the service thread (expiry timer, hit flushing, polling other replicas' changes, notifications, and
    // whatever else is posted).
    void run();
    void stop();  // any thread; idempotent

    // --- data path, any thread ---
    // A denial that may become a request. Returns at once with the id when a pending request for the key
    // exists (its hit is counted later); otherwise creates one on the service thread, bounded by max_pending and
    // the per-client rate. nullopt: no request (bounds, store failure).
    boost::asio::awaitable<std::optional<std::int64_t>> note_denial(const denial& d);
    std::shared_ptr<const policy::grant_set> grants() const;  // any thread
    service_counts counts() const;                            // any thread
    std::string request_url(std::int64_t id) const;           // public_url + "/requests/<id>"

    // --- the page, the API and the CLI: service thread only ---
    std::vector<access_request> requests(std::optional<request_state> state, std::size_t limit = 500);
    outcome<access_request> request(std::int64_t id);
    std::vector<grant_record> grants_list(std::optional<grant_state> state, std::size_t limit = 500);
    std::optional<grant_record> grant(std::int64_t id);
    std::vector<history_entry> history(const history_filter& filter);

    outcome<access_request> justify(const user& who, std::int64_t request_id, const std::string& text);
    outcome<approve_result> approve(const user& who, std::int64_t request_id, const approve_params& params);
    outcome<access_request> deny(const user& who, std::int64_t request_id, const std::string& note);
    outcome<grant_record> revoke(const user& who, std::int64_t grant_id, const std::string& note);
    outcome<grant_record> extend(const user& who, std::int64_t grant_id, std::chrono::seconds duration,
                                 const std::string& note);

    // For the approve form: the scopes that cover the request's host, narrowest first, and the groups of the
    // requesting client in the current policy, and how many approvers it needs.
    std::vector<scope_choice> scope_choices(const access_request& r) const;
    std::vector<std::string> groups_of(const std::string& client) const;
    unsigned required_approvals(const std::string& client) const;
    // "Make permanent": the policy YAML that allows what the grant allows, for the policy repository.
    std::string policy_snippet(const grant_record& g) const;

    // For notifications (set before run(); optional).
    void set_notifier(notifier* n) { notifier_ = n; }

private:
    struct pending_entry {
        std::int64_t id = 0;
        std::int64_t unflushed_hits = 0;
        time_point last_seen;
        std::string reason, last_source, last_identity;
    };
    struct key_hash {
        std::size_t operator()(const request_key& k) const;
    };

    std::optional<std::int64_t> create_request(const denial& d, time_point now);  // service thread
    // Service thread. ended: a grant that just ended, left out even if the store cannot be read back.
    void publish_grants(std::optional<std::uint64_t> ended = std::nullopt);
    void install_grants(const std::vector<grant_record>& active);
    void publish_set(std::shared_ptr<const policy::grant_set> set);
    std::shared_ptr<const policy::grant_set> grants_snapshot() const;
    unsigned group_required_approvals(const std::string& group) const;  // the most any client of the group needs
    void schedule_tick();
    void tick();  // load if not yet loaded, flush hits, expire, apply other replicas' changes, warn about expiries
    void flush_hits();
    // Other replicas (or processes) sharing the store changed it: pending requests and grants are read again.
    void apply_changes();
    void listen_for_changes();  // the listener thread: a notification polls at once instead of at the next tick
    // A background store call failed: counted, and logged once per outage rather than at every tick.
    void background_failure(const store_error& e, std::string_view what);
    std::optional<error> check_duration(std::chrono::seconds d) const;
    void forget_pending(const request_key& key);
    void count(std::uint64_t service_counts::*which);
    void notify(notification n);
    error store_failed(const store_error& e, std::string_view what);
    std::shared_ptr<const policy::policy> current_policy() const;

    config::approvals_config settings_;
    std::unique_ptr<store> store_;
    event_log& log_;
    policy_source policy_;
    grant_sink publish_;
    notifier* notifier_ = nullptr;

    boost::asio::io_context io_{1};
    std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
    boost::asio::steady_timer tick_timer_{io_};
    std::thread thread_;
    std::atomic<bool> stopped_{false};
    std::atomic<bool> loaded_{false};
    std::function<void()> on_loaded_;
    std::unique_ptr<change_listener> listener_;  // used by listen_thread_ only
    std::thread listen_thread_;

    // Shared with the data path: the pending requests by key, for the id and the hit count; the page's URL.
    mutable std::mutex mutex_;
    std::string public_url_;
    std::unordered_map<request_key, pending_entry, key_hash> pending_;
    std::shared_ptr<const policy::grant_set> grants_;
    service_counts counts_;

    // Service thread only.
    std::unordered_map<std::string, std::vector<std::chrono::steady_clock::time_point>> recent_by_client_;
    std::map<std::string, std::chrono::steady_clock::time_point> notified_at_;  // "requested" cool-down per key
    std::unordered_map<std::int64_t, bool> warned_;  // grants told about their coming expiry
    struct denied_entry {
        std::int64_t id = 0;
        time_point until;
    };
    std::unordered_map<request_key, denied_entry, key_hash> denied_;  // denied keys, for request_ttl
    bool republish_ = false;  // the last publish could not read the store
    std::optional<std::int64_t> seen_version_;  // the store's change version at the last full read
    bool store_down_ = false;                   // a background call failed and none has succeeded since
};

}  // namespace egressd::proxy::approvals
