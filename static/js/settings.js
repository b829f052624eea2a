// Settings: the editable collection, retention and display settings (PUT /api/settings
// merges) and the password form. A setting fixed by the environment is shown read-only.
import { api, ApiError, el, clear, setText, applyTheme, showError, hideError } from "./common.js";
import { wirePasswordForm } from "./password_form.js";

const FIELDS = [
  { name: "refresh_interval", label: "Refresh interval (seconds)", type: "number", min: 5, max: 300 },
  { name: "raw_retention_days", label: "Raw samples kept (days)", type: "number", min: 1, max: 90 },
  { name: "throughput_retention_days", label: "5-minute rollups kept (days)", type: "number", min: 1, max: 3650 },
  { name: "hourly_retention_days", label: "Hourly rollups kept (days)", type: "number", min: 1, max: 3650 },
  { name: "alert_history_retention_days", label: "Resolved alerts kept (days)", type: "number", min: 1, max: 3650 },
  { name: "theme", label: "Colour scheme", type: "select", choices: ["auto", "light", "dark"] },
];

const box = document.getElementById("settings-fields");
const message = document.getElementById("settings-message");
let loaded = {};

// Accept {"settings": {name: value | {value, fixed_by_env}}, "fixed_by_env": [...]} or a flat map.
function normalise(data) {
  const raw = (data && data.settings) || data || {};
  const fixedList = new Set((data && (data.fixed_by_env || data.fixed)) || []);
  const out = {};
  for (const [name, v] of Object.entries(raw)) {
    if (v && typeof v === "object" && "value" in v) {
      out[name] = { value: v.value, fixed: Boolean(v.fixed_by_env || v.fixed || fixedList.has(name)) };
    } else {
      out[name] = { value: v, fixed: fixedList.has(name) };
    }
  }
  return out;
}

function render() {
  clear(box);
  for (const f of FIELDS) {
    const s = loaded[f.name];
    if (!s) continue;
    let input;
    if (f.type === "select") {
      input = el("select", { id: "set-" + f.name, name: f.name },
        f.choices.map((c) => el("option", { value: c, text: c, selected: c === s.value })));
    } else {
      input = el("input", { id: "set-" + f.name, name: f.name, type: "number", min: f.min, max: f.max, step: 1,
        value: s.value, required: true });
    }
    input.disabled = s.fixed;
    box.append(el("label", {}, f.label, input,
      s.fixed ? el("span", { class: "muted small", text: "Fixed by the environment (PANFM_" + f.name.toUpperCase() + ")" }) : null));
  }
}

async function load() {
  loaded = normalise(await api("/api/settings"));
  render();
  hideError();
}

document.getElementById("settings-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const changes = {};
  for (const f of FIELDS) {
    const s = loaded[f.name];
    const input = document.getElementById("set-" + f.name);
    if (!s || s.fixed || !input) continue;
    const value = f.type === "number" ? Number(input.value) : input.value;
    if (value !== s.value) changes[f.name] = value;
  }
  if (!Object.keys(changes).length) {
    setText(message, "Nothing changed.");
    return;
  }
  try {
    await api("/api/settings", { method: "PUT", body: changes });
    if (changes.theme) applyTheme(changes.theme);
    setText(message, "Saved. The clock uses the new values from its next cycle.");
    await load();
  } catch (err) {
    setText(message, err instanceof ApiError ? err.message : "Cannot reach PANfm.");
  }
});

wirePasswordForm({});
load().catch(showError);
