"""A stock pynetdicom storage SCP with the bridge's durable spool, for bench/dicom_ingest.py.

pynetdicom's own association loop receives each instance (whole, in memory), and its C-STORE
handler puts it into the same ``Spool`` the bridge uses (fsynced before success): the row this
makes shows what the bridge's own loop (dicom_bridge/server.py) gains over the public API.

    python bench/stock_scp.py PORT SPOOL_DIR
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

from pynetdicom import AE, AllStoragePresentationContexts, evt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dicom_bridge.scp import TRANSFER_SYNTAXES  # noqa: E402
from dicom_bridge.spool import Spool  # noqa: E402


def handle_store(event: Any, spool: Spool) -> int:
    """Spool the instance durably, then answer success (0xA700 if the disk fails)."""
    try:
        spool.put(event.encoded_dataset(), str(event.request.AffectedSOPInstanceUID))
    except OSError:
        return 0xA700
    return 0x0000


def main() -> int:
    port, spool_dir = int(sys.argv[1]), Path(sys.argv[2])
    spool = Spool(spool_dir)
    ae = AE(ae_title="STOCKSCP")
    ae.maximum_pdu_size = 0
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(str(context.abstract_syntax), TRANSFER_SYNTAXES)
    server = ae.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, handle_store, [spool])]
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    if server is not None:
        server.shutdown()
    spool.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
