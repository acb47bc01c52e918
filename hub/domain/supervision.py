"""Supervision groups of one specialty under the 1:4 ratio (DESIGN.md).

Every clinic doctor is supervised by at most one specialist per specialty, and no specialist
supervises more than ``ratio`` doctors: this is an invariant no operation may break. A doctor
who cannot be placed waits unsupervised, and only while every specialist is full; the shortfall
is how many more specialists would be needed to place them all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from shared.errors import Conflict, NotFound


@dataclass
class SupervisionGroup:
    ratio: int
    supervisees: dict[int, list[int]] = field(default_factory=dict)  # specialist -> doctors
    unsupervised: list[int] = field(default_factory=list)  # in the order they arrived

    @classmethod
    def build(
        cls, ratio: int, specialists: list[int], links: dict[int, int], doctors: list[int]
    ) -> SupervisionGroup:
        """A group from stored links (doctor -> specialist), repaired to hold the invariant:
        links to unknown specialists or beyond the ratio are dropped, then everyone is placed."""
        if ratio < 1:
            raise ValueError("the ratio must be at least 1")
        group = cls(ratio, {s: [] for s in sorted(set(specialists))})
        placed: set[int] = set()
        for doctor in doctors:
            sid = links.get(doctor)
            if doctor in placed:
                continue
            placed.add(doctor)
            if sid in group.supervisees and len(group.supervisees[sid]) < ratio:
                group.supervisees[sid].append(doctor)
            else:
                group.unsupervised.append(doctor)
        group._fill()
        return group

    # -- reading ----------------------------------------------------------------------------
    def supervisor_of(self, doctor: int) -> int | None:
        for sid, doctors in self.supervisees.items():
            if doctor in doctors:
                return sid
        return None

    def links(self) -> dict[int, int]:
        """doctor -> specialist."""
        return {d: sid for sid, doctors in self.supervisees.items() for d in doctors}

    @property
    def shortfall(self) -> int:
        """How many specialists are missing to supervise every doctor."""
        return math.ceil(len(self.unsupervised) / self.ratio)

    def check(self) -> None:
        """Raise AssertionError if the invariant does not hold (used by tests)."""
        seen = [d for doctors in self.supervisees.values() for d in doctors] + self.unsupervised
        assert len(seen) == len(set(seen)), "a doctor is placed twice"
        assert all(len(d) <= self.ratio for d in self.supervisees.values()), "ratio exceeded"
        if self.unsupervised:
            assert all(len(d) == self.ratio for d in self.supervisees.values()), "room left unused"

    # -- changing ---------------------------------------------------------------------------
    def add_doctor(self, doctor: int) -> int | None:
        """Place a new doctor with the specialist who has the fewest supervisees."""
        if doctor in self.unsupervised or self.supervisor_of(doctor) is not None:
            return self.supervisor_of(doctor)
        sid = self._roomiest()
        if sid is None:
            self.unsupervised.append(doctor)
        else:
            self.supervisees[sid].append(doctor)
        return sid

    def remove_doctor(self, doctor: int) -> None:
        if doctor in self.unsupervised:
            self.unsupervised.remove(doctor)
            return
        sid = self.supervisor_of(doctor)
        if sid is not None:
            self.supervisees[sid].remove(doctor)
            self._fill()

    def add_specialist(self, sid: int) -> None:
        self.supervisees.setdefault(sid, [])
        self._fill()

    def remove_specialist(self, sid: int) -> list[int]:
        """Take a specialist out (removed or deactivated) and rebalance their supervisees;
        returns the doctors who had to move."""
        moving = self.supervisees.pop(sid, [])
        for doctor in moving:
            target = self._roomiest()
            if target is None:
                self.unsupervised.append(doctor)
            else:
                self.supervisees[target].append(doctor)
        return moving

    def reassign(self, doctor: int, sid: int) -> None:
        """A supervisor moves a doctor by hand; refused if it would break the ratio."""
        if sid not in self.supervisees:
            raise NotFound("That specialist supervises nobody in this specialty.")
        current = self.supervisor_of(doctor)
        if current is None and doctor not in self.unsupervised:
            raise NotFound("That doctor is not in this supervision group.")
        if current == sid:
            return
        if len(self.supervisees[sid]) >= self.ratio:
            raise Conflict(
                f"That specialist already supervises {self.ratio} doctors (the ratio).",
                fields={"supervisees": len(self.supervisees[sid])},
            )
        if current is None:
            self.unsupervised.remove(doctor)
        else:
            self.supervisees[current].remove(doctor)
        self.supervisees[sid].append(doctor)
        self._fill()

    def _roomiest(self) -> int | None:
        open_ = [(len(d), sid) for sid, d in self.supervisees.items() if len(d) < self.ratio]
        return min(open_)[1] if open_ else None

    def _fill(self) -> None:
        while self.unsupervised:
            sid = self._roomiest()
            if sid is None:
                return
            self.supervisees[sid].append(self.unsupervised.pop(0))
