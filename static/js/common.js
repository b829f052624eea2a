// Shared by every page: JSON API calls with the CSRF header, DOM building with textContent
// only (firewall strings are never parsed as HTML), number formatting, polling that pauses
// while the tab is hidden, the theme and the log-out button.

const meta = (name) => document.querySelector(`meta[name="${name}"]`);

export function csrfToken() {
  const m = meta("csrf-token");
  return m ? m.content : "";
}

export function setCsrfToken(token) {
  const m = meta("csrf-token");
  if (m && token) m.content = token;
}

export function refreshSeconds() {
  const n = Number(meta("refresh-interval")?.content);
  return Number.isFinite(n) && n >= 1 ? n : 30;
}

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

// Call the JSON API. A 401 sends the user to the login page, a 403 "must_change_password"
// to the password page (the server enforces both; this only follows its answer).
export async function api(path, { method = "GET", body, redirectOnAuth = true } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD") headers["X-CSRFToken"] = csrfToken();
  const resp = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  if ((resp.headers.get("Content-Type") || "").includes("json")) {
    data = await resp.json().catch(() => null);
  }
  if (!resp.ok) {
    const code = (data && data.error) || String(resp.status);
    if (redirectOnAuth && resp.status === 401) {
      location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
    } else if (redirectOnAuth && resp.status === 403 && code === "must_change_password"
               && location.pathname !== "/change-password") {
      location.assign("/change-password");
    }
    throw new ApiError(resp.status, code, data && data.message, data);
  }
  return data;
}

// Build an element. Text goes through textContent / text nodes, never innerHTML.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function setText(node, value) {
  if (node) node.textContent = value === null || value === undefined ? "—" : String(value);
}

export function clear(node) {
  while (node && node.firstChild) node.removeChild(node.firstChild);
}

export const DASH = "—";

export function fmtNum(value, digits = 1) {
  if (value === null || value === undefined || !Number.isFinite(Number(value))) return DASH;
  return Number(value).toLocaleString(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function fmtInt(value) {
  if (value === null || value === undefined || !Number.isFinite(Number(value))) return DASH;
  return Math.round(Number(value)).toLocaleString();
}

export function fmtPct(value, digits = 0) {
  const s = fmtNum(value, digits);
  return s === DASH ? s : s + " %";
}

export function fmtAge(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) return DASH;
  const s = Math.max(0, Math.round(Number(seconds)));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) return DASH;
  let s = Math.max(0, Math.floor(Number(seconds)));
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60);
  return d > 0 ? `${d} d ${h} h ${m} min` : `${h} h ${m} min`;
}

// The API speaks UTC ISO-8601; people read local time.
export function fmtTime(iso) {
  if (!iso) return DASH;
  const t = Date.parse(iso);
  return Number.isFinite(t) ? new Date(t).toLocaleString() : String(iso);
}

export function stateOf(status) {
  if (!status) return "unknown";
  if (typeof status === "string") return status;
  return status.state || "unknown";
}

// Run fn now and every `seconds`, never twice at once, paused while the tab is hidden.
export function poll(fn, seconds) {
  let timer = null;
  let running = false;
  let ms = Math.max(1, seconds) * 1000;
  const tick = async () => {
    if (document.hidden || running) return;
    running = true;
    try {
      await fn();
    } catch (err) {
      if (!(err instanceof ApiError && (err.status === 401 || err.status === 403))) showError(err);
    } finally {
      running = false;
    }
  };
  const stop = () => { if (timer !== null) clearInterval(timer); timer = null; };
  const start = () => { stop(); timer = setInterval(tick, ms); };
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) stop();
    else { tick(); start(); }
  });
  tick();
  if (!document.hidden) start();
  return { tick, stop, setSeconds(s) { ms = Math.max(1, s) * 1000; if (timer !== null) start(); } };
}

export function showError(err) {
  const banner = document.getElementById("page-error");
  const text = err instanceof ApiError ? err.message : "Cannot reach the PANfm web process.";
  if (banner) {
    banner.textContent = text;
    banner.hidden = false;
  }
  console.warn(err);
}

export function hideError() {
  const banner = document.getElementById("page-error");
  if (banner) banner.hidden = true;
}

export function applyTheme(theme) {
  if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
}

// Colours of the current theme, for canvas drawing (CSS variables from app.css).
export function themeColor(name, fallback) {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

const logout = document.getElementById("logout");
if (logout) {
  logout.addEventListener("click", async () => {
    try {
      await api("/api/logout", { method: "POST", redirectOnAuth: false });
    } catch (err) {
      console.warn(err);
    }
    location.assign("/login");
  });
}
