"""The bimmailctl command itself, as a user or a script runs it, against the real daemon."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
import trustme

from tests.helpers import BIN_DIR, RunningDaemon, run_ctl

ADD_WORK = [
    "account", "add", "--name", "Work", "--email", "me@example.org", "--password-stdin",
    "--imap-host", "imap.example.org", "--imap-port", "993", "--imap-security", "ssl",
    "--smtp-host", "smtp.example.org", "--smtp-port", "587", "--smtp-security", "starttls", "--smtp-auth", "--no-test",
]  # fmt: skip


async def test_issue_walkthrough(daemon: RunningDaemon) -> None:
    """The sequence of the foundation issue, command by command (R-A1, R-B1, R-E2, R-L1, R-L2, R-X1)."""
    sock = daemon.socket_path
    status = await run_ctl(sock, "status")
    assert status.code == 0 and "running" in status.stdout and "0 (0 enabled)" in status.stdout

    added = await run_ctl(sock, *ADD_WORK, stdin="secret\n")
    assert added.code == 0, added.stderr
    assert "added account Work (#1)" in added.stdout

    table = await run_ctl(sock, "account", "list")
    assert table.stdout.splitlines()[0].split() == [
        "ID",
        "NAME",
        "ADDRESS",
        "ENABLED",
        "AUTO-FETCH",
        "PRIMARY",
        "STATE",
    ]
    assert table.stdout.splitlines()[1].split() == ["1", "Work", "me@example.org", "yes", "yes", "*", "new"]

    listed = json.loads((await run_ctl(sock, "--json", "account", "list")).stdout)
    assert json.loads((await run_ctl(sock, "account", "list", "--json")).stdout) == listed, "--json after it too"
    assert {k: listed[0][k] for k in ("id", "name", "email", "enabled", "auto_fetch", "primary")} == {
        "id": 1, "name": "Work", "email": "me@example.org", "enabled": True, "auto_fetch": True, "primary": True,
    }  # fmt: skip

    show = await run_ctl(sock, "account", "show", "Work")
    assert "imap.example.org:993 ssl, login me@example.org, password set" in show.stdout
    assert "secret" not in show.stdout

    modified = await run_ctl(sock, "account", "modify", "Work", "--smtp-port", "465", "--smtp-security", "ssl")
    assert modified.code == 0
    smtp = json.loads((await run_ctl(sock, "--json", "account", "show", "Work")).stdout)["smtp"]
    assert (smtp["port"], smtp["security"]) == (465, "ssl")

    assert (await run_ctl(sock, "account", "primary", "Work")).code == 0
    assert (await run_ctl(sock, "account", "disable", "Work")).code == 0
    assert json.loads((await run_ctl(sock, "--json", "account", "show", "Work")).stdout)["enabled"] is False
    assert (await run_ctl(sock, "account", "enable", "Work")).code == 0

    refused = await run_ctl(sock, "account", "delete", "Work")  # a script, no TTY, no --yes
    assert refused.code == 7
    assert "--yes" in refused.stderr
    deleted = await run_ctl(sock, "account", "delete", "Work", "--yes")
    assert deleted.code == 0 and "deleted account Work" in deleted.stdout
    assert "it was the primary account" in deleted.stdout
    assert json.loads((await run_ctl(sock, "--json", "account", "list")).stdout) == []


async def test_every_field_has_a_flag(daemon: RunningDaemon, tmp_path: Path) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    (tmp_path / "imap.pw").write_text("imap-pw\n")
    (tmp_path / "smtp.pw").write_text("smtp-pw\n")
    result = await run_ctl(
        daemon.socket_path, "--json", "account", "add", "--name", "Full", "--email", "full@example.org",
        "--separate-auth", "--imap-login", "imap-user", "--imap-password-file", str(tmp_path / "imap.pw"),
        "--smtp-login", "smtp-user",
        "--imap-host", "imap.example.org", "--imap-security", "starttls",
        "--smtp-host", "smtp.example.org", "--smtp-security", "none", "--no-smtp-auth",
        "--tls-ca-file", str(ca_file), "--trash-folder", "Corbeille BIM", "--separator", ";",
        "--no-auto-fetch", "--primary", "--disabled", "--no-test",
    )  # fmt: skip
    assert result.code == 0, result.stdout + result.stderr
    account = json.loads(result.stdout)["account"]
    assert account["separate_auth"] is True
    assert account["imap"] == {
        "host": "imap.example.org",
        "port": 143,
        "security": "starttls",
        "login": "imap-user",
        "password_set": True,
    }
    assert account["smtp"] == {
        "host": "smtp.example.org",
        "port": 25,
        "security": "none",
        "auth": False,
        "login": "smtp-user",
        "password_set": False,
    }
    assert (account["tls_ca_file"], account["trash_folder"], account["separator"]) == (
        str(ca_file),
        "Corbeille BIM",
        ";",
    )
    assert (account["auto_fetch"], account["primary"], account["enabled"]) == (False, True, False)

    changed = await run_ctl(
        daemon.socket_path, "--json", "account", "modify", "Full", "--name", "Renamed", "--email", "new@example.org",
        "--smtp-auth", "--smtp-password-file", str(tmp_path / "smtp.pw"), "--no-tls-ca-file", "--auto-fetch",
        "--enabled", "--no-primary", "--separator", ",",
    )  # fmt: skip
    assert changed.code == 0, changed.stderr
    account = json.loads(changed.stdout)["account"]
    assert (account["name"], account["email"], account["smtp"]["auth"], account["smtp"]["password_set"]) == (
        "Renamed", "new@example.org", True, True,
    )  # fmt: skip
    assert (account["tls_ca_file"], account["auto_fetch"], account["enabled"], account["primary"]) == (
        None,
        True,
        True,
        False,
    )

    shared = await run_ctl(
        daemon.socket_path, "account", "modify", "Renamed", "--no-separate-auth", "--login", "shared", "--password-stdin",
        stdin="one-pw\n",
    )  # fmt: skip
    assert shared.code == 0, shared.stderr
    both = json.loads((await run_ctl(daemon.socket_path, "--json", "account", "show", "Renamed")).stdout)
    assert (both["imap"]["login"], both["smtp"]["login"]) == ("shared", "shared")


async def test_separate_passwords_from_stdin_lines(daemon: RunningDaemon) -> None:
    result = await run_ctl(
        daemon.socket_path, "--json", "account", "add", "--name", "Two", "--email", "two@example.org",
        "--separate-auth", "--password-stdin", "--imap-host", "h.example", "--smtp-host", "h.example", "--no-test",
        stdin="imap-line\nsmtp-line\n",
    )  # fmt: skip
    account = json.loads(result.stdout)["account"]
    assert account["imap"]["password_set"] and account["smtp"]["password_set"]
    missing = await run_ctl(
        daemon.socket_path, "account", "add", "--name", "Three", "--email", "3@example.org",
        "--separate-auth", "--password-stdin", "--imap-host", "h.example", "--smtp-host", "h.example",
        stdin="only-imap\n",
    )  # fmt: skip
    assert missing.code == 2 and "line 2" in missing.stderr


@pytest.mark.parametrize(
    ("args", "stdin", "code", "needle"),
    [
        (["account", "show", "Nope"], None, 4, "no account named"),
        (["account", "add", "--name", "X", "--email", "bad", "--imap-host", "h", "--smtp-host", "h", "--password-stdin"], "p\n", 2, "field email"),
        (["account", "add", "--name", "X", "--email", "a@b.org", "--imap-host", "h", "--smtp-host", "h"], "", 2, "field password"),
        (["account", "add", "--name", "X", "--email", "a@b.org", "--imap-host", "h", "--smtp-host", "h", "--imap-port", "70000", "--password-stdin"], "p\n", 2, "field imap.port"),
        (["account", "modify", "Nope", "--auto-fetch"], None, 4, "no account named"),
        (["account", "modify", "Nope"], None, 2, "nothing to change"),
        (["account", "add", "--name", "X"], None, 2, "required"),
        (["account", "add", "--name", "X", "--email", "a@b.org", "--imap-host", "h", "--smtp-host", "h", "--password-file", "/nonexistent"], None, 2, "cannot read password file"),
    ],
)  # fmt: skip
async def test_errors_map_to_documented_exit_codes(
    daemon: RunningDaemon, args: list[str], stdin: str | None, code: int, needle: str
) -> None:
    result = await run_ctl(daemon.socket_path, *args, stdin=stdin)
    assert result.code == code, (result.stdout, result.stderr)
    assert needle in result.stderr


async def test_json_errors_are_structured(daemon: RunningDaemon) -> None:
    result = await run_ctl(daemon.socket_path, "--json", "account", "show", "Nope")
    assert result.code == 4
    assert json.loads(result.stdout)["error"] == {
        "code": 300, "name": "not_found", "message": "no account named or numbered 'Nope'", "field": "account", "data": {},
    }  # fmt: skip


ERROR_KEYS = {"code", "name", "message", "field", "data"}  # README, "Global options"


async def test_ctl_own_json_errors_have_the_daemon_shape(daemon: RunningDaemon, short_dir: Path) -> None:
    """Issue 2 item 7 (--json on every command; audit 23 gap 10): the errors bimmailctl finds itself
    (no daemon, a bad command line) are {code, name, message, field, data} like the daemon's, code null."""
    missing = short_dir / "nothing.sock"
    stopped = await run_ctl(missing, "--json", "status")
    assert stopped.code == 3
    assert json.loads(stopped.stdout)["error"] == {
        "code": None, "name": "daemon_not_running", "message": stopped.stderr.removeprefix("bimmailctl: ").strip(),
        "field": None, "data": {"socket": str(missing)},
    }  # fmt: skip
    cases = [  # argparse's refusal, with --json before or after the command; the ctl's own check
        ["--json", "account", "add", "--name", "X"],
        ["account", "add", "--name", "X", "--json"],
        ["--json", *ADD_WORK[:-1], "--password-file", "/nonexistent"],
    ]
    for args in cases:
        result = await run_ctl(daemon.socket_path, *args)
        assert result.code == 2, args
        error = json.loads(result.stdout)["error"]
        assert set(error) == ERROR_KEYS and (error["code"], error["name"], error["field"], error["data"]) == (
            None, "usage", None, {},
        ), args  # fmt: skip
        assert error["message"] and error["message"] in result.stderr, args  # stderr still says it all
    daemon_error = json.loads((await run_ctl(daemon.socket_path, "--json", "account", "show", "Nope")).stdout)
    assert set(daemon_error["error"]) == ERROR_KEYS


async def test_stopped_daemon_says_how_to_start_it(short_dir: Path) -> None:
    result = await run_ctl(short_dir / "nothing.sock", "account", "list")
    assert result.code == 3
    assert "bimmaild is not running" in result.stderr and "Start it with `bimmaild`" in result.stderr
    via_env = await run_ctl(None, "status", env={"BIMMAIL_SOCKET": str(short_dir / "nothing.sock")})
    assert via_env.code == 3 and str(short_dir / "nothing.sock") in via_env.stderr


async def test_socket_from_environment(daemon: RunningDaemon) -> None:
    result = await run_ctl(None, "--json", "status", env={"BIMMAIL_SOCKET": str(daemon.socket_path)})
    assert result.code == 0 and json.loads(result.stdout)["socket"] == str(daemon.socket_path)


async def _run_on_tty(socket_path: Path, *args: str, answer: str) -> tuple[int, str]:
    """Run the ctl with a pseudo-terminal as stdin/stdout, answering its prompt."""
    master, slave = os.openpty()
    proc = await asyncio.create_subprocess_exec(
        str(BIN_DIR / "bimmailctl"), "--socket", str(socket_path), *args,
        stdin=slave, stdout=slave, stderr=slave,
    )  # fmt: skip
    os.close(slave)
    loop = asyncio.get_running_loop()
    output = b""
    async with asyncio.timeout(20):
        while b"[y/N]" not in output and b"Password" not in output:
            output += await loop.run_in_executor(None, os.read, master, 4096)
        os.write(master, answer.encode() + b"\n")
        code = await proc.wait()
    try:
        while chunk := os.read(master, 4096):
            output += chunk
    except OSError:
        pass  # EIO once the child side is gone
    os.close(master)
    return code, output.decode(errors="replace")


async def test_tty_prompts_for_password_and_confirmation(daemon: RunningDaemon) -> None:
    code, out = await _run_on_tty(
        daemon.socket_path, "account", "add", "--name", "Tty", "--email", "tty@example.org",
        "--imap-host", "h.example", "--smtp-host", "h.example", "--no-test",
        answer="typed-password",
    )  # fmt: skip
    assert code == 0, out
    assert "Password for tty@example.org:" in out and "typed-password" not in out  # hidden input
    code, out = await _run_on_tty(daemon.socket_path, "account", "delete", "Tty", answer="n")
    assert code == 7 and "not deleted" in out
    code, out = await _run_on_tty(daemon.socket_path, "account", "delete", "Tty", answer="y")
    assert code == 0 and "deleted account Tty" in out
