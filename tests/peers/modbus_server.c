/* A Modbus TCP server for tests, built on Debian's libmodbus (a peer nobody here wrote): it
 * serves a register image read from a file and reloads it when the file changes, and can answer
 * as another unit, with an exception, late, or in two writes, to play a faulty gateway.
 *
 *   modbus-test-server --port N --image FILE [--unit-as U] [--exception CODE] [--delay-ms MS]
 *                      [--split-ms MS] [--answer-log FILE] [--max-clients N]
 *
 * The image file, one item a line ('#' starts a comment; numbers decimal or 0x hex):
 *   FN ADDRESS VALUE        a 16-bit register of function 3 (holding) or 4 (input), every unit
 *   UNIT FN ADDRESS VALUE   the same for one unit only (it sees the common lines too)
 *   delay_ms MS | exception CODE | unit_as U | split_ms MS
 *                           override the command line's fault options while the file says so
 * Registers not given read 0. --answer-log appends "REALTIME_NS UNIT FN ADDRESS GENERATION" for
 * every answer written (GENERATION counts image loads), for benchmarks. SIGTERM or SIGINT: exit
 * 0. Loopback only. */
#include <errno.h>
#include <getopt.h>
#include <modbus.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define REGS       65536
#define MAX_UNITS  256
#define MAX_CLIENT 16

typedef struct faults {
    long delay_ms, exception, unit_as, split_ms;
} faults;

static volatile sig_atomic_t stopping;
static modbus_mapping_t *common_map, *unit_map[MAX_UNITS];
static faults cli_faults, now_faults;
static unsigned generation;
static struct stat image_st;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR && !stopping) {
    }
}

static modbus_mapping_t *new_map(void)
{
    modbus_mapping_t *m = modbus_mapping_new(0, 0, REGS, REGS);
    if (!m) {
        fprintf(stderr, "modbus-test-server: out of memory\n");
        exit(1);
    }
    return m;
}

static int set_reg(modbus_mapping_t *m, long fn, long address, long value)
{
    if ((fn != 3 && fn != 4) || address < 0 || address >= REGS || value < 0 || value > 0xFFFF)
        return -1;
    (fn == 3 ? m->tab_registers : m->tab_input_registers)[address] = (uint16_t)value;
    return 0;
}

typedef struct unit_line {
    long unit, fn, address, value;
} unit_line;

/* Loads the image; on a malformed file the previous image stays and the error is printed. */
static int load_image(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "modbus-test-server: %s: %s\n", path, strerror(errno));
        return -1;
    }
    modbus_mapping_t *common = new_map();
    faults fl = cli_faults;
    unit_line *ul = NULL;
    size_t n_ul = 0, cap = 0;
    char line[256];
    int lineno = 0, bad = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char word[32];
        long a[4];
        int n = sscanf(line, "%li %li %li %li", &a[0], &a[1], &a[2], &a[3]);
        if (n <= 0 && sscanf(line, "%31s", word) != 1)
            continue; /* blank */
        if (n <= 0 && sscanf(line, "%31s %li", word, &a[0]) == 2) {
            if (strcmp(word, "delay_ms") == 0)
                fl.delay_ms = a[0];
            else if (strcmp(word, "exception") == 0)
                fl.exception = a[0];
            else if (strcmp(word, "unit_as") == 0)
                fl.unit_as = a[0];
            else if (strcmp(word, "split_ms") == 0)
                fl.split_ms = a[0];
            else
                bad = lineno;
        } else if (n == 3) {
            if (set_reg(common, a[0], a[1], a[2]) != 0)
                bad = lineno;
        } else if (n == 4 && a[0] >= 0 && a[0] < MAX_UNITS) {
            if (n_ul == cap) {
                cap = cap ? 2 * cap : 64;
                ul = realloc(ul, cap * sizeof *ul);
                if (!ul)
                    abort();
            }
            ul[n_ul++] = (unit_line){a[0], a[1], a[2], a[3]};
        } else {
            bad = lineno;
        }
    }
    fclose(f);
    if (bad) {
        fprintf(stderr,
                "modbus-test-server: %s line %d: expected 'FN ADDRESS VALUE', "
                "'UNIT FN ADDRESS VALUE' or an option\n",
                path, bad);
        modbus_mapping_free(common);
        free(ul);
        return -1;
    }
    for (size_t u = 0; u < MAX_UNITS; u++) {
        if (unit_map[u])
            modbus_mapping_free(unit_map[u]);
        unit_map[u] = NULL;
    }
    for (size_t k = 0; k < n_ul; k++) {
        modbus_mapping_t **m = &unit_map[ul[k].unit];
        if (!*m) {
            *m = new_map();
            memcpy((*m)->tab_registers, common->tab_registers, REGS * sizeof(uint16_t));
            memcpy((*m)->tab_input_registers, common->tab_input_registers, REGS * sizeof(uint16_t));
        }
        if (set_reg(*m, ul[k].fn, ul[k].address, ul[k].value) != 0)
            fprintf(stderr, "modbus-test-server: bad unit line ignored\n");
    }
    free(ul);
    if (common_map)
        modbus_mapping_free(common_map);
    common_map = common;
    now_faults = fl;
    generation++;
    return 0;
}

/* Reloads the image when the file was replaced or written since the last load. */
static void maybe_reload(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return;
    if (st.st_ino == image_st.st_ino && st.st_size == image_st.st_size &&
        st.st_mtim.tv_sec == image_st.st_mtim.tv_sec &&
        st.st_mtim.tv_nsec == image_st.st_mtim.tv_nsec)
        return;
    if (load_image(path) == 0)
        image_st = st;
}

static int send_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Answers one request on fd as the faults say. Returns 0, or -1 to drop the client. */
static int answer(modbus_t *ctx, int fd, uint8_t *query, int len, FILE *answer_log)
{
    int hl = modbus_get_header_length(ctx);
    uint8_t unit = query[hl - 1];
    uint8_t fn = query[hl];
    unsigned address = (unsigned)(query[hl + 1] << 8 | query[hl + 2]);
    faults fl = now_faults;
    if (fl.delay_ms > 0)
        sleep_ms(fl.delay_ms);
    if (stopping)
        return -1;
    /* libmodbus echoes the unit id of the request: answering as another means changing it. */
    if (fl.unit_as > 0)
        query[hl - 1] = (uint8_t)fl.unit_as;
    modbus_mapping_t *map = unit_map[unit] ? unit_map[unit] : common_map;
    int sp[2] = {-1, -1};
    if (fl.split_ms > 0) {
        /* Let libmodbus write its answer into a socket pair, then pass it on in two parts. */
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) != 0)
            return -1;
        modbus_set_socket(ctx, sp[0]);
    }
    int rc = fl.exception > 0 ? modbus_reply_exception(ctx, query, (unsigned)fl.exception)
                              : modbus_reply(ctx, query, len, map);
    if (fl.split_ms > 0) {
        modbus_set_socket(ctx, fd);
        uint8_t buf[MODBUS_TCP_MAX_ADU_LENGTH];
        ssize_t n = rc > 0 ? recv(sp[1], buf, sizeof buf, 0) : -1;
        close(sp[0]);
        close(sp[1]);
        if (n <= 0)
            return -1;
        size_t half = (size_t)n / 2;
        if (send_all(fd, buf, half) != 0)
            return -1;
        sleep_ms(fl.split_ms);
        if (send_all(fd, buf + half, (size_t)n - half) != 0)
            return -1;
    } else if (rc < 0) {
        return -1;
    }
    if (answer_log) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        fprintf(answer_log, "%lld %u %u %u %u\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec,
                unit, fn, address, generation);
        fflush(answer_log);
    }
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: modbus-test-server --port N --image FILE [--unit-as U] "
                    "[--exception CODE] [--delay-ms MS] [--split-ms MS] [--answer-log FILE] "
                    "[--max-clients N]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"port", required_argument, NULL, 'p'},
                                         {"image", required_argument, NULL, 'i'},
                                         {"unit-as", required_argument, NULL, 'u'},
                                         {"exception", required_argument, NULL, 'e'},
                                         {"delay-ms", required_argument, NULL, 'd'},
                                         {"split-ms", required_argument, NULL, 's'},
                                         {"answer-log", required_argument, NULL, 'a'},
                                         {"max-clients", required_argument, NULL, 'm'},
                                         {NULL, 0, NULL, 0}};
    long port = 0, max_clients = 8;
    const char *image = NULL, *log_path = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            port = strtol(optarg, NULL, 0);
            break;
        case 'i':
            image = optarg;
            break;
        case 'u':
            cli_faults.unit_as = strtol(optarg, NULL, 0);
            break;
        case 'e':
            cli_faults.exception = strtol(optarg, NULL, 0);
            break;
        case 'd':
            cli_faults.delay_ms = strtol(optarg, NULL, 0);
            break;
        case 's':
            cli_faults.split_ms = strtol(optarg, NULL, 0);
            break;
        case 'a':
            log_path = optarg;
            break;
        case 'm':
            max_clients = strtol(optarg, NULL, 0);
            break;
        default:
            usage();
        }
    }
    if (port <= 0 || port > 65535 || !image || max_clients < 1 || max_clients > MAX_CLIENT)
        usage();
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    now_faults = cli_faults;
    common_map = new_map();
    maybe_reload(image);
    FILE *answer_log = log_path ? fopen(log_path, "a") : NULL;
    if (log_path && !answer_log) {
        fprintf(stderr, "modbus-test-server: %s: %s\n", log_path, strerror(errno));
        return 1;
    }
    modbus_t *ctx = modbus_new_tcp("127.0.0.1", (int)port);
    int listen_fd = ctx ? modbus_tcp_listen(ctx, (int)max_clients) : -1;
    if (listen_fd < 0) {
        fprintf(stderr, "modbus-test-server: cannot listen on 127.0.0.1:%ld: %s\n", port,
                modbus_strerror(errno));
        return 1;
    }
    printf("listening on 127.0.0.1:%ld\n", port);
    fflush(stdout);

    int clients[MAX_CLIENT];
    int n_clients = 0;
    uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
    while (!stopping) {
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(listen_fd, &rd);
        int top = listen_fd;
        for (int k = 0; k < n_clients; k++) {
            FD_SET(clients[k], &rd);
            top = clients[k] > top ? clients[k] : top;
        }
        struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
        int ready = select(top + 1, &rd, NULL, NULL, &tv);
        maybe_reload(image);
        if (ready <= 0)
            continue;
        if (FD_ISSET(listen_fd, &rd)) {
            int fd = accept(listen_fd, NULL, NULL);
            if (fd >= 0 && n_clients < max_clients)
                clients[n_clients++] = fd;
            else if (fd >= 0) {
                fprintf(stderr, "modbus-test-server: connection refused: %d clients already\n",
                        n_clients);
                close(fd); /* a gateway with all its connections taken */
            }
        }
        for (int k = 0; k < n_clients && !stopping; k++) {
            if (!FD_ISSET(clients[k], &rd))
                continue;
            modbus_set_socket(ctx, clients[k]);
            int len = modbus_receive(ctx, query);
            if (len > 0)
                maybe_reload(image);
            if (len == 0)
                continue; /* a request for another server: libmodbus ignored it */
            if (len < 0 || answer(ctx, clients[k], query, len, answer_log) != 0) {
                if (!stopping)
                    fprintf(stderr, "modbus-test-server: connection closed: %s\n",
                            len < 0 ? modbus_strerror(errno) : "answer not written");
                close(clients[k]);
                clients[k--] = clients[--n_clients];
            }
        }
    }
    for (int k = 0; k < n_clients; k++)
        close(clients[k]);
    close(listen_fd);
    modbus_free(ctx);
    modbus_mapping_free(common_map);
    for (size_t u = 0; u < MAX_UNITS; u++)
        if (unit_map[u])
            modbus_mapping_free(unit_map[u]);
    if (answer_log)
        fclose(answer_log);
    return 0;
}
