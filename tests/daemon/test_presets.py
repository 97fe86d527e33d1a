"""account.add fills missing server settings from the provider preset of the address (R-B1, R-B2)."""

from __future__ import annotations

from typing import Any

import pytest

from bimmailctl.client import Client
from bimmaild.accounts import model, presets
from bimmaild.accounts.providers import load_default
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


# --- a port and its security are one choice (R-B1, R-B2; audit 23 gap 1) ----------------------------


def _server(account: dict[str, Any], kind: str) -> tuple[str, int, str]:
    return account[kind]["host"], account[kind]["port"], account[kind]["security"]


async def test_security_alone_takes_its_port_not_the_presets(client: Client) -> None:
    """R-B1, R-B2: a security without a port gets that security's port, never the preset's other one."""
    result = await client.call("account.add", _bare("me@gmail.com", smtp={"security": "starttls"}))
    assert _server(result["account"], "smtp") == ("smtp.gmail.com", 587, "starttls")
    assert _server(result["account"], "imap") == ("imap.gmail.com", 993, "ssl")
    orange = (await client.call("account.add", _bare("me@orange.fr", name="Orange", imap={"security": "starttls"})))[
        "account"
    ]
    assert _server(orange, "imap") == ("imap.orange.fr", 143, "starttls")
    # The note lists what the preset gave, and only that (no port 465 nor ssl for SMTP).
    preset_note = next(n for n in result["notes"] if n.startswith("settings from the Gmail preset"))
    assert preset_note.endswith(": IMAP imap.gmail.com:993 ssl, smtp.host smtp.gmail.com")
    assert "smtp.port 587 follows smtp.security starttls" in result["notes"]


async def test_port_alone_takes_its_security_or_is_refused(client: Client) -> None:
    """R-B1, R-B2: a usual port brings its security; an unknown port at a preset is refused, naming the field."""
    gmail = (await client.call("account.add", _bare("me@gmail.com", smtp={"port": 587})))["account"]
    assert _server(gmail, "smtp") == ("smtp.gmail.com", 587, "starttls")
    with pytest.raises(InvalidParams) as err:
        await client.call("account.add", _bare("other@gmail.com", smtp={"port": 2525}))
    assert err.value.field == "smtp.security"
    assert "smtp.port 2525" in err.value.message and "give smtp.security" in err.value.message
    # The preset's own unusual port comes with the preset's security (Proton Mail Bridge: 1143 STARTTLS).
    bridge = (await client.call("account.add", _bare("me@proton.me", name="Bridge", imap={"port": 1143})))["account"]
    assert _server(bridge, "imap") == ("127.0.0.1", 1143, "starttls")


async def test_own_host_is_not_filled_from_the_preset(client: Client) -> None:
    """R-B2: a host that is not the preset's is the user's own server: none of its settings come from the preset."""
    result = await client.call("account.add", _bare("me@gmail.com", imap={"host": "mail.example.org"}))
    account = result["account"]
    assert _server(account, "imap") == ("mail.example.org", 993, "ssl")  # the plain defaults
    assert _server(account, "smtp") == ("smtp.gmail.com", 465, "ssl")
    assert account["provider"] == "gmail"  # its SMTP server is still Gmail's
    assert any("imap.host mail.example.org is not the Gmail preset's" in n for n in result["notes"])
    preset_note = next(n for n in result["notes"] if n.startswith("settings from the Gmail preset"))
    assert "imap" not in preset_note.lower().split(":", 1)[1]


async def test_own_hosts_for_both_record_no_provider(client: Client) -> None:
    """R-B2: neither host the preset's: no provider stored (it would change behaviour: Gmail's "no Sent copy")."""
    params = _bare("me@gmail.com", imap={"host": "mail.example.org", "port": 143}, smtp={"host": "smtp.example.org"})
    result = await client.call("account.add", params)
    account = result["account"]
    assert account["provider"] is None
    assert _server(account, "imap") == ("mail.example.org", 143, "starttls")
    assert _server(account, "smtp") == ("smtp.example.org", 587, "starttls")
    assert not any(n.startswith("settings from") or n.startswith("Gmail:") for n in result["notes"])
    assert any("not the Gmail preset's: it is not used" in n for n in result["notes"])
    # A preset named on purpose stays (a tunnel to Gmail is still Gmail), though it fills nothing.
    named = await client.call("account.add", {**params, "name": "Tunnel", "provider": "gmail"})
    assert named["account"]["provider"] == "gmail"
    assert _server(named["account"], "smtp") == ("smtp.example.org", 587, "starttls")
    assert not any(n.startswith("settings from") for n in named["notes"])
    # The same host as the preset's, typed differently, is still the preset's.
    same = await client.call("account.add", _bare("two@gmail.com", imap={"host": "IMAP.Gmail.com."}))
    assert same["account"]["provider"] == "gmail" and same["account"]["imap"]["port"] == 993


async def test_unsaved_test_uses_the_same_rules(client: Client) -> None:
    """R-A3, R-B2: account.test on unsaved settings completes them like account.add (here: refused first)."""
    with pytest.raises(InvalidParams) as err:
        await client.call("account.test", {"email": "me@gmail.com", "imap": {"port": 10993}})
    assert err.value.field == "imap.security"


async def test_modify_moves_port_and_security_together(client: Client) -> None:
    """R-B1: modify follows add: a new security moves the port that went with the old one; a usual port
    given alone brings its security; a port the user chose stays."""
    await client.call("account.add", _bare("me@gmail.com"))
    moved = await client.call("account.modify", {"account": "me", "smtp": {"port": 587}})
    assert _server(moved["account"], "smtp") == ("smtp.gmail.com", 587, "starttls")
    assert "smtp.security set to starttls to match smtp.port 587" in moved["notes"]
    back = await client.call("account.modify", {"account": "me", "smtp": {"security": "ssl"}})
    assert _server(back["account"], "smtp") == ("smtp.gmail.com", 465, "ssl")
    await client.call("account.add", _bare("me@proton.me", name="Bridge"))  # 1143 with STARTTLS
    bridge = await client.call("account.modify", {"account": "Bridge", "imap": {"security": "ssl"}})
    assert bridge["account"]["imap"]["port"] == 993  # 1143 went with the preset's STARTTLS
    custom = await client.call("account.modify", {"account": "me", "imap": {"port": 1993}})
    assert _server(custom["account"], "imap") == ("imap.gmail.com", 1993, "ssl")
    kept = await client.call("account.modify", {"account": "me", "imap": {"security": "starttls"}})
    assert kept["account"]["imap"]["port"] == 1993


# --- the same rules without a daemon (presets is sans-IO) ---------------------------------------------


def _fill(email: str, **flat: Any) -> tuple[str | None, dict[str, Any], list[str]]:
    provider, notes = presets.fill({"email": email, **flat}, presets.choose(load_default(), None, email))
    return (provider.id if provider else None), flat, notes


def _goes_together(kind: str, port: int, security: str, preset: Any) -> bool:
    """A usual pair, or the preset's own one: never, say, 465 with STARTTLS."""
    return model.default_port(kind, security) == port or (preset.port, preset.security) == (port, security)


def test_fill_never_pairs_a_port_with_another_security() -> None:
    """R-B1, R-B2: every preset, every security or usual port given alone: the pair is one that goes together."""
    for provider in load_default().all():
        email = f"me@{provider.domains[0]}" if provider.domains else "me@example.org"
        for kind in presets.KINDS:
            preset = presets.server_of(provider, kind)
            given: list[dict[str, Any]] = [{f"{kind}_security": s} for s in ("ssl", "starttls", "none")]
            given += [{f"{kind}_port": port} for usual_kind, port in presets.USUAL_SECURITY if usual_kind == kind]
            for one in given:
                flat: dict[str, Any] = {"email": email, **one}
                presets.fill(flat, provider)
                assert _goes_together(kind, flat[f"{kind}_port"], flat[f"{kind}_security"], preset), (provider.id, one)


def test_fill_without_preset_infers_security_from_a_usual_port() -> None:
    """R-B1: own servers: 143 means STARTTLS (never SSL on 143); an unusual port keeps the documented default."""
    flat: dict[str, Any] = {"email": "me@example.org", "imap_host": "h", "smtp_host": "h", "imap_port": 143}
    assert presets.fill(flat, None) == (None, ["imap.security starttls follows imap.port 143"])
    assert (flat["imap_security"], flat["smtp_port"], flat["smtp_security"]) == ("starttls", 587, "starttls")
    flat = {"email": "me@example.org", "imap_host": "h", "smtp_host": "h", "imap_port": 1993, "smtp_port": 25}
    presets.fill(flat, None)
    assert (flat["imap_security"], flat["smtp_security"]) == ("ssl", "starttls")  # never "none" on a guess


def test_follow_on_modify() -> None:
    """R-B1: the modify rule, case by case."""
    gmail_smtp = load_default().by_id("gmail").smtp  # type: ignore[union-attr]
    flat: dict[str, Any] = {"smtp_security": "starttls"}
    assert presets.follow(flat, "smtp", (465, "ssl"), gmail_smtp) is not None and flat["smtp_port"] == 587
    flat = {"smtp_security": "starttls"}
    assert presets.follow(flat, "smtp", (2465, "ssl"), None) is None and "smtp_port" not in flat
    flat = {"imap_port": 143}
    assert presets.follow(flat, "imap", (143, "none"), None) is None  # none on 143 goes together already
    flat = {"imap_port": 143}
    assert presets.follow(flat, "imap", (993, "ssl"), None) is not None and flat["imap_security"] == "starttls"
    flat = {"imap_port": 10143}
    assert presets.follow(flat, "imap", (993, "ssl"), None) is None and "imap_security" not in flat


def test_notes_list_exactly_what_was_filled() -> None:
    """R-B2: the preset note names the values used, and hints only come with a preset in use."""
    provider, _flat, notes = _fill("jean@free.fr")
    assert provider == "free"
    assert (
        notes[0]
        == "settings from the Free preset (free): IMAP imap.free.fr:993 ssl, SMTP smtp.free.fr:465 ssl, login jean"
    )
    provider, _flat, notes = _fill("me@gmail.com", imap_host="a.example", smtp_host="b.example")
    assert provider is None
    assert notes == ["your own IMAP and SMTP servers, not the Gmail preset's: it is not used"]
