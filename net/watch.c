/* The LAN interface watch (pw_net_watch.h). */
#include "pw_net_watch.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "pw_util.h"

/* What the interface looked like at one poll. */
typedef struct nw_view {
    bool found;                 /* the interface has an IPv4 address */
    bool up;                    /* administratively up and the link running */
    char addr[INET_ADDRSTRLEN]; /* that address */
    char ifname[IF_NAMESIZE];
} nw_view;

struct pw_net_watch {
    uv_timer_t timer;
    pw_net_watch_cb cb;
    void *ud;
    char addr[INET_ADDRSTRLEN]; /* the address in use */
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

static void on_poll(uv_timer_t *t)
{
    pw_net_watch *w = t->data;
    nw_view v;
    if (look(w->addr, w->last.ifname, &v) != 0)
        return;
    if (v.found == w->last.found && v.up == w->last.up && strcmp(v.addr, w->last.addr) == 0)
        return;
    if (!v.found) {
        w->cb(w->ud, PW_NET_WATCH_LOST, w->addr, w->last.ifname);
    } else if (!v.up) {
        w->cb(w->ud, PW_NET_WATCH_DOWN, v.addr, v.ifname);
    } else if (w->cb(w->ud, PW_NET_WATCH_UP, v.addr, v.ifname) == 0) {
        pw_strlcpy(w->addr, v.addr, sizeof w->addr);
    } else {
        v.found = false; /* not joined: forget what we saw so that the next poll tries again */
    }
    if (v.found || !w->last.ifname[0]) {
        w->last = v;
    } else {
        /* Keep the interface name: a new address will appear there. */
        w->last.found = w->last.up = false;
        w->last.addr[0] = '\0';
    }
}

pw_net_watch *pw_net_watch_start(uv_loop_t *loop, const char *addr, pw_net_watch_cb cb, void *ud)
{
    pw_net_watch *w = pw_xcalloc(1, sizeof *w);
    w->cb = cb;
    w->ud = ud;
    pw_strlcpy(w->addr, addr, sizeof w->addr);
    look(w->addr, "", &w->last);
    uv_timer_init(loop, &w->timer);
    w->timer.data = w;
    uv_timer_start(&w->timer, on_poll, PW_NET_WATCH_POLL_MS, PW_NET_WATCH_POLL_MS);
    return w;
}

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

void pw_net_watch_stop(pw_net_watch *w)
{
    if (w)
        uv_close((uv_handle_t *)&w->timer, on_closed);
}
