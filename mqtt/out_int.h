/* Shared by the pure files of state out (state_topics.c, ha.c): not part of the module's API. */
#ifndef PW_MQTT_OUT_INT_H
#define PW_MQTT_OUT_INT_H

#include "pw_mqtt_out.h"

/* A device's discovery payload, built again only when what it is made from changes. */
typedef struct mqtt_out__disc {
    char *key;     /* what it was built from, joined */
    char *payload; /* the JSON text */
} mqtt_out__disc;

struct pw_mqtt_out {
    pw_mqtt_out_opts opts;
    pw_mqtt_out_table *t;
    const pw_cfg *cfg; /* borrowed */
    size_t online;     /* chargers online in this round */
    mqtt_out__disc site;
    mqtt_out__disc *chargers, *nodes; /* cfg->n_chargers, cfg->n_nodes */
    size_t n_chargers, n_nodes;
};

/* ha.c: sets the discovery topic of the site, a node (its entry in the state document) or a
 * charger (its entry and its config), from the cache when nothing changed. */
void mqtt_out__ha_site(pw_mqtt_out *o, const json_t *head);
void mqtt_out__ha_node(pw_mqtt_out *o, size_t n, const json_t *node);
void mqtt_out__ha_charger(pw_mqtt_out *o, size_t i, const json_t *ch);
void mqtt_out__disc_clear(mqtt_out__disc *d);

/* A JSON string member, "" when absent or not a string. */
const char *mqtt_out__str(const json_t *obj, const char *key);

#endif
