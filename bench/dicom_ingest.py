"""DICOM ingest benchmark: the same 200-slice CT (512x512, 16 bit, ~100 MB) sent with DCMTK's
storescu to DCMTK storescp, to Orthanc (fsync on), to our bridge and to a stock pynetdicom SCP
putting each instance into the bridge's same durable spool (bench/stock_scp.py: what the bridge's
own receive loop gains over pynetdicom's public API), alternating, several rounds
(and the same files spooled with no network, the disk's share: storescp never fsyncs, the bridge
must);
then end to end (storescu -> bridge -> hub, until the hub lists every instance) against storescu
-> storescp alone. Prints MB/s and ratios. Not a test: run it by hand.

    /work/venv/bin/python bench/dicom_ingest.py [--rounds 3] [--slices 200] [--profile DIR] [--no-
    fsync-row]

Needs DCMTK (storescu, storescp) and Orthanc (Debian packages dcmtk, orthanc). With --profile,
py-spy records the bridge of the last round as a flame graph (SVG) in DIR. With --no-fsync-row,
a fourth row runs the bridge with ``unsafe_skip_fsync`` (benchmarks only: what the rest of the
pipeline costs when success no longer waits for the disk).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.dicomgen import make_ct_series, write_series  # noqa: E402
from tests.integration.dicom.orthanc import orthanc  # noqa: E402
from tests.support.hub import hub_process  # noqa: E402
from tests.support.processes import Process, free_port, running, start  # noqa: E402
from tests.support.waiting import wait_for  # noqa: E402

STORESCU = shutil.which("storescu", path="/usr/bin:/usr/local/bin") or "storescu"
STORESCP = shutil.which("storescp", path="/usr/bin:/usr/local/bin") or "storescp"
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}
CALLING = "BENCH_CT"


def storescu(port: int, called: str, folder: Path) -> float:
    """Send every file of ``folder`` in one association; return the seconds it took."""
    began = time.perf_counter()
    subprocess.run(
        [STORESCU, "-aet", CALLING, "-aec", called, "127.0.0.1", str(port), "+sd", str(folder)],
        env=DCMTK_ENV,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - began


@contextmanager
def storescp(tmp: Path) -> Iterator[int]:
    port = free_port()
    out = tmp / "storescp"
    out.mkdir(parents=True, exist_ok=True)
    log = tmp / "storescp.log"
    with log.open("wb") as fh:
        popen = subprocess.Popen(
            [STORESCP, "-aet", "STORESCP", "-od", str(out), str(port)],
            env=DCMTK_ENV,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    with running(Process("storescp", popen, log)):
        wait_for(lambda: _listening(port), 15, what="storescp")
        yield port


def _listening(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def bridge_env(tmp: Path, port: int, hub_url: str, token: str) -> dict[str, str]:
    return {
        "TELECONSULT_BRIDGE_HOST": "127.0.0.1",
        "TELECONSULT_BRIDGE_PORT": str(port),
        "TELECONSULT_BRIDGE_AE_TITLE": "SPOKE1",
        "TELECONSULT_BRIDGE_ALLOWED_AES": CALLING,
        "TELECONSULT_BRIDGE_HUB_URL": hub_url,
        "TELECONSULT_BRIDGE_SPOKE_TOKEN": token,
        "TELECONSULT_BRIDGE_SPOKE_URL": "",
        "TELECONSULT_BRIDGE_SPOOL_DIR": str(tmp / "spool"),
        "TELECONSULT_BRIDGE_RETRY_INITIAL_S": "0.2",
        "TELECONSULT_BRIDGE_LOG_LEVEL": "WARNING",
    }


@contextmanager
def bridge(
    tmp: Path, hub_url: str = "http://127.0.0.1:9", token: str = "", fsync: bool = True
) -> Iterator[tuple[int, Process]]:
    """Our bridge as its own process; with the default hub URL nothing is forwarded (ingest
    only)."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = bridge_env(tmp, port, hub_url, token)
    if not fsync:
        env["TELECONSULT_BRIDGE_UNSAFE_SKIP_FSYNC"] = "true"
    process = start("bridge", ["dicom_bridge"], env, tmp)
    with running(process):
        wait_for(lambda: _listening(port) or not process.alive(), 30, what="bridge")
        assert process.alive(), process.output()
        yield port, process


@contextmanager
def stock_scp(tmp: Path) -> Iterator[int]:
    """A stock pynetdicom SCP with the bridge's durable spool, as its own process."""
    port = free_port()
    script = str(ROOT / "bench" / "stock_scp.py")
    log = tmp / "stock_scp.log"
    with log.open("wb") as fh:
        popen = subprocess.Popen(
            [sys.executable, script, str(port), str(tmp / "spool")],
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    with running(Process("pynetdicom SCP", popen, log)):
        wait_for(lambda: _listening(port) or popen.poll() is not None, 30, what="pynetdicom SCP")
        assert popen.poll() is None, log.read_text()
        yield port


def rounds_of_ingest(
    folder: Path, tmp: Path, rounds: int, profile: Path | None, no_fsync_row: bool = False
) -> dict[str, list[float]]:
    targets = ["storescp", "orthanc", "bridge", "pynetdicom SCP", "spool alone"] + (
        ["bridge-nofsync"] if no_fsync_row else []
    )
    times: dict[str, list[float]] = {name: [] for name in targets}
    for n in range(rounds):
        order = targets if n % 2 == 0 else targets[::-1]
        for target in order:
            where = tmp / f"round{n}-{target}"
            where.mkdir(parents=True)
            times[target].append(
                _one_ingest(target, folder, where, profile if n == rounds - 1 else None)
            )
            shutil.rmtree(where, ignore_errors=True)
    return times


def _one_ingest(target: str, folder: Path, where: Path, profile: Path | None) -> float:
    if target == "spool alone":
        return spool_alone(folder, where)
    if target == "storescp":
        with storescp(where) as port:
            return storescu(port, "STORESCP", folder)
    if target == "orthanc":
        with orthanc(where, {}) as pacs:
            return storescu(pacs.dicom_port, "CLINICPACS", folder)
    if target == "pynetdicom SCP":
        with stock_scp(where) as port:
            elapsed = storescu(port, "STOCKSCP", folder)
        spooled = len(list((where / "spool" / "incoming").glob("*")))
        assert spooled == len(list(folder.iterdir())), f"{spooled} instances spooled"
        return elapsed
    with bridge(where, fsync=target != "bridge-nofsync") as (port, process):
        if profile is None or target != "bridge":
            return storescu(port, "SPOKE1", folder)
        with py_spy(process, profile / "bridge-ingest.svg"):
            return storescu(port, "SPOKE1", folder)


def spool_alone(folder: Path, where: Path) -> float:
    """Seconds to spool every file durably with no network: the disk's part of the bridge's time
    (storescp never fsyncs; the bridge must, once per instance, before it answers)."""
    from dicom_bridge.spool import Spool

    files = [(path.stem, path.read_bytes()) for path in sorted(folder.iterdir())]
    spool = Spool(where / "spool")
    began = time.perf_counter()
    for uid, data in files:
        spool.put(data, uid)
    elapsed = time.perf_counter() - began
    spool.close()
    return elapsed


@contextmanager
def py_spy(process: Process, svg: Path) -> Iterator[None]:
    svg.parent.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    recorder = subprocess.Popen(
        [spy, "record", "-o", str(svg), "--pid", str(process.popen.pid), "--threads"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        recorder.send_signal(2)
        recorder.wait(60)


def end_to_end(
    folder: Path, tmp: Path, n_files: int, rounds: int
) -> tuple[list[float], list[float]]:
    """Seconds from storescu's start until the hub lists all instances; and storescu->storescp."""
    ours, reference = [], []
    for n in range(rounds):
        with storescp(tmp / f"e2e-ref{n}") as port:
            reference.append(storescu(port, "STORESCP", folder))
        with ExitStack() as stack:
            hub = stack.enter_context(hub_process(tmp / f"e2e-hub{n}", async_mode="eventlet"))
            token = hub.spoke_tokens["PHC-1"]
            port, _ = stack.enter_context(bridge(tmp / f"e2e-bridge{n}", hub.url, token))
            began = time.perf_counter()
            storescu(port, "SPOKE1", folder)
            wait_for(
                _hub_has(hub.url, token, n_files),
                600,
                interval=0.05,
                what="all instances at the hub",
            )
            ours.append(time.perf_counter() - began)
    return ours, reference


def _hub_has(url: str, token: str, n_files: int) -> Callable[[], bool]:
    headers = {"Authorization": f"Bearer {token}"}

    def check() -> bool:
        studies = requests.get(f"{url}/dicomweb/studies", headers=headers, timeout=10).json()
        return bool(studies) and int(studies[0]["00201208"]["Value"][0]) >= n_files

    return check


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--skip-ingest", action="store_true", help="only the end-to-end rows")
    parser.add_argument(
        "--no-fsync-row", action="store_true", help="also time the bridge without fsync"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dicom-ingest-") as raw:
        tmp = Path(raw)
        folder = tmp / "ct"
        files = write_series(make_ct_series(args.slices, rows=args.size, cols=args.size), folder)
        megabytes = sum(f.stat().st_size for f in files) / 1e6
        print(
            f"CT series: {len(files)} files, {megabytes:.1f} MB; {args.rounds} rounds, "
            "alternating order"
        )
        if not args.skip_ingest:
            times = rounds_of_ingest(
                folder, tmp / "ingest", args.rounds, args.profile, args.no_fsync_row
            )
            _print_ingest(times, megabytes)
        if not args.skip_e2e:
            ours, reference = end_to_end(folder, tmp / "e2e", len(files), args.rounds)
            _print_e2e(ours, reference, megabytes)
    return 0


def _print_ingest(times: dict[str, list[float]], megabytes: float) -> None:
    base = statistics.median(times["storescp"])
    print(f"\n{'C-STORE to':<15} {'median s':>9} {'MB/s':>8} {'vs storescp':>12}   rounds (s)")
    for name, values in times.items():
        median = statistics.median(values)
        rounds = " ".join(f"{v:.2f}" for v in values)
        ratio = "(no network)" if name == "spool alone" else f"{base / median:.2f}x"
        print(f"{name:<15} {median:>9.2f} {megabytes / median:>8.1f} {ratio:>12}   {rounds}")
    bridge = statistics.median(times["bridge"])
    print(f"bridge vs Orthanc: {statistics.median(times['orthanc']) / bridge:.2f}x")
    print(
        f"bridge vs a stock pynetdicom SCP, same spool: "
        f"{statistics.median(times['pynetdicom SCP']) / bridge:.2f}x"
    )
    disk = statistics.median(times["spool alone"])
    print(
        f"spool alone: {disk:.2f} s to write and fsync the same files, no network (storescp never "
        "fsyncs); "
        f"storescp's time plus that would be {base / (base + disk):.2f}x storescp, before any "
        "overlap"
    )


def _print_e2e(ours: list[float], reference: list[float], megabytes: float) -> None:
    mine, ref = statistics.median(ours), statistics.median(reference)
    print(f"\n{'end to end':<34} {'median s':>9} {'MB/s':>8}   rounds (s)")
    print(
        f"{'storescu -> storescp':<34} {ref:>9.2f} {megabytes / ref:>8.1f}   "
        + " ".join(f"{v:.2f}" for v in reference)
    )
    print(
        f"{'storescu -> bridge -> hub (QIDO)':<34} {mine:>9.2f} {megabytes / mine:>8.1f}   "
        + " ".join(f"{v:.2f}" for v in ours)
    )
    print(f"end to end / storescp alone: {mine / ref:.2f}x (goal <= 1.5x)")


if __name__ == "__main__":
    sys.exit(main())
