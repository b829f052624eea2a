// Connected devices: /api/connected-devices (one firewall or the whole fleet), filters, sort, pages,
// CSV, and the admin's name/comment/tags/location per MAC (PUT .../metadata/<mac>).
// Every firewall-supplied string (hostname, vendor, user) goes in with textContent.
import { api, ApiError, el, clear, setText, fmtTime, poll, refreshSeconds, hideError, DASH } from "./common.js";

const state = { sort: "ip", order: "asc", page: 1, perPage: 100, total: 0, devices: [] };
const $ = (id) => document.getElementById(id);

function params(extra = {}) {
  const p = new URLSearchParams();
  const fw = $("cd-firewall").value;
  if (fw) p.set("device_id", fw); else p.set("fleet", "1");
  const q = $("cd-q").value.trim();
  if (q) p.set("q", q);
  const zone = $("cd-zone").value.trim();
  if (zone) p.set("zone", zone);
  const vlan = $("cd-vlan").value.trim();
  if (vlan) p.set("vlan", vlan);
  if ($("cd-all").checked) p.set("seen", "all");
  p.set("sort", state.sort);
  p.set("order", state.order);
  for (const [k, v] of Object.entries(extra)) p.set(k, v);
  return p;
}

function cell(value, cls) {
  return el("td", { class: cls, text: value === null || value === undefined || value === "" ? DASH : value });
}

function row(d) {
  const meta = d.metadata || {};
  const host = el("td", {});
  host.append(el("span", { class: "cd-hostname", text: d.hostname || DASH }));
  if (d.hostname_source) host.append(" ", el("small", { class: "muted", text: `(${d.hostname_source})` }));
  if (meta.name && d.hostname_source !== "custom") host.append(el("div", { class: "muted", text: meta.name }));
  const mac = el("td", { class: "mono" }, d.mac);
  if (d.randomized_mac) mac.append(" ", el("span", { class: "badge", title: "locally administered (randomised) MAC", text: "random" }));
  const extra = [...(meta.tags || []), meta.location].filter(Boolean).join(" · ");
  const edit = el("button", { type: "button", class: "link-button needs-operator", onclick: () => openEditor(d) }, "Edit");
  return el("tr", { dataset: { mac: d.mac } },
    cell(d.ip, "mono"), mac, host, cell(d.vendor), cell(d.interface), cell(d.vlan, "num"), cell(d.zone),
    cell(d.user), cell(d.static ? "static" : "DHCP"), cell(fmtTime(d.first_seen)), cell(fmtTime(d.last_seen)),
    el("td", { title: meta.comment || "", text: extra || DASH }), cell(d.device), el("td", {}, edit));
}

async function refresh() {
  const data = await api("/api/connected-devices?" + params({ page: state.page, per_page: state.perPage }));
  hideError();
  state.total = data.total;
  state.devices = data.devices;
  const body = document.querySelector("#cd-table tbody");
  clear(body);
  for (const d of data.devices) body.append(row(d));
  if (!data.devices.length) body.append(el("tr", {}, el("td", { colspan: "14", class: "muted", text: "No connected devices." })));
  const pages = Math.max(1, Math.ceil(data.total / state.perPage));
  setText($("cd-page"), `page ${state.page} of ${pages}`);
  $("cd-prev").disabled = state.page <= 1;
  $("cd-next").disabled = state.page >= pages;
  const times = Object.values(data.as_of || {}).filter(Boolean).sort();
  setText($("cd-summary"), `${data.total} device(s)` + (times.length ? ` · tables read ${fmtTime(times[times.length - 1])}` : " · not read yet"));
  $("cd-csv").href = "/api/connected-devices?" + params({ format: "csv" });
}

let current = null;
function openEditor(d) {
  current = d;
  const form = $("cd-form");
  const meta = d.metadata || {};
  setText($("cd-edit-mac"), d.mac);
  form.elements.name.value = meta.name || "";
  form.elements.comment.value = meta.comment || "";
  form.elements.tags.value = (meta.tags || []).join(" ");
  form.elements.location.value = meta.location || "";
  $("cd-edit-error").hidden = true;
  $("cd-edit").showModal();
}

async function save(event) {
  event.preventDefault();
  const form = $("cd-form");
  const body = {
    name: form.elements.name.value.trim() || null,
    comment: form.elements.comment.value.trim() || null,
    tags: form.elements.tags.value.split(/[\s,]+/).filter(Boolean),
    location: form.elements.location.value.trim() || null,
  };
  try {
    await api(`/api/connected-devices/metadata/${encodeURIComponent(current.mac)}`, { method: "PUT", body });
    $("cd-edit").close();
    await refresh();
  } catch (err) {
    const box = $("cd-edit-error");
    box.textContent = err instanceof ApiError ? err.message : "Cannot reach the PANfm web process.";
    box.hidden = false;
  }
}

async function loadFirewalls() {
  const data = await api("/api/devices");
  const select = $("cd-firewall");
  for (const d of data.devices || []) select.append(el("option", { value: d.id, text: d.name }));
  const wanted = new URLSearchParams(location.search).get("device_id");
  if (wanted) select.value = wanted;
}

function restart() { state.page = 1; refresh().catch((e) => { if (!(e instanceof ApiError && e.status === 401)) $("page-error").textContent = e.message; }); }

async function init() {
  await loadFirewalls().catch(() => {});
  let debounce = null;
  $("cd-q").addEventListener("input", () => { clearTimeout(debounce); debounce = setTimeout(restart, 250); });
  for (const id of ["cd-firewall", "cd-zone", "cd-vlan", "cd-all"]) $(id).addEventListener("change", restart);
  for (const button of document.querySelectorAll("#cd-table [data-sort]")) {
    button.addEventListener("click", () => {
      const key = button.dataset.sort;
      state.order = state.sort === key && state.order === "asc" ? "desc" : "asc";
      state.sort = key;
      restart();
    });
  }
  $("cd-prev").addEventListener("click", () => { state.page -= 1; refresh(); });
  $("cd-next").addEventListener("click", () => { state.page += 1; refresh(); });
  $("cd-form").addEventListener("submit", save);
  $("cd-cancel").addEventListener("click", () => $("cd-edit").close());
  poll(refresh, Math.max(60, refreshSeconds()));
}

init();
