/* Compact encoding of timestamped integer records: each record stores only what changed since the
 * previous one (a bit mask, then zigzag varint deltas), so an idle charger costs one byte a second
 * and a charging one a few. Used for sealed blocks and for single pending rows alike. */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

#include "pw_util.h"

static uint64_t zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int64_t unzigzag(uint64_t u)
{
    return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

/* Two's complement wrap-around: corrupt input must decode to garbage, never to undefined
 * behaviour. */
static int64_t wrap_add(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a + (uint64_t)b);
}

static int64_t wrap_sub(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a - (uint64_t)b);
}

static void buf_reserve(store__buf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + more)
        cap *= 2;
    b->p = pw_xrealloc(b->p, cap);
    b->cap = cap;
}

static void put_uvarint(store__buf *b, uint64_t v)
{
    buf_reserve(b, 10);
    while (v >= 0x80) {
        b->p[b->len++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b->p[b->len++] = (uint8_t)v;
}

/* Returns 0 and the value, or -1 when the input ends early or the varint is over-long. */
static int get_uvarint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*p >= end)
            return -1;
        uint8_t byte = *(*p)++;
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

void store__buf_free(store__buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

void store__enc_init(store__enc *e, int64_t t0, int nfields)
{
    assert(nfields > 0 && nfields <= STORE_MAX_FIELDS);
    e->out.len = 0;
    e->prev_ts = t0;
    e->prev_dt = 0;
    e->nfields = nfields;
    e->count = 0;
    memset(e->prev, 0, sizeof(e->prev));
}

void store__enc_add(store__enc *e, const store__rec *r)
{
    int64_t dt = wrap_sub(r->ts, e->prev_ts);
    uint64_t mask = dt != e->prev_dt ? 1u : 0u;
    for (int k = 0; k < e->nfields; k++)
        if (r->v[k] != e->prev[k])
            mask |= (uint64_t)1 << (k + 1);
    put_uvarint(&e->out, mask);
    if (mask & 1)
        put_uvarint(&e->out, zigzag(wrap_sub(dt, e->prev_dt)));
    for (int k = 0; k < e->nfields; k++)
        if (mask & ((uint64_t)1 << (k + 1)))
            put_uvarint(&e->out, zigzag((int64_t)r->v[k] - e->prev[k]));
    e->prev_dt = dt;
    e->prev_ts = r->ts;
    memcpy(e->prev, r->v, sizeof(e->prev[0]) * (size_t)e->nfields);
    e->count++;
}

void store__dec_init(store__dec *d, const void *data, size_t len, int64_t t0, int nfields)
{
    assert(nfields > 0 && nfields <= STORE_MAX_FIELDS);
    d->p = data;
    d->end = d->p + len;
    d->prev_ts = t0;
    d->prev_dt = 0;
    d->nfields = nfields;
    memset(d->prev, 0, sizeof(d->prev));
}

int store__dec_next(store__dec *d, store__rec *r)
{
    if (d->p == d->end)
        return 0;
    uint64_t mask, u;
    if (get_uvarint(&d->p, d->end, &mask) || mask >> (d->nfields + 1))
        return -1;
    if (mask & 1) {
        if (get_uvarint(&d->p, d->end, &u))
            return -1;
        d->prev_dt = wrap_add(d->prev_dt, unzigzag(u));
    }
    for (int k = 0; k < d->nfields; k++) {
        if (!(mask & ((uint64_t)1 << (k + 1))))
            continue;
        if (get_uvarint(&d->p, d->end, &u))
            return -1;
        int64_t v = (int64_t)d->prev[k] + unzigzag(u);
        if (v < INT32_MIN || v > INT32_MAX)
            return -1;
        d->prev[k] = (int32_t)v;
    }
    d->prev_ts = wrap_add(d->prev_ts, d->prev_dt);
    r->ts = d->prev_ts;
    memset(r->v, 0, sizeof(r->v));
    memcpy(r->v, d->prev, sizeof(d->prev[0]) * (size_t)d->nfields);
    return 1;
}
