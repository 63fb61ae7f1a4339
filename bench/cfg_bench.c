/* Config benchmark: median wall time of pw_cfg_parse (JSON text to validated config) for 100,
 * 1,000 and 10,000 chargers under 200 circuits, each circuit metered. The API runs this on the
 * event loop for every save, check and SIGHUP, so it must stay far below a control tick. Prints
 * figures; it is not a timed test. Build with -O2 for real figures (the release preset), then
 * run cfg_bench [--old-keys] [runs]; --old-keys writes the pre-link form ("device_id",
 * "defa_serial") that older files use and older builds read. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pw_cfg.h"
#include "pw_util.h"

#define NODES 200

/* One device link in the new form ({"kind": {key: value}}) or the old key beside the others. */
static void add_link(json_t *o, bool old_keys, const char *kind, const char *key,
                     const char *old_key, json_t *value)
{
    if (old_keys)
        json_object_set_new(o, old_key, value);
    else
        json_object_set_new(o, "link", json_pack("{s:{s:o}}", kind, key, value));
}

/* A facility of the documented shape: a main fuse and 199 circuits under it, half of them read
 * by LAN meters and half by DEFA meter frames, the chargers spread evenly with rotated wiring.
 * Returns the JSON text; caller frees. */
static char *facility_json(size_t chargers, bool old_keys, size_t *len)
{
    static const char *const rot[] = {"L1L2L3", "L2L3L1", "L3L1L2"};
    json_t *nodes = json_array(), *list = json_array();
    for (size_t n = 0; n < NODES; n++) {
        char id[24], name[32], serial[32];
        snprintf(id, sizeof id, "n%03zu", n);
        snprintf(name, sizeof name, "Circuit %zu", n);
        snprintf(serial, sizeof serial, "DEFA%05zu", n);
        json_t *meter = json_pack("{s:i, s:i}", "timeout_s", 15, "fallback_a", 40);
        if (n % 2 == 0)
            add_link(meter, old_keys, "lan", "device_id", "device_id",
                     json_integer((json_int_t)(900000 + n)));
        else
            add_link(meter, old_keys, "defa", "serial", "defa_serial", json_string(serial));
        json_t *node = n == 0
                           ? json_pack("{s:s, s:s, s:n, s:i, s:i}", "id", "main", "name",
                                       "Main fuse", "parent", "limit_a", 10000, "margin_a", 2)
                           : json_pack("{s:s, s:s, s:s, s:[iii], s:i}", "id", id, "name", name,
                                       "parent", "main", "limit_a", 400, 400, 350, "margin_a", 1);
        json_object_set_new(node, "meter", meter);
        json_array_append_new(nodes, node);
    }
    for (size_t i = 0; i < chargers; i++) {
        char id[32], name[40], node[24];
        snprintf(id, sizeof id, "c%05zu", i);
        snprintf(name, sizeof name, "Charger %zu", i);
        snprintf(node, sizeof node, "n%03zu", 1 + i % (NODES - 1));
        json_t *c =
            json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:b}", "id", id, "name", name,
                      "node", node, "wiring", rot[i % 3], "min_a", 6, "max_a", 16, "failsafe_a", 0,
                      "priority", 0, "weight", 1, "phase_switching", 0);
        add_link(c, old_keys, "lan", "device_id", "device_id",
                 json_integer((json_int_t)(100000 + i)));
        json_array_append_new(list, c);
    }
    json_t *root =
        json_pack("{s:i, s:s, s:s, s:{s:b}, s:o, s:o}", "version", 1, "site", "bench", "grid", "TN",
                  "network", "defa_meters", 1, "nodes", nodes, "chargers", list);
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!text)
        abort();
    *len = strlen(text);
    return text;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Parses the text up to runs times (fewer once 20 s are spent, at least 3) and prints the
 * median and the fastest run. Returns 0, or 1 if the config was refused. */
static int measure(size_t chargers, bool old_keys, int runs)
{
    size_t len;
    char *text = facility_json(chargers, old_keys, &len);
    double *ms = pw_xcalloc((size_t)runs, sizeof *ms);
    double spent = 0;
    int done = 0;
    while (done < runs && (done < 3 || spent < 20000)) {
        pw_cfg_errors errs;
        double t0 = now_ms();
        pw_cfg *cfg = pw_cfg_parse(text, len, &errs);
        double t = now_ms() - t0;
        if (!cfg) {
            char out[4096];
            pw_cfg_errors_print(&errs, out, sizeof out);
            fprintf(stderr, "%zu chargers: config refused:\n%s", chargers, out);
            free(ms);
            free(text);
            return 1;
        }
        pw_cfg_free(cfg);
        ms[done++] = t;
        spent += t;
    }
    qsort(ms, (size_t)done, sizeof *ms, cmp_double);
    double median = done % 2 ? ms[done / 2] : (ms[done / 2 - 1] + ms[done / 2]) / 2;
    printf("%8zu %6d %10zu %12.3f %12.3f %5d\n", chargers, NODES, len, median, ms[0], done);
    free(ms);
    free(text);
    return 0;
}

int main(int argc, char **argv)
{
    static const size_t sizes[] = {100, 1000, PW_CFG_MAX_CHARGERS};
    bool old_keys = false;
    int runs = 21;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--old-keys") == 0)
            old_keys = true;
        else if ((runs = atoi(argv[i])) < 1) {
            fprintf(stderr, "usage: cfg_bench [--old-keys] [runs]\n");
            return 2;
        }
    }
    printf("pw_cfg_parse, %s keys, median of up to %d runs\n", old_keys ? "old" : "link", runs);
    printf("%8s %6s %10s %12s %12s %5s\n", "chargers", "nodes", "bytes", "median_ms", "min_ms",
           "runs");
    int rc = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        rc |= measure(sizes[i], old_keys, runs);
    return rc;
}
