#pragma once

// A real DNS server on 127.0.0.1 for tests: UDP only, one question per query, A and AAAA answered from a
// table. It binds port 0 and answers on its own thread with its own io_context, so a test's io_context
// (or the proxy under test) talks to it over a real socket exactly as it would to a recursive resolver.
//
//     egressd::test_support::fake_dns_server dns;
//     dns.set("api.example", {.a = {"192.0.2.10"}, .aaaa = {"2001:db8::10"}, .ttl = 60});
//     dns.set("down.example", {.rcode = fake_dns_server::servfail});
//     config.servers = {dns.server()};           // "127.0.0.1:PORT"
//     ... EXPECT_EQ(dns.queries("api.example", fake_dns_server::type_a), 1u);
//
// Names are matched case-insensitively, without the trailing dot. Names without an entry get the default
// entry, NXDOMAIN unless set_default says otherwise. All member functions are thread-safe.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::test_support {

// What the server answers for one name.
struct dns_entry {
    std::vector<std::string> a{};     // answers to A questions, in this order (dotted quads)
    std::vector<std::string> aaaa{};  // answers to AAAA questions, in this order (RFC 4291 text)
    std::uint32_t ttl = 60;         // TTL of every record
    std::uint8_t rcode = 0;         // 0: NOERROR (with the records above; none is NODATA), else that rcode
    bool drop = false;              // count and record the question, never answer it
    std::chrono::milliseconds delay{0};  // answer this much later (other questions are not held up)
};

class fake_dns_server {
public:
    static constexpr std::uint16_t type_a = 1;
    static constexpr std::uint16_t type_aaaa = 28;
    static constexpr std::uint8_t noerror = 0;
    static constexpr std::uint8_t servfail = 2;
    static constexpr std::uint8_t nxdomain = 3;
    static constexpr std::uint8_t refused = 5;

    // Binds UDP 127.0.0.1:0 and starts answering. Throws if the socket cannot be bound.
    fake_dns_server();
    // Stops answering (questions still in a delay are dropped) and joins the thread.
    ~fake_dns_server();
    fake_dns_server(const fake_dns_server&) = delete;
    fake_dns_server& operator=(const fake_dns_server&) = delete;

    std::uint16_t port() const;
    // "127.0.0.1:PORT", ready for resolver_config::servers.
    std::string server() const;

    // Adds or replaces the entry for a name ("api.example"). Throws std::invalid_argument on a bad address.
    void set(std::string_view name, dns_entry entry);
    void remove(std::string_view name);
    // The entry for names that have none. Initially {.rcode = nxdomain}.
    void set_default(dns_entry entry);

    // Questions received for a name (any case, no trailing dot), of one type or of any type.
    std::size_t queries(std::string_view name, std::uint16_t qtype) const;
    std::size_t queries(std::string_view name) const;
    std::size_t total_queries() const;
    // Every question name exactly as it arrived, in presentation form with the root dot ("intranet."),
    // in arrival order, so a test can prove that no search domain was appended.
    std::vector<std::string> qnames() const;
    // Forgets the counts and names above; the table stays.
    void reset_stats();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace egressd::test_support
