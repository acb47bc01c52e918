"""Load a component's settings: defaults from ``config/<component>.toml``, then an optional
TOML file, then ``TELECONSULT_<COMPONENT>_<KEY>`` environment variables (or
``TELECONSULT_<COMPONENT>_<KEY>_FILE``, the name of a file holding the value, for secrets), then
explicit overrides.

Values from the environment are coerced to the type of the default, so ``port`` stays an int
and ``allowed_aes`` a list (comma separated in the environment).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

COMPONENTS = ("hub", "spoke", "bridge")
_HERE = Path(__file__).resolve().parent


class SettingsError(ValueError):
    """A setting is unknown or cannot be read as the type its default has."""


class Settings(Mapping[str, Any]):
    """Read-only settings of one component, readable as ``s.port`` or ``s["port"]``."""

    def __init__(self, component: str, values: dict[str, Any]) -> None:
        self.component = component
        self._values = values

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"{self.component} has no setting {name!r}") from None

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def replace(self, **changes: Any) -> Settings:
        return Settings(self.component, {**self._values, **changes})

    def __repr__(self) -> str:
        shown = {k: ("***" if _is_secret(k) and v else v) for k, v in self._values.items()}
        return f"Settings({self.component!r}, {shown!r})"


def _is_secret(key: str) -> bool:
    return any(word in key for word in ("secret", "token", "password"))


def _coerce(key: str, raw: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, list):
            return [item.strip() for item in raw.split(",") if item.strip()]
    except ValueError:
        raise SettingsError(f"setting {key!r}: {raw!r} is not a {type(default).__name__}") from None
    return raw


def _read_toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as fh:
        return tomllib.load(fh)


def load_settings(
    component: str,
    file: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Return the settings of ``component`` (``hub``, ``spoke`` or ``bridge``)."""
    if component not in COMPONENTS:
        raise SettingsError(f"unknown component {component!r}")
    env = os.environ if environ is None else environ
    values = _read_toml(_HERE / f"{component}.toml")
    prefix = f"TELECONSULT_{component.upper()}_"
    file = file or env.get(prefix + "CONFIG")
    layers: list[dict[str, Any]] = []
    if file:
        layers.append(_read_toml(Path(file)))
    from_env = {
        key[len(prefix) :].lower(): raw
        for key, raw in env.items()
        if key.startswith(prefix) and key != prefix + "CONFIG"
    }
    for layer in layers:
        _merge(values, layer, component)
    for key, raw in from_env.items():
        if key not in values and key.endswith("_file") and key[:-5] in values:
            # TELECONSULT_<C>_<KEY>_FILE: the value is in that file (a secret kept out of the
            # environment, which /proc/<pid>/environ shows to anyone who may inspect the process)
            key, raw = key[:-5], _read_value_file(Path(raw), prefix + key.upper())
        elif key not in values:
            raise SettingsError(f"unknown {component} setting {key!r} (from {prefix}{key.upper()})")
        values[key] = _coerce(key, raw, values[key])
    if overrides:
        _merge(values, dict(overrides), component)
    return Settings(component, values)


def _read_value_file(path: Path, variable: str) -> str:
    try:
        return path.read_text("utf-8").strip()
    except OSError as exc:
        raise SettingsError(f"{variable}: cannot read {path}: {exc.strerror}") from None


def _merge(values: dict[str, Any], layer: dict[str, Any], component: str) -> None:
    for key, value in layer.items():
        if key not in values:
            raise SettingsError(f"unknown {component} setting {key!r}")
        values[key] = value
