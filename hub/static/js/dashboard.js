// The supervisor's dashboard: redrawn by the server on events (at most every 2 s), reassign.
import { alertBreach } from "./alerts.js";
import { api, onLive, refresh, showError } from "./common.js";

const box = document.getElementById("dashboard");
let timer = null;
onLive((msg) => {
  alertBreach(msg, box.dataset.breachTitle);  // every supervisor is told of every breach
  if (timer) return;
  timer = setTimeout(() => { timer = null; refresh(box, box.dataset.src); }, 1000);
});

box.addEventListener("submit", async (ev) => {
  const form = ev.target.closest("form.reassign");
  if (!form) return;
  ev.preventDefault();
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    await api(`/api/v1/cases/${form.dataset.case}/reassign`, {
      method: "POST", body: { specialist: form.elements.specialist.value, reason: "reassigned on the dashboard" },
    });
    refresh(box, box.dataset.src);
  } catch (err) { showError(err); button.disabled = false; }
});
// Also now and then without an event: a missed event never leaves the page stale for long.
setInterval(() => refresh(box, box.dataset.src), 30000);
