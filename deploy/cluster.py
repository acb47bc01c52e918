"""``teleconsult cluster``: several hub processes (eventlet) on one machine behind a real nginx
with sticky sessions, sharing PostgreSQL and Redis: the deployment of record, runnable here.

The hub processes listen on 127.0.0.1 on consecutive ports; nginx (Debian package ``nginx``,
run as a child in the foreground with its own configuration, never the system service) listens
on the public port. Ctrl-C stops them all. A hub process that is lost is started again (nginx
sends its clients to the next process meanwhile); if nginx stops, the cluster stops.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import jinja2
from sqlalchemy.engine import make_url

from config.settings import Settings
from teleconsult.children import die_with_parent, wait_answering
from teleconsult.runtime import secret_key

TEMPLATE = Path(__file__).resolve().parent / "nginx.conf.j2"
NGINX_PATHS = "/usr/sbin:/usr/local/sbin:/usr/bin:/usr/local/bin"
# A hub process lost more often than this within a minute is failing, not lost: stop the cluster.
RESTARTS_PER_MINUTE = 3


class ClusterError(Exception):
    """The cluster cannot start as configured; the message says what to change."""


@dataclass(frozen=True)
class Backend:
    name: str  # what the sticky cookie holds: "1", "2", ...
    address: str  # host:port nginx proxies to
    port: int


def backends(processes: int, first_port: int, host: str = "127.0.0.1") -> list[Backend]:
    return [
        Backend(str(i + 1), f"{host}:{first_port + i}", first_port + i) for i in range(processes)
    ]


def render_nginx_conf(
    hubs: list[Backend],
    listen: str,
    prefix: Path,
    *,
    logs: Path,
    client_max_body_size: int,
    connections_per_hub: int,
    foreground: bool = True,
) -> str:
    """deploy/nginx.conf.j2 for these hub processes: one server on ``listen``, sticky by cookie."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE.parent)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return env.get_template(TEMPLATE.name).render(
        hubs=hubs,
        listen=listen,
        prefix=str(prefix),
        error_log=str(logs / "nginx-error.log"),
        access_log=str(logs / "nginx-access.log"),
        client_max_body_size=client_max_body_size,
        # Each proxied connection holds two: the client's and the hub's.
        worker_connections=2 * connections_per_hub * len(hubs) + 1024,
        worker_processes="auto",
        foreground=foreground,
    )


def check_shared_state(settings: Settings, database_url: str) -> None:
    """Refuse what several processes cannot share: SQLite, or no Redis for their events."""
    if make_url(database_url).get_backend_name() != "postgresql":
        raise ClusterError(
            "A cluster needs PostgreSQL: several hub processes cannot share a SQLite file. Set "
            "TELECONSULT_HUB_DATABASE_URL=postgresql+psycopg2://user@host/db (and run "
            "`teleconsult db upgrade`)."
        )
    if not str(settings.message_queue).startswith(("redis://", "rediss://", "unix://")):
        raise ClusterError(
            "A cluster needs Redis as the hub processes' message queue (Socket.IO events, "
            "presence, rate limits). Set TELECONSULT_HUB_MESSAGE_QUEUE=redis://127.0.0.1:6379/0."
        )


def find_nginx() -> str:
    path = shutil.which("nginx", path=NGINX_PATHS)
    if path is None:
        raise ClusterError("nginx is not installed: apt-get install nginx (Debian package).")
    return path


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    args: list[str]
    env: dict[str, str]
    restarts: list[float] = field(default_factory=list)  # when it was started again


@dataclass
class Cluster:
    """N hub processes and the nginx in front of them, started, watched and stopped together."""

    settings: Settings
    processes: int
    host: str
    port: int
    first_hub_port: int
    nginx: str
    children: list[Child] = field(default_factory=list)
    _stopping: bool = False

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def run(self) -> int:
        data_dir = Path(self.settings.data_dir).resolve()
        logs = data_dir / "cluster-logs"
        logs.mkdir(parents=True, exist_ok=True)
        hubs = backends(self.processes, self.first_hub_port)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        secret_key(self.settings)  # made once here, not raced for by N processes starting at once
        # nginx's workers (user nobody when started by root) need a folder they can reach.
        prefix = Path(tempfile.mkdtemp(prefix="teleconsult-nginx-"))
        try:
            prefix.chmod(0o755)
            for hub in hubs:
                self._start_hub(hub, logs)
            for hub, child in zip(hubs, self.children, strict=True):
                self._wait_http(child, f"http://{hub.address}/healthz")
            if self._stopping:
                return 0
            self._start_nginx(hubs, prefix, logs)
            self._wait_http(self.children[-1], f"{self.url}/healthz")
            if self._stopping:
                return 0
            self._print_banner(hubs, logs)
            return self._watch()
        finally:
            self._stop_all()
            shutil.rmtree(prefix, ignore_errors=True)

    def _start_hub(self, hub: Backend, logs: Path) -> None:
        env = {
            "TELECONSULT_HUB_HOST": "127.0.0.1",
            "TELECONSULT_HUB_PORT": str(hub.port),
            "TELECONSULT_HUB_DATA_DIR": str(Path(self.settings.data_dir).resolve()),
        }
        if not self.settings.public_url:
            env["TELECONSULT_HUB_PUBLIC_URL"] = self.url
        # The hubs listen on 127.0.0.1 behind nginx alone: believe its X-Forwarded-For/-Proto, so
        # sign-in limits count each client's address (not nginx's) and HTTPS gets HSTS.
        env.setdefault(
            "TELECONSULT_HUB_TRUSTED_PROXIES",
            os.environ.get("TELECONSULT_HUB_TRUSTED_PROXIES", "1"),
        )
        self._start(f"hub-{hub.name}", [sys.executable, "-m", "hub"], env, logs)

    def _start_nginx(self, hubs: list[Backend], prefix: Path, logs: Path) -> None:
        conf = prefix / "nginx.conf"
        conf.write_text(
            render_nginx_conf(
                hubs,
                f"{self.host}:{self.port}",
                prefix,
                logs=logs,
                client_max_body_size=int(self.settings.max_upload_bytes),
                connections_per_hub=int(self.settings.max_connections),
            )
        )
        self._start("nginx", [self.nginx, "-p", str(prefix), "-c", str(conf)], {}, logs)

    def _start(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> Child:
        log = logs / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                args,
                env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        child = Child(name, popen, log, args, env)
        self.children = [c for c in self.children if c.name != name] + [child]
        return child

    def _wait_http(self, child: Child, url: str, timeout: float = 60) -> None:
        why = wait_answering(child.popen, url, timeout, lambda: self._stopping)
        if why == "stopped":
            raise ClusterError(
                f"{child.name} stopped while starting; see {child.log}:\n{_tail(child.log)}"
            )
        if why == "timeout":
            raise ClusterError(f"{child.name} did not answer at {url} within {timeout:.0f}s")

    def _print_banner(self, hubs: list[Backend], logs: Path) -> None:
        db = make_url(self.settings.database_url).render_as_string(hide_password=True)
        lines = [
            "",
            f"Teleconsult hub cluster: {len(hubs)} hub process(es) behind nginx at {self.url}",
            *(
                f"  hub process {h.name}   http://{h.address} (pid {c.popen.pid})"
                for h, c in zip(hubs, self.children, strict=False)
            ),
            f"  database        {db}",
            f"  message queue   {self.settings.message_queue}",
            f"  logs            {logs}",
            "A hub process that stops is started again; its clients go to the next one meanwhile.",
            "Press Ctrl-C to stop.",
            "",
        ]
        print("\n".join(lines), flush=True)

    def _watch(self) -> int:
        """Restart a hub process that was lost (its clients go to the next one meanwhile and
        reconnect); stop the cluster if nginx stops, or a hub process keeps failing to start."""
        while not self._stopping:
            for child in list(self.children):
                if child.popen.poll() is None:
                    continue
                now = time.monotonic()
                recent = [t for t in child.restarts if now - t < 60]
                if child.name == "nginx" or len(recent) >= RESTARTS_PER_MINUTE:
                    print(
                        f"{child.name} stopped (exit {child.popen.returncode}); stopping the "
                        f"cluster. Last lines of {child.log}:\n{_tail(child.log)}",
                        file=sys.stderr,
                        flush=True,
                    )
                    return 1
                print(
                    f"{child.name} stopped (exit {child.popen.returncode}); its clients go to "
                    "the next process meanwhile. Starting it again.",
                    file=sys.stderr,
                    flush=True,
                )
                again = self._start(child.name, child.args, child.env, child.log.parent)
                again.restarts = [*recent, now]
                print(f"{again.name} is pid {again.popen.pid}.", flush=True)
            time.sleep(0.2)
        return 0

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stopping = True

    def _stop_all(self) -> None:
        # nginx first: no new requests to a stopping hub process.
        order = sorted(self.children, key=lambda c: c.name != "nginx")
        for child in order:
            if child.popen.poll() is None:
                os.killpg(child.popen.pid, signal.SIGTERM)
        for child in order:
            try:
                child.popen.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(child.popen.pid, signal.SIGKILL)
                child.popen.wait(5)
        if self.children:
            print("Teleconsult hub cluster stopped.", flush=True)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
