/* The history view: a chart of any charger or node over a chosen range, energy per charger and
 * month with the billing CSV, energy per RFID tag (OCPP idTag) and month with its CSV, the
 * charging sessions with their CSV, and the event log. Every query runs on the appliance's
 * worker threads (GET /api/history/..., /api/energy, /api/tags/energy, ...). A demo's first start
 * fills the week before it with simulated history, marked by two simulated_history events: the
 * chart says so where it shows that span, and sessions in it are marked. */
import { drawChart } from "./chart.js";
import {
  $, api, el, errorText, facility, fmtDuration, fmtKwh, fmtTime, fromLocalInput,
  loggedIn, query, session, toLocalInput,
} from "./util.js";

const RANGES = [
  ["1h", "last hour", 3600e3],
  ["6h", "last 6 hours", 6 * 3600e3],
  ["24h", "last 24 hours", 86400e3],
  ["7d", "last 7 days", 7 * 86400e3],
  ["30d", "last 30 days", 30 * 86400e3],
  ["custom", "custom range…", 0],
];
const EVENT_KINDS = [
  "config_change", "charger_online", "charger_state", "charger_reboot", "device_unassigned",
  "datagram_rejected", "foreign_balancer", "start", "simulated_history",
];
const LINES = ["L1", "L2", "L3"];
const DOWNLOADS = ["energy-csv", "tag-energy-csv", "sessions-csv"]; /* they need a login */

const view = { ready: false, chart: null, resize: null, simulated: null };

/* ---- simulated history (demo) ---- */

/* The simulated span {from, to} from its two events, or null; asked once per visit. */
function loadSimulated() {
  return api("GET", "/api/events" + query({ kind: "simulated_history", from: 0, limit: 10 })).then(
    (res) => {
      const ts = res.status === 200 ? res.data.events.map((e) => e.ts_ms) : [];
      view.simulated = ts.length ? { from: Math.min(...ts), to: Math.max(...ts) } : null;
    },
    () => { view.simulated = null; },
  );
}

function isSimulated(t) {
  const sim = view.simulated;
  return !!sim && t >= sim.from && t < sim.to;
}

/* The note above the chart, made here so the page's markup needs nothing for it. */
function showSimulatedNote(range) {
  let note = $("history-simulated");
  if (!note) {
    note = el("p", "hint");
    note.id = "history-simulated";
    $("history-chart").before(note);
  }
  const sim = view.simulated;
  const overlaps = !!sim && !!range && range.from < sim.to && range.to > sim.from;
  note.hidden = !overlaps;
  note.textContent = overlaps ? "Simulated history (demo): until " + fmtTime(sim.to) +
    " the data is simulated in fake time by the real control core; the live demo facility " +
    "from then on." : "";
}

/* ---- the chart ---- */

function fillWhatOptions() {
  const sel = $("history-what");
  const keep = sel.value;
  sel.replaceChildren();
  const groups = [["Chargers", "charger", facility.chargers], ["Circuits", "node", facility.nodes]];
  for (const [label, kind, list] of groups) {
    const g = el("optgroup");
    g.label = label;
    for (const item of list) {
      const o = el("option", "", item.name + (item.name !== item.id ? " (" + item.id + ")" : ""));
      o.value = kind + ":" + item.id;
      g.appendChild(o);
    }
    sel.appendChild(g);
  }
  if (keep && [...sel.options].some((o) => o.value === keep)) sel.value = keep;
}

function fillCharger(sel, allText) {
  const keep = sel.value;
  sel.replaceChildren(el("option", "", allText));
  sel.options[0].value = "";
  for (const c of facility.chargers) {
    const o = el("option", "", c.name);
    o.value = c.id;
    sel.appendChild(o);
  }
  sel.value = keep;
}

function chartRange() {
  const r = $("history-range").value;
  if (r === "custom") {
    const from = fromLocalInput($("history-from").value), to = fromLocalInput($("history-to").value);
    return from !== null && to !== null && from < to ? { from, to } : null;
  }
  const span = RANGES.find((x) => x[0] === r)[2];
  const to = Date.now();
  return { from: to - span, to };
}

function setStatus(id, text, bad) {
  const e = $(id);
  e.textContent = text;
  e.classList.toggle("bad", !!bad);
}

function loadChart() {
  const [kind, id] = ($("history-what").value || "").split(":");
  const range = chartRange();
  if (!id) return;
  if (!range) {
    setStatus("history-status", "Choose a start before the end.", true);
    return;
  }
  showSimulatedNote(range);
  const box = $("history-chart");
  const points = Math.max(60, Math.min(1000, Math.floor((box.clientWidth || 600) / 2)));
  setStatus("history-status", "loading…");
  const path = "/api/history/" + kind + "/" + encodeURIComponent(id) +
    query({ from: Math.floor(range.from), to: Math.floor(range.to), points });
  api("GET", path).then((res) => {
    if (res.status !== 200) {
      setStatus("history-status", errorText(res), true);
      return;
    }
    view.chart = chartSpec(kind, id, res.data);
    renderChart();
    const n = res.data.points.length;
    setStatus("history-status", n + " points of " + Math.round(res.data.bucket_ms / 1000) +
      " s each · query " + res.data.query_ms + " ms");
    box.dataset.points = String(n);
    box.dataset.kind = kind;
    box.dataset.id = id;
  }, () => setStatus("history-status", "The appliance did not answer.", true));
}

function chartSpec(kind, id, doc) {
  const series = LINES.map((name, i) => ({
    label: kind === "charger" ? "terminal " + name : name,
    cls: "s" + (i + 1),
    points: doc.points.map((p) => [p.t, p.avg_a[i]]),
    band: doc.points.map((p) => [p.t, p.min_a[i], p.max_a[i]]),
  }));
  const hlines = [];
  if (kind === "charger") {
    series.push({ label: "offered", cls: "limit", step: true, dashed: true,
                  points: doc.points.map((p) => [p.t, p.limit_a]) });
  } else {
    const node = facility.nodes.find((n) => n.id === id);
    const limits = node && Array.isArray(node.limit_a) ? node.limit_a : [];
    const lowest = limits.length ? Math.min(...limits) : null;
    if (lowest !== null) hlines.push({ value: lowest, label: "limit " + lowest + " A", cls: "limit" });
  }
  const name = (kind === "charger" ? facility.chargers : facility.nodes).find((x) => x.id === id);
  return {
    from: doc.from, to: doc.to, bucket_ms: doc.bucket_ms, unit: "A", series, hlines,
    label: "currents of " + (name ? name.name : id), readout: $("history-readout"),
  };
}

function renderChart() {
  if (!view.chart) return;
  drawChart($("history-chart"), view.chart);
  const legend = $("history-legend");
  legend.replaceChildren();
  for (const s of view.chart.series) {
    const item = el("span", "legend-item");
    item.append(el("span", "swatch " + s.cls + (s.dashed ? " dashed" : "")), el("span", "", s.label));
    legend.appendChild(item);
  }
  $("history-readout").textContent = "Point at the chart to read the values.";
}

/* ---- energy per charger and month ---- */

function monthStart(year, month) {
  return new Date(year, month, 1).getTime();
}

/* [from, to) for an energy table: the last 12 months or one calendar year, as the period picker
 * sel says. */
function energyRange(sel = "energy-year") {
  const v = $(sel).value, now = new Date();
  if (v === "12m") return {
    from: monthStart(now.getFullYear(), now.getMonth() - 11),
    to: monthStart(now.getFullYear(), now.getMonth() + 1),
  };
  const y = Number(v);
  return { from: monthStart(y, 0), to: monthStart(y + 1, 0) };
}

function fillYears(id) {
  const sel = $(id);
  if (sel.options.length) return;
  const o = el("option", "", "last 12 months");
  o.value = "12m";
  sel.appendChild(o);
  const y = new Date().getFullYear();
  for (let i = 0; i < 3; i++) {
    const yo = el("option", "", String(y - i));
    yo.value = String(y - i);
    sel.appendChild(yo);
  }
}

function loadEnergy() {
  const r = energyRange();
  $("energy-csv").href = "/api/export/energy.csv" + query({ from: r.from, to: r.to });
  setStatus("energy-status", "loading…");
  api("GET", "/api/energy" + query({ period: "month", from: r.from, to: r.to })).then((res) => {
    if (res.status !== 200) {
      setStatus("energy-status", errorText(res), true);
      return;
    }
    renderEnergy(res.data);
    setStatus("energy-status", "Energy of the sessions that started in each month, in kWh.");
  }, () => setStatus("energy-status", "The appliance did not answer.", true));
}

function renderEnergy(doc) {
  const months = [...new Set(doc.rows.map((r) => r.period))].sort();
  const chargers = [...new Set(doc.rows.map((r) => r.charger))].sort();
  const cell = new Map(doc.rows.map((r) => [r.charger + "|" + r.period, r]));
  const table = $("energy-table");
  table.replaceChildren();
  if (!doc.rows.length) {
    table.appendChild(el("caption", "muted", "No charging sessions in this period."));
    return;
  }
  const head = el("tr");
  head.append(el("th", "", "Charger"), ...months.map((m) => el("th", "num", m)),
              el("th", "num", "Total"));
  table.appendChild(el("thead")).appendChild(head);
  const body = table.appendChild(el("tbody"));
  const colTotals = months.map(() => 0);
  for (const c of chargers) {
    const tr = el("tr");
    tr.dataset.charger = c;
    tr.appendChild(el("th", "", (facility.byId.get(c) || { name: c }).name));
    let total = 0;
    months.forEach((m, i) => {
      const r = cell.get(c + "|" + m);
      const wh = r ? r.energy_wh : 0;
      total += wh;
      colTotals[i] += wh;
      const td = el("td", "num", r ? fmtKwh(wh) : "–");
      td.dataset.month = m;
      td.dataset.wh = String(wh);
      tr.appendChild(td);
    });
    const tt = el("td", "num total", fmtKwh(total));
    tt.dataset.wh = String(total);
    tr.appendChild(tt);
    body.appendChild(tr);
  }
  const foot = el("tr", "totals");
  foot.append(el("th", "", "All chargers"), ...colTotals.map((wh) => el("td", "num", fmtKwh(wh))),
              el("td", "num total", fmtKwh(doc.total_wh)));
  table.appendChild(el("tfoot")).appendChild(foot);
}

/* ---- energy per tag and month ---- */

function loadTagEnergy() {
  const r = energyRange("tag-energy-year");
  $("tag-energy-csv").href = "/api/tags/energy" + query({ from: r.from, to: r.to, format: "csv" });
  setStatus("tag-energy-status", "loading…");
  api("GET", "/api/tags/energy" + query({ from: r.from, to: r.to })).then((res) => {
    /* {"rows": [...]} as the appliance answers; a bare list is taken too. */
    const rows = res.data && (Array.isArray(res.data) ? res.data : res.data.rows);
    if (res.status !== 200 || !Array.isArray(rows)) {
      setStatus("tag-energy-status", errorText(res), true);
      return;
    }
    renderTagEnergy(rows);
    setStatus("tag-energy-status", "Energy of the sessions started with each tag, by the month " +
      "they started in, in kWh (sessions in brackets).");
  }, () => setStatus("tag-energy-status", "The appliance did not answer.", true));
}

/* One row per tag, one column per month; sessions without a tag (LAN chargers, free
 * charging) are a row of their own. */
function renderTagEnergy(rows) {
  const table = $("tag-energy-table");
  table.replaceChildren();
  if (!rows.length) {
    table.appendChild(el("caption", "muted", "No sessions with a tag in this period."));
    return;
  }
  const months = [...new Set(rows.map((r) => r.month))].sort();
  const tagIds = [...new Set(rows.map((r) => r.id_tag || ""))].sort();
  const cell = new Map(rows.map((r) => [(r.id_tag || "") + "|" + r.month, r]));
  const head = el("tr");
  head.append(el("th", "", "Tag"), ...months.map((m) => el("th", "num", m)),
              el("th", "num", "Total"));
  table.appendChild(el("thead")).appendChild(head);
  const body = table.appendChild(el("tbody"));
  for (const id of tagIds) {
    const tr = el("tr");
    tr.dataset.tag = id;
    const named = rows.find((r) => (r.id_tag || "") === id && r.name);
    const th = el("th", "", id ? (named ? named.name : id) : "no tag");
    if (id && named) th.appendChild(el("span", "muted small", " " + id));
    tr.appendChild(th);
    let kwh = 0, sessions = 0;
    for (const m of months) {
      const r = cell.get(id + "|" + m);
      const td = el("td", "num", r ? r.energy_kwh.toFixed(2) + " (" + r.sessions + ")" : "–");
      td.dataset.month = m;
      td.dataset.kwh = r ? String(r.energy_kwh) : "0";
      if (r) {
        kwh += r.energy_kwh;
        sessions += r.sessions;
      }
      tr.appendChild(td);
    }
    const total = el("td", "num total", kwh.toFixed(2) + " (" + sessions + ")");
    total.dataset.kwh = String(kwh);
    tr.appendChild(total);
    body.appendChild(tr);
  }
}

/* ---- sessions ---- */

function sessionsRange() {
  const v = $("sessions-month").value; /* "2025-11" */
  const [y, m] = v ? v.split("-").map(Number) : [new Date().getFullYear(), new Date().getMonth() + 1];
  return { from: monthStart(y, m - 1), to: monthStart(y, m) };
}

function loadSessions() {
  const r = sessionsRange(), charger = $("sessions-charger").value || null;
  $("sessions-csv").href = "/api/export/sessions.csv" + query({ charger, from: r.from, to: r.to });
  setStatus("sessions-status", "loading…");
  api("GET", "/api/sessions" + query({ charger, from: r.from, to: r.to, limit: 500 })).then(
    (res) => {
      if (res.status !== 200) {
        setStatus("sessions-status", errorText(res), true);
        return;
      }
      renderSessions(res.data.sessions);
      const n = res.data.sessions.length;
      setStatus("sessions-status", n === 500 ? "The newest 500 sessions; the CSV has all." :
        n + " session" + (n === 1 ? "" : "s") + ".");
    },
    () => setStatus("sessions-status", "The appliance did not answer.", true),
  );
}

function renderSessions(rows) {
  const body = $("sessions-rows");
  body.replaceChildren();
  const now = Date.now();
  for (const s of rows) {
    const tr = el("tr");
    tr.dataset.session = String(s.id);
    const name = (facility.byId.get(s.charger) || { name: s.charger }).name;
    /* The API's flag where it has one, else the simulated span. */
    const simulated = s.simulated !== undefined ? !!s.simulated : isSimulated(s.start_ms);
    if (simulated) tr.dataset.simulated = "1";
    const cells = [
      ["Charger", simulated ? name + " (simulated history, demo)" : name],
      ["Started", fmtTime(s.start_ms)],
      ["Ended", s.end_ms ? fmtTime(s.end_ms) : "still plugged in"],
      ["Duration", fmtDuration((s.end_ms || now) - s.start_ms)],
      ["Energy (kWh)", fmtKwh(s.energy_wh)], ["Peak (A)", s.peak_a.toFixed(1)],
      ["Tag", s.tag_name || s.id_tag || ""], ["Id", s.ref || ""],
    ];
    for (const [label, text] of cells) {
      const td = el("td", "", text);
      td.dataset.label = label;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
}

/* ---- events ---- */

function loadEvents() {
  const kind = $("events-kind").value || null;
  api("GET", "/api/events" + query({ kind, limit: 100, from: Date.now() - 30 * 86400e3 })).then(
    (res) => {
      const ul = $("events-list");
      ul.replaceChildren();
      if (res.status !== 200) {
        setStatus("events-status", errorText(res), true);
        return;
      }
      for (const e of res.data.events) {
        const li = el("li", "event");
        li.dataset.kind = e.kind;
        li.append(el("time", "muted small", fmtTime(e.ts_ms)), el("span", "pill small", e.kind),
                  el("span", "", (e.subject ? e.subject + ": " : "") + e.detail));
        ul.appendChild(li);
      }
      setStatus("events-status", res.data.events.length ? "" : "No events in the last 30 days.");
    },
    () => setStatus("events-status", "The appliance did not answer.", true),
  );
}

/* ---- set-up ---- */

function updateDownloads() {
  const ok = loggedIn();
  for (const id of DOWNLOADS) {
    const a = $(id);
    a.classList.toggle("disabled", !ok);
    a.setAttribute("aria-disabled", String(!ok));
    a.title = ok ? "" : "Log in to download";
  }
  $("history-login-hint").hidden = ok;
}

function setup() {
  const range = $("history-range");
  for (const [value, text] of RANGES) {
    const o = el("option", "", text);
    o.value = value;
    range.appendChild(o);
  }
  range.value = "24h";
  const kinds = $("events-kind");
  kinds.replaceChildren(el("option", "", "all kinds"));
  kinds.options[0].value = "";
  for (const k of EVENT_KINDS) {
    const o = el("option", "", k.replace(/_/g, " "));
    o.value = k;
    kinds.appendChild(o);
  }
  range.addEventListener("change", () => {
    const custom = range.value === "custom";
    $("history-custom").hidden = !custom;
    if (custom && !$("history-from").value) {
      $("history-from").value = toLocalInput(Date.now() - 86400e3);
      $("history-to").value = toLocalInput(Date.now());
    }
    if (!custom) loadChart();
  });
  $("history-what").addEventListener("change", loadChart);
  $("history-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    loadChart();
  });
  fillYears("energy-year");
  $("energy-year").addEventListener("change", loadEnergy);
  fillYears("tag-energy-year");
  $("tag-energy-year").addEventListener("change", loadTagEnergy);
  const now = new Date();
  $("sessions-month").value = now.getFullYear() + "-" + String(now.getMonth() + 1).padStart(2, "0");
  $("sessions-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    loadSessions();
  });
  $("sessions-charger").addEventListener("change", loadSessions);
  $("sessions-month").addEventListener("change", loadSessions);
  kinds.addEventListener("change", loadEvents);
  for (const id of DOWNLOADS)
    $(id).addEventListener("click", (ev) => {
      if (!loggedIn()) ev.preventDefault();
    });
  session.addEventListener("change", updateDownloads);
  /* The chart is drawn for the box's width: redraw when the screen turns or resizes. */
  let pending = 0;
  window.addEventListener("resize", () => {
    clearTimeout(pending);
    pending = setTimeout(renderChart, 150);
  });
  view.ready = true;
}

/* Shows the view; params may name what to chart ({charger: "a01"} or {node: "main"}). */
export function showHistory(params) {
  if (!view.ready) setup();
  fillWhatOptions();
  fillCharger($("sessions-charger"), "all chargers");
  if (params.charger) $("history-what").value = "charger:" + params.charger;
  else if (params.node) $("history-what").value = "node:" + params.node;
  updateDownloads();
  loadSimulated().then(() => {
    loadChart();
    loadSessions();
  });
  loadEnergy();
  loadTagEnergy();
  loadEvents();
}

