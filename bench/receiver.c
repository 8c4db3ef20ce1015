/* lf-receiver: a fast local webhook receiver for the fan-out benchmarks (bench/run.sh g, h).
 *
 * DESIGN
 * One libmicrohttpd daemon per port (--port P --ports N: P .. P+N-1 on 127.0.0.1), each with
 * an internal epoll thread (--threads per daemon), so ten subscriptions can point at ten
 * endpoints as a real fan-out would. Every POST is answered 200 "ok" once its body has
 * arrived, optionally after --delay-ms: the connection is then suspended and a timer thread
 * resumes it when its time is up, so a slow answer holds no thread and hundreds of
 * connections can wait at once. The delay is the same for every request, so the timer's
 * queue is a FIFO ordered by due time.
 *
 * It counts POSTs (when the body is complete), distinct `webhook-id` headers per port (a hash
 * set; Standard Webhooks gives a message the same id at every endpoint it goes to),
 * connections (open, most open at once, accepted in all: the sender's keep-alive reuse),
 * and the first and last POST's arrival (wall clock, µs), and prints the counts as "key
 * value" lines on SIGTERM or SIGINT, and every 100 ms into --stats-file (written to a
 * temporary name and renamed, so a reader never sees half a file). --verify checks each
 * request's Standard Webhooks signature with its port's subscription secret (costs an HMAC
 * and a copy of the body).
 * GET answers the same counts. */
#define _GNU_SOURCE

#include "core/crypto.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define PORTS_MAX       64
#define BODY_CAP        (1024 * 1024) /* bodies kept for --verify; longer ones fail it */
#define ID_MAX          128           /* webhook-id bytes kept; longer ids are cut */
#define TIMELINE_S      3600          /* per-second counts kept from the first POST */
#define STATS_PERIOD_MS 100
#define CONN_LIMIT      8192 /* connections per daemon */

struct options {
    int port;           /* --port: the first port */
    int ports;          /* --ports: daemons on consecutive ports */
    int threads;        /* --threads: epoll threads per daemon */
    int delay_ms;       /* --delay-ms: answer this long after the body arrived */
    int status;         /* --status: the answer's status code */
    const char *stats;  /* --stats-file */
    const char *secret; /* --verify: the subscriptions' whsec_ secrets, comma-separated */
    int quiet;          /* --quiet: no stats on exit */
};

/* One POST in progress; freed when libmicrohttpd reports the request finished. */
struct request {
    struct MHD_Connection *conn;
    int port_index;       /* which daemon: P + port_index */
    struct request *next; /* in the timer queue */
    int64_t due_us;       /* monotonic: when to resume */
    int counted;          /* the body arrived and the POST was counted */
    char *body;           /* with --verify only */
    size_t body_len;
    int body_overflow;
};

static struct options opt = {.ports = 1, .threads = 1, .status = 200};
static struct MHD_Daemon *daemons[PORTS_MAX];
static struct MHD_Response *answer;
static char *secrets[PORTS_MAX]; /* --verify: the secret of each port's subscription */

/* Counts; the timeline's slots count POSTs per second from the first. */
static atomic_llong n_posts, n_other, n_missing_id, n_bad_sig, n_bytes, n_answered;
static atomic_llong n_conn_open, n_conn_max, n_conn_total, n_suspended, n_suspended_max;
static atomic_llong first_us, last_us; /* wall clock; 0 until the first POST */
static atomic_llong timeline[TIMELINE_S];
static atomic_int stopping;

/* The set of webhook-ids seen: open addressing, grown at half full. */
static pthread_mutex_t ids_lock = PTHREAD_MUTEX_INITIALIZER;
static char **ids;
static size_t ids_cap, ids_len;

/* The timer queue of suspended requests. */
static pthread_mutex_t timer_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t timer_cond;
static struct request *timer_head, *timer_tail;

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("lf-receiver: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static int64_t clock_us(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void atomic_max(atomic_llong *a, long long v)
{
    long long cur = atomic_load(a);
    while (v > cur && !atomic_compare_exchange_weak(a, &cur, v)) {
    }
}

static void usage(FILE *out)
{
    fputs("usage: lf-receiver --port P [options]\n"
          "  --port P          the first port (127.0.0.1)\n"
          "  --ports N         listen on N consecutive ports, one daemon each (1)\n"
          "  --threads T       epoll threads per daemon (1)\n"
          "  --delay-ms D      answer D ms after the body arrived, holding no thread (0)\n"
          "  --status CODE     the answer's status code (200)\n"
          "  --stats-file F    write the counts to F every 100 ms (and at exit)\n"
          "  --verify S[,S...] check every webhook-signature: one whsec_ secret for every\n"
          "                    port, or one per port in port order\n"
          "  --quiet           print nothing at exit\n"
          "Counts are printed as \"key value\" lines on SIGTERM or SIGINT, and answered to GET.\n",
          out);
}

static long parse_int(const char *name, const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < min || v > max) die("bad value for %s", name);
    return v;
}

/* --verify: one secret for all ports, or one per port. */
static void split_secrets(void)
{
    char *list = strdup(opt.secret), *save = NULL;
    if (list == NULL) die("out of memory");
    int n = 0;
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n == opt.ports) die("--verify has more secrets than --ports");
        secrets[n++] = t;
    }
    if (n == 1)
        for (int i = 1; i < opt.ports; i++) secrets[i] = secrets[0];
    else if (n != opt.ports)
        die("--verify needs one secret or one per port (%d)", opt.ports);
}

static void parse_args(int argc, char **argv)
{
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
        if (!strcmp(a, "--port"))
            opt.port = (int)parse_int(a, v, 1, 65535);
        else if (!strcmp(a, "--ports"))
            opt.ports = (int)parse_int(a, v, 1, PORTS_MAX);
        else if (!strcmp(a, "--threads"))
            opt.threads = (int)parse_int(a, v, 1, 64);
        else if (!strcmp(a, "--delay-ms"))
            opt.delay_ms = (int)parse_int(a, v, 0, 600000);
        else if (!strcmp(a, "--status"))
            opt.status = (int)parse_int(a, v, 100, 599);
        else if (!strcmp(a, "--stats-file"))
            opt.stats = v;
        else if (!strcmp(a, "--verify"))
            opt.secret = v;
        else
            die("unknown option '%s' (see --help)", a);
    }
    if (opt.port == 0) die("--port is required");
    if (opt.port + opt.ports - 1 > 65535) die("--port + --ports passes 65535");
    if (opt.secret) split_secrets();
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* Adds id to the set (grows it at half full); exits when out of memory. */
static void ids_add(const char *id)
{
    pthread_mutex_lock(&ids_lock);
    if (2 * (ids_len + 1) > ids_cap) {
        size_t cap = ids_cap ? 2 * ids_cap : 1 << 16;
        char **grown = calloc(cap, sizeof *grown);
        if (grown == NULL) die("out of memory");
        for (size_t i = 0; i < ids_cap; i++) {
            if (ids[i] == NULL) continue;
            size_t j = hash_str(ids[i]) & (cap - 1);
            while (grown[j]) j = (j + 1) & (cap - 1);
            grown[j] = ids[i];
        }
        free(ids);
        ids = grown;
        ids_cap = cap;
    }
    size_t j = hash_str(id) & (ids_cap - 1);
    while (ids[j] && strcmp(ids[j], id) != 0) j = (j + 1) & (ids_cap - 1);
    if (ids[j] == NULL) {
        ids[j] = strdup(id);
        if (ids[j] == NULL) die("out of memory");
        ids_len++;
    }
    pthread_mutex_unlock(&ids_lock);
}

static size_t ids_count(void)
{
    pthread_mutex_lock(&ids_lock);
    size_t n = ids_len;
    pthread_mutex_unlock(&ids_lock);
    return n;
}

/* The counts as "key value" lines into buf; returns the length (cut at size - 1). */
static size_t stats_text(char *buf, size_t size, int with_timeline)
{
    long long posts = atomic_load(&n_posts), first = atomic_load(&first_us),
              last = atomic_load(&last_us);
    size_t unique = ids_count();
    long long missing = atomic_load(&n_missing_id);
    double window = first ? (double)(last - first) / 1e6 : 0;
    int n = snprintf(
        buf, size,
        "requests %lld\nunique_ids %zu\nduplicates %lld\nmissing_ids %lld\nbad_signatures %lld\n"
        "answered %lld\nother_requests %lld\nbody_bytes %lld\nfirst_us %lld\nlast_us %lld\n"
        "window_s %.6f\nrate %.0f\nconnections_open %lld\nconnections_max %lld\n"
        "connections_total %lld\nsuspended %lld\nsuspended_max %lld\ndelay_ms %d\nports %d\n",
        posts, unique, posts - (long long)unique - missing, missing, atomic_load(&n_bad_sig),
        atomic_load(&n_answered), atomic_load(&n_other), atomic_load(&n_bytes), first, last, window,
        window > 0 ? (double)(posts - 1) / window : 0, atomic_load(&n_conn_open),
        atomic_load(&n_conn_max), atomic_load(&n_conn_total), atomic_load(&n_suspended),
        atomic_load(&n_suspended_max), opt.delay_ms, opt.ports);
    size_t len = n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
    if (!with_timeline || len + 32 >= size) return len;
    /* POSTs per second from the first one, up to the last second that saw any */
    int end = 0;
    for (int i = 0; i < TIMELINE_S; i++)
        if (atomic_load(&timeline[i])) end = i + 1;
    len += (size_t)snprintf(buf + len, size - len, "per_second");
    for (int i = 0; i < end && len + 24 < size; i++)
        len += (size_t)snprintf(buf + len, size - len, " %lld", atomic_load(&timeline[i]));
    len += (size_t)snprintf(buf + len, size - len, "\n");
    return len;
}

static void write_stats_file(void)
{
    if (opt.stats == NULL) return;
    static char buf[64 * 1024];
    size_t len = stats_text(buf, sizeof buf, 1);
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp", opt.stats);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) die("cannot write %s: %s", tmp, strerror(errno));
    fwrite(buf, 1, len, f);
    if (fclose(f) != 0 || rename(tmp, opt.stats) != 0)
        die("cannot write %s: %s", opt.stats, strerror(errno));
}

/* Counts a POST whose body is complete. */
static void count_post(struct request *r)
{
    int64_t now = clock_us(CLOCK_REALTIME);
    long long zero = 0;
    atomic_compare_exchange_strong(&first_us, &zero, now);
    atomic_max(&last_us, now);
    long long slot = (now - atomic_load(&first_us)) / 1000000;
    if (slot < 0) slot = 0;
    if (slot < TIMELINE_S) atomic_fetch_add(&timeline[slot], 1);
    atomic_fetch_add(&n_posts, 1);
    r->counted = 1;
}

static void check_signature(struct request *r, const char *id)
{
    const char *ts = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "webhook-timestamp");
    const char *sig = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "webhook-signature");
    char *end = NULL;
    long long t = ts ? strtoll(ts, &end, 10) : 0;
    if (id == NULL || ts == NULL || sig == NULL || end == ts || *end != '\0' || r->body_overflow ||
        lf_stdwebhook_verify(secrets[r->port_index], id, t, r->body ? r->body : "", r->body_len,
                             sig) != 0)
        atomic_fetch_add(&n_bad_sig, 1);
}

/* Suspends the request's connection until now + delay; the timer thread resumes it. */
static void delay_request(struct request *r)
{
    r->due_us = clock_us(CLOCK_MONOTONIC) + (int64_t)opt.delay_ms * 1000;
    r->next = NULL;
    MHD_suspend_connection(r->conn);
    long long n = atomic_fetch_add(&n_suspended, 1) + 1;
    atomic_max(&n_suspended_max, n);
    pthread_mutex_lock(&timer_lock);
    if (timer_tail)
        timer_tail->next = r;
    else
        timer_head = r;
    timer_tail = r;
    pthread_cond_signal(&timer_cond);
    pthread_mutex_unlock(&timer_lock);
}

/* Resumes every suspended request whose time has come (all of them when stopping). */
static void *timer_main(void *arg)
{
    pthread_mutex_lock(&timer_lock);
    for (;;) {
        while (timer_head == NULL && !atomic_load(&stopping))
            pthread_cond_wait(&timer_cond, &timer_lock);
        if (timer_head == NULL) break; /* stopping, nothing left */
        int64_t now = clock_us(CLOCK_MONOTONIC);
        if (timer_head->due_us > now && !atomic_load(&stopping)) {
            struct timespec until = {.tv_sec = timer_head->due_us / 1000000,
                                     .tv_nsec = (timer_head->due_us % 1000000) * 1000};
            pthread_cond_timedwait(&timer_cond, &timer_lock, &until);
            continue;
        }
        struct request *r = timer_head;
        timer_head = r->next;
        if (timer_head == NULL) timer_tail = NULL;
        atomic_fetch_sub(&n_suspended, 1);
        MHD_resume_connection(r->conn);
    }
    pthread_mutex_unlock(&timer_lock);
    return NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    if (strcmp(method, "POST") != 0) {
        if (*con_cls == NULL) { /* headers only: answer on the next call */
            *con_cls = conn;
            return MHD_YES;
        }
        atomic_fetch_add(&n_other, 1);
        char buf[64 * 1024];
        size_t len = stats_text(buf, sizeof buf, 0);
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_COPY);
        enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        return rc;
    }
    struct request *r = *con_cls;
    if (r == NULL) {
        r = calloc(1, sizeof *r);
        if (r == NULL) return MHD_NO;
        r->conn = conn;
        r->port_index = (int)(intptr_t)cls;
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        atomic_fetch_add(&n_bytes, (long long)*upload_size);
        if (opt.secret && !r->body_overflow) {
            if (r->body_len + *upload_size > BODY_CAP) {
                r->body_overflow = 1;
            } else {
                char *grown = realloc(r->body, r->body_len + *upload_size + 1);
                if (grown == NULL) return MHD_NO;
                r->body = grown;
                memcpy(r->body + r->body_len, upload, *upload_size);
                r->body_len += *upload_size;
                r->body[r->body_len] = '\0';
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (!r->counted) { /* the body is complete */
        const char *id = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "webhook-id");
        if (id && id[0]) {
            /* per endpoint: one event's message has the same id at every subscription */
            char key[ID_MAX + 8];
            snprintf(key, sizeof key, "%d:%.*s", r->port_index, ID_MAX, id);
            ids_add(key);
        } else {
            atomic_fetch_add(&n_missing_id, 1);
        }
        if (opt.secret) check_signature(r, id);
        count_post(r);
        if (opt.delay_ms > 0 && !atomic_load(&stopping)) {
            delay_request(r);
            return MHD_YES;
        }
    }
    atomic_fetch_add(&n_answered, 1);
    return MHD_queue_response(conn, (unsigned)opt.status, answer);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    if (*con_cls == NULL || *con_cls == (void *)conn) return;
    struct request *r = *con_cls;
    free(r->body);
    free(r);
    *con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&n_conn_total, 1);
        atomic_max(&n_conn_max, atomic_fetch_add(&n_conn_open, 1) + 1);
    } else {
        atomic_fetch_sub(&n_conn_open, 1);
    }
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    fputs("lf-receiver: libmicrohttpd: ", stderr);
    vfprintf(stderr, fmt, ap);
}

static void start_daemons(void)
{
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                     MHD_USE_TURBO;
    for (int i = 0; i < opt.ports; i++) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(opt.port + i)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        /* the thread pool option only when there is a pool (1 or 0 draws a warning) */
        struct MHD_OptionItem pool[] = {
            {MHD_OPTION_THREAD_POOL_SIZE, opt.threads, NULL},
            {MHD_OPTION_END, 0, NULL},
        };
        daemons[i] = MHD_start_daemon(
            flags, (uint16_t)(opt.port + i), NULL, NULL, on_request, (void *)(intptr_t)i,
            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
            (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONN_LIMIT,
            MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
            MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL, MHD_OPTION_ARRAY,
            opt.threads > 1 ? pool : pool + 1, MHD_OPTION_END);
        if (daemons[i] == NULL) die("cannot listen on 127.0.0.1:%d", opt.port + i);
    }
}

/* Lets every suspended request go (answered now), then stops the daemons. */
static void stop_daemons(void)
{
    atomic_store(&stopping, 1);
    pthread_mutex_lock(&timer_lock);
    pthread_cond_broadcast(&timer_cond);
    pthread_mutex_unlock(&timer_lock);
    /* the daemons answer the resumed requests; give them a moment before closing */
    for (int i = 0; i < 100 && atomic_load(&n_suspended) > 0; i++) usleep(10000);
    usleep(50000);
    for (int i = 0; i < opt.ports; i++)
        if (daemons[i]) MHD_stop_daemon(daemons[i]);
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);

    /* many hundreds of connections per daemon */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    /* the signals are taken by sigtimedwait below, in no other thread */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&timer_cond, &ca);
    pthread_t timer;
    if (pthread_create(&timer, NULL, timer_main, NULL) != 0) die("cannot start the timer thread");

    static const char ok[] = "ok";
    answer = MHD_create_response_from_buffer(2, (void *)ok, MHD_RESPMEM_PERSISTENT);
    if (answer == NULL) die("out of memory");
    MHD_add_response_header(answer, "Content-Type", "text/plain");
    start_daemons();
    write_stats_file();

    struct timespec period = {.tv_sec = 0, .tv_nsec = STATS_PERIOD_MS * 1000000L};
    for (;;) {
        int sig = sigtimedwait(&sigs, NULL, &period);
        if (sig == SIGTERM || sig == SIGINT) break;
        write_stats_file();
    }

    stop_daemons();
    pthread_join(timer, NULL);
    MHD_destroy_response(answer);
    write_stats_file();
    if (!opt.quiet) {
        static char buf[64 * 1024];
        size_t len = stats_text(buf, sizeof buf, 1);
        fwrite(buf, 1, len, stdout);
    }
    for (size_t i = 0; i < ids_cap; i++) free(ids[i]);
    free(ids);
    free(secrets[0]); /* the copy of --verify the others point into */
    return 0;
}
