"""hello, status, subscribe, user.*: the methods about the daemon, the connection and its users."""

from __future__ import annotations

import logging
import os
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
from bimmaild.users import Users, user_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DaemonInfo:
    data_dir: Path
    socket_path: Path
    secret_backend: str
    started_monotonic: float
    started_at: datetime
    mode: str = "user"  # "user": serves its owner; "system": serves every local user


class SystemHandlers:
    def __init__(self, info: DaemonInfo, accounts: AccountService, users: Users, router: Router) -> None:
        self.info = info
        self.accounts = accounts
        self.users = users
        self.router = router

    def register(self, router: Router) -> None:
        router.register("hello", self.hello)
        router.register("status", self.status)
        router.register("subscribe", self.subscribe)
        router.register("user.list", self.user_list)
        router.register("user.allow_config", self.user_allow)
        router.register("user.deny_config", self.user_deny)

    async def hello(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        if session.greeted:
            raise AlreadyGreeted("this connection already said hello")
        if params["protocol"] != PROTOCOL_VERSION:
            raise UnsupportedProtocol(
                f"this daemon speaks protocol {PROTOCOL_VERSION}, not {params['protocol']}",
                field="protocol",
                data={"supported": [PROTOCOL_VERSION]},
            )
        identity = self.users.greet(session.peer_uid, params.get("act_as"))
        session.acting_uid = identity.uid
        session.greeted = True
        session.client = params["client"]
        if identity.acting_for_other:
            log.info("uid %d (%s) acts for %s", identity.peer, user_name(identity.peer), user_name(identity.uid))
        is_admin = self.users.is_admin(identity.peer)
        return {
            "daemon_version": __version__,
            "protocol": PROTOCOL_VERSION,
            "mode": self.info.mode,
            "user": {"uid": identity.uid, "name": user_name(identity.uid)},
            "connected_as": {"uid": identity.peer, "name": user_name(identity.peer)},
            "is_admin": is_admin,
            "may_configure": is_admin or self.users.may_configure(identity.uid),
            "methods": self.router.methods,
            "events": sorted(EVENTS_BY_NAME),
        }

    async def status(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        accounts = self.accounts.all(session.uid)
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
            # Each account's live state, without the secret store (``account.list`` reads it for
            # password_set): ``bimmailctl status`` works with a locked keyring too.
            "account_states": [{"id": a.id, "name": a.name, "status": self.accounts.state(a)} for a in accounts],
            "outbox": dict(
                self.accounts.db.conn.execute(
                    "SELECT o.state, count(*) FROM outbox o JOIN accounts a ON a.id = o.account_id"
                    " WHERE a.owner_uid = ? AND o.state IN ('queued', 'sending', 'failed', 'uncertain')"
                    " GROUP BY o.state",
                    (session.uid,),
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

    async def user_list(self, session: Session, params: dict[str, Any]) -> list[dict[str, Any]]:
        return self.users.listing()

    async def user_allow(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        entry = self.users.set_right(params["user"], True)
        log.info("%s allowed %s to configure their accounts", user_name(session.peer_uid), entry["name"])
        return entry

    async def user_deny(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        entry = self.users.set_right(params["user"], False)
        log.info("%s denied %s the right to configure their accounts", user_name(session.peer_uid), entry["name"])
        return entry
