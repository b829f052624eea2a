// Alerts: active alerts from /api/alerts when the alerts API is present.
import { api, ApiError, el, clear, setText, fmtTime, fmtNum, poll, refreshSeconds, hideError, DASH } from "./common.js";

async function refreshAlerts() {
  const message = document.getElementById("alerts-message");
  let data;
  try {
    data = await api("/api/alerts");
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      setText(message, "Alerts are not available in this version.");
      message.hidden = false;
      return;
    }
    throw err;
  }
  const list = (data && (data.alerts || data.active)) || [];
  message.hidden = list.length > 0;
  if (!list.length) setText(message, "No active alerts.");
  const tbody = document.querySelector("#alerts tbody");
  clear(tbody);
  for (const a of list) {
    tbody.append(el("tr", { class: a.state === "firing" ? "down" : "" },
      el("td", {}, a.device_id ? el("a", { href: "/firewall/" + encodeURIComponent(a.device_id), text: a.device_name || a.device_id }) : DASH),
      el("td", { text: a.rule_name || a.rule || a.rule_id || DASH }),
      el("td", { text: a.state || DASH }),
      el("td", { text: fmtTime(a.since || a.started_at) }),
      el("td", { class: "num", text: fmtNum(a.value, 2) })));
  }
  hideError();
}

poll(refreshAlerts, refreshSeconds());
