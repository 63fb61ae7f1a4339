/* Out-of-memory policy, bounded string copy and stderr logging for all modules. */
#include "pw_util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <unistd.h>

static enum pw_log_level log_level = PW_LOG_INFO;

static void *oom(size_t size)
{
    pw_error("util", "out of memory allocating %zu bytes", size);
    abort();
}

void *pw_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    return p ? p : oom(size);
}

void *pw_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    return p ? p : oom(count * size);
}

void *pw_xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    return p ? p : oom(size);
}

char *pw_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(pw_xmalloc(n), s, n);
}

long long pw_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pw_worker_yield_priority(void)
{
    static _Thread_local int done;
    if (done)
        return;
    done = 1;
    /* A thread started by a real-time loop thread inherits its policy: back to the normal one
     * (lowering one's own policy needs no privilege). */
    struct sched_param normal = {.sched_priority = 0};
    (void)pthread_setschedparam(pthread_self(), SCHED_OTHER, &normal);
    /* On Linux a nice value belongs to the thread: PRIO_PROCESS with the thread's id changes
     * only this one. A failure leaves it at the process's value, which is only less fair. */
    pid_t tid = (pid_t)syscall(SYS_gettid);
    errno = 0;
    int nice_now = getpriority(PRIO_PROCESS, (id_t)tid);
    if (errno == 0) {
        int want = nice_now + PW_WORKER_NICE_STEP > 19 ? 19 : nice_now + PW_WORKER_NICE_STEP;
        (void)setpriority(PRIO_PROCESS, (id_t)tid, want);
    }
}

int pw_random(void *buf, size_t len)
{
    for (size_t got = 0; got < len;) {
        ssize_t n = getrandom((char *)buf + got, len - got, 0);
        if (n < 0 && errno != EINTR)
            return -1;
        got += n > 0 ? (size_t)n : 0;
    }
    return 0;
}

size_t pw_strlcpy(char *dst, const char *src, size_t size)
{
    size_t len = strlen(src);
    if (size > 0) {
        size_t n = len < size - 1 ? len : size - 1;
        memcpy(dst, src, n);
        dst[n] = '\0';
    }
    return len;
}

void pw_log_set_level(enum pw_log_level level)
{
    log_level = level;
}

enum pw_log_level pw_log_get_level(void)
{
    return log_level;
}

void pw_vlog(enum pw_log_level level, const char *component, const char *fmt, va_list ap)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    if (level < log_level)
        return;
    /* One buffer, one write: lines from two processes sharing stderr do not interleave. */
    char line[1024];
    int n = snprintf(line, sizeof line, "%-5s %s: ", names[level], component);
    if (n < 0)
        return;
    if ((size_t)n < sizeof line)
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    fprintf(stderr, "%s\n", line);
}

void pw_log(enum pw_log_level level, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pw_vlog(level, component, fmt, ap);
    va_end(ap);
}

int pw_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t k = write(fd, p, len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            if (k == 0)
                errno = EIO; /* a write that takes nothing would loop for ever */
            return -1;
        }
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

/* fsync of the folder makes the rename itself durable. */
static int sync_parent_dir(const char *path)
{
    char dir[4096];
    pw_strlcpy(dir, path, sizeof dir);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        pw_strlcpy(dir, ".", sizeof dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int pw_write_file_atomic(const char *path, const void *data, size_t len, unsigned mode, char *err,
                         size_t err_size)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
        snprintf(err, err_size, "path too long: %s", path);
        return -1;
    }
    /* O_NOFOLLOW: a planted symlink must not redirect the write. */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, (mode_t)mode);
    if (fd < 0) {
        snprintf(err, err_size, "cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    if (fchmod(fd, (mode_t)mode) != 0 || pw_write_all(fd, data, len) != 0 || fsync(fd) != 0) {
        snprintf(err, err_size, "cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        snprintf(err, err_size, "cannot replace %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    if (sync_parent_dir(path) != 0)
        pw_warn("util", "saved %s but could not sync its folder: %s", path, strerror(errno));
    return 0;
}
