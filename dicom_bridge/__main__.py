"""``python -m dicom_bridge``: run the bridge from ``config/bridge.toml`` and the environment."""

from __future__ import annotations

import logging
import sys

from config.settings import SettingsError, load_settings
from dicom_bridge.app import run_bridge
from dicom_bridge.scp import BridgeConfigError


def main() -> int:
    """Load the bridge settings, configure logging and run until SIGINT/SIGTERM."""
    try:
        settings = load_settings("bridge")
    except SettingsError as exc:
        print(f"dicom_bridge: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=str(settings.log_level).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if logging.root.level > logging.DEBUG:  # pynetdicom logs every association at INFO
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    try:
        run_bridge(settings)
    except BridgeConfigError as exc:
        logging.getLogger("dicom_bridge").error("%s", exc)
        return 2
    except OSError as exc:
        logging.getLogger("dicom_bridge").error("cannot start the bridge: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
