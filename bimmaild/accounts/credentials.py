"""What an account presents at each login: its password, or a fresh OAuth2 access token.

Fetch, push, folder listing and sending all ask here, so none of them has to know how the
account signs in; asking again with ``renew=True`` is the one retry a refused token gets.
"""

from __future__ import annotations

from bimmaild.accounts.model import Account
from bimmaild.accounts.secrets import Secret, SecretBackend, account_key
from bimmaild.oauth.tokens import TokenProblem, TokenService


class Credentials:
    def __init__(self, secrets: SecretBackend, tokens: TokenService | None) -> None:
        self.secrets = secrets
        self.tokens = tokens

    async def secret(self, account: Account, kind: str, *, renew: bool = False) -> Secret | None:
        """The ``kind`` ("imap"/"smtp") password, or the access token (raises TokenProblem)."""
        if account.oauth:
            if self.tokens is None:
                raise TokenProblem("OAuth2 is not available in this daemon", attention=True)
            return await self.tokens.access_token(account, renew=renew)
        slot = f"{kind}_password" if account.separate_auth else "password"
        return await self.secrets.get(account_key(account.secret_ref, slot))
