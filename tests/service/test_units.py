"""The unit files themselves: one source (package data, linked from systemd/), paths that agree
with the client's, ExecStart= quoting, and what systemd-analyze says of them once installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from bimmailctl.cli import main
from bimmailctl.commands import service
from bimmaild.protocol.paths import SYSTEM_SOCKET, default_socket_path
from tests.service.conftest import ServiceEnv, venv_bimmaild

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "bimmailctl" / "units"
NAMES = ["bimmaild-system.service", "bimmaild-system.socket", "bimmaild.service", "bimmaild.socket"]
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or shutil.which("systemd-analyze", path="/usr/bin:/bin")


def _settings(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


def test_systemd_dir_links_to_the_packaged_units() -> None:
    """systemd/ is documentation: links to the one copy that ships, so the two cannot drift."""
    assert sorted(p.name for p in UNITS.iterdir()) == NAMES
    assert sorted(p.name for p in (ROOT / "systemd").iterdir()) == NAMES
    for name in NAMES:
        link = ROOT / "systemd" / name
        assert link.is_symlink(), f"systemd/{name} must link to bimmailctl/units/{name}"
        assert link.resolve() == (UNITS / name).resolve()


def test_units_are_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["bimmailctl"]
    shipped = {p.name for pattern in patterns for p in (ROOT / "bimmailctl").glob(pattern)}
    assert shipped == set(NAMES)
    assert service.template("bimmaild.socket") == (UNITS / "bimmaild.socket").read_text()


def test_socket_paths_agree_with_the_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """%t is $XDG_RUNTIME_DIR in a user unit: the socket unit listens where bimmailctl looks first."""
    user = _settings((UNITS / "bimmaild.socket").read_text())
    assert user["ListenStream"] == ["%t/bimmail/bimmaild.sock"]
    assert (user["SocketMode"], user["DirectoryMode"]) == (["0600"], ["0700"])
    monkeypatch.delenv("BIMMAIL_SOCKET", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert default_socket_path() == Path(user["ListenStream"][0].replace("%t", str(tmp_path)))
    system = _settings((UNITS / "bimmaild-system.socket").read_text())
    assert system["ListenStream"] == [str(SYSTEM_SOCKET)]
    assert system["SocketMode"] == ["0666"]


def test_service_settings() -> None:
    for name, socket_unit in (
        ("bimmaild.service", "bimmaild.socket"),
        ("bimmaild-system.service", "bimmaild-system.socket"),
    ):
        settings = _settings((UNITS / name).read_text())
        for key, value in {
            "Type": "notify", "NotifyAccess": "main", "WatchdogSec": "30", "Restart": "on-failure",
            "RestartSec": "5", "ExecReload": "/bin/kill -HUP $MAINPID", "UMask": "0077",
            "NoNewPrivileges": "yes", "PrivateTmp": "yes", "ProtectSystem": "strict",
            "Requires": socket_unit, "Also": socket_unit,
        }.items():  # fmt: skip
            assert settings.get(key) == [value], (name, key)
        assert settings["ExecStart"][0].split()[0] == "bimmaild", "the template's command, made absolute at install"
    # A RuntimeDirectory= would be removed, the socket unit's socket with it, whenever the service stops.
    assert "RuntimeDirectory" not in _settings((UNITS / "bimmaild-system.service").read_text())


def test_namespace_options_are_the_user_units() -> None:
    """What the install probes, and turns off where refused, is exactly what the unit asks for."""
    settings = _settings((UNITS / "bimmaild.service").read_text())
    for key, value in service.NAMESPACE_OPTIONS.items():
        assert settings[key] == [value], key
    assert settings["ReadWritePaths"] == ["%h/.local/share/bimmail"]
    dropin = _settings(service.no_namespaces_dropin())
    assert dropin == {**{key: ["no"] for key in service.NAMESPACE_OPTIONS}, "ReadWritePaths": [""]}


@pytest.mark.parametrize(
    ("path", "quoted"),
    [
        ("/opt/bimmail/bin/bimmaild", "/opt/bimmail/bin/bimmaild"),
        ("/home/jo/my venv/bin/bimmaild", '"/home/jo/my venv/bin/bimmaild"'),
        ("/srv/100%/$HOME/bimmaild", "/srv/100%%/$HOME/bimmaild"),
        ('/srv/it\'s "x"/bimmaild', '"/srv/it\'s \\"x\\"/bimmaild"'),
    ],
)
def test_exec_path_quoting(path: str, quoted: str) -> None:
    assert service.systemd_quote(Path(path)) == quoted
    assert service._exec_binary(quoted + " --system") == Path(path)


def test_control_characters_refused() -> None:
    with pytest.raises(service.ServiceError, match="control character"):
        service.systemd_quote(Path("/srv/a\nb/bimmaild"))


def _verify(files: list[Path], env: ServiceEnv, *, user: bool) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    argv = [SYSTEMD_ANALYZE, "verify", *(["--user"] if user else []), *map(str, files)]
    environ = {**os.environ, "PATH": os.defpath, "SYSTEMD_LOG_LEVEL": "notice"}
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, env=environ)


needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (Debian package systemd)"
)


@needs_systemd_analyze
@pytest.mark.parametrize("scope", ["user", "system"])
def test_installed_units_pass_systemd_analyze_verify(
    scope: str, service_env: ServiceEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """Installed (ExecStart= absolute: verify wants the binary to exist), with no warning at all."""
    unit_dir = service_env.home / "units"
    assert main(["service", "install", f"--{scope}", "--unit-dir", str(unit_dir), "--no-enable"]) == 0
    files = sorted(unit_dir.iterdir())
    assert [f.name for f in files] == sorted(service.SCOPES[scope].units)
    assert f"ExecStart={venv_bimmaild()}" in (unit_dir / service.SCOPES[scope].service_unit).read_text()
    result = _verify(files, service_env, user=scope == "user")
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@needs_systemd_analyze
def test_verify_catches_what_it_should(service_env: ServiceEnv) -> None:
    """The check above is not vacuous: the template's bare command and an unknown key are reported."""
    bad = service_env.home / "bimmaild.service"
    bad.write_text((UNITS / "bimmaild.service").read_text() + "[Service]\nWatchDogSec=30\n")
    shutil.copy(UNITS / "bimmaild.socket", service_env.home / "bimmaild.socket")
    result = _verify([bad, service_env.home / "bimmaild.socket"], service_env, user=True)
    assert "Command bimmaild is not executable" in result.stderr
    assert "Unknown key name 'WatchDogSec'" in result.stderr or "Unknown key 'WatchDogSec'" in result.stderr


@needs_systemd_analyze
def test_odd_install_path_is_quoted_for_systemd(
    service_env: ServiceEnv, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A virtualenv in a directory with a space, % and $ still gives a unit systemd reads right."""
    venv_bin = service_env.home / "my venv 100% $HOME" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "bimmailctl").write_text("")
    (venv_bin / "bimmaild").symlink_to(venv_bimmaild())
    monkeypatch.setattr("sys.argv", [str(venv_bin / "bimmailctl")])
    unit_dir = service_env.home / "units"
    assert main(["service", "install", "--unit-dir", str(unit_dir), "--no-enable"]) == 0
    text = (unit_dir / "bimmaild.service").read_text()
    assert f'ExecStart="{service_env.home}/my venv 100%% $HOME/bin/bimmaild"\n' in text
    result = _verify(sorted(unit_dir.iterdir()), service_env, user=True)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
