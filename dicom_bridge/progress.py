"""Per case: how many instances the bridge received, the hub confirmed and the hub (or the bridge)
refused. Kept in a small SQLite file in the spool directory, so it survives restarts, and pushed
to the clinic's spoke (``PUT {spoke_url}/api/v1/cases/<uid>/images-progress``).

One row per SOPInstanceUID: an instance sent twice, or re-sent after a crash, is counted once.
A case whose instances have all been settled (at the hub or refused) for a while is forgotten
(``prune``): the spoke keeps the last counts it was given, and the ledger stays small.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from shared.backoff import Backoff
from teleconsult.files import private_sqlite

logger = logging.getLogger(__name__)

RECEIVED, AT_HUB, REJECTED = "received", "at_hub", "rejected"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    sop_uid TEXT PRIMARY KEY,
    accession TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL CHECK (state IN ('received', 'at_hub', 'rejected')),
    settled_at REAL  -- when the hub confirmed or refused it (unix time); NULL while received
);
CREATE INDEX IF NOT EXISTS instances_accession ON instances (accession);
CREATE TABLE IF NOT EXISTS links (accession TEXT PRIMARY KEY, case_uid TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pushed (
    case_uid TEXT PRIMARY KEY, received INTEGER NOT NULL, at_hub INTEGER NOT NULL,
    rejected INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class Counts:
    """What the spoke shows for a case's images."""

    received: int = 0
    at_hub: int = 0
    rejected: int = 0

    def as_json(self) -> dict[str, int]:
        return {"received": self.received, "at_hub": self.at_hub, "rejected": self.rejected}


class Ledger:
    """The durable per-instance state behind the counts (SQLite, WAL, synchronous=FULL)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        private_sqlite(f"sqlite:///{self.path}")
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._add_settled_at()

    def _add_settled_at(self) -> None:
        """Ledgers written before ``settled_at`` existed get it; their settled rows count as
        settled now."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(instances)")}
        if "settled_at" in columns:
            return
        with self._transaction() as db:
            db.execute("ALTER TABLE instances ADD COLUMN settled_at REAL")
            db.execute(
                "UPDATE instances SET settled_at = ? WHERE state != 'received'", (time.time(),)
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The statements inside as one transaction: one flush to disk, not one per row (the
        connection autocommits every statement, and ``executemany`` every row, otherwise)."""
        with self._lock, self._db:
            self._db.execute("BEGIN")
            yield self._db

    def receive(self, items: Iterable[tuple[str, str]]) -> int:
        """Count ``(sop_uid, accession)`` as received; an instance already known keeps its state.
        Returns how many were new."""
        with self._transaction() as db:
            cursor = db.executemany(
                "INSERT OR IGNORE INTO instances (sop_uid, accession, state) VALUES (?, ?, "
                "'received')",
                list(items),
            )
            return max(cursor.rowcount, 0)

    def mark(self, sop_uids: Iterable[str], state: str) -> None:
        """Record what the hub said about instances (``AT_HUB`` or ``REJECTED``)."""
        now = time.time()
        with self._transaction() as db:
            db.executemany(
                "UPDATE instances SET state = ?, settled_at = ? WHERE sop_uid = ?",
                [(state, now, u) for u in sop_uids],
            )

    def prune(self, older_than_s: float, now: float | None = None) -> int:
        """Forget accession numbers whose every instance was settled more than ``older_than_s``
        ago, with their case links and pushed counts; returns how many instances were forgotten."""
        cutoff = (time.time() if now is None else now) - older_than_s
        with self._transaction() as db:
            cursor = db.execute(
                """DELETE FROM instances WHERE accession IN (
                       SELECT accession FROM instances GROUP BY accession
                       HAVING SUM(state = 'received') = 0 AND MAX(settled_at) < ?)""",
                (cutoff,),
            )
            db.execute("DELETE FROM links WHERE accession NOT IN (SELECT accession FROM instances)")
            db.execute("DELETE FROM pushed WHERE case_uid NOT IN (SELECT case_uid FROM links)")
            return max(cursor.rowcount, 0)

    def link(self, accession: str, case_uid: str) -> None:
        """Remember the case an accession number belongs to."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO links (accession, case_uid) VALUES (?, ?)",
                (accession, case_uid),
            )

    def case_of(self, accession: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT case_uid FROM links WHERE accession = ?", (accession,)
            ).fetchone()
        return str(row[0]) if row else None

    def counts(self) -> dict[str, Counts]:
        """Counts of every case that has instances."""
        query = """SELECT l.case_uid, COUNT(*), SUM(i.state = 'at_hub'), SUM(i.state = 'rejected')
                   FROM instances i JOIN links l ON l.accession = i.accession GROUP BY l.case_uid"""
        with self._lock:
            rows = self._db.execute(query).fetchall()
        return {str(uid): Counts(int(n), int(h or 0), int(r or 0)) for uid, n, h, r in rows}

    def unpushed(self) -> dict[str, Counts]:
        """Cases whose counts changed since the spoke last accepted them."""
        with self._lock:
            pushed = {row[0]: Counts(*row[1:]) for row in self._db.execute("SELECT * FROM pushed")}
        return {uid: c for uid, c in self.counts().items() if pushed.get(uid) != c}

    def pushed(self, case_uid: str, counts: Counts) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO pushed VALUES (?, ?, ?, ?)",
                (case_uid, counts.received, counts.at_hub, counts.rejected),
            )


class ProgressReporter:
    """Background thread pushing changed counts to the spoke; retries while the spoke is away."""

    def __init__(
        self,
        ledger: Ledger,
        spoke_url: str,
        token: str,
        timeout_s: float = 5.0,
        retry_s: float = 5.0,
    ) -> None:
        self.ledger = ledger
        self.base = spoke_url.rstrip("/") + "/api/v1/cases/"
        self.token = token
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self.changed = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._session = requests.Session()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="dicom-progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.changed.set()
        if self._thread is not None:
            self._thread.join(self.timeout_s + 5)
        self._session.close()

    def _run(self) -> None:
        backoff = Backoff(self.retry_s, 60.0)
        while not self._stop.is_set():
            self.changed.clear()
            if self.push_once():
                backoff.reset()
                self.changed.wait(60.0)
            else:  # the spoke is away: try again, less and less often
                self.changed.wait(backoff.next())

    def push_once(self) -> bool:
        """Send every changed case; return False if the spoke could not take some of them."""
        ok = True
        for case_uid, counts in self.ledger.unpushed().items():
            if self._stop.is_set():
                return ok
            ok = self._put(case_uid, counts) and ok
        return ok

    def _put(self, case_uid: str, counts: Counts) -> bool:
        headers: dict[str, Any] = {"Authorization": f"Bearer {self.token}"}
        try:
            response = self._session.put(
                f"{self.base}{case_uid}/images-progress",
                json=counts.as_json(),
                headers=headers,
                timeout=self.timeout_s,
            )
        except requests.RequestException as exc:
            logger.info("progress of case %s not pushed: %s", case_uid, type(exc).__name__)
            return False
        if (
            response.status_code == 404
        ):  # not (yet) a case of this clinic's spoke: nothing to show it on
            self.ledger.pushed(case_uid, counts)
            return True
        if response.status_code >= 300:
            logger.warning(
                "spoke refused progress of case %s: HTTP %d", case_uid, response.status_code
            )
            return False
        self.ledger.pushed(case_uid, counts)
        return True
