"""Timed work of the daemon, owned by one APScheduler 3.x AsyncIOScheduler (R-E1, R-L1).

Three switches decide the automatic fetch, all stored, all applied at once:
the global automation switch and interval (``settings``), and per account
"enabled" and "include in automatic fetch".  An account has a fetch job
(``fetch:<id>``) exactly when all three are on; changing any of them adds,
reschedules or removes the job (``apply``, also called on every
``account.changed`` event).  A job only asks the sync service to fetch, which
joins a fetch already under way: never two at once for one account.

Job defaults (DESIGN.md §6): ``coalesce`` and ``max_instances=1``, and
``misfire_grace_time=None`` because APScheduler's default of one second
silently skips a late run.  Its timers run on the monotonic clock, which
stops during a suspend: a one-minute ``heartbeat`` job makes the scheduler
look at its due jobs again soon after a resume, so a missed fetch happens
once (coalesced), within a minute.  Each account's jitter spreads the
fetches so that several accounts do not hit their servers at the same second.

An account in ``needs-attention`` (refused password, safety stop) is skipped
until the user acts; one in ``error`` waits for a back-off that doubles with
each failure.  Also scheduled: the trash mirror, and the outbox's retries of
unsent messages.  The mirror polls the accounts the automatic fetch would
(switches on), and besides those, any enabled account whose journal still
holds operations the user asked for (a delete while the server was down must
reach it even with automation off); the same attention and back-off rules
hold, so a refused password is not tried again every two minutes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bimmaild.accounts.service import AccountService
from bimmaild.activity import Activity
from bimmaild.protocol.errors import InvalidParams
from bimmaild.store import journal as journal_q
from bimmaild.store import settings
from bimmaild.store import status as status_q
from bimmaild.store.db import Database
from bimmaild.sync.service import SyncService

log = logging.getLogger(__name__)

TRASH_MIRROR_JOB = "trash-mirror"
HEARTBEAT_JOB = "heartbeat"
OUTBOX_JOB = "outbox"
DEFAULT_INTERVAL_MINUTES = 15


def fetch_job_id(account_id: int) -> str:
    return f"fetch:{account_id}"


class Scheduler:
    def __init__(
        self,
        db: Database,
        accounts: AccountService,
        sync: SyncService,
        activity: Activity,
        *,
        trash_mirror_seconds: float,
        default_interval_minutes: int = DEFAULT_INTERVAL_MINUTES,
    ) -> None:
        # The interval until one is set with automation.set (from the daemon's config file).
        self.default_interval_minutes = default_interval_minutes
        self.db = db
        self.accounts = accounts
        self.sync = sync
        self.activity = activity
        self.scheduler = AsyncIOScheduler(
            timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
        )
        self.scheduler.add_job(
            self.mirror_trash,
            IntervalTrigger(seconds=trash_mirror_seconds, jitter=min(10.0, trash_mirror_seconds / 10)),
            id=TRASH_MIRROR_JOB,
        )
        self.scheduler.add_job(self._heartbeat, IntervalTrigger(minutes=1), id=HEARTBEAT_JOB)

    def every(self, seconds: float, job: Callable[[], Awaitable[None]], job_id: str) -> None:
        """Another periodic job (the outbox's retries), whatever the automation switch says.  Its
        first run is at once: a message still queued when the daemon stopped (or was killed
        between queueing and submitting it) goes out at start, not one period later."""
        self.scheduler.add_job(job, IntervalTrigger(seconds=seconds), id=job_id, next_run_time=datetime.now(UTC))

    def start(self) -> None:
        self.scheduler.start()
        self.apply()

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    # -- the automation switch ---------------------------------------------------

    @property
    def enabled(self) -> bool:
        return settings.read(self.db.conn, "automation_enabled") != "0"

    @property
    def interval_minutes(self) -> int:
        return int(settings.read(self.db.conn, "automation_interval_minutes") or self.default_interval_minutes)

    def info(self) -> dict[str, Any]:
        runs = [
            job.next_run_time for job in self.scheduler.get_jobs() if job.id.startswith("fetch:") and job.next_run_time
        ]
        return {
            "enabled": self.enabled,
            "interval_minutes": self.interval_minutes,
            "next_run": min(runs).astimezone(UTC).isoformat(timespec="seconds") if runs else None,
            "accounts": sorted(
                int(job.id.split(":")[1]) for job in self.scheduler.get_jobs() if job.id.startswith("fetch:")
            ),
        }

    def configure(self, enabled: bool | None, interval_minutes: int | None) -> dict[str, Any]:
        if interval_minutes is not None and not 1 <= interval_minutes <= 24 * 60:
            raise InvalidParams("the interval is 1 to 1440 minutes", field="interval_minutes")
        with self.db.transaction() as conn:
            if enabled is not None:
                settings.write(conn, "automation_enabled", "1" if enabled else "0")
            if interval_minutes is not None:
                settings.write(conn, "automation_interval_minutes", str(interval_minutes))
        self.apply(reschedule=interval_minutes is not None)
        return self.info()

    # -- jobs ------------------------------------------------------------------------

    def apply(self, *, reschedule: bool = False) -> None:
        """Make the fetch jobs match the switches (idempotent)."""
        wanted = {a.id for a in self.accounts.all() if self.enabled and a.enabled and a.auto_fetch}
        for job in self.scheduler.get_jobs():
            if job.id.startswith("fetch:") and int(job.id.split(":")[1]) not in wanted:
                job.remove()
                self.activity.of(int(job.id.split(":")[1])).next_fetch_at = None
        minutes = self.interval_minutes
        for account_id in wanted:
            job = self.scheduler.get_job(fetch_job_id(account_id))
            trigger = IntervalTrigger(minutes=minutes, jitter=min(60.0, minutes * 6.0))
            if job is None:
                job = self.scheduler.add_job(self.fetch_job, trigger, args=[account_id], id=fetch_job_id(account_id))
            elif reschedule:
                job = job.reschedule(trigger)
            self.activity.of(account_id).next_fetch_at = job.next_run_time

    def offer(self, event: str, params: dict[str, Any], owner: int | None) -> None:
        """EventBus subscriber: account switches take effect at once; a changed account starts its
        back-offs afresh."""
        if event == "account.changed":
            self.sync.forget_failures(params["account_id"])
            self.apply()

    def run_due_now(self) -> None:
        """Every fetch job due now (a manual nudge, and how tests drive the schedule)."""
        now = datetime.now(UTC)
        for job in self.scheduler.get_jobs():
            if job.id.startswith("fetch:"):
                job.modify(next_run_time=now)
        self.scheduler.wakeup()

    async def fetch_job(self, account_id: int) -> None:
        job = self.scheduler.get_job(fetch_job_id(account_id))
        self.activity.of(account_id).next_fetch_at = job.next_run_time if job else None
        if not self.accounts.exists(account_id) or not self.enabled:
            return
        account = self.accounts.find(account_id)
        if not (account.enabled and account.auto_fetch):
            return
        status = status_q.read(self.db.conn, account_id)
        if status["state"] == "needs-attention":
            log.info("automatic fetch of account %d skipped: needs attention (%s)", account_id, status["message"])
            return
        if status["state"] == "error" and not self.sync.backoff_over(account_id):
            log.info("automatic fetch of account %d deferred: backing off after errors", account_id)
            return
        self.sync.start(account_id)

    async def mirror_trash(self) -> None:
        pending = journal_q.accounts_with_due_work(self.db.conn)
        attention = status_q.in_state(self.db.conn, "needs-attention")
        automation = self.enabled
        for account in self.accounts.all():
            polled = automation and account.auto_fetch
            if not account.enabled or not (polled or account.id in pending):
                continue
            if self.sync.login_refused(account.id) or not self.sync.backoff_over(account.id, mirror=True):
                continue
            if account.id in attention and account.id not in pending:
                continue
            self.sync.mirror(account.id)

    async def _heartbeat(self) -> None:
        """Nothing: its firing makes the scheduler check its due jobs (see the module docstring)."""
