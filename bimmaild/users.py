"""Who is asking, and what they may do (R-L3).

Identity comes from the socket only: the peer's uid (``SO_PEERCRED``), read by
the server when the connection is accepted — never from anything the client
sends.  An administrator may then *act as* another local user (``hello``'s
``act_as``), which is how ``bimmailctl --user NAME`` works.

Per-user mode (the default): the daemon serves the uid it runs as, who is its
administrator.  System mode (``bimmaild --system``): one daemon serves every
local user; administrators are root, the daemon's own uid and the members of
the admin group (``--admin-group``, default ``bimmail-admin``).  The group is
read from the system at each check, so adding someone to it takes effect
without a restart.

The right to configure one's own accounts is per user: an administrator's
decision when there is one (``users.may_configure``), else the daemon's
default (``--default-config-right``).  Administrators always have it.
"""

from __future__ import annotations

import grp
import os
import pwd
import sqlite3
import stat
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bimmaild.protocol.errors import InvalidParams, NotFound, PermissionDenied
from bimmaild.store.db import Database

DEFAULT_ADMIN_GROUP = "bimmail-admin"
_KNOWN = (  # a user named by an administrator: known, not seen
    "INSERT INTO users (uid, name, first_seen_at, last_seen_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (uid) DO UPDATE SET name = excluded.name"
)
_SEEN = _KNOWN + ", last_seen_at = excluded.last_seen_at"


SEEN_EVERY = 60.0  # seconds: how stale a user's last_seen_at may be


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


@dataclass(frozen=True)
class Identity:
    """A connection's users: ``peer`` is who connected, ``uid`` whom the requests act for."""

    peer: int
    uid: int

    @property
    def acting_for_other(self) -> bool:
        return self.peer != self.uid


class Users:
    def __init__(
        self,
        db: Database,
        *,
        system: bool,
        admin_group: str = DEFAULT_ADMIN_GROUP,
        default_may_configure: bool = True,
    ) -> None:
        self.db = db
        self.system = system
        self.admin_group = admin_group
        self.default_may_configure = default_may_configure
        self.daemon_uid = os.getuid()
        self._greeted: dict[int, float] = {}  # uid -> when its last_seen_at was last written (monotonic)

    # -- who may connect, who is administrator ---------------------------------------------

    def may_connect(self, uid: int) -> bool:
        return self.system or uid == self.daemon_uid

    def is_admin(self, uid: int) -> bool:
        if uid in (0, self.daemon_uid):
            return True
        if not self.system:
            return False
        try:
            group = grp.getgrnam(self.admin_group)
            entry = pwd.getpwuid(uid)
        except KeyError:
            return False
        return group.gr_gid in os.getgrouplist(entry.pw_name, entry.pw_gid)  # NSS groups too

    def may_configure(self, uid: int) -> bool:
        if self.is_admin(uid):
            return True
        row = self.db.conn.execute("SELECT may_configure FROM users WHERE uid = ?", (uid,)).fetchone()
        if row is None or row["may_configure"] is None:
            return self.default_may_configure
        return bool(row["may_configure"])

    # -- sessions ---------------------------------------------------------------------------

    def greet(self, peer: int, act_as: str | int | None) -> Identity:
        """The identity of a new session; ``act_as`` is for administrators only."""
        # Every ctl call is a session: its "last seen" is written at most once a minute per user,
        # not a write transaction (and fsync) per hello.
        if time.monotonic() - self._greeted.get(peer, -SEEN_EVERY) >= SEEN_EVERY:
            self._seen(peer)
            self._greeted[peer] = time.monotonic()
        if act_as is None:
            return Identity(peer, peer)
        uid = self.resolve(act_as, field="act_as")
        if uid != peer and not self.is_admin(peer):
            raise PermissionDenied(
                "only an administrator can act for another user", field="act_as", data={"user": user_name(peer)}
            )
        self._seen(uid, touch=False)
        return Identity(peer, uid)

    def check_admin(self, identity: Identity) -> None:
        if not self.is_admin(identity.peer):
            raise PermissionDenied(f"{user_name(identity.peer)} is not an administrator of this daemon")

    def check_configure(self, identity: Identity) -> None:
        """An administrator (also acting for someone) may; a user needs the right (R-L3)."""
        if self.is_admin(identity.peer) or self.may_configure(identity.uid):
            return
        raise PermissionDenied(
            f"{user_name(identity.uid)} may not change mail account settings on this computer; "
            "an administrator must allow it (bimmailctl user allow-config "
            f"{user_name(identity.uid)})",
            data={"user": user_name(identity.uid)},
        )

    # -- administration ---------------------------------------------------------------------

    def resolve(self, ref: str | int, *, field: str = "user") -> int:
        """A local user by name or uid (a digit string that is no name is a uid)."""
        try:
            if isinstance(ref, int):
                return pwd.getpwuid(ref).pw_uid
            try:
                return pwd.getpwnam(ref.strip()).pw_uid
            except KeyError:
                if ref.strip().isascii() and ref.strip().isdigit():  # int("²") fails
                    return pwd.getpwuid(int(ref.strip())).pw_uid
                raise
        except KeyError:
            raise NotFound(f"no local user {ref!r}", field=field) from None

    def listing(self) -> list[dict[str, Any]]:
        """Users known to the daemon: seen on the socket, or owning accounts."""
        rows = self.db.conn.execute("SELECT uid FROM users UNION SELECT owner_uid FROM accounts ORDER BY 1").fetchall()
        return [self.public(uid) for (uid,) in rows]

    def public(self, uid: int) -> dict[str, Any]:
        row = self.db.conn.execute("SELECT * FROM users WHERE uid = ?", (uid,)).fetchone()
        accounts = self.db.conn.execute("SELECT count(*) FROM accounts WHERE owner_uid = ?", (uid,)).fetchone()[0]
        decided = None if row is None or row["may_configure"] is None else bool(row["may_configure"])
        return {
            "uid": uid,
            "name": user_name(uid),
            "accounts": accounts,
            "is_admin": self.is_admin(uid),
            "may_configure": self.may_configure(uid),
            "decision": "default" if decided is None else ("allowed" if decided else "denied"),
            "last_seen_at": row["last_seen_at"] if row is not None else None,
        }

    def set_right(self, ref: str | int, allow: bool | None) -> dict[str, Any]:
        """Grant (True), withdraw (False) or return to the default (None) a user's right."""
        uid = self.resolve(ref)
        with self.db.transaction() as conn:
            self._seen(uid, conn=conn, touch=False)
            conn.execute(
                "UPDATE users SET may_configure = ? WHERE uid = ?", (None if allow is None else int(allow), uid)
            )
        return self.public(uid)

    def _seen(self, uid: int, *, conn: sqlite3.Connection | None = None, touch: bool = True) -> None:
        now = _now()
        sql = _SEEN if touch else _KNOWN
        if conn is not None:
            conn.execute(sql, (uid, user_name(uid), now, now))
            return
        with self.db.transaction() as txn:
            txn.execute(sql, (uid, user_name(uid), now, now))


def readable_by(path: str, uid: int, field: str) -> None:
    """System mode: the daemon (root) reads files a user names (the CA file) only when that user
    could read them too — else a user could make it read files they may not.  The file must be
    readable and every directory above it searchable by the user."""
    if uid == 0:
        return
    try:
        entry = pwd.getpwuid(uid)
        target = Path(path).resolve(strict=True)
        groups = set(os.getgrouplist(entry.pw_name, entry.pw_gid))  # NSS (sssd, LDAP) included, unlike getgrall
        allowed = _permits(target.stat(), uid, groups, stat.S_IRUSR) and all(
            _permits(parent.stat(), uid, groups, stat.S_IXUSR) for parent in target.parents
        )
    except (OSError, KeyError):
        allowed = False
    if not allowed:
        raise InvalidParams(f"cannot read {path}, or {user_name(uid)} may not", field=field)


def _permits(st: os.stat_result, uid: int, groups: set[int], user_bit: int) -> bool:
    """POSIX: the class that matches (owner, else group, else others) decides alone."""
    if st.st_uid == uid:
        return bool(st.st_mode & user_bit)
    if st.st_gid in groups:
        return bool(st.st_mode & (user_bit >> 3))
    return bool(st.st_mode & (user_bit >> 6))
