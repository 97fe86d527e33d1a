"""Access tokens of OAuth2 accounts: kept in memory, renewed before they expire.

The refresh token is the account's secret (slot ``oauth_refresh``); access tokens live an hour
and are never written anywhere.  Every connection asks for a token: a cached one is used while
it has more than ``REFRESH_MARGIN`` left, else it is renewed first — so a reconnect after IDLE
or after a suspend (expiry is wall-clock time, which keeps counting while the machine sleeps)
never logs in with a stale one.  A server that refuses a token anyway gets one renewed token,
once (``renew=True``).

A refresh the provider refuses for good (``invalid_grant``: revoked, expired, password
changed) is ``TokenProblem(attention=True)``: the account waits for ``account reauth`` instead
of asking again at every fetch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from bimmaild.accounts.secrets import Secret, SecretBackend, account_key
from bimmaild.oauth.clients import Client, Clients
from bimmaild.oauth.flow import OAuthError, Tokens, parse_tokens
from bimmaild.oauth.http import EndpointUnreachable, post_form

if TYPE_CHECKING:
    from bimmaild.accounts.model import Account

log = logging.getLogger(__name__)

REFRESH_SLOT = "oauth_refresh"
# Errors of the client registration, not of the user's grant: signing in again will not help.
CLIENT_ERRORS = frozenset({"invalid_client", "unauthorized_client", "invalid_scope"})


class TokenProblem(Exception):
    """No access token now.  ``attention``: the user must act (sign in again, fix the client);
    otherwise it is temporary (the token endpoint is unreachable)."""

    def __init__(self, message: str, *, attention: bool) -> None:
        super().__init__(message)
        self.message = message
        self.attention = attention


def reauth_hint(account: Account) -> str:
    return f"re-authentication required (bimmailctl account reauth {account.name!r})"


class TokenService:
    def __init__(self, clients: Clients, secrets: SecretBackend, clock: Callable[[], float] = time.time) -> None:
        self.clients = clients
        self.secrets = secrets
        self.clock = clock
        self._cache: dict[int, Tokens] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    def client_for(self, account: Account) -> Client:
        issuer = account.oauth_issuer or "?"
        client = self.clients.find(account.owner_uid, issuer)
        if client is None:
            raise TokenProblem(
                f"no OAuth2 client is registered for {issuer} (bimmailctl oauth client set {issuer} --client-id …)",
                attention=True,
            )
        return client

    async def access_token(self, account: Account, *, renew: bool = False) -> Secret:
        """A token valid for at least a few minutes; raises TokenProblem."""
        lock = self._locks.setdefault(account.id, asyncio.Lock())
        async with lock:  # one refresh per account at a time: concurrent connections share it
            cached = self._cache.get(account.id)
            if cached is not None and not renew and cached.fresh(self.clock()):
                return cached.access_token
            return (await self._refresh(account)).access_token

    def remember(self, account_id: int, tokens: Tokens) -> None:
        """Tokens of a sign-in that just happened: the first connection needs no refresh."""
        self._cache[account_id] = tokens

    def forget(self, account_id: int) -> None:
        self._cache.pop(account_id, None)
        self._locks.pop(account_id, None)

    async def _refresh(self, account: Account) -> Tokens:
        client = self.client_for(account)
        refresh = await self.secrets.get(account_key(account.secret_ref, REFRESH_SLOT))
        if refresh is None:
            raise TokenProblem(f"not signed in: {reauth_hint(account)}", attention=True)
        try:
            status, body = await post_form(
                client.issuer.token_url,
                {"grant_type": "refresh_token", "refresh_token": refresh.reveal()},
                client_id=client.client_id,
                client_secret=await self.clients.secret(client),
            )
            tokens = parse_tokens(status, body, self.clock())
        except EndpointUnreachable as exc:
            raise TokenProblem(f"cannot renew the access token: {exc}", attention=False) from None
        except OAuthError as exc:
            self._cache.pop(account.id, None)
            log.warning("account %d: token refresh refused: %s", account.id, exc.error)
            if exc.error in CLIENT_ERRORS:
                raise TokenProblem(
                    f"{client.issuer.id} refused the client registration ({exc}): check bimmailctl oauth client",
                    attention=True,
                ) from None
            if exc.reauth:
                raise TokenProblem(f"{client.issuer.id} refused the sign-in ({exc}): {reauth_hint(account)}",
                                   attention=True) from None  # fmt: skip
            raise TokenProblem(f"cannot renew the access token: {exc}", attention=False) from None
        if tokens.refresh_token is not None and tokens.refresh_token != refresh:
            await self.secrets.put(account_key(account.secret_ref, REFRESH_SLOT), tokens.refresh_token)
        self._cache[account.id] = tokens
        log.info("account %d: access token renewed (valid %d s)", account.id, tokens.expires_at - self.clock())
        return tokens
