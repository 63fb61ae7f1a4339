// Browser test of the phasewise dashboard: the real phasewise and phasewise-sim on loopback
// (their own ports, like tests/integration/e2e_test.py), driven through Debian's headless
// Chromium by playwright-core. Covers first-start setup, login, live values against the
// simulator's ground truth, chargers and meters shown in the link form, a config edit refused
// with the message next to the field, a valid one that changes the allocation, a restart-only
// one listed as such and kept by the next save, the meter forms with a test read of the main
// meter and of a gateway nobody listens at, a backup downloaded and a file that is not one
// refused for restore, CSV downloads, the history chart and the phone
// layout. Then OCPP: the central system, a charge point with a generated key and a tag set up
// in the commissioning forms (the appliance keeps only the key's hash), a restart to open the
// OCPP port, a charge point (Chromium speaking OCPP 1.6J from a blank page) that connects
// unassigned and is assigned from the page, and its transaction shown with the tag's name.
// The local controller on the way: the operator's CSMS URL (an http:// one refused next to the
// field), a charge point's password at the CSMS saved write-only, kept and cleared, and the
// dashboard's CSMS line (down, calls waiting) equal to the state document's.
// Last, a circuit's static reserve (reserve_a) in the forms and the preview.
// With --walk first-start, instead: from an empty data folder to a balancing facility
// (commissioning mode, discovery, a Modbus scan, the first save), see firstStart below.
// Screenshots go to tests/browser/artifacts/. Bounded: the whole run must finish in 100 s.
//
//   node browser_test.mjs --phasewise PATH --sim PATH [--walk first-start]
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import dgram from "node:dgram";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SOURCE = path.resolve(HERE, "..", "..");
const ARTIFACTS = path.join(HERE, "artifacts");
const CHROMIUM = process.env.PW_CHROMIUM || "/usr/bin/chromium";
const PASSWORD = "correct horse battery staple";
const BUDGET_MS = 100000;
const t0 = Date.now();

function log(msg) {
  console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${msg}`);
}

function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

function args() {
  const a = process.argv.slice(2), out = {};
  for (let i = 0; i < a.length; i += 2) out[a[i].replace(/^--/, "")] = a[i + 1];
  check(out.phasewise && out.sim, "usage: browser_test.mjs --phasewise PATH --sim PATH");
  return out;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* Polls fn until it returns a true value. */
async function waitFor(what, fn, timeoutMs, intervalMs = 250) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what} (last: ${last})`);
}

function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/* A UDP port for our own multicast group, away from a demo that may be running. */
async function freeUdpPort() {
  for (let i = 0; i < 50; i++) {
    const port = 40000 + Math.floor(Math.random() * 20000);
    const ok = await new Promise((resolve) => {
      const s = dgram.createSocket("udp4");
      s.once("error", () => resolve(false));
      s.bind(port, "0.0.0.0", () => s.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error("no free UDP port");
}

/* Processes we start; all are ended on exit, also on failure. */
const procs = [];

function start(name, cmd, argv, dir) {
  const out = fs.openSync(path.join(dir, name + ".log"), "w");
  const p = spawn(cmd, argv, { stdio: ["ignore", out, out], detached: true });
  p.logName = name;
  p.logFile = path.join(dir, name + ".log");
  p.exited = new Promise((resolve) => p.on("exit", (code, sig) => resolve({ code, sig })));
  procs.push(p);
  log(`started ${name} (pid ${p.pid})`);
  return p;
}

async function stop(p, timeoutMs = 15000) {
  if (p.exitCode === null && p.signalCode === null) p.kill("SIGTERM");
  const r = await Promise.race([p.exited, sleep(timeoutMs).then(() => null)]);
  check(r, `${p.logName} did not exit within ${timeoutMs / 1000} s of SIGTERM`);
  return r;
}

function killAll() {
  for (const p of procs) {
    if (p.exitCode === null && p.signalCode === null) {
      try {
        process.kill(-p.pid, "SIGKILL");
      } catch {
        /* already gone */
      }
    }
  }
}

function readReport(file) {
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, "utf8").split("\n").filter((l) => l.endsWith("}"))
    .map((l) => JSON.parse(l));
}

/* The dashboard's charger rows as the browser shows them. */
function dashboardChargers(page) {
  return page.$$eval("#charger-rows tr[data-charger]", (rows) => rows.map((tr) => ({
    id: tr.dataset.charger,
    online: tr.dataset.online === "true",
    state: tr.dataset.state,
    current: [...tr.querySelectorAll("[data-field=current] [data-phase]")].map((s) =>
      Number(s.dataset.value)),
    limit: Number(tr.querySelector("[data-field=limit]").dataset.value),
    reason: tr.querySelector("[data-field=reason]").textContent,
  })));
}

/* Compares what the page shows with the simulator's ground truth of the last seconds, the rule
 * of e2e_test.py: each pilot state must be one the simulator had, each current within what
 * the simulator's currents spanned, and at least a third held still and match exactly. */
function matchesTruth(shown, reports, nowMs, ids) {
  const recent = reports.filter((r) => r.wall_ms >= nowMs - 6000 && r.wall_ms <= nowMs + 500);
  if (!recent.length) return "no simulator report near now";
  const byId = new Map(shown.map((c) => [c.id, c]));
  let steady = 0;
  for (const id of ids) {
    const seen = byId.get(id);
    if (!seen) return `charger ${id} missing from the page`;
    const truth = recent.map((r) => r.chargers.find((c) => c.id === id));
    if (!truth.some((t) => t.state === seen.state))
      return `charger ${id}: page shows ${seen.state}, simulator ${truth.map((t) => t.state)}`;
    for (let l = 0; l < 3; l++) {
      const vals = truth.map((t) => t.current_a[l]);
      const lo = Math.min(...vals) - 0.15, hi = Math.max(...vals) + 0.15;
      if (!(seen.current[l] >= lo && seen.current[l] <= hi))
        return `charger ${id} L${l + 1}: page ${seen.current[l]} A, simulator ${vals}`;
      if (hi - lo < 0.5) steady++;
    }
  }
  if (steady < ids.length) return "too few steady currents to compare exactly";
  return null;
}

/* Exit code 77 tells ctest the test was skipped: the browser or its driver is not installed
 * (scripts/test.sh installs both: docker/install-deps.sh --browser, then npm ci here). */
async function loadDriver() {
  if (!fs.existsSync(CHROMIUM)) {
    console.log(`SKIP: no Chromium at ${CHROMIUM} (sh docker/install-deps.sh --browser)`);
    process.exit(77);
  }
  try {
    return (await import("playwright-core")).chromium;
  } catch (e) {
    console.log(`SKIP: playwright-core is not installed (cd tests/browser && npm ci): ${e.message}`);
    process.exit(77);
  }
}

function launch(chromium, profile) {
  return chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1280, height: 900 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-features=LocalNetworkAccessChecks"],
  });
}

/* --walk first-start (issue 16, item 5): from an empty data folder to a balancing facility,
 * all in the page. phasewise serve starts without a config (commissioning mode); the page asks
 * for the admin password and sends the person to the commissioning page; the pairing text
 * pairs the simulator's chargers, which show up as discovered (three LAN chargers announcing,
 * one OCPP charge point connecting); each is added to the facility, the main fuse gets its
 * rating and, from "Scan a Modbus gateway", its meter; Save; the dashboard balances. */
async function firstStart(a, chromium) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pw-browser-first-"));
  const httpPort = await freeTcpPort(), udpPort = await freeUdpPort();
  const ocppPort = await freeTcpPort(), mbPort = await freeTcpPort();
  /* The site as the simulator plays it; the appliance never reads this file. */
  const demo = JSON.parse(fs.readFileSync(path.join(SOURCE, "config", "demo.json"), "utf8"));
  const site = {
    site: "First start", grid: "TN",
    network: { port: udpPort, interface: "127.0.0.1", ttl: 1 },
    http: { listen: `127.0.0.1:${httpPort}` },
    ocpp: { listen: `127.0.0.1:${ocppPort}` },
    nodes: [{ id: "main", name: "Main fuse", parent: null, limit_a: 63,
              meter: { link: { modbus: { host: "127.0.0.1", port: mbPort, unit: 1,
                                         map: "sdm630" } } } }],
    chargers: [...demo.chargers.slice(0, 3), demo.chargers.find((c) => c.link.ocpp)]
      .map((c) => ({ ...c, node: "main" })),
  };
  const sitePath = path.join(tmp, "site.json");
  fs.writeFileSync(sitePath, JSON.stringify(site, null, 2));
  const data = path.join(tmp, "data");
  fs.mkdirSync(data);
  const base = `http://127.0.0.1:${httpPort}`;
  const report = path.join(tmp, "truth.jsonl");
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "pw-chromium-"));
  let ok = false, context = null;
  const problems = [];
  try {
    const pw = start("phasewise", a.phasewise, ["serve", "--data", data, "--http",
      `127.0.0.1:${httpPort}`, "--lan", `127.0.0.1:${udpPort}`, "--ocpp",
      `127.0.0.1:${ocppPort}`], tmp);
    await waitFor("the appliance", async () => (await fetch(base + "/api/health")).ok, 15000);
    context = await launch(chromium, profile);
    const page = context.pages()[0] || (await context.newPage());
    page.setDefaultTimeout(15000);
    page.on("console", (m) => {
      if (m.type() === "error" && !/status of 40[0139]/.test(m.text())) problems.push(m.text());
    });
    page.on("pageerror", (e) => problems.push(String(e)));

    // 1. The dashboard of an appliance with no facility: the password first, then the
    // commissioning page with the first-start note.
    await page.goto(base + "/");
    await page.waitForSelector("#auth-panel[data-mode=setup]:not([hidden])");
    await page.waitForFunction(() => location.hash === "#/commission");
    await page.fill("#auth-password", PASSWORD);
    await page.fill("#auth-confirm", PASSWORD);
    await page.click("#auth-submit");
    await page.waitForSelector("#auth-button[data-logged-in=true]");
    await page.waitForSelector("#cfg-first:not([hidden])");
    await page.waitForSelector("#commission:not([hidden]) #cfg-form fieldset");
    check(await page.$$eval("[data-charger]", (e) => e.length) === 0,
          "the first start's draft has chargers");
    log("first start: password set, sent to the commissioning page, which says why");

    // 2. Pair the simulator with the text the page shows, and start it.
    await page.click("#pairing-show");
    const hex = await page.waitForFunction(() =>
      document.getElementById("pairing-text").dataset.hex || null);
    const keyPath = path.join(tmp, "sim.key");
    fs.writeFileSync(keyPath, (await hex.jsonValue()) + "\n", { mode: 0o600 });
    const sim = start("phasewise-sim", a.sim, ["--config", sitePath, "--key-file", keyPath,
      "--seed", "7", "--cars", "20", "--arrivals", "evening", "--start-hour", "18.5",
      "--report", report], tmp);

    // 3. Discovered, live: add each to the facility.
    const lanIds = site.chargers.filter((c) => c.link.lan).map((c) => c.link.lan.device_id);
    const cp = site.chargers.find((c) => c.link.ocpp).link.ocpp.id;
    // Locators, not element handles: the list is drawn again each time a device turns up, so a
    // handle can be detached between finding and clicking; a locator finds the button again.
    for (const id of lanIds) {
      const add = page.locator(`#cfg-unassigned button[data-add-lan='${id}']`);
      check(/Add to the facility/.test(await add.textContent()), "the button is not 'Add to the facility'");
      await add.click();
    }
    const cpKey = `ocpp ${cp} connector 1`;
    await page.locator(`#cfg-unassigned button[data-assign='${cpKey}']`).click();
    await page.waitForFunction((n) => document.querySelectorAll("[data-charger]").length === n,
                               site.chargers.length);
    log(`discovered and added: LAN ${lanIds.join(", ")} and charge point ${cp}`);

    // 4. The main fuse's rating, and its meter from a scan of the simulator's gateway.
    for (const inp of await page.$$("[data-path='nodes[0].limit_a'] input")) await inp.fill("63");
    await page.fill("[data-scan=host]", "127.0.0.1");
    await page.fill("[data-scan=port]", String(mbPort));
    await page.fill("[data-scan=from]", "1");
    await page.fill("[data-scan=to]", "3");
    await page.click("#cfg-scan-run");
    const use = page.locator("#cfg-scan-units button[data-scan-use='1']");
    await use.waitFor();
    const found = await page.textContent("#cfg-scan-units [data-scan-unit='1']");
    check(/SDM630/.test(found), `scan row: ${found}`);
    check(/^1 unit answered/.test(await page.textContent("#cfg-scan-out")),
          `scan summary: ${await page.textContent("#cfg-scan-out")}`);
    await use.click();
    await page.waitForSelector("[data-meter-for='0']");
    check(await page.$eval("[data-meter-for='0']", (e) => e.value) === "modbus",
          "the main fuse's meter is not the scanned Modbus meter");
    log(`scan found ${found.split(" · ").slice(0, 2).join(" · ")}; used as the main meter`);
    await page.screenshot({ path: path.join(ARTIFACTS, "first-start.png"), fullPage: true });

    // 5. Save: the first valid configuration; balancing starts without a restart.
    await page.click("#cfg-save");
    await page.waitForFunction(() =>
      /^Saved/.test(document.getElementById("cfg-message").textContent));
    check(fs.existsSync(path.join(data, "config.json")), "no config.json after the save");
    await page.waitForSelector("#cfg-first", { state: "hidden" });
    await page.goto(base + "/#/");
    await page.waitForSelector("#first-start", { state: "hidden" });
    let why = "";
    await waitFor("every charger balanced on the dashboard", async () => {
      const shown = await dashboardChargers(page);
      const last = readReport(report).slice(-1)[0];
      why = JSON.stringify({ shown, sim: last && last.chargers.map((c) => [c.id, c.lease,
                                                                           c.offered_a]) });
      return shown.length === site.chargers.length && shown.every((c) => c.online) &&
        last && last.chargers.filter((c) => c.device_id).every((c) => c.lease === "active") &&
        shown.some((c) => c.limit >= 6);
    }, 30000, 500).catch((e) => {
      throw new Error(`${e.message}: ${why}`);
    });
    check(pw.exitCode === null, "phasewise restarted or exited");
    const shown = await dashboardChargers(page);
    log(`dashboard balancing: limits ${shown.map((c) => c.id + " " + c.limit).join(", ")}`);
    await page.screenshot({ path: path.join(ARTIFACTS, "first-start-dashboard.png"),
                            fullPage: true });

    check(problems.length === 0, "errors in the page: " + problems.join(" | "));
    await context.close();
    context = null;
    check((await stop(pw)).code === 0, "phasewise did not exit 0");
    await stop(sim);
    ok = true;
  } finally {
    if (context) await context.close().catch(() => {});
    killAll();
    fs.rmSync(profile, { recursive: true, force: true });
    if (ok && !process.env.PW_KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
    else {
      log(`kept ${tmp}`);
      for (const p of procs) {
        const text = fs.existsSync(p.logFile) ? fs.readFileSync(p.logFile, "utf8") : "";
        console.log(`--- ${p.logName} log (tail) ---\n${text.split("\n").slice(-30).join("\n")}`);
      }
    }
  }
}

async function main() {
  const a = args();
  const chromium = await loadDriver();
  if (a.walk === "first-start") return firstStart(a, chromium);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pw-browser-"));
  const httpPort = await freeTcpPort(), udpPort = await freeUdpPort();
  const cfg = JSON.parse(fs.readFileSync(path.join(SOURCE, "config", "demo.json"), "utf8"));
  Object.assign(cfg.network, { port: udpPort, interface: "127.0.0.1", ttl: 1 });
  cfg.http.listen = `127.0.0.1:${httpPort}`;
  /* The demo's main meter is the simulator's Modbus TCP server: on a port of this test's own. */
  const mainMeter = cfg.nodes[0].meter && cfg.nodes[0].meter.link;
  if (mainMeter && mainMeter.modbus) {
    mainMeter.modbus.host = "127.0.0.1";
    mainMeter.modbus.port = await freeTcpPort();
  }
  /* The test sets OCPP and tags up through the forms itself: the demo's OCPP chargers speak the
   * LAN protocol here (device ids 3000 + their index), as in the integration tests'
   * test_config, and its tags are left out. */
  cfg.chargers.forEach((c, i) => {
    if (c.link && c.link.ocpp) c.link = { lan: { device_id: 3000 + i } };
  });
  delete cfg.ocpp;
  delete cfg.tags;
  const cfgPath = path.join(tmp, "config.json");
  fs.writeFileSync(cfgPath, JSON.stringify(cfg, null, 2));
  const base = `http://127.0.0.1:${httpPort}`;
  const report = path.join(tmp, "truth.jsonl");
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "pw-chromium-"));
  let ok = false, context = null;
  const problems = [];
  try {
    const serve = ["serve", "--config", cfgPath, "--data", tmp];
    let pw = start("phasewise", a.phasewise, serve, tmp);
    await waitFor("the appliance", async () => (await fetch(base + "/api/health")).ok, 15000);
    start("phasewise-sim", a.sim, ["--config", cfgPath, "--key-file", path.join(tmp, "facility.key"),
      "--seed", "7", "--cars", "40", "--arrivals", "evening", "--start-hour", "18.5", "--report",
      report], tmp);

    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      acceptDownloads: true,
      viewport: { width: 1280, height: 900 },
      /* The charge point of step 9 connects from a blank page, which Chromium's local network
         access checks would keep from reaching a loopback port. */
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-features=LocalNetworkAccessChecks"],
    });
    const page = context.pages()[0] || (await context.newPage());
    page.setDefaultTimeout(15000);
    /* A CSP violation or a script error shows up here: the test fails on any. While the test
       restarts the appliance (step 9), the page failing to reach it is expected. */
    let restarting = false;
    page.on("console", (m) => {
      if (m.type() === "error" && !/status of 40[0139]/.test(m.text()) &&
          !(restarting && /ERR_CONNECTION_REFUSED|WebSocket connection/.test(m.text())))
        problems.push(m.text());
    });
    page.on("pageerror", (e) => problems.push(String(e)));

    // 1. First start: the page asks for the admin password; there is no default.
    await page.goto(base + "/");
    await page.waitForSelector("#auth-panel[data-mode=setup]:not([hidden])");
    await page.fill("#auth-password", PASSWORD);
    await page.fill("#auth-confirm", PASSWORD + "x");
    await page.click("#auth-submit");
    await page.waitForFunction(() => /differ/.test(document.getElementById("auth-message").textContent));
    await page.fill("#auth-confirm", PASSWORD);
    await page.click("#auth-submit");
    await page.waitForSelector("#auth-panel", { state: "hidden" });
    await page.waitForSelector("#auth-button[data-logged-in=true]");
    log("first-start setup: password set, logged in");

    // 2. Log out, a wrong password, then log in.
    await page.click("#auth-button");
    await page.waitForSelector("#auth-button[data-logged-in=false]");
    await page.click("#auth-button");
    await page.fill("#auth-password", "not the password");
    await page.click("#auth-submit");
    await page.waitForFunction(() => /Wrong password/.test(document.getElementById("auth-message").textContent));
    await page.fill("#auth-password", PASSWORD);
    await page.click("#auth-submit");
    await page.waitForSelector("#auth-button[data-logged-in=true]");
    log("logout, wrong password refused, login");

    // 3. Live values: every charger online and what the page shows matches the simulator.
    const ids = cfg.chargers.map((c) => c.id);
    await waitFor("every charger online on the page", async () =>
      (await dashboardChargers(page)).filter((c) => c.online).length === ids.length, 25000);
    await waitFor("cars charging", async () =>
      (await dashboardChargers(page)).filter((c) => c.state === "C").length >= 4, 20000);
    let why = null;
    await waitFor("the page to match the simulator", async () => {
      const shown = await dashboardChargers(page);
      why = matchesTruth(shown, readReport(report), Date.now(), ids);
      return why === null;
    }, 20000, 700).catch((e) => {
      throw new Error(`${e.message}: ${why}`);
    });
    check(await page.$eval("#conn", (e) => e.dataset.state) === "live", "connection not live");
    log("dashboard shows the simulator's states and currents");
    await page.screenshot({ path: path.join(ARTIFACTS, "dashboard.png"), fullPage: true });

    // 3b. The header and footer say what the state document says: the uptime (the formatting
    // itself first, then the page against /api/state; a fresh start reads in seconds, never
    // "0 min"), and in the footer every refused datagram, here an oversized and a foreign one.
    const { fmtUptime } = await import(new URL("../../web/assets/util.js", import.meta.url).href);
    for (const [s, text] of [[0, "up 0 s"], [59, "up 59 s"], [60, "up 1 min"], [3599, "up 59 min"],
                             [7500, "up 2 h 05 min"], [90061, "up 1 d 1 h"], [undefined, ""]])
      check(fmtUptime(s) === text, `fmtUptime(${s}) is "${fmtUptime(s)}", not "${text}"`);
    const upText = await page.textContent("#uptime");
    const upDoc = (await (await fetch(base + "/api/state")).json()).uptime_s;
    const [, upN, upUnit] = /^up (\d+) (s|min)$/.exec(upText) || [];
    check(upUnit === "s" ? Math.abs(upN - upDoc) <= 3
                         : upUnit === "min" && Math.abs(upN - Math.floor(upDoc / 60)) <= 1,
          `the header shows "${upText}" while the state document says up ${upDoc} s`);
    const forger = dgram.createSocket("udp4");
    await new Promise((resolve) => forger.bind(0, "127.0.0.1", resolve));
    forger.setMulticastInterface("127.0.0.1");
    for (const d of [Buffer.alloc(3000), Buffer.concat([Buffer.from("XX"), Buffer.alloc(72)])])
      await new Promise((resolve, reject) => forger.send(d, cfg.network.port, cfg.network.group,
                                                         (e) => (e ? reject(e) : resolve())));
    forger.close();
    const footer = await waitFor("the footer to count the refused datagrams", async () => {
      const rej = (await (await fetch(base + "/api/state")).json()).counters.rejected;
      const total = Object.values(rej).reduce((sum, n) => sum + n, 0);
      const [shown, text] = await page.$eval("#counters",
                                             (e) => [Number(e.dataset.rejected), e.textContent]);
      return total >= 2 && shown === total && /long [1-9]/.test(text) &&
        /magic [1-9]/.test(text) && text;
    }, 10000);
    log(`header "${upText}" (document: up ${upDoc} s); footer "${footer}"`);

    // 4. Commissioning: an invalid wiring is refused with the message next to the field.
    /* A car allowed more than 10 A now, so that a 10 A maximum must show. */
    const target = await waitFor("a car charging at 12 A or more", async () =>
      (await dashboardChargers(page)).filter((c) => c.state === "C" && c.limit >= 12)
        .sort((x, y) => y.limit - x.limit)[0], 20000);
    const k = cfg.chargers.findIndex((c) => c.id === target.id);
    await page.click("nav.pages a[data-page=commission]");
    await page.waitForSelector("#cfg-form [data-path='chargers[3].wiring']");
    /* Devices are edited by their link: the LAN device id of a charger and of the main meter. */
    const field = (path) => page.inputValue(`#cfg-form [data-path='${path}']`);
    const shownId = await field("chargers[3].link.lan.device_id");
    check(shownId === String(cfg.chargers[3].link.lan.device_id),
          `chargers[3] shows LAN device id ${shownId}, not ${cfg.chargers[3].link.lan.device_id}`);
    const mainLink = cfg.nodes[0].meter.link;
    if (mainLink.lan) {
      const meterId = await field("nodes[0].meter.link.lan.device_id");
      check(meterId === String(mainLink.lan.device_id),
            `the main meter shows LAN device id ${meterId}`);
    } else if (mainLink.modbus) {
      const host = await field("nodes[0].meter.link.modbus.host");
      const map = await field("nodes[0].meter.link.modbus.map");
      check(host === mainLink.modbus.host && map === mainLink.modbus.map,
            `the main meter shows Modbus gateway ${host} with map ${map}`);
    }
    check(await page.$eval("#cfg-restart", (e) => e.hidden), "a restart notice before any change");
    await page.fill("#cfg-form [data-path='chargers[3].wiring']", "L1L1");
    await page.click("#cfg-save");
    const err = await page.waitForSelector(
      "#cfg-form .fld .field-error[data-error-for='chargers[3].wiring']");
    check(await err.evaluate((e) => !!e.closest(".fld").querySelector("[data-path='chargers[3].wiring']")),
          "the wiring error is not next to the wiring field");
    check(/grid line/.test(await err.textContent()), "the wiring error has no useful text");
    const running = await (await fetch(base + "/api/config")).json();
    check(running.chargers[3].wiring === cfg.chargers[3].wiring, "a refused config was applied");
    log("invalid wiring refused; message next to chargers[3].wiring; nothing applied");
    await page.screenshot({ path: path.join(ARTIFACTS, "commission-error.png") });

    // 5. A valid edit: fix the wiring, cap the chosen charger at 10 A, preview, save.
    await page.fill("#cfg-form [data-path='chargers[3].wiring']", cfg.chargers[3].wiring || "L1L2L3");
    const maxSel = `#cfg-form [data-path='chargers[${k}].max_a']`;
    await page.fill(maxSel, "10");
    const failsafe = cfg.chargers[k].failsafe_a || 0;
    if (failsafe > 10) await page.fill(`#cfg-form [data-path='chargers[${k}].failsafe_a']`, "10");
    await page.click("#cfg-preview");
    const cell = await page.waitForSelector(
      `#preview-chargers tr[data-charger='${target.id}'] [data-field=preview-limit]`);
    const previewed = Number(await cell.getAttribute("data-value"));
    check(previewed > 0 && previewed <= 10, `preview gives ${target.id} ${previewed} A, not 6..10 A`);
    check((await (await fetch(base + "/api/config")).json()).chargers[k].max_a !== 10,
          "the preview changed the running config");
    log(`preview: ${target.id} at ${previewed} A (was ${target.limit} A); nothing applied yet`);
    await page.click("#cfg-save");
    await page.waitForFunction(() => document.getElementById("cfg-message").textContent === "Saved and applied.");
    await page.click("nav.pages a[data-page='']");
    await waitFor(`the dashboard to show ${target.id} capped at 10 A`, async () => {
      const c = (await dashboardChargers(page)).find((x) => x.id === target.id);
      return c && c.limit > 0 && c.limit <= 10;
    }, 10000);
    const saved = JSON.parse(fs.readFileSync(cfgPath, "utf8"));
    check(saved.chargers[k].max_a === 10, "the saved file lacks the new maximum");
    log(`saved: the dashboard shows ${target.id} at most 10 A; the file has it`);

    // 5b. A restart-only setting: saved, listed as waiting for a restart, and a later save of
    // another field (the page reloaded the config in between) does not undo it.
    const newPort = udpPort === 65535 ? udpPort - 1 : udpPort + 1;
    await page.click("nav.pages a[data-page=commission]");
    await page.waitForSelector("#cfg-form [data-path='network.port']");
    await page.fill("#cfg-form [data-path='network.port']", String(newPort));
    await page.click("#cfg-save");
    const notice = await page.waitForSelector("#cfg-restart:not([hidden])");
    check(/after a restart/.test(await notice.textContent()) &&
          (await notice.$$eval("code", (cs) => cs.map((c) => c.textContent))).join() ===
          "network.port", `restart notice: ${await notice.textContent()}`);
    check(await page.inputValue("#cfg-form [data-path='network.port']") === String(newPort),
          "the form shows the running port instead of the saved one");
    await page.fill("#cfg-form [data-path='site']", "Renamed in the browser");
    await page.click("#cfg-save");
    const resaved = await waitFor("the renamed site in the file", () => {
      const f = JSON.parse(fs.readFileSync(cfgPath, "utf8"));
      return f.site === "Renamed in the browser" && f;
    }, 10000);
    check(resaved.network.port === newPort, `the next save put port ${resaved.network.port} back`);
    log(`network.port ${newPort} saved, listed as waiting for a restart, kept by the next save`);

    // 5c. A circuit's meter as a Modbus TCP meter, then as an MQTT feed: the forms follow the
    // kind, the appliance checks them (an MQTT feed needs the broker), nothing is saved.
    const valid = async (what) => {
      await page.click("#cfg-validate");
      await page.waitForFunction(() =>
        document.getElementById("cfg-message").textContent === "The configuration is valid.");
      log(`checked valid: ${what}`);
    };
    /* The save above reloads the config into the form when it is done; edit after that. */
    await page.waitForFunction(() =>
      /^Saved\. Some settings/.test(document.getElementById("cfg-message").textContent));
    const kindSel = "#cfg-form select[data-meter-for='1']";
    const mb = "#cfg-form [data-path='nodes[1].meter.link.modbus";
    await page.selectOption(kindSel, "modbus");
    await page.fill(mb + ".host']", "10.0.0.5");
    const maps = await page.$$eval(mb + ".map'] option", (os) => os.map((o) => o.value));
    check(maps.join() === "sdm630,sdm72v1,sdm72v2,em340,em24,em24eth,abb_b2x,sunspec,generic",
          `map choices: ${maps}`);
    await page.selectOption(mb + ".map']", "em340");
    await valid("nodes[1] read over Modbus TCP from 10.0.0.5 with the EM340 map");
    /* Test read, nothing saved: the main meter gives its values; a gateway nobody listens at
       gives the exact error. */
    const testRead = async (i) => {
      const out = `#cfg-form output[data-test-read-out='${i}']`;
      await page.click(`#cfg-form button[data-test-read='${i}']`);
      await page.waitForSelector(out + "[data-ok]");
      return [await page.$eval(out, (e) => e.dataset.ok === "true"), await page.textContent(out)];
    };
    const [mainOk, mainText] = await testRead(0);
    check(mainOk && /^L1 \d+\.\d\d A · L2 \d+\.\d\d A · L3 \d+\.\d\d A/.test(mainText),
          `test read of the main meter: ${mainText}`);
    log(`test read of the main meter: ${mainText}`);
    const refused = await freeTcpPort();
    await page.fill(mb + ".host']", "127.0.0.1");
    await page.fill(mb + ".port']", String(refused));
    const [nodeOk, nodeText] = await testRead(1);
    check(!nodeOk && nodeText.includes(`127.0.0.1:${refused}`) &&
          /connection refused/.test(nodeText),
          `test read of a gateway nobody listens at: ${nodeText}`);
    log(`test read of a gateway nobody listens at: ${nodeText}`);
    await page.locator("#cfg-form fieldset[data-path='nodes[1]']")
      .screenshot({ path: path.join(ARTIFACTS, "commission-test-read.png") });
    await page.selectOption(mb + ".map']", "generic");
    await page.fill(mb + ".lines']", '[{"address": 6, "type": "f32"}, null, null]');
    await page.click("#cfg-validate");
    const partial = await page.waitForSelector(
      "#cfg-form .field-error[data-error-for='nodes[1].meter.link.modbus.lines']");
    check(/L2 is not reported/.test(await partial.textContent()),
          `a generic map without L2 and L3 was not refused: ${await partial.textContent()}`);
    await page.fill(mb + ".lines']", '[{"address": 6, "type": "f32"}, ' +
      '{"address": 8, "type": "f32"}, {"address": 10, "type": "f32"}]');
    await valid("nodes[1] with a generic map reading L1, L2 and L3");
    const card1 = "#cfg-form fieldset[data-path='nodes[1]']";
    await page.locator(card1).screenshot({ path: path.join(ARTIFACTS, "commission-modbus.png") });
    const mq = "#cfg-form [data-path='nodes[1].meter.link.mqtt";
    await page.selectOption(kindSel, "mqtt");
    await page.fill(mq + ".topic']", "ams/meter");
    await page.click("#cfg-validate");
    const noBroker = await page.waitForSelector(
      "#cfg-form .field-error[data-error-for='nodes[1].meter.link.mqtt']");
    check(/mqtt\.host/.test(await noBroker.textContent()),
          `the missing broker is not named: ${await noBroker.textContent()}`);
    await page.fill("#cfg-form [data-path='mqtt.host']", "127.0.0.1");
    await valid("nodes[1] fed by the AMS reader's JSON on ams/meter");
    await page.selectOption(mq + ".preset']", "plain");
    check(await page.inputValue(mq + ".topics[0]']") === "ams/meter",
          "the topic did not carry over to the plain feed's L1");
    await page.fill(mq + ".topics[1]']", "ams/l2");
    await page.fill(mq + ".topics[2]']", "ams/l3");
    await valid("nodes[1] fed by one topic per line");
    await page.locator(card1).screenshot({ path: path.join(ARTIFACTS, "commission-mqtt.png") });
    // 5d. The MQTT section: publishing, each command and the fleet uplink render, and "Test
    // connection" answers with the broker's problem (nobody listens at the port).
    for (const f of ["mqtt.publish.enabled", "mqtt.publish.prefix", "mqtt.commands.pause",
                     "mqtt.commands.facility_limit", "mqtt.cert_file", "uplink.host",
                     "uplink.site"])
      check(await page.isVisible(`#cfg-form [data-path='${f}']`), `no field ${f}`);
    await page.fill("#cfg-form [data-path='mqtt.port']", String(await freeTcpPort()));
    await page.click("#cfg-form button[data-broker-test='mqtt']");
    const brokerOut = "#cfg-form output[data-broker-test-out='mqtt']";
    await page.waitForFunction((sel) => document.querySelector(sel)?.dataset.ok !== undefined,
                               brokerOut, { timeout: 15000 });
    const [brokerOk, brokerText] = await page.$eval(brokerOut,
                                                    (e) => [e.dataset.ok, e.textContent]);
    check(brokerOk === "false" && /cannot connect to broker 127\.0\.0\.1/.test(brokerText),
          `the connection test answered ${brokerOk}: ${brokerText}`);
    log(`MQTT connection test to a closed port: ${brokerText}`);
    await page.locator("#cfg-form fieldset.cfg-section",
                       { has: page.locator("[data-path='mqtt.publish.enabled']") })
      .screenshot({ path: path.join(ARTIFACTS, "commission-mqtt-broker.png") });
    await page.click("#cfg-reload");
    await page.waitForFunction((sel) => document.querySelector(sel)?.value === "", kindSel);
    const after = await (await fetch(base + "/api/config")).json();
    check(!after.nodes[1].meter && after.mqtt.host === "", "checking the meter forms saved them");
    log("Modbus and MQTT meter forms checked by the appliance; reload discarded them");

    // 5c. Backup and restore: the download is a backup archive; a file that is not one is
    // refused with the appliance's sentence after the confirmation, and nothing restarts.
    const [backup] = await Promise.all([page.waitForEvent("download"),
                                        page.click("#backup-download")]);
    check(/^phasewise-[a-z0-9-]+-\d{4}-\d\d-\d\d\.tar$/.test(backup.suggestedFilename()),
          `backup file name ${backup.suggestedFilename()}`);
    const tarFile = path.join(ARTIFACTS, backup.suggestedFilename());
    await backup.saveAs(tarFile);
    const tar = fs.readFileSync(tarFile);
    check(tar.subarray(0, 13).toString() === "manifest.json" &&
          tar.subarray(257, 262).toString() === "ustar", "the backup is not a tar with the manifest first");
    fs.unlinkSync(tarFile); // it holds the facility key
    page.once("dialog", (d) => d.accept());
    await page.setInputFiles("#backup-restore", { name: "notes.tar", mimeType: "application/x-tar",
                                                  buffer: Buffer.from("not a backup\n".repeat(100)) });
    await page.waitForFunction(() => /Not restored: not a tar archive/.test(
      document.getElementById("backup-message").textContent));
    log(`backup downloaded (${tar.length} bytes); a file that is not one refused`);
    await page.click("nav.pages a[data-page='']");
    await page.waitForSelector("#view-commission", { state: "hidden" });

    // 6. History: the chart of that charger, then the CSV downloads.
    await page.click(`#charger-rows tr[data-charger='${target.id}'] a.charger-name`);
    await page.waitForSelector("#view-history:not([hidden])");
    await page.waitForFunction((id) => {
      const box = document.getElementById("history-chart");
      return box.dataset.id === id && Number(box.dataset.points) > 0 &&
        box.querySelectorAll("polyline.line").length >= 3;
    }, target.id);
    await page.waitForSelector(`#sessions-rows tr`);
    for (const [id, header] of [["sessions-csv", /^session,charger,/], ["energy-csv", /^month,|^period,|,charger/]]) {
      const [download] = await Promise.all([page.waitForEvent("download"), page.click("#" + id)]);
      const file = path.join(ARTIFACTS, download.suggestedFilename());
      await download.saveAs(file);
      const text = fs.readFileSync(file, "utf8");
      const lines = text.trim().split("\n");
      check(header.test(lines[0]), `${id}: unexpected header ${lines[0]}`);
      if (id === "sessions-csv")
        check(lines.length >= 2 && lines.slice(1).some((l) => l.split(",")[1] === target.id ||
              l.includes(",")), `${id}: no session rows`);
      log(`${download.suggestedFilename()}: ${lines.length - 1} rows`);
    }
    await page.screenshot({ path: path.join(ARTIFACTS, "history.png"), fullPage: true });

    // 7. Phone-sized screen: nothing wider than the screen, the forms still usable.
    await page.setViewportSize({ width: 390, height: 844 });
    for (const [hash, shot] of [["#/", "phone-dashboard.png"], ["#/commission", "phone-commission.png"]]) {
      await page.goto(base + "/" + hash);
      await page.waitForSelector(hash === "#/" ? "#charger-rows tr" : "#cfg-form .cfg-card");
      const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      check(over <= 1, `${hash} is ${over} px wider than a phone screen`);
      await page.screenshot({ path: path.join(ARTIFACTS, shot) });
    }
    log("phone layout: no horizontal overflow");

    // 8. OCPP set up in the forms: the listen address (a restart setting), a charge point with a
    // generated key whose URL the page gives, a tag. The appliance keeps a hash only: GET shows
    // password_set and null, and neither the file nor the answer holds the key.
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(base + "/#/commission");
    await page.waitForSelector("#cfg-form [data-section=ocpp]");
    if (await page.$("#cfg-ocpp-on")) await page.click("#cfg-ocpp-on");
    const ocppPort = await freeTcpPort();
    const listen = "#cfg-form [data-path='ocpp.listen']";
    await page.fill(listen + " input[data-part=address]", "127.0.0.1");
    await page.fill(listen + " input[data-part=port]", String(ocppPort));
    await page.press(listen + " input[data-part=port]", "Tab");
    await page.waitForFunction(() =>
      /127\.0\.0\.1 only: chargers on the LAN cannot reach it/.test(
        document.getElementById("ocpp-reach")?.textContent || ""));
    const nCp = await page.$$eval("#cfg-form [data-section=ocpp] fieldset[data-cp]",
                                  (c) => c.length);
    await page.click("#cfg-add-cp");
    const cpBase = `ocpp.charge_points[${nCp}]`;
    await page.fill(`#cfg-form [data-path='${cpBase}.id']`, "CP-17");
    await page.press(`#cfg-form [data-path='${cpBase}.id']`, "Tab");
    await page.click(`#cfg-form button[data-generate='${nCp}']`);
    const key = await page.inputValue(`#cfg-form [data-path='${cpBase}.password']`);
    check(/^[A-HJ-NP-Za-km-z2-9]{24}$/.test(key), `generated key ${key}`);
    const url = await page.textContent("#cfg-form fieldset[data-cp='CP-17'] [data-field=ocpp-url]");
    check(url === `ws://127.0.0.1:${ocppPort}/ocpp/CP-17`, `charge point URL ${url}`);
    await page.selectOption(`#cfg-form [data-path='${cpBase}.quirks']`, "whole-amps");
    const nTags = await page.$$eval("#cfg-form [data-section=tags] .tag-row", (r) => r.length);
    await page.click("#cfg-add-tag");
    await page.fill(`#cfg-form [data-path='tags[${nTags}].id']`, "04A2B3C4");
    await page.fill(`#cfg-form [data-path='tags[${nTags}].name']`, "Anna's Golf");
    await page.locator("#cfg-form [data-section=ocpp]")
      .screenshot({ path: path.join(ARTIFACTS, "commission-ocpp.png") });
    await page.click("#cfg-save");
    await page.waitForFunction(() =>
      /^Saved\. Some settings/.test(document.getElementById("cfg-message").textContent));
    const pending = await page.$$eval("#cfg-restart code", (cs) => cs.map((c) => c.textContent));
    check(pending.includes("ocpp.listen"), `restart notice lists ${pending}`);
    const cfgText = await (await fetch(base + "/api/config")).text();
    const got = JSON.parse(cfgText);
    const cp17 = (got.ocpp.charge_points || []).find((c) => c.id === "CP-17");
    check(got.ocpp.listen === `127.0.0.1:${ocppPort}`, `saved ocpp.listen ${got.ocpp.listen}`);
    check(cp17 && cp17.password_set === true && cp17.password_hash === null &&
          !("password" in cp17) && cp17.quirks === "whole-amps",
          `GET /api/config shows CP-17 as ${JSON.stringify(cp17)}`);
    check(!cfgText.includes(key) && !fs.readFileSync(cfgPath, "utf8").includes(key),
          "the charge point key itself was kept");
    check((got.tags || []).some((t) => t.id === "04A2B3C4" && t.name === "Anna's Golf"),
          `saved tags ${JSON.stringify(got.tags)}`);
    check(await page.$eval(`#cfg-form fieldset[data-cp='CP-17'] [data-field=password-state]`,
                           (e) => e.dataset.value) === "true" &&
          await page.inputValue(`#cfg-form [data-path='${cpBase}.password']`) === "",
          "after saving, the page still shows the key or no password");
    log(`OCPP on 127.0.0.1:${ocppPort} saved (restart pending), CP-17 with a key GET never ` +
        "shows, tag 04A2B3C4 \"Anna's Golf\"");

    // 8b. The operator's CSMS (local controller, docs/ocpp.md): off, the group shows only its
    // URL. A URL the appliance refuses (http://) gets the page's own note while typed, then the
    // appliance's message next to the field on Save, and nothing is saved. A good one opens the
    // group: CP-17's URL at the CSMS, and its password there saved write-only (GET says
    // upstream_password_set and null; the file keeps it, it is sent). The CSMS's port is closed.
    const csms = "#cfg-form fieldset[data-section=csms]";
    const upUrl = "#cfg-form [data-path='ocpp.upstream.url']";
    const cp17Card = "#cfg-form fieldset[data-cp='CP-17']";
    const upKey = `${cp17Card} input[data-path$='.upstream_password']`;
    const upState = `${cp17Card} [data-field=upstream-password-state]`;
    check(await page.$eval(csms, (e) => e.dataset.on) === "false" &&
          !(await page.$("#cfg-form [data-path='ocpp.upstream.authorize']")) && !(await page.$(upKey)),
          "the CSMS group shows more than its URL while it is off");
    await page.fill(upUrl, "http://127.0.0.1:9000/ocpp");
    const ownNote = await page.textContent(`${csms} [data-field=csms-url-check]`);
    check(/starts with ws:\/\/ or wss:\/\//.test(ownNote), `the page's check of the URL: ${ownNote}`);
    await page.press(upUrl, "Tab");
    const fileBefore = fs.readFileSync(cfgPath, "utf8");
    await page.click("#cfg-save");
    const upErr = await page.waitForSelector(
      "#cfg-form .fld .field-error[data-error-for='ocpp.upstream.url']");
    check(/must be the CSMS's ws:\/\/ or wss:\/\/ URL without the charge point id/.test(
      await upErr.textContent()) && await upErr.evaluate((e) =>
      !!e.closest(".fld").querySelector("[data-path='ocpp.upstream.url']")),
          `the appliance's URL error, next to the field: ${await upErr.textContent()}`);
    check(!(await (await fetch(base + "/api/config")).json()).ocpp.upstream &&
          fs.readFileSync(cfgPath, "utf8") === fileBefore, "a refused CSMS URL was saved");
    log(`http:// refused: "${ownNote}" in the page, the appliance's message next to the field`);
    const csmsUrl = `ws://127.0.0.1:${await freeTcpPort()}/csms`;
    await page.fill(upUrl, csmsUrl);
    await page.press(upUrl, "Tab"); /* the group opens */
    await page.waitForSelector(`${csms}[data-on=true]`);
    const cpCsmsUrl = await page.textContent(`${cp17Card} [data-field=csms-url]`);
    check(cpCsmsUrl === `${csmsUrl}/CP-17`, `CP-17's URL at the CSMS: ${cpCsmsUrl}`);
    check(await page.inputValue("#cfg-form [data-path='ocpp.upstream.authorize']") ===
          "charge_point" && !(await page.$("#cfg-form [data-path='ocpp.upstream.ca_file']")),
          "a ws:// CSMS: not the default authorization, or a CA file field");
    check(await page.textContent(upState) === "not set", "CP-17 shows a CSMS password before one");
    const upPassword = "the CSMS's key for CP-17";
    await page.fill(upKey, upPassword);
    check(await page.textContent(upState) === "replaced when saved", "typed password state");
    await page.click("#cfg-save");
    await page.waitForFunction(() =>
      /^Saved\. Some settings/.test(document.getElementById("cfg-message").textContent));
    const upCfgText = await (await fetch(base + "/api/config")).text();
    const upCfg = JSON.parse(upCfgText);
    const up17 = upCfg.ocpp.charge_points.find((c) => c.id === "CP-17");
    check(upCfg.ocpp.upstream && upCfg.ocpp.upstream.url === csmsUrl &&
          upCfg.ocpp.upstream.authorize === "charge_point",
          `GET /api/config ocpp.upstream ${JSON.stringify(upCfg.ocpp.upstream)}`);
    check(up17.upstream_password === null && up17.upstream_password_set === true &&
          !upCfgText.includes(upPassword), `GET /api/config shows CP-17 as ${JSON.stringify(up17)}`);
    check(JSON.parse(fs.readFileSync(cfgPath, "utf8")).ocpp.charge_points
      .find((c) => c.id === "CP-17").upstream_password === upPassword, "the file lacks it");
    await page.waitForFunction((sel) => document.querySelector(sel)?.dataset.value === "true",
                               upState);
    check(await page.textContent(upState) === "set" && await page.inputValue(upKey) === "",
          "after saving, the page shows the CSMS password or not that it is set");
    await page.locator("#cfg-form [data-section=ocpp]")
      .screenshot({ path: path.join(ARTIFACTS, "commission-csms.png") });
    log(`CSMS ${csmsUrl} saved; CP-17 at ${cpCsmsUrl} with a password GET never shows`);

    // 9. Restart to open the OCPP port; a charge point nobody assigned connects: the page offers
    // it, "Assign" puts a charger on it in the draft, Save applies it, and the dashboard shows
    // the charge point's connection, model and the running transaction's tag by name.
    restarting = true;
    const restarted = await stop(pw);
    check(restarted.code === 0, `phasewise exited with ${restarted.code} ${restarted.sig}`);
    pw = start("phasewise", a.phasewise, serve, tmp);
    await waitFor("the appliance again", async () => (await fetch(base + "/api/health")).ok, 15000);
    const [status] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith("/api/auth/status")), page.reload()]);
    if (!(await status.json()).logged_in) { /* sessions need not outlive a restart */
      await page.click("#auth-button:not([hidden])");
      await page.fill("#auth-password", PASSWORD);
      await page.click("#auth-submit");
      await page.waitForSelector("#auth-button[data-logged-in=true]");
    }
    await page.waitForSelector("#conn[data-state=live]");
    restarting = false;
    const cpPage = await context.newPage();
    await cpPage.goto("about:blank");
    await cpPage.evaluate(async (wsUrl) => {
      const ws = new WebSocket(wsUrl, "ocpp1.6");
      window.cp = { ws, calls: [], n: 0 };
      await new Promise((resolve, reject) => {
        ws.onopen = resolve;
        ws.onerror = () => reject(new Error("the OCPP connection failed"));
      });
      /* The central system's requests are answered as a plain charge point would. */
      ws.onmessage = (ev) => {
        const m = JSON.parse(ev.data);
        if (m[0] !== 2) return;
        window.cp.calls.push(m[2]);
        const answer = m[2] === "GetConfiguration" ? { configurationKey: [], unknownKey: [] }
          : m[2] === "TriggerMessage" || m[2] === "ChangeConfiguration" ||
            m[2] === "SetChargingProfile" || m[2] === "ClearChargingProfile"
            ? { status: "Accepted" } : {};
        ws.send(JSON.stringify([3, m[1], answer]));
      };
      window.cp.call = (action, payload) =>
        ws.send(JSON.stringify([2, "t" + ++window.cp.n, action, payload]));
      window.cp.call("BootNotification", { chargePointVendor: "Browser",
                                           chargePointModel: "Test CP", firmwareVersion: "0.1" });
      window.cp.call("StatusNotification", { connectorId: 1, errorCode: "NoError",
                                             status: "Available" });
    }, `ws://127.0.0.1:${ocppPort}/ocpp/CP-9`);
    const cpKey = "ocpp CP-9 connector 1";
    const assign = page.locator(`#cfg-unassigned button[data-assign='${cpKey}']`);
    await assign.waitFor();
    await page.selectOption(`#cfg-unassigned select[data-assign-node='${cpKey}']`, "garage-b");
    await assign.click();
    const nCh = cfg.chargers.length;
    check(await page.inputValue(`#cfg-form [data-path='chargers[${nCh}].link.ocpp.id']`) === "CP-9",
          "the assigned charger's card does not show charge point CP-9");
    /* A CSMS password typed and erased again is left empty: the save keeps the saved one. */
    await page.fill(upKey, "x");
    await page.fill(upKey, "");
    await page.click("#cfg-save");
    await page.waitForFunction(() =>
      /^Saved/.test(document.getElementById("cfg-message").textContent));
    const assigned = (await (await fetch(base + "/api/config")).json()).chargers
      .find((c) => c.link && c.link.ocpp && c.link.ocpp.id === "CP-9");
    check(assigned && assigned.link.ocpp.connector === 1 && assigned.node === "garage-b",
          `the assigned charger in GET /api/config: ${JSON.stringify(assigned)}`);
    const kept17 = (await (await fetch(base + "/api/config")).json()).ocpp.charge_points
      .find((c) => c.id === "CP-17");
    check(kept17.upstream_password_set === true, "a save with the CSMS password empty lost it");
    log(`CP-9 connected unassigned, assigned from the page as ${assigned.id} on garage-b`);
    await cpPage.evaluate(() => {
      window.cp.call("StatusNotification", { connectorId: 1, errorCode: "NoError",
                                             status: "Preparing" });
      window.cp.call("StartTransaction", { connectorId: 1, idTag: "04A2B3C4", meterStart: 0,
                                           timestamp: new Date().toISOString() });
    });
    await page.click("nav.pages a[data-page='']");
    const row = `#charger-rows tr[data-charger='${assigned.id}']`;
    await waitFor(`the dashboard to show ${assigned.id} connected over OCPP with its tag`, () =>
      page.evaluate((sel) => {
        const tr = document.querySelector(sel);
        const f = (name) => tr && tr.querySelector(`[data-field=${name}]`);
        return !!tr && f("ocpp-connected").dataset.value === "true" &&
          /Browser Test CP · fw 0\.1/.test(f("ocpp-device").textContent) &&
          f("tag").textContent === "tag: Anna's Golf" && !f("tag").hidden;
      }, row), 15000);
    /* CP-9's link to the CSMS: nobody listens at its port, so it is down (or, between two
       attempts, connecting) and CP-9's calls wait; the page says what the state document says. */
    let upSeen = "";
    const upLine = await waitFor("the dashboard to show CP-9's CSMS link as /api/state has it",
                                 async () => {
      const o = (await (await fetch(base + "/api/state")).json()).chargers
        .find((c) => c.id === assigned.id).ocpp;
      const [text, value, bad] = await page.$eval(`${row} [data-field=ocpp-upstream]`, (e) =>
        [e.hidden ? "" : e.textContent, e.dataset.value, e.classList.contains("bad")]);
      const n = o.upstream_queued;
      upSeen = JSON.stringify({ text, upstream: o.upstream, n });
      return /^(down|connecting)/.test(o.upstream) && n >= 1 && value === o.upstream &&
        text === `CSMS ${o.upstream} · ${n} call${n === 1 ? " waits" : "s wait"}` &&
        bad === o.upstream.startsWith("down") && text;
    }, 15000).catch((e) => {
      throw new Error(`${e.message}: ${upSeen}`);
    });
    await page.locator(row).screenshot({ path: path.join(ARTIFACTS, "dashboard-ocpp.png") });
    log(`dashboard: ${assigned.id} connected, "Browser Test CP", transaction of Anna's Golf, ` +
        `"${upLine}"`);

    // 10. The transaction ends; History lists its energy under the tag's name, and the tag CSV.
    await cpPage.evaluate(() => {
      window.cp.call("StopTransaction", { transactionId: 1, idTag: "04A2B3C4", meterStop: 1500,
                                          timestamp: new Date().toISOString() });
      window.cp.call("StatusNotification", { connectorId: 1, errorCode: "NoError",
                                             status: "Available" });
    });
    await page.click("nav.pages a[data-page=history]");
    const tagRow = "#tag-energy-table tr[data-tag='04A2B3C4']";
    await waitFor("the tag's row in the energy per tag table", async () => {
      await page.selectOption("#tag-energy-year", "12m"); /* reloads the table */
      return page.$(tagRow);
    }, 15000, 1000);
    check(/^Anna's Golf/.test(await page.textContent(tagRow + " th")),
          `tag row: ${await page.textContent(tagRow)}`);
    const [tagCsv] = await Promise.all([page.waitForEvent("download"),
                                        page.click("#tag-energy-csv")]);
    const tagFile = path.join(ARTIFACTS, tagCsv.suggestedFilename());
    await tagCsv.saveAs(tagFile);
    const tagLines = fs.readFileSync(tagFile, "utf8").trim().split("\n");
    check(tagLines.length >= 2 && tagLines.slice(1).some((l) => l.includes("04A2B3C4")),
          `tag CSV: ${tagLines.join(" / ")}`);
    log(`energy per tag: Anna's Golf listed; ${tagCsv.suggestedFilename()}: ${tagLines[0]}`);
    await cpPage.close();

    // 10a. "Clear" removes CP-17's password at the CSMS with the next save.
    await page.click("nav.pages a[data-page=commission]");
    await page.locator("#cfg-form button[data-clear-upstream='CP-17']").click();
    check(await page.textContent(upState) === "removed when saved", "cleared password state");
    await page.click("#cfg-save");
    await page.waitForFunction((sel) => document.querySelector(sel)?.dataset.value === "false",
                               upState);
    const cleared = (await (await fetch(base + "/api/config")).json()).ocpp.charge_points
      .find((c) => c.id === "CP-17");
    check(cleared.upstream_password_set === false && !("upstream_password" in
          JSON.parse(fs.readFileSync(cfgPath, "utf8")).ocpp.charge_points
            .find((c) => c.id === "CP-17")), `after Clear: ${JSON.stringify(cleared)}`);
    log("CP-17's password at the CSMS cleared from the page");

    // 10. A circuit's own load that no meter sees (reserve_a): the field with its hint, the
    // preview names it on the circuit, a reserve that fills the fuse is refused next to the
    // field, and nothing is applied without a save.
    const getConfig = () => page.evaluate(() => fetch("/api/config").then((r) => r.json()));
    const before = await getConfig();
    const ri = before.nodes.findIndex((n, i) => i > 0 && !n.meter);
    check(ri > 0, "the demo has no unmetered circuit");
    await page.click("nav.pages a[data-page=commission]");
    const rsel = `#cfg-form [data-path='nodes[${ri}].reserve_a']`;
    await page.waitForSelector(rsel);
    const hint = await page.$eval(rsel, (e) =>
      e.closest(".fld").querySelector("[data-field=reserve-hint]").textContent);
    check(/no meter sees it/.test(hint), `reserve hint on an unmetered circuit: ${hint}`);
    /* Small enough that the failsafe currents below the circuit (48 of 49 A in the demo's
     * garage A) plus the reserve still fit. */
    await page.fill(rsel, "1, 0.5, 0.5");
    await page.click("#cfg-preview");
    const note = await page.waitForSelector(
      `#preview-nodes tr[data-node='${before.nodes[ri].id}'] [data-field=reserve]`);
    check(/1\.0 \/ 0\.5 \/ 0\.5 A/.test(await note.textContent()),
          `preview reserve note: ${await note.textContent()}`);
    const l1 = [before.nodes[ri].limit_a].flat()[0];
    await page.fill(rsel, String(l1));
    await page.click("#cfg-validate");
    const rerr = await page.waitForSelector(
      `#cfg-form .fld .field-error[data-error-for='nodes[${ri}].reserve_a']`);
    check(/below limit_a minus margin_a/.test(await rerr.textContent()),
          `reserve error: ${await rerr.textContent()}`);
    check((await getConfig()).nodes[ri].reserve_a === undefined, "a reserve applied without a save");
    await page.locator(`#cfg-form fieldset[data-path='nodes[${ri}]']`)
      .screenshot({ path: path.join(ARTIFACTS, "commission-reserve.png") });
    /* The status timing per charger kind shows the transport's values where the file has none. */
    check(await page.getAttribute("#cfg-form [data-path='timing.lan.status_max_ms']",
                                  "placeholder") === "30000", "LAN status timing placeholder");
    await page.locator("#cfg-form [data-section=timing]")
      .screenshot({ path: path.join(ARTIFACTS, "commission-timing.png") });
    await page.click("#cfg-reload");
    await page.waitForFunction((sel) => document.querySelector(sel)?.value === "", rsel);
    log(`reserve on ${before.nodes[ri].id}: hint shown, preview names it, ${l1} A refused`);

    // 11. Operator commands on the dashboard: a pause and a facility limit sent to the API (as
    // a script or MQTT would) show with their source; Resume and Clear take them back.
    await page.click("nav.pages a[data-page='']");
    const paused = ids[0];
    const ovRow = `#chargers tr[data-charger='${paused}']`;
    const command = (body) => page.evaluate((b) => fetch("/api/command", {
      method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(b) }).then((r) => r.status), body);
    check(await command({ charger: paused, pause: true }) === 200, "POST /api/command pause");
    await page.waitForFunction((sel) => document.querySelector(sel)?.dataset.override === "true",
                               ovRow, { timeout: 10000 });
    const ovText = await page.textContent(`${ovRow} [data-field=override]`);
    check(/paused by operator \(web\)/.test(ovText), `override shown as "${ovText}"`);
    check(await page.textContent(`${ovRow} [data-action=clear-override]`) === "Resume",
          "a pause offers Resume");
    await page.locator(ovRow).screenshot({ path: path.join(ARTIFACTS, "dashboard-override.png") });
    await page.click(`${ovRow} [data-action=clear-override]`);
    await page.waitForFunction((sel) => document.querySelector(sel)?.dataset.override === "false",
                               ovRow, { timeout: 10000 });
    check(await command({ facility_limit: 60, duration_s: 600 }) === 200,
          "POST /api/command facility_limit");
    await page.waitForFunction(() => document.querySelector("#facility-limit")?.dataset.active ===
                               "true", null, { timeout: 10000 });
    const flText = await page.textContent("#facility-limit [data-field=facility-limit]");
    check(/Facility limit 60\.0 A per line \(web\), ends in/.test(flText),
          `facility limit shown as "${flText}"`);
    await page.click("#facility-limit [data-action=clear-facility-limit]");
    await page.waitForFunction(() => document.querySelector("#facility-limit")?.hidden === true,
                               null, { timeout: 10000 });
    log(`dashboard: "${ovText}" resumed from the page; "${flText.split(",")[0]}" cleared`);

    check(problems.length === 0, "errors in the page: " + problems.join(" | "));
    await context.close();
    context = null;
    const st = await stop(pw);
    check(st.code === 0, `phasewise exited with ${st.code} ${st.sig}`);
    ok = true;
  } finally {
    if (context) await context.close().catch(() => {});
    killAll();
    fs.rmSync(profile, { recursive: true, force: true });
    if (ok && !process.env.PW_KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
    else {
      log(`kept ${tmp}`);
      for (const p of procs) {
        const text = fs.existsSync(p.logFile) ? fs.readFileSync(p.logFile, "utf8") : "";
        console.log(`--- ${p.logName} log (tail) ---\n${text.split("\n").slice(-30).join("\n")}`);
      }
    }
  }
}

const watchdog = setTimeout(() => {
  log(`FAIL: over the ${BUDGET_MS / 1000} s budget`);
  killAll();
  process.exit(1);
}, BUDGET_MS);

main().then(() => {
  clearTimeout(watchdog);
  log("ok");
  console.log("1 passed, 0 failed");
}, (e) => {
  clearTimeout(watchdog);
  log(`FAIL: ${e.message}`);
  console.log("0 passed, 1 failed");
  killAll();
  process.exitCode = 1;
});
