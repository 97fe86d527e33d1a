"""Composition root: builds every object of the daemon and owns their lifetimes.

``Daemon.run`` acquires resources in order (the socket's lock, data dir lock,
store, secrets, services, the listening socket) on an AsyncExitStack and
releases them in reverse, only those acquired, whether it ends by
``request_stop`` or by an error.  The socket's lock comes first: a second
daemon on a served socket is refused before it creates its data dir, opens or
migrates a store, or starts a job that could send mail.
Readiness (``ready`` event, sd_notify READY=1) is signalled only once the
store is migrated and the socket accepts connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bimmaild import __version__, config, systemd
from bimmaild.accounts.autoconfig import load_directory as load_autoconfig_dir
from bimmaild.accounts.providers import ProviderDatabase
from bimmaild.accounts.providers import load_default as load_providers
from bimmaild.accounts.secrets import choose_backend, open_backend
from bimmaild.accounts.service import AccountService
from bimmaild.activity import Activity
from bimmaild.conntest import runner as conntest
from bimmaild.control.handlers.accounts import AccountHandlers
from bimmaild.control.handlers.messages import MessageHandlers
from bimmaild.control.handlers.oauth import OAuthHandlers
from bimmaild.control.handlers.projects import ProjectHandlers
from bimmaild.control.handlers.providers import ProviderHandlers
from bimmaild.control.handlers.send import SendHandlers
from bimmaild.control.handlers.sync import SyncHandlers
from bimmaild.control.handlers.system import DaemonInfo, SystemHandlers
from bimmaild.control.router import Router
from bimmaild.control.server import ControlServer, SharedSocket, SocketClaim, StartupError, ensure_private_dir
from bimmaild.events import EventBus
from bimmaild.notifier import Notifier, status_line
from bimmaild.oauth.clients import Clients
from bimmaild.oauth.signin import SignIns
from bimmaild.oauth.tokens import TokenService
from bimmaild.projects import Projects
from bimmaild.protocol.methods import METHODS_BY_NAME
from bimmaild.scheduler import DEFAULT_INTERVAL_MINUTES, OUTBOX_JOB, Scheduler
from bimmaild.send.service import SendService
from bimmaild.send.signatures import Signatures
from bimmaild.store import settings
from bimmaild.store.db import Database, SchemaTooNew
from bimmaild.sync.planner import DEFAULT_SAFETY, SafetyStop
from bimmaild.sync.push import PushService
from bimmaild.sync.service import TRASH_AND_SENT, SyncService
from bimmaild.sync.trash import Trash
from bimmaild.users import DEFAULT_ADMIN_GROUP, Users, readable_by

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DaemonConfig:
    data_dir: Path
    socket_path: Path
    # True when the socket path is our default one: its directory is ours to keep 0700.
    private_socket_dir: bool = True
    secret_backend: str = "auto"  # noqa: S105 (a backend name, not a secret)
    # Per-step timeout of connection tests (probes of alternatives use at most 3 s).
    connect_timeout: float = 5.0
    # How often the trash folders are mirrored between full fetches.
    trash_mirror_seconds: float = 120.0
    # How long one IDLE lasts before it is re-issued (RFC 2177: under 29 minutes).
    idle_seconds: float = 25 * 60
    # First wait before an unsent message is tried again; it doubles each time, up to an hour.
    send_retry_seconds: float = 60.0
    # System mode (R-L3): one daemon for every local user, who is known by the socket peer's uid.
    system: bool = False
    admin_group: str = DEFAULT_ADMIN_GROUP
    socket_group: str | None = None  # system mode: only this group may connect (0660), else everyone (0666)
    default_may_configure: bool = True  # a new user's right to configure their accounts
    inherited_socket: socket.socket | None = None
    # Config file settings (bimmaild.config); those two change on SIGHUP too.
    fetch_interval_minutes: int = DEFAULT_INTERVAL_MINUTES
    safety: SafetyStop = DEFAULT_SAFETY
    # Custom presets (Thunderbird autoconfig files) beside the shipped ones; read at start.
    providers_dir: Path | None = None


@contextlib.contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Exclusive lock on the data dir: two daemons must never write one store."""
    try:
        fd = os.open(data_dir / "bimmaild.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:  # a read-only filesystem, a full disk, a dir of someone else
        raise StartupError(f"cannot write the data dir {data_dir}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                raise StartupError(f"another bimmaild (pid {holder}) already uses the data dir {data_dir}") from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


class Daemon:
    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.ready = asyncio.Event()
        self._stop = asyncio.Event()

    @property
    def serving_path(self) -> Path:
        """The socket clients reach: the one systemd handed over (socket activation), else ours."""
        inherited = self.config.inherited_socket
        if inherited is not None:
            with contextlib.suppress(OSError):
                name = inherited.getsockname()
                if isinstance(name, str) and name:
                    return Path(name)
        return self.config.socket_path

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        async with contextlib.AsyncExitStack() as stack:
            await self._start(stack)  # the store migrated, the socket accepting
            accounts, activity = self.accounts, self.accounts.activity
            assert activity is not None
            names = not self.config.system  # the system daemon's line is every local user's to read
            notifier = Notifier(lambda: status_line(accounts, activity, names=names), systemd.watchdog_seconds())
            systemd.notify(f"READY=1\nSTATUS={status_line(accounts, activity)}")
            notifier.start()
            stack.push_async_callback(notifier.aclose)
            self.ready.set()
            log.info("bimmaild %s ready on %s", __version__, self.serving_path)
            await self._stop.wait()
            systemd.notify("STOPPING=1\nSTATUS=stopping")
            log.info("bimmaild stopping")

    def reload(self, settings: config.Effective, waiting: list[str]) -> None:
        """SIGHUP: apply the config file's reloadable settings; say which others (``waiting``, from
        ``config.waiting``) wait for a restart."""
        if not self.ready.is_set():
            log.warning("config reload ignored: the daemon is still starting")
            return
        systemd.notify(f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")
        if settings["fetch_interval_minutes"] != self.scheduler.default_interval_minutes:
            self.scheduler.default_interval_minutes = settings["fetch_interval_minutes"]
            self.scheduler.apply(reschedule=True)
        self.sync.safety = SafetyStop(settings["safety_stop_share"], settings["safety_stop_minimum"])
        if waiting:
            log.warning("config: %s changed; takes effect at the next start", ", ".join(waiting))
        log.info("config reloaded from %s (log level %s)", settings.path, settings["log_level"])
        systemd.notify("READY=1")

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        claim = self._claim_socket(stack)
        data_dir = self.config.data_dir
        try:
            ensure_private_dir(data_dir)
        except OSError as exc:
            raise StartupError(f"cannot create the data dir {data_dir}: {exc.strerror}") from None
        stack.enter_context(data_dir_lock(data_dir))
        try:
            db = Database.open(data_dir)
        except SchemaTooNew as exc:
            raise StartupError(str(exc)) from None
        except (sqlite3.Error, OSError) as exc:
            raise StartupError(f"cannot open the store in {data_dir}: {exc}") from None
        stack.callback(db.close)

        backend_name, store_id = self._secret_settings(db)
        secrets = open_backend(backend_name, data_dir, store_id)
        events = EventBus()
        providers = self._providers()
        limits = conntest.Limits.for_timeout(self.config.connect_timeout)
        clients = Clients(db, secrets)
        sign_ins = SignIns(clients)
        stack.push_async_callback(sign_ins.aclose)
        accounts = AccountService(
            db, secrets, data_dir / "mail", events, providers, limits, TokenService(clients, secrets), sign_ins
        )
        self.accounts = accounts
        await accounts.sweep()
        users = Users(
            db,
            system=self.config.system,
            admin_group=self.config.admin_group,
            default_may_configure=self.config.default_may_configure,
        )
        if self.config.system:
            accounts.check_readable = readable_by
        router = await self._services(stack, db, accounts, events, providers, users)
        mode = "system" if self.config.system else "user"
        info = DaemonInfo(data_dir, self.serving_path, secrets.name, time.monotonic(), datetime.now(UTC), mode)
        SystemHandlers(info, accounts, users, router).register(router)
        OAuthHandlers(accounts, clients, sign_ins, users).register(router)
        missing = set(METHODS_BY_NAME) - set(router.methods)
        if missing:
            raise RuntimeError(f"declared methods without handler: {sorted(missing)}")

        server = ControlServer(
            router, events, claim, inherited=self.config.inherited_socket, may_connect=users.may_connect
        )
        stack.push_async_callback(server.close)
        await server.start()

    def _providers(self) -> ProviderDatabase:
        """The shipped presets, and before them the site's own (autoconfig files in providers_dir)."""
        shipped = load_providers()
        directory = self.config.providers_dir
        if directory is None or not directory.is_dir():
            return shipped
        custom, problems = load_autoconfig_dir(directory)
        for problem in problems:
            log.warning("custom provider preset not used: %s", problem)
        if custom:
            log.info("custom provider presets from %s: %s", directory, ", ".join(p.id for p in custom))
        return shipped.with_custom(custom)

    def _claim_socket(self, stack: contextlib.AsyncExitStack) -> SocketClaim | None:
        """Our socket's lock, or StartupError when another daemon serves it; None when systemd
        handed a socket over (its .socket unit owns it, and starts one daemon only)."""
        if self.config.inherited_socket is not None:
            return None
        shared = SharedSocket(self.config.socket_group) if self.config.system else None
        claim = SocketClaim(self.config.socket_path, private_dir=self.config.private_socket_dir, shared=shared)
        stack.callback(claim.release)
        claim.take()
        return claim

    async def _services(
        self,
        stack: contextlib.AsyncExitStack,
        db: Database,
        accounts: AccountService,
        events: EventBus,
        providers: ProviderDatabase,
        users: Users,
    ) -> Router:
        """Sync, push, schedule, trash, projects, and the handlers over them; closed in reverse."""
        mail_root = self.config.data_dir / "mail"
        activity = Activity()
        accounts.activity = activity
        sync = SyncService(db, accounts, mail_root, events, self.config.connect_timeout * 6, activity)
        accounts.before_delete = sync.cancel
        accounts.after_add = sync.start
        stack.push_async_callback(sync.close)
        sync.safety = self.config.safety
        self.sync = sync
        self.scheduler = Scheduler(
            db, accounts, sync, activity, trash_mirror_seconds=self.config.trash_mirror_seconds,
            default_interval_minutes=self.config.fetch_interval_minutes,
        )  # fmt: skip
        self.scheduler.start()
        stack.callback(self.scheduler.shutdown)
        events.subscribe(self.scheduler)
        self.push = PushService(accounts, sync, activity, idle_seconds=self.config.idle_seconds)
        stack.push_async_callback(self.push.close)
        events.subscribe(self.push)
        self.push.apply()
        signatures = Signatures(db, accounts)
        self.send = SendService(
            db, accounts, signatures, providers, self.config.data_dir, self.config.connect_timeout * 6, events,
            retry_seconds=self.config.send_retry_seconds,
        )  # fmt: skip
        self.send.after_send = lambda account_id: sync.mirror(account_id, TRASH_AND_SENT)
        await self.send.recover()
        self.scheduler.every(min(60.0, self.config.send_retry_seconds), self.send.retry_due, OUTBOX_JOB)
        router = Router(users)
        AccountHandlers(accounts).register(router)
        SyncHandlers(accounts, sync, self.scheduler, events, users).register(router)
        MessageHandlers(db, accounts, mail_root, Trash(db, mail_root), sync).register(router)
        ProjectHandlers(Projects(db, self.config.data_dir)).register(router)
        ProviderHandlers(providers).register(router)
        SendHandlers(self.send, signatures).register(router)
        return router

    def _secret_settings(self, db: Database) -> tuple[str, str]:
        """The store's random id and secret backend, recorded on first start."""
        with db.transaction() as conn:
            store_id = settings.read(conn, "store_id")
            if store_id is None:
                store_id = uuid.uuid4().hex
                settings.write(conn, "store_id", store_id)
            recorded = settings.read(conn, "secret_backend")
            wanted = self.config.secret_backend
            if self.config.system and wanted == "auto":
                wanted = "file"  # a system service has no user's keyring to unlock
            backend = choose_backend(wanted, recorded)
            if backend != recorded:
                if recorded is not None:
                    log.warning("secret backend changed from %s to %s", recorded, backend)
                settings.write(conn, "secret_backend", backend)
        return backend, store_id
