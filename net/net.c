/* The multicast socket behind pw_net.h: libuv UDP with SO_REUSEADDR, group membership on one
 * interface address, loopback on, oversized datagrams reported by length, and a copying
 * fallback for sends that would block. */
#include "pw_net.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "pw_util.h"

#define COMP "net"

/* The receive buffer holds the largest IPv4 UDP payload (65,507 bytes): the kernel never
 * truncates a datagram into it, so one over PW_NET_MAX_DATAGRAM is seen with its real length
 * instead of passing as a cut-off copy of itself. */
#define RX_BUFFER 65536

struct pw_net {
    uv_udp_t udp;
    char group[INET_ADDRSTRLEN];
    char interface[INET_ADDRSTRLEN];
    struct sockaddr_in group_addr;
    bool joined;
    bool closing;
    pw_net_recv_cb recv_cb;
    pw_net_oversize_cb oversize_cb;
    void *user;
    pw_net_close_cb close_cb;
    void *close_user;
    pw_net_stats stats;
    uint8_t rxbuf[RX_BUFFER];
};

/* A send that could not leave at once: the request and a copy of the bytes, freed together. */
typedef struct net_send_req {
    uv_udp_send_t req;
    pw_net *net;
    size_t len;
    uint8_t data[];
} net_send_req;

const char *pw_net_strerror(int err)
{
    switch (err) {
    case PW_NET_OK:
        return "ok";
    case PW_NET_E_ADDRESS:
        return "invalid IPv4 address or group";
    case PW_NET_E_NOT_LOCAL:
        return "interface address is not an address of this host";
    case PW_NET_E_SOCKET:
        return "socket operation failed";
    case PW_NET_E_SIZE:
        return "datagram empty or too large";
    case PW_NET_E_CLOSING:
        return "socket is closing";
    default:
        return "unknown pw_net error";
    }
}

/* Parses a dotted quad; returns 0 and fills out, or -1. */
static int parse_ipv4(const char *text, struct in_addr *out)
{
    return text && inet_pton(AF_INET, text, out) == 1 ? 0 : -1;
}

bool pw_net_is_local_address(const char *ipv4)
{
    struct in_addr want;
    uv_interface_address_t *ifs;
    int count;
    bool found = false;

    if (parse_ipv4(ipv4, &want) != 0 || uv_interface_addresses(&ifs, &count) != 0)
        return false;
    for (int i = 0; i < count && !found; i++) {
        const struct sockaddr_in *a = &ifs[i].address.address4;
        found = a->sin_family == AF_INET && a->sin_addr.s_addr == want.s_addr;
    }
    uv_free_interface_addresses(ifs, count);
    return found;
}

/* Logs the host's IPv4 addresses so the person who mistyped an interface sees the choices. */
static void log_local_addresses(void)
{
    uv_interface_address_t *ifs;
    int count;
    char list[256] = "";
    size_t used = 0;

    if (uv_interface_addresses(&ifs, &count) != 0)
        return;
    for (int i = 0; i < count; i++) {
        char addr[INET_ADDRSTRLEN];
        if (ifs[i].address.address4.sin_family != AF_INET)
            continue;
        uv_ip4_name(&ifs[i].address.address4, addr, sizeof(addr));
        int n = snprintf(list + used, sizeof(list) - used, "%s%s (%s)", used ? ", " : "", addr,
                         ifs[i].name);
        if (n < 0 || (size_t)n >= sizeof(list) - used)
            break;
        used += (size_t)n;
    }
    uv_free_interface_addresses(ifs, count);
    pw_error(COMP, "local IPv4 addresses: %s", used ? list : "none");
}

/* Checks that interface is a usable local IPv4 address; logs why not. Returns 0 or an error. */
static int check_interface(const char *interface)
{
    struct in_addr a;

    if (parse_ipv4(interface, &a) != 0) {
        pw_error(COMP, "interface '%s' is not an IPv4 address (expected e.g. 127.0.0.1)",
                 interface);
        return PW_NET_E_ADDRESS;
    }
    if (!pw_net_is_local_address(interface)) {
        pw_error(COMP, "interface address %s is not an address of this host; refusing to start",
                 interface);
        log_local_addresses();
        return PW_NET_E_NOT_LOCAL;
    }
    return PW_NET_OK;
}

/* Logs a failed libuv call on the socket; returns PW_NET_E_SOCKET. */
static int socket_error(const pw_net *net, const char *what, int uv_err)
{
    pw_error(COMP, "%s (group %s:%u, interface %s): %s", what, net->group,
             ntohs(net->group_addr.sin_port), net->interface, uv_strerror(uv_err));
    return PW_NET_E_SOCKET;
}

/* Joins the group on interface and makes it the sending interface. */
static int join_on(pw_net *net, const char *interface)
{
    int rc = uv_udp_set_membership(&net->udp, net->group, interface, UV_JOIN_GROUP);
    if (rc != 0)
        return socket_error(net, "cannot join multicast group", rc);
    rc = uv_udp_set_multicast_interface(&net->udp, interface);
    if (rc != 0) {
        uv_udp_set_membership(&net->udp, net->group, interface, UV_LEAVE_GROUP);
        return socket_error(net, "cannot set the multicast interface", rc);
    }
    net->joined = true;
    pw_strlcpy(net->interface, interface, sizeof(net->interface));
    return PW_NET_OK;
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    pw_net *net = handle->data;
    (void)suggested;
    /* One buffer suffices: libuv reads and delivers one datagram at a time on this thread. */
    *buf = uv_buf_init((char *)net->rxbuf, sizeof(net->rxbuf));
}

static void on_recv(uv_udp_t *udp, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags)
{
    pw_net *net = udp->data;
    (void)buf;

    if (nread < 0) {
        net->stats.rx_errors++;
        pw_warn(COMP, "receive error on %s: %s", net->group, uv_strerror((int)nread));
        return;
    }
    if (addr == NULL || net->closing)
        return; /* nothing more to read right now */
    /* A partial read cannot happen with this buffer, but if it did the datagram was longer. */
    if ((size_t)nread > PW_NET_MAX_DATAGRAM || (flags & UV_UDP_PARTIAL)) {
        net->stats.rx_oversize++;
        if (net->oversize_cb)
            net->oversize_cb(net, (size_t)nread, (const struct sockaddr_in *)addr, net->user);
        return;
    }
    net->stats.rx++;
    net->recv_cb(net, net->rxbuf, (size_t)nread, (const struct sockaddr_in *)addr, net->user);
}

static void on_closed(uv_handle_t *handle)
{
    pw_net *net = handle->data;
    pw_net_close_cb cb = net->close_cb;
    void *user = net->close_user;

    free(net);
    if (cb)
        cb(user);
}

/* Binds, joins and starts receiving on an initialised handle. Returns 0 or an error. */
static int net_start(pw_net *net, const char *interface, uint8_t ttl)
{
    int rc = uv_udp_bind(&net->udp, (const struct sockaddr *)&net->group_addr, UV_UDP_REUSEADDR);
    if (rc != 0)
        return socket_error(net, "cannot bind to the group's port", rc);
    rc = join_on(net, interface);
    if (rc != 0)
        return rc;
    rc = uv_udp_set_multicast_ttl(&net->udp, ttl);
    if (rc != 0)
        return socket_error(net, "cannot set the multicast TTL", rc);
    /* Processes on one host (appliance, simulator, tests) must hear each other. */
    rc = uv_udp_set_multicast_loop(&net->udp, 1);
    if (rc != 0)
        return socket_error(net, "cannot enable multicast loopback", rc);
    rc = uv_udp_recv_start(&net->udp, on_alloc, on_recv);
    if (rc != 0)
        return socket_error(net, "cannot start receiving", rc);
    return PW_NET_OK;
}

int pw_net_open(uv_loop_t *loop, const pw_net_opts *opts, pw_net_recv_cb recv_cb, void *user,
                pw_net **out)
{
    const char *interface = opts->interface ? opts->interface : PW_NET_DEFAULT_INTERFACE;
    uint8_t ttl = opts->ttl ? opts->ttl : PW_NET_DEFAULT_TTL;
    struct in_addr group;
    int rc;

    *out = NULL;
    if (parse_ipv4(opts->group, &group) != 0 || !IN_MULTICAST(ntohl(group.s_addr))) {
        pw_error(COMP, "group '%s' is not an IPv4 multicast address (224.0.0.0/4)",
                 opts->group ? opts->group : "(none)");
        return PW_NET_E_ADDRESS;
    }
    rc = check_interface(interface);
    if (rc != 0)
        return rc;

    pw_net *net = pw_xcalloc(1, sizeof(*net));
    pw_strlcpy(net->group, opts->group, sizeof(net->group));
    pw_strlcpy(net->interface, interface, sizeof(net->interface));
    uv_ip4_addr(net->group, opts->port, &net->group_addr);
    net->recv_cb = recv_cb;
    net->oversize_cb = opts->oversize_cb;
    net->user = user;
    rc = uv_udp_init(loop, &net->udp);
    if (rc != 0) {
        socket_error(net, "cannot create the UDP socket", rc);
        free(net);
        return PW_NET_E_SOCKET;
    }
    net->udp.data = net;
    rc = net_start(net, interface, ttl);
    if (rc != 0) {
        /* The handle is on the loop now: it is freed by the close callback, not here. */
        pw_net_close(net, NULL, NULL);
        return rc;
    }
    pw_info(COMP, "joined %s:%u on %s (ttl %u)", net->group, opts->port, net->interface, ttl);
    *out = net;
    return PW_NET_OK;
}

static void on_sent(uv_udp_send_t *req, int status)
{
    net_send_req *sr = (net_send_req *)req;
    if (status != 0 && status != UV_ECANCELED) {
        sr->net->stats.tx_errors++;
        pw_warn(COMP, "send to %s failed: %s", sr->net->group, uv_strerror(status));
    }
    free(sr);
}

/* Queues a copy of the datagram for when the socket is writable. */
static int send_queued(pw_net *net, const uint8_t *buf, size_t len)
{
    net_send_req *sr = pw_xmalloc(sizeof(*sr) + len);
    sr->net = net;
    sr->len = len;
    memcpy(sr->data, buf, len);
    uv_buf_t b = uv_buf_init((char *)sr->data, (unsigned)len);
    int rc =
        uv_udp_send(&sr->req, &net->udp, &b, 1, (const struct sockaddr *)&net->group_addr, on_sent);
    if (rc != 0) {
        free(sr);
        net->stats.tx_errors++;
        pw_warn(COMP, "cannot queue a datagram to %s: %s", net->group, uv_strerror(rc));
        return PW_NET_E_SOCKET;
    }
    return PW_NET_OK;
}

int pw_net_send(pw_net *net, const uint8_t *buf, size_t len)
{
    if (net->closing)
        return PW_NET_E_CLOSING;
    if (len == 0 || len > PW_NET_MAX_DATAGRAM)
        return PW_NET_E_SIZE;

    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
    int rc = uv_udp_try_send(&net->udp, &b, 1, (const struct sockaddr *)&net->group_addr);
    if (rc == (int)len) {
        net->stats.tx++;
        return PW_NET_OK;
    }
    if (rc == UV_EAGAIN) {
        net->stats.tx++;
        return send_queued(net, buf, len);
    }
    net->stats.tx_errors++;
    pw_warn(COMP, "send to %s failed: %s", net->group, rc < 0 ? uv_strerror(rc) : "short write");
    return PW_NET_E_SOCKET;
}

int pw_net_rejoin(pw_net *net, const char *interface)
{
    char target[INET_ADDRSTRLEN];
    char old[INET_ADDRSTRLEN];

    if (net->closing)
        return PW_NET_E_CLOSING;
    pw_strlcpy(target, interface ? interface : net->interface, sizeof(target));
    pw_strlcpy(old, net->interface, sizeof(old));
    int rc = check_interface(target);
    if (rc != 0)
        return rc;
    if (net->joined) {
        /* The old address may be gone already, in which case the kernel dropped the membership
         * itself; that is not an error here. */
        uv_udp_set_membership(&net->udp, net->group, old, UV_LEAVE_GROUP);
        net->joined = false;
    }
    rc = join_on(net, target);
    if (rc != 0) {
        /* Try to get the old membership back so the caller is no worse off. */
        if (check_interface(old) == 0 && join_on(net, old) == 0)
            pw_warn(COMP, "kept group %s on %s", net->group, old);
        return rc;
    }
    pw_info(COMP, "rejoined %s on %s", net->group, net->interface);
    return PW_NET_OK;
}

void pw_net_close(pw_net *net, pw_net_close_cb close_cb, void *user)
{
    net->closing = true;
    net->close_cb = close_cb;
    net->close_user = user;
    uv_udp_recv_stop(&net->udp);
    uv_close((uv_handle_t *)&net->udp, on_closed);
}

const char *pw_net_interface(const pw_net *net)
{
    return net->interface;
}

void pw_net_get_stats(const pw_net *net, pw_net_stats *out)
{
    *out = net->stats;
}
