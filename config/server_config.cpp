#include "config/server_config.hpp"

#include "protocol/host_port.hpp"

#include "policy/address.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace egressd::config {
namespace {

class server_reader {
public:
    server_reader(schema_reader& r, server_config& out, std::filesystem::path base_dir)
        : r_(r), out_(out), base_dir_(std::move(base_dir))
    {
    }

    void read(const yaml_node& root)
    {
        if (!r_.expect_map(root, "an egressd configuration")) {
            return;
        }
        r_.check_keys(root, "the configuration",
                      {"version", "listeners", "policy", "workers", "dns", "timeouts", "limits", "logging",
                       "proxy_auth", "admin", "reload", "approvals", "alerts", "upstream_proxy"});
        if (const auto* v = r_.require(root, "version", "the configuration")) {
            if (auto version = r_.integer_value(*v, "version", 1, 1'000'000); version && *version != 1) {
                r_.error(*v, "unsupported configuration version " + std::to_string(*version) + ": expected version 1");
            }
        }
        if (const auto* l = r_.find(root, "listeners")) {
            read_listeners(*l);
        } else {
            out_.listeners.push_back({"127.0.0.1", 3128, {}, {}});
        }
        if (const auto* p = r_.require(root, "policy", "the configuration")) {
            if (auto text = r_.string_value(*p, "the policy path (a file or a directory)"); text && text->empty()) {
                r_.error(*p, "empty policy path: expected a policy file or directory");
            } else if (text) {
                std::filesystem::path path(*text);
                out_.policy_path = path.is_absolute() ? path : base_dir_ / path;
            }
        }
        if (const auto* w = r_.find(root, "workers")) {
            out_.workers = static_cast<unsigned>(r_.integer_value(*w, "workers (0: one per core)", 0, 256).value_or(0));
        }
        if (const auto* d = r_.find(root, "dns")) {
            read_dns(*d);
        }
        if (const auto* t = r_.find(root, "timeouts")) {
            read_timeouts(*t);
        }
        if (const auto* l = r_.find(root, "limits")) {
            read_limits(*l);
        }
        if (const auto* l = r_.find(root, "logging")) {
            read_logging(*l);
        }
        if (const auto* a = r_.find(root, "proxy_auth")) {
            read_proxy_auth(*a);
        }
        if (const auto* a = r_.find(root, "admin")) {
            read_admin(*a);
        }
        if (const auto* rl = r_.find(root, "reload")) {
            read_reload(*rl);
        }
        if (const auto* a = r_.find(root, "approvals")) {
            read_approvals(*a);
        }
        if (const auto* a = r_.find(root, "alerts")) {
            read_alerts(*a);
        }
        if (const auto* u = r_.find(root, "upstream_proxy")) {
            out_.upstream_proxy = read_upstream_proxy(*u, r_, "upstream_proxy");
        }
    }

private:
    void read_listeners(const yaml_node& n)
    {
        if (!n.is_sequence() || n.items.empty()) {
            r_.error(n, "expected listeners: a non-empty list of addresses like 127.0.0.1:3128 or [::1]:3128");
            return;
        }
        for (const auto& item : n.items) {
            // A listener is an address, or a mapping with its address, PROXY protocol and TLS settings.
            const yaml_node* address = &item;
            const yaml_node* proxy_protocol = nullptr;
            const yaml_node* tls = nullptr;
            if (item.is_map()) {
                r_.check_keys(item, "a listener", {"address", "proxy_protocol", "tls"});
                address = r_.require(item, "address", "a listener");
                proxy_protocol = r_.find(item, "proxy_protocol");
                tls = r_.find(item, "tls");
                if (address == nullptr) {
                    continue;
                }
            }
            auto text = r_.string_value(*address, "a listener address like 127.0.0.1:3128 or [::1]:3128");
            auto listener = text ? parse_listener(*text) : std::nullopt;
            if (text && !listener) {
                r_.error(*address, "invalid listener '" + *text +
                                       "': expected an IP address and port, like 127.0.0.1:3128 or [::1]:3128");
            }
            // Read even under a bad address, so that their mistakes are reported in the same run.
            listener_config settings = listener.value_or(listener_config{});
            if (proxy_protocol != nullptr) {
                read_proxy_protocol(*proxy_protocol, settings);
            }
            if (tls != nullptr) {
                settings.tls = read_tls(*tls, tls_owner::listener);
            }
            if (listener) {
                out_.listeners.push_back(std::move(settings));
            }
        }
    }

    void read_proxy_protocol(const yaml_node& n, listener_config& listener)
    {
        if (!r_.expect_map(n, "proxy_protocol settings")) {
            return;
        }
        r_.check_keys(n, "proxy_protocol", {"trusted"});
        const auto* trusted = r_.require(n, "trusted", "proxy_protocol");
        if (trusted == nullptr) {
            return;
        }
        auto items = r_.scalar_list(*trusted, "trusted sources");
        // Only a list written empty: a list whose items were all wrong has had them reported already.
        if (trusted->is_sequence() && trusted->items.empty()) {
            r_.error(*trusted, "empty trusted list: expected the CIDRs of the load balancers that send PROXY headers");
        }
        for (const auto* item : items) {
            std::string error;
            if (auto net = policy::cidr::parse(item->value, &error)) {
                listener.proxy_protocol_trusted.push_back(*net);
            } else {
                r_.error(*item, error);
            }
        }
    }

    // A path setting, resolved against the configuration file's directory; an empty one is an error.
    std::optional<std::filesystem::path> path_of(const yaml_node& v, std::string_view what)
    {
        auto text = r_.string_value(v, what);
        if (text && text->empty()) {
            r_.error(v, "empty path: expected " + std::string(what));
            return std::nullopt;
        }
        if (!text) {
            return std::nullopt;
        }
        std::filesystem::path path(*text);
        return path.is_absolute() ? path : base_dir_ / path;
    }

    // The admin endpoint's tls is a listener's without client_certificate: a caller that may reload the policy
    // is never let in without a certificate once client_ca is set. So is the approvals listener's.
    enum class tls_owner : std::uint8_t { listener, admin, approvals };

    std::optional<listener_tls_config> read_tls(const yaml_node& n, tls_owner owner)
    {
        const bool listener = owner == tls_owner::listener;
        const std::string_view where = owner == tls_owner::admin       ? "admin.tls"
                                       : owner == tls_owner::approvals ? "approvals.tls"
                                                                       : "a listener's tls";
        const std::string expected =
            listener ? "tls settings (certificate, key, and optionally client_ca, crl, client_certificate)"
                     : std::string(owner == tls_owner::admin ? "admin" : "approvals") +
                           " tls settings (certificate, key, and optionally client_ca, crl)";
        if (!r_.expect_map(n, expected)) {
            return std::nullopt;
        }
        if (listener) {
            r_.check_keys(n, where, {"certificate", "key", "client_ca", "crl", "client_certificate"});
        } else {
            r_.check_keys(n, where, {"certificate", "key", "client_ca", "crl"});
        }
        config::listener_tls_config tls;
        tls.where = n.where;
        if (const auto* c = r_.require(n, "certificate", where)) {
            tls.certificate_at = c->where;
            tls.certificate = path_of(*c, "the server certificate file (PEM)").value_or("");
        }
        if (const auto* k = r_.require(n, "key", where)) {
            tls.key_at = k->where;
            tls.key = path_of(*k, "the server private key file (PEM)").value_or("");
        }
        if (const auto* ca = r_.find(n, "client_ca")) {
            tls.client_ca_at = ca->where;
            tls.client_ca = path_of(*ca, "the CA file (PEM) client certificates must chain to");
        }
        const auto* crl = r_.find(n, "crl");
        if (crl != nullptr) {
            tls.crl_at = crl->where;
            tls.crl = path_of(*crl, "the CRL file (PEM) of revoked client certificates");
        }
        const auto* mode = listener ? r_.find(n, "client_certificate") : nullptr;
        if (mode != nullptr) {
            auto text = r_.string_value(*mode, "client_certificate: required or optional");
            if (text && (*text == "required" || *text == "optional")) {
                tls.require_client_certificate = *text == "required";
            } else if (text) {
                r_.error(*mode, "expected client_certificate: required or optional, found '" + *text + "'");
            }
        }
        if (r_.find(n, "client_ca") == nullptr) {
            // Without CAs no client certificate is asked for, so these settings could only mislead.
            for (const auto* orphan : {crl, mode}) {
                if (orphan != nullptr) {
                    r_.error(*orphan, "needs client_ca: client certificates are only asked for when client_ca is set");
                }
            }
        }
        return tls;
    }

    // Loopback only: 127.0.0.0/8 or ::1. Not ::ffff:127.0.0.1, nor 0.0.0.0 or ::, which reach every interface.
    static bool is_loopback(std::string_view address)
    {
        auto a = policy::address::parse(address);
        if (!a) {
            return false;
        }
        if (a->is_v4()) {
            return a->bytes()[0] == 127;
        }
        return *a == *policy::address::parse_v6("::1");
    }

    void read_admin(const yaml_node& n)
    {
        if (n.is_scalar() && n.value == "off") {
            out_.admin.reset();
            return;
        }
        if (!n.is_map()) {
            std::string found = n.is_scalar() ? "'" + n.value + "'" : n.is_sequence() ? "a list" : "nothing";
            r_.error(n, "expected admin: off, or a mapping with listen, token_file and tls; found " + found);
            return;
        }
        r_.check_keys(n, "admin", {"listen", "token_file", "tls"});
        admin_config admin;
        admin.where = n.where;
        const auto* listen = r_.find(n, "listen");
        bool listen_valid = false;
        if (listen != nullptr) {
            auto text = r_.string_value(*listen, "the admin listen address, like 127.0.0.1:9090 or [::1]:9090");
            auto parsed = text ? parse_listener(*text) : std::nullopt;
            if (parsed) {
                admin.address = parsed->address;
                admin.port = parsed->port;
                listen_valid = true;
            } else if (text) {
                r_.error(*listen, "invalid admin listen address '" + *text +
                                      "': expected an IP address and port, like 127.0.0.1:9090 or [::1]:9090");
            }
        }
        const auto* token = r_.find(n, "token_file");
        if (token != nullptr) {
            admin.token_file_at = token->where;
            admin.token_file = path_of(*token, "the file holding the admin token");
        }
        const auto* tls = r_.find(n, "tls");
        if (tls != nullptr) {
            admin.tls = read_tls(*tls, tls_owner::admin);
        }
        // Anyone who reaches the port may reload the policy and read every client's activity. Whether the
        // settings are present counts, not whether they were valid: a bad token_file is its own error.
        bool authenticated =
            token != nullptr || (tls != nullptr && tls->is_map() && r_.find(*tls, "client_ca") != nullptr);
        if (listen_valid && !authenticated && !is_loopback(admin.address)) {
            r_.error(*listen, "admin listen address '" + listen->value +
                                  "' is not loopback (127.0.0.0/8 or ::1): set token_file or tls.client_ca so that "
                                  "only authorized callers reach the admin endpoint");
        }
        out_.admin = std::move(admin);
    }

    std::optional<bool> boolean(const yaml_node& n, std::string_view key)
    {
        auto text = r_.string_value(n, std::string(key) + ": true or false");
        if (text && (*text == "true" || *text == "false")) {
            return *text == "true";
        }
        if (text) {
            r_.error(n, "expected " + std::string(key) + ": true or false, found '" + *text + "'");
        }
        return std::nullopt;
    }

    void read_reload(const yaml_node& n)
    {
        if (!r_.expect_map(n, "reload settings")) {
            return;
        }
        r_.check_keys(n, "reload", {"watch", "debounce"});
        if (const auto* w = r_.find(n, "watch")) {
            out_.reload.watch = boolean(*w, "watch").value_or(out_.reload.watch);
        }
        if (const auto* d = r_.find(n, "debounce")) {
            // Zero is let through to the range check, whose message gives the bounds.
            auto value = duration(*d, "debounce", true);
            if (value && (*value < std::chrono::milliseconds(50) || *value > std::chrono::minutes(1))) {
                r_.error(*d, "reload.debounce must be from 50ms to 1m, found '" + d->value +
                                 "': shorter splits one save into several reloads, longer leaves a change "
                                 "unapplied that long");
            } else if (value) {
                out_.reload.debounce = *value;
            }
        }
    }

    // Port 0 asks the kernel for a free port (tests use it); the bound port is logged at start.
    static std::optional<listener_config> parse_listener(std::string_view text)
    {
        auto parsed = protocol::parse_ip_port(text, {.allow_zero = true});
        if (!parsed || !parsed->port) {
            return std::nullopt;
        }
        auto address = parsed->address.to_string();
        return listener_config{address, *parsed->port, {}, {}};
    }

    // The forms the resolver accepts, read by the same parser, so that a configuration that passes
    // `config check` does not fail at start.
    static bool valid_dns_server(std::string_view text) { return protocol::parse_ip_port(text).has_value(); }

    // TTL settings may be 0 (cache nothing), and so may drain_delay (close at once); every timeout must be
    // positive.
    std::optional<std::chrono::milliseconds> duration(const yaml_node& n, std::string_view what, bool zero_allowed)
    {
        auto text = r_.string_value(n, std::string(what) + " (a duration like 500ms, 10s, 5m or 24h)");
        if (!text) {
            return std::nullopt;
        }
        auto d = parse_duration(*text);
        // A year bounds every setting: deadlines are computed as now + duration, which must not overflow.
        if (d && *d > std::chrono::hours(24 * 365)) {
            r_.error(n, "duration '" + *text + "' for " + std::string(what) + " is longer than a year (365d)");
            return std::nullopt;
        }
        if (!d || (d->count() == 0 && !zero_allowed)) {
            r_.error(n, "invalid duration '" + *text + "' for " + std::string(what) + ": expected a " +
                            (zero_allowed ? "" : "positive ") + "whole number with ms, s, m, h or d, like 10s");
            return std::nullopt;
        }
        return d;
    }

    template <typename Duration>
    void set_duration(const yaml_node& map, std::string_view key, Duration& out, bool zero_allowed = false)
    {
        if (const auto* n = r_.find(map, key)) {
            if (auto d = duration(*n, key, zero_allowed)) {
                if constexpr (std::is_same_v<Duration, std::chrono::seconds>) {
                    if (d->count() % 1000 != 0) {
                        r_.error(*n, std::string(key) + " must be whole seconds");
                        return;
                    }
                }
                out = std::chrono::duration_cast<Duration>(*d);
            }
        }
    }

    template <typename Int>
    void set_integer(const yaml_node& map, std::string_view key, Int& out, std::int64_t min, std::int64_t max)
    {
        if (const auto* n = r_.find(map, key)) {
            if (auto v = r_.integer_value(*n, key, min, max)) {
                out = static_cast<Int>(*v);
            }
        }
    }

    void read_dns(const yaml_node& n)
    {
        if (!r_.expect_map(n, "dns settings")) {
            return;
        }
        r_.check_keys(n, "dns", {"servers", "timeout", "tries", "min_ttl", "max_ttl", "negative_ttl", "cache_entries"});
        if (const auto* s = r_.find(n, "servers")) {
            for (const auto* item : r_.scalar_list(*s, "dns servers")) {
                if (!valid_dns_server(item->value)) {
                    r_.error(*item, "invalid DNS server '" + item->value +
                                        "': expected an IP address with an optional port, like 127.0.0.1:53 or [::1]:53");
                    continue;
                }
                out_.dns.servers.push_back(item->value);
            }
        }
        set_duration(n, "timeout", out_.dns.timeout);
        if (const auto* t = r_.find(n, "timeout"); t != nullptr && out_.dns.timeout > std::chrono::minutes(1)) {
            r_.error(*t, "dns.timeout is longer than a minute: a lookup that slow is a failure");
        }
        set_integer(n, "tries", out_.dns.tries, 1, 10);
        set_duration(n, "min_ttl", out_.dns.min_ttl, true);
        set_duration(n, "max_ttl", out_.dns.max_ttl, true);
        set_duration(n, "negative_ttl", out_.dns.negative_ttl, true);
        set_integer(n, "cache_entries", out_.dns.cache_entries, 1, 10'000'000);
        if (out_.dns.min_ttl > out_.dns.max_ttl) {
            r_.error(n, "dns.min_ttl is longer than dns.max_ttl");
        }
    }

    void read_timeouts(const yaml_node& n)
    {
        if (!r_.expect_map(n, "timeouts")) {
            return;
        }
        r_.check_keys(n, "timeouts",
                      {"header", "connect", "idle", "tunnel_lifetime", "upstream_response", "tls_peek",
                       "shutdown_grace", "drain_delay"});
        set_duration(n, "header", out_.timeouts.header);
        set_duration(n, "connect", out_.timeouts.connect);
        set_duration(n, "idle", out_.timeouts.idle);
        set_duration(n, "tunnel_lifetime", out_.timeouts.tunnel_lifetime);
        set_duration(n, "upstream_response", out_.timeouts.upstream_response);
        set_duration(n, "tls_peek", out_.timeouts.tls_peek);
        set_duration(n, "shutdown_grace", out_.timeouts.shutdown_grace);
        set_duration(n, "drain_delay", out_.timeouts.drain_delay, true);
        const auto* drain = r_.find(n, "drain_delay");
        if (drain != nullptr && out_.timeouts.drain_delay > std::chrono::minutes(10)) {
            r_.error(*drain, "timeouts.drain_delay is longer than 10m: SIGTERM would wait that long before the "
                             "listeners close, and an orchestrator kills a process that slow to stop");
        }
    }

    void read_limits(const yaml_node& n)
    {
        if (!r_.expect_map(n, "limits")) {
            return;
        }
        r_.check_keys(n, "limits",
                      {"max_head_bytes", "max_headers", "max_request_line", "max_connections",
                       "max_connections_per_client"});
        set_integer(n, "max_head_bytes", out_.limits.max_head_bytes, 1024, 1024 * 1024);
        set_integer(n, "max_headers", out_.limits.max_headers, 1, 10'000);
        set_integer(n, "max_request_line", out_.limits.max_request_line, 64, 1024 * 1024);
        set_integer(n, "max_connections", out_.limits.max_connections, 1, 10'000'000);
        set_integer(n, "max_connections_per_client", out_.limits.max_connections_per_client, 1, 10'000'000);
    }

    std::optional<rotating_file_config> read_file_sink(const yaml_node& n, std::string_view what)
    {
        if (!r_.expect_map(n, std::string(what) + " settings")) {
            return std::nullopt;
        }
        r_.check_keys(n, what, {"path", "max_bytes", "max_files"});
        rotating_file_config f;
        if (const auto* p = r_.require(n, "path", what)) {
            if (auto text = r_.string_value(*p, "a file path")) {
                std::filesystem::path path(*text);
                f.path = (path.is_absolute() ? path : base_dir_ / path).string();
            }
        }
        set_integer(n, "max_bytes", f.max_bytes, 4096, std::int64_t{1} << 40);
        set_integer(n, "max_files", f.max_files, 1, 1000);
        return f;
    }

    void read_proxy_auth(const yaml_node& n)
    {
        if (!r_.expect_map(n, "proxy_auth settings")) {
            return;
        }
        r_.check_keys(n, "proxy_auth", {"credentials", "realm", "required"});
        proxy_auth_config auth;
        if (const auto* c = r_.require(n, "credentials", "proxy_auth")) {
            if (auto text = r_.string_value(*c, "the credentials file path")) {
                std::filesystem::path path(*text);
                auth.credentials = path.is_absolute() ? path : base_dir_ / path;
            }
        }
        if (const auto* realm = r_.find(n, "realm")) {
            auto text = r_.string_value(*realm, "a realm");
            // The realm is sent back inside a quoted header parameter.
            if (text && (text->empty() || text->find_first_of("\"\\\r\n") != std::string::npos)) {
                r_.error(*realm, "invalid realm: expected a non-empty name without quotes, backslashes or line breaks");
            } else if (text) {
                auth.realm = *text;
            }
        }
        if (const auto* req = r_.find(n, "required")) {
            auto text = r_.string_value(*req, "required: true or false");
            if (text && (*text == "true" || *text == "false")) {
                auth.required = *text == "true";
            } else if (text) {
                r_.error(*req, "expected required: true or false, found '" + *text + "'");
            }
        }
        out_.proxy_auth = std::move(auth);
    }

    void read_logging(const yaml_node& n)
    {
        if (!r_.expect_map(n, "logging settings")) {
            return;
        }
        r_.check_keys(n, "logging", {"format", "instance", "http_query", "stdout", "file", "deny_file", "syslog",
                                     "queue_size"});
        if (const auto* f = r_.find(n, "format")) {
            auto text = r_.string_value(*f, "format: egressd, ecs or ocsf");
            if (text && *text == "egressd") {
                out_.logging.format = event_format::egressd;
            } else if (text && *text == "ecs") {
                out_.logging.format = event_format::ecs;
            } else if (text && *text == "ocsf") {
                out_.logging.format = event_format::ocsf;
            } else if (text) {
                r_.error(*f, "expected format: egressd, ecs or ocsf, found '" + *text + "'");
            }
        }
        if (const auto* i = r_.find(n, "instance")) {
            if (auto text = r_.string_value(*i, "an instance name"); text && text->empty()) {
                r_.error(*i, "empty instance name: leave it out to use the host name");
            } else if (text) {
                out_.logging.instance = *text;
            }
        }
        if (const auto* q = r_.find(n, "http_query")) {
            auto text = r_.string_value(*q, "http_query: true or false");
            if (text && (*text == "true" || *text == "false")) {
                out_.logging.http_query = *text == "true";
            } else if (text) {
                r_.error(*q, "expected http_query: true or false, found '" + *text + "'");
            }
        }
        if (const auto* s = r_.find(n, "stdout")) {
            auto text = r_.string_value(*s, "stdout: true or false");
            if (text && (*text == "true" || *text == "false")) {
                out_.logging.to_stdout = *text == "true";
            } else if (text) {
                r_.error(*s, "expected stdout: true or false, found '" + *text + "'");
            }
        }
        if (const auto* f = r_.find(n, "file")) {
            out_.logging.file = read_file_sink(*f, "logging.file");
        }
        if (const auto* f = r_.find(n, "deny_file")) {
            out_.logging.deny_file = read_file_sink(*f, "logging.deny_file");
        }
        // Not an early return on a bad syslog value: the keys after it must still be checked and reported.
        if (const auto* s = r_.find(n, "syslog"); s != nullptr && r_.expect_map(*s, "syslog settings")) {
            r_.check_keys(*s, "logging.syslog", {"ident"});
            out_.logging.syslog_ident = "egressd";
            if (const auto* ident = r_.find(*s, "ident")) {
                out_.logging.syslog_ident = r_.string_value(*ident, "a syslog ident").value_or("egressd");
            }
        }
        set_integer(n, "queue_size", out_.logging.queue_size, 16, 10'000'000);
    }

    // An SQLite file, or a postgresql:// (postgres://) URI for a store that replicas share.
    void read_store(const yaml_node& n, approvals_config& a)
    {
        auto text = r_.string_value(n, "the approvals store: an SQLite file, or a postgresql:// URL");
        if (!text) {
            return;
        }
        if (!text->starts_with("postgresql://") && !text->starts_with("postgres://")) {
            a.store = path_of(n, "the approvals store (an SQLite file, or a postgresql:// URL)").value_or("");
            return;
        }
        auto rest = std::string_view(*text).substr(text->find("://") + 3);
        auto authority = rest.substr(0, rest.find_first_of("/?"));
        auto query = rest.find('?') == std::string_view::npos ? std::string_view() : rest.substr(rest.find('?'));
        bool password_in_query = false;
        for (std::size_t at = query.find("password="); at != std::string_view::npos;
             at = query.find("password=", at + 1)) {
            password_in_query = password_in_query || query[at - 1] == '?' || query[at - 1] == '&';
        }
        if (auto at = authority.rfind('@');
            password_in_query ||
            (at != std::string_view::npos && authority.substr(0, at).find(':') != std::string_view::npos)) {
            r_.error(n, "a password in the store URL is not allowed: give it to libpq in the PGPASSWORD "
                        "environment variable or a passfile (?passfile=/path, or ~/.pgpass)");
            return;
        }
        for (char c : *text) {
            if (c <= 0x20 || c >= 0x7f) {
                r_.error(n, "expected a postgresql:// URL of printable characters without spaces (percent-encode "
                            "the others)");
                return;
            }
        }
        a.store_url = *text;
    }

    void read_approvals(const yaml_node& n)
    {
        if (n.is_scalar() && n.value == "off") {
            out_.approvals.reset();
            return;
        }
        if (!n.is_map()) {
            std::string found = n.is_scalar() ? "'" + n.value + "'" : n.is_sequence() ? "a list" : "nothing";
            r_.error(n, "expected approvals: off, or a mapping with store, approvers and the other approvals "
                        "settings; found " + found);
            return;
        }
        r_.check_keys(n, "approvals",
                      {"listen", "public_url", "store", "tls", "approvers", "requesters", "trusted_header",
                       "default_grant", "max_grant", "max_pending", "requests_per_client_per_minute", "request_ttl",
                       "notify_cooldown", "expiry_warning", "notify"});
        approvals_config a;
        a.where = n.where;
        const auto* listen = r_.find(n, "listen");
        bool listen_valid = listen == nullptr;
        if (listen != nullptr) {
            auto text = r_.string_value(*listen, "the approvals listen address, like 127.0.0.1:9091 or [::1]:9091");
            auto parsed = text ? parse_listener(*text) : std::nullopt;
            if (parsed) {
                a.address = parsed->address;
                a.port = parsed->port;
                listen_valid = true;
            } else if (text) {
                r_.error(*listen, "invalid approvals listen address '" + *text +
                                      "': expected an IP address and port, like 127.0.0.1:9091 or [::1]:9091");
            }
        }
        if (listen_valid) {
            check_approvals_port(a, listen != nullptr ? listen->where : n.where);
        }
        if (const auto* store = r_.require(n, "store", "approvals")) {
            read_store(*store, a);
        }
        const auto* tls = r_.find(n, "tls");
        if (tls != nullptr) {
            a.tls = read_tls(*tls, tls_owner::approvals);
        }
        if (const auto* url = r_.find(n, "public_url")) {
            if (auto text = r_.string_value(*url, "the approvals page's URL, like https://egress.example.com")) {
                std::string error;
                if (valid_http_url(*text, false, error)) {
                    a.public_url = without_trailing_slashes(*text);
                } else {
                    r_.error(*url, "invalid public_url '" + *text + "': " + error);
                }
            }
        } else {
            a.public_url = std::string(tls != nullptr ? "https://" : "http://") + endpoint_text(a.address, a.port);
            a.public_url_is_default = true;
        }
        const auto* approvers = r_.find(n, "approvers");
        if (approvers != nullptr) {
            a.approvers_at = approvers->where;
            a.approvers = path_of(*approvers, "the approvers' credentials file (egressd passwd)");
        }
        if (const auto* requesters = r_.find(n, "requesters")) {
            a.requesters_at = requesters->where;
            a.requesters = path_of(*requesters, "the requesters' credentials file (egressd passwd)");
        }
        const auto* trusted = r_.find(n, "trusted_header");
        if (trusted != nullptr) {
            a.trusted_header = read_trusted_header(*trusted);
        }
        // Whether the settings are present counts, not whether they were valid: a bad one is its own error.
        if (approvers == nullptr && trusted == nullptr) {
            r_.error(n, "approvals needs a way for approvers to sign in: approvers (a credentials file made with "
                        "egressd passwd) or trusted_header (users an authenticating reverse proxy vouches for)");
        }
        set_duration(n, "default_grant", a.default_grant);
        set_duration(n, "max_grant", a.max_grant);
        if (a.default_grant > a.max_grant) {
            const auto* at = r_.find(n, "default_grant");
            r_.error(at != nullptr ? *at : *r_.find(n, "max_grant"),
                     "approvals.default_grant is longer than approvals.max_grant: a grant is never longer than "
                     "max_grant");
        }
        set_integer(n, "max_pending", a.max_pending, 1, 10'000'000);
        set_integer(n, "requests_per_client_per_minute", a.requests_per_client_per_minute, 1, 1'000'000);
        set_duration(n, "request_ttl", a.request_ttl);
        set_duration(n, "notify_cooldown", a.notify_cooldown);
        set_duration(n, "expiry_warning", a.expiry_warning);
        if (const auto* notify = r_.find(n, "notify")) {
            read_notify(*notify, a.notify);
        }
        out_.approvals = std::move(a);
    }

    // "192.0.2.1:80", "[2001:db8::1]:80".
    static std::string endpoint_text(const std::string& address, std::uint16_t port)
    {
        auto parsed = policy::address::parse(address);
        return parsed ? parsed->to_string(port) : address + ":" + std::to_string(port);
    }

    // Two listeners on one port either fail to bind at start or split connections between them: a wildcard
    // address takes the port on every address of its family. Port 0 asks for a free port, never a shared one.
    void check_approvals_port(const approvals_config& a, mark at)
    {
        auto overlaps = [&](const std::string& address, std::uint16_t port) {
            if (a.port == 0 || port != a.port) {
                return false;
            }
            auto mine = policy::address::parse(a.address);
            auto theirs = policy::address::parse(address);
            if (!mine || !theirs) {
                return address == a.address;
            }
            // 0.0.0.0 or ::, whose bytes are all zero.
            auto wildcard = [](const policy::address& x) {
                return std::all_of(x.bytes().begin(), x.bytes().end(), [](std::uint8_t b) { return b == 0; });
            };
            return *mine == *theirs || (mine->is_v4() == theirs->is_v4() && (wildcard(*mine) || wildcard(*theirs)));
        };
        auto taken = [&](std::string_view whose, const std::string& address, std::uint16_t port) {
            r_.error(at, "the approvals listener " + endpoint_text(a.address, a.port) + " takes the port of the " +
                             std::string(whose) + " listener " + endpoint_text(address, port) +
                             ": give approvals.listen a port of its own");
        };
        for (const auto& l : out_.listeners) {
            if (overlaps(l.address, l.port)) {
                taken("proxy", l.address, l.port);
            }
        }
        if (out_.admin && overlaps(out_.admin->address, out_.admin->port)) {
            taken("admin", out_.admin->address, out_.admin->port);
        }
    }

    // An HTTP header name: an RFC 9110 token.
    static bool is_token(std::string_view text)
    {
        return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
        });
    }

    std::optional<trusted_header_config> read_trusted_header(const yaml_node& n)
    {
        if (!r_.expect_map(n, "trusted_header settings (user, groups, approver_group, from)")) {
            return std::nullopt;
        }
        r_.check_keys(n, "approvals.trusted_header", {"user", "groups", "approver_group", "from"});
        trusted_header_config t;
        t.where = n.where;
        auto header = [&](std::string_view key, std::string& out) {
            const auto* h = r_.find(n, key);
            if (h == nullptr) {
                return;
            }
            auto text = r_.string_value(*h, std::string(key) + ": a header name like X-Forwarded-User");
            if (text && is_token(*text)) {
                out = *text;
            } else if (text) {
                r_.error(*h, "invalid header name '" + *text + "' for " + std::string(key) +
                                 ": expected letters, digits and !#$%&'*+-.^_`|~, like X-Forwarded-User");
            }
        };
        header("user", t.user_header);
        header("groups", t.groups_header);
        auto same_name = [](std::string_view x, std::string_view y) {
            auto lower = [](char c) { return std::tolower(static_cast<unsigned char>(c)); };
            return x.size() == y.size() &&
                   std::equal(x.begin(), x.end(), y.begin(), [&](char p, char q) { return lower(p) == lower(q); });
        };
        if (const auto* g = r_.find(n, "groups"); g != nullptr && same_name(t.user_header, t.groups_header)) {
            r_.error(*g, "the groups header is the user header: expected two different headers");
        }
        if (const auto* g = r_.find(n, "approver_group")) {
            auto text = r_.string_value(*g, "approver_group: a group name");
            // The groups header is a comma-separated list, so a name with a comma or surrounding spaces could
            // never be in it.
            if (text && (text->empty() || text->find(',') != std::string::npos || text->front() == ' ' ||
                         text->back() == ' ' ||
                         std::any_of(text->begin(), text->end(), [](char c) { return c < 0x20 || c == 0x7f; }))) {
                r_.error(*g, "invalid approver_group '" + *text +
                                 "': expected a non-empty group name without commas, control characters or "
                                 "surrounding spaces");
            } else if (text) {
                t.approver_group = *text;
            }
        }
        if (const auto* from = r_.require(n, "from", "approvals.trusted_header")) {
            auto items = r_.scalar_list(*from, "trusted sources");
            if (from->is_sequence() && from->items.empty()) {
                r_.error(*from, "empty from list: expected the CIDRs of the reverse proxies that set the headers");
            }
            for (const auto* item : items) {
                std::string error;
                if (auto net = policy::cidr::parse(item->value, &error)) {
                    t.sources.push_back(*net);
                } else {
                    r_.error(*item, error);
                }
            }
        }
        return t;
    }

    void read_notify(const yaml_node& n, std::vector<webhook_config>& out)
    {
        if (!n.is_sequence()) {
            std::string found = n.is_scalar() ? "'" + n.value + "'" : n.is_map() ? "a mapping" : "nothing";
            r_.error(n, "expected notify: a list of webhooks, each with url, format, secret_file and events; found " +
                            found);
            return;
        }
        for (const auto& item : n.items) {
            if (!r_.expect_map(item, "a webhook (url, format, secret_file, events)")) {
                continue;
            }
            r_.check_keys(item, "a webhook", {"url", "format", "secret_file", "events"});
            webhook_config hook;
            hook.where = item.where;
            if (const auto* url = r_.require(item, "url", "a webhook")) {
                if (auto text = r_.string_value(*url, "the webhook URL, like https://hooks.example.com/egressd")) {
                    std::string error;
                    if (valid_http_url(*text, true, error)) {
                        hook.url = *text;
                    } else {
                        r_.error(*url, "invalid webhook url '" + *text + "': " + error);
                    }
                }
            }
            const auto* format = r_.find(item, "format");
            if (format != nullptr) {
                auto text = r_.string_value(*format, "format: json or slack");
                if (text && (*text == "json" || *text == "slack")) {
                    hook.format = *text == "json" ? webhook_config::body_format::json
                                                  : webhook_config::body_format::slack;
                } else if (text) {
                    r_.error(*format, "expected format: json or slack, found '" + *text + "'");
                }
            }
            if (const auto* secret = r_.find(item, "secret_file")) {
                hook.secret_file_at = secret->where;
                hook.secret_file = path_of(*secret, "the file holding the webhook's signing secret");
                if (format != nullptr && format->is_scalar() && format->value == "slack") {
                    r_.error(*secret, "secret_file is for format json: a Slack-compatible body carries no signature");
                }
            }
            if (const auto* events = r_.find(item, "events")) {
                auto items = r_.scalar_list(*events, "webhook events");
                if (events->is_sequence() && events->items.empty()) {
                    r_.error(*events, "empty events list: leave events out for all of requested, decided, expiring");
                }
                for (const auto* e : items) {
                    if (e->value != "requested" && e->value != "decided" && e->value != "expiring") {
                        r_.error(*e, "unknown webhook event '" + e->value +
                                         "': expected requested, decided or expiring");
                    } else if (std::find(hook.events.begin(), hook.events.end(), e->value) != hook.events.end()) {
                        r_.error(*e, "webhook event '" + e->value + "' appears twice");
                    } else {
                        hook.events.push_back(e->value);
                    }
                }
            }
            out.push_back(std::move(hook));
        }
    }

    // alerts: a list of sinks, each naming exactly one of webhook, slack or alertmanager with its URL. Reason codes
    // are the proxy's (observe::reason): the loader checks them, since configuration knows no proxy code.
    void read_alerts(const yaml_node& n)
    {
        if (!n.is_sequence()) {
            std::string found = n.is_scalar() ? "'" + n.value + "'" : n.is_map() ? "a mapping" : "nothing";
            r_.error(n, "expected alerts: a list of sinks, each with webhook, slack or alertmanager and its URL; "
                        "found " + found);
            return;
        }
        // Each name with where it was written (the sink itself for a default name): names label the metrics.
        std::vector<std::pair<std::string, mark>> names;
        for (std::size_t i = 0; i < n.items.size(); ++i) {
            const auto& item = n.items[i];
            if (!r_.expect_map(item, "an alert sink (webhook, slack or alertmanager with its URL)")) {
                continue;
            }
            r_.check_keys(item, "an alert sink",
                          {"webhook", "slack", "alertmanager", "name", "secret_file", "reasons", "clients", "verdicts",
                           "dedup", "max_per_minute", "queue", "severity"});
            alert_sink_config sink;
            sink.where = item.where;
            auto kind = read_alert_destination(item, sink);
            mark name_at = item.where;
            if (const auto* name = r_.find(item, "name")) {
                name_at = name->where;
                auto text = r_.string_value(*name, "a sink name, like security-hook");
                if (text && valid_sink_name(*text)) {
                    sink.name = *text;
                } else if (text) {
                    r_.error(*name, "invalid sink name '" + *text +
                                        "': expected 1 to 64 letters, digits, '-', '_' or '.', like security-hook");
                }
            } else if (kind) {
                sink.name = std::string(*kind) + "-" + std::to_string(i + 1);
            }
            if (!sink.name.empty()) {
                auto same =
                    std::find_if(names.begin(), names.end(), [&](const auto& e) { return e.first == sink.name; });
                if (same != names.end()) {
                    r_.error(name_at, "alert sink name '" + sink.name + "' is already used at line " +
                                          std::to_string(same->second.line) +
                                          ": expected a name of its own (names label the metrics)");
                } else {
                    names.emplace_back(sink.name, name_at);
                }
            }
            if (const auto* secret = r_.find(item, "secret_file")) {
                sink.secret_file_at = secret->where;
                sink.secret_file = path_of(*secret, "the file holding the webhook's signing secret");
                if (kind && sink.kind != alert_sink_config::sink_kind::webhook) {
                    r_.error(*secret, "secret_file is for webhook sinks: " + std::string(*kind) +
                                          " bodies carry no signature");
                }
            }
            sink.reasons = alert_names(item, "reasons", "reason codes, like explicit_deny", {});
            sink.clients = alert_names(item, "clients", "client names", {});
            if (r_.find(item, "verdicts") != nullptr) {
                sink.verdicts = alert_names(item, "verdicts", "verdicts: deny, would_deny, revoke, would_revoke, error",
                                            {"deny", "would_deny", "revoke", "would_revoke", "error"});
            }
            set_duration(item, "dedup", sink.dedup);
            if (const auto* d = r_.find(item, "dedup");
                d != nullptr && (sink.dedup < std::chrono::seconds(1) || sink.dedup > std::chrono::hours(24))) {
                r_.error(*d, "alert dedup must be from 1s to 24h, found '" + d->value + "'");
            }
            set_integer(item, "max_per_minute", sink.max_per_minute, 1, 100'000);
            set_integer(item, "queue", sink.queue, 1, 1'000'000);
            if (const auto* severity = r_.find(item, "severity")) {
                read_alert_severity(*severity, sink);
            }
            out_.alerts.push_back(std::move(sink));
        }
    }

    // The one destination key of a sink: its kind's name, or nothing (reported) when there is none or more.
    std::optional<std::string_view> read_alert_destination(const yaml_node& item, alert_sink_config& sink)
    {
        using kind = alert_sink_config::sink_kind;
        constexpr std::array<std::pair<std::string_view, kind>, 3> kinds{
            {{"webhook", kind::webhook}, {"slack", kind::slack}, {"alertmanager", kind::alertmanager}}};
        std::optional<std::string_view> found;
        for (const auto& [key, k] : kinds) {
            const auto* url = r_.find(item, key);
            if (url == nullptr) {
                continue;
            }
            if (found) {
                r_.error(*url, "an alert sink has one destination: found both " + std::string(*found) + " and " +
                                   std::string(key) + " (write two sinks)");
                return std::nullopt;
            }
            found = key;
            sink.kind = k;
            // Alertmanager's URL is a base to which /api/v2/alerts is added: no query there.
            bool base_url = k == kind::alertmanager;
            auto what = base_url ? std::string("Alertmanager's base URL, like http://alertmanager:9093")
                                 : "the " + std::string(key) + " URL, like https://hooks.example.com/egressd";
            if (auto text = r_.string_value(*url, what)) {
                std::string error;
                if (valid_http_url(*text, !base_url, error)) {
                    sink.url = base_url ? without_trailing_slashes(*text) : *text;
                } else {
                    r_.error(*url, "invalid " + std::string(key) + " URL '" + *text + "': " + error);
                }
            }
        }
        if (!found) {
            r_.error(item, "an alert sink needs one of webhook, slack or alertmanager, with its URL");
        }
        return found;
    }

    // A non-empty list of distinct names; with `allowed`, each must be one of them.
    std::vector<std::string> alert_names(const yaml_node& item, std::string_view key, std::string_view what,
                                         std::initializer_list<std::string_view> allowed)
    {
        std::vector<std::string> out;
        const auto* n = r_.find(item, key);
        if (n == nullptr) {
            return out;
        }
        auto items = r_.scalar_list(*n, what);
        if (n->is_sequence() && n->items.empty()) {
            r_.error(*n, "empty " + std::string(key) + " list: leave " + std::string(key) + " out to match them all");
        }
        for (const auto* e : items) {
            if (allowed.size() != 0 && std::find(allowed.begin(), allowed.end(), e->value) == allowed.end()) {
                r_.error(*e,
                         "unknown " + std::string(key) + " entry '" + e->value + "': expected " + std::string(what));
            } else if (e->value.empty()) {
                r_.error(*e, "empty " + std::string(key) + " entry: expected " + std::string(what));
            } else if (std::find(out.begin(), out.end(), e->value) != out.end()) {
                r_.error(*e, std::string(key) + " entry '" + e->value + "' appears twice");
            } else {
                out.push_back(e->value);
            }
        }
        return out;
    }

    void read_alert_severity(const yaml_node& n, alert_sink_config& sink)
    {
        if (!r_.expect_map(n, "severity: reason codes to low, medium or high")) {
            return;
        }
        for (const auto& [key, value] : n.entries) {
            auto reason = r_.string_value(key, "a reason code, like no_matching_rule");
            auto level = r_.string_value(value, "low, medium or high");
            if (!reason || !level) {
                continue;
            }
            if (*level != "low" && *level != "medium" && *level != "high") {
                r_.error(value, "expected severity low, medium or high for " + *reason + ", found '" + *level + "'");
            } else if (std::any_of(sink.severity.begin(), sink.severity.end(),
                                   [&](const auto& s) { return s.first == *reason; })) {
                r_.error(key, "severity of '" + *reason + "' appears twice");
            } else {
                sink.severity.emplace_back(*reason, *level);
            }
        }
    }

    // A metric label value that reads well in a dashboard and a log line.
    static bool valid_sink_name(std::string_view text)
    {
        return !text.empty() && text.size() <= 64 && std::all_of(text.begin(), text.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                   c == '_' || c == '.';
        });
    }

    // An http:// or https:// URL with a host, an optional port and an optional path (and, with allow_query, a
    // query); otherwise false with error saying what is wrong.
    static bool valid_http_url(std::string_view text, bool allow_query, std::string& error)
    {
        std::string_view rest;
        std::string_view scheme;
        for (std::string_view s : {"http://", "https://"}) {
            if (text.starts_with(s)) {
                scheme = s;
                rest = text.substr(s.size());
            }
        }
        if (scheme.empty()) {
            error = "expected an http:// or https:// URL";
            return false;
        }
        auto authority = rest.substr(0, rest.find_first_of("/?#"));
        auto tail = rest.substr(authority.size());
        if (authority.find('@') != std::string_view::npos) {
            error = "a user name or password in the URL is not allowed";
            return false;
        }
        auto split = protocol::split_host_port(authority);
        if (!split || split->host.empty() || split->unbracketed_v6) {
            error = "expected a host after " + std::string(scheme) + ", with an optional port (IPv6 in brackets)";
            return false;
        }
        if (split->port && !protocol::parse_port(*split->port)) {
            error = "invalid port '" + std::string(*split->port) + "': expected 1 to 65535";
            return false;
        }
        auto host = policy::host::parse(split->host);
        if (!host.value) {
            error = host.error;
            return false;
        }
        // Printable ASCII a URI may carry as is: the URL goes into headers, JSON and HTML.
        for (char c : tail) {
            if (c <= 0x20 || c >= 0x7f || std::string_view("\"<>\\^`{|}").find(c) != std::string_view::npos) {
                error = "expected a path of printable characters without spaces (percent-encode the others)";
                return false;
            }
        }
        if (tail.find('#') != std::string_view::npos) {
            error = "a fragment (#...) is not allowed";
            return false;
        }
        if (!allow_query && tail.find('?') != std::string_view::npos) {
            error = "a query (?...) is not allowed: links are made by appending paths to it";
            return false;
        }
        return true;
    }

    // Links are made by appending "/requests/12" to the public URL.
    static std::string without_trailing_slashes(std::string_view url)
    {
        auto path = url.find('/', url.find("://") + 3);
        while (path != std::string_view::npos && url.size() > path && url.back() == '/') {
            url.remove_suffix(1);
        }
        return std::string(url);
    }

    schema_reader& r_;
    server_config& out_;
    std::filesystem::path base_dir_;
};

}  // namespace

std::optional<upstream_proxy_config> read_upstream_proxy(const yaml_node& n, schema_reader& r, std::string_view what)
{
    const std::string expected = "expected " + std::string(what) + ": http://host:port, the parent proxy";
    auto text = r.string_value(n, "a parent proxy URL, like http://proxy.corp.example:3128");
    if (!text) {
        return std::nullopt;
    }
    if (!text->starts_with("http://")) {
        r.error(n, expected + " (only http:// parents are supported); found '" + *text + "'");
        return std::nullopt;
    }
    std::string_view authority = std::string_view(*text).substr(7);
    if (!authority.empty() && authority.back() == '/') {
        authority.remove_suffix(1);
    }
    if (authority.find_first_of("/?#") != std::string_view::npos) {
        r.error(n, expected + ", without a path; found '" + *text + "'");
        return std::nullopt;
    }
    if (authority.find('@') != std::string_view::npos) {
        r.error(n, "a user name or password in " + std::string(what) + " is not allowed");
        return std::nullopt;
    }
    auto split = protocol::split_host_port(authority);
    if (!split || split->host.empty() || split->unbracketed_v6) {
        r.error(n, expected + " (IPv6 in brackets); found '" + *text + "'");
        return std::nullopt;
    }
    upstream_proxy_config out;
    out.where = n.where;
    if (split->port) {
        auto port = protocol::parse_port(*split->port);
        if (!port) {
            r.error(n, "invalid port '" + std::string(*split->port) + "' in " + std::string(what) +
                           ": expected 1 to 65535");
            return std::nullopt;
        }
        out.port = *port;
    }
    auto host = policy::host::parse(split->host);
    if (!host.value) {
        r.error(n, "invalid host in " + std::string(what) + ": " + host.error);
        return std::nullopt;
    }
    out.host = host.value->is_address() ? host.value->literal()->to_string() : *host.value->name();
    return out;
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text)
{
    std::int64_t value = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || ptr == text.data() || value < 0) {
        return std::nullopt;
    }
    std::string_view unit(ptr, static_cast<std::size_t>(text.data() + text.size() - ptr));
    std::int64_t factor = 0;
    if (unit == "ms") {
        factor = 1;
    } else if (unit == "s") {
        factor = 1000;
    } else if (unit == "m") {
        factor = 60'000;
    } else if (unit == "h") {
        factor = 3'600'000;
    } else if (unit == "d") {
        factor = 86'400'000;
    } else {
        return std::nullopt;
    }
    if (value > INT64_MAX / factor) {
        return std::nullopt;
    }
    return std::chrono::milliseconds{value * factor};
}

loaded_server_config load_server_config_text(const std::string& name, const std::string& text,
                                             const std::filesystem::path& base_dir)
{
    loaded_server_config result;
    std::istringstream in(text);
    yaml_error parse_error;
    auto root = parse_yaml(in, parse_error);
    if (!root) {
        result.errors.push_back({name, parse_error.where, parse_error.message});
        return result;
    }
    server_config config;
    config.file = name;
    schema_reader reader(name, result.errors);
    server_reader(reader, config, base_dir).read(*root);
    if (config.logging.instance.empty()) {
        std::array<char, 256> host{};
        config.logging.instance = ::gethostname(host.data(), host.size() - 1) == 0 ? host.data() : "egressd";
    }
    if (result.errors.empty()) {
        result.config = std::move(config);
    }
    return result;
}

loaded_server_config load_server_config(const std::filesystem::path& path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        loaded_server_config result;
        result.errors.push_back({path.string(), mark{}, "cannot open the configuration file"});
        return result;
    }
    std::ostringstream text;
    text << in.rdbuf();
    return load_server_config_text(path.string(), text.str(), path.parent_path());
}

}  // namespace egressd::config
