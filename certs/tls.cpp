#include "certs/tls.hpp"

#include <boost/asio/ssl/context.hpp>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <system_error>

namespace egressd::certs {
namespace {

// OpenSSL's reason for a failure: the first error queued is the cause ("no start line"), later ones wrap it
// ("PEM lib"). The queue is emptied so the next call starts clean.
std::string openssl_reason()
{
    unsigned long code = ERR_peek_error();
    std::string reason = code != 0 && ERR_reason_error_string(code) != nullptr ? ERR_reason_error_string(code)
                                                                                : std::string("unknown error");
    ERR_clear_error();
    return reason;
}

struct bio_closer {
    void operator()(BIO* b) const { BIO_free(b); }
};

// OpenSSL forgets the peer certificate when its verification fails; the refusal event still names it, so the
// verify callback keeps a reference to the leaf in the connection's ex_data, freed with the SSL object.
void free_rejected(void* /*parent*/, void* ptr, CRYPTO_EX_DATA* /*ad*/, int /*idx*/, long /*argl*/, void* /*argp*/)
{
    X509_free(static_cast<X509*>(ptr));
}

int rejected_index()
{
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, free_rejected);
    return index;
}

int remember_rejected(int preverify_ok, X509_STORE_CTX* store)
{
    if (preverify_ok == 1) {
        return preverify_ok;
    }
    auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    X509* leaf = X509_STORE_CTX_get0_cert(store);
    if (ssl != nullptr && leaf != nullptr && SSL_get_ex_data(ssl, rejected_index()) == nullptr &&
        X509_up_ref(leaf) == 1) {
        if (SSL_set_ex_data(ssl, rejected_index(), leaf) != 1) {
            X509_free(leaf);
        }
    }
    return preverify_ok;
}

// The longest subject a refusal event carries: the client chose it.
constexpr std::size_t max_subject = 1024;

std::string subject_text(X509* cert)
{
    std::unique_ptr<BIO, bio_closer> out(BIO_new(BIO_s_mem()));
    // RFC 2253 order and escaping; ESC_MSB (part of XN_FLAG_RFC2253) writes bytes above 0x7f as \XX.
    if (!out || X509_NAME_print_ex(out.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) < 0) {
        ERR_clear_error();
        return {};
    }
    char* data = nullptr;
    long size = BIO_get_mem_data(out.get(), &data);
    return size > 0 ? std::string(data, std::min(static_cast<std::size_t>(size), max_subject)) : std::string();
}

std::string serial_text(X509* cert)
{
    std::unique_ptr<BIGNUM, decltype(&BN_free)> number(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr),
                                                       &BN_free);
    if (!number) {
        ERR_clear_error();
        return {};
    }
    char* hex = BN_bn2hex(number.get());
    if (hex == nullptr) {
        ERR_clear_error();
        return {};
    }
    std::string text(hex);
    OPENSSL_free(hex);
    return text;
}

// A file that is missing or unreadable is named as such, not as an OpenSSL parse failure.
bool readable(const std::filesystem::path& file, tls_file role, std::string_view what,
              std::vector<tls_file_error>& errors)
{
    std::unique_ptr<BIO, bio_closer> bio(BIO_new_file(file.c_str(), "r"));
    if (!bio) {
        ERR_clear_error();
        std::error_code ec(errno, std::generic_category());
        errors.push_back({role, file.string() + ": cannot read the " + std::string(what) + ": " + ec.message()});
        return false;
    }
    return true;
}

std::string bio_text(BIO* bio)
{
    char* data = nullptr;
    long size = BIO_get_mem_data(bio, &data);
    return size > 0 ? std::string(data, static_cast<std::size_t>(size)) : std::string();
}

std::string time_text(const ASN1_TIME* t)
{
    std::unique_ptr<BIO, bio_closer> bio(BIO_new(BIO_s_mem()));
    ASN1_TIME_print(bio.get(), t);
    return bio_text(bio.get());
}

std::string name_text(const X509_NAME* name)
{
    std::unique_ptr<BIO, bio_closer> bio(BIO_new(BIO_s_mem()));
    X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253);
    return bio_text(bio.get());
}

std::size_t add_crls(X509_STORE* store, const std::filesystem::path& file, std::vector<tls_file_error>& errors)
{
    std::unique_ptr<BIO, bio_closer> bio(BIO_new_file(file.c_str(), "r"));
    std::size_t count = 0;
    for (;;) {
        X509_CRL* crl = PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr);
        if (crl == nullptr) {
            break;
        }
        // An expired CRL fails every handshake it covers ("CRL has expired"): refused here, so a reload keeps
        // the running files instead of turning into an outage.
        if (const ASN1_TIME* next = X509_CRL_get0_nextUpdate(crl); next != nullptr && X509_cmp_current_time(next) < 0) {
            errors.push_back({tls_file::crl, file.string() + ": the CRL of " + name_text(X509_CRL_get_issuer(crl)) +
                                                 " expired on " + time_text(next) + ": issue a new one"});
            X509_CRL_free(crl);
            return count;
        }
        bool added = X509_STORE_add_crl(store, crl) == 1;
        X509_CRL_free(crl);
        if (!added) {
            errors.push_back({tls_file::crl, file.string() + ": cannot use a CRL: " + openssl_reason()});
            return count;
        }
        ++count;
    }
    // The loop ends on "no more PEM blocks" after the last CRL; anything else is a broken file.
    unsigned long code = ERR_peek_last_error();
    if (code != 0 && !(ERR_GET_LIB(code) == ERR_LIB_PEM && ERR_GET_REASON(code) == PEM_R_NO_START_LINE)) {
        errors.push_back({tls_file::crl, file.string() + ": not a PEM CRL file: " + openssl_reason()});
        return count;
    }
    ERR_clear_error();
    if (count == 0) {
        errors.push_back(
            {tls_file::crl, file.string() + ": no CRL in the file: expected PEM blocks \"-----BEGIN X509 CRL-----\""});
    }
    return count;
}

// PKCS#8 "ENCRYPTED PRIVATE KEY" or a traditional key with a "Proc-Type: 4,ENCRYPTED" header.
bool encrypted_key(const std::filesystem::path& file)
{
    std::unique_ptr<BIO, bio_closer> bio(BIO_new_file(file.c_str(), "r"));
    char line[256];
    for (int i = 0; bio && i < 4 && BIO_gets(bio.get(), line, sizeof line) > 0; ++i) {
        std::string_view text(line);
        if (text.find("ENCRYPTED") != std::string_view::npos) {
            return true;
        }
    }
    return false;
}

// The same rule the policy applies to identities it names, so a certificate name either can match a
// client or is refused outright: printable ASCII without spaces, at most 2048 bytes.
bool usable_identity(std::string_view text)
{
    return !text.empty() && text.size() <= 2048 &&
           std::all_of(text.begin(), text.end(), [](char c) { return c > ' ' && c < 0x7f; });
}

std::string asn1_text(const ASN1_STRING* s)
{
    return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                       static_cast<std::size_t>(ASN1_STRING_length(s)));
}

struct general_names_closer {
    void operator()(GENERAL_NAMES* names) const { GENERAL_NAMES_free(names); }
};

}  // namespace

tls_server_context make_tls_server_context(const tls_server_files& files)
{
    tls_server_context result;
    auto& errors = result.errors;
    auto context = std::make_shared<boost::asio::ssl::context>(boost::asio::ssl::context::tls_server);
    SSL_CTX* ctx = context->native_handle();
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    // Renegotiation would let a client change its certificate mid-connection, after its identity was taken.
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_TICKET);
    // No resumption: a resumed session skips the certificate check, so a CRL reloaded since would not apply.
    // (Under TLS 1.3, SSL_OP_NO_TICKET only stops stateful tickets: no tickets at all is num_tickets 0.)
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 0);
    // OpenSSL's default would ask for a passphrase on the terminal, hanging start-up or a SIGHUP reload.
    SSL_CTX_set_default_passwd_cb(ctx, [](char*, int, int, void*) { return 0; });

    if (readable(files.certificate, tls_file::certificate, "certificate", errors) &&
        SSL_CTX_use_certificate_chain_file(ctx, files.certificate.c_str()) != 1) {
        errors.push_back(
            {tls_file::certificate, files.certificate.string() + ": not a PEM certificate chain: " + openssl_reason()});
    }
    std::string mismatch = files.key.string() + ": the private key does not match the certificate in " +
                           files.certificate.string();
    bool key_loaded = false;
    if (readable(files.key, tls_file::key, "private key", errors)) {
        key_loaded = SSL_CTX_use_PrivateKey_file(ctx, files.key.c_str(), SSL_FILETYPE_PEM) == 1;
        // A key of the certificate's type is checked against it as it loads; one of another type only below.
        unsigned long code = ERR_peek_last_error();
        if (!key_loaded && ERR_GET_LIB(code) == ERR_LIB_X509 && ERR_GET_REASON(code) == X509_R_KEY_VALUES_MISMATCH) {
            ERR_clear_error();
            errors.push_back({tls_file::key, mismatch});
        } else if (!key_loaded && encrypted_key(files.key)) {
            ERR_clear_error();
            errors.push_back({tls_file::key, files.key.string() +
                                                 ": the private key is encrypted: egressd reads unencrypted keys only "
                                                 "(protect the file with its permissions)"});
        } else if (!key_loaded) {
            errors.push_back({tls_file::key, files.key.string() + ": not a PEM private key: " + openssl_reason()});
        }
    }
    if (errors.empty() && key_loaded && SSL_CTX_check_private_key(ctx) != 1) {
        errors.push_back({tls_file::key, mismatch});
        ERR_clear_error();
    }
    if (files.client_ca) {
        const auto& ca = *files.client_ca;
        if (readable(ca, tls_file::client_ca, "client CA file", errors)) {
            if (SSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr) != 1) {
                errors.push_back({tls_file::client_ca, ca.string() + ": not a PEM CA certificate file: " + openssl_reason()});
            } else if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(ca.c_str())) {
                // Told to the client in the CertificateRequest, so it can pick a certificate these CAs issued.
                SSL_CTX_set_client_CA_list(ctx, names);
            } else {
                errors.push_back({tls_file::client_ca, ca.string() + ": no CA certificate in the file"});
                ERR_clear_error();
            }
        }
        int mode = SSL_VERIFY_PEER | (files.require_client_certificate ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
        SSL_CTX_set_verify(ctx, mode, remember_rejected);
        SSL_CTX_set_verify_depth(ctx, 8);
        if (files.crl && readable(*files.crl, tls_file::crl, "CRL file", errors)) {
            X509_STORE* store = SSL_CTX_get_cert_store(ctx);
            if (add_crls(store, *files.crl, errors) > 0) {
                X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
            }
        }
    } else if (files.crl) {
        errors.push_back({tls_file::crl, files.crl->string() +
                                             ": a CRL needs client_ca: without it no client certificate is asked for"});
    }
    if (errors.empty()) {
        result.context = std::move(context);
    }
    return result;
}

std::string_view to_string(identity_field f)
{
    switch (f) {
    case identity_field::uri_san:
        return "uri_san";
    case identity_field::dns_san:
        return "dns_san";
    case identity_field::common_name:
        return "common_name";
    }
    return "common_name";
}

std::string verify_peer_again(ssl_st* ssl, boost::asio::ssl::context& context)
{
    X509* cert = SSL_get0_peer_certificate(ssl);
    if (cert == nullptr) {
        return {};
    }
    // The chain the client sent (without its leaf on the server side); the store brings the trusted CAs and
    // CRLs, with the flags the context was built with (CRL_CHECK | CRL_CHECK_ALL).
    STACK_OF(X509)* sent = SSL_get_peer_cert_chain(ssl);
    std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> check(X509_STORE_CTX_new(), &X509_STORE_CTX_free);
    if (!check || X509_STORE_CTX_init(check.get(), SSL_CTX_get_cert_store(context.native_handle()), cert, sent) != 1) {
        ERR_clear_error();
        return "cannot set up the certificate check";
    }
    X509_STORE_CTX_set_purpose(check.get(), X509_PURPOSE_SSL_CLIENT);
    if (X509_verify_cert(check.get()) == 1) {
        return {};
    }
    ERR_clear_error();
    return X509_verify_cert_error_string(X509_STORE_CTX_get_error(check.get()));
}

peer_identity identity_of(ssl_st* ssl)
{
    peer_identity id;
    X509* cert = SSL_get0_peer_certificate(ssl);
    if (cert == nullptr) {
        return id;
    }
    auto take = [&](std::string text, identity_field field) {
        id.field = field;
        if (usable_identity(text)) {
            id.value = std::move(text);
        } else {
            id.error = "the certificate's " + std::string(to_string(field)) +
                       " is not usable as an identity (expected printable ASCII without spaces, at most 2048 bytes)";
        }
        return id;
    };
    std::unique_ptr<GENERAL_NAMES, general_names_closer> names(
        static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
    for (int wanted : {GEN_URI, GEN_DNS}) {
        for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
            const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
            if (name->type == wanted) {
                return take(asn1_text(wanted == GEN_URI ? name->d.uniformResourceIdentifier : name->d.dNSName),
                            wanted == GEN_URI ? identity_field::uri_san : identity_field::dns_san);
            }
        }
    }
    const X509_NAME* subject = X509_get_subject_name(cert);
    int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (index < 0) {
        id.error = "the certificate has no URI SAN, DNS SAN or common name";
        return id;
    }
    unsigned char* utf8 = nullptr;
    int length = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index)));
    if (length < 0) {
        ERR_clear_error();
        id.error = "the certificate's common name cannot be read";
        return id;
    }
    std::string cn(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(length));
    OPENSSL_free(utf8);
    return take(std::move(cn), identity_field::common_name);
}

std::string_view to_string(handshake_refusal r)
{
    switch (r) {
    case handshake_refusal::client_cert_missing:
        return "client_cert_missing";
    case handshake_refusal::client_cert_rejected:
        return "client_cert_rejected";
    case handshake_refusal::tls_handshake_failed:
        return "tls_handshake_failed";
    case handshake_refusal::client_closed:
        return "client_closed";
    }
    return "tls_handshake_failed";
}

handshake_failure why_handshake_failed(ssl_st* ssl, unsigned long error_value, std::string_view message)
{
    handshake_failure f;
    if (BIO* received = SSL_get_rbio(ssl); received != nullptr && BIO_number_read(received) == 0) {
        f.kind = handshake_refusal::client_closed;
        f.detail = std::string(message);
        return f;
    }
    if (long verify = SSL_get_verify_result(ssl); verify != X509_V_OK) {
        f.kind = handshake_refusal::client_cert_rejected;
        f.detail = X509_verify_cert_error_string(verify);
        if (auto* rejected = static_cast<X509*>(SSL_get_ex_data(ssl, rejected_index()))) {
            f.subject = subject_text(rejected);
            f.serial = serial_text(rejected);
        }
        return f;
    }
    if (ERR_GET_LIB(error_value) == ERR_LIB_SSL &&
        ERR_GET_REASON(error_value) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
        f.kind = handshake_refusal::client_cert_missing;
        f.detail = "no client certificate";
        return f;
    }
    f.detail = std::string(message);
    return f;
}

}  // namespace egressd::certs
