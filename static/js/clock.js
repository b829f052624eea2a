// Clock status: /api/health (heartbeat age) and /api/clock (jobs, counters, last runs).
import { api, ApiError, el, clear, setText, fmtTime, fmtAge, fmtInt, fmtNum, poll, refreshSeconds, hideError, DASH } from "./common.js";

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
  badge.className = "badge " + (health.status === "ok" ? "state-up" : "state-down");
  const clock = health.clock || {};
  setText(badge, `${health.status} · heartbeat ${clock.age_seconds === null || clock.age_seconds === undefined ? "never" : fmtAge(clock.age_seconds) + " ago"}`);
}

function jobsOf(stats) {
  const jobs = stats.jobs || [];
  return Array.isArray(jobs) ? jobs : Object.entries(jobs).map(([id, j]) => ({ id, ...j }));
}

async function refreshClock() {
  const message = document.getElementById("clock-message");
  let stats;
  try {
    stats = await api("/api/clock");
  } catch (err) {
    if (err instanceof ApiError && (err.status === 404 || err.status === 503)) {
      setText(message, err.message || "The clock has not reported yet.");
      message.hidden = false;
      return;
    }
    throw err;
  }
  // {"running", "heartbeat", "age_seconds", "stats": the clock's own document or null}
  const top = stats || {};
  stats = top.stats || {};
  const empty = !top.stats;
  message.hidden = !empty;
  if (empty) setText(message, "No data yet: the clock has not written its statistics.");
  const dl = document.getElementById("clock-facts");
  clear(dl);
  fact(dl, "Running", top.running ? "yes" : "no");
  fact(dl, "Last heartbeat", fmtTime(top.heartbeat));
  for (const [key, label] of [["started", "Started"], ["started_at", "Started"],
    ["executions", "Executions"], ["errors", "Errors"], ["last_error", "Last error"], ["pid", "Process"]]) {
    if (stats[key] === undefined) continue;
    const v = stats[key];
    fact(dl, label, typeof v === "string" && /\d{4}-\d\d-\d\dT/.test(v) ? fmtTime(v) : (typeof v === "object" ? JSON.stringify(v) : v));
  }
  const jobs = document.querySelector("#clock-jobs tbody");
  clear(jobs);
  for (const j of jobsOf(stats)) {
    jobs.append(el("tr", {},
      el("td", { text: j.id || j.name || DASH }),
      el("td", { text: fmtTime(j.next_run || j.next_run_time) }),
      el("td", { class: "num", text: fmtInt(j.executions ?? j.runs) }),
      el("td", { class: "num", text: fmtInt(j.errors) }),
      el("td", { text: j.last_error || DASH })));
  }
  const runs = document.querySelector("#clock-runs tbody");
  clear(runs);
  for (const r of stats.last_executions || stats.recent || []) {
    runs.append(el("tr", {},
      el("td", { text: r.job || r.id || DASH }),
      el("td", { text: fmtTime(r.started || r.start || r.t) }),
      el("td", { class: "num", text: r.duration_s === undefined ? DASH : fmtNum(r.duration_s, 2) + " s" }),
      el("td", { text: r.error || r.result || (r.ok === false ? "error" : "ok") })));
  }
}

poll(async () => {
  await refreshHealth();
  await refreshClock();
  hideError();
}, refreshSeconds());
