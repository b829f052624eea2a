// Login page: POST /api/login as JSON, then go to the forced password change or the target.
import { api, ApiError, setText } from "./common.js";

const form = document.getElementById("login-form");
const message = document.getElementById("login-message");

function safeNext(target) {
  // Mirrors web_pages.safe_next: only a local path, never another origin.
  if (!target || !target.startsWith("/") || target.startsWith("//") || target.includes("\\")) return "/";
  return target;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  setText(message, "");
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const body = {
      username: document.getElementById("username").value,
      password: document.getElementById("password").value,
    };
    const answer = await api("/api/login", { method: "POST", body, redirectOnAuth: false });
    location.assign(answer && answer.must_change_password ? "/change-password" : safeNext(form.dataset.next));
  } catch (err) {
    if (err instanceof ApiError && err.status === 429) setText(message, "Too many failed attempts. Wait a few minutes.");
    else if (err instanceof ApiError && err.status === 401) setText(message, "Wrong username or password.");
    else setText(message, err instanceof ApiError ? err.message : "Cannot reach PANfm.");
    button.disabled = false;
  }
});

// The form is ours now: a submit can no longer fall through to a native request.
form.querySelector("button[type=submit]").disabled = false;
