// Clock status: /api/health (heartbeat age) and /api/clock (the clock's own statistics:
// totals, last error, next run per job, the last 10 executions).
import { api, ApiError, el, clear, setText, fmtTime, fmtAge, fmtInt, fmtNum, fmtDuration, poll, refreshSeconds,
  hideError, DASH } from "./common.js";

// The API answers ISO strings; older answers carried the clock's epoch seconds.
function fmtWhen(value) {
  if (typeof value === "number") return new Date(value * 1000).toLocaleString();
  return fmtTime(value);
}

function fact(dl, label, value) {
  dl.append(el("dt", { text: label }), el("dd", { text: value === null || value === undefined ? DASH : String(value) }));
}

async function refreshHealth() {
  const badge = document.getElementById("health");
  let health;
  try {
    health = await api("/api/health");
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 503) throw err;
    health = err.body || { status: "degraded" };
  }
  const clock = health.clock || {};
  const age = clock.age_seconds === null || clock.age_seconds === undefined ? "never" : fmtAge(clock.age_seconds) + " ago";
  badge.className = "badge " + (health.status === "ok" ? "state-up" : "state-down");
  setText(badge, `${health.status} · heartbeat ${age}`);
}

// The clock whose statistics the page shows (its node id); null: the one that wrote last.
let selected = null;

async function refreshClock() {
  const data = (await api("/api/clock")) || {};
  const chosen = (data.clocks || []).find((n) => n.node_id === selected);
  if (!chosen) selected = null;
  const stats = chosen && chosen.stats ? chosen.stats : data.stats;
  setText(document.getElementById("clock-shown"), chosen ? `Statistics of clock ${chosen.node_id}` : "Statistics of the clock that wrote last");
  const message = document.getElementById("clock-message");
  message.hidden = Boolean(stats);
  if (!stats) setText(message, "No data yet: the clock has not written its statistics.");
  const dl = document.getElementById("clock-facts");
  clear(dl);
  fact(dl, "Running", data.running ? "yes" : "no");
  fact(dl, "Last heartbeat", data.heartbeat ? `${fmtTime(data.heartbeat)} (${fmtAge(data.age_seconds)} ago)` : "never");
  const s = stats || {};
  if (s.started_at) fact(dl, "Up since", `${fmtWhen(s.started_at)} (${fmtDuration((Date.now() - Date.parse(s.started_at)) / 1000)})`);
  if (s.pid !== undefined) fact(dl, "Process id", s.pid);
  fact(dl, "Executions", fmtInt(s.total_executions));
  fact(dl, "Errors", fmtInt(s.total_errors));
  fact(dl, "Missed runs", fmtInt(s.missed));
  fact(dl, "Last error", s.last_error ? `${s.last_error} (${fmtWhen(s.last_error_time)})` : "none");
  const cycle = s.last_cycle || {};
  for (const [key, value] of Object.entries(cycle)) {
    fact(dl, "Last cycle: " + key.replaceAll("_", " "), typeof value === "number" ? fmtNum(value, Number.isInteger(value) ? 0 : 2) : JSON.stringify(value));
  }

  // Host names and node ids come from the database: textContent only (el's text), never HTML.
  const nodes = document.querySelector("#clock-nodes tbody");
  clear(nodes);
  for (const n of data.clocks || []) {
    nodes.append(el("tr", {},
      el("td", { text: n.node_id }),
      el("td", { text: n.host }),
      el("td", { class: "num", text: String(n.pid) }),
      el("td", { text: fmtTime(n.started_at) }),
      el("td", { text: fmtTime(n.heartbeat_at) }),
      el("td", { class: "num", text: fmtInt(n.devices) }),
      el("td", { text: n.leader ? "leader" : DASH }),
      el("td", {}, statsButton(n))));
  }
  if (!(data.clocks || []).length) {
    nodes.append(el("tr", {}, el("td", { colspan: "8", text: data.clocks_error ? `unknown: ${data.clocks_error}` : "no live clock" })));
  }

  const recent = s.recent || [];
  const jobs = document.querySelector("#clock-jobs tbody");
  clear(jobs);
  const names = new Set([...Object.keys(s.next_run_times || {}), ...recent.map((r) => r.job)]);
  for (const name of names) {
    const mine = recent.filter((r) => r.job === name);
    const failed = mine.filter((r) => r.outcome !== "ok");
    jobs.append(el("tr", {},
      el("td", { text: name }),
      el("td", { text: fmtTime((s.next_run_times || {})[name]) }),
      el("td", { class: "num", text: fmtInt(mine.length) }),
      el("td", { class: "num", text: fmtInt(failed.length) }),
      el("td", { text: failed.length ? "see last error" : DASH })));
  }
  const runs = document.querySelector("#clock-runs tbody");
  clear(runs);
  for (const r of [...recent].reverse()) {
    runs.append(el("tr", { class: r.outcome === "ok" ? "" : "down" },
      el("td", { text: r.job || DASH }),
      el("td", { text: fmtWhen(r.started) }),
      el("td", { class: "num", text: r.duration_s === undefined ? DASH : fmtNum(r.duration_s, 2) + " s" }),
      el("td", { text: r.outcome || DASH })));
  }
}

function statsButton(n) {
  if (!n.stats) return DASH;
  const button = el("button", { type: "button", class: "link-button", text: n.node_id === selected ? "shown" : "show" });
  button.setAttribute("aria-pressed", String(n.node_id === selected));
  button.addEventListener("click", () => {
    selected = n.node_id === selected ? null : n.node_id;
    refreshClock().catch(() => {});
  });
  return button;
}

poll(async () => {
  await refreshHealth();
  await refreshClock();
  hideError();
}, refreshSeconds());
