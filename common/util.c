/* Out-of-memory policy, bounded string copy and stderr logging for all modules. */
#include "pw_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
