"""Routing and queue positions through the hub's services and database (SQLite, in process),
with 10,000 cases already waiting in one specialty's pool: what a clinic waits for when it
raises a case, and what reading a case with its live position costs.

    python bench/routing_db.py                 # 10,000 waiting
    python bench/routing_db.py --waiting 2000

Prints a table (median and p90 of several requests); not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from routing import timed  # noqa: E402  (bench/routing.py, beside this file)
from sqlalchemy import select  # noqa: E402

from hub.app import create_app  # noqa: E402
from hub.persistence.models import Case, Specialty, Spoke, User  # noqa: E402
from shared.clock import FrozenClock  # noqa: E402
from tests.support.hub import prepare_hub_db  # noqa: E402

BODY = {
    "patient": {"pseudonym": "P", "age": 30, "sex": "female"},
    "complaint": "Red eye",
    "question": "Conjunctivitis?",
    "specialty": "eye",
    "raised_by": "clinic1",
}


def seed_pool(app, waiting: int) -> None:  # type: ignore[no-untyped-def]
    """``waiting`` routine cases queued for ophthalmology, whose only specialist is off duty."""
    hub = app.extensions["teleconsult"]
    with hub.db.session() as s:
        s.scalars(select(User).where(User.username == "eye1")).one().on_duty = False
        eye = s.scalars(select(Specialty).where(Specialty.code == "eye")).one()
        spoke = s.scalars(select(Spoke).where(Spoke.code == "PHC-1")).one()
        now = hub.clock.now()
        s.add_all(
            Case(
                uid=str(uuid.uuid4()),
                token=f"EYE-{i:05d}",
                accession_number=f"B{i:010d}",
                spoke_id=spoke.id,
                specialty_id=eye.id,
                priority="routine",
                status="queued",
                patient_pseudonym=f"P{i}",
                patient_age=30,
                patient_sex="female",
                complaint="x",
                question="y",
                idempotency_key=f"seed-{i}",
                request_digest="-",
                created_at=now - timedelta(seconds=waiting - i),
                submitted_at=now - timedelta(seconds=waiting - i),
                updated_at=now,
                queue_position=i + 1,
            )
            for i in range(waiting)
        )


def ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[int(len(ordered) * 0.9) - 1]
    return f"{statistics.median(ordered) * 1000:8.1f} ms   p90 {p90 * 1000:8.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--waiting", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/hub.sqlite"
        tokens = prepare_hub_db(url)
        app = create_app(
            test_config={"async_mode": "threading", "data_dir": tmp, "database_url": url},
            clock=FrozenClock(),
        )
        seed_pool(app, args.waiting)
        client = app.test_client()
        spoke = {"Authorization": f"Bearer {tokens['PHC-1']}"}

        def raise_case(priority: str) -> int:
            r = client.post("/api/v1/cases", json={**BODY, "priority": priority}, headers=spoke)
            assert r.status_code == 201, r.json
            return int((r.json or {})["id"])

        last = raise_case("routine")
        rows = [
            (
                f"raise a routine case behind {args.waiting:,} waiting",
                timed(lambda: raise_case("routine"), args.repeat),
            ),
            (
                f"raise an emergency ahead of {args.waiting:,} waiting",
                timed(lambda: raise_case("emergency"), args.repeat),
            ),
            (
                "read a waiting case with its live position",
                timed(lambda: client.get(f"/api/v1/cases/{last}", headers=spoke), args.repeat * 5),
            ),
            (
                "list the pool, 50 per page",
                timed(
                    lambda: client.get("/api/v1/cases?specialty=eye&per_page=50", headers=spoke),
                    args.repeat * 5,
                ),
            ),
        ]
        print(f"{'what (SQLite, in process)':<52} {'median':>11} {'':>18}")
        for what, samples in rows:
            print(f"{what:<52} {ms(samples)}")
        position = client.get(f"/api/v1/cases/{last}", headers=spoke).get_json()["queue_position"]
        print(
            f"(the first routine case raised is at position {position:,} after {args.repeat} "
            "emergencies)"
        )


if __name__ == "__main__":
    main()
