/* systemd's service notifications without libsystemd: READY=1 once the appliance serves,
 * WATCHDOG=1 from a timer on the loop (so a stalled loop stops feeding it and systemd restarts
 * the service), STOPPING=1 at shutdown. Does nothing when not started by systemd (no
 * NOTIFY_SOCKET). Loop thread. */
#ifndef PW_SDNOTIFY_H
#define PW_SDNOTIFY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct pw_sdnotify pw_sdnotify;

/* Says READY=1 and starts feeding the watchdog at half of WATCHDOG_USEC when systemd asked for
 * one for this process. Returns NULL when there is nothing to do. */
pw_sdnotify *pw_sdnotify_ready(uv_loop_t *loop);
/* Says STOPPING=1 and closes the timer; the memory goes with it. NULL is fine. */
void pw_sdnotify_stopping(pw_sdnotify *n);

/* The parsed environment (pure, for tests): the socket address from NOTIFY_SOCKET ('@' is the
 * abstract namespace) and the watchdog interval in ms from WATCHDOG_USEC when WATCHDOG_PID is
 * unset or pid. Return 0, or -1 when absent or malformed. */
int pw_sdnotify_socket_path(const char *env, char *out, size_t out_size, size_t *len);
int pw_sdnotify_watchdog_ms(const char *usec, const char *wd_pid, long pid, uint64_t *out_ms);

#endif
