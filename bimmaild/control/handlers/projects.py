"""project.* and messages.assign/unassign: the collaborative space (R-C6, R-X2)."""

from __future__ import annotations

import asyncio
from typing import Any

from bimmaild import message_view
from bimmaild.control.handlers.messages import MAX_RAW
from bimmaild.control.router import Router, Session
from bimmaild.projects import Projects
from bimmaild.protocol.errors import StorageError


class ProjectHandlers:
    def __init__(self, projects: Projects) -> None:
        self.projects = projects

    def register(self, router: Router) -> None:
        router.register("project.add", self.add)
        router.register("project.list", self.all)
        router.register("project.messages", self.messages)
        router.register("project.show_message", self.show_message)
        router.register("messages.assign", self.assign)
        router.register("messages.unassign", self.unassign)

    async def add(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        return self.projects.add(params["name"], session.uid)

    async def all(self, session: Session, params: dict[str, Any]) -> list[dict[str, Any]]:
        return self.projects.all(session.uid)

    async def messages(self, session: Session, params: dict[str, Any]) -> list[dict[str, Any]]:
        return self.projects.messages(params["project"], session.uid)

    async def show_message(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        summary, raw, path = await self.projects.message(params["id"], session.uid)
        shown = await asyncio.to_thread(message_view.content, raw)  # CPU-bound: off the event loop
        result = {**summary, "path": str(path), **shown}
        if params["raw"]:
            if len(raw) > MAX_RAW:  # over the frame limit: the answer could not be sent
                raise StorageError(f"message {params['id']} is {len(raw)} bytes; read it from {path}", field="raw")
            result["raw"] = raw
        return result

    async def assign(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        return await self.projects.assign(params["ids"], params["project"], session.uid)

    async def unassign(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        return await self.projects.unassign(params["ids"], params["project"], session.uid)
