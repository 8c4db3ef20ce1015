/* HMAC-SHA256, hex and base64, random bytes, constant-time comparison, UUIDv7, and the
 * Standard Webhooks signature. */
#ifndef LF_CRYPTO_H
#define LF_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define LF_SHA256_LEN  32
#define LF_UUID_STRLEN 36

/* HMAC-SHA256 of data with key into out (32 bytes). */
void lf_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                    unsigned char out[LF_SHA256_LEN]);
/* SHA-256 of data into out (32 bytes). */
void lf_sha256(const void *data, size_t len, unsigned char out[LF_SHA256_LEN]);

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void lf_hex_encode(const unsigned char *in, size_t n, char *out);
/* Decodes hex (either case) into out (cap bytes). Returns the byte count or -LF_EINVAL. */
int lf_hex_decode(const char *in, size_t len, unsigned char *out, size_t cap);

/* Standard base64 with padding. Encode writes a NUL-terminated string into out, which must
 * hold 4*ceil(n/3)+1 bytes. Decode returns the byte count or -LF_EINVAL. */
void lf_base64_encode(const unsigned char *in, size_t n, char *out);
int lf_base64_decode(const char *in, size_t len, unsigned char *out, size_t cap);

/* Fills buf with n cryptographically random bytes; aborts if the system cannot. */
void lf_random_bytes(void *buf, size_t n);

/* Compares two byte strings in time that depends only on the lengths. 1 when equal. */
int lf_consttime_eq(const void *a, size_t alen, const void *b, size_t blen);

/* A new UUIDv7 (RFC 9562) into out (37 bytes). Ids made by one process are strictly
 * increasing, so they sort by creation. */
void lf_uuid7(char out[LF_UUID_STRLEN + 1]);
/* 1 when s has the shape of a UUID (any version), else 0. */
int lf_uuid_valid(const char *s);

/* A new secret "whsec_<base64 of 32 random bytes>" into out (at least 51 bytes). */
#define LF_SECRET_BUFSZ 64
void lf_secret_new(char *out, size_t size);

/* Standard Webhooks: the signature "v1,<base64 HMAC-SHA256 of id.timestamp.body>" with the
 * key decoded from "whsec_<base64>" (a secret without the prefix is used as raw bytes).
 * Writes a NUL-terminated string into out (at least 64 bytes). Returns 0 or -LF_EINVAL. */
#define LF_SIG_BUFSZ 64
int lf_stdwebhook_sign(const char *secret, const char *id, int64_t timestamp, const char *body,
                       size_t body_len, char *out, size_t size);

/* Verifies a "webhook-signature" header (space-separated "v1,<sig>" entries, any of which
 * may match) for id, timestamp and body. Returns 0 when one matches, else -LF_EAUTH. */
int lf_stdwebhook_verify(const char *secret, const char *id, int64_t timestamp, const char *body,
                         size_t body_len, const char *header);

/* Verifies "sha256=<hex>" as HMAC-SHA256 over body with the secret string as the key.
 * Returns 0 or -LF_EAUTH. */
int lf_signature_verify(const char *secret, const char *body, size_t body_len, const char *header);

#endif
