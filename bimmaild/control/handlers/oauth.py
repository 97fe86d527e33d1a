"""oauth.* methods: client registrations and sign-ins, scoped to the session's user."""

from __future__ import annotations

from typing import Any

from bimmaild.accounts import validation
from bimmaild.accounts.service import AccountService
from bimmaild.control.router import Router, Session
from bimmaild.oauth.clients import EVERY_USER, Clients
from bimmaild.oauth.flow import OAuthError
from bimmaild.oauth.http import EndpointUnreachable
from bimmaild.oauth.issuers import ISSUER_OF_PROVIDER, PRESETS
from bimmaild.oauth.signin import SignIns, TooManySignIns
from bimmaild.protocol.errors import AuthFailed, Busy, InvalidParams, NotFound, ServerUnreachable
from bimmaild.users import Users


class OAuthHandlers:
    def __init__(self, accounts: AccountService, clients: Clients, sign_ins: SignIns, users: Users) -> None:
        self.accounts = accounts
        self.clients = clients
        self.sign_ins = sign_ins
        self.users = users

    def register(self, router: Router) -> None:
        router.register("oauth.client.set", self.client_set)
        router.register("oauth.client.list", self.client_list)
        router.register("oauth.client.delete", self.client_delete)
        router.register("oauth.begin", self.begin)
        router.register("oauth.wait", self.wait)

    def _owner(self, session: Session, params: dict[str, Any]) -> int:
        if params.pop("for_every_user", False):
            self.users.check_admin(session.identity)
            return EVERY_USER
        return session.uid

    async def client_set(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        owner = self._owner(session, params)
        return (await self.clients.set(owner, params)).to_public()

    async def client_list(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "clients": [c.to_public() for c in self.clients.all(session.uid)],
            "presets": [issuer.to_public() for issuer in PRESETS.values()],
        }

    async def client_delete(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        owner = self._owner(session, params)
        return {"deleted": (await self.clients.delete(owner, str(params["issuer"]).strip().lower())).to_public()}

    async def begin(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        issuer, hint = self._issuer(session, params)
        client = self.clients.find(session.uid, issuer)
        if client is None:
            raise InvalidParams(
                f"no OAuth2 client is registered for {issuer}: register the application you created at the "
                f"provider with: bimmailctl oauth client set {issuer} --client-id …",
                field="issuer",
            )
        if params["method"] == "device" and not client.issuer.device_url:
            raise InvalidParams(f"{issuer} has no device sign-in for mail: use the browser", field="method")
        try:
            sign_in = await self.sign_ins.begin(session.uid, client, params["method"], hint)
        except EndpointUnreachable as exc:
            raise ServerUnreachable(f"cannot reach {issuer}: {exc}") from None
        except TooManySignIns as exc:
            raise Busy(str(exc)) from None
        except OAuthError as exc:
            raise AuthFailed(f"{issuer} refused to start the sign-in: {exc}") from None
        return sign_in.to_public(self.sign_ins.clock())

    async def wait(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        sign_in = self.sign_ins.get(params["flow"], session.uid)
        if sign_in is None:
            raise NotFound(f"no sign-in {params['flow']!r}", field="flow")
        try:
            tokens = await self.sign_ins.wait(sign_in, params["timeout"])
        except OAuthError as exc:
            if exc.error == "unreachable":
                raise ServerUnreachable(f"the sign-in could not be completed: {exc.description}") from None
            raise AuthFailed(f"the sign-in failed: {exc}", field="flow") from None
        return {"flow": sign_in.id, "done": tokens is not None, "issuer": sign_in.client.issuer.id}

    def _issuer(self, session: Session, params: dict[str, Any]) -> tuple[str, str | None]:
        """The issuer to sign in with, and the address to hint, from issuer, account or email."""
        hint = validation.email_address(params["email"]) if params.get("email") else None
        if params.get("account") is not None:
            account = self.accounts.find(params["account"], session.uid)
            hint = hint or account.email
            issuer = params.get("issuer") or account.oauth_issuer or ISSUER_OF_PROVIDER.get(account.provider or "")
        else:
            issuer = params.get("issuer")
            if not issuer and hint:
                provider = self.accounts.providers.for_address(hint)
                issuer = ISSUER_OF_PROVIDER.get(provider.id) if provider else None
        if not issuer:
            raise InvalidParams(
                "which issuer? give issuer (oauth.client.list), or an account or an email", field="issuer"
            )
        return str(issuer).strip().lower(), hint
