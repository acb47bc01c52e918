"""Routing and queue benchmarks on the services the hub runs, on SQLite and PostgreSQL.

Two parts, each on a freshly migrated database with the demo accounts:
- a pool of N routine cases waiting (ophthalmology, its specialist off duty): raising a case
  behind it and an emergency ahead of it, reading a waiting case with its honest ETA, and one
  production tick (``workflow_tick``: presence, rerouting, pools, ETAs, SLA);
- a stretch of a working day: Poisson arrivals of M cases in one specialty with S specialists,
  each claiming the first case waiting for them and advising it after an exponential handling
  time, the production tick every 10 simulated seconds; every step a real unit of work.

    python bench/routing.py                                  # 10,000 waiting, 2,000 cases
    python bench/routing.py --waiting 500 --cases 100 --db sqlite     # quick

Prints one table; times are per operation (median and p90) unless the row says otherwise.
"""

from __future__ import annotations

import argparse
import heapq
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flask import Flask  # noqa: E402
from sqlalchemy import select  # noqa: E402

from hub.app import create_app  # noqa: E402
from hub.domain.policy import WorkflowPolicy  # noqa: E402
from hub.persistence.models import Case, Specialty, Spoke, User  # noqa: E402
from hub.realtime.jobs import workflow_tick  # noqa: E402
from hub.services.accounts import add_user, place_in_supervision  # noqa: E402
from hub.services.auth import Principal, hash_password  # noqa: E402
from hub.services.case_actions import CaseActions  # noqa: E402
from hub.services.cases import CaseService  # noqa: E402
from shared.clock import FrozenClock  # noqa: E402
from tests.support.databases import fresh_postgres  # noqa: E402
from tests.support.hub import prepare_hub_db  # noqa: E402

PRIORITIES = ["emergency"] * 5 + ["urgent"] * 25 + ["routine"] * 70
BODY = {
    "patient": {"pseudonym": "P", "age": 30, "sex": "female"},
    "complaint": "Red eye",
    "question": "Conjunctivitis?",
    "raised_by": "clinic1",
}
ADVICE = {
    "assessment": "a",
    "recommendations": "r",
    "disposition": "manage_locally",
    "prescriptions": [],
    "investigations": "",
    "follow_up_date": date(2026, 12, 1),
}
Row = tuple[str, str, str]


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[max(0, int(len(ordered) * 0.9) - 1)]
    return f"{statistics.median(ordered) * 1000:.1f} ms (p90 {p90 * 1000:.1f})"


@contextmanager
def hub_on(kind: str) -> Iterator[tuple[Flask, FrozenClock]]:
    with tempfile.TemporaryDirectory() as tmp, _database(kind, tmp) as url:
        prepare_hub_db(url)
        clock = FrozenClock()
        app = create_app(
            test_config={"async_mode": "threading", "data_dir": tmp, "database_url": url},
            clock=clock,
        )
        try:
            yield app, clock
        finally:
            app.extensions["teleconsult"].db.dispose()


@contextmanager
def _database(kind: str, tmp: str) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp}/hub.sqlite"
    else:
        with fresh_postgres() as url:
            yield url


def _services(app: Flask, session: Any) -> dict[str, Any]:
    hub = app.extensions["teleconsult"]
    return {
        "session": session,
        "clock": hub.clock,
        "policy": WorkflowPolicy.from_settings(hub.settings),
    }


def _raise(app: Flask, specialty: str, priority: str, doctor: str = "clinic1") -> int:
    with app.extensions["teleconsult"].db.sessions() as s:
        spoke = s.scalars(select(Spoke).where(Spoke.code == "PHC-1")).one()
        body = {**BODY, "specialty": specialty, "priority": priority, "raised_by": doctor}
        case, _ = CaseService(**_services(app, s)).raise_case(
            Principal(spoke_service=spoke), body, None
        )
        return case.id


def _tick(app: Flask) -> None:
    with app.app_context():
        workflow_tick(app)


def pool_rows(app: Flask, waiting: int, repeat: int) -> list[Row]:
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
    _tick(app)  # positions and ETAs as the hub keeps them
    last = _raise(app, "eye", "routine")

    def read() -> None:
        with hub.db.sessions() as s:
            cases = CaseService(**_services(app, s))
            cases.to_dict(cases.get(Principal(spoke_service=_phc1(s)), last))

    return [
        (
            f"raise a routine case behind {waiting:,} waiting",
            str(repeat),
            ms(timed(lambda: _raise(app, "eye", "routine"), repeat)),
        ),
        (
            f"raise an emergency ahead of {waiting:,} waiting",
            str(repeat),
            ms(timed(lambda: _raise(app, "eye", "emergency"), repeat)),
        ),
        ("read a waiting case with its honest ETA", str(repeat * 5), ms(timed(read, repeat * 5))),
        (
            f"production tick with {waiting:,} waiting",
            str(repeat),
            ms(timed(lambda: _tick(app), repeat)),
        ),
    ]


def _phc1(s: Any) -> Spoke:
    spoke: Spoke = s.scalars(select(Spoke).where(Spoke.code == "PHC-1")).one()
    return spoke


def day_rows(
    app: Flask, clock: FrozenClock, rng: random.Random, cases: int, staff: int, handling_s: float
) -> list[Row]:
    """Arrivals at a rate the specialists can just keep up with, through the real services."""
    hub = app.extensions["teleconsult"]
    with hub.db.session() as s:
        s.add(Specialty(code="bench", name="Bench"))
        s.flush()
        secret = hash_password("bench")
        ids = [
            add_user(
                s, f"bench{i}", "", "specialist", specialties=["bench"], password_hash=secret
            ).id
            for i in range(staff)
        ]
        place_in_supervision(s, WorkflowPolicy.from_settings(hub.settings), clock)
    presence = app.extensions["teleconsult.realtime"].presence
    for user_id in ids:  # their worklists are open
        presence.connected(f"user:{user_id}")
    gap = handling_s / staff * 1.05
    events: list[
        tuple[float, int, int, int]
    ] = []  # (time s, kind 0=arrival 1=done 2=tick, case, who)
    t = 0.0
    for n in range(cases):
        t += rng.expovariate(1 / gap)
        heapq.heappush(events, (t, 0, n, -1))
    heapq.heappush(events, (10.0, 2, -1, -1))
    busy: set[int] = set()
    raised: dict[int, float] = {}
    waits: list[float] = []
    cost: dict[str, list[float]] = {"raise": [], "claim": [], "advise": [], "tick": []}
    now_s = 0.0

    def start_next(who: int) -> None:
        with hub.db.sessions() as s:
            first = s.scalar(
                select(Case.id)
                .where(Case.assigned_to_id == who, Case.status == "assigned")
                .order_by(Case.queue_position)
                .limit(1)
            )
            if first is None:
                busy.discard(who)
                return
            began = time.perf_counter()
            CaseActions(**_services(app, s)).claim(Principal(user=s.get_one(User, who)), first)
            cost["claim"].append(time.perf_counter() - began)
        busy.add(who)
        waits.append(now_s - raised[first])
        heapq.heappush(events, (now_s + rng.expovariate(1 / handling_s), 1, first, who))

    began_all = time.perf_counter()
    done = 0
    horizon = t + 100 * handling_s  # a case stuck for good ends the run, not the machine
    while events and done < cases and now_s < horizon:
        at_s, kind, case_id, who = heapq.heappop(events)
        clock.advance(seconds=at_s - now_s)
        now_s = at_s
        if kind == 0:
            began = time.perf_counter()
            real_id = _raise(app, "bench", rng.choice(PRIORITIES), f"clinic{1 + case_id % 3}")
            cost["raise"].append(time.perf_counter() - began)
            raised[real_id] = now_s
        elif kind == 1:
            with hub.db.sessions() as s:
                began = time.perf_counter()
                CaseService(**_services(app, s)).issue_advice(
                    Principal(user=s.get_one(User, who)), case_id, ADVICE
                )
                cost["advise"].append(time.perf_counter() - began)
            done += 1
            busy.discard(who)
        else:
            began = time.perf_counter()
            _tick(app)
            cost["tick"].append(time.perf_counter() - began)
            heapq.heappush(events, (now_s + 10.0, 2, -1, -1))
        for idle in [i for i in ids if i not in busy]:
            start_next(idle)
    elapsed = time.perf_counter() - began_all
    waits.sort()
    rows: list[Row] = [
        (f"day: {done:,} cases through {staff} specialists", "1", f"{elapsed:.1f} s wall"),
    ]
    rows += [(f"day: {what}", f"{len(v):,}", ms(v)) for what, v in cost.items() if v]
    if waits:
        rows.append(
            (
                "day: wait to review p50 / p90 (simulated)",
                f"{len(waits):,}",
                f"{waits[len(waits) // 2] / 60:.1f} / {waits[int(len(waits) * 0.9)] / 60:.1f} min",
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--waiting", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--cases", type=int, default=2_000)
    parser.add_argument("--specialists", type=int, default=10)
    parser.add_argument("--handling-s", type=float, default=300.0)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    rows: list[Row] = []
    for kind in kinds:
        with hub_on(kind) as (app, _clock):
            rows += [
                (f"{kind}: {w}", n, t) for w, n, t in pool_rows(app, args.waiting, args.repeat)
            ]
        with hub_on(kind) as (app, clock):
            rng = random.Random(args.seed)
            day = day_rows(app, clock, rng, args.cases, args.specialists, args.handling_s)
            rows += [(f"{kind}: {w}", n, t) for w, n, t in day]
    header = ("what (the hub's services, in process)", "n", "time")
    widths = [max(len(r[i]) for r in [*rows, header]) for i in range(3)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
