/* phasewise UI helpers shared by the views: DOM building, number and time formatting, calls to
 * the JSON API (docs/api.md) and the login state every view reacts to. */

export const $ = (id) => document.getElementById(id);

/* Creates an element with a class and optional text. */
export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

/* An element whose data-field names the value it shows (the browser tests read these). */
export function field(tag, cls, name) {
  const e = el(tag, cls);
  e.dataset.field = name;
  return e;
}

export function fmt1(x) {
  return typeof x === "number" && isFinite(x) ? x.toFixed(1) : "–";
}

/* Sets text and the raw number (data-value) of a value element. */
export function setNum(e, x, unit) {
  e.textContent = fmt1(x) + (unit || "");
  e.dataset.value = typeof x === "number" ? String(x) : "";
}

export function fmtAge(ms) {
  if (typeof ms !== "number" || !isFinite(ms)) return "–";
  if (ms < 60000) return fmt1(ms / 1000) + " s";
  if (ms < 3600000) return fmt1(ms / 60000) + " min";
  return fmt1(ms / 3600000) + " h";
}

function pad2(n) {
  return String(n).padStart(2, "0");
}

/* Local date and time, "2025-11-22 18:05". */
export function fmtTime(ms) {
  if (typeof ms !== "number") return "–";
  const d = new Date(ms);
  return d.getFullYear() + "-" + pad2(d.getMonth() + 1) + "-" + pad2(d.getDate()) + " " +
    pad2(d.getHours()) + ":" + pad2(d.getMinutes());
}

export function fmtDuration(ms) {
  if (typeof ms !== "number" || ms < 0) return "–";
  const min = Math.round(ms / 60000);
  return min < 60 ? min + " min" : Math.floor(min / 60) + " h " + pad2(min % 60) + " min";
}

/* How long the appliance has been up, from the state document's uptime_s: seconds in the first
 * minute (so that a fresh start never reads "0 min"), then minutes, hours and days. */
export function fmtUptime(s) {
  if (typeof s !== "number" || !isFinite(s) || s < 0) return "";
  s = Math.floor(s);
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (s < 60) return "up " + s + " s";
  if (s < 3600) return "up " + m + " min";
  if (s < 86400) return "up " + h + " h " + pad2(m) + " min";
  return "up " + d + " d " + h + " h";
}

/* The refused input of the state document's counters.rejected (docs/state.md: every reason the
 * appliance counted, by name): the total, and the reasons that happened, largest first. */
export function rejectedSummary(rejected) {
  const reasons = Object.entries(rejected && typeof rejected === "object" ? rejected : {})
    .filter(([, n]) => typeof n === "number" && n > 0)
    .sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : 1));
  return { total: reasons.reduce((sum, [, n]) => sum + n, 0), reasons };
}

export function fmtKwh(wh) {
  return typeof wh === "number" ? (wh / 1000).toFixed(2) : "–";
}

/* The value a datetime-local input takes for a time in ms, and back. */
export function toLocalInput(ms) {
  const d = new Date(ms);
  return d.getFullYear() + "-" + pad2(d.getMonth() + 1) + "-" + pad2(d.getDate()) + "T" +
    pad2(d.getHours()) + ":" + pad2(d.getMinutes());
}

export function fromLocalInput(text) {
  const ms = new Date(text).getTime();
  return isFinite(ms) ? ms : null;
}

/* Calls the API. Resolves to {status, data, retry} (data is the parsed JSON or null); rejects
 * only when the appliance cannot be reached. */
export function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  return fetch(path, init).then((r) =>
    r
      .json()
      .catch(() => null)
      .then((data) => ({ status: r.status, data, retry: r.headers.get("Retry-After") })),
  );
}

/* A query string from an object, leaving out null and undefined values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "")
    q.set(k, String(v));
  const s = q.toString();
  return s ? "?" + s : "";
}

/* The message of an API error body ({"error", "field"}). */
export function errorText(res) {
  if (res.data && res.data.error) return res.data.error;
  if (res.status === 401) return "Log in first.";
  return "Failed (HTTP " + res.status + ").";
}

/* Offers text as a file download without a round trip. */
export function downloadText(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = el("a");
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/* The login state from /api/auth/status, shared by every view; "change" fires on updates. */
export const session = new EventTarget();
session.status = null;

export function loggedIn() {
  const s = session.status;
  return !!(s && (s.logged_in || !s.auth));
}

export function setSession(status) {
  session.status = status;
  session.dispatchEvent(new Event("change"));
}

/* Lists of the facility's chargers and nodes for the pickers, from the latest state document. */
export const facility = { chargers: [], nodes: [], byId: new Map() };

export function setFacility(doc) {
  facility.chargers = (doc.chargers || []).map((c) => ({ id: c.id, name: c.name || c.id,
    limit_a: c.limit_a, device_id: c.device_id, device_link: c.device_link, online: c.online,
    state: c.state, reason_text: c.reason_text, ocpp: c.ocpp }));
  facility.nodes = (doc.nodes || []).map((n) => ({ id: n.id, name: n.name || n.id,
    limit_a: n.limit_a }));
  facility.byId = new Map(facility.chargers.map((c) => [c.id, c]));
  facility.unassigned = doc.unassigned || [];
  /* A first start: no facility saved yet (docs/state.md "commissioning"). */
  const first = doc.commissioning === true;
  if (first !== facility.commissioning) {
    facility.commissioning = first;
    session.dispatchEvent(new Event("commissioning"));
  }
  /* The commissioning view offers newly seen devices without a reload. */
  const key = JSON.stringify(facility.unassigned.map((d) => d.link));
  if (key !== facility.unassignedKey) {
    facility.unassignedKey = key;
    session.dispatchEvent(new Event("unassigned"));
  }
}

/* The RFID tags of the configuration (OCPP idTags and who they belong to), for showing a name
 * where the appliance reports a tag id. Read from GET /api/config, which needs no login unless
 * the dashboard does; the commissioning view refreshes it after a load or save. */
export const tags = { byId: new Map(), loading: null, missed: new Set() };

/* Sets the tags from a config's "tags"; a list the installer just saved also forgets which ids
 * were looked up in vain. */
export function setTags(list, saved) {
  tags.byId = new Map((Array.isArray(list) ? list : []).filter((t) => t && t.id)
    .map((t) => [String(t.id), t.name || ""]));
  if (saved) tags.missed.clear();
}

export function loadTags() {
  if (!tags.loading) {
    tags.loading = api("GET", "/api/config")
      .then((res) => {
        if (res.status === 200 && res.data) setTags(res.data.tags);
      })
      .catch(() => {})
      .finally(() => (tags.loading = null));
  }
  return tags.loading;
}

/* A tag's name, or its id when the configuration does not name it. An id seen for the first
 * time makes one reload, so that a tag added elsewhere is named without a page reload. */
export function tagName(id) {
  if (!id) return "";
  const name = tags.byId.get(String(id));
  if (name) return name;
  if (!tags.missed.has(String(id))) {
    tags.missed.add(String(id));
    loadTags();
  }
  return String(id);
}
