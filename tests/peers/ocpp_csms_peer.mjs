// An OCPP 1.6J central system for tests, on the ocpp-rpc npm package's RPCServer (a peer nobody
// here wrote) in strict mode on 127.0.0.1: it answers charge points like a plain central system,
// records every call it receives as a JSON line (stdout, and --record FILE), and sends calls or
// raw frames to a connected charge point on command. Commands are JSON lines on stdin (tests/peers/
// README.md). Ends on {"cmd":"quit"}, stdin EOF, SIGTERM or SIGINT: exit 0.
//
//   node ocpp_csms_peer.mjs [--port N] [--passwords JSON] [--require-password] [--record FILE]
//                           [--tx-base N] [--trace] [--tls-cert PEM --tls-key PEM]
// With --tls-cert and --tls-key it listens for wss:// (TLS) instead of ws://.
// --tx-base N: transaction ids count from N + 1 (default 0), so that the ids of two central
// systems run one after the other on the same port never collide in a test's checks.
import fs from "node:fs";
import https from "node:https";
import { createRequire } from "node:module";
import process from "node:process";
import readline from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";

import ocppRpc from "ocpp-rpc";

const { RPCServer, createRPCError, createValidator, NOREPLY } = ocppRpc;
const require = createRequire(import.meta.url);
const RPC_VERSION = require("ocpp-rpc/package.json").version;
// For replies to raw frames, which the library never matches to a call of its own.
const schemas = createValidator("ocpp1.6", require("ocpp-rpc/lib/schemas/ocpp1_6.json"));

const LIMITS = {
    clients: 1000,
    callTimeoutMs: 300000,
    delayMs: 120000,
    textBytes: 16 * 1024 * 1024,
    tracked: 10000,
    clip: 4096,
    shutdownMs: 3000,
};

function emit(event) {
    let line;
    try {
        line = JSON.stringify({ t: Date.now(), ...event });
    } catch (err) {
        line = JSON.stringify({ t: Date.now(), event: "internal_error", where: "emit",
                                error: String(err) });
    }
    process.stdout.write(line + "\n");
    if (record !== null && event.event === "call") fs.appendFileSync(record, line + "\n");
}

function clip(text, n = LIMITS.clip) {
    return text.length > n ? `${text.slice(0, n)}...(${text.length} chars)` : text;
}

function errInfo(err) {
    if (!(err instanceof Error)) return { message: String(err) };
    const out = { name: err.name, message: err.message };
    if (err.rpcErrorCode) out.code = err.rpcErrorCode;
    else if (err.code !== undefined) out.code = err.code;
    if (err.details && Object.keys(err.details).length > 0) out.details = err.details;
    return out;
}

function fail(message) {
    throw new Error(message);
}

function int(value, lo, hi, what) {
    if (!Number.isInteger(value) || value < lo || value > hi)
        fail(`${what} must be an integer in ${lo}..${hi}, not ${JSON.stringify(value)}`);
    return value;
}

function track(map, key, value) {
    map.set(key, value);
    if (map.size > LIMITS.tracked) map.delete(map.keys().next().value);
}

function replyFields(frame) {
    if (frame[0] === 3) return { type: "CALLRESULT", result: frame[2] };
    return { type: "CALLERROR", errorCode: frame[2], errorDescription: frame[3],
             errorDetails: frame[4] };
}

function now() {
    return new Date().toISOString();
}

let record = null;
let trace = false;
let port = 0;
let tlsCert = null, tlsKey = null; // wss:// with these (PEM files)
let tlsServer = null;
const passwords = new Map(); // identity -> password a charge point must present
let requirePassword = false;
let txSeq = 0;

const behaviour = {
    boot_status: "Accepted", // or "Pending", "Rejected"
    interval: 300,
    id_tags: {}, // {idTag: status}, others Accepted
    answers: {}, // {method: result}, sent as is (still schema-checked)
    errors: {}, // {method: CALLERROR code}
    silent: [], // methods never answered
    delay_ms: {}, // {method: ms}
};

function tagInfo(idTag) {
    return { status: behaviour.id_tags[idTag] ?? "Accepted" };
}

// How a plain central system answers what a 1.6 charge point may send.
const ANSWERS = {
    BootNotification: () => ({ status: behaviour.boot_status, currentTime: now(),
                               interval: behaviour.interval }),
    Heartbeat: () => ({ currentTime: now() }),
    StatusNotification: () => ({}),
    MeterValues: () => ({}),
    Authorize: (p) => ({ idTagInfo: tagInfo(p.idTag) }),
    StartTransaction: (p) => ({ transactionId: ++txSeq, idTagInfo: tagInfo(p.idTag) }),
    StopTransaction: (p) => (p.idTag === undefined ? {} : { idTagInfo: tagInfo(p.idTag) }),
    DataTransfer: () => ({ status: "UnknownVendorId" }),
    DiagnosticsStatusNotification: () => ({}),
    FirmwareStatusNotification: () => ({}),
};

const clients = new Map(); // identity -> the live connection (a newer one replaces an older)

function attach(client) {
    const id = client.identity;
    const session = { client, inbound: new Map(), raw: new Map() };
    const old = clients.get(id);
    if (clients.size >= LIMITS.clients && !old) {
        client.close({ code: 1013, reason: "too many clients" });
        return;
    }
    clients.set(id, session);
    if (old) {
        emit({ event: "replaced", id });
        old.client.close({ code: 1000, reason: "replaced by a new connection" });
    }
    const hs = client.handshake;
    emit({ event: "connect", id, protocol: client.protocol, endpoint: hs.endpoint,
           remote: hs.remoteAddress, password: hs.password !== undefined });

    client.on("close", ({ code, reason }) => {
        if (clients.get(id) === session) clients.delete(id);
        emit({ event: "close", id, code, reason: String(reason ?? "") });
    });
    client.on("socketError", (err) => emit({ event: "socket_error", id, error: errInfo(err) }));
    client.on("strictValidationFailure", (e) => {
        emit({ event: "strict_violation", id, direction: e.outbound ? "out" : "in",
               what: e.isCall ? "call" : "result", method: e.method, messageId: e.messageId,
               params: e.params, result: e.result ?? undefined, error: errInfo(e.error) });
    });
    client.on("call", ({ outbound, payload }) => {
        if (!outbound)
            track(session.inbound, payload[1], { method: payload[2], params: payload[3] });
    });
    client.on("response", ({ outbound, payload }) => {
        if (!outbound) return;
        const call = session.inbound.get(payload[1]);
        session.inbound.delete(payload[1]);
        const answer = payload[0] === 3 ? { result: payload[2] }
                                        : { error: { code: payload[2], description: payload[3],
                                                     details: payload[4] } };
        emit({ event: "call", id, messageId: payload[1], method: call?.method,
               params: call?.params, ...answer });
    });
    client.on("badMessage", ({ buffer, error, response }) => {
        const text = buffer.toString("utf8");
        let frame;
        try {
            frame = JSON.parse(text);
        } catch {
            frame = undefined;
        }
        if (Array.isArray(frame) && (frame[0] === 3 || frame[0] === 4) &&
            typeof frame[1] === "string") {
            const raw = session.raw.get(frame[1]);
            session.raw.delete(frame[1]);
            emit({ event: raw ? "raw_reply" : "unexpected_reply", id, messageId: frame[1],
                   method: raw?.method, ...replyFields(frame) });
            if (raw?.method && frame[0] === 3) {
                try {
                    schemas.validate(`urn:${raw.method}.conf`, frame[2]);
                } catch (err) {
                    emit({ event: "strict_violation", id, direction: "in", what: "result",
                           method: raw.method, messageId: frame[1], result: frame[2], via: "raw",
                           error: errInfo(err) });
                }
            }
            return;
        }
        emit({ event: "bad_message", id, frame: clip(text), error: errInfo(error),
               answer: response ? replyFields(response) : undefined });
    });
    if (trace) {
        client.on("message", ({ message, outbound }) => {
            emit({ event: "frame", id, dir: outbound ? "out" : "in", text: clip(String(message)) });
        });
    }
    for (const [method, answer] of Object.entries(ANSWERS)) {
        client.handle(method, async ({ params, messageId }) => {
            const delay = behaviour.delay_ms[method] ?? 0;
            if (delay > 0) await sleep(Math.min(delay, LIMITS.delayMs));
            if (behaviour.silent.includes(method)) {
                session.inbound.delete(messageId);
                emit({ event: "call", id, messageId, method, params, silent: true });
                return NOREPLY;
            }
            if (behaviour.errors[method])
                throw createRPCError(behaviour.errors[method], `configured to fail ${method}`);
            if (method in behaviour.answers) return behaviour.answers[method];
            return answer(params);
        });
    }
}

function sessionOf(cmd) {
    const s = clients.get(cmd.id);
    if (!s) fail(`no charge point "${cmd.id}" is connected`);
    return s;
}

const COMMANDS = {
    async call(cmd) {
        const s = sessionOf(cmd);
        if (typeof cmd.method !== "string") fail("call needs a \"method\"");
        const opts = {};
        if (cmd.timeout_ms !== undefined)
            opts.callTimeoutMs = int(cmd.timeout_ms, 1, LIMITS.callTimeoutMs, "timeout_ms");
        return { response: await s.client.call(cmd.method, cmd.params ?? {}, opts) };
    },

    raw(cmd) {
        const s = sessionOf(cmd);
        if (typeof cmd.text !== "string") fail("raw needs a \"text\"");
        const bytes = Buffer.byteLength(cmd.text);
        if (bytes > LIMITS.textBytes) fail(`raw text over ${LIMITS.textBytes} bytes`);
        let messageId;
        try {
            const f = JSON.parse(cmd.text);
            if (Array.isArray(f) && f[0] === 2 && typeof f[1] === "string") {
                messageId = f[1];
                track(s.raw, messageId, { method: typeof f[2] === "string" ? f[2] : undefined });
            }
        } catch {
            messageId = undefined;
        }
        s.client.sendRaw(cmd.text);
        return { bytes, messageId };
    },

    async disconnect(cmd) {
        const s = sessionOf(cmd);
        const opts = { code: cmd.code ?? 1000, reason: cmd.reason ?? "",
                       force: Boolean(cmd.force) };
        return { closed: await Promise.resolve(s.client.close(opts)) };
    },

    configure(cmd) {
        for (const [key, value] of Object.entries(cmd)) {
            if (key === "cmd" || key === "ref") continue;
            if (key === "passwords") {
                setPasswords(value);
            } else if (key === "require_password") {
                requirePassword = Boolean(value);
            } else if (key === "boot_status") {
                if (!["Accepted", "Pending", "Rejected"].includes(value))
                    fail("boot_status must be Accepted, Pending or Rejected");
                behaviour.boot_status = value;
            } else if (key === "interval") {
                behaviour.interval = int(value, 0, 86400, "interval");
            } else if (key === "silent") {
                if (!Array.isArray(value)) fail("silent must be an array");
                behaviour.silent = value;
            } else if (["id_tags", "answers", "errors", "delay_ms"].includes(key)) {
                if (typeof value !== "object" || value === null || Array.isArray(value))
                    fail(`${key} must be an object`);
                behaviour[key] = value;
            } else {
                fail(`unknown option "${key}"`);
            }
        }
        return {};
    },

    clients() {
        return { ids: [...clients.keys()] };
    },

    quit() {
        shutdown(0);
        return {};
    },
};

let running = 0; // commands without a result yet, reported at exit

async function runCommand(cmd) {
    const base = { event: "result", cmd: cmd.cmd, id: cmd.id, ref: cmd.ref };
    running++;
    try {
        const handler = Object.hasOwn(COMMANDS, cmd.cmd) ? COMMANDS[cmd.cmd] : null;
        if (!handler) fail(`unknown command ${JSON.stringify(cmd.cmd)}`);
        emit({ ...base, ok: true, ...(await handler(cmd)) });
    } catch (err) {
        emit({ ...base, ok: false, error: errInfo(err) });
    } finally {
        running--;
    }
}

function onLine(line) {
    if (!line.trim()) return;
    let cmd;
    try {
        cmd = JSON.parse(line);
        if (typeof cmd !== "object" || cmd === null || Array.isArray(cmd)) fail("not an object");
    } catch (err) {
        emit({ event: "result", ok: false, error: { message: `bad command line: ${err.message}` },
               line: clip(line, 200) });
        return;
    }
    runCommand(cmd);
}

function setPasswords(value) {
    if (typeof value !== "object" || value === null || Array.isArray(value))
        fail("passwords must be an object {identity: password}");
    passwords.clear();
    for (const [id, pw] of Object.entries(value)) passwords.set(id, String(pw));
}

function parseArgs(argv) {
    for (let i = 2; i < argv.length; i++) {
        const a = argv[i];
        const value = () => {
            if (i + 1 >= argv.length) fail(`${a} needs a value`);
            return argv[++i];
        };
        if (a === "--port") port = int(Number(value()), 0, 65535, "--port");
        else if (a === "--passwords") setPasswords(JSON.parse(value()));
        else if (a === "--require-password") requirePassword = true;
        else if (a === "--record") record = value();
        else if (a === "--tx-base") txSeq = int(Number(value()), 0, 2 ** 30, "--tx-base");
        else if (a === "--trace") trace = true;
        else if (a === "--tls-cert") tlsCert = value();
        else if (a === "--tls-key") tlsKey = value();
        else fail(`unknown argument ${a}`);
    }
}

let server = null;
let shuttingDown = false;

async function shutdown(code) {
    if (shuttingDown) return;
    shuttingDown = true;
    if (server !== null)
        await Promise.race([server.close({ code: 1001, reason: "central system quits" })
                                .catch(() => undefined),
                            sleep(LIMITS.shutdownMs)]);
    emit({ event: "exit", code, unfinished_commands: running });
    process.exit(code);
}

process.on("unhandledRejection", (reason) => {
    emit({ event: "internal_error", where: "unhandledRejection", error: errInfo(reason) });
});
process.on("uncaughtException", (err) => {
    emit({ event: "internal_error", where: "uncaughtException", error: errInfo(err),
           stack: clip(String(err?.stack ?? ""), 2000) });
    process.exit(70);
});
process.stdout.on("error", () => process.exit(0));
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => shutdown(0));

try {
    parseArgs(process.argv);
} catch (err) {
    console.error(`ocpp_csms_peer: ${err.message}`);
    console.error("usage: node ocpp_csms_peer.mjs [--port N] [--passwords JSON] " +
                  "[--require-password] [--record FILE] [--tx-base N] [--trace] " +
                  "[--tls-cert PEM --tls-key PEM]");
    process.exit(2);
}

server = new RPCServer({ protocols: ["ocpp1.6"], strictMode: true, callTimeoutMs: 30000 });
server.auth((accept, reject, handshake) => {
    const id = handshake.identity;
    const want = passwords.get(id);
    const got = handshake.password?.toString("utf8");
    if ((want !== undefined && got !== want) || (want === undefined && requirePassword)) {
        reject(401, "Unauthorized");
        return;
    }
    accept();
});
server.on("upgradeAborted", ({ error, identity }) => {
    emit({ event: "upgrade_aborted", id: identity, status: error?.code, message: error?.message });
});
server.on("error", (err) => emit({ event: "server_error", error: errInfo(err) }));
server.on("client", attach);

try {
    if (tlsCert || tlsKey) {
        if (!tlsCert || !tlsKey) throw new Error("--tls-cert and --tls-key go together");
        const tls = https.createServer({ cert: fs.readFileSync(tlsCert),
                                         key: fs.readFileSync(tlsKey) });
        tls.on("upgrade", server.handleUpgrade);
        await new Promise((resolve, reject) => {
            tls.once("error", reject);
            tls.listen(port, "127.0.0.1", resolve);
        });
        port = tls.address().port;
        tlsServer = tls;
    } else {
        const http = await server.listen(port, "127.0.0.1");
        port = http.address().port;
    }
} catch (err) {
    console.error(`ocpp_csms_peer: cannot listen on 127.0.0.1:${port}: ${err.message}`);
    process.exit(1);
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on("line", onLine);
rl.on("close", () => shutdown(0));
emit({ event: "listening", host: "127.0.0.1", port,
       url: `${tlsServer ? "wss" : "ws"}://127.0.0.1:${port}/ocpp`,
       ocpp_rpc: RPC_VERSION, node: process.version });
