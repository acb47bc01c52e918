from pathlib import Path

import pytest

from config.settings import SettingsError, load_settings


def test_defaults_come_from_the_components_toml() -> None:
    s = load_settings("bridge", environ={})
    assert (s.port, s.ae_title, s.allowed_aes, s.accept_any_ae) == (11112, "SPOKE1", [], False)


def test_environment_overrides_with_the_type_of_the_default() -> None:
    env = {
        "TELECONSULT_BRIDGE_PORT": "4242",
        "TELECONSULT_BRIDGE_ALLOWED_AES": "CT1, US2",
        "TELECONSULT_BRIDGE_ACCEPT_ANY_AE": "yes",
        "TELECONSULT_BRIDGE_RETRY_MAX_S": "2.5",
        "TELECONSULT_HUB_PORT": "1",  # another component's: ignored here
    }
    s = load_settings("bridge", environ=env)
    assert (s.port, s.allowed_aes, s.accept_any_ae, s.retry_max_s) == (
        4242,
        ["CT1", "US2"],
        True,
        2.5,
    )


def test_a_file_layer_sits_between_defaults_and_environment(tmp_path: Path) -> None:
    f = tmp_path / "hub.toml"
    f.write_text('port = 6000\nasync_mode = "threading"\n')
    s = load_settings(
        "hub", environ={"TELECONSULT_HUB_CONFIG": str(f), "TELECONSULT_HUB_PORT": "7000"}
    )
    assert (s.port, s.async_mode) == (7000, "threading")


def test_the_test_config_file_loads() -> None:
    s = load_settings("hub", file=Path("config/test.toml"), environ={})
    assert s.async_mode == "threading"


@pytest.mark.parametrize(
    "env",
    [
        {"TELECONSULT_HUB_PORTT": "1"},
        {"TELECONSULT_HUB_PORT": "five"},
        {"TELECONSULT_HUB_ASYNC_MODE": "x", "TELECONSULT_HUB_TOKEN_TTL_S": "1h"},
    ],
)
def test_unknown_or_unreadable_settings_are_refused_by_name(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        load_settings("hub", environ=env)


def test_secrets_are_not_shown_in_repr() -> None:
    s = load_settings("spoke", environ={"TELECONSULT_SPOKE_SPOKE_TOKEN": "s3cr3t"})
    assert s.spoke_token == "s3cr3t" and "s3cr3t" not in repr(s)
