// The clinic's pages: poll the spoke (a few bytes) and swap in what changed; keep a draft of
// the case form; print the e-prescription. No third-party code, nothing inline.
import { raiseAlert, setBaseTitle } from "/assets/alerts.js";

const body = document.body;
const livePart = document.getElementById("live-part");
let version = body.dataset.version || null;

async function poll() {
  if (!body.dataset.live) return;
  try {
    const r = await fetch(body.dataset.live, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!r.ok) return;
    const state = await r.json();
    if (version !== null && state.version !== version) {
      if (pressing) return;  // never pull a button from under a click: the next poll swaps
      await swap();
    }
    version = state.version;
    banner(state);
    alertOf(state.alert);
  } catch { /* the spoke itself restarting: try again */ }
}

// A press on the live part (mouse, touch or pen) holds the swap until the click is done.
let pressing = false;
livePart?.addEventListener("pointerdown", () => { pressing = true; });
window.addEventListener("pointerup", () => { setTimeout(() => { pressing = false; }, 300); });

async function swap() {
  if (!livePart) return;
  const r = await fetch(livePart.dataset.src, { credentials: "same-origin" });
  if (!r.ok) return;
  const html = await r.text();
  // What the doctor is typing survives the swap (same field of the same form), and so does
  // focus: read and written back in one go, so no keystroke falls in between.
  const typed = new Map();
  for (const f of livePart.querySelectorAll("textarea, input:not([type=hidden])")) {
    if (f.value) typed.set(fieldKey(f), f.value);
  }
  const active = document.activeElement && livePart.contains(document.activeElement) ? fieldKey(document.activeElement) : null;
  const caret = active ? [document.activeElement.selectionStart, document.activeElement.selectionEnd] : null;
  livePart.innerHTML = html;
  for (const f of livePart.querySelectorAll("textarea, input:not([type=hidden])")) {
    const key = fieldKey(f);
    if (typed.has(key)) f.value = typed.get(key);
    if (key === active) { f.focus(); try { f.setSelectionRange(...caret); } catch { /* not text */ } }
  }
  const heading = document.getElementById("case-heading");
  if (heading && heading.dataset.title) setBaseTitle(`${heading.dataset.title} · ${siteTitle}`);
}

function fieldKey(f) {
  // The answer and a plain message are the same words to the doctor: one key for the text.
  const form = f.form ? f.form.getAttribute("action") : "";
  return `${form}|${f.name}`;
}

function banner(state) {
  // The server renders the banner (in the doctor's language); only swap it when it changed.
  const box = document.getElementById("banner");
  if (box && typeof state.banner === "string" && box.innerHTML.trim() !== state.banner.trim()) {
    box.innerHTML = state.banner;
  }
}

// Alerts: a new question, advice, referral or SLA warning at this clinic, noticed while the
// doctor looks elsewhere (the shared alerts module). The newest seen is remembered in this
// browser, so nothing old alerts on a first visit.
const SEEN = "teleconsult.alert.seen";
const siteTitle = document.title.split(" · ").pop();

function alertOf(alert) {
  const stored = localStorage.getItem(SEEN);
  const latest = alert && typeof alert.id === "number" ? alert.id : 0;
  const seen = Number(stored || "0");
  localStorage.setItem(SEEN, String(Math.max(seen, latest)));
  if (stored === null || latest <= seen) return;
  raiseAlert({ title: alert.title, body: alert.body, url: alert.url, tag: `teleconsult-${alert.id}` });
}

if (body.dataset.live) { poll(); setInterval(poll, 2000); }

document.addEventListener("click", (ev) => {
  if (ev.target.closest("[data-print]")) window.print();
  const jump = ev.target.closest("[data-focus]");
  if (jump) {
    const field = document.getElementById(jump.dataset.focus);
    if (field) { ev.preventDefault(); field.scrollIntoView({ block: "center" }); field.focus(); }
  }
});
document.addEventListener("submit", (ev) => {
  const question = ev.target.dataset && ev.target.dataset.confirm;
  if (question && !window.confirm(question)) ev.preventDefault();
});

// Draft of the case form: kept in this browser until the case is raised.
const form = document.querySelector("form.case-form");
if (form) {
  const KEY = "teleconsult.draft";
  const hasError = document.querySelector(".error");
  const saved = JSON.parse(localStorage.getItem(KEY) || "null");
  if (saved && !hasError) {
    for (const [name, value] of Object.entries(saved)) {
      const field = form.elements[name];
      if (field && name !== "csrf_token" && !field.value) field.value = value;
    }
    const note = document.getElementById("draft-note");
    if (note) note.hidden = false;
  }
  form.addEventListener("input", () => {
    const data = Object.fromEntries(new FormData(form));
    delete data.csrf_token;
    localStorage.setItem(KEY, JSON.stringify(data));
  });
  form.addEventListener("submit", () => localStorage.removeItem(KEY));
  document.getElementById("draft-clear")?.addEventListener("click", () => { localStorage.removeItem(KEY); form.reset(); });
}
