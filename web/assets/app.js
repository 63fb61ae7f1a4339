/* phasewise UI entry: the live dashboard (the state document of docs/state.md pushed over the
 * WebSocket at /ws, reconnecting by itself; OCPP chargers with their connection, model, what
 * they did with their limit, the running transaction's tag and, as a local controller, the link
 * to the operator's CSMS with the calls waiting for it; an operator's overrides and the
 * facility limit, with Resume and Clear for an admin), login and first-start setup,
 * and the page router for the history and commissioning views. Plain DOM, no framework,
 * nothing loaded from outside the appliance. Elements carry stable ids and data-* attributes for
 * the tests. */
import { showCommission } from "./commission.js";
import { showHistory } from "./history.js";
import {
  $, api, el, field, fmt1, fmtAge, fmtUptime, loadTags, loggedIn, rejectedSummary, session,
  setFacility, setNum, setSession, tagName,
} from "./util.js";

const STALE_AFTER_MS = 5000; /* the server sends at least once a second */
const RSSI_WARN_DBM = -75;   /* Wi-Fi weaker than this is worth showing */
const STATE_TEXT = {
  A: "no car",
  B: "car connected",
  C: "charging",
  D: "charging (vent.)",
  E: "no power",
  F: "fault",
  "?": "offline",
};
/* What an OCPP charge point did with the last charging profile it was sent (docs/state.md). */
const PROFILE_TEXT = {
  accepted: "limit accepted",
  rejected: "limit rejected",
  ignored: "limit ignored",
  waiting: "limit sent, no answer yet",
  none: "no limit sent yet",
};

/* ---- connection ---- */

const conn = {
  ws: null,
  retryMs: 1000,
  lastMsg: 0,
};

function setConn(state, text) {
  const c = $("conn");
  c.dataset.state = state;
  c.textContent = text;
}

function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  setConn("connecting", "connecting…");
  let ws;
  try {
    ws = new WebSocket(proto + "//" + location.host + "/ws");
  } catch (e) {
    scheduleReconnect();
    return;
  }
  conn.ws = ws;
  ws.onopen = () => {
    conn.retryMs = 1000;
    setConn("live", "live");
  };
  ws.onmessage = (ev) => {
    let doc;
    try {
      doc = JSON.parse(ev.data);
    } catch (e) {
      return;
    }
    if (doc && doc.type === "state") {
      conn.lastMsg = Date.now();
      setConn("live", "live");
      render(doc);
    }
  };
  ws.onclose = () => {
    conn.ws = null;
    scheduleReconnect();
  };
  ws.onerror = () => ws.close();
}

function scheduleReconnect() {
  /* A refused or dropped socket may mean the session ended: ask before retrying. */
  refreshAuth();
  const s = Math.round(conn.retryMs / 1000);
  setConn("offline", "offline – retrying in " + s + " s");
  setTimeout(connect, conn.retryMs);
  conn.retryMs = Math.min(conn.retryMs * 2, 10000);
}

/* A connection that stays open but goes quiet is shown as stale, not live. */
setInterval(() => {
  if (conn.ws && conn.lastMsg && Date.now() - conn.lastMsg > STALE_AFTER_MS)
    setConn("stale", "no data for " + fmtAge(Date.now() - conn.lastMsg));
}, 1000);

/* ---- rendering ---- */

/* A first start sends the person to the commissioning page once; the dashboard says why. */
let sentToCommission = false;

function render(doc) {
  setFacility(doc);
  $("first-start").hidden = doc.commissioning !== true;
  if (doc.commissioning === true && !sentToCommission) {
    sentToCommission = true;
    if (!location.hash.replace(/^#\/?/, "")) location.hash = "#/commission";
  }
  $("site").textContent = doc.site || "";
  $("grid").textContent = doc.grid ? doc.grid + " grid" : "—";
  $("uptime").textContent = fmtUptime(doc.uptime_s);
  $("uptime").dataset.value = typeof doc.uptime_s === "number" ? String(doc.uptime_s) : "";
  $("version").textContent = doc.version ? "v" + doc.version : "";
  document.title = (doc.site ? doc.site + " – " : "") + "phasewise";
  renderAlerts(doc.alerts || []);
  renderFacilityLimit(doc.facility_limit || null);
  renderNodes(doc.nodes || []);
  renderChargers(doc.chargers || []);
  renderCounters(doc.counters);
}

function renderAlerts(alerts) {
  const ul = $("alerts");
  ul.replaceChildren();
  for (const a of alerts) {
    const li = el("li", "alert alert-" + (a.level || "info"), a.text || "");
    li.dataset.alertLevel = a.level || "info";
    ul.appendChild(li);
  }
  $("alerts-section").hidden = alerts.length === 0;
}

/* ---- operator commands (POST /api/command, docs/api.md) ---- */

/* Sends one command; a refusal or a lost answer is shown where the button was. */
function sendCommand(body, button, note) {
  button.disabled = true;
  note.textContent = "";
  return api("POST", "/api/command", body)
    .then((res) => {
      if (res.status !== 200)
        note.textContent = (res.data && res.data.error) || "Failed (HTTP " + res.status + ").";
      return res.status === 200;
    })
    .catch(() => {
      note.textContent = "The appliance did not answer.";
      return false;
    })
    .finally(() => (button.disabled = false));
}

/* The facility limit as a banner above the alerts, with its end and a Clear button. */
const facilityView = { box: null, text: null, clear: null, note: null };

function buildFacilityBanner() {
  const box = el("div", "alert alert-warn facility-limit");
  box.id = "facility-limit";
  box.setAttribute("role", "status");
  const text = field("span", "", "facility-limit");
  const clear = el("button", "button-quiet small", "Clear");
  clear.type = "button";
  clear.dataset.action = "clear-facility-limit";
  const note = field("span", "warn-line small", "facility-limit-error");
  clear.addEventListener("click", () => sendCommand({ facility_limit: null }, clear, note));
  box.append(text, " ", clear, " ", note);
  $("alerts-section").before(box);
  Object.assign(facilityView, { box, text, clear, note });
}

function renderFacilityLimit(fl) {
  if (!facilityView.box) buildFacilityBanner();
  facilityView.box.hidden = !fl;
  facilityView.box.dataset.active = String(!!fl);
  if (!fl) return;
  const lim = Array.isArray(fl.limit_a) ? fl.limit_a : [];
  const same = lim.every((a) => a === lim[0]);
  const amps = same ? fmt1(lim[0]) + " A per line" : lim.map(fmt1).join(" / ") + " A";
  const left = typeof fl.expires_in_s === "number" ? fmtAge(fl.expires_in_s * 1000) : "?";
  const ends = typeof fl.expires_in_s === "number"
    ? new Date(Date.now() + fl.expires_in_s * 1000).toLocaleTimeString() : "";
  facilityView.text.textContent = "Facility limit " + amps + " (" + (fl.source || "?") +
    "), ends in " + left + (ends ? " at " + ends : "");
  facilityView.clear.hidden = !loggedIn();
}

/* A charger's override in words: "paused by operator (mqtt)", "max 10 A (web)". */
function overrideText(o) {
  const parts = [];
  if (o.paused) parts.push("paused by operator");
  if (typeof o.max_a === "number") parts.push("max " + fmt1(o.max_a) + " A");
  if (typeof o.priority === "number") parts.push("priority " + o.priority);
  return parts.join(", ") + " (" + (o.source || "?") + ")";
}

/* Resume takes a pause back; Clear also the maximum and the priority, one command each. */
function clearOverride(v) {
  const o = v.overrideState;
  if (!o) return;
  const id = v.tr.dataset.charger;
  const cmds = [];
  if (o.paused) cmds.push({ charger: id, pause: false });
  if (typeof o.max_a === "number") cmds.push({ charger: id, max_current: null });
  if (typeof o.priority === "number") cmds.push({ charger: id, priority: null });
  cmds.reduce((p, body) => p.then((ok) => ok && sendCommand(body, v.ovClear, v.ovNote)),
              Promise.resolve(true));
}

function buildOverride(v) {
  const box = el("div", "override small");
  const text = field("span", "override-text", "override");
  const clear = el("button", "button-quiet small", "Clear");
  clear.type = "button";
  clear.dataset.action = "clear-override";
  const note = field("span", "warn-line", "override-error");
  clear.addEventListener("click", () => clearOverride(v));
  box.append(text, " ", clear, " ", note);
  Object.assign(v, { ovBox: box, ovText: text, ovClear: clear, ovNote: note });
  return box;
}

function updateOverride(v, o) {
  v.overrideState = o || null;
  v.ovBox.hidden = !o;
  v.tr.dataset.override = String(!!o);
  if (!o) {
    v.ovNote.textContent = "";
    return;
  }
  v.ovText.textContent = overrideText(o);
  const onlyPause = o.paused && typeof o.max_a !== "number" && typeof o.priority !== "number";
  v.ovClear.textContent = onlyPause ? "Resume" : "Clear";
  v.ovClear.hidden = !loggedIn();
}

/* Node elements are kept by id so values update in place; the tree is rebuilt only when its
 * shape (ids and parents) changes. */
const nodeView = { shape: "", byId: new Map() };

function renderNodes(nodes) {
  const shape = nodes.map((n) => n.id + "<" + (n.parent || "")).join("|");
  if (shape !== nodeView.shape) buildNodeTree(nodes, shape);
  for (const n of nodes) updateNode(nodeView.byId.get(n.id), n);
}

function buildNodeTree(nodes, shape) {
  const root = $("nodes");
  root.replaceChildren();
  nodeView.byId.clear();
  nodeView.shape = shape;
  const known = new Set(nodes.map((n) => n.id));
  const children = new Map();
  for (const n of nodes) {
    const p = n.parent && known.has(n.parent) ? n.parent : "";
    if (!children.has(p)) children.set(p, []);
    children.get(p).push(n);
  }
  const add = (parentEl, list) => {
    for (const n of list || []) {
      const v = buildNode(n);
      nodeView.byId.set(n.id, v);
      parentEl.appendChild(v.box);
      add(v.kids, children.get(n.id));
    }
  };
  add(root, children.get(""));
}

function buildNode(n) {
  const box = el("section", "node");
  box.dataset.node = n.id;
  const head = el("div", "node-head");
  const name = el("a", "node-name", n.name || n.id);
  name.href = "#/history?node=" + encodeURIComponent(n.id);
  name.title = "history of this circuit";
  const meter = field("span", "meter", "meter");
  head.append(name, meter);
  const lines = el("div", "lines");
  const rows = [];
  for (let i = 0; i < 3; i++) {
    const row = el("div", "line");
    row.dataset.line = String(i + 1);
    const label = el("span", "line-label", "L" + (i + 1));
    const track = el("div", "track");
    const measured = el("div", "fill-measured");
    const planned = el("div", "mark-planned");
    track.append(measured, planned);
    const nums = el("span", "line-nums");
    const m = field("span", "num", "measured");
    const p = field("span", "num planned", "planned");
    const lim = field("span", "num", "limit");
    nums.append(m, el("span", "sep", " / "), lim, el("span", "unit", " A"), el("br"),
                el("span", "muted", "plan "), p, el("span", "muted", " · free "));
    const head_ = field("span", "num", "headroom");
    nums.appendChild(head_);
    row.append(label, track, nums);
    lines.appendChild(row);
    rows.push({ row, measured, planned, m, p, lim, headroom: head_ });
  }
  const kids = el("div", "node-children");
  box.append(head, lines, kids);
  return { box, name, meter, rows, kids };
}

function updateNode(v, n) {
  if (!v) return;
  v.name.textContent = n.name || n.id;
  const meter = n.meter;
  if (meter) {
    const stale = !!meter.stale;
    v.meter.textContent = (meter.kind || "meter") + " · " +
      (stale ? "STALE " : "") + fmtAge(meter.age_ms) + " old";
    v.meter.dataset.stale = String(stale);
    v.meter.classList.toggle("bad", stale);
  } else {
    v.meter.textContent = "no meter (sum of chargers)";
    v.meter.dataset.stale = "false";
    v.meter.classList.remove("bad");
  }
  for (let i = 0; i < 3; i++) {
    const r = v.rows[i];
    const limit = num(n.limit_a, i), meas = num(n.measured_a, i), plan = num(n.planned_a, i);
    const room = num(n.headroom_a, i);
    setNum(r.m, meas);
    setNum(r.p, plan);
    setNum(r.lim, limit);
    setNum(r.headroom, room, " A");
    const scale = limit > 0 ? limit : Math.max(meas || 0, plan || 0, 1);
    r.measured.style.width = pct(meas, scale);
    r.planned.style.left = pct(plan, scale);
    const over = limit > 0 && meas > limit;
    r.row.classList.toggle("over", over);
    r.row.classList.toggle("near", !over && limit > 0 && meas > 0.9 * limit);
    r.row.dataset.over = String(over);
  }
}

function num(arr, i) {
  return Array.isArray(arr) && typeof arr[i] === "number" ? arr[i] : null;
}

function pct(x, scale) {
  if (typeof x !== "number" || !(scale > 0)) return "0%";
  return Math.max(0, Math.min(100, (100 * x) / scale)).toFixed(1) + "%";
}

/* Charger rows, kept by id like the nodes. */
const chargerView = new Map();

function renderChargers(chargers) {
  const body = $("charger-rows");
  const seen = new Set();
  chargers.forEach((c, idx) => {
    seen.add(c.id);
    let v = chargerView.get(c.id);
    if (!v) {
      v = buildCharger(c);
      chargerView.set(c.id, v);
    }
    if (body.children[idx] !== v.tr) body.insertBefore(v.tr, body.children[idx] || null);
    updateCharger(v, c);
  });
  for (const [id, v] of chargerView) {
    if (!seen.has(id)) {
      v.tr.remove();
      chargerView.delete(id);
    }
  }
  const online = chargers.filter((c) => c.online).length;
  $("charger-count").textContent = "(" + online + " of " + chargers.length + " online)";
}

/* A table cell; data-label titles it when the table is shown as cards on a phone. */
function cell(tr, label, name) {
  const td = field("td", "", name);
  td.dataset.label = label;
  tr.appendChild(td);
  return td;
}

function phaseSpans(td, attr) {
  const spans = [];
  for (let i = 0; i < 3; i++) {
    if (i) td.appendChild(el("span", "sep", " / "));
    const s = el("span", "num");
    s.dataset[attr] = String(i + 1);
    td.appendChild(s);
    spans.push(s);
  }
  td.appendChild(el("span", "unit", " A"));
  return spans;
}

function buildCharger(c) {
  const tr = el("tr", "charger");
  tr.dataset.charger = c.id;
  const who = cell(tr, "Charger", "name");
  const name = el("a", "charger-name");
  name.href = "#/history?charger=" + encodeURIComponent(c.id);
  name.title = "history of this charger";
  const sub = el("div", "muted small");
  /* Why an OCPP charger does not follow its limit: shown on the row, not only as an alert. */
  const problem = field("div", "warn-line small", "ocpp-problem");
  problem.setAttribute("role", "note");
  who.append(name, sub, problem);
  const state = cell(tr, "State", "state");
  const badge = el("span", "state");
  const tag = field("div", "small", "tag");
  state.append(badge, tag);
  const current = phaseSpans(cell(tr, "Current", "current"), "phase");
  const line = phaseSpans(cell(tr, "Grid lines", "line"), "line");
  const alloc = cell(tr, "Allocation", "allocation");
  const limit = field("span", "num", "limit");
  const phases = field("span", "muted", "phases");
  alloc.append(limit, el("span", "unit", " A "), phases);
  const reasonCell = cell(tr, "Reason", "reason-cell");
  const reason = field("div", "", "reason");
  reasonCell.append(reason);
  const net = cell(tr, "Network", "network");
  const online = field("span", "net-online", "online");
  const seen = field("span", "muted small", "last-seen");
  const loss = field("span", "small", "loss");
  const rssi = field("span", "small", "rssi");
  const lanNet = el("span");
  lanNet.append(el("br"), loss, el("span", "sep", " · "), rssi);
  const ocpp = buildOcpp();
  net.append(online, el("br"), seen, lanNet, ocpp.box);
  const v = { tr, name, sub, problem, badge, tag, current, line, limit, phases, reason, online,
              seen, lanNet, loss, rssi, ocpp };
  reasonCell.append(buildOverride(v));
  return v;
}

/* The OCPP lines of the network cell: the WebSocket connection, what the charge point said it
 * is at boot, what it did with the last limit, and with a CSMS upstream its link there. */
function buildOcpp() {
  const box = el("div", "ocpp small");
  const conn = field("span", "", "ocpp-connected");
  const device = field("div", "muted", "ocpp-device");
  const profile = field("div", "", "ocpp-profile");
  const upstream = field("div", "", "ocpp-upstream");
  upstream.title = "the operator's CSMS (local controller): while the link is down the charge " +
    "point's calls wait and go up in order when it is back; charging goes on";
  box.append(conn, device, profile, upstream);
  return { box, conn, device, profile, upstream };
}

/* The CSMS line: "CSMS connected", "CSMS down: <why> · 12 calls wait", with the CSMS's cap.
 * o.upstream is there only for a connected charge point with a CSMS set (docs/state.md). */
function upstreamText(o, capA) {
  const n = o.upstream_queued || 0;
  const parts = [];
  if (o.upstream) parts.push("CSMS " + o.upstream);
  if (n) parts.push(n + (n === 1 ? " call waits" : " calls wait"));
  if (typeof capA === "number")
    parts.push((o.upstream ? "" : "CSMS ") + "cap " + fmt1(capA) + " A");
  return parts.join(" · ");
}

function updateOcpp(v, c) {
  const o = c.ocpp;
  v.ocpp.box.hidden = !o;
  v.lanNet.hidden = !!o;
  v.problem.hidden = !(o && o.problem);
  v.problem.textContent = o && o.problem ? "⚠ " + o.problem : "";
  v.tr.classList.toggle("has-problem", !!(o && o.problem));
  const idTag = o && o.id_tag ? o.id_tag : "";
  v.tag.hidden = !idTag;
  v.tag.textContent = idTag ? "tag: " + tagName(idTag) : "";
  v.tag.dataset.value = idTag;
  v.tag.title = o && o.tx_id ? "transaction " + o.tx_id : "";
  if (!o) return;
  const cp = c.device_link && c.device_link.ocpp;
  v.ocpp.conn.textContent = "OCPP " + (cp ? cp.id + " #" + cp.connector + " " : "") +
    (o.connected ? "connected" : "not connected");
  v.ocpp.conn.dataset.value = String(!!o.connected);
  v.ocpp.conn.classList.toggle("bad", !o.connected);
  const what = [o.vendor, o.model].filter(Boolean).join(" ");
  v.ocpp.device.textContent = (what || "model not known yet") +
    (o.firmware ? " · fw " + o.firmware : "");
  v.ocpp.device.title = o.measurands ? "measures " + o.measurands.split(",").join(", ") : "";
  const p = o.profile || "none";
  v.ocpp.profile.textContent = (PROFILE_TEXT[p] || p) +
    (o.default_profile ? " (as default profile)" : "") +
    (typeof o.writes_today === "number" ? " · " + o.writes_today + " sent today" : "");
  v.ocpp.profile.dataset.value = p;
  v.ocpp.profile.classList.toggle("bad", p === "rejected" || p === "ignored");
  const up = upstreamText(o, c.csms_cap_a);
  v.ocpp.upstream.hidden = !up;
  v.ocpp.upstream.textContent = up;
  v.ocpp.upstream.dataset.value = o.upstream || "";
  v.ocpp.upstream.dataset.queued = String(o.upstream_queued || 0);
  v.ocpp.upstream.classList.toggle("bad", /^down/.test(o.upstream || ""));
}

function updateCharger(v, c) {
  v.name.textContent = c.name || c.id;
  v.sub.textContent = [c.node, c.wiring].filter(Boolean).join(" · ");
  const st = c.online ? c.state || "?" : "?";
  v.badge.textContent = st + " · " + (STATE_TEXT[st] || "unknown");
  v.badge.dataset.state = st;
  v.tr.dataset.state = st;
  v.tr.dataset.online = String(!!c.online);
  for (let i = 0; i < 3; i++) {
    setNum(v.current[i], num(c.current_a, i));
    setNum(v.line[i], num(c.line_a, i));
  }
  setNum(v.limit, c.limit_a);
  v.phases.textContent = c.phases ? c.phases + "-phase" : "";
  v.phases.dataset.value = c.phases ? String(c.phases) : "";
  v.reason.textContent = c.reason_text || c.reason || "";
  v.reason.dataset.reason = c.reason || "";
  updateOverride(v, c.override);
  v.online.textContent = c.online ? "online" : "offline";
  v.online.classList.toggle("bad", !c.online);
  v.seen.textContent = "seen " + fmtAge(c.last_seen_ms) + " ago";
  v.loss.textContent = "loss " + fmt1(c.loss_pct) + " %";
  v.loss.dataset.value = typeof c.loss_pct === "number" ? String(c.loss_pct) : "";
  v.loss.classList.toggle("bad", c.loss_pct > 5);
  const wifi = c.link === "wifi" || (c.link !== "ethernet" && c.rssi_dbm < 0);
  const weak = wifi && typeof c.rssi_dbm === "number" && c.rssi_dbm < RSSI_WARN_DBM;
  v.rssi.textContent = wifi ? "Wi-Fi " + c.rssi_dbm + " dBm" + (weak ? " – weak" : "")
                            : c.link || "";
  v.rssi.dataset.warn = String(weak);
  v.rssi.classList.toggle("bad", weak);
  updateOcpp(v, c);
}

/* The footer: traffic, and every refusal the document counts (an oversized datagram as "long",
 * a forged one as "auth", an implausible meter reading, OCPP's and the meters' own reasons). */
function renderCounters(k) {
  if (!k) return;
  const { total, reasons } = rejectedSummary(k.rejected);
  $("counters").textContent = "rx " + (k.rx || 0) + " · tx " + (k.tx || 0) + " · rejected " +
    total + (reasons.length ? " (" + reasons.map(([why, n]) => why + " " + n).join(", ") + ")"
                            : "");
  $("counters").dataset.rejected = String(total);
}

/* ---- login and first-start setup ----
 * The server says what it needs in /api/auth/status: a first start asks for the admin
 * password to be set, and a locked dashboard shows only the login form. */

const auth = { status: null, wanted: false };

function refreshAuth() {
  return api("GET", "/api/auth/status")
    .then((res) => {
      if (res.status === 200 && res.data) {
        auth.status = res.data;
        applyAuth();
        setSession(res.data);
      }
    })
    .catch(() => {});
}

function applyAuth() {
  const s = auth.status;
  const locked = s.auth && s.dashboard_login && !s.logged_in;
  const button = $("auth-button");
  button.hidden = !s.auth || s.setup_required;
  button.textContent = s.logged_in ? "Log out" : "Log in";
  button.dataset.loggedIn = String(!!s.logged_in);
  $("views").hidden = locked;
  if (s.auth && s.setup_required) showAuthForm("setup");
  else if (locked || (auth.wanted && !s.logged_in)) showAuthForm("login");
  else hideAuthForm();
}

function showAuthForm(mode) {
  const panel = $("auth-panel");
  const changed = panel.hidden || panel.dataset.mode !== mode;
  panel.dataset.mode = mode;
  panel.hidden = false;
  const setup = mode === "setup";
  $("auth-title").textContent = setup ? "Set the admin password" : "Log in";
  $("auth-intro").textContent = setup
    ? "This appliance has no admin password yet. Choose one (at least 10 characters); " +
      "it is needed to change the configuration."
    : "Enter the admin password.";
  $("auth-password").autocomplete = setup ? "new-password" : "current-password";
  $("auth-submit").textContent = setup ? "Set password" : "Log in";
  const s = auth.status;
  $("auth-cancel").hidden = setup || (s && s.dashboard_login && !s.logged_in);
  if (changed) {
    $("auth-message").textContent = "";
    $("auth-password").value = "";
    $("auth-confirm").value = "";
    $("auth-password").focus();
  }
}

function hideAuthForm() {
  $("auth-panel").hidden = true;
  $("auth-password").value = "";
  $("auth-confirm").value = "";
}

function authFailureText(res, setup) {
  if (res.status === 401) return "Wrong password.";
  if (res.status === 429)
    return "Too many attempts. Try again in " + (res.retry || "a few") + " s.";
  if (res.status === 409 && setup) return "The password was already set. Log in instead.";
  return (res.data && res.data.error) || "Failed (HTTP " + res.status + ").";
}

function submitAuth(ev) {
  ev.preventDefault();
  const setup = $("auth-panel").dataset.mode === "setup";
  const password = $("auth-password").value;
  const msg = $("auth-message");
  if (setup && password.length < 10) {
    msg.textContent = "Use at least 10 characters.";
    return;
  }
  if (setup && password !== $("auth-confirm").value) {
    msg.textContent = "The two passwords differ.";
    return;
  }
  const submit = $("auth-submit");
  submit.disabled = true;
  msg.textContent = "";
  api("POST", setup ? "/api/auth/setup" : "/api/auth/login", { password })
    .then((res) => {
      if (res.status === 200 || res.status === 201) {
        auth.wanted = false;
        hideAuthForm();
        if (!conn.ws) connect();
      } else {
        msg.textContent = authFailureText(res, setup);
      }
      return refreshAuth();
    })
    .catch(() => (msg.textContent = "The appliance did not answer."))
    .finally(() => (submit.disabled = false));
}

$("auth-form").addEventListener("submit", submitAuth);
$("auth-cancel").addEventListener("click", () => {
  auth.wanted = false;
  hideAuthForm();
});
function askLogin() {
  auth.wanted = true;
  showAuthForm("login");
}

$("commission-login").addEventListener("click", askLogin);
$("history-login").addEventListener("click", askLogin);
$("auth-button").addEventListener("click", () => {
  if (auth.status && auth.status.logged_in) {
    api("POST", "/api/auth/logout", {}).finally(refreshAuth);
  } else {
    askLogin();
  }
});

/* ---- pages: #/ (dashboard), #/history?charger=ID or ?node=ID, #/commission ---- */

const VIEWS = { "": "view-dashboard", history: "view-history", commission: "view-commission" };

function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [name, q] = hash.split("?");
  const page = Object.prototype.hasOwnProperty.call(VIEWS, name) ? name : "";
  for (const [key, id] of Object.entries(VIEWS)) $(id).hidden = key !== page;
  for (const a of document.querySelectorAll("nav.pages a"))
    a.setAttribute("aria-current", a.dataset.page === page ? "page" : "false");
  const params = Object.fromEntries(new URLSearchParams(q || ""));
  if (page === "history") showHistory(params);
  else if (page === "commission") showCommission();
  window.scrollTo(0, 0);
}

window.addEventListener("hashchange", route);

/* The WebSocket sends the newest document at once; the API is only a first paint, and the
 * pages wait for it so their pickers know the chargers and circuits. */
api("GET", "/api/state")
  .then((res) => {
    const doc = res.data;
    if (doc && doc.type === "state" && !conn.lastMsg) render(doc);
  })
  .catch(() => {})
  .finally(() => refreshAuth().finally(route));
/* Tag names for the running transactions; a login may be what reading the config needs. */
session.addEventListener("change", loadTags);
connect();
