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
