// Logs: /api/logs (system or traffic entries the clock fetched) for one firewall, filtered by text.
// Every field is firewall text: textContent only.
import { api, el, clear, setText, fmtInt, fmtTime, fmtAge, poll, refreshSeconds, hideError, DASH } from "./common.js";

const $ = (id) => document.getElementById(id);
const COLUMNS = {
  system: [["time", "Time"], ["severity", "Severity"], ["subtype", "Type"], ["eventid", "Event"], ["opaque", "Description"]],
  traffic: [["time", "Time"], ["src", "Source"], ["dst", "Destination"], ["dport", "Port"], ["app", "Application"],
    ["action", "Action"], ["rule", "Rule"], ["srcuser", "User"], ["bytes", "Bytes"], ["session_end_reason", "End reason"]],
};

async function refresh() {
  const fw = $("log-firewall").value;
  if (!fw) return;
  const type = $("log-type").value;
  const params = new URLSearchParams({ device_id: fw, type, range: $("log-range").value });
  const q = $("log-q").value.trim();
  if (q) params.set("q", q);
  const data = await api("/api/logs?" + params);
  hideError();
  const head = document.querySelector("#log-table thead tr");
  clear(head);
  for (const [, label] of COLUMNS[type]) head.append(el("th", { text: label }));
  const body = document.querySelector("#log-table tbody");
  clear(body);
  for (const e of data.entries) {
    body.append(el("tr", { dataset: { id: e.id } }, COLUMNS[type].map(([key]) =>
      el("td", { text: key === "time" ? fmtTime(e.time) : (e[key] ?? DASH) }))));
  }
  if (!data.entries.length) body.append(el("tr", {}, el("td", { colspan: String(COLUMNS[type].length), class: "muted", text: "No entries." })));
  $("log-unavailable").hidden = !data.unavailable;
  setText($("log-unavailable"), data.unavailable ? `The firewall did not answer this log query: ${data.unavailable}` : "");
  const lag = data.lag_s === null ? "" : ` The newest entry was ${fmtAge(data.lag_s)} old when fetched.`;
  setText($("log-note"), `Fetched by the clock every ${Math.round(data.interval_s / 60)} minutes, at most ${fmtInt(data.cap)} entries per fetch (setting log_fetch_cap${data.last_fetch_cap !== null && data.last_fetch_cap !== undefined && data.last_fetch_cap !== data.cap ? `; the last fetch took at most ${fmtInt(data.last_fetch_cap)}` : ""}); showing up to ${fmtInt(data.max_entries)}. Last fetch: ${fmtTime(data.fetched_at)}.${lag}`);
}

async function init() {
  const devices = await api("/api/devices");
  const select = $("log-firewall");
  for (const d of devices.devices || []) select.append(el("option", { value: d.id, text: d.name }));
  const wanted = new URLSearchParams(location.search).get("device_id");
  if (wanted) select.value = wanted;
  for (const id of ["log-firewall", "log-type", "log-range"]) $(id).addEventListener("change", () => refresh());
  let debounce = null;
  $("log-q").addEventListener("input", () => { clearTimeout(debounce); debounce = setTimeout(refresh, 250); });
  poll(refresh, Math.max(60, refreshSeconds()));
}

init();
