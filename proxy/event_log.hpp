#pragma once

#include "config/server_config.hpp"
#include "proxy/json.hpp"
#include "proxy/observe/codes.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace spdlog {
class logger;
namespace details {
class thread_pool;
}
}  // namespace spdlog

namespace egressd::proxy {

// Every event egressd writes, as one JSON line with fixed names (documented in README.md):
//   egress.allow, egress.deny, egress.would_deny  one per decision
//   egress.close                                  one per closed client connection or tunnel
//   egressd.*                                     start, listening, stop, reload, log drops
struct decision_event {
    observe::event_kind event = observe::event_kind::deny;  // allow, deny or would_deny
    std::string_view request_id;
    std::string_view client;  // empty: unknown client
    std::string_view source;  // ip:port
    std::string_view method;
    std::string_view host;
    std::uint16_t port = 0;
    std::string_view address;  // resolved or literal address decided on; empty in the name phase
    observe::reason reason = observe::reason::allowed;
    std::string_view mode;
    std::string_view rule_group;  // empty: no rule
    std::optional<std::uint32_t> rule_index;
    std::string_view rule_description;
    std::string_view guard;  // guarded set for address_guard
    std::string_view sni;    // tunnel phase: the ClientHello's server name, if any
    std::string_view identity;  // who the client proved to be, if anyone
    observe::identity_source identity_source = observe::identity_source::none;  // how; none: not written
    std::string_view detail; // extra words for errors that are not policy (dns status, parse error)
    std::uint64_t grant_id = 0;        // reason granted: the approver's grant; 0: none
    std::int64_t access_request = 0;   // a denial that became (or counted towards) an access request; 0: none
};

struct close_event {
    std::string_view request_id;
    std::string_view client;
    std::string_view source;
    std::string_view method;
    std::string_view host;
    std::uint16_t port = 0;
    std::string_view address;
    std::uint64_t bytes_from_client = 0;
    std::uint64_t bytes_to_client = 0;
    std::chrono::milliseconds duration{0};
    observe::close_cause cause = observe::close_cause::error;
    std::uint64_t requests = 0;
};

// An established connection decided again (after a reload, or at a rule's expiry) and no longer allowed.
struct revoke_event {
    observe::event_kind kind = observe::event_kind::revoke;  // revoke, or would_revoke (report mode, on_revoke: keep)
    std::string_view request_id;  // the connection's last request
    std::string_view client;
    std::string_view source;
    std::string_view method;
    std::string host;
    std::uint16_t port = 0;
    std::string address;
    std::string_view sni;
    std::string_view identity;
    observe::identity_source identity_source = observe::identity_source::none;
    observe::close_cause cause = observe::close_cause::policy_revoked;
    std::string_view reason;  // the new policy's reason code, or why the certificate or user no longer holds
    std::string_view detail;
    observe::revoke_outcome action = observe::revoke_outcome::closed;
    std::uint64_t policy_version = 0;    // the one that decided now
    std::uint64_t previous_version = 0;  // the one in force before the reload (the same at an expiry)
    std::string_view rule_group;
    std::optional<std::uint32_t> rule_index;
    std::string_view rule_description;
    std::uint64_t grant_id = 0;  // the connection rested on this grant; 0: none
};

// Asynchronous JSON-lines logger: callers format and enqueue, a writer thread does the I/O, the queue is
// bounded and drops its oldest entries when full (counted, and reported as egressd.log_dropped), so the
// data path never waits on a disk or a syslog daemon.
// Thread contract: all member functions are safe to call from any thread.
class event_log {
public:
    explicit event_log(const config::logging_config& config);  // throws std::runtime_error if a sink cannot open
    ~event_log();
    event_log(const event_log&) = delete;
    event_log& operator=(const event_log&) = delete;

    void decision(const decision_event& e) { write(format(e), e.event != observe::event_kind::allow); }
    void close(const close_event& e) { write(format(e), false); }
    // Several events at once, each part holding whole lines joined by '\n': one queue entry for all of them.
    void write_lines(const std::string& lines, const std::string& deny_lines);
    static std::string format(const decision_event& e);
    static std::string format(const close_event& e);
    static std::string format(const revoke_event& e);
    // An operational event: egressd.start, egressd.listening, ... with string fields.
    void notice(std::string_view event, const std::vector<std::pair<std::string_view, json_value>>& fields,
                bool warning = false);

    std::uint64_t dropped() const;
    void flush();

private:
    void write(const std::string& line, bool deny);

    std::shared_ptr<spdlog::details::thread_pool> pool_;
    std::shared_ptr<spdlog::logger> main_;
    std::shared_ptr<spdlog::logger> deny_;
};

// Sees the decisions and revocations a worker logs, besides the log (the alert stream's intake). Called on the
// worker's thread; flush() comes with the batch's, so an observer can hand its own batch on at the same time.
class event_observer {
public:
    virtual ~event_observer() = default;
    virtual void decision(const decision_event& e) = 0;
    virtual void revoke(const revoke_event& e) = 0;
    virtual void flush() = 0;
};

// One worker's events, handed to the event_log a few milliseconds after the first of them: a burst costs one
// queue entry and at most one wake-up of the writer thread, instead of one each.
// Thread contract: its worker's thread only.
class event_batch {
public:
    // schedule_flush must arrange for flush() to run soon on the same thread (the worker arms a timer).
    event_batch(event_log& log, std::function<void()> schedule_flush)
        : log_(log), schedule_flush_(std::move(schedule_flush))
    {
    }

    void decision(const decision_event& e)
    {
        add(event_log::format(e), e.event != observe::event_kind::allow);
        if (observer_ != nullptr) {
            observer_->decision(e);
        }
    }
    void close(const close_event& e) { add(event_log::format(e), false); }
    // Revocations go to the deny file too: an operator who watches denials wants to see them.
    void revoke(const revoke_event& e)
    {
        add(event_log::format(e), true);
        if (observer_ != nullptr) {
            observer_->revoke(e);
        }
    }
    void flush();
    // nullptr: none. The observer must outlive the batch or be replaced first.
    void set_observer(event_observer* observer) { observer_ = observer; }

private:
    void add(std::string line, bool deny);

    event_log& log_;
    std::function<void()> schedule_flush_;
    event_observer* observer_ = nullptr;
    std::string lines_;
    std::string deny_lines_;
};

// "2026-11-21T06:50:00.123Z"
std::string format_utc_millis(std::chrono::system_clock::time_point t);

}  // namespace egressd::proxy
