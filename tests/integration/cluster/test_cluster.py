"""The deployment of record, as `teleconsult cluster --processes 2` runs it: two hub processes
(eventlet) on PostgreSQL, sharing events through Redis, behind a real nginx with sticky
sessions. Clients go through nginx, or straight to one process when the test must know which
process serves a request."""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
from sqlalchemy import func, select

from deploy.cluster import NGINX_PATHS
from hub.persistence.models import AdviceDelivery, AuditEntry, User
from teleconsult.db import Database
from tests.conftest import need
from tests.support.databases import REDIS_URL, fresh_postgres, postgres_available, redis_available
from tests.support.hub import RunningHub, prepare_hub_db
from tests.support.processes import Process, free_port, running, start, wait_http
from tests.support.realtime import Listener
from tests.support.slice import start_spoke
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow
T = TypeVar("T")

# Bugs this test found in code other work owns (issue 13, item 2: the queue); reported there.
POSITIONS_RACE = (
    "Known bug: stored queue positions are recomputed by each transaction from what it sees; "
    "cases raised and cancelled at once on two processes leave committed positions with gaps "
    "or duplicates until a later change of the queue repairs them."
)
ADVICE = {
    "assessment": "Probable TB.",
    "recommendations": "Sputum CBNAAT.",
    "disposition": "manage_locally",
}


@dataclass
class RunningCluster:
    url: str  # nginx
    hubs: dict[str, str]  # the sticky cookie's value -> that process's own URL
    process: Process
    database_url: str
    spoke_tokens: dict[str, str]
    data_dir: Path

    def login(self, username: str, base: str | None = None) -> dict[str, str]:
        r = requests.post(
            f"{base or self.url}/api/v1/auth/token",
            json={"username": username, "password": ADDED.get(username, "demo")},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        return _bearer(r.json()["access_token"])

    def spoke(self, code: str = "PHC-1") -> dict[str, str]:
        return _bearer(self.spoke_tokens[code])

    def user_id(self, username: str) -> int:
        db = Database(self.database_url)
        try:
            with db.session() as s:
                return int(s.scalar(select(User.id).where(User.username == username)) or 0)
        finally:
            db.dispose()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _consecutive_free_ports(n: int) -> int:
    """The first of ``n`` consecutive free ports (the cluster numbers its processes so)."""
    for _ in range(50):
        first = free_port()
        try:
            for port in range(first, first + n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise AssertionError("no consecutive free ports")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
    need(postgres_available(), "PostgreSQL is not reachable on 127.0.0.1:5432")
    need(redis_available(), "Redis is not reachable on 127.0.0.1:6379")
    need(shutil.which("nginx", path=NGINX_PATHS) is not None, "nginx is not installed")
    tmp = tmp_path_factory.mktemp("cluster")
    port, first_hub = free_port(), _consecutive_free_ports(2)
    with fresh_postgres() as url:
        tokens = prepare_hub_db(url)
        env = {
            "TELECONSULT_HUB_DATABASE_URL": url,
            "TELECONSULT_HUB_MESSAGE_QUEUE": REDIS_URL,
            "TELECONSULT_HUB_SOCKETIO_CHANNEL": f"teleconsult-test-{uuid.uuid4().hex[:8]}",
            "TELECONSULT_HUB_DATA_DIR": str(tmp / "hub"),
            "TELECONSULT_HUB_ASYNC_MODE": "eventlet",
            "TELECONSULT_HUB_HOST": "127.0.0.1",
        }
        args = ["teleconsult", "cluster", "--processes", "2", "--port", str(port)]
        process = start("cluster", [*args, "--hub-port", str(first_hub)], env, tmp)
        hubs = {str(i + 1): f"http://127.0.0.1:{first_hub + i}" for i in range(2)}
        with running(process):
            wait_http(process, f"http://127.0.0.1:{port}/healthz", timeout=90)
            wait_for(lambda: "Press Ctrl-C" in process.output(), 30, what="the cluster's banner")
            yield RunningCluster(
                f"http://127.0.0.1:{port}", hubs, process, url, tokens, tmp / "hub"
            )
            # Ctrl-C stops every process of the cluster.
            assert process.stop(signal.SIGINT) == 0, process.output()
            for base in (*hubs.values(), f"http://127.0.0.1:{port}"):
                with pytest.raises(requests.ConnectionError):
                    requests.get(f"{base}/healthz", timeout=2)


def _raise(
    c: RunningCluster, base: str, specialty: str, priority: str = "routine", n: int = 0
) -> dict[str, Any]:
    body = {
        "patient": {"pseudonym": f"CL-{uuid.uuid4().hex[:6]}", "age": 40 + n % 40, "sex": "male"},
        "complaint": "Cough for three weeks",
        "question": "What next?",
        "specialty": specialty,
        "priority": priority,
        "raised_by": "clinic1",
    }
    r = requests.post(f"{base}/api/v1/cases", json=body, headers=c.spoke(), timeout=20)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _off_duty(c: RunningCluster, *usernames: str) -> None:
    """Nobody of the specialty takes new cases: they wait in its pool."""
    admin = c.login("admin")
    for username in usernames:
        r = requests.patch(
            f"{c.url}/api/v1/specialists/{c.user_id(username)}",
            json={"on_duty": False},
            headers=admin,
            timeout=10,
        )
        assert r.status_code == 200, r.text


# Passwords of the specialists a test adds (the demo accounts' is "demo").
ADDED: dict[str, str] = {}


def _add_specialist(c: RunningCluster, username: str, specialty: str) -> None:
    ADDED[username] = "a long passphrase"  # the password rule: 12 characters at least
    body = {
        "username": username,
        "password": ADDED[username],
        "role": "specialist",
        "specialties": [specialty],
    }
    r = requests.post(f"{c.url}/api/v1/users", json=body, headers=c.login("admin"), timeout=10)
    assert r.status_code == 201, r.text


def test_nginx_keeps_each_client_on_one_process_and_spreads_new_ones(
    cluster: RunningCluster,
) -> None:
    served = set()
    for _ in range(4):  # a client without the cookie goes to the least busy process
        with requests.Session() as browser:
            first = browser.get(f"{cluster.url}/healthz", timeout=5)
            chosen = first.headers["X-Teleconsult-Hub"]
            assert browser.cookies.get("teleconsult_hub") == chosen
            for _ in range(5):
                again = browser.get(f"{cluster.url}/healthz", timeout=5)
                assert again.headers["X-Teleconsult-Hub"] == chosen
            served.add(chosen)
    assert served == {"1", "2"}
    forged = requests.get(
        f"{cluster.url}/healthz", cookies={"teleconsult_hub": "../etc"}, timeout=5
    )
    assert forged.status_code == 200 and forged.headers["X-Teleconsult-Hub"] in {"1", "2"}
    # One secret for all processes: a token signed by one is good at the other.
    token = cluster.login("sup1", cluster.hubs["1"])
    assert requests.get(f"{cluster.hubs['2']}/api/v1/me", headers=token, timeout=10).ok


def test_a_spoke_connected_through_nginx_receives_advice_issued_on_the_other_process(
    cluster: RunningCluster,
) -> None:
    spoke = Listener(cluster.url, cluster.spoke_tokens["PHC-1"])
    try:
        held_by = spoke.client.eio.http.cookies.get("teleconsult_hub")
        assert held_by in cluster.hubs, "nginx named no process for the spoke's connection"
        assert spoke.client.transport() == "websocket"  # upgraded through nginx
        other = cluster.hubs[{"1": "2", "2": "1"}[held_by]]
        case = _raise(cluster, other, "med")
        r = requests.post(
            f"{other}/api/v1/cases/{case['id']}/advice",
            json=ADVICE,
            headers=cluster.login(case["assigned_to"]["username"], other),
            timeout=20,
        )
        assert r.status_code == 201, r.text
        _, event = wait_for(
            lambda: spoke.first("advice.issued"), 15, what="advice from the other process"
        )
        assert event["case_id"] == case["id"] and event["advice"]["assessment"] == "Probable TB."
    finally:
        spoke.close()


def test_a_real_spoke_behind_nginx_gets_advice_from_both_processes(
    cluster: RunningCluster, tmp_path: Path
) -> None:
    """The spoke's connection is on one process or the other; advice is issued on each, so one
    of the two crosses from one process to the other through Redis."""
    hub = RunningHub(
        cluster.url,
        cluster.process,
        cluster.spoke_tokens,
        cluster.database_url,
        cluster.data_dir,
        0,
    )
    process, spoke_url = start_spoke(tmp_path, hub)
    with running(process):
        doctor = requests.post(
            f"{spoke_url}/api/v1/auth/token",
            json={"username": "clinic1", "password": "demo"},
            timeout=20,
        )
        assert doctor.status_code == 200, doctor.text
        at_spoke = _bearer(doctor.json()["access_token"])
        for name, base in sorted(cluster.hubs.items()):
            case = _raise(cluster, base, "ortho")
            r = requests.post(
                f"{base}/api/v1/cases/{case['id']}/advice",
                json={**ADVICE, "assessment": f"Advice from process {name}."},
                headers=cluster.login(case["assigned_to"]["username"], base),
                timeout=20,
            )
            assert r.status_code == 201, r.text

            def stored(uid: str = case["uid"]) -> dict[str, Any] | None:
                local = requests.get(
                    f"{spoke_url}/api/v1/cases/{uid}", headers=at_spoke, timeout=5
                ).json()
                return local if local.get("advice") else None

            seen = wait_for(stored, 20, what=f"advice from process {name} at the spoke")
            assert seen["advice"][0]["assessment"] == f"Advice from process {name}."
        wait_for(lambda: _acknowledged(cluster) >= 2, 20, what="both advice acknowledged")


def _acknowledged(c: RunningCluster) -> int:
    db = Database(c.database_url)
    try:
        with db.session() as s:
            return int(s.scalar(select(func.count()).select_from(AdviceDelivery)) or 0)
    finally:
        db.dispose()


def _at_once(*calls: Callable[[], T]) -> list[T]:
    """Run the calls on threads released together."""
    barrier = threading.Barrier(len(calls))

    def go(call: Callable[[], T]) -> T:
        barrier.wait(10)
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(go, calls))


def test_two_processes_racing_to_claim_one_case_exactly_one_wins(
    cluster: RunningCluster,
) -> None:
    _add_specialist(cluster, "ent2", "ent")
    _off_duty(cluster, "ent1", "ent2")
    one, two = cluster.hubs["1"], cluster.hubs["2"]
    claimants = [
        ("ent1", one, cluster.login("ent1", one)),
        ("ent2", two, cluster.login("ent2", two)),
    ]
    for _ in range(3):
        case = _raise(cluster, one, "ent")
        assert case["status"] == "queued", case

        answers = _at_once(*(_claim(base, case["id"], headers) for _, base, headers in claimants))
        codes = sorted(a.status_code for a in answers)
        assert codes == [200, 409], [a.text for a in answers]
        winner = next(
            who for (who, _, _), a in zip(claimants, answers, strict=True) if a.status_code == 200
        )
        seen = requests.get(f"{cluster.url}/api/v1/cases/{case['id']}", headers=cluster.spoke())
        assert seen.json()["status"] == "in_review"
        assert seen.json()["assigned_to"]["username"] == winner


def _claim(base: str, case_id: int, headers: dict[str, str]) -> Callable[[], requests.Response]:
    url = f"{base}/api/v1/cases/{case_id}/claim"
    return lambda: requests.post(url, json={}, headers=headers, timeout=20)


def _pool_positions(c: RunningCluster, headers: dict[str, str]) -> list[int]:
    r = requests.get(
        f"{c.url}/api/v1/cases",
        params={"specialty": "eye", "status": "queued", "per_page": "200"},
        headers=headers,
        timeout=20,
    )
    assert r.status_code == 200, r.text
    return sorted(case["queue_position"] for case in r.json()["items"])


def test_queue_positions_stay_unique_and_gap_free_while_cases_come_and_go_on_two_processes(
    cluster: RunningCluster,
) -> None:
    _off_duty(cluster, "eye1")
    supervisor = cluster.login("sup1")
    priorities = ("routine", "urgent", "routine", "emergency")

    def clinic(base: str, offset: int) -> list[int]:
        kept = []
        for n in range(6):
            case = _raise(cluster, base, "eye", priorities[(n + offset) % 4], n)
            if n % 3 == 2:  # some leave again
                r = requests.post(
                    f"{base}/api/v1/cases/{case['id']}/cancel",
                    json={"reason": "patient left"},
                    headers=cluster.spoke(),
                    timeout=20,
                )
                assert r.status_code == 200, r.text
            else:
                kept.append(case["id"])
        return kept

    snapshots: list[list[int]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            snapshots.append(_pool_positions(cluster, supervisor))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        kept = _at_once(
            lambda: clinic(cluster.hubs["1"], 0),
            lambda: clinic(cluster.hubs["2"], 1),
        )
    finally:
        done.set()
        watcher.join(30)
    waiting = sorted(i for ids in kept for i in ids)
    final = {
        i: requests.get(
            f"{cluster.url}/api/v1/cases/{i}", headers=cluster.spoke(), timeout=20
        ).json()["queue_position"]
        for i in waiting
    }
    assert sorted(final.values()) == list(range(1, len(waiting) + 1)), final
    assert snapshots, "the pool was never read during the burst"
    broken = [s for s in snapshots if s != list(range(1, len(s) + 1))]
    if broken:
        pytest.xfail(f"{POSITIONS_RACE} Seen: {broken[:3]}")


def test_the_audit_log_records_the_client_address_not_nginx(cluster: RunningCluster) -> None:
    """Behind nginx every request comes from nginx's address; the hub must take the client's
    from X-Forwarded-For (set by nginx) for the audit log's "from where" and rate limits."""
    case = _raise(cluster, cluster.url, "med")
    host, port = cluster.url.removeprefix("http://").split(":")
    link = http.client.HTTPConnection(host, int(port), timeout=20, source_address=("127.0.0.2", 0))
    try:
        link.request("GET", f"/api/v1/cases/{case['id']}", headers=cluster.login("sup1"))
        answer = link.getresponse()
        assert answer.status == 200, answer.read()
    finally:
        link.close()
    db = Database(cluster.database_url)
    try:
        with db.session() as s:
            where = s.scalar(
                select(AuditEntry.remote_addr)
                .where(
                    AuditEntry.action == "read",
                    AuditEntry.object_type == "case",
                    AuditEntry.object_id == case["uid"],
                )
                .order_by(AuditEntry.id.desc())
                .limit(1)
            )
    finally:
        db.dispose()
    assert where == "127.0.0.2"


def _pid_of(c: RunningCluster, name: str) -> int:
    found = re.findall(
        rf"(?:hub process {name} .*\(pid|hub-{name} is pid) (\d+)", c.process.output()
    )
    assert found, c.process.output()
    return int(found[-1])


def test_a_lost_hub_process_is_started_again_and_its_clients_are_served_meanwhile(
    cluster: RunningCluster,
) -> None:
    spoke = Listener(cluster.url, cluster.spoke_tokens["PHC-1"], reconnection=True)
    try:
        held_by = spoke.client.eio.http.cookies.get("teleconsult_hub")
        other = {"1": "2", "2": "1"}[held_by]
        lost = _pid_of(cluster, held_by)
        os.kill(lost, signal.SIGKILL)
        served_by: list[str] = []

        def answered_for_the_lost_process() -> bool:
            r = requests.get(
                f"{cluster.url}/healthz", cookies={"teleconsult_hub": held_by}, timeout=10
            )
            assert r.status_code == 200, r.text  # never an error for the lost process's clients
            served_by.append(r.headers["X-Teleconsult-Hub"])
            return served_by[-1] == other

        wait_for(answered_for_the_lost_process, 30, what="the other process answering")
        # The spoke's Socket.IO client reconnects through nginx and is told what happens.
        wait_for(
            lambda: (
                spoke.client.connected
                and spoke.client.eio.http.cookies.get("teleconsult_hub") == other
            ),
            30,
            what="the spoke reconnected to the other process",
        )
        case = _raise(cluster, cluster.hubs[other], "radio")
        r = requests.post(
            f"{cluster.hubs[other]}/api/v1/cases/{case['id']}/advice",
            json=ADVICE,
            headers=cluster.login(case["assigned_to"]["username"], cluster.hubs[other]),
            timeout=20,
        )
        assert r.status_code == 201, r.text
        wait_for(
            lambda: any(
                e.get("type") == "advice.issued" and e["case_id"] == case["id"]
                for e in spoke.events
            ),
            15,
            what="advice after the reconnection",
        )
    finally:
        spoke.close()
    # The cluster starts the lost process again.
    wait_for(lambda: _pid_of(cluster, held_by) != lost, 30, what="the process started again")
    wait_for(
        lambda: requests.get(f"{cluster.hubs[held_by]}/healthz", timeout=5).ok,
        60,
        what="the process answering again",
    )
    assert cluster.process.alive()
