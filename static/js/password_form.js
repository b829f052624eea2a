// The password form shared by the forced change page and the settings page.
import { api, ApiError, setText } from "./common.js";

export function wirePasswordForm({ onDone }) {
  const form = document.getElementById("password-form");
  if (!form) return;
  const message = document.getElementById("password-message");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const oldPassword = document.getElementById("old-password").value;
    const newPassword = document.getElementById("new-password").value;
    if (newPassword !== document.getElementById("new-password-2").value) {
      setText(message, "The two new passwords differ.");
      return;
    }
    if (newPassword.length < 12) {
      setText(message, "The new password needs at least 12 characters.");
      return;
    }
    try {
      await api("/api/change-password", {
        method: "POST",
        body: { old_password: oldPassword, new_password: newPassword },
        redirectOnAuth: false,
      });
      form.reset();
      setText(message, "Password changed.");
      if (onDone) onDone();
    } catch (err) {
      setText(message, err instanceof ApiError ? err.message || "The password was not changed." : "Cannot reach PANfm.");
    }
  });
  // The form is ours now: a submit can no longer fall through to a native request.
  form.querySelector("button[type=submit]").disabled = false;
}
