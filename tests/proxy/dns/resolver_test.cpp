// The c-ares resolver against a real DNS server on 127.0.0.1 (fake_dns_server). No test asserts a duration:
// waits are bounded only so that a broken resolver fails instead of hanging.

#include "proxy/dns/resolver.hpp"

#include "proxy/dns/fake_dns_server.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using egressd::policy::address;
using egressd::proxy::dns::answer;
using egressd::proxy::dns::dns_status;
using egressd::proxy::dns::resolver;
using egressd::proxy::dns::resolver_config;
using egressd::test_support::fake_dns_server;

constexpr auto type_a = fake_dns_server::type_a;
constexpr auto type_aaaa = fake_dns_server::type_aaaa;

std::vector<std::string> texts(const std::vector<address>& addresses)
{
    std::vector<std::string> out;
    for (const auto& a : addresses) {
        out.push_back(a.to_string());
    }
    return out;
}

std::vector<std::string> of_family(const std::vector<address>& addresses, bool v4)
{
    std::vector<std::string> out;
    for (const auto& a : addresses) {
        if (a.is_v4() == v4) {
            out.push_back(a.to_string());
        }
    }
    return out;
}

class dns_resolver : public ::testing::Test {
protected:
    resolver_config config() const
    {
        resolver_config c;
        c.servers = {server_.server()};
        c.timeout = 2000ms;
        c.tries = 2;
        return c;
    }

    // Runs the io_context until done() holds; false if it never does within a generous bound.
    bool run_until(const std::function<bool()>& done)
    {
        const auto limit = std::chrono::steady_clock::now() + 30s;
        while (!done()) {
            if (std::chrono::steady_clock::now() > limit) {
                return false;
            }
            if (io_.stopped()) {
                io_.restart();
            }
            if (io_.run_one_for(50ms) == 0) {
                std::this_thread::sleep_for(1ms);
            }
        }
        return true;
    }

    // Starts a resolve; the answer lands in the returned slot when the io_context runs.
    std::shared_ptr<std::optional<answer>> spawn(resolver& r, const std::string& name)
    {
        auto slot = std::make_shared<std::optional<answer>>();
        asio::co_spawn(io_, r.resolve(name), [slot](std::exception_ptr e, answer a) {
            if (e) {
                ADD_FAILURE() << "resolve threw";
                a.status = dns_status::error;
            }
            *slot = std::move(a);
        });
        return slot;
    }

    std::vector<answer> resolve_all(resolver& r, const std::vector<std::string>& names)
    {
        std::vector<std::shared_ptr<std::optional<answer>>> slots;
        for (const auto& name : names) {
            slots.push_back(spawn(r, name));
        }
        EXPECT_TRUE(run_until([&] {
            return std::all_of(slots.begin(), slots.end(), [](const auto& s) { return s->has_value(); });
        }));
        std::vector<answer> out;
        for (const auto& s : slots) {
            out.push_back(s->value_or(answer{}));
        }
        return out;
    }

    answer resolve(resolver& r, const std::string& name) { return resolve_all(r, {name}).front(); }

    fake_dns_server server_;
    asio::io_context io_;
};

// ----- answers -----

TEST_F(dns_resolver, a_only)
{
    server_.set("v4.example", {.a = {"192.0.2.1", "192.0.2.2"}, .ttl = 60});
    resolver r(io_, config());
    const auto a = resolve(r, "v4.example");
    EXPECT_EQ(a.status, dns_status::ok);
    EXPECT_EQ(texts(a.addresses), (std::vector<std::string>{"192.0.2.1", "192.0.2.2"}));
    EXPECT_FALSE(a.from_cache);
    EXPECT_EQ(server_.queries("v4.example", type_a), 1u);
    EXPECT_EQ(server_.queries("v4.example", type_aaaa), 1u);
}

TEST_F(dns_resolver, aaaa_only)
{
    server_.set("v6.example", {.aaaa = {"2001:db8::1", "2001:db8::2"}});
    resolver r(io_, config());
    const auto a = resolve(r, "v6.example");
    EXPECT_EQ(a.status, dns_status::ok);
    EXPECT_EQ(texts(a.addresses), (std::vector<std::string>{"2001:db8::1", "2001:db8::2"}));
}

TEST_F(dns_resolver, both_families_keep_the_server_order)
{
    server_.set("dual.example", {.a = {"192.0.2.9", "192.0.2.3", "192.0.2.5"}, .aaaa = {"2001:db8::9", "2001:db8::3"}});
    resolver r(io_, config());
    const auto a = resolve(r, "dual.example");
    EXPECT_EQ(a.status, dns_status::ok);
    ASSERT_EQ(a.addresses.size(), 5u);
    // A and AAAA travel as two queries, so which family comes first is up to the network; within a family
    // the order is the server's (no RFC 6724 sort).
    EXPECT_EQ(of_family(a.addresses, true), (std::vector<std::string>{"192.0.2.9", "192.0.2.3", "192.0.2.5"}));
    EXPECT_EQ(of_family(a.addresses, false), (std::vector<std::string>{"2001:db8::9", "2001:db8::3"}));
}

TEST_F(dns_resolver, duplicates_removed)
{
    server_.set("dup.example", {.a = {"192.0.2.7", "192.0.2.8", "192.0.2.7"}, .aaaa = {"2001:db8::7", "2001:db8::7"}});
    resolver r(io_, config());
    const auto a = resolve(r, "dup.example");
    EXPECT_EQ(a.status, dns_status::ok);
    EXPECT_EQ(of_family(a.addresses, true), (std::vector<std::string>{"192.0.2.7", "192.0.2.8"}));
    EXPECT_EQ(of_family(a.addresses, false), (std::vector<std::string>{"2001:db8::7"}));
}

TEST_F(dns_resolver, nxdomain)
{
    resolver r(io_, config());
    const auto a = resolve(r, "missing.example");
    EXPECT_EQ(a.status, dns_status::nxdomain);
    EXPECT_TRUE(a.addresses.empty());
    EXPECT_EQ(a.ttl, config().negative_ttl);
    EXPECT_EQ(server_.queries("missing.example", type_a), 1u);
    EXPECT_EQ(server_.queries("missing.example", type_aaaa), 1u);
}

TEST_F(dns_resolver, no_addresses_when_both_types_are_nodata)
{
    server_.set("empty.example", {});
    resolver r(io_, config());
    const auto a = resolve(r, "empty.example");
    EXPECT_EQ(a.status, dns_status::no_addresses);
    EXPECT_TRUE(a.addresses.empty());
    EXPECT_EQ(a.ttl, config().negative_ttl);
}

TEST_F(dns_resolver, servfail)
{
    server_.set("broken.example", {.rcode = fake_dns_server::servfail});
    resolver r(io_, config());
    const auto a = resolve(r, "broken.example");
    EXPECT_EQ(a.status, dns_status::servfail);
    EXPECT_TRUE(a.addresses.empty());
    EXPECT_GE(server_.queries("broken.example"), 2u);
}

TEST_F(dns_resolver, refused_is_servfail)
{
    server_.set("refused.example", {.rcode = fake_dns_server::refused});
    resolver r(io_, config());
    EXPECT_EQ(resolve(r, "refused.example").status, dns_status::servfail);
}

TEST_F(dns_resolver, timeout_when_the_server_never_answers)
{
    server_.set("silent.example", {.drop = true});
    auto c = config();
    c.timeout = 200ms;
    c.tries = 1;
    resolver r(io_, c);
    const auto a = resolve(r, "silent.example");
    EXPECT_EQ(a.status, dns_status::timeout);
    EXPECT_TRUE(a.addresses.empty());
    EXPECT_EQ(server_.queries("silent.example", type_a), 1u);
    EXPECT_EQ(server_.queries("silent.example", type_aaaa), 1u);
}

TEST_F(dns_resolver, next_server_after_servfail)
{
    fake_dns_server good;
    good.set("multi.example", {.a = {"192.0.2.44"}});
    server_.set("multi.example", {.rcode = fake_dns_server::servfail});
    auto c = config();
    c.servers = {server_.server(), good.server()};
    resolver r(io_, c);
    const auto a = resolve(r, "multi.example");
    EXPECT_EQ(a.status, dns_status::ok);
    EXPECT_EQ(texts(a.addresses), std::vector<std::string>{"192.0.2.44"});
}

TEST_F(dns_resolver, unreachable_server_is_servfail)
{
    // A port nobody listens on: the ICMP port unreachable ends every try.
    std::uint16_t port = 0;
    {
        asio::ip::udp::socket probe(io_, asio::ip::udp::endpoint(asio::ip::make_address_v4("127.0.0.1"), 0));
        port = probe.local_endpoint().port();
    }
    auto c = config();
    c.servers = {"127.0.0.1:" + std::to_string(port)};
    resolver r(io_, c);
    EXPECT_EQ(resolve(r, "nobody.example").status, dns_status::servfail);
    EXPECT_EQ(r.cache_size(), 0u);
}

// ----- running out of descriptors -----

// Uses up this process's descriptors for one test: the soft RLIMIT_NOFILE goes down to a little above the highest
// descriptor open now, and copies of stdin fill the rest. Undone (descriptors closed, limit restored) on scope
// exit.
class descriptor_shortage {
public:
    descriptor_shortage()
    {
        ::getrlimit(RLIMIT_NOFILE, &saved_);
        int highest = 2;
        for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
            highest = std::max(highest, std::stoi(entry.path().filename().string()));
        }
        rlimit lowered = saved_;
        lowered.rlim_cur = static_cast<rlim_t>(highest) + 32;
        if (::setrlimit(RLIMIT_NOFILE, &lowered) != 0) {
            ADD_FAILURE() << "cannot lower RLIMIT_NOFILE";
            return;
        }
        for (int i = 0; i < highest + 32; ++i) {
            const int fd = ::dup(0);
            if (fd < 0) {
                exhausted_ = errno == EMFILE;
                break;
            }
            held_.push_back(fd);
        }
    }
    ~descriptor_shortage()
    {
        for (const int fd : held_) {
            ::close(fd);
        }
        ::setrlimit(RLIMIT_NOFILE, &saved_);
    }
    descriptor_shortage(const descriptor_shortage&) = delete;
    descriptor_shortage& operator=(const descriptor_shortage&) = delete;

    bool exhausted() const { return exhausted_; }

private:
    rlimit saved_{};
    std::vector<int> held_;
    bool exhausted_ = false;
};

// c-ares 1.18 reports a socket() that failed with EMFILE as ECONNREFUSED, which reads as SERVFAIL: the resolver
// must say that egressd, not DNS, was at fault, and must not cache it.
TEST_F(dns_resolver, out_of_descriptors_is_resource_exhausted_not_servfail)
{
    server_.set("fd.example", {.a = {"192.0.2.60"}});
    resolver r(io_, config());
    std::vector<int> reported;
    r.on_exhausted([&](int error) { reported.push_back(error); });
    {
        descriptor_shortage shortage;
        ASSERT_TRUE(shortage.exhausted());
        const auto a = resolve(r, "fd.example");
        EXPECT_EQ(a.status, dns_status::resource_exhausted);
        EXPECT_TRUE(a.addresses.empty());
    }
    ASSERT_FALSE(reported.empty());
    EXPECT_EQ(reported.front(), EMFILE);
    EXPECT_EQ(server_.queries("fd.example"), 0u);
    EXPECT_EQ(r.cache_size(), 0u);

    // Descriptors free again: the same name resolves, from the server.
    const auto again = resolve(r, "fd.example");
    EXPECT_EQ(again.status, dns_status::ok);
    EXPECT_FALSE(again.from_cache);
    EXPECT_EQ(texts(again.addresses), std::vector<std::string>{"192.0.2.60"});
}

// A real SERVFAIL answered while nothing ran short keeps its own status.
TEST_F(dns_resolver, servfail_stays_servfail_after_a_shortage_has_passed)
{
    server_.set("broken.example", {.rcode = fake_dns_server::servfail});
    server_.set("fd.example", {.a = {"192.0.2.60"}});
    resolver r(io_, config());
    {
        descriptor_shortage shortage;
        ASSERT_TRUE(shortage.exhausted());
        EXPECT_EQ(resolve(r, "fd.example").status, dns_status::resource_exhausted);
    }
    EXPECT_EQ(resolve(r, "broken.example").status, dns_status::servfail);
}

// ----- absolute names -----

// Sets an environment variable for one test. LOCALDOMAIN is c-ares' (and glibc's) search list override,
// the one way a test can hand the resolver a search list without editing /etc/resolv.conf.
class scoped_env {
public:
    scoped_env(const char* name, const char* value) : name_(name)
    {
        if (const char* old = std::getenv(name)) {
            old_ = old;
        }
        ::setenv(name, value, 1);
    }
    ~scoped_env()
    {
        if (old_) {
            ::setenv(name_, old_->c_str(), 1);
        } else {
            ::unsetenv(name_);
        }
    }
    scoped_env(const scoped_env&) = delete;
    scoped_env& operator=(const scoped_env&) = delete;

private:
    const char* name_;
    std::optional<std::string> old_;
};

TEST_F(dns_resolver, single_label_names_are_asked_as_is)
{
    const scoped_env search("LOCALDOMAIN", "corp.example lab.example");
    const scoped_env options("RES_OPTIONS", "ndots:5");
    server_.set("intranet", {.a = {"192.0.2.80"}});
    resolver r(io_, config());
    const auto found = resolve(r, "intranet");
    EXPECT_EQ(found.status, dns_status::ok);
    EXPECT_EQ(texts(found.addresses), std::vector<std::string>{"192.0.2.80"});
    EXPECT_EQ(server_.qnames(), (std::vector<std::string>{"intranet.", "intranet."}));

    // A missing name is where a search list would show: NXDOMAIN would send c-ares on to name.corp.example.
    server_.reset_stats();
    EXPECT_EQ(resolve(r, "nowhere").status, dns_status::nxdomain);
    EXPECT_EQ(server_.qnames(), (std::vector<std::string>{"nowhere.", "nowhere."}));

    server_.reset_stats();
    EXPECT_EQ(resolve(r, "svc.internal").status, dns_status::nxdomain);
    EXPECT_EQ(server_.qnames(), (std::vector<std::string>{"svc.internal.", "svc.internal."}));
}

TEST_F(dns_resolver, refuses_names_it_must_not_be_given)
{
    resolver r(io_, config());
    for (const std::string name : {"", "192.0.2.1", "2001:db8::1", "trailing.dot.", ".leading"}) {
        EXPECT_EQ(resolve(r, name).status, dns_status::error) << '"' << name << '"';
    }
    EXPECT_EQ(server_.total_queries(), 0u);
}

// ----- cache -----

TEST_F(dns_resolver, second_resolve_comes_from_the_cache)
{
    server_.set("cached.example", {.a = {"192.0.2.20"}, .ttl = 60});
    resolver r(io_, config());
    const auto first = resolve(r, "cached.example");
    EXPECT_EQ(first.status, dns_status::ok);
    EXPECT_FALSE(first.from_cache);
    EXPECT_EQ(first.ttl, 60s);
    EXPECT_EQ(r.cache_size(), 1u);

    const auto second = resolve(r, "cached.example");
    EXPECT_EQ(second.status, dns_status::ok);
    EXPECT_TRUE(second.from_cache);
    EXPECT_EQ(texts(second.addresses), std::vector<std::string>{"192.0.2.20"});
    EXPECT_GT(second.ttl, 0s);
    EXPECT_LE(second.ttl, 60s);
    EXPECT_EQ(server_.queries("cached.example", type_a), 1u);
    EXPECT_EQ(server_.queries("cached.example", type_aaaa), 1u);
}

TEST_F(dns_resolver, ttl_raised_to_min_ttl)
{
    server_.set("short.example", {.a = {"192.0.2.21"}, .ttl = 1});
    auto c = config();
    c.min_ttl = 5s;
    resolver r(io_, c);
    EXPECT_EQ(resolve(r, "short.example").ttl, 5s);
}

TEST_F(dns_resolver, ttl_lowered_to_max_ttl)
{
    server_.set("long.example", {.a = {"192.0.2.22"}, .ttl = 100000});
    auto c = config();
    c.max_ttl = 300s;
    resolver r(io_, c);
    EXPECT_EQ(resolve(r, "long.example").ttl, 300s);
}

TEST_F(dns_resolver, ttl_within_bounds_is_the_servers)
{
    server_.set("mid.example", {.aaaa = {"2001:db8::22"}, .ttl = 77});
    resolver r(io_, config());
    EXPECT_EQ(resolve(r, "mid.example").ttl, 77s);
}

TEST_F(dns_resolver, negative_answers_are_cached)
{
    server_.set("empty.example", {});
    auto c = config();
    c.negative_ttl = 30s;
    resolver r(io_, c);
    EXPECT_EQ(resolve(r, "missing.example").status, dns_status::nxdomain);
    EXPECT_EQ(resolve(r, "empty.example").status, dns_status::no_addresses);

    const auto nx = resolve(r, "missing.example");
    EXPECT_EQ(nx.status, dns_status::nxdomain);
    EXPECT_TRUE(nx.from_cache);
    const auto nodata = resolve(r, "empty.example");
    EXPECT_EQ(nodata.status, dns_status::no_addresses);
    EXPECT_TRUE(nodata.from_cache);
    EXPECT_EQ(server_.queries("missing.example"), 2u);
    EXPECT_EQ(server_.queries("empty.example"), 2u);
}

TEST_F(dns_resolver, servfail_is_not_cached)
{
    server_.set("flaky.example", {.rcode = fake_dns_server::servfail});
    resolver r(io_, config());
    EXPECT_EQ(resolve(r, "flaky.example").status, dns_status::servfail);
    const auto asked = server_.queries("flaky.example");
    EXPECT_EQ(r.cache_size(), 0u);

    // The server recovers; the next resolve asks it again and gets the answer.
    server_.set("flaky.example", {.a = {"192.0.2.23"}});
    const auto a = resolve(r, "flaky.example");
    EXPECT_EQ(a.status, dns_status::ok);
    EXPECT_FALSE(a.from_cache);
    EXPECT_GT(server_.queries("flaky.example"), asked);
}

TEST_F(dns_resolver, timeout_is_not_cached)
{
    server_.set("slow.example", {.drop = true});
    auto c = config();
    c.timeout = 200ms;
    c.tries = 1;
    resolver r(io_, c);
    EXPECT_EQ(resolve(r, "slow.example").status, dns_status::timeout);
    EXPECT_EQ(resolve(r, "slow.example").status, dns_status::timeout);
    EXPECT_EQ(server_.queries("slow.example", type_a), 2u);
    EXPECT_EQ(r.cache_size(), 0u);
}

TEST_F(dns_resolver, entries_expire)
{
    server_.set("brief.example", {.a = {"192.0.2.24"}, .ttl = 60});
    auto c = config();
    c.min_ttl = 1s;
    c.max_ttl = 1s;
    resolver r(io_, c);
    EXPECT_EQ(resolve(r, "brief.example").ttl, 1s);
    std::this_thread::sleep_for(1200ms);
    const auto again = resolve(r, "brief.example");
    EXPECT_EQ(again.status, dns_status::ok);
    EXPECT_FALSE(again.from_cache);
    EXPECT_EQ(server_.queries("brief.example", type_a), 2u);
}

TEST_F(dns_resolver, least_recently_used_entry_goes_first)
{
    for (const auto* name : {"one.example", "two.example", "three.example"}) {
        server_.set(name, {.a = {"192.0.2.30"}});
    }
    auto c = config();
    c.cache_entries = 2;
    resolver r(io_, c);
    resolve(r, "one.example");
    resolve(r, "two.example");
    EXPECT_TRUE(resolve(r, "one.example").from_cache);  // one is now the most recently used
    resolve(r, "three.example");                         // evicts two
    EXPECT_EQ(r.cache_size(), 2u);

    EXPECT_TRUE(resolve(r, "one.example").from_cache);
    EXPECT_TRUE(resolve(r, "three.example").from_cache);
    EXPECT_FALSE(resolve(r, "two.example").from_cache);
    EXPECT_EQ(server_.queries("two.example", type_a), 2u);
    EXPECT_EQ(server_.queries("one.example", type_a), 1u);
}

TEST_F(dns_resolver, first_of_three_evicted_with_two_entries)
{
    for (const auto* name : {"a.example", "b.example", "c.example"}) {
        server_.set(name, {.a = {"192.0.2.31"}});
    }
    auto c = config();
    c.cache_entries = 2;
    resolver r(io_, c);
    resolve(r, "a.example");
    resolve(r, "b.example");
    resolve(r, "c.example");
    EXPECT_EQ(r.cache_size(), 2u);
    EXPECT_FALSE(resolve(r, "a.example").from_cache);
    EXPECT_EQ(server_.queries("a.example", type_a), 2u);
}

TEST_F(dns_resolver, no_cache_with_zero_entries)
{
    server_.set("nocache.example", {.a = {"192.0.2.32"}});
    auto c = config();
    c.cache_entries = 0;
    resolver r(io_, c);
    resolve(r, "nocache.example");
    EXPECT_FALSE(resolve(r, "nocache.example").from_cache);
    EXPECT_EQ(r.cache_size(), 0u);
    EXPECT_EQ(server_.queries("nocache.example", type_a), 2u);
}

// ----- concurrency -----

TEST_F(dns_resolver, concurrent_resolves_share_one_query)
{
    // The delay keeps the query in flight while all ten callers arrive.
    server_.set("shared.example", {.a = {"192.0.2.40"}, .aaaa = {"2001:db8::40"}, .delay = 100ms});
    resolver r(io_, config());
    const auto answers = resolve_all(r, std::vector<std::string>(10, "shared.example"));
    for (const auto& a : answers) {
        EXPECT_EQ(a.status, dns_status::ok);
        EXPECT_EQ(of_family(a.addresses, true), std::vector<std::string>{"192.0.2.40"});
        EXPECT_EQ(of_family(a.addresses, false), std::vector<std::string>{"2001:db8::40"});
    }
    EXPECT_EQ(server_.queries("shared.example", type_a), 1u);
    EXPECT_EQ(server_.queries("shared.example", type_aaaa), 1u);
}

TEST_F(dns_resolver, many_names_at_once)
{
    std::vector<std::string> names;
    for (int i = 0; i < 200; ++i) {
        names.push_back("host" + std::to_string(i) + ".example");
        server_.set(names.back(), {.a = {"198.51.100." + std::to_string(i % 250)},
                                   .aaaa = {"2001:db8::" + std::to_string(i + 1)}});
    }
    resolver r(io_, config());
    const auto answers = resolve_all(r, names);
    for (int i = 0; i < 200; ++i) {
        const auto& a = answers[static_cast<std::size_t>(i)];
        EXPECT_EQ(a.status, dns_status::ok) << names[static_cast<std::size_t>(i)];
        EXPECT_EQ(of_family(a.addresses, true), std::vector<std::string>{"198.51.100." + std::to_string(i % 250)});
        EXPECT_EQ(of_family(a.addresses, false), std::vector<std::string>{"2001:db8::" + std::to_string(i + 1)});
    }
    // At least one question per name and type; a retry would be the kernel dropping a burst, not a bug here.
    for (const auto& name : names) {
        EXPECT_GE(server_.queries(name, type_a), 1u) << name;
        EXPECT_GE(server_.queries(name, type_aaaa), 1u) << name;
    }
    EXPECT_EQ(r.cache_size(), 200u);
}

TEST_F(dns_resolver, cancelled_caller_stops_waiting)
{
    using namespace asio::experimental::awaitable_operators;
    server_.set("stuck.example", {.drop = true});
    auto c = config();
    c.timeout = 10000ms;
    c.tries = 1;
    resolver r(io_, c);

    std::optional<std::size_t> winner;
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
            asio::steady_timer timer(io_, 50ms);
            const auto result = co_await (r.resolve("stuck.example") || timer.async_wait(asio::use_awaitable));
            winner = result.index();
        },
        asio::detached);
    ASSERT_TRUE(run_until([&] { return winner.has_value(); }));
    EXPECT_EQ(*winner, 1u);

    // Had the caller waited for c-ares instead, its query would be over by now; it is still in flight,
    // so a new caller joins it rather than asking the server again.
    auto late = spawn(r, "stuck.example");
    ASSERT_TRUE(run_until([&] { return server_.queries("stuck.example") >= 2; }));
    io_.poll();
    EXPECT_EQ(server_.queries("stuck.example"), 2u);
    EXPECT_FALSE(late->has_value());
    r.shutdown();
    ASSERT_TRUE(run_until([&] { return late->has_value(); }));
    EXPECT_EQ((*late)->status, dns_status::error);
}

// ----- shutdown and destruction -----

TEST_F(dns_resolver, shutdown_fails_pending_queries)
{
    server_.set("pending.example", {.drop = true});
    auto c = config();
    c.timeout = 10000ms;
    c.tries = 3;
    resolver r(io_, c);
    auto first = spawn(r, "pending.example");
    auto second = spawn(r, "pending.example");
    ASSERT_TRUE(run_until([&] { return server_.queries("pending.example") >= 2; }));
    EXPECT_FALSE(first->has_value());

    r.shutdown();
    ASSERT_TRUE(run_until([&] { return first->has_value() && second->has_value(); }));
    EXPECT_EQ((*first)->status, dns_status::error);
    EXPECT_EQ((*second)->status, dns_status::error);

    r.shutdown();  // idempotent
    EXPECT_EQ(resolve(r, "pending.example").status, dns_status::error);
}

TEST_F(dns_resolver, shutdown_keeps_nothing_in_flight)
{
    server_.set("quick.example", {.a = {"192.0.2.50"}});
    resolver r(io_, config());
    EXPECT_EQ(resolve(r, "quick.example").status, dns_status::ok);
    r.shutdown();
    // No socket, timer or handler of the resolver is left behind: the io_context runs out of work.
    io_.restart();
    io_.run_for(5s);
    EXPECT_TRUE(io_.stopped());
}

TEST_F(dns_resolver, destroying_with_pending_queries)
{
    server_.set_default({.drop = true});
    auto c = config();
    c.timeout = 10000ms;
    auto r = std::make_unique<resolver>(io_, c);
    std::vector<std::shared_ptr<std::optional<answer>>> slots;
    for (int i = 0; i < 5; ++i) {
        slots.push_back(spawn(*r, "gone" + std::to_string(i) + ".example"));
    }
    slots.push_back(spawn(*r, "gone0.example"));
    ASSERT_TRUE(run_until([&] { return server_.total_queries() >= 10; }));

    r.reset();
    ASSERT_TRUE(run_until([&] {
        return std::all_of(slots.begin(), slots.end(), [](const auto& s) { return s->has_value(); });
    }));
    for (const auto& s : slots) {
        EXPECT_EQ((*s)->status, dns_status::error);
    }
}

TEST_F(dns_resolver, destroying_while_idle_and_unrun)
{
    // Built and destroyed without the io_context ever running; nothing may be left to dangle.
    { resolver r(io_, config()); }
    auto r = std::make_unique<resolver>(io_, config());
    auto slot = spawn(*r, "never.example");
    r.reset();
    ASSERT_TRUE(run_until([&] { return slot->has_value(); }));
    EXPECT_EQ((*slot)->status, dns_status::error);
}

// ----- configuration -----

TEST_F(dns_resolver, bad_servers_throw_at_construction)
{
    for (const std::string bad : {"not-an-ip", "1.2.3.4:99999", "1.2.3.4:0", "1.2.3.4:", "1.2.3.4:53x", "01.2.3.4",
                                  "256.1.1.1", "[::1", "[::1]53", "[1.2.3.4]:53", "::1::2", "", "example.com:53"}) {
        auto c = config();
        c.servers = {bad};
        try {
            resolver r(io_, c);
            ADD_FAILURE() << "accepted \"" << bad << '"';
        } catch (const std::runtime_error& e) {
            EXPECT_NE(std::string(e.what()).find('"' + bad + '"'), std::string::npos) << e.what();
        }
    }
}

TEST_F(dns_resolver, server_forms_accepted)
{
    auto c = config();
    c.servers = {"127.0.0.1", "127.0.0.1:5353", "[::1]:5353", "[::1]", "::1"};
    EXPECT_NO_THROW(resolver(io_, c));
}

TEST(dns_status_names, to_string)
{
    using egressd::proxy::dns::to_string;
    EXPECT_EQ(to_string(dns_status::ok), "ok");
    EXPECT_EQ(to_string(dns_status::nxdomain), "nxdomain");
    EXPECT_EQ(to_string(dns_status::no_addresses), "no_addresses");
    EXPECT_EQ(to_string(dns_status::servfail), "servfail");
    EXPECT_EQ(to_string(dns_status::timeout), "timeout");
    EXPECT_EQ(to_string(dns_status::error), "error");
    EXPECT_EQ(to_string(dns_status::resource_exhausted), "resource_exhausted");
}

}  // namespace
