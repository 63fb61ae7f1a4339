/* Seeded packet impairment (pw_simimpair.h). */
#include "pw_simimpair.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void pw_sim_impair_init(pw_sim_impair *im, double loss, double dup, double reorder, uint64_t seed)
{
    memset(im, 0, sizeof(*im));
    im->loss = loss;
    im->dup = dup;
    im->reorder = reorder;
    pw_sim_rng_seed(&im->rng, seed);
}

/* Draws only when the probability is set, so a link without impairment consumes no numbers. */
static int chance(pw_sim_impair *im, double p)
{
    return p > 0.0 && pw_sim_rng_unit(&im->rng) < p;
}

void pw_sim_impair_pass(pw_sim_impair *im, const uint8_t *buf, size_t len, pw_sim_deliver_fn fn,
                        void *ctx)
{
    if (chance(im, im->loss)) {
        im->dropped++;
        return;
    }
    if (!im->holding && len <= sizeof(im->held) && chance(im, im->reorder)) {
        memcpy(im->held, buf, len);
        im->held_len = len;
        im->holding = 1;
        return;
    }
    fn(ctx, buf, len);
    if (chance(im, im->dup)) {
        im->duplicated++;
        fn(ctx, buf, len);
    }
    if (im->holding) {
        im->holding = 0;
        im->reordered++;
        fn(ctx, im->held, im->held_len);
    }
}

void pw_sim_impair_flush(pw_sim_impair *im, pw_sim_deliver_fn fn, void *ctx)
{
    if (im->holding) {
        im->holding = 0;
        fn(ctx, im->held, im->held_len);
    }
}

/* Parses a non-negative number of seconds ending at *end; returns it in ms or -1. */
static double seconds_ms(const char *text, char **end)
{
    errno = 0;
    double v = strtod(text, end);
    if (errno || *end == text || !(v >= 0.0 && v <= 1e9))
        return -1.0;
    return v * 1000.0;
}

int pw_sim_outage_parse(const char *text, int with_device, pw_sim_outage *out)
{
    char *end;
    memset(out, 0, sizeof(*out));
    if (with_device) {
        errno = 0;
        unsigned long id = strtoul(text, &end, 10);
        if (errno || end == text || *end != ':' || id == 0 || id > UINT32_MAX)
            return -1;
        out->device_id = (uint32_t)id;
        text = end + 1;
    }
    double start = seconds_ms(text, &end);
    if (start < 0 || *end != ':')
        return -1;
    double len = seconds_ms(end + 1, &end);
    if (len <= 0 || *end)
        return -1;
    out->start_ms = (uint64_t)llround(start);
    out->end_ms = out->start_ms + (uint64_t)llround(len);
    return 0;
}

int pw_sim_outage_active(const pw_sim_outage *o, size_t n, uint32_t device_id, uint64_t sim_ms)
{
    for (size_t i = 0; i < n; i++)
        if (o[i].device_id == device_id && sim_ms >= o[i].start_ms && sim_ms < o[i].end_ms)
            return 1;
    return 0;
}
