"""account.add fills missing server settings from the provider preset of the address (R-B2)."""

from __future__ import annotations

from typing import Any

import pytest

from bimmailctl.client import Client
from bimmaild.protocol.errors import InvalidParams


def _bare(email: str, **extra: Any) -> dict[str, Any]:
    return {"name": email.split("@")[0], "email": email, "password": "pw", "test": False, **extra}


async def test_gmail_address_gets_the_gmail_preset(client: Client) -> None:
    result = await client.call("account.add", _bare("someone@gmail.com"))
    account = result["account"]
    assert account["imap"] == {"host": "imap.gmail.com", "port": 993, "security": "ssl",
                               "login": "someone@gmail.com", "password_set": True}  # fmt: skip
    assert (account["smtp"]["host"], account["smtp"]["port"], account["smtp"]["security"]) == (
        "smtp.gmail.com",
        465,
        "ssl",
    )
    assert account["provider"] == "gmail"
    assert any(note.startswith("settings from the Gmail preset (gmail)") for note in result["notes"])
    assert any("app password" in note for note in result["notes"])


async def test_user_settings_win_over_the_preset(client: Client) -> None:
    account = (await client.call("account.add", _bare("me@orange.fr", smtp={"port": 587, "security": "starttls"})))[
        "account"
    ]
    assert account["imap"]["host"] == "imap.orange.fr"
    assert (account["smtp"]["host"], account["smtp"]["port"], account["smtp"]["security"]) == (
        "smtp.orange.fr",
        587,
        "starttls",
    )


async def test_local_part_login_and_alias_domains(client: Client) -> None:
    free = (await client.call("account.add", _bare("jean.dupont@free.fr")))["account"]
    assert free["login"] == "jean.dupont"
    wanadoo = (await client.call("account.add", _bare("old@wanadoo.fr")))["account"]
    assert wanadoo["provider"] == "orange" and wanadoo["imap"]["host"] == "imap.orange.fr"


async def test_forced_preset_and_unknown_domain(client: Client) -> None:
    forced = (await client.call("account.add", _bare("me@my-company.fr", provider="ovh")))["account"]
    assert forced["imap"]["host"] == "ssl0.ovh.net"
    with pytest.raises(InvalidParams) as err:
        await client.call("account.add", _bare("me@unknown-domain.example"))
    assert err.value.field == "imap.host"
    assert "give imap.host, smtp.host" in err.value.message
    with pytest.raises(InvalidParams) as err:
        await client.call("account.add", _bare("me@gmail.com", provider="no-such-provider"))
    assert err.value.field == "provider"


async def test_unverified_preset_says_so(client: Client) -> None:
    result = await client.call("account.add", _bare("me@bbox.fr"))
    assert any("not verified" in note for note in result["notes"])


async def test_lookup_for_front_ends(client: Client) -> None:
    found = await client.call("provider.lookup", {"email": "x@hotmail.com"})
    assert found["provider"]["id"] == "outlook"
    assert "oauth2" in found["provider"]["auth"]
    assert (await client.call("provider.lookup", {"email": "x@nowhere.example"}))["provider"] is None
    with pytest.raises(InvalidParams):
        await client.call("provider.lookup", {"email": "not an address"})
