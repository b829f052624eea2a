// Devices: list, add (test connection -> fingerprint -> confirm -> counted interfaces), edit,
// enable/disable and delete, all through /api/devices.
import { api, ApiError, el, clear, setText, stateOf, poll, refreshSeconds, hideError, showError, DASH } from "./common.js";

const tbody = document.querySelector("#devices tbody");
const dialog = document.getElementById("device-dialog");
const form = document.getElementById("device-form");
const $ = (id) => document.getElementById(id);

let devices = [];
let editing = null; // the device being edited, null when adding
let tested = null; // last /api/devices/test answer for the host:port in the form
let testedFor = "";
let acceptedPin = null; // a changed certificate the admin accepted from the list, saved with new credentials
let zoneTimer = null; // while the edit form is open and no interface has a zone yet: the next reload
const ZONE_POLL_MS = 5000; // zones come with the clock's inventory, which may arrive after the form opens

function authMode() {
  return form.querySelector("input[name=auth]:checked").value;
}

function showAuthFields() {
  const mode = authMode();
  for (const label of form.querySelectorAll("[data-auth]")) label.hidden = label.dataset.auth !== mode;
}

function credentials() {
  if (authMode() === "api_key") {
    const key = $("dev-api-key").value;
    return key ? { api_key: key } : {};
  }
  const username = $("dev-username").value.trim();
  const password = $("dev-password").value;
  return username && password ? { username, password } : {};
}

function target() {
  return `${$("dev-host").value.trim()}:${$("dev-port").value}`;
}

function errorText(err) {
  if (!(err instanceof ApiError)) return "Cannot reach PANfm.";
  const body = err.body || {};
  const fields = body.fields || body.errors || body.details;
  if (fields && typeof fields === "object") {
    const parts = Object.entries(fields).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(", ") : v}`);
    if (parts.length) return `${err.message || "Invalid input"} (${parts.join("; ")})`;
  }
  return err.message || `Error ${err.status}`;
}

// --- list ----------------------------------------------------------------------------

function actionButton(label, handler, cls = "") {
  return el("button", { type: "button", class: cls, text: label, onclick: handler });
}

function row(d) {
  const state = d.enabled === false ? "disabled" : stateOf(d.status);
  const info = d.info || {};
  const tls = d.tls || {};
  const fp = tls.fingerprint_sha256 ? `${tls.mode} ${tls.fingerprint_sha256.slice(0, 16)}…` : tls.mode || DASH;
  return el("tr", { dataset: { id: d.id }, class: `state-${state}` },
    el("td", {}, el("a", { href: "/firewall/" + encodeURIComponent(d.id), text: d.name })),
    el("td", { text: `${d.host}:${d.port}` }),
    el("td", {}, el("span", { class: `badge state-${state}`, text: state }),
      d.status && d.status.last_error ? el("div", { class: "muted small", text: d.status.last_error }) : null),
    el("td", { text: info.model || DASH }),
    el("td", { text: info.sw_version || DASH }),
    el("td", { class: "mono", text: fp, title: tls.fingerprint_sha256 || "" }),
    el("td", { text: (d.interfaces && d.interfaces.length ? d.interfaces.join(", ") : "all physical")
      + (d.uplinks && d.uplinks.length ? ` · WAN: ${d.uplinks.join(", ")}` : "") }),
    el("td", { class: "actions" },
      changedCert(d) ? actionButton("Accept new certificate", () => acceptCert(d, changedCert(d)), "primary") : null,
      actionButton("Edit", () => openDialog(d)),
      actionButton(d.enabled === false ? "Enable" : "Disable", () => setEnabled(d, d.enabled === false)),
      actionButton("Delete", () => remove(d), "danger")));
}

async function refreshList() {
  const data = await api("/api/devices");
  devices = (data && data.devices) || [];
  clear(tbody);
  tbody.append(...devices.map(row));
  $("devices-empty").hidden = devices.length > 0;
  hideError();
}

// The clock stops polling a firewall whose certificate no longer matches its pin and says so
// in last_error; the admin compares the new fingerprint with the firewall's before accepting.
const CERT_CHANGED = /^certificate changed: expected ([0-9a-f]{64}), got ([0-9a-f]{64})/;

function changedCert(d) {
  const m = d.status && d.status.last_error ? CERT_CHANGED.exec(d.status.last_error) : null;
  return m ? m[2] : null;
}

// A new certificate is a new TLS target: the server keeps the stored credentials only for the
// old one, so the edit dialog opens with the new pin and asks for them again.
async function acceptCert(d, fingerprint) {
  const question = `The certificate of ${d.name} changed. Accept the new one only if you have checked it on the `
    + `firewall (Device > Certificates) or know it was replaced.\n\nNew SHA-256: ${fingerprint}`;
  if (!window.confirm(question)) return;
  await openDialog(d, fingerprint);
}

async function setEnabled(d, enabled) {
  try {
    await api(`/api/devices/${encodeURIComponent(d.id)}`, { method: "PUT", body: { enabled } });
    await refreshList();
  } catch (err) {
    showError(err);
  }
}

async function remove(d) {
  if (!window.confirm(`Delete ${d.name}? Its history stays until retention removes it.`)) return;
  try {
    await api(`/api/devices/${encodeURIComponent(d.id)}`, { method: "DELETE" });
    await refreshList();
  } catch (err) {
    showError(err);
  }
}

// --- dialog --------------------------------------------------------------------------

function interfaceChecklist(names, counted) {
  const box = $("dev-interfaces");
  clear(box);
  const chosen = new Set(counted || []);
  for (const name of names) {
    box.append(el("label", { class: "inline" },
      el("input", { type: "checkbox", value: name, checked: chosen.has(name) }), name));
  }
  const extra = (counted || []).filter((n) => !names.includes(n));
  $("dev-interfaces-extra").value = extra.join(", ");
  if (!names.length) box.append(el("p", { class: "muted", text: "Interfaces are listed once the firewall has been polled." }));
}

// Uplinks: every interface with its zone, so the one facing `untrust` is easy to find.
function uplinkChecklist(rows, marked) {
  const box = $("dev-uplinks");
  clear(box);
  const chosen = new Set(marked || []);
  const names = rows.map((r) => r.name);
  for (const name of chosen) if (!names.includes(name)) rows.push({ name, zone: null });
  for (const r of rows) {
    box.append(el("label", { class: "inline" },
      el("input", { type: "checkbox", value: r.name, checked: chosen.has(r.name) }),
      r.zone ? `${r.name} (${r.zone})` : r.name));
  }
  if (!rows.length) box.append(el("p", { class: "muted", text: "Interfaces are listed once the firewall has been polled." }));
}

function chosenUplinks() {
  return [...$("dev-uplinks").querySelectorAll("input:checked")].map((i) => i.value);
}

function chosenInterfaces() {
  const picked = [...$("dev-interfaces").querySelectorAll("input:checked")].map((i) => i.value);
  const extra = $("dev-interfaces-extra").value.split(",").map((s) => s.trim()).filter(Boolean);
  return [...new Set([...picked, ...extra])];
}

async function openDialog(device, newFingerprint = null) {
  editing = device || null;
  tested = null;
  testedFor = "";
  acceptedPin = newFingerprint;
  form.reset();
  setText($("device-message"), newFingerprint
    ? "Enter the API key, or the username and password, again to accept the new certificate." : "");
  $("test-result").hidden = true;
  setText($("device-form-title"), device ? `Edit ${device.name}` : "Add firewall");
  $("secret-hint").hidden = !device;
  $("dev-api-key").required = false;
  const current = $("tls-current");
  current.hidden = !(device && device.tls);
  if (device) {
    $("dev-name").value = device.name;
    $("dev-host").value = device.host;
    $("dev-port").value = device.port;
    $("dev-enabled").checked = device.enabled !== false;
    setText(current, newFingerprint ? `New certificate SHA-256 (accepted): ${newFingerprint}`
      : device.tls && device.tls.fingerprint_sha256
        ? `Pinned certificate SHA-256: ${device.tls.fingerprint_sha256}` : `TLS mode: ${device.tls ? device.tls.mode : DASH}`);
    testedFor = target(); // the stored trust stays valid while host and port do not change
  }
  showAuthFields();
  interfaceChecklist([], device ? device.interfaces : []);
  uplinkChecklist([], device ? device.uplinks : []);
  stopZonePoll();
  dialog.showModal();
  if (device) await loadInterfaces(device, "");
}

function stopZonePoll() {
  clearTimeout(zoneTimer);
  zoneTimer = null;
}

// The device's interfaces and zones from /api/interfaces. Until one has a zone (the firewall's
// first inventory may come after the form opened), reload every ZONE_POLL_MS while the form
// stays open on this device and no connection test has listed them; the boxes keep what is ticked.
async function loadInterfaces(device, shown) {
  zoneTimer = null;
  let rows = [];
  try {
    const data = await api(`/api/interfaces?device_id=${encodeURIComponent(device.id)}`);
    rows = (data && data.interfaces) || [];
  } catch (err) {
    console.warn(err);
  }
  if (!dialog.open || editing !== device || tested) return;
  const seen = JSON.stringify(rows.map((i) => [i.name, i.zone]));
  if (seen !== shown) {
    const first = shown === "";
    interfaceChecklist(rows.map((i) => i.name), first ? device.interfaces : chosenInterfaces());
    uplinkChecklist(rows.map((i) => ({ name: i.name, zone: i.zone })), first ? device.uplinks : chosenUplinks());
  }
  if (!rows.some((i) => i.zone)) zoneTimer = setTimeout(() => loadInterfaces(device, seen), ZONE_POLL_MS);
}

async function testConnection() {
  const result = $("test-result");
  setText($("device-message"), "Testing…");
  try {
    const body = { host: $("dev-host").value.trim(), port: Number($("dev-port").value), ...credentials() };
    // Editing: the server tests with the stored credentials when none are typed in.
    if (editing) body.device_id = editing.id;
    tested = await api("/api/devices/test", { method: "POST", body });
    testedFor = target();
    setText($("device-message"), "");
  } catch (err) {
    tested = null;
    setText($("device-message"), errorText(err));
    result.hidden = true;
    return;
  }
  result.hidden = false;
  setText($("test-reachable"), tested.reachable ? "yes" : "no");
  setText($("test-hostname"), tested.hostname || DASH);
  setText($("test-model"), tested.model || DASH);
  setText($("test-version"), tested.sw_version || DASH);
  setText($("test-fingerprint"), tested.fingerprint_sha256 || DASH);
  setText($("test-error"), tested.error ? tested.message || tested.error : "");
  $("dev-trust").checked = false;
  $("dev-trust").disabled = !tested.fingerprint_sha256;
  if (Array.isArray(tested.interfaces) && tested.interfaces.length) {
    interfaceChecklist(tested.interfaces.map((i) => (typeof i === "string" ? i : i.name)), chosenInterfaces());
    uplinkChecklist(tested.interfaces.map((i) => (typeof i === "string" ? { name: i, zone: null } : i)), chosenUplinks());
  }
}

async function save(event) {
  event.preventDefault();
  const message = $("device-message");
  const body = {
    name: $("dev-name").value.trim(),
    host: $("dev-host").value.trim(),
    port: Number($("dev-port").value),
    enabled: $("dev-enabled").checked,
    interfaces: chosenInterfaces(),
    uplinks: chosenUplinks(),
    ...credentials(),
  };
  const needsTrust = !editing || target() !== testedFor || (tested && $("dev-trust").checked);
  if (needsTrust) {
    if (!tested || testedFor !== target() || !tested.fingerprint_sha256) {
      setText(message, "Test the connection first to see the certificate fingerprint.");
      return;
    }
    if (!$("dev-trust").checked) {
      setText(message, "Confirm the certificate fingerprint first.");
      return;
    }
    body.tls = { mode: "pin", fingerprint_sha256: tested.fingerprint_sha256 };
  } else if (acceptedPin) {
    body.tls = { mode: "pin", fingerprint_sha256: acceptedPin };
  }
  if (!editing && !body.api_key && !(body.username && body.password)) {
    setText(message, "Enter an API key, or a username and password.");
    return;
  }
  try {
    if (editing) await api(`/api/devices/${encodeURIComponent(editing.id)}`, { method: "PUT", body });
    else await api("/api/devices", { method: "POST", body });
    dialog.close();
    await refreshList();
  } catch (err) {
    setText(message, errorText(err));
  }
}

for (const radio of form.querySelectorAll("input[name=auth]")) radio.addEventListener("change", showAuthFields);
$("add-device").addEventListener("click", () => openDialog(null));
$("dev-test").addEventListener("click", () => testConnection());
$("dev-cancel").addEventListener("click", () => dialog.close());
dialog.addEventListener("close", stopZonePoll);
form.addEventListener("submit", save);

poll(refreshList, Math.max(refreshSeconds(), 15));
