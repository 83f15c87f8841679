// The bodies alert sinks receive, built from what a denial carried (host, SNI, identity, client: text a client
// chose). The input is the report's strings separated by 0x1f. Invariants: every body is JSON that a strict
// parser (Boost.JSON, UTF-8 checked) reads; the webhook body gives back an ASCII host as it was given; the
// Slack body is one "text"; the Alertmanager body is one alert whose labels are all non-empty strings.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "fuzz/invariant.hpp"
#include "proxy/alerts/bodies.hpp"

namespace {

using egressd::fuzz::require;

namespace alerts = egressd::proxy::alerts;
namespace json = boost::json;

std::vector<std::string> fields(std::string_view input, std::size_t count)
{
    std::vector<std::string> out;
    while (out.size() + 1 < count) {
        auto at = input.find('\x1f');
        if (at == std::string_view::npos) {
            break;
        }
        out.emplace_back(input.substr(0, at));
        input.remove_prefix(at + 1);
    }
    out.emplace_back(input);
    out.resize(count);
    return out;
}

json::value parsed(const std::string& body)
{
    boost::system::error_code ec;
    auto value = json::parse(body, ec);
    if (ec) {
        std::fprintf(stderr, "not JSON (%s): %s\n", ec.message().c_str(), body.c_str());
    }
    require(!ec);
    return value;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    if (size < 4) {
        return 0;
    }
    // The first bytes choose the enumerations and numbers; the rest are the strings.
    alerts::report r;
    r.type = (data[0] & 1) != 0 ? alerts::report_type::summary : alerts::report_type::alert;
    r.overflow = (data[0] & 2) != 0;
    r.level = static_cast<alerts::severity>(data[1] % 3);
    constexpr egressd::proxy::observe::event_kind kinds[] = {
        egressd::proxy::observe::event_kind::deny, egressd::proxy::observe::event_kind::would_deny,
        egressd::proxy::observe::event_kind::revoke, egressd::proxy::observe::event_kind::would_revoke,
        egressd::proxy::observe::event_kind::error};
    r.first.kind = kinds[data[2] % 5];
    r.first.port = static_cast<std::uint16_t>(data[3] * 257);
    r.first.rule_index = (data[0] & 4) != 0 ? std::optional<std::uint32_t>(data[1]) : std::nullopt;
    r.count = data[2];
    r.window = std::chrono::seconds(data[3]);
    r.at = std::chrono::system_clock::time_point(std::chrono::seconds(1'780'000'000));
    r.first.at = r.at;
    r.first_seen = r.at;
    r.last_seen = r.at + std::chrono::seconds(data[1]);
    auto text = fields(std::string_view(reinterpret_cast<const char*>(data + 4), size - 4), 11);
    r.first.client = text[0];
    r.first.source = text[1];
    r.first.host = text[2];
    r.first.address = text[3];
    r.first.identity = text[4];
    r.first.rule_group = text[5];
    r.first.request_id = text[6];
    r.first.detail = text[7];
    r.first.sni = text[8];
    r.source_address = text[9];
    const std::string& instance = text[10];

    auto webhook = parsed(alerts::webhook_body(r, instance));
    require(webhook.is_object());
    // ASCII passes unchanged; other malformed bytes become U+FFFD.
    bool ascii = std::all_of(r.first.host.begin(), r.first.host.end(), [](char c) { return (c & 0x80) == 0; });
    if (r.type == alerts::report_type::alert && !r.overflow && ascii) {
        const auto* host = webhook.as_object().if_contains("host");
        require(host != nullptr && host->is_string() && host->as_string() == r.first.host);
    }
    auto slack = parsed(alerts::slack_body(r, instance));
    require(slack.is_object() && slack.as_object().size() == 1 && slack.as_object().contains("text"));
    auto alertmanager = parsed(alerts::alertmanager_body(r, instance));
    require(alertmanager.is_array() && alertmanager.as_array().size() == 1);
    const auto& alert = alertmanager.as_array().front().as_object();
    const auto* labels = alert.if_contains("labels");
    require(labels != nullptr && labels->is_object());
    for (const auto& label : labels->as_object()) {
        require(label.value().is_string() && !label.value().as_string().empty());
    }
    return 0;
}
