// The hub's alerts: the shared module (title count, tone, notification) and the breach rule.
import { raiseAlert } from "/assets/alerts.js";

export { raiseAlert };

// A case past its SLA without a first response (DESIGN.md, "A breach is loud"): alert once per
// case on the pages of those it is escalated to. ``mine(msg)`` says whether this page's user is.
const breached = new Set();
export function alertBreach(msg, title, mine = () => true) {
  const c = msg.case;
  if (msg.type !== "sla.breached" || !c || breached.has(c.id) || !mine(msg)) return;
  breached.add(c.id);
  raiseAlert({
    title: `${title} ${c.token || ""}`.trim(),
    body: `${c.priority || ""} · ${c.specialty || ""} · ${c.spoke || ""} · ${c.complaint || ""}`.slice(0, 200),
    url: `/cases/${c.id}`,
    tag: `breach-${c.id}`,
  });
}
