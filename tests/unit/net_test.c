/* Tests for pw_net: two sockets in one process on loopback multicast hear each other and
 * themselves, rejoin keeps the membership, bad addresses are refused before anything opens, a
 * datagram over PW_NET_MAX_DATAGRAM is reported with its length instead of vanishing, and every
 * handle is closed at the end (uv_loop_close() == 0). */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "pw_net.h"

/* A group of its own, so parallel tests on other groups never reach these sockets. */
#define TEST_GROUP "239.255.80.201"
#define NOT_LOCAL  "198.51.100.77" /* TEST-NET-2: never an address of this host */

typedef struct peer {
    pw_net *net;
    int heard_a;
    int heard_b;
    int foreign; /* datagrams from another run of this test: ignored */
    int closed;
    int heard_max;      /* this run's datagrams of exactly PW_NET_MAX_DATAGRAM bytes */
    size_t longest;     /* the longest datagram recv_cb was given */
    size_t oversize[4]; /* lengths oversize_cb reported */
    size_t n_oversize;
} peer;

typedef struct fixture {
    uv_loop_t loop;
    uv_timer_t deadline;
    uint16_t port;
    char tag[32]; /* per-process payload prefix */
    peer a, b;
    int expected; /* stop the loop when a and b heard this many datagrams in total */
} fixture;

static uint16_t test_port(void)
{
    /* Spread concurrent runs (debug and sanitizer builds) over ports. */
    return (uint16_t)(20000 + getpid() % 20000);
}

static int heard_total(const fixture *f)
{
    return f->a.heard_a + f->a.heard_b + f->b.heard_a + f->b.heard_b;
}

static void on_recv(pw_net *net, const uint8_t *buf, size_t len, const struct sockaddr_in *from,
                    void *user)
{
    fixture *f = user;
    peer *p = net == f->a.net ? &f->a : &f->b;
    size_t tl = strlen(f->tag);
    (void)from;

    if (len > p->longest)
        p->longest = len;
    if (len == PW_NET_MAX_DATAGRAM && memcmp(buf, f->tag, tl) == 0) {
        p->heard_max++;
        return;
    }
    if (len != tl + 1 || memcmp(buf, f->tag, tl) != 0) {
        p->foreign++;
        return;
    }
    if (buf[tl] == 'a')
        p->heard_a++;
    else if (buf[tl] == 'b')
        p->heard_b++;
    if (heard_total(f) >= f->expected)
        uv_stop(&f->loop);
}

static void on_oversize(pw_net *net, size_t len, const struct sockaddr_in *from, void *user)
{
    fixture *f = user;
    peer *p = net == f->a.net ? &f->a : &f->b;
    (void)from;
    if (p->n_oversize < sizeof p->oversize / sizeof p->oversize[0])
        p->oversize[p->n_oversize++] = len;
}

static void on_deadline(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static void on_closed(void *user)
{
    (*(int *)user)++;
}

static int setup(void **state)
{
    static fixture f;
    memset(&f, 0, sizeof(f));
    assert_int_equal(uv_loop_init(&f.loop), 0);
    assert_int_equal(uv_timer_init(&f.loop, &f.deadline), 0);
    f.port = test_port();
    snprintf(f.tag, sizeof(f.tag), "net_test-%d-", (int)getpid());
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    uv_close((uv_handle_t *)&f->deadline, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    /* Every handle pw_net opened must be gone. */
    assert_int_equal(uv_loop_close(&f->loop), 0);
    return 0;
}

static void open_peer(fixture *f, peer *p)
{
    pw_net_opts o = {.group = TEST_GROUP, .port = f->port, .interface = "127.0.0.1", .ttl = 1};
    assert_int_equal(pw_net_open(&f->loop, &o, on_recv, f, &p->net), PW_NET_OK);
    assert_non_null(p->net);
}

static void send_from(fixture *f, peer *p, char who)
{
    uint8_t msg[40];
    size_t tl = strlen(f->tag);
    memcpy(msg, f->tag, tl);
    msg[tl] = (uint8_t)who;
    assert_int_equal(pw_net_send(p->net, msg, tl + 1), PW_NET_OK);
}

/* Runs the loop until the expected datagrams arrived or two seconds passed. */
static void run_until_heard(fixture *f, int expected)
{
    f->expected = expected;
    uv_timer_start(&f->deadline, on_deadline, 2000, 0);
    if (heard_total(f) < expected)
        uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&f->deadline);
}

static void close_peers(fixture *f)
{
    pw_net_close(f->a.net, on_closed, &f->a.closed);
    pw_net_close(f->b.net, on_closed, &f->b.closed);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->a.closed, 1);
    assert_int_equal(f->b.closed, 1);
}

static void test_two_sockets_hear_each_other(void **state)
{
    fixture *f = *state;
    open_peer(f, &f->a);
    open_peer(f, &f->b);
    assert_string_equal(pw_net_interface(f->a.net), "127.0.0.1");

    send_from(f, &f->a, 'a');
    send_from(f, &f->b, 'b');
    run_until_heard(f, 4);
    /* Loop is on: each socket hears the other and itself, exactly once. */
    assert_int_equal(f->a.heard_a, 1);
    assert_int_equal(f->a.heard_b, 1);
    assert_int_equal(f->b.heard_a, 1);
    assert_int_equal(f->b.heard_b, 1);

    pw_net_stats st;
    pw_net_get_stats(f->a.net, &st);
    assert_int_equal(st.tx, 1);
    assert_true(st.rx >= 2);
    assert_int_equal(st.tx_errors, 0);
    close_peers(f);
}

static void test_rejoin_keeps_membership(void **state)
{
    fixture *f = *state;
    open_peer(f, &f->a);
    open_peer(f, &f->b);

    assert_int_equal(pw_net_rejoin(f->b.net, NULL), PW_NET_OK);
    assert_int_equal(pw_net_rejoin(f->b.net, "127.0.0.1"), PW_NET_OK);
    /* A refused rejoin leaves the socket as it was. */
    assert_int_equal(pw_net_rejoin(f->b.net, NOT_LOCAL), PW_NET_E_NOT_LOCAL);
    assert_string_equal(pw_net_interface(f->b.net), "127.0.0.1");

    send_from(f, &f->a, 'a');
    run_until_heard(f, 2);
    assert_int_equal(f->b.heard_a, 1);
    assert_int_equal(f->a.heard_a, 1);
    close_peers(f);
}

static void test_refuses_bad_addresses(void **state)
{
    fixture *f = *state;
    pw_net *net = (pw_net *)1;
    pw_net_opts o = {.group = TEST_GROUP, .port = f->port, .interface = NOT_LOCAL};

    assert_int_equal(pw_net_open(&f->loop, &o, on_recv, f, &net), PW_NET_E_NOT_LOCAL);
    assert_null(net);
    o.interface = "loopback";
    assert_int_equal(pw_net_open(&f->loop, &o, on_recv, f, &net), PW_NET_E_ADDRESS);
    o.interface = NULL; /* default 127.0.0.1, but the group is unicast */
    o.group = "10.0.0.1";
    assert_int_equal(pw_net_open(&f->loop, &o, on_recv, f, &net), PW_NET_E_ADDRESS);
    o.group = NULL;
    assert_int_equal(pw_net_open(&f->loop, &o, on_recv, f, &net), PW_NET_E_ADDRESS);
    assert_null(net);
    /* Nothing was left on the loop: teardown checks uv_loop_close(). */
}

static void test_send_size_and_closing(void **state)
{
    fixture *f = *state;
    static uint8_t big[PW_NET_MAX_DATAGRAM + 1];
    open_peer(f, &f->a);
    open_peer(f, &f->b);

    assert_int_equal(pw_net_send(f->a.net, big, 0), PW_NET_E_SIZE);
    assert_int_equal(pw_net_send(f->a.net, big, sizeof(big)), PW_NET_E_SIZE);
    assert_int_equal(pw_net_send(f->a.net, big, PW_NET_MAX_DATAGRAM), PW_NET_OK);

    pw_net *a = f->a.net;
    pw_net_close(a, on_closed, &f->a.closed);
    /* Until the close callback ran the object exists but refuses work. */
    assert_int_equal(pw_net_send(a, big, 10), PW_NET_E_CLOSING);
    assert_int_equal(pw_net_rejoin(a, NULL), PW_NET_E_CLOSING);
    pw_net_close(f->b.net, on_closed, &f->b.closed);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->a.closed, 1);
    assert_int_equal(f->b.closed, 1);
}

/* Sends len bytes (the run's tag, then filler) to the group from a plain socket: pw_net_send
 * itself refuses anything over PW_NET_MAX_DATAGRAM. */
static void send_raw(const fixture *f, size_t len)
{
    static uint8_t buf[4000];
    assert_true(len <= sizeof buf);
    memset(buf, 'x', len);
    memcpy(buf, f->tag, strlen(f->tag));
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    struct in_addr lo = {.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &lo, sizeof lo), 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(f->port)};
    assert_int_equal(inet_pton(AF_INET, TEST_GROUP, &to.sin_addr), 1);
    assert_int_equal(sendto(fd, buf, len, 0, (const struct sockaddr *)&to, sizeof to),
                     (ssize_t)len);
    close(fd);
}

static bool oversize_heard(const fixture *f)
{
    pw_net_stats sb;
    pw_net_get_stats(f->b.net, &sb);
    return f->a.heard_max == 1 && f->a.n_oversize >= 2 && f->b.heard_max == 1 &&
           sb.rx_oversize >= 2;
}

static void test_oversize_reported(void **state)
{
    fixture *f = *state;
    pw_net_opts o = {.group = TEST_GROUP,
                     .port = f->port,
                     .interface = "127.0.0.1",
                     .ttl = 1,
                     .oversize_cb = on_oversize};
    assert_int_equal(pw_net_open(&f->loop, &o, on_recv, f, &f->a.net), PW_NET_OK);
    open_peer(f, &f->b); /* no oversize_cb: counted only */

    send_raw(f, PW_NET_MAX_DATAGRAM);
    send_raw(f, PW_NET_MAX_DATAGRAM + 1);
    send_raw(f, 3000);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(2000);
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while (!oversize_heard(f) && t.tv_sec - t0.tv_sec < 3);

    /* Closed before the checks, so that a failing check cannot leave sockets on the loop. */
    pw_net_stats sa, sb;
    pw_net_get_stats(f->a.net, &sa);
    pw_net_get_stats(f->b.net, &sb);
    close_peers(f);
    /* The largest allowed datagram arrives whole; the longer ones never reach recv_cb but are
     * reported with their real length, not a truncated one. */
    assert_int_equal(f->a.heard_max, 1);
    assert_int_equal(f->b.heard_max, 1);
    assert_int_equal(f->a.longest, PW_NET_MAX_DATAGRAM);
    assert_int_equal(f->b.longest, PW_NET_MAX_DATAGRAM);
    assert_int_equal(f->a.n_oversize, 2);
    assert_int_equal(f->a.oversize[0], PW_NET_MAX_DATAGRAM + 1);
    assert_int_equal(f->a.oversize[1], 3000);
    assert_int_equal(f->b.n_oversize, 0);
    assert_int_equal(sa.rx_oversize, 2);
    assert_int_equal(sb.rx_oversize, 2);
    assert_int_equal(sa.rx, 1);
    assert_int_equal(sa.rx_errors, 0);
}

static void test_local_address(void **state)
{
    (void)state;
    assert_true(pw_net_is_local_address("127.0.0.1"));
    assert_false(pw_net_is_local_address(NOT_LOCAL));
    assert_false(pw_net_is_local_address("127.0.0"));
    assert_false(pw_net_is_local_address(NULL));
    assert_string_equal(pw_net_strerror(PW_NET_E_NOT_LOCAL),
                        "interface address is not an address of this host");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_two_sockets_hear_each_other, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejoin_keeps_membership, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_bad_addresses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_size_and_closing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversize_reported, setup, teardown),
        cmocka_unit_test(test_local_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
