// The TLS listener's OpenSSL side (certs/tls.hpp): make_tls_server_context's errors, one per file and all at
// once; the client identity taken from a verified certificate (URI SAN, else DNS SAN, else CN, and refused
// when unusable); and why a handshake failed. Certificates and CRLs are made in process with the OpenSSL API,
// so each case can hold exactly the name it needs (a control character, an empty URI); handshakes are real,
// between a client and a server SSL joined by an in-memory BIO pair: no sockets, no clock waits.

#include "certs/tls.hpp"
#include "tests/support/temp_dir.hpp"

#include <boost/asio/ssl/context.hpp>
#include <gtest/gtest.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#ifndef EGRESSD_SOURCE_DIR
#error "EGRESSD_SOURCE_DIR must be defined by the build"
#endif

namespace egressd::certs {
namespace {

using test_support::temp_dir;
using namespace std::string_literals;

// Names parameterized cases after their `name` field.
template <typename Case>
std::string case_name(const ::testing::TestParamInfo<Case>& param)
{
    return param.param.name;
}

// --- OpenSSL objects, owned ----------------------------------------------------------------------------------

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
using crl_ptr = std::unique_ptr<X509_CRL, freer<X509_CRL_free>>;
using ssl_ctx_ptr = std::unique_ptr<SSL_CTX, freer<SSL_CTX_free>>;
using ssl_ptr = std::unique_ptr<SSL, freer<SSL_free>>;
using bio_ptr = std::unique_ptr<BIO, freer<BIO_free>>;

// OpenSSL's reason for an error code, never null.
std::string reason_of(unsigned long error)
{
    const char* reason = ERR_reason_error_string(error);
    return reason != nullptr ? reason : "error " + std::to_string(error);
}

// OpenSSL calls in test set-up must not fail; a failure ends the test with OpenSSL's reason.
#define OSSL_CHECK(call) ASSERT_TRUE(call) << #call << ": " << reason_of(ERR_peek_last_error())

key_ptr ec_key()
{
    key_ptr key(EVP_EC_gen("P-256"));
    EXPECT_TRUE(key) << "EVP_EC_gen failed";
    return key;
}

// --- certificates --------------------------------------------------------------------------------------------

// A subjectAltName entry. value holds the exact bytes (a control character, a NUL, nothing at all), or for
// GEN_IPADD the address bytes.
struct san {
    int type;
    std::string value;
};

struct cert_spec {
    std::optional<std::string> cn;  // nullopt: a subject with no CN (O=egressd tests only)
    std::vector<san> sans;
    bool ca = false;
};

// One certificate and its key: a CA, a server or a client.
struct party {
    x509_ptr cert;
    key_ptr key;
};

std::atomic<long> next_serial{1000};  // unique serials, so a CRL entry names exactly one certificate

void add_extension(X509* cert, X509* issuer, int nid, const char* value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    std::unique_ptr<X509_EXTENSION, freer<X509_EXTENSION_free>> ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value));
    ASSERT_TRUE(ext) << "extension " << OBJ_nid2sn(nid) << "=" << value;
    OSSL_CHECK(X509_add_ext(cert, ext.get(), -1) == 1);
}

void add_sans(X509* cert, const std::vector<san>& sans)
{
    std::unique_ptr<GENERAL_NAMES, freer<GENERAL_NAMES_free>> names(sk_GENERAL_NAME_new_null());
    for (const auto& s : sans) {
        ASN1_STRING* text = s.type == GEN_IPADD ? ASN1_OCTET_STRING_new() : ASN1_IA5STRING_new();
        OSSL_CHECK(ASN1_STRING_set(text, s.value.data(), static_cast<int>(s.value.size())) == 1);
        GENERAL_NAME* name = GENERAL_NAME_new();
        GENERAL_NAME_set0_value(name, s.type, text);
        sk_GENERAL_NAME_push(names.get(), name);
    }
    OSSL_CHECK(X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) == 1);
}

void build_cert(const cert_spec& spec, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, x509_ptr& out)
{
    x509_ptr cert(X509_new());
    OSSL_CHECK(X509_set_version(cert.get(), X509_VERSION_3) == 1);
    OSSL_CHECK(ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), next_serial++) == 1);
    // Valid from an hour ago for a day: the handshakes happen now, so no clock is faked.
    OSSL_CHECK(X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) != nullptr);
    OSSL_CHECK(X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400) != nullptr);
    X509_NAME* subject = X509_get_subject_name(cert.get());
    OSSL_CHECK(X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_UTF8,
                                          reinterpret_cast<const unsigned char*>("egressd tests"), -1, -1, 0) == 1);
    if (spec.cn) {
        OSSL_CHECK(X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                                              reinterpret_cast<const unsigned char*>(spec.cn->data()),
                                              static_cast<int>(spec.cn->size()), -1, 0) == 1);
    }
    X509* signer = issuer != nullptr ? issuer : cert.get();
    OSSL_CHECK(X509_set_issuer_name(cert.get(), X509_get_subject_name(signer)) == 1);
    OSSL_CHECK(X509_set_pubkey(cert.get(), key) == 1);
    if (spec.ca) {
        add_extension(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE");
        add_extension(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_extension(cert.get(), signer, NID_basic_constraints, "CA:FALSE");
    }
    add_extension(cert.get(), signer, NID_subject_key_identifier, "hash");
    if (!spec.sans.empty()) {
        add_sans(cert.get(), spec.sans);
    }
    OSSL_CHECK(X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256()) > 0);
    out = std::move(cert);
}

// issuer null: self-signed.
party make_party(const cert_spec& spec, const party* issuer = nullptr)
{
    party p;
    p.key = ec_key();
    build_cert(spec, p.key.get(), issuer != nullptr ? issuer->cert.get() : nullptr,
               issuer != nullptr ? issuer->key.get() : nullptr, p.cert);
    EXPECT_TRUE(p.cert) << "certificate for " << spec.cn.value_or("(no CN)");
    return p;
}

party make_ca(const std::string& name, const party* issuer = nullptr)
{
    return make_party(cert_spec{name, {}, true}, issuer);
}

void build_crl(const party& ca, const std::vector<const party*>& revoked, crl_ptr& out)
{
    crl_ptr crl(X509_CRL_new());
    OSSL_CHECK(X509_CRL_set_version(crl.get(), 1) == 1);  // v2
    OSSL_CHECK(X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca.cert.get())) == 1);
    std::unique_ptr<ASN1_TIME, freer<ASN1_TIME_free>> last(X509_gmtime_adj(nullptr, -3600));
    std::unique_ptr<ASN1_TIME, freer<ASN1_TIME_free>> next(X509_gmtime_adj(nullptr, 86400));
    OSSL_CHECK(X509_CRL_set1_lastUpdate(crl.get(), last.get()) == 1);
    OSSL_CHECK(X509_CRL_set1_nextUpdate(crl.get(), next.get()) == 1);
    for (const auto* r : revoked) {
        X509_REVOKED* entry = X509_REVOKED_new();
        OSSL_CHECK(X509_REVOKED_set_serialNumber(entry, X509_get_serialNumber(r->cert.get())) == 1);
        OSSL_CHECK(X509_REVOKED_set_revocationDate(entry, last.get()) == 1);
        OSSL_CHECK(X509_CRL_add0_revoked(crl.get(), entry) == 1);
    }
    OSSL_CHECK(X509_CRL_sort(crl.get()) == 1);
    OSSL_CHECK(X509_CRL_sign(crl.get(), ca.key.get(), EVP_sha256()) > 0);
    out = std::move(crl);
}

crl_ptr make_crl(const party& ca, const std::vector<const party*>& revoked = {})
{
    crl_ptr crl;
    build_crl(ca, revoked, crl);
    EXPECT_TRUE(crl);
    return crl;
}

// --- PEM text ------------------------------------------------------------------------------------------------

template <typename Write>
std::string pem_of(Write write)
{
    bio_ptr bio(BIO_new(BIO_s_mem()));
    EXPECT_EQ(write(bio.get()), 1);
    char* data = nullptr;
    long size = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(size));
}
std::string pem(X509* cert)
{
    return pem_of([&](BIO* b) { return PEM_write_bio_X509(b, cert); });
}
std::string pem(X509_CRL* crl)
{
    return pem_of([&](BIO* b) { return PEM_write_bio_X509_CRL(b, crl); });
}
std::string pem(EVP_PKEY* key)
{
    return pem_of([&](BIO* b) { return PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr); });
}

// --- a small PKI on disk ---------------------------------------------------------------------------------------

// A client CA, a server certificate issued by it, and their files; tests add clients and CRLs as they need.
struct pki {
    temp_dir dir;
    party ca = make_ca("egressd test CA");
    party server = make_party(cert_spec{"localhost", {{GEN_DNS, "localhost"}}}, &ca);
    std::filesystem::path ca_file = dir.write("ca.pem", pem(ca.cert.get()));
    std::filesystem::path server_cert = dir.write("server.pem", pem(server.cert.get()));
    std::filesystem::path server_key = dir.write("server.key", pem(server.key.get()));

    std::filesystem::path missing(std::string_view name) const { return dir.path() / name; }

    // Server files asking for client certificates from ca_file.
    tls_server_files mtls(bool required = true) const
    {
        return tls_server_files{server_cert, server_key, ca_file, std::nullopt, required};
    }
};

// The context, failing the test (with its errors) when there is none.
std::shared_ptr<boost::asio::ssl::context> context_of(const tls_server_files& files)
{
    auto made = make_tls_server_context(files);
    std::string errors;
    for (const auto& e : made.errors) {
        errors += "\n  " + e.message;
    }
    EXPECT_TRUE(made.context) << "errors:" << errors;
    EXPECT_TRUE(made.errors.empty()) << "errors:" << errors;
    return made.context;
}

// --- handshakes over a BIO pair ------------------------------------------------------------------------------

struct client_setup {
    const party* cert = nullptr;         // none: the client has no certificate to send
    std::vector<const party*> chain;     // intermediates sent after the certificate
    int max_version = 0;                 // 0: the library's highest
    const party* trust = nullptr;        // the client verifies the server against this CA (none: no check)
};

struct handshake {
    ssl_ctx_ptr client_ctx;
    ssl_ptr client;
    ssl_ptr server;
    bool server_ok = false;
    bool server_failed = false;
    // As boost::asio reports a failed handshake to the session: ERR_get_error() and its reason string.
    unsigned long server_error = 0;
    std::string server_message;
};

// One SSL_do_handshake step. Returns false when the side failed.
bool step(SSL* ssl, bool& done, unsigned long& error)
{
    ERR_clear_error();
    int rc = SSL_do_handshake(ssl);
    if (rc == 1) {
        done = true;
        return true;
    }
    int e = SSL_get_error(ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        return true;
    }
    error = ERR_get_error();
    ERR_clear_error();
    return false;
}

// Runs a handshake between a client set up as asked and a server SSL from server_ctx, until the server has
// finished or failed. A bounded number of rounds: each moves every pending flight across the pair.
void run_handshake(SSL_CTX* server_ctx, const client_setup& setup, handshake& h)
{
    h.client_ctx.reset(SSL_CTX_new(TLS_client_method()));
    ASSERT_TRUE(h.client_ctx);
    if (setup.cert != nullptr) {
        OSSL_CHECK(SSL_CTX_use_certificate(h.client_ctx.get(), setup.cert->cert.get()) == 1);
        OSSL_CHECK(SSL_CTX_use_PrivateKey(h.client_ctx.get(), setup.cert->key.get()) == 1);
        for (const auto* c : setup.chain) {
            OSSL_CHECK(SSL_CTX_add1_chain_cert(h.client_ctx.get(), c->cert.get()) == 1);
        }
    }
    if (setup.max_version != 0) {
        // Older versions need security level 0 on the client in OpenSSL 3 (SHA-1 signatures).
        SSL_CTX_set_security_level(h.client_ctx.get(), 0);
        OSSL_CHECK(SSL_CTX_set_min_proto_version(h.client_ctx.get(), 0) == 1);
        OSSL_CHECK(SSL_CTX_set_max_proto_version(h.client_ctx.get(), setup.max_version) == 1);
    }
    if (setup.trust != nullptr) {
        OSSL_CHECK(X509_STORE_add_cert(SSL_CTX_get_cert_store(h.client_ctx.get()), setup.trust->cert.get()) == 1);
        SSL_CTX_set_verify(h.client_ctx.get(), SSL_VERIFY_PEER, nullptr);
    }
    h.client.reset(SSL_new(h.client_ctx.get()));
    h.server.reset(SSL_new(server_ctx));
    ASSERT_TRUE(h.client && h.server);
    BIO* client_bio = nullptr;
    BIO* server_bio = nullptr;
    OSSL_CHECK(BIO_new_bio_pair(&client_bio, 0, &server_bio, 0) == 1);
    SSL_set_bio(h.client.get(), client_bio, client_bio);
    SSL_set_bio(h.server.get(), server_bio, server_bio);
    SSL_set_connect_state(h.client.get());
    SSL_set_accept_state(h.server.get());

    bool client_done = false;
    bool client_failed = false;
    unsigned long client_error = 0;
    for (int round = 0; round < 20 && !h.server_ok && !h.server_failed; ++round) {
        if (!client_done && !client_failed) {
            client_failed = !step(h.client.get(), client_done, client_error);
        }
        h.server_failed = !step(h.server.get(), h.server_ok, h.server_error);
    }
    ASSERT_TRUE(h.server_ok || h.server_failed) << "the handshake did not finish in 20 rounds";
    if (h.server_failed) {
        h.server_message = reason_of(h.server_error);
    }
    // A server that finished while the client failed would be a broken test set-up, not a result.
    ASSERT_FALSE(client_failed && h.server_ok) << "client failed: " << reason_of(client_error);
}

handshake shake(const std::shared_ptr<boost::asio::ssl::context>& context, const client_setup& setup)
{
    handshake h;
    if (context) {
        run_handshake(context->native_handle(), setup, h);
    } else {
        ADD_FAILURE() << "no server context";
    }
    return h;
}

std::string show(const peer_identity& id)
{
    return "value=" + (id.value ? "'" + *id.value + "'" : "(none)"s) + " field=" + std::string(to_string(id.field)) +
           " error='" + id.error + "'";
}

std::string show(const handshake_failure& f)
{
    return std::string(to_string(f.kind)) + ": " + f.detail;
}

// --- to_string -----------------------------------------------------------------------------------------------

TEST(certs_tls_names, identity_fields)
{
    EXPECT_EQ(to_string(identity_field::uri_san), "uri_san");
    EXPECT_EQ(to_string(identity_field::dns_san), "dns_san");
    EXPECT_EQ(to_string(identity_field::common_name), "common_name");
}

TEST(certs_tls_names, handshake_refusals)
{
    // These are the `reason` values of refusal events: renaming one breaks log consumers.
    EXPECT_EQ(to_string(handshake_refusal::client_cert_missing), "client_cert_missing");
    EXPECT_EQ(to_string(handshake_refusal::client_cert_rejected), "client_cert_rejected");
    EXPECT_EQ(to_string(handshake_refusal::tls_handshake_failed), "tls_handshake_failed");
}

// --- make_tls_server_context: success ------------------------------------------------------------------------

TEST(certs_tls_context, server_files_alone_make_a_context_that_asks_no_certificate)
{
    pki p;
    auto made = make_tls_server_context({p.server_cert, p.server_key, std::nullopt, std::nullopt, true});
    ASSERT_TRUE(made.context);
    EXPECT_TRUE(made.errors.empty());
    SSL_CTX* ctx = made.context->native_handle();
    EXPECT_EQ(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
    // Renegotiation could change the client certificate after its identity was taken; resumption would skip
    // the certificate (and CRL) check.
    EXPECT_NE(SSL_CTX_get_options(ctx) & SSL_OP_NO_RENEGOTIATION, 0u);
    EXPECT_NE(SSL_CTX_get_options(ctx) & SSL_OP_NO_TICKET, 0u);
    EXPECT_EQ(SSL_CTX_get_session_cache_mode(ctx), SSL_SESS_CACHE_OFF);
    EXPECT_EQ(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_NONE);
}

TEST(certs_tls_context, client_ca_required_and_optional_set_the_verify_mode)
{
    pki p;
    auto required = context_of(p.mtls(true));
    ASSERT_TRUE(required);
    EXPECT_EQ(SSL_CTX_get_verify_mode(required->native_handle()), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
    auto optional = context_of(p.mtls(false));
    ASSERT_TRUE(optional);
    EXPECT_EQ(SSL_CTX_get_verify_mode(optional->native_handle()), SSL_VERIFY_PEER);
}

TEST(certs_tls_context, every_ca_of_the_file_is_named_to_clients)
{
    pki p;
    party other = make_ca("another CA");
    auto both = p.dir.write("both.pem", pem(p.ca.cert.get()) + pem(other.cert.get()));
    auto context = context_of({p.server_cert, p.server_key, both, std::nullopt, true});
    ASSERT_TRUE(context);
    const STACK_OF(X509_NAME)* names = SSL_CTX_get_client_CA_list(context->native_handle());
    ASSERT_NE(names, nullptr);
    ASSERT_EQ(sk_X509_NAME_num(names), 2);
    EXPECT_EQ(X509_NAME_cmp(sk_X509_NAME_value(names, 0), X509_get_subject_name(p.ca.cert.get())), 0);
    EXPECT_EQ(X509_NAME_cmp(sk_X509_NAME_value(names, 1), X509_get_subject_name(other.cert.get())), 0);
}

TEST(certs_tls_context, server_chain_file_sends_the_intermediate)
{
    // "certificate: the server certificate, then any intermediates": the client must get both to verify.
    pki p;
    party intermediate = make_ca("server intermediate", &p.ca);
    party server = make_party(cert_spec{"localhost", {{GEN_DNS, "localhost"}}}, &intermediate);
    auto chain = p.dir.write("chain.pem", pem(server.cert.get()) + pem(intermediate.cert.get()));
    auto key = p.dir.write("chain.key", pem(server.key.get()));
    auto context = context_of({chain, key, std::nullopt, std::nullopt, true});
    // The client trusts only the root: without the intermediate it would fail to verify the server.
    auto h = shake(context, {nullptr, {}, 0, &p.ca});
    ASSERT_TRUE(h.server_ok) << h.server_message;
    EXPECT_EQ(SSL_get_verify_result(h.client.get()), X509_V_OK);
    const STACK_OF(X509)* sent = SSL_get_peer_cert_chain(h.client.get());
    ASSERT_NE(sent, nullptr);
    EXPECT_EQ(sk_X509_num(sent), 2);
}

TEST(certs_tls_context, several_crls_in_one_file_are_all_loaded)
{
    pki p;
    party other = make_ca("another CA");
    auto crls = p.dir.write("crls.pem", pem(make_crl(p.ca).get()) + pem(make_crl(other).get()));
    auto context = context_of({p.server_cert, p.server_key, p.ca_file, crls, true});
    ASSERT_TRUE(context);
    X509_STORE* store = SSL_CTX_get_cert_store(context->native_handle());
    STACK_OF(X509_OBJECT)* objects = X509_STORE_get0_objects(store);
    int crl_count = 0;
    for (int i = 0; objects != nullptr && i < sk_X509_OBJECT_num(objects); ++i) {
        crl_count += X509_OBJECT_get_type(sk_X509_OBJECT_value(objects, i)) == X509_LU_CRL ? 1 : 0;
    }
    EXPECT_EQ(crl_count, 2);
    // CRL_CHECK_ALL: every certificate of a client's chain needs a CRL, not just the leaf.
    unsigned long flags = X509_VERIFY_PARAM_get_flags(X509_STORE_get0_param(store));
    EXPECT_NE(flags & X509_V_FLAG_CRL_CHECK, 0u);
    EXPECT_NE(flags & X509_V_FLAG_CRL_CHECK_ALL, 0u);
}

// --- make_tls_server_context: errors -------------------------------------------------------------------------

// What to put where: each case breaks files of a valid PKI.
struct context_error_case {
    std::string name;
    // Given the PKI, the files to load and the errors expected, in order.
    std::function<std::pair<tls_server_files, std::vector<std::string>>(pki&)> make;
};

void PrintTo(const context_error_case& c, std::ostream* os) { *os << c.name; }

class certs_tls_context_error : public ::testing::TestWithParam<context_error_case> {};

// Ends an expected error whose last words are OpenSSL's reason: those differ between OpenSSL versions (and
// are not egressd's to choose), so only their presence is checked; everything before them is exact.
const std::string any_reason = "<OpenSSL's reason>";

bool error_matches(const std::string& got, const std::string& want)
{
    if (!want.ends_with(any_reason)) {
        return got == want;
    }
    std::string_view prefix(want.data(), want.size() - any_reason.size());
    return got.starts_with(prefix) && got.size() > prefix.size();
}

TEST_P(certs_tls_context_error, lists_exactly_these_errors_and_no_context)
{
    pki p;
    auto [files, want] = GetParam().make(p);
    auto made = make_tls_server_context(files);
    EXPECT_FALSE(made.context);
    std::vector<std::string> got;
    for (const auto& e : made.errors) {
        got.push_back(e.message);
    }
    bool same = got.size() == want.size();
    for (std::size_t i = 0; same && i < want.size(); ++i) {
        same = error_matches(got[i], want[i]);
    }
    EXPECT_TRUE(same) << ::testing::PrintToString(got) << "\nexpected:\n" << ::testing::PrintToString(want);
    // Errors are taken off OpenSSL's queue, so they cannot leak into the next handshake's error.
    EXPECT_EQ(ERR_peek_error(), 0u);
}

std::string str(const std::filesystem::path& file) { return file.string(); }

const std::string no_file = ": No such file or directory";

INSTANTIATE_TEST_SUITE_P(
    server_files, certs_tls_context_error,
    ::testing::Values(
        context_error_case{"certificate_missing",
                           [](pki& p) {
                               auto cert = p.missing("absent.pem");
                               return std::pair{tls_server_files{cert, p.server_key, {}, {}, true},
                                                std::vector{str(cert) + ": cannot read the certificate" + no_file}};
                           }},
        context_error_case{"key_missing",
                           [](pki& p) {
                               auto key = p.missing("absent.key");
                               return std::pair{tls_server_files{p.server_cert, key, {}, {}, true},
                                                std::vector{str(key) + ": cannot read the private key" + no_file}};
                           }},
        context_error_case{"certificate_and_key_missing",
                           [](pki& p) {
                               auto cert = p.missing("absent.pem");
                               auto key = p.missing("absent.key");
                               return std::pair{tls_server_files{cert, key, {}, {}, true},
                                                std::vector{str(cert) + ": cannot read the certificate" + no_file,
                                                            str(key) + ": cannot read the private key" + no_file}};
                           }},
        context_error_case{"certificate_not_pem",
                           [](pki& p) {
                               auto cert = p.dir.write("garbage.pem", "this is not a certificate\n");
                               return std::pair{tls_server_files{cert, p.server_key, {}, {}, true},
                                                std::vector{str(cert) + ": not a PEM certificate chain: " + any_reason}};
                           }},
        context_error_case{"certificate_empty",
                           [](pki& p) {
                               auto cert = p.dir.write("empty.pem", "");
                               return std::pair{tls_server_files{cert, p.server_key, {}, {}, true},
                                                std::vector{str(cert) + ": not a PEM certificate chain: " + any_reason}};
                           }},
        // The files swapped: the certificate file holds the key and the other way round.
        context_error_case{"certificate_and_key_swapped",
                           [](pki& p) {
                               return std::pair{
                                   tls_server_files{p.server_key, p.server_cert, {}, {}, true},
                                   std::vector{str(p.server_key) + ": not a PEM certificate chain: " + any_reason,
                                               str(p.server_cert) + ": not a PEM private key: " + any_reason}};
                           }},
        context_error_case{"key_not_pem",
                           [](pki& p) {
                               auto key = p.dir.write("garbage.key", "this is not a key\n");
                               return std::pair{tls_server_files{p.server_cert, key, {}, {}, true},
                                                std::vector{str(key) + ": not a PEM private key: " + any_reason}};
                           }},
        // A real key, of the same type as the certificate's, that is not its key.
        context_error_case{"key_of_another_certificate",
                           [](pki& p) {
                               auto key = p.dir.write("other.key", pem(ec_key().get()));
                               return std::pair{tls_server_files{p.server_cert, key, {}, {}, true},
                                                std::vector{str(key) + ": the private key does not match the "
                                                                     "certificate in " +
                                                            str(p.server_cert)}};
                           }},
        // A key of another type (RSA for an EC certificate) is not the certificate's key either.
        context_error_case{"key_of_another_type",
                           [](pki& p) {
                               key_ptr rsa(EVP_RSA_gen(2048));
                               auto key = p.dir.write("rsa.key", pem(rsa.get()));
                               return std::pair{tls_server_files{p.server_cert, key, {}, {}, true},
                                                std::vector{str(key) + ": the private key does not match the "
                                                                     "certificate in " +
                                                            str(p.server_cert)}};
                           }}),
    case_name<context_error_case>);

INSTANTIATE_TEST_SUITE_P(
    client_files, certs_tls_context_error,
    ::testing::Values(
        context_error_case{"client_ca_missing",
                           [](pki& p) {
                               auto ca = p.missing("absent-ca.pem");
                               return std::pair{tls_server_files{p.server_cert, p.server_key, ca, {}, true},
                                                std::vector{str(ca) + ": cannot read the client CA file" + no_file}};
                           }},
        context_error_case{"client_ca_not_pem",
                           [](pki& p) {
                               auto ca = p.dir.write("garbage-ca.pem", "this is not a CA\n");
                               return std::pair{tls_server_files{p.server_cert, p.server_key, ca, {}, true},
                                                std::vector{str(ca) + ": not a PEM CA certificate file: no certificate "
                                                                    "or crl found"}};
                           }},
        // A file with a CRL and no certificate: OpenSSL loads it, but there is no CA to trust or to name.
        context_error_case{"client_ca_holds_only_a_crl",
                           [](pki& p) {
                               auto ca = p.dir.write("crl-as-ca.pem", pem(make_crl(p.ca).get()));
                               return std::pair{tls_server_files{p.server_cert, p.server_key, ca, {}, true},
                                                std::vector{str(ca) + ": no CA certificate in the file"}};
                           }},
        context_error_case{"client_ca_holds_only_a_key",
                           [](pki& p) {
                               return std::pair{tls_server_files{p.server_cert, p.server_key, p.server_key, {}, true},
                                                std::vector{str(p.server_key) + ": not a PEM CA certificate file: no "
                                                                              "certificate or crl found"}};
                           }},
        context_error_case{"crl_missing",
                           [](pki& p) {
                               auto crl = p.missing("absent-crl.pem");
                               return std::pair{tls_server_files{p.server_cert, p.server_key, p.ca_file, crl, true},
                                                std::vector{str(crl) + ": cannot read the CRL file" + no_file}};
                           }},
        context_error_case{"crl_not_pem",
                           [](pki& p) {
                               auto crl = p.dir.write("garbage-crl.pem", "this is not a CRL\n");
                               return std::pair{tls_server_files{p.server_cert, p.server_key, p.ca_file, crl, true},
                                                std::vector{str(crl) + ": no CRL in the file: expected PEM blocks "
                                                                     "\"-----BEGIN X509 CRL-----\""}};
                           }},
        context_error_case{"crl_empty",
                           [](pki& p) {
                               auto crl = p.dir.write("empty-crl.pem", "");
                               return std::pair{tls_server_files{p.server_cert, p.server_key, p.ca_file, crl, true},
                                                std::vector{str(crl) + ": no CRL in the file: expected PEM blocks "
                                                                     "\"-----BEGIN X509 CRL-----\""}};
                           }},
        // A certificate is not a CRL: the CA file given as the CRL file by mistake.
        context_error_case{"crl_holds_a_certificate",
                           [](pki& p) {
                               return std::pair{
                                   tls_server_files{p.server_cert, p.server_key, p.ca_file, p.ca_file, true},
                                   std::vector{str(p.ca_file) + ": no CRL in the file: expected PEM blocks "
                                                              "\"-----BEGIN X509 CRL-----\""}};
                           }},
        // A CRL block whose body is not a CRL: a broken file, not an empty one.
        context_error_case{"crl_block_corrupt",
                           [](pki& p) {
                               auto crl = p.dir.write("corrupt-crl.pem", "-----BEGIN X509 CRL-----\nAAAAAAAA\n"
                                                                         "-----END X509 CRL-----\n");
                               return std::pair{tls_server_files{p.server_cert, p.server_key, p.ca_file, crl, true},
                                                std::vector{str(crl) + ": not a PEM CRL file: " + any_reason}};
                           }},
        // Only the needs-client_ca error: the CRL file is not even read.
        context_error_case{"crl_without_client_ca",
                           [](pki& p) {
                               auto crl = p.missing("absent-crl.pem");
                               return std::pair{tls_server_files{p.server_cert, p.server_key, {}, crl, true},
                                                std::vector{str(crl) + ": a CRL needs client_ca: without it no client "
                                                                     "certificate is asked for"}};
                           }}),
    case_name<context_error_case>);

INSTANTIATE_TEST_SUITE_P(
    all_at_once, certs_tls_context_error,
    ::testing::Values(
        // One run names every broken file, so fixing one does not reveal the next.
        context_error_case{"certificate_and_client_ca_missing",
                           [](pki& p) {
                               auto cert = p.missing("absent.pem");
                               auto ca = p.missing("absent-ca.pem");
                               return std::pair{tls_server_files{cert, p.server_key, ca, {}, true},
                                                std::vector{str(cert) + ": cannot read the certificate" + no_file,
                                                            str(ca) + ": cannot read the client CA file" + no_file}};
                           }},
        context_error_case{"every_file_broken",
                           [](pki& p) {
                               auto cert = p.dir.write("garbage.pem", "not a certificate\n");
                               auto key = p.missing("absent.key");
                               auto ca = p.dir.write("garbage-ca.pem", "not a CA\n");
                               auto crl = p.dir.write("garbage-crl.pem", "not a CRL\n");
                               return std::pair{
                                   tls_server_files{cert, key, ca, crl, true},
                                   std::vector{str(cert) + ": not a PEM certificate chain: " + any_reason,
                                               str(key) + ": cannot read the private key" + no_file,
                                               str(ca) + ": not a PEM CA certificate file: no certificate or crl found",
                                               str(crl) + ": no CRL in the file: expected PEM blocks "
                                                        "\"-----BEGIN X509 CRL-----\""}};
                           }},
        context_error_case{"key_mismatch_and_crl_missing",
                           [](pki& p) {
                               key_ptr rsa(EVP_RSA_gen(2048));
                               auto key = p.dir.write("rsa.key", pem(rsa.get()));
                               auto crl = p.missing("absent-crl.pem");
                               return std::pair{tls_server_files{p.server_cert, key, p.ca_file, crl, true},
                                                std::vector{str(key) + ": the private key does not match the "
                                                                     "certificate in " +
                                                                str(p.server_cert),
                                                            str(crl) + ": cannot read the CRL file" + no_file}};
                           }}),
    case_name<context_error_case>);

// --- identity_of ---------------------------------------------------------------------------------------------

struct identity_case {
    std::string name;
    cert_spec client;
    std::optional<std::string> value;
    identity_field field;
    std::string error;  // the whole message, or empty
};

void PrintTo(const identity_case& c, std::ostream* os) { *os << c.name; }

std::string unusable(std::string_view field)
{
    return "the certificate's " + std::string(field) +
           " is not usable as an identity (expected printable ASCII without spaces, at most 2048 bytes)";
}

class certs_tls_identity : public ::testing::TestWithParam<identity_case> {};

TEST_P(certs_tls_identity, of_a_verified_client_certificate)
{
    const auto& c = GetParam();
    pki p;
    party client = make_party(c.client, &p.ca);
    auto h = shake(context_of(p.mtls()), {&client, {}, 0, &p.ca});
    ASSERT_TRUE(h.server_ok) << h.server_message;
    auto id = identity_of(h.server.get());
    EXPECT_EQ(id.value, c.value) << show(id);
    EXPECT_EQ(to_string(id.field), to_string(c.field)) << show(id);
    EXPECT_EQ(id.error, c.error) << show(id);
}

const std::string spiffe = "spiffe://example.org/ns/batch/sa/worker";
const std::string uri_2048 = "urn:" + std::string(2044, 'x');

INSTANTIATE_TEST_SUITE_P(
    preference, certs_tls_identity,
    ::testing::Values(
        identity_case{"uri_over_dns_and_cn",
                      {"worker", {{GEN_DNS, "worker.example.org"}, {GEN_URI, spiffe}}},
                      spiffe,
                      identity_field::uri_san,
                      ""},
        identity_case{"first_of_two_uris",
                      {"worker", {{GEN_URI, "urn:first"}, {GEN_URI, "urn:second"}}},
                      "urn:first",
                      identity_field::uri_san,
                      ""},
        identity_case{"dns_over_cn",
                      {"worker", {{GEN_DNS, "a.example.org"}, {GEN_DNS, "b.example.org"}}},
                      "a.example.org",
                      identity_field::dns_san,
                      ""},
        identity_case{"cn_alone", {"batch-worker_1.prod", {}}, "batch-worker_1.prod", identity_field::common_name, ""},
        // SANs of other kinds (an e-mail address, an IP address) are not identities: the CN is.
        identity_case{"cn_when_sans_are_email_and_ip",
                      {"worker", {{GEN_EMAIL, "worker@example.org"}, {GEN_IPADD, "\x0a\x00\x00\x01"s}}},
                      "worker",
                      identity_field::common_name,
                      ""},
        // The boundaries of printable ASCII: '!' (0x21) and '~' (0x7e).
        identity_case{"cn_printable_bounds", {"!~", {}}, "!~", identity_field::common_name, ""},
        identity_case{"uri_of_2048_bytes", {"worker", {{GEN_URI, uri_2048}}}, uri_2048, identity_field::uri_san, ""}),
    case_name<identity_case>);

INSTANTIATE_TEST_SUITE_P(
    unusable_names, certs_tls_identity,
    ::testing::Values(
        identity_case{"cn_with_a_space", {"batch worker", {}}, std::nullopt, identity_field::common_name,
                      unusable("common_name")},
        identity_case{"cn_with_del", {"worker\x7f", {}}, std::nullopt, identity_field::common_name,
                      unusable("common_name")},
        identity_case{"cn_not_ascii", {"w\xc3\xb6rker", {}}, std::nullopt, identity_field::common_name,
                      unusable("common_name")},
        identity_case{"uri_with_a_control_character", {"worker", {{GEN_URI, "spiffe://example.org/\x01x"}}},
                      std::nullopt, identity_field::uri_san, unusable("uri_san")},
        identity_case{"uri_with_a_nul", {"worker", {{GEN_URI, "spiffe://example.org/a\0b"s}}}, std::nullopt,
                      identity_field::uri_san, unusable("uri_san")},
        identity_case{"uri_empty", {"worker", {{GEN_URI, ""}}}, std::nullopt, identity_field::uri_san,
                      unusable("uri_san")},
        identity_case{"uri_of_2049_bytes", {"worker", {{GEN_URI, uri_2048 + "x"}}}, std::nullopt,
                      identity_field::uri_san, unusable("uri_san")},
        identity_case{"dns_with_a_space", {"worker", {{GEN_DNS, "a b.example.org"}}}, std::nullopt,
                      identity_field::dns_san, unusable("dns_san")},
        // The preferred name decides: a bad URI is refused, never passed over for the DNS name or CN.
        identity_case{"bad_uri_is_not_skipped_for_a_good_dns",
                      {"worker", {{GEN_URI, "spiffe://example.org/\tx"}, {GEN_DNS, "worker.example.org"}}}, std::nullopt,
                      identity_field::uri_san, unusable("uri_san")},
        identity_case{"no_name_at_all", {std::nullopt, {}}, std::nullopt, identity_field::common_name,
                      "the certificate has no URI SAN, DNS SAN or common name"}),
    case_name<identity_case>);

TEST(certs_tls_identity_none, optional_certificate_not_sent)
{
    pki p;
    auto h = shake(context_of(p.mtls(false)), {nullptr, {}, 0, &p.ca});
    ASSERT_TRUE(h.server_ok) << h.server_message;
    auto id = identity_of(h.server.get());
    EXPECT_FALSE(id.value) << show(id);
    EXPECT_EQ(id.error, "") << show(id);
}

TEST(certs_tls_identity_none, no_client_ca_means_no_certificate_is_asked_for)
{
    // The client has a certificate, but a listener without client_ca never asks for it.
    pki p;
    party client = make_party({"worker", {{GEN_URI, spiffe}}}, &p.ca);
    auto h = shake(context_of({p.server_cert, p.server_key, std::nullopt, std::nullopt, true}), {&client, {}, 0, &p.ca});
    ASSERT_TRUE(h.server_ok) << h.server_message;
    auto id = identity_of(h.server.get());
    EXPECT_FALSE(id.value) << show(id);
    EXPECT_EQ(id.error, "") << show(id);
}

TEST(certs_tls_identity_none, optional_certificate_sent_is_used)
{
    pki p;
    party client = make_party({"worker", {{GEN_URI, spiffe}}}, &p.ca);
    auto h = shake(context_of(p.mtls(false)), {&client, {}, 0, &p.ca});
    ASSERT_TRUE(h.server_ok) << h.server_message;
    auto id = identity_of(h.server.get());
    EXPECT_EQ(id.value, spiffe) << show(id);
    EXPECT_EQ(id.field, identity_field::uri_san);
}

TEST(certs_tls_identity_none, tls_1_2_gives_the_same_identity)
{
    pki p;
    party client = make_party({"worker", {{GEN_DNS, "worker.example.org"}}}, &p.ca);
    auto h = shake(context_of(p.mtls()), {&client, {}, TLS1_2_VERSION, &p.ca});
    ASSERT_TRUE(h.server_ok) << h.server_message;
    EXPECT_EQ(SSL_version(h.server.get()), TLS1_2_VERSION);
    auto id = identity_of(h.server.get());
    EXPECT_EQ(id.value, "worker.example.org") << show(id);
    EXPECT_EQ(id.field, identity_field::dns_san);
}

// --- refused handshakes and why_handshake_failed -------------------------------------------------------------

// The clients refused, each shaking hands with a server of the given PKI at a highest TLS version (0: 1.3).
handshake no_certificate_when_required(pki& p, int max_version)
{
    return shake(context_of(p.mtls(true)), {nullptr, {}, max_version, &p.ca});
}

handshake revoked_client(pki& p, int max_version)
{
    party client = make_party({"worker", {{GEN_URI, spiffe}}}, &p.ca);
    auto crl = p.dir.write("crl.pem", pem(make_crl(p.ca, {&client}).get()));
    return shake(context_of({p.server_cert, p.server_key, p.ca_file, crl, true}), {&client, {}, max_version, &p.ca});
}

handshake client_of_another_ca(pki& p, int max_version)
{
    party stranger = make_ca("stranger CA");
    party client = make_party({"worker", {}}, &stranger);
    return shake(context_of(p.mtls(true)), {&client, {}, max_version, &p.ca});
}

// Optional lets a client in without a certificate, never with a bad one.
handshake client_of_another_ca_when_optional(pki& p, int max_version)
{
    party stranger = make_ca("stranger CA");
    party client = make_party({"worker", {}}, &stranger);
    return shake(context_of(p.mtls(false)), {&client, {}, max_version, &p.ca});
}

handshake self_signed_client(pki& p, int max_version)
{
    party client = make_party({"worker", {}});
    return shake(context_of(p.mtls(true)), {&client, {}, max_version, &p.ca});
}

struct refusal_case {
    std::string name;
    std::function<handshake(pki&, int)> client;
    int max_version;  // 0: TLS 1.3
    handshake_refusal kind;
    std::string detail;
};

void PrintTo(const refusal_case& c, std::ostream* os) { *os << c.name; }

class certs_tls_refusal : public ::testing::TestWithParam<refusal_case> {};

TEST_P(certs_tls_refusal, fails_the_handshake_and_says_why)
{
    const auto& c = GetParam();
    pki p;
    auto h = c.client(p, c.max_version);
    ASSERT_TRUE(h.server_failed) << "the handshake succeeded";
    auto why = why_handshake_failed(h.server.get(), h.server_error, h.server_message);
    EXPECT_EQ(to_string(why.kind), to_string(c.kind)) << show(why);
    EXPECT_EQ(why.detail, c.detail) << show(why);
    // A rejected certificate is named in the refusal event, though OpenSSL keeps no peer certificate after a
    // failed verification: the subject in RFC 2253 order, the serial in hex.
    if (c.kind == handshake_refusal::client_cert_rejected) {
        EXPECT_EQ(why.subject, "CN=worker,O=egressd tests") << show(why);
        EXPECT_FALSE(why.serial.empty());
        EXPECT_EQ(why.serial.find_first_not_of("0123456789ABCDEF"), std::string::npos) << why.serial;
    } else {
        EXPECT_EQ(why.subject, "");
        EXPECT_EQ(why.serial, "");
    }
}

const std::string no_issuer = "unable to get local issuer certificate";

INSTANTIATE_TEST_SUITE_P(
    clients, certs_tls_refusal,
    ::testing::Values(
        refusal_case{"missing_tls13", no_certificate_when_required, 0, handshake_refusal::client_cert_missing,
                     "no client certificate"},
        refusal_case{"missing_tls12", no_certificate_when_required, TLS1_2_VERSION,
                     handshake_refusal::client_cert_missing, "no client certificate"},
        refusal_case{"revoked_tls13", revoked_client, 0, handshake_refusal::client_cert_rejected, "certificate revoked"},
        refusal_case{"revoked_tls12", revoked_client, TLS1_2_VERSION, handshake_refusal::client_cert_rejected,
                     "certificate revoked"},
        refusal_case{"wrong_ca_tls13", client_of_another_ca, 0, handshake_refusal::client_cert_rejected, no_issuer},
        refusal_case{"wrong_ca_tls12", client_of_another_ca, TLS1_2_VERSION, handshake_refusal::client_cert_rejected,
                     no_issuer},
        refusal_case{"wrong_ca_when_optional", client_of_another_ca_when_optional, 0,
                     handshake_refusal::client_cert_rejected, no_issuer},
        refusal_case{"self_signed", self_signed_client, 0, handshake_refusal::client_cert_rejected,
                     "self-signed certificate"}),
    case_name<refusal_case>);

TEST(certs_tls_refusal_other, tls_1_1_client_is_refused_as_a_handshake_failure)
{
    pki p;
    auto h = shake(context_of(p.mtls(true)), {nullptr, {}, TLS1_1_VERSION, nullptr});
    ASSERT_TRUE(h.server_failed);
    auto why = why_handshake_failed(h.server.get(), h.server_error, h.server_message);
    EXPECT_EQ(why.kind, handshake_refusal::tls_handshake_failed) << show(why);
    EXPECT_EQ(why.detail, "unsupported protocol") << show(why);
}

TEST(certs_tls_refusal_other, plain_http_is_a_handshake_failure_in_the_callers_words)
{
    pki p;
    auto context = context_of(p.mtls(true));
    ASSERT_TRUE(context);
    ssl_ptr server(SSL_new(context->native_handle()));
    BIO* in = BIO_new(BIO_s_mem());
    BIO* out = BIO_new(BIO_s_mem());
    const std::string request = "GET http://example.org/ HTTP/1.1\r\nHost: example.org\r\n\r\n";
    ASSERT_EQ(BIO_write(in, request.data(), static_cast<int>(request.size())), static_cast<int>(request.size()));
    SSL_set_bio(server.get(), in, out);
    SSL_set_accept_state(server.get());
    ERR_clear_error();
    ASSERT_NE(SSL_do_handshake(server.get()), 1);
    unsigned long error = ERR_get_error();
    ERR_clear_error();
    ASSERT_EQ(ERR_GET_REASON(error), SSL_R_HTTP_REQUEST) << reason_of(error);
    auto why = why_handshake_failed(server.get(), error, "http request");
    EXPECT_EQ(why.kind, handshake_refusal::tls_handshake_failed) << show(why);
    // The detail is the caller's message (asio's words for the error), not a certificate verdict.
    EXPECT_EQ(why.detail, "http request") << show(why);
}

// The classification alone, on an SSL that never shook hands: the verify result comes first.
TEST(certs_tls_refusal_other, classification_without_a_handshake)
{
    pki p;
    auto context = context_of(p.mtls(true));
    ASSERT_TRUE(context);
    ssl_ptr ssl(SSL_new(context->native_handle()));
    const unsigned long no_certificate = ERR_PACK(ERR_LIB_SSL, 0, SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE);
    const unsigned long wrong_version = ERR_PACK(ERR_LIB_SSL, 0, SSL_R_WRONG_VERSION_NUMBER);

    auto why = why_handshake_failed(ssl.get(), no_certificate, "peer did not return a certificate");
    EXPECT_EQ(why.kind, handshake_refusal::client_cert_missing) << show(why);
    EXPECT_EQ(why.detail, "no client certificate");

    why = why_handshake_failed(ssl.get(), wrong_version, "wrong version number");
    EXPECT_EQ(why.kind, handshake_refusal::tls_handshake_failed) << show(why);
    EXPECT_EQ(why.detail, "wrong version number");

    // A cut connection or a timeout: no OpenSSL error, only the message.
    why = why_handshake_failed(ssl.get(), 0, "End of file");
    EXPECT_EQ(why.kind, handshake_refusal::tls_handshake_failed) << show(why);
    EXPECT_EQ(why.detail, "End of file");

    // The same reason code from another library is not "no certificate".
    why = why_handshake_failed(ssl.get(), ERR_PACK(ERR_LIB_X509, 0, SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE), "x");
    EXPECT_EQ(why.kind, handshake_refusal::tls_handshake_failed) << show(why);

    SSL_set_verify_result(ssl.get(), X509_V_ERR_CERT_HAS_EXPIRED);
    why = why_handshake_failed(ssl.get(), no_certificate, "peer did not return a certificate");
    EXPECT_EQ(why.kind, handshake_refusal::client_cert_rejected) << show(why);
    EXPECT_EQ(why.detail, "certificate has expired");
}

// --- CRLs and chains: CRL_CHECK_ALL ------------------------------------------------------------------------------

// Root CA (trusted, client_ca) -> intermediate CA -> client; the client sends the intermediate with its
// certificate. Which CRLs the file holds decides.
struct chain_pki {
    pki base;
    party intermediate = make_ca("client intermediate", &base.ca);
    party client = make_party({"worker", {{GEN_URI, spiffe}}}, &intermediate);

    handshake shake_with(const std::string& crls)
    {
        auto crl = base.dir.write("crls.pem", crls);
        return shake(context_of({base.server_cert, base.server_key, base.ca_file, crl, true}),
                     {&client, {&intermediate}, 0, &base.ca});
    }
};

TEST(certs_tls_crl, chain_with_a_crl_for_every_ca_is_accepted)
{
    chain_pki c;
    auto h = c.shake_with(pem(make_crl(c.base.ca).get()) + pem(make_crl(c.intermediate).get()));
    ASSERT_TRUE(h.server_ok) << h.server_message;
    EXPECT_EQ(identity_of(h.server.get()).value, spiffe);
}

TEST(certs_tls_crl, intermediate_without_a_crl_fails_closed)
{
    // Only the root's CRL: nobody can tell whether the intermediate revoked the client, so it is refused.
    chain_pki c;
    auto h = c.shake_with(pem(make_crl(c.base.ca).get()));
    ASSERT_TRUE(h.server_failed) << "the handshake succeeded";
    auto why = why_handshake_failed(h.server.get(), h.server_error, h.server_message);
    EXPECT_EQ(why.kind, handshake_refusal::client_cert_rejected) << show(why);
    EXPECT_EQ(why.detail, "unable to get certificate CRL") << show(why);
}

TEST(certs_tls_crl, root_without_a_crl_fails_closed)
{
    // The client's own issuer has a CRL, the root does not: only CRL_CHECK_ALL (every certificate of the chain,
    // not just the client's) notices that the intermediate itself might be revoked.
    chain_pki c;
    auto h = c.shake_with(pem(make_crl(c.intermediate).get()));
    ASSERT_TRUE(h.server_failed) << "the handshake succeeded";
    auto why = why_handshake_failed(h.server.get(), h.server_error, h.server_message);
    EXPECT_EQ(why.kind, handshake_refusal::client_cert_rejected) << show(why);
    EXPECT_EQ(why.detail, "unable to get certificate CRL") << show(why);
}

TEST(certs_tls_crl, crl_of_an_unrelated_ca_fails_closed)
{
    pki p;
    party stranger = make_ca("stranger CA");
    party client = make_party({"worker", {}}, &p.ca);
    auto crl = p.dir.write("crl.pem", pem(make_crl(stranger).get()));
    auto h = shake(context_of({p.server_cert, p.server_key, p.ca_file, crl, true}), {&client, {}, 0, &p.ca});
    ASSERT_TRUE(h.server_failed) << "the handshake succeeded";
    auto why = why_handshake_failed(h.server.get(), h.server_error, h.server_message);
    EXPECT_EQ(why.kind, handshake_refusal::client_cert_rejected) << show(why);
    EXPECT_EQ(why.detail, "unable to get certificate CRL") << show(why);
}

TEST(certs_tls_crl, client_revoked_by_the_intermediate)
{
    chain_pki c;
    auto h = c.shake_with(pem(make_crl(c.base.ca).get()) + pem(make_crl(c.intermediate, {&c.client}).get()));
    ASSERT_TRUE(h.server_failed) << "the handshake succeeded";
    auto why = why_handshake_failed(h.server.get(), h.server_error, h.server_message);
    EXPECT_EQ(why.kind, handshake_refusal::client_cert_rejected) << show(why);
    EXPECT_EQ(why.detail, "certificate revoked") << show(why);
}

TEST(certs_tls_crl, intermediate_revoked_by_the_root)
{
    chain_pki c;
    auto h = c.shake_with(pem(make_crl(c.base.ca, {&c.intermediate}).get()) + pem(make_crl(c.intermediate).get()));
    ASSERT_TRUE(h.server_failed) << "the handshake succeeded";
    auto why = why_handshake_failed(h.server.get(), h.server_error, h.server_message);
    EXPECT_EQ(why.kind, handshake_refusal::client_cert_rejected) << show(why);
    EXPECT_EQ(why.detail, "certificate revoked") << show(why);
}

TEST(certs_tls_crl, other_clients_still_get_in_when_one_is_revoked)
{
    pki p;
    party revoked = make_party({"revoked", {}}, &p.ca);
    party fine = make_party({"fine", {}}, &p.ca);
    auto crl = p.dir.write("crl.pem", pem(make_crl(p.ca, {&revoked}).get()));
    auto context = context_of({p.server_cert, p.server_key, p.ca_file, crl, true});
    auto h = shake(context, {&fine, {}, 0, &p.ca});
    ASSERT_TRUE(h.server_ok) << h.server_message;
    EXPECT_EQ(identity_of(h.server.get()).value, "fine");
    EXPECT_TRUE(shake(context, {&revoked, {}, 0, &p.ca}).server_failed);
}

// --- the development PKI script ------------------------------------------------------------------------------

// certs/egressd-certs makes what the README tells users to run the listener with: its CA, CRL, server and
// client files must load and shake hands, and its revocation must bite.
TEST(certs_tls_script, dev_pki_files_work_and_revocation_bites)
{
    temp_dir dir;
    const std::string script = "bash '" EGRESSD_SOURCE_DIR "/certs/egressd-certs'";
    const std::string pki_dir = (dir.path() / "pki").string();
    const std::string log = (dir.path() / "log").string();
    auto run = [&](const std::string& args) {
        int rc = std::system((script + " " + args + " >>'" + log + "' 2>&1").c_str());
        std::ifstream output(log);
        EXPECT_EQ(rc, 0) << "egressd-certs " << args << " failed:\n"
                         << std::string(std::istreambuf_iterator<char>(output), {});
        return rc == 0;
    };
    ASSERT_TRUE(run("ca '" + pki_dir + "'"));
    ASSERT_TRUE(run("server '" + pki_dir + "' proxy"));
    ASSERT_TRUE(run("client '" + pki_dir + "' worker --uri " + spiffe));
    ASSERT_TRUE(run("client '" + pki_dir + "' plain"));
    const std::filesystem::path d = pki_dir;
    const tls_server_files files{d / "proxy.pem", d / "proxy.key", d / "ca.pem", d / "crl.pem", true};

    auto read_party = [](const std::filesystem::path& cert, const std::filesystem::path& key) {
        party p;
        bio_ptr c(BIO_new_file(cert.c_str(), "r"));
        bio_ptr k(BIO_new_file(key.c_str(), "r"));
        EXPECT_TRUE(c && k) << cert;
        if (c && k) {
            p.cert.reset(PEM_read_bio_X509(c.get(), nullptr, nullptr, nullptr));
            p.key.reset(PEM_read_bio_PrivateKey(k.get(), nullptr, nullptr, nullptr));
        }
        EXPECT_TRUE(p.cert && p.key) << cert;
        return p;
    };
    party ca;
    {
        bio_ptr c(BIO_new_file((d / "ca.pem").c_str(), "r"));
        ASSERT_TRUE(c);
        ca.cert.reset(PEM_read_bio_X509(c.get(), nullptr, nullptr, nullptr));
    }
    party worker = read_party(d / "worker.pem", d / "worker.key");
    party plain = read_party(d / "plain.pem", d / "plain.key");

    auto h = shake(context_of(files), {&worker, {}, 0, &ca});
    ASSERT_TRUE(h.server_ok) << h.server_message;
    auto id = identity_of(h.server.get());
    EXPECT_EQ(id.value, spiffe) << show(id);
    EXPECT_EQ(id.field, identity_field::uri_san);
    // No SAN flags: the CN is the identity.
    h = shake(context_of(files), {&plain, {}, 0, &ca});
    ASSERT_TRUE(h.server_ok) << h.server_message;
    EXPECT_EQ(identity_of(h.server.get()).value, "plain");

    // The files are read when the context is made: the revocation applies to the next context.
    ASSERT_TRUE(run("revoke '" + pki_dir + "' worker"));
    h = shake(context_of(files), {&worker, {}, 0, &ca});
    ASSERT_TRUE(h.server_failed) << "the revoked client got in";
    auto why = why_handshake_failed(h.server.get(), h.server_error, h.server_message);
    EXPECT_EQ(why.kind, handshake_refusal::client_cert_rejected) << show(why);
    EXPECT_EQ(why.detail, "certificate revoked") << show(why);
    h = shake(context_of(files), {&plain, {}, 0, &ca});
    EXPECT_TRUE(h.server_ok) << h.server_message;
}

// --- refused at load because they would fail every handshake, or hang -------------------------------------

TEST(certs_tls_context_refuses, an_expired_crl)
{
    pki p;
    auto crl = make_crl(p.ca);
    std::unique_ptr<ASN1_TIME, freer<ASN1_TIME_free>> past(X509_gmtime_adj(nullptr, -60));
    ASSERT_EQ(X509_CRL_set1_nextUpdate(crl.get(), past.get()), 1);
    ASSERT_GT(X509_CRL_sign(crl.get(), p.ca.key.get(), EVP_sha256()), 0);
    auto file = p.dir.write("expired-crl.pem", pem(crl.get()));
    auto files = p.mtls();
    files.crl = file;
    auto made = make_tls_server_context(files);
    EXPECT_FALSE(made.context);
    ASSERT_EQ(made.errors.size(), 1u);
    EXPECT_EQ(made.errors[0].file, tls_file::crl);
    EXPECT_TRUE(made.errors[0].message.starts_with(file.string() + ": the CRL of CN=egressd test CA,O=egressd tests expired on "))
        << made.errors[0].message;
    EXPECT_TRUE(made.errors[0].message.ends_with(" GMT: issue a new one")) << made.errors[0].message;
    EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(certs_tls_context_refuses, an_encrypted_key_without_asking_for_a_passphrase)
{
    // OpenSSL's default would prompt on the terminal and block: the load must come back with an error.
    pki p;
    std::string encrypted = pem_of([&](BIO* b) {
        return PEM_write_bio_PKCS8PrivateKey(b, p.server.key.get(), EVP_aes_256_cbc(), nullptr, 0, nullptr,
                                             const_cast<char*>("secret"));
    });
    ASSERT_NE(encrypted.find("ENCRYPTED PRIVATE KEY"), std::string::npos);
    auto files = p.mtls();
    files.key = p.dir.write("encrypted.key", encrypted);
    auto made = make_tls_server_context(files);
    EXPECT_FALSE(made.context);
    ASSERT_EQ(made.errors.size(), 1u);
    EXPECT_EQ(made.errors[0].file, tls_file::key);
    EXPECT_EQ(made.errors[0].message, files.key.string() +
                                          ": the private key is encrypted: egressd reads unencrypted keys only "
                                          "(protect the file with its permissions)");
    EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(certs_tls_context, offers_no_tls13_tickets)
{
    pki p;
    auto context = context_of(p.mtls());
    ASSERT_TRUE(context);
    EXPECT_EQ(SSL_CTX_get_num_tickets(context->native_handle()), 0u);
}

// A client that connects and leaves without a byte (a load balancer's health check) is not a refusal; one that
// started a handshake and broke it off is.
TEST(certs_tls_refusal_other, nothing_received_is_client_closed)
{
    pki p;
    auto context = context_of(p.mtls());
    ASSERT_TRUE(context);
    ssl_ptr server(SSL_new(context->native_handle()));
    BIO* inside = nullptr;
    BIO* outside = nullptr;
    ASSERT_EQ(BIO_new_bio_pair(&inside, 0, &outside, 0), 1);
    bio_ptr outside_owner(outside);
    SSL_set_bio(server.get(), inside, inside);
    EXPECT_EQ(SSL_accept(server.get()), -1);  // waits for a ClientHello that never comes
    ERR_clear_error();
    auto why = why_handshake_failed(server.get(), 0, "stream truncated");
    EXPECT_EQ(why.kind, handshake_refusal::client_closed) << show(why);
    EXPECT_EQ(to_string(why.kind), "client_closed");

    // Half a ClientHello, then nothing: a broken handshake.
    const unsigned char partial[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01};
    ASSERT_EQ(BIO_write(outside, partial, sizeof partial), static_cast<int>(sizeof partial));
    EXPECT_EQ(SSL_accept(server.get()), -1);
    ERR_clear_error();
    why = why_handshake_failed(server.get(), 0, "stream truncated");
    EXPECT_EQ(why.kind, handshake_refusal::tls_handshake_failed) << show(why);
}

}  // namespace
}  // namespace egressd::certs
