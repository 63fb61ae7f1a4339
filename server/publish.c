/* The live state document, a slice at a time. With a thousand chargers the document takes
 * milliseconds to build and dump; built in one go it would hold up every datagram that arrives
 * meanwhile, meter readings included. So the chargers' entries are built in slices from an idle
 * handle, with the loop polling the sockets in between, and spliced into the rest of the
 * document when the last slice is done. */
#include <stdlib.h>
#include <string.h>

#include "app_int.h"
#include "pw_util.h"

#define STATE_SLICE      50 /* chargers per slice, well under a millisecond */
#define STATE_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(8))

struct pw_publisher {
    uv_idle_t idle;
    pw_publish_src src;
    uint64_t now; /* the document's time */
    size_t next;  /* next charger to add */
    char *head;   /* the document without its chargers, dumped; NULL when idle */
    char *text;   /* the chargers' entries so far, comma separated */
    size_t len, cap;
};

static void text_append(pw_publisher *p, const char *s, size_t n)
{
    if (p->len + n + 1 > p->cap) {
        p->cap = (p->len + n + 1) * 2;
        p->text = pw_xrealloc(p->text, p->cap);
    }
    memcpy(p->text + p->len, s, n);
    p->len += n;
    p->text[p->len] = '\0';
}

void pw_publisher_reset(pw_publisher *p)
{
    free(p->head);
    p->head = NULL;
    p->len = 0;
    p->next = 0;
    if (!uv_is_closing((uv_handle_t *)&p->idle))
        uv_idle_stop(&p->idle);
}

/* Adds the next slice of chargers. Returns true when every charger is in. */
static bool publish_slice(pw_publisher *p)
{
    size_t count = p->src.count(p->src.ud);
    size_t end = p->next + STATE_SLICE < count ? p->next + STATE_SLICE : count;
    if (p->next >= end)
        return true;
    json_t *arr = json_array();
    for (size_t i = p->next; i < end; i++)
        json_array_append_new(arr, p->src.item(p->src.ud, i, p->now));
    char *s = json_dumps(arr, STATE_JSON_FLAGS);
    json_decref(arr);
    if (s) {
        size_t n = strlen(s); /* "[...]": the brackets are not copied */
        if (p->len)
            text_append(p, ",", 1);
        text_append(p, s + 1, n - 2);
        free(s);
    }
    p->next = end;
    return end == count;
}

static void publish_finish(pw_publisher *p)
{
    static const char open[] = ",\"chargers\":[", close[] = "]}";
    size_t head = strlen(p->head) - 1; /* without the closing brace */
    size_t total = head + sizeof open - 1 + p->len + sizeof close - 1;
    char *doc = pw_xmalloc(total + 1);
    memcpy(doc, p->head, head);
    memcpy(doc + head, open, sizeof open - 1);
    memcpy(doc + head + sizeof open - 1, p->text ? p->text : "", p->len);
    memcpy(doc + total - (sizeof close - 1), close, sizeof close);
    pw_publisher_reset(p);
    p->src.done(p->src.ud, doc, total);
}

static void on_idle(uv_idle_t *idle)
{
    pw_publisher *p = idle->data;
    if (publish_slice(p))
        publish_finish(p);
}

void pw_publisher_start(pw_publisher *p, uint64_t now)
{
    pw_publisher_reset(p);
    json_t *head = p->src.head(p->src.ud, now);
    p->head = json_dumps(head, STATE_JSON_FLAGS);
    json_decref(head);
    if (!p->head)
        return;
    p->now = now;
    if (publish_slice(p))
        publish_finish(p);
    else
        uv_idle_start(&p->idle, on_idle);
}

pw_publisher *pw_publisher_new(uv_loop_t *loop, const pw_publish_src *src)
{
    pw_publisher *p = pw_xcalloc(1, sizeof *p);
    p->src = *src;
    uv_idle_init(loop, &p->idle);
    p->idle.data = p;
    return p;
}

static void on_closed(uv_handle_t *h)
{
    pw_publisher *p = h->data;
    free(p->text);
    free(p);
}

void pw_publisher_close(pw_publisher *p)
{
    if (!p)
        return;
    pw_publisher_reset(p);
    uv_close((uv_handle_t *)&p->idle, on_closed);
}
