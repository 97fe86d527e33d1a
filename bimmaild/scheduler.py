"""Timed work of the daemon, owned by one APScheduler 3.x AsyncIOScheduler.

Job defaults (DESIGN.md §6): ``coalesce`` and ``max_instances=1`` so a late or
slow run never piles up, and ``misfire_grace_time=None`` because APScheduler's
default of one second silently skips a run that is late (after a suspend,
say).  Jobs only start work owned by the services (``SyncService`` tasks);
the scheduler itself owns nothing that must be awaited at shutdown.

Jobs now: the trash mirror of every enabled account (R-C5: what webmail moved
into the trash appears locally without a full fetch).
"""

from __future__ import annotations

import logging
from datetime import UTC

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bimmaild.accounts.service import AccountService
from bimmaild.sync.service import SyncService

log = logging.getLogger(__name__)

TRASH_MIRROR_JOB = "trash-mirror"


class Scheduler:
    def __init__(self, accounts: AccountService, sync: SyncService, *, trash_mirror_seconds: float) -> None:
        self.accounts = accounts
        self.sync = sync
        self.scheduler = AsyncIOScheduler(
            timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
        )
        self.scheduler.add_job(
            self.mirror_trash,
            IntervalTrigger(seconds=trash_mirror_seconds, jitter=min(10.0, trash_mirror_seconds / 10)),
            id=TRASH_MIRROR_JOB,
        )

    def start(self) -> None:
        self.scheduler.start()

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    async def mirror_trash(self) -> None:
        for account in self.accounts.all():
            if account.enabled:
                self.sync.mirror(account.id)
