"""Shared pieces of the Modbus tests (modbus_*.py) and bench/modbus_bench.py: register images
computed here from each maker's published register table (struct.pack of the words, in the
maker's word order: independent of phasewise's C encoder), the test-only peers of tests/peers/
(Debian's libmodbus and the modbus-serial npm package) started in a pwtest workspace, and a
meter link for the config. Loopback only."""
import os
import shutil
import socket
import struct

import pwtest

PEERS_DIR = os.path.join(pwtest.SOURCE_DIR, "tests", "peers")
HOLD, INPUT = 3, 4


def f32(value, low_word_first=False):
    """Two registers of an IEEE 754 float32."""
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return [lo, hi] if low_word_first else [hi, lo]


def i32(value, low_word_first=False, signed=True):
    hi, lo = struct.unpack(">HH", struct.pack(">i" if signed else ">I", value))
    return [lo, hi] if low_word_first else [hi, lo]


def i16(value):
    return [struct.unpack(">H", struct.pack(">h", value))[0]]


def put(regs, fn, address, words):
    for k, w in enumerate(words):
        regs[(fn, address + k)] = w


# Each maker's register table, currents only (amperes per line in, registers out), with the
# table it comes from. Addresses are 0-based on the wire (the documents' 3xxxx/4xxxx minus one).
def sdm(amps, serial=None):
    """Eastron SDM630 Modbus V2 and SDM72D-M v2: input registers 30007/30009/30011 "Phase 1..3
    current", float32, high word first; serial number at holding 0xFC00 (u32)."""
    regs = {}
    for line, a in enumerate(amps):
        put(regs, INPUT, 0x0006 + 2 * line, f32(a))
    if serial is not None:
        put(regs, HOLD, 0xFC00, i32(serial, signed=False))
    return regs


def carlo_gavazzi(amps):
    """Carlo Gavazzi EM340/ET340, the Ethernet EM24 (EM340 layout) and the EM24-DIN: "A L1..A L3"
    at 300013/300015/300017 (0x000C...), INT32 least significant word first, weight A x 1000."""
    regs = {}
    for line, a in enumerate(amps):
        put(regs, INPUT, 0x000C + 2 * line, i32(round(a * 1000), low_word_first=True))
    return regs


def abb_b2x(amps, serial=None):
    """ABB B23/B24: holding registers 0x5B0C/0x5B0E/0x5B10 "Current L1..L3", unsigned 32-bit,
    high word first, resolution 0.01 A; serial number at 0x8900 (u32)."""
    regs = {}
    for line, a in enumerate(amps):
        put(regs, HOLD, 0x5B0C + 2 * line, i32(round(a * 100), signed=False))
    if serial is not None:
        put(regs, HOLD, 0x8900, i32(serial, signed=False))
    return regs


def sunspec(amps, model=203, base=40000):
    """A SunSpec device: "SunS" at base, the common model (1, 66 registers), then a meter model,
    then the end marker. Model 201-204 (integer): A, AphA, AphB, AphC, A_SF at offsets 0..4 of
    the model body (int16 with a scale factor); 211-214 (float): A, AphA, AphB, AphC as float32
    at body offsets 0, 2, 4, 6 (SunSpec Information Model Reference)."""
    regs = {}
    put(regs, HOLD, base, [0x5375, 0x6E53])  # "SunS"
    common = base + 2
    put(regs, HOLD, common, [1, 66])
    meter = common + 2 + 66
    body = meter + 2
    if model in (201, 202, 203, 204):
        put(regs, HOLD, meter, [model, 105])
        sf = -2
        scaled = [round(a / 10 ** sf) for a in amps]
        put(regs, HOLD, body, i16(sum(scaled)))
        for line, v in enumerate(scaled):
            put(regs, HOLD, body + 1 + line, i16(v))
        put(regs, HOLD, body + 4, i16(sf))
        end = body + 105
    else:
        put(regs, HOLD, meter, [model, 124])
        put(regs, HOLD, body, f32(sum(amps)))
        for line, a in enumerate(amps):
            put(regs, HOLD, body + 2 + 2 * line, f32(a))
        end = body + 124
    put(regs, HOLD, end, [0xFFFF, 0])
    return regs


GENERIC_LINK = {"function": 3, "low_word_first": True,
                "lines": [{"address": 0x0100 + 2 * k, "type": "s32", "scale": 0.001}
                          for k in range(3)]}


def generic(amps):
    """The generic map as GENERIC_LINK configures it: holding registers 0x0100.., s32 low word
    first, milliamperes."""
    regs = {}
    for line, a in enumerate(amps):
        put(regs, HOLD, 0x0100 + 2 * line, i32(round(a * 1000), low_word_first=True))
    return regs


# map name in the config -> (image builder, extra link fields)
MAPS = {
    "sdm630": (sdm, {}),
    "sdm72v2": (sdm, {}),
    "em340": (carlo_gavazzi, {}),
    "em24": (carlo_gavazzi, {}),
    "em24eth": (carlo_gavazzi, {}),
    "abb_b2x": (abb_b2x, {}),
    "sunspec": (sunspec, {}),
    "generic": (generic, GENERIC_LINK),
}


def write_image(path, regs, unit_regs=None, options=None):
    """Writes a register image for the peers atomically (so a reload never sees half a file):
    regs {(fn, address): word} for every unit, unit_regs {unit: regs} for one, options
    {"delay_ms": 3000, ...} for modbus-test-server."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for (fn, address), word in sorted(regs.items()):
            f.write(f"{fn} {address} {word}\n")
        for unit, ur in sorted((unit_regs or {}).items()):
            for (fn, address), word in sorted(ur.items()):
                f.write(f"{unit} {fn} {address} {word}\n")
        for key, value in (options or {}).items():
            f.write(f"{key} {value}\n")
    os.replace(tmp, path)


def libmodbus_server(bindir):
    return os.path.join(bindir, "modbus-test-server")


def node_peer_ready():
    """None when the modbus-serial peer can run, else why not (for a skip message)."""
    if not shutil.which("node"):
        return "node is not installed"
    if not os.path.isdir(os.path.join(PEERS_DIR, "node_modules", "modbus-serial")):
        return ("tests/peers/node_modules is missing: run `npm ci` in tests/peers "
                "(scripts/test.sh does)")
    return None


def wait_listening(port, timeout=10):
    def up():
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex(("127.0.0.1", port)) == 0
    pwtest.wait_for(f"a Modbus peer on port {port}", up, timeout, interval=0.1)


def start_peer(procs, kind, bindir, port, image, name=None, extra=()):
    """Starts a peer ("libmodbus" or "modbus-serial") on 127.0.0.1:port serving image."""
    if kind == "libmodbus":
        args = [libmodbus_server(bindir), "--port", str(port), "--image", image]
    else:
        args = ["node", os.path.join(PEERS_DIR, "modbus_serial_server.mjs"), "--port", str(port),
                "--image", image]
    p = procs.start(name or f"{kind}-{port}", args + list(extra))
    wait_listening(port)
    return p


def modbus_meter(port, map_name, unit=1, interval_ms=500, timeout_ms=400, **extra):
    """The "meter" object of a node read over Modbus TCP from 127.0.0.1:port."""
    link = {"host": "127.0.0.1", "port": port, "unit": unit, "map": map_name,
            "interval_ms": interval_ms, "timeout_ms": timeout_ms}
    link.update(MAPS.get(map_name, (None, {}))[1])
    meter = {"link": {"modbus": link}}
    meter.update(extra)
    return meter


def measured(doc, node=0):
    return doc["nodes"][node]["measured_a"]


def close_to(a, b, tol=0.05):
    return all(abs(x - y) <= tol for x, y in zip(a, b))
