"""``bimmailctl service install|uninstall|status`` with stand-ins for systemctl and systemd-run:
what is written where, which commands run, and what is said when systemd cannot be used."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bimmailctl.cli import main
from bimmailctl.commands import service
from tests.helpers import BIN_DIR
from tests.service.conftest import ServiceEnv, venv_bimmaild

NO_BUS = "Failed to connect to bus: No medium found"


def test_install_writes_units_with_this_venvs_bimmaild(
    service_env: ServiceEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    service_env.fake("systemctl")
    unit_dir = service_env.home / "units"
    assert main(["service", "install", "--unit-dir", str(unit_dir), "--no-enable"]) == 0
    text = (unit_dir / "bimmaild.service").read_text()
    exec_lines = [line for line in text.splitlines() if line.startswith("ExecStart=")]
    assert exec_lines == [f"ExecStart={venv_bimmaild()}"]
    assert Path(exec_lines[0].removeprefix("ExecStart=")).is_absolute()
    assert text.startswith("# Installed by `bimmailctl service install` (bimmail ")
    assert text.endswith(service.template("bimmaild.service").replace("ExecStart=bimmaild", exec_lines[0]))
    assert (unit_dir / "bimmaild.socket").read_text().endswith(service.template("bimmaild.socket"))
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in unit_dir.iterdir()} == {
        "bimmaild.service": "0o644",
        "bimmaild.socket": "0o644",
    }
    assert service_env.calls() == [], "--no-enable runs no systemctl"
    out = capsys.readouterr().out
    assert "not enabled (--no-enable); to enable: systemctl --user daemon-reload;" in out

    assert main(["service", "install", "--unit-dir", str(unit_dir), "--no-enable"]) == 0
    assert capsys.readouterr().out.startswith(f"unchanged {unit_dir}/bimmaild.socket\n")


def test_install_enables_the_socket_in_the_user_manager(
    service_env: ServiceEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """Default directory: $XDG_CONFIG_HOME/systemd/user; then daemon-reload and enable --now the socket."""
    service_env.fake("systemctl")
    assert main(["service", "install"]) == 0
    assert sorted(p.name for p in service_env.user_unit_dir.iterdir()) == ["bimmaild.service", "bimmaild.socket"]
    assert service_env.calls() == [
        "systemctl --user daemon-reload",
        "systemctl --user enable --now bimmaild.socket",
    ]
    out = capsys.readouterr().out
    socket_path = service_env.runtime / "bimmail" / "bimmaild.sock"
    assert f"bimmaild starts on the first bimmailctl call (socket {socket_path})" in out
    assert "journalctl --user -u bimmaild" in out


def test_autostart_also_enables_the_service(service_env: ServiceEnv, capsys: pytest.CaptureFixture[str]) -> None:
    service_env.fake("systemctl")
    assert main(["service", "install", "--autostart"]) == 0
    assert service_env.calls()[-1] == "systemctl --user enable --now bimmaild.service"
    assert "bimmaild runs now and at every login" in capsys.readouterr().out


@pytest.mark.parametrize("failure", ["no user manager", "no systemctl"])
def test_without_systemd_files_are_written_and_the_commands_told(
    failure: str, service_env: ServiceEnv, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if failure == "no user manager":  # a container, or `su` without a session
        service_env.fake("systemctl")
        monkeypatch.setenv("FAKE_SYSTEMCTL_ERROR", NO_BUS)
    assert main(["service", "install"]) == 1
    assert (service_env.user_unit_dir / "bimmaild.service").exists()
    assert (service_env.user_unit_dir / "bimmaild.socket").exists()
    captured = capsys.readouterr()
    expected_reason = NO_BUS if failure == "no user manager" else "systemctl not found"
    assert f"systemctl --user daemon-reload failed: {expected_reason}" in captured.err
    assert captured.err.endswith(
        "bimmailctl: the unit files are installed but not enabled; once that is fixed, run:\n"
        "  systemctl --user daemon-reload\n"
        "  systemctl --user enable --now bimmaild.socket\n"
    )


def test_json_report(
    service_env: ServiceEnv, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    service_env.fake("systemctl")
    monkeypatch.setenv("FAKE_SYSTEMCTL_ERROR", NO_BUS)
    assert main(["--json", "service", "install"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["bimmaild"] == str(venv_bimmaild()) and report["enabled"] is False
    assert [f["state"] for f in report["files"]] == ["written", "written"]
    assert report["commands"] == [{"argv": ["systemctl", "--user", "daemon-reload"], "ok": False, "output": NO_BUS}]
    assert report["manual"] == ["systemctl --user daemon-reload", "systemctl --user enable --now bimmaild.socket"]


def test_json_error_has_the_daemons_shape(service_env: ServiceEnv, capsys: pytest.CaptureFixture[str]) -> None:
    """A refusal of ``service`` itself reads like any other ``--json`` failure: {code, name, message, field, data}."""
    assert main(["--json", "--user", "bob", "service", "status"]) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert set(error) == {"code", "name", "message", "field", "data"}
    assert error["name"] == "service" and "--user/--system after it" in error["message"]


def test_dry_run_changes_nothing(service_env: ServiceEnv, capsys: pytest.CaptureFixture[str]) -> None:
    service_env.fake("systemctl")
    assert main(["service", "install", "--system", "--dry-run"]) == 0  # no root needed either
    out = capsys.readouterr().out
    assert "--- would write /etc/systemd/system/bimmaild-system.service\n" in out
    assert f"ExecStart={venv_bimmaild()} --system --admin-group bimmail-admin\n" in out
    assert out.endswith(
        "--- would run: systemctl daemon-reload\n--- would run: systemctl enable --now bimmaild-system.socket\n"
    )
    assert service_env.calls() == []
    assert not service_env.user_unit_dir.exists()


def test_namespace_probe_turns_sandboxing_off_where_refused(
    service_env: ServiceEnv, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where user services cannot have namespaces (226/NAMESPACE), a drop-in keeps the daemon startable;
    where they can again, the next install removes it."""
    service_env.fake("systemctl")
    service_env.fake("systemd-run")
    dropin = service_env.user_unit_dir / "bimmaild.service.d" / service.NO_NAMESPACES_DROPIN
    monkeypatch.setenv("FAKE_SYSTEMD_RUN_STATUS", "226")
    assert main(["service", "install"]) == 0
    assert dropin.read_text() == service.no_namespaces_dropin()
    probe = service_env.calls()[0]
    assert probe.startswith("systemd-run --user --wait --quiet --collect -p PrivateUsers=yes -p PrivateTmp=yes")
    assert "file-system sandboxing turned off" in capsys.readouterr().out

    monkeypatch.setenv("FAKE_SYSTEMD_RUN_STATUS", "1")  # the probe itself failed: leave things as they are
    assert main(["service", "install"]) == 0
    assert dropin.exists()

    monkeypatch.setenv("FAKE_SYSTEMD_RUN_STATUS", "0")
    assert main(["service", "install"]) == 0
    assert not dropin.exists()
    assert f"removed   {dropin}" in capsys.readouterr().out


def test_a_daemon_started_by_hand_is_not_shadowed(service_env: ServiceEnv, capsys: pytest.CaptureFixture[str]) -> None:
    """systemd would take the socket's path from under it, and the activated daemon would find its
    data dir locked: enabling waits until it is stopped."""
    service_env.fake("systemctl")  # answers is-active bimmaild.socket: inactive
    path = service_env.runtime / "bimmail" / "bimmaild.sock"
    path.parent.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(1)
        assert main(["service", "install"]) == 1
    assert (service_env.user_unit_dir / "bimmaild.service").exists()
    assert "systemctl --user enable --now bimmaild.socket" not in service_env.calls()
    assert f"a bimmaild not started by systemd serves {path}: stop it first" in capsys.readouterr().err


def test_uninstall_disables_and_removes(service_env: ServiceEnv, capsys: pytest.CaptureFixture[str]) -> None:
    service_env.fake("systemctl")
    assert main(["service", "install"]) == 0
    unit_dir = service_env.user_unit_dir
    dropin = unit_dir / "bimmaild.service.d" / service.NO_NAMESPACES_DROPIN
    dropin.parent.mkdir()
    dropin.write_text(service.no_namespaces_dropin())
    wants = unit_dir / "sockets.target.wants"
    wants.mkdir()
    (wants / "bimmaild.socket").symlink_to(unit_dir / "bimmaild.socket")
    (unit_dir / "other.service").write_text("[Service]\nExecStart=/bin/true\n")
    log_start = len(service_env.calls())
    capsys.readouterr()

    assert main(["service", "uninstall"]) == 0
    assert service_env.calls()[log_start:] == [
        "systemctl --user disable --now bimmaild.socket bimmaild.service",
        "systemctl --user daemon-reload",
    ]
    # The fake `disable` left the enablement link: removed once dangling; other units untouched.
    assert sorted(p.name for p in unit_dir.iterdir()) == ["other.service", "sockets.target.wants"]
    assert list(wants.iterdir()) == []
    out = capsys.readouterr().out
    assert out.index("ran       systemctl --user disable") < out.index("removed   ") < out.index("daemon-reload")

    assert main(["service", "uninstall"]) == 0
    assert "bimmaild's user units are not installed in" in capsys.readouterr().out


def test_uninstall_without_systemctl_removes_and_tells(
    service_env: ServiceEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    unit_dir = service_env.home / "units"
    assert main(["service", "install", "--unit-dir", str(unit_dir), "--no-enable"]) == 0
    assert main(["service", "uninstall", "--unit-dir", str(unit_dir)]) == 1
    assert list(unit_dir.iterdir()) == []
    err = capsys.readouterr().err
    assert "systemctl not found" in err
    assert "  systemctl --user stop bimmaild.socket bimmaild.service\n  systemctl --user daemon-reload\n" in err


def test_status(service_env: ServiceEnv, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    service_env.fake("systemctl")
    assert main(["service", "status", "--user"]) == 0
    assert capsys.readouterr().out == f"user units in {service_env.user_unit_dir}: not installed\n"
    assert main(["service", "install"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("FAKE_ACTIVE", "active")
    monkeypatch.setenv("FAKE_ENABLED", "enabled")
    assert main(["service", "status", "--user"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"user units in {service_env.user_unit_dir}: installed"
    assert lines[2].split() == ["bimmaild.socket", "current", "enabled", "active"]
    assert lines[3].split() == ["bimmaild.service", "current", "enabled", "active"]
    assert f"  ExecStart={venv_bimmaild()}" in lines
    assert f"  socket: {service_env.runtime}/bimmail/bimmaild.sock" in lines

    service_file = service_env.user_unit_dir / "bimmaild.service"
    service_file.write_text(service_file.read_text().replace("RestartSec=5", "RestartSec=1"))
    assert main(["--json", "service", "status", "--user"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert [u["file"] for u in status["units"]] == ["current", "outdated"]
    assert status["notes"] == ["a unit file differs from this bimmailctl's: `bimmailctl service install` rewrites it"]


def test_system_scope_uses_the_system_manager(
    service_env: ServiceEnv, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    service_env.fake("systemctl")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    unit_dir = service_env.home / "system-units"
    assert main(["service", "install", "--system", "--unit-dir", str(unit_dir)]) == 0
    assert sorted(p.name for p in unit_dir.iterdir()) == ["bimmaild-system.service", "bimmaild-system.socket"]
    assert service_env.calls() == ["systemctl daemon-reload", "systemctl enable --now bimmaild-system.socket"]
    assert "logs: journalctl -u bimmaild-system" in capsys.readouterr().out


def test_system_scope_refused_to_non_root(
    service_env: ServiceEnv, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    service_env.fake("systemctl")
    with pytest.raises(service.ServiceError, match=r"sudo .*bimmailctl service install --system") as refused:
        service.check_may_manage(
            service.SCOPES["system"], "install", unit_dir_given=False, runs_systemctl=False, euid=1000
        )
    assert refused.value.code == 6
    service.check_may_manage(service.SCOPES["user"], "install", unit_dir_given=False, runs_systemctl=True, euid=1000)

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    unit_dir = service_env.home / "system-units"
    assert main(["service", "install", "--system", "--unit-dir", str(unit_dir)]) == 6  # would run systemctl
    assert main(["service", "uninstall", "--system", "--unit-dir", str(unit_dir)]) == 6
    assert not unit_dir.exists() and service_env.calls() == []
    assert "the system service is root's" in capsys.readouterr().err
    # Only writing files where you may, running nothing, is allowed (packaging).
    assert main(["service", "install", "--system", "--unit-dir", str(unit_dir), "--no-enable"]) == 0
    assert (unit_dir / "bimmaild-system.service").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="taking another effective uid needs root (CI runs as root)")
def test_system_scope_refused_to_another_uid(service_env: ServiceEnv) -> None:
    """A real process with another effective uid (nobody) is refused before touching /etc."""
    target = Path("/etc/systemd/system/bimmaild-system.service")
    before = target.stat().st_mtime_ns if target.exists() else None
    code = (
        "import os, sys\n"
        "import bimmailctl.cli\n"  # everything imported as root: the venv is under /root (0700)
        "bimmailctl.cli.build_parser().parse_args(['service', 'status'])\n"
        "os.setegid(65534); os.seteuid(65534)\n"
        "sys.exit(bimmailctl.cli.main(['service', 'install', '--system']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 6, done.stderr
    assert "bimmailctl: the system service is root's" in done.stderr
    assert (target.stat().st_mtime_ns if target.exists() else None) == before
    assert service_env.calls() == []


def test_global_user_option_is_not_the_scope(service_env: ServiceEnv, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--user", "martin", "service", "install", "--no-enable"]) == 2
    assert "takes --user/--system after it" in capsys.readouterr().err


def test_no_bimmaild_is_a_clear_error(
    service_env: ServiceEnv, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lonely = service_env.home / "bin" / "bimmailctl"
    lonely.parent.mkdir()
    lonely.write_text("")
    monkeypatch.setattr(sys, "argv", [str(lonely)])
    assert main(["service", "install", "--no-enable"]) == 1
    assert f"no bimmaild found next to bimmailctl ({lonely.parent}) nor on PATH" in capsys.readouterr().err
    assert not service_env.user_unit_dir.exists()
    # On PATH, it is found there.
    (service_env.bin / "bimmaild").symlink_to(venv_bimmaild())
    assert main(["service", "install", "--no-enable"]) == 0
    assert f"ExecStart={service_env.bin}/bimmaild\n" in (service_env.user_unit_dir / "bimmaild.service").read_text()


def test_the_command_needs_no_daemon(service_env: ServiceEnv) -> None:
    """The real bimmailctl, with no daemon anywhere: install, status and uninstall all work."""
    env = {**os.environ, "BIMMAIL_SOCKET": str(service_env.runtime / "nothing-here.sock")}
    service_env.fake("systemctl")
    ctl = str(BIN_DIR / "bimmailctl")
    for args, code in (
        (["service", "install"], 0),
        (["service", "status", "--user"], 0),
        (["service", "uninstall"], 0),
    ):
        done = subprocess.run([ctl, *args], capture_output=True, text=True, env=env, timeout=60, check=False)
        assert done.returncode == code, done.stderr
    assert "systemctl --user enable --now bimmaild.socket" in service_env.calls()
    assert not service_env.user_unit_dir.joinpath("bimmaild.service").exists()
