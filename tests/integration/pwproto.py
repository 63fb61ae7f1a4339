"""The phasewise LAN protocol v1 (protocol/PROTOCOL.md) in Python, for tests and benchmarks that
play chargers and meter gateways: encoding and authenticating datagrams, decoding allocations,
and a loopback multicast socket. Standard library only; multicast stays on 127.0.0.1, TTL 1."""
import hashlib
import hmac
import socket
import struct

HEADER = struct.Struct(">2sBBBBHIII")
TAG_LEN = 16
ANNOUNCE, STATUS, METER, ALLOCATION, HEARTBEAT = 1, 2, 3, 4, 5
LINK_ETHERNET, LINK_WIFI = 0, 1
STATE = {"A": 0, "B": 1, "C": 2}

_ANNOUNCE = struct.Struct(">24s24s3BIBbB")
_STATUS = struct.Struct(">BB3I3HQIII")
_METER = struct.Struct(">3I3H3iQ")
_ALLOC_HEAD = struct.Struct(">IIH")
_ALLOC_ENTRY = struct.Struct(">IIB")


def read_key(path):
    """The 32-byte facility key from a key file (64 hex digits)."""
    with open(path) as f:
        return bytes.fromhex(f.read().strip())


def tag(key, data):
    return hmac.new(key, data, hashlib.sha256).digest()[:TAG_LEN]


def encode(key, msg_type, sender, boot, seq, payload):
    """A complete datagram: header, payload, tag."""
    head = HEADER.pack(b"PW", 1, msg_type, 0, 0, len(payload), sender, boot, seq)
    return head + payload + tag(key, head + payload)


def announce_payload(model="pwtest", firmware="1", wiring=(1, 2, 3), max_ma=16000,
                     link=LINK_ETHERNET, rssi=0, can_switch=False):
    return _ANNOUNCE.pack(model.encode(), firmware.encode(), *wiring, max_ma, link, rssi,
                          1 if can_switch else 0)


def status_payload(state="C", phases=3, current_ma=(0, 0, 0), energy_wh=0, limit_ma=0,
                   alloc_seq=0, session=0):
    return _STATUS.pack(STATE[state], phases, *current_ma, 2300, 2300, 2300, energy_wh, limit_ma,
                        alloc_seq, session)


def meter_payload(current_ma, energy_wh=0):
    power = tuple(int(c * 230 / 1000) for c in current_ma)
    return _METER.pack(*current_ma, 2300, 2300, 2300, *power, energy_wh)


def header(data):
    """(type, sender, boot, seq) of a datagram long enough to carry a header, else None."""
    if len(data) < HEADER.size + TAG_LEN or data[:2] != b"PW":
        return None
    _, _, msg_type, _, _, _, sender, boot, seq = HEADER.unpack_from(data)
    return msg_type, sender, boot, seq


def verify(key, data):
    return hmac.compare_digest(tag(key, data[:-TAG_LEN]), data[-TAG_LEN:])


def decode_allocation(key, data):
    """(alloc_seq, lease_ms, {charger id: (limit_ma, phases)}) of an authentic allocation from
    the balancer, else None."""
    h = header(data)
    if h is None or h[0] != ALLOCATION or h[1] != 0 or not verify(key, data):
        return None
    off = HEADER.size
    seq, lease, count = _ALLOC_HEAD.unpack_from(data, off)
    off += _ALLOC_HEAD.size
    entries = {}
    for _ in range(count):
        cid, limit, phases = _ALLOC_ENTRY.unpack_from(data, off)
        entries[cid] = (limit, phases)
        off += _ALLOC_ENTRY.size
    return seq, lease, entries


def pending_allocations(sock, key):
    """Every authentic allocation waiting on a non-blocking socket, as decode_allocation gives
    them; other datagrams are read and dropped."""
    while True:
        try:
            data = sock.recv(2048)
        except BlockingIOError:
            return
        alloc = decode_allocation(key, data)
        if alloc:
            yield alloc


class Sender:
    """One device's identity: sender id, boot id and the next sequence number."""

    def __init__(self, key, sender, boot):
        self.key, self.sender, self.boot, self.seq = key, sender, boot, 0

    def datagram(self, msg_type, payload):
        self.seq += 1
        return encode(self.key, msg_type, self.sender, self.boot, self.seq, payload)


def group_socket(group, port, rcvbuf=4 << 20):
    """A UDP socket joined to group on 127.0.0.1 that sends there with TTL 1 and loopback on."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.bind(("0.0.0.0", port))
    lo = socket.inet_aton("127.0.0.1")
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(group) + lo)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, lo)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    return s
