/* Small helpers shared by every phasewise module: one out-of-memory policy, bounded string
 * copies and logging to stderr with a level and a component name. */
#ifndef PW_UTIL_H
#define PW_UTIL_H

#include <stdarg.h>
#include <stddef.h>

#define PW_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation that never returns NULL: on exhaustion it logs and aborts, because a balancer that
 * keeps running with a half-built state is worse than one that restarts. Free with free(). */
void *pw_xmalloc(size_t size);
void *pw_xcalloc(size_t count, size_t size);
void *pw_xrealloc(void *ptr, size_t size);
char *pw_xstrdup(const char *s);

/* Copies at most size-1 bytes of src into dst and always terminates it. Returns strlen(src), so
 * a result >= size means the copy was truncated. */
size_t pw_strlcpy(char *dst, const char *src, size_t size);

/* Unix wall-clock milliseconds, for history rows; control decisions use the loop's monotonic
 * time instead. */
long long pw_wall_ms(void);

/* A worker thread (history writes, API queries, password hashing) gives way to the loop thread,
 * once per thread: it leaves a real-time policy it inherited for the normal one and raises its
 * nice value by PW_WORKER_NICE_STEP above the process's. The systemd unit runs the loop thread
 * under SCHED_RR at Nice=-10; giving either up needs no privilege. */
#define PW_WORKER_NICE_STEP 10
void pw_worker_yield_priority(void);

/* Fills buf with len bytes from the kernel's random source (salts, keys). Returns 0 or -1. */
int pw_random(void *buf, size_t len);

/* Writes all of data to fd, resuming after EINTR and short writes. Returns 0, or -1 with errno
 * set. */
int pw_write_all(int fd, const void *data, size_t len);

/* Replaces the file at path with data, atomically and durably: writes "<path>.tmp" (never
 * through a symlink) with the given mode, fsyncs it, renames it over path and fsyncs the
 * folder. After a crash path holds either the old or the new content. Returns 0, or -1 with a
 * message in err. */
int pw_write_file_atomic(const char *path, const void *data, size_t len, unsigned mode, char *err,
                         size_t err_size);

enum pw_log_level { PW_LOG_DEBUG, PW_LOG_INFO, PW_LOG_WARN, PW_LOG_ERROR };

/* Messages below this level are dropped. Default PW_LOG_INFO. */
void pw_log_set_level(enum pw_log_level level);
enum pw_log_level pw_log_get_level(void);

/* Writes "LEVEL component: message" to stderr. */
void pw_log(enum pw_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void pw_vlog(enum pw_log_level level, const char *component, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#define pw_debug(comp, ...) pw_log(PW_LOG_DEBUG, comp, __VA_ARGS__)
#define pw_info(comp, ...)  pw_log(PW_LOG_INFO, comp, __VA_ARGS__)
#define pw_warn(comp, ...)  pw_log(PW_LOG_WARN, comp, __VA_ARGS__)
#define pw_error(comp, ...) pw_log(PW_LOG_ERROR, comp, __VA_ARGS__)

#endif
