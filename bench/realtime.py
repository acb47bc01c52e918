"""Real-time delivery benchmark: N spokes connected over Socket.IO (websocket) to one hub
process under eventlet, or to two processes sharing events through Redis; advice is issued to
cases of random spokes and each delivery's latency is measured from the moment the hub recorded
the event (inside the advising transaction, just before commit) to the client's receipt.

    python bench/realtime.py                       # 100, 500, 1000 clients; 1 and 2 processes
    python bench/realtime.py --clients 1000 --advice 300 --processes 1

Needs: PostgreSQL and Redis for the two-process runs (as the tests do), aiohttp (pip install
aiohttp).
Prints a table; nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil
import requests
import socketio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.persistence.models import Case, Specialty, User  # noqa: E402
from hub.services.accounts import register_spoke  # noqa: E402
from teleconsult.db import Database  # noqa: E402
from tests.support.databases import REDIS_URL, fresh_postgres  # noqa: E402
from tests.support.hub import prepare_hub_db, start_hub  # noqa: E402
from tests.support.processes import Process, running  # noqa: E402

ADVICE = {
    "assessment": "Stable angina.",
    "recommendations": "Aspirin; refer if worse.",
    "disposition": "manage_locally",
}


@dataclass
class Result:
    clients: int
    processes: int
    connected: int
    connect_s: float
    latencies_ms: list[float]
    rss_mb: list[float]


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))


def _prepare(url: str, n: int) -> tuple[list[str], list[int]]:
    """Seed the hub; register n bench spokes, each with one case med1 is reviewing (so that an
    advice moves no queue: the latency measured is the advice's own)."""
    prepare_hub_db(url)
    db = Database(url)
    tokens = []
    with db.session() as s:
        med1 = s.query(User).filter_by(username="med1").one()
        med = s.query(Specialty).filter_by(code="med").one()
        cases = []
        now = datetime.now(UTC)
        for i in range(n):
            spoke, token = register_spoke(s, f"BENCH-{i:04d}", f"Bench clinic {i}")
            tokens.append(token)
            cases.append(
                Case(
                    uid=str(uuid.uuid4()),
                    token=f"MED-{i:04d}",
                    accession_number=f"BENCH{i:06d}",
                    spoke_id=spoke.id,
                    specialty_id=med.id,
                    priority="urgent",
                    status="in_review",
                    patient_pseudonym=f"B-{i}",
                    patient_age=40,
                    patient_sex="male",
                    complaint="Chest pain",
                    question="ECG?",
                    assigned_to_id=med1.id,
                    assigned_at=now,
                    started_at=now,
                    idempotency_key=f"bench-{i}",
                    request_digest="-",
                    created_at=now,
                    submitted_at=now,
                    updated_at=now,
                )
            )
        s.add_all(cases)
        s.flush()
        case_ids = [c.id for c in cases]
    db.dispose()
    return tokens, case_ids


@contextmanager
def _hubs(tmp: Path, url: str, processes: int) -> Iterator[list[tuple[Process, str]]]:
    extra = (
        {
            "TELECONSULT_HUB_MESSAGE_QUEUE": REDIS_URL,
            "TELECONSULT_HUB_SOCKETIO_CHANNEL": f"bench-{time.time_ns()}",
        }
        if processes > 1
        else {}
    )
    extra["TELECONSULT_HUB_LOG_LEVEL"] = "WARNING"
    with ExitStack() as stack:
        hubs = []
        for i in range(processes):
            process, port = start_hub(
                tmp, url, name=f"hub{i}", async_mode="eventlet", extra_env=extra
            )
            stack.enter_context(running(process))
            hubs.append((process, f"http://127.0.0.1:{port}"))
        yield hubs


async def _measure(
    urls: list[str], tokens: list[str], case_ids: list[int], advice: int, headers: dict[str, str]
) -> tuple[int, float, list[float]]:
    latencies: list[float] = []
    expected: dict[int, asyncio.Future[None]] = {}
    loop = asyncio.get_running_loop()
    clients = []

    def handler_for(case_id: int):  # type: ignore[no-untyped-def]
        async def on_advice(data: dict) -> None:  # type: ignore[type-arg]
            received = time.time()
            at = datetime.fromisoformat(data["at"]).timestamp()
            latencies.append((received - at) * 1000)
            future = expected.get(case_id)
            if future and not future.done():
                future.set_result(None)

        return on_advice

    started = time.monotonic()
    for batch in range(0, len(tokens), 50):
        chunk = []
        for i, token in enumerate(tokens[batch : batch + 50], start=batch):
            client = socketio.AsyncClient(reconnection=False)
            client.on("advice.issued", handler_for(case_ids[i]))
            clients.append(client)
            chunk.append(
                client.connect(
                    urls[i % len(urls)],
                    auth={"token": token},
                    transports=["websocket"],
                    wait_timeout=30,
                )
            )
        await asyncio.gather(*chunk)
    connect_s = time.monotonic() - started
    connected = sum(1 for c in clients if c.connected)
    session = requests.Session()
    for _ in range(advice):
        i = random.randrange(len(case_ids))
        expected[case_ids[i]] = loop.create_future()
        url = urls[random.randrange(len(urls))]
        r = await asyncio.to_thread(
            session.post,
            f"{url}/api/v1/cases/{case_ids[i]}/advice",
            json=ADVICE,
            headers=headers,
            timeout=30,
        )
        r.raise_for_status()
        await asyncio.wait_for(expected[case_ids[i]], 10)
    await asyncio.gather(*(c.disconnect() for c in clients))
    return connected, connect_s, latencies


def run(n: int, processes: int, advice: int) -> Result:
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        url = (
            stack.enter_context(fresh_postgres())
            if processes > 1
            else f"sqlite:///{tmp}/hub.sqlite"
        )
        tokens, case_ids = _prepare(url, n)
        hubs = stack.enter_context(_hubs(Path(tmp), url, processes))
        urls = [u for _, u in hubs]
        session = requests.Session()
        login = session.post(
            f"{urls[0]}/api/v1/auth/token",
            json={"username": "med1", "password": "demo"},
            timeout=30,
        )
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        connected, connect_s, latencies = asyncio.run(
            _measure(urls, tokens, case_ids, advice, headers)
        )
        rss = [psutil.Process(p.popen.pid).memory_info().rss / 2**20 for p, _ in hubs]
        return Result(n, processes, connected, connect_s, latencies, rss)


def _pct(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]
        if len(values) > 1
        else values[0]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, nargs="+", default=[100, 500, 1000])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--advice", type=int, default=200, help="advice issued per run")
    args = parser.parse_args()
    _raise_fd_limit()
    print(
        f"{'clients':>7} {'procs':>5} {'held':>6} {'connect s':>9} {'advice':>6} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'max ms':>7} {'hub RSS MB':>12}"
    )
    for processes in args.processes:
        for n in args.clients:
            r = run(n, processes, args.advice)
            lat = r.latencies_ms
            print(
                f"{r.clients:>7} {r.processes:>5} {r.connected:>6} {r.connect_s:>9.2f} "
                f"{len(lat):>6} "
                f"{_pct(lat, 50):>7.1f} {_pct(lat, 99):>7.1f} {max(lat):>7.1f} "
                f"{'/'.join(f'{m:.0f}' for m in r.rss_mb):>12}",
                flush=True,
            )


if __name__ == "__main__":
    main()
