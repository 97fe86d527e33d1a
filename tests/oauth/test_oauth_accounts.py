"""OAuth2 accounts end to end: the real daemon, the test OAuth2 server, Dovecot's oauth2 passdb
(IMAP logins checked by the real Dovecot through token introspection) and the SMTP test server
checking XOAUTH2 against the same token server.  No internet: the issuer is registered as a
custom one whose endpoints are the local server's.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bimmailctl.client import Client
from bimmaild.imap.connection import ImapConnection
from bimmaild.imap.errors import AuthenticationFailed
from bimmaild.protocol.errors import AuthFailed, Busy, InvalidParams, NotFound
from tests.helpers import BIN_DIR, RunningDaemon
from tests.servers.fixtures import OAuthServers
from tests.servers.oauth import DEVICE_GRANT, browse

ISSUER = "testid"


def message(i: int) -> bytes:
    return f"From: a@example.org\r\nTo: b@example.org\r\nSubject: m{i}\r\nMessage-ID: <m{i}@oauth>\r\n\r\nbody {i}\r\n".encode()


async def register(client: Client, servers: OAuthServers) -> None:
    await client.call("oauth.client.set", {
        "issuer": ISSUER, "client_id": servers.client_id, "client_secret": servers.client_secret,
        **servers.provider_params(),
    })  # fmt: skip


async def sign_in(client: Client, servers: OAuthServers, **begin: Any) -> str:
    """What a front-end does: begin, have the user's browser open the URL, wait."""
    if "account" not in begin:
        begin = {"issuer": ISSUER, "email": servers.user.login, **begin}
    begun = await client.call("oauth.begin", begin)
    status, body = await browse(begun["url"])
    assert status == 200 and "Signed in" in body, body
    assert (await client.call("oauth.wait", {"flow": begun["flow"], "timeout": 10}))["done"]
    return str(begun["flow"])


async def add(client: Client, servers: OAuthServers, **extra: Any) -> dict[str, Any]:
    await register(client, servers)
    flow = await sign_in(client, servers)
    params = {**servers.account_params(), "auth": "oauth2", "oauth": {"issuer": ISSUER, "flow": flow}, **extra}
    result: dict[str, Any] = await client.call("account.add", params)
    return result


async def fetch(client: Client) -> dict[str, Any]:
    result = await client.call("fetch", {"accounts": ["Work"], "wait": True})
    account: dict[str, Any] = result["accounts"][0]
    return account


async def test_first_sign_in_then_fetch_and_send(
    client: Client, daemon: RunningDaemon, oauth_servers: OAuthServers, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    servers = oauth_servers
    servers.user.deliver_many([message(i) for i in range(3)])
    added = await add(client, servers)

    [authorization] = servers.oauth.authorizations
    assert authorization["code_challenge_method"] == "S256" and len(authorization["code_challenge"]) == 43
    assert authorization["redirect_uri"].startswith("http://127.0.0.1:") and authorization["state"]
    assert authorization["login_hint"] == servers.user.login
    assert servers.oauth.grants("authorization_code")[0].client_id == servers.client_id
    test = added["test"]
    assert test["ok"], test
    assert "OAUTHBEARER" in next(s["message"] for s in test["imap"]["steps"] if s["step"] == "login")
    assert "XOAUTH2" in next(s["message"] for s in test["smtp"]["steps"] if s["step"] == "login")
    account = added["account"]
    assert account["auth"] == "oauth2" and account["oauth"] == {"issuer": ISSUER, "signed_in": True}

    assert (await fetch(client))["state"] == "ok"
    assert len(await client.call("messages.list", {"account": "Work"})) == 3
    sent = await client.call("send", {"to": "bob@example.net", "subject": "hi", "text": "x"})
    assert sent["state"] == "sent"
    assert [(a.mechanism, a.success) for a in servers.smtp.auth_attempts][-1] == ("XOAUTH2", True)
    assert len(servers.smtp.deliveries) == 1
    assert servers.oauth.refreshes == 0, "the sign-in's access token served every login"

    # The refresh token is a secret: in secrets.json only, never in SQLite, Maildir or outbox.
    [grant] = [r for r in servers.oauth.token_requests if r.grant_type == "authorization_code"]
    [refresh] = servers.oauth.refresh_tokens(servers.user.login)
    stored = b"".join(p.read_bytes() for p in daemon.data_dir.rglob("*") if p.is_file() and p.name != "secrets.json")
    assert refresh.encode() not in stored and refresh in (daemon.data_dir / "secrets.json").read_text()
    assert grant.error is None
    # Nor any token in the log, at debug level (aioimaplib logs every command it sends).
    assert "AUTHENTICATE OAUTHBEARER" in caplog.text
    for token in [refresh, *servers.oauth.access_tokens(servers.user.login)]:
        assert token not in caplog.text


async def test_access_token_renewed_before_it_expires(client: Client, oauth_servers: OAuthServers) -> None:
    """Tokens are renewed when less than 5 minutes are left: a 304-second token is fresh for 4 s
    (room for the sign-in, the add and a fetch on a loaded machine)."""
    oauth_servers.oauth.access_ttl = 304
    await add(client, oauth_servers)
    assert (await fetch(client))["state"] == "ok"
    assert oauth_servers.oauth.refreshes == 0
    await asyncio.sleep(4.2)
    assert (await fetch(client))["state"] == "ok"
    assert oauth_servers.oauth.refreshes == 1
    assert (await fetch(client))["state"] == "ok"
    assert oauth_servers.oauth.refreshes == 1, "the renewed token is used until it is due again"


async def test_refused_token_is_renewed_once_on_reconnect(client: Client, oauth_servers: OAuthServers) -> None:
    """The provider may end a token early (a reconnect after a suspend, a policy change): the
    server's refusal gets one renewed token, for IMAP and for SMTP."""
    await add(client, oauth_servers)
    oauth_servers.oauth.expire_access_tokens()
    assert (await fetch(client))["state"] == "ok"
    assert oauth_servers.oauth.refreshes == 1
    oauth_servers.oauth.expire_access_tokens()
    assert (await client.call("send", {"to": "bob@example.net", "text": "x"}))["state"] == "sent"
    assert oauth_servers.oauth.refreshes == 2
    attempts = [(a.mechanism, a.success) for a in oauth_servers.smtp.auth_attempts]
    assert attempts[-2:] == [("XOAUTH2", False), ("XOAUTH2", True)]


async def test_revoked_grant_needs_attention_and_reauth_recovers(client: Client, oauth_servers: OAuthServers) -> None:
    servers = oauth_servers
    await add(client, servers)
    servers.oauth.revoke(servers.user.login)

    result = await fetch(client)
    assert result["state"] == "needs-attention"
    assert "invalid_grant" in result["error"] and "re-authentication required" in result["error"]
    assert "account reauth" in result["error"]
    refused = len(servers.oauth.grants("refresh_token", ok=False))
    assert refused == 1, "one refresh tried, no loop"
    shown = await client.call("account.show", {"account": "Work"})
    assert shown["status"]["state"] == "needs-attention"

    report = await client.call("account.test", {"account": "Work"})
    assert not report["ok"] and report["imap"]["failed_step"] == "token"
    assert report["imap"]["fields"] == ["oauth.flow"] and len(report["imap"]["steps"]) == 1
    sent = await client.call("send", {"to": "bob@example.net", "text": "x"})
    assert sent["state"] == "failed" and "re-authentication required" in sent["error"]
    assert servers.smtp.deliveries == []

    flow = await sign_in(client, servers, account="Work")
    reauth = await client.call("account.reauth", {"account": "Work", "flow": flow})
    assert any("no longer waits for attention" in n for n in reauth["notes"])
    assert reauth["account"]["oauth"]["signed_in"]
    assert (await fetch(client))["state"] == "ok"
    assert (await client.call("account.test", {"account": "Work"}))["ok"]


async def test_device_sign_in(client: Client, oauth_servers: OAuthServers) -> None:
    servers = oauth_servers
    await register(client, servers)
    begun = await client.call("oauth.begin", {"issuer": ISSUER, "email": servers.user.login, "method": "device"})
    assert begun["method"] == "device" and begun["user_code"] and begun["url"].startswith(servers.oauth.base_url)
    assert not (await client.call("oauth.wait", {"flow": begun["flow"], "timeout": 0}))["done"]
    servers.oauth.approve_device(begun["user_code"], servers.user.login)
    assert (await client.call("oauth.wait", {"flow": begun["flow"], "timeout": 15}))["done"]
    params = {**servers.account_params(), "auth": "oauth2", "oauth": {"issuer": ISSUER, "flow": begun["flow"]}}
    assert (await client.call("account.add", params))["test"]["ok"]
    assert (await fetch(client))["state"] == "ok"


async def test_refused_sign_ins_and_bad_flows(client: Client, oauth_servers: OAuthServers) -> None:
    servers = oauth_servers
    await register(client, servers)
    servers.oauth.deny_next()
    begun = await client.call("oauth.begin", {"issuer": ISSUER})
    status, body = await browse(begun["url"])
    assert status == 200 and "refused" in body
    with pytest.raises(AuthFailed, match="access_denied"):
        await client.call("oauth.wait", {"flow": begun["flow"], "timeout": 5})
    params = {**servers.account_params(), "auth": "oauth2", "oauth": {"issuer": ISSUER, "flow": begun["flow"]}}
    with pytest.raises(AuthFailed):
        await client.call("account.add", params)
    with pytest.raises(NotFound):
        await client.call("oauth.wait", {"flow": "nope"})
    with pytest.raises(InvalidParams) as err:
        await client.call("oauth.begin", {"issuer": "google"})
    assert err.value.field == "issuer" and "oauth client set google" in err.value.message
    with pytest.raises(InvalidParams) as err:  # a test needs a sign-in
        await client.call("account.add", {**servers.account_params(), "auth": "oauth2", "oauth": {"issuer": ISSUER}})
    assert err.value.field == "oauth.flow"

    flow = await sign_in(client, servers)
    added = await client.call("account.add", {**params, "oauth": {"issuer": ISSUER, "flow": flow}})
    assert added["test"]["ok"]
    with pytest.raises(NotFound):  # a sign-in's tokens serve once
        await client.call("account.add", {**params, "name": "Again", "oauth": {"issuer": ISSUER, "flow": flow}})


async def test_introspection_down_is_temporary(client: Client, oauth_servers: OAuthServers) -> None:
    """Dovecot answers NO [UNAVAILABLE] when it cannot reach the introspection endpoint: an error
    to retry, not a token to throw away or a user to bother."""
    await add(client, oauth_servers)
    oauth_servers.oauth.stop()
    try:
        result = await fetch(client)
    finally:
        oauth_servers.oauth.start()
    assert result["state"] == "error" and "temporarily" in result["error"], result
    assert (await fetch(client))["state"] == "ok"


@pytest.mark.parametrize("sasl_ir", [True, False], ids=["sasl-ir", "no-sasl-ir"])
@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER"])
async def test_imap_oauth_mechanisms_against_dovecot(
    oauth_servers: OAuthServers, mechanism: str, sasl_ir: bool
) -> None:
    """Both mechanisms, with and without SASL-IR; a refused token is a prompt NO, never a hang
    (Dovecot's error challenge is answered)."""
    servers = oauth_servers
    token = servers.oauth.issue_tokens(servers.user.login)["access_token"]
    for good in (False, True):
        conn = await ImapConnection.open(
            "127.0.0.1", servers.dovecot.ports["imaps"], "ssl", servers.dovecot.client_context(), 5
        )
        try:
            if not sasl_ir:
                conn.protocol.capabilities.discard("SASL-IR")
            if good:
                assert await conn.login_oauth(servers.user.login, token, mechanism=mechanism) == mechanism
                assert "INBOX" in str(await conn.list_folders())
            else:
                with pytest.raises(AuthenticationFailed):
                    await conn.login_oauth(servers.user.login, "not-a-token", mechanism=mechanism)
        finally:
            await conn.logout()


async def test_ctl_add_and_reauth(daemon: RunningDaemon, oauth_servers: OAuthServers, tmp_path: Path) -> None:
    """bimmailctl as a user runs it: the sign-in address on stderr, a browser following it."""
    servers = oauth_servers
    secret_file = tmp_path / "secret"
    secret_file.write_text(servers.client_secret + "\n")
    sock = str(daemon.socket_path)
    setup = await ctl(sock, "oauth", "client", "set", ISSUER, "--client-id", servers.client_id,
                      "--client-secret-file", str(secret_file), "--auth-url", servers.oauth.authorize_url,
                      "--token-url", servers.oauth.token_url, "--scope", "mail", "--scope", "offline_access")  # fmt: skip
    assert setup[0] == 0 and "(with secret)" in setup[1], setup
    imap, smtp = servers.imap(), servers.smtp_params()
    code, out, err = await ctl(
        sock, "account", "add", "--name", "Work", "--email", servers.user.login, "--auth", "oauth2",
        "--oauth-issuer", ISSUER, "--no-browser", "--imap-host", imap["host"], "--imap-port", str(imap["port"]),
        "--imap-security", "ssl", "--smtp-host", smtp["host"], "--smtp-port", str(smtp["port"]),
        "--smtp-security", "starttls", "--tls-ca-file", servers.ca_file, user=as_browser,
    )  # fmt: skip
    assert code == 0, err
    assert "added account Work" in out and "open this address" in err and "signed in" in err
    code, out, err = await ctl(sock, "account", "reauth", "Work", "--no-browser", user=as_browser)
    assert code == 0 and "signed in account Work" in out, err
    code, out, _ = await ctl(sock, "account", "show", "Work")
    assert code == 0 and "OAuth2 (testid, signed in)" in out, out
    code, out, _ = await ctl(sock, "oauth", "client", "list")
    assert ISSUER in out and "google" in out and "not registered" in out


UserAction = Callable[[str], Awaitable[bool]]


async def as_browser(line: str) -> bool:
    """The user's browser: opens the address the ctl prints (then the ctl's wait ends)."""
    if not line.startswith("http://"):
        return False
    status, _ = await browse(line.strip())
    assert status == 200
    return True


async def ctl(socket: str, *args: str, user: UserAction | None = None) -> tuple[int, str, str]:
    """Run bimmailctl; ``user`` reads its stderr line by line and acts (True: done)."""
    proc = await asyncio.create_subprocess_exec(
        str(BIN_DIR / "bimmailctl"), "--socket", socket, *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")},
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    err_lines: list[str] = []
    if user is not None:
        while line := (await asyncio.wait_for(proc.stderr.readline(), 30)).decode():
            err_lines.append(line)
            if await user(line):
                break
    out, rest = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), "".join(err_lines) + rest.decode()


async def test_ctl_device_sign_in_and_client_removal(daemon: RunningDaemon, oauth_servers: OAuthServers) -> None:
    """`account reauth --device` on a headless machine: the ctl shows a code, the user types it on
    another device (approved at the provider), the account signs in; then the registration goes."""
    servers = oauth_servers
    sock = str(daemon.socket_path)
    async with await Client.connect(daemon.socket_path) as client:
        await add(client, servers)

    async def on_another_device(line: str) -> bool:
        if "enter the code: " not in line:
            return False
        servers.oauth.approve_device(line.rsplit(": ", 1)[1].strip(), servers.user.login)
        return True

    code, out, err = await ctl(sock, "account", "reauth", "Work", "--device", user=on_another_device)
    assert code == 0 and "signed in account Work" in out, err
    assert f"open {servers.oauth.verification_url}" in err
    assert len(servers.oauth.grants(DEVICE_GRANT)) == 1
    code, out, err = await ctl(sock, "fetch", "Work")
    assert code == 0, out + err
    code, out, _ = await ctl(sock, "oauth", "client", "delete", ISSUER)
    assert code == 0 and f"{ISSUER}: registration removed" in out
    code, _, err = await ctl(sock, "account", "reauth", "Work")
    assert code == 2 and f"no OAuth2 client is registered for {ISSUER}" in err, err


async def test_oauth_only_provider_defaults_to_oauth2(client: Client) -> None:
    """Outlook.com takes no password: without one, the account signs in (to be done: reauth)."""
    params = {"name": "Hotmail", "email": "jean@outlook.com", "test": False}
    added = await client.call("account.add", params)
    assert added["account"]["auth"] == "oauth2"
    assert added["account"]["oauth"] == {"issuer": "microsoft", "signed_in": False}
    assert any("not signed in yet" in n for n in added["notes"])
    with_password = await client.call("account.add", {**params, "name": "Old", "password": "app-pw"})
    assert with_password["account"]["auth"] == "password" and with_password["account"]["oauth"] is None
    gmail = await client.call("account.add", {"name": "G", "email": "jean@gmail.com", "test": False, "password": "x"})
    assert gmail["account"]["auth"] == "password"
    with pytest.raises(InvalidParams) as err:  # Gmail's issuer is a preset, but a password is no token
        await client.call("account.add", {"name": "G2", "email": "j@gmail.com", "test": False, "auth": "oauth2",
                                          "password": "x"})  # fmt: skip
    assert err.value.field == "password"
    with pytest.raises(InvalidParams) as err:
        await client.call("account.add", {**params, "name": "X", "email": "x@example.org", "auth": "oauth2",
                                          "imap": {"host": "imap.example.org"}, "smtp": {"host": "smtp.example.org"}})  # fmt: skip
    assert err.value.field == "oauth.issuer", "no preset issuer for this domain"


async def test_switching_between_password_and_oauth2(client: Client, oauth_servers: OAuthServers) -> None:
    servers = oauth_servers
    await add(client, servers)
    with pytest.raises(InvalidParams) as err:
        await client.call("account.modify", {"account": "Work", "auth": "password"})
    assert err.value.field == "password"
    modified = await client.call(
        "account.modify", {"account": "Work", "auth": "password", "password": servers.user.password}
    )
    assert modified["account"]["auth"] == "password" and modified["account"]["imap"]["password_set"]
    assert (await fetch(client))["state"] == "ok"
    with pytest.raises(InvalidParams) as err:
        await client.call("account.modify", {"account": "Work", "auth": "oauth2", "oauth": {"issuer": ISSUER}})
    assert err.value.field == "oauth.flow"
    flow = await sign_in(client, servers, account="Work", issuer=ISSUER)
    reauth = await client.call("account.reauth", {"account": "Work", "flow": flow})
    account = reauth["account"]
    assert account["auth"] == "oauth2" and account["oauth"]["signed_in"] and not account["imap"]["password_set"]
    assert (await fetch(client))["state"] == "ok"


async def test_ctl_signs_in_for_an_oauth_only_provider(daemon: RunningDaemon) -> None:
    """No --auth and no password for an Outlook.com address: the ctl goes for the sign-in, and
    says what is missing (the client registration) rather than prompting for a useless password."""
    code, _, err = await ctl(str(daemon.socket_path), "account", "add", "--name", "H", "--email", "j@outlook.com")
    assert code == 2 and "signs in with OAuth2 only: starting the sign-in" in err, err
    assert "oauth client set microsoft --client-id" in err


async def test_sign_ins_under_way_are_bounded(client: Client, oauth_servers: OAuthServers) -> None:
    """Each sign-in holds a port for minutes: a client cannot open them without end."""
    await register(client, oauth_servers)
    begun = [await client.call("oauth.begin", {"issuer": ISSUER}) for _ in range(8)]
    with pytest.raises(Busy):
        await client.call("oauth.begin", {"issuer": ISSUER})
    status, _ = await browse(begun[0]["url"])  # one finishes: room for another
    assert status == 200
    assert (await client.call("oauth.wait", {"flow": begun[0]["flow"], "timeout": 5}))["done"]
    assert (await client.call("oauth.begin", {"issuer": ISSUER}))["flow"]
