"""Account management through the real socket (R-A1, R-A2, R-B1, R-B3, R-E2, R-L1, R-L2, R-X1, R-X2)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import trustme

from bimmailctl.client import Client
from bimmaild.protocol.errors import ConfirmationRequired, Conflict, InvalidParams, NotFound
from tests.helpers import RunningDaemon, account_params


async def _rows(daemon: RunningDaemon) -> list[dict[str, Any]]:
    """The accounts table as stored, read with a separate connection."""
    conn = sqlite3.connect(daemon.data_dir / "bimmail.sqlite3")
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM accounts ORDER BY id")]
    finally:
        conn.close()


async def test_add_then_list_and_show(client: Client) -> None:
    """R-A1: name, address, login defaulting to the address, password (only 'set')."""
    result = await client.call("account.add", account_params())
    account = result["account"]
    assert account["name"] == "Work"
    assert account["login"] == "me@example.org"
    assert account["imap"] == {
        "host": "imap.example.org",
        "port": 993,
        "security": "ssl",
        "login": "me@example.org",
        "password_set": True,
    }
    assert account["smtp"]["security"] == "starttls" and account["smtp"]["auth"] is True
    assert account["trash_folder"] == "BIMoffice" and account["separator"] == ","
    assert account["enabled"] and account["auto_fetch"] and account["primary"]
    assert "password" not in str(result).replace("password_set", "").replace("'auth': 'password'", "")
    listed = await client.call("account.list")
    assert [a["name"] for a in listed] == ["Work"]
    assert await client.call("account.show", {"account": "work"}) == listed[0]  # names are case-insensitive
    assert await client.call("account.show", {"account": account["id"]}) == listed[0]
    assert await client.call("account.show", {"account": str(account["id"])}) == listed[0]


async def test_ports_default_from_security(client: Client) -> None:
    """R-B1: security ssl/starttls/none; a missing port follows the security."""
    params = account_params(
        imap={"host": "h.example", "security": "starttls"}, smtp={"host": "h.example", "security": "ssl"}
    )
    account = (await client.call("account.add", params))["account"]
    assert (account["imap"]["port"], account["smtp"]["port"]) == (143, 465)
    # Changing security moves a default port along, but never a port the user chose.
    modified = await client.call(
        "account.modify", {"account": "Work", "smtp": {"security": "starttls"}, "imap": {"security": "ssl"}}
    )
    assert (modified["account"]["imap"]["port"], modified["account"]["smtp"]["port"]) == (993, 587)
    assert any("smtp.port set to 587" in n for n in modified["notes"])
    await client.call("account.modify", {"account": "Work", "imap": {"port": 1993}})
    again = await client.call("account.modify", {"account": "Work", "imap": {"security": "starttls"}})
    assert again["account"]["imap"]["port"] == 1993


async def test_modify_changes_only_given_fields(client: Client) -> None:
    before = (await client.call("account.add", account_params()))["account"]
    after = (await client.call("account.modify", {"account": "Work", "smtp": {"port": 465, "security": "ssl"}}))[
        "account"
    ]
    assert after["smtp"]["port"] == 465 and after["smtp"]["security"] == "ssl"
    for key in ("name", "email", "imap", "trash_folder", "separator", "enabled", "auto_fetch", "primary", "created_at"):
        assert after[key] == before[key], key
    renamed = (await client.call("account.modify", {"account": "Work", "name": "Office", "login": "me"}))["account"]
    assert renamed["name"] == "Office" and renamed["login"] == "me" and renamed["imap"]["login"] == "me"
    reset = (await client.call("account.modify", {"account": "Office", "login": ""}))["account"]
    assert reset["login"] == "me@example.org"  # R-A1: empty login means the address


async def test_separate_auth(client: Client) -> None:
    """R-A2: separate IMAP and SMTP logins and passwords instead of the single pair."""
    params = account_params(
        separate_auth=True,
        imap={"host": "imap.example.org", "login": "imap-user", "password": "imap-pw"},
        smtp={"host": "smtp.example.org", "login": "smtp-user", "password": "smtp-pw"},
    )
    del params["password"]
    account = (await client.call("account.add", params))["account"]
    assert account["separate_auth"]
    assert (account["imap"]["login"], account["smtp"]["login"]) == ("imap-user", "smtp-user")
    assert account["imap"]["password_set"] and account["smtp"]["password_set"]

    # The shared password is not used with separate auth: refused, not silently ignored.
    with pytest.raises(InvalidParams) as err:
        await client.call("account.modify", {"account": "Work", "password": "x"})
    assert err.value.field == "password"
    # Back to one pair: the shared password is then required.
    with pytest.raises(InvalidParams) as err:
        await client.call("account.modify", {"account": "Work", "separate_auth": False})
    assert err.value.field == "password"
    single = (await client.call("account.modify", {"account": "Work", "separate_auth": False, "password": "one"}))[
        "account"
    ]
    assert single["imap"]["login"] == "me@example.org" and single["imap"]["password_set"]


async def test_separate_auth_requires_each_password(client: Client) -> None:
    params = account_params(separate_auth=True, imap={"host": "h.example", "password": "p"}, smtp={"host": "h.example"})
    del params["password"]
    with pytest.raises(InvalidParams) as err:
        await client.call("account.add", params)
    assert err.value.field == "smtp.password"
    params["smtp"]["auth"] = False  # no SMTP auth: no SMTP password needed
    account = (await client.call("account.add", params))["account"]
    assert account["smtp"]["auth"] is False


async def test_password_required(client: Client) -> None:
    params = account_params()
    del params["password"]
    with pytest.raises(InvalidParams) as err:
        await client.call("account.add", params)
    assert err.value.field == "password"


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"email": "not-an-address"}, "email"),
        ({"email": "me@exa mple.org"}, "email"),
        ({"email": "@example.org"}, "email"),
        ({"name": "   "}, "name"),
        ({"name": "tab\tname"}, "name"),
        ({"imap": {"host": "bad host!", "port": 993}}, "imap.host"),
        ({"smtp": {"host": "smtp.example.org", "port": 0}}, "smtp.port"),
        ({"smtp": {"host": "smtp.example.org", "security": "tls"}}, "smtp.security"),
        ({"separator": "|"}, "separator"),
        ({"trash_folder": ""}, "trash_folder"),
        ({"tls_ca_file": "relative.pem"}, "tls_ca_file"),
        ({"tls_ca_file": "/nonexistent/ca.pem"}, "tls_ca_file"),
        ({"password": "two\nlines"}, "password"),
    ],
)
async def test_invalid_values_name_the_field_and_store_nothing(
    client: Client, daemon: RunningDaemon, override: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidParams) as err:
        await client.call("account.add", account_params(**override))
    assert err.value.field == field
    assert await _rows(daemon) == []
    assert (
        not (daemon.data_dir / "secrets.json").exists()
        or "account/" not in (daemon.data_dir / "secrets.json").read_text()
    )


async def test_failed_modify_changes_nothing(client: Client, daemon: RunningDaemon) -> None:
    await client.call("account.add", account_params())
    before = await _rows(daemon)
    for bad in ({"imap": {"port": 99999}}, {"email": "x"}, {"smtp": {"host": ""}}, {"name": "   "}):
        with pytest.raises(InvalidParams):
            await client.call("account.modify", {"account": "Work", **bad})
    assert await _rows(daemon) == before


async def test_tls_ca_file_must_be_a_certificate(client: Client, tmp_path: Path) -> None:
    """R-B3: trusting a private CA is explicit and the file must really be one."""
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(InvalidParams) as err:
        await client.call("account.add", account_params(tls_ca_file=str(junk)))
    assert err.value.field == "tls_ca_file"
    ca = trustme.CA()
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    account = (await client.call("account.add", account_params(tls_ca_file=str(pem))))["account"]
    assert account["tls_ca_file"] == str(pem)
    cleared = (await client.call("account.modify", {"account": "Work", "tls_ca_file": None}))["account"]
    assert cleared["tls_ca_file"] is None


async def test_duplicate_name_is_a_conflict(client: Client) -> None:
    await client.call("account.add", account_params())
    with pytest.raises(Conflict) as err:
        await client.call("account.add", account_params(name="WORK", email="other@example.org"))
    assert err.value.field == "name"
    await client.call("account.add", account_params(name="Home", email="home@example.org"))
    with pytest.raises(Conflict):
        await client.call("account.modify", {"account": "Home", "name": "work"})


async def test_concurrent_adds_with_one_name_make_one_account(client: Client, daemon: RunningDaemon) -> None:
    results = await asyncio.gather(
        *(client.call("account.add", account_params(email=f"u{i}@example.org")) for i in range(8)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException))
    assert len(await _rows(daemon)) == 1


async def test_primary_rules(client: Client, daemon: RunningDaemon) -> None:
    """R-E2: at most one primary; the first account is primary; setting one unsets the other."""
    await client.call("account.add", account_params())
    home = await client.call("account.add", account_params(name="Home", email="home@example.org"))
    assert not home["account"]["primary"]
    result = await client.call("account.primary", {"account": "Home"})
    assert result["account"]["primary"] and result["previous"] == "Work"
    assert [(a["name"], a["primary"]) for a in await client.call("account.list")] == [("Work", False), ("Home", True)]
    third = await client.call("account.add", account_params(name="Third", email="t@example.org", primary=True))
    assert third["account"]["primary"]
    assert sum(r["is_primary"] for r in await _rows(daemon)) == 1
    none_left = await client.call("account.modify", {"account": "Third", "primary": False})
    assert "there is no primary account now" in none_left["notes"]
    assert not any(a["primary"] for a in await client.call("account.list"))


async def test_enable_disable(client: Client) -> None:
    """R-L1: the enabled checkbox, toggled at any time."""
    await client.call("account.add", account_params(enabled=False))
    assert not (await client.call("account.show", {"account": "Work"}))["enabled"]
    assert (await client.call("account.enable", {"account": "Work"}))["account"]["enabled"]
    assert not (await client.call("account.disable", {"account": "Work"}))["account"]["enabled"]
    status = await client.call("status")
    assert status["accounts"] == {"total": 1, "enabled": 0, "primary": "Work"}


async def test_stable_order(client: Client) -> None:
    """R-L2: listed in a stable order (creation), whatever is renamed or toggled."""
    for name in ("Zeta", "Alpha", "Mid"):
        await client.call("account.add", account_params(name=name, email=f"{name.lower()}@example.org"))
    await client.call("account.modify", {"account": "Alpha", "name": "Aardvark"})
    await client.call("account.disable", {"account": "Zeta"})
    assert [a["name"] for a in await client.call("account.list")] == ["Zeta", "Aardvark", "Mid"]


async def test_delete_requires_confirmation(client: Client, daemon: RunningDaemon) -> None:
    """R-X1: the protocol requires confirm: true."""
    await client.call("account.add", account_params())
    with pytest.raises(ConfirmationRequired) as err:
        await client.call("account.delete", {"account": "Work"})
    assert err.value.field == "confirm"
    assert len(await _rows(daemon)) == 1


async def test_delete_removes_everything_and_readd_starts_fresh(client: Client, daemon: RunningDaemon) -> None:
    """R-X2: settings, secrets and local data go; the same account added again starts from nothing."""
    first = (await client.call("account.add", account_params(separator=";", trash_folder="Poubelle")))["account"]
    mail_dir = daemon.data_dir / "mail" / str(first["id"])
    (mail_dir / "INBOX" / "cur").mkdir(parents=True)
    (mail_dir / "INBOX" / "cur" / "1.eml").write_text("Subject: hi\n\nbody\n")
    result = await client.call("account.delete", {"account": "Work", "confirm": True})
    assert result["deleted"] == {"id": first["id"], "name": "Work", "email": "me@example.org"}
    assert result["primary_cleared"] is True
    assert not mail_dir.exists()
    assert "account/" not in (daemon.data_dir / "secrets.json").read_text()
    with pytest.raises(NotFound):
        await client.call("account.show", {"account": "Work"})

    params = account_params()
    del params["password"]
    with pytest.raises(InvalidParams):  # no old password comes back
        await client.call("account.add", params)
    second = (await client.call("account.add", account_params(password="new-pw")))["account"]
    assert second["id"] != first["id"]
    assert (second["separator"], second["trash_folder"]) == (",", "BIMoffice")
    assert not (daemon.data_dir / "mail" / str(second["id"])).exists()


async def test_unknown_account_is_not_found(client: Client) -> None:
    for method in ("account.show", "account.primary", "account.enable", "account.disable"):
        with pytest.raises(NotFound) as err:
            await client.call(method, {"account": "nope"})
        assert err.value.field == "account"
    with pytest.raises(NotFound):
        await client.call("account.modify", {"account": 99, "name": "x"})
    with pytest.raises(NotFound):
        await client.call("account.delete", {"account": "nope", "confirm": True})


async def test_account_changed_events(daemon: RunningDaemon, client: Client) -> None:
    async with await Client.connect(daemon.socket_path) as watcher:
        assert await watcher.subscribe(["account.changed"]) == ["account.changed"]
        await client.call("account.add", account_params())
        await client.call("account.disable", {"account": "Work"})
        await client.call("account.delete", {"account": "Work", "confirm": True})
        seen = []
        async for event, params in watcher.events():
            seen.append((event, params["change"], params["account"] and params["account"]["enabled"]))
            if len(seen) == 3:
                break
    assert seen == [
        ("account.changed", "added", True),
        ("account.changed", "modified", False),
        ("account.changed", "deleted", None),
    ]
