#include "proxy/server.hpp"

#include "proxy/worker.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include <functional>
#include <random>
#include <unistd.h>
#include <stdexcept>
#include <sys/socket.h>
#include <thread>

namespace egressd::proxy {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

// SO_REUSEPORT lets every worker own an acceptor on the same address: the kernel spreads connections over
// them, so no accept lock and no hand-off between threads.
tcp::acceptor bind_listener(asio::io_context& io, const tcp::endpoint& endpoint)
{
    tcp::acceptor acceptor(io);
    acceptor.open(endpoint.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    int one = 1;
    if (::setsockopt(acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        throw std::runtime_error("cannot set SO_REUSEPORT");
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
    acceptor.listen(asio::socket_base::max_listen_connections);
    return acceptor;
}

std::string endpoint_text(const tcp::endpoint& e)
{
    return e.address().is_v6() ? "[" + e.address().to_string() + "]:" + std::to_string(e.port())
                               : e.address().to_string() + ":" + std::to_string(e.port());
}

}  // namespace

certs::tls_server_context load_listener_tls(const config::listener_tls_config& tls)
{
    return certs::make_tls_server_context({tls.certificate, tls.key, tls.client_ca, tls.crl,
                                           tls.require_client_certificate});
}

int serve(const config::server_config& config, std::shared_ptr<const policy::policy> snapshot, event_log& log,
          std::shared_ptr<const certs::credential_store> credentials,
          std::vector<std::shared_ptr<asio::ssl::context>> tls_contexts)
{
    unsigned worker_count = config.workers != 0 ? config.workers : std::max(1u, std::thread::hardware_concurrency());
    // Password checks (PBKDF2) run here, off the workers' event loops.
    asio::thread_pool slow_work(std::max(1u, worker_count / 2));
    auth_failures login_failures;
    runtime rt{config,
               log,
               connection_limiter(config.limits.max_connections, config.limits.max_connections_per_client),
               static_cast<std::uint32_t>(std::random_device{}()),
               std::move(credentials),
               &slow_work,
               &login_failures};
    std::vector<std::unique_ptr<worker>> workers;
    for (unsigned i = 0; i < worker_count; ++i) {
        workers.push_back(std::make_unique<worker>(i, rt, snapshot));
    }
    std::vector<std::unique_ptr<tls_context_slot>> tls_slots(config.listeners.size());
    std::vector<std::string> listener_names(config.listeners.size());
    for (std::size_t l = 0; l < config.listeners.size(); ++l) {
        const auto& listener = config.listeners[l];
        if (listener.tls) {
            if (l >= tls_contexts.size() || !tls_contexts[l]) {
                throw std::runtime_error("no TLS context for listener " + listener.address);
            }
            tls_slots[l] = std::make_unique<tls_context_slot>(tls_contexts[l]);
        }
        tcp::endpoint endpoint(asio::ip::make_address(listener.address), listener.port);
        // The first bind settles the port (port 0 asks the kernel for one); the others join it.
        auto first = bind_listener(workers[0]->io(), endpoint);
        endpoint = first.local_endpoint();
        workers[0]->add_acceptor(std::move(first), listener, tls_slots[l].get());
        for (unsigned i = 1; i < worker_count; ++i) {
            workers[i]->add_acceptor(bind_listener(workers[i]->io(), endpoint), listener, tls_slots[l].get());
        }
        listener_names[l] = endpoint_text(endpoint);
        log.notice("egressd.listening",
                   {{"address", listener_names[l]},
                    {"proxy_protocol", listener.proxy_protocol_trusted.empty() ? "off" : "on"},
                    {"tls", !listener.tls                           ? "off"
                            : !listener.tls->client_ca              ? "on"
                            : listener.tls->require_client_certificate ? "client_certificate_required"
                                                                       : "client_certificate_optional"}});
    }
    log.notice("egressd.start", {{"workers", std::to_string(worker_count)},
                                 {"policy", config.policy_path.string()},
                                 {"pid", std::to_string(::getpid())}});
    // Before the workers start, so that a signal arriving during start-up is not lost.
    asio::io_context control;
    asio::signal_set signals(control, SIGINT, SIGTERM, SIGHUP);
    for (auto& w : workers) {
        w->start();
    }
    std::string stop_signal;
    auto reload = [&] {
        for (std::size_t l = 0; l < config.listeners.size(); ++l) {
            if (!tls_slots[l]) {
                continue;
            }
            auto loaded = load_listener_tls(*config.listeners[l].tls);
            if (loaded.context) {
                tls_slots[l]->replace(std::move(loaded.context));
                log.notice("egressd.reload", {{"listener", listener_names[l]}, {"tls", "reloaded"}});
            } else {
                std::string errors;
                for (const auto& e : loaded.errors) {
                    errors += (errors.empty() ? "" : "; ") + e.message;
                }
                log.notice("egressd.reload_failed",
                           {{"listener", listener_names[l]}, {"tls", "kept the running files"}, {"errors", errors}},
                           true);
            }
        }
    };
    std::function<void()> wait_signal = [&] {
        signals.async_wait([&](boost::system::error_code ec, int number) {
            if (ec) {
                return;
            }
            if (number == SIGHUP) {
                reload();
                wait_signal();
                return;
            }
            stop_signal = number == SIGTERM ? "SIGTERM" : "SIGINT";
        });
    };
    wait_signal();
    // Sinks buffer; they are flushed here, so events reach their files within 200 ms. Log-queue overruns
    // surface as a warning event and are never silent.
    std::uint64_t reported_drops = 0;
    asio::steady_timer log_tick(control);
    std::function<void()> tick = [&] {
        log_tick.expires_after(std::chrono::milliseconds(200));
        log_tick.async_wait([&](boost::system::error_code ec) {
            if (ec) {
                return;
            }
            auto dropped = log.dropped();
            if (dropped > reported_drops) {
                log.notice("egressd.log_dropped", {{"dropped_total", std::to_string(dropped)}}, true);
                reported_drops = dropped;
            }
            log.flush();
            tick();
        });
    };
    tick();
    while (stop_signal.empty()) {
        control.run_one();
    }
    log_tick.cancel();
    log.notice("egressd.stopping", {{"signal", stop_signal},
                                    {"grace_ms", std::to_string(config.timeouts.shutdown_grace.count())}});
    for (auto& w : workers) {
        w->begin_shutdown();
    }
    auto deadline = std::chrono::steady_clock::now() + config.timeouts.shutdown_grace;
    auto live = [&] {
        std::size_t n = 0;
        for (const auto& w : workers) {
            n += w->live_sessions();
        }
        return n;
    };
    while (live() > 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::size_t cut = live();
    for (auto& w : workers) {
        w->force_close();
    }
    // Closed sessions still write their close events; give them a moment before the loops stop.
    for (int i = 0; i < 100 && live() > 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    for (auto& w : workers) {
        w->stop();
    }
    for (auto& w : workers) {
        w->join();
    }
    slow_work.join();
    log.notice("egressd.stop", {{"cut_connections", std::to_string(cut)}});
    log.flush();
    return 0;
}

}  // namespace egressd::proxy
