/* The change table of state out: every retained topic with its latest value, and what is due to
 * the broker. A topic is due when its value differs from the one the broker holds; it goes out at
 * once, or a second after its last message when it changed within that second, and then with the
 * latest value only. Two queues keep next() cheap with many thousand topics: "ready" (due and
 * free to go, in the order they became due) and "recent" (sent within the last second, in the
 * order they were sent, so the oldest is at its head). */
#include <stdlib.h>
#include <string.h>

#include "pw_mqtt_out.h"
#include "pw_util.h"

#define DEFAULT_MAX_TOPICS 16384

typedef struct entry entry;

/* An intrusive doubly linked queue. */
typedef struct link {
    entry *prev, *next;
} link;

typedef struct queue {
    entry *head, *tail;
} queue;

struct entry {
    entry *chain; /* next in the hash bucket */
    char *topic;
    char *value;
    uint64_t sent_ms; /* when it last went out */
    uint32_t round;   /* the last round that set it */
    bool dirty;       /* the broker does not have value */
    bool retired;     /* left: cleared once with an empty payload, then forgotten */
    bool in_ready;    /* in t->ready */
    bool in_recent;   /* in t->recent: sent less than a second ago */
    link ready, recent;
};

struct pw_mqtt_out_table {
    entry **buckets;
    size_t n_buckets, count, max;
    uint32_t round;
    queue ready, recent;
};

/* ---- queues ---- */

#define QUEUE_PUSH(q, e, field)                                                                    \
    do {                                                                                           \
        (e)->field.prev = (q)->tail;                                                               \
        (e)->field.next = NULL;                                                                    \
        if ((q)->tail)                                                                             \
            (q)->tail->field.next = (e);                                                           \
        else                                                                                       \
            (q)->head = (e);                                                                       \
        (q)->tail = (e);                                                                           \
    } while (0)

#define QUEUE_REMOVE(q, e, field)                                                                  \
    do {                                                                                           \
        if ((e)->field.prev)                                                                       \
            (e)->field.prev->field.next = (e)->field.next;                                         \
        else                                                                                       \
            (q)->head = (e)->field.next;                                                           \
        if ((e)->field.next)                                                                       \
            (e)->field.next->field.prev = (e)->field.prev;                                         \
        else                                                                                       \
            (q)->tail = (e)->field.prev;                                                           \
        (e)->field.prev = (e)->field.next = NULL;                                                  \
    } while (0)

static void ready_add(pw_mqtt_out_table *t, entry *e)
{
    if (!e->in_ready && !e->in_recent) {
        QUEUE_PUSH(&t->ready, e, ready);
        e->in_ready = true;
    }
}

static void ready_drop(pw_mqtt_out_table *t, entry *e)
{
    if (e->in_ready) {
        QUEUE_REMOVE(&t->ready, e, ready);
        e->in_ready = false;
    }
}

static void recent_drop(pw_mqtt_out_table *t, entry *e)
{
    if (e->in_recent) {
        QUEUE_REMOVE(&t->recent, e, recent);
        e->in_recent = false;
    }
}

/* Topics whose second is over leave "recent"; a due one becomes ready. */
static void expire(pw_mqtt_out_table *t, uint64_t now)
{
    entry *e;
    while ((e = t->recent.head) && e->sent_ms + PW_MQTT_OUT_MIN_GAP_MS <= now) {
        recent_drop(t, e);
        if (e->dirty)
            ready_add(t, e);
    }
}

/* ---- the hash ---- */

static size_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return (size_t)h;
}

static entry **slot(const pw_mqtt_out_table *t, const char *topic)
{
    entry **p = &t->buckets[hash(topic) & (t->n_buckets - 1)];
    while (*p && strcmp((*p)->topic, topic) != 0)
        p = &(*p)->chain;
    return p;
}

static void grow(pw_mqtt_out_table *t)
{
    size_t n = t->n_buckets * 2;
    entry **b = pw_xcalloc(n, sizeof *b);
    for (size_t i = 0; i < t->n_buckets; i++) {
        for (entry *e = t->buckets[i], *next; e; e = next) {
            next = e->chain;
            entry **p = &b[hash(e->topic) & (n - 1)];
            e->chain = *p;
            *p = e;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->n_buckets = n;
}

static void entry_free(pw_mqtt_out_table *t, entry *e)
{
    entry **p = slot(t, e->topic);
    *p = e->chain;
    ready_drop(t, e);
    recent_drop(t, e);
    free(e->topic);
    free(e->value);
    free(e);
    t->count--;
}

/* ---- the table ---- */

pw_mqtt_out_table *pw_mqtt_out_table_new(size_t max_topics)
{
    pw_mqtt_out_table *t = pw_xcalloc(1, sizeof *t);
    t->max = max_topics ? max_topics : DEFAULT_MAX_TOPICS;
    t->n_buckets = 64;
    t->buckets = pw_xcalloc(t->n_buckets, sizeof *t->buckets);
    return t;
}

void pw_mqtt_out_table_free(pw_mqtt_out_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_buckets; i++) {
        for (entry *e = t->buckets[i], *next; e; e = next) {
            next = e->chain;
            free(e->topic);
            free(e->value);
            free(e);
        }
    }
    free(t->buckets);
    free(t);
}

int pw_mqtt_out_table_set(pw_mqtt_out_table *t, const char *topic, const char *value)
{
    size_t tlen = strlen(topic), vlen = strlen(value);
    if (!tlen || tlen >= PW_MQTT_OUT_TOPIC_LEN || vlen > PW_MQTT_OUT_VALUE_MAX)
        return -1;
    entry **p = slot(t, topic);
    entry *e = *p;
    if (!e) {
        if (t->count >= t->max)
            return -1;
        e = pw_xcalloc(1, sizeof *e);
        e->topic = pw_xstrdup(topic);
        e->value = pw_xstrdup(value);
        e->dirty = true;
        *p = e;
        t->count++;
        e->round = t->round;
        ready_add(t, e);
        if (t->count > t->n_buckets)
            grow(t);
        return 0;
    }
    e->round = t->round;
    if (!e->retired && strcmp(e->value, value) == 0)
        return 0;
    /* A retired topic set again before its clearing went out is back: the broker still has
     * the old value, so the new one is due like any change. */
    e->retired = false;
    free(e->value);
    e->value = pw_xstrdup(value);
    e->dirty = true;
    ready_add(t, e);
    return 0;
}

const char *pw_mqtt_out_table_get(const pw_mqtt_out_table *t, const char *topic)
{
    const entry *e = *slot(t, topic);
    return e && !e->retired ? e->value : NULL;
}

size_t pw_mqtt_out_table_count(const pw_mqtt_out_table *t)
{
    return t->count;
}

void pw_mqtt_out_table_round_begin(pw_mqtt_out_table *t)
{
    t->round++;
}

size_t pw_mqtt_out_table_round_end(pw_mqtt_out_table *t)
{
    size_t left = 0;
    for (size_t i = 0; i < t->n_buckets; i++) {
        for (entry *e = t->buckets[i]; e; e = e->chain) {
            if (e->round == t->round || e->retired)
                continue;
            e->retired = true;
            left++;
            e->value[0] = '\0';
            e->dirty = true;
            ready_add(t, e);
        }
    }
    return left;
}

void pw_mqtt_out_table_resend(pw_mqtt_out_table *t, const char *prefix)
{
    size_t n = strlen(prefix);
    for (size_t i = 0; i < t->n_buckets; i++) {
        for (entry *e = t->buckets[i]; e; e = e->chain) {
            if (strncmp(e->topic, prefix, n) == 0) {
                e->dirty = true;
                ready_add(t, e);
            }
        }
    }
}

void pw_mqtt_out_table_reconnected(pw_mqtt_out_table *t)
{
    entry *e;
    while ((e = t->recent.head))
        recent_drop(t, e);
    for (size_t i = 0; i < t->n_buckets; i++) {
        for (e = t->buckets[i]; e; e = e->chain) {
            e->dirty = true;
            ready_add(t, e);
        }
    }
}

bool pw_mqtt_out_table_next(pw_mqtt_out_table *t, uint64_t now, const char **topic,
                            const char **value)
{
    expire(t, now);
    entry *e = t->ready.head;
    if (!e)
        return false;
    *topic = e->topic;
    *value = e->value;
    return true;
}

void pw_mqtt_out_table_sent(pw_mqtt_out_table *t, uint64_t now)
{
    entry *e = t->ready.head;
    if (!e)
        return;
    if (e->retired) {
        entry_free(t, e);
        return;
    }
    ready_drop(t, e);
    e->dirty = false;
    e->sent_ms = now;
    QUEUE_PUSH(&t->recent, e, recent);
    e->in_recent = true;
}

uint64_t pw_mqtt_out_table_deadline(const pw_mqtt_out_table *t)
{
    if (t->ready.head)
        return 0;
    /* "recent" is in the order of sending: its first due topic is the earliest to come free. */
    for (const entry *e = t->recent.head; e; e = e->recent.next)
        if (e->dirty)
            return e->sent_ms + PW_MQTT_OUT_MIN_GAP_MS;
    return UINT64_MAX;
}

size_t pw_mqtt_out_table_pending(const pw_mqtt_out_table *t)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n_buckets; i++)
        for (const entry *e = t->buckets[i]; e; e = e->chain)
            n += e->dirty;
    return n;
}
