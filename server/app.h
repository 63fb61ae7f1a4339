/* The appliance: one libuv loop that hosts the LAN sockets, the control tick, the history writer
 * and the web front, wired together. */
#ifndef PW_APP_H
#define PW_APP_H

#include <stdbool.h>

typedef struct pw_app_opts {
    const char *data_dir;    /* config, database and key live here unless named ("data") */
    const char *config_path; /* NULL = <data_dir>/config.json */
    const char *db_path;     /* NULL = <data_dir>/phasewise.db */
    const char *http;        /* "ADDR:PORT" overriding the config, or NULL */
    bool demo;               /* run the simulated facility beside the appliance */
    const char *sim_path;    /* phasewise-sim for the demo */
    /* Without a config (commissioning mode): the LAN interface "IFADDR[:PORT]" and the OCPP
     * central system's "ADDR:PORT" until the first config is saved, or NULL (loopback). */
    const char *lan;
    const char *ocpp;
} pw_app_opts;

/* Runs the appliance until SIGINT or SIGTERM. Returns the process exit status: 0 after a clean
 * shutdown, 1 when it could not start (the reason is logged). */
int pw_app_run(const pw_app_opts *opts);

#endif
