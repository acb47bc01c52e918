// The specialist's worklist: refreshed on every case event, claim from the pool.
import { alertBreach, raiseAlert } from "./alerts.js";
import { api, onLive, refresh, showError } from "./common.js";

const box = document.getElementById("worklist");
const alerted = new Set();
let timer = null;
const me = Number(box.dataset.userId);
// A breach alerts the case's specialist and the specialty's on-call specialists.
const escalatedToMe = (msg) =>
  msg.case?.assigned_to?.id === me || (msg.on_call || []).includes(me) || msg.escalated_to === me;
onLive((msg) => {
  emergency(msg);
  alertBreach(msg, box.dataset.breachTitle, escalatedToMe);
  clearTimeout(timer);
  timer = setTimeout(() => refresh(box, box.dataset.src), 150);  // a burst of events: one fetch
});

// A new emergency of one of my specialties (first routed now, to me or to the pool): alert once.
function emergency(msg) {
  const c = msg.case;
  if (msg.action !== "route" || !c || c.priority !== "emergency" || alerted.has(c.id)) return;
  alerted.add(c.id);
  raiseAlert({
    title: `${box.dataset.alertTitle} ${c.token || ""}`.trim(),
    body: `${c.spoke || ""} · ${c.complaint || ""}`.slice(0, 200),
    url: `/cases/${c.id}`,
    tag: `emergency-${c.id}`,
  });
}

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
