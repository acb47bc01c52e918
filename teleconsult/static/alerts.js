// Alerts for what must not wait (DESIGN.md, "New work is noticed"), one module for the hub's and
// the clinic's pages (served by both at /assets/alerts.js): a count in the page title until the
// page is looked at, a short tone, and a browser notification once the user allowed them (the
// button with data-alerts-toggle asks). No third-party code, nothing inline.
let unseen = 0;
let baseTitle = document.title;

function showTitle() { document.title = unseen ? `(${unseen}) ${baseTitle}` : baseTitle; }

// A page that renames itself (the clinic's case page once the hub gives the token) says so here.
export function setBaseTitle(title) { baseTitle = title; showTitle(); }

function seen() { if (unseen) { unseen = 0; showTitle(); } }
window.addEventListener("focus", seen);
document.addEventListener("click", seen);
document.addEventListener("keydown", seen);
document.addEventListener("visibilitychange", () => { if (!document.hidden && document.hasFocus()) seen(); });

// Browsers let a page play sound only after the user touched it: the first press or key
// opens one audio context that every later alert reuses (made before then, it stays mute).
let audio = null;
function unlockAudio() {
  if (audio) return;
  try { audio = new (window.AudioContext || window.webkitAudioContext)(); } catch { audio = null; }
}
document.addEventListener("pointerdown", unlockAudio, { once: true });
document.addEventListener("keydown", unlockAudio, { once: true });

function tone() {
  try {
    if (!audio) unlockAudio();
    if (audio.state === "suspended") audio.resume();
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.25, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.8);
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + 0.8);
  } catch { /* no audio: the title and the notification still tell */ }
}

export function raiseAlert({ title, body = "", url = "", tag = "" }) {
  unseen += 1;
  showTitle();
  document.body.dataset.alerts = String(Number(document.body.dataset.alerts || "0") + 1);
  tone();
  if ("Notification" in window && Notification.permission === "granted") {
    const n = new Notification(title, { body, tag: tag || undefined });
    n.onclick = () => { window.focus(); if (url) window.location.href = url; };
  }
}

const toggle = document.querySelector("[data-alerts-toggle]");
if (toggle && "Notification" in window && Notification.permission === "default") {
  toggle.hidden = false;
  toggle.addEventListener("click", async () => {
    await Notification.requestPermission();
    toggle.hidden = Notification.permission === "default";
  });
}
