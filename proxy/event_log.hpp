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

// Every event egressd writes, as one JSON line in the configured format (egressd's own, ECS or OCSF: every field
// of each is in docs/EVENT_FORMATS.md):
//   egress.allow, egress.deny, egress.would_deny  one per decision
//   egress.error                                  an allowed name DNS could not resolve (not a denial)
//   egress.close                                  one per closed client connection or tunnel
//   egressd.*                                     start, listening, stop, reload, log drops
struct decision_event {
    observe::event_kind event = observe::event_kind::deny;  // allow, deny, would_deny or error
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
    std::string_view path;   // forwarded plain HTTP: the URL's path
    std::string_view query;  // and its query without the '?' (written only with logging.http_query: true)
    int status = 0;          // forwarded plain HTTP: the upstream's status, or egressd's own answer's; 0: none
    std::string_view upstream;  // the parent proxy ("host:port") the request goes through; empty: direct
    std::string_view user;   // proxy_auth_failed: the user name tried (never the password)
    std::string_view cert_subject;  // client_cert_rejected: the certificate's subject (RFC 2253)
    std::string_view cert_serial;   // and its serial number in hex
};

// Decision and revocation events that go to logging.deny_file besides the main log.
constexpr bool for_deny_file(observe::event_kind k)
{
    return k == observe::event_kind::deny || k == observe::event_kind::would_deny ||
           k == observe::event_kind::revoke || k == observe::event_kind::would_revoke;
}

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

// A decision event formatted before its HTTP status is known (forwarded plain HTTP: the status is the upstream's
// response's, or egressd's own answer's). event_formatter::finish completes it.
struct open_decision {
    std::string text;        // the line without its end
    bool deny = false;       // also for the deny file
    bool http_open = false;  // ECS: the line ends inside its "http" object
};

// The operational event's fields: name and value already rendered as JSON.
using notice_fields = std::vector<std::pair<std::string_view, json_value>>;

// A size-rotated log file that can also be reopened at its path (event_log.cpp).
class reopenable_file_sink;

// Writes events in one of the three formats (config::event_format), each line carrying the instance's name.
// Immutable after construction. Thread contract: safe from any thread.
class event_formatter {
public:
    // product_version: egressd's version, for OCSF's metadata.product.version (empty: not written).
    explicit event_formatter(const config::logging_config& config, std::string product_version = {});

    std::string line(const decision_event& e) const;
    std::string line(const close_event& e) const;
    std::string line(const revoke_event& e) const;
    std::string line(std::string_view event, const notice_fields& fields, bool warning) const;
    // A decision whose status comes later: open_line, then finish with the status (0: none known).
    open_decision open_line(const decision_event& e) const;
    std::string finish(open_decision&& d, int status) const;

private:
    config::event_format format_;
    std::string instance_;
    std::string instance_field_;  // ,"instance":"..." rendered once
    bool http_query_;
    std::string product_version_;
};

// Asynchronous JSON-lines logger: callers format and enqueue, a writer thread does the I/O, the queue is
// bounded and drops its oldest entries when full (counted, and reported as egressd.log_dropped), so the
// data path never waits on a disk or a syslog daemon.
// Thread contract: all member functions are safe to call from any thread.
class event_log {
public:
    // Throws std::runtime_error if a sink cannot open. product_version: see event_formatter.
    explicit event_log(const config::logging_config& config, std::string product_version = {});
    ~event_log();
    event_log(const event_log&) = delete;
    event_log& operator=(const event_log&) = delete;

    const event_formatter& formatter() const { return formatter_; }
    void decision(const decision_event& e) { write(formatter_.line(e), for_deny_file(e.event)); }
    void close(const close_event& e) { write(formatter_.line(e), false); }
    // Several events at once, each part holding whole lines joined by '\n': one queue entry for all of them.
    void write_lines(const std::string& lines, const std::string& deny_lines);
    // An operational event: egressd.start, egressd.listening, ... with typed fields.
    void notice(std::string_view event, const notice_fields& fields, bool warning = false);

    std::uint64_t dropped() const;
    void flush();
    // Reopens logging.file and logging.deny_file at their configured paths (SIGUSR1, after logrotate renamed
    // them): lines queued before the call still go to the renamed file, later ones to the new file.
    void reopen_files();

private:
    void write(const std::string& line, bool deny);

    event_formatter formatter_;
    std::shared_ptr<spdlog::details::thread_pool> pool_;
    std::shared_ptr<spdlog::logger> main_;
    std::shared_ptr<spdlog::logger> deny_;
    std::vector<std::shared_ptr<reopenable_file_sink>> files_;
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
        add(log_.formatter().line(e), for_deny_file(e.event));
        if (observer_ != nullptr) {
            observer_->decision(e);
        }
    }
    // A decision whose HTTP status is not known yet (forwarded plain HTTP): the observer sees it now, the log when
    // the caller completes it.
    open_decision open(const decision_event& e)
    {
        if (observer_ != nullptr) {
            observer_->decision(e);
            // The observer's batch must not wait for the line, which may come only with the upstream's answer.
            request_flush();
        }
        return log_.formatter().open_line(e);
    }
    void complete(open_decision&& d, int status)
    {
        bool deny = d.deny;
        add(log_.formatter().finish(std::move(d), status), deny);
    }
    void close(const close_event& e) { add(log_.formatter().line(e), false); }
    // Revocations go to the deny file too: an operator who watches denials wants to see them.
    void revoke(const revoke_event& e)
    {
        add(log_.formatter().line(e), true);
        if (observer_ != nullptr) {
            observer_->revoke(e);
        }
    }
    void flush();
    // nullptr: none. The observer must outlive the batch or be replaced first.
    void set_observer(event_observer* observer) { observer_ = observer; }

private:
    void add(std::string line, bool deny);
    void request_flush();

    event_log& log_;
    std::function<void()> schedule_flush_;
    bool flush_scheduled_ = false;
    event_observer* observer_ = nullptr;
    std::string lines_;
    std::string deny_lines_;
};

// "2026-11-21T06:50:00.123Z"
std::string format_utc_millis(std::chrono::system_clock::time_point t);

}  // namespace egressd::proxy
