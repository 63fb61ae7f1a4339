/* Watches the LAN interface the appliance sends on and reports when its address goes away, its
 * link goes down, or it comes back (a DHCP renewal with a new address, a cable replugged, Wi-Fi
 * reassociated), so the transports can join their groups again: a stale membership or a
 * sending address that no longer exists would silence the LAN without any error. Polling
 * getifaddrs every few seconds is enough for that and works the same in containers and network
 * namespaces. */
#ifndef PW_NET_WATCH_H
#define PW_NET_WATCH_H

#include <uv.h>

#define PW_NET_WATCH_POLL_MS 2000

enum pw_net_watch_event {
    PW_NET_WATCH_LOST = 1, /* the address is gone from the interface that carried it */
    PW_NET_WATCH_DOWN,     /* the interface is down */
    PW_NET_WATCH_UP,       /* the interface is up with addr (a new one, or back): join again */
};

/* addr and ifname are borrowed for the call. For PW_NET_WATCH_UP return 0 once joined on addr,
 * or non-zero to be called again at the next poll. */
typedef int (*pw_net_watch_cb)(void *ud, enum pw_net_watch_event ev, const char *addr,
                               const char *ifname);

typedef struct pw_net_watch pw_net_watch;

/* Starts polling the interface that has addr (the address in use). Never NULL. Stop with
 * pw_net_watch_stop, which closes the timer and frees the watch from the loop. */
pw_net_watch *pw_net_watch_start(uv_loop_t *loop, const char *addr, pw_net_watch_cb cb, void *ud);
void pw_net_watch_stop(pw_net_watch *w);

#endif
