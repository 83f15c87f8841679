// The server configuration loader: YAML text in, errors or a configuration out. Invariants:
// - every error names the file and a line:column inside the text;
// - a configuration that loads, written back out as YAML (every setting explicit), loads again to the same
//   configuration: nothing the loader accepts is lost, changed or refused on the way round.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz/invariant.hpp"
#include "config/server_config.hpp"
#include "fuzz/text_position.hpp"
#include "policy/address.hpp"

namespace {

using egressd::fuzz::require;

namespace cfg = egressd::config;

// A double-quoted YAML scalar holding exactly these bytes: escapes for what a parser would fold or refuse.
std::string yaml_quoted(std::string_view text)
{
    std::string out = "\"";
    for (std::size_t i = 0; i < text.size(); ++i) {
        auto c = static_cast<unsigned char>(text[i]);
        auto next = [&](std::size_t k) { return i + k < text.size() ? static_cast<unsigned char>(text[i + k]) : 0; };
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7f) {
            char code[8];
            std::snprintf(code, sizeof code, "\\x%02x", c);
            out += code;
        } else if (c == 0xc2 && next(1) == 0x85) {
            out += "\\N";  // NEL, a line break to YAML 1.1
            ++i;
        } else if (c == 0xe2 && next(1) == 0x80 && (next(2) == 0xa8 || next(2) == 0xa9)) {
            out += next(2) == 0xa8 ? "\\L" : "\\P";  // line and paragraph separators
            i += 2;
        } else if (c == 0xef && next(1) == 0xbb && next(2) == 0xbf) {
            out += "\\uFEFF";
            i += 2;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

std::string endpoint(const std::string& address, std::uint16_t port)
{
    auto parsed = egressd::policy::address::parse(address);
    require(parsed.has_value());
    return yaml_quoted(parsed->to_string(port));
}

std::string ms(std::chrono::milliseconds d) { return std::to_string(d.count()) + "ms"; }

std::string boolean(bool b) { return b ? "true" : "false"; }

std::string list(const std::vector<std::string>& items)
{
    std::string out = "[";
    for (std::size_t i = 0; i < items.size(); ++i) {
        out += (i == 0 ? "" : ", ") + yaml_quoted(items[i]);
    }
    return out + "]";
}

std::string cidrs(const std::vector<egressd::policy::cidr>& nets)
{
    std::vector<std::string> texts;
    for (const auto& n : nets) {
        texts.push_back(n.to_string());
    }
    return list(texts);
}

std::string tls(const cfg::listener_tls_config& t, bool listener, const std::string& indent)
{
    std::string out = indent + "certificate: " + yaml_quoted(t.certificate.string()) + "\n" + indent +
                      "key: " + yaml_quoted(t.key.string()) + "\n";
    if (t.client_ca) {
        out += indent + "client_ca: " + yaml_quoted(t.client_ca->string()) + "\n";
        if (listener) {
            out += indent + "client_certificate: " + (t.require_client_certificate ? "required" : "optional") + "\n";
        }
    }
    if (t.crl) {
        out += indent + "crl: " + yaml_quoted(t.crl->string()) + "\n";
    }
    return out;
}

std::string file_sink(const cfg::rotating_file_config& f)
{
    return "{path: " + yaml_quoted(f.path) + ", max_bytes: " + std::to_string(f.max_bytes) +
           ", max_files: " + std::to_string(f.max_files) + "}";
}

std::string approvals(const cfg::approvals_config& a)
{
    std::string out = "approvals:\n  listen: " + endpoint(a.address, a.port) + "\n";
    out += "  store: " + yaml_quoted(a.store_url.empty() ? a.store.string() : a.store_url) + "\n";
    if (!a.public_url_is_default) {
        out += "  public_url: " + yaml_quoted(a.public_url) + "\n";
    }
    if (a.tls) {
        out += "  tls:\n" + tls(*a.tls, false, "    ");
    }
    if (a.approvers) {
        out += "  approvers: " + yaml_quoted(a.approvers->string()) + "\n";
    }
    if (a.requesters) {
        out += "  requesters: " + yaml_quoted(a.requesters->string()) + "\n";
    }
    if (a.trusted_header) {
        const auto& t = *a.trusted_header;
        out += "  trusted_header:\n    user: " + yaml_quoted(t.user_header) + "\n    groups: " + yaml_quoted(t.groups_header) +
               "\n    from: " + cidrs(t.sources) + "\n";
        if (!t.approver_group.empty()) {
            out += "    approver_group: " + yaml_quoted(t.approver_group) + "\n";
        }
    }
    out += "  default_grant: " + ms(a.default_grant) + "\n  max_grant: " + ms(a.max_grant) + "\n";
    out += "  max_pending: " + std::to_string(a.max_pending) + "\n";
    out += "  requests_per_client_per_minute: " + std::to_string(a.requests_per_client_per_minute) + "\n";
    out += "  request_ttl: " + ms(a.request_ttl) + "\n  notify_cooldown: " + ms(a.notify_cooldown) + "\n";
    out += "  expiry_warning: " + ms(a.expiry_warning) + "\n";
    if (!a.notify.empty()) {
        out += "  notify:\n";
        for (const auto& hook : a.notify) {
            out += "    - url: " + yaml_quoted(hook.url) + "\n      format: " +
                   (hook.format == cfg::webhook_config::body_format::json ? "json" : "slack") + "\n";
            if (hook.secret_file) {
                out += "      secret_file: " + yaml_quoted(hook.secret_file->string()) + "\n";
            }
            if (!hook.events.empty()) {
                out += "      events: " + list(hook.events) + "\n";
            }
        }
    }
    return out;
}

std::string alerts(const std::vector<cfg::alert_sink_config>& sinks)
{
    std::string out = "alerts:\n";
    for (const auto& s : sinks) {
        using kind = cfg::alert_sink_config::sink_kind;
        std::string_view key = s.kind == kind::webhook ? "webhook" : s.kind == kind::slack ? "slack" : "alertmanager";
        out += "  - " + std::string(key) + ": " + yaml_quoted(s.url) + "\n    name: " + yaml_quoted(s.name) + "\n";
        if (s.secret_file) {
            out += "    secret_file: " + yaml_quoted(s.secret_file->string()) + "\n";
        }
        if (!s.reasons.empty()) {
            out += "    reasons: " + list(s.reasons) + "\n";
        }
        if (!s.clients.empty()) {
            out += "    clients: " + list(s.clients) + "\n";
        }
        out += "    verdicts: " + list(s.verdicts) + "\n    dedup: " + ms(s.dedup) + "\n";
        out += "    max_per_minute: " + std::to_string(s.max_per_minute) + "\n    queue: " + std::to_string(s.queue) + "\n";
        if (!s.severity.empty()) {
            out += "    severity:\n";
            for (const auto& [reason, level] : s.severity) {
                out += "      " + yaml_quoted(reason) + ": " + yaml_quoted(level) + "\n";
            }
        }
    }
    return out;
}

// Every setting written out, so that the text says the same whatever the defaults.
std::string to_yaml(const cfg::server_config& c)
{
    std::string out = "version: 1\nlisteners:\n";
    for (const auto& l : c.listeners) {
        out += "  - address: " + endpoint(l.address, l.port) + "\n";
        if (!l.proxy_protocol_trusted.empty()) {
            out += "    proxy_protocol: {trusted: " + cidrs(l.proxy_protocol_trusted) + "}\n";
        }
        if (l.tls) {
            out += "    tls:\n" + tls(*l.tls, true, "      ");
        }
    }
    out += "policy: " + yaml_quoted(c.policy_path.string()) + "\nworkers: " + std::to_string(c.workers) + "\n";
    const auto& d = c.dns;
    out += "dns:\n  servers: " + list(d.servers) + "\n  timeout: " + ms(d.timeout) + "\n  tries: " +
           std::to_string(d.tries) + "\n  min_ttl: " + ms(d.min_ttl) + "\n  max_ttl: " + ms(d.max_ttl) +
           "\n  negative_ttl: " + ms(d.negative_ttl) + "\n  cache_entries: " + std::to_string(d.cache_entries) + "\n";
    const auto& t = c.timeouts;
    out += "timeouts:\n  header: " + ms(t.header) + "\n  connect: " + ms(t.connect) + "\n  idle: " + ms(t.idle) +
           "\n  tunnel_lifetime: " + ms(t.tunnel_lifetime) + "\n  upstream_response: " + ms(t.upstream_response) +
           "\n  tls_peek: " + ms(t.tls_peek) + "\n  shutdown_grace: " + ms(t.shutdown_grace) +
           "\n  drain_delay: " + ms(t.drain_delay) + "\n";
    const auto& l = c.limits;
    out += "limits:\n  max_head_bytes: " + std::to_string(l.max_head_bytes) + "\n  max_headers: " +
           std::to_string(l.max_headers) + "\n  max_request_line: " + std::to_string(l.max_request_line) +
           "\n  max_connections: " + std::to_string(l.max_connections) +
           "\n  max_connections_per_client: " + std::to_string(l.max_connections_per_client) + "\n";
    const auto& g = c.logging;
    std::string_view format = g.format == cfg::event_format::egressd ? "egressd"
                              : g.format == cfg::event_format::ecs  ? "ecs"
                                                                     : "ocsf";
    out += "logging:\n  format: " + std::string(format) + "\n  instance: " + yaml_quoted(g.instance) +
           "\n  http_query: " + boolean(g.http_query) + "\n  stdout: " + boolean(g.to_stdout) +
           "\n  queue_size: " + std::to_string(g.queue_size) + "\n";
    if (g.file) {
        out += "  file: " + file_sink(*g.file) + "\n";
    }
    if (g.deny_file) {
        out += "  deny_file: " + file_sink(*g.deny_file) + "\n";
    }
    if (g.syslog_ident) {
        out += "  syslog: {ident: " + yaml_quoted(*g.syslog_ident) + "}\n";
    }
    if (c.proxy_auth) {
        out += "proxy_auth:\n  credentials: " + yaml_quoted(c.proxy_auth->credentials.string()) + "\n  realm: " +
               yaml_quoted(c.proxy_auth->realm) + "\n  required: " + boolean(c.proxy_auth->required) + "\n";
    }
    if (!c.admin) {
        out += "admin: off\n";
    } else {
        out += "admin:\n  listen: " + endpoint(c.admin->address, c.admin->port) + "\n";
        if (c.admin->token_file) {
            out += "  token_file: " + yaml_quoted(c.admin->token_file->string()) + "\n";
        }
        if (c.admin->tls) {
            out += "  tls:\n" + tls(*c.admin->tls, false, "    ");
        }
    }
    out += "reload:\n  watch: " + boolean(c.reload.watch) + "\n  debounce: " + ms(c.reload.debounce) + "\n";
    if (c.approvals) {
        out += approvals(*c.approvals);
    }
    if (!c.alerts.empty()) {
        out += alerts(c.alerts);
    }
    if (c.upstream_proxy) {
        auto literal = egressd::policy::address::parse(c.upstream_proxy->host);
        std::string host = literal && !literal->is_v4() ? "[" + c.upstream_proxy->host + "]" : c.upstream_proxy->host;
        out += "upstream_proxy: " + yaml_quoted("http://" + host + ":" + std::to_string(c.upstream_proxy->port)) + "\n";
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    std::string text(reinterpret_cast<const char*>(data), size);
    auto loaded = cfg::load_server_config_text("egressd.yaml", text, "/etc/egressd");
    auto lengths = egressd::fuzz::line_lengths(text);
    for (const auto& e : loaded.errors) {
        require(e.file == "egressd.yaml" && egressd::fuzz::inside(lengths, e.where.line, e.where.column));
        require(egressd::fuzz::free_of_controls(e.format("error")));
    }
    require(loaded.config.has_value() == loaded.errors.empty());
    if (!loaded.config) {
        return 0;
    }
    auto written = to_yaml(*loaded.config);
    auto again = cfg::load_server_config_text("egressd.yaml", written, "/etc/egressd");
    if (!again.config) {
        std::fprintf(stderr, "written:\n%s\nrefused: %s\n", written.c_str(), again.errors.front().format("error").c_str());
    }
    require(again.config.has_value());
    auto rewritten = to_yaml(*again.config);
    if (rewritten != written) {
        std::fprintf(stderr, "written:\n%s\nwritten again:\n%s\n", written.c_str(), rewritten.c_str());
    }
    require(rewritten == written);
    return 0;
}
