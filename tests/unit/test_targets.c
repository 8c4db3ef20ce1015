/* Unit tests for src/outbound/targets.c: which addresses are private, and which URLs a
 * subscription may point at, with and without LEADFLOW_ALLOW_PRIVATE_TARGETS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "outbound/outbound.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* lf_addr_private of a literal IPv4 or IPv6 address. */
static int private_of(const char *text)
{
    struct sockaddr_in in = {0};
    struct sockaddr_in6 in6 = {0};
    if (inet_pton(AF_INET, text, &in.sin_addr) == 1) {
        in.sin_family = AF_INET;
        return lf_addr_private(&in);
    }
    if (inet_pton(AF_INET6, text, &in6.sin6_addr) == 1) {
        in6.sin6_family = AF_INET6;
        return lf_addr_private(&in6);
    }
    fail_msg("not an address: %s", text);
    return -1;
}

static void ipv4_ranges(void **state)
{
    const char *private[] = {
        "127.0.0.1",      "127.255.255.254", "10.0.0.1",   "10.255.255.255",  "172.16.0.1",
        "172.31.255.255", "192.168.1.1",     "100.64.0.1", "100.127.255.255", "169.254.169.254",
        "0.0.0.0",        "0.1.2.3",         "224.0.0.1",  "239.255.255.250", "255.255.255.255",
        "240.0.0.1",      "192.0.2.10",      "198.18.0.1", "198.51.100.7",    "203.0.113.9",
        "192.0.0.8",
    };
    const char *public[] = {"8.8.8.8",    "1.1.1.1",        "93.184.216.34",   "172.15.255.255",
                            "172.32.0.1", "100.63.255.255", "100.128.0.1",     "169.253.0.1",
                            "11.0.0.1",   "192.169.0.1",    "223.255.255.255", "198.20.0.1"};
    for (size_t i = 0; i < sizeof private / sizeof private[0]; i++)
        assert_int_equal(private_of(private[i]), 1);
    for (size_t i = 0; i < sizeof public / sizeof public[0]; i++)
        assert_int_equal(private_of(public[i]), 0);
    (void)state;
}

static void ipv6_ranges(void **state)
{
    const char *private[] = {
        "::1",
        "::",
        "fe80::1",
        "febf::1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "ff05::2",
        "::ffff:127.0.0.1",
        "::ffff:10.1.2.3",
        "::ffff:192.168.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",
        "64:ff9b::a01:203",
        "2002:a00:1::1",
        "2001:db8::1",
        "fec0::1",
        "100::1",
    };
    const char *public[] = {
        "2606:4700:4700::1111", "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::808:808",
        "2002:808:808::1",      "2a00:1450::1",         "fe00::1",        "fb00::1"};
    for (size_t i = 0; i < sizeof private / sizeof private[0]; i++)
        assert_int_equal(private_of(private[i]), 1);
    for (size_t i = 0; i < sizeof public / sizeof public[0]; i++)
        assert_int_equal(private_of(public[i]), 0);
    (void)state;
}

static void other_families_are_not_public(void **state)
{
    struct sockaddr sa = {.sa_family = AF_UNIX};
    assert_int_equal(lf_addr_private(&sa), 1);
    assert_int_equal(lf_addr_private(NULL), 1);
    (void)state;
}

/* lf_target_check with the listen address and the private switch; the reason when refused
 * goes into reason (may be NULL). */
static int check(const char *listen, int allow, const char *url, char *reason, size_t size)
{
    struct lf_config cfg = {0};
    cfg.listen = (char *)listen;
    cfg.allow_private_targets = allow;
    struct lf_err err = {0};
    int rc = lf_target_check(&cfg, url, &err);
    if (reason) snprintf(reason, size, "%s", err.msg);
    lf_err_clear(&err);
    return rc;
}

#define LISTEN "127.0.0.1:8080"

static void refused(const char *listen, int allow, const char *url, const char *reason)
{
    char msg[256];
    int rc = check(listen, allow, url, msg, sizeof msg);
    if (rc != -LF_EINVAL) fail_msg("%s was accepted (allow_private %d)", url, allow);
    if (strstr(msg, reason) == NULL) fail_msg("%s: \"%s\" lacks \"%s\"", url, msg, reason);
}

static void accepted(const char *listen, int allow, const char *url)
{
    char msg[256];
    if (check(listen, allow, url, msg, sizeof msg) != 0)
        fail_msg("%s was refused (allow_private %d): %s", url, allow, msg);
}

static void scheme_host_and_userinfo(void **state)
{
    for (int allow = 0; allow <= 1; allow++) {
        refused(LISTEN, allow, "ftp://example.com/x", "must be http or https");
        refused(LISTEN, allow, "file:///etc/passwd", "must be http or https");
        refused(LISTEN, allow, "javascript:alert(1)", "must be http or https");
        refused(LISTEN, allow, "gopher://example.com/", "must be http or https");
        refused(LISTEN, allow, "example.com/hook", "must be http or https");
        refused(LISTEN, allow, "//example.com/hook", "must be http or https");
        refused(LISTEN, allow, "", "required");
        refused(LISTEN, allow, "http://", "");
        refused(LISTEN, allow, "http://:8000/path", "");
        refused(LISTEN, allow, "https://user:pw@example.com/", "user name or password");
        refused(LISTEN, allow, "https://user@example.com/", "user name or password");
        refused(LISTEN, allow, "http://exa mple.com/", "not a valid URL");
        accepted(LISTEN, allow, "https://example.com/hook");
        accepted(LISTEN, allow, "HTTPS://Example.COM:8443/hook?x=1#frag");
        accepted(LISTEN, allow, "http://example.invalid/never-resolves");
    }
    (void)state;
}

static void the_service_itself(void **state)
{
    for (int allow = 0; allow <= 1; allow++) {
        refused(LISTEN, allow, "http://127.0.0.1:8080/api/v1/events", "leadflow itself");
        refused(LISTEN, allow, "http://localhost:8080/", "leadflow itself");
        refused(LISTEN, allow, "http://LOCALHOST.:8080/", "leadflow itself");
        refused(LISTEN, allow, "http://app.localhost:8080/", "leadflow itself");
        refused(LISTEN, allow, "http://0.0.0.0:8080/", "leadflow itself");
        refused(LISTEN, allow, "http://[::1]:8080/", "leadflow itself");
        refused(LISTEN, allow, "http://[::ffff:127.0.0.1]:8080/", "leadflow itself");
        refused(LISTEN, allow, "http://127.1.2.3:8080/", "leadflow itself");
        refused(LISTEN, allow, "https://127.0.0.1:8080/", "leadflow itself");
        /* the default port of the scheme */
        refused("127.0.0.1:80", allow, "http://localhost/", "leadflow itself");
        refused("127.0.0.1:443", allow, "https://127.0.0.1/", "leadflow itself");
        /* a listen address that is not loopback */
        refused("10.0.0.5:9000", allow, "http://10.0.0.5:9000/x", "leadflow itself");
        refused("[::1]:9000", allow, "http://[::1]:9000/x", "leadflow itself");
        refused("Leadflow.internal:9000", allow, "http://leadflow.INTERNAL:9000/", "itself");
    }
    /* another port of this machine is a local receiver, allowed only with the switch */
    accepted(LISTEN, 1, "http://127.0.0.1:9000/hook");
    accepted(LISTEN, 1, "http://localhost:8081/hook");
    accepted("10.0.0.5:9000", 1, "http://10.0.0.6:9000/x");
    refused("127.0.0.1:0", 1, "http://127.0.0.1:0/x", "no usable port"); /* port 0: unreachable */
    accepted(NULL, 1, "http://127.0.0.1:8080/x"); /* no listen address at all */
    refused(LISTEN, 0, "http://127.0.0.1:9000/hook", "LEADFLOW_ALLOW_PRIVATE_TARGETS is off");
    (void)state;
}

static void private_targets(void **state)
{
    const char *urls[] = {
        "http://127.0.0.1:9/x",   "http://localhost/x",        "http://LocalHost./",
        "http://foo.localhost/x", "http://10.1.2.3/",          "http://[::1]/",
        "http://[fe80::1]/",      "http://[fd00::1]:8443/",    "http://169.254.169.254/",
        "http://192.168.0.10/",   "http://172.20.0.1/",        "http://100.64.1.1/",
        "http://0.0.0.0/",        "http://[::ffff:10.0.0.1]/", "http://[::]/",
        "http://224.0.0.1/",      "http://2130706433/",        "http://0x7f.0.0.1/",
        "http://127.1/",          "http://%31%32%37.0.0.1/",
    };
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        refused(LISTEN, 0, urls[i], "private or loopback address");
        accepted(LISTEN, 1, urls[i]);
    }
    accepted(LISTEN, 0, "https://example.com/hook"); /* offline, it does not resolve: fine */
    accepted(LISTEN, 0, "http://93.184.216.34/");
    accepted(LISTEN, 0, "http://[2606:4700:4700::1111]:8443/");
    (void)state;
}

/* A name that resolves to a private address is refused like the address. The machine's own
 * host name usually resolves to a loopback or private one; where it does not, there is
 * nothing to check. */
static void names_resolving_to_private_addresses(void **state)
{
    char name[256] = "", url[300];
    if (gethostname(name, sizeof name) != 0 || name[0] == '\0' || strchr(name, '_')) skip();
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(name, NULL, &hints, &res) != 0) skip();
    int priv = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) priv |= lf_addr_private(ai->ai_addr);
    freeaddrinfo(res);
    if (!priv) skip();
    snprintf(url, sizeof url, "http://%s:9/hook", name);
    refused(LISTEN, 0, url, "private or loopback address");
    accepted(LISTEN, 1, url);
    (void)state;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ipv4_ranges),
        cmocka_unit_test(ipv6_ranges),
        cmocka_unit_test(other_families_are_not_public),
        cmocka_unit_test(scheme_host_and_userinfo),
        cmocka_unit_test(the_service_itself),
        cmocka_unit_test(private_targets),
        cmocka_unit_test(names_resolving_to_private_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
