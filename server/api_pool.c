/* The API worker pool: requests parsed on the loop, deferred (pw_web_defer), run on a libuv
 * worker with a read connection of its own, and completed back on the loop. SQLite is never
 * touched on the loop thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_int.h"
#include "pw_util.h"

/* Jobs in flight. libuv's pool has four threads and the history writer needs one of them; two
 * queries at a time keep the appliance responsive without starving it, and on a machine with
 * two cores or fewer one query at a time leaves a core to the control loop. */
#define POOL_WORKERS 2
#define POOL_QUEUE   32 /* requests waiting beyond these are refused with 503 */

/* ---- the worker pool ---- */

/* One request's work, queued on the loop, run on a worker, answered on the loop. */
typedef struct pw_api_job {
    uv_work_t req;
    pw_api_pool *pool;
    pw_web_pending *pending;
    pw_api_work_fn fn;
    void *arg;
    void (*arg_free)(void *arg);
    bool needs_reader;
    int slot;
    pw_web_response resp;
    struct pw_api_job *next;
} pw_api_job;

struct pw_api_pool {
    uv_loop_t *loop;
    char db_path[1100];
    /* Reader slots: a slot and its connection belong to the one job that runs in it, handed
     * over by uv_queue_work and given back in its after-work callback, so no lock is needed. */
    pw_store_reader *readers[POOL_WORKERS];
    bool busy[POOL_WORKERS];
    unsigned workers; /* slots in use: 1..POOL_WORKERS */
    unsigned running;
    pw_api_job *head, *tail;
    size_t queued;
    uint64_t done, refused;
};

pw_api_pool *pw_api_pool_new(uv_loop_t *loop, const char *db_path)
{
    pw_api_pool *p = pw_xcalloc(1, sizeof *p);
    p->loop = loop;
    pw_strlcpy(p->db_path, db_path, sizeof p->db_path);
    p->workers = uv_available_parallelism() > 2 ? POOL_WORKERS : 1;
    return p;
}

void pw_api_pool_free(pw_api_pool *p)
{
    if (!p)
        return;
    if (p->running || p->head)
        pw_error("server", "API pool freed with %u queries running and %zu waiting", p->running,
                 p->queued);
    for (size_t i = 0; i < POOL_WORKERS; i++)
        pw_store_reader_close(p->readers[i]);
    free(p);
}

static void job_free(pw_api_job *job)
{
    if (job->arg_free)
        job->arg_free(job->arg);
    free(job);
}

static void job_work(uv_work_t *req)
{
    pw_worker_yield_priority();
    pw_api_job *job = req->data;
    pw_api_pool *pool = job->pool;
    pw_store_reader **reader = &pool->readers[job->slot];
    if (job->needs_reader && !*reader) {
        char err[512];
        if (pw_store_reader_open(reader, pool->db_path, err, sizeof err) != 0) {
            pw_api_set_error(&job->resp, 503, NULL, err);
            return;
        }
    }
    job->fn(job->arg, job->needs_reader ? *reader : NULL, &job->resp);
}

static void pool_dispatch(pw_api_pool *pool);

static void job_done(uv_work_t *req, int status)
{
    pw_api_job *job = req->data;
    pw_api_pool *pool = job->pool;
    if (status != 0) {
        free(job->resp.body);
        memset(&job->resp, 0, sizeof job->resp);
        pw_api_set_error(&job->resp, 503, NULL, "the query was cancelled");
    }
    pool->busy[job->slot] = false;
    pool->running--;
    pool->done++;
    pw_web_complete(job->pending, &job->resp);
    job_free(job);
    pool_dispatch(pool);
}

/* Starts waiting jobs while a slot is free; a job whose client has left is answered (into the
 * void) without running. */
static void pool_dispatch(pw_api_pool *pool)
{
    while (pool->head && pool->running < pool->workers) {
        pw_api_job *job = pool->head;
        pool->head = job->next;
        if (!pool->head)
            pool->tail = NULL;
        pool->queued--;
        if (!pw_web_pending_alive(job->pending)) {
            pw_api_set_error(&job->resp, 503, NULL, "the client left");
            pw_web_complete(job->pending, &job->resp);
            job_free(job);
            continue;
        }
        int slot = 0;
        while (pool->busy[slot])
            slot++;
        job->slot = slot;
        job->req.data = job;
        int rc = uv_queue_work(pool->loop, &job->req, job_work, job_done);
        if (rc != 0) {
            pw_api_set_error(&job->resp, 500, NULL, uv_strerror(rc));
            pw_web_complete(job->pending, &job->resp);
            job_free(job);
            continue;
        }
        pool->busy[slot] = true;
        pool->running++;
    }
}

bool pw_api_submit(pw_api_pool *pool, const pw_web_request *req, pw_web_response *resp,
                   bool needs_reader, pw_api_work_fn fn, void *arg, void (*arg_free)(void *arg))
{
    if (!pool || pool->queued >= POOL_QUEUE) {
        if (pool)
            pool->refused++;
        if (arg_free)
            arg_free(arg);
        pw_api_set_error(resp, 503, NULL, "busy with other queries: try again in a moment");
        return false;
    }
    pw_api_job *job = pw_xcalloc(1, sizeof *job);
    job->pool = pool;
    job->fn = fn;
    job->arg = arg;
    job->arg_free = arg_free;
    job->needs_reader = needs_reader;
    job->resp.status = 200;
    job->resp.content_type = "application/json";
    job->pending = pw_web_defer(req);
    if (pool->tail)
        pool->tail->next = job;
    else
        pool->head = job;
    pool->tail = job;
    pool->queued++;
    pool_dispatch(pool);
    return true;
}

/* The decoded value of query argument name (malloc'd; caller frees), or NULL when absent. A
 * decoded value is never longer than the query itself, so it always fits. */
char *pw_api_arg(const pw_web_request *req, const char *name)
{
    size_t size = strlen(req->query) + 1;
    char *v = pw_xmalloc(size);
    if (pw_web_query_param(req->query, name, v, size) < 0) {
        free(v);
        return NULL;
    }
    return v;
}
