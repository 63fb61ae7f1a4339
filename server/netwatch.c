/* Watches the LAN interface the appliance sends on and joins the multicast group again when its
 * address changes (a DHCP renewal with a new address) or its link comes back (a cable replugged,
 * Wi-Fi reassociated): a stale membership or a sending address that no longer exists would
 * silence the LAN without any error. Polling getifaddrs every few seconds is enough for that
 * and works the same in containers and network namespaces. */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>

#include "app_int.h"
#include "pw_util.h"

#define NETWATCH_POLL_MS 2000

/* What the interface looked like at one poll. */
typedef struct nw_view {
    bool found;                 /* the interface has an IPv4 address */
    bool up;                    /* administratively up and the link running */
    char addr[INET_ADDRSTRLEN]; /* that address */
    char ifname[IF_NAMESIZE];
} nw_view;

struct pw_netwatch {
    uv_timer_t timer;
    pw_app *app;
    nw_view last;
};

static bool is_up(unsigned flags)
{
    return (flags & IFF_UP) && (flags & IFF_RUNNING);
}

/* Fills v from ifa if it is an IPv4 address. Returns true if it was. */
static bool take(const struct ifaddrs *ifa, nw_view *v)
{
    if (!ifa->ifa_addr || ifa->ifa_addr->sa_family != AF_INET)
        return false;
    const struct sockaddr_in *sin = (const struct sockaddr_in *)ifa->ifa_addr;
    inet_ntop(AF_INET, &sin->sin_addr, v->addr, sizeof v->addr);
    pw_strlcpy(v->ifname, ifa->ifa_name, sizeof v->ifname);
    v->up = is_up(ifa->ifa_flags);
    v->found = true;
    return true;
}

/* Looks for the address in use; if it is gone, for another IPv4 address on the interface that
 * carried it, which is where a DHCP renewal puts the new one. Returns 0, or -1 if the system
 * could not list its interfaces (nothing is concluded from that). */
static int look(const char *addr, const char *ifname, nw_view *v)
{
    struct ifaddrs *ifs;
    memset(v, 0, sizeof *v);
    if (getifaddrs(&ifs) != 0)
        return -1;
    for (const struct ifaddrs *ifa = ifs; ifa && !v->found; ifa = ifa->ifa_next) {
        nw_view cand = {0};
        if (take(ifa, &cand) && strcmp(cand.addr, addr) == 0)
            *v = cand;
    }
    for (const struct ifaddrs *ifa = ifs; ifa && !v->found && ifname[0]; ifa = ifa->ifa_next)
        if (strcmp(ifa->ifa_name, ifname) == 0)
            take(ifa, v);
    freeifaddrs(ifs);
    return 0;
}

static int rejoin(pw_app *app, const char *addr)
{
    int rc = pw_net_rejoin(app->net, addr);
    if (rc == 0 && app->defa_net)
        rc = pw_net_rejoin(app->defa_net, addr);
    return rc;
}

static void on_poll(uv_timer_t *t)
{
    pw_netwatch *w = t->data;
    pw_app *app = w->app;
    nw_view v;
    if (app->stopping || !app->net || look(pw_net_interface(app->net), w->last.ifname, &v) != 0)
        return;
    if (v.found == w->last.found && v.up == w->last.up && strcmp(v.addr, w->last.addr) == 0)
        return;
    if (!v.found) {
        pw_control_log_event(app, "network_lost", w->last.ifname,
                             "address %s is gone from interface %s; waiting for it to return",
                             pw_net_interface(app->net), w->last.ifname);
    } else if (!v.up) {
        pw_control_log_event(app, "network_down", v.ifname, "interface %s (%s) is down", v.ifname,
                             v.addr);
    } else if (rejoin(app, v.addr) == 0) {
        app->counters.rejoins++;
        pw_control_log_event(app, "network_rejoin", v.ifname,
                             "joined the group again on %s (interface %s)", v.addr, v.ifname);
    } else {
        /* Not joined: forget what we saw so that the next poll tries again. */
        v.found = false;
    }
    if (v.found || !w->last.ifname[0]) {
        w->last = v;
    } else {
        /* Keep the interface name: a new address will appear there. */
        w->last.found = w->last.up = false;
        w->last.addr[0] = '\0';
    }
}

void pw_netwatch_start(pw_app *app)
{
    pw_netwatch *w = pw_xcalloc(1, sizeof *w);
    w->app = app;
    if (app->net)
        look(pw_net_interface(app->net), "", &w->last);
    uv_timer_init(&app->loop, &w->timer);
    w->timer.data = w;
    uv_timer_start(&w->timer, on_poll, NETWATCH_POLL_MS, NETWATCH_POLL_MS);
    app->netwatch = w;
}

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

void pw_netwatch_stop(pw_app *app)
{
    if (!app->netwatch)
        return;
    uv_close((uv_handle_t *)&app->netwatch->timer, on_closed);
    app->netwatch = NULL;
}
