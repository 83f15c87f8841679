#pragma once

// What an alert sink receives: the engine describes each alert and summary as a `report`, and these functions
// turn it into the bytes of a webhook, a Slack incoming webhook or an Alertmanager API v2 POST.
//
// webhook: one JSON object, fields that do not apply left out:
//   {"type":"alert"|"summary","at","severity","instance","verdict","client","source","host","port","reason",
//    "count","first_seen","last_seen","window_seconds","rule_group","rule_index","request_id","detail"}
// slack: {"text": one mrkdwn line}.
// alertmanager: [postableAlert] with string labels {alertname, severity, client, host, port, reason, verdict,
//   instance} ("-" for no client: Alertmanager drops empty labels), annotations {summary, description, count},
//   startsAt (first seen) and endsAt (an alert: first seen + the window; a summary: when it was made).

#include "proxy/alerts/engine.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace egressd::proxy::alerts {

enum class report_type : std::uint8_t { alert, summary };

struct report {
    report_type type = report_type::alert;
    std::chrono::system_clock::time_point at;  // an alert: the observation's time; a summary: when it was made
    severity level = severity::medium;
    observation first;  // the group's first observation (an overflow summary: only `at` is set)
    // The group stands for its source address (no client): the summary names it, without a port.
    std::string source_address;
    bool overflow = false;    // observations of new groups beyond the sink's open-group limit
    std::uint64_t count = 1;  // observations this message covers (a summary: those since the alert)
    std::chrono::system_clock::time_point first_seen, last_seen;
    std::chrono::seconds window{0};
};

// "deny", "would_deny", "revoke", "would_revoke", "error" (the event name without "egress.").
std::string_view verdict_name(observe::event_kind kind);
// "EgressDenied", "EgressRevoked", "EgressError"; "EgressAlertOverflow" for an overflow summary.
std::string_view alert_name(const report& r);

std::string webhook_body(const report& r, std::string_view instance);
std::string slack_body(const report& r, std::string_view instance);
std::string alertmanager_body(const report& r, std::string_view instance);
// <base without trailing slashes>/api/v2/alerts
std::string alertmanager_url(std::string_view base);

}  // namespace egressd::proxy::alerts
