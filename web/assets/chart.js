/* A small SVG time-series chart for the history view: lines per series, an optional min–max
 * band, step lines for limits, horizontal reference lines, time and ampere axes, and a cursor
 * that reads out the values under the pointer. Colours come from style.css (classes), so it
 * needs nothing but the page's own stylesheet. */

const NS = "http://www.w3.org/2000/svg";
const MARGIN = { left: 46, right: 12, top: 12, bottom: 28 };
const HEIGHT = 280;
const TIME_STEPS = [
  60e3, 5 * 60e3, 15 * 60e3, 30 * 60e3, 3600e3, 3 * 3600e3, 6 * 3600e3, 12 * 3600e3, 86400e3,
  2 * 86400e3, 7 * 86400e3, 14 * 86400e3, 30 * 86400e3,
];

function svg(tag, attrs, parent) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (parent) parent.appendChild(e);
  return e;
}

/* A round step giving about `want` ticks over span: 1, 2 or 5 times a power of ten. */
function niceStep(span, want) {
  const raw = span / Math.max(1, want);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

function pad2(n) {
  return String(n).padStart(2, "0");
}

function timeLabel(t, step) {
  const d = new Date(t);
  const date = pad2(d.getMonth() + 1) + "-" + pad2(d.getDate());
  if (step >= 86400e3) return date;
  const hm = pad2(d.getHours()) + ":" + pad2(d.getMinutes());
  return d.getHours() === 0 && d.getMinutes() === 0 ? date : hm;
}

/* Splits points [[t, ...]] where consecutive ones are further apart than maxGap: a bucket
 * without data is a gap in the line, not a straight bridge across it. */
function segments(points, maxGap) {
  const out = [];
  let cur = [];
  for (const p of points) {
    if (cur.length && p[0] - cur[cur.length - 1][0] > maxGap) {
      out.push(cur);
      cur = [];
    }
    cur.push(p);
  }
  if (cur.length) out.push(cur);
  return out;
}

/* Draws spec into container (replacing what was there) and returns a redraw function for
 * resizes. spec: {from, to, bucket_ms, unit, series: [{label, cls, points: [[t, v]],
 * band: [[t, lo, hi]], step, dashed}], hlines: [{value, label, cls}], readout: element}. */
export function drawChart(container, spec) {
  container.replaceChildren();
  const width = Math.max(280, container.clientWidth || 600);
  const root = svg("svg", {
    class: "chart", viewBox: `0 0 ${width} ${HEIGHT}`, width, height: HEIGHT, role: "img",
    "aria-label": spec.label || "chart",
  }, container);
  const x0 = MARGIN.left, x1 = width - MARGIN.right;
  const y0 = HEIGHT - MARGIN.bottom, y1 = MARGIN.top;
  const span = Math.max(1, spec.to - spec.from);
  let top = 1;
  for (const s of spec.series) {
    for (const p of s.points) top = Math.max(top, p[1]);
    for (const b of s.band || []) top = Math.max(top, b[2]);
  }
  for (const h of spec.hlines || []) top = Math.max(top, h.value);
  const yStep = niceStep(top * 1.05, 5);
  const yMax = Math.ceil((top * 1.05) / yStep) * yStep;
  const X = (t) => x0 + ((t - spec.from) / span) * (x1 - x0);
  const Y = (v) => y0 - (Math.max(0, v) / yMax) * (y0 - y1);

  const grid = svg("g", { class: "chart-grid" }, root);
  for (let v = 0; v <= yMax + 1e-9; v += yStep) {
    svg("line", { x1: x0, x2: x1, y1: Y(v), y2: Y(v) }, grid);
    const label = svg("text", { x: x0 - 6, y: Y(v) + 4, class: "chart-ylabel" }, grid);
    label.textContent = yStep < 1 ? v.toFixed(1) : String(Math.round(v));
  }
  svg("text", { x: 4, y: y1 + 4, class: "chart-unit" }, grid).textContent = spec.unit || "A";
  const want = Math.max(2, Math.floor((x1 - x0) / 90));
  const tStep = TIME_STEPS.find((s) => span / s <= want) || TIME_STEPS[TIME_STEPS.length - 1];
  const tzOffset = new Date(spec.from).getTimezoneOffset() * 60e3;
  let t = Math.ceil((spec.from - tzOffset) / tStep) * tStep + tzOffset;
  for (; t <= spec.to; t += tStep) {
    svg("line", { x1: X(t), x2: X(t), y1: y0, y2: y1, class: "chart-vgrid" }, grid);
    svg("text", { x: X(t), y: y0 + 18, class: "chart-xlabel" }, grid).textContent =
      timeLabel(t, tStep);
  }

  const maxGap = 1.5 * Math.max(spec.bucket_ms || 0, 1);
  const plot = svg("g", { class: "chart-plot" }, root);
  for (const s of spec.series) {
    for (const seg of segments(s.band || [], maxGap)) {
      const up = seg.map((b) => `${X(b[0])},${Y(b[2])}`);
      const down = seg.slice().reverse().map((b) => `${X(b[0])},${Y(b[1])}`);
      svg("polygon", { points: up.concat(down).join(" "), class: "band " + s.cls }, plot);
    }
  }
  for (const s of spec.series) {
    for (const seg of segments(s.points, maxGap)) {
      const pts = [];
      for (const p of seg) {
        pts.push(`${X(p[0])},${Y(p[1])}`);
        if (s.step) pts.push(`${X(p[0] + (spec.bucket_ms || 0))},${Y(p[1])}`);
      }
      if (seg.length === 1 && !s.step) pts.push(`${X(seg[0][0]) + 2},${Y(seg[0][1])}`);
      svg("polyline", {
        points: pts.join(" "), class: "line " + s.cls + (s.dashed ? " dashed" : ""),
      }, plot);
    }
  }
  for (const h of spec.hlines || []) {
    svg("line", { x1: x0, x2: x1, y1: Y(h.value), y2: Y(h.value), class: "hline " + h.cls }, plot);
    svg("text", { x: x1 - 4, y: Y(h.value) - 4, class: "chart-hlabel" }, plot).textContent =
      h.label;
  }
  if (!spec.series.some((s) => s.points.length)) {
    svg("text", { x: (x0 + x1) / 2, y: (y0 + y1) / 2, class: "chart-empty" }, root).textContent =
      "no data in this range";
  }
  addCursor(root, spec, { x0, x1, y0, y1, X });
}

/* A vertical cursor following the pointer, with the values of the nearest point in readout. */
function addCursor(root, spec, g) {
  const times = [...new Set(spec.series.flatMap((s) => s.points.map((p) => p[0])))].sort(
    (a, b) => a - b,
  );
  const cursor = svg("line", { y1: g.y0, y2: g.y1, class: "chart-cursor", visibility: "hidden" },
                     root);
  const hit = svg("rect", {
    x: g.x0, y: g.y1, width: g.x1 - g.x0, height: g.y0 - g.y1, class: "chart-hit",
  }, root);
  const show = (ev) => {
    if (!times.length) return;
    const box = root.getBoundingClientRect();
    const vx = ((ev.clientX - box.left) / box.width) * root.viewBox.baseVal.width;
    const t = spec.from + ((vx - g.x0) / (g.x1 - g.x0)) * (spec.to - spec.from);
    let best = times[0];
    for (const c of times) if (Math.abs(c - t) < Math.abs(best - t)) best = c;
    cursor.setAttribute("x1", g.X(best));
    cursor.setAttribute("x2", g.X(best));
    cursor.setAttribute("visibility", "visible");
    if (spec.readout) spec.readout.textContent = readout(spec, best);
  };
  hit.addEventListener("pointermove", show);
  hit.addEventListener("pointerdown", show);
}

function readout(spec, t) {
  const d = new Date(t);
  const parts = [
    d.getFullYear() + "-" + pad2(d.getMonth() + 1) + "-" + pad2(d.getDate()) + " " +
      pad2(d.getHours()) + ":" + pad2(d.getMinutes()),
  ];
  for (const s of spec.series) {
    const p = s.points.find((q) => q[0] === t);
    if (p) parts.push(s.label + " " + p[1].toFixed(1) + " " + (spec.unit || "A"));
  }
  return parts.join(" · ");
}
