// Firewall page: live values, uPlot history charts over a chosen range, interfaces and
// system information of one device (its id is in the URL, never a global selection).
import { api, ApiError, el, clear, setText, fmtNum, fmtInt, fmtPct, fmtAge, fmtDuration, fmtTime, stateOf, poll,
  refreshSeconds, hideError, DASH } from "./common.js";
import { CHARTS, Chart } from "./charts.js";
import "./firewall_network.js"; // the top-applications tile (issue 15)

const root = document.getElementById("firewall");
const deviceId = root.dataset.deviceId;
const q = encodeURIComponent(deviceId);
const refresh = refreshSeconds();

// The range and the series hidden in the legends live in the URL (?range=7d&hide=cpu.3), so a
// reload or a shared link shows the same view.
const params = new URLSearchParams(window.location.search);
const RANGES = [...document.querySelectorAll("#ranges button")].map((b) => b.dataset.range);
const ISO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const hiddenAtStart = {};
for (const item of (params.get("hide") || "").split(",")) {
  const [name, idx] = item.split(".");
  if (CHARTS[name] && Number(idx) > 0) (hiddenAtStart[name] = hiddenAtStart[name] || []).push(Number(idx));
}

const charts = Object.fromEntries(
  Object.entries(CHARTS).map(([name, fields]) => [
    name, new Chart(document.getElementById("chart-" + name), fields, hiddenAtStart[name] || [], () => saveUrl()),
  ]),
);

let range = RANGES.includes(params.get("range")) ? params.get("range") : "1h";
let custom = null; // {start, end} ISO strings
if (range === "custom") {
  const start = params.get("start");
  const end = params.get("end");
  custom = start && end && ISO_RE.test(start) && ISO_RE.test(end) && start < end ? { start, end } : null;
  if (!custom) range = "1h";
}
let lastHistory = 0;

function saveUrl() {
  const next = new URLSearchParams();
  if (range !== "1h") next.set("range", range);
  if (range === "custom" && custom) {
    next.set("start", custom.start);
    next.set("end", custom.end);
  }
  const hide = Object.entries(charts).flatMap(([name, c]) => [...c.hidden].sort().map((i) => `${name}.${i}`));
  if (hide.length) next.set("hide", hide.join(","));
  const query = next.toString();
  window.history.replaceState(null, "", window.location.pathname + (query ? "?" + query : ""));
}

// --- live values ---------------------------------------------------------------------

function liveValues(sample) {
  const sess = sample.sessions || {};
  const cpu = sample.cpu || {};
  return {
    through_mbps: fmtNum(sample.through_mbps, 1),
    uplink_in_mbps: fmtNum(sample.uplink_in_mbps, 1),
    uplink_out_mbps: fmtNum(sample.uplink_out_mbps, 1),
    sessions_active: fmtInt(sess.active),
    sessions_utilization_pct: fmtPct(sess.utilization_pct) + " of max",
    sessions_cps: fmtInt(sess.cps),
    cpu_dataplane_pct: fmtNum(cpu.dataplane_pct, 0),
    cpu_dataplanes: dataplaneList(cpu.dataplanes),
    cpu_busiest_core_pct: cpu.busiest_core ? fmtNum(cpu.busiest_core.pct, 0) : DASH,
    cpu_busiest_core: cpu.busiest_core ? `% · ${cpu.busiest_core.dataplane} core ${cpu.busiest_core.core}` : "%",
    cpu_management_pct: fmtNum(cpu.management_pct, 0),
    memory_pct: fmtNum(sample.memory_pct, 0),
    packet_buffer_pct: fmtNum(sample.packet_buffer_pct, 0),
  };
}

// The busiest dataplane is the tile's value; with several, each one's CPU follows the unit
// (a dataplane whose cores returned nothing reads "—", never 0).
function dataplaneList(dataplanes) {
  if (!Array.isArray(dataplanes) || dataplanes.length < 2) return "%";
  return "% · " + dataplanes.map((dp) => `${dp.name} ${fmtNum(dp.pct, 0)}`).join(" · ");
}

async function refreshLive() {
  let data;
  try {
    data = await api(`/api/throughput?device_id=${q}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      setText(document.getElementById("fw-name"), "Unknown firewall");
      document.getElementById("no-data").hidden = true;
      return false;
    }
    throw err;
  }
  const sample = data.sample;
  document.getElementById("no-data").hidden = Boolean(sample);
  // In/Out only where the admin marked uplinks (WAN): with every port counted they say nothing.
  const wan = Array.isArray(data.uplinks) && data.uplinks.length > 0;
  for (const node of document.querySelectorAll(".wan")) node.hidden = !wan;
  document.getElementById("no-uplink").hidden = wan;
  setText(document.getElementById("uplink-names"), wan ? data.uplinks.join(", ") : "");
  const values = sample ? liveValues(sample) : {};
  for (const node of document.querySelectorAll("#live [data-field]")) {
    setText(node, sample ? values[node.dataset.field] : DASH);
  }
  const stale = sample && Number.isFinite(data.age_seconds) && data.age_seconds > 3 * refresh;
  const age = document.getElementById("fw-age");
  setText(age, sample ? "Sample age " + fmtAge(data.age_seconds) + (stale ? " (stale)" : "") : "No data yet");
  age.classList.toggle("warn", Boolean(stale));
  return true;
}

// --- device, status and system info --------------------------------------------------

function fact(dl, label, value) {
  dl.append(el("dt", { text: label }), el("dd", { text: value === null || value === undefined || value === "" ? DASH : value }));
}

async function refreshDevice() {
  // The overview carries the firing-alert count per device (the same count the overview shows).
  const [data, overview] = await Promise.all([api("/api/devices"), api("/api/overview").catch(() => null)]);
  const device = ((data && data.devices) || []).find((d) => d.id === deviceId);
  if (!device) return;
  const summary = ((overview && overview.devices) || []).find((d) => d.id === deviceId);
  document.title = `${device.name} · PANfm`;
  setText(document.getElementById("fw-name"), device.name);
  const state = stateOf(device.status);
  const badge = document.getElementById("fw-state");
  badge.className = `badge state-${state}`;
  setText(badge, device.enabled === false ? "disabled" : state);
  const info = device.info || {};
  const dl = document.getElementById("system");
  clear(dl);
  fact(dl, "Hostname", info.hostname);
  fact(dl, "Address", `${device.host}:${device.port}`);
  fact(dl, "Model", info.model);
  fact(dl, "Serial", info.serial);
  fact(dl, "PAN-OS", info.sw_version);
  fact(dl, "Uptime", fmtDuration(info.uptime_seconds));
  fact(dl, "HA state", info.ha_state);
  fact(dl, "Last poll", fmtTime(device.status && device.status.last_poll));
  fact(dl, "Last success", fmtTime(device.status && device.status.last_success));
  if (device.status && device.status.last_error) fact(dl, "Last error", device.status.last_error);
  if (device.tls && device.tls.fingerprint_sha256) fact(dl, "Certificate SHA-256", device.tls.fingerprint_sha256);
  const firing = summary ? summary.active_alerts : null;
  dl.append(el("dt", { text: "Active alerts" }), el("dd", { class: firing > 0 ? "error" : "" },
    el("a", { href: "/alerts", text: firing === null || firing === undefined ? DASH : String(firing) })));
}

// Server-rendered times are UTC; show them in local time.
for (const t of document.querySelectorAll("time.local-time")) t.textContent = fmtTime(t.getAttribute("datetime"));

// --- interfaces ----------------------------------------------------------------------

async function refreshInterfaces() {
  const data = await api(`/api/interfaces?device_id=${q}`);
  const list = (data && data.interfaces) || [];
  const tbody = document.querySelector("#interfaces tbody");
  clear(tbody);
  document.getElementById("if-empty").hidden = list.length > 0;
  document.getElementById("interfaces").hidden = list.length === 0;
  for (const i of list) {
    tbody.append(el("tr", { class: i.state === "down" ? "muted-row" : "" },
      el("td", { text: i.name }),
      el("td", { text: i.kind || DASH }),
      el("td", { text: i.state || DASH }),
      el("td", { text: i.zone || DASH }),
      el("td", { class: "num", text: i.speed_mbps ? `${fmtInt(i.speed_mbps)} Mb/s` : DASH }),
      el("td", { class: "num", text: fmtNum(i.inbound_mbps, 2) }),
      el("td", { class: "num", text: fmtNum(i.outbound_mbps, 2) }),
      el("td", { class: "num", text: fmtPct(i.utilization_pct, 1) }),
      el("td", { class: "num", text: fmtNum(i.errors_per_s, 2) }),
      el("td", { class: "num", text: fmtNum(i.drops_per_s, 2) }),
      el("td", { text: i.counted ? "yes" : "no" })));
  }
}

// --- history -------------------------------------------------------------------------

function historyUrl() {
  if (range === "custom" && custom) {
    return `/api/throughput/history?device_id=${q}&start=${encodeURIComponent(custom.start)}&end=${encodeURIComponent(custom.end)}`;
  }
  return `/api/throughput/history?device_id=${q}&range=${encodeURIComponent(range)}`;
}

async function refreshHistory() {
  const message = document.getElementById("history-message");
  let data;
  try {
    data = await api(historyUrl());
  } catch (err) {
    if (err instanceof ApiError && (err.status === 400 || err.status === 404 || err.status === 503)) {
      setText(message, err.message);
      message.hidden = false;
      return;
    }
    throw err;
  }
  const points = (data && data.points) || [];
  message.hidden = points.length > 0;
  if (!points.length) setText(message, "No data yet in this range.");
  setText(document.getElementById("tier"), data.tier === "raw" ? "raw samples"
    : `${data.tier} buckets (average and maximum)`);
  const window = requestedWindow();
  for (const chart of Object.values(charts)) chart.update(points, data.bucket_s, window);
  document.getElementById("firewall").dataset.historyRange = range;
  document.getElementById("firewall").dataset.historyPoints = String(points.length);
  lastHistory = Date.now();
}

const RANGE_S = { "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "90d": 90 * 86400 };

function requestedWindow() {
  if (range === "custom" && custom) return [Date.parse(custom.start) / 1000, Date.parse(custom.end) / 1000];
  const now = Date.now() / 1000;
  return RANGE_S[range] ? [now - RANGE_S[range], now] : null;
}

// Short ranges follow the live data; long ranges change little between two polls.
function historyDue() {
  if (range === "custom") return false;
  const every = { "1h": 0, "6h": 60, "24h": 300 }[range];
  return every !== undefined && Date.now() - lastHistory >= every * 1000;
}

function toIso(localValue) {
  const t = new Date(localValue);
  return Number.isFinite(t.getTime()) ? t.toISOString().replace(/\.\d{3}Z$/, "Z") : null;
}

const customForm = document.getElementById("custom-range");
function pressRange() {
  for (const b of document.querySelectorAll("#ranges button")) b.setAttribute("aria-pressed", String(b.dataset.range === range));
  customForm.hidden = range !== "custom";
}
for (const button of document.querySelectorAll("#ranges button")) {
  button.addEventListener("click", () => {
    range = button.dataset.range;
    pressRange();
    if (range !== "custom") {
      saveUrl();
      refreshHistory().catch(() => {});
    }
  });
}
pressRange();
// A custom window from the URL shows in the form, in local time as the inputs take it.
function toLocalInput(iso) {
  const t = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())}T${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}`;
}
if (range === "custom" && custom) {
  document.getElementById("range-start").value = toLocalInput(custom.start);
  document.getElementById("range-end").value = toLocalInput(custom.end);
}
customForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const start = toIso(document.getElementById("range-start").value);
  const end = toIso(document.getElementById("range-end").value);
  if (!start || !end || start >= end) {
    const message = document.getElementById("history-message");
    setText(message, "Choose a start before the end.");
    message.hidden = false;
    return;
  }
  custom = { start, end };
  saveUrl();
  refreshHistory().catch(() => {});
});

window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
  for (const chart of Object.values(charts)) chart.restyle();
});

let first = true;
poll(async () => {
  const known = await refreshLive();
  if (!known) return;
  // Each part fails on its own: a missing interface list must not hide the charts.
  const parts = [refreshDevice(), refreshInterfaces()];
  if (first || historyDue()) parts.push(refreshHistory());
  first = false;
  const failed = (await Promise.allSettled(parts)).find((r) => r.status === "rejected");
  if (failed) throw failed.reason;
  hideError();
}, refresh);
