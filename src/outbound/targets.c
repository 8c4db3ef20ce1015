/* Which URLs a subscription (or a webhook action) may point at.
 *
 * A target must be http or https with a host and no user info, and must not be this service
 * itself. Unless LEADFLOW_ALLOW_PRIVATE_TARGETS is on it must also not reach loopback,
 * private, link-local or otherwise non-public addresses: not as a literal address, not as
 * "localhost", and not as a name that resolves to one. The check at save time is only the
 * first line: a name can resolve elsewhere later (DNS rebinding), so the dispatcher also
 * refuses such addresses when it connects (lf_addr_private from curl's opensocket callback). */
#include "outbound/outbound.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define HOST_MAX 256 /* a DNS name is at most 253 characters */

#define MSG_SCHEME "url must be http or https"
#define MSG_SELF   "url points at leadflow itself"
#define MSG_PRIVATE                                                                                \
    "url points at a private or loopback address (LEADFLOW_ALLOW_PRIVATE_TARGETS is off)"

/* 1 when the IPv4 address a (host byte order) is in prefix/bits. */
static int in_v4(uint32_t a, uint32_t prefix, int bits)
{
    uint32_t mask = bits == 0 ? 0 : 0xffffffffu << (32 - bits);
    return (a & mask) == (prefix & mask);
}

/* 1 when the IPv4 address (host byte order) is not a public unicast address. */
static int v4_private(uint32_t a)
{
    static const struct {
        uint32_t prefix;
        int bits;
    } ranges[] = {
        {0x00000000, 8},  /* 0/8: "this network", the unspecified address */
        {0x0a000000, 8},  /* 10/8 private */
        {0x64400000, 10}, /* 100.64/10 carrier-grade NAT */
        {0x7f000000, 8},  /* 127/8 loopback */
        {0xa9fe0000, 16}, /* 169.254/16 link-local (cloud metadata services live here) */
        {0xac100000, 12}, /* 172.16/12 private */
        {0xc0000000, 24}, /* 192.0.0/24 protocol assignments */
        {0xc0000200, 24}, /* 192.0.2/24 documentation */
        {0xc0a80000, 16}, /* 192.168/16 private */
        {0xc6120000, 15}, /* 198.18/15 benchmarking */
        {0xc6336400, 24}, /* 198.51.100/24 documentation */
        {0xcb007100, 24}, /* 203.0.113/24 documentation */
        {0xe0000000, 4},  /* 224/4 multicast */
        {0xf0000000, 4},  /* 240/4 reserved, and the broadcast address */
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if (in_v4(a, ranges[i].prefix, ranges[i].bits)) return 1;
    return 0;
}

/* The IPv4 address in the last four bytes of b, host byte order. */
static uint32_t v4_tail(const unsigned char *b)
{
    return (uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15];
}

/* 1 when the IPv6 address is not a public unicast address. Forms that carry an IPv4 address
 * (mapped, compatible, NAT64, 6to4) answer for the address they carry. */
static int v6_private(const unsigned char b[16])
{
    static const unsigned char zero[12] = {0};
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    if (memcmp(b, zero, 12) == 0) /* ::, ::1 and the old IPv4-compatible ::a.b.c.d */
        return 1;
    if (memcmp(b, mapped, 12) == 0 || memcmp(b, nat64, 12) == 0) return v4_private(v4_tail(b));
    if (b[0] == 0x20 && b[1] == 0x02) /* 2002::/16 6to4: the IPv4 address in bytes 2..5 */
        return v4_private((uint32_t)b[2] << 24 | (uint32_t)b[3] << 16 | (uint32_t)b[4] << 8 | b[5]);
    if ((b[0] & 0xfe) == 0xfc) return 1;                 /* fc00::/7 unique local */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return 1; /* fe80::/10 link-local */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return 1; /* fec0::/10 old site-local */
    if (b[0] == 0xff) return 1;                          /* ff00::/8 multicast */
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8)
        return 1; /* 2001:db8::/32 documentation */
    if (b[0] == 0x01 && b[1] == 0 && memcmp(b + 2, zero, 6) == 0) return 1; /* 100::/64 */
    return 0;
}

int lf_addr_private(const void *sockaddr)
{
    const struct sockaddr *sa = sockaddr;
    if (sa == NULL) return 1;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = sockaddr;
        return v4_private(ntohl(in->sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = sockaddr;
        return v6_private(in6->sin6_addr.s6_addr);
    }
    return 1; /* not an internet address at all */
}

/* A literal address as a socket address into ss: 1 when host is one, else 0. */
static int literal(const char *host, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        return 1;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        return 1;
    }
    return 0;
}

/* 1 for "localhost" and names under it (RFC 6761: they are always the loopback). host is
 * lower case without a trailing dot. */
static int is_localhost(const char *host)
{
    size_t n = strlen(host);
    return strcmp(host, "localhost") == 0 || (n > 10 && strcmp(host + n - 10, ".localhost") == 0);
}

/* 1 when the address is this machine: loopback or unspecified (which connects to the local
 * host), also as an IPv4-mapped IPv6 address. */
static int addr_local(const struct sockaddr *sa)
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    uint32_t v4;
    if (sa->sa_family == AF_INET) {
        v4 = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
    } else if (sa->sa_family == AF_INET6) {
        const unsigned char *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const unsigned char zero[15] = {0};
        if (memcmp(b, zero, 15) == 0 && b[15] <= 1) return 1; /* :: and ::1 */
        if (memcmp(b, mapped, 12) != 0) return 0;
        v4 = v4_tail(b);
    } else {
        return 0;
    }
    return in_v4(v4, 0x7f000000, 8) || v4 == 0;
}

/* 1 when two socket addresses hold the same IP address (ports are not compared). */
static int addr_equal(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family) return 0;
    if (a->sa_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (a->sa_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
    return 0;
}

/* What a host name resolves to, as far as the checks care. */
struct resolved {
    int any_private; /* some address is not public unicast */
    int any_self;    /* some address is local, or the listen address */
};

/* Resolves host and notes what its addresses are; listen_sa (may be NULL) is the listen
 * address. A name that does not resolve notes nothing: it fails at delivery instead. */
static void resolve(const char *host, const struct sockaddr *listen_sa, struct resolved *out)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    memset(out, 0, sizeof *out);
    if (getaddrinfo(host, NULL, &hints, &res) != 0) return;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        out->any_private |= lf_addr_private(ai->ai_addr);
        out->any_self |=
            addr_local(ai->ai_addr) || (listen_sa && addr_equal(ai->ai_addr, listen_sa));
    }
    freeaddrinfo(res);
}

/* Splits LEADFLOW_LISTEN ("host:port", "[v6]:port") into host (lower case, no brackets) and
 * port. Returns 0, or -1 when it has no usable port. */
static int split_listen(const char *listen, char *host, size_t size, long *port)
{
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    if (colon == NULL) return -1;
    char *end;
    *port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || *port <= 0 || *port > 65535) return -1;
    const char *h = listen;
    size_t n = (size_t)(colon - listen);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    if (n >= size) return -1;
    for (size_t i = 0; i < n; i++) host[i] = (char)(h[i] >= 'A' && h[i] <= 'Z' ? h[i] + 32 : h[i]);
    host[n] = '\0';
    return 0;
}

/* The parts of a URL the checks read. */
struct target {
    char host[HOST_MAX]; /* lower case, without brackets or a trailing dot */
    long port;           /* explicit, or the scheme's default */
};

/* Parses url into t. Returns 0, or -LF_EINVAL with the reason in err. */
static int parse_target(const char *url, struct target *t, struct lf_err *err)
{
    int rc = 0;
    char *scheme = NULL, *host = NULL, *port = NULL, *user = NULL, *password = NULL;
    CURLU *u = curl_url();
    if (u == NULL) return lf_err_set(err, -LF_ENOMEM, "out of memory");
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
    if (uc == CURLUE_BAD_SCHEME || (uc != CURLUE_OK && strstr(url, "://") == NULL)) {
        rc = lf_err_set(err, -LF_EINVAL, MSG_SCHEME);
        goto out;
    }
    if (uc != CURLUE_OK) {
        rc = lf_err_set(err, -LF_EINVAL, "url is not a valid URL (%s)", curl_url_strerror(uc));
        goto out;
    }
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)) {
        rc = lf_err_set(err, -LF_EINVAL, MSG_SCHEME);
        goto out;
    }
    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK) {
        rc = lf_err_set(err, -LF_EINVAL, "url must not carry a user name or password");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_HOST, &host, CURLU_URLDECODE) != CURLUE_OK || host[0] == '\0') {
        rc = lf_err_set(err, -LF_EINVAL, "url must name a host");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        rc = lf_err_set(err, -LF_EINVAL, "url has no usable port");
        goto out;
    }
    t->port = strtol(port, NULL, 10);
    const char *h = host;
    size_t n = strlen(h);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') { /* an IPv6 literal */
        h++;
        n -= 2;
    } else if (n > 1 && h[n - 1] == '.') { /* "localhost." is localhost */
        n--;
    }
    if (n == 0 || n >= sizeof t->host) {
        rc = lf_err_set(err, -LF_EINVAL, "url must name a host");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        t->host[i] = (char)(h[i] >= 'A' && h[i] <= 'Z' ? h[i] + 32 : h[i]);
    t->host[n] = '\0';
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(user);
    curl_free(password);
    curl_url_cleanup(u);
    return rc;
}

static int check(const struct lf_config *cfg, const char *url, int resolve_names,
                 struct lf_err *err)
{
    struct target t;
    if (url == NULL || url[0] == '\0') return lf_err_set(err, -LF_EINVAL, "url is required");
    int rc = parse_target(url, &t, err);
    if (rc < 0) return rc;
    if (t.port <= 0 || t.port > 65535) return lf_err_set(err, -LF_EINVAL, "url has no usable port");

    struct sockaddr_storage addr, listen_addr;
    int is_literal = literal(t.host, &addr);
    int local = is_localhost(t.host) || (is_literal && addr_local((struct sockaddr *)&addr));

    /* the service itself: its listen address, or this machine on its listen port */
    char listen_host[HOST_MAX];
    long listen_port;
    if (split_listen(cfg->listen, listen_host, sizeof listen_host, &listen_port) == 0 &&
        t.port == listen_port) {
        int listen_literal = literal(listen_host, &listen_addr);
        int self = local || strcmp(t.host, listen_host) == 0 ||
                   (is_literal && listen_literal &&
                    addr_equal((struct sockaddr *)&addr, (struct sockaddr *)&listen_addr));
        if (!self && !is_literal && resolve_names) {
            struct resolved res;
            resolve(t.host, listen_literal ? (struct sockaddr *)&listen_addr : NULL, &res);
            self = res.any_self;
        }
        if (self) return lf_err_set(err, -LF_EINVAL, MSG_SELF);
    }

    if (cfg->allow_private_targets) return 0;
    if (is_localhost(t.host)) return lf_err_set(err, -LF_EINVAL, MSG_PRIVATE);
    if (is_literal) {
        if (lf_addr_private(&addr)) return lf_err_set(err, -LF_EINVAL, MSG_PRIVATE);
        return 0;
    }
    if (!resolve_names) return 0;
    struct resolved res;
    resolve(t.host, NULL, &res);
    if (res.any_private) return lf_err_set(err, -LF_EINVAL, MSG_PRIVATE);
    return 0;
}

int lf_target_check(const struct lf_config *cfg, const char *url, struct lf_err *err)
{
    return check(cfg, url, 1, err);
}

int lf_target_check_quick(const struct lf_config *cfg, const char *url, struct lf_err *err)
{
    return check(cfg, url, 0, err);
}
