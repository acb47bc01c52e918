"""Run the spoke from its settings (``python -m spoke``, i.e. ``teleconsult spoke``): migrate the
local database, start the outbox and the hub client, serve the pages with waitress."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from types import FrameType

from teleconsult.migrations import upgrade
from teleconsult.runtime import settings_from_argv

log = logging.getLogger("teleconsult.spoke")


def _stop_serving(signum: int, _frame: FrameType | None) -> None:
    # waitress leaves its loop on SystemExit and shuts its task threads down.
    log.info("signal %s: stopping", signum)
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> None:
    settings = settings_from_argv("spoke", argv)
    if not settings.spoke_token:
        log.error(
            "spoke_token is empty: cases will wait in the outbox until it is set "
            "(`teleconsult spoke register` prints it)"
        )

    from waitress import create_server

    from spoke.app import create_app
    from teleconsult.db import default_url
    from teleconsult.files import private_dir

    private_dir(Path(settings.data_dir))
    # The local database belongs to this process alone: bring it to the newest schema here.
    upgrade("spoke", default_url(settings))
    app = create_app(settings)
    services = app.extensions["spoke"]
    server = create_server(app, host=settings.host, port=settings.port, threads=8)
    signal.signal(signal.SIGTERM, _stop_serving)
    signal.signal(signal.SIGINT, _stop_serving)
    try:
        services.start()
        log.info(
            "Teleconsult spoke %s listening on http://%s:%s (hub %s)",
            settings.spoke_code,
            settings.host,
            server.effective_port,
            settings.hub_url,
        )
        server.run()
    finally:
        server.close()
        services.stop()
        services.db.dispose()
        log.info("spoke stopped")
