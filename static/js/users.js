// Users page (admins): list users, add one, change role, disable/enable, reset password, delete.
import { api, ApiError, el, clear, fmtTime, showError, hideError } from "./common.js";

const ROLES = ["viewer", "operator", "admin"];
const message = document.getElementById("users-message");

function say(text, bad = false) {
  message.textContent = text;
  message.classList.toggle("error", bad);
}

function problem(err) {
  if (err instanceof ApiError && err.body && err.body.fields) {
    return Object.entries(err.body.fields).map(([k, v]) => `${k}: ${v}`).join("; ");
  }
  return err.message;
}

async function change(user, body, done) {
  try {
    await api(`/api/users/${encodeURIComponent(user.id)}`, { method: "PUT", body });
    say(done);
  } catch (err) {
    say(problem(err), true);
  }
  await load();
}

function row(user) {
  const role = el("select", { "aria-label": `Role of ${user.username}`,
    onchange: (ev) => change(user, { role: ev.target.value }, `${user.username} is now ${ev.target.value}`) },
    ...ROLES.map((r) => el("option", { value: r, text: r, selected: r === user.role })));
  const toggle = el("button", { type: "button", text: user.disabled ? "Enable" : "Disable",
    onclick: () => change(user, { disabled: !user.disabled }, `${user.username} ${user.disabled ? "enabled" : "disabled"}`) });
  const reset = el("button", { type: "button", text: "Reset password", onclick: () => {
    const pw = prompt(`New password for ${user.username} (at least 12 characters; they must change it at the next login)`);
    if (pw) change(user, { password: pw }, `password of ${user.username} reset`);
  } });
  const remove = el("button", { type: "button", class: "danger", text: "Delete", onclick: async () => {
    if (!confirm(`Delete ${user.username}? Their API tokens stop working.`)) return;
    try {
      await api(`/api/users/${encodeURIComponent(user.id)}`, { method: "DELETE" });
      say(`${user.username} deleted`);
    } catch (err) {
      say(problem(err), true);
    }
    await load();
  } });
  return el("tr", { dataset: { user: user.username } },
    el("td", { text: user.username }),
    el("td", {}, role),
    el("td", { text: user.disabled ? "disabled" : "enabled" }),
    el("td", { text: user.must_change_password ? "must change" : "set" }),
    el("td", { text: fmtTime(user.created_at) }),
    el("td", { class: "actions" }, toggle, reset, remove));
}

async function load() {
  try {
    const data = await api("/api/users");
    const body = document.querySelector("#users tbody");
    clear(body);
    for (const user of data.users) body.append(row(user));
    hideError();
  } catch (err) {
    showError(err);
  }
}

document.getElementById("user-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const body = {
    username: document.getElementById("user-name").value.trim(),
    role: document.getElementById("user-role").value,
    password: document.getElementById("user-password").value,
  };
  try {
    const user = await api("/api/users", { method: "POST", body });
    say(`${user.username} added as ${user.role}; they must change the password at the first login`);
    ev.target.reset();
  } catch (err) {
    say(problem(err), true);
  }
  await load();
});

load();
