"""What each account is doing right now, as the services know it (not stored: it is live state).

The sync service, the push (IDLE) watchers and the scheduler write here;
``account show``/``account list``/``status`` read it.  A plain in-memory
registry owned by the daemon, so that services do not need to know each
other to answer "is Work fetching, pushed, when is its next fetch?".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass
class AccountActivity:
    fetching: bool = False
    push: str = "off"  # off | connecting | idle | unsupported | error
    push_error: str | None = None
    next_fetch_at: datetime | None = None
    progress: dict[str, Any] | None = None
    # The last fetch's outcome when the store could not record it (disk full, read-only): shown
    # instead of the stored one until a later outcome is recorded.
    unrecorded: dict[str, Any] | None = None

    def to_public(self) -> dict[str, Any]:
        return {
            "fetching": self.fetching,
            "push": self.push,
            "push_error": self.push_error,
            "next_fetch_at": self.next_fetch_at.isoformat(timespec="seconds") if self.next_fetch_at else None,
            "progress": self.progress,
            **(self.unrecorded or {}),
        }


class Activity:
    def __init__(self) -> None:
        self._accounts: dict[int, AccountActivity] = {}

    def of(self, account_id: int) -> AccountActivity:
        return self._accounts.setdefault(account_id, AccountActivity())

    def forget(self, account_id: int) -> None:
        self._accounts.pop(account_id, None)
