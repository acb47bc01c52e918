"""The supervisors' dashboard summary (DESIGN.md, ``GET /dashboard/summary``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.domain.lifecycle import OPEN, values
from hub.domain.policy import WorkflowPolicy
from hub.persistence.models import Case, Spoke, SupervisionLink, User
from hub.services.access import require_role
from hub.services.auth import Principal
from hub.services.jobs import HubJobs
from hub.services.routing import Router
from hub.services.supervision import SupervisionService
from shared.clock import Clock
from shared.enums import CaseStatus, Role


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class DashboardService:
    session: Session
    clock: Clock
    policy: WorkflowPolicy

    def summary(self, principal: Principal) -> dict[str, Any]:
        require_role(principal, Role.SUPERVISOR, Role.ADMIN)
        HubJobs(self.session, self.clock, self.policy).check_sla()  # the count is current
        self.session.commit()
        start = self._start_of_day()
        by_status = dict(
            self.session.execute(select(Case.status, func.count()).group_by(Case.status)).all()
        )
        return {
            "ratio": self.policy.ratio,
            "by_status": {s.value: int(by_status.get(s.value, 0)) for s in CaseStatus},
            "waits": self._waits(start),
            "sla_breaches": self._count(Case.sla_breached_at >= start),
            "sla_breaches_open": self._count(
                Case.sla_breached_at.is_not(None), Case.status.in_(values(OPEN))
            ),
            "specialists": self._specialists(),
            "shortfall": SupervisionService(self.session, self.clock, self.policy).shortfall(),
            "spokes": self._spokes(start),
        }

    def _start_of_day(self) -> datetime:
        local = self.clock.now().astimezone(self.policy.timezone)
        return local.replace(hour=0, minute=0, second=0, microsecond=0)

    def _count(self, *where: Any) -> int:
        return int(self.session.scalar(select(func.count(Case.id)).where(*where)) or 0)

    def _waits(self, start: datetime) -> dict[str, float | None]:
        """Time to first response of today's cases; a case still waiting counts its wait so far."""
        now = self.clock.now()
        rows = self.session.execute(
            select(Case.submitted_at, Case.first_response_at, Case.status).where(
                Case.submitted_at >= start
            )
        ).all()
        waits = []
        for submitted, responded, status in rows:
            if submitted is None:
                continue
            if responded is not None:
                waits.append((responded - submitted).total_seconds())
            elif status in values(OPEN):
                waits.append((now - submitted).total_seconds())
        return {"p50_s": percentile(waits, 0.5), "p90_s": percentile(waits, 0.9)}

    def _specialists(self) -> list[dict[str, Any]]:
        router = Router(self.session, self.clock, self.policy)
        users = self.session.scalars(
            select(User)
            .where(User.role == Role.SPECIALIST.value, User.active)
            .order_by(User.username)
        ).all()
        counts = router.active_counts([u.id for u in users])
        supervisees = dict(
            self.session.execute(
                select(
                    SupervisionLink.specialist_id,
                    func.count(func.distinct(SupervisionLink.doctor_id)),
                ).group_by(SupervisionLink.specialist_id)
            ).all()
        )
        return [
            {
                "username": u.username,
                "name": u.name,
                "specialties": [s.code for s in u.specialties],
                "supervisees": int(supervisees.get(u.id, 0)),
                "active_cases": counts.get(u.id, (0, None))[0],
                "on_duty": router.on_duty(u),
                "on_call": u.on_call,
                "online": u.last_seen_at is not None and u.offline_since is None,
            }
            for u in users
        ]

    def _spokes(self, start: datetime) -> list[dict[str, Any]]:
        counts = dict(
            self.session.execute(
                select(Case.spoke_id, func.count(Case.id))
                .where(Case.submitted_at >= start)
                .group_by(Case.spoke_id)
            ).all()
        )
        spokes = self.session.scalars(select(Spoke).order_by(Spoke.code)).all()
        return [{"code": s.code, "cases_today": int(counts.get(s.id, 0))} for s in spokes]
