"""A morning at a hub, through the REST API only: 10 clinic doctors, 3 orthopaedic specialists,
40 cases of mixed priority, a specialist going off duty, one SLA breach; every outcome checked."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from hub.realtime.jobs import workflow_tick
from tests.integration.hub.conftest import ADVICE, HubHarness

TICK = timedelta(minutes=5)
RANK = {"emergency": 0, "urgent": 1, "routine": 2}
DOCTORS = {f"clinic{n}": ("PHC-1" if n in (1, 2, 3, 6, 7, 8) else "PHC-2") for n in range(1, 11)}


class Morning:
    def __init__(self, hub: HubHarness) -> None:
        self.hub = hub
        self.admin = hub.login("admin")
        self.sup = hub.login("sup1")
        self.raised: list[dict[str, Any]] = []
        self.paused = False
        self.off_duty: set[str] = set()

    def api(self, method: str, path: str, who: dict[str, str], body: Any = None) -> Any:
        r = self.hub.client.open(f"/api/v1{path}", method=method, json=body, headers=who)
        assert r.status_code < 300, (path, r.status_code, r.json)
        return r.json

    def staff_up(self) -> None:
        for name in ("ortho2", "ortho3"):
            self.api(
                "POST",
                "/users",
                self.admin,
                {
                    "username": name,
                    "password": "a long passphrase",
                    "role": "specialist",
                    "specialties": ["ortho"],
                    "registration_number": f"REG-{name}",
                    "max_active_cases": 4,
                },
            )
        ortho1 = [
            s
            for s in self.api("GET", "/specialists?specialty=ortho", self.admin)
            if s["username"] == "ortho1"
        ]
        self.api("PATCH", f"/specialists/{ortho1[0]['id']}", self.admin, {"max_active_cases": 4})
        presence = self.hub.app.extensions["teleconsult.realtime"].presence
        for s in self.api("GET", "/specialists?specialty=ortho", self.admin):
            presence.connected(f"user:{s['id']}")  # their worklists are open
        for n in range(6, 11):
            self.api(
                "POST",
                "/users",
                self.admin,
                {
                    "username": f"clinic{n}",
                    "password": "a long passphrase",
                    "role": "spoke_doctor",
                    "spoke": DOCTORS[f"clinic{n}"],
                },
            )
        self.logins = {name: self.hub.login(name) for name in ("ortho1", "ortho2", "ortho3")}

    def raise_case(self, n: int, priority: str) -> None:
        doctor = f"clinic{n % 10 + 1}"
        body = {
            "patient": {
                "pseudonym": f"PT-{n:04d}",
                "age": 20 + n,
                "sex": "female" if n % 2 else "male",
            },
            "complaint": f"Injury {n}",
            "question": "Fracture?",
            "specialty": "ortho",
            "priority": priority,
            "raised_by": doctor,
        }
        spoke = self.hub.spoke(DOCTORS[doctor])
        r = self.hub.client.post(
            "/api/v1/cases", json=body, headers={**spoke, "Idempotency-Key": f"am-{n}"}
        )
        assert r.status_code == 201, r.json
        self.raised.append({**r.get_json(), "doctor": doctor})

    def work(self) -> None:
        """Each on-duty specialist advises the case they have reviewed for 10 minutes, then
        claims the next one: their own queue first, then the pool, always from the top."""
        if self.paused:
            return
        for name, who in self.logins.items():
            if name in self.off_duty:
                continue
            reviewing = self.api("GET", "/cases?assigned_to=me&status=in_review", who)["items"]
            for case in reviewing:
                if (
                    _minutes(self.hub.clock.now().isoformat()) - _minutes(case["first_response_at"])
                    < 10
                ):
                    break
                self.api("POST", f"/cases/{case['id']}/advice", who, ADVICE)
            else:
                self.claim_next(who)

    def claim_next(self, who: dict[str, str]) -> None:
        mine = self.api(
            "GET", "/cases?assigned_to=me&status=assigned&order=queue&per_page=200", who
        )["items"]
        pool = self.api(
            "GET", "/cases?assigned_to=none&status=queued&order=queue&per_page=200", who
        )["items"]
        waiting = mine or pool
        if waiting:
            assert [c["queue_position"] for c in waiting] == list(range(1, len(waiting) + 1))
            self.api("POST", f"/cases/{waiting[0]['id']}/claim", who)

    def check_queues(self) -> None:
        """Every open case is with exactly one specialist or in the pool, in a consistent place."""
        items = self.api("GET", "/cases?per_page=200", self.sup)["items"]
        queues: dict[Any, list[dict[str, Any]]] = {}
        for c in items:
            if c["status"] == "assigned":
                assert c["assigned_to"] is not None
                queues.setdefault(c["assigned_to"]["username"], []).append(c)
            elif c["status"] == "queued":
                assert c["assigned_to"] is None
                queues.setdefault("pool", []).append(c)
            else:
                assert c["queue_position"] is None
        for waiting in queues.values():
            waiting.sort(key=lambda c: c["queue_position"])
            assert [c["queue_position"] for c in waiting] == list(range(1, len(waiting) + 1))
            keys = [(RANK[c["priority"]], c["submitted_at"], c["id"]) for c in waiting]
            assert keys == sorted(keys) and all(c["eta"] for c in waiting)

    def tick(self) -> None:
        self.work()
        self.hub.clock.advance(minutes=5)
        with self.hub.app.app_context():
            workflow_tick(self.hub.app)  # the production tick
        self.check_queues()


def _priority(n: int) -> str:
    return "emergency" if n % 8 == 3 else "urgent" if n % 3 == 0 else "routine"


def test_a_morning_at_the_hub(hub: HubHarness) -> None:
    m = Morning(hub)
    m.staff_up()
    spoke_socket = hub.socket(hub.spoke_tokens["PHC-1"])
    groups = m.api("GET", "/supervision?specialty=ortho", m.sup)[0]
    assert (
        sorted(len(g["supervisees"]) for g in groups["groups"]) == [3, 3, 4]
        and groups["shortfall"] == 0
    )
    supervisor = {
        u["username"]: g["specialist"]["username"]
        for g in groups["groups"]
        for u in g["supervisees"]
    }

    n = 0
    for tick in range(36):  # 09:00 .. 12:00
        now = hub.clock.now()
        if tick == 12:  # 10:00: ortho3 finishes what is under review and goes off duty
            for case in m.api("GET", "/cases?assigned_to=me&status=in_review", m.logins["ortho3"])[
                "items"
            ]:
                m.api("POST", f"/cases/{case['id']}/advice", m.logins["ortho3"], ADVICE)
            held = m.api("GET", "/cases?assigned_to=ortho3&status=assigned", m.sup)["items"]
            me = m.api("GET", "/me", m.logins["ortho3"])
            m.api("PATCH", f"/specialists/{me['id']}", m.logins["ortho3"], {"on_duty": False})
            m.off_duty.add("ortho3")
            rerouted_ids = {c["id"] for c in held}
        m.paused = tick in (18, 19, 20, 21)  # 10:30-10:50: everyone at the mortality meeting
        arrivals = 2 if tick < 10 else 1 if tick < 30 else 0
        for _ in range(arrivals):
            priority = _priority(n)
            if 15 <= tick <= 21:  # around the meeting only the one planned emergency comes in
                priority = (
                    "emergency" if tick == 18 else "urgent" if priority == "emergency" else priority
                )
            m.raise_case(n, priority)
            n += 1
        assert now == hub.clock.now()
        m.tick()
    while (
        m.api("GET", "/cases?status=in_review", m.sup)["total"]
        or m.api("GET", "/cases?status=assigned", m.sup)["total"]
    ):
        m.tick()

    cases = {c["id"]: c for c in m.api("GET", "/cases?per_page=200", m.sup)["items"]}
    assert len(m.raised) == len(cases) == 40
    assert sorted(c["token"] for c in m.raised) == [f"ORTHO-{k:04d}" for k in range(1, 41)]
    assert {c["status"] for c in cases.values()} == {"advised"}

    # Routing: the raising doctor's supervisor when on duty with room, and the reason recorded.
    for raised in m.raised:
        history = m.api("GET", f"/cases/{raised['id']}/history", m.sup)
        route = history[1]
        assert route["action"] == "route" and route["reason"]
        if (
            route["assigned_to"]
            and route["assigned_to"]["username"] == supervisor[raised["doctor"]]
        ):
            assert "supervisor is on duty" in route["reason"]
        elif (
            supervisor[raised["doctor"]] == "ortho3"
            and raised["submitted_at"] >= "2026-01-05T10:00"
        ):
            assert "supervisor off duty" in route["reason"]
        if raised["id"] in rerouted_ids:
            assert any(
                h["action"] == "reroute" and "ortho3 went off duty" in h["reason"] for h in history
            )
        assert not any(
            h["assigned_to"]
            and h["assigned_to"]["username"] == "ortho3"
            and h["at"] > "2026-01-05T10:00"
            and h["action"] != "advise"
            for h in history
        )
    assert rerouted_ids  # ortho3 had cases waiting when leaving
    to_supervisor = sum(
        "supervisor is on duty" in m.api("GET", f"/cases/{c['id']}/history", m.sup)[1]["reason"]
        for c in m.raised
    )
    assert to_supervisor >= 20

    # SLA: exactly the 10:30 emergency breached (everyone was at the meeting), escalated.
    summary = m.api("GET", "/dashboard/summary", m.sup)
    assert summary["sla_breaches"] == 1
    breached = [c for c in cases.values() if c["sla_breached"]]
    assert len(breached) == 1 and breached[0]["priority"] == "emergency"
    assert breached[0]["submitted_at"].startswith("2026-01-05T10:30")
    for c in cases.values():
        limit = {"emergency": 15, "urgent": 60, "routine": 24 * 60}[c["priority"]]
        waited = _minutes(c["first_response_at"]) - _minutes(c["submitted_at"])
        assert (waited >= limit) == (c is breached[0]), (c["token"], c["priority"], waited)

    # The dashboard tells the morning as it was.
    assert summary["ratio"] == 4 and summary["by_status"]["advised"] == 40
    assert summary["shortfall"]["ortho"] == 0 and summary["shortfall"]["radio"] == 2
    spokes = {s["code"]: s["cases_today"] for s in summary["spokes"]}
    assert spokes == dict(Counter(DOCTORS[c["doctor"]] for c in m.raised))
    specialists = {s["username"]: s for s in summary["specialists"] if "ortho" in s["specialties"]}
    assert sorted(s["supervisees"] for s in specialists.values()) == [3, 3, 4]
    assert specialists["ortho3"]["on_duty"] is False and all(
        s["active_cases"] == 0 for s in specialists.values()
    )
    assert (
        summary["waits"]["p50_s"] is not None
        and summary["waits"]["p90_s"] >= summary["waits"]["p50_s"]
    )

    # The clinic heard about places in the queue, and closes its cases.
    names = Counter(e["name"] for e in spoke_socket.get_received())
    assert names["queue.position"] > 0 and names["advice.issued"] == spokes["PHC-1"]
    for c in m.raised:
        m.api("POST", f"/cases/{c['id']}/close", hub.spoke(DOCTORS[c["doctor"]]))
    assert m.api("GET", "/dashboard/summary", m.sup)["by_status"]["closed"] == 40


def _minutes(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp() / 60
