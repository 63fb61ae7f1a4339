// OCPP 1.6J charge points for tests, on the ocpp-rpc npm package's RPCClient (a peer nobody here
// wrote) in strict mode: every frame the central system sends and every answer it gives is
// checked against the official OCPP 1.6 JSON schemas, and each failure is reported as an event.
// Driven by JSON lines on stdin, reports JSON lines on stdout (tests/peers/README.md lists both);
// loopback only by intent. Ends on {"cmd":"quit"}, stdin EOF, SIGTERM or SIGINT: exit 0.
//
//   node ocpp_cp_peer.mjs --url ws://127.0.0.1:PORT/ocpp [--cp ID]... [--cps JSON] [--trace]
import { createRequire } from "node:module";
import process from "node:process";
import readline from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";

import ocppRpc from "ocpp-rpc";

const { RPCClient, createRPCError, createValidator, NOREPLY } = ocppRpc;
const require = createRequire(import.meta.url);
const RPC_VERSION = require("ocpp-rpc/package.json").version;
// The same schemas the clients validate with; used for replies that bypass the RPC layer (raw
// frames and floods), which the library itself never matches to a call.
const schemas = createValidator("ocpp1.6", require("ocpp-rpc/lib/schemas/ocpp1_6.json"));

// Everything is bounded so a test that goes wrong cannot make the peer run away.
const LIMITS = {
    chargePoints: 1000,
    connectors: 16,
    idLength: 255,
    floodCount: 100000,
    floodPerS: 20000,
    floodWaitMs: 60000,
    floodMs: 600000,
    delayMs: 120000,
    callTimeoutMs: 300000,
    textBytes: 16 * 1024 * 1024,
    tracked: 10000,
    listed: 100,
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
    // Writes to a pipe are synchronous on Linux, so each line is out before the next event.
    process.stdout.write(line + "\n");
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

// A Map that forgets its oldest entries, for message ids that may never be answered.
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

// --- the charge point's configuration keys (OCPP 1.6 section 9) -------------------------------

function defaultConfig(connectors) {
    const rotation = ["0.RST"];
    for (let c = 1; c <= connectors; c++) rotation.push(`${c}.RST`);
    // [key, value, readonly, kind]; kind checks a ChangeConfiguration value like a charger would.
    const keys = [
        ["AuthorizeRemoteTxRequests", "false", false, "bool"],
        ["ClockAlignedDataInterval", "0", false, "int"],
        ["ConnectionTimeOut", "60", false, "int"],
        ["ConnectorPhaseRotation", rotation.join(","), false, "text"],
        ["GetConfigurationMaxKeys", "50", true, "int"],
        ["HeartbeatInterval", "300", false, "int"],
        ["LocalAuthorizeOffline", "true", false, "bool"],
        ["LocalPreAuthorize", "false", false, "bool"],
        ["MeterValueSampleInterval", "60", false, "int"],
        ["MeterValuesAlignedData", "Energy.Active.Import.Register", false, "measurands"],
        ["MeterValuesSampledData", "Energy.Active.Import.Register,Current.Import,Current.Offered",
         false, "measurands"],
        ["NumberOfConnectors", String(connectors), true, "int"],
        ["ResetRetries", "3", false, "int"],
        ["StopTransactionOnEVSideDisconnect", "true", false, "bool"],
        ["StopTransactionOnInvalidId", "true", false, "bool"],
        ["StopTxnAlignedData", "", false, "measurands"],
        ["StopTxnSampledData", "", false, "measurands"],
        ["SupportedFeatureProfiles", "Core,SmartCharging,RemoteTrigger", true, "text"],
        ["TransactionMessageAttempts", "3", false, "int"],
        ["TransactionMessageRetryInterval", "60", false, "int"],
        ["UnlockConnectorOnEVSideDisconnect", "true", false, "bool"],
        ["WebSocketPingInterval", "30", false, "int"],
        ["ChargeProfileMaxStackLevel", "8", true, "int"],
        ["ChargingScheduleAllowedChargingRateUnit", "Current,Power", true, "text"],
        ["ChargingScheduleMaxPeriods", "24", true, "int"],
        ["ConnectorSwitch3to1PhaseSupported", "false", true, "bool"],
        ["MaxChargingProfilesInstalled", "10", true, "int"],
    ];
    const config = new Map();
    for (const [key, value, readonly, kind] of keys) config.set(key, { value, readonly, kind });
    return config;
}

const DEFAULT_BEHAVIOUR = {
    // "auto": check the profile like a charger would (connector, purpose, transaction, unit,
    // periods, stack level, count) and answer Accepted or Rejected; or a fixed status.
    set_profile: "auto",
    clear_profile: "Accepted", // or "Unknown", or "auto": Unknown when nothing matched
    trigger: "Accepted", // or "Rejected", "NotImplemented"
    remote_start: "Accepted",
    change_config: {}, // {key or "*": status} answered whatever the value
    supported_measurands: ["Energy.Active.Import.Register", "Current.Import", "Current.Offered",
                           "Power.Active.Import", "Voltage"],
    answers: {}, // {method: result} sent as is (still schema-checked: a bad one is reported)
    errors: {}, // {method: CALLERROR code}
    silent: [], // methods never answered (for the central system's call timeouts)
    delay_ms: {}, // {method: ms} before answering
    auto_heartbeat: false, // Heartbeat every HeartbeatInterval after an accepted boot
    call_timeout_ms: 30000,
    ping_interval_ms: 30000,
};

const STATUSES = {
    set_profile: ["auto", "Accepted", "Rejected", "NotSupported"],
    clear_profile: ["auto", "Accepted", "Unknown"],
    trigger: ["Accepted", "Rejected", "NotImplemented"],
    remote_start: ["Accepted", "Rejected"],
};

const TRIGGERS = ["BootNotification", "DiagnosticsStatusNotification", "FirmwareStatusNotification",
                  "Heartbeat", "MeterValues", "StatusNotification"];

// Whether an installed profile q gives way to a new profile p on connectorId: the same id, or
// the same connector, purpose and stack level (OCPP 1.6 section 5.16).
function replaces(q, connectorId, p) {
    return q.chargingProfileId === p.chargingProfileId ||
           (q.connectorId === connectorId && q.stackLevel === p.stackLevel &&
            q.purpose === p.chargingProfilePurpose);
}

// --- one charge point ----------------------------------------------------------------------------

let defaultUrl = "";
let trace = false;
let floodSeq = 0;

class ChargePoint {
    constructor(spec) {
        if (typeof spec.id !== "string" || spec.id.length === 0 || spec.id.length > LIMITS.idLength)
            fail(`a charge point id must be a string of 1..${LIMITS.idLength} characters`);
        this.id = spec.id;
        this.endpoint = spec.endpoint ?? defaultUrl;
        if (typeof this.endpoint !== "string" || !/^wss?:\/\//.test(this.endpoint))
            fail(`${this.id}: endpoint must be a ws:// or wss:// URL (--url or "endpoint")`);
        this.password = spec.password ?? null;
        this.connectors = int(spec.connectors ?? 1, 1, LIMITS.connectors, "connectors");
        this.behaviour = structuredClone(DEFAULT_BEHAVIOUR);
        this.config = defaultConfig(this.connectors);
        this.status = {};
        for (let c = 0; c <= this.connectors; c++) this.status[c] = "Available";
        this.transactions = new Map(); // connector -> transactionId
        this.profiles = []; // installed, newest last
        this.lastLimit = {}; // connector -> the last accepted profile's first period, and more
        this.meter = {}; // connector -> the last meter command
        this.remoteStarts = [];
        this.boot = null;
        this.counts = { calls: 0, strict_violations: 0, cleared_profiles: 0 };
        this.client = null;
        this.wasOpen = false;
        this.inbound = new Map(); // messageId -> {method, params} until answered
        this.after = new Map(); // messageId -> what to do once the answer is out
        this.raw = new Map(); // messageId of a raw CALL -> {method}
        this.floods = new Map(); // messageId -> the flood it belongs to
        this.starts = new Map(); // messageId of our StartTransaction -> its connector
        this.heartbeat = null;
        const { id, endpoint, password, connectors, ...rest } = spec;
        this.configure(rest);
    }

    configure(opts) {
        const b = this.behaviour;
        for (const [key, value] of Object.entries(opts)) {
            if (key === "config") {
                if (typeof value !== "object" || value === null) fail("config must be an object");
                for (const [k, v] of Object.entries(value)) {
                    const entry = this.config.get(k);
                    if (v === null) this.config.delete(k);
                    else if (entry) entry.value = String(v);
                    else this.config.set(k, { value: String(v), readonly: false, kind: "text" });
                }
            } else if (key in STATUSES) {
                if (!STATUSES[key].includes(value))
                    fail(`${key} must be one of ${STATUSES[key].join(", ")}`);
                b[key] = value;
            } else if (["change_config", "answers", "errors", "delay_ms"].includes(key)) {
                if (typeof value !== "object" || value === null || Array.isArray(value))
                    fail(`${key} must be an object`);
                if (key === "delay_ms")
                    for (const ms of Object.values(value)) int(ms, 0, LIMITS.delayMs, "delay_ms");
                b[key] = value;
            } else if (key === "silent" || key === "supported_measurands") {
                if (!Array.isArray(value)) fail(`${key} must be an array`);
                b[key] = value;
            } else if (key === "auto_heartbeat") {
                b[key] = Boolean(value);
                this.armHeartbeat();
            } else if (key === "call_timeout_ms" || key === "ping_interval_ms") {
                b[key] = int(value, 0, LIMITS.callTimeoutMs, key);
            } else if (!["cmd", "ref", "id", "ids"].includes(key)) {
                fail(`unknown option "${key}"`);
            }
        }
    }

    isOpen() {
        return this.client !== null && this.client.state === RPCClient.OPEN;
    }

    async connect() {
        if (this.isOpen()) return { protocol: this.client.protocol, already: true };
        if (this.client && this.client.state !== RPCClient.CLOSED)
            fail(`${this.id} is busy connecting or closing`);
        this.client = this.makeClient();
        try {
            await this.client.connect();
        } catch (err) {
            // ocpp-rpc's UnexpectedHttpResponse carries the HTTP status of a refused upgrade.
            if (typeof err.code === "number")
                emit({ event: "refused", id: this.id, status: err.code, message: err.message });
            else emit({ event: "connect_error", id: this.id, error: errInfo(err) });
            throw err;
        }
        return { protocol: this.client.protocol };
    }

    makeClient() {
        const b = this.behaviour;
        const client = new RPCClient({
            identity: this.id,
            endpoint: this.endpoint,
            password: this.password,
            protocols: ["ocpp1.6"],
            strictMode: true,
            reconnect: false, // a test asks for every connection; nothing retries behind it
            callTimeoutMs: b.call_timeout_ms,
            pingIntervalMs: b.ping_interval_ms,
        });
        client.on("open", () => {
            this.wasOpen = true;
            emit({ event: "open", id: this.id, protocol: client.protocol });
        });
        client.on("close", ({ code, reason }) => {
            clearInterval(this.heartbeat);
            this.heartbeat = null;
            if (!this.wasOpen) return; // a failed connect was reported as refused/connect_error
            this.wasOpen = false;
            emit({ event: "close", id: this.id, code, reason: String(reason ?? "") });
        });
        client.on("socketError", (err) => {
            emit({ event: "socket_error", id: this.id, error: errInfo(err) });
        });
        client.on("strictValidationFailure", (e) => {
            this.counts.strict_violations++;
            emit({ event: "strict_violation", id: this.id, direction: e.outbound ? "out" : "in",
                   what: e.isCall ? "call" : "result", method: e.method, messageId: e.messageId,
                   params: e.params, result: e.result ?? undefined, error: errInfo(e.error) });
        });
        client.on("call", ({ outbound, payload }) => {
            if (!outbound)
                track(this.inbound, payload[1], { method: payload[2], params: payload[3] });
            else if (payload[2] === "StartTransaction")
                track(this.starts, payload[1], payload[3].connectorId);
        });
        client.on("response", ({ outbound, payload }) => {
            if (outbound) this.answered(payload);
            else this.startAnswered(payload);
        });
        client.on("badMessage", ({ buffer, error, response }) => {
            this.badMessage(buffer.toString("utf8"), error, response);
        });
        if (trace) {
            client.on("message", ({ message, outbound }) => {
                emit({ event: "frame", id: this.id, dir: outbound ? "out" : "in",
                       text: clip(String(message)) });
            });
        }
        for (const method of Object.keys(ANSWERS)) {
            client.handle(method, (call) => this.onCall(method, call));
        }
        // Methods not in ANSWERS get ocpp-rpc's NotImplemented CALLERROR.
        return client;
    }

    // A charger knows its transaction id as soon as the StartTransaction answer arrives, before
    // it reads the next frame. ocpp-rpc resolves the call's promise a few microtasks later, while
    // a SetChargingProfile(TxProfile) in the same TCP read is handled at once: record the
    // transaction here, synchronously, or that profile would be refused as "without a
    // transaction" although the central system did everything in the right order.
    startAnswered(payload) {
        const connectorId = this.starts.get(payload[1]);
        if (connectorId === undefined) return;
        this.starts.delete(payload[1]);
        const r = payload[0] === 3 ? payload[2] : undefined;
        if (r?.idTagInfo?.status === "Accepted" && Number.isInteger(r.transactionId))
            this.transactions.set(connectorId, r.transactionId);
    }

    // Every call the central system makes, with the answer that went out on the wire.
    answered(payload) {
        const messageId = payload[1];
        const call = this.inbound.get(messageId);
        this.inbound.delete(messageId);
        const answer = payload[0] === 3 ? { result: payload[2] }
                                        : { error: { code: payload[2], description: payload[3],
                                                     details: payload[4] } };
        emit({ event: "call", id: this.id, messageId, method: call?.method, params: call?.params,
               ...answer });
        const then = this.after.get(messageId);
        this.after.delete(messageId);
        // The library emits this just before it writes the answer: defer past the write.
        if (then && payload[0] === 3) setImmediate(then);
    }

    async onCall(method, { params, messageId }) {
        this.counts.calls++;
        const b = this.behaviour;
        const delay = b.delay_ms[method] ?? 0;
        if (delay > 0) await sleep(Math.min(delay, LIMITS.delayMs));
        if (b.silent.includes(method)) {
            this.inbound.delete(messageId);
            emit({ event: "call", id: this.id, messageId, method, params, silent: true });
            return NOREPLY;
        }
        if (b.errors[method])
            throw createRPCError(b.errors[method], `configured to fail ${method}`);
        if (method in b.answers) return b.answers[method];
        return ANSWERS[method].call(this, params, messageId);
    }

    // Replies the RPC layer could not match to a call of its own: to raw frames, to floods, or
    // unexpected ones; anything else it could not parse is a bad message.
    badMessage(text, error, response) {
        let frame;
        try {
            frame = JSON.parse(text);
        } catch {
            frame = undefined;
        }
        if (Array.isArray(frame) && (frame[0] === 3 || frame[0] === 4) &&
            typeof frame[1] === "string") {
            const messageId = frame[1];
            const flood = this.floods.get(messageId);
            if (flood) {
                this.floods.delete(messageId);
                flood.count(frame);
                return;
            }
            const raw = this.raw.get(messageId);
            this.raw.delete(messageId);
            emit({ event: raw ? "raw_reply" : "unexpected_reply", id: this.id, messageId,
                   method: raw?.method, ...replyFields(frame) });
            if (raw?.method && frame[0] === 3) this.checkResult(raw.method, messageId, frame[2]);
            return;
        }
        emit({ event: "bad_message", id: this.id, frame: clip(text), error: errInfo(error),
               answer: response ? replyFields(response) : undefined });
    }

    checkResult(method, messageId, result) {
        try {
            schemas.validate(`urn:${method}.conf`, result);
            return true;
        } catch (err) {
            this.counts.strict_violations++;
            emit({ event: "strict_violation", id: this.id, direction: "in", what: "result",
                   method, messageId, result, via: "raw", error: errInfo(err) });
            return false;
        }
    }

    call(method, params, timeoutMs) {
        // ocpp-rpc would queue a call made while connecting and let it time out if the connect
        // fails: refuse it now instead.
        if (!this.isOpen()) fail(`${this.id} is not connected`);
        const opts = {};
        if (timeoutMs !== undefined)
            opts.callTimeoutMs = int(timeoutMs, 1, LIMITS.callTimeoutMs, "timeout_ms");
        return this.client.call(method, params, opts);
    }

    connector(value, lo = 0) {
        return int(value, lo, this.connectors, "connector");
    }

    armHeartbeat() {
        clearInterval(this.heartbeat);
        this.heartbeat = null;
        if (!this.behaviour.auto_heartbeat || !this.isOpen() || this.boot?.status !== "Accepted")
            return;
        const s = Number(this.config.get("HeartbeatInterval")?.value);
        if (!(s > 0)) return;
        this.heartbeat = setInterval(() => {
            this.call("Heartbeat", {}).then(
                (response) => emit({ event: "heartbeat", id: this.id, ok: true, response }),
                (err) => emit({ event: "heartbeat", id: this.id, ok: false, error: errInfo(err) }));
        }, Math.max(1000, s * 1000));
    }

    bootParams(cmd = {}) {
        const params = {
            chargePointVendor: cmd.vendor ?? "phasewise-test",
            chargePointModel: cmd.model ?? "ocpp-rpc-peer",
            firmwareVersion: cmd.firmware ?? `ocpp-rpc-${RPC_VERSION}`,
        };
        const serial = cmd.serial ?? (this.id.length <= 25 ? this.id : undefined);
        if (serial !== undefined) params.chargePointSerialNumber = serial;
        return params;
    }

    async bootNotification(cmd = {}) {
        const response = await this.call("BootNotification", this.bootParams(cmd), cmd.timeout_ms);
        this.boot = { status: response.status, interval: response.interval,
                      currentTime: response.currentTime };
        if (response.status === "Accepted" && response.interval > 0)
            this.config.get("HeartbeatInterval").value = String(response.interval);
        this.armHeartbeat();
        return response;
    }

    statusParams(connectorId, cmd = {}) {
        const params = { connectorId, errorCode: cmd.errorCode ?? "NoError",
                         status: this.status[connectorId], timestamp: cmd.timestamp ?? now() };
        if (cmd.info !== undefined) params.info = cmd.info;
        if (cmd.vendorErrorCode !== undefined) params.vendorErrorCode = cmd.vendorErrorCode;
        return params;
    }

    meterParams(connectorId, m, context) {
        const sampled = [];
        const add = (value, measurand, unit, phase) => {
            const v = { value: String(value), context, format: "Raw", measurand, location: "Outlet",
                        unit };
            if (phase) v.phase = phase;
            sampled.push(v);
        };
        (m.currents ?? []).forEach((a, i) => add(a, "Current.Import", "A", `L${i + 1}`));
        if (m.offered !== undefined) add(m.offered, "Current.Offered", "A");
        (m.voltages ?? []).forEach((v, i) => add(v, "Voltage", "V", `L${i + 1}-N`));
        if (m.power_w !== undefined) add(m.power_w, "Power.Active.Import", "W");
        if (m.energyWh !== undefined) add(m.energyWh, "Energy.Active.Import.Register", "Wh");
        const meterValue = [{ timestamp: m.timestamp ?? now(),
                              sampledValue: m.sampledValue ?? sampled }];
        const params = { connectorId, meterValue };
        const tx = m.transactionId ?? this.transactions.get(connectorId);
        if (tx !== undefined) params.transactionId = tx;
        return params;
    }

    async triggered(message, connectorId) {
        const send = async (method, params, connector) => {
            try {
                const response = await this.call(method, params);
                emit({ event: "triggered", id: this.id, message, connector, ok: true, response });
            } catch (err) {
                emit({ event: "triggered", id: this.id, message, connector, ok: false,
                       error: errInfo(err) });
            }
        };
        const all = (from) => {
            const out = [];
            for (let c = from; c <= this.connectors; c++) out.push(c);
            return connectorId === undefined ? out : [connectorId];
        };
        switch (message) {
        case "BootNotification":
            return send("BootNotification", this.bootParams());
        case "Heartbeat":
            return send("Heartbeat", {});
        case "DiagnosticsStatusNotification":
        case "FirmwareStatusNotification":
            return send(message, { status: "Idle" });
        case "StatusNotification":
            for (const c of all(0)) await send(message, this.statusParams(c), c);
            return undefined;
        case "MeterValues":
            for (const c of all(1)) {
                const m = this.meter[c] ?? { energyWh: 0 };
                await send(message, this.meterParams(c, m, "Trigger"), c);
            }
            return undefined;
        default:
            return undefined;
        }
    }

    removeProfiles(match) {
        const before = this.profiles.length;
        const gone = this.profiles.filter(match);
        this.profiles = this.profiles.filter((p) => !match(p));
        for (const p of gone) {
            const last = this.lastLimit[p.connectorId];
            if (last && last.chargingProfileId === p.chargingProfileId) last.cleared = true;
        }
        return before - this.profiles.length;
    }

    // Why a charger would refuse this profile, or null (OCPP 1.6 sections 3.13 and 5.16).
    profileProblem(connectorId, p) {
        const cfg = (key) => Number(this.config.get(key)?.value);
        if (connectorId > this.connectors) return "no such connector";
        if (p.chargingProfilePurpose === "ChargePointMaxProfile" && connectorId !== 0)
            return "ChargePointMaxProfile only on connector 0";
        if (p.chargingProfilePurpose === "TxProfile") {
            if (connectorId === 0) return "TxProfile not on connector 0";
            const tx = this.transactions.get(connectorId);
            if (tx === undefined) return "TxProfile without a transaction";
            if (p.transactionId !== undefined && p.transactionId !== tx)
                return "TxProfile for another transaction";
        }
        const s = p.chargingSchedule;
        const units = this.config.get("ChargingScheduleAllowedChargingRateUnit")?.value ?? "";
        if (!units.split(",").includes(s.chargingRateUnit === "A" ? "Current" : "Power"))
            return `unit ${s.chargingRateUnit} not allowed`;
        if (s.chargingSchedulePeriod.length === 0) return "no periods";
        if (s.chargingSchedulePeriod.length > cfg("ChargingScheduleMaxPeriods"))
            return "too many periods";
        if (p.stackLevel > cfg("ChargeProfileMaxStackLevel")) return "stack level too high";
        const kept = this.profiles.filter((q) => !replaces(q, connectorId, p)).length;
        if (kept >= cfg("MaxChargingProfilesInstalled")) return "too many profiles installed";
        return null;
    }

    installProfile(connectorId, p) {
        const s = p.chargingSchedule;
        this.removeProfiles((q) => replaces(q, connectorId, p));
        const first = s.chargingSchedulePeriod[0] ?? {};
        const profile = {
            connectorId,
            chargingProfileId: p.chargingProfileId,
            purpose: p.chargingProfilePurpose,
            stackLevel: p.stackLevel,
            kind: p.chargingProfileKind,
            transactionId: p.transactionId,
            unit: s.chargingRateUnit,
            periods: s.chargingSchedulePeriod,
            limit: first.limit,
            numberPhases: first.numberPhases,
        };
        this.profiles.push(profile);
        this.lastLimit[connectorId] = { ...profile, periods: undefined, cleared: false };
    }

    // Closes politely; shutdown() stops waiting after LIMITS.shutdownMs whatever the peer does.
    async close() {
        clearInterval(this.heartbeat);
        this.heartbeat = null;
        if (this.client)
            await Promise.resolve(this.client.close({ code: 1000, reason: "peer quits" }))
                .catch(() => undefined);
    }

    state() {
        const config = {};
        for (const [k, v] of this.config) config[k] = v.value;
        return {
            connected: this.isOpen(),
            protocol: this.client?.protocol,
            boot: this.boot,
            connectors: this.connectors,
            status: this.status,
            transactions: Object.fromEntries(this.transactions),
            profiles: this.profiles,
            last_limit: this.lastLimit,
            meter: this.meter,
            remote_starts: this.remoteStarts,
            config,
            behaviour: this.behaviour,
            counts: this.counts,
        };
    }
}

// Default answers of a well-behaved charger to each central-system-initiated 1.6 message.
// `this` is the ChargePoint; the second argument is the call's message id.
const ANSWERS = {
    GetConfiguration(params) {
        const wanted = params.key?.length ? params.key : [...this.config.keys()];
        const configurationKey = [];
        const unknownKey = [];
        for (const key of wanted) {
            const entry = this.config.get(key);
            if (entry) configurationKey.push({ key, readonly: entry.readonly, value: entry.value });
            else unknownKey.push(key);
        }
        return unknownKey.length ? { configurationKey, unknownKey } : { configurationKey };
    },

    ChangeConfiguration({ key, value }) {
        const b = this.behaviour;
        const entry = this.config.get(key);
        const forced = b.change_config[key] ?? b.change_config["*"];
        if (forced) {
            if (entry && (forced === "Accepted" || forced === "RebootRequired"))
                entry.value = value;
            return { status: forced };
        }
        if (!entry) return { status: "NotSupported" };
        if (entry.readonly) return { status: "Rejected" };
        if (entry.kind === "int" && !/^\d+$/.test(value)) return { status: "Rejected" };
        if (entry.kind === "bool" && !/^(true|false)$/i.test(value)) return { status: "Rejected" };
        if (entry.kind === "measurands") {
            const items = value.split(",").map((s) => s.trim()).filter(Boolean);
            if (items.some((m) => !b.supported_measurands.includes(m)))
                return { status: "Rejected" };
        }
        entry.value = value;
        if (key === "HeartbeatInterval") this.armHeartbeat();
        return { status: "Accepted" };
    },

    SetChargingProfile({ connectorId, csChargingProfiles: p }) {
        const mode = this.behaviour.set_profile;
        if (mode === "Rejected" || mode === "NotSupported") return { status: mode };
        if (mode === "auto") {
            const problem = this.profileProblem(connectorId, p);
            if (problem) {
                emit({ event: "profile_rejected", id: this.id, connectorId,
                       chargingProfileId: p.chargingProfileId, why: problem });
                return { status: "Rejected" };
            }
        }
        this.installProfile(connectorId, p);
        return { status: "Accepted" };
    },

    ClearChargingProfile(params) {
        const cleared = this.removeProfiles(
            (q) => (params.id === undefined || q.chargingProfileId === params.id) &&
                   (params.connectorId === undefined || q.connectorId === params.connectorId) &&
                   (params.chargingProfilePurpose === undefined ||
                    q.purpose === params.chargingProfilePurpose) &&
                   (params.stackLevel === undefined || q.stackLevel === params.stackLevel));
        this.counts.cleared_profiles += cleared;
        const mode = this.behaviour.clear_profile;
        if (mode === "auto") return { status: cleared > 0 ? "Accepted" : "Unknown" };
        return { status: mode };
    },

    TriggerMessage({ requestedMessage, connectorId }, messageId) {
        const mode = this.behaviour.trigger;
        if (mode !== "Accepted") return { status: mode };
        if (!TRIGGERS.includes(requestedMessage)) return { status: "NotImplemented" };
        if (connectorId !== undefined && connectorId > this.connectors)
            return { status: "Rejected" };
        // Sent only once the Accepted answer is on the wire, as the spec orders it.
        this.after.set(messageId, () => {
            this.triggered(requestedMessage, connectorId).catch((err) =>
                emit({ event: "internal_error", where: "trigger", error: errInfo(err) }));
        });
        return { status: "Accepted" };
    },

    GetCompositeSchedule({ connectorId, duration }) {
        // Simplified: the highest-ranked installed profile of the connector, else of connector 0.
        const rank = { TxProfile: 3, TxDefaultProfile: 2, ChargePointMaxProfile: 1 };
        const pick = (c) => this.profiles.filter((p) => p.connectorId === c)
                                 .sort((a, b) => rank[b.purpose] - rank[a.purpose] ||
                                                 b.stackLevel - a.stackLevel)[0];
        if (connectorId > this.connectors) return { status: "Rejected" };
        const p = pick(connectorId) ?? pick(0);
        if (!p) return { status: "Rejected" };
        return {
            status: "Accepted",
            connectorId,
            scheduleStart: now(),
            chargingSchedule: { duration, chargingRateUnit: p.unit,
                                chargingSchedulePeriod: p.periods },
        };
    },

    RemoteStartTransaction(params) {
        this.remoteStarts.push(params);
        if (this.remoteStarts.length > LIMITS.listed) this.remoteStarts.shift();
        return { status: this.behaviour.remote_start };
    },

    RemoteStopTransaction({ transactionId }) {
        const known = [...this.transactions.values()].includes(transactionId);
        return { status: known ? "Accepted" : "Rejected" };
    },

    Reset() {
        return { status: "Accepted" };
    },
    ChangeAvailability() {
        return { status: "Accepted" };
    },
    UnlockConnector() {
        return { status: "Unlocked" };
    },
    ClearCache() {
        return { status: "Accepted" };
    },
    DataTransfer() {
        return { status: "UnknownVendorId" };
    },
    GetDiagnostics() {
        return {};
    },
    UpdateFirmware() {
        return {};
    },
    GetLocalListVersion() {
        return { listVersion: 0 };
    },
    SendLocalList() {
        return { status: "NotSupported" };
    },
    ReserveNow() {
        return { status: "Rejected" };
    },
    CancelReservation() {
        return { status: "Rejected" };
    },
};

// --- commands ----------------------------------------------------------------------------------

const cps = new Map();

function addChargePoint(spec) {
    if (cps.has(spec.id)) fail(`charge point ${spec.id} exists already`);
    if (cps.size >= LIMITS.chargePoints) fail(`at most ${LIMITS.chargePoints} charge points`);
    const cp = new ChargePoint(spec);
    cps.set(cp.id, cp);
    return cp;
}

function cpOf(cmd) {
    const cp = cps.get(cmd.id);
    if (!cp) fail(`no charge point "${cmd.id}"`);
    return cp;
}

const COMMANDS = {
    add(cmd) {
        const { cmd: _c, ref: _r, ...spec } = cmd;
        addChargePoint(spec);
        return {};
    },

    connect(cmd) {
        return cpOf(cmd).connect();
    },

    disconnect(cmd) {
        const cp = cpOf(cmd);
        if (!cp.client) fail(`${cp.id} was never connected`);
        const opts = { code: cmd.code ?? 1000, reason: cmd.reason ?? "",
                       force: Boolean(cmd.force) };
        return Promise.resolve(cp.client.close(opts)).then((closed) => ({ closed }));
    },

    configure(cmd) {
        cpOf(cmd).configure(cmd);
        return {};
    },

    async boot(cmd) {
        return { response: await cpOf(cmd).bootNotification(cmd) };
    },

    async status(cmd) {
        const cp = cpOf(cmd);
        const c = cp.connector(cmd.connector ?? 0);
        if (typeof cmd.status !== "string") fail("status needs a \"status\"");
        const previous = cp.status[c];
        cp.status[c] = cmd.status;
        try {
            return { response: await cp.call("StatusNotification", cp.statusParams(c, cmd),
                                              cmd.timeout_ms) };
        } catch (err) {
            cp.status[c] = previous;
            throw err;
        }
    },

    async start(cmd) {
        const cp = cpOf(cmd);
        const c = cp.connector(cmd.connector ?? 1, 1);
        const params = { connectorId: c, idTag: cmd.idTag ?? "PHASEWISE1",
                         meterStart: cmd.meterStart ?? 0, timestamp: cmd.timestamp ?? now() };
        if (cmd.reservationId !== undefined) params.reservationId = cmd.reservationId;
        const response = await cp.call("StartTransaction", params, cmd.timeout_ms);
        const idTagStatus = response.idTagInfo?.status;
        if (idTagStatus === "Accepted") cp.transactions.set(c, response.transactionId);
        return { response, transactionId: response.transactionId, idTagStatus };
    },

    async stop(cmd) {
        const cp = cpOf(cmd);
        const c = cp.connector(cmd.connector ?? 1, 1);
        const tx = cmd.transactionId ?? cp.transactions.get(c);
        if (tx === undefined) fail(`${cp.id}: no transaction on connector ${c}`);
        const params = { transactionId: tx, meterStop: cmd.meterStop ?? cp.meter[c]?.energyWh ?? 0,
                         timestamp: cmd.timestamp ?? now() };
        if (cmd.idTag !== undefined) params.idTag = cmd.idTag;
        if (cmd.reason !== undefined) params.reason = cmd.reason;
        const response = await cp.call("StopTransaction", params, cmd.timeout_ms);
        if (cp.transactions.get(c) === tx) {
            cp.transactions.delete(c);
            // A TxProfile ends with its transaction (OCPP 1.6 section 3.13.1).
            cp.removeProfiles((p) => p.connectorId === c && p.purpose === "TxProfile");
        }
        return { response, transactionId: tx };
    },

    async meter(cmd) {
        const cp = cpOf(cmd);
        const c = cp.connector(cmd.connector ?? 1);
        const m = { currents: cmd.currents, offered: cmd.offered, energyWh: cmd.energyWh,
                    voltages: cmd.voltages, power_w: cmd.power_w, timestamp: cmd.timestamp,
                    transactionId: cmd.transactionId, sampledValue: cmd.sampledValue };
        const params = cp.meterParams(c, m, cmd.context ?? "Sample.Periodic");
        const response = await cp.call("MeterValues", params, cmd.timeout_ms);
        cp.meter[c] = { currents: m.currents, offered: m.offered, energyWh: m.energyWh,
                        voltages: m.voltages, power_w: m.power_w };
        return { response };
    },

    async call(cmd) {
        if (typeof cmd.method !== "string") fail("call needs a \"method\"");
        return { response: await cpOf(cmd).call(cmd.method, cmd.params ?? {}, cmd.timeout_ms) };
    },

    raw(cmd) {
        const cp = cpOf(cmd);
        if (typeof cmd.text !== "string") fail("raw needs a \"text\"");
        const bytes = Buffer.byteLength(cmd.text);
        if (bytes > LIMITS.textBytes) fail(`raw text over ${LIMITS.textBytes} bytes`);
        if (!cp.isOpen()) fail(`${cp.id} is not connected`);
        let messageId;
        try {
            const f = JSON.parse(cmd.text);
            if (Array.isArray(f) && f[0] === 2 && typeof f[1] === "string") {
                messageId = f[1];
                track(cp.raw, messageId, { method: typeof f[2] === "string" ? f[2] : undefined });
            }
        } catch {
            messageId = undefined; // malformed on purpose: any reply is an unexpected_reply
        }
        cp.client.sendRaw(cmd.text);
        return { bytes, messageId };
    },

    async flood(cmd) {
        const cp = cpOf(cmd);
        const count = int(cmd.count ?? 100, 1, LIMITS.floodCount, "count");
        const perS = int(cmd.per_s ?? 1000, 1, LIMITS.floodPerS, "per_s");
        const waitMs = int(cmd.wait_ms ?? 5000, 0, LIMITS.floodWaitMs, "wait_ms");
        const method = cmd.method ?? "Heartbeat";
        const tail = `,${JSON.stringify(method)},${JSON.stringify(cmd.params ?? {})}]`;
        const tag = `flood-${++floodSeq}-`;
        const pending = new Set();
        const f = {
            results: 0,
            invalid_results: 0,
            errors: {},
            count(frame) {
                pending.delete(frame[1]);
                if (frame[0] === 3) {
                    this.results++;
                    try {
                        schemas.validate(`urn:${method}.conf`, frame[2]);
                    } catch {
                        this.invalid_results++;
                    }
                } else {
                    this.errors[frame[2]] = (this.errors[frame[2]] ?? 0) + 1;
                }
            },
        };
        const started = Date.now();
        let sent = 0;
        while (sent < count && cp.isOpen() && Date.now() - started < LIMITS.floodMs) {
            const due = Math.min(count, 1 + Math.floor(((Date.now() - started) * perS) / 1000));
            for (; sent < due && cp.isOpen(); sent++) {
                const messageId = tag + sent;
                cp.floods.set(messageId, f);
                pending.add(messageId);
                cp.client.sendRaw(`[2,${JSON.stringify(messageId)}${tail}`);
            }
            if (sent < count) await sleep(5);
        }
        const sentMs = Date.now() - started;
        const deadline = Date.now() + waitMs;
        while (pending.size > 0 && cp.isOpen() && Date.now() < deadline) await sleep(10);
        for (const messageId of pending) cp.floods.delete(messageId);
        const answered = sent - pending.size;
        return { sent, answered, results: f.results, invalid_results: f.invalid_results,
                 errors: f.errors, unanswered: pending.size, sent_ms: sentMs,
                 elapsed_ms: Date.now() - started, connected: cp.isOpen() };
    },

    state(cmd) {
        return { state: cpOf(cmd).state() };
    },

    list() {
        return { ids: [...cps.keys()] };
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
    // {"cmd":"connect","ids":[...]} (or no id at all: every charge point) is one command per id.
    if (cmd.cmd === "connect" && cmd.id === undefined) {
        const ids = cmd.ids ?? [...cps.keys()];
        for (const id of Array.isArray(ids) ? ids : [ids])
            runCommand({ ...cmd, ids: undefined, id });
        return;
    }
    runCommand(cmd);
}

let shuttingDown = false;

async function shutdown(code) {
    if (shuttingDown) return;
    shuttingDown = true;
    const closing = Promise.allSettled([...cps.values()].map((cp) => cp.close()));
    await Promise.race([closing, sleep(LIMITS.shutdownMs)]);
    emit({ event: "exit", code, unfinished_commands: running });
    process.exit(code);
}

// --- start -------------------------------------------------------------------------------------

function parseArgs(argv) {
    const specs = [];
    for (let i = 2; i < argv.length; i++) {
        const a = argv[i];
        const value = () => {
            if (i + 1 >= argv.length) fail(`${a} needs a value`);
            return argv[++i];
        };
        if (a === "--url") defaultUrl = value();
        else if (a === "--cp") specs.push({ id: value() });
        else if (a === "--cps") {
            const list = JSON.parse(value());
            if (!Array.isArray(list))
                fail("--cps takes a JSON array of {id, endpoint, password, ...}");
            specs.push(...list);
        } else if (a === "--trace") trace = true;
        else fail(`unknown argument ${a}`);
    }
    return specs;
}

process.on("unhandledRejection", (reason) => {
    emit({ event: "internal_error", where: "unhandledRejection", error: errInfo(reason) });
});
process.on("uncaughtException", (err) => {
    emit({ event: "internal_error", where: "uncaughtException", error: errInfo(err),
           stack: clip(String(err?.stack ?? ""), 2000) });
    process.exit(70);
});
process.stdout.on("error", () => process.exit(0)); // the test went away
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => shutdown(0));

try {
    for (const spec of parseArgs(process.argv)) addChargePoint(spec);
} catch (err) {
    console.error(`ocpp_cp_peer: ${err.message}`);
    console.error("usage: node ocpp_cp_peer.mjs --url ws://127.0.0.1:PORT/PATH [--cp ID]... " +
                  "[--cps JSON] [--trace]");
    process.exit(2);
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on("line", onLine);
rl.on("close", () => shutdown(0));
emit({ event: "ready", ids: [...cps.keys()], url: defaultUrl, ocpp_rpc: RPC_VERSION,
       node: process.version });
