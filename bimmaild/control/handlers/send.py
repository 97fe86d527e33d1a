"""send, outbox.* and signature.*: sending mail and the signature lists (R-D1, R-D2, R-F1, R-F2, R-G1)."""

from __future__ import annotations

from typing import Any

from bimmaild.control.router import Router, Session
from bimmaild.send.service import SendService
from bimmaild.send.signatures import Signatures


class SendHandlers:
    def __init__(self, send: SendService, signatures: Signatures) -> None:
        self.send_service = send
        self.signatures = signatures

    def register(self, router: Router) -> None:
        router.register("send", self.send)
        router.register("outbox.list", self.outbox_list)
        router.register("outbox.retry", self.outbox_retry)
        router.register("outbox.cancel", self.outbox_cancel)
        router.register("signature.list", self.signature_list)
        router.register("signature.add", self.signature_add)
        router.register("signature.modify", self.signature_modify)
        router.register("signature.delete", self.signature_delete)
        router.register("signature.move", self.signature_move)
        router.register("signature.default", self.signature_default)
        router.register("signature.preview", self.signature_preview)

    async def send(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        return await self.send_service.send(params, session.uid)

    async def outbox_list(self, session: Session, params: dict[str, Any]) -> list[dict[str, Any]]:
        return self.send_service.listing(params.get("account"), session.uid)

    async def outbox_retry(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        return await self.send_service.retry(params["id"], session.uid)

    async def outbox_cancel(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        return await self.send_service.cancel(params["id"], session.uid)

    async def signature_list(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        return self.signatures.listing(params["account"], session.uid)

    async def signature_add(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        return self.signatures.add(params["account"], params, session.uid)

    async def signature_modify(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        return self.signatures.modify(params["account"], params, session.uid)

    async def signature_delete(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        return self.signatures.delete(params["account"], params["name"], session.uid)

    async def signature_move(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        return self.signatures.move(
            params["account"], params["name"], params.get("direction"), params.get("position"), session.uid
        )

    async def signature_default(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        return self.signatures.set_default(params["account"], params["name"], session.uid)

    async def signature_preview(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        return self.signatures.preview(params["account"], params["name"], session.uid)
