"""The ``teleconsult`` command: run a component, the demo, or an administrator's task."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from config.settings import load_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


@click.group(help="Teleconsult: hub-and-spoke doctor-to-doctor teleconsultation.")
def main() -> None:
    pass


@main.command()
@click.option("--host", help="Address to listen on (setting: host).")
@click.option("--port", type=int, help="Port to listen on (setting: port).")
def hub(host: str | None, port: int | None) -> None:
    """Run the hub (REST, DICOMweb, Socket.IO) from config/hub.toml and TELECONSULT_HUB_*."""
    args = [sys.executable, "-m", "hub"]
    if host:
        args += ["--host", host]
    if port:
        args += ["--port", str(port)]
    # A fresh interpreter, so that eventlet patches before anything else is imported.
    os.execv(sys.executable, args)


@main.group(invoke_without_command=True)
@click.option("--host", help="Address to listen on (setting: host).")
@click.option("--port", type=int, help="Port to listen on (setting: port).")
@click.pass_context
def spoke(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Run a clinic's spoke (or manage spokes: see `teleconsult spoke register`)."""
    if ctx.invoked_subcommand is not None:
        return
    from spoke.serve import main as serve

    argv = (["--host", host] if host else []) + (["--port", str(port)] if port else [])
    serve(argv)


@spoke.command("register")
@click.argument("code")
@click.option("--name", default="", help="The clinic's name, e.g. 'PHC Rampur'.")
@click.option(
    "--ae", "ae_titles", multiple=True, help="AE title of the clinic's bridge (repeatable)."
)
def spoke_register(code: str, name: str, ae_titles: tuple[str, ...]) -> None:
    """Register spoke CODE at the hub (or renew its token) and print its service token."""
    from hub.services.accounts import register_spoke

    with _hub_db() as session:
        spoke_, token = register_spoke(session, code, name, list(ae_titles))
        click.echo(
            f"Spoke {spoke_.code} registered. Its service token (shown once, keep it secret):"
        )
        click.echo(token)
        click.echo(
            "Give it to the clinic's spoke and bridge as TELECONSULT_SPOKE_SPOKE_TOKEN and "
            "TELECONSULT_BRIDGE_SPOKE_TOKEN."
        )


@main.command()
@click.option("--processes", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--host", help="Address nginx listens on (default: the hub's host setting).")
@click.option("--port", type=int, help="Port nginx listens on (default: the hub's port setting).")
@click.option(
    "--hub-port", type=int, help="First hub process's port; the others follow (default: port+1)."
)
def cluster(processes: int, host: str | None, port: int | None, hub_port: int | None) -> None:
    """Run PROCESSES hub processes behind nginx with sticky sessions, on PostgreSQL and Redis
    (TELECONSULT_HUB_DATABASE_URL, TELECONSULT_HUB_MESSAGE_QUEUE). Ctrl-C stops them all."""
    from deploy.cluster import Cluster, ClusterError, check_shared_state, find_nginx
    from hub.serve import schema_is_current

    settings = load_settings("hub")
    url = _database_url("hub")
    try:
        check_shared_state(settings, url)
        nginx = find_nginx()
    except ClusterError as exc:
        raise click.ClickException(str(exc)) from None
    if not schema_is_current(url):
        raise click.ClickException(
            "The hub database is not at the newest schema: run `teleconsult db upgrade` first."
        )
    port = port or int(settings.port)
    runner = Cluster(
        settings.replace(database_url=url),
        processes,
        host or str(settings.host),
        port,
        hub_port or port + 1,
        nginx,
    )
    try:
        sys.exit(runner.run())
    except ClusterError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
def bridge() -> None:
    """Run the clinic's DICOM bridge (C-ECHO, C-STORE, worklist, forwarding to the hub)."""
    from dicom_bridge.__main__ import main as run

    sys.exit(
        run()
    )  # the same as `python -m dicom_bridge`: logging, and a clear error for bad settings


@main.group()
def db() -> None:
    """Database schema tasks."""


@db.command("upgrade")
@click.option("--component", type=click.Choice(["hub", "spoke"]), default="hub", show_default=True)
def db_upgrade(component: str) -> None:
    """Bring the hub's (or a spoke's local) database to the newest schema."""
    from teleconsult.migrations import upgrade

    url = _database_url(component)
    upgrade(component, url)
    click.echo(f"{component} database at {_safe(url)} is at the newest schema.")


@main.group()
def user() -> None:
    """Hub user accounts."""


@user.command("add")
@click.argument("username")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["spoke_doctor", "specialist", "supervisor", "admin"]),
)
@click.option("--name", default="", help="Full name as shown on advice, e.g. 'Dr. A. Rao'.")
@click.option("--spoke", "spoke_code", help="Spoke code, for a clinic doctor.")
@click.option(
    "--specialty",
    "specialties",
    multiple=True,
    help="Specialty code (repeatable), for a specialist.",
)
@click.option("--qualification", default="")
@click.option("--registration-number", default="")
@click.password_option(help="Prompted for when not given.")
def user_add(
    username: str,
    role: str,
    name: str,
    spoke_code: str | None,
    specialties: tuple[str, ...],
    qualification: str,
    registration_number: str,
    password: str,
) -> None:
    """Add a user to the hub."""
    from config.settings import load_settings
    from hub.domain.policy import WorkflowPolicy
    from hub.services.accounts import add_user, ensure_specialties

    policy = WorkflowPolicy.from_settings(load_settings("hub"))  # the ratio the hub runs with
    with _hub_db() as session:
        ensure_specialties(session)
        created = add_user(
            session,
            username,
            password,
            role,
            name=name,
            spoke_code=spoke_code,
            specialties=specialties,
            qualification=qualification,
            registration_number=registration_number,
            supervise=policy,
        )
        click.echo(f"User {created.username} ({created.role}) added.")


@main.command()
@click.option("--hub-port", default=5000, show_default=True)
@click.option("--spoke-port", default=5100, show_default=True, help="Spoke PHC-1.")
@click.option("--dicom-port", default=11112, show_default=True, help="Bridge of PHC-1.")
@click.option("--spoke2-port", type=int, help="Spoke PHC-2 (default: --spoke-port + 1).")
@click.option("--dicom2-port", type=int, help="Bridge of PHC-2 (default: --dicom-port + 1).")
@click.option(
    "--data-dir", default="teleconsult-data", show_default=True, type=click.Path(file_okay=False)
)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address the components listen on."
)
def demo(
    hub_port: int,
    spoke_port: int,
    dicom_port: int,
    spoke2_port: int | None,
    dicom2_port: int | None,
    data_dir: str,
    host: str,
) -> None:
    """Run the hub and two clinics (PHC-1, PHC-2: a spoke and a DICOM bridge each) on this
    machine (SQLite), with demo accounts."""
    from teleconsult.cli.demo import Demo

    sys.exit(Demo(data_dir, host, hub_port, spoke_port, dicom_port, spoke2_port, dicom2_port).run())


@main.command("demo-hub")
@click.argument("action", type=click.Choice(["stop", "start"]))
@click.option(
    "--data-dir", default="teleconsult-data", show_default=True, type=click.Path(file_okay=False)
)
def demo_hub(action: str, data_dir: str) -> None:
    """Stop or start the running demo's hub alone: the clinics keep working offline meanwhile."""
    from teleconsult.cli.demo import hub_control

    pid = hub_control(data_dir, action)
    click.echo(f"Asked the demo (process {pid}) to {action} its hub; its terminal says when done.")


@main.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--case", "case_uid", required=True, help="The case's uid (as the spoke or the hub shows it)."
)
@click.option("--hub-url", help="Default: the spoke's hub_url setting.")
@click.option(
    "--token",
    envvar="TELECONSULT_SEND_TOKEN",
    help="A bearer token (a clinic doctor's login token, or the spoke's service token). "
    "Default: the spoke's spoke_token setting.",
)
@click.option("--batch", default=20, show_default=True, help="Files per STOW-RS request.")
def send(folder: Path, case_uid: str, hub_url: str | None, token: str | None, batch: int) -> None:
    """Send a folder of DICOM files to the hub, linked to a case."""
    from teleconsult.cli.send import send_folder

    settings = load_settings("spoke")
    token = token or settings.spoke_token
    if not token:
        raise click.ClickException("No token: give --token or set TELECONSULT_SPOKE_SPOKE_TOKEN.")
    report = send_folder(folder, hub_url or settings.hub_url, token, case_uid, batch)
    click.echo(f"{report.stored} instance(s) at the hub.")
    for name, reason in report.refused:
        click.echo(f"  {name}: {reason}", err=True)
    if report.refused:
        raise SystemExit(1)


def _database_url(component: str) -> str:
    from teleconsult.db import default_url

    return default_url(load_settings(component))


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@contextmanager
def _hub_db() -> Iterator[Session]:
    """A session on the hub's database that commits on success; domain errors become messages."""
    from shared.errors import TeleconsultError
    from teleconsult.db import Database

    db = Database(_database_url("hub"))
    try:
        with db.session() as session:
            yield session
    except TeleconsultError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        db.dispose()
