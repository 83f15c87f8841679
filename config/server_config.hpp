#pragma once

#include "config/schema.hpp"
#include "config/yaml_tree.hpp"
#include "policy/address.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace egressd::config {

// A TLS listener: an HTTPS proxy (clients speak TLS to egressd), optionally verifying client certificates.
// Paths are resolved against the configuration file's directory. The files are read at start and on SIGHUP.
struct listener_tls_config {
    std::filesystem::path certificate;  // PEM: server certificate, then intermediates
    std::filesystem::path key;
    std::optional<std::filesystem::path> client_ca;  // set: clients are asked for a certificate these CAs issued
    std::optional<std::filesystem::path> crl;        // revoked client certificates (needs client_ca)
    bool require_client_certificate = true;           // with client_ca; false: a client without one is let in
    mark where;  // the listener's "tls" settings, for errors found when the files are read
    // Where each file is named, so an error about a file points at the setting that names it.
    mark certificate_at, key_at, client_ca_at, crl_at;
};

struct listener_config {
    std::string address;  // IP literal in canonical text, without brackets ("127.0.0.1", "::1")
    std::uint16_t port = 3128;
    // PROXY protocol (v1 and v2): connections from these sources (a load balancer) must start with a PROXY
    // header, whose source address then stands for the client; from any other source a PROXY header is refused.
    // Empty: no PROXY protocol on this listener.
    std::vector<policy::cidr> proxy_protocol_trusted;
    std::optional<listener_tls_config> tls;
};

struct dns_config {
    std::vector<std::string> servers;  // "ip:port"; empty: /etc/resolv.conf
    std::chrono::milliseconds timeout{2000};
    int tries = 2;
    std::chrono::seconds min_ttl{5};
    std::chrono::seconds max_ttl{300};
    std::chrono::seconds negative_ttl{30};
    std::size_t cache_entries = 10'000;
};

struct timeouts_config {
    std::chrono::milliseconds header{10'000};          // whole request head, from its first byte (slowloris)
    std::chrono::milliseconds connect{10'000};         // upstream TCP connect, all addresses together
    std::chrono::milliseconds idle{300'000};           // no byte either way on a connection or tunnel
    std::chrono::milliseconds tunnel_lifetime{86'400'000};  // a tunnel is closed after this, busy or not
    std::chrono::milliseconds upstream_response{60'000};    // upstream response head after the request
    std::chrono::milliseconds tls_peek{5'000};  // CONNECT: the client's ClientHello after "200 Connection established"
    std::chrono::milliseconds shutdown_grace{30'000};  // SIGTERM: in-flight work may finish within this
    // SIGTERM: readiness turns 503 at once, but the listeners keep accepting for this long before they close, so
    // that a load balancer (or a Kubernetes endpoint controller) stops sending before connections are refused.
    // 0: close at once. At most 10 minutes. shutdown_grace starts after it.
    std::chrono::milliseconds drain_delay{0};
};

struct limits_config {
    std::size_t max_head_bytes = 64 * 1024;
    std::size_t max_headers = 100;
    std::size_t max_request_line = 8 * 1024;
    std::size_t max_connections = 10'000;
    std::size_t max_connections_per_client = 1'000;  // per source address
};

struct rotating_file_config {
    std::string path;
    std::size_t max_bytes = 100 * 1024 * 1024;
    std::size_t max_files = 5;
};

// How each event line is written: egressd's own JSON fields, Elastic Common Schema, or OCSF (see
// docs/EVENT_FORMATS.md for every field).
enum class event_format : std::uint8_t { egressd, ecs, ocsf };

struct logging_config {
    event_format format = event_format::egressd;
    std::string instance;     // written in every event; empty in the file: the host name, filled in by the loader
    bool http_query = false;  // forwarded plain HTTP: keep the URL's query in the event (it may carry secrets)
    bool to_stdout = true;
    std::optional<rotating_file_config> file;
    std::optional<rotating_file_config> deny_file;  // denials (and would-denials) also go here
    std::optional<std::string> syslog_ident;
    std::size_t queue_size = 8192;  // events waiting for the writer; beyond it the oldest are dropped and counted
};

// Proxy-Authorization: Basic against a credentials file (see certs/credentials.hpp). The user becomes the
// client's identity in the policy.
struct proxy_auth_config {
    std::filesystem::path credentials;
    std::string realm = "egressd";
    bool required = false;  // true: a request without credentials gets 407; false: it is decided by its source
};

// The admin endpoint: health, readiness, status, metrics and reload over HTTP(S). Only on loopback unless callers
// must authenticate (a bearer token from token_file, or a client certificate from tls.client_ca).
struct admin_config {
    std::string address = "127.0.0.1";  // IP literal in canonical text, without brackets
    std::uint16_t port = 9090;           // 0: a free port, logged at start
    // A file holding the bearer token callers must send. Resolved against the configuration file's directory;
    // read by the loader at start and on reload (not here), so errors about it point at token_file_at.
    std::optional<std::filesystem::path> token_file;
    mark token_file_at;
    // HTTPS on the admin port; with client_ca, callers need a certificate those CAs issued (always required:
    // there is no client_certificate: optional for the admin endpoint).
    std::optional<listener_tls_config> tls;
    mark where;  // the admin setting; nothing when it was left out and these defaults apply
};

// Reloading the policy (and the files the configuration names) when they change on disk, besides SIGHUP and
// the admin endpoint's reload.
struct reload_config {
    bool watch = true;  // watch the policy files (inotify) and reload on change
    // Changes are gathered until none has come for this long, then reloaded once: an editor's save or a
    // ConfigMap update is a burst of events, and a policy directory is often rewritten file by file.
    std::chrono::milliseconds debounce{500};  // 50ms to 1m
};

// A webhook told about access requests: a new request (once per key per notify_cooldown), a decision
// (approved, denied, revoked, extended), a grant about to expire (expiry_warning before).
struct webhook_config {
    std::string url;  // http:// or https://, with host and optional port and path
    enum class body_format : std::uint8_t { json, slack } format = body_format::json;
    // json: a file holding the HMAC-SHA256 key; each POST carries X-Egressd-Signature: sha256=<hex of
    // HMAC(key, "<X-Egressd-Timestamp>.<body>")>. Read at start and on reload, like token_file.
    std::optional<std::filesystem::path> secret_file;
    mark secret_file_at;
    std::vector<std::string> events;  // requested, decided, expiring; empty: all
    mark where;
};

// Users signed in by an authenticating reverse proxy (oauth2-proxy and the like): a request from one of the
// trusted sources carrying the user header is that user; approver_group in the groups header makes an approver.
struct trusted_header_config {
    std::string user_header = "X-Forwarded-User";
    std::string groups_header = "X-Forwarded-Groups";  // comma-separated
    std::string approver_group;                        // empty: nobody signed in this way approves
    std::vector<policy::cidr> sources;                 // never empty
    mark where;
};

// Access requests and approvals: a denied destination becomes a request an approver can grant for a while.
struct approvals_config {
    // Where requests, grants and history live: an SQLite file (resolved against the configuration file's
    // directory), or, when store_url is set, a PostgreSQL database that a fleet of replicas shares.
    std::filesystem::path store;
    // "postgresql://user@host:port/db?sslmode=..." (libpq's URI). Never a password: libpq takes it from
    // PGPASSWORD or a passfile. Empty: the SQLite file above.
    std::string store_url;
    std::string address = "127.0.0.1";  // the approvals web page and JSON API; IP literal, canonical text
    std::uint16_t port = 9091;            // 0: a free port, logged at start
    std::optional<listener_tls_config> tls;
    // The page's address as people reach it (behind a reverse proxy, say): links in 403s and notifications.
    // Default: http(s)://<listen address>:<port>.
    std::string public_url;
    bool public_url_is_default = false;  // then, with port 0, the bound port replaces the 0 at start
    // Credentials files (egressd passwd) of approvers and requesters. Resolved against the configuration
    // file's directory; read at start and on reload. A user in both files is an approver.
    std::optional<std::filesystem::path> approvers;
    mark approvers_at;
    std::optional<std::filesystem::path> requesters;
    mark requesters_at;
    std::optional<trusted_header_config> trusted_header;
    std::chrono::seconds default_grant{8 * 3600};
    std::chrono::seconds max_grant{7 * 24 * 3600};
    std::size_t max_pending = 10'000;          // pending requests in all; beyond it no new request is made
    unsigned requests_per_client_per_minute = 30;  // new requests per client
    std::chrono::seconds request_ttl{14 * 24 * 3600};  // a pending request not seen for this long expires
    std::chrono::seconds notify_cooldown{3600};        // between two "requested" notifications of one key
    std::chrono::seconds expiry_warning{15 * 60};      // "expiring" notifications this long before the end
    std::vector<webhook_config> notify;
    mark where;
};

// One alert sink: denials grouped by (client, host, port, reason), one alert per group per dedup window and
// a summary count when the window closes, posted to a webhook, a Slack incoming webhook or Alertmanager.
struct alert_sink_config {
    enum class sink_kind : std::uint8_t { webhook, slack, alertmanager } kind = sink_kind::webhook;
    std::string url;   // http:// or https://; for alertmanager the base URL (…/api/v2/alerts is added)
    std::string name;  // metric label; default "<kind>-<position in the list>"
    // webhook: the HMAC-SHA256 key, as for approvals' webhooks. Read at start and on reload.
    std::optional<std::filesystem::path> secret_file;
    mark secret_file_at;
    std::vector<std::string> reasons;   // reason codes (observe::reason names); empty: every reason
    std::vector<std::string> clients;   // client names; empty: every client (and no client)
    // deny, would_deny, revoke, would_revoke, error; default deny and revoke.
    std::vector<std::string> verdicts{"deny", "revoke"};
    std::chrono::seconds dedup{600};
    unsigned max_per_minute = 60;       // alerts and summaries posted per minute; beyond it counted as suppressed
    std::size_t queue = 1000;           // deliveries waiting; beyond it dropped and counted
    std::vector<std::pair<std::string, std::string>> severity;  // reason -> low|medium|high, over the defaults
    mark where;
};

// A parent proxy that allowed traffic leaves through (a corporate proxy): CONNECT for tunnels, absolute-form
// requests for plain HTTP, after egressd's own decision. The policy's groups may name their own.
struct upstream_proxy_config {
    std::string host;  // a DNS name or an IP literal (canonical text, without brackets)
    std::uint16_t port = 3128;
    mark where;
    friend bool operator==(const upstream_proxy_config& a, const upstream_proxy_config& b)
    {
        return a.host == b.host && a.port == b.port;
    }
};

struct server_config {
    std::string file;  // where it was loaded from
    std::vector<listener_config> listeners;
    std::filesystem::path policy_path;  // resolved against the config file's directory
    unsigned workers = 0;               // 0: one per core
    dns_config dns;
    timeouts_config timeouts;
    limits_config limits;
    logging_config logging;
    std::optional<proxy_auth_config> proxy_auth;
    std::optional<admin_config> admin = admin_config{};  // nullopt: "admin: off"
    reload_config reload;
    std::optional<approvals_config> approvals;  // nullopt: no access requests
    std::vector<alert_sink_config> alerts;
    std::optional<upstream_proxy_config> upstream_proxy;  // nullopt: connect to destinations directly
};

struct loaded_server_config {
    std::optional<server_config> config;  // nullopt when there is any error
    std::vector<diagnostic> errors;
};

// Strict, like the policy: unknown keys and bad values are errors with file:line:column, all reported.
loaded_server_config load_server_config(const std::filesystem::path& path);
loaded_server_config load_server_config_text(const std::string& name, const std::string& text,
                                             const std::filesystem::path& base_dir);

// "http://host:port" (the port defaults to 3128): the server's upstream_proxy or a policy group's. Errors go to r,
// naming what (the setting) they are about.
std::optional<upstream_proxy_config> read_upstream_proxy(const yaml_node& n, schema_reader& r, std::string_view what);

// "250ms", "10s", "5m", "24h", "14d": a whole number and a unit.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

}  // namespace egressd::config
