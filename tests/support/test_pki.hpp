#pragma once

// A throwaway PKI for tests, made with the OpenSSL API in memory: CAs, server and client certificates.

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace egressd::test_support {

template <auto free_fn>
struct freer {
    template <typename T>
    void operator()(T* p) const
    {
        free_fn(p);
    }
};
using key_ptr = std::unique_ptr<EVP_PKEY, freer<EVP_PKEY_free>>;
using x509_ptr = std::unique_ptr<X509, freer<X509_free>>;
using bio_ptr = std::unique_ptr<BIO, freer<BIO_free>>;
using extension_ptr = std::unique_ptr<X509_EXTENSION, freer<X509_EXTENSION_free>>;

// Certificate set-up must not fail; when it does, the test ends with OpenSSL's reason.
inline void check(bool ok, std::string_view what)
{
    if (!ok) {
        const char* reason = ERR_reason_error_string(ERR_peek_last_error());
        throw std::runtime_error(std::string(what) + ": " + (reason != nullptr ? reason : "unknown OpenSSL error"));
    }
}

struct party {
    x509_ptr cert;
    key_ptr key;
};

inline std::string pem_of(const party& p, bool key)
{
    bio_ptr bio(BIO_new(BIO_s_mem()));
    check(bio != nullptr, "BIO_new");
    if (key) {
        check(PEM_write_bio_PrivateKey(bio.get(), p.key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1, "PEM key");
    } else {
        check(PEM_write_bio_X509(bio.get(), p.cert.get()) == 1, "PEM certificate");
    }
    char* data = nullptr;
    long size = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(size));
}

inline void add_extension(X509* cert, X509* issuer, int nid, const char* value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    extension_ptr ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value));
    check(ext != nullptr, value);
    check(X509_add_ext(cert, ext.get(), -1) == 1, "X509_add_ext");
}

// A P-256 certificate valid from an hour ago for a day. issuer null: self-signed (a CA).
inline party make_party(const std::string& cn, const party* issuer, const std::vector<std::pair<int, const char*>>& extensions)
{
    static std::atomic<long> serial{1};
    party p;
    p.key.reset(EVP_EC_gen("P-256"));
    check(p.key != nullptr, "EVP_EC_gen");
    p.cert.reset(X509_new());
    X509* cert = p.cert.get();
    check(X509_set_version(cert, X509_VERSION_3) == 1, "X509_set_version");
    check(ASN1_INTEGER_set(X509_get_serialNumber(cert), serial++) == 1, "serial");
    check(X509_gmtime_adj(X509_getm_notBefore(cert), -3600) != nullptr, "notBefore");
    check(X509_gmtime_adj(X509_getm_notAfter(cert), 86400) != nullptr, "notAfter");
    check(X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_UTF8,
                                     reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0) == 1,
          "CN");
    X509* signer = issuer != nullptr ? issuer->cert.get() : cert;
    check(X509_set_issuer_name(cert, X509_get_subject_name(signer)) == 1, "issuer");
    check(X509_set_pubkey(cert, p.key.get()) == 1, "X509_set_pubkey");
    for (const auto& [nid, value] : extensions) {
        add_extension(cert, signer, nid, value);
    }
    check(X509_sign(cert, issuer != nullptr ? issuer->key.get() : p.key.get(), EVP_sha256()) > 0, "X509_sign");
    return p;
}

}  // namespace egressd::test_support
