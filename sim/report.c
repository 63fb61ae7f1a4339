/* The ground-truth report: one JSON line per simulated second with every charger's state,
 * currents, offer and lease, and every node's true load per line against its limit, for tests
 * that compare the appliance's view with reality. */
#include <jansson.h>
#include <math.h>
#include <sys/time.h>

#include "sim_int.h"

static const char *const iec_names[] = {"A", "B", "C"};

/* Amperes rounded to 10 mA: enough for comparisons, short lines. */
static json_t *amps(double a)
{
    return json_real(round(a * 100.0) / 100.0);
}

static json_t *line_array(const double v[PW_LINES])
{
    json_t *arr = json_array();
    for (int l = 0; l < PW_LINES; l++)
        json_array_append_new(arr, amps(v[l]));
    return arr;
}

static json_t *ms_array(const double v[PW_LINES])
{
    json_t *arr = json_array();
    for (int l = 0; l < PW_LINES; l++)
        json_array_append_new(arr, json_integer((json_int_t)v[l]));
    return arr;
}

static json_t *car_json(const pw_sim *m, int car)
{
    pw_sim_car_view cv;
    if (car < 0)
        return json_null();
    pw_sim_car(m, (size_t)car, &cv);
    return json_pack("{s:i, s:o, s:o, s:f, s:f, s:b, s:I}", "phases", cv.phases, "max_a",
                     amps(cv.max_a), "current_a", amps(cv.current_a), "soc",
                     round(cv.soc * 1000.0) / 1000.0, "delivered_wh", round(cv.delivered_wh),
                     "full", cv.full, "depart_ms", (json_int_t)cv.depart_ms);
}

static json_t *chargers_json(const sim_app *app)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < app->cfg->n_chargers; i++) {
        pw_sim_charger_view v;
        pw_sim_charger(app->model, i, &v);
        json_t *o = json_pack(
            "{s:s, s:I, s:s, s:o, s:o, s:o, s:i, s:s, s:I, s:I, s:o}", "id",
            app->cfg->chargers[i].id, "device_id", (json_int_t)app->cfg->charger_links[i].device_id,
            "state", iec_names[v.iec], "current_a", line_array(v.current_a), "line_a",
            line_array(v.line_a), "offered_a", amps(v.offered_a), "phases", v.phases, "lease",
            pw_sim_lease_name(v.lease), "alloc_seq", (json_int_t)v.alloc_seq, "session_id",
            (json_int_t)v.session_id, "car", car_json(app->model, v.car));
        json_array_append_new(arr, o);
    }
    return arr;
}

static json_t *nodes_json(const sim_app *app)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < app->cfg->n_nodes; i++) {
        pw_sim_node_view v;
        pw_sim_node(app->model, i, &v);
        json_t *o =
            json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "id", app->cfg->nodes[i].id, "load_a",
                      line_array(v.load_a), "base_a", line_array(v.base_a), "limit_a",
                      line_array(v.limit_a), "over_ms", ms_array(v.over_ms), "over_beyond_ms",
                      ms_array(v.over_beyond_ms), "max_over_a", line_array(v.max_over_a));
        json_array_append_new(arr, o);
    }
    return arr;
}

static json_int_t wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (json_int_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

int sim_report_write(sim_app *app)
{
    json_t *line =
        json_pack("{s:I, s:I, s:o, s:o}", "t_ms", (json_int_t)pw_sim_now(app->model), "wall_ms",
                  wall_ms(), "chargers", chargers_json(app), "nodes", nodes_json(app));
    int rc = -1;
    if (line) {
        rc = json_dumpf(line, app->report, JSON_COMPACT | JSON_REAL_PRECISION(10));
        json_decref(line);
    }
    /* Flushed per line: tests read the file while the simulator runs. */
    if (rc == 0 && (fputc('\n', app->report) == EOF || fflush(app->report) != 0))
        rc = -1;
    return rc;
}
