/* tls/openssl.h
 * OpenSSL loaded when a config first needs TLS, not when Petrel starts. Linked the usual way,
 * libssl and libcrypto cost about 1.7 MB of resident memory in every process (the dynamic
 * loader reads and applies their relocations at exec), TLS or not; dlopen()ed on first use,
 * a config without TLS never pays it (docs/benchmarks.md, "Start-up and idle cost").
 *
 * Code calls OpenSSL by its usual names: after OpenSSL's own headers, each function Petrel
 * uses is a macro for the pointer that pt__openssl() resolved, so a call before the load
 * cannot happen (the first call loads) and a function missing from PT_OPENSSL_FUNCS fails at
 * link time (the binary does not link libssl). Include this header, never <openssl/...>
 * after it. */
#ifndef PT_TLS_OPENSSL_H
#define PT_TLS_OPENSSL_H

#include <stdatomic.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* Every OpenSSL function Petrel calls. One called but missing here fails the link: petrel does
 * not link libssl. */
#define PT_OPENSSL_FUNCS(X)                                                                        \
    X(ASN1_STRING_get0_data)                                                                       \
    X(ASN1_STRING_length)                                                                          \
    X(BIO_ctrl)                                                                                    \
    X(BIO_ctrl_pending)                                                                            \
    X(BIO_free)                                                                                    \
    X(BIO_new)                                                                                     \
    X(BIO_read)                                                                                    \
    X(BIO_s_mem)                                                                                   \
    X(BIO_write)                                                                                   \
    X(CRYPTO_get_ex_new_index)                                                                     \
    X(ERR_clear_error)                                                                             \
    X(ERR_error_string_n)                                                                          \
    X(ERR_get_error)                                                                               \
    X(EVP_sha256)                                                                                  \
    X(GENERAL_NAMES_free)                                                                          \
    X(OPENSSL_sk_num)                                                                              \
    X(OPENSSL_sk_value)                                                                            \
    X(SSL_CTX_check_private_key)                                                                   \
    X(SSL_CTX_ctrl)                                                                                \
    X(SSL_CTX_free)                                                                                \
    X(SSL_CTX_get0_certificate)                                                                    \
    X(SSL_CTX_get_ex_data)                                                                         \
    X(SSL_CTX_load_verify_locations)                                                               \
    X(SSL_CTX_new)                                                                                 \
    X(SSL_CTX_set_alpn_protos)                                                                     \
    X(SSL_CTX_set_alpn_select_cb)                                                                  \
    X(SSL_CTX_set_cipher_list)                                                                     \
    X(SSL_CTX_set_client_CA_list)                                                                  \
    X(SSL_CTX_set_default_verify_paths)                                                            \
    X(SSL_CTX_set_ex_data)                                                                         \
    X(SSL_CTX_set_options)                                                                         \
    X(SSL_CTX_set_session_id_context)                                                              \
    X(SSL_CTX_set_verify)                                                                          \
    X(SSL_CTX_up_ref)                                                                              \
    X(SSL_CTX_use_PrivateKey_file)                                                                 \
    X(SSL_CTX_use_certificate_chain_file)                                                          \
    X(SSL_ctrl)                                                                                    \
    X(SSL_do_handshake)                                                                            \
    X(SSL_free)                                                                                    \
    X(SSL_get0_alpn_selected)                                                                      \
    X(SSL_get0_param)                                                                              \
    X(SSL_get0_peer_certificate)                                                                   \
    X(SSL_get_SSL_CTX)                                                                             \
    X(SSL_get_error)                                                                               \
    X(SSL_get_servername)                                                                          \
    X(SSL_get_verify_mode)                                                                         \
    X(SSL_get_verify_result)                                                                       \
    X(SSL_get_version)                                                                             \
    X(SSL_load_client_CA_file)                                                                     \
    X(SSL_new)                                                                                     \
    X(SSL_pending)                                                                                 \
    X(SSL_read_ex)                                                                                 \
    X(SSL_select_next_proto)                                                                       \
    X(SSL_set1_host)                                                                               \
    X(SSL_set_accept_state)                                                                        \
    X(SSL_set_alpn_protos)                                                                         \
    X(SSL_set_bio)                                                                                 \
    X(SSL_set_connect_state)                                                                       \
    X(SSL_shutdown)                                                                                \
    X(SSL_write_ex)                                                                                \
    X(TLS_client_method)                                                                           \
    X(TLS_server_method)                                                                           \
    X(X509_VERIFY_PARAM_set1_ip_asc)                                                               \
    X(X509_check_host)                                                                             \
    X(X509_check_ip_asc)                                                                           \
    X(X509_cmp_current_time)                                                                       \
    X(X509_digest)                                                                                 \
    X(X509_get0_notAfter)                                                                          \
    X(X509_get0_notBefore)                                                                         \
    X(X509_get_ext_d2i)                                                                            \
    X(X509_verify_cert_error_string)

typedef struct pt_openssl {
#define PT_OPENSSL_MEMBER_(f) __typeof__(f) *f;
    PT_OPENSSL_FUNCS(PT_OPENSSL_MEMBER_)
#undef PT_OPENSSL_MEMBER_
} pt_openssl_t;

/* Loads libssl.so.3 (with its libcrypto) and resolves every function, once for the process;
 * thread-safe. Returns 0, or -1 with what failed (dlerror's words) in err. */
int pt_openssl_load(char *err, size_t err_cap);

/* The functions; the first use loads them, and exits the process with a message if OpenSSL
 * cannot be loaded (every caller that can report an error calls pt_openssl_load() first). */
extern _Atomic(const pt_openssl_t *) pt__openssl_loaded;
const pt_openssl_t *pt__openssl_load_or_exit(void);
static inline const pt_openssl_t *pt__openssl(void)
{
    const pt_openssl_t *o = atomic_load_explicit(&pt__openssl_loaded, memory_order_acquire);
    return o != NULL ? o : pt__openssl_load_or_exit();
}

/* One per PT_OPENSSL_FUNCS entry: a name missing here would call the real symbol, which the
 * link refuses; one missing there would name no member. */
#ifndef PT_OPENSSL_NO_MACROS
#define ASN1_STRING_get0_data (pt__openssl()->ASN1_STRING_get0_data)
#define ASN1_STRING_length (pt__openssl()->ASN1_STRING_length)
#define BIO_ctrl (pt__openssl()->BIO_ctrl)
#define BIO_ctrl_pending (pt__openssl()->BIO_ctrl_pending)
#define BIO_free (pt__openssl()->BIO_free)
#define BIO_new (pt__openssl()->BIO_new)
#define BIO_read (pt__openssl()->BIO_read)
#define BIO_s_mem (pt__openssl()->BIO_s_mem)
#define BIO_write (pt__openssl()->BIO_write)
#define CRYPTO_get_ex_new_index (pt__openssl()->CRYPTO_get_ex_new_index)
#define ERR_clear_error (pt__openssl()->ERR_clear_error)
#define ERR_error_string_n (pt__openssl()->ERR_error_string_n)
#define ERR_get_error (pt__openssl()->ERR_get_error)
#define EVP_sha256 (pt__openssl()->EVP_sha256)
#define GENERAL_NAMES_free (pt__openssl()->GENERAL_NAMES_free)
#define OPENSSL_sk_num (pt__openssl()->OPENSSL_sk_num)
#define OPENSSL_sk_value (pt__openssl()->OPENSSL_sk_value)
#define SSL_CTX_check_private_key (pt__openssl()->SSL_CTX_check_private_key)
#define SSL_CTX_ctrl (pt__openssl()->SSL_CTX_ctrl)
#define SSL_CTX_free (pt__openssl()->SSL_CTX_free)
#define SSL_CTX_get0_certificate (pt__openssl()->SSL_CTX_get0_certificate)
#define SSL_CTX_get_ex_data (pt__openssl()->SSL_CTX_get_ex_data)
#define SSL_CTX_load_verify_locations (pt__openssl()->SSL_CTX_load_verify_locations)
#define SSL_CTX_new (pt__openssl()->SSL_CTX_new)
#define SSL_CTX_set_alpn_protos (pt__openssl()->SSL_CTX_set_alpn_protos)
#define SSL_CTX_set_alpn_select_cb (pt__openssl()->SSL_CTX_set_alpn_select_cb)
#define SSL_CTX_set_cipher_list (pt__openssl()->SSL_CTX_set_cipher_list)
#define SSL_CTX_set_client_CA_list (pt__openssl()->SSL_CTX_set_client_CA_list)
#define SSL_CTX_set_default_verify_paths (pt__openssl()->SSL_CTX_set_default_verify_paths)
#define SSL_CTX_set_ex_data (pt__openssl()->SSL_CTX_set_ex_data)
#define SSL_CTX_set_options (pt__openssl()->SSL_CTX_set_options)
#define SSL_CTX_set_session_id_context (pt__openssl()->SSL_CTX_set_session_id_context)
#define SSL_CTX_set_verify (pt__openssl()->SSL_CTX_set_verify)
#define SSL_CTX_up_ref (pt__openssl()->SSL_CTX_up_ref)
#define SSL_CTX_use_PrivateKey_file (pt__openssl()->SSL_CTX_use_PrivateKey_file)
#define SSL_CTX_use_certificate_chain_file (pt__openssl()->SSL_CTX_use_certificate_chain_file)
#define SSL_ctrl (pt__openssl()->SSL_ctrl)
#define SSL_do_handshake (pt__openssl()->SSL_do_handshake)
#define SSL_free (pt__openssl()->SSL_free)
#define SSL_get0_alpn_selected (pt__openssl()->SSL_get0_alpn_selected)
#define SSL_get0_param (pt__openssl()->SSL_get0_param)
#define SSL_get0_peer_certificate (pt__openssl()->SSL_get0_peer_certificate)
#define SSL_get_SSL_CTX (pt__openssl()->SSL_get_SSL_CTX)
#define SSL_get_error (pt__openssl()->SSL_get_error)
#define SSL_get_servername (pt__openssl()->SSL_get_servername)
#define SSL_get_verify_mode (pt__openssl()->SSL_get_verify_mode)
#define SSL_get_verify_result (pt__openssl()->SSL_get_verify_result)
#define SSL_get_version (pt__openssl()->SSL_get_version)
#define SSL_load_client_CA_file (pt__openssl()->SSL_load_client_CA_file)
#define SSL_new (pt__openssl()->SSL_new)
#define SSL_pending (pt__openssl()->SSL_pending)
#define SSL_read_ex (pt__openssl()->SSL_read_ex)
#define SSL_select_next_proto (pt__openssl()->SSL_select_next_proto)
#define SSL_set1_host (pt__openssl()->SSL_set1_host)
#define SSL_set_accept_state (pt__openssl()->SSL_set_accept_state)
#define SSL_set_alpn_protos (pt__openssl()->SSL_set_alpn_protos)
#define SSL_set_bio (pt__openssl()->SSL_set_bio)
#define SSL_set_connect_state (pt__openssl()->SSL_set_connect_state)
#define SSL_shutdown (pt__openssl()->SSL_shutdown)
#define SSL_write_ex (pt__openssl()->SSL_write_ex)
#define TLS_client_method (pt__openssl()->TLS_client_method)
#define TLS_server_method (pt__openssl()->TLS_server_method)
#define X509_VERIFY_PARAM_set1_ip_asc (pt__openssl()->X509_VERIFY_PARAM_set1_ip_asc)
#define X509_check_host (pt__openssl()->X509_check_host)
#define X509_check_ip_asc (pt__openssl()->X509_check_ip_asc)
#define X509_cmp_current_time (pt__openssl()->X509_cmp_current_time)
#define X509_digest (pt__openssl()->X509_digest)
#define X509_get0_notAfter (pt__openssl()->X509_get0_notAfter)
#define X509_get0_notBefore (pt__openssl()->X509_get0_notBefore)
#define X509_get_ext_d2i (pt__openssl()->X509_get_ext_d2i)
#define X509_verify_cert_error_string (pt__openssl()->X509_verify_cert_error_string)
#endif

#endif
