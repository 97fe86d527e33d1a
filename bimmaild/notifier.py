"""Keeping systemd informed while the daemon runs: the watchdog ping and a status line.

``WATCHDOG=1`` is sent from the event loop itself, so a loop that hangs (a blocking call, a
busy loop) stops the pings and systemd restarts the service (``WatchdogSec=``).  ``STATUS=``
is what ``systemctl status`` shows: it is sent when it changes ("2 accounts; fetching Work
120/4000 (INBOX)"), checked every second.  Nothing runs when there is no ``$NOTIFY_SOCKET``.
The system daemon's line names no account (``names=False``): ``systemctl status`` is open to every
local user, and one user's account names are not another's to read (R-L3).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from bimmaild import systemd
from bimmaild.accounts.service import AccountService
from bimmaild.activity import Activity
from bimmaild.store import status as status_q

TICK = 1.0


def status_line(accounts: AccountService, activity: Activity, *, names: bool = True) -> str:
    every = accounts.all()
    enabled = [a for a in every if a.enabled]
    parts = [f"{len(enabled)} account{'s' if len(enabled) != 1 else ''}"]
    if len(every) > len(enabled):
        parts[0] += f" ({len(every) - len(enabled)} disabled)"
    fetching = []
    for account in enabled:
        live = activity.of(account.id)
        if live.fetching:
            progress = live.progress
            if progress and progress.get("messages_total"):
                fetching.append(
                    f"{account.name} {progress['messages_done']}/{progress['messages_total']} ({progress['folder']})"
                )
            else:
                fetching.append(account.name)
    waiting = status_q.in_state(accounts.db.conn, "needs-attention")
    attention = [a.name for a in enabled if a.id in waiting]
    if not names:
        parts.append(f"fetching {len(fetching)}" if fetching else "idle")
        if attention:
            parts.append(f"{len(attention)} need{'s' if len(attention) == 1 else ''} attention")
        return "; ".join(parts)
    parts.append("fetching " + ", ".join(fetching) if fetching else "idle")
    if attention:
        parts.append("needs attention: " + ", ".join(attention))
    return "; ".join(parts)


class Notifier:
    def __init__(self, status: Callable[[], str], watchdog: float | None, tick: float = TICK) -> None:
        self.status = status
        self.watchdog = watchdog  # seconds; pinged twice per period, as sd_watchdog_enabled(3) advises
        self.tick = min(tick, watchdog / 2) if watchdog else tick
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if systemd.notify_socket() is None:
            return
        self._task = asyncio.create_task(self._run(), name="systemd notifier")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        shown: str | None = None
        pinged = 0.0
        while True:
            now = time.monotonic()
            if self.watchdog and now - pinged >= self.watchdog / 2:
                systemd.notify("WATCHDOG=1")
                pinged = now
            line = self.status()
            if line != shown:
                systemd.notify(f"STATUS={line}")
                shown = line
            await asyncio.sleep(self.tick)
