#include "proxy/approvals/notifier.hpp"

#include "config/rfc3339.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>

namespace egressd::proxy::approvals {

namespace {

using delivery::host_port;
using delivery::slack_escape;

std::string_view slack_title(std::string_view event)
{
    if (event == "requested") {
        return "New";
    }
    if (event == "approved") {
        return "Approved";
    }
    if (event == "denied") {
        return "Denied";
    }
    if (event == "revoked") {
        return "Revoked";
    }
    if (event == "extended") {
        return "Extended";
    }
    if (event == "expiring") {
        return "Expiring soon";
    }
    return event;
}

}  // namespace

std::string_view event_class(std::string_view event)
{
    if (event == "requested") {
        return "requested";
    }
    if (event == "expiring") {
        return "expiring";
    }
    if (event == "approved" || event == "denied" || event == "revoked" || event == "extended") {
        return "decided";
    }
    return {};
}

std::string json_body(const notification& n)
{
    boost::json::object o;
    o["event"] = n.event;
    o["at"] = config::format_rfc3339(n.at);
    if (n.request_id) {
        o["request_id"] = *n.request_id;
    }
    if (n.grant_id) {
        o["grant_id"] = *n.grant_id;
    }
    auto add_text = [&o](std::string_view key, const std::string& value) {
        if (!value.empty()) {
            o[key] = value;
        }
    };
    add_text("client", n.client);
    add_text("host", n.host);
    if (n.port != 0) {
        o["port"] = n.port;
    }
    add_text("actor", n.actor);
    add_text("note", n.note);
    if (n.expires) {
        o["expires"] = config::format_rfc3339(*n.expires);
    }
    add_text("reason", n.reason);
    if (n.hits) {
        o["hits"] = *n.hits;
    }
    add_text("url", n.url);
    return boost::json::serialize(o);
}

std::string slack_body(const notification& n)
{
    std::string text = "*" + slack_escape(slack_title(n.event)) + "*";
    // Revocations, extensions and expiry warnings are about a grant; the rest about a request.
    bool about_grant = n.grant_id && (n.event == "revoked" || n.event == "extended" || n.event == "expiring");
    std::string subject = about_grant    ? "grant #" + std::to_string(*n.grant_id)
                          : n.request_id ? "request #" + std::to_string(*n.request_id)
                          : n.grant_id   ? "grant #" + std::to_string(*n.grant_id)
                                         : std::string();
    if (!subject.empty()) {
        text += " " + subject;
    }
    if (!n.client.empty() || !n.host.empty()) {
        // Code spans keep names from being read as formatting.
        text += ": `" + slack_escape(n.client) + "` \u2192 `" + slack_escape(host_port(n.host, n.port)) + "`";
    }
    if (!n.actor.empty()) {
        text += " by " + slack_escape(n.actor);
    }
    if (n.expires) {
        text += (n.event == "expiring" ? ", expires " : ", until ") + config::format_rfc3339(*n.expires);
    }
    if (!n.reason.empty() || n.hits) {
        text += " (" + slack_escape(n.reason);
        if (n.hits) {
            text += std::string(n.reason.empty() ? "" : ", ") + std::to_string(*n.hits) +
                    (*n.hits == 1 ? " hit" : " hits");
        }
        text += ")";
    }
    if (!n.note.empty()) {
        text += ": \u201c" + slack_escape(n.note) + "\u201d";
    }
    if (!n.url.empty()) {
        text += "\n<" + slack_escape(n.url) + "|Open " + (subject.empty() ? std::string("in egressd") : subject) +
                ">";
    }
    boost::json::object o;
    o["text"] = text;
    return boost::json::serialize(o);
}

notifier::notifier(std::vector<target> targets, options o)
{
    for (auto& t : targets) {
        senders_.push_back(std::make_unique<delivery::webhook_sender>(t.hook.url, std::move(t.secret), o));
        hooks_.push_back(std::move(t.hook));
    }
}

notifier::~notifier()
{
    // Each sender cuts its attempt in flight short, so stopping them one after another is prompt.
    senders_.clear();
}

void notifier::enqueue(const notification& n)
{
    std::string_view cls = event_class(n.event);
    // Bodies are built once per format.
    std::optional<std::string> json;
    std::optional<std::string> slack;
    for (std::size_t i = 0; i < hooks_.size(); ++i) {
        const auto& hook = hooks_[i];
        if (!hook.events.empty() && std::find(hook.events.begin(), hook.events.end(), cls) == hook.events.end()) {
            continue;
        }
        std::string body;
        if (hook.format == config::webhook_config::body_format::slack) {
            body = slack ? *slack : *(slack = slack_body(n));
        } else {
            body = json ? *json : *(json = json_body(n));
        }
        senders_[i]->send(n.event, std::move(body));
    }
}

void notifier::set_secrets(std::vector<std::string> secrets)
{
    for (std::size_t i = 0; i < senders_.size() && i < secrets.size(); ++i) {
        senders_[i]->set_secret(std::move(secrets[i]));
    }
}

notifier_counts notifier::counts() const
{
    notifier_counts total;
    for (const auto& sender : senders_) {
        auto c = sender->counts();
        total.delivered += c.delivered;
        total.failed += c.failed;
        total.retried += c.retried;
        total.dropped += c.dropped;
    }
    return total;
}

}  // namespace egressd::proxy::approvals
