"""Passwords never appear in SQLite, logs, responses, reprs or errors; the file backend is private."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest

from bimmailctl.client import Client
from bimmaild.accounts.secrets import FileSecrets, KeyringSecrets, Secret, choose_backend
from bimmaild.protocol.errors import BimmailError, InvalidParams, SecretsUnavailable
from tests.helpers import RunningDaemon, account_params

PASSWORDS = ("Shared-Pw-7f3a", "Imap-Only-Pw-91c2", "Smtp-Only-Pw-44d0", "New-Shared-Pw-0b9e")


def _all_bytes_under(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.rglob("*") if p.is_file() and p.name != "secrets.json")


async def test_passwords_never_leak(client: Client, daemon: RunningDaemon, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    responses = [await client.call("account.add", account_params(password=PASSWORDS[0]))]
    responses.append(
        await client.call(
            "account.modify",
            {
                "account": "Work",
                "separate_auth": True,
                "imap": {"password": PASSWORDS[1], "login": "i"},
                "smtp": {"password": PASSWORDS[2], "login": "s"},
            },
        )
    )
    responses.append(await client.call("account.list"))
    responses.append(await client.call("account.show", {"account": "Work"}))
    errors = []
    for bad in ({"smtp": {"password": "two\nlines" + PASSWORDS[3]}}, {"password": PASSWORDS[3]}):
        with pytest.raises(InvalidParams) as err:
            await client.call("account.modify", {"account": "Work", **bad})
        errors.append(str(err.value.to_wire()) + repr(err.value))
    responses.append(await client.call("account.delete", {"account": "Work", "confirm": True}))

    stored = _all_bytes_under(daemon.data_dir)  # SQLite file, WAL, mail dirs
    for password in PASSWORDS:
        assert password not in str(responses)
        assert password not in "".join(errors)
        assert password not in caplog.text
        assert password.encode() not in stored


async def test_secrets_file_is_private_and_forgets_deleted_accounts(client: Client, daemon: RunningDaemon) -> None:
    await client.call("account.add", account_params(password=PASSWORDS[0]))
    path = daemon.data_dir / "secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert PASSWORDS[0] in json.loads(path.read_text()).values()
    await client.call("account.modify", {"account": "Work", "password": PASSWORDS[3]})
    assert list(json.loads(path.read_text()).values()) == [PASSWORDS[3]]
    await client.call("account.delete", {"account": "Work", "confirm": True})
    assert json.loads(path.read_text()) == {}


def test_secret_repr_is_redacted() -> None:
    secret = Secret("hunter2")
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in str(secret)
    assert "hunter2" not in f"{secret}"
    assert "hunter2" not in repr({"pw": secret})
    assert secret.reveal() == "hunter2"


def test_file_backend_refuses_a_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    path.write_text('{"account/x/password": "pw"}')
    path.chmod(0o644)
    with pytest.raises(SecretsUnavailable, match="readable by others"):
        FileSecrets(path)
    path.chmod(0o600)
    assert FileSecrets(path).path == path


async def test_file_backend_survives_reopen(tmp_path: Path) -> None:
    store = FileSecrets(tmp_path / "secrets.json")
    await store.put("account/a/password", Secret("one"))
    await store.put("account/b/password", Secret("two"))
    await store.delete("account/a/password")
    reopened = FileSecrets(tmp_path / "secrets.json")
    assert await reopened.get("account/b/password") == Secret("two")
    assert await reopened.get("account/a/password") is None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".secrets.")]  # no temp files left


def test_backend_choice_is_recorded_and_explicit_choice_wins() -> None:
    assert choose_backend("file", "keyring") == "file"
    assert choose_backend("auto", "keyring") == "keyring"  # secrets already there stay found
    assert choose_backend("auto", "file") == "file"
    # No D-Bus Secret Service in this environment: auto falls back to the file.
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        assert choose_backend("auto", None) == "file"
    with pytest.raises(InvalidParams):
        choose_backend("plaintext", None)


async def test_keyring_backend_namespaces_entries_and_reports_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake keyring module: the real Secret Service cannot run here (no session bus)."""
    import keyring

    entries: dict[tuple[str, str], str] = {}
    monkeypatch.setattr(keyring, "set_password", lambda s, u, p: entries.__setitem__((s, u), p))
    monkeypatch.setattr(keyring, "get_password", lambda s, u: entries.get((s, u)))
    one, two = KeyringSecrets("store-one"), KeyringSecrets("store-two")
    await one.put("account/r/password", Secret("pw-1"))
    assert await one.get("account/r/password") == Secret("pw-1")
    assert await two.get("account/r/password") is None
    assert ("bimmail", "store-one/account/r/password") in entries

    def locked(*_: object) -> None:
        raise RuntimeError("collection is locked")

    monkeypatch.setattr(keyring, "get_password", locked)
    with pytest.raises(SecretsUnavailable, match="keyring failed"):
        await one.get("account/r/password")


async def test_status_needs_no_secret_store(
    client: Client, daemon: RunningDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`bimmailctl status` is what one runs when something is wrong — a locked keyring included:
    it shows each account's state without reading a password (account.list reads them all).  The
    locked keyring is simulated at the store's seam: CI has no Secret Service to lock."""
    await client.call("account.add", {"name": "Work", "email": "me@example.org", "password": "pw", "test": False,
                                      "imap": {"host": "imap.example.org"}, "smtp": {"host": "smtp.example.org"}})  # fmt: skip

    async def locked(key: str) -> Secret | None:
        raise SecretsUnavailable("the system keyring did not answer")

    monkeypatch.setattr(daemon.daemon.accounts.secrets, "get", locked)
    with pytest.raises(BimmailError):
        await client.call("account.list")
    status = await client.call("status")
    assert [(a["name"], a["status"]["state"]) for a in status["account_states"]] == [("Work", "new")]
