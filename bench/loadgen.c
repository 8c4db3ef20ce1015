/* lf-loadgen: drives the ingest API with signed events over keep-alive HTTP/1.1 connections.
 *
 * DESIGN
 * One thread, one epoll set, non-blocking sockets. Each connection carries one request at a
 * time (closed loop, no pipelining): it sends a request, reads the whole response, records
 * the latency from the first byte written to the last byte read, and sends the next. Every
 * request is built when it is sent, so bodies are distinct and carry unique idempotency keys
 * (a per-run UUIDv7 plus a sequence number), and is signed with HMAC-SHA256 of the raw body
 * under the source's secret. Responses are delimited by Content-Length only (the server
 * always sends it); chunked responses are reported as errors. Every buffer that the server's
 * bytes can grow has a hard cap. Latencies go into a log-linear histogram (0.1% resolution),
 * so memory does not grow with the number of requests.
 *
 * The run ends when --requests have been answered, or --duration-s has passed and the
 * requests in flight have been answered, or --timeout-s has passed (then it counts what is
 * still in flight as errors). A request unanswered for 30 s is an error and its connection
 * is replaced. More than 100 connection failures abort the run. */
#define _GNU_SOURCE /* memmem, SOCK_NONBLOCK */

#include "core/crypto.h"
#include "core/timeutil.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#define BODY_MAX           (1024 * 1024)     /* the server's request body cap */
#define REQ_HEAD_MAX       1024              /* request line and headers */
#define RESP_HEAD_MAX      (64 * 1024)       /* response status line and headers */
#define RESP_MAX           (8 * 1024 * 1024) /* a whole response, headers and body */
#define RESP_INITIAL       (16 * 1024)       /* first size of a response buffer */
#define ERRBODY_SHOW       2048              /* bytes of the first non-2xx body printed */
#define BATCH_MAX          1000              /* the server's events per batch request */
#define CONN_MAX           4096              /* --connections upper bound */
#define REQUEST_TIMEOUT_US (30LL * 1000000)  /* one request unanswered this long fails */
#define TRANSPORT_ERR_MAX  100               /* connection failures before giving up */
#define HIST_SUB           2048              /* histogram: exact below, then per octave */
#define HIST_HALF          (HIST_SUB / 2)
#define HIST_OCTAVES       30
#define HIST_BUCKETS       (HIST_SUB + HIST_OCTAVES * HIST_HALF)
#define HIST_MAX_US        ((1LL << (HIST_OCTAVES + 10)) - 1) /* about 12.7 days */

enum mode { MODE_SINGLE, MODE_BATCH };
enum mix { MIX_BASIC, MIX_RULES };

struct options {
    char host[256];     /* from --url, without brackets */
    char port[8];       /* from --url */
    enum mode mode;     /* --mode */
    int connections;    /* --connections */
    long long requests; /* --requests; 0 with a duration: no count limit */
    int batch;          /* --batch: events per batch request */
    long leads;         /* --leads: distinct lead emails cycled through */
    const char *source; /* --source: the X-Source slug */
    const char *secret; /* --secret: the source's signing secret, whsec_ prefix included */
    double duration_s;  /* --duration-s: stop sending after this long; 0 = no limit */
    double timeout_s;   /* --timeout-s: hard limit on the whole run */
    int quiet;          /* --quiet: only the RESULT line */
    enum mix mix;       /* --mix: which events and lead profiles are sent */
    long print_leads;   /* --print-leads N: print the first N leads as CSV and exit; -1 = no */
};

struct buf {
    char *data;
    size_t len;
    size_t cap;
};

enum conn_state { CONN_CLOSED, CONN_CONNECTING, CONN_BUSY };

struct conn {
    int fd;
    enum conn_state state;
    uint32_t watching;        /* the epoll events registered for fd */
    struct buf out;           /* the request being sent */
    size_t out_sent;          /* bytes of out written so far */
    char *in;                 /* response bytes, NUL-terminated; in_cap + 1 allocated */
    size_t in_len, in_cap;    /* in_cap grows up to RESP_MAX */
    size_t head_len;          /* header bytes including the blank line; 0 until seen */
    long long content_length; /* from the response headers */
    int status;               /* from the response status line */
    int close_after;          /* the server said Connection: close, or the exchange broke */
    int in_flight;            /* a request was sent and is not answered yet */
    int events;               /* events in the request in flight */
    int64_t sent_us;          /* when the request's first byte was written */
};

struct histogram {
    uint64_t counts[HIST_BUCKETS];
    uint64_t total;
    int64_t max_us;
};

struct stats {
    long long sent;            /* requests started */
    long long done;            /* requests finished: answered or lost */
    long long ok;              /* 2xx answers */
    long long non2xx;          /* other answers */
    long long transport;       /* requests lost to a broken connection, a timeout or a bad answer */
    long long events;          /* events accepted (stored) according to 2xx answers */
    long long duplicates;      /* events the server called duplicates */
    long long status_class[6]; /* answers by status / 100 */
    long long conn_failures;   /* connects that failed and exchanges that broke */
    int shown_error;           /* the first non-2xx body was printed */
    int shown_transport;       /* the first transport error was printed */
    struct histogram hist;
};

static struct options opt = {
    .mode = MODE_SINGLE,
    .connections = 32,
    .batch = 100,
    .leads = 20000,
    .source = "bench",
    .timeout_s = 900,
    .print_leads = -1,
};
static struct stats st;
static struct addrinfo *server_addr;
static char host_header[300];
static char run_id[LF_UUID_STRLEN + 1];
static long long next_event; /* sequence number of the next event */
static char *body_scratch;   /* BODY_MAX + 1 bytes */
static int epfd = -1;
static int stopping; /* no more requests are started */

/* Prints the message and exits with status 2: bad usage or a broken environment. */
__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("lf-loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL) die("out of memory");
    return p;
}

static void usage(FILE *out)
{
    fputs("usage: lf-loadgen --url http://HOST:PORT --secret SECRET [options]\n"
          "  --mode single|batch   POST /api/v1/events or /api/v1/events/batch (single)\n"
          "  --connections N       keep-alive connections, one request in flight each (32)\n"
          "  --requests N          requests to send in total (10000, or no limit with\n"
          "                        --duration-s)\n"
          "  --batch N             events per batch request, 1 to 1000 (100)\n"
          "  --leads N             distinct lead emails to cycle through (20000)\n"
          "  --source SLUG         the X-Source slug (bench)\n"
          "  --secret SECRET       the source's signing secret, whsec_ prefix included\n"
          "  --duration-s S        stop sending after S seconds\n"
          "  --timeout-s S         hard limit on the whole run (900)\n"
          "  --mix basic|rules     basic: five event types, email and first name only (the\n"
          "                        ingest scenarios); rules: the event types, metadata and\n"
          "                        lead profiles (job title, country, company) that the\n"
          "                        default scoring and intent rules look at (basic)\n"
          "  --print-leads N       print the first N leads of the mix as CSV (the columns\n"
          "                        of POST /api/v1/leads/bulk) and exit\n"
          "  --quiet               print only the RESULT line\n",
          out);
}

/* Parses a whole decimal number in [min, max]; exits on anything else. */
static long long parse_int(const char *name, const char *s, long long min, long long max)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < min || v > max) die("bad value for %s", name);
    return v;
}

static double parse_seconds(const char *name, const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !(v > 0) || v > 86400) die("bad value for %s", name);
    return v;
}

/* Splits "http://HOST:PORT[/]" into opt.host and opt.port. */
static void parse_url(const char *url)
{
    const char *p = url;
    if (strncmp(p, "http://", 7) != 0) die("--url must start with http:// (got '%s')", url);
    p += 7;
    const char *host = p, *host_end;
    if (*p == '[') { /* [IPv6]:port */
        host = p + 1;
        host_end = strchr(host, ']');
        if (host_end == NULL || host_end[1] != ':') die("bad --url '%s'", url);
        p = host_end + 2;
    } else {
        host_end = strchr(p, ':');
        if (host_end == NULL) die("--url needs a port: '%s'", url);
        p = host_end + 1;
    }
    size_t hn = (size_t)(host_end - host);
    size_t pn = strcspn(p, "/");
    if (hn == 0 || hn >= sizeof opt.host || pn == 0 || pn >= sizeof opt.port ||
        (p[pn] == '/' && p[pn + 1] != '\0'))
        die("bad --url '%s' (host and port only)", url);
    memcpy(opt.host, host, hn);
    opt.host[hn] = '\0';
    memcpy(opt.port, p, pn);
    opt.port[pn] = '\0';
    parse_int("the --url port", opt.port, 1, 65535);
}

static void parse_args(int argc, char **argv)
{
    const char *url = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(a, "--quiet")) {
            opt.quiet = 1;
            continue;
        }
        if (i + 1 >= argc) die("%s needs a value (see --help)", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--url"))
            url = v;
        else if (!strcmp(a, "--mode") && !strcmp(v, "single"))
            opt.mode = MODE_SINGLE;
        else if (!strcmp(a, "--mode") && !strcmp(v, "batch"))
            opt.mode = MODE_BATCH;
        else if (!strcmp(a, "--connections"))
            opt.connections = (int)parse_int(a, v, 1, CONN_MAX);
        else if (!strcmp(a, "--requests"))
            opt.requests = parse_int(a, v, 1, LLONG_MAX / BATCH_MAX);
        else if (!strcmp(a, "--batch"))
            opt.batch = (int)parse_int(a, v, 1, BATCH_MAX);
        else if (!strcmp(a, "--leads"))
            opt.leads = (long)parse_int(a, v, 1, 1000000000);
        else if (!strcmp(a, "--mix") && !strcmp(v, "basic"))
            opt.mix = MIX_BASIC;
        else if (!strcmp(a, "--mix") && !strcmp(v, "rules"))
            opt.mix = MIX_RULES;
        else if (!strcmp(a, "--print-leads"))
            opt.print_leads = (long)parse_int(a, v, 0, 1000000000);
        else if (!strcmp(a, "--source"))
            opt.source = v;
        else if (!strcmp(a, "--secret"))
            opt.secret = v;
        else if (!strcmp(a, "--duration-s"))
            opt.duration_s = parse_seconds(a, v);
        else if (!strcmp(a, "--timeout-s"))
            opt.timeout_s = parse_seconds(a, v);
        else
            die("unknown option or value '%s' (see --help)", a);
    }
    if (opt.print_leads >= 0) return; /* needs no server */
    if (url == NULL) die("--url is required");
    if (opt.secret == NULL || opt.secret[0] == '\0') die("--secret is required");
    if (opt.source[0] == '\0' || strlen(opt.source) > 64 || strpbrk(opt.source, "\r\n\" "))
        die("bad --source '%s'", opt.source);
    if (opt.requests == 0 && opt.duration_s == 0) opt.requests = 10000;
    parse_url(url);
}

/* Histogram bucket of a latency in microseconds. */
static int hist_index(int64_t us)
{
    if (us < 0) us = 0;
    if (us > HIST_MAX_US) us = HIST_MAX_US;
    if (us < HIST_SUB) return (int)us;
    int msb = 63 - __builtin_clzll((unsigned long long)us);
    int k = msb - 10; /* us >> k is in [HIST_HALF, HIST_SUB) */
    return HIST_SUB + (k - 1) * HIST_HALF + (int)((us >> k) - HIST_HALF);
}

/* The middle of bucket i, in microseconds. */
static double hist_value(int i)
{
    if (i < HIST_SUB) return (double)i;
    int k = (i - HIST_SUB) / HIST_HALF + 1;
    long long lower = (long long)((i - HIST_SUB) % HIST_HALF + HIST_HALF) << k;
    return (double)lower + (double)(1LL << k) / 2.0;
}

static void hist_add(struct histogram *h, int64_t us)
{
    h->counts[hist_index(us)]++;
    h->total++;
    if (us > h->max_us) h->max_us = us;
}

/* The latency at quantile q (0..1) in milliseconds; 0 when nothing was recorded. */
static double hist_quantile_ms(const struct histogram *h, double q)
{
    if (h->total == 0) return 0;
    uint64_t rank = (uint64_t)(q * (double)h->total + 0.999999);
    if (rank < 1) rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            double v = hist_value(i);
            return (v > (double)h->max_us ? (double)h->max_us : v) / 1000.0;
        }
    }
    return (double)h->max_us / 1000.0;
}

/* Appends formatted text to the body scratch at *len; exits when the body would pass the
 * server's 1 MiB cap. */
__attribute__((format(printf, 2, 3))) static void body_printf(size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(body_scratch + *len, BODY_MAX + 1 - *len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n > BODY_MAX - *len)
        die("a request body would pass the server's cap of 1 MiB; lower --batch");
    *len += (size_t)n;
}

/* A 64-bit mix of x (splitmix64's finaliser): picks that do not repeat with a lead's number. */
static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* A lead of the rules mix: the same for a given number in every run, in the events and in
 * --print-leads. One in ten has an academic address (uni-N.example), one in ten a free-mail
 * one; 6 of the 14 titles are decision-makers (rule title-decision-maker), 5 are scientists
 * or lab leads (title-scientist; one title is both); 3 of the 10 countries are DACH. */
struct lead_profile {
    char email[64];
    char company[32];
    const char *title;
    const char *country;
};

static void lead_profile(long long k, struct lead_profile *p)
{
    static const char *const titles[] = {"Head of R&D",
                                         "Director of Procurement",
                                         "Chief Technology Officer",
                                         "VP Engineering",
                                         "Professor of Biochemistry",
                                         "Senior Scientist",
                                         "Lab Manager",
                                         "Researcher",
                                         "PI",
                                         "Head of Lab Operations",
                                         "Software Engineer",
                                         "Marketing Manager",
                                         "Purchasing Agent",
                                         "PhD Student"};
    static const char *const countries[] = {"DE", "AT", "CH", "FR", "NL",
                                            "GB", "US", "SE", "IT", "ES"};
    uint64_t h = mix64((uint64_t)k);
    long long org = k % 500;
    switch (h % 10) {
    case 0:
        snprintf(p->email, sizeof p->email, "user%lld@uni-%lld.example", k, org);
        snprintf(p->company, sizeof p->company, "University %lld", org);
        break;
    case 1:
        snprintf(p->email, sizeof p->email, "user%lld@gmail.com", k);
        snprintf(p->company, sizeof p->company, "Acme %lld", org);
        break;
    default:
        snprintf(p->email, sizeof p->email, "user%lld@acme-%lld.example", k, org);
        snprintf(p->company, sizeof p->company, "Acme %lld", org);
    }
    p->title = titles[(h >> 8) % (sizeof titles / sizeof titles[0])];
    p->country = countries[(h >> 24) % (sizeof countries / sizeof countries[0])];
}

/* The events of the rules mix, with their share in percent. Most match a default scoring
 * rule (page-view, pricing-page, the downloads, email, webinar, demo, quote, contact form,
 * LinkedIn), many an intent rule (pricing, academic and partner pages, paper, protocol and
 * whitepaper downloads, partnership forms, demo and quote requests); blog, docs and product
 * pages, datasheets and newsletter forms score less or nothing. */
struct event_kind {
    int percent;
    const char *type;
    const char *key; /* the metadata key set, or NULL */
    const char *value;
};

static const struct event_kind kinds[] = {
    {12, "page_view", "path", "/pricing"},
    {6, "page_view", "path", "/academic/grants"},
    {4, "page_view", "path", "/partners/program"},
    {2, "page_view", "path", "/co-creation"},
    {8, "page_view", "path", "/docs/api"},
    {10, "page_view", "path", "/blog/launch"},
    {8, "page_view", "path", "/products/analyzer"},
    {5, "download", "asset_type", "whitepaper"},
    {4, "download", "asset_type", "protocol"},
    {3, "download", "asset_type", "app_note"},
    {3, "download", "asset_type", "paper"},
    {2, "download", "asset_type", "datasheet"},
    {2, "download", "asset_type", "case_study"},
    {3, "form_submitted", "form", "contact"},
    {2, "form_submitted", "form", "sales"},
    {2, "form_submitted", "form", "partnership"},
    {2, "form_submitted", "form", "newsletter"},
    {8, "email_opened", NULL, NULL},
    {4, "email_clicked", NULL, NULL},
    {1, "email_replied", NULL, NULL},
    {2, "webinar_registered", NULL, NULL},
    {1, "webinar_attended", NULL, NULL},
    {1, "demo_requested", NULL, NULL},
    {1, "quote_requested", NULL, NULL},
    {1, "linkedin_connected", NULL, NULL},
    {1, "linkedin_replied", NULL, NULL},
    {1, "email_unsubscribed", NULL, NULL},
    {1, "email_bounced", NULL, NULL},
};

static const struct event_kind *event_kind(long long seq)
{
    int r = (int)(mix64((uint64_t)seq ^ 0x5eedULL) % 100), acc = 0;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        acc += kinds[i].percent;
        if (r < acc) return &kinds[i];
    }
    return &kinds[0]; /* the shares add up to 100 */
}

/* Prints the first n leads of the mix as CSV for POST /api/v1/leads/bulk. */
static void print_leads(long n)
{
    printf("email,first_name,company,job_title,country\n");
    for (long k = 0; k < n; k++) {
        if (opt.mix == MIX_RULES) {
            struct lead_profile p;
            lead_profile(k, &p);
            printf("%s,U%ld,%s,%s,%s\n", p.email, k, p.company, p.title, p.country);
        } else {
            printf("user%ld@acme-%ld.example,U%ld,Acme %ld,,\n", k, k % 500, k, k % 500);
        }
    }
}

/* Appends one event object (sequence number seq) to the body. */
static void body_event(size_t *len, long long seq, int with_key)
{
    static const char *const types[] = {"page_view", "page_view", "form_submit", "email_open",
                                        "webinar_signup"};
    static const char *const paths[] = {"/pricing", "/docs/api", "/blog/launch", "/demo",
                                        "/customers"};
    static const char *const utm[] = {"linkedin", "google", "newsletter"};
    long long lead = seq % opt.leads;
    if (opt.mix == MIX_RULES) {
        const struct event_kind *e = event_kind(seq);
        struct lead_profile p;
        lead_profile(lead, &p);
        body_printf(len, "{\"event_type\":\"%s\",\"source\":\"%s\",", e->type, opt.source);
        if (with_key) body_printf(len, "\"idempotency_key\":\"lg-%s-%lld\",", run_id, seq);
        body_printf(len,
                    "\"lead\":{\"email\":\"%s\",\"first_name\":\"U%lld\",\"job_title\":\"%s\","
                    "\"country\":\"%s\",\"company\":\"%s\"},\"metadata\":{",
                    p.email, lead, p.title, p.country, p.company);
        if (e->key) body_printf(len, "\"%s\":\"%s\",", e->key, e->value);
        body_printf(len, "\"seq\":%lld},\"utm\":{\"source\":\"%s\",\"campaign\":\"q4\"}}", seq,
                    utm[seq % 3]);
        return;
    }
    body_printf(len, "{\"event_type\":\"%s\",\"source\":\"%s\",", types[seq % 5], opt.source);
    if (with_key) body_printf(len, "\"idempotency_key\":\"lg-%s-%lld\",", run_id, seq);
    body_printf(len,
                "\"lead\":{\"email\":\"user%lld@acme-%lld.example\",\"first_name\":\"U%lld\"},"
                "\"metadata\":{\"path\":\"%s\",\"seq\":%lld},"
                "\"utm\":{\"source\":\"%s\",\"campaign\":\"q4\"}}",
                lead, lead % 500, lead, paths[(seq / 5) % 5], seq, utm[seq % 3]);
}

/* Makes sure b can hold n bytes. */
static void buf_reserve(struct buf *b, size_t n)
{
    if (b->cap >= n) return;
    char *p = realloc(b->data, n);
    if (p == NULL) die("out of memory");
    b->data = p;
    b->cap = n;
}

/* Builds the next request into c->out. */
static void build_request(struct conn *c)
{
    size_t len = 0;
    int events = opt.mode == MODE_BATCH ? opt.batch : 1;
    long long first = next_event;
    next_event += events;
    if (opt.mode == MODE_BATCH) {
        body_printf(&len, "{\"events\":[");
        for (int i = 0; i < events; i++) {
            if (i) body_printf(&len, ",");
            body_event(&len, first + i, 1);
        }
        body_printf(&len, "]}");
    } else {
        body_event(&len, first, 0);
    }
    unsigned char mac[LF_SHA256_LEN];
    char sig[2 * LF_SHA256_LEN + 1];
    lf_hmac_sha256(opt.secret, strlen(opt.secret), body_scratch, len, mac);
    lf_hex_encode(mac, sizeof mac, sig);

    char key[96] = "";
    if (opt.mode == MODE_SINGLE)
        snprintf(key, sizeof key, "X-Idempotency-Key: lg-%s-%lld\r\n", run_id, first);
    buf_reserve(&c->out, REQ_HEAD_MAX + len);
    int n = snprintf(c->out.data, REQ_HEAD_MAX,
                     "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "X-Source: %s\r\nX-Webhook-Signature: sha256=%s\r\n%s"
                     "Content-Length: %zu\r\n\r\n",
                     opt.mode == MODE_BATCH ? "/api/v1/events/batch" : "/api/v1/events",
                     host_header, opt.source, sig, key, len);
    if (n < 0 || n >= REQ_HEAD_MAX) die("request headers too long");
    memcpy(c->out.data + n, body_scratch, len);
    c->out.len = (size_t)n + len;
    c->out_sent = 0;
    c->events = events;
}

static void set_events(struct conn *c, uint32_t events)
{
    if (c->watching == events) return;
    c->watching = events;
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0) close(c->fd); /* also leaves the epoll set */
    c->fd = -1;
    c->state = CONN_CLOSED;
    c->in_flight = 0;
}

/* Counts a connection failure; past the limit the run is aborted. */
static void transport_failure(const char *what, int err)
{
    st.conn_failures++;
    if (!st.shown_transport) {
        fprintf(stderr, "lf-loadgen: first connection error: %s: %s\n", what,
                err ? strerror(err) : "closed by the server");
        st.shown_transport = 1;
    }
    if (st.conn_failures > TRANSPORT_ERR_MAX) {
        fprintf(stderr, "lf-loadgen: more than %d connection errors; giving up\n",
                TRANSPORT_ERR_MAX);
        stopping = 1;
    }
}

static int more_to_send(void)
{
    return !stopping && (opt.requests == 0 || st.sent < opt.requests);
}

static void conn_open(struct conn *c)
{
    c->fd = socket(server_addr->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = CONN_CONNECTING;
    c->watching = EPOLLOUT;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
    if (connect(c->fd, server_addr->ai_addr, server_addr->ai_addrlen) < 0 && errno != EINPROGRESS) {
        int e = errno;
        conn_close(c);
        transport_failure("connect", e);
    }
}

/* The request in flight on c is lost (broken connection, timeout or bad answer). */
static void request_lost(struct conn *c, const char *what, int err)
{
    if (c->in_flight) {
        st.transport++;
        st.done++;
    }
    conn_close(c);
    transport_failure(what, err);
}

static void flush_out(struct conn *c);

/* Starts the next request on c, or closes c when there is none. */
static void start_request(struct conn *c)
{
    if (!more_to_send()) {
        conn_close(c);
        return;
    }
    build_request(c);
    st.sent++;
    c->in_len = 0;
    c->head_len = 0;
    c->content_length = -1;
    c->status = 0;
    c->close_after = 0;
    c->in_flight = 1;
    c->sent_us = lf_mono_us();
    flush_out(c);
}

/* Writes what it can of the request; then waits for more room or for the answer. */
static void flush_out(struct conn *c)
{
    while (c->out_sent < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_sent, c->out.len - c->out_sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_events(c, EPOLLIN | EPOLLOUT);
            return;
        }
        if (n < 0) {
            request_lost(c, "send", errno);
            return;
        }
        c->out_sent += (size_t)n;
    }
    set_events(c, EPOLLIN);
}

/* Case-insensitive: does the header line [p, end) have this name? Sets *value to the
 * trimmed value. */
static int header_is(const char *p, const char *end, const char *name, const char **value,
                     size_t *vlen)
{
    size_t n = strlen(name);
    if ((size_t)(end - p) <= n || strncasecmp(p, name, n) != 0 || p[n] != ':') return 0;
    const char *v = p + n + 1;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    const char *e = end;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
    *value = v;
    *vlen = (size_t)(e - v);
    return 1;
}

/* Parses the status line and headers in c->in[0, head_len). Returns 0 or -1 (bad answer). */
static int parse_head(struct conn *c)
{
    const char *p = c->in, *end = c->in + c->head_len - 2; /* the last line's CRLF stays */
    if (c->head_len < 16 || strncmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ') return -1;
    int status = 0;
    for (int i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        status = status * 10 + (p[i] - '0');
    }
    c->status = status;
    if (p[7] == '0') c->close_after = 1; /* HTTP/1.0 without keep-alive handling */
    int chunked = 0;
    p = (const char *)memmem(p, (size_t)(end - p) + 2, "\r\n", 2) + 2;
    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p) + 2, "\r\n", 2); /* found: end is one */
        const char *v;
        size_t vlen;
        if (header_is(p, eol, "Content-Length", &v, &vlen)) {
            long long n = 0;
            if (vlen == 0 || vlen > 12) return -1;
            for (size_t i = 0; i < vlen; i++) {
                if (v[i] < '0' || v[i] > '9') return -1;
                n = n * 10 + (v[i] - '0');
            }
            c->content_length = n;
        } else if (header_is(p, eol, "Transfer-Encoding", &v, &vlen)) {
            chunked = 1;
        } else if (header_is(p, eol, "Connection", &v, &vlen)) {
            if (vlen == 5 && strncasecmp(v, "close", 5) == 0) c->close_after = 1;
        }
        p = eol + 2;
    }
    if (chunked) return -1; /* the server sends Content-Length; chunked is not read here */
    if (c->content_length < 0) {
        if (status == 204 || status == 304 || status < 200)
            c->content_length = 0;
        else
            return -1; /* cannot tell where the body ends */
    }
    if (c->content_length > (long long)(RESP_MAX - c->head_len)) return -1;
    return 0;
}

/* Finds the integer value of "name": in a compact JSON text; -1 when absent. */
static long long json_int_field(const char *body, const char *name)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", name);
    const char *p = strstr(body, pat);
    if (p == NULL) return -1;
    p += strlen(pat);
    long long n = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 12; p++, digits++) n = n * 10 + (*p - '0');
    return digits ? n : -1;
}

/* A whole response is in c->in: count it, then go on with the next request. */
static void finish_response(struct conn *c)
{
    int64_t us = lf_mono_us() - c->sent_us;
    const char *body = c->in + c->head_len;
    size_t blen = (size_t)c->content_length;
    size_t total = c->head_len + blen;
    char saved = c->in[total];
    c->in[total] = '\0'; /* the body as a C string, for the field search */
    hist_add(&st.hist, us);
    st.done++;
    c->in_flight = 0;
    st.status_class[c->status / 100 < 6 ? c->status / 100 : 0]++;
    if (c->status >= 200 && c->status < 300) {
        st.ok++;
        long long accepted = c->events, dups = 0;
        if (opt.mode == MODE_BATCH) {
            long long a = json_int_field(body, "accepted");
            long long d = json_int_field(body, "duplicates");
            if (a >= 0) accepted = a;
            if (d > 0) dups = d;
        }
        st.events += accepted;
        st.duplicates += dups;
    } else {
        st.non2xx++;
        if (!st.shown_error) {
            st.shown_error = 1;
            fprintf(stderr, "lf-loadgen: first non-2xx answer: HTTP %d: %.*s%s\n", c->status,
                    (int)(blen < ERRBODY_SHOW ? blen : ERRBODY_SHOW), body,
                    blen > ERRBODY_SHOW ? "..." : "");
        }
    }
    c->in[total] = saved;
    /* Bytes past the response, or a response before the request was fully sent, leave the
     * exchange out of step: start over on a new connection. */
    if (c->in_len > total || c->out_sent < c->out.len) c->close_after = 1;
    if (c->close_after) {
        conn_close(c);
        if (more_to_send()) conn_open(c);
        return;
    }
    start_request(c);
}

/* Reads what has arrived; finishes the response once it is whole. */
static void read_in(struct conn *c)
{
    for (;;) {
        if (c->in_len == c->in_cap) {
            if (c->in_cap >= RESP_MAX) {
                request_lost(c, "response larger than the cap", 0);
                return;
            }
            size_t cap = c->in_cap ? c->in_cap * 2 : RESP_INITIAL;
            if (cap > RESP_MAX) cap = RESP_MAX;
            char *p = realloc(c->in, cap + 1);
            if (p == NULL) die("out of memory");
            c->in = p;
            c->in_cap = cap;
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0) {
            request_lost(c, n == 0 ? "connection closed mid-request" : "recv", n ? errno : 0);
            return;
        }
        size_t before = c->in_len;
        c->in_len += (size_t)n;
        c->in[c->in_len] = '\0';
        while (c->head_len == 0) {
            size_t from = before > 3 ? before - 3 : 0;
            const char *e = memmem(c->in + from, c->in_len - from, "\r\n\r\n", 4);
            if (e == NULL) {
                if (c->in_len > RESP_HEAD_MAX) {
                    request_lost(c, "response headers larger than the cap", 0);
                    return;
                }
                break;
            }
            c->head_len = (size_t)(e - c->in) + 4;
            if (parse_head(c) < 0) {
                request_lost(c, "malformed or unsupported response", 0);
                return;
            }
            if (c->status >= 100 && c->status < 200) { /* interim: drop it, read on */
                memmove(c->in, c->in + c->head_len, c->in_len - c->head_len + 1);
                c->in_len -= c->head_len;
                c->head_len = 0;
                c->content_length = -1;
                before = 0;
            }
        }
        if (c->head_len && c->in_len >= c->head_len + (size_t)c->content_length) {
            finish_response(c);
            return;
        }
    }
}

static void on_event(struct conn *c, uint32_t events)
{
    if (c->state == CONN_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err || (events & (EPOLLERR | EPOLLHUP))) {
            conn_close(c);
            transport_failure("connect", err);
            return;
        }
        c->state = CONN_BUSY;
        start_request(c);
        return;
    }
    if (c->state != CONN_BUSY) return;
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) read_in(c);
    if (c->state == CONN_BUSY && (events & EPOLLOUT) && c->out_sent < c->out.len) flush_out(c);
}

static double secs(int64_t us)
{
    return (double)us / 1e6;
}

/* User plus system CPU seconds of this process so far. */
static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    if (opt.print_leads >= 0) {
        print_leads(opt.print_leads);
        return fflush(stdout) == 0 ? 0 : 1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int gai = getaddrinfo(opt.host, opt.port, &hints, &server_addr);
    if (gai != 0) die("cannot resolve the --url host: %s", gai_strerror(gai));
    if (strchr(opt.host, ':'))
        snprintf(host_header, sizeof host_header, "[%s]:%s", opt.host, opt.port);
    else
        snprintf(host_header, sizeof host_header, "%s:%s", opt.host, opt.port);
    lf_uuid7(run_id);
    body_scratch = xmalloc(BODY_MAX + 1);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1: %s", strerror(errno));

    struct conn *conns = calloc((size_t)opt.connections, sizeof(*conns));
    if (conns == NULL) die("out of memory");
    double cpu0 = cpu_seconds();
    int64_t t0 = lf_mono_us();
    for (int i = 0; i < opt.connections; i++) {
        conns[i].fd = -1;
        if (more_to_send()) conn_open(&conns[i]);
    }
    struct epoll_event evs[256];
    int timed_out = 0;
    for (;;) {
        int nopen = 0;
        for (int i = 0; i < opt.connections; i++) nopen += conns[i].state != CONN_CLOSED;
        if (nopen == 0 && !more_to_send()) break;
        int n = epoll_wait(epfd, evs, 256, 100);
        if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) on_event(evs[i].data.ptr, evs[i].events);
        int64_t now = lf_mono_us();
        if (opt.duration_s > 0 && secs(now - t0) >= opt.duration_s) stopping = 1;
        if (secs(now - t0) >= opt.timeout_s) {
            timed_out = 1;
            break;
        }
        for (int i = 0; i < opt.connections; i++) {
            struct conn *c = &conns[i];
            if (c->state == CONN_BUSY && c->in_flight && now - c->sent_us > REQUEST_TIMEOUT_US) {
                request_lost(c, "no answer within 30 s", 0);
                if (more_to_send()) conn_open(c);
            }
        }
        /* Connections closed after an error are reopened while there is work left. */
        for (int i = 0; i < opt.connections && !stopping; i++)
            if (conns[i].state == CONN_CLOSED && more_to_send()) conn_open(&conns[i]);
    }
    int64_t elapsed_us = lf_mono_us() - t0;
    long long lost_in_flight = 0;
    for (int i = 0; i < opt.connections; i++) {
        if (conns[i].in_flight) lost_in_flight++;
        conn_close(&conns[i]);
        free(conns[i].out.data);
        free(conns[i].in);
    }
    if (timed_out) {
        fprintf(stderr, "lf-loadgen: the run passed --timeout-s; %lld requests unanswered\n",
                lost_in_flight);
        st.transport += lost_in_flight;
    }
    free(conns);
    free(body_scratch);
    freeaddrinfo(server_addr);
    close(epfd);

    double cpu = cpu_seconds() - cpu0;
    double el = secs(elapsed_us);
    double eps = el > 0 ? (double)st.events / el : 0;
    double rps = el > 0 ? (double)st.done / el : 0;
    long long errors = st.non2xx + st.transport;
    const char *mode = opt.mode == MODE_BATCH ? "batch" : "single";
    double p50 = hist_quantile_ms(&st.hist, 0.50), p90 = hist_quantile_ms(&st.hist, 0.90);
    double p99 = hist_quantile_ms(&st.hist, 0.99), p999 = hist_quantile_ms(&st.hist, 0.999);
    double maxms = (double)st.hist.max_us / 1000.0;
    if (!opt.quiet) {
        printf("mode            %s (%d event%s per request)\n", mode,
               opt.mode == MODE_BATCH ? opt.batch : 1,
               opt.mode == MODE_BATCH && opt.batch > 1 ? "s" : "");
        printf("connections     %d\n", opt.connections);
        printf("requests        %lld done: %lld 2xx, %lld other status, %lld lost\n", st.done,
               st.ok, st.non2xx, st.transport);
        printf("status classes  1xx %lld  2xx %lld  3xx %lld  4xx %lld  5xx %lld\n",
               st.status_class[1], st.status_class[2], st.status_class[3], st.status_class[4],
               st.status_class[5]);
        printf("events          %lld accepted, %lld duplicates\n", st.events, st.duplicates);
        printf("elapsed         %.3f s\n", el);
        printf("throughput      %.0f events/s, %.0f requests/s\n", eps, rps);
        printf(
            "latency         p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms\n",
            p50, p90, p99, p999, maxms);
        printf("loadgen cpu     %.2f s (%.0f%% of one core)\n", cpu, el > 0 ? 100 * cpu / el : 0);
    }
    printf("RESULT mode=%s connections=%d requests=%lld events=%lld elapsed_s=%.3f eps=%.0f "
           "rps=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f errors=%lld cpu_s=%.2f\n",
           mode, opt.connections, st.done, st.events, el, eps, rps, p50, p90, p99, maxms, errors,
           cpu);
    return errors || timed_out ? 1 : 0;
}
