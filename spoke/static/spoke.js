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
  // The server renders the banner (in the doctor's language); only swap it when it changed.
  const box = document.getElementById("banner");
  if (box && typeof state.banner === "string" && box.innerHTML.trim() !== state.banner.trim()) {
    box.innerHTML = state.banner;
  }
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
