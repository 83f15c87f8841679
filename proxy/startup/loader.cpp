#include "proxy/startup/loader.hpp"

#include "certs/digest.hpp"
#include "certs/tls.hpp"
#include "config/policy_loader.hpp"
#include "proxy/observe/codes.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>

namespace egressd::proxy::startup {

namespace {

// Where the configuration names the file a TLS error is about, so an editor jumps to the setting to fix.
config::mark where_named(const config::listener_tls_config& tls, certs::tls_file file)
{
    switch (file) {
    case certs::tls_file::certificate:
        return tls.certificate_at;
    case certs::tls_file::key:
        return tls.key_at;
    case certs::tls_file::client_ca:
        return tls.client_ca_at;
    case certs::tls_file::crl:
        return tls.crl_at;
    }
    return tls.where;
}

std::shared_ptr<boost::asio::ssl::context> load_tls(const config::listener_tls_config& tls, const std::string& file,
                                                    std::vector<std::string>& errors)
{
    auto loaded = certs::make_tls_server_context(
        {tls.certificate, tls.key, tls.client_ca, tls.crl, tls.require_client_certificate});
    for (const auto& e : loaded.errors) {
        errors.push_back(config::diagnostic{file, where_named(tls, e.file), e.message}.format("error"));
    }
    return loaded.context;
}

std::optional<std::string> read_token(const config::admin_config& admin, const std::string& file,
                                      std::vector<std::string>& errors)
{
    auto fail = [&](const std::string& why) -> std::optional<std::string> {
        errors.push_back(config::diagnostic{file, admin.token_file_at, admin.token_file->string() + ": " + why}.format("error"));
        return std::nullopt;
    };
    std::ifstream in(*admin.token_file, std::ios::binary);
    if (!in) {
        return fail("cannot read the token file");
    }
    std::ostringstream text;
    text << in.rdbuf();
    std::string token = text.str();
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) {
        token.pop_back();
    }
    // A guessable token protects nothing: 16 characters at least (openssl rand -hex 32 makes 64).
    if (token.size() < 16) {
        return fail("the token must be at least 16 characters (try: openssl rand -hex 32 > FILE)");
    }
    for (char c : token) {
        if (c < 0x21 || c > 0x7e) {
            return fail("the token must be printable ASCII without spaces, on one line");
        }
    }
    return token;
}

// An approvals credentials file: its errors point at the setting that names it, and give the file's line.
std::shared_ptr<const certs::credential_store> load_users(const std::filesystem::path& path, config::mark named_at,
                                                          const std::string& file, std::vector<std::string>& errors)
{
    auto [store, problems] = certs::credential_store::load(path);
    for (const auto& e : problems) {
        // A file that could not be read has no line, and its message names the file already.
        auto message = e.line > 0 ? path.string() + ":" + std::to_string(e.line) + ": " + e.message : e.message;
        errors.push_back(config::diagnostic{file, named_at, message}.format("error"));
    }
    if (!store) {
        return nullptr;
    }
    return std::make_shared<const certs::credential_store>(std::move(*store));
}

// A webhook's HMAC key (approvals' or an alert sink's): the file's bytes without the line break an editor or
// `echo` leaves at the end. Errors point at the setting that names the file.
std::string read_secret(const std::filesystem::path& path, config::mark named_at, const std::string& file,
                        std::vector<std::string>& errors)
{
    auto fail = [&](const std::string& why) {
        errors.push_back(config::diagnostic{file, named_at, path.string() + ": " + why}.format("error"));
        return std::string();
    };
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return fail("cannot read the secret file");
    }
    std::ostringstream text;
    text << in.rdbuf();
    std::string secret = text.str();
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) {
        secret.pop_back();
    }
    if (secret.empty()) {
        return fail("the secret file is empty (try: openssl rand -hex 32 > FILE)");
    }
    return secret;
}

// An alert sink's reasons and severity keys are the proxy's reason codes (X-Egressd-Reason, the events'
// "reason"): observe's table is the one list of them.
void check_alert_reasons(const config::alert_sink_config& sink, const std::string& file,
                         std::vector<std::string>& errors)
{
    auto check = [&](const std::string& name, std::string_view setting) {
        if (!observe::parse_reason(name)) {
            errors.push_back(config::diagnostic{file, sink.where,
                                                "alert sink '" + sink.name + "': unknown reason '" + name + "' in " +
                                                    std::string(setting) +
                                                    ": expected a reason code egressd writes, like explicit_deny, "
                                                    "address_guard, no_matching_rule or proxy_auth_failed"}
                                 .format("error"));
        }
    };
    for (const auto& r : sink.reasons) {
        check(r, "reasons");
    }
    for (const auto& [r, level] : sink.severity) {
        check(r, "severity");
    }
}

}  // namespace

std::string digest_of(const std::vector<std::pair<std::string, std::string>>& sources)
{
    // Lengths frame each part, so no two different sets of files hash the same bytes.
    std::string framed;
    for (const auto& [name, bytes] : sources) {
        auto base = std::filesystem::path(name).filename().string();
        framed += std::to_string(base.size()) + ":" + base + std::to_string(bytes.size()) + ":" + bytes;
    }
    return certs::hex(certs::sha256(framed));
}

load_result load(const std::filesystem::path& config_path)
{
    load_result result;
    auto server = config::load_server_config(config_path);
    for (const auto& e : server.errors) {
        result.errors.push_back(e.format("error"));
    }
    if (!server.config) {
        return result;
    }
    const auto& cfg = *server.config;
    loaded_state state;
    auto policy = config::load_policy(cfg.policy_path);
    for (const auto& e : policy.errors) {
        result.errors.push_back(e.format("error"));
    }
    for (const auto& w : policy.warnings) {
        result.warnings.push_back(w.format("warning"));
    }
    if (cfg.proxy_auth) {
        const auto& file = cfg.proxy_auth->credentials;
        auto [store, errors] = certs::credential_store::load(file);
        for (const auto& e : errors) {
            result.errors.push_back(file.string() + (e.line > 0 ? ":" + std::to_string(e.line) : std::string()) +
                                    ": error: " + e.message);
        }
        if (store) {
            state.credentials = std::make_shared<const certs::credential_store>(std::move(*store));
        }
    }
    for (const auto& listener : cfg.listeners) {
        state.listener_tls.push_back(listener.tls ? load_tls(*listener.tls, cfg.file, result.errors) : nullptr);
    }
    if (cfg.admin) {
        if (cfg.admin->tls) {
            state.admin_tls = load_tls(*cfg.admin->tls, cfg.file, result.errors);
        }
        if (cfg.admin->token_file) {
            state.admin_token = read_token(*cfg.admin, cfg.file, result.errors);
        }
    }
    if (cfg.approvals) {
        const auto& a = *cfg.approvals;
        if (a.approvers) {
            state.approvers = load_users(*a.approvers, a.approvers_at, cfg.file, result.errors);
        }
        if (a.requesters) {
            state.requesters = load_users(*a.requesters, a.requesters_at, cfg.file, result.errors);
        }
        for (const auto& hook : a.notify) {
            state.webhook_secrets.push_back(
                hook.secret_file ? read_secret(*hook.secret_file, hook.secret_file_at, cfg.file, result.errors) : "");
        }
        if (a.tls) {
            state.approvals_tls = load_tls(*a.tls, cfg.file, result.errors);
        }
    }
    for (const auto& sink : cfg.alerts) {
        check_alert_reasons(sink, cfg.file, result.errors);
        state.alert_secrets.push_back(
            sink.secret_file ? read_secret(*sink.secret_file, sink.secret_file_at, cfg.file, result.errors) : "");
    }
    if (!result.errors.empty()) {
        result.attempted_config = std::make_shared<const config::server_config>(std::move(*server.config));
        result.attempted_policy_files = std::move(policy.files);
        result.attempted_policy_files.insert(result.attempted_policy_files.end(), policy.unreadable_lists.begin(),
                                             policy.unreadable_lists.end());
        return result;
    }
    state.policy = std::move(policy.snapshot);
    state.policy_digest = digest_of(policy.sources);
    state.policy_files = std::move(policy.files);
    state.config = std::make_shared<const config::server_config>(std::move(*server.config));
    result.state = std::move(state);
    return result;
}

std::vector<std::string> restart_needed(const config::server_config& running, const config::server_config& loaded)
{
    std::vector<std::string> changed;
    auto same_listener = [](const config::listener_config& a, const config::listener_config& b) {
        return a.address == b.address && a.port == b.port && a.proxy_protocol_trusted == b.proxy_protocol_trusted &&
               a.tls.has_value() == b.tls.has_value() &&
               (!a.tls || (a.tls->client_ca.has_value() == b.tls->client_ca.has_value() &&
                           a.tls->require_client_certificate == b.tls->require_client_certificate));
    };
    bool listeners_same = running.listeners.size() == loaded.listeners.size() &&
                          std::equal(running.listeners.begin(), running.listeners.end(), loaded.listeners.begin(),
                                     same_listener);
    if (!listeners_same) {
        changed.emplace_back("listeners");
    }
    if (running.workers != loaded.workers) {
        changed.emplace_back("workers");
    }
    const auto& d1 = running.dns;
    const auto& d2 = loaded.dns;
    if (d1.servers != d2.servers || d1.timeout != d2.timeout || d1.tries != d2.tries || d1.min_ttl != d2.min_ttl ||
        d1.max_ttl != d2.max_ttl || d1.negative_ttl != d2.negative_ttl || d1.cache_entries != d2.cache_entries) {
        changed.emplace_back("dns");
    }
    auto same_file = [](const std::optional<config::rotating_file_config>& a,
                        const std::optional<config::rotating_file_config>& b) {
        return a.has_value() == b.has_value() &&
               (!a || (a->path == b->path && a->max_bytes == b->max_bytes && a->max_files == b->max_files));
    };
    const auto& l1 = running.logging;
    const auto& l2 = loaded.logging;
    if (l1.to_stdout != l2.to_stdout || !same_file(l1.file, l2.file) || !same_file(l1.deny_file, l2.deny_file) ||
        l1.syslog_ident != l2.syslog_ident || l1.queue_size != l2.queue_size || l1.format != l2.format ||
        l1.instance != l2.instance || l1.http_query != l2.http_query) {
        changed.emplace_back("logging");
    }
    const auto& a1 = running.admin;
    const auto& a2 = loaded.admin;
    if (a1.has_value() != a2.has_value() ||
        (a1 && (a1->address != a2->address || a1->port != a2->port || a1->token_file != a2->token_file ||
                a1->tls.has_value() != a2->tls.has_value()))) {
        changed.emplace_back("admin");
    }
    // The credentials files, secrets, durations, limits and webhooks apply live; the listener and the store
    // are opened once.
    const auto& p1 = running.approvals;
    const auto& p2 = loaded.approvals;
    if (p1.has_value() != p2.has_value() ||
        (p1 && (p1->address != p2->address || p1->port != p2->port || p1->tls.has_value() != p2->tls.has_value() ||
                p1->store != p2->store || p1->store_url != p2->store_url))) {
        changed.emplace_back("approvals");
    }
    // The sinks' engine is built at start; only their secrets (re-read on every reload) apply live.
    auto same_sink = [](const config::alert_sink_config& a, const config::alert_sink_config& b) {
        return a.kind == b.kind && a.url == b.url && a.name == b.name && a.reasons == b.reasons &&
               a.clients == b.clients && a.verdicts == b.verdicts && a.dedup == b.dedup &&
               a.max_per_minute == b.max_per_minute && a.queue == b.queue && a.severity == b.severity;
    };
    if (!std::equal(running.alerts.begin(), running.alerts.end(), loaded.alerts.begin(), loaded.alerts.end(),
                    same_sink)) {
        changed.emplace_back("alerts");
    }
    return changed;
}

}  // namespace egressd::proxy::startup
