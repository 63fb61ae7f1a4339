/* systemd notifications (sdnotify.h): one datagram per message on the socket systemd names. */
#include "sdnotify.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "pw_util.h"

struct pw_sdnotify {
    uv_timer_t timer;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    size_t path_len;
    bool feeding;
};

int pw_sdnotify_socket_path(const char *env, char *out, size_t out_size, size_t *len)
{
    if (!env || (*env != '/' && *env != '@'))
        return -1; /* vsock and other schemes are not ours to speak */
    size_t n = strlen(env);
    if (n < 2 || n >= out_size)
        return -1;
    memcpy(out, env, n);
    if (*out == '@')
        out[0] = '\0'; /* abstract: the name starts with a NUL byte and is not terminated */
    *len = n;
    return 0;
}

int pw_sdnotify_watchdog_ms(const char *usec, const char *wd_pid, long pid, uint64_t *out_ms)
{
    if (!usec || !*usec)
        return -1;
    if (wd_pid && *wd_pid) {
        char *end;
        errno = 0;
        long p = strtol(wd_pid, &end, 10);
        if (errno || *end || p != pid)
            return -1; /* meant for another process of the service */
    }
    char *end;
    errno = 0;
    unsigned long long us = strtoull(usec, &end, 10);
    if (errno || *end || us < 1000 || *usec == '-')
        return -1;
    *out_ms = us / 1000;
    return 0;
}

static void send_state(const pw_sdnotify *n, const char *state)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, n->path, n->path_len);
    socklen_t sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n->path_len);
    /* A datagram socket never blocks for long on a local socket; a failure only means systemd
     * misses one message, and the next watchdog ping comes anyway. */
    if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, sl) < 0)
        pw_debug("systemd", "notify %s: %s", state, strerror(errno));
    close(fd);
}

static void on_watchdog(uv_timer_t *t)
{
    send_state(t->data, "WATCHDOG=1");
}

pw_sdnotify *pw_sdnotify_ready(uv_loop_t *loop)
{
    pw_sdnotify *n = pw_xcalloc(1, sizeof *n);
    if (pw_sdnotify_socket_path(getenv("NOTIFY_SOCKET"), n->path, sizeof n->path, &n->path_len) !=
        0) {
        free(n);
        return NULL;
    }
    uv_timer_init(loop, &n->timer);
    n->timer.data = n;
    uint64_t wd_ms;
    if (pw_sdnotify_watchdog_ms(getenv("WATCHDOG_USEC"), getenv("WATCHDOG_PID"), (long)getpid(),
                                &wd_ms) == 0) {
        uv_timer_start(&n->timer, on_watchdog, wd_ms / 2, wd_ms / 2);
        n->feeding = true;
        pw_info("systemd", "feeding the watchdog every %llu ms", (unsigned long long)wd_ms / 2);
    }
    send_state(n, "READY=1");
    return n;
}

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

void pw_sdnotify_stopping(pw_sdnotify *n)
{
    if (!n)
        return;
    send_state(n, "STOPPING=1");
    uv_close((uv_handle_t *)&n->timer, on_closed);
}
