"""Routing and queue benchmarks: decisions and queue positions with 10,000 waiting cases, and a
simulated day of 500,000 cases (eSanjeevani's peak day) through the hub's domain rules.

    python bench/routing.py                  # the full run (a few minutes on one core)
    python bench/routing.py --cases 50000    # a quicker day

Prints one table; times are per operation unless the row says otherwise.
"""

from __future__ import annotations

import argparse
import heapq
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.domain.assignment import SpecialistLoad, choose_specialist  # noqa: E402
from hub.domain.dispatch import Floor, FloorCase, FloorSpecialist  # noqa: E402
from hub.domain.queue import WaitingQueue, queue_key  # noqa: E402
from shared.enums import CaseStatus  # noqa: E402

T0 = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
PRIORITIES = ["emergency"] * 5 + ["urgent"] * 25 + ["routine"] * 70
Row = tuple[str, str, str]


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def us(samples: list[float]) -> str:
    p99 = sorted(samples)[int(len(samples) * 0.99) - 1]
    return f"{statistics.median(samples) * 1e6:.1f} µs (p99 {p99 * 1e6:.1f})"


def waiting_10k(rng: random.Random) -> list[Row]:
    keys = [queue_key(rng.choice(PRIORITIES), T0 + timedelta(seconds=i), i) for i in range(10_000)]
    build = timed(lambda: WaitingQueue(keys), 5)
    queue = WaitingQueue(keys)
    probes = [rng.choice(keys) for _ in range(2000)]
    it = iter(probes)
    position = timed(lambda: queue.position(next(it)), len(probes))
    fresh = iter(range(10_000, 12_000))

    def add_remove() -> None:
        key = queue_key(rng.choice(PRIORITIES), T0 + timedelta(hours=5), next(fresh))
        queue.add(key)
        queue.remove(key)

    churn = timed(add_remove, 2000)
    loads = [
        SpecialistLoad(i, i % 7 != 0, rng.randrange(0, 10), 10, T0 + timedelta(seconds=i))
        for i in range(200)
    ]
    route = timed(lambda: choose_specialist(loads, supervisor_id=rng.randrange(200)), 2000)

    floor = Floor(
        specialists={i: FloorSpecialist(i, frozenset({"ortho"}), max_active=10) for i in range(50)}
    )
    for i in range(10_500):  # 500 fill the specialists, 10,000 wait in the pool
        floor.submit(
            FloorCase(i, "ortho", rng.choice(PRIORITIES), T0 + timedelta(seconds=i), None), T0
        )
    counter = iter(range(20_000, 30_000))
    submit = timed(
        lambda: floor.submit(
            FloorCase(next(counter), "ortho", "urgent", T0 + timedelta(hours=4), None), T0
        ),
        1000,
    )
    waiting = len(floor.pools["ortho"])
    ids = [k[2] for k in floor.pools["ortho"].keys()]  # noqa: SIM118 (a queue, not a dict)
    it2 = iter([rng.choice(ids) for _ in range(2000)])
    place = timed(lambda: floor.position(next(it2)), 2000)
    return [
        ("queue of 10,000: build (sort)", "5", us(build)),
        ("queue of 10,000: position of a case", "2,000", us(position)),
        ("queue of 10,000: insert + remove", "2,000", us(churn)),
        ("route: choose among 200 specialists", "2,000", us(route)),
        (f"route a new case into a pool of {waiting:,}", "1,000", us(submit)),
        (f"live position in a pool of {waiting:,}", "2,000", us(place)),
    ]


def simulated_day(
    rng: random.Random, cases: int, specialties: int, per_specialty: int, handling_s: float
) -> list[Row]:
    """Poisson arrivals over 24 h; each specialist reviews one case at a time (exponential
    handling time), from their own queue first, else from the specialty's pool."""
    codes = [f"s{k:02d}" for k in range(specialties)]
    floor = Floor()
    sid = 0
    for code in codes:
        for _ in range(per_specialty):
            floor.specialists[sid] = FloorSpecialist(sid, frozenset({code}), max_active=10)
            sid += 1
    doctors = 4 * per_specialty  # the 1:4 ratio: every clinic doctor supervised in every specialty
    floor.supervisors = {
        (code, d): k * per_specialty + d // 4
        for k, code in enumerate(codes)
        for d in range(doctors)
    }
    busy: set[int] = set()
    events: list[
        tuple[float, int, int, int]
    ] = []  # (time s, kind 0=arrival 1=done, case, specialist)
    t = 0.0
    mean_gap = 86_400 / cases
    for n in range(cases):
        t += rng.expovariate(1 / mean_gap)
        events.append((t, 0, n, -1))
    heapq.heapify(events)
    waits: list[float] = []
    submitted: dict[int, float] = {}
    max_pool = 0

    def start_next(specialist: int, now_s: float) -> None:
        queue = floor.personal.get(specialist)
        key = queue.first() if queue else None
        if key is None:
            for code in floor.specialists[specialist].specialties:
                pool = floor.pools.get(code)
                if pool and len(pool):
                    key = pool.first()
                    break
        if key is None:
            busy.discard(specialist)
            return
        floor.claim(key[2], specialist)
        busy.add(specialist)
        waits.append(now_s - submitted[key[2]])
        heapq.heappush(events, (now_s + rng.expovariate(1 / handling_s), 1, key[2], specialist))

    began = time.perf_counter()
    routed = 0
    while events:
        now_s, kind, case_id, specialist = heapq.heappop(events)
        now = T0 + timedelta(seconds=now_s)
        if kind == 0:
            code = codes[case_id % specialties]
            submitted[case_id] = now_s
            floor.submit(
                FloorCase(case_id, code, rng.choice(PRIORITIES), now, rng.randrange(doctors)), now
            )
            routed += 1
            holder = floor.cases[case_id].assigned_to
            if holder is not None and holder not in busy:
                start_next(holder, now_s)
            elif holder is None:
                idle = next(
                    (
                        s.specialist_id
                        for s in floor._staff.get(code, [])
                        if s.specialist_id not in busy
                    ),
                    None,
                )
                if idle is not None:
                    start_next(idle, now_s)
            max_pool = max(max_pool, len(floor.pools.get(code, ())))
        else:
            floor.finish(case_id, now)
            del floor.cases[case_id]
            start_next(specialist, now_s)
    elapsed = time.perf_counter() - began
    done = sum(1 for _ in waits)
    open_left = sum(1 for c in floor.cases.values() if c.status is not CaseStatus.ADVISED)
    waits.sort()
    return [
        (
            f"day: {cases:,} cases, {sid:,} specialists in {specialties} specialties",
            "1",
            f"{elapsed:.1f} s wall",
        ),
        (
            "day: routing decisions per second",
            f"{floor.decisions:,}",
            f"{floor.decisions / elapsed:,.0f} /s",
        ),
        (
            "day: domain time per case (route+claim+finish)",
            f"{routed:,}",
            f"{elapsed / routed * 1e6:.1f} µs",
        ),
        (
            "day: wait to first response p50 / p90 (simulated)",
            f"{done:,}",
            f"{waits[len(waits) // 2] / 60:.1f} / {waits[int(len(waits) * 0.9)] / 60:.1f} min",
        ),
        ("day: largest pool / cases left open at the end", "-", f"{max_pool:,} / {open_left:,}"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=500_000)
    parser.add_argument("--specialties", type=int, default=20)
    parser.add_argument("--per-specialty", type=int, default=100)
    parser.add_argument("--handling-s", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows = waiting_10k(rng) + simulated_day(
        rng, args.cases, args.specialties, args.per_specialty, args.handling_s
    )
    widths = [max(len(r[i]) for r in rows + [("what", "n", "time")]) for i in range(3)]
    line = "  ".join("-" * w for w in widths)
    print("  ".join(h.ljust(w) for h, w in zip(("what", "n", "time"), widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
