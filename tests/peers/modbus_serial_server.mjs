// A Modbus TCP server for tests on the modbus-serial npm package's ServerTCP (a peer nobody here
// wrote). It serves the same register image file as modbus-test-server (tests/peers/
// modbus_server.c): "FN ADDRESS VALUE" for every unit, "UNIT FN ADDRESS VALUE" for one, '#'
// comments, numbers decimal or 0x hex; fault options are not understood and ignored. The file
// is read again when it changes. Loopback only; SIGTERM or SIGINT: exit 0.
//
//   node modbus_serial_server.mjs --port N --image FILE
import fs from "node:fs";
import process from "node:process";

import modbusSerial from "modbus-serial";

const { ServerTCP } = modbusSerial;

function arg(name) {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : undefined;
}

const port = Number(arg("--port"));
const image = arg("--image");
if (!(port > 0 && port < 65536) || !image) {
    console.error("usage: node modbus_serial_server.mjs --port N --image FILE");
    process.exit(2);
}

let common = { 3: new Map(), 4: new Map() };
let units = new Map(); // unit -> {3: Map, 4: Map}
let loadedKey = "";

function load() {
    let st;
    try {
        st = fs.statSync(image);
    } catch {
        return;
    }
    const key = `${st.ino}:${st.size}:${st.mtimeMs}`;
    if (key === loadedKey) return;
    const c = { 3: new Map(), 4: new Map() };
    const u = new Map();
    for (const raw of fs.readFileSync(image, "utf8").split("\n")) {
        const words = raw.replace(/#.*/, "").trim().split(/\s+/).filter(Boolean);
        if (words.length < 3 || !/^(0x[0-9a-f]+|\d+)$/i.test(words[0])) continue; // options
        const n = words.map(Number);
        if (n.some(Number.isNaN)) continue;
        if (n.length === 3) c[n[0]]?.set(n[1], n[2]);
        else if (n.length === 4) {
            if (!u.has(n[0])) u.set(n[0], { 3: new Map(), 4: new Map() });
            u.get(n[0])[n[1]]?.set(n[2], n[3]);
        }
    }
    common = c;
    units = u;
    loadedKey = key;
}

function read(fn, addr, length, unit) {
    load();
    const own = units.get(unit);
    const out = [];
    for (let a = addr; a < addr + length; a++) {
        const v = own?.[fn].get(a) ?? common[fn].get(a) ?? 0;
        out.push(v);
    }
    return out;
}

const vector = {
    getHoldingRegister: (addr, unit) => read(3, addr, 1, unit)[0],
    getInputRegister: (addr, unit) => read(4, addr, 1, unit)[0],
    getMultipleHoldingRegisters: (addr, length, unit) => read(3, addr, length, unit),
    getMultipleInputRegisters: (addr, length, unit) => read(4, addr, length, unit),
};

load();
const server = new ServerTCP(vector, { host: "127.0.0.1", port, unitID: 255 });
server.on("initialized", () => console.log(`listening on 127.0.0.1:${port}`));
server.on("serverError", (err) => {
    console.error(`modbus_serial_server: ${err.message}`);
    process.exit(1);
});
for (const sig of ["SIGTERM", "SIGINT"]) {
    process.on(sig, () => {
        server.close(() => process.exit(0));
        setTimeout(() => process.exit(0), 500).unref();
    });
}
