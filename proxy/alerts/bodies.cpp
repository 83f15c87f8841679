#include "proxy/alerts/bodies.hpp"

#include "config/rfc3339.hpp"
#include "protocol/utf8.hpp"
#include "proxy/delivery/webhook_sender.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

namespace egressd::proxy::alerts {

namespace {

using delivery::host_port;
using delivery::slack_escape;

// Boost.JSON writes a string's bytes as they are, and what an alert quotes (a certificate's name, an error's
// detail) may not be UTF-8: each malformed byte becomes U+FFFD, so that every receiver reads the body as JSON.
std::string as_json_text(std::string body)
{
    std::string out;
    for (std::size_t i = 0; i < body.size();) {
        auto length = protocol::utf8_sequence(body, i);
        if (length == 0) {
            if (out.empty()) {
                out.assign(body, 0, i);
            }
            out += "\xEF\xBF\xBD";
            ++i;
            continue;
        }
        if (!out.empty()) {
            out.append(body, i, length);
        }
        i += length;
    }
    return out.empty() ? body : out;
}

std::string timestamp(std::chrono::system_clock::time_point t)
{
    return config::format_rfc3339(std::chrono::floor<std::chrono::milliseconds>(t));
}

// What happened, as words after the destination: "denied", "would be denied", ...
std::string_view verdict_words(observe::event_kind kind)
{
    switch (kind) {
    case observe::event_kind::would_deny:
        return "would be denied";
    case observe::event_kind::revoke:
        return "revoked";
    case observe::event_kind::would_revoke:
        return "would be revoked";
    case observe::event_kind::error:
        return "failed";
    default:
        return "denied";
    }
}

// Who the group is about: the client, or the source address when there is no client.
std::string who(const report& r)
{
    if (!r.first.client.empty()) {
        return r.first.client;
    }
    return r.source_address.empty() ? r.first.source : "source " + r.source_address;
}

std::string destination(const report& r) { return host_port(r.first.host, r.first.port); }

std::string overflow_text(const report& r)
{
    return std::to_string(r.count) + " observations of new groups were not grouped: the sink had too many groups "
                                     "open (between " +
           timestamp(r.first_seen) + " and " + timestamp(r.last_seen) + ")";
}

// The one-line description shared by Slack and Alertmanager's annotations.
std::string description(const report& r, bool slack)
{
    auto code = [slack](const std::string& s) { return slack ? "`" + slack_escape(s) + "`" : s; };
    std::string reason(observe::to_string(r.first.reason));
    std::string text =
        code(who(r)) + " \u2192 " + code(destination(r)) + " " + std::string(verdict_words(r.first.kind));
    if (r.type == report_type::alert) {
        text += " (" + reason + ")";
        if (!r.first.detail.empty()) {
            text += ": " + (slack ? slack_escape(r.first.detail) : r.first.detail);
        }
        return text;
    }
    text += " " + std::to_string(r.count) + (r.count == 1 ? " more time" : " more times") + " (" + reason +
            ") between " + timestamp(r.first_seen) + " and " + timestamp(r.last_seen);
    return text;
}

}  // namespace

std::string_view verdict_name(observe::event_kind kind)
{
    std::string_view name = observe::to_string(kind);
    constexpr std::string_view prefix = "egress.";
    return name.starts_with(prefix) ? name.substr(prefix.size()) : name;
}

std::string_view alert_name(const report& r)
{
    if (r.overflow) {
        return "EgressAlertOverflow";
    }
    switch (r.first.kind) {
    case observe::event_kind::revoke:
    case observe::event_kind::would_revoke:
        return "EgressRevoked";
    case observe::event_kind::error:
        return "EgressError";
    default:
        return "EgressDenied";
    }
}

std::string webhook_body(const report& r, std::string_view instance)
{
    boost::json::object o;
    o["type"] = r.type == report_type::alert ? "alert" : "summary";
    o["at"] = timestamp(r.at);
    o["severity"] = to_string(r.level);
    o["instance"] = instance;
    if (r.overflow) {
        o["overflow"] = true;
    } else {
        o["verdict"] = verdict_name(r.first.kind);
        if (!r.first.client.empty()) {
            o["client"] = r.first.client;
        }
        if (r.type == report_type::alert) {
            o["source"] = r.first.source;
        } else if (!r.source_address.empty()) {
            o["source"] = r.source_address;
        }
        o["host"] = r.first.host;
        o["port"] = r.first.port;
        o["reason"] = observe::to_string(r.first.reason);
    }
    o["count"] = r.count;
    if (r.type == report_type::summary) {
        o["first_seen"] = timestamp(r.first_seen);
        o["last_seen"] = timestamp(r.last_seen);
    }
    o["window_seconds"] = r.window.count();
    if (!r.first.rule_group.empty()) {
        o["rule_group"] = r.first.rule_group;
    }
    if (r.first.rule_index) {
        o["rule_index"] = *r.first.rule_index;
    }
    // One request's id and detail describe the alert's observation, not the many a summary counts.
    if (r.type == report_type::alert) {
        if (!r.first.request_id.empty()) {
            o["request_id"] = r.first.request_id;
        }
        if (!r.first.detail.empty()) {
            o["detail"] = r.first.detail;
        }
    }
    return as_json_text(boost::json::serialize(o));
}

std::string slack_body(const report& r, std::string_view instance)
{
    std::string text = r.type == report_type::alert ? "*Egress alert*" : "*Egress summary*";
    text += " (" + std::string(to_string(r.level)) + "): ";
    text += r.overflow ? slack_escape(overflow_text(r)) : description(r, true);
    text += " on `" + slack_escape(instance) + "`";
    boost::json::object o;
    o["text"] = text;
    return as_json_text(boost::json::serialize(o));
}

std::string alertmanager_body(const report& r, std::string_view instance)
{
    boost::json::object labels;
    labels["alertname"] = alert_name(r);
    labels["severity"] = to_string(r.level);
    labels["instance"] = instance.empty() ? std::string_view("-") : instance;
    if (!r.overflow) {
        // Label values are strings, and an empty one is dropped by Alertmanager, so "-" stands for none.
        labels["client"] = r.first.client.empty() ? "-" : r.first.client;
        labels["host"] = r.first.host.empty() ? "-" : r.first.host;
        labels["port"] = std::to_string(r.first.port);
        labels["reason"] = observe::to_string(r.first.reason);
        labels["verdict"] = verdict_name(r.first.kind);
        if (!r.source_address.empty()) {
            labels["source"] = r.source_address;
        }
    }
    boost::json::object annotations;
    std::string headline = r.overflow ? "egressd alert overflow" : "egressd: " + destination(r) + " " +
                                                                     std::string(verdict_words(r.first.kind)) +
                                                                     " for " + who(r);
    annotations["summary"] = headline;
    annotations["description"] = r.overflow ? overflow_text(r) : description(r, false);
    annotations["count"] = std::to_string(r.count);

    boost::json::object alert;
    alert["labels"] = std::move(labels);
    alert["annotations"] = std::move(annotations);
    alert["startsAt"] = timestamp(r.first_seen);
    alert["endsAt"] = timestamp(r.type == report_type::alert ? r.first_seen + r.window : r.at);
    boost::json::array body;
    body.push_back(std::move(alert));
    return as_json_text(boost::json::serialize(body));
}

std::string alertmanager_url(std::string_view base)
{
    while (base.ends_with('/')) {
        base.remove_suffix(1);
    }
    return std::string(base) + "/api/v2/alerts";
}

}  // namespace egressd::proxy::alerts
