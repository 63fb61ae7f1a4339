/* The tiers of resolution and the aggregate that turns records of any tier into min/avg/max:
 * shared by maintenance (building 1- and 15-minute records) and by downsampled queries. */
#include "store_internal.h"

#include <string.h>

const store__tier pw_store__tiers[PW_STORE__TIERS] = {
    [PW_STORE__TIER_RAW] = {PW_STORE__RAW_FIELDS, 1000, 60 * 1000},
    [PW_STORE__TIER_M1] = {PW_STORE__AGG_FIELDS, 60 * 1000, 3600 * 1000},
    [PW_STORE__TIER_M15] = {PW_STORE__AGG_FIELDS, 15 * 60 * 1000, 24 * 3600 * 1000},
};

/* Folds n samples with the given min, sum and max of field m into a. */
static void add_stat(store__acc *a, int m, int32_t min, int64_t sum, int32_t max)
{
    if (!a->n || min < a->min[m])
        a->min[m] = min;
    if (!a->n || max > a->max[m])
        a->max[m] = max;
    a->sum[m] += sum;
}

void store__acc_add(store__acc *a, int tier, const store__rec *r)
{
    uint32_t n;
    if (tier == PW_STORE__TIER_RAW) {
        n = 1;
        for (int m = 0; m < PW_STORE__MEASURED; m++)
            add_stat(a, m, r->v[m], r->v[m], r->v[m]);
    } else {
        if (r->v[PW_STORE__A_N] <= 0)
            return;
        n = (uint32_t)r->v[PW_STORE__A_N];
        for (int m = 0; m < PW_STORE__MEASURED; m++) {
            const int32_t *st = &r->v[PW_STORE__A_STATS + 3 * m];
            add_stat(a, m, st[0], (int64_t)st[1] * n, st[2]);
        }
    }
    if (!a->n || r->ts >= a->last_ts) {
        int raw = tier == PW_STORE__TIER_RAW;
        a->state = r->v[raw ? PW_STORE__F_STATE : PW_STORE__A_STATE];
        a->phases = r->v[raw ? PW_STORE__F_PHASES : PW_STORE__A_PHASES];
        a->last_ts = r->ts;
    }
    a->n += n;
}

/* Rounds sum / n to the nearest integer, halves away from zero. */
static int32_t round_div(int64_t sum, uint32_t n)
{
    int64_t half = n / 2;
    return (int32_t)(sum >= 0 ? (sum + half) / n : -((-sum + half) / n));
}

void store__acc_record(const store__acc *a, int64_t ts, store__rec *out)
{
    assert(a->n > 0);
    memset(out, 0, sizeof(*out));
    out->ts = ts;
    out->v[PW_STORE__A_N] = (int32_t)(a->n > INT32_MAX ? INT32_MAX : a->n);
    for (int m = 0; m < PW_STORE__MEASURED; m++) {
        int32_t *st = &out->v[PW_STORE__A_STATS + 3 * m];
        st[0] = a->min[m];
        st[1] = round_div(a->sum[m], a->n);
        st[2] = a->max[m];
    }
    out->v[PW_STORE__A_STATE] = a->state;
    out->v[PW_STORE__A_PHASES] = a->phases;
}
