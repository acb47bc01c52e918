import stat
from pathlib import Path

from hub.app import create_app


def test_the_factory_makes_a_hub_with_a_generated_private_secret(tmp_path: Path) -> None:
    app = create_app(test_config={"async_mode": "threading", "data_dir": str(tmp_path)})
    secret_file = tmp_path / "secret_key"
    assert app.config["SECRET_KEY"] == secret_file.read_text().strip()
    assert len(app.config["SECRET_KEY"]) >= 48
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert app.test_client().get("/healthz").json == {"status": "ok"}
    again = create_app(test_config={"async_mode": "threading", "data_dir": str(tmp_path)})
    assert again.config["SECRET_KEY"] == app.config["SECRET_KEY"]


def test_a_configured_secret_wins(tmp_path: Path) -> None:
    app = create_app(
        test_config={"async_mode": "threading", "data_dir": str(tmp_path), "secret_key": "x" * 50}
    )
    assert app.config["SECRET_KEY"] == "x" * 50 and not (tmp_path / "secret_key").exists()


def test_unknown_api_paths_answer_json(tmp_path: Path) -> None:
    app = create_app(test_config={"async_mode": "threading", "data_dir": str(tmp_path)})
    r = app.test_client().get("/api/v1/nothing")
    assert r.status_code == 404 and r.json["error"]["code"] == "not_found"
