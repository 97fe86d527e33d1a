"""``bimmaild``: parse arguments and the config file, set up logging and signals, run the daemon.

Exit status: 0 after a clean shutdown (SIGTERM, SIGINT), 1 when the daemon
cannot start (the message says why: a bad config file too), 2 for bad arguments.
SIGHUP re-reads the config file (``bimmaild.config``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from bimmaild import __version__, config, logs, systemd
from bimmaild.accounts.secrets import BACKEND_CHOICES
from bimmaild.control.server import StartupError
from bimmaild.daemon import Daemon, DaemonConfig
from bimmaild.protocol.paths import APP_NAME, SOCKET_ENV, SYSTEM_SOCKET, default_socket_path
from bimmaild.scheduler import DEFAULT_INTERVAL_MINUTES
from bimmaild.sync.planner import MASS_REMOVAL_SHARE, MIN_MASS_REMOVAL, SafetyStop
from bimmaild.users import DEFAULT_ADMIN_GROUP

# System mode keeps its state where systemd's StateDirectory=bimmail puts it (FHS /var/lib).
SYSTEM_DATA_DIR = Path("/var/lib") / APP_NAME

LOG_LEVELS = config.LOG_LEVELS


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
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="default: info")
    parser.add_argument(
        "--config", metavar="FILE", type=Path,
        help="config file (default: config.toml in the user config dir; /etc/bimmail/config.toml with --system)",
    )  # fmt: skip
    parser.add_argument("--print-config", action="store_true", help="show the effective configuration and exit")
    parser.add_argument(
        "--secret-backend",
        choices=BACKEND_CHOICES,
        help="where passwords are kept: the system keyring or a 0600 file in the data dir "
        "(auto: keyring when usable; the first choice is recorded in the store)",
    )
    parser.add_argument(
        "--connect-timeout",
        metavar="SECONDS",
        type=float,
        help="how long each step of a connection test may wait for a server (default: 5)",
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


def effective_config(args: argparse.Namespace) -> config.Effective:
    """Built-in defaults ← the config file ← $BIMMAIL_SOCKET ← the command line."""
    defaults = {
        "log_level": "info",
        "socket": SYSTEM_SOCKET if args.system else default_socket_path(),
        "data_dir": SYSTEM_DATA_DIR if args.system else default_data_dir(),
        "secret_backend": "auto",
        "connect_timeout": 5.0,
        "fetch_interval_minutes": DEFAULT_INTERVAL_MINUTES,
        "safety_stop_share": MASS_REMOVAL_SHARE,
        "safety_stop_minimum": MIN_MASS_REMOVAL,
    }
    env_socket = None if args.system else os.environ.get(SOCKET_ENV)
    socket: tuple[Path | None, str]
    if args.socket:
        socket = (Path(args.socket).absolute(), "command line")
    else:
        socket = (Path(env_socket).absolute() if env_socket else None, f"${SOCKET_ENV}")
    overrides = {
        "log_level": (args.log_level, "command line"),
        "socket": socket,
        "data_dir": (args.data_dir.absolute() if args.data_dir else None, "command line"),
        "secret_backend": (args.secret_backend, "command line"),
        "connect_timeout": (args.connect_timeout, "command line"),
    }
    path = args.config or config.default_path(args.system)
    defaults["providers_dir"] = Path(path).absolute().parent / "providers"
    return config.effective(defaults, path, overrides)


def daemon_config(args: argparse.Namespace, settings: config.Effective) -> DaemonConfig:
    return DaemonConfig(
        data_dir=settings["data_dir"],
        socket_path=settings["socket"],
        private_socket_dir=settings.sources["socket"] == "default",
        secret_backend=settings["secret_backend"],
        connect_timeout=settings["connect_timeout"],
        inherited_socket=systemd.inherited_socket(),
        system=args.system,
        admin_group=args.admin_group,
        socket_group=args.socket_group,
        default_may_configure=args.default_config_right == "allow",
        fetch_interval_minutes=settings["fetch_interval_minutes"],
        providers_dir=settings["providers_dir"],
        safety=SafetyStop(settings["safety_stop_share"], settings["safety_stop_minimum"]),
    )


async def _run(daemon: Daemon, args: argparse.Namespace, started: config.Effective) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.request_stop)

    def reload() -> None:
        try:
            settings = effective_config(args)
        except config.ConfigError as exc:
            logging.getLogger(__name__).error("config not reloaded: %s", exc)
            return
        logs.set_level(settings["log_level"])
        daemon.reload(settings, config.waiting(started, settings))

    loop.add_signal_handler(signal.SIGHUP, reload)
    await daemon.run()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = effective_config(args)
    except config.ConfigError as exc:
        print(f"bimmaild: {exc}", file=sys.stderr)
        return 1
    if args.print_config:
        sys.stdout.write(settings.render())
        return 0
    logs.setup(settings["log_level"])
    try:
        asyncio.run(_run(Daemon(daemon_config(args, settings)), args, settings))
    except StartupError as exc:
        print(f"bimmaild: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
