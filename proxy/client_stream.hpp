#pragma once

#include <boost/asio/async_result.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>

#include <memory>
#include <utility>

namespace egressd::proxy {

// The client side of a session: a plain TCP socket, or TLS over it on a TLS listener. One type for both, so
// the session's HTTP and tunnel code is written once; the branch per read or write costs nothing measurable
// next to the system call. Meets Asio's AsyncReadStream and AsyncWriteStream.
// Thread contract: its session's (worker's) thread only.
class client_stream {
public:
    using executor_type = boost::asio::ip::tcp::socket::executor_type;
    using tls_stream = boost::asio::ssl::stream<boost::asio::ip::tcp::socket&>;

    explicit client_stream(boost::asio::ip::tcp::socket socket) : socket_(std::move(socket)) {}
    // The TLS stream refers to socket_: a moved or copied client_stream would leave it pointing elsewhere.
    client_stream(const client_stream&) = delete;
    client_stream& operator=(const client_stream&) = delete;

    executor_type get_executor() { return socket_.get_executor(); }
    boost::asio::ip::tcp::socket& socket() { return socket_; }

    // From now on bytes go through TLS with this context (kept alive as long as the connection).
    tls_stream& start_tls(std::shared_ptr<boost::asio::ssl::context> context)
    {
        context_ = std::move(context);
        tls_ = std::make_unique<tls_stream>(socket_, *context_);
        return *tls_;
    }
    tls_stream* tls() { return tls_.get(); }

    template <typename MutableBuffers, typename Token>
    auto async_read_some(const MutableBuffers& buffers, Token&& token)
    {
        return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
            [this](auto handler, const MutableBuffers& b) {
                if (tls_) {
                    tls_->async_read_some(b, std::move(handler));
                } else {
                    socket_.async_read_some(b, std::move(handler));
                }
            },
            token, buffers);
    }

    template <typename ConstBuffers, typename Token>
    auto async_write_some(const ConstBuffers& buffers, Token&& token)
    {
        return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
            [this](auto handler, const ConstBuffers& b) {
                if (tls_) {
                    tls_->async_write_some(b, std::move(handler));
                } else {
                    socket_.async_write_some(b, std::move(handler));
                }
            },
            token, buffers);
    }

private:
    boost::asio::ip::tcp::socket socket_;
    std::shared_ptr<boost::asio::ssl::context> context_;  // before tls_: destroyed after the stream using it
    std::unique_ptr<tls_stream> tls_;  // on the heap: a plain connection would carry its few hundred bytes idle
};

}  // namespace egressd::proxy
