"""Periodic work of a serving hub process: end connections whose token no longer holds, refresh
presence. Runs as a Socket.IO background task (a green thread under eventlet)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask

log = logging.getLogger(__name__)

Job = Callable[[], object]


def start_periodic_jobs(app: Flask, interval_s: float, extra: list[Job] | None = None) -> None:
    socketio = app.extensions["teleconsult.socketio"]
    namespace = app.extensions["teleconsult.realtime"]
    jobs: list[Job] = [namespace.sweep, namespace.presence.heartbeat, *(extra or [])]

    def loop() -> None:
        while True:
            socketio.sleep(interval_s)
            with app.app_context():
                for job in jobs:
                    try:
                        job()
                    except Exception:  # one failing job must not stop the others or the loop
                        log.exception("periodic job %s failed", getattr(job, "__name__", job))

    socketio.start_background_task(loop)


_TICK_LOCK_KEY = 0x7E1F


def workflow_tick(app: Flask) -> dict[str, object] | None:
    """One round of the hub's periodic workflow (SLA breaches, rerouting from specialists who
    went offline or off duty, pools), with presence from the Socket.IO connections of every hub
    process. With several processes on PostgreSQL, one of them runs a given round."""
    from sqlalchemy import text

    from hub.domain.policy import WorkflowPolicy
    from hub.services.jobs import HubJobs

    hub = app.extensions["teleconsult"]
    online = app.extensions["teleconsult.realtime"].presence.online()
    user_ids = {int(key.split(":", 1)[1]) for key in online if key.startswith("user:")}
    with hub.db.sessions() as session:
        if session.get_bind().dialect.name == "postgresql":
            got = session.execute(
                text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _TICK_LOCK_KEY}
            ).scalar()
            if not got:
                return None
        report = HubJobs(session, hub.clock, WorkflowPolicy.from_settings(hub.settings)).tick(
            user_ids
        )
        return report.as_dict()
