"""``teleconsult demo``: hub, spoke PHC-1 and its DICOM bridge as three processes on one machine."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import requests

from config.settings import load_settings
from hub.domain.policy import WorkflowPolicy
from hub.services.accounts import DEMO_PASSWORD, seed_demo
from teleconsult.db import Database
from teleconsult.files import private_dir, write_secret
from teleconsult.migrations import upgrade

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Linux: the child gets SIGTERM if the demo dies, even by SIGKILL (no orphans)."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


@dataclass
class Demo:
    data_dir: str
    host: str
    hub_port: int
    spoke_port: int
    dicom_port: int
    children: list[Child] = field(default_factory=list)
    _stopping: bool = False

    def run(self) -> int:
        root = Path(self.data_dir).resolve()
        private_dir(root)
        (root / "logs").mkdir(mode=0o700, exist_ok=True)
        hub_db = f"sqlite:///{root / 'hub' / 'hub.sqlite'}"
        spoke_db = f"sqlite:///{root / 'spoke' / 'spoke.sqlite'}"
        for sub in ("hub", "spoke", "bridge"):
            private_dir(root / sub)
        print("Preparing the databases...", flush=True)
        upgrade("hub", hub_db)
        upgrade("spoke", spoke_db)
        db = Database(hub_db)
        policy = WorkflowPolicy.from_settings(load_settings("hub"))  # the hub's configured ratio
        with db.session() as session:
            tokens = seed_demo(session, policy)
        db.dispose()
        # The service token reaches the spoke and the bridge in a 0600 file, never in their
        # environment (readable in /proc/<pid>/environ).
        token_file = str(write_secret(root / "spoke" / "spoke_token", tokens["PHC-1"]))
        hub_url = f"http://{self.host}:{self.hub_port}"
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        try:
            self._start(
                "hub",
                ["hub"],
                {
                    "TELECONSULT_HUB_HOST": self.host,
                    "TELECONSULT_HUB_PORT": str(self.hub_port),
                    "TELECONSULT_HUB_DATA_DIR": str(root / "hub"),
                    "TELECONSULT_HUB_DATABASE_URL": hub_db,
                },
                root,
            )
            self._wait_http("hub", hub_url + "/healthz")
            self._start(
                "spoke",
                ["spoke"],
                {
                    "TELECONSULT_SPOKE_HOST": self.host,
                    "TELECONSULT_SPOKE_PORT": str(self.spoke_port),
                    "TELECONSULT_SPOKE_DATA_DIR": str(root / "spoke"),
                    "TELECONSULT_SPOKE_DATABASE_URL": spoke_db,
                    "TELECONSULT_SPOKE_HUB_URL": hub_url,
                    "TELECONSULT_SPOKE_SPOKE_CODE": "PHC-1",
                    "TELECONSULT_SPOKE_SPOKE_TOKEN_FILE": token_file,
                },
                root,
            )
            self._start(
                "bridge",
                ["dicom_bridge"],
                {
                    "TELECONSULT_BRIDGE_HOST": self.host,
                    "TELECONSULT_BRIDGE_PORT": str(self.dicom_port),
                    "TELECONSULT_BRIDGE_AE_TITLE": "SPOKE1",
                    "TELECONSULT_BRIDGE_ACCEPT_ANY_AE": "true",
                    "TELECONSULT_BRIDGE_HUB_URL": hub_url,
                    "TELECONSULT_BRIDGE_SPOKE_TOKEN_FILE": token_file,
                    "TELECONSULT_BRIDGE_SPOOL_DIR": str(root / "bridge" / "spool"),
                    "TELECONSULT_BRIDGE_SPOKE_URL": f"http://{self.host}:{self.spoke_port}",
                },
                root,
            )
            self._wait_http("spoke", f"http://{self.host}:{self.spoke_port}/healthz")
            self._print_banner(root, hub_url)
            return self._watch()
        finally:
            self._stop_all()

    def _start(self, name: str, module: list[str], env: dict[str, str], root: Path) -> None:
        log = root / "logs" / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", *module],
                env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        self.children.append(Child(name, popen, log))

    def _wait_http(self, name: str, url: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        child = next(c for c in self.children if c.name == name)
        while time.monotonic() < deadline and not self._stopping:
            if child.popen.poll() is not None:
                raise SystemExit(
                    f"The {name} stopped while starting; see {child.log}:\n{_tail(child.log)}"
                )
            try:
                if requests.get(url, timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        if not self._stopping:
            raise SystemExit(
                f"The {name} did not answer at {url} within {timeout:.0f}s; see {child.log}"
            )

    def _print_banner(self, root: Path, hub_url: str) -> None:
        spoke_url = f"http://{self.host}:{self.spoke_port}"
        print(
            f"""
Teleconsult demo is running (data in {root}; logs in {root / "logs"}).

  Hub (specialists, supervisors, API)   {hub_url}
                                        REST {hub_url}/api/v1   DICOMweb {hub_url}/dicomweb
  Spoke PHC-1 (clinic doctors)          {spoke_url}
  DICOM bridge of PHC-1                 AE title SPOKE1 on {self.host}:{self.dicom_port}
                                        (accepts any calling AE: demo only)

  Logins (password '{DEMO_PASSWORD}', demo only):
    admin · supervisor sup1 · specialists ortho1 radio1 med1 ent1 eye1
    clinic doctors clinic1 clinic2 clinic3 (spoke PHC-1), clinic4 clinic5 (spoke PHC-2)

  Worklist:     findscu -v -W -aec SPOKE1 {self.host} {self.dicom_port} -k PatientID \\
                    -k AccessionNumber -k RequestedProcedureDescription
  Send images:  storescu -aec SPOKE1 {self.host} {self.dicom_port} +sd <folder of .dcm>
                (with AccessionNumber = the case's accession number; otherwise the study waits in
                the clinic's inbox to be attached by hand)

Press Ctrl-C to stop.
""",
            flush=True,
        )

    def _watch(self) -> int:
        while not self._stopping:
            for child in self.children:
                if child.popen.poll() is not None:
                    print(
                        f"The {child.name} stopped (exit {child.popen.returncode}); stopping the "
                        "demo. "
                        f"Last lines of {child.log}:\n{_tail(child.log)}",
                        file=sys.stderr,
                    )
                    return 1
            time.sleep(0.5)
        return 0

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stopping = True

    def _stop_all(self) -> None:
        for child in reversed(self.children):
            if child.popen.poll() is None:
                os.killpg(child.popen.pid, signal.SIGTERM)
        for child in reversed(self.children):
            try:
                child.popen.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(child.popen.pid, signal.SIGKILL)
                child.popen.wait(5)
        if self.children:
            print("Teleconsult demo stopped.", flush=True)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
