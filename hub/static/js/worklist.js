// The specialist's worklist: refreshed on every case event, claim from the pool.
import { api, onLive, refresh, showError } from "./common.js";

const box = document.getElementById("worklist");
let timer = null;
onLive(() => {
  clearTimeout(timer);
  timer = setTimeout(() => refresh(box, box.dataset.src), 150);  // a burst of events: one fetch
});

box.addEventListener("click", async (ev) => {
  const btn = ev.target.closest("button[data-claim]");
  if (!btn) return;
  btn.disabled = true;
  try {
    const c = await api(`/api/v1/cases/${btn.dataset.claim}/claim`, { method: "POST" });
    window.location.href = `/cases/${c.id}`;
  } catch (err) {
    btn.disabled = false;
    showError(err);
  }
});
// Also now and then without an event: a missed event never leaves the page stale for long.
setInterval(() => refresh(box, box.dataset.src), 60000);
