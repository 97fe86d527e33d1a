"""account.* methods: thin translations between params and AccountService, scoped to the session's user."""

from __future__ import annotations

from typing import Any

from bimmaild.accounts.service import AccountService
from bimmaild.control.router import Router, Session


class AccountHandlers:
    def __init__(self, service: AccountService) -> None:
        self.service = service

    def register(self, router: Router) -> None:
        router.register("account.list", self.list)
        router.register("account.show", self.show)
        router.register("account.add", self.add)
        router.register("account.test", self.test)
        router.register("account.modify", self.modify)
        router.register("account.delete", self.delete)
        router.register("account.primary", self.primary)
        router.register("account.enable", self.enable)
        router.register("account.disable", self.disable)
        router.register("account.reauth", self.reauth)

    async def list(self, session: Session, params: dict[str, Any]) -> list[dict[str, Any]]:
        return [await self.service.public(a) for a in self.service.all(session.uid)]

    async def show(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        return await self.service.public(self.service.find(params["account"], session.uid))

    async def add(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        account, notes, report = await self.service.add(params, session.uid)
        return {
            "account": await self.service.public(account),
            "notes": notes,
            "test": report.to_public() if report else None,
        }

    async def test(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        report, notes = await self.service.test(params.pop("account", None), params, session.uid)
        return {**report.to_public(), "notes": notes}

    async def modify(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        ref = params.pop("account")
        account, notes = await self.service.modify(ref, params, session.uid)
        return {"account": await self.service.public(account), "notes": notes}

    async def delete(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        return await self.service.delete(params["account"], confirm=params["confirm"], owner=session.uid)

    async def primary(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        account, previous = await self.service.make_primary(params["account"], session.uid)
        return {"account": await self.service.public(account), "previous": previous}

    async def enable(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        account = await self.service.set_enabled(params["account"], True, session.uid)
        return {"account": await self.service.public(account)}

    async def disable(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        account = await self.service.set_enabled(params["account"], False, session.uid)
        return {"account": await self.service.public(account)}

    async def reauth(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        account, notes = await self.service.reauth(params["account"], params["flow"], session.uid)
        return {"account": await self.service.public(account), "notes": notes}
