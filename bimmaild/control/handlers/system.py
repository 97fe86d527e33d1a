"""hello, status, subscribe: the methods about the daemon and the connection itself."""

from __future__ import annotations

import os
import pwd
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bimmaild import __version__
from bimmaild.accounts.service import AccountService
from bimmaild.control.router import Router, Session
from bimmaild.protocol.errors import AlreadyGreeted, InvalidParams, UnsupportedProtocol
from bimmaild.protocol.methods import EVENTS_BY_NAME, PROTOCOL_VERSION
from bimmaild.store import journal as journal_q


@dataclass(frozen=True)
class DaemonInfo:
    data_dir: Path
    socket_path: Path
    secret_backend: str
    started_monotonic: float
    started_at: datetime


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


class SystemHandlers:
    def __init__(self, info: DaemonInfo, accounts: AccountService, router: Router) -> None:
        self.info = info
        self.accounts = accounts
        self.router = router

    def register(self, router: Router) -> None:
        router.register("hello", self.hello)
        router.register("status", self.status)
        router.register("subscribe", self.subscribe)

    async def hello(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        if session.greeted:
            raise AlreadyGreeted("this connection already said hello")
        if params["protocol"] != PROTOCOL_VERSION:
            raise UnsupportedProtocol(
                f"this daemon speaks protocol {PROTOCOL_VERSION}, not {params['protocol']}",
                field="protocol",
                data={"supported": [PROTOCOL_VERSION]},
            )
        session.greeted = True
        session.client = params["client"]
        return {
            "daemon_version": __version__,
            "protocol": PROTOCOL_VERSION,
            "user": {"uid": session.peer_uid, "name": _user_name(session.peer_uid)},
            # Per-user mode: the daemon's owner administers it (multi-user mode: issue 8).
            "is_admin": True,
            "may_configure": True,
            "methods": self.router.methods,
            "events": sorted(EVENTS_BY_NAME),
        }

    async def status(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        accounts = self.accounts.all()
        primary = next((a.name for a in accounts if a.primary), None)
        return {
            "daemon_version": __version__,
            "protocol": PROTOCOL_VERSION,
            "pid": os.getpid(),
            "started_at": self.info.started_at.astimezone(UTC).isoformat(timespec="seconds"),
            "uptime_seconds": round(time.monotonic() - self.info.started_monotonic, 3),
            "data_dir": str(self.info.data_dir),
            "socket": str(self.info.socket_path),
            "secret_backend": self.info.secret_backend,
            "accounts": {
                "total": len(accounts),
                "enabled": sum(a.enabled for a in accounts),
                "primary": primary,
            },
            "pending_operations": {a.name: journal_q.count_pending(self.accounts.db.conn, a.id) for a in accounts},
            "outbox": dict(
                self.accounts.db.conn.execute(
                    "SELECT state, count(*) FROM outbox WHERE state IN ('queued', 'sending', 'failed', 'uncertain')"
                    " GROUP BY state"
                ).fetchall()
            ),
        }

    async def subscribe(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        topics = params["topics"]
        for i, topic in enumerate(topics):
            if topic not in EVENTS_BY_NAME:
                raise InvalidParams(
                    f"unknown event {topic!r}; known: {', '.join(sorted(EVENTS_BY_NAME))}",
                    field=f"topics[{i}]",
                )
        session.topics = frozenset(topics)
        return {"topics": sorted(session.topics)}
