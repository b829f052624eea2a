// Applications: /api/applications (ACC top applications and categories stored by the clock) for
// one firewall over 15 min, 1 h or 24 h. Application names come from the firewall: textContent only.
import { api, el, clear, setText, fmtInt, fmtTime, poll, refreshSeconds, hideError, DASH } from "./common.js";
import { drawSparkline } from "./sparkline.js";

const $ = (id) => document.getElementById(id);
let range = "1h";

function fmtBytes(n) {
  if (!Number.isFinite(n)) return DASH;
  const units = ["B", "kB", "MB", "GB", "TB", "PB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

async function refresh() {
  const fw = $("app-firewall").value;
  if (!fw) { setText($("app-summary"), "No firewall configured."); return; }
  const data = await api(`/api/applications?device_id=${encodeURIComponent(fw)}&range=${range}`);
  hideError();
  const apps = document.querySelector("#app-table tbody");
  clear(apps);
  for (const a of data.applications) {
    apps.append(el("tr", { dataset: { app: a.name } }, el("td", { text: a.name }), el("td", { text: a.category || DASH }),
      el("td", { class: "num", text: a.risk ?? DASH }), el("td", { class: "num", text: fmtBytes(a.bytes) }),
      el("td", { class: "num", text: fmtInt(a.sessions) }), el("td", { class: "num", text: a.sources ?? DASH })));
  }
  if (!data.applications.length) apps.append(el("tr", {}, el("td", { colspan: "6", class: "muted", text: "No application data for this range yet." })));
  const cats = document.querySelector("#cat-table tbody");
  clear(cats);
  for (const c of data.categories) {
    cats.append(el("tr", {}, el("td", { text: c.name }), el("td", { class: "num", text: fmtBytes(c.bytes) }),
      el("td", { class: "num", text: fmtInt(c.sessions) })));
  }
  const srcs = document.querySelector("#src-table tbody");
  clear(srcs);
  for (const s of data.top_sources || []) {
    srcs.append(el("tr", {}, el("td", { text: s.name }), el("td", { text: s.user || DASH }),
      el("td", { class: "num", text: fmtBytes(s.bytes) }), el("td", { class: "num", text: fmtInt(s.sessions) })));
  }
  if (!(data.top_sources || []).length) srcs.append(el("tr", {}, el("td", { colspan: "4", class: "muted", text: "No source data for this range yet." })));
  const reasons = Object.entries(data.unavailable || {});
  $("app-unavailable").hidden = !reasons.length;
  setText($("app-unavailable"), reasons.map(([k, v]) => `${k}: ${v}`).join("; "));
  setText($("app-summary"), `Source: the firewall's ACC reports, as of ${fmtTime(data.as_of)}`);
  drawSparkline($("app-timeline"), data.timeline, [{ key: "bytes", color: "--series-1" }]);
}

async function init() {
  const data = await api("/api/devices");
  const select = $("app-firewall");
  for (const d of data.devices || []) select.append(el("option", { value: d.id, text: d.name }));
  const wanted = new URLSearchParams(location.search).get("device_id");
  if (wanted) select.value = wanted;
  select.addEventListener("change", () => refresh());
  for (const b of document.querySelectorAll("#app-ranges button")) {
    b.addEventListener("click", () => {
      range = b.dataset.range;
      for (const o of document.querySelectorAll("#app-ranges button")) o.setAttribute("aria-pressed", String(o === b));
      refresh();
    });
  }
  poll(refresh, Math.max(60, refreshSeconds()));
}

init();
