"""The hub's workflow settings as one plain object (ratio, SLA, hours, presence, handling time)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hub.domain.availability import WeeklyHours, parse_hours
from shared.enums import Priority

DEFAULT_RATIO = 4
DEFAULT_SLA_MINUTES: dict[Priority, int] = {
    Priority.EMERGENCY: 15,
    Priority.URGENT: 60,
    Priority.ROUTINE: 24 * 60,
}
# What the clinic is told to do when a case passes its SLA (config ``sla_breach_clinic_text``).
DEFAULT_SLA_BREACH_CLINIC_TEXT = (
    "No specialist has answered in time. Call the hub's on-call doctor now; if the patient is "
    "unstable, follow your emergency protocol and arrange transfer without waiting."
)


@dataclass(frozen=True)
class WorkflowPolicy:
    ratio: int = DEFAULT_RATIO
    sla_minutes: dict[Priority, int] = field(default_factory=lambda: dict(DEFAULT_SLA_MINUTES))
    offline_reroute_s: int = 300
    operating_hours: WeeklyHours = field(default_factory=lambda: parse_hours("24h"))
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    default_handling_s: int = 900
    handling_sample: int = 50
    sla_breach_clinic_text: str = DEFAULT_SLA_BREACH_CLINIC_TEXT

    def sla(self, priority: str) -> timedelta:
        return timedelta(minutes=self.sla_minutes[Priority(priority)])

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> WorkflowPolicy:
        """Read the workflow keys of the hub's settings; absent keys keep their defaults."""
        base = cls()
        get = settings.get
        return cls(
            ratio=int(get("ratio", base.ratio)),
            sla_minutes={
                Priority.EMERGENCY: int(get("sla_emergency_min", 15)),
                Priority.URGENT: int(get("sla_urgent_min", 60)),
                Priority.ROUTINE: int(get("sla_routine_min", 24 * 60)),
            },
            offline_reroute_s=int(get("offline_reroute_s", base.offline_reroute_s)),
            operating_hours=parse_hours(str(get("operating_hours", "24h"))),
            timezone=ZoneInfo(str(get("timezone", "UTC"))),
            default_handling_s=int(get("default_handling_s", base.default_handling_s)),
            sla_breach_clinic_text=str(get("sla_breach_clinic_text", "") or "").strip()
            or base.sla_breach_clinic_text,
        )
