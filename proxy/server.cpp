#include "proxy/server.hpp"

#include "proxy/admin/admin_server.hpp"
#include "proxy/alerts/engine.hpp"
#include "proxy/approvals/notifier.hpp"
#include "proxy/approvals/service.hpp"
#include "proxy/approvals/web_server.hpp"
#include "proxy/json.hpp"
#include "proxy/observe/metrics.hpp"
#include "proxy/startup/file_watch.hpp"
#include "proxy/systemd_notify.hpp"
#include "proxy/worker.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include <algorithm>
#include <functional>
#include <random>
#include <stdexcept>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#ifndef EGRESSD_VERSION
#error "EGRESSD_VERSION must be defined by the build"
#endif

namespace egressd::proxy {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

tcp::acceptor open_acceptor(asio::io_context& io, const tcp::endpoint& endpoint, bool reuse_port)
{
    tcp::acceptor acceptor(io);
    acceptor.open(endpoint.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    if (reuse_port) {
        int one = 1;
        if (::setsockopt(acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
            throw std::runtime_error("cannot set SO_REUSEPORT");
        }
    }
    if (endpoint.address().is_v6()) {
        acceptor.set_option(asio::ip::v6_only(true));
    }
    boost::system::error_code ec;
    acceptor.bind(endpoint, ec);
    if (ec) {
        throw std::runtime_error("cannot bind " + endpoint.address().to_string() + ":" + std::to_string(endpoint.port()) +
                                 ": " + ec.message());
    }
    return acceptor;
}

// SO_REUSEPORT lets every worker own an acceptor on the same address: the kernel spreads connections over
// them, so no accept lock and no hand-off between threads. But any process of the same user may join such a
// group, and the kernel would then split clients between two proxies with different policies. So the address
// is first bound without SO_REUSEPORT: that fails while anyone holds it, and a second egressd stops with
// "Address already in use" instead of silently sharing the port.
void check_port_free(asio::io_context& io, const tcp::endpoint& endpoint)
{
    if (endpoint.port() != 0) {
        open_acceptor(io, endpoint, false).close();
    }
}

tcp::acceptor bind_worker_acceptor(asio::io_context& io, const tcp::endpoint& endpoint)
{
    auto acceptor = open_acceptor(io, endpoint, true);
    acceptor.listen(asio::socket_base::max_listen_connections);
    return acceptor;
}

std::string endpoint_text(const tcp::endpoint& e)
{
    return e.address().is_v6() ? "[" + e.address().to_string() + "]:" + std::to_string(e.port())
                               : e.address().to_string() + ":" + std::to_string(e.port());
}

std::string_view tls_mode_text(const config::listener_config& listener)
{
    return !listener.tls                                ? "off"
           : !listener.tls->client_ca                   ? "on"
           : listener.tls->require_client_certificate ? "client_certificate_required"
                                                        : "client_certificate_optional";
}

// What made a reload happen, for its events and the status page.
enum class reload_trigger : std::uint8_t { signal, admin, file_change };
std::string_view to_string(reload_trigger t)
{
    switch (t) {
    case reload_trigger::signal:
        return "SIGHUP";
    case reload_trigger::admin:
        return "admin";
    case reload_trigger::file_change:
        return "file_change";
    }
    return "SIGHUP";
}

// Every file a reload reads, for the file watch: the configuration, the policy and the list files it names (as of
// the last load that applied), the credentials, TLS files.
std::vector<std::filesystem::path> watched_paths(const std::filesystem::path& config_path,
                                                 const config::server_config& config,
                                                 const std::vector<std::string>& policy_files)
{
    std::vector<std::filesystem::path> paths{config_path, config.policy_path};
    paths.insert(paths.end(), policy_files.begin(), policy_files.end());
    if (config.proxy_auth) {
        paths.push_back(config.proxy_auth->credentials);
    }
    auto add_tls = [&](const config::listener_tls_config& tls) {
        paths.push_back(tls.certificate);
        paths.push_back(tls.key);
        if (tls.client_ca) {
            paths.push_back(*tls.client_ca);
        }
        if (tls.crl) {
            paths.push_back(*tls.crl);
        }
    };
    for (const auto& l : config.listeners) {
        if (l.tls) {
            add_tls(*l.tls);
        }
    }
    // Secrets a reload re-reads: a rotated Kubernetes Secret or a replaced file applies without a signal.
    if (config.admin && config.admin->token_file) {
        paths.push_back(*config.admin->token_file);
    }
    if (config.admin && config.admin->tls) {
        add_tls(*config.admin->tls);
    }
    if (config.approvals && config.approvals->tls) {
        add_tls(*config.approvals->tls);
    }
    if (config.approvals) {
        for (const auto& file : {config.approvals->approvers, config.approvals->requesters}) {
            if (file) {
                paths.push_back(*file);
            }
        }
        for (const auto& hook : config.approvals->notify) {
            if (hook.secret_file) {
                paths.push_back(*hook.secret_file);
            }
        }
    }
    for (const auto& sink : config.alerts) {
        if (sink.secret_file) {
            paths.push_back(*sink.secret_file);
        }
    }
    return paths;
}

// The process: workers, listeners, the admin listener, reloads, signals and shutdown, all driven from the
// control thread (the thread that calls run()).
class server_process {
public:
    server_process(std::filesystem::path config_path, startup::loaded_state initial, event_log& log)
        : config_path_(std::move(config_path)),
          initial_(std::move(initial)),
          config_(*initial_.config),
          log_(log),
          worker_count_(config_.workers != 0 ? config_.workers : std::max(1u, std::thread::hardware_concurrency())),
          slow_work_(std::max(1u, worker_count_ / 2)),
          rt_{config_,
              log,
              connection_limiter(config_.limits.max_connections, config_.limits.max_connections_per_client),
              static_cast<std::uint32_t>(std::random_device{}()),
              &slow_work_,
              &login_failures_},
          signals_(control_, SIGINT, SIGTERM, SIGHUP),
          log_tick_(control_),
          drain_timer_(control_)
    {
        signals_.add(SIGUSR1);  // logrotate: reopen the log files
    }

    int run();

private:
    void bind_listeners();
    void start_admin();
    void start_alerts();
    void start_approvals();
    void stop_approvals();
    approvals::directory approvals_users(const startup::loaded_state& s) const;
    void start_watch(const config::server_config& config);
    void update_watch(const config::server_config& next);
    void watch_attempt(const startup::load_result& failed);
    void report_unwatched();
    void wait_signal();
    void tick_log();
    void request_reload(reload_trigger trigger, std::function<void(bool, std::string)> answer = {});
    void start_reload();
    void finish_reload(startup::load_result result);
    std::shared_ptr<const live_state> make_live(const startup::loaded_state& s) const;
    std::string status_json() const;
    std::size_t live_sessions() const;
    void shutdown(std::string_view signal);
    void wait_for_sessions(std::chrono::steady_clock::time_point deadline);

    std::filesystem::path config_path_;
    startup::loaded_state initial_;       // its configuration names the listeners for the process's life
    const config::server_config& config_;
    event_log& log_;
    unsigned worker_count_;
    asio::thread_pool slow_work_;  // password checks (PBKDF2), off the workers' event loops
    auth_failures login_failures_;
    runtime rt_;
    asio::io_context control_;
    asio::signal_set signals_;
    asio::steady_timer log_tick_;
    asio::steady_timer drain_timer_;
    // The alert sinks (when configured): declared before the workers, whose event batches feed it.
    std::unique_ptr<alerts::engine> alerts_;
    std::unique_ptr<observe::metrics_registry> metrics_;
    std::vector<std::unique_ptr<worker>> workers_;
    std::vector<std::unique_ptr<tls_context_slot>> tls_slots_;
    std::vector<std::string> listener_names_;
    std::unique_ptr<admin::admin_server> admin_;
    std::string admin_name_;
    // The approvals workflow (when configured): its service thread serves the web page and owns the store.
    std::unique_ptr<approvals::notifier> notifier_;
    std::unique_ptr<approvals::service> approvals_;
    std::unique_ptr<approvals::web_server> approvals_web_;
    // The page's password checks: a pool of its own, so a flood of sign-ins never delays proxy authentication.
    asio::thread_pool approvals_pool_{1};
    std::string approvals_name_;
    mutable std::mutex policy_mutex_;
    std::shared_ptr<const policy::policy> policy_for_approvals_;  // read on the service thread
    std::unique_ptr<startup::file_watch> watch_;
    std::chrono::milliseconds watch_debounce_{0};

    // The state in force, and what the last reload did.
    std::shared_ptr<const live_state> live_;
    std::string policy_digest_;
    std::vector<std::string> policy_files_;
    std::chrono::system_clock::time_point policy_loaded_at_;
    std::chrono::system_clock::time_point started_at_ = std::chrono::system_clock::now();
    struct reload_outcome {
        bool ok = true;
        reload_trigger trigger = reload_trigger::signal;
        std::chrono::system_clock::time_point at;
        std::chrono::milliseconds took{0};
        std::vector<std::string> errors;
        std::vector<std::string> restart_needed;
    };
    std::optional<reload_outcome> last_reload_;

    // One reload at a time, on its own thread; triggers that arrive meanwhile are folded into one more.
    asio::thread_pool reload_thread_{1};
    bool reloading_ = false;
    std::optional<reload_trigger> pending_;
    std::vector<std::function<void(bool, std::string)>> answers_;      // admin callers of the running reload
    std::vector<std::function<void(bool, std::string)>> next_answers_;  // of the pending one
    reload_trigger running_trigger_ = reload_trigger::signal;
    std::chrono::steady_clock::time_point reload_started_;

    // Started and not stopping; ready() also waits for a shared approvals store that was down at start.
    bool ready_ = false;
    bool ready() const { return ready_ && (!approvals_ || approvals_->loaded()); }
    std::string stop_signal_;
    std::uint64_t reported_drops_ = 0;
};

std::shared_ptr<const live_state> server_process::make_live(const startup::loaded_state& s) const
{
    auto next = std::make_shared<live_state>();
    next->config = s.config;
    next->policy = s.policy;
    next->policy_version = live_ ? live_->policy_version + 1 : 1;
    next->credentials = s.credentials;
    next->listener_tls = s.listener_tls;
    return next;
}

void server_process::bind_listeners()
{
    tls_slots_.resize(config_.listeners.size());
    listener_names_.resize(config_.listeners.size());
    std::vector<std::vector<tcp::acceptor>> per_listener;
    for (std::size_t l = 0; l < config_.listeners.size(); ++l) {
        const auto& listener = config_.listeners[l];
        if (listener.tls) {
            if (l >= initial_.listener_tls.size() || !initial_.listener_tls[l]) {
                throw std::runtime_error("no TLS context for listener " + listener.address);
            }
            tls_slots_[l] = std::make_unique<tls_context_slot>(initial_.listener_tls[l]);
        }
        tcp::endpoint endpoint(asio::ip::make_address(listener.address), listener.port);
        check_port_free(control_, endpoint);
        // The first bind settles the port (port 0 asks the kernel for one); the other workers join it.
        per_listener.emplace_back();
        per_listener.back().push_back(bind_worker_acceptor(control_, endpoint));
        endpoint = per_listener.back().front().local_endpoint();
        for (unsigned i = 1; i < worker_count_; ++i) {
            per_listener.back().push_back(bind_worker_acceptor(control_, endpoint));
        }
        listener_names_[l] = endpoint_text(endpoint);
    }
    metrics_ = std::make_unique<observe::metrics_registry>(listener_names_, EGRESSD_VERSION);
    metrics_->set_dropped_events_source([this] { return log_.dropped(); });
    for (unsigned i = 0; i < worker_count_; ++i) {
        workers_.push_back(std::make_unique<worker>(i, rt_, live_, metrics_->add_worker()));
    }
    for (std::size_t l = 0; l < per_listener.size(); ++l) {
        for (unsigned i = 0; i < worker_count_; ++i) {
            // Bound before the workers existed (their metrics need the bound names); each acceptor, and with it
            // every socket it accepts, belongs to its worker's event loop.
            auto& bound = per_listener[l][i];
            auto protocol = bound.local_endpoint().protocol();
            tcp::acceptor own(workers_[i]->io(), protocol, bound.release());
            workers_[i]->add_acceptor(std::move(own), l, tls_slots_[l].get());
        }
        const auto& listener = config_.listeners[l];
        log_.notice("egressd.listening",
                    {{"address", listener_names_[l]},
                     {"proxy_protocol", listener.proxy_protocol_trusted.empty() ? "off" : "on"},
                     {"tls", tls_mode_text(listener)}});
    }
}

void server_process::start_admin()
{
    if (!config_.admin) {
        return;
    }
    admin::settings s;
    s.endpoint = tcp::endpoint(asio::ip::make_address(config_.admin->address), config_.admin->port);
    s.bearer_token = initial_.admin_token;
    s.tls = initial_.admin_tls;
    admin::handlers h;
    h.ready = [this] { return ready(); };
    h.status_json = [this] { return status_json(); };
    h.metrics_text = [this] { return metrics_->render(); };
    h.reload = [this](std::function<void(bool, std::string)> done) {
        request_reload(reload_trigger::admin, std::move(done));
    };
    h.internal_error = [this](std::string_view what) {
        log_.notice("egressd.admin_error", {{"error", what}}, true);
    };
    admin_ = std::make_unique<admin::admin_server>(control_, std::move(s), std::move(h));
    admin_name_ = endpoint_text(admin_->local_endpoint());
    admin_->start();
    log_.notice("egressd.admin_listening", {{"address", admin_name_},
                                            {"tls", initial_.admin_tls != nullptr},
                                            {"token", initial_.admin_token.has_value()}});
}

// Before the workers are made: each one feeds the engine from its event batch. The sinks are fixed for the
// process's life; a reload hands over only their re-read secrets.
void server_process::start_alerts()
{
    if (config_.alerts.empty()) {
        return;
    }
    alerts_ = std::make_unique<alerts::engine>(config_.alerts, initial_.alert_secrets, config_.logging.instance,
                                               alerts::engine::options{});
    rt_.alerts = alerts_.get();
    std::vector<std::string> sinks;
    for (const auto& sink : config_.alerts) {
        sinks.push_back(sink.name);
    }
    log_.notice("egressd.alerts", {{"sinks", sinks}});
}

approvals::directory server_process::approvals_users(const startup::loaded_state& s) const
{
    approvals::directory d;
    d.approvers = s.approvers;
    d.requesters = s.requesters;
    if (s.config->approvals) {
        d.trusted_header = s.config->approvals->trusted_header;
    }
    return d;
}

// Before the proxy is ready: the store opened (and migrated), active grants loaded and handed to the workers,
// the page listening. Any failure here ends the start with the reason, except a shared (PostgreSQL) store that
// cannot be reached: the service keeps trying, and the proxy stays not ready until the grants are loaded.
void server_process::start_approvals()
{
    if (!config_.approvals) {
        return;
    }
    auto settings = *config_.approvals;
    policy_for_approvals_ = live_->policy;
    approvals::web_settings web;
    web.endpoint = tcp::endpoint(asio::ip::make_address(settings.address), settings.port);
    web.tls = initial_.approvals_tls;
    web.internal_error = [this](std::string_view what) {
        log_.notice("egressd.approvals_error", {{"error", what}}, true);
    };
    const std::string store_name = settings.store_url.empty() ? settings.store.string() : settings.store_url;
    std::unique_ptr<approvals::store> store;
    try {
        store = approvals::open_store(settings);
    } catch (const approvals::store_error& e) {
        throw std::runtime_error("cannot open the approvals store " + store_name + ": " + e.what());
    }
    approvals_ = std::make_unique<approvals::service>(
        settings, std::move(store), log_,
        [this] {
            std::lock_guard lock(policy_mutex_);
            return policy_for_approvals_;
        },
        [this](std::shared_ptr<const policy::grant_set> grants) {
            for (auto& w : workers_) {
                w->apply_grants(grants);
            }
        });
    if (!settings.notify.empty()) {
        std::vector<approvals::notifier::target> targets;
        for (std::size_t i = 0; i < settings.notify.size(); ++i) {
            targets.push_back({settings.notify[i], i < initial_.webhook_secrets.size() ? initial_.webhook_secrets[i] : ""});
        }
        notifier_ = std::make_unique<approvals::notifier>(std::move(targets), approvals::notifier::options{});
        approvals_->set_notifier(notifier_.get());
    }
    try {
        approvals_->load();
    } catch (const approvals::store_error& e) {
        if (settings.store_url.empty()) {
            throw std::runtime_error("cannot read the approvals store " + store_name + ": " + e.what());
        }
        log_.notice("egressd.approvals_waiting", {{"store", store_name}, {"error", e.what()}}, true);
        approvals_->set_on_loaded([this] {
            asio::post(control_, [this] {
                if (ready_) {
                    metrics_->set_ready(true);
                }
            });
        });
    }
    approvals_web_ = std::make_unique<approvals::web_server>(*approvals_, std::move(web), approvals_users(initial_),
                                                             approvals_pool_);
    approvals_name_ = endpoint_text(approvals_web_->local_endpoint());
    if (settings.public_url_is_default) {
        // Port 0 took a free port: links must name the one bound.
        settings.public_url = std::string(initial_.approvals_tls ? "https://" : "http://") + approvals_name_;
        approvals_->apply_settings(settings);
    }
    approvals_web_->start();
    rt_.approvals = approvals_.get();
    metrics_->set_approvals_source([this] {
        auto c = approvals_->counts();
        observe::approvals_sample a;
        a.pending = c.pending;
        a.active_grants = c.active_grants;
        a.requests_created = c.requests_created;
        a.requests_limited = c.requests_limited;
        a.store_failures = c.store_failures;
        a.approved = c.approved;
        a.voted = c.voted;
        a.denied = c.denied;
        a.revoked = c.revoked;
        a.extended = c.extended;
        a.expired = c.expired;
        if (notifier_) {
            auto n = notifier_->counts();
            a.notifications_delivered = n.delivered;
            a.notifications_failed = n.failed;
            a.notifications_retried = n.retried;
            a.notifications_dropped = n.dropped;
        }
        return a;
    });
    auto counts = approvals_->counts();
    log_.notice("egressd.approvals_listening", {{"address", approvals_name_},
                                                {"public_url", settings.public_url},
                                                {"tls", initial_.approvals_tls != nullptr},
                                                {"pending", counts.pending},
                                                {"active_grants", counts.active_grants}});
}

void server_process::stop_approvals()
{
    if (!approvals_) {
        return;
    }
    // The web server lives on the service's thread: stopped there, then the thread ends.
    asio::post(approvals_->io(), [this] { approvals_web_->stop(); });
    approvals_->stop();
    approvals_web_.reset();
    notifier_.reset();
}

void server_process::start_watch(const config::server_config& config)
{
    if (!config.reload.watch) {
        return;
    }
    watch_debounce_ = config.reload.debounce;
    watch_ = std::make_unique<startup::file_watch>(control_, watched_paths(config_path_, config, policy_files_),
                                                   config.reload.debounce,
                                                   [this] { request_reload(reload_trigger::file_change); });
    watch_->start();
    report_unwatched();
}

// A change in a directory the watch could not follow goes unnoticed until SIGHUP or POST /reload: said at start,
// and after a failed reload whose files are there.
void server_process::report_unwatched()
{
    std::vector<std::string> unwatched;
    for (const auto& p : watch_->unwatched()) {
        unwatched.push_back(p.string());
    }
    if (!unwatched.empty()) {
        log_.notice("egressd.watch_incomplete", {{"unwatched", unwatched}}, true);
    }
}

// reload.watch and reload.debounce apply live: the watch starts, stops, or is made anew with the new debounce.
void server_process::update_watch(const config::server_config& next)
{
    if (!next.reload.watch) {
        watch_.reset();
        return;
    }
    if (watch_ && watch_debounce_ == next.reload.debounce) {
        watch_->set_paths(watched_paths(config_path_, next, policy_files_));
        return;
    }
    watch_.reset();
    start_watch(next);
}

// After a failed reload the watch also follows the files the failed edit named, with the running ones: a list
// file or a policy file that did not exist yet then reloads as soon as it is written. The next reload that applies
// narrows the watch to its own files again.
void server_process::watch_attempt(const startup::load_result& failed)
{
    if (!watch_ || !failed.attempted_config) {
        return;
    }
    auto paths = watched_paths(config_path_, *live_->config, policy_files_);
    auto attempted = watched_paths(config_path_, *failed.attempted_config, failed.attempted_policy_files);
    for (auto& p : attempted) {
        if (std::find(paths.begin(), paths.end(), p) == paths.end()) {
            paths.push_back(std::move(p));
        }
    }
    watch_->set_paths(std::move(paths));
    report_unwatched();
}

void server_process::wait_signal()
{
    signals_.async_wait([this](boost::system::error_code ec, int number) {
        if (ec) {
            return;
        }
        if (number == SIGHUP) {
            request_reload(reload_trigger::signal);
            wait_signal();
            return;
        }
        if (number == SIGUSR1) {
            // logrotate renamed the files (its postrotate sends SIGUSR1): start new ones at the configured paths.
            log_.reopen_files();
            wait_signal();
            return;
        }
        shutdown(number == SIGTERM ? "SIGTERM" : "SIGINT");
    });
}

// Sinks buffer; they are flushed here, so events reach their files within 200 ms. Log-queue overruns surface
// as a warning event and are never silent.
void server_process::tick_log()
{
    log_tick_.expires_after(std::chrono::milliseconds(200));
    log_tick_.async_wait([this](boost::system::error_code ec) {
        if (ec) {
            return;
        }
        auto dropped = log_.dropped();
        if (dropped > reported_drops_) {
            log_.notice("egressd.log_dropped", {{"dropped_total", dropped}}, true);
            reported_drops_ = dropped;
        }
        log_.flush();
        tick_log();
    });
}

void server_process::request_reload(reload_trigger trigger, std::function<void(bool, std::string)> answer)
{
    if (!stop_signal_.empty()) {
        if (answer) {
            answer(false, R"({"result":"failed","errors":["egressd is shutting down"]})");
        }
        return;
    }
    if (reloading_) {
        // The running reload may have read the files before this change: one more follows it.
        pending_ = trigger;
        if (answer) {
            next_answers_.push_back(std::move(answer));
        }
        return;
    }
    running_trigger_ = trigger;
    if (answer) {
        answers_.push_back(std::move(answer));
    }
    start_reload();
}

void server_process::start_reload()
{
    reloading_ = true;
    systemd::notify_reloading();
    reload_started_ = std::chrono::steady_clock::now();
    asio::post(reload_thread_, [this] {
        startup::load_result result;
        try {
            result = startup::load(config_path_);
        } catch (const std::exception& e) {
            // A file that vanished mid-read, memory: the reload fails, and what runs stays.
            result = {};
            result.errors.push_back(config_path_.string() + ": error: reload failed: " + e.what());
        }
        asio::post(control_, [this, result = std::move(result)]() mutable { finish_reload(std::move(result)); });
    });
}

void server_process::finish_reload(startup::load_result result)
{
    reload_outcome outcome;
    outcome.trigger = running_trigger_;
    outcome.at = std::chrono::system_clock::now();
    outcome.took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                         reload_started_);
    std::string answer;
    if (!result.state) {
        outcome.ok = false;
        outcome.errors = std::move(result.errors);
        watch_attempt(result);
        metrics_->reload_result(false, outcome.at);
        log_.notice("egressd.reload_failed",
                    {{"trigger", to_string(outcome.trigger)},
                     {"policy_version", live_->policy_version},
                     {"errors", outcome.errors},
                     {"kept", "the running configuration, policy, credentials and TLS files"}},
                    true);
        answer = "{\"result\":\"failed\",\"policy_version\":" + std::to_string(live_->policy_version) +
                 ",\"errors\":" + json_value(outcome.errors).text() + "}";
    } else {
        auto& state = *result.state;
        outcome.restart_needed = startup::restart_needed(config_, *state.config);
        auto previous = live_;
        live_ = make_live(state);
        for (std::size_t l = 0; l < tls_slots_.size(); ++l) {
            if (tls_slots_[l] && l < state.listener_tls.size() && state.listener_tls[l]) {
                tls_slots_[l]->replace(state.listener_tls[l]);
            }
        }
        for (auto& w : workers_) {
            w->apply(live_);
        }
        if (approvals_) {
            {
                std::lock_guard lock(policy_mutex_);
                policy_for_approvals_ = live_->policy;
            }
            if (state.config->approvals) {
                auto next = *state.config->approvals;
                if (next.public_url_is_default) {
                    next.public_url = approvals_->public_url();
                }
                approvals_->apply_settings(next);
                asio::post(approvals_->io(), [this, users = approvals_users(state)]() mutable {
                    approvals_web_->set_directory(std::move(users));
                });
            }
            if (notifier_) {
                notifier_->set_secrets(state.webhook_secrets);
            }
        }
        // Changed sinks wait for a restart; the secrets of the running ones apply now.
        if (alerts_ && std::find(outcome.restart_needed.begin(), outcome.restart_needed.end(), "alerts") ==
                           outcome.restart_needed.end()) {
            alerts_->set_secrets(state.alert_secrets);
        }
        rt_.limiter.set_limits(state.config->limits.max_connections, state.config->limits.max_connections_per_client);
        policy_digest_ = state.policy_digest;
        policy_files_ = state.policy_files;
        policy_loaded_at_ = outcome.at;
        auto stats = live_->policy->stats();
        metrics_->reload_result(true, outcome.at);
        metrics_->policy_loaded(live_->policy_version, policy_digest_, stats.rules, stats.clients);
        update_watch(*state.config);
        if (admin_ && config_.admin && state.config->admin && state.config->admin->token_file == config_.admin->token_file) {
            admin_->set_bearer_token(state.admin_token);
        }
        // Rotated certificates of the admin and approvals listeners, for the connections accepted from now on.
        // TLS turned on or off there waits for a restart (restart_needed says so).
        if (admin_ && config_.admin && config_.admin->tls && state.admin_tls) {
            admin_->set_tls(state.admin_tls);
        }
        if (approvals_web_ && config_.approvals && config_.approvals->tls && state.approvals_tls) {
            asio::post(approvals_->io(), [this, tls = state.approvals_tls] { approvals_web_->set_tls(tls); });
        }
        log_.notice("egressd.reload", {{"trigger", to_string(outcome.trigger)},
                                       {"policy_version", live_->policy_version},
                                       {"previous_version", previous->policy_version},
                                       {"policy_digest", policy_digest_},
                                       {"rules", stats.rules},
                                       {"clients", stats.clients},
                                       {"warnings", result.warnings.size()},
                                       {"took_ms", outcome.took.count()},
                                       {"restart_needed", outcome.restart_needed}});
        if (!outcome.restart_needed.empty()) {
            log_.notice("egressd.restart_needed",
                        {{"settings", outcome.restart_needed},
                         {"detail", "these settings changed in the file but apply only when egressd starts"}},
                        true);
        }
        answer = "{\"result\":\"ok\",\"policy_version\":" + std::to_string(live_->policy_version) +
                 ",\"policy_digest\":" + json_string(policy_digest_) +
                 ",\"restart_needed\":" + json_value(outcome.restart_needed).text() +
                 ",\"warnings\":" + json_value(result.warnings).text() + "}";
    }
    last_reload_ = std::move(outcome);
    for (auto& a : answers_) {
        a(last_reload_->ok, answer);
    }
    answers_.clear();
    reloading_ = false;
    if (pending_) {
        running_trigger_ = *pending_;
        pending_.reset();
        answers_ = std::move(next_answers_);
        next_answers_.clear();
        start_reload();
    } else {
        // Failed or not, the reload is over and the process serves on: systemctl reload returns.
        systemd::notify_ready();
    }
}

std::size_t server_process::live_sessions() const
{
    std::size_t n = 0;
    for (const auto& w : workers_) {
        n += w->live_sessions();
    }
    return n;
}

std::string server_process::status_json() const
{
    auto now = std::chrono::system_clock::now();
    auto stats = live_->policy->stats();
    std::size_t tunnels = 0;
    for (const auto& w : workers_) {
        tunnels += w->live_tunnels();
    }
    std::string j = "{\"version\":" + json_string(EGRESSD_VERSION) + ",\"pid\":" + std::to_string(::getpid()) +
                    ",\"started_at\":" + json_string(format_utc_millis(started_at_)) + ",\"uptime_seconds\":" +
                    std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - started_at_).count()) +
                    ",\"ready\":" + (ready() ? "true" : "false") +
                    ",\"draining\":" + (stop_signal_.empty() ? "false" : "true") +
                    ",\"workers\":" + std::to_string(worker_count_) +
                    ",\"listeners\":" + json_value(listener_names_).text() + ",\"policy\":{\"version\":" +
                    std::to_string(live_->policy_version) + ",\"digest\":" + json_string(policy_digest_) +
                    ",\"loaded_at\":" + json_string(format_utc_millis(policy_loaded_at_)) +
                    ",\"files\":" + json_value(policy_files_).text() + ",\"mode\":" +
                    json_string(policy::to_string(live_->policy->default_mode())) + ",\"on_revoke\":" +
                    json_string(policy::to_string(live_->policy->on_revoke())) +
                    ",\"clients\":" + std::to_string(stats.clients) + ",\"groups\":" + std::to_string(stats.groups) +
                    ",\"rules\":" + std::to_string(stats.rules) + ",\"deny_rules\":" + std::to_string(stats.deny_rules) +
                    "},\"connections\":" + std::to_string(live_sessions()) + ",\"tunnels\":" + std::to_string(tunnels) +
                    ",\"approvals\":";
    if (approvals_) {
        auto c = approvals_->counts();
        j += "{\"listen\":" + json_string(approvals_name_) + ",\"public_url\":" +
 json_string(approvals_->public_url()) + ",\"pending\":" + std::to_string(c.pending) +
             ",\"active_grants\":" + std::to_string(c.active_grants) + "}";
    } else {
        j += "null";
    }
    j += ",\"last_reload\":";
    if (!last_reload_) {
        j += "null";
    } else {
        j += "{\"result\":" + json_string(last_reload_->ok ? "ok" : "failed") +
             ",\"trigger\":" + json_string(to_string(last_reload_->trigger)) +
             ",\"at\":" + json_string(format_utc_millis(last_reload_->at)) + ",\"took_ms\":" +
             std::to_string(last_reload_->took.count()) + ",\"errors\":" + json_value(last_reload_->errors).text() +
             ",\"restart_needed\":" + json_value(last_reload_->restart_needed).text() + "}";
    }
    return j + "}";
}

void server_process::shutdown(std::string_view signal)
{
    stop_signal_ = signal;
    systemd::notify_stopping();
    // Readiness turns first, so that a load balancer stops sending before the listeners close.
    ready_ = false;
    metrics_->set_ready(false);
    const auto& timeouts = live_->config->timeouts;
    log_.notice("egressd.stopping", {{"signal", stop_signal_},
                                     {"drain_delay_ms", timeouts.drain_delay.count()},
                                     {"grace_ms", timeouts.shutdown_grace.count()}});
    if (watch_) {
        watch_->stop();
    }
    drain_timer_.expires_after(timeouts.drain_delay);
    drain_timer_.async_wait([this](boost::system::error_code) {
        for (auto& w : workers_) {
            w->begin_shutdown();
        }
        wait_for_sessions(std::chrono::steady_clock::now() + live_->config->timeouts.shutdown_grace);
    });
}

// Polled on a timer, so that the admin listener keeps answering (/readyz 503) while connections finish.
void server_process::wait_for_sessions(std::chrono::steady_clock::time_point deadline)
{
    if (live_sessions() == 0 || std::chrono::steady_clock::now() >= deadline) {
        control_.stop();
        return;
    }
    drain_timer_.expires_after(std::chrono::milliseconds(20));
    drain_timer_.async_wait([this, deadline](boost::system::error_code) { wait_for_sessions(deadline); });
}

int server_process::run()
{
    live_ = make_live(initial_);
    policy_digest_ = initial_.policy_digest;
    policy_files_ = initial_.policy_files;
    policy_loaded_at_ = std::chrono::system_clock::now();
    // The admin port first: a start that fails on it must fail before the listeners are announced.
    start_admin();
    start_alerts();
    bind_listeners();
    if (alerts_) {
        metrics_->set_alerts_source([this] {
            std::vector<observe::alert_sink_sample> samples;
            for (const auto& c : alerts_->counts()) {
                samples.push_back({c.name, c.alerts, c.summaries, c.delivered, c.failed, c.retried, c.dropped,
                                   c.suppressed, c.rate_limited, c.queued});
            }
            return samples;
        });
    }
    start_approvals();
    metrics_->reload_result(true, policy_loaded_at_);
    auto stats = live_->policy->stats();
    metrics_->policy_loaded(live_->policy_version, policy_digest_, stats.rules, stats.clients);
    log_.notice("egressd.start", {{"version", EGRESSD_VERSION},
                                  {"workers", worker_count_},
                                  {"policy", config_.policy_path.string()},
                                  {"policy_version", live_->policy_version},
                                  {"policy_digest", policy_digest_},
                                  {"admin", admin_name_.empty() ? json_value::null() : json_value(admin_name_)},
                                  {"pid", ::getpid()}});
    for (auto& w : workers_) {
        w->start();  // with the grants start_approvals handed over: they are queued before the first accept
    }
    if (approvals_) {
        approvals_->run();
    }
    start_watch(config_);
    wait_signal();
    tick_log();
    ready_ = true;
    metrics_->set_ready(ready());
    // Whoever waits for the start line (a supervisor, a test, a script) gets it now, not at the next tick,
    // and only once everything it might touch next (the file watch, the signals) is in place.
    log_.flush();
    systemd::notify_ready();
    auto keep_running = asio::make_work_guard(control_);
    control_.run();

    log_tick_.cancel();
    std::size_t cut = live_sessions();
    for (auto& w : workers_) {
        w->force_close();
    }
    // Closed sessions still write their close events; give them a moment before the loops stop.
    for (int i = 0; i < 100 && live_sessions() > 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    for (auto& w : workers_) {
        w->stop();
    }
    for (auto& w : workers_) {
        w->join();
    }
    // The workers handed over their last batches when they stopped; what is still queued is dropped.
    rt_.alerts = nullptr;
    alerts_.reset();
    if (admin_) {
        admin_->stop();
    }
    stop_approvals();
    approvals_pool_.join();
    reload_thread_.join();
    slow_work_.join();
    log_.notice("egressd.stop", {{"cut_connections", cut}});
    log_.flush();
    return 0;
}

}  // namespace

int serve(const std::filesystem::path& config_path, startup::loaded_state initial, event_log& log)
{
    server_process process(config_path, std::move(initial), log);
    return process.run();
}

}  // namespace egressd::proxy
