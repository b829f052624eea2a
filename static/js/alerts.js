// Alerts: active alerts first, then rules (add, edit, delete, rule sets), channels (add, send a
// test, delete), maintenance windows and history with acknowledgements. Everything goes
// through /api/alerts/...; text only ever lands in the DOM through textContent.
import { api, ApiError, el, clear, setText, fmtTime, fmtNum, fmtDuration, poll, refreshSeconds, hideError, DASH }
  from "./common.js";

const VALUE_METRICS = ["cpu_dataplane_pct", "cpu_management_pct", "memory_pct", "packet_buffer_pct",
  "sessions_active", "sessions_utilization_pct", "inbound_mbps", "outbound_mbps", "total_mbps",
  "interface_mbps", "interface_utilization_pct", "interface_errors_per_s", "interface_drops_per_s",
  "threats_critical", "licence_expires_in_days"];
const INTERFACE_METRICS = ["interface_mbps", "interface_utilization_pct", "interface_errors_per_s",
  "interface_drops_per_s"];
const EVENT_METRICS = ["device_unreachable", "ha_state_changed", "tls_fingerprint_changed", "new_connected_device"];

const $ = (id) => document.getElementById(id);
let devices = [];
let channels = [];
let rules = [];
let editing = null; // id of the rule in the dialog, null when adding

function deviceName(id) {
  if (!id) return "All firewalls";
  const d = devices.find((x) => x.id === id);
  return d ? d.name : id;
}

// The server answers {"error", "message", "fields": {name: message}}: show each field's message.
function problem(err) {
  if (err instanceof ApiError && err.body && err.body.fields) {
    return Object.entries(err.body.fields).map(([k, v]) => `${k}: ${v}`).join("; ");
  }
  return err instanceof ApiError ? err.message : "Cannot reach the PANfm web process.";
}

function deviceOptions(select, allLabel) {
  const keep = select.value;
  clear(select);
  select.append(el("option", { value: "", text: allLabel }));
  for (const d of devices) select.append(el("option", { value: d.id, text: d.name }));
  select.value = keep;
}

function acks(list) {
  return (list || []).map((a) => a.username).join(", ") || DASH;
}

async function acknowledge(id) {
  try {
    await api(`/api/alerts/${encodeURIComponent(id)}/acknowledge`, { method: "POST" });
    await refresh();
  } catch (err) {
    setText($("alerts-message"), problem(err));
    $("alerts-message").hidden = false;
  }
}

// ---- active alerts and history (polled) ----------------------------------------------------

function drawActive(list) {
  const message = $("alerts-message");
  message.hidden = list.length > 0;
  if (!list.length) setText(message, "No active alerts.");
  const tbody = document.querySelector("#alerts tbody");
  clear(tbody);
  for (const a of list) {
    const metric = a.series ? `${a.metric} (${a.series})` : a.metric;
    tbody.append(el("tr", { class: a.state === "firing" ? "down" : "" },
      el("td", {}, el("a", { href: "/firewall/" + encodeURIComponent(a.device_id), text: a.device_name || a.device_id })),
      el("td", { text: a.rule_name || a.rule_id }),
      el("td", { text: metric, title: a.detail || "" }),
      el("td", { text: a.state }),
      el("td", { text: a.severity }),
      el("td", { text: fmtTime(a.started_at) }),
      el("td", { class: "num", text: fmtNum(a.value, 2) }),
      el("td", { class: "num", text: fmtNum(a.threshold, 2) }),
      el("td", { text: acks(a.acknowledgements) }),
      el("td", { class: "actions" }, el("button", { type: "button", text: "Acknowledge", onclick: () => acknowledge(a.id) }))));
  }
}

function drawHistory(list) {
  const tbody = document.querySelector("#history tbody");
  clear(tbody);
  if (!list.length) tbody.append(el("tr", {}, el("td", { colspan: 9, class: "nodata-cell", text: "No incidents." })));
  for (const h of list) {
    tbody.append(el("tr", { class: h.ended_at ? "" : "down" },
      el("td", { text: h.device_name || h.device_id }),
      el("td", { text: h.rule_name || h.rule_id, title: h.detail || "" }),
      el("td", { text: h.severity }),
      el("td", { text: fmtTime(h.started_at) }),
      el("td", { text: h.ended_at ? fmtTime(h.ended_at) : "ongoing" }),
      el("td", { text: h.duration_s === null ? DASH : fmtDuration(h.duration_s) }),
      el("td", { class: "num", text: fmtNum(h.peak, 2) }),
      el("td", { text: acks(h.acknowledgements) }),
      el("td", { class: "actions" }, el("button", { type: "button", text: "Acknowledge", onclick: () => acknowledge(h.id) }))));
  }
}

async function refresh() {
  const severity = $("history-severity").value;
  const query = severity ? "?severity=" + encodeURIComponent(severity) : "";
  const [active, history] = await Promise.all([api("/api/alerts/active"), api("/api/alerts/history" + query)]);
  drawActive(active.alerts || []);
  drawHistory(history.history || []);
  hideError();
}

// ---- rules ---------------------------------------------------------------------------------

function condition(r) {
  if (EVENT_METRICS.includes(r.metric)) return "on change / event";
  const clearAt = r.clear_threshold !== undefined && r.clear_threshold !== null ? `, clears past ${r.clear_threshold}` : "";
  return `${r.operator} ${r.threshold}${clearAt}`;
}

function drawRules() {
  const tbody = document.querySelector("#rules tbody");
  clear(tbody);
  if (!rules.length) tbody.append(el("tr", {}, el("td", { colspan: 9, class: "nodata-cell", text: "No rules yet: add one or apply a rule set." })));
  for (const r of rules) {
    const names = (r.channel_ids || []).map((id) => (channels.find((c) => c.id === id) || { name: id }).name);
    tbody.append(el("tr", { class: r.enabled ? "" : "muted-row" },
      el("td", { text: r.name }),
      el("td", { text: deviceName(r.device_id) }),
      el("td", { text: r.interface ? `${r.metric} (${r.interface})` : r.zone ? `${r.metric} (zone ${r.zone})` : r.metric }),
      el("td", { text: condition(r) }),
      el("td", { class: "num", text: `${r.for_s} s` }),
      el("td", { text: r.severity }),
      el("td", { text: names.join(", ") || DASH }),
      el("td", { text: r.enabled ? "yes" : "no" }),
      el("td", { class: "actions" },
        el("button", { type: "button", text: "Edit", onclick: () => openRule(r) }),
        el("button", { type: "button", class: "danger", text: "Delete", onclick: () => deleteRule(r) }))));
  }
}

async function deleteRule(r) {
  if (!confirm(`Delete the rule "${r.name}"?`)) return;
  try {
    await api(`/api/alerts/rules/${encodeURIComponent(r.id)}`, { method: "DELETE" });
    await loadConfig();
  } catch (err) {
    setText($("rules-message"), problem(err));
  }
}

function showMetricFields() {
  const metric = $("rule-metric").value;
  document.querySelector('[data-for="value"]').hidden = !VALUE_METRICS.includes(metric);
  document.querySelector('[data-for="interface"]').hidden = !INTERFACE_METRICS.includes(metric);
  document.querySelector('[data-for="zone"]').hidden = metric !== "new_connected_device";
}

function openRule(r) {
  editing = r ? r.id : null;
  setText($("rule-form-title"), r ? "Edit rule" : "Add rule");
  setText($("rule-form-message"), "");
  deviceOptions($("rule-device"), "All firewalls");
  $("rule-name").value = r ? r.name : "";
  $("rule-device").value = r && r.device_id ? r.device_id : "";
  $("rule-metric").value = r ? r.metric : "cpu_dataplane_pct";
  $("rule-interface").value = r && r.interface ? r.interface : "";
  $("rule-zone").value = r && r.zone ? r.zone : "";
  $("rule-operator").value = r && r.operator ? r.operator : ">";
  $("rule-threshold").value = r && r.threshold !== undefined && r.threshold !== null ? r.threshold : "";
  $("rule-clear").value = r && r.clear_threshold !== undefined && r.clear_threshold !== null ? r.clear_threshold : "";
  $("rule-for").value = r ? r.for_s : 0;
  $("rule-repeat").value = r ? r.repeat_s : 0;
  $("rule-severity").value = r ? r.severity : "warning";
  $("rule-enabled").checked = r ? r.enabled : true;
  const box = $("rule-channels");
  clear(box);
  if (!channels.length) box.append(el("span", { class: "muted", text: "No channels yet (add one below)." }));
  for (const c of channels) {
    const input = el("input", { type: "checkbox", value: c.id, checked: r && (r.channel_ids || []).includes(c.id) });
    box.append(el("label", { class: "inline" }, input, c.name));
  }
  showMetricFields();
  $("rule-dialog").showModal();
}

function number(id) {
  const v = $(id).value.trim();
  return v === "" ? null : Number(v);
}

async function saveRule(event) {
  event.preventDefault();
  const metric = $("rule-metric").value;
  const body = {
    name: $("rule-name").value.trim(),
    device_id: $("rule-device").value || null,
    metric,
    for_s: number("rule-for") ?? 0,
    repeat_s: number("rule-repeat") ?? 0,
    severity: $("rule-severity").value,
    enabled: $("rule-enabled").checked,
    channel_ids: [...$("rule-channels").querySelectorAll("input:checked")].map((i) => i.value),
    interface: INTERFACE_METRICS.includes(metric) ? ($("rule-interface").value.trim() || null) : null,
    zone: metric === "new_connected_device" ? ($("rule-zone").value.trim() || null) : null,
    operator: null, threshold: null, clear_threshold: null,
  };
  if (VALUE_METRICS.includes(metric)) {
    body.operator = $("rule-operator").value;
    body.threshold = number("rule-threshold");
    body.clear_threshold = number("rule-clear");
  }
  try {
    if (editing) await api(`/api/alerts/rules/${encodeURIComponent(editing)}`, { method: "PUT", body });
    else await api("/api/alerts/rules", { method: "POST", body });
    $("rule-dialog").close();
    await loadConfig();
  } catch (err) {
    setText($("rule-form-message"), problem(err));
  }
}

async function applyTemplate(event) {
  event.preventDefault();
  const body = { template: $("template-name").value, device_id: $("template-device").value || null };
  try {
    const answer = await api("/api/alerts/rules/apply-template", { method: "POST", body });
    setText($("rules-message"), `${answer.rules.length} rules added.`);
    await loadConfig();
  } catch (err) {
    setText($("rules-message"), problem(err));
  }
}

// ---- channels ------------------------------------------------------------------------------

function drawChannels() {
  const tbody = document.querySelector("#channels tbody");
  clear(tbody);
  if (!channels.length) tbody.append(el("tr", {}, el("td", { colspan: 4, class: "nodata-cell", text: "No channels yet." })));
  for (const c of channels) {
    const result = el("span", { class: "muted" });
    const test = async () => {
      setText(result, "sending…");
      try {
        const answer = await api(`/api/alerts/channels/${encodeURIComponent(c.id)}/test`, { method: "POST" });
        setText(result, answer.ok ? "sent" : `failed: ${answer.error}`);
      } catch (err) {
        setText(result, problem(err));
      }
    };
    const remove = async () => {
      if (!confirm(`Delete the channel "${c.name}"? Rules stop sending to it.`)) return;
      try {
        await api(`/api/alerts/channels/${encodeURIComponent(c.id)}`, { method: "DELETE" });
        await loadConfig();
      } catch (err) {
        setText($("channels-message"), problem(err));
      }
    };
    tbody.append(el("tr", { class: c.enabled ? "" : "muted-row" },
      el("td", { text: c.name }),
      el("td", { class: "mono", text: c.url }),
      el("td", { text: c.enabled ? "yes" : "no" }),
      el("td", { class: "actions" },
        el("button", { type: "button", text: "Send test", onclick: test }),
        el("button", { type: "button", class: "danger", text: "Delete", onclick: remove }), result)));
  }
}

async function addChannel(event) {
  event.preventDefault();
  const body = { name: $("channel-name").value.trim(), url: $("channel-url").value.trim() };
  try {
    await api("/api/alerts/channels", { method: "POST", body });
    $("channel-form").reset(); // the URL (a secret) does not stay in the page
    setText($("channels-message"), "");
    await loadConfig();
  } catch (err) {
    setText($("channels-message"), problem(err));
  }
}

// ---- maintenance windows -------------------------------------------------------------------

function when(w) {
  if (w.kind === "once") return `${fmtTime(w.start)} → ${fmtTime(w.end)}`;
  return `${(w.weekdays || []).join(", ")} ${w.start_time} UTC for ${fmtDuration(w.duration_s)}`;
}

function drawWindows(windows) {
  const tbody = document.querySelector("#windows tbody");
  clear(tbody);
  if (!windows.length) tbody.append(el("tr", {}, el("td", { colspan: 4, class: "nodata-cell", text: "No maintenance windows." })));
  for (const w of windows) {
    const remove = async () => {
      try {
        await api(`/api/alerts/maintenance/${encodeURIComponent(w.id)}`, { method: "DELETE" });
        await loadConfig();
      } catch (err) {
        setText($("windows-message"), problem(err));
      }
    };
    tbody.append(el("tr", {},
      el("td", { text: w.name || DASH }),
      el("td", { text: deviceName(w.device_id) }),
      el("td", { text: when(w) }),
      el("td", { class: "actions" }, el("button", { type: "button", class: "danger", text: "Delete", onclick: remove }))));
  }
}

function showKind() {
  const kind = $("window-kind").value;
  for (const span of document.querySelectorAll("#window-form [data-kind]")) span.hidden = span.dataset.kind !== kind;
}

function isoOf(local) {
  const t = Date.parse(local); // datetime-local is the browser's local time
  return Number.isFinite(t) ? new Date(t).toISOString().replace(/\.\d{3}Z$/, "Z") : local;
}

async function addWindow(event) {
  event.preventDefault();
  const kind = $("window-kind").value;
  const body = { name: $("window-name").value.trim(), device_id: $("window-device").value || null, kind };
  if (kind === "once") {
    body.start = isoOf($("window-start").value);
    body.end = isoOf($("window-end").value);
  } else {
    body.weekdays = $("window-days").value.split(/[\s,]+/).filter(Boolean).map((d) => d.toLowerCase().slice(0, 3));
    body.start_time = $("window-time").value;
    body.duration_s = Math.round((number("window-hours") ?? 0) * 3600);
  }
  try {
    await api("/api/alerts/maintenance", { method: "POST", body });
    $("window-form").reset();
    showKind();
    setText($("windows-message"), "");
    await loadConfig();
  } catch (err) {
    setText($("windows-message"), problem(err));
  }
}

// ---- wiring --------------------------------------------------------------------------------

async function loadConfig() {
  const [devs, rl, ch, mw] = await Promise.all([api("/api/devices"), api("/api/alerts/rules"),
    api("/api/alerts/channels"), api("/api/alerts/maintenance")]);
  devices = devs.devices || [];
  rules = rl.rules || [];
  channels = ch.channels || [];
  deviceOptions($("template-device"), "All firewalls");
  deviceOptions($("window-device"), "All firewalls");
  drawRules();
  drawChannels();
  drawWindows(mw.windows || []);
}

function init() {
  const metric = $("rule-metric");
  for (const m of [...VALUE_METRICS, ...EVENT_METRICS]) metric.append(el("option", { value: m, text: m }));
  metric.addEventListener("change", showMetricFields);
  $("add-rule").addEventListener("click", () => openRule(null));
  $("rule-cancel").addEventListener("click", () => $("rule-dialog").close());
  $("rule-form").addEventListener("submit", saveRule);
  $("template-form").addEventListener("submit", applyTemplate);
  $("channel-form").addEventListener("submit", addChannel);
  $("window-form").addEventListener("submit", addWindow);
  $("window-kind").addEventListener("change", showKind);
  $("history-severity").addEventListener("change", () => refresh().catch((err) => setText($("alerts-message"), problem(err))));
  loadConfig().catch((err) => setText($("rules-message"), problem(err)));
  poll(refresh, refreshSeconds());
}

init();
