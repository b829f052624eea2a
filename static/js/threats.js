// Threats and URLs: /api/threats for one firewall over 15 min, 1 h or 24 h. Tiles count threats per
// severity and blocked URLs; a tile filters the latest events. Log fields are firewall text: textContent only.
import { api, el, clear, setText, fmtInt, fmtTime, poll, refreshSeconds, hideError, DASH } from "./common.js";

const $ = (id) => document.getElementById(id);
let range = "1h";
let filter = null;
let data = null;

function eventMatches(e) {
  if (!filter) return true;
  if (filter === "url") return e.kind === "url";
  return e.kind === "threat" && e.severity === filter;
}

function draw() {
  const body = document.querySelector("#thr-events tbody");
  clear(body);
  const events = (data.latest || []).filter(eventMatches);
  for (const e of events) {
    body.append(el("tr", { dataset: { kind: e.kind } },
      el("td", { text: e.time || DASH }), el("td", { text: e.kind === "url" ? "blocked URL" : (e.severity || DASH) }),
      el("td", { class: "thr-name", text: (e.kind === "url" ? e.url : e.name) || DASH }),
      el("td", { text: e.category || DASH }), el("td", { class: "mono", text: e.src || DASH }),
      el("td", { class: "mono", text: e.dst || DASH }), el("td", { text: e.user || DASH }),
      el("td", { text: e.action || DASH })));
  }
  if (!events.length) body.append(el("tr", {}, el("td", { colspan: "8", class: "muted", text: "No events in this range." })));
  setText($("thr-filter"), filter ? `(${filter === "url" ? "blocked URLs" : filter})` : "");
}

async function refresh() {
  const fw = $("thr-firewall").value;
  if (!fw) return;
  data = await api(`/api/threats?device_id=${encodeURIComponent(fw)}&range=${range}`);
  hideError();
  for (const node of document.querySelectorAll("#thr-tiles [data-count]")) {
    const key = node.dataset.count;
    const value = key === "blocked_urls" ? data.blocked_urls : (data.counts || {})[key];
    setText(node, value === null || value === undefined ? DASH : fmtInt(value));
  }
  for (const [id, list] of [["thr-top", data.top_threats], ["thr-top-urls", data.top_url_categories]]) {
    const ul = $(id);
    clear(ul);
    for (const t of list || []) {
      const li = el("li", {}, el("span", { text: t.name }), ` · ${fmtInt(t.count)}`);
      if (t.severity) li.append(" ", el("span", { class: `badge sev-${t.severity}`, text: t.severity }));
      ul.append(li);
    }
    if (!(list || []).length) ul.append(el("li", { class: "muted", text: "None." }));
  }
  const from = data.tops_from || {};
  setText($("thr-top-from"), from.top_threats === "acc" ? "from the ACC (top-attacks-acc)" : "from the threat logs");
  setText($("thr-top-urls-from"), from.top_url_categories === "acc" ? "from the ACC (top-blocked-url-categories-summary)" : "from the URL logs");
  setText($("thr-summary"), data.as_of ? `From the firewall's threat and URL logs (at most ${fmtInt(data.cap_per_run)} per 5-minute run), as of ${fmtTime(data.as_of)}` : "No data yet: the clock reads the logs every 5 minutes.");
  draw();
}

async function init() {
  const devices = await api("/api/devices");
  const select = $("thr-firewall");
  for (const d of devices.devices || []) select.append(el("option", { value: d.id, text: d.name }));
  const wanted = new URLSearchParams(location.search).get("device_id");
  if (wanted) select.value = wanted;
  select.addEventListener("change", () => refresh());
  for (const b of document.querySelectorAll("#thr-ranges button")) {
    b.addEventListener("click", () => {
      range = b.dataset.range;
      for (const o of document.querySelectorAll("#thr-ranges button")) o.setAttribute("aria-pressed", String(o === b));
      refresh();
    });
  }
  for (const tile of document.querySelectorAll("#thr-tiles [data-filter]")) {
    tile.addEventListener("click", () => {
      filter = filter === tile.dataset.filter ? null : tile.dataset.filter;
      for (const t of document.querySelectorAll("#thr-tiles [data-filter]")) t.setAttribute("aria-pressed", String(t.dataset.filter === filter));
      if (data) draw();
    });
  }
  poll(refresh, Math.max(60, refreshSeconds()));
}

init();
