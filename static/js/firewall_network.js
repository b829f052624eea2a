// The firewall page's "top applications" tile: /api/applications (ACC rows stored by the clock).
// Application names come from the firewall: textContent only.
import { api, el, clear, fmtInt, poll, refreshSeconds } from "./common.js";

const root = document.getElementById("firewall");
const list = document.getElementById("fw-top-apps");

function fmtBytes(n) {
  const units = ["B", "kB", "MB", "GB", "TB", "PB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

async function refresh() {
  const data = await api(`/api/applications?device_id=${encodeURIComponent(root.dataset.deviceId)}&range=1h`);
  clear(list);
  for (const a of data.applications.slice(0, 5)) {
    list.append(el("li", { dataset: { app: a.name } }, el("span", { text: a.name }),
      ` · ${fmtBytes(a.bytes)} · ${fmtInt(a.sessions)} sessions`));
  }
  if (!data.applications.length) list.append(el("li", { class: "muted", text: "No application data yet." }));
}

if (root && list) poll(refresh, Math.max(60, refreshSeconds()));
