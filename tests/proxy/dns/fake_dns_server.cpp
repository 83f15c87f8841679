#include "proxy/dns/fake_dns_server.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <utility>

namespace egressd::test_support {

namespace asio = boost::asio;
using udp = asio::ip::udp;

namespace {

std::string key_of(std::string_view name)
{
    if (!name.empty() && name.back() == '.') {
        name.remove_suffix(1);
    }
    std::string key(name);
    std::transform(key.begin(), key.end(), key.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return key;
}

// A table entry with its addresses already in wire form.
struct compiled_entry {
    std::vector<std::array<std::uint8_t, 4>> a;
    std::vector<std::array<std::uint8_t, 16>> aaaa;
    std::uint32_t ttl = 0;
    std::uint8_t rcode = 0;
    bool drop = false;
    std::chrono::milliseconds delay{0};
};

compiled_entry compile(const dns_entry& entry)
{
    compiled_entry out;
    for (const auto& text : entry.a) {
        boost::system::error_code ec;
        const auto v4 = asio::ip::make_address_v4(text, ec);
        if (ec) {
            throw std::invalid_argument("fake_dns_server: not an IPv4 address: " + text);
        }
        out.a.push_back(v4.to_bytes());
    }
    for (const auto& text : entry.aaaa) {
        boost::system::error_code ec;
        const auto v6 = asio::ip::make_address_v6(text, ec);
        if (ec) {
            throw std::invalid_argument("fake_dns_server: not an IPv6 address: " + text);
        }
        out.aaaa.push_back(v6.to_bytes());
    }
    out.ttl = entry.ttl;
    out.rcode = entry.rcode;
    out.drop = entry.drop;
    out.delay = entry.delay;
    return out;
}

std::uint16_t read16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }

void put16(std::vector<std::uint8_t>& out, std::uint16_t v)
{
    out.push_back(static_cast<std::uint8_t>(v >> 8));
    out.push_back(static_cast<std::uint8_t>(v & 0xff));
}

void put32(std::vector<std::uint8_t>& out, std::uint32_t v)
{
    put16(out, static_cast<std::uint16_t>(v >> 16));
    put16(out, static_cast<std::uint16_t>(v & 0xffff));
}

struct question {
    std::string name;            // presentation form as received, with the root dot
    std::size_t end = 0;         // offset just past QTYPE and QCLASS
    std::uint16_t qtype = 0;
};

// Header plus exactly one question with an uncompressed name; anything else is not a query we answer.
std::optional<question> parse_query(const std::uint8_t* data, std::size_t size)
{
    if (size < 12) {
        return std::nullopt;
    }
    const std::uint16_t flags = read16(data + 2);
    if ((flags & 0x8000) != 0 || read16(data + 4) != 1) {
        return std::nullopt;
    }
    question q;
    std::size_t pos = 12;
    for (;;) {
        if (pos >= size) {
            return std::nullopt;
        }
        const std::uint8_t length = data[pos++];
        if (length == 0) {
            break;
        }
        if (length > 63 || pos + length > size || q.name.size() + length + 1 > 254) {
            return std::nullopt;
        }
        q.name.append(reinterpret_cast<const char*>(data + pos), length);
        q.name.push_back('.');
        pos += length;
    }
    if (q.name.empty()) {
        q.name = ".";
    }
    if (pos + 4 > size) {
        return std::nullopt;
    }
    q.qtype = read16(data + pos);
    q.end = pos + 4;
    return q;
}

}  // namespace

struct fake_dns_server::impl {
    impl() : socket(io, udp::endpoint(asio::ip::make_address_v4("127.0.0.1"), 0))
    {
        default_entry.rcode = nxdomain;
        port = socket.local_endpoint().port();
        socket.non_blocking(true);
        boost::system::error_code ignored;  // best effort: the kernel caps it at net.core.rmem_max
        socket.set_option(udp::socket::receive_buffer_size(4 << 20), ignored);
        receive();
        thread = std::thread([this] { io.run(); });
    }

    ~impl()
    {
        work.reset();
        io.stop();
        thread.join();
    }

    void receive()
    {
        socket.async_receive_from(asio::buffer(buffer), peer, [this](boost::system::error_code ec, std::size_t n) {
            if (ec == asio::error::operation_aborted) {
                return;
            }
            if (!ec) {
                handle(n);
                // Drain what else has arrived before waiting again: a burst of questions must not overflow
                // the socket buffer, or a test would see c-ares' retry instead of the first answer.
                boost::system::error_code read_ec;
                for (;;) {
                    const auto more = socket.receive_from(asio::buffer(buffer), peer, 0, read_ec);
                    if (read_ec) {
                        break;
                    }
                    handle(more);
                }
            }
            receive();
        });
    }

    void handle(std::size_t size)
    {
        const auto q = parse_query(buffer.data(), size);
        if (!q) {
            return;
        }
        compiled_entry entry;
        {
            std::lock_guard lock(mutex);
            const auto key = key_of(q->name);
            ++counts[{key, q->qtype}];
            names.push_back(q->name);
            const auto it = table.find(key);
            entry = it != table.end() ? it->second : default_entry;
        }
        if (entry.drop) {
            return;
        }

        auto reply = std::make_shared<std::vector<std::uint8_t>>();
        auto& out = *reply;
        const std::uint16_t query_flags = read16(buffer.data() + 2);
        // QR, the query's opcode and RD, AA and RA, and the entry's rcode.
        const auto flags = static_cast<std::uint16_t>(0x8000 | (query_flags & 0x7900) | 0x0400 | 0x0080 |
                                                      (entry.rcode & 0x0f));
        std::size_t answers = 0;
        if (entry.rcode == noerror) {
            answers = q->qtype == type_a ? entry.a.size() : q->qtype == type_aaaa ? entry.aaaa.size() : 0;
        }
        out.insert(out.end(), buffer.begin(), buffer.begin() + 2);  // id
        put16(out, flags);
        put16(out, 1);
        put16(out, static_cast<std::uint16_t>(answers));
        put16(out, 0);
        put16(out, 0);
        out.insert(out.end(), buffer.begin() + 12, buffer.begin() + static_cast<std::ptrdiff_t>(q->end));
        const auto add = [&](std::uint16_t type, const std::uint8_t* data, std::uint16_t length) {
            put16(out, 0xc00c);  // the question's name
            put16(out, type);
            put16(out, 1);  // IN
            put32(out, entry.ttl);
            put16(out, length);
            out.insert(out.end(), data, data + length);
        };
        if (entry.rcode == noerror && q->qtype == type_a) {
            for (const auto& a : entry.a) {
                add(type_a, a.data(), 4);
            }
        } else if (entry.rcode == noerror && q->qtype == type_aaaa) {
            for (const auto& a : entry.aaaa) {
                add(type_aaaa, a.data(), 16);
            }
        }

        if (entry.delay.count() <= 0) {
            send(reply, peer);
            return;
        }
        auto timer = std::make_shared<asio::steady_timer>(io, entry.delay);
        timer->async_wait([this, timer, reply, to = peer](boost::system::error_code ec) {
            if (!ec) {
                send(reply, to);
            }
        });
    }

    void send(const std::shared_ptr<std::vector<std::uint8_t>>& reply, const udp::endpoint& to)
    {
        socket.async_send_to(asio::buffer(*reply), to, [reply](boost::system::error_code, std::size_t) {});
    }

    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
    udp::socket socket;
    udp::endpoint peer;
    std::uint16_t port = 0;
    std::array<std::uint8_t, 4096> buffer{};
    std::thread thread;

    mutable std::mutex mutex;
    std::map<std::string, compiled_entry> table;
    compiled_entry default_entry;
    std::map<std::pair<std::string, std::uint16_t>, std::size_t> counts;
    std::vector<std::string> names;
};

fake_dns_server::fake_dns_server() : impl_(std::make_unique<impl>()) {}

fake_dns_server::~fake_dns_server() = default;

std::uint16_t fake_dns_server::port() const { return impl_->port; }

std::string fake_dns_server::server() const { return "127.0.0.1:" + std::to_string(port()); }

void fake_dns_server::set(std::string_view name, dns_entry entry)
{
    auto compiled = compile(entry);
    std::lock_guard lock(impl_->mutex);
    impl_->table[key_of(name)] = std::move(compiled);
}

void fake_dns_server::remove(std::string_view name)
{
    std::lock_guard lock(impl_->mutex);
    impl_->table.erase(key_of(name));
}

void fake_dns_server::set_default(dns_entry entry)
{
    auto compiled = compile(entry);
    std::lock_guard lock(impl_->mutex);
    impl_->default_entry = std::move(compiled);
}

std::size_t fake_dns_server::queries(std::string_view name, std::uint16_t qtype) const
{
    std::lock_guard lock(impl_->mutex);
    const auto it = impl_->counts.find({key_of(name), qtype});
    return it == impl_->counts.end() ? 0 : it->second;
}

std::size_t fake_dns_server::queries(std::string_view name) const
{
    const auto key = key_of(name);
    std::lock_guard lock(impl_->mutex);
    std::size_t n = 0;
    for (const auto& [k, count] : impl_->counts) {
        if (k.first == key) {
            n += count;
        }
    }
    return n;
}

std::size_t fake_dns_server::total_queries() const
{
    std::lock_guard lock(impl_->mutex);
    return impl_->names.size();
}

std::vector<std::string> fake_dns_server::qnames() const
{
    std::lock_guard lock(impl_->mutex);
    return impl_->names;
}

void fake_dns_server::reset_stats()
{
    std::lock_guard lock(impl_->mutex);
    impl_->counts.clear();
    impl_->names.clear();
}

}  // namespace egressd::test_support
