// egressd_load: the loopback origin and the load generator behind bench/load/run.sh, which compares egressd
// with Squid in one run.
//
//   egressd_load upstream  [--http-port P] [--echo-port E] [--bulk-port B] [--threads T] [--max-seconds S]
//   egressd_load keepalive --proxy ADDR:PORT --url http://127.0.0.1:P/small [--expect-status S] [common options]
//   egressd_load newconn   --proxy ADDR:PORT --url http://127.0.0.1:P/small [common options]
//   egressd_load download  --proxy ADDR:PORT --url http://127.0.0.1:P/bytes/N [common options]
//   egressd_load tunnels   --proxy ADDR:PORT --target 127.0.0.1:E [--connect-host NAME]
//                          [--hello-sni NAME [--hello-size N] | --first-bytes-hex HEX] [common options]
//   egressd_load bulk      (--proxy ADDR:PORT | --direct) --target 127.0.0.1:B [--tunnels N] [--bytes B] [...]
//   egressd_load idle      --proxy ADDR:PORT --target 127.0.0.1:E --tunnels N [--parallel K] [--hold S]
//   egressd_load hello     --sni NAME [--hello-size N]
//   egressd_load freeport
//
// Common options: --connections C (default 32), --seconds S (3), --warmup W (0.5), --max-ops N (10,000,000),
// --threads T (1), --op-timeout S (5).
//
// Every address must be 127.0.0.1 or ::1: the tool refuses anything else. Every load loop is bounded by
// --seconds and --max-ops (or --bytes), whichever comes first, and the upstream exits after --max-seconds.
//
// Output is one machine-readable line per measurement:
//   result metric=keepalive_rps value=12345.6 ops=... errors=0 timeouts=0 seconds=3.00 p50_us=... p99_us=...
//          total_ops=...
// value, ops, errors and latencies cover the measured window; total_ops (total_bytes for bulk) the whole run,
// warm-up included, for dividing by the proxy's CPU time over the whole run.
//
// Thread contract: one io_context run by --threads threads; each connection is one coroutine on its own strand,
// and its watchdog runs on the same strand, so a connection's socket, reader and deadline need no lock. Only the
// counters in load_state are shared (atomics).

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <poll.h>
#include <random>
#include <sys/resource.h>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

namespace asio = boost::asio;
using asio::awaitable;
using asio::ip::tcp;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

// ---------------------------------------------------------------------------------------------------------
// Command line

class options {
public:
    options(int argc, char** argv, int first)
    {
        for (int i = first; i < argc; ++i) {
            std::string key = argv[i];
            if (key.rfind("--", 0) != 0) {
                throw std::runtime_error("unexpected argument: " + key);
            }
            key = key.substr(2);
            if (flags_.count(key) != 0) {
                values_[key] = "1";
                continue;
            }
            if (i + 1 >= argc) {
                throw std::runtime_error("--" + key + " needs a value");
            }
            values_[key] = argv[++i];
        }
    }
    static void declare_flag(const std::string& name) { flags_.insert(name); }

    std::string str(const std::string& key, const std::string& fallback)
    {
        used_.insert(key);
        auto it = values_.find(key);
        return it == values_.end() ? fallback : it->second;
    }
    std::string required(const std::string& key)
    {
        used_.insert(key);
        auto it = values_.find(key);
        if (it == values_.end()) {
            throw std::runtime_error("--" + key + " is required");
        }
        return it->second;
    }
    bool has(const std::string& key)
    {
        used_.insert(key);
        return values_.count(key) != 0;
    }
    std::uint64_t count(const std::string& key, std::uint64_t fallback)
    {
        auto text = str(key, "");
        if (text.empty()) {
            return fallback;
        }
        std::uint64_t value = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (ec != std::errc{} || end != text.data() + text.size()) {
            throw std::runtime_error("--" + key + ": not a whole number: " + text);
        }
        return value;
    }
    double seconds(const std::string& key, double fallback)
    {
        auto text = str(key, "");
        if (text.empty()) {
            return fallback;
        }
        std::size_t end = 0;
        double value = std::stod(text, &end);
        if (end != text.size() || value < 0) {
            throw std::runtime_error("--" + key + ": not a number of seconds: " + text);
        }
        return value;
    }
    // Every option given must have been read by the subcommand: a typo is an error, not a default.
    void check_all_used() const
    {
        for (const auto& [key, value] : values_) {
            if (used_.count(key) == 0) {
                throw std::runtime_error("unknown option --" + key);
            }
        }
    }

private:
    std::map<std::string, std::string> values_;
    std::set<std::string> used_;
    static inline std::set<std::string> flags_;
};

std::uint16_t parse_port(std::string_view text)
{
    unsigned value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || value > 65535) {
        throw std::runtime_error("bad port: " + std::string(text));
    }
    return static_cast<std::uint16_t>(value);
}

// The network rule of this harness: loopback only, exactly 127.0.0.1 or ::1.
asio::ip::address loopback_address(std::string_view text)
{
    auto address = asio::ip::make_address(std::string(text));
    bool ok = (address.is_v4() && address.to_v4() == asio::ip::address_v4::loopback()) ||
              (address.is_v6() && address.to_v6() == asio::ip::address_v6::loopback());
    if (!ok) {
        throw std::runtime_error("refusing non-loopback address " + std::string(text) + " (only 127.0.0.1 and ::1)");
    }
    return address;
}

// "127.0.0.1:3128" or "[::1]:3128"
tcp::endpoint parse_endpoint(std::string_view text)
{
    std::string_view host;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find("]:");
        if (close == std::string_view::npos) {
            throw std::runtime_error("bad address: " + std::string(text));
        }
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string_view::npos) {
            throw std::runtime_error("bad address (want host:port): " + std::string(text));
        }
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    return {loopback_address(host), parse_port(port)};
}

struct url_parts {
    std::string absolute;   // as sent to the proxy
    std::string authority;  // Host header
    std::string path;       // origin-form, for --direct
    tcp::endpoint origin;
};

url_parts parse_url(const std::string& url)
{
    constexpr std::string_view scheme = "http://";
    if (url.rfind(scheme, 0) != 0) {
        throw std::runtime_error("only http:// URLs: " + url);
    }
    auto rest = std::string_view(url).substr(scheme.size());
    auto slash = rest.find('/');
    url_parts parts;
    parts.absolute = url;
    parts.authority = std::string(rest.substr(0, slash));
    parts.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
    parts.origin = parse_endpoint(parts.authority);
    return parts;
}

std::string endpoint_text(const tcp::endpoint& e)
{
    return e.address().is_v6() ? "[" + e.address().to_string() + "]:" + std::to_string(e.port())
                               : e.address().to_string() + ":" + std::to_string(e.port());
}

// ---------------------------------------------------------------------------------------------------------
// First bytes of a tunnel: a synthesized TLS ClientHello, or raw bytes given in hex

// Names a CONNECT may carry in this harness: only the reserved .test and .localhost domains (RFC 6761), which
// never reach a public resolver's answers; the proxy resolves them through the DNS server run.sh starts.
std::string reserved_name(std::string_view name)
{
    auto ends_with = [&](std::string_view suffix) {
        return name.size() > suffix.size() && name.substr(name.size() - suffix.size()) == suffix;
    };
    bool reserved = name == "localhost" || ends_with(".test") || ends_with(".localhost");
    if (!reserved || name.size() > 253) {
        throw std::runtime_error("refusing name " + std::string(name) + " (only names under .test or .localhost)");
    }
    std::size_t label = 0;
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
        if (!ok) {
            throw std::runtime_error("bad name (lower-case letters, digits, '-' and '.'): " + std::string(name));
        }
        label = c == '.' ? 0 : label + 1;
        if (label > 63) {
            throw std::runtime_error("label over 63 bytes in " + std::string(name));
        }
    }
    if (name.find("..") != std::string_view::npos || name.front() == '.') {
        throw std::runtime_error("empty label in " + std::string(name));
    }
    return std::string(name);
}

void put_u8(std::string& out, std::size_t v) { out.push_back(static_cast<char>(v & 0xff)); }
void put_u16(std::string& out, std::size_t v)
{
    put_u8(out, v >> 8);
    put_u8(out, v);
}
void put_u24(std::string& out, std::size_t v)
{
    put_u8(out, v >> 16);
    put_u16(out, v);
}
void put_random(std::string& out, std::size_t n, std::mt19937_64& rng)
{
    for (std::size_t i = 0; i < n; ++i) {
        put_u8(out, rng());
    }
}
// type, then the body with its 16-bit length
void put_extension(std::string& out, std::size_t type, const std::string& body)
{
    put_u16(out, type);
    put_u16(out, body.size());
    out += body;
}
std::string u16_list(std::initializer_list<std::size_t> values)
{
    std::string out;
    put_u16(out, values.size() * 2);
    for (auto v : values) {
        put_u16(out, v);
    }
    return out;
}

// A TLS 1.3 ClientHello shaped like curl's (OpenSSL 3): one handshake record (0x16 0x03 0x01), legacy_version
// 0x0303, a random, a 32-byte legacy session id, TLS 1.3 and 1.2 AEAD suites, compression [null], then
// server_name (the name), ec_point_formats, supported_groups, session_ticket, ALPN (h2, http/1.1),
// encrypt_then_mac, extended_master_secret, signature_algorithms, supported_versions (1.3, 1.2),
// psk_key_exchange_modes, key_share (x25519) and, last, padding so that the record payload is `record_size`
// bytes (curl's is 512; 0: no padding). Every length is consistent and the hello ends exactly at the end of
// its record, as egressd's parser demands.
std::string client_hello(std::string_view sni, std::size_t record_size)
{
    std::mt19937_64 rng(std::random_device{}());
    std::string extensions;
    {
        std::string entry;
        put_u8(entry, 0);  // host_name
        put_u16(entry, sni.size());
        entry += sni;
        std::string list;
        put_u16(list, entry.size());
        put_extension(extensions, 0, list + entry);  // server_name
    }
    put_extension(extensions, 11, std::string("\x03\x00\x01\x02", 4));            // ec_point_formats
    put_extension(extensions, 10, u16_list({0x001d, 0x0017, 0x001e, 0x0019, 0x0018}));  // supported_groups
    put_extension(extensions, 35, "");                                            // session_ticket
    {
        std::string names;
        for (std::string_view p : {std::string_view("h2"), std::string_view("http/1.1")}) {
            put_u8(names, p.size());
            names += p;
        }
        std::string alpn;
        put_u16(alpn, names.size());
        put_extension(extensions, 16, alpn + names);  // application_layer_protocol_negotiation
    }
    put_extension(extensions, 22, "");  // encrypt_then_mac
    put_extension(extensions, 23, "");  // extended_master_secret
    put_extension(extensions, 13, u16_list({0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0804, 0x0805, 0x0806,
                                            0x0401, 0x0501, 0x0601}));  // signature_algorithms
    put_extension(extensions, 43, std::string("\x04\x03\x04\x03\x03", 5));  // supported_versions: 1.3, 1.2
    put_extension(extensions, 45, std::string("\x01\x01", 2));              // psk_key_exchange_modes: psk_dhe_ke
    {
        std::string share;
        put_u16(share, 0x001d);  // x25519
        put_u16(share, 32);
        put_random(share, 32, rng);
        std::string shares;
        put_u16(shares, share.size());
        put_extension(extensions, 51, shares + share);  // key_share
    }

    std::string body;
    put_u16(body, 0x0303);  // legacy_version
    put_random(body, 32, rng);
    put_u8(body, 32);  // legacy_session_id (middlebox compatibility mode)
    put_random(body, 32, rng);
    body += u16_list({0x1302, 0x1303, 0x1301, 0xc02c, 0xc030, 0xc02b, 0xc02f, 0xcca9, 0xcca8, 0x00ff});
    put_u8(body, 1);  // compression_methods: [null]
    put_u8(body, 0);
    // Record payload = 4 (handshake header) + body + 2 (extensions length) + extensions (+ 4 + n of padding).
    std::size_t unpadded = 4 + body.size() + 2 + extensions.size();
    if (record_size > 0 && unpadded + 4 <= record_size) {
        put_extension(extensions, 21, std::string(record_size - unpadded - 4, '\0'));  // padding
    }
    put_u16(body, extensions.size());
    body += extensions;

    std::string handshake;
    put_u8(handshake, 1);  // client_hello
    put_u24(handshake, body.size());
    handshake += body;
    if (handshake.size() > 16384) {
        throw std::runtime_error("ClientHello larger than one TLS record");
    }
    std::string record("\x16\x03\x01", 3);
    put_u16(record, handshake.size());
    return record + handshake;
}

std::string from_hex(std::string_view hex)
{
    auto digit = [&](char c) -> unsigned {
        if (c >= '0' && c <= '9') {
            return static_cast<unsigned>(c - '0');
        }
        if (c >= 'a' && c <= 'f') {
            return static_cast<unsigned>(c - 'a' + 10);
        }
        if (c >= 'A' && c <= 'F') {
            return static_cast<unsigned>(c - 'A' + 10);
        }
        throw std::runtime_error("not a hex digit: " + std::string(1, c));
    };
    if (hex.empty() || hex.size() % 2 != 0 || hex.size() > 128 * 1024) {
        throw std::runtime_error("hex: want an even number of digits, 2 to 131072");
    }
    std::string out;
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        out.push_back(static_cast<char>((digit(hex[i]) << 4) | digit(hex[i + 1])));
    }
    return out;
}

std::string to_hex(std::string_view bytes)
{
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : bytes) {
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 15]);
    }
    return out;
}

// ---------------------------------------------------------------------------------------------------------
// Buffered reading over a socket

class reader {
public:
    explicit reader(tcp::socket& socket) : socket_(socket), buffer_(64 * 1024) {}

    void reset()
    {
        begin_ = 0;
        end_ = 0;
    }
    std::string_view data() const { return {buffer_.data() + begin_, end_ - begin_}; }
    std::size_t size() const { return end_ - begin_; }
    void consume(std::size_t n) { begin_ += std::min(n, size()); }

    // Reads more bytes. False on EOF or error.
    awaitable<bool> fill()
    {
        if (begin_ == end_) {
            begin_ = end_ = 0;
        } else if (begin_ > buffer_.size() / 2) {
            std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
            end_ -= begin_;
            begin_ = 0;
        }
        if (end_ == buffer_.size()) {
            buffer_.resize(buffer_.size() * 2);
        }
        auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buffer_.data() + end_, buffer_.size() - end_),
                                                         use_nothrow);
        end_ += n;
        co_return !ec && n > 0;
    }
    awaitable<bool> ensure(std::size_t n)
    {
        bool more = true;
        while (more && size() < n) {
            more = co_await fill();
        }
        co_return more;
    }
    // Waits until `delimiter` is buffered and returns the length up to and including it (0: EOF, error, or more
    // than `limit` bytes without it).
    awaitable<std::size_t> until(std::string_view delimiter, std::size_t limit = 64 * 1024)
    {
        std::size_t searched = 0;
        for (;;) {
            auto view = data();
            auto at = view.find(delimiter, searched);
            if (at != std::string_view::npos) {
                co_return at + delimiter.size();
            }
            if (view.size() > limit) {
                co_return 0;
            }
            searched = view.size() >= delimiter.size() ? view.size() - delimiter.size() + 1 : 0;
            bool got = co_await fill();
            if (!got) {
                co_return 0;
            }
        }
    }
    // Discards everything until EOF. True on a clean EOF.
    awaitable<bool> drain_to_eof()
    {
        for (;;) {
            reset();
            auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buffer_), use_nothrow);
            if (ec == asio::error::eof) {
                co_return true;
            }
            if (ec) {
                co_return false;
            }
        }
    }

private:
    tcp::socket& socket_;
    std::vector<char> buffer_;
    std::size_t begin_ = 0;
    std::size_t end_ = 0;
};

bool iequals_prefix(std::string_view line, std::string_view name)
{
    if (line.size() < name.size()) {
        return false;
    }
    for (std::size_t i = 0; i < name.size(); ++i) {
        char a = line[i];
        if (a >= 'A' && a <= 'Z') {
            a = static_cast<char>(a - 'A' + 'a');
        }
        if (a != name[i]) {
            return false;
        }
    }
    return true;
}

bool contains_token(std::string_view value, std::string_view lower_token)
{
    std::string lower(value);
    for (auto& c : lower) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return lower.find(lower_token) != std::string::npos;
}

std::string_view trim(std::string_view s)
{
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
        s.remove_suffix(1);
    }
    return s;
}

// The facts of a message head that framing needs.
struct head_facts {
    std::string_view start_line;
    bool close = false;
    bool chunked = false;
    std::optional<std::uint64_t> content_length;
};

head_facts parse_head(std::string_view head)
{
    head_facts facts;
    auto line_end = head.find("\r\n");
    facts.start_line = head.substr(0, line_end);
    std::size_t at = line_end + 2;
    while (at < head.size()) {
        auto next = head.find("\r\n", at);
        if (next == std::string_view::npos || next == at) {
            break;
        }
        auto line = head.substr(at, next - at);
        at = next + 2;
        auto colon = line.find(':');
        if (colon == std::string_view::npos) {
            continue;
        }
        auto value = trim(line.substr(colon + 1));
        if (iequals_prefix(line, "content-length:")) {
            std::uint64_t n = 0;
            std::from_chars(value.data(), value.data() + value.size(), n);
            facts.content_length = n;
        } else if (iequals_prefix(line, "transfer-encoding:")) {
            facts.chunked = contains_token(value, "chunked");
        } else if (iequals_prefix(line, "connection:") || iequals_prefix(line, "proxy-connection:")) {
            facts.close = facts.close || contains_token(value, "close");
        }
    }
    return facts;
}

struct response_facts {
    int status = 0;
    bool close = false;
};

int status_of(std::string_view start_line)
{
    // "HTTP/1.1 200 OK"
    if (start_line.size() < 12 || start_line.substr(0, 5) != "HTTP/") {
        return 0;
    }
    int status = 0;
    std::from_chars(start_line.data() + 9, start_line.data() + 12, status);
    return status;
}

// Reads one response, body included (Content-Length, chunked, or to EOF). nullopt: malformed, EOF or error.
awaitable<std::optional<response_facts>> read_response(reader& in)
{
    auto head_size = co_await in.until("\r\n\r\n");
    if (head_size == 0) {
        co_return std::nullopt;
    }
    auto facts = parse_head(in.data().substr(0, head_size));
    response_facts result;
    result.status = status_of(facts.start_line);
    result.close = facts.close || facts.start_line.substr(0, 8) == "HTTP/1.0";
    in.consume(head_size);
    if (result.status == 0) {
        co_return std::nullopt;
    }
    if (result.status < 200 || result.status == 204 || result.status == 304) {
        co_return result;
    }
    if (facts.chunked) {
        for (;;) {
            auto line = co_await in.until("\r\n");
            if (line == 0) {
                co_return std::nullopt;
            }
            std::uint64_t chunk = 0;
            auto text = in.data().substr(0, line);
            auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), chunk, 16);
            if (ec != std::errc{}) {
                co_return std::nullopt;
            }
            in.consume(line);
            if (chunk == 0) {
                // Trailers (usually none), then the empty line.
                for (;;) {
                    auto trailer = co_await in.until("\r\n");
                    if (trailer == 0) {
                        co_return std::nullopt;
                    }
                    in.consume(trailer);
                    if (trailer == 2) {
                        co_return result;
                    }
                }
            }
            bool got = co_await in.ensure(chunk + 2);
            if (!got) {
                co_return std::nullopt;
            }
            in.consume(chunk + 2);
        }
    }
    if (facts.content_length) {
        auto remaining = *facts.content_length;
        while (remaining > 0) {
            if (in.size() == 0) {
                bool got = co_await in.fill();
                if (!got) {
                    co_return std::nullopt;
                }
            }
            auto take = std::min<std::uint64_t>(remaining, in.size());
            in.consume(take);
            remaining -= take;
        }
        co_return result;
    }
    // No framing: the body ends at EOF.
    in.consume(in.size());
    co_await in.drain_to_eof();
    result.close = true;
    co_return result;
}

void set_nodelay(tcp::socket& socket)
{
    boost::system::error_code ec;
    socket.set_option(tcp::no_delay(true), ec);
}

// ---------------------------------------------------------------------------------------------------------
// upstream: a minimal HTTP/1.1 origin (GET /small: 100 bytes; GET /bytes/<n>: n bytes), an echo server and a
// bulk source/sink, all on loopback

constexpr std::size_t small_body_size = 100;

std::string small_response(bool close)
{
    std::string body(small_body_size - 1, 'x');
    body += '\n';
    std::string out = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                      std::to_string(body.size()) + "\r\n";
    if (close) {
        out += "Connection: close\r\n";
    }
    return out + "\r\n" + body;
}

const std::string& response_keep()
{
    static const std::string r = small_response(false);
    return r;
}
const std::string& response_close()
{
    static const std::string r = small_response(true);
    return r;
}
const std::string not_found =
    "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nnot found\n";

// The bodies of GET /bytes/<n> and of the bulk port: written from one preallocated buffer of constant bytes, so
// the origin, which shares a core with the load generator, spends no time producing them.
constexpr std::size_t bulk_chunk = 256 * 1024;

const std::vector<char>& bulk_data()
{
    static const std::vector<char> data(bulk_chunk, 'b');
    return data;
}

// Sends n bytes of body. False on error.
awaitable<bool> send_body(tcp::socket& socket, std::uint64_t n)
{
    const auto& data = bulk_data();
    while (n > 0) {
        auto take = static_cast<std::size_t>(std::min<std::uint64_t>(n, data.size()));
        auto [ec, written] = co_await asio::async_write(socket, asio::buffer(data.data(), take), use_nothrow);
        if (ec) {
            co_return false;
        }
        n -= take;
    }
    co_return true;
}

// "/bytes/<n>" (or an absolute URL ending so): n; nullopt for any other target.
std::optional<std::uint64_t> bytes_target(std::string_view target)
{
    constexpr std::string_view prefix = "/bytes/";
    auto at = target.find(prefix);
    if (at == std::string_view::npos) {
        return std::nullopt;
    }
    auto digits = target.substr(at + prefix.size());
    std::uint64_t n = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
    if (ec != std::errc{} || end != digits.data() + digits.size()) {
        return std::nullopt;
    }
    return n;
}

std::string bytes_head(std::uint64_t n, bool close)
{
    std::string out = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
                      std::to_string(n) + "\r\n";
    if (close) {
        out += "Connection: close\r\n";
    }
    return out + "\r\n";
}

awaitable<void> serve_http(tcp::socket socket)
{
    set_nodelay(socket);
    reader in(socket);
    std::string out;
    bool close = false;
    while (!close) {
        auto head_size = co_await in.until("\r\n\r\n");
        if (head_size == 0) {
            break;
        }
        // Answer every request already buffered (pipelined) with one write.
        out.clear();
        while (head_size != 0) {
            auto facts = parse_head(in.data().substr(0, head_size));
            auto line = facts.start_line;
            auto first_space = line.find(' ');
            auto second_space = line.find(' ', first_space + 1);
            auto target = line.substr(first_space + 1, second_space - first_space - 1);
            bool small = target == "/small" || target.ends_with("/small");
            auto bytes = bytes_target(target);
            close = facts.close || line.substr(second_space + 1) == "HTTP/1.0";
            auto body = facts.content_length.value_or(0);
            in.consume(head_size);  // the views into the head end here
            if (body > 0) {
                bool got = co_await in.ensure(body);
                if (!got) {
                    co_return;
                }
            }
            in.consume(body);
            if (bytes) {
                // The answers before it and this head in one write, then the body straight from the body file.
                out += bytes_head(*bytes, close);
                auto [ec, n] = co_await asio::async_write(socket, asio::buffer(out), use_nothrow);
                out.clear();
                if (ec) {
                    co_return;
                }
                bool sent = co_await send_body(socket, *bytes);
                if (!sent) {
                    co_return;
                }
            } else {
                out += small ? (close ? response_close() : response_keep()) : not_found;
            }
            if (close) {
                break;
            }
            auto view = in.data();
            auto next = view.find("\r\n\r\n");
            head_size = next == std::string_view::npos ? 0 : next + 4;
        }
        auto [ec, n] = co_await asio::async_write(socket, asio::buffer(out), use_nothrow);
        if (ec) {
            co_return;
        }
    }
    boost::system::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_send, ignored);
    co_await in.drain_to_eof();
}

awaitable<void> serve_echo(tcp::socket socket)
{
    set_nodelay(socket);
    std::vector<char> buffer(16 * 1024);
    for (;;) {
        auto [ec, n] = co_await socket.async_read_some(asio::buffer(buffer), use_nothrow);
        if (ec) {
            break;
        }
        auto [wec, written] = co_await asio::async_write(socket, asio::buffer(buffer.data(), n), use_nothrow);
        if (wec) {
            co_return;
        }
    }
    boost::system::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_send, ignored);
}

// The bulk protocol: the client sends "GET <n>\n" (the server streams n bytes, then half-closes) or
// "PUT <n>\n" (the server reads n bytes, then answers "OK\n").

awaitable<void> serve_bulk(tcp::socket socket)
{
    reader in(socket);
    auto line = co_await in.until("\n", 64);
    if (line == 0) {
        co_return;
    }
    auto command = in.data().substr(0, line - 1);
    std::uint64_t n = 0;
    if (command.size() < 5) {
        co_return;
    }
    std::from_chars(command.data() + 4, command.data() + command.size(), n);
    bool get = command.substr(0, 4) == "GET ";
    in.consume(line);
    if (get) {
        bool sent = co_await send_body(socket, n);
        if (!sent) {
            co_return;
        }
        boost::system::error_code ignored;
        socket.shutdown(tcp::socket::shutdown_send, ignored);
        co_await in.drain_to_eof();
        co_return;
    }
    auto buffered = std::min<std::uint64_t>(n, in.size());
    in.consume(buffered);
    n -= buffered;
    std::vector<char> sink(bulk_chunk);
    while (n > 0) {
        auto [ec, got] = co_await socket.async_read_some(asio::buffer(sink), use_nothrow);
        if (ec) {
            co_return;
        }
        n -= std::min<std::uint64_t>(n, got);
    }
    co_await asio::async_write(socket, asio::buffer(std::string_view("OK\n")), use_nothrow);
}

using handler_fn = awaitable<void> (*)(tcp::socket);

awaitable<void> accept_loop(tcp::acceptor acceptor, handler_fn handler)
{
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(use_nothrow);
        if (ec) {
            if (ec == asio::error::operation_aborted) {
                co_return;
            }
            // EMFILE and friends: back off instead of spinning.
            asio::steady_timer pause(co_await asio::this_coro::executor, 10ms);
            co_await pause.async_wait(use_nothrow);
            continue;
        }
        asio::co_spawn(acceptor.get_executor(), handler(std::move(socket)), asio::detached);
    }
}

tcp::acceptor open_acceptor(asio::io_context& io, std::uint16_t port)
{
    tcp::endpoint endpoint(asio::ip::address_v4::loopback(), port);
    tcp::acceptor acceptor(io);
    acceptor.open(endpoint.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen(asio::socket_base::max_listen_connections);
    return acceptor;
}

int run_upstream(options& opt)
{
    auto http_port = parse_port(opt.str("http-port", "0"));
    auto echo_port = parse_port(opt.str("echo-port", "0"));
    auto bulk_port = parse_port(opt.str("bulk-port", "0"));
    auto threads = std::max<std::uint64_t>(1, opt.count("threads", 1));
    auto max_seconds = opt.seconds("max-seconds", 900);
    opt.check_all_used();

    asio::io_context io(static_cast<int>(threads));
    auto http = open_acceptor(io, http_port);
    auto echo = open_acceptor(io, echo_port);
    auto bulk = open_acceptor(io, bulk_port);
    std::printf("listening http=%u echo=%u bulk=%u pid=%d\n", http.local_endpoint().port(), echo.local_endpoint().port(),
                bulk.local_endpoint().port(), static_cast<int>(::getpid()));
    std::fflush(stdout);
    asio::co_spawn(io, accept_loop(std::move(http), serve_http), asio::detached);
    asio::co_spawn(io, accept_loop(std::move(echo), serve_echo), asio::detached);
    asio::co_spawn(io, accept_loop(std::move(bulk), serve_bulk), asio::detached);

    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](boost::system::error_code, int) { io.stop(); });
    asio::steady_timer limit(io, std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(max_seconds)));
    limit.async_wait([&](boost::system::error_code ec) {
        if (!ec) {
            std::fprintf(stderr, "upstream: --max-seconds reached, exiting\n");
            io.stop();
        }
    });
    std::vector<std::thread> pool;
    for (std::uint64_t i = 1; i < threads; ++i) {
        pool.emplace_back([&] { io.run(); });
    }
    io.run();
    io.stop();
    for (auto& t : pool) {
        t.join();
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------------------
// The load harness: C coroutines, a warm-up, a measured window, and deadlines on every operation

struct load_params {
    tcp::endpoint proxy;  // or the origin itself with --direct
    bool direct = false;
    std::uint64_t connections = 32;
    double seconds = 3;
    double warmup = 0.5;
    std::uint64_t max_ops = 10'000'000;
    std::uint64_t threads = 1;
    double op_timeout = 5;
};

struct load_state {
    std::atomic<bool> stop{false};
    std::atomic<bool> measuring{false};
    std::atomic<std::uint64_t> ops{0};
    std::atomic<std::uint64_t> bytes{0};
    std::atomic<std::uint64_t> errors{0};
    std::atomic<std::uint64_t> timeouts{0};
    std::atomic<int> active{0};
};

// Per connection: its latencies (microseconds, measured window only).
struct load_slot_stats {
    std::vector<std::uint32_t> latencies;
};

// A socket with a deadline: the watchdog closes it when the current operation overruns.
struct guarded_socket {
    explicit guarded_socket(const asio::any_io_executor& ex) : socket(ex), in(socket) {}
    tcp::socket socket;
    reader in;
    clock_type::time_point deadline = clock_type::time_point::max();
    bool fired = false;
    bool finished = false;
};

awaitable<void> watchdog(std::shared_ptr<guarded_socket> g)
{
    asio::steady_timer timer(co_await asio::this_coro::executor);
    while (!g->finished) {
        timer.expires_after(50ms);
        co_await timer.async_wait(use_nothrow);
        if (!g->finished && clock_type::now() > g->deadline && g->socket.is_open()) {
            g->fired = true;
            boost::system::error_code ignored;
            g->socket.close(ignored);
        }
    }
}

// run_load counts every connection as active before spawning it; the coroutine ends its activity.
struct active_guard {
    explicit active_guard(load_state& s) : state(s) {}
    ~active_guard() { state.active.fetch_sub(1); }
    active_guard(const active_guard&) = delete;
    active_guard& operator=(const active_guard&) = delete;
    load_state& state;
};

clock_type::duration to_duration(double seconds)
{
    return std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
}

struct load_result {
    double seconds = 0;
    std::uint64_t ops = 0;
    std::uint64_t bytes = 0;
    std::uint64_t errors = 0;
    std::uint64_t timeouts = 0;
    std::vector<std::uint32_t> latencies;
    // The whole run, warm-up and wind-down included: what the proxy's CPU time (read by run.sh) is divided by.
    std::uint64_t total_ops = 0;
    std::uint64_t total_bytes = 0;
};

// Spawns one coroutine per connection, each on its own strand, runs the warm-up and the measured window, stops
// everything, and returns the counts of the window.
template <class Make>
load_result run_load(const load_params& p, Make make)
{
    asio::io_context io(static_cast<int>(p.threads));
    load_state state;
    std::vector<load_slot_stats> stats(p.connections);
    state.active = static_cast<int>(p.connections);
    for (std::uint64_t i = 0; i < p.connections; ++i) {
        auto strand = asio::make_strand(io);
        asio::co_spawn(strand, make(state, stats[i]), asio::detached);
    }
    std::vector<std::thread> pool;
    for (std::uint64_t i = 0; i < p.threads; ++i) {
        pool.emplace_back([&] { io.run(); });
    }
    auto start = clock_type::now();
    auto warm_end = start + to_duration(p.warmup);
    while (clock_type::now() < warm_end && state.active.load() > 0) {
        std::this_thread::sleep_for(2ms);
    }
    auto t0 = clock_type::now();
    auto ops0 = state.ops.load();
    auto bytes0 = state.bytes.load();
    auto errors0 = state.errors.load();
    auto timeouts0 = state.timeouts.load();
    if (state.active.load() == 0) {
        // Everything finished within the warm-up (a small --bytes): measure the whole run instead.
        t0 = start;
        ops0 = bytes0 = errors0 = timeouts0 = 0;
    }
    state.measuring = true;
    auto end = t0 + to_duration(p.seconds);
    while (clock_type::now() < end && state.active.load() > 0 && state.ops.load() - ops0 < p.max_ops) {
        std::this_thread::sleep_for(2ms);
    }
    state.measuring = false;
    auto t1 = clock_type::now();
    load_result r;
    r.ops = state.ops.load() - ops0;
    r.bytes = state.bytes.load() - bytes0;
    r.errors = state.errors.load() - errors0;
    r.timeouts = state.timeouts.load() - timeouts0;
    r.seconds = std::chrono::duration<double>(t1 - t0).count();
    state.stop = true;
    // In-flight operations finish (or hit their deadline); then the loop is stopped regardless.
    auto grace = clock_type::now() + to_duration(std::min(p.op_timeout, 2.0) + 0.2);
    while (state.active.load() > 0 && clock_type::now() < grace) {
        std::this_thread::sleep_for(2ms);
    }
    io.stop();
    for (auto& t : pool) {
        t.join();
    }
    if (state.active.load() > 0) {
        std::fprintf(stderr, "note: %d connections still busy at the end of the run\n", state.active.load());
    }
    r.total_ops = state.ops.load();
    r.total_bytes = state.bytes.load();
    for (auto& s : stats) {
        r.latencies.insert(r.latencies.end(), s.latencies.begin(), s.latencies.end());
    }
    return r;
}

// CPU seconds this process has used (all threads): shows when the load generator itself is the limit.
double self_cpu_seconds()
{
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
    return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

double percentile(std::vector<std::uint32_t>& v, double q)
{
    if (v.empty()) {
        return 0;
    }
    auto index = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(index), v.end());
    return v[index];
}

void print_rate(const char* metric, load_result& r)
{
    double rate = r.seconds > 0 ? static_cast<double>(r.ops) / r.seconds : 0;
    auto p50 = percentile(r.latencies, 0.50);
    auto p99 = percentile(r.latencies, 0.99);
    std::printf("result metric=%s value=%.1f ops=%llu errors=%llu timeouts=%llu seconds=%.2f p50_us=%.0f p99_us=%.0f "
                "total_ops=%llu client_cpu_s=%.3f\n",
                metric, rate, static_cast<unsigned long long>(r.ops), static_cast<unsigned long long>(r.errors),
                static_cast<unsigned long long>(r.timeouts), r.seconds, p50, p99,
                static_cast<unsigned long long>(r.total_ops), self_cpu_seconds());
    std::fflush(stdout);
}

load_params common_params(options& opt, bool needs_proxy = true)
{
    load_params p;
    p.direct = opt.has("direct");
    if (needs_proxy && !p.direct) {
        p.proxy = parse_endpoint(opt.required("proxy"));
    }
    p.connections = std::max<std::uint64_t>(1, opt.count("connections", 32));
    p.seconds = opt.seconds("seconds", 3);
    p.warmup = opt.seconds("warmup", 0.5);
    p.max_ops = std::max<std::uint64_t>(1, opt.count("max-ops", 10'000'000));
    p.threads = std::max<std::uint64_t>(1, opt.count("threads", 1));
    p.op_timeout = opt.seconds("op-timeout", 5);
    if (p.seconds > 600 || p.warmup > 60) {
        throw std::runtime_error("--seconds is at most 600 and --warmup at most 60");
    }
    return p;
}

// Counts the outcome of one operation that started at `began`.
void account(load_state& state, load_slot_stats& stats, guarded_socket& g, bool ok, clock_type::time_point began)
{
    if (ok) {
        state.ops.fetch_add(1, std::memory_order_relaxed);
        if (state.measuring.load(std::memory_order_relaxed)) {
            auto us = std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - began).count();
            stats.latencies.push_back(static_cast<std::uint32_t>(std::min<long long>(us, UINT32_MAX)));
        }
    } else if (g.fired) {
        state.timeouts.fetch_add(1, std::memory_order_relaxed);
    } else {
        state.errors.fetch_add(1, std::memory_order_relaxed);
    }
}

// After an error, pause briefly so a refusing proxy does not turn the loop into a spin.
awaitable<void> error_pause()
{
    asio::steady_timer pause(co_await asio::this_coro::executor, 5ms);
    co_await pause.async_wait(use_nothrow);
}

awaitable<bool> connect_to(guarded_socket& g, const tcp::endpoint& to)
{
    boost::system::error_code ignored;
    g.socket.close(ignored);
    g.fired = false;
    g.in.reset();
    auto [ec] = co_await g.socket.async_connect(to, use_nothrow);
    if (ec) {
        co_return false;
    }
    set_nodelay(g.socket);
    co_return true;
}

// CONNECT target through the proxy and wait for a 2xx.
awaitable<bool> open_tunnel(guarded_socket& g, const std::string& connect_request)
{
    auto [ec, n] = co_await asio::async_write(g.socket, asio::buffer(connect_request), use_nothrow);
    if (ec) {
        co_return false;
    }
    auto head_size = co_await g.in.until("\r\n\r\n");
    if (head_size == 0) {
        co_return false;
    }
    auto status = status_of(g.in.data().substr(0, head_size));
    g.in.consume(head_size);
    co_return status >= 200 && status < 300;
}

std::string connect_request(const std::string& authority)
{
    return "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n";
}

std::string connect_request(const tcp::endpoint& target) { return connect_request(endpoint_text(target)); }

std::string get_request(const url_parts& url, bool direct, bool close)
{
    std::string r = "GET " + (direct ? url.path : url.absolute) + " HTTP/1.1\r\nHost: " + url.authority +
                    "\r\nUser-Agent: egressd_load\r\nAccept: */*\r\n";
    if (close) {
        r += "Connection: close\r\n";
    }
    return r + "\r\n";
}

// keepalive: persistent connections, one request at a time on each. A response counts when its status is
// --expect-status (200; 403 measures denials); a response that closes the connection is followed by a new one.
int run_keepalive(options& opt)
{
    auto p = common_params(opt);
    auto url = parse_url(opt.required("url"));
    auto expect = opt.count("expect-status", 200);
    opt.check_all_used();
    auto to = p.direct ? url.origin : p.proxy;
    auto request = get_request(url, p.direct, false);
    auto timeout = to_duration(p.op_timeout);
    auto r = run_load(p, [&](load_state& state, load_slot_stats& stats) -> awaitable<void> {
        active_guard active(state);
        auto g = std::make_shared<guarded_socket>(co_await asio::this_coro::executor);
        asio::co_spawn(co_await asio::this_coro::executor, watchdog(g), asio::detached);
        bool connected = false;
        while (!state.stop.load(std::memory_order_relaxed)) {
            auto began = clock_type::now();
            g->deadline = began + timeout;
            if (!connected) {
                connected = co_await connect_to(*g, to);
                if (!connected) {
                    account(state, stats, *g, false, began);
                    co_await error_pause();
                    continue;
                }
            }
            auto [ec, n] = co_await asio::async_write(g->socket, asio::buffer(request), use_nothrow);
            std::optional<response_facts> response;
            if (!ec) {
                response = co_await read_response(g->in);
            }
            bool ok = response && static_cast<std::uint64_t>(response->status) == expect;
            account(state, stats, *g, ok, began);
            if (!ok || response->close) {
                connected = false;  // reconnect; a close here is unexpected and shows up as errors only if !ok
            }
            if (!ok) {
                co_await error_pause();
            }
        }
        g->finished = true;
        boost::system::error_code ignored;
        g->socket.close(ignored);
    });
    print_rate(p.direct ? "keepalive_direct_rps" : "keepalive_rps", r);
    return 0;
}

// download: on each of --connections (default 1) persistent connections, GET the URL (a large Content-Length
// body, /bytes/<n> on the origin) again and again; the body is read straight into a 256 KiB buffer and counted
// as it arrives, so the rate does not jump by whole bodies. Aggregate MB/s (10^6 bytes) of body in the measured
// window; completed counts whole responses.
int run_download(options& opt)
{
    auto p = common_params(opt);
    p.connections = std::max<std::uint64_t>(1, opt.count("connections", 1));
    auto url = parse_url(opt.required("url"));
    opt.check_all_used();
    auto to = p.direct ? url.origin : p.proxy;
    auto request = get_request(url, p.direct, false);
    auto timeout = to_duration(p.op_timeout);
    auto r = run_load(p, [&](load_state& state, load_slot_stats&) -> awaitable<void> {
        active_guard active(state);
        auto g = std::make_shared<guarded_socket>(co_await asio::this_coro::executor);
        asio::co_spawn(co_await asio::this_coro::executor, watchdog(g), asio::detached);
        std::vector<char> buffer(bulk_chunk);
        bool connected = false;
        bool ok = true;
        while (ok && !state.stop.load(std::memory_order_relaxed)) {
            g->deadline = clock_type::now() + timeout;
            if (!connected) {
                connected = co_await connect_to(*g, to);
                ok = connected;
                if (!ok) {
                    break;
                }
            }
            auto [ec, n] = co_await asio::async_write(g->socket, asio::buffer(request), use_nothrow);
            ok = !ec;
            std::size_t head_size = 0;
            if (ok) {
                head_size = co_await g->in.until("\r\n\r\n");
                ok = head_size != 0;
            }
            head_facts facts;
            if (ok) {
                facts = parse_head(g->in.data().substr(0, head_size));
                ok = status_of(facts.start_line) == 200 && facts.content_length && !facts.chunked;
            }
            if (!ok) {
                break;
            }
            auto remaining = *facts.content_length;
            bool close = facts.close;
            g->in.consume(head_size);
            auto buffered = std::min<std::uint64_t>(remaining, g->in.size());
            g->in.consume(buffered);
            remaining -= buffered;
            state.bytes.fetch_add(buffered, std::memory_order_relaxed);
            while (ok && remaining > 0 && !state.stop.load(std::memory_order_relaxed)) {
                g->deadline = clock_type::now() + timeout;
                auto take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, buffer.size()));
                auto [rec, got] = co_await g->socket.async_read_some(asio::buffer(buffer.data(), take), use_nothrow);
                ok = !rec;
                remaining -= got;
                state.bytes.fetch_add(got, std::memory_order_relaxed);
            }
            if (ok && remaining == 0) {
                state.ops.fetch_add(1, std::memory_order_relaxed);
                connected = !close;
            }
        }
        if (!ok && !state.stop.load()) {
            (g->fired ? state.timeouts : state.errors).fetch_add(1);
        }
        g->finished = true;
        boost::system::error_code ignored;
        g->socket.close(ignored);
    });
    double mbps = r.seconds > 0 ? static_cast<double>(r.bytes) / 1e6 / r.seconds : 0;
    std::printf("result metric=%s value=%.1f bytes=%llu connections=%llu completed=%llu errors=%llu timeouts=%llu "
                "seconds=%.2f total_bytes=%llu client_cpu_s=%.3f\n",
                p.direct ? "download_direct_mbps" : "download_mbps", mbps, static_cast<unsigned long long>(r.bytes),
                static_cast<unsigned long long>(p.connections), static_cast<unsigned long long>(r.ops),
                static_cast<unsigned long long>(r.errors), static_cast<unsigned long long>(r.timeouts), r.seconds,
                static_cast<unsigned long long>(r.total_bytes), self_cpu_seconds());
    std::fflush(stdout);
    return 0;
}

// newconn: a new connection per request (Connection: close); waits for the server's close before closing.
int run_newconn(options& opt)
{
    auto p = common_params(opt);
    auto url = parse_url(opt.required("url"));
    opt.check_all_used();
    auto to = p.direct ? url.origin : p.proxy;
    auto request = get_request(url, p.direct, true);
    auto timeout = to_duration(p.op_timeout);
    auto r = run_load(p, [&](load_state& state, load_slot_stats& stats) -> awaitable<void> {
        active_guard active(state);
        auto g = std::make_shared<guarded_socket>(co_await asio::this_coro::executor);
        asio::co_spawn(co_await asio::this_coro::executor, watchdog(g), asio::detached);
        while (!state.stop.load(std::memory_order_relaxed)) {
            auto began = clock_type::now();
            g->deadline = began + timeout;
            bool ok = co_await connect_to(*g, to);
            if (ok) {
                auto [ec, n] = co_await asio::async_write(g->socket, asio::buffer(request), use_nothrow);
                std::optional<response_facts> response;
                if (!ec) {
                    response = co_await read_response(g->in);
                }
                ok = response && response->status == 200;
                if (ok) {
                    // The proxy must close after a Connection: close exchange; wait for it.
                    g->in.consume(g->in.size());
                    ok = co_await g->in.drain_to_eof();
                }
            }
            boost::system::error_code ignored;
            g->socket.close(ignored);
            account(state, stats, *g, ok, began);
            if (!ok) {
                co_await error_pause();
            }
        }
        g->finished = true;
    });
    print_rate(p.direct ? "newconn_direct_cps" : "newconn_cps", r);
    return 0;
}

// tunnels: CONNECT to the echo port on a new connection, one round trip of the tunnel's first bytes (16 bytes, or
// a TLS ClientHello with --hello-sni, or --first-bytes-hex), half-close, wait for the upstream's close to come
// back through the tunnel, close. --connect-host NAME puts NAME:port (port of --target) in the CONNECT instead
// of the address, for the proxy to resolve (only names under .test and .localhost).
int run_tunnels(options& opt)
{
    auto p = common_params(opt);
    auto target = parse_endpoint(opt.required("target"));
    std::string first = "0123456789abcdef";
    bool sni = opt.has("hello-sni");
    bool hex = opt.has("first-bytes-hex");
    if (sni && hex) {
        throw std::runtime_error("--hello-sni and --first-bytes-hex exclude each other");
    }
    auto hello_size = opt.count("hello-size", 512);
    if (opt.has("hello-size") && !sni) {
        throw std::runtime_error("--hello-size goes with --hello-sni");
    }
    if (sni) {
        first = client_hello(reserved_name(opt.required("hello-sni")), hello_size);
    } else if (hex) {
        first = from_hex(opt.required("first-bytes-hex"));
    }
    auto request = connect_request(target);
    if (opt.has("connect-host")) {
        request = connect_request(reserved_name(opt.required("connect-host")) + ":" + std::to_string(target.port()));
    }
    opt.check_all_used();
    auto to = p.direct ? target : p.proxy;
    auto timeout = to_duration(p.op_timeout);
    auto r = run_load(p, [&](load_state& state, load_slot_stats& stats) -> awaitable<void> {
        active_guard active(state);
        auto g = std::make_shared<guarded_socket>(co_await asio::this_coro::executor);
        asio::co_spawn(co_await asio::this_coro::executor, watchdog(g), asio::detached);
        while (!state.stop.load(std::memory_order_relaxed)) {
            auto began = clock_type::now();
            g->deadline = began + timeout;
            bool ok = co_await connect_to(*g, to);
            if (ok && !p.direct) {
                ok = co_await open_tunnel(*g, request);
            }
            if (ok) {
                auto [ec, n] = co_await asio::async_write(g->socket, asio::buffer(first), use_nothrow);
                ok = !ec;
                if (ok) {
                    ok = co_await g->in.ensure(first.size());
                }
                ok = ok && g->in.data().substr(0, first.size()) == first;
            }
            if (ok) {
                g->in.consume(first.size());
                boost::system::error_code sec;
                g->socket.shutdown(tcp::socket::shutdown_send, sec);
                ok = !sec && g->in.size() == 0;
                if (ok) {
                    ok = co_await g->in.drain_to_eof();
                }
            }
            boost::system::error_code ignored;
            g->socket.close(ignored);
            account(state, stats, *g, ok, began);
            if (!ok) {
                co_await error_pause();
            }
        }
        g->finished = true;
    });
    print_rate(p.direct ? "tunnels_direct_tps" : "tunnels_tps", r);
    return 0;
}

// bulk: N tunnels (or direct connections) each fetch `bytes` from the bulk port; aggregate MB/s (10^6 bytes) in
// the measured window.
int run_bulk(options& opt)
{
    auto p = common_params(opt);
    auto target = parse_endpoint(opt.required("target"));
    p.connections = std::max<std::uint64_t>(1, opt.count("tunnels", 1));
    auto bytes = opt.count("bytes", std::uint64_t{1} << 40);
    auto upload = opt.str("direction", "down") == "up";
    opt.check_all_used();
    auto to = p.direct ? target : p.proxy;
    auto request = connect_request(target);
    auto command = std::string(upload ? "PUT " : "GET ") + std::to_string(bytes) + "\n";
    // A stall (no progress for op-timeout) counts as a timeout.
    auto timeout = to_duration(p.op_timeout);
    auto r = run_load(p, [&](load_state& state, load_slot_stats&) -> awaitable<void> {
        active_guard active(state);
        auto g = std::make_shared<guarded_socket>(co_await asio::this_coro::executor);
        asio::co_spawn(co_await asio::this_coro::executor, watchdog(g), asio::detached);
        g->deadline = clock_type::now() + timeout;
        bool ok = co_await connect_to(*g, to);
        if (ok && !p.direct) {
            ok = co_await open_tunnel(*g, request);
        }
        if (ok) {
            auto [ec, n] = co_await asio::async_write(g->socket, asio::buffer(command), use_nothrow);
            ok = !ec;
        }
        std::uint64_t moved = 0;
        if (ok && !upload) {
            moved = g->in.size();
            state.bytes.fetch_add(moved, std::memory_order_relaxed);
            std::vector<char> buffer(bulk_chunk);
            while (ok && moved < bytes && !state.stop.load(std::memory_order_relaxed)) {
                g->deadline = clock_type::now() + timeout;
                auto [ec, n] = co_await g->socket.async_read_some(asio::buffer(buffer), use_nothrow);
                ok = !ec;
                moved += n;
                state.bytes.fetch_add(n, std::memory_order_relaxed);
            }
        } else if (ok) {
            const auto& data = bulk_data();
            while (ok && moved < bytes && !state.stop.load(std::memory_order_relaxed)) {
                g->deadline = clock_type::now() + timeout;
                auto take = static_cast<std::size_t>(std::min<std::uint64_t>(bytes - moved, data.size()));
                auto [ec, n] = co_await asio::async_write(g->socket, asio::buffer(data.data(), take), use_nothrow);
                ok = !ec;
                moved += n;
                state.bytes.fetch_add(n, std::memory_order_relaxed);
            }
        }
        if (ok || state.stop.load()) {
            state.ops.fetch_add(moved >= bytes ? 1 : 0);
        } else if (g->fired) {
            state.timeouts.fetch_add(1);
        } else {
            state.errors.fetch_add(1);
        }
        g->finished = true;
        boost::system::error_code ignored;
        g->socket.close(ignored);
    });
    double mbps = r.seconds > 0 ? static_cast<double>(r.bytes) / 1e6 / r.seconds : 0;
    std::printf("result metric=%s value=%.1f bytes=%llu tunnels=%llu completed=%llu errors=%llu timeouts=%llu "
                "seconds=%.2f total_bytes=%llu client_cpu_s=%.3f\n",
                p.direct ? "bulk_direct_mbps" : "bulk_mbps", mbps, static_cast<unsigned long long>(r.bytes),
                static_cast<unsigned long long>(p.connections), static_cast<unsigned long long>(r.ops),
                static_cast<unsigned long long>(r.errors), static_cast<unsigned long long>(r.timeouts), r.seconds,
                static_cast<unsigned long long>(r.total_bytes), self_cpu_seconds());
    std::fflush(stdout);
    return 0;
}

// idle: open N tunnels to the echo port (one round trip each, so both legs exist), print "ready", hold them
// until a line (or EOF) on stdin or --hold seconds, then close them all.
int run_idle(options& opt)
{
    auto proxy = parse_endpoint(opt.required("proxy"));
    auto target = parse_endpoint(opt.required("target"));
    auto n = std::max<std::uint64_t>(1, opt.count("tunnels", 1000));
    auto parallel = std::max<std::uint64_t>(1, opt.count("parallel", 64));
    auto hold = opt.seconds("hold", 120);
    auto open_seconds = opt.seconds("seconds", 30);
    auto op_timeout = to_duration(opt.seconds("op-timeout", 5));
    opt.check_all_used();
    if (n > 100'000 || hold > 600 || open_seconds > 600) {
        throw std::runtime_error("--tunnels at most 100000, --hold and --seconds at most 600");
    }
    asio::io_context io(1);
    auto request = connect_request(target);
    std::vector<std::shared_ptr<guarded_socket>> tunnels(n);
    std::atomic<std::uint64_t> next{0};
    std::atomic<std::uint64_t> opened{0};
    std::atomic<std::uint64_t> failed{0};
    for (std::uint64_t lane = 0; lane < std::min(parallel, n); ++lane) {
        asio::co_spawn(io, [&]() -> awaitable<void> {
            for (auto i = next.fetch_add(1); i < n; i = next.fetch_add(1)) {
                auto g = std::make_shared<guarded_socket>(co_await asio::this_coro::executor);
                tunnels[i] = g;
                asio::co_spawn(co_await asio::this_coro::executor, watchdog(g), asio::detached);
                g->deadline = clock_type::now() + op_timeout;
                bool ok = co_await connect_to(*g, proxy);
                if (ok) {
                    ok = co_await open_tunnel(*g, request);
                }
                if (ok) {
                    auto [ec, written] = co_await asio::async_write(g->socket, asio::buffer(std::string_view("ping")),
                                                                    use_nothrow);
                    ok = !ec;
                    if (ok) {
                        ok = co_await g->in.ensure(4);
                    }
                    g->in.reset();
                }
                g->deadline = clock_type::time_point::max();
                g->finished = true;  // stops the watchdog; the socket stays open and idle
                (ok ? opened : failed).fetch_add(1);
            }
        }, asio::detached);
    }
    std::thread runner([&] { io.run(); });
    auto open_end = clock_type::now() + to_duration(open_seconds);
    while (opened.load() + failed.load() < n && clock_type::now() < open_end) {
        std::this_thread::sleep_for(5ms);
    }
    std::printf("ready opened=%llu failed=%llu\n", static_cast<unsigned long long>(opened.load()),
                static_cast<unsigned long long>(failed.load()));
    std::fflush(stdout);
    pollfd in{0, POLLIN, 0};
    auto hold_ms = static_cast<int>(hold * 1000);
    ::poll(&in, 1, hold_ms);
    // Close on the loop's thread, then stop.
    asio::post(io, [&] {
        for (auto& t : tunnels) {
            if (t) {
                boost::system::error_code ignored;
                t->socket.close(ignored);
            }
        }
        io.stop();
    });
    runner.join();
    std::printf("result metric=idle_tunnels value=%llu failed=%llu\n", static_cast<unsigned long long>(opened.load()),
                static_cast<unsigned long long>(failed.load()));
    std::fflush(stdout);
    return opened.load() == n ? 0 : 1;
}

// hello: prints the ClientHello that tunnels --hello-sni sends, as hex (one line), for checking it elsewhere.
int run_hello(options& opt)
{
    auto name = reserved_name(opt.required("sni"));
    auto size = opt.count("hello-size", 512);
    opt.check_all_used();
    std::printf("%s\n", to_hex(client_hello(name, size)).c_str());
    return 0;
}

// freeport: a loopback port that was free a moment ago (for Squid, which cannot take port 0).
int run_freeport(options& opt)
{
    opt.check_all_used();
    asio::io_context io;
    auto acceptor = open_acceptor(io, 0);
    std::printf("%u\n", acceptor.local_endpoint().port());
    return 0;
}

const char* usage =
    "usage: egressd_load SUBCOMMAND [options]\n"
    "  upstream  [--http-port P] [--echo-port E] [--bulk-port B] [--threads T] [--max-seconds S]\n"
    "  keepalive --proxy ADDR:PORT --url http://127.0.0.1:P/small [--direct] [--expect-status S] [common]\n"
    "  newconn   --proxy ADDR:PORT --url http://127.0.0.1:P/small [--direct] [common]\n"
    "  download  --proxy ADDR:PORT --url http://127.0.0.1:P/bytes/N [--direct] [common, --connections 1]\n"
    "  tunnels   --proxy ADDR:PORT --target 127.0.0.1:E [--direct] [--connect-host NAME]\n"
    "            [--hello-sni NAME [--hello-size N] | --first-bytes-hex HEX] [common]\n"
    "  bulk      --proxy ADDR:PORT --target 127.0.0.1:B [--direct] [--tunnels N] [--bytes B] [--direction down|up]"
    " [common]\n"
    "  idle      --proxy ADDR:PORT --target 127.0.0.1:E [--tunnels N] [--parallel K] [--hold S] [--seconds S]\n"
    "  hello     --sni NAME [--hello-size N]\n"
    "  freeport\n"
    "common: --connections C (32) --seconds S (3) --warmup W (0.5) --max-ops N --threads T (1) --op-timeout S (5)\n"
    "Only 127.0.0.1 and ::1 are accepted as addresses.\n";

}  // namespace

int main(int argc, char** argv)
{
    if (argc < 2 || std::string_view(argv[1]) == "--help" || std::string_view(argv[1]) == "-h") {
        std::fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    std::string_view command = argv[1];
    try {
        options::declare_flag("direct");
        options opt(argc, argv, 2);
        if (command == "upstream") {
            return run_upstream(opt);
        }
        if (command == "keepalive") {
            return run_keepalive(opt);
        }
        if (command == "newconn") {
            return run_newconn(opt);
        }
        if (command == "download") {
            return run_download(opt);
        }
        if (command == "tunnels") {
            return run_tunnels(opt);
        }
        if (command == "bulk") {
            return run_bulk(opt);
        }
        if (command == "idle") {
            return run_idle(opt);
        }
        if (command == "hello") {
            return run_hello(opt);
        }
        if (command == "freeport") {
            return run_freeport(opt);
        }
        std::fprintf(stderr, "unknown subcommand %s\n%s", argv[1], usage);
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "egressd_load %s: %s\n", argv[1], e.what());
        return 2;
    }
}
