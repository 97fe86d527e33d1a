"""TokenService against the test OAuth2 server, with a clock the test moves (a suspend)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bimmaild.accounts.model import SETTING_COLUMNS, Account
from bimmaild.accounts.secrets import FileSecrets, Secret, account_key
from bimmaild.oauth.clients import Clients
from bimmaild.oauth.flow import parse_tokens
from bimmaild.oauth.tokens import REFRESH_SLOT, TokenProblem, TokenService
from bimmaild.store.db import Database
from tests.servers.fixtures import OAuthServers


def oauth_account(login: str) -> Account:
    row: dict[str, Any] = dict.fromkeys(SETTING_COLUMNS)
    row.update(
        id=1, secret_ref="ref", owner_uid=os.getuid(), name="Work", email=login, auth="oauth2", oauth_issuer="testid",
        separate_auth=0, smtp_auth=1, auto_fetch=1, enabled=1, is_primary=1, created_at="", updated_at="",
    )  # fmt: skip
    return Account.from_row(row)


async def test_wall_clock_expiry_renews_after_a_suspend(tmp_path: Path, oauth_servers: OAuthServers) -> None:
    """Expiry is wall-clock time: after a night of suspend (monotonic time stood still) the next
    connection renews the token instead of presenting a dead one.  A rotated refresh token
    replaces the stored one; a dead token endpoint is temporary, a revoked grant is not."""
    server, login = oauth_servers.oauth, oauth_servers.user.login
    now = [1_000_000.0]
    db = Database.open(tmp_path)
    try:
        secrets = FileSecrets(tmp_path / "secrets.json")
        clients = Clients(db, secrets)
        await clients.set(os.getuid(), {
            "issuer": "testid", "client_id": oauth_servers.client_id, "client_secret": oauth_servers.client_secret,
            **oauth_servers.provider_params(),
        })  # fmt: skip
        tokens = TokenService(clients, secrets, clock=lambda: now[0])
        account = oauth_account(login)
        issued = server.issue_tokens(login, client_id=oauth_servers.client_id)
        await secrets.put(account_key("ref", REFRESH_SLOT), Secret(issued["refresh_token"]))
        tokens.remember(account.id, parse_tokens(200, issued, now[0]))

        assert (await tokens.access_token(account)).reveal() == issued["access_token"]
        now[0] += 8 * 3600
        renewed = (await tokens.access_token(account)).reveal()
        assert renewed != issued["access_token"] and server.check(renewed) == login and server.refreshes == 1

        server.rotate_refresh = True
        now[0] += 8 * 3600
        await tokens.access_token(account)
        stored = await secrets.get(account_key("ref", REFRESH_SLOT))
        assert stored is not None and stored.reveal() != issued["refresh_token"]
        assert server.refresh_token_valid(stored.reveal()) and not server.refresh_token_valid(issued["refresh_token"])

        server.stop()
        try:
            with pytest.raises(TokenProblem) as down:
                await tokens.access_token(account, renew=True)
        finally:
            server.start()
        assert not down.value.attention and "cannot renew" in down.value.message
        server.revoke(login)
        with pytest.raises(TokenProblem) as revoked:
            await tokens.access_token(account, renew=True)
        assert revoked.value.attention and "re-authentication required" in revoked.value.message
        assert stored.reveal() not in str(revoked.value)
    finally:
        db.close()
