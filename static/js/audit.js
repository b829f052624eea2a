// Audit page (admins): /api/audit newest first, "Older entries" pages with ?before=<t of the last row>.
import { api, el, fmtTime, showError, hideError } from "./common.js";

const PAGE = 100;
let oldest = null;

function fieldsText(fields) {
  const parts = Object.entries(fields || {}).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`);
  return parts.join(", ");
}

async function more() {
  const query = new URLSearchParams({ limit: String(PAGE) });
  if (oldest) query.set("before", oldest);
  try {
    const data = await api(`/api/audit?${query}`);
    const body = document.querySelector("#audit tbody");
    for (const e of data.entries) {
      body.append(el("tr", {},
        el("td", { text: fmtTime(e.t) }), el("td", { text: e.actor }), el("td", { text: e.action }),
        el("td", { text: e.target }), el("td", { text: fieldsText(e.fields) })));
    }
    if (data.entries.length) oldest = data.entries[data.entries.length - 1].t;
    document.getElementById("audit-more").hidden = data.entries.length < PAGE;
    hideError();
  } catch (err) {
    showError(err);
  }
}

document.getElementById("audit-more").addEventListener("click", more);
more();
