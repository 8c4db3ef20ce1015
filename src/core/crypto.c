/* HMAC-SHA256, hex and base64, random bytes, constant-time comparison, UUIDv7, and the
 * Standard Webhooks signature. OpenSSL libcrypto does the cryptography and base64.
 *
 * THREAD SAFETY: lf_uuid7 keeps the last timestamp and counter under a mutex so ids stay
 * strictly increasing across threads; everything else is stateless. */
#include "core/crypto.h"
#include "core/err.h"
#include "core/timeutil.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lf_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                    unsigned char out[LF_SHA256_LEN])
{
    unsigned int outlen = LF_SHA256_LEN;
    HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &outlen);
}

void lf_sha256(const void *data, size_t len, unsigned char out[LF_SHA256_LEN])
{
    SHA256(data, len, out);
}

void lf_hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int lf_hex_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
    if (len % 2 || len / 2 > cap) return -LF_EINVAL;
    for (size_t i = 0; i < len / 2; i++) {
        int hi = hexval(in[2 * i]), lo = hexval(in[2 * i + 1]);
        if (hi < 0 || lo < 0) return -LF_EINVAL;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return (int)(len / 2);
}

void lf_base64_encode(const unsigned char *in, size_t n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

int lf_base64_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
    if (len == 0) return 0;
    if (len % 4 != 0 || len / 4 * 3 > cap) return -LF_EINVAL;
    int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
    if (n < 0) return -LF_EINVAL;
    /* EVP_DecodeBlock counts padding as zero bytes. */
    if (in[len - 1] == '=') n--;
    if (in[len - 2] == '=') n--;
    return n;
}

void lf_random_bytes(void *buf, size_t n)
{
    if (RAND_bytes(buf, (int)n) != 1) {
        fputs("{\"level\":\"fatal\",\"msg\":\"no randomness available\"}\n", stderr);
        abort();
    }
}

int lf_consttime_eq(const void *a, size_t alen, const void *b, size_t blen)
{
    if (alen != blen) return 0;
    return CRYPTO_memcmp(a, b, alen) == 0;
}

static pthread_mutex_t uuid_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t uuid_last_ms;
static unsigned uuid_counter; /* the 12-bit rand_a field, used as a counter within one ms */

void lf_uuid7(char out[LF_UUID_STRLEN + 1])
{
    unsigned char b[16];
    lf_random_bytes(b, sizeof(b));
    int64_t ms = lf_now_ms();
    pthread_mutex_lock(&uuid_lock);
    if (ms <= uuid_last_ms) {
        ms = uuid_last_ms;
        if (++uuid_counter > 0xfff) {
            ms++;
            uuid_counter = b[6] & 0x7f; /* leave room to count up again */
        }
    } else {
        uuid_counter = ((unsigned)(b[6] & 0x07) << 8) | b[7]; /* start low: room to count */
    }
    uuid_last_ms = ms;
    unsigned counter = uuid_counter;
    pthread_mutex_unlock(&uuid_lock);

    for (int i = 0; i < 6; i++) b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)(0x70 | (counter >> 8));
    b[7] = (unsigned char)(counter & 0xff);
    b[8] = (unsigned char)(0x80 | (b[8] & 0x3f));
    char hex[33];
    lf_hex_encode(b, 16, hex);
    snprintf(out, LF_UUID_STRLEN + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
             hex + 20);
}

int lf_uuid_valid(const char *s)
{
    if (s == NULL || strlen(s) != LF_UUID_STRLEN) return 0;
    for (int i = 0; i < LF_UUID_STRLEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') return 0;
        } else if (hexval(s[i]) < 0) {
            return 0;
        }
    }
    return 1;
}

void lf_secret_new(char *out, size_t size)
{
    unsigned char raw[32];
    char b64[48];
    lf_random_bytes(raw, sizeof(raw));
    lf_base64_encode(raw, sizeof(raw), b64);
    snprintf(out, size, "whsec_%s", b64);
}

/* The HMAC key of a Standard Webhooks secret: the bytes after "whsec_". */
static int stdwebhook_key(const char *secret, unsigned char *key, size_t cap)
{
    if (strncmp(secret, "whsec_", 6) == 0) {
        const char *b64 = secret + 6;
        return lf_base64_decode(b64, strlen(b64), key, cap);
    }
    size_t n = strlen(secret);
    if (n > cap) return -LF_EINVAL;
    memcpy(key, secret, n);
    return (int)n;
}

static int stdwebhook_mac(const char *secret, const char *id, int64_t timestamp, const char *body,
                          size_t body_len, unsigned char mac[LF_SHA256_LEN])
{
    unsigned char key[128];
    int keylen = stdwebhook_key(secret, key, sizeof(key));
    if (keylen <= 0) return -LF_EINVAL;
    char prefix[160];
    int n = snprintf(prefix, sizeof(prefix), "%s.%lld.", id, (long long)timestamp);
    if (n < 0 || (size_t)n >= sizeof(prefix)) return -LF_EINVAL;
    /* HMAC over prefix || body without copying the body. */
    unsigned int maclen = LF_SHA256_LEN;
    EVP_MAC *algo = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = algo ? EVP_MAC_CTX_new(algo) : NULL;
    int ok = 0;
    if (ctx) {
        OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
                               OSSL_PARAM_construct_end()};
        size_t outl = 0;
        ok = EVP_MAC_init(ctx, key, (size_t)keylen, params) &&
             EVP_MAC_update(ctx, (const unsigned char *)prefix, (size_t)n) &&
             EVP_MAC_update(ctx, (const unsigned char *)body, body_len) &&
             EVP_MAC_final(ctx, mac, &outl, maclen);
    }
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(algo);
    OPENSSL_cleanse(key, sizeof(key));
    return ok ? 0 : -LF_EINTERNAL;
}

int lf_stdwebhook_sign(const char *secret, const char *id, int64_t timestamp, const char *body,
                       size_t body_len, char *out, size_t size)
{
    unsigned char mac[LF_SHA256_LEN];
    int rc = stdwebhook_mac(secret, id, timestamp, body, body_len, mac);
    if (rc < 0) return rc;
    char b64[48];
    lf_base64_encode(mac, sizeof(mac), b64);
    snprintf(out, size, "v1,%s", b64);
    return 0;
}

int lf_stdwebhook_verify(const char *secret, const char *id, int64_t timestamp, const char *body,
                         size_t body_len, const char *header)
{
    unsigned char mac[LF_SHA256_LEN];
    if (header == NULL || stdwebhook_mac(secret, id, timestamp, body, body_len, mac) < 0)
        return -LF_EAUTH;
    int matched = 0;
    const char *p = header;
    while (*p) {
        while (*p == ' ') p++;
        const char *end = strchr(p, ' ');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 3 && strncmp(p, "v1,", 3) == 0) {
            unsigned char got[64];
            int n = lf_base64_decode(p + 3, len - 3, got, sizeof(got));
            if (n > 0) matched |= lf_consttime_eq(got, (size_t)n, mac, sizeof(mac));
        }
        p += len;
    }
    return matched ? 0 : -LF_EAUTH;
}

int lf_signature_verify(const char *secret, const char *body, size_t body_len, const char *header)
{
    if (header == NULL || strncmp(header, "sha256=", 7) != 0) return -LF_EAUTH;
    unsigned char got[LF_SHA256_LEN], mac[LF_SHA256_LEN];
    const char *hex = header + 7;
    if (lf_hex_decode(hex, strlen(hex), got, sizeof(got)) != LF_SHA256_LEN) return -LF_EAUTH;
    lf_hmac_sha256(secret, strlen(secret), body, body_len, mac);
    return lf_consttime_eq(got, sizeof(got), mac, sizeof(mac)) ? 0 : -LF_EAUTH;
}
