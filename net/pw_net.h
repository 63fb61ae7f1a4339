/* A UDP multicast socket on a libuv loop, shared by the appliance and the simulator: bound to the
 * group's port with SO_REUSEADDR so several processes on one host can listen together, joined on
 * one interface address, sending with that interface, a TTL and loopback on. */
#ifndef PW_NET_H
#define PW_NET_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define PW_NET_DEFAULT_INTERFACE "127.0.0.1"
#define PW_NET_DEFAULT_TTL       1
#define PW_NET_MAX_DATAGRAM      2048 /* the largest datagram sent or delivered to recv_cb */

enum pw_net_err {
    PW_NET_OK = 0,
    PW_NET_E_ADDRESS = -1,   /* not a dotted-quad IPv4 address, or the group is not multicast */
    PW_NET_E_NOT_LOCAL = -2, /* the interface address is not an address of this host */
    PW_NET_E_SOCKET = -3,    /* a socket operation failed; the log has the system's reason */
    PW_NET_E_SIZE = -4,      /* datagram empty or larger than PW_NET_MAX_DATAGRAM */
    PW_NET_E_CLOSING = -5,   /* the socket is being closed */
};

/* Text for a pw_net_err; static storage. */
const char *pw_net_strerror(int err);

typedef struct pw_net pw_net;

/* Called for every datagram of at most PW_NET_MAX_DATAGRAM bytes received on the group,
 * including the ones this process sent (loop is on). buf is borrowed for the duration of the
 * call. */
typedef void (*pw_net_recv_cb)(pw_net *net, const uint8_t *buf, size_t len,
                               const struct sockaddr_in *from, void *user);
/* Called instead of recv_cb for a datagram longer than PW_NET_MAX_DATAGRAM, with its length in
 * bytes (the payload is not passed on): the caller counts it as refused input rather than have
 * it vanish. */
typedef void (*pw_net_oversize_cb)(pw_net *net, size_t len, const struct sockaddr_in *from,
                                   void *user);
/* Called once the socket is closed and its memory freed; net must not be used any more. */
typedef void (*pw_net_close_cb)(void *user);

typedef struct pw_net_opts {
    const char *group;     /* IPv4 multicast group, dotted quad */
    uint16_t port;         /* the group's port; also the local port */
    const char *interface; /* local IPv4 address to join and send on; NULL = 127.0.0.1 */
    uint8_t ttl;           /* multicast TTL; 0 = PW_NET_DEFAULT_TTL */
    /* Datagrams over PW_NET_MAX_DATAGRAM, with the user pointer of pw_net_open; NULL: they are
     * only counted in pw_net_stats.rx_oversize. */
    pw_net_oversize_cb oversize_cb;
} pw_net_opts;

/* Opens the socket on loop, joins the group and starts receiving. Returns 0 and *out (free it
 * with pw_net_close), or a negative pw_net_err after logging a message a person can act on
 * (component "net"); nothing stays open on the loop on failure. */
int pw_net_open(uv_loop_t *loop, const pw_net_opts *opts, pw_net_recv_cb recv_cb, void *user,
                pw_net **out);

/* Sends one datagram to the group. The data is copied if it cannot leave at once. Returns 0 or a
 * negative pw_net_err. */
int pw_net_send(pw_net *net, const uint8_t *buf, size_t len);

/* Leaves the group and joins it again on interface (NULL = the current one), for when the host's
 * address or link changed. Returns 0, or a negative pw_net_err after logging; on failure the
 * socket keeps its old interface setting and the caller may retry later. */
int pw_net_rejoin(pw_net *net, const char *interface);

/* Stops receiving and closes the socket; close_cb (may be NULL) runs from the loop once the
 * memory is freed. Pending sends are cancelled. */
void pw_net_close(pw_net *net, pw_net_close_cb close_cb, void *user);

/* True if ipv4 (dotted quad) is an address of one of this host's interfaces. */
bool pw_net_is_local_address(const char *ipv4);

/* The interface address in use; borrowed, valid until the next rejoin or close. */
const char *pw_net_interface(const pw_net *net);

typedef struct pw_net_stats {
    uint64_t rx;          /* datagrams delivered to recv_cb */
    uint64_t rx_oversize; /* longer than PW_NET_MAX_DATAGRAM: given to oversize_cb, not recv_cb */
    uint64_t rx_errors;
    uint64_t tx;
    uint64_t tx_errors;
} pw_net_stats;

/* Copies the counters into out. */
void pw_net_get_stats(const pw_net *net, pw_net_stats *out);

#endif
