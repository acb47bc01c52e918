"""`teleconsult cluster` refuses what processes cannot share, and its nginx configuration is
one that nginx itself accepts (checked with `nginx -t` where nginx is installed)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from config.settings import load_settings
from deploy.cluster import NGINX_PATHS, RESTARTS_PER_MINUTE, Cluster, backends, render_nginx_conf
from teleconsult.cli import main
from tests.conftest import need


def _conf(tmp_path: Path, processes: int = 3) -> str:
    return render_nginx_conf(
        backends(processes, 6001),
        "127.0.0.1:6000",
        tmp_path,
        logs=tmp_path,
        client_max_body_size=2_147_483_648,
        connections_per_hub=100,
    )


def test_each_process_has_a_sticky_upstream_with_the_next_one_as_backup(tmp_path: Path) -> None:
    conf = _conf(tmp_path)
    assert "upstream teleconsult_hub_2 {\n        server 127.0.0.1:6002;\n" in conf
    assert "server 127.0.0.1:6003 backup;" in conf
    assert "server 127.0.0.1:6001 backup;" in conf  # the last one's backup wraps around
    assert "proxy_set_header Upgrade $http_upgrade;" in conf
    assert "client_max_body_size 2147483648;" in conf


def test_nginx_accepts_the_configuration(tmp_path: Path) -> None:
    nginx = shutil.which("nginx", path=NGINX_PATHS)
    need(nginx is not None, "nginx is not installed (Debian package nginx)")
    assert nginx is not None
    (tmp_path / "nginx.conf").write_text(_conf(tmp_path))
    result = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"TELECONSULT_HUB_DATABASE_URL": ""}, "needs PostgreSQL"),
        (
            {
                "TELECONSULT_HUB_DATABASE_URL": "postgresql+psycopg2://u@127.0.0.1:1/x",
                "TELECONSULT_HUB_MESSAGE_QUEUE": "",
            },
            "needs Redis",
        ),
    ],
)
def test_the_cluster_refuses_without_shared_database_and_message_queue(
    tmp_path: Path, env: dict[str, str], says: str
) -> None:
    env = {"TELECONSULT_HUB_DATA_DIR": str(tmp_path), "TELECONSULT_HUB_MESSAGE_QUEUE": "", **env}
    result = CliRunner().invoke(main, ["cluster", "--processes", "2"], env=env)
    assert result.exit_code != 0 and says in result.output, result.output
    assert not list(tmp_path.iterdir())  # nothing started, nothing written


def test_a_lost_process_is_started_again_until_it_keeps_failing(tmp_path: Path) -> None:
    cluster = Cluster(load_settings("hub"), 1, "127.0.0.1", 0, 0, "nginx")
    crashing = [sys.executable, "-c", "print('started', flush=True); raise SystemExit(3)"]
    cluster._start("hub-1", crashing, {}, tmp_path)
    try:
        assert cluster._watch() == 1
    finally:
        cluster._stop_all()
    starts = (tmp_path / "hub-1.log").read_text().count("started")
    assert starts == 1 + RESTARTS_PER_MINUTE
