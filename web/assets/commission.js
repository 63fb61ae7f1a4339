/* The commissioning view: the facility configuration (docs/config.md) as forms. The forms edit a
 * draft copy of the config; the appliance validates it and its messages appear next to the
 * field they name ("chargers[3].wiring"); Preview runs the balancer on the draft with the
 * measurements of now; Save replaces the running config atomically, and settings that wait for
 * a restart are listed. Export and import move the draft as a JSON file. Chargers and meters
 * are edited in the link form ("link": {"lan": {"device_id": N}}); an imported file with the
 * old keys is turned into it. A circuit's meter is a LAN device, a DEFA frame, a Modbus TCP
 * meter or an MQTT feed; the generic Modbus map's registers are edited as JSON. "Test read" reads
 * a circuit's meter as the draft describes it (POST /api/meters/test) and shows the values per
 * line or the exact error, without saving anything. A charger is reached over the LAN or as an
 * OCPP charge point's connector; the OCPP section sets up the central system and its charge
 * points (a generated key is shown until saved: the appliance keeps only its hash), the
 * unassigned list offers "Assign" for a charge point that connected, and the tags (RFID cards)
 * are edited here too, with the operator's CSMS when the appliance is a local controller
 * (docs/ocpp.md). A circuit has a static reserve for its own load that no
 * meter sees (reserve_a), shown in the preview; the status timing per charger kind is edited
 * with the transport's values as placeholders. On a first start (commissioning mode) a note
 * says so, the unassigned list is "discovered on the network" with "Add to the facility", and
 * "Scan a Modbus gateway" (POST /api/meters/scan) finds the meters behind a gateway for a
 * circuit. "Download backup" fetches GET /api/backup; "Restore from backup" sends a backup file
 * to POST /api/restore after a confirmation, shows the appliance's answer or refusal, and waits
 * for the restart that applies it. */
import {
  $, api, downloadText, el, errorText, facility, fmtAge, fmtKwh, loggedIn, session, setTags,
} from "./util.js";

const WIRINGS = ["L1L2L3", "L2L3L1", "L3L1L2", "L1L3L2", "L2L1L3", "L3L2L1", "L1", "L2", "L3",
                 "L1L2", "L2L3", "L3L1"];
const BALANCER = [
  ["reaction_s", "Car reaction time", "s"], ["lease_s", "Lease", "s"],
  ["tick_ms", "Control period", "ms"], ["min_run_s", "Min. run time", "s"],
  ["min_pause_s", "Min. pause time", "s"], ["offline_s", "Offline after", "s"],
  ["hysteresis_a", "Hysteresis", "A"], ["trim_headroom_a", "Trim headroom", "A"],
  ["probe_s", "Probe upward after", "s"], ["max_phase_switches", "Phase switches per session", ""],
  ["phase_hold_s", "Phase hold", "s"], ["active_phase_a", "Active phase above", "A"],
  ["meter_history_s", "Stale-meter window", "s"],
];

/* The Modbus register maps by their config name; the same list as config/config.c's
 * modbus_maps (the appliance refuses any other name). */
const MODBUS_MAPS = [
  ["sdm630", "Eastron SDM630"], ["sdm72v1", "Eastron SDM72 v1"], ["sdm72v2", "Eastron SDM72 v2"],
  ["em340", "Carlo Gavazzi EM340 / ET340"], ["em24", "Carlo Gavazzi EM24 (RS485)"],
  ["em24eth", "Carlo Gavazzi EM24 Ethernet"], ["abb_b2x", "ABB B23 / B24"],
  ["sunspec", "SunSpec (discovered)"], ["generic", "Generic (registers below)"],
];
const MQTT_PRESETS = [["ams", "AMS reader JSON"], ["json", "JSON, path per line"],
                      ["plain", "Topic per line"]];
const GENERIC_KEYS = ["function", "low_word_first", "lines"];
const LINES_EXAMPLE = '[{"address": 6, "type": "f32", "scale": 1}, null, {"address": 10, ' +
  '"type": "f32", "scale": 1}]';

/* OCPP: the quirk table entries an installer may force on a charge point (ocpp/quirks.c picks
 * one by vendor and model when "" ), and how Authorize requests are answered. */
const QUIRKS = [
  ["", "automatic (by vendor and model)"], ["default", "none: plain OCPP 1.6"],
  ["tx-default-only", "TxDefaultProfile only"], ["stack0", "stack level 0 only"],
  ["whole-amps", "whole amperes only"],
];
const AUTHORIZE = [["local_list", "only the tags listed below"], ["accept", "every tag"]];
/* With a CSMS upstream, who decides on a tag (ocpp.upstream.authorize); it replaces AUTHORIZE. */
const CSMS_AUTHORIZE = [
  ["csms", "the CSMS",
   "its answer when it comes within 5 s, else as below; a verdict it gave is kept an hour, so a " +
   "blocked card stays blocked while the CSMS is away"],
  ["charge_point", "the charge point",
   "every tag is accepted here: the charger's own list and cache decide (the CSMS can send it a " +
   "list)"],
  ["local", "phasewise's tag list", "only the tags listed below start a session"],
];
const OCPP_DEFAULTS = { listen: "127.0.0.1:8887", tls: false, meter_interval_s: 10,
                        heartbeat_s: 300, min_interval_s: 10, daily_writes: 500,
                        authorize: "local_list", charge_points: [] };
/* A generated charge point key: 24 characters without look-alikes (0/O, 1/l/I), about 140 bits,
 * typed by hand into a charger's web tool or app. */
const KEY_LEN = 24;
const KEY_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";

const cm = { draft: null, saved: "", ready: false, busy: false, pending: [], unassigned: null };

/* ---- paths into the draft: "chargers[3].wiring" ---- */

function parsePath(path) {
  const parts = [];
  for (const m of path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) parts.push(m[2] !== undefined ? Number(m[2]) : m[1]);
  return parts;
}

function getPath(obj, path) {
  let o = obj;
  for (const p of parsePath(path)) {
    if (o === null || o === undefined) return undefined;
    o = o[p];
  }
  return o;
}

/* Sets a value (undefined deletes the key), creating objects on the way. */
function setPath(obj, path, value) {
  const parts = parsePath(path);
  let o = obj;
  for (let i = 0; i < parts.length - 1; i++) {
    if (o[parts[i]] === undefined || o[parts[i]] === null) o[parts[i]] = {};
    o = o[parts[i]];
  }
  const last = parts[parts.length - 1];
  if (value === undefined) delete o[last];
  else o[last] = value;
}

/* ---- inputs bound to the draft ---- */

/* An input whose data-path names its place in the draft and data-type how to read it. */
function input(path, type, opts = {}) {
  const v = getPath(cm.draft, path);
  let e;
  if (type === "bool") {
    e = el("input");
    e.type = "checkbox";
    e.checked = !!v;
  } else if (opts.choices) {
    e = el("select");
    for (const [value, text] of opts.choices) {
      const o = el("option", "", text);
      o.value = value;
      e.appendChild(o);
    }
    e.value = v === null || v === undefined ? "" : String(v);
  } else if (type === "json") { /* raw JSON, e.g. a generic map's lines */
    e = el("textarea");
    e.rows = opts.rows || 4;
    e.spellcheck = false;
    e.style.width = "100%";
    e.style.fontFamily = "monospace";
    e.value = v === null || v === undefined ? "" : JSON.stringify(v);
    if (opts.placeholder) e.placeholder = opts.placeholder;
  } else {
    e = el("input");
    e.type = type === "number" ? "number" : type === "password" ? "password" : "text";
    if (type === "password") {
      e.autocomplete = "new-password";
      e.style.width = "100%";
    }
    if (type === "number") e.step = "any";
    if (opts.list) e.setAttribute("list", opts.list);
    e.value = v === null || v === undefined ? "" : Array.isArray(v) ? v.join(", ") : String(v);
    if (opts.placeholder) e.placeholder = opts.placeholder;
  }
  if (opts.optional) e.dataset.optional = "1";
  if (opts.rerender) e.dataset.rerender = "1";
  e.dataset.path = path;
  e.dataset.type = type;
  if (opts.required) e.required = true;
  return e;
}

/* A labelled field; errors for its path appear inside it, under the input. */
function fld(label, control, unit, wide) {
  const w = el("label", "fld" + (wide ? " wide" : ""));
  w.appendChild(el("span", "fld-label", label + (unit ? " (" + unit + ")" : "")));
  w.appendChild(control);
  w.dataset.for = control.dataset.path || "";
  return w;
}

/* Reads an input's value in the draft's terms; undefined means "leave out" (the default). */
function readInput(e) {
  switch (e.dataset.type) {
  case "bool":
    return e.checked;
  case "number": {
    if (e.value.trim() === "") return undefined;
    const n = Number(e.value);
    return isFinite(n) ? n : e.value; /* the server says what is wrong with it */
  }
  case "amps": { /* "40" or "40, 40, 32" */
    const t = e.value.trim();
    if (t === "") return undefined;
    const parts = t.split(/[\s,;]+/).map(Number);
    if (parts.some((x) => !isFinite(x))) return t;
    return parts.length === 1 ? parts[0] : parts;
  }
  case "parent":
    return e.value === "" ? null : e.value;
  case "password": /* the appliance never sends it back: empty keeps the saved one, unless the
                     * field was cleared on purpose ("" removes it) */
    return e.value === "" ? (e.dataset.cleared ? "" : null) : e.value;
  case "secret": /* a charge point's new password; left out, the saved one is kept */
    return e.value === "" ? undefined : e.value;
  case "json": { /* not JSON yet: sent as text, and the appliance says what it must be */
    if (e.value.trim() === "") return undefined;
    try {
      return JSON.parse(e.value);
    } catch (err) {
      return e.value;
    }
  }
  default:
    return e.value === "" && e.dataset.optional ? undefined : e.value;
  }
}

/* The three per-line inputs of a limit: one number when they agree, else [L1, L2, L3]. */
function readLines(group) {
  const vals = [...group.querySelectorAll("input")].map((i) =>
    i.value.trim() === "" ? NaN : Number(i.value));
  if (vals.every((v) => isNaN(v))) return undefined;
  if (vals.every((v) => v === vals[0])) return vals[0];
  return vals.map((v) => (isNaN(v) ? 0 : v));
}

function linesGroup(path) {
  const group = el("div", "lines-input");
  group.dataset.path = path;
  group.dataset.type = "lines";
  const v = getPath(cm.draft, path);
  ["L1", "L2", "L3"].forEach((name, i) => {
    const e = el("input");
    e.type = "number";
    e.step = "any";
    e.setAttribute("aria-label", name);
    e.placeholder = name;
    e.dataset.line = String(i);
    e.value = v === undefined ? "" : String(Array.isArray(v) ? v[i] ?? "" : v);
    group.appendChild(e);
  });
  return group;
}

function onEdit(ev) {
  const t = ev.target;
  const group = t.closest("[data-type=lines], [data-type=listen]");
  const bound = group || (t.dataset && t.dataset.path ? t : null);
  if (!bound) return;
  const value = !group ? readInput(t) : group.dataset.type === "lines" ? readLines(group)
                                                                       : readListen(group);
  setPath(cm.draft, bound.dataset.path, value);
  clearError(bound.dataset.path);
  markDirty();
  /* Ids and names appear elsewhere (legends, pickers): redraw once the edit is done. */
  if (ev.type === "change" && t.dataset.rerender) render();
}

function markDirty() {
  const dirty = JSON.stringify(cm.draft) !== cm.saved;
  $("cfg-dirty").hidden = !dirty;
  $("commission").dataset.dirty = String(dirty);
}

/* ---- sections ---- */

function section(title, ...children) {
  const s = el("fieldset", "cfg-section");
  s.appendChild(el("legend", "", title));
  const grid = el("div", "fld-grid");
  grid.append(...children);
  s.appendChild(grid);
  return s;
}

function siteSection() {
  /* Redrawn on a change: the meters' "derive L2" choice is shown on IT grids only. */
  return section("Site",
    fld("Site name", input("site", "text")),
    fld("Grid", input("grid", "text", { choices: [["TN", "TN (230 V line–neutral)"],
                                                   ["IT", "IT (230 V between lines)"]],
                                        rerender: true })));
}

/* Fields marked "restart" take effect only when the appliance restarts (docs/config.md). */
function networkSection() {
  return section("Network and protocol",
    fld("Interface address", input("network.interface", "text", { placeholder: "127.0.0.1" })),
    fld("Multicast group", input("network.group", "text"), "restart"),
    fld("UDP port", input("network.port", "number"), "restart"),
    fld("TTL", input("network.ttl", "number"), "restart"),
    fld("Key file", input("network.key_file", "text"), "restart"),
    fld("Read DEFA meter frames", input("network.defa_meters", "bool"), "restart"),
    fld("Send DEFA meter frames", input("network.defa_emit", "bool"), "restart"),
    pairingBlock());
}

function pairingBlock() {
  const box = el("div", "pairing wide");
  const button = el("button", "button-quiet", "Show pairing text");
  button.type = "button";
  button.id = "pairing-show";
  const out = el("code", "pairing-text");
  out.id = "pairing-text";
  button.addEventListener("click", () => {
    api("GET", "/api/config/pairing").then((res) => {
      out.textContent = res.status === 200 ? res.data.grouped : errorText(res);
      out.dataset.hex = res.status === 200 ? res.data.pairing : "";
    });
  });
  box.append(el("p", "muted small",
    "Chargers and meters authenticate with the facility key. Type this text into a device " +
    "when pairing it; keep it secret."), button, out);
  return box;
}

function httpSection() {
  return section("Web access",
    fld("Listen address", input("http.listen", "text"), "restart"),
    fld("Dashboard needs a login", input("http.dashboard_login", "bool")),
    fld("HTTPS", input("http.tls.enabled", "bool"), "restart"),
    fld("Certificate file", input("http.tls.cert_file", "text"), "restart"),
    fld("Key file", input("http.tls.key_file", "text"), "restart"));
}

/* The broker of the meter feeds, of state out and commands (docs/mqtt.md), and the fleet
 * uplink's. The meters' connection is set up at start ("restart"); the state publisher and the
 * uplink connect again by themselves when their settings change. */
function brokerFields(base, restart) {
  const r = restart ? "restart" : undefined;
  return [
    fld("Broker host", input(base + ".host", "text", { placeholder: "none" }), r),
    fld("Port", input(base + ".port", "number", { placeholder: "1883, TLS 8883" }), r),
    fld("TLS", input(base + ".tls", "bool"), r),
    fld("CA file", input(base + ".ca_file", "text", { placeholder: "system CAs" }), r),
    fld("Client certificate file", input(base + ".cert_file", "text",
                                         { placeholder: "none", optional: true }), r),
    fld("Client key file", input(base + ".key_file", "text",
                                 { placeholder: "none", optional: true }), r),
    fld("User name", input(base + ".username", "text"), r),
    fld("Password", input(base + ".password", "password", {
      placeholder: getPath(cm.draft, base + ".password_set") ? "saved: type to replace" : "",
    }), r),
    fld("Client id", input(base + ".client_id", "text", { placeholder: "phasewise-<site>" }), r),
  ];
}

/* The answer of a connection test as text. */
function brokerTestText(r) {
  return r.ok ? "Connected to " + r.broker + " in " + r.elapsed_ms + " ms"
              : r.error + " (" + r.elapsed_ms + " ms)";
}

/* A button that asks the appliance something about the draft (nothing is saved) and shows the
 * answer beside it. o: label, key (the button's and the output's data-<key> / data-<key>-out
 * value's name), id, waiting (text while asked), ask() (the API call's promise), text(answer),
 * field(name of a field the answer marks), notDone (text when fields must be fixed first). */
function askBlock(o) {
  const box = el("div", "test-read wide");
  const button = el("button", "button-quiet small", o.label);
  button.type = "button";
  button.dataset[o.key] = o.id;
  const out = el("output", "test-read-out small");
  out.dataset[o.key + "Out"] = o.id;
  out.setAttribute("aria-live", "polite");
  const fail = (text) => {
    out.textContent = text;
    out.className = "test-read-out small bad";
    out.dataset.ok = "false";
  };
  button.addEventListener("click", () => {
    button.disabled = true;
    out.className = "test-read-out small muted";
    out.textContent = o.waiting;
    delete out.dataset.ok;
    o.ask()
      .then((res) => {
        if (res.status === 200 && res.data) {
          out.textContent = o.text(res.data);
          out.className = "test-read-out small " + (res.data.ok ? "ok" : "bad");
          out.dataset.ok = String(!!res.data.ok);
        } else if (res.data && Array.isArray(res.data.errors)) {
          showErrors(res.data.errors.map((e) => ({ field: o.field(e.field), message: e.message })));
          fail(o.notDone);
        } else {
          fail(errorText(res));
        }
      }, () => fail("The appliance did not answer."))
      .finally(() => { button.disabled = false; });
  });
  box.append(button, out);
  return box;
}

/* A "Test connection" button for the broker of target ("mqtt", "uplink") as the draft has
 * it: POST /api/mqtt/test opens a connection of its own; nothing is saved. */
function brokerTestBlock(target) {
  return askBlock({
    label: "Test connection", key: "brokerTest", id: target,
    waiting: "Connecting… (up to 10 s)",
    ask: () => {
      const b = Object.assign({}, cm.draft[target] || {});
      delete b.publish; delete b.commands; delete b.site; delete b.prefix; delete b.password_set;
      return api("POST", "/api/mqtt/test", { target, broker: b });
    },
    text: brokerTestText,
    field: (f) => f.replace(/^broker/, target),
    notDone: "Not tested: fix the fields marked in red first.",
  });
}

function mqttSection() {
  const p = "mqtt.publish.", c = "mqtt.commands.";
  return section("MQTT: meter feeds, Home Assistant, commands",
    ...brokerFields("mqtt", true),
    fld("Keepalive", input("mqtt.keepalive_s", "number"), "s"),
    brokerTestBlock("mqtt"),
    el("p", "muted small wide",
       "State out: every charger's and circuit's values as retained topics under " +
       "<prefix>/<site>/, with Home Assistant discovery (docs/mqtt.md). Commands are " +
       "refused unless checked here."),
    fld("Publish state", input(p + "enabled", "bool")),
    fld("Topic prefix", input(p + "prefix", "text", { placeholder: "phasewise" })),
    fld("Home Assistant discovery", input(p + "home_assistant", "bool")),
    fld("Discovery prefix", input(p + "discovery_prefix", "text",
                                  { placeholder: "homeassistant" })),
    fld("Command: pause / resume", input(c + "pause", "bool")),
    fld("Command: priority", input(c + "priority", "bool")),
    fld("Command: maximum current", input(c + "max_current", "bool")),
    fld("Command: facility limit", input(c + "facility_limit", "bool")));
}

/* The fleet uplink: a second broker, usually central and over TLS (docs/mqtt.md). */
function uplinkSection() {
  return section("Fleet uplink",
    ...brokerFields("uplink", false),
    fld("Site id", input("uplink.site", "text", { placeholder: "from the site name" })),
    fld("Topic prefix", input("uplink.prefix", "text", { placeholder: "phasewise/fleet" })),
    brokerTestBlock("uplink"));
}

function balancerSection() {
  return section("Balancer", ...BALANCER.map(([key, label, unit]) =>
    fld(label, input("balancer." + key, "number"), unit)));
}

/* ---- links: {"lan": {"device_id": N}} or {"defa": {"serial": "..."}} ---- */

/* The link of a charger or meter in the config, of an unassigned device or of a live charger
 * (device_link: its "link" is the network it uses); the old top-level device_id is LAN. */
function linkOf(o) {
  if (!o) return null;
  if (o.device_link && typeof o.device_link === "object") return o.device_link;
  if (o.link && typeof o.link === "object") return o.link;
  if (o.device_id !== undefined) return { lan: { device_id: o.device_id } };
  return null;
}

/* A link as text for people and for comparing: "lan device 1001", "defa meter ABC123",
 * "modbus 10.0.0.5:502 unit 3", "mqtt topic ams/meter" (as pw_cfg_link_format writes them). */
function linkText(o) {
  const l = linkOf(o);
  if (l && l.lan) return "lan device " + l.lan.device_id;
  if (l && l.defa) return "defa meter " + l.defa.serial;
  if (l && l.modbus) return "modbus " + l.modbus.host + ":" + (l.modbus.port ?? 502) + " unit " +
    (l.modbus.unit ?? 1);
  if (l && l.mqtt) {
    const first = (l.mqtt.topics || []).find((t) => t);
    return "mqtt topic " + (l.mqtt.preset === "plain" ? first || "" : l.mqtt.topic || "");
  }
  if (l && l.ocpp) return "ocpp " + l.ocpp.id + " connector " + (l.ocpp.connector ?? 1);
  return "";
}

function lanId(o) {
  const l = linkOf(o);
  return l && l.lan ? Number(l.lan.device_id) || 0 : 0;
}

/* Turns the old keys of a file (a charger's or meter's device_id, a meter's defa_serial) into
 * links, keeping the key order, so that the forms only know one form. Both given: left as
 * they are for the appliance to name the conflict. */
function toLinkForm(doc) {
  const convert = (o, oldKeys) => {
    const given = oldKeys.filter((k) => o && o[k] !== undefined);
    if (given.length !== 1 || o.link !== undefined) return o;
    const out = {};
    for (const [k, v] of Object.entries(o)) {
      if (k !== given[0]) out[k] = v;
      else out.link = k === "defa_serial" ? { defa: { serial: v } } : { lan: { device_id: v } };
    }
    return out;
  };
  for (const n of Array.isArray(doc.nodes) ? doc.nodes : [])
    if (n && n.meter) n.meter = convert(n.meter, ["device_id", "defa_serial"]);
  if (Array.isArray(doc.chargers))
    doc.chargers = doc.chargers.map((c) => convert(c, ["device_id"]));
  return doc;
}

function meterKind(m) {
  if (!m) return "";
  const l = linkOf(m) || {};
  for (const k of ["defa", "modbus", "mqtt"]) if (l[k]) return k;
  return "lan";
}

/* A new meter link of that kind, keeping what the old link had of it. */
function newMeterLink(kind, m) {
  const old = linkOf(m) || {};
  if (kind === "lan") return { lan: { device_id: lanId(m) || undefined } };
  if (kind === "defa") return { defa: { serial: (old.defa && old.defa.serial) || "" } };
  if (kind === "modbus") return { modbus: { host: "", port: 502, unit: 1, map: "sdm630",
                                            interval_ms: 1000 } };
  return { mqtt: { preset: "ams", topic: "" } };
}

/* A select bound to the draft at path that restructures the draft itself when changed. */
function restructuring(path, choices, change) {
  const e = input(path, "text", { choices });
  e.addEventListener("change", () => {
    change(e.value);
    markDirty();
    render();
  });
  return e;
}

/* The fields of a Modbus TCP meter: the gateway, the unit behind it, the map and the poll. */
function modbusFields(mb, body) {
  const base = mb + ".link.modbus";
  const map = restructuring(base + ".map", MODBUS_MAPS, (v) => {
    body.map = v;
    if (v !== "generic") for (const k of GENERIC_KEYS) delete body[k];
    else Object.assign(body, { function: body.function ?? 4,
                               low_word_first: body.low_word_first ?? false });
  });
  const out = [
    fld("Gateway host", input(base + ".host", "text", { placeholder: "10.0.0.5" })),
    fld("Port", input(base + ".port", "number", { placeholder: "502" })),
    fld("Unit id", input(base + ".unit", "number", { placeholder: "1" })),
    fld("Register map", map),
    fld("Poll every", input(base + ".interval_ms", "number", { placeholder: "1000" }), "ms"),
    fld("Timeout", input(base + ".timeout_ms", "number", { placeholder: "1000" }), "ms"),
  ];
  if (body.map === "generic") {
    out.push(
      fld("Function", input(base + ".function", "number", {
        choices: [["4", "4: input registers"], ["3", "3: holding registers"]] })),
      fld("Low word first", input(base + ".low_word_first", "bool")),
      fld("Lines [L1, L2, L3] (JSON; null: not read)",
          input(base + ".lines", "json", { placeholder: LINES_EXAMPLE, rows: 3 }), "", true));
  }
  return out;
}

/* The fields of an MQTT feed: the preset, then its topic and paths or its three topics. */
function mqttFields(mb, body) {
  const base = mb + ".link.mqtt";
  const preset = restructuring(base + ".preset", MQTT_PRESETS, (v) => {
    const topic = body.topic || (body.topics || []).find((t) => t) || "";
    for (const k of Object.keys(body)) delete body[k];
    body.preset = v;
    if (v === "plain") body.topics = [topic, "", ""];
    else body.topic = topic;
    if (v === "json") body.paths = ["", "", ""];
  });
  const out = [fld("Feed", preset)];
  const lines = (key, label, placeholder) => ["L1", "L2", "L3"].map((l, i) =>
    fld(label + " " + l, input(base + "." + key + "[" + i + "]", "text",
                               { placeholder: i === 0 ? placeholder : "not reported" })));
  if (body.preset === "plain") {
    if (!Array.isArray(body.topics)) body.topics = ["", "", ""];
    out.push(...lines("topics", "Topic", "meter/l1/current"));
  } else {
    out.push(fld("Topic", input(base + ".topic", "text", { placeholder: "ams/meter" }), "", true));
    if (body.preset === "json") {
      if (!Array.isArray(body.paths)) body.paths = ["", "", ""];
      out.push(...lines("paths", "Path", "current.l1"));
    }
  }
  return out;
}

/* ---- test read of a circuit's meter ---- */

/* The answer of a test read as text: the values per line, or the error as the appliance gave
 * it. */
function testReadText(r) {
  if (!r.ok) return r.error;
  const lines = (r.line_a || []).map((a, l) => "L" + (l + 1) + " " +
    (typeof a === "number" ? a.toFixed(2) + " A" : "not read"));
  const parts = [lines.join(" · ")];
  if (typeof r.serial === "number") parts.push("serial " + r.serial);
  if (typeof r.energy_wh === "number") parts.push(fmtKwh(r.energy_wh) + " kWh imported");
  if (r.map) parts.push(r.map);
  parts.push(typeof r.age_ms === "number" ? "last reading " + fmtAge(r.age_ms) + " ago"
                                          : r.elapsed_ms + " ms");
  return parts.join(" · ");
}

/* A "Test read" button for node i's meter as the draft has it; nothing is saved. */
function testReadBlock(n, i) {
  /* The meter's fields as the circuit's: "meter.link.modbus.host" → nodes[i]. */
  const base = "nodes[" + i + "].";
  return askBlock({
    label: "Test read", key: "testRead", id: String(i),
    waiting: "Reading… (an MQTT feed may take up to 10 s)",
    ask: () => api("POST", "/api/meters/test", { meter: n.meter, grid: cm.draft.grid }),
    text: testReadText,
    field: (f) => (f.startsWith("meter") ? base + f : f),
    notDone: "Not read: fix the fields marked in red first.",
  });
}

function nodeCard(n, i, nodes) {
  const base = "nodes[" + i + "]";
  const card = el("fieldset", "cfg-card");
  card.dataset.node = n.id || "";
  card.dataset.path = base;
  card.appendChild(el("legend", "", i === 0 ? "Main fuse" : "Circuit " + (n.name || n.id || i)));
  const grid = el("div", "fld-grid");
  const parents = [["", "— (root)"], ...nodes.slice(0, i).map((p) => [p.id, p.name || p.id])];
  const parent = input(base + ".parent", "parent", { choices: parents });
  parent.disabled = i === 0;
  grid.append(
    fld("Id", input(base + ".id", "text", { required: true, rerender: true })),
    fld("Name", input(base + ".name", "text", { optional: true, rerender: true })),
    fld("Fed from", parent),
    fld("Limit per line", linesGroup(base + ".limit_a"), "A", true),
    fld("Margin", input(base + ".margin_a", "number"), "A"),
    fld("Max. imbalance", input(base + ".max_imbalance_a", "number"), "A"),
    reserveField(base, !!n.meter));
  const kind = el("select");
  for (const [v, t] of [["", "no meter"], ["lan", "LAN device id"], ["defa", "DEFA serial"],
                        ["modbus", "Modbus TCP"], ["mqtt", "MQTT"]]) {
    const o = el("option", "", t);
    o.value = v;
    kind.appendChild(o);
  }
  kind.value = meterKind(n.meter);
  kind.dataset.meterFor = String(i);
  kind.addEventListener("change", () => {
    const m = n.meter || {};
    /* derive_l2 is about the old meter's lines: it goes with it. */
    const rest = { timeout_s: m.timeout_s, fallback_a: m.fallback_a };
    if (kind.value === "") delete n.meter;
    else n.meter = { link: newMeterLink(kind.value, m), ...rest };
    markDirty();
    render();
  });
  grid.appendChild(fld("Meter", kind));
  if (n.meter) {
    const mb = base + ".meter";
    const k = meterKind(n.meter), link = linkOf(n.meter);
    if (k === "defa") grid.append(fld("DEFA serial", input(mb + ".link.defa.serial", "text")));
    else if (k === "modbus") grid.append(...modbusFields(mb, link.modbus));
    else if (k === "mqtt") grid.append(...mqttFields(mb, link.mqtt));
    else grid.append(fld("LAN device id", input(mb + ".link.lan.device_id", "number")));
    grid.append(
      fld("Stale after", input(mb + ".timeout_s", "number"), "s"),
      fld("Budget while stale", input(mb + ".fallback_a", "amps", { placeholder: "40 or 40, 40, 32" }),
          "A"));
    /* A 3-wire meter on an IT grid that reports L1 and L3 only (docs/config.md). */
    if (cm.draft.grid === "IT" || n.meter.derive_l2)
      grid.append(fld("Derive L2 from L1 and L3", input(mb + ".derive_l2", "bool")));
    grid.append(testReadBlock(n, i));
  }
  card.appendChild(grid);
  card.appendChild(actionButton("Remove circuit", () => {
    cm.draft.nodes.splice(i, 1);
    render();
  }, i === 0));
  return card;
}

/* The circuit's own non-EV load (lighting, ventilation, a lift) that no meter sees: a static
 * budget on its fuse, "8" or "8, 2, 2" per line (docs/config.md, reserve_a). */
function reserveField(base, metered) {
  const f = fld("Own load, no meter", input(base + ".reserve_a", "amps",
                                            { placeholder: "0 or 8, 2, 2" }), "A");
  const hint = el("span", "muted small", metered
    ? "Not used while the circuit has a meter: its reading includes this load."
    : "Lighting, ventilation, a lift on this panel: budgeted on its fuse, no meter sees it.");
  hint.dataset.field = "reserve-hint";
  f.appendChild(hint);
  return f;
}

/* ---- status timing per charger kind ---- */

const TIMING_FIELDS = [["status_min_ms", "Status at most every"],
                       ["status_max_ms", "Status at least every"],
                       ["status_delay_ms", "Status delay up to"], ["offline_ms", "Offline after"]];

/* The transport's timing of a kind as the draft stands, for the placeholders: the same rule as
 * pw_cfg_timing_default in config/config.c (LAN: the protocol's, offline from
 * balancer.offline_s; OCPP: from ocpp.meter_interval_s). */
function timingDefault(kind) {
  const d = cm.draft, num = (v, def) => (typeof v === "number" && isFinite(v) ? v : def);
  const delay = 250;
  if (kind === "lan") {
    return { status_min_ms: 1000, status_max_ms: 30000, status_delay_ms: delay,
             offline_ms: Math.round(num(getPath(d, "balancer.offline_s"), 90) * 1000) };
  }
  const every = num(getPath(d, "ocpp.meter_interval_s"), 10) * 1000;
  return { status_min_ms: every, status_max_ms: 2 * every + 5000, status_delay_ms: delay + 1000,
           offline_ms: 3 * every + 60000 };
}

/* One row of inputs per charger link kind; empty keeps the transport's value, shown as the
 * placeholder. OCPP appears once the central system is on or the file sets its timing. */
function timingSection() {
  const kinds = [["lan", "LAN chargers"]];
  if (cm.draft.ocpp || getPath(cm.draft, "timing.ocpp")) kinds.push(["ocpp", "OCPP charge points"]);
  const s = section("Status timing per charger kind");
  s.dataset.section = "timing";
  const grid = s.querySelector(".fld-grid");
  const wide = (e) => {
    e.style.gridColumn = "1 / -1";
    return e;
  };
  grid.appendChild(wide(el("p", "muted small",
    "How often chargers report, and how long a silent one is trusted: past the interval plus " +
    "the delay it is budgeted at its failsafe current, past \"offline\" it is offline. Empty " +
    "fields keep the transport's value (shown greyed); the appliance checks that the " +
    "interval plus the delay stays below the offline time.")));
  for (const [kind, title] of kinds) {
    const def = timingDefault(kind);
    grid.appendChild(wide(el("h4", "", title)));
    for (const [key, label] of TIMING_FIELDS) {
      const f = fld(label, input("timing." + kind + "." + key, "number",
                                 { placeholder: String(def[key]) }), "ms");
      f.dataset.timing = kind + "." + key;
      grid.appendChild(f);
    }
  }
  return s;
}

function actionButton(text, fn, disabled) {
  const b = el("button", "button-quiet small", text);
  b.type = "button";
  b.disabled = !!disabled;
  b.addEventListener("click", () => {
    fn();
    markDirty();
  });
  return b;
}

function liveBadge(c) {
  const key = linkText(c);
  const live = key && facility.chargers.find((x) => linkText(x) === key);
  const b = el("span", "pill small");
  if (!live) {
    b.textContent = "not in the running config";
  } else {
    b.textContent = (live.online ? "online · " + live.state : "offline") + " · " +
      (typeof live.limit_a === "number" ? live.limit_a.toFixed(1) + " A now" : "");
    b.classList.toggle("bad", !live.online);
  }
  return b;
}

function chargerCard(c, i) {
  const base = "chargers[" + i + "]";
  const card = el("fieldset", "cfg-card");
  card.dataset.charger = c.id || "";
  card.dataset.path = base;
  const legend = el("legend", "", (c.name || c.id || "charger") + " ");
  legend.appendChild(liveBadge(c));
  card.appendChild(legend);
  const nodes = (cm.draft.nodes || []).map((n) => [n.id, n.name || n.id]);
  const grid = el("div", "fld-grid");
  grid.append(
    fld("Id", input(base + ".id", "text", { required: true })),
    fld("Name", input(base + ".name", "text", { optional: true, rerender: true })),
    ...chargerLinkFields(c, i),
    fld("Circuit", input(base + ".node", "text", { choices: nodes })),
    fld("Wiring", input(base + ".wiring", "text", { list: "wiring-options",
                                                   placeholder: "L1L2L3" })),
    fld("Min", input(base + ".min_a", "number"), "A"),
    fld("Max", input(base + ".max_a", "number"), "A"),
    fld("Failsafe", input(base + ".failsafe_a", "number"), "A"),
    fld("Priority", input(base + ".priority", "number")),
    fld("Weight", input(base + ".weight", "number")),
    fld("Can switch to 1 phase", input(base + ".phase_switching", "bool")));
  card.appendChild(grid);
  const actions = el("div", "card-actions");
  actions.append(
    actionButton("Duplicate", () => {
      cm.draft.chargers.splice(i + 1, 0, copyCharger(c));
      render();
    }),
    actionButton("Remove charger", () => {
      cm.draft.chargers.splice(i, 1);
      render();
    }));
  card.appendChild(actions);
  return card;
}

/* The link of a charger: a LAN device or an OCPP charge point's connector. Changing the kind
 * replaces the link (a LAN device id means nothing to a charge point). */
function chargerLinkFields(c, i) {
  const base = "chargers[" + i + "].link";
  const kind = el("select");
  for (const [v, t] of [["lan", "LAN device"], ["ocpp", "OCPP charge point"]]) {
    const o = el("option", "", t);
    o.value = v;
    kind.appendChild(o);
  }
  const link = linkOf(c);
  kind.value = link && link.ocpp ? "ocpp" : "lan";
  kind.dataset.linkFor = String(i);
  kind.addEventListener("change", () => {
    const cps = (cm.draft.ocpp && cm.draft.ocpp.charge_points) || [];
    const cp = cps.length ? cps[0].id : "";
    c.link = kind.value === "ocpp" ? { ocpp: { id: cp, connector: freeConnector(cp) } }
                                   : { lan: { device_id: nextLanId() } };
    delete c.device_id;
    markDirty();
    render();
  });
  const out = [fld("Reached as", kind)];
  if (kind.value === "ocpp") {
    out.push(
      fld("Charge point id", input(base + ".ocpp.id", "text", { list: "cp-options",
                                                               placeholder: "CP-17" })),
      fld("Connector", input(base + ".ocpp.connector", "number", { placeholder: "1" })));
  } else {
    out.push(fld("LAN device id", input(base + ".lan.device_id", "number")));
  }
  return out;
}

function nextLanId() {
  return Math.max(0, ...cm.draft.chargers.map(lanId)) + 1;
}

/* The lowest connector of charge point cp that no charger of the draft uses (1..8). */
function freeConnector(cp) {
  const used = new Set(cm.draft.chargers.map(linkOf)
    .filter((l) => l && l.ocpp && l.ocpp.id === cp).map((l) => Number(l.ocpp.connector)));
  for (let k = 1; k <= 8; k++) if (!used.has(k)) return k;
  return 1;
}

/* A charger id that is free in the draft, made of base's letters, digits, "-", "_" and "." (the
 * ids the config takes, at most 31 characters). */
function freeChargerId(base) {
  const ids = new Set(cm.draft.chargers.map((x) => x.id));
  const stem = (base.replace(/[^A-Za-z0-9._-]/g, "-").replace(/^[-.]+/, "") || "c").slice(0, 28);
  if (!ids.has(stem)) return stem;
  for (let n = 2; ; n++) {
    const id = stem.slice(0, 31 - String(n).length - 1) + "-" + n;
    if (!ids.has(id)) return id;
  }
}

/* A new charger like c with the next free id and the next free LAN device id or, for a charger
 * on a charge point, the charge point's next free connector. */
function copyCharger(c) {
  const ids = new Set(cm.draft.chargers.map((x) => x.id));
  let n = cm.draft.chargers.length + 1, id;
  do id = "c" + String(n++).padStart(2, "0"); while (ids.has(id));
  const old = linkOf(c);
  const link = old && old.ocpp
    ? { ocpp: { id: old.ocpp.id, connector: freeConnector(old.ocpp.id) } }
    : { lan: { device_id: nextLanId() } };
  const copy = Object.assign({}, c, { id, name: id, link });
  delete copy.device_id;
  return copy;
}

/* Adds a charger for the unassigned charge point connector link.ocpp on node: named after the
 * charge point, with the config's default currents for the installer to check. The charge
 * point joins the OCPP list (without a password) when it is not in it. */
function assignOcpp(link, node) {
  const d = cm.draft;
  const cp = String(link.ocpp.id), connector = Number(link.ocpp.connector ?? 1) || 1;
  const multi = connector > 1 || d.chargers.some((x) => (linkOf(x) || {}).ocpp &&
                                                       linkOf(x).ocpp.id === cp);
  const id = freeChargerId(multi ? cp + "-" + connector : cp);
  d.chargers.push({ id, name: cp + (multi ? " #" + connector : ""), link: { ocpp: { id: cp,
                    connector } }, node, wiring: "L1L2L3", min_a: 6, max_a: 16 });
  if (d.ocpp) {
    if (!Array.isArray(d.ocpp.charge_points)) d.ocpp.charge_points = [];
    if (!d.ocpp.charge_points.some((x) => x.id === cp))
      d.ocpp.charge_points.push({ id: cp, quirks: "" });
  }
  return id;
}

function unassignedBlock() {
  const box = el("div", "unassigned");
  box.id = "cfg-unassigned";
  const list = facility.unassigned || [];
  cm.unassigned = unassignedKey(list);
  if (!list.length) {
    if (facility.commissioning)
      box.appendChild(el("p", "muted", "Nothing discovered yet: chargers announcing on the LAN " +
        "(paired with the facility key, see Network) and OCPP charge points that connect are " +
        "listed here as they are heard."));
    return box;
  }
  box.appendChild(el("p", "muted", facility.commissioning
    ? "Discovered on the network, live (not in the facility yet):"
    : "Devices speaking the protocol that are not configured:"));
  for (const d of list) {
    const row = el("div", "unassigned-row");
    const link = linkOf(d);
    row.dataset.link = linkText(d);
    if (link && link.lan) row.dataset.device = String(link.lan.device_id);
    row.append(el("span", "", linkText(d) + " · " + (d.model || "?") + " · seen " +
                  fmtAge(d.last_seen_ms) + " ago"));
    if (link && link.ocpp) {
      row.append(...assignControls(link));
      box.appendChild(row);
      continue;
    }
    /* Only a LAN device can take an allocation; other links can only be a circuit's meter. */
    if (link && link.lan && !cm.draft.chargers.some((c) => linkText(c) === linkText(d))) {
      const add = el("button", "button-quiet small",
                     facility.commissioning ? "Add to the facility" : "Add as charger");
      add.type = "button";
      add.dataset.addLan = String(link.lan.device_id);
      add.addEventListener("click", () => {
        const c = copyCharger(cm.draft.chargers[cm.draft.chargers.length - 1] ||
                              { node: cm.draft.nodes[0].id, wiring: "L1L2L3", min_a: 6,
                                max_a: 16, failsafe_a: 6 });
        c.link = JSON.parse(JSON.stringify(link));
        cm.draft.chargers.push(c);
        markDirty();
        render();
      });
      row.append(add);
    }
    box.appendChild(row);
  }
  return box;
}

/* The unassigned devices as a key, to tell when the list shown is out of date. */
function unassignedKey(list) {
  return list.map(linkText).join("|");
}

/* "Assign" for an OCPP connector: the circuit it hangs on, then a charger in the draft. Once
 * the draft has a charger on it, says which (saving is still the installer's step). */
function assignControls(link) {
  const key = linkText({ link });
  const taken = cm.draft.chargers.find((c) => linkText(c) === key);
  if (taken) {
    const note = el("span", "pill small", "assigned to " + taken.id + ": save to apply");
    note.dataset.assigned = taken.id;
    return [note];
  }
  const node = el("select");
  node.setAttribute("aria-label", "circuit for " + key);
  node.dataset.assignNode = key;
  for (const n of cm.draft.nodes) {
    const o = el("option", "", n.name || n.id);
    o.value = n.id;
    node.appendChild(o);
  }
  /* A charger rarely hangs on the main fuse itself: offer the first sub-circuit. */
  if (cm.draft.nodes.length > 1) node.value = cm.draft.nodes[1].id;
  const add = el("button", "button-quiet small",
                 facility.commissioning ? "Add to the facility" : "Assign");
  add.type = "button";
  add.dataset.assign = key;
  add.addEventListener("click", () => {
    assignOcpp(link, node.value);
    markDirty();
    render();
  });
  return [el("span", "muted small", "on"), node, add];
}

/* ---- "Scan a Modbus gateway" (POST /api/meters/scan) ---- */

/* What the installer typed and the last answer, kept across redraws (not part of the draft). */
const scan = { host: "", port: 502, from: 1, to: 10, result: null, busy: false };

/* One unit the scan found: its map and reading, and "Use as meter of" a circuit of the draft. */
function scanUnitRow(u, gw) {
  const row = el("div", "unassigned-row");
  row.dataset.scanUnit = String(u.unit);
  const read = Array.isArray(u.line_a)
    ? u.line_a.map((a, l) => "L" + (l + 1) + " " + (typeof a === "number" ? a.toFixed(2) + " A"
                                                                              : "–")).join(" · ")
    : "";
  const what = u.map ? (u.title || u.map) + (u.maps.length > 1 ? " (also reads as " +
    u.maps.filter((m) => m !== u.map).join(", ") + ")" : "") : "answers, but no map reads it";
  row.append(el("span", "", "unit " + u.unit + " · " + what + (read ? " · " + read : "") +
                (typeof u.serial === "number" ? " · serial " + u.serial : "")));
  if (!u.map) return row;
  const node = el("select");
  node.dataset.scanNode = String(u.unit);
  node.setAttribute("aria-label", "circuit for unit " + u.unit);
  for (const n of cm.draft.nodes) {
    const o = el("option", "", n.name || n.id);
    o.value = n.id;
    node.appendChild(o);
  }
  const use = el("button", "button-quiet small", "Use as meter");
  use.type = "button";
  use.dataset.scanUse = String(u.unit);
  use.addEventListener("click", () => {
    const n = cm.draft.nodes.find((x) => x.id === node.value);
    if (!n) return;
    const old = n.meter || {};
    n.meter = { link: { modbus: { host: gw.host, port: gw.port, unit: u.unit, map: u.map,
                                  interval_ms: 1000 } } };
    if (old.timeout_s !== undefined) n.meter.timeout_s = old.timeout_s;
    if (old.fallback_a !== undefined) n.meter.fallback_a = old.fallback_a;
    markDirty();
    render();
  });
  row.append(el("span", "muted small", "for"), node, use);
  return row;
}

function scanSection() {
  const s = el("fieldset", "cfg-section");
  s.id = "cfg-scan";
  s.appendChild(el("legend", "", "Scan a Modbus gateway"));
  s.appendChild(el("p", "muted small", "Asks each unit id behind a Modbus TCP gateway (at most " +
    "32 at once, one after the other) with every meter map, and lists the units that answered " +
    "and the map that read them. Maps that share registers all read: check the values " +
    "against the meter's display. Nothing is saved."));
  const grid = el("div", "fld-grid");
  const box = (key, type, label, placeholder) => {
    const e = el("input");
    e.type = type;
    e.value = String(scan[key]);
    if (placeholder) e.placeholder = placeholder;
    e.dataset.scan = key;
    e.addEventListener("input", () => {
      scan[key] = type === "number" ? Number(e.value) : e.value.trim();
    });
    return fld(label, e);
  };
  grid.append(box("host", "text", "Gateway", "10.0.0.5"), box("port", "number", "Port"),
              box("from", "number", "First unit"), box("to", "number", "Last unit"));
  s.appendChild(grid);
  const button = el("button", "button-quiet small", "Scan");
  button.type = "button";
  button.id = "cfg-scan-run";
  button.disabled = scan.busy;
  const out = el("output", "test-read-out small");
  out.id = "cfg-scan-out";
  out.setAttribute("aria-live", "polite");
  const list = el("div", "scan-units");
  list.id = "cfg-scan-units";
  const show = () => {
    list.replaceChildren();
    const r = scan.result;
    if (!r) return;
    if (r.text) {
      out.textContent = r.text;
      out.className = "test-read-out small " + r.kind;
    }
    const [host, port] = (r.gateway || ":").split(":");
    for (const u of r.units || []) list.appendChild(scanUnitRow(u, { host, port: Number(port) }));
  };
  button.addEventListener("click", () => {
    scan.busy = true;
    button.disabled = true;
    out.className = "test-read-out small muted";
    out.textContent = "Scanning… (a unit that does not answer takes a second)";
    api("POST", "/api/meters/scan", { host: scan.host, port: scan.port,
                                      units: [scan.from, scan.to] })
      .then((res) => {
        if (res.status === 200 && res.data) {
          const d = res.data;
          const n = d.units.length;
          d.text = (n ? n + " unit" + (n === 1 ? "" : "s") + " answered" : "No unit answered") +
            " (" + d.reads + " reads, " + (d.elapsed_ms / 1000).toFixed(1) + " s)" +
            (d.ok ? "" : ": " + d.error);
          d.kind = d.ok && n ? "ok" : "bad";
          scan.result = d;
        } else {
          scan.result = { text: errorText(res), kind: "bad", units: [] };
        }
      }, () => (scan.result = { text: "The appliance did not answer.", kind: "bad", units: [] }))
      .finally(() => {
        scan.busy = false;
        button.disabled = false;
        show();
      });
  });
  show();
  s.append(button, out, list);
  return s;
}

/* Redraws the unassigned list when the live one changed (a charge point connected), keeping the
 * circuits chosen so far: a device turning up must not undo the installer's choice. */
function refreshUnassigned() {
  const box = $("cfg-unassigned");
  if (!box || !cm.draft || unassignedKey(facility.unassigned || []) === cm.unassigned) return;
  const chosen = new Map();
  for (const s of box.querySelectorAll("select[data-assign-node]"))
    chosen.set(s.dataset.assignNode, s.value);
  const fresh = unassignedBlock();
  for (const s of fresh.querySelectorAll("select[data-assign-node]"))
    if (chosen.has(s.dataset.assignNode)) s.value = chosen.get(s.dataset.assignNode);
  box.replaceWith(fresh);
}

/* ---- OCPP: the central system, its charge points, the tags ---- */

function randomKey() {
  const out = [];
  const buf = new Uint8Array(64);
  /* Bytes at or above the largest multiple of the alphabet size are skipped: no bias. */
  const top = 256 - (256 % KEY_CHARS.length);
  while (out.length < KEY_LEN) {
    crypto.getRandomValues(buf);
    for (const b of buf)
      if (b < top && out.length < KEY_LEN) out.push(KEY_CHARS[b % KEY_CHARS.length]);
  }
  return out.join("");
}

/* "ADDRESS:PORT" as [address, port]; an IPv6 address keeps its brackets. */
function parseListen(text) {
  const m = /^(.*):(\d*)$/.exec(String(text || ""));
  return m ? [m[1], m[2]] : [String(text || ""), ""];
}

function readListen(group) {
  const [addr, port] = [...group.querySelectorAll("input")].map((i) => i.value.trim());
  return addr === "" && port === "" ? undefined : addr + ":" + port;
}

function listenGroup(path) {
  const group = el("div", "listen-input");
  group.dataset.path = path;
  group.dataset.type = "listen";
  const [addr, port] = parseListen(getPath(cm.draft, path));
  for (const [name, value, type, placeholder] of [["address", addr, "text", "0.0.0.0"],
                                                  ["port", port, "number", "8887"]]) {
    const e = el("input");
    e.type = type;
    e.value = value;
    e.placeholder = placeholder;
    e.setAttribute("aria-label", "listen " + name);
    e.dataset.part = name;
    e.dataset.rerender = "1"; /* the charge points' URLs follow */
    group.appendChild(e);
  }
  return group;
}

function isLoopback(host) {
  return /^(127\.|localhost$|\[?::1\]?$)/.test(host);
}

/* The URL a charger is given: the appliance as this browser reaches it (a charger on the LAN
 * sees the same address), on the OCPP port; a listen address that is one interface's is used
 * as it is. */
function ocppUrl(id) {
  const o = cm.draft.ocpp || {};
  const [addr, port] = parseListen(o.listen);
  const any = addr === "" || addr === "0.0.0.0" || addr === "::" || addr === "[::]";
  let host = any || isLoopback(addr) ? location.hostname : addr;
  if (host.includes(":") && !host.startsWith("[")) host = "[" + host + "]";
  return (o.tls ? "wss://" : "ws://") + host + ":" + (port || "PORT") + "/ocpp/" + id;
}

/* What keeps chargers from reaching the URLs shown, in words. */
function reachNotes() {
  const o = cm.draft.ocpp || {};
  const [addr, port] = parseListen(o.listen);
  const notes = [];
  if (!port || Number(port) === 0) notes.push("No port: the central system is off.");
  if (isLoopback(addr))
    notes.push("It listens on " + addr + " only: chargers on the LAN cannot reach it. Give this " +
      "appliance's LAN address, or 0.0.0.0 for every interface (after a restart).");
  else if (isLoopback(location.hostname))
    notes.push("This browser reaches the appliance as " + location.hostname + ": on a charger, " +
      "put the appliance's LAN address in its place.");
  if (o.tls)
    notes.push("wss:// uses the certificate of web access (HTTPS): the chargers must trust it.");
  return notes;
}

/* OCPP security profiles 0-2 as the draft sets them up for charge point cp. */
function securityText(cp) {
  const hasKey = !!(cp.password || cp.password_set);
  if (!hasKey)
    return "Security profile 0: no password; anyone who can reach the port may connect as " +
      "this charge point. Only on a trusted, separate charger network.";
  return (cm.draft.ocpp.tls ? "Security profile 2: TLS and the password"
                            : "Security profile 1: the password, unencrypted (ws://)") +
    " — user name: the charge point id, password: the key (AuthorizationKey).";
}

/* The live state of charge point id, from the chargers on it and the unassigned list. */
function cpLive(id) {
  const on = facility.chargers.filter((c) => c.device_link && c.device_link.ocpp &&
                                            c.device_link.ocpp.id === id && c.ocpp);
  if (on.some((c) => c.ocpp.connected)) {
    const o = on.find((c) => c.ocpp.connected).ocpp;
    return ["connected" + (o.model ? " · " + [o.vendor, o.model].filter(Boolean).join(" ") : ""),
            true];
  }
  const seen = (facility.unassigned || []).find((d) => d.link && d.link.ocpp &&
                                                       d.link.ocpp.id === id);
  if (seen) return ["connected, no charger assigned", true];
  return [on.length ? "not connected" : "not seen", false];
}

function cpCard(cp, j) {
  const base = "ocpp.charge_points[" + j + "]";
  const card = el("fieldset", "cfg-card");
  card.dataset.cp = cp.id || "";
  card.dataset.path = base;
  const legend = el("legend", "", (cp.id || "charge point") + " ");
  const [liveText, up] = cpLive(cp.id);
  const badge = el("span", "pill small", liveText);
  badge.classList.toggle("bad", !up);
  legend.appendChild(badge);
  card.appendChild(legend);
  const grid = el("div", "fld-grid");
  grid.append(
    fld("Charge point id", input(base + ".id", "text", { required: true, rerender: true })),
    fld("Quirks", input(base + ".quirks", "text", { choices: QUIRKS })));
  const pw = el("div", "cp-password wide");
  const state = el("span", "small", cp.password_set ? "password set" : "no password set");
  state.dataset.field = "password-state";
  state.dataset.value = String(!!cp.password_set);
  const key = input(base + ".password", "secret", {
    placeholder: cp.password_set ? "type or generate to replace" : "16 to 40 characters" });
  key.autocomplete = "off";
  key.spellcheck = false;
  const gen = el("button", "button-quiet small", "Generate");
  gen.type = "button";
  gen.dataset.generate = String(j);
  gen.addEventListener("click", () => {
    cp.password = randomKey();
    markDirty();
    render();
  });
  pw.append(fld("Set password", key), gen, state);
  if (cp.password)
    pw.append(el("p", "hint small", "Enter this key on the charger now (its password or " +
      "AuthorizationKey): once saved, the appliance keeps only a hash and cannot show it again."));
  const url = el("div", "cp-url wide");
  const code = el("code", "", ocppUrl(cp.id || "ID"));
  code.dataset.field = "ocpp-url";
  url.append(el("span", "fld-label", "Central system URL for the charger"), code,
             el("p", "muted small", securityText(cp)));
  grid.append(pw, url);
  if (csmsOn()) grid.append(cpCsms(cp, base));
  card.appendChild(grid);
  card.appendChild(actionButton("Remove charge point", () => {
    cm.draft.ocpp.charge_points.splice(j, 1);
    render();
  }));
  return card;
}

/* ---- the local controller: the operator's CSMS (docs/ocpp.md "Local controller") ---- */

/* Why the appliance would refuse url as ocpp.upstream.url (config/config.c
 * parse_ocpp_upstream: ws:// or wss://, printable ASCII without spaces, an address after the
 * scheme), or "" when it takes it. */
function csmsUrlProblem(url) {
  const m = /^(wss?):\/\/(.*)$/.exec(url);
  if (!m) return "Not a CSMS URL: it starts with ws:// or wss://.";
  if (/[^\x21-\x7e]/.test(url)) return "Not a CSMS URL: no spaces or non-ASCII characters.";
  if (m[2] === "" || m[2][0] === "/" || m[2][0] === ":")
    return "Not a CSMS URL: the CSMS's address comes after " + m[1] + "://.";
  return "";
}

/* What the appliance takes but an installer should know, or "". */
function csmsUrlNote(url, ids) {
  const host = url.replace(/^wss?:\/\//, "").split("/")[0].replace(/:\d*$/, "");
  if (!/^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\])$/.test(host))
    return "Give a numeric address: a host name is resolved while every other connection and " +
      "the balancer wait.";
  const last = url.replace(/\/+$/, "").split("/").pop();
  if (ids.includes(last))
    return "Leave the charge point id out: phasewise appends each one's own id.";
  return "";
}

/* The URL the charge point id connects to at the CSMS: the configured one and "/<id>", as
 * transport/ocpp.c builds it. */
function csmsUrlFor(id) {
  const base = cm.draft.ocpp.upstream.url;
  return base + (base.endsWith("/") ? "" : "/") + id;
}

function csmsOn() {
  const up = cm.draft.ocpp && cm.draft.ocpp.upstream;
  return !!(up && up.url);
}

/* The group in the OCPP section; only the URL while it is empty (off). */
function csmsGroup() {
  const d = cm.draft;
  /* An emptied URL turns the local controller off: the rest goes with it, so that a CA file
   * left behind is not refused for a URL that is gone. */
  if (d.ocpp.upstream && !d.ocpp.upstream.url) delete d.ocpp.upstream;
  const on = csmsOn();
  if (on && d.ocpp.upstream.authorize === undefined) d.ocpp.upstream.authorize = "charge_point";
  const g = el("fieldset", "cfg-card csms");
  g.dataset.path = "ocpp.upstream";
  g.dataset.section = "csms";
  g.dataset.on = String(on);
  g.appendChild(el("legend", "", "Operator's CSMS (local controller)"));
  g.appendChild(el("p", "muted small", on
    ? "phasewise stays these charge points' central system and connects to the operator's CSMS " +
      "for each of them, under its id: the CSMS bills and runs its app, phasewise balances."
    : "Off. With a CSMS URL, phasewise passes the charge points' traffic on to an operator's " +
      "CSMS (billing, driver app) and still balances them; the chargers keep phasewise's URL."));
  const grid = el("div", "fld-grid");
  const url = input("ocpp.upstream.url", "text", { rerender: true,
                                                   placeholder: "ws://10.0.0.5:9000/ocpp" });
  url.spellcheck = false;
  const urlFld = fld("CSMS URL, without the charge point id", url, undefined, true);
  const check = el("span", "small", "");
  check.dataset.field = "csms-url-check";
  const ids = d.ocpp.charge_points.map((x) => x.id);
  const showCheck = () => {
    const v = url.value; /* as sent: the appliance refuses a stray space too */
    const problem = v ? csmsUrlProblem(v) : "";
    check.textContent = problem || (v ? csmsUrlNote(v, ids) : "");
    check.className = "small " + (problem ? "bad" : "muted");
    check.dataset.value = problem ? "bad" : "ok";
    check.hidden = !check.textContent;
  };
  url.addEventListener("input", showCheck);
  showCheck();
  urlFld.appendChild(check);
  grid.appendChild(urlFld);
  if (on) {
    const wss = d.ocpp.upstream.url.startsWith("wss://");
    /* Only TLS uses it; one left from a wss:// URL stays visible so its error can show. */
    if (wss || d.ocpp.upstream.ca_file)
      grid.appendChild(fld("CA file (PEM)", input("ocpp.upstream.ca_file", "text", {
        placeholder: "system CAs", optional: true }), undefined, true));
    const auth = input("ocpp.upstream.authorize", "text",
                       { choices: CSMS_AUTHORIZE, rerender: true });
    grid.appendChild(fld("Tags decided by", auth));
    const why = el("ul", "small csms-authorize");
    for (const [v, t, text] of CSMS_AUTHORIZE) {
      const li = el("li", v === d.ocpp.upstream.authorize ? "" : "muted", t + ": " + text + ".");
      li.dataset.authorize = v;
      why.appendChild(li);
    }
    why.appendChild(el("li", "", "This replaces \u201cTags accepted\u201d above while a CSMS " +
                                 "is set."));
    grid.appendChild(why);
  }
  g.appendChild(grid);
  return g;
}

/* A charge point's part of the local controller: its URL at the CSMS and the password the CSMS
 * expects of it (write-only: "set" or "not set"; a new value replaces it, empty keeps it,
 * "Clear" removes it on the next save). */
function cpCsms(cp, base) {
  const box = el("div", "cp-password cp-csms wide");
  box.dataset.field = "csms";
  const path = base + ".upstream_password";
  const saved = !!cp.upstream_password_set;
  const key = input(path, "password", {
    placeholder: saved ? "saved: type to replace" : "none" });
  key.autocomplete = "off";
  key.spellcheck = false;
  if (cp.upstream_password === "") key.dataset.cleared = "1";
  const state = el("span", "small");
  state.dataset.field = "upstream-password-state";
  state.dataset.value = String(saved);
  const showState = () => {
    state.textContent = key.value !== "" ? "replaced when saved"
      : key.dataset.cleared && saved ? "removed when saved"
      : saved ? "set" : "not set";
  };
  key.addEventListener("input", showState);
  showState();
  box.append(fld("Password at the CSMS", key), state);
  if (saved && !key.dataset.cleared) {
    const clear = el("button", "button-quiet small", "Clear");
    clear.type = "button";
    clear.dataset.clearUpstream = cp.id || "";
    clear.addEventListener("click", () => {
      cp.upstream_password = "";
      markDirty();
      render();
    });
    box.appendChild(clear);
  }
  const bad = csmsUrlProblem(cm.draft.ocpp.upstream.url);
  const code = el("code", bad ? "muted" : "", bad ? "(once the CSMS URL above is right)"
                                                  : csmsUrlFor(cp.id || "ID"));
  code.dataset.field = "csms-url";
  const where = el("div", "cp-url wide");
  where.append(el("span", "fld-label", "Its URL at the CSMS"), code,
               el("p", "muted small", "Register it at the CSMS under the same id" +
                  ((saved && !key.dataset.cleared) || cp.upstream_password
                    ? ", with this password (HTTP Basic, user name: the charge point id)."
                    : ", without a password.")));
  box.appendChild(where);
  return box;
}

/* The OCPP 1.6J central system (docs/ocpp.md); absent from the config until it is set up. */
function ocppSection() {
  const s = el("fieldset", "cfg-section");
  s.dataset.path = "ocpp";
  s.dataset.section = "ocpp";
  s.appendChild(el("legend", "", "OCPP charge points"));
  const d = cm.draft;
  if (!d.ocpp) {
    const on = el("button", "button-quiet", "Set up OCPP");
    on.type = "button";
    on.id = "cfg-ocpp-on";
    on.addEventListener("click", () => {
      d.ocpp = JSON.parse(JSON.stringify(OCPP_DEFAULTS));
      markDirty();
      render();
    });
    s.append(el("p", "muted", "Chargers that speak OCPP 1.6J connect to this appliance as " +
                              "their central system."), on);
    return s;
  }
  if (!Array.isArray(d.ocpp.charge_points)) d.ocpp.charge_points = [];
  const grid = el("div", "fld-grid");
  grid.append(
    fld("Listen on (address, port)", listenGroup("ocpp.listen"), "restart", true),
    fld("TLS (wss://)", input("ocpp.tls", "bool", { rerender: true }), "restart"),
    fld("Meter values every", input("ocpp.meter_interval_s", "number"), "s"),
    fld("Heartbeat", input("ocpp.heartbeat_s", "number"), "s"),
    fld("Raise no sooner than", input("ocpp.min_interval_s", "number"), "s"),
    fld("Limits per connector a day", input("ocpp.daily_writes", "number")),
    fld("Tags accepted", input("ocpp.authorize", "text", { choices: AUTHORIZE })));
  s.appendChild(grid);
  const notes = reachNotes();
  const reach = el("ul", "hint small ocpp-reach");
  reach.id = "ocpp-reach";
  reach.hidden = !notes.length;
  for (const n of notes) reach.appendChild(el("li", "", n));
  s.appendChild(reach);
  s.appendChild(csmsGroup());
  const cards = el("div", "cfg-cards");
  cards.dataset.path = "ocpp.charge_points";
  d.ocpp.charge_points.forEach((cp, j) => cards.appendChild(cpCard(cp, j)));
  s.appendChild(cards);
  const add = el("button", "button-quiet", "Add charge point");
  add.type = "button";
  add.id = "cfg-add-cp";
  add.addEventListener("click", () => {
    const ids = new Set(d.ocpp.charge_points.map((x) => x.id));
    let n = d.ocpp.charge_points.length + 1, id;
    do id = "CP-" + n++; while (ids.has(id));
    d.ocpp.charge_points.push({ id, quirks: "" });
    markDirty();
    render();
  });
  s.appendChild(add);
  return s;
}

/* RFID tags (OCPP idTags): who a session's energy belongs to, and with "only the tags listed"
 * the cards a charger may start with. */
function tagsSection() {
  const d = cm.draft;
  const s = el("fieldset", "cfg-section");
  s.dataset.path = "tags";
  s.dataset.section = "tags";
  s.appendChild(el("legend", "", "Tags (" + (d.tags || []).length + ")"));
  s.appendChild(el("p", "muted small", "The id is what the charger reads off the card or " +
    "sends for its app (up to 20 characters, no spaces); the name is who it belongs to."));
  const list = el("div", "tag-rows");
  (d.tags || []).forEach((t, k) => {
    const row = el("div", "tag-row fld-grid");
    row.dataset.tag = t.id || "";
    row.dataset.path = "tags[" + k + "]";
    row.append(
      fld("Tag id", input("tags[" + k + "].id", "text", { required: true,
                                                       placeholder: "04A2B3C4" })),
      fld("Name", input("tags[" + k + "].name", "text", { placeholder: "Anna's Golf" })),
      actionButton("Remove", () => {
        d.tags.splice(k, 1);
        render();
      }));
    list.appendChild(row);
  });
  s.appendChild(list);
  const add = el("button", "button-quiet", "Add tag");
  add.type = "button";
  add.id = "cfg-add-tag";
  add.addEventListener("click", () => {
    if (!Array.isArray(d.tags)) d.tags = [];
    d.tags.push({ id: "", name: "" });
    markDirty();
    render();
    const ids = document.querySelectorAll("#cfg-form [data-section=tags] input[data-path$='.id']");
    if (ids.length) ids[ids.length - 1].focus();
  });
  s.appendChild(add);
  return s;
}

/* The charge point ids of the draft, offered in the chargers' OCPP id field. */
function cpOptions() {
  const list = el("datalist");
  list.id = "cp-options";
  const ids = new Set(((cm.draft.ocpp || {}).charge_points || []).map((x) => x.id));
  for (const d of facility.unassigned || []) if (d.link && d.link.ocpp) ids.add(d.link.ocpp.id);
  for (const id of ids) {
    const o = el("option");
    o.value = id;
    list.appendChild(o);
  }
  return list;
}

/* Rebuilds the forms from the draft (after a structural change or a load). */
function render() {
  const form = $("cfg-form");
  const scroll = window.scrollY;
  form.replaceChildren();
  const d = cm.draft;
  d.nodes = d.nodes || [];
  d.chargers = d.chargers || [];
  form.append(siteSection());
  const nodes = el("fieldset", "cfg-section");
  nodes.appendChild(el("legend", "", "Circuits (" + d.nodes.length + ")"));
  nodes.dataset.path = "nodes";
  d.nodes.forEach((n, i) => nodes.appendChild(nodeCard(n, i, d.nodes)));
  const addNode = el("button", "button-quiet", "Add circuit");
  addNode.type = "button";
  addNode.id = "cfg-add-node";
  addNode.addEventListener("click", () => {
    const ids = new Set(d.nodes.map((n) => n.id));
    let k = d.nodes.length, id;
    do id = "circuit-" + k++; while (ids.has(id));
    d.nodes.push({ id, name: id, parent: d.nodes.length ? d.nodes[0].id : null, limit_a: 32 });
    markDirty();
    render();
  });
  nodes.appendChild(addNode);
  form.append(nodes);
  const chargers = el("fieldset", "cfg-section");
  chargers.dataset.path = "chargers";
  chargers.appendChild(el("legend", "", "Chargers (" + d.chargers.length + ")"));
  chargers.appendChild(unassignedBlock());
  const cards = el("div", "cfg-cards");
  d.chargers.forEach((c, i) => cards.appendChild(chargerCard(c, i)));
  chargers.appendChild(cards);
  const addCharger = el("button", "button-quiet", "Add charger");
  addCharger.type = "button";
  addCharger.id = "cfg-add-charger";
  addCharger.addEventListener("click", () => {
    d.chargers.push(copyCharger(d.chargers[d.chargers.length - 1] ||
                                { node: d.nodes.length ? d.nodes[0].id : "", wiring: "L1L2L3" }));
    markDirty();
    render();
  });
  chargers.appendChild(addCharger);
  form.append(chargers, scanSection(), ocppSection(), tagsSection(), balancerSection(), timingSection(),
              networkSection(), mqttSection(), uplinkSection(), httpSection(), cpOptions());
  markDirty();
  window.scrollTo(0, scroll);
}

/* ---- messages by field ---- */

function clearError(path) {
  for (const e of document.querySelectorAll(".field-error")) {
    if (e.dataset.errorFor === path) e.remove();
  }
  const bound = document.querySelector(`[data-path="${path}"]`);
  if (bound) bound.removeAttribute("aria-invalid");
}

function clearErrors() {
  for (const e of document.querySelectorAll(".field-error")) e.remove();
  for (const e of document.querySelectorAll("[aria-invalid]")) e.removeAttribute("aria-invalid");
  $("cfg-errors").replaceChildren();
  $("cfg-errors").hidden = true;
}

/* The element for a field path, or for the nearest enclosing path the form shows. */
function targetFor(path) {
  let p = path;
  while (p) {
    const e = document.querySelector(`#cfg-form [data-path="${p}"]`);
    if (e) return e;
    const cut = Math.max(p.lastIndexOf("."), p.lastIndexOf("["));
    p = cut > 0 ? p.slice(0, cut) : "";
  }
  return null;
}

function showErrors(errors) {
  clearErrors();
  const list = $("cfg-errors");
  let first = null;
  for (const err of errors) {
    const target = targetFor(err.field);
    const msg = el("span", "field-error", err.message);
    msg.dataset.errorFor = err.field;
    msg.setAttribute("role", "alert");
    if (target) {
      target.setAttribute("aria-invalid", "true");
      const holder = target.closest(".fld") || target;
      if (holder.tagName === "FIELDSET") holder.insertBefore(msg, holder.children[1] || null);
      else holder.appendChild(msg);
      first = first || target;
    }
    const li = el("li");
    const b = el("button", "link", err.field);
    b.type = "button";
    b.addEventListener("click", () => target && target.focus && target.focus());
    li.append(b, el("span", "", ": " + err.message));
    list.appendChild(li);
  }
  list.hidden = errors.length === 0;
  if (first) first.scrollIntoView({ block: "center", behavior: "smooth" });
}

function setMessage(text, kind) {
  const m = $("cfg-message");
  m.textContent = text;
  m.dataset.kind = kind || "";
}

/* ---- actions ---- */

/* Runs an API call with the buttons disabled; handles 400 with errors by field. */
function act(method, path, body, ok) {
  if (cm.busy) return Promise.resolve();
  cm.busy = true;
  for (const b of document.querySelectorAll("#cfg-actions button")) b.disabled = true;
  setMessage("…");
  return api(method, path, body)
    .then((res) => {
      if (res.status === 200) {
        clearErrors();
        ok(res.data);
      } else if (res.data && Array.isArray(res.data.errors)) {
        showErrors(res.data.errors);
        setMessage(res.data.errors.length + " problem" + (res.data.errors.length === 1 ? "" : "s") +
          " to fix: see the fields marked in red.", "bad");
      } else {
        if (res.data && res.data.field) showErrors([{ field: res.data.field, message: errorText(res) }]);
        setMessage(errorText(res), "bad");
      }
    }, () => setMessage("The appliance did not answer.", "bad"))
    .finally(() => {
      cm.busy = false;
      for (const b of document.querySelectorAll("#cfg-actions button")) b.disabled = false;
    });
}

function validate() {
  return act("POST", "/api/config/validate", cm.draft, () =>
    setMessage("The configuration is valid.", "ok"));
}

function preview() {
  return act("POST", "/api/config/preview", cm.draft, (plan) => {
    renderPreview(plan);
    setMessage("Preview below: nothing was changed.", "ok");
  });
}

function save() {
  const first = facility.commissioning;
  return act("PUT", "/api/config", cm.draft, () => {
    setMessage(first ? "Saved: the facility is commissioned and balancing has started."
                     : "Saved and applied.", "ok");
    setTags(cm.draft.tags, true);
    $("preview").hidden = true;
    load().then(() => {
      if (cm.pending.length)
        setMessage("Saved. Some settings take effect after a restart (listed above).", "ok");
    });
  });
}

/* Settings saved but waiting for a restart, as GET /api/config lists them. */
function showPending(fields) {
  cm.pending = fields;
  const box = $("cfg-restart");
  box.replaceChildren();
  box.hidden = fields.length === 0;
  if (!fields.length) return;
  box.append(el("strong", "", "Saved; takes effect after a restart: "));
  fields.forEach((f, i) => box.append(el("code", "", f), i + 1 < fields.length ? ", " : "."));
}

function renderPreview(plan) {
  const box = $("preview");
  box.hidden = false;
  const s = plan.summary;
  $("preview-summary").textContent = s.running + " charging, " + s.paused + " paused, " + s.idle +
    " idle; " + s.ev_line_a_total.toFixed(1) + " A offered over all lines. Computed from the " +
    "measurements of now, without the hold times of the running balancer.";
  const body = $("preview-chargers");
  body.replaceChildren();
  for (const c of plan.chargers) {
    const tr = el("tr");
    tr.dataset.charger = c.id;
    const live = facility.byId.get(c.id);
    const now = live && typeof live.limit_a === "number" ? live.limit_a : null;
    const td = (label, text, name, value) => {
      const e = el("td", name === "name" ? "" : "num", text);
      e.dataset.label = label;
      if (name) e.dataset.field = name;
      if (value !== undefined) e.dataset.value = String(value);
      tr.appendChild(e);
      return e;
    };
    td("Charger", c.name, "name");
    td("Now", now === null ? "–" : now.toFixed(1), "now", now === null ? "" : now);
    const p = td("Preview", c.limit_a.toFixed(1), "preview-limit", c.limit_a);
    if (now !== null && Math.abs(now - c.limit_a) >= 0.05) p.classList.add("changed");
    td("Phases", String(c.phases), "phases");
    const reason = td("Reason", c.reason_text, "reason");
    reason.className = "";
    body.appendChild(tr);
  }
  const nodes = $("preview-nodes");
  nodes.replaceChildren();
  for (const n of plan.nodes) {
    const tr = el("tr");
    tr.dataset.node = n.id;
    const th = el("th", "", n.name);
    /* The static reserve is part of the non-EV budget where no meter sees the circuit. */
    const reserve = Array.isArray(n.reserve_a) && n.reserve_a.some((a) => a > 0) ? n.reserve_a
                                                                                 : null;
    if (reserve) {
      const note = el("span", "muted small", " own load " + reserve.map((a) => a.toFixed(1))
        .join(" / ") + " A" + (n.reserve_used === false ? " (metered: not used)" : ""));
      note.dataset.field = "reserve";
      th.appendChild(note);
    }
    tr.appendChild(th);
    for (let l = 0; l < 3; l++) {
      const td = el("td", "num", n.planned_a[l].toFixed(1) + " / " + n.limit_a[l].toFixed(0));
      td.title = "non-EV " + n.non_ev_a[l].toFixed(1) + " A" +
        (reserve && n.reserve_used !== false ? " (own load " + reserve[l].toFixed(1) + " A)" : "") +
        ", EV " + n.ev_a[l].toFixed(1) + " A";
      td.dataset.label = "L" + (l + 1);
      td.classList.toggle("bad", n.headroom_a[l] < 0);
      tr.appendChild(td);
    }
    nodes.appendChild(tr);
  }
  box.scrollIntoView({ block: "start", behavior: "smooth" });
}

function exportJson() {
  downloadText("phasewise-config.json", JSON.stringify(cm.draft, null, 2) + "\n",
               "application/json");
}

function importJson(file) {
  file.text().then((text) => {
    let doc;
    try {
      doc = JSON.parse(text);
    } catch (e) {
      setMessage("Not a JSON file: " + e.message, "bad");
      return;
    }
    if (!doc || typeof doc !== "object" || Array.isArray(doc)) {
      setMessage("The file does not hold a configuration object.", "bad");
      return;
    }
    delete doc.restart_pending;
    cm.draft = toLinkForm(doc);
    render();
    setMessage("Imported " + file.name + ": check it, then Save.", "ok");
    validate();
  });
}

/* ---- backup and restore ---- */

function setBackupMessage(text, kind) {
  const m = $("backup-message");
  m.textContent = text;
  m.dataset.kind = kind || "";
}

/* Waits for the appliance to answer again after it restarted to apply a restore. */
function waitForRestart(tries) {
  setTimeout(() => {
    fetch("/api/health", { cache: "no-store" }).then((r) => {
      if (!r.ok) throw new Error("not yet");
      setBackupMessage("Restored. The appliance is running again: reloading…", "ok");
      setTimeout(() => location.reload(), 1500);
    }).catch(() => {
      if (tries > 0) waitForRestart(tries - 1);
      else setBackupMessage("The appliance has not come back after a minute: check its log " +
                            "(journalctl -u phasewise).", "bad");
    });
  }, 1000);
}

/* Sends the archive as it is; the appliance checks all of it before it changes anything. */
function restoreBackup(file) {
  const ok = window.confirm("Restore " + file.name + "?\n\nThe configuration, the facility key, " +
    "the admin password, the HTTPS certificate and the whole history are replaced by the " +
    "backup's, and the appliance restarts.");
  if (!ok) return;
  setBackupMessage("Checking " + file.name + "…");
  fetch("/api/restore", { method: "POST", credentials: "same-origin",
                          headers: { "Content-Type": "application/x-tar" }, body: file })
    .then((r) => r.json().catch(() => null).then((data) => ({ status: r.status, data })))
    .then((res) => {
      if (res.status !== 200) {
        setBackupMessage("Not restored: " + errorText(res), "bad");
        return;
      }
      setBackupMessage(res.data.message + " Waiting for it…", "ok");
      waitForRestart(60);
    }, () => setBackupMessage("The appliance did not answer.", "bad"));
}

function load() {
  return Promise.all([api("GET", "/api/config"), api("GET", "/api/chargers")]).then(([cfg, ch]) => {
    if (cfg.status !== 200) {
      setMessage(errorText(cfg), "bad");
      return;
    }
    if (ch.status === 200) facility.unassigned = ch.data.unassigned || [];
    /* restart_pending is about the running appliance, not part of the draft. */
    const { restart_pending: pending, ...doc } = cfg.data;
    showPending(Array.isArray(pending) ? pending.map(String) : []);
    cm.draft = toLinkForm(doc);
    cm.saved = JSON.stringify(cm.draft);
    setTags(doc.tags, true);
    clearErrors();
    render();
  }, () => setMessage("The appliance did not answer.", "bad"));
}

/* The first-start note, and the lists whose wording follows it, when that changes. */
function onCommissioning() {
  $("cfg-first").hidden = !facility.commissioning;
  if (cm.draft) render();
}

function applyLock() {
  const ok = loggedIn();
  $("cfg-first").hidden = !facility.commissioning;
  $("commission-locked").hidden = ok;
  $("commission").hidden = !ok;
  if (ok && !cm.draft) load();
}

function setup() {
  const list = $("wiring-options");
  for (const w of WIRINGS) {
    const o = el("option");
    o.value = w;
    list.appendChild(o);
  }
  const form = $("cfg-form");
  form.addEventListener("input", onEdit);
  form.addEventListener("change", onEdit);
  form.addEventListener("submit", (ev) => ev.preventDefault());
  $("cfg-validate").addEventListener("click", validate);
  $("cfg-preview").addEventListener("click", preview);
  $("cfg-save").addEventListener("click", save);
  $("cfg-reload").addEventListener("click", () => {
    setMessage("");
    load();
  });
  $("cfg-export").addEventListener("click", exportJson);
  $("cfg-import").addEventListener("change", (ev) => {
    if (ev.target.files.length) importJson(ev.target.files[0]);
    ev.target.value = "";
  });
  $("backup-restore").addEventListener("change", (ev) => {
    if (ev.target.files.length) restoreBackup(ev.target.files[0]);
    ev.target.value = "";
  });
  session.addEventListener("change", applyLock);
  session.addEventListener("unassigned", refreshUnassigned);
  session.addEventListener("commissioning", onCommissioning);
  cm.ready = true;
}

export function showCommission() {
  if (!cm.ready) setup();
  applyLock();
}
