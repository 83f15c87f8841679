#pragma once

// Loopback webhook test helpers. A webhook receiver on 127.0.0.1 (port 0) for the approvals notifier's and the alert sinks' tests: a
// synchronous Beast server on its own thread, one connection at a time, plain or TLS, that records every
// request and answers the scripted statuses in order, then `otherwise` (0: read the request, then hold the
// connection unanswered until the receiver is destroyed).

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace egressd::test_support {

struct recorded_request {
    std::string method;
    std::string target;
    std::map<std::string, std::string> headers;  // names in lower case
    std::string body;
    std::string sni;  // TLS only

    std::string header(const std::string& name) const
    {
        auto it = headers.find(name);
        return it == headers.end() ? std::string() : it->second;
    }
};

class webhook_receiver {
public:
    explicit webhook_receiver(std::vector<unsigned> replies = {}, std::shared_ptr<boost::asio::ssl::context> tls = nullptr,
                              unsigned otherwise = 200)
        : replies_(replies.begin(), replies.end()), otherwise_(otherwise), tls_(std::move(tls)),
          acceptor_(io_, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0))
    {
        thread_ = std::thread([this] { serve(); });
    }
    // Answers every request with status (0: holds every connection unanswered).
    static webhook_receiver answering(unsigned status) { return webhook_receiver({}, nullptr, status); }
    ~webhook_receiver()
    {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
            if (current_ >= 0) {
                ::shutdown(current_, SHUT_RDWR);
            }
        }
        changed_.notify_all();
        // A connection of our own ends a blocked accept().
        boost::asio::io_context io;
        boost::asio::ip::tcp::socket poke(io);
        boost::system::error_code ec;
        poke.connect(acceptor_.local_endpoint(), ec);
        thread_.join();
    }
    webhook_receiver(const webhook_receiver&) = delete;
    webhook_receiver& operator=(const webhook_receiver&) = delete;

    std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
    std::string url(std::string_view path = "/hook") const
    {
        return "http://127.0.0.1:" + std::to_string(port()) + std::string(path);
    }

    std::vector<recorded_request> requests() const
    {
        std::lock_guard lock(mutex_);
        return requests_;
    }
    bool wait_for_requests(std::size_t n, std::chrono::milliseconds limit = std::chrono::seconds(5)) const
    {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, limit, [&] { return requests_.size() >= n; });
    }

private:
    void serve()
    {
        for (;;) {
            boost::asio::ip::tcp::socket socket(io_);
            boost::system::error_code ec;
            acceptor_.accept(socket, ec);
            {
                std::lock_guard lock(mutex_);
                if (stopping_ || ec) {
                    return;
                }
                current_ = socket.native_handle();
            }
            if (tls_) {
                boost::asio::ssl::stream<boost::asio::ip::tcp::socket> stream(std::move(socket), *tls_);
                stream.handshake(boost::asio::ssl::stream_base::server, ec);
                if (!ec) {
                    const char* name = SSL_get_servername(stream.native_handle(), TLSEXT_NAMETYPE_host_name);
                    handle(stream, name != nullptr ? name : "");
                }
            } else {
                handle(socket, "");
            }
            std::lock_guard lock(mutex_);
            current_ = -1;
        }
    }

    template <class Stream>
    void handle(Stream& stream, std::string sni)
    {
        namespace http = boost::beast::http;
        boost::beast::flat_buffer buffer;
        http::request<http::string_body> req;
        boost::system::error_code ec;
        http::read(stream, buffer, req, ec);
        if (ec) {
            return;
        }
        recorded_request r;
        r.method = std::string(req.method_string());
        r.target = std::string(req.target());
        for (const auto& field : req) {
            std::string name(field.name_string());
            std::transform(name.begin(), name.end(), name.begin(),
                           [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
            r.headers[name] = std::string(field.value());
        }
        r.body = req.body();
        r.sni = std::move(sni);
        unsigned status = otherwise_;
        {
            std::unique_lock lock(mutex_);
            requests_.push_back(std::move(r));
            if (!replies_.empty()) {
                status = replies_.front();
                replies_.pop_front();
            }
            changed_.notify_all();
            if (status == 0) {
                changed_.wait(lock, [&] { return stopping_; });
                return;
            }
        }
        http::response<http::string_body> res{static_cast<http::status>(status), 11};
        res.body() = "ok";
        res.keep_alive(false);
        res.prepare_payload();
        http::write(stream, res, ec);
    }

    mutable std::mutex mutex_;
    mutable std::condition_variable changed_;
    std::deque<unsigned> replies_;
    unsigned otherwise_;
    std::vector<recorded_request> requests_;
    bool stopping_ = false;
    int current_ = -1;
    std::shared_ptr<boost::asio::ssl::context> tls_;
    boost::asio::io_context io_;
    boost::asio::ip::tcp::acceptor acceptor_;
    std::thread thread_;
};

// A loopback port that refuses connections: bound but never listening, and held for the test's lifetime so
// that no test running in parallel can take it and accept.
class refused_port {
public:
    refused_port() : socket_(io_)
    {
        socket_.open(boost::asio::ip::tcp::v4());
        socket_.bind({boost::asio::ip::make_address("127.0.0.1"), 0});
    }
    std::uint16_t port() const { return socket_.local_endpoint().port(); }
    std::string url(std::string_view path = "/hook") const
    {
        return "http://127.0.0.1:" + std::to_string(port()) + std::string(path);
    }

private:
    boost::asio::io_context io_;
    boost::asio::ip::tcp::socket socket_;
};

// "sha256=" + hex HMAC-SHA256(secret, timestamp + "." + body) through EVP_MAC, not the code under test, as a
// receiver would check a signed delivery.
inline std::string expected_signature(std::string_view secret, std::string_view timestamp, std::string_view body)
{
    std::string message = std::string(timestamp) + "." + std::string(body);
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    std::size_t size = 0;
    if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, secret.data(), secret.size(),
                  reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac.data(), mac.size(),
                  &size) == nullptr) {
        throw std::runtime_error("EVP_Q_mac failed");
    }
    std::string out = "sha256=";
    static constexpr char digits[] = "0123456789abcdef";
    for (std::size_t i = 0; i < size; ++i) {
        out += digits[mac[i] >> 4];
        out += digits[mac[i] & 0xf];
    }
    return out;
}

}  // namespace egressd::test_support
