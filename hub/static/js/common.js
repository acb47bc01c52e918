// Shared by every hub page: CSRF-carrying fetch, the Socket.IO connection with resume, live
// refresh of server-rendered fragments, SLA countdowns, the language chooser.
const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";

export async function api(url, { method = "GET", body } = {}) {
  const opts = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (method !== "GET") {
    opts.headers["X-CSRFToken"] = csrf;
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body ?? {});
  }
  const res = await fetch(url, opts);
  const data = res.headers.get("Content-Type")?.includes("json") ? await res.json() : null;
  if (!res.ok) {
    const err = new Error(data?.error?.message || `${res.status} ${res.statusText}`);
    err.fields = data?.error?.fields;
    throw err;
  }
  return data;
}

// The error of an action, in words: the message the hub gave (in the user's language); the
// fields' own messages go next to the fields (showFieldErrors), never as raw JSON.
export function showError(err, fieldsShown = false, box = document.getElementById("action-error")) {
  let text = err.message;
  if (err.fields && !fieldsShown) text += " " + flatten(err.fields).map(([path, msg]) => `${path.join(" › ")}: ${msg}`).join("; ");
  if (!box) return alert(text);
  box.textContent = text;
  box.hidden = false;
}

function flatten(fields, path = []) {
  if (Array.isArray(fields) && fields.every((m) => typeof m === "string")) return [[path, fields.join(" ")]];
  if (fields && typeof fields === "object") return Object.entries(fields).flatMap(([k, v]) => flatten(v, [...path, k]));
  return [[path, String(fields)]];
}

// Put each field's message right after its input (inputFor maps a field path to the input);
// true when every message found its field.
export function showFieldErrors(fields, inputFor) {
  if (!fields) return false;
  let all = true;
  for (const [path, msg] of flatten(fields)) {
    const input = inputFor(path);
    if (!input) { all = false; continue; }
    input.setAttribute("aria-invalid", "true");
    const note = document.createElement("span");
    note.className = "field-error";
    note.textContent = msg;
    note.id = `err-${Math.random().toString(36).slice(2)}`;
    input.setAttribute("aria-describedby", note.id);
    input.after(note);
  }
  const first = document.querySelector("[aria-invalid=true]");
  first?.focus();
  return all;
}

export function clearFieldErrors(form) {
  for (const note of form.querySelectorAll(".field-error")) note.remove();
  for (const input of form.querySelectorAll("[aria-invalid]")) { input.removeAttribute("aria-invalid"); input.removeAttribute("aria-describedby"); }
  for (const box of [document.getElementById("action-error"), form.querySelector(".form-error")]) if (box) box.hidden = true;
}

// -- live events ---------------------------------------------------------------------------
const EVENTS = ["case.assigned", "case.updated", "queue.position", "message.posted", "advice.issued",
  "image.received", "sla.breached", "specialist.updated", "supervision.changed"];
const listeners = [];
const seen = new Set();
let lastSeq = 0;
let socket = null;

export function onLive(handler) {
  listeners.push(handler);
  connect();
}

function dispatch(msg) {
  if (!msg || typeof msg.seq !== "number" || seen.has(msg.seq)) return;  // idempotent by seq
  seen.add(msg.seq);
  lastSeq = Math.max(lastSeq, msg.seq);
  for (const fn of listeners) fn(msg);
}

function connect() {
  if (socket || typeof window.io !== "function") return;
  const badge = document.getElementById("live");
  const offline = document.getElementById("offline");
  socket = window.io({ transports: ["websocket", "polling"] });
  let connectedOnce = false;
  socket.on("connect", () => {
    badge.hidden = false;
    offline.hidden = true;
    if (connectedOnce && lastSeq > 0) socket.emit("resume", { after_seq: lastSeq });
    // Whatever happened between rendering and (re)connecting: refresh once.
    for (const fn of listeners) fn({ type: "connect", seq: -1 });
    connectedOnce = true;
  });
  socket.on("disconnect", () => { badge.hidden = true; offline.hidden = false; });
  for (const name of EVENTS) socket.on(name, dispatch);
}

// Fetch a server-rendered fragment and swap it in; calls coalesce while one is in flight.
const pending = new Map();
export function refresh(el, url, after) {
  if (!el) return;
  if (pending.has(el)) { pending.set(el, true); return; }
  pending.set(el, false);
  fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
    .then((r) => (r.ok ? r.text() : Promise.reject(new Error(r.statusText))))
    .then((html) => { el.innerHTML = html; tick(); el.dispatchEvent(new CustomEvent("refreshed")); after?.(); })
    .catch(() => {})
    .finally(() => {
      const again = pending.get(el);
      pending.delete(el);
      if (again) refresh(el, url, after);
    });
}

// -- SLA countdowns and waiting times, ticking every second ------------------------------------
function clock(ms) {
  const s = Math.max(0, Math.floor(Math.abs(ms) / 1000));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return (h ? `${h}:${String(m).padStart(2, "0")}` : `${m}`) + `:${String(sec).padStart(2, "0")}`;
}

function tick() {
  const now = Date.now();
  for (const el of document.querySelectorAll("[data-due]")) {
    const left = Date.parse(el.dataset.due) - now;
    el.textContent = left >= 0 ? clock(left) : "−" + clock(left);
    el.classList.toggle("late", left < 0);
    el.classList.toggle("soon", left >= 0 && left < 10 * 60 * 1000);
  }
  for (const el of document.querySelectorAll("[data-since]")) {
    if (el.dataset.since) el.textContent = clock(now - Date.parse(el.dataset.since));
  }
}
setInterval(tick, 1000);
tick();

for (const sel of document.querySelectorAll("select.autosubmit")) {
  sel.addEventListener("change", () => sel.form.submit());
}
