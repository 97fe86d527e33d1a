"""provider.* methods: the preset database (R-B2)."""

from __future__ import annotations

from typing import Any

from bimmaild.accounts import validation
from bimmaild.accounts.providers import ProviderDatabase
from bimmaild.control.router import Router, Session
from bimmaild.protocol.errors import NotFound


class ProviderHandlers:
    def __init__(self, providers: ProviderDatabase) -> None:
        self.providers = providers

    def register(self, router: Router) -> None:
        router.register("provider.list", self.list)
        router.register("provider.show", self.show)
        router.register("provider.lookup", self.lookup)

    async def list(self, session: Session, params: dict[str, Any]) -> list[dict[str, Any]]:
        return [p.to_public() for p in self.providers.all()]

    async def show(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        provider = self.providers.by_id(params["provider"])
        if provider is None:
            raise NotFound(f"no provider preset {params['provider']!r}", field="provider")
        return provider.to_public()

    async def lookup(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        provider = self.providers.for_address(validation.email_address(params["email"]))
        return {"provider": provider.to_public() if provider else None}
