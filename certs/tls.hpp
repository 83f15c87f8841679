#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace boost::asio::ssl {
class context;
}
struct ssl_st;

namespace egressd::certs {

// What the TLS listener (an HTTPS proxy) serves and how it checks its clients.
struct tls_server_files {
    std::filesystem::path certificate;  // PEM: the server certificate, then any intermediates
    std::filesystem::path key;          // PEM private key
    std::optional<std::filesystem::path> client_ca;  // PEM CA certificates that client certificates must chain to
    std::optional<std::filesystem::path> crl;        // PEM CRLs (one or more): revoked client certificates
    bool require_client_certificate = true;           // with client_ca: no certificate, no connection
};

// Which of the files an error is about, so a caller can point at the setting that names it (two settings may
// name the same file: a certificate and its key in one PEM, say).
enum class tls_file : unsigned char { certificate, key, client_ca, crl };

struct tls_file_error {
    tls_file file;
    std::string message;  // starts with the file's path, then what is wrong with it
};

struct tls_server_context {
    std::shared_ptr<boost::asio::ssl::context> context;  // null when there is any error
    std::vector<tls_file_error> errors;
};

// Builds a server context: TLS 1.2 and 1.3 only, the key must match the certificate, client certificates
// are verified against client_ca and checked against every CRL (for each certificate of the chain, so an
// intermediate CA without a CRL fails closed). Reads the files now: call again to pick up changed files.
tls_server_context make_tls_server_context(const tls_server_files& files);

// Where a client's identity came from: the first URI SAN (a SPIFFE id, say), else the first DNS SAN, else
// the subject CN.
enum class identity_field : unsigned char { uri_san, dns_san, common_name };
std::string_view to_string(identity_field f);

struct peer_identity {
    std::optional<std::string> value;  // nothing: no certificate, or one without a usable name
    identity_field field = identity_field::common_name;
    std::string error;  // set when the preferred name is unusable (control characters, NUL, empty, too long)
};

// The identity of the verified peer certificate of a finished handshake.
peer_identity identity_of(ssl_st* ssl);

// Verifies the client certificate of an established connection again, against the CAs and CRLs of another
// (reloaded) server context: a certificate revoked since the handshake fails here. Empty when it still
// verifies (or the connection has no client certificate); otherwise why not, in OpenSSL's words.
std::string verify_peer_again(ssl_st* ssl, boost::asio::ssl::context& context);

// Why a server-side handshake failed, for the refusal event.
enum class handshake_refusal : unsigned char {
    client_cert_missing,   // a certificate is required and the client sent none
    client_cert_rejected,  // the certificate did not verify: detail says why ("certificate revoked")
    tls_handshake_failed,  // anything else: not TLS, no common version or cipher, a cut connection
    client_closed,         // not a refusal: the client left before sending a byte (a health check, a port probe)
};
std::string_view to_string(handshake_refusal r);
struct handshake_failure {
    handshake_refusal kind = handshake_refusal::tls_handshake_failed;
    std::string detail;  // in OpenSSL's words
    // client_cert_rejected: the rejected certificate's subject (RFC 2253, non-ASCII escaped) and serial (hex).
    std::string subject;
    std::string serial;
};
// error_value: the failed handshake's error code value (an OpenSSL error, or 0 with the message given).
handshake_failure why_handshake_failed(ssl_st* ssl, unsigned long error_value, std::string_view message);

}  // namespace egressd::certs
