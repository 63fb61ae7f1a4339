/* systemd's environment as server/sdnotify.c reads it: the notification socket's address
 * (a path, or '@' for the abstract namespace, anything else refused) and the watchdog interval
 * (only for the process WATCHDOG_PID names, at least 1 ms, digits only). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "sdnotify.h"

static void socket_paths(void **state)
{
    (void)state;
    char out[108];
    size_t len = 0;
    assert_int_equal(pw_sdnotify_socket_path("/run/systemd/notify", out, sizeof out, &len), 0);
    assert_int_equal(len, strlen("/run/systemd/notify"));
    assert_memory_equal(out, "/run/systemd/notify", len);
    assert_int_equal(pw_sdnotify_socket_path("@pw-notify", out, sizeof out, &len), 0);
    assert_int_equal(len, 10);
    assert_int_equal(out[0], '\0'); /* abstract: a leading NUL, the rest as given */
    assert_memory_equal(out + 1, "pw-notify", 9);
    assert_int_equal(pw_sdnotify_socket_path(NULL, out, sizeof out, &len), -1);
    assert_int_equal(pw_sdnotify_socket_path("", out, sizeof out, &len), -1);
    assert_int_equal(pw_sdnotify_socket_path("@", out, sizeof out, &len), -1);
    assert_int_equal(pw_sdnotify_socket_path("vsock:2:1234", out, sizeof out, &len), -1);
    char longer[200];
    memset(longer, 'a', sizeof longer - 1);
    longer[0] = '/';
    longer[sizeof longer - 1] = '\0';
    assert_int_equal(pw_sdnotify_socket_path(longer, out, sizeof out, &len), -1);
}

static void watchdog_intervals(void **state)
{
    (void)state;
    uint64_t ms = 0;
    assert_int_equal(pw_sdnotify_watchdog_ms("10000000", NULL, 42, &ms), 0);
    assert_int_equal(ms, 10000);
    assert_int_equal(pw_sdnotify_watchdog_ms("10000000", "42", 42, &ms), 0);
    assert_int_equal(pw_sdnotify_watchdog_ms("10000000", "", 42, &ms), 0);
    assert_int_equal(pw_sdnotify_watchdog_ms("10000000", "43", 42, &ms), -1); /* not ours */
    assert_int_equal(pw_sdnotify_watchdog_ms("10000000", "42x", 42, &ms), -1);
    assert_int_equal(pw_sdnotify_watchdog_ms(NULL, NULL, 42, &ms), -1);
    assert_int_equal(pw_sdnotify_watchdog_ms("", NULL, 42, &ms), -1);
    assert_int_equal(pw_sdnotify_watchdog_ms("999", NULL, 42, &ms), -1); /* under 1 ms */
    assert_int_equal(pw_sdnotify_watchdog_ms("-5000000", NULL, 42, &ms), -1);
    assert_int_equal(pw_sdnotify_watchdog_ms("5s", NULL, 42, &ms), -1);
    assert_int_equal(pw_sdnotify_watchdog_ms("99999999999999999999999", NULL, 42, &ms), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(socket_paths),
                                       cmocka_unit_test(watchdog_intervals)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
