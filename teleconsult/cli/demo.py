"""``teleconsult demo``: the hub and two clinics (PHC-1 and PHC-2, each a spoke and a DICOM bridge)
as processes on one machine.

The hub can be stopped and started alone while the clinics keep running, to show that a clinic
keeps working offline: ``teleconsult demo-hub stop`` / ``start`` (or the hub simply exits). The
demo process keeps supervising; Ctrl-C stops everything.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from config.settings import load_settings
from hub.domain.policy import WorkflowPolicy
from hub.services.accounts import DEMO_PASSWORD, seed_demo
from teleconsult.children import die_with_parent, wait_answering
from teleconsult.db import Database
from teleconsult.files import private_dir, write_secret
from teleconsult.migrations import upgrade

PID_FILE = "demo.pid"
STOP_HUB, START_HUB = signal.SIGUSR1, signal.SIGUSR2


@dataclass(frozen=True)
class Clinic:
    """One clinic of the demo: its spoke's code, AE title, data folders and ports."""

    code: str
    ae_title: str
    folder: str  # under the data dir: <folder>/ for the spoke, bridge<suffix>/ for the bridge
    bridge_folder: str
    spoke_port: int
    dicom_port: int


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]
    module: str


@dataclass
class Demo:
    data_dir: str
    host: str
    hub_port: int
    spoke_port: int
    dicom_port: int
    spoke2_port: int | None = None
    dicom2_port: int | None = None
    children: list[Child] = field(default_factory=list)
    _stopping: bool = False
    _requests: list[int] = field(default_factory=list)

    @property
    def clinics(self) -> list[Clinic]:
        return [
            Clinic("PHC-1", "SPOKE1", "spoke", "bridge", self.spoke_port, self.dicom_port),
            Clinic(
                "PHC-2",
                "SPOKE2",
                "spoke2",
                "bridge2",
                self.spoke2_port or self.spoke_port + 1,
                self.dicom2_port or self.dicom_port + 1,
            ),
        ]

    def run(self) -> int:
        root = Path(self.data_dir).resolve()
        private_dir(root)
        (root / "logs").mkdir(mode=0o700, exist_ok=True)
        hub_db = f"sqlite:///{root / 'hub' / 'hub.sqlite'}"
        folders = [f for c in self.clinics for f in (c.folder, c.bridge_folder)]
        for sub in ("hub", *folders):
            private_dir(root / sub)
        print("Preparing the databases...", flush=True)
        upgrade("hub", hub_db)
        for clinic in self.clinics:
            upgrade("spoke", self._spoke_db(root, clinic))
        db = Database(hub_db)
        policy = WorkflowPolicy.from_settings(load_settings("hub"))  # the hub's configured ratio
        with db.session() as session:
            tokens = seed_demo(session, policy)
        db.dispose()
        hub_url = f"http://{self.host}:{self.hub_port}"
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(STOP_HUB, self._on_request)
        signal.signal(START_HUB, self._on_request)
        pid_file = root / PID_FILE
        pid_file.write_text(str(os.getpid()))
        try:
            self._start_hub(root, hub_db)
            self._wait_http("hub", hub_url + "/healthz")
            for clinic in self.clinics:
                # The service token reaches the spoke and the bridge in a 0600 file, never in
                # their environment (readable in /proc/<pid>/environ).
                token_file = write_secret(root / clinic.folder / "spoke_token", tokens[clinic.code])
                self._start_clinic(root, clinic, hub_url, str(token_file))
            for clinic in self.clinics:
                self._wait_http(
                    f"spoke {clinic.code}", f"http://{self.host}:{clinic.spoke_port}/healthz"
                )
            self._print_banner(root, hub_url)
            return self._watch(root, hub_db)
        finally:
            self._stop_all()
            with contextlib.suppress(OSError):
                if pid_file.read_text() == str(os.getpid()):
                    pid_file.unlink()

    @staticmethod
    def _spoke_db(root: Path, clinic: Clinic) -> str:
        return f"sqlite:///{root / clinic.folder / 'spoke.sqlite'}"

    def _start_hub(self, root: Path, hub_db: str) -> None:
        self._start(
            "hub",
            "hub",
            {
                "TELECONSULT_HUB_HOST": self.host,
                "TELECONSULT_HUB_PORT": str(self.hub_port),
                "TELECONSULT_HUB_DATA_DIR": str(root / "hub"),
                "TELECONSULT_HUB_DATABASE_URL": hub_db,
            },
            root,
        )

    def _start_clinic(self, root: Path, clinic: Clinic, hub_url: str, token_file: str) -> None:
        spoke_url = f"http://{self.host}:{clinic.spoke_port}"
        self._start(
            f"spoke {clinic.code}",
            "spoke",
            {
                "TELECONSULT_SPOKE_HOST": self.host,
                "TELECONSULT_SPOKE_PORT": str(clinic.spoke_port),
                "TELECONSULT_SPOKE_DATA_DIR": str(root / clinic.folder),
                "TELECONSULT_SPOKE_DATABASE_URL": self._spoke_db(root, clinic),
                "TELECONSULT_SPOKE_HUB_URL": hub_url,
                "TELECONSULT_SPOKE_SPOKE_CODE": clinic.code,
                "TELECONSULT_SPOKE_SPOKE_TOKEN_FILE": token_file,
            },
            root,
        )
        self._start(
            f"bridge {clinic.code}",
            "dicom_bridge",
            {
                "TELECONSULT_BRIDGE_HOST": self.host,
                "TELECONSULT_BRIDGE_PORT": str(clinic.dicom_port),
                "TELECONSULT_BRIDGE_AE_TITLE": clinic.ae_title,
                "TELECONSULT_BRIDGE_ACCEPT_ANY_AE": "true",
                "TELECONSULT_BRIDGE_HUB_URL": hub_url,
                "TELECONSULT_BRIDGE_SPOKE_TOKEN_FILE": token_file,
                "TELECONSULT_BRIDGE_SPOOL_DIR": str(root / clinic.bridge_folder / "spool"),
                "TELECONSULT_BRIDGE_SPOKE_URL": spoke_url,
            },
            root,
        )

    def _start(self, name: str, module: str, env: dict[str, str], root: Path) -> None:
        log = root / "logs" / f"{name.replace(' ', '-')}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", module],
                env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        self.children = [c for c in self.children if c.name != name]
        self.children.append(Child(name, popen, log, env, module))

    def _child(self, name: str) -> Child | None:
        return next((c for c in self.children if c.name == name), None)

    def _wait_http(self, name: str, url: str, timeout: float = 60) -> None:
        child = self._child(name)
        assert child is not None
        why = wait_answering(child.popen, url, timeout, lambda: self._stopping)
        if why == "stopped":
            raise SystemExit(
                f"The {name} stopped while starting; see {child.log}:\n{_tail(child.log)}"
            )
        if why == "timeout":
            raise SystemExit(
                f"The {name} did not answer at {url} within {timeout:.0f}s; see {child.log}"
            )

    def _print_banner(self, root: Path, hub_url: str) -> None:
        lines = [
            "",
            f"Teleconsult demo is running (data in {root}; logs in {root / 'logs'}).",
            "",
            f"  Hub (specialists, supervisors, API)   {hub_url}",
            f"                                        REST {hub_url}/api/v1   "
            f"DICOMweb {hub_url}/dicomweb",
        ]
        for c in self.clinics:
            lines.append(
                f"  Spoke {c.code} (clinic doctors)          http://{self.host}:{c.spoke_port}"
            )
            lines.append(
                f"  DICOM bridge of {c.code}                 AE title {c.ae_title} on "
                f"{self.host}:{c.dicom_port}"
            )
        lines.append(
            "                                        (the bridges accept any calling AE: demo only)"
        )
        first = self.clinics[0]
        data = f" --data-dir {self.data_dir}" if self.data_dir != "teleconsult-data" else ""
        lines += [
            "",
            f"  Logins (password '{DEMO_PASSWORD}', demo only):",
            "    admin · supervisor sup1 · specialists ortho1 radio1 med1 ent1 eye1",
            "    clinic doctors clinic1 clinic2 clinic3 (spoke PHC-1, "
            f"http://{self.host}:{first.spoke_port}), clinic4 clinic5 (spoke PHC-2, "
            f"http://{self.host}:{self.clinics[1].spoke_port})",
            "",
            f"  Worklist:     findscu -v -W -aec {first.ae_title} {self.host} {first.dicom_port} "
            "-k PatientID \\",
            "                    -k AccessionNumber -k RequestedProcedureDescription",
            f"  Send images:  storescu -aec {first.ae_title} {self.host} {first.dicom_port} "
            "+sd <folder of .dcm>",
            "                (with AccessionNumber = the case's accession number; otherwise the "
            "study waits in",
            "                the clinic's inbox to be attached by hand)",
            "",
            "  The clinics keep working while the hub is down (cases wait in their outbox):",
            f"    stop the hub alone:   teleconsult demo-hub stop{data}",
            f"    start it again:       teleconsult demo-hub start{data}",
            "",
            "Press Ctrl-C to stop.",
            "",
        ]
        print("\n".join(lines), flush=True)

    def _watch(self, root: Path, hub_db: str) -> int:
        reported: set[str] = set()
        while not self._stopping:
            while self._requests:
                self._handle(self._requests.pop(0), root, hub_db)
            for child in list(self.children):
                if child.popen.poll() is None or child.name in reported:
                    continue
                reported.add(child.name)
                if child.name == "hub":
                    data = (
                        ""
                        if self.data_dir == "teleconsult-data"
                        else f" --data-dir {self.data_dir}"
                    )
                    print(
                        f"The hub stopped (exit {child.popen.returncode}); the clinics keep "
                        f"working offline. Start it again with `teleconsult demo-hub start{data}`"
                        ", or press Ctrl-C to stop the demo.",
                        flush=True,
                    )
                    continue
                print(
                    f"The {child.name} stopped (exit {child.popen.returncode}); stopping the "
                    f"demo. Last lines of {child.log}:\n{_tail(child.log)}",
                    file=sys.stderr,
                )
                return 1
            if (hub := self._child("hub")) is not None and hub.popen.poll() is None:
                reported.discard("hub")
            time.sleep(0.2)
        return 0

    def _handle(self, request: int, root: Path, hub_db: str) -> None:
        hub = self._child("hub")
        running = hub is not None and hub.popen.poll() is None
        if request == STOP_HUB and running and hub is not None:
            print("Stopping the hub (the clinics keep running)...", flush=True)
            _stop(hub)
        elif request == START_HUB and not running:
            print("Starting the hub...", flush=True)
            self._start_hub(root, hub_db)
            try:
                self._wait_http("hub", f"http://{self.host}:{self.hub_port}/healthz")
            except SystemExit as exc:
                print(exc, file=sys.stderr, flush=True)
                return
            print(f"The hub is back at http://{self.host}:{self.hub_port}.", flush=True)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stopping = True

    def _on_request(self, signum: int, _frame: FrameType | None) -> None:
        self._requests.append(signum)

    def _stop_all(self) -> None:
        for child in reversed(self.children):
            if child.popen.poll() is None:
                os.killpg(child.popen.pid, signal.SIGTERM)
        for child in reversed(self.children):
            _stop(child)
        if self.children:
            print("Teleconsult demo stopped.", flush=True)


def _stop(child: Child) -> None:
    if child.popen.poll() is None:
        os.killpg(child.popen.pid, signal.SIGTERM)
    try:
        child.popen.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(child.popen.pid, signal.SIGKILL)
        child.popen.wait(5)


def hub_control(data_dir: str, action: str) -> int:
    """Ask the running demo (by the pid it wrote in the data dir) to stop or start its hub."""
    pid_file = Path(data_dir).resolve() / PID_FILE
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, STOP_HUB if action == "stop" else START_HUB)
    except (OSError, ValueError):
        raise SystemExit(f"No demo is running with data in {Path(data_dir).resolve()}.") from None
    return pid


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
