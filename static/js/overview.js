// Overview: the fleet as a picture first (counts by health, who needs attention, fleet totals
// over the chosen range), then every firewall in a table. One /api/overview call per refresh
// interval; fleet totals from /api/overview/history; a 1-hour sparkline per firewall; threats,
// blocked URLs and the top application of the last hour from /api/network/summary (the clock's
// stored rows, one query for the fleet; it changes every 5 minutes, so at most once a minute).
import { api, el, clear, fmtNum, fmtInt, fmtPct, fmtAge, stateOf, poll, refreshSeconds, hideError, setText } from "./common.js";
import { drawSparkline } from "./sparkline.js";
import { StackedChart, TotalChart } from "./fleet_charts.js";

const tbody = document.querySelector("#fleet tbody");
const filterInput = document.getElementById("filter");
const statusFilter = document.getElementById("status-filter");
const refresh = refreshSeconds();
const SPARK_EVERY_MS = Math.max(60, refresh) * 1000;
const SPARK_FIELDS = [{ key: "through_mbps", color: "--series-1" }];
const RANGES = ["1h", "24h", "7d", "30d"];
const RANGE_S = { "1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400 };
// Fleet totals of long ranges change little between two polls.
const TOTALS_EVERY_S = { "1h": Math.max(60, refresh), "24h": 300, "7d": 1800, "30d": 3600 };
const params = new URLSearchParams(window.location.search);
let range = RANGES.includes(params.get("range")) ? params.get("range") : "1h";
let totalsFetched = 0;
const throughputChart = new StackedChart(document.getElementById("chart-fleet-throughput"));
const sessionsChart = new TotalChart(document.getElementById("chart-fleet-sessions"));

let devices = [];
let sortKey = "name";
let sortDir = 1;
const sparks = new Map(); // id -> {points, fetched}
const NETWORK_EVERY_MS = 60 * 1000;
let network = {}; // id -> {threats, blocked_urls, top_application} of the last hour
let networkFetched = 0;

function threatTotal(n) {
  const t = n && n.threats;
  if (!t) return null;
  return ["critical", "high", "medium", "low"].reduce((sum, k) => sum + (t[k] || 0), 0);
}

function isStale(d) {
  return d.sample && Number.isFinite(d.age_seconds) && d.age_seconds > 3 * refresh;
}

function isProblem(d) {
  const s = stateOf(d.status);
  return s === "down" || s === "breaker_open" || isStale(d);
}

function sortValue(d, key) {
  const s = d.sample || {};
  switch (key) {
    case "name": return (d.name || "").toLowerCase();
    case "state": return stateOf(d.status);
    case "through_mbps": return s.through_mbps;
    case "uplink_in_mbps": return s.uplink_in_mbps;
    case "uplink_out_mbps": return s.uplink_out_mbps;
    case "sessions": return s.sessions ? s.sessions.active : null;
    case "sessions_util": return s.sessions ? s.sessions.utilization_pct : null;
    case "dp_cpu": return s.cpu ? s.cpu.dataplane_pct : null;
    case "mp_cpu": return s.cpu ? s.cpu.management_pct : null;
    case "memory": return s.memory_pct;
    case "alerts": return d.active_alerts;
    case "threats": return threatTotal(network[d.id]);
    case "blocked_urls": { const n = network[d.id]; return n ? n.blocked_urls : null; }
    case "top_app": { const n = network[d.id]; return n && n.top_application ? n.top_application.toLowerCase() : null; }
    case "age": return d.age_seconds;
    default: return null;
  }
}

function compare(a, b) {
  const va = sortValue(a, sortKey);
  const vb = sortValue(b, sortKey);
  // Missing values sort last whatever the direction: "no data" is never the top talker.
  if (va === null || va === undefined) return vb === null || vb === undefined ? 0 : 1;
  if (vb === null || vb === undefined) return -1;
  if (va < vb) return -sortDir;
  if (va > vb) return sortDir;
  return 0;
}

function visible(d) {
  const f = statusFilter.value;
  if (f === "problem" && !isProblem(d)) return false;
  if (f === "up" && stateOf(d.status) !== "up") return false;
  const q = filterInput.value.trim().toLowerCase();
  if (!q) return true;
  return (d.name || "").toLowerCase().includes(q) || stateOf(d.status).includes(q);
}

function sparkCell(d) {
  const canvas = el("canvas", { class: "sparkline", width: 120, height: 28, "aria-label": "Last hour throughput" });
  const cached = sparks.get(d.id);
  if (cached && cached.points.length > 1) requestAnimationFrame(() => drawSparkline(canvas, cached.points, SPARK_FIELDS));
  return el("td", { class: "spark" }, canvas);
}

function row(d) {
  const s = d.sample;
  const state = stateOf(d.status);
  const classes = [`state-${state}`];
  if (state === "down" || state === "breaker_open") classes.push("down");
  if (isStale(d)) classes.push("stale");
  if (!s) classes.push("nodata");
  const link = el("a", { href: "/firewall/" + encodeURIComponent(d.id), text: d.name || d.id });
  const status = el("span", { class: `badge state-${state}`, text: isStale(d) ? `${state} · stale` : state });
  const cells = [el("td", {}, link), el("td", {}, status)];
  if (!s) {
    cells.push(el("td", { class: "nodata-cell", colspan: 8, text: "No data yet" }));
  } else {
    const sess = s.sessions || {};
    const cpu = s.cpu || {};
    cells.push(
      el("td", { class: "num", dataset: { field: "through_mbps" }, text: fmtNum(s.through_mbps, 1) }),
      el("td", { class: "num", dataset: { field: "uplink_in_mbps" }, text: fmtNum(s.uplink_in_mbps, 1) }),
      el("td", { class: "num", dataset: { field: "uplink_out_mbps" }, text: fmtNum(s.uplink_out_mbps, 1) }),
      el("td", { class: "num", text: fmtInt(sess.active) }),
      el("td", { class: "num", text: fmtPct(sess.utilization_pct) }),
      el("td", { class: "num", text: fmtPct(cpu.dataplane_pct) }),
      el("td", { class: "num", text: fmtPct(cpu.management_pct) }),
      el("td", { class: "num", text: fmtPct(s.memory_pct) }),
    );
  }
  const n = network[d.id] || {};
  const threats = threatTotal(n);
  const t = n.threats || {};
  const threatTitle = n.threats ? `critical ${fmtInt(t.critical)} · high ${fmtInt(t.high)} · medium ${fmtInt(t.medium)} · low ${fmtInt(t.low)}` : "No threat data for the last hour";
  cells.push(
    // Text, not a link: the firewall's name stays the row's one link (its page links the Threats page).
    el("td", { class: "num" + (t.critical > 0 ? " alerting" : ""), title: threatTitle, dataset: { field: "threats" }, text: fmtInt(threats) }),
    el("td", { class: "num", dataset: { field: "blocked_urls" }, text: fmtInt(n.blocked_urls) }),
    el("td", { dataset: { field: "top_app" }, text: n.top_application || "–" }),
    sparkCell(d),
    el("td", { class: "num" + (d.active_alerts > 0 ? " alerting" : ""), text: fmtInt(d.active_alerts) }),
    el("td", { class: "num", text: fmtAge(d.age_seconds) }),
  );
  return el("tr", { class: classes.join(" "), dataset: { id: d.id } }, cells);
}

function render() {
  clear(tbody);
  const rows = devices.filter(visible).sort(compare).map(row);
  tbody.append(...rows);
  document.getElementById("empty").hidden = devices.length > 0;
}

// --- the picture ---------------------------------------------------------------------

const HEALTH_TEXT = { down: "down", breaker_open: "breaker open (polls paused)", cert_changed: "certificate changed" };

// Who needs attention first: down, breaker open or a changed certificate, then firing alerts,
// then stale or never polled, then the highest load (DP CPU or nearest the session limit).
export function attentionList(list, limit = 5) {
  const items = [];
  for (const d of list) {
    if (d.health === "disabled") continue;
    const s = d.sample || {};
    const dp = s.cpu ? s.cpu.dataplane_pct : null;
    const su = s.sessions ? s.sessions.utilization_pct : null;
    let severity = 0;
    let reason = "";
    if (HEALTH_TEXT[d.health]) {
      severity = 3;
      reason = HEALTH_TEXT[d.health] + (d.status && d.status.last_error ? `: ${d.status.last_error}` : "");
    } else if (d.active_alerts > 0) {
      severity = 2;
      reason = `${d.active_alerts} alert${d.active_alerts === 1 ? "" : "s"} firing`;
    } else if (d.health === "degraded" || d.health === "unknown") {
      severity = 1;
      reason = d.health === "unknown" ? "not polled yet" : "no fresh sample";
    } else if (dp === null && su === null) {
      continue;
    } else {
      reason = (dp ?? -1) >= (su ?? -1) ? `DP CPU ${fmtPct(dp)}` : `sessions at ${fmtPct(su)} of the limit`;
    }
    items.push({ d, severity, load: Math.max(dp ?? 0, su ?? 0), reason });
  }
  items.sort((a, b) => b.severity - a.severity || b.load - a.load);
  return items.slice(0, limit);
}

function renderPicture(data) {
  const counts = (data && data.counts) || {};
  for (const li of document.querySelectorAll("#status-counts li")) {
    const n = counts[li.dataset.health] || 0;
    setText(li.querySelector(".n"), String(n));
    li.classList.toggle("zero", n === 0);
  }
  const ol = document.getElementById("attention");
  clear(ol);
  const items = attentionList(devices);
  for (const item of items) {
    ol.append(el("li", { class: `severity-${item.severity}`, dataset: { id: item.d.id } },
      el("a", { href: "/firewall/" + encodeURIComponent(item.d.id), text: item.d.name || item.d.id }),
      el("span", { class: "reason", text: " " + item.reason })));
  }
  document.getElementById("attention-none").hidden = items.some((i) => i.severity > 0) || !devices.length;
}

async function refreshTotals(force = false) {
  if (!force && Date.now() - totalsFetched < TOTALS_EVERY_S[range] * 1000) return;
  const doc = await api(`/api/overview/history?range=${encodeURIComponent(range)}`);
  totalsFetched = Date.now();
  const now = Date.now() / 1000;
  const window = [now - RANGE_S[range], now];
  throughputChart.update(doc, "through_mbps", window);
  sessionsChart.update(doc, "sessions_active", "Active sessions", window);
  const root = document.getElementById("fleet-picture");
  root.dataset.range = range;
  root.dataset.slots = String(doc.t.length);
}

function pressRange() {
  for (const b of document.querySelectorAll("#ranges button")) b.setAttribute("aria-pressed", String(b.dataset.range === range));
}

for (const button of document.querySelectorAll("#ranges button")) {
  button.addEventListener("click", () => {
    range = button.dataset.range;
    pressRange();
    const next = new URLSearchParams(window.location.search);
    if (range === "1h") next.delete("range"); else next.set("range", range);
    const query = next.toString();
    window.history.replaceState(null, "", window.location.pathname + (query ? "?" + query : ""));
    refreshTotals(true).catch(() => {});
  });
}
pressRange();

async function refreshNetwork() {
  if (Date.now() - networkFetched < NETWORK_EVERY_MS) return;
  try {
    const data = await api("/api/network/summary");
    network = (data && data.devices) || {};
  } catch (err) {
    network = {};  // the columns show dashes; the rest of the overview stands
  }
  networkFetched = Date.now();
}

async function refreshOverview() {
  const [data] = await Promise.all([api("/api/overview"), refreshNetwork()]);
  devices = (data && data.devices) || [];
  hideError();
  render();
  renderPicture(data);
  setText(document.getElementById("updated"), "Updated " + new Date().toLocaleTimeString());
}

// Fetch sparklines a few at a time so a large fleet does not flood the web process.
async function refreshSparks() {
  const now = Date.now();
  const due = devices.filter((d) => {
    const c = sparks.get(d.id);
    return !c || now - c.fetched >= SPARK_EVERY_MS || (c.points.length < 2 && now - c.fetched >= refresh * 1000);
  });
  const queue = [...due];
  const worker = async () => {
    while (queue.length) {
      const d = queue.shift();
      try {
        const h = await api(`/api/throughput/history?device_id=${encodeURIComponent(d.id)}&range=1h`);
        sparks.set(d.id, { points: (h && h.points) || [], fetched: Date.now() });
      } catch (err) {
        sparks.set(d.id, { points: [], fetched: Date.now() });
      }
      const canvas = tbody.querySelector(`tr[data-id="${CSS.escape(d.id)}"] canvas.sparkline`);
      const c = sparks.get(d.id);
      if (canvas && c.points.length > 1) drawSparkline(canvas, c.points, SPARK_FIELDS);
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
}

for (const th of document.querySelectorAll("#fleet th[data-sort]")) {
  th.querySelector("button").addEventListener("click", () => {
    const key = th.dataset.sort;
    sortDir = key === sortKey ? -sortDir : (key === "name" || key === "state" || key === "top_app" ? 1 : -1);
    sortKey = key;
    for (const other of document.querySelectorAll("#fleet th[data-sort]")) other.removeAttribute("aria-sort");
    th.setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
    render();
  });
}
filterInput.addEventListener("input", render);
statusFilter.addEventListener("change", render);

poll(async () => {
  await refreshOverview();
  await Promise.all([refreshTotals(), refreshSparks()]);
}, refresh);
