"""``bimmaild``: parse arguments, set up logging and signals, run the daemon.

Exit status: 0 after a clean shutdown (SIGTERM, SIGINT), 1 when the daemon
cannot start (the message says why), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from bimmaild import __version__, systemd
from bimmaild.accounts.secrets import BACKEND_CHOICES
from bimmaild.control.server import StartupError
from bimmaild.daemon import Daemon, DaemonConfig
from bimmaild.protocol.paths import APP_NAME, SOCKET_ENV, SYSTEM_SOCKET, default_socket_path
from bimmaild.users import DEFAULT_ADMIN_GROUP

# System mode keeps its state where systemd's StateDirectory=bimmail puts it (FHS /var/lib).
SYSTEM_DATA_DIR = Path("/var/lib") / APP_NAME

LOG_LEVELS = ("debug", "info", "warning", "error")


def default_data_dir() -> Path:
    from platformdirs import user_data_path

    return user_data_path(APP_NAME, appauthor=False)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bimmaild",
        description="bimmail mail-account daemon: owns the accounts and does all mail I/O. "
        "Runs in the foreground; stop it with SIGTERM or Ctrl-C.",
    )
    parser.add_argument(
        "--socket", metavar="PATH", help=f"control socket (default: ${SOCKET_ENV}, else %(default)s)", default=None
    )
    parser.add_argument(
        "--data-dir", metavar="DIR", type=Path, help="store directory (default: platformdirs user data dir)"
    )
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    parser.add_argument(
        "--secret-backend",
        choices=BACKEND_CHOICES,
        default="auto",
        help="where passwords are kept: the system keyring or a 0600 file in the data dir "
        "(auto: keyring when usable; the first choice is recorded in the store)",
    )
    parser.add_argument(
        "--connect-timeout",
        metavar="SECONDS",
        type=float,
        default=5.0,
        help="how long each step of a connection test may wait for a server (default: %(default)s)",
    )
    parser.add_argument(
        "--system",
        action="store_true",
        help="serve every local user (a system service): socket /run/bimmail/bimmaild.sock open to all "
        f"(or --socket-group), data in {SYSTEM_DATA_DIR}, users known by their uid",
    )
    parser.add_argument(
        "--admin-group",
        metavar="GROUP",
        default=DEFAULT_ADMIN_GROUP,
        help="system mode: members administer the daemon, besides root (default: %(default)s)",
    )
    parser.add_argument("--socket-group", metavar="GROUP", help="system mode: only this group may connect (0660)")
    parser.add_argument(
        "--default-config-right",
        choices=("allow", "deny"),
        default="allow",
        help="whether a user may configure their own accounts until an administrator decides (default: %(default)s)",
    )
    parser.add_argument("--version", action="version", version=f"bimmaild {__version__}")
    return parser.parse_args(argv)


def setup_logging(level: str) -> None:
    # Under journald the journal adds its own timestamps.
    fmt = (
        "%(levelname)s %(name)s: %(message)s"
        if os.environ.get("JOURNAL_STREAM")
        else ("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr)
    # Its backend discovery is noise at debug level.
    logging.getLogger("keyring").setLevel(max(logging.INFO, logging.getLogger().level))


async def _run(config: DaemonConfig) -> None:
    daemon = Daemon(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.request_stop)
    await daemon.run()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level)
    explicit_socket = args.socket or (None if args.system else os.environ.get(SOCKET_ENV))
    if args.system:
        data_dir, socket_path = args.data_dir or SYSTEM_DATA_DIR, SYSTEM_SOCKET
    else:
        data_dir, socket_path = args.data_dir or default_data_dir(), default_socket_path()
    config = DaemonConfig(
        data_dir=data_dir.absolute(),
        socket_path=Path(explicit_socket).absolute() if explicit_socket else socket_path,
        private_socket_dir=not explicit_socket,
        secret_backend=args.secret_backend,
        connect_timeout=args.connect_timeout,
        inherited_socket=systemd.inherited_socket(),
        system=args.system,
        admin_group=args.admin_group,
        socket_group=args.socket_group,
        default_may_configure=args.default_config_right == "allow",
    )
    try:
        asyncio.run(_run(config))
    except StartupError as exc:
        print(f"bimmaild: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
