"""Emergencies first, as an invariant of the services the hub runs (DESIGN.md, "Clinical safety
rules"), on SQLite and PostgreSQL.

Hypothesis plays random sequences of: a clinic raises a case, a specialist's connection drops or
comes back, time passes, the production periodic tick runs (``workflow_tick``, with presence
from the hub's own presence registry), a specialist claims, releases or advises, the hub
restarts. After each step:
- no case was assigned to or started by a specialist while a case of higher priority of the same
  specialty waited in the pool (the specialist being eligible: on duty);
- after a tick, a non-empty pool means nobody of the specialty on duty has room (a specialist
  who came back was given the pool);
- queue positions are 1..n in the one queue order, in every queue.

Each example works in a specialty of its own, so examples share one migrated database.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.app import create_app
from hub.domain.lifecycle import HELD, WAITING
from hub.domain.policy import WorkflowPolicy
from hub.domain.queue import order_key
from hub.persistence.models import Case, CaseHistory, Specialty, Spoke, User
from hub.realtime.jobs import workflow_tick
from hub.services.accounts import add_user, place_in_supervision
from hub.services.auth import Principal, hash_password
from hub.services.case_actions import CaseActions
from hub.services.cases import CaseService
from hub.services.routing import Router
from shared.clock import TickingClock
from shared.enums import CaseStatus, Priority
from shared.errors import TeleconsultError
from tests.integration.hub.conftest import ADVICE, case_body
from tests.support.hub import prepare_hub_db

SPECIALISTS = 2
DOCTORS = ("clinic1", "clinic2", "clinic3")
_names = itertools.count(1)
_PASSWORD_HASH = hash_password("demo")
ADVICE_DATA = {**ADVICE, "follow_up_date": date(2026, 12, 1)}  # as the API's schema loads it


class HubFloor:
    """One hub over one database, restartable; everything through the app's own parts."""

    def __init__(self, database_url: str, data_dir: Path, clock: TickingClock) -> None:
        self.database_url, self.data_dir, self.clock = database_url, data_dir, clock
        self.app = self._start()

    def _start(self) -> Flask:
        app = create_app(
            test_config={
                "async_mode": "threading",
                "data_dir": str(self.data_dir),
                "database_url": self.database_url,
            },
            clock=self.clock,
        )
        return app

    def restart(self) -> None:
        self.app.extensions["teleconsult"].db.dispose()
        self.app = self._start()

    @property
    def policy(self) -> WorkflowPolicy:
        return WorkflowPolicy.from_settings(self.app.extensions["teleconsult"].settings)

    @property
    def presence(self) -> Any:
        return self.app.extensions["teleconsult.realtime"].presence

    def session(self) -> Session:
        session: Session = self.app.extensions["teleconsult"].db.sessions()
        return session

    def services(self, session: Session) -> dict[str, Any]:
        return {"session": session, "clock": self.clock, "policy": self.policy}

    def tick(self) -> None:
        with self.app.app_context():
            workflow_tick(self.app)

    def close(self) -> None:
        self.app.extensions["teleconsult"].db.dispose()


def make_machine(floor: HubFloor) -> type[RuleBasedStateMachine]:
    class EmergenciesFirst(RuleBasedStateMachine):
        cases = Bundle("cases")

        @initialize(limit=st.integers(1, 2))
        def staff_a_new_specialty(self, limit: int) -> None:
            n = next(_names)
            self.code = f"q{n}"
            with floor.session() as s:
                s.add(Specialty(code=self.code, name=f"Queue {n}"))
                s.flush()
                users = [
                    add_user(
                        s,
                        f"{self.code}s{i}",
                        "demo",
                        "specialist",
                        specialties=[self.code],
                        password_hash=_PASSWORD_HASH,
                    )
                    for i in range(SPECIALISTS)
                ]
                for user in users:
                    user.max_active_cases = limit
                place_in_supervision(s, floor.policy, floor.clock)
                s.commit()
                self.specialty_id = s.scalars(
                    select(Specialty.id).where(Specialty.code == self.code)
                ).one()
                self.specialists = [u.id for u in users]
            self.connected: set[int] = set()
            for user_id in self.specialists:  # their pages are open
                floor.presence.connected(f"user:{user_id}")
                self.connected.add(user_id)
            floor.tick()
            self.last_history = self._history_mark()
            self.after_tick = False

        # -- what happens on the floor ---------------------------------------------------
        @rule(
            target=cases,
            priority=st.sampled_from(list(Priority)),
            doctor=st.sampled_from(DOCTORS),
        )
        def raise_case(self, priority: Priority, doctor: str) -> int:
            with floor.session() as s:
                spoke = s.scalars(select(Spoke).where(Spoke.code == "PHC-1")).one()
                body = case_body(specialty=self.code, priority=priority.value, raised_by=doctor)
                case, _ = CaseService(**floor.services(s)).raise_case(
                    Principal(spoke_service=spoke), body, None
                )
                return case.id

        @rule(who=st.integers(0, SPECIALISTS - 1))
        def go_offline(self, who: int) -> None:
            user_id = self.specialists[who]
            if user_id in self.connected:
                floor.presence.disconnected(f"user:{user_id}")
                self.connected.discard(user_id)

        @rule(who=st.integers(0, SPECIALISTS - 1))
        def come_back(self, who: int) -> None:
            user_id = self.specialists[who]
            if user_id not in self.connected:
                floor.presence.connected(f"user:{user_id}")
                self.connected.add(user_id)

        @rule(seconds=st.sampled_from([0, 31, 301]))
        def time_passes(self, seconds: int) -> None:
            """Time passes, and the hub's periodic tick runs (as it does every few seconds)."""
            floor.clock.advance(seconds=seconds)
            floor.tick()
            self.after_tick = True

        @rule()
        def restart(self) -> None:
            """A new hub process: nobody is connected until their page reconnects."""
            floor.restart()
            self.connected.clear()

        @rule(who=st.integers(0, SPECIALISTS - 1), case_id=cases)
        def claim(self, who: int, case_id: int) -> None:
            self._act(who, lambda actions, me: actions.claim(me, case_id))

        @rule(who=st.integers(0, SPECIALISTS - 1), case_id=cases)
        def release(self, who: int, case_id: int) -> None:
            self._act(who, lambda actions, me: actions.release(me, case_id, "theatre"))

        @rule(who=st.integers(0, SPECIALISTS - 1), case_id=cases)
        def advise(self, who: int, case_id: int) -> None:
            with floor.session() as s:
                me = Principal(user=s.get_one(User, self.specialists[who]))
                try:
                    CaseService(**floor.services(s)).issue_advice(me, case_id, ADVICE_DATA)
                except TeleconsultError:  # refused (403/409): nothing changed
                    s.rollback()

        def _act(self, who: int, action: Any) -> None:
            with floor.session() as s:
                me = Principal(user=s.get_one(User, self.specialists[who]))
                try:
                    action(CaseActions(**floor.services(s)), me)
                except TeleconsultError:  # refused (403/409): nothing changed
                    s.rollback()

        # -- what must hold -------------------------------------------------------------------
        def _history_mark(self) -> int:
            with floor.session() as s:
                return int(s.scalar(select(CaseHistory.id).order_by(CaseHistory.id.desc())) or 0)

        @invariant()
        def nothing_jumps_an_emergency(self) -> None:
            if not hasattr(self, "code"):
                return
            with floor.session() as s:
                pool = self._waiting(s, CaseStatus.QUEUED)
                steps = s.execute(
                    select(CaseHistory.action, CaseHistory.assigned_to_id, Case)
                    .join(Case, Case.id == CaseHistory.case_id)
                    .where(
                        CaseHistory.id > self.last_history,
                        Case.specialty_id == self.specialty_id,
                        CaseHistory.to_status.in_(sorted(HELD)),
                        CaseHistory.from_status != CaseStatus.NEEDS_INFO.value,
                    )
                ).all()
                for action, holder, case in steps:
                    if action == "reassign" or holder is None:
                        continue
                    higher = [
                        c for c in pool if Priority(c.priority).rank < Priority(case.priority).rank
                    ]
                    assert not higher, (
                        f"{case.priority} case {case.id} went to specialist {holder} ({action}) "
                        f"while {higher[0].priority} case {higher[0].id} waits in the pool"
                    )
                if self.after_tick and pool:
                    router = Router(s, floor.clock, floor.policy)
                    with_room = [c for c in router.loads(self.specialty_id) if c.has_room]
                    assert not with_room, (
                        f"after a tick {len(pool)} case(s) wait in the pool while specialist "
                        f"{with_room[0].specialist_id} is on duty with room"
                    )
                self._check_positions(s)
            self.last_history = self._history_mark()
            self.after_tick = False

        def _waiting(self, s: Session, status: CaseStatus) -> list[Case]:
            return list(
                s.scalars(
                    select(Case).where(
                        Case.specialty_id == self.specialty_id, Case.status == status.value
                    )
                )
            )

        def _check_positions(self, s: Session) -> None:
            queues: dict[object, list[Case]] = {}
            for case in s.scalars(
                select(Case).where(
                    Case.specialty_id == self.specialty_id,
                    Case.status.in_([w.value for w in WAITING]),
                )
            ):
                queues.setdefault(case.assigned_to_id or "pool", []).append(case)
            for queue, members in queues.items():
                members.sort(key=lambda c: order_key(c.priority, c.submitted_at, c.id))
                got = [c.queue_position for c in members]
                assert got == list(range(1, len(members) + 1)), (
                    f"queue {queue}: positions {got} in queue order"
                )

    return EmergenciesFirst


@pytest.fixture
def floor(tmp_path: Path, database_url: str) -> Iterator[HubFloor]:
    prepare_hub_db(database_url)
    hub_floor = HubFloor(database_url, tmp_path / "hub", TickingClock())
    yield hub_floor
    hub_floor.close()


def test_emergencies_first_whatever_happens(floor: HubFloor) -> None:
    run_state_machine_as_test(
        make_machine(floor),
        settings=settings(
            max_examples=20,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            # Each step is a real unit of work on a real database: shrinking a failure would
            # take minutes. The failing sequence is printed as it was found.
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
        ),
    )
