// Overview: every firewall in one /api/overview call, refreshed every refresh_interval;
// a 1-hour sparkline per firewall from /api/throughput/history, refreshed less often.
import { api, el, clear, fmtNum, fmtInt, fmtPct, fmtAge, stateOf, poll, refreshSeconds, hideError, setText } from "./common.js";
import { drawSparkline } from "./sparkline.js";

const tbody = document.querySelector("#fleet tbody");
const filterInput = document.getElementById("filter");
const statusFilter = document.getElementById("status-filter");
const refresh = refreshSeconds();
const SPARK_EVERY_MS = Math.max(60, refresh) * 1000;
const SPARK_FIELDS = [
  { key: "inbound_mbps", color: "--series-1" },
  { key: "outbound_mbps", color: "--series-2" },
];

let devices = [];
let sortKey = "name";
let sortDir = 1;
const sparks = new Map(); // id -> {points, fetched}

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
    case "inbound_mbps": return s.inbound_mbps;
    case "outbound_mbps": return s.outbound_mbps;
    case "sessions": return s.sessions ? s.sessions.active : null;
    case "sessions_util": return s.sessions ? s.sessions.utilization_pct : null;
    case "dp_cpu": return s.cpu ? s.cpu.dataplane_pct : null;
    case "mp_cpu": return s.cpu ? s.cpu.management_pct : null;
    case "memory": return s.memory_pct;
    case "alerts": return d.active_alerts;
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
    cells.push(el("td", { class: "nodata-cell", colspan: 7, text: "No data yet" }));
  } else {
    const sess = s.sessions || {};
    const cpu = s.cpu || {};
    cells.push(
      el("td", { class: "num", dataset: { field: "inbound_mbps" }, text: fmtNum(s.inbound_mbps, 1) }),
      el("td", { class: "num", dataset: { field: "outbound_mbps" }, text: fmtNum(s.outbound_mbps, 1) }),
      el("td", { class: "num", text: fmtInt(sess.active) }),
      el("td", { class: "num", text: fmtPct(sess.utilization_pct) }),
      el("td", { class: "num", text: fmtPct(cpu.dataplane_pct) }),
      el("td", { class: "num", text: fmtPct(cpu.management_pct) }),
      el("td", { class: "num", text: fmtPct(s.memory_pct) }),
    );
  }
  cells.push(
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

async function refreshOverview() {
  const data = await api("/api/overview");
  devices = (data && data.devices) || [];
  hideError();
  render();
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
    sortDir = key === sortKey ? -sortDir : (key === "name" || key === "state" ? 1 : -1);
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
  await refreshSparks();
}, refresh);
