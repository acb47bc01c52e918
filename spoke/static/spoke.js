// The clinic's pages: poll the spoke (a few bytes) and swap in what changed; keep a draft of
// the case form; print the e-prescription. No third-party code, nothing inline.
const body = document.body;
const livePart = document.getElementById("live-part");
let version = body.dataset.version || null;

async function poll() {
  if (!body.dataset.live) return;
  try {
    const r = await fetch(body.dataset.live, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!r.ok) return;
    const state = await r.json();
    if (version !== null && state.version !== version) await swap();
    version = state.version;
    banner(state);
  } catch { /* the spoke itself restarting: try again */ }
}

async function swap() {
  if (!livePart) return;
  const r = await fetch(livePart.dataset.src, { credentials: "same-origin" });
  if (r.ok) livePart.innerHTML = await r.text();
}

function banner(state) {
  const box = document.getElementById("banner");
  const n = state.pending, cases = `${n} case${n === 1 ? "" : "s"}`;
  let text = "", cls = "";
  if (!state.hub_reachable) {
    cls = "offline";
    text = "The hub cannot be reached right now. " +
      (n ? `${cases} will be sent when the link is back.` : "New cases are kept here and sent when the link is back.");
  } else if (n) { cls = "sending"; text = `Sending ${cases} to the hub…`; }
  const div = box.querySelector(".banner");
  if (!text) { div?.remove(); return; }
  const el = div || Object.assign(document.createElement("div"), { role: "status" });
  el.className = `banner ${cls} no-print`;
  el.textContent = text;
  if (!div) box.append(el);
}

if (body.dataset.live) { poll(); setInterval(poll, 2000); }

document.addEventListener("click", (ev) => { if (ev.target.closest("[data-print]")) window.print(); });

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
