"""The daemon's own settings: built-in defaults, then ``config.toml``, then the command line.

The file lives in the platformdirs user config dir (``~/.config/bimmail/config.toml``), or
``/etc/bimmail/config.toml`` for the system daemon; ``--config PATH`` names another.  A missing
file is fine (the defaults apply); a file with an unknown key or a wrong type is refused with
its path and key, so a typo is never silently ignored.  SIGHUP re-reads it: the settings marked
``reloadable`` take effect at once, the others at the next start (the daemon says so: ``waiting``).
``bimmaild --print-config`` shows the effective value of each setting and where it comes from.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bimmaild.accounts.secrets import BACKEND_CHOICES
from bimmaild.protocol.paths import APP_NAME

LOG_LEVELS = ("debug", "info", "warning", "error")
SYSTEM_CONFIG = Path("/etc") / APP_NAME / "config.toml"


class ConfigError(Exception):
    """The config file cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Setting:
    name: str
    doc: str
    check: Callable[[Any], Any]  # returns the normalised value or raises ValueError(why)
    reloadable: bool = False


def _choice(*choices: str) -> Callable[[Any], Any]:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"one of {', '.join(choices)}")
        return str(value)

    return check


def _path(value: Any) -> Path:
    if not isinstance(value, str) or not value:
        raise ValueError("a path (a non-empty string)")
    return Path(value).expanduser().absolute()


def _number(low: float, high: float, *, integer: bool = False) -> Callable[[Any], Any]:
    def check(value: Any) -> float | int:
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
            raise ValueError("an integer" if integer else "a number")
        if not low <= value <= high:
            raise ValueError(f"between {low:g} and {high:g}")
        return int(value) if integer else float(value)

    return check


SETTINGS: tuple[Setting, ...] = (
    Setting("log_level", "debug, info, warning or error", _choice(*LOG_LEVELS), reloadable=True),
    Setting("socket", "path of the control socket", _path),
    Setting("data_dir", "store directory (SQLite, Maildir, secrets file)", _path),
    Setting("secret_backend", "auto, keyring or file (where passwords are kept)", _choice(*BACKEND_CHOICES)),
    Setting("connect_timeout", "seconds each step of a connection test may wait", _number(0.5, 300)),
    Setting(
        "providers_dir",
        "custom provider presets: Thunderbird autoconfig files (*.xml), each used as a preset",
        _path,
    ),
    Setting(
        "fetch_interval_minutes",
        "automatic fetch interval until one is set with bimmailctl automation",
        _number(1, 1440, integer=True),
        reloadable=True,
    ),
    Setting(
        "safety_stop_share",
        "a fetch that would delete more than this share of a folder's local messages stops and asks",
        _number(0.01, 1.0),
        reloadable=True,
    ),
    Setting(
        "safety_stop_minimum",
        "... and more than this many messages",
        _number(0, 1_000_000, integer=True),
        reloadable=True,
    ),
)
BY_NAME = {s.name: s for s in SETTINGS}


def waiting(started: Effective, now: Effective) -> list[str]:
    """The settings changed since the start that only a restart applies, in ``SETTINGS`` order."""
    return [s.name for s in SETTINGS if not s.reloadable and now[s.name] != started[s.name]]


def default_path(system: bool) -> Path:
    if system:
        return SYSTEM_CONFIG
    from platformdirs import user_config_path

    return user_config_path(APP_NAME, appauthor=False) / "config.toml"


def read_file(path: Path) -> dict[str, Any]:
    """The settings the file sets, checked and normalised; {} when there is no file."""
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    out: dict[str, Any] = {}
    for key, value in raw.items():
        setting = BY_NAME.get(key)
        if setting is None:
            raise ConfigError(f"{path}: unknown setting {key!r} (known: {', '.join(BY_NAME)})")
        try:
            out[key] = setting.check(value)
        except ValueError as exc:
            raise ConfigError(f"{path}: {key} must be {exc}, not {value!r}") from None
    return out


@dataclass(frozen=True)
class Effective:
    """Every setting's value and where it came from ("default", the file, "command line" …)."""

    values: dict[str, Any]
    sources: dict[str, str]
    path: Path
    found: bool

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def render(self) -> str:
        """TOML that, saved as the config file, gives the same daemon; each line says its source."""
        lines = [f"# effective configuration; config file: {self.path} ({'read' if self.found else 'absent'})"]
        for setting in SETTINGS:
            value = self.values[setting.name]
            text = json.dumps(str(value)) if isinstance(value, str | Path) else repr(value)
            lines.append(f"{setting.name} = {text}  # {self.sources[setting.name]}: {setting.doc}")
        return "\n".join(lines) + "\n"


def effective(defaults: Mapping[str, Any], path: Path, overrides: Mapping[str, tuple[Any, str]]) -> Effective:
    """defaults ← the file ← ``overrides`` (name → (value, source); None values are not given)."""
    from_file = read_file(path)
    values, sources = dict(defaults), dict.fromkeys(defaults, "default")
    for key, value in from_file.items():
        values[key], sources[key] = value, "config file"
    for key, (value, source) in overrides.items():
        if value is not None:
            values[key], sources[key] = value, source
    return Effective(values, sources, path, path.exists())
