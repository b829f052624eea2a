// API tokens page: create one (shown once), list them with last use, revoke.
import { api, ApiError, el, clear, fmtTime, showError, hideError, DASH } from "./common.js";

const ROLES = ["viewer", "operator", "admin"];
const myRole = document.body.dataset.role || "viewer";
const message = document.getElementById("tokens-message");

const roleSelect = document.getElementById("token-role");
for (const r of ROLES.slice(0, ROLES.indexOf(myRole) + 1)) roleSelect.append(el("option", { value: r, text: r }));

function say(text, bad = false) {
  message.textContent = text;
  message.classList.toggle("error", bad);
}

async function load() {
  try {
    const data = await api("/api/tokens");
    const body = document.querySelector("#tokens tbody");
    clear(body);
    for (const t of data.tokens) {
      const revoke = el("button", { type: "button", class: "danger", text: "Revoke", onclick: async () => {
        if (!confirm(`Revoke the token ${t.name}? Whatever uses it stops working.`)) return;
        try {
          await api(`/api/tokens/${encodeURIComponent(t.id)}`, { method: "DELETE" });
          say(`token ${t.name} revoked`);
        } catch (err) {
          say(err.message, true);
        }
        await load();
      } });
      body.append(el("tr", { dataset: { token: t.id } },
        el("td", { text: t.name }), el("td", { text: t.username }), el("td", { text: t.role }),
        el("td", { text: fmtTime(t.created_at) }),
        el("td", { text: t.expires_at ? fmtTime(t.expires_at) + (t.expired ? " (expired)" : "") : "never" }),
        el("td", { text: t.last_used ? fmtTime(t.last_used) : DASH }),
        el("td", { class: "actions" }, revoke)));
    }
    hideError();
  } catch (err) {
    showError(err);
  }
}

document.getElementById("token-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const expires = document.getElementById("token-expires").value;
  const body = { name: document.getElementById("token-name").value.trim(), role: roleSelect.value };
  if (expires) body.expires_at = `${expires}T00:00:00Z`;
  try {
    const created = await api("/api/tokens", { method: "POST", body });
    document.getElementById("token-value").textContent = created.token;
    document.getElementById("token-secret").hidden = false;
    say(`token ${created.name} created`);
    ev.target.reset();
  } catch (err) {
    const fields = err instanceof ApiError && err.body && err.body.fields;
    say(fields ? Object.entries(fields).map(([k, v]) => `${k}: ${v}`).join("; ") : err.message, true);
  }
  await load();
});

load();
