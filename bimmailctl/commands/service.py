"""``bimmailctl service …``: install bimmaild as a socket-activated systemd service, remove it, show it.

The unit files ship inside bimmailctl (``bimmailctl/units/``; ``systemd/`` at the top of the
repository links to them), so an installed bimmailctl finds them. They say ``ExecStart=bimmaild``:
systemd does not search a virtualenv, so ``install`` writes them with the absolute path of the
bimmaild installed next to this bimmailctl. These commands work on files and ``systemctl`` only and
never talk to the daemon: they declare ``local`` instead of ``func``, which ``cli.main`` runs
without connecting, so they work when no daemon runs (the point of installing one). Like every
command module, this one is imported for ``--help``: subprocess, shutil and importlib are imported
lazily, and there are no dataclasses (their creation alone doubled the module's import time).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from bimmailctl import render
from bimmaild.protocol.paths import APP_NAME, SOCKET_ENV, SOCKET_NAME, SYSTEM_SOCKET

if TYPE_CHECKING:
    import subprocess

# The template's command, replaced by the absolute path of the installed bimmaild.
EXEC_TEMPLATE = "ExecStart=bimmaild"
SYSTEMCTL_TIMEOUT = 60.0  # `enable --now` starts the socket unit: seconds, unless the manager hangs

# What the user unit asks of the kernel's namespaces. A user manager can set these up only inside a
# user namespace (PrivateUsers=); where unprivileged user namespaces are refused (Ubuntu ≥ 24.04's
# AppArmor restriction, user.max_user_namespaces=0, older hardened kernels) the service would fail to
# start (226/NAMESPACE, 217/USER, 218/CAPABILITIES). `install` tries them first (systemd-run) and
# there turns them off in a drop-in, keeping the rest of the sandbox (seccomp, NoNewPrivileges=…).
NAMESPACE_OPTIONS = {
    "PrivateUsers": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "read-only",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
}
NO_NAMESPACES_DROPIN = "50-bimmail-no-namespaces.conf"
# What PrivateTmp= replaces: an ExecStart= there would not be found by the sandboxed service.
PRIVATE_TMP = (Path("/tmp"), Path("/var/tmp"))  # noqa: S108 (not a temporary file: a check)
# Exit statuses of systemd's exec step (systemd.exec(5), "Process exit codes"): the sandbox failed,
# not the probe command (`true`) and not the connection to the manager (1).
_EXEC_STEP_FAILURES = range(200, 256)


class ServiceError(Exception):
    """A refusal or failure with its exit code; the message says what to do."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Scope(NamedTuple):
    """The user manager (your own daemon) or the system manager (one daemon for all users)."""

    name: str
    socket_unit: str
    service_unit: str

    @property
    def units(self) -> tuple[str, str]:
        return (self.socket_unit, self.service_unit)

    @property
    def systemctl_flags(self) -> tuple[str, ...]:
        return ("--user",) if self.name == "user" else ()

    def default_unit_dir(self) -> Path:
        if self.name == "system":
            return Path("/etc/systemd/system")
        config = os.environ.get("XDG_CONFIG_HOME", "")
        base = Path(config) if config and Path(config).is_absolute() else Path.home() / ".config"
        return base / "systemd" / "user"

    def socket_path(self) -> Path | None:
        """Where the socket unit listens (its ListenStream=), when it can be known from here."""
        if self.name == "system":
            return SYSTEM_SOCKET
        runtime = os.environ.get("XDG_RUNTIME_DIR")
        return Path(runtime) / APP_NAME / SOCKET_NAME if runtime else None

    def systemctl_command(self, *args: str) -> list[str]:
        return ["systemctl", *self.systemctl_flags, *args]


SCOPES = {
    "user": Scope("user", "bimmaild.socket", "bimmaild.service"),
    "system": Scope("system", "bimmaild-system.socket", "bimmaild-system.service"),
}


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    service = sub.add_parser(
        "service",
        help="install bimmaild as a systemd service (socket-activated), remove it, show it",
        description="Install, remove or show bimmaild's systemd units. These commands never talk to the "
        "daemon: they work when none runs.",
    )
    ssub = service.add_subparsers(dest="service_command", metavar="COMMAND", required=True)

    p = ssub.add_parser(
        "install",
        help="write the unit files with this installation's bimmaild, enable the socket",
        description="Write bimmaild's socket and service units with the absolute path of the bimmaild "
        "next to this bimmailctl, then `systemctl [--user] daemon-reload` and `enable --now` the socket: "
        "the daemon starts on the first bimmailctl call. When systemctl cannot be used, the files are "
        "still written and the commands to run are printed (exit status 1).",
    )
    _scope_options(p)
    p.add_argument("--no-enable", action="store_true", help="only write the files; run no systemctl command")
    p.add_argument(
        "--autostart",
        action="store_true",
        help="also enable the service itself, so the daemon starts at login (--user) or boot (--system) "
        "and fetches mail before anyone calls it",
    )
    p.add_argument("--dry-run", action="store_true", help="show the files and commands; change nothing")
    p.set_defaults(func=None, local=cmd_install)

    p = ssub.add_parser("uninstall", help="stop and disable the units, remove their files")
    _scope_options(p)
    p.set_defaults(func=None, local=cmd_uninstall)

    p = ssub.add_parser("status", help="which unit files are installed where, and whether they are active")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--user", dest="scope", action="store_const", const="user", help="only the user units")
    group.add_argument("--system", dest="scope", action="store_const", const="system", help="only the system units")
    p.add_argument("--unit-dir", metavar="DIR", type=Path, help="look in DIR instead of the manager's directory")
    p.set_defaults(func=None, local=cmd_status, scope=None)


def _scope_options(p: argparse.ArgumentParser) -> None:
    # dest "scope", not "user"/"system": the global --user NAME (dest "user") must not be overwritten.
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--user",
        dest="scope",
        action="store_const",
        const="user",
        help="your own daemon, in ~/.config/systemd/user (the default)",
    )
    group.add_argument(
        "--system",
        dest="scope",
        action="store_const",
        const="system",
        help="one daemon for every local user (bimmaild --system), in /etc/systemd/system: root only",
    )
    p.add_argument(
        "--unit-dir", metavar="DIR", type=Path, help="the directory for the unit files instead of the manager's"
    )
    p.set_defaults(scope="user")


# --- finding and rendering -------------------------------------------------------------------------


def find_bimmaild() -> Path:
    """The bimmaild of this installation: next to the running bimmailctl (its virtualenv, or pipx's
    once the symlink on PATH is resolved), else the first on PATH."""
    import shutil

    beside = Path(sys.argv[0]).resolve().parent / "bimmaild"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("bimmaild")
    if found:
        return Path(found).absolute()
    raise ServiceError(
        render.EXIT_FAILURE,
        f"no bimmaild found next to bimmailctl ({beside.parent}) nor on PATH: install bimmail "
        "(it provides both commands) in the same environment as this bimmailctl",
    )


def systemd_quote(path: Path) -> str:
    """``path`` as the executable of an ExecStart= line (systemd.service(5), "Command lines"):
    specifiers escaped (% → %%), quoted when it holds spaces, quotes or backslashes. ``$`` stays:
    variables are substituted in the arguments only (checked with systemd-analyze verify)."""
    text = str(path)
    if any(ord(c) < 0x20 or c == "\x7f" for c in text):
        raise ServiceError(render.EXIT_INVALID, f"{text!r}: a control character cannot go into a unit file")
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{escaped}"' if any(c.isspace() or c in "\"'\\" for c in text) else escaped


def template(name: str) -> str:
    """A unit file as shipped (package data: bimmailctl/units/)."""
    from importlib.resources import files

    return (files("bimmailctl") / "units" / name).read_text(encoding="utf-8")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bimmail")
    except PackageNotFoundError:
        return "unknown"


def render_unit(name: str, bimmaild: Path, scope: Scope) -> str:
    """The unit as installed: a header saying where it comes from, ExecStart= made absolute."""
    lines = template(name).splitlines(keepends=True)
    exec_lines = [i for i, line in enumerate(lines) if line.startswith(EXEC_TEMPLATE)]
    if name.endswith(".service"):
        if len(exec_lines) != 1:
            raise ServiceError(render.EXIT_FAILURE, f"the packaged {name} has no single {EXEC_TEMPLATE!r} line")
        line = lines[exec_lines[0]]
        lines[exec_lines[0]] = f"ExecStart={systemd_quote(bimmaild)}{line[len(EXEC_TEMPLATE) :]}"
    edit = f"systemctl{''.join(' ' + f for f in scope.systemctl_flags)} edit {name.rsplit('.', 1)[0]}"
    if name.endswith(".socket"):
        edit += ".socket"
    header = (
        f"# Installed by `bimmailctl service install` (bimmail {_version()}); a new install overwrites\n"
        f"# this file: keep local changes in a drop-in (`{edit}`).\n"
    )
    return header + "".join(lines)


def installed_exec(path: Path) -> str | None:
    """The ExecStart= command of an installed service file, as written."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("ExecStart="):
            return line.removeprefix("ExecStart=")
    return None


# --- systemctl -------------------------------------------------------------------------------------


class Ran(NamedTuple):
    argv: list[str]
    ok: bool
    output: str


class Report:
    """What a command did, for the human output and for --json."""

    def __init__(self, scope: str, unit_dir: Path) -> None:
        self.scope = scope
        self.unit_dir = unit_dir
        self.files: list[dict[str, str]] = []
        self.commands: list[Ran] = []
        self.manual: list[str] = []  # commands left for the user to run
        self.notes: list[str] = []
        self.log: list[str] = []  # what was done, in order, for humans

    def file(self, path: Path, state: str) -> None:
        self.files.append({"path": str(path), "state": state})
        self.log.append(f"{state:9} {path}")

    def to_json(self, **extra: Any) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "unit_dir": str(self.unit_dir),
            **extra,
            "files": self.files,
            "commands": [{"argv": r.argv, "ok": r.ok, "output": r.output} for r in self.commands],
            "manual": self.manual,
            "notes": self.notes,
        }


def _run(argv: list[str], timeout: float = SYSTEMCTL_TIMEOUT) -> subprocess.CompletedProcess[str] | str:
    """Run a systemd tool; its result, or why it could not run."""
    import shutil
    import subprocess

    if shutil.which(argv[0]) is None:
        return f"{argv[0]} not found: this system does not seem to run systemd"
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return f"{' '.join(argv)} did not answer within {timeout:.0f} s"
    except OSError as exc:
        return f"cannot run {argv[0]}: {exc.strerror}"


def _why(scope: Scope, output: str) -> str:
    """A failed systemctl's message, with the usual reason in plain words."""
    if scope.name == "user" and "bus" in output.lower():
        return (
            f"{output} — no systemd user manager runs for you here (no login session, a container, "
            "or `su` without a session)"
        )
    return output


def run_steps(scope: Scope, steps: Sequence[list[str]], report: Report) -> bool:
    """Run systemctl steps in order; at the first failure, list it and the rest as manual commands."""
    for i, argv in enumerate(steps):
        result = _run(argv)
        if isinstance(result, str):
            ok, output = False, result
        else:
            ok, output = result.returncode == 0, (result.stderr or result.stdout).strip()
        report.commands.append(Ran(argv, ok, output))
        if ok:
            report.log.append(f"ran       {' '.join(argv)}")
        else:
            report.notes.append(f"{' '.join(argv)} failed: {_why(scope, output) or 'no message'}")
            report.manual.extend(" ".join(a) for a in steps[i:])
            return False
    return True


def query(scope: Scope, verb: str, unit: str) -> str:
    """`systemctl is-active|is-enabled UNIT` as one word, or why it is unknown."""
    result = _run(scope.systemctl_command(verb, unit), timeout=15)
    if isinstance(result, str):
        return f"unknown ({result})"
    answer = result.stdout.strip()
    if answer:
        return answer
    return f"unknown ({(result.stderr.strip().splitlines() or ['no answer'])[0]})"


def namespaces_usable() -> bool | None:
    """Whether the user manager can give a service the namespaces bimmaild.service asks for:
    a throw-away ``true`` with the same options. None when it cannot be tried (no systemd-run,
    no manager): then the unit stays as shipped."""
    props = [arg for key, value in NAMESPACE_OPTIONS.items() for arg in ("-p", f"{key}={value}")]
    result = _run(["systemd-run", "--user", "--wait", "--quiet", "--collect", *props, "true"], timeout=30)
    if isinstance(result, str):
        return None
    if result.returncode == 0:
        return True
    return False if result.returncode in _EXEC_STEP_FAILURES else None


def no_namespaces_dropin() -> str:
    """Turns off what needs a user namespace; the seccomp-based options of the unit stay."""
    lines = [
        "# Written by `bimmailctl service install`: this system does not let user services create",
        "# the namespaces bimmaild.service asks for (unprivileged user namespaces are restricted), and",
        "# the service would not start. Without them the daemon runs with the rest of its sandbox.",
        "# The next install tries again and removes this file when they work.",
        "[Service]",
        *(f"{key}=no" for key in NAMESPACE_OPTIONS),
        "ReadWritePaths=",
    ]
    return "\n".join(lines) + "\n"


# --- the checks ------------------------------------------------------------------------------------


def check_may_manage(
    scope: Scope, verb: str, *, unit_dir_given: bool, runs_systemctl: bool, euid: int | None = None
) -> None:
    """The system units are root's: refuse before doing anything, and say which command to run.

    Without root, --system may only write files into a directory you name without running
    systemctl (packaging, tests); --dry-run, which changes nothing, never comes here."""
    if scope.name != "system":
        return
    if (os.geteuid() if euid is None else euid) == 0:
        return
    if unit_dir_given and not runs_systemctl:
        return
    me = Path(sys.argv[0]).resolve()
    raise ServiceError(
        render.EXIT_PERMISSION,
        f"the system service is root's (/etc/systemd/system, the system manager): run "
        f"`sudo {me} service {verb} --system` (the full path: sudo does not keep a virtualenv's PATH)",
    )


def _write(path: Path, text: str) -> str:
    """Write a unit file atomically, 0644 like every unit; its state: written, updated or unchanged."""
    try:
        old = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        old = None
    except OSError as exc:
        raise ServiceError(render.EXIT_FAILURE, f"cannot read {path}: {exc.strerror}") from None
    if old == text:
        return "unchanged"
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o644)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ServiceError(render.EXIT_FAILURE, f"cannot write {path}: {exc.strerror}") from None
    return "written" if old is None else "updated"


def _mkdir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ServiceError(render.EXIT_FAILURE, f"cannot create {path}: {exc.strerror}") from None


def _live_socket(path: Path) -> bool:
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


# --- commands --------------------------------------------------------------------------------------


# render's writers default to the sys.stdout of import time: this module, called in-process by
# tests, passes the current one.


def _fail(args: argparse.Namespace, exc: ServiceError) -> int:
    if args.json:
        render.print_json({"error": render.local_error("service", str(exc))}, sys.stdout)
    print(f"bimmailctl: {render.printable(str(exc))}", file=sys.stderr)
    return exc.code


def _usage(args: argparse.Namespace) -> None:
    if args.user is not None:
        raise ServiceError(
            render.EXIT_INVALID,
            "the global --user NAME acts on a daemon's accounts; `service` takes --user/--system after it",
        )


def cmd_install(args: argparse.Namespace) -> int:
    try:
        _usage(args)
        scope = SCOPES[args.scope]
        enable = not args.no_enable
        if not args.dry_run:
            check_may_manage(scope, "install", unit_dir_given=args.unit_dir is not None, runs_systemctl=enable)
        bimmaild = find_bimmaild()
        unit_dir = (args.unit_dir or scope.default_unit_dir()).absolute()
        texts = {name: render_unit(name, bimmaild, scope) for name in scope.units}
        report = Report(scope.name, unit_dir)
        steps = _enable_steps(scope)
        if args.autostart:
            steps.append(scope.systemctl_command("enable", "--now", scope.service_unit))
        if args.dry_run:
            return _show_dry_run(args, report, texts, steps if enable else [], bimmaild)
        if scope.name == "user" and os.geteuid() == 0:
            report.notes.append("as root, this is root's own user service; one daemon for every user is --system")
        hidden = [d for d in PRIVATE_TMP if bimmaild.is_relative_to(d)]
        if hidden:
            report.notes.append(f"{bimmaild} is under {hidden[0]}, which PrivateTmp= hides from the service")
        _mkdir(unit_dir)
        for name, text in texts.items():
            report.file(unit_dir / name, _write(unit_dir / name, text))
        ok = True
        if enable:
            if scope.name == "user":
                _apply_namespace_probe(unit_dir / f"{scope.service_unit}.d", report)
            ok = _check_no_hand_started_daemon(scope, report) and run_steps(scope, steps, report)
            if ok:
                _note_running_old_unit(scope, report)
    except ServiceError as exc:
        return _fail(args, exc)
    return _show_install(args, scope, report, bimmaild, enabled=enable and ok, autostart=args.autostart)


def _apply_namespace_probe(dropin_dir: Path, report: Report) -> None:
    dropin = dropin_dir / NO_NAMESPACES_DROPIN
    usable = namespaces_usable()
    if usable is False:
        _mkdir(dropin_dir)
        report.file(dropin, _write(dropin, no_namespaces_dropin()))
        report.notes.append(
            "this system refuses user namespaces to user services (e.g. Ubuntu's AppArmor restriction): "
            f"file-system sandboxing turned off in {dropin}; the rest of the sandbox stays"
        )
    elif usable is True and dropin.exists():
        dropin.unlink()
        report.file(dropin, "removed")


def _check_no_hand_started_daemon(scope: Scope, report: Report) -> bool:
    """A bimmaild started by hand on the socket's path would be replaced by systemd's socket, and the
    activated daemon would find the data dir taken: ask to stop it first."""
    path = scope.socket_path()
    if path is None or not path.exists():
        return True
    if query(scope, "is-active", scope.socket_unit) == "active":
        return True  # systemd's own socket: connecting would only start the service
    if not _live_socket(path):
        return True
    report.notes.append(
        f"a bimmaild not started by systemd serves {path}: stop it first (Ctrl-C, or kill its pid from "
        "`bimmailctl status`), then enable the units"
    )
    report.manual.extend(" ".join(a) for a in _enable_steps(scope))
    return False


def _note_running_old_unit(scope: Scope, report: Report) -> None:
    changed = any(f["state"] == "updated" for f in report.files)
    if changed and query(scope, "is-active", scope.service_unit) == "active":
        restart = " ".join(scope.systemctl_command("restart", scope.service_unit.removesuffix(".service")))
        report.notes.append(f"the running daemon keeps its old settings until restarted: {restart}")


def _show_dry_run(
    args: argparse.Namespace, report: Report, texts: dict[str, str], steps: list[list[str]], bimmaild: Path
) -> int:
    if args.json:
        files = [{"path": str(report.unit_dir / name), "content": text} for name, text in texts.items()]
        result = {"scope": report.scope, "unit_dir": str(report.unit_dir), "bimmaild": str(bimmaild)}
        render.print_json({**result, "files": files, "commands": steps, "dry_run": True}, sys.stdout)
        return render.EXIT_OK
    for name, text in texts.items():
        print(f"--- would write {report.unit_dir / name}")
        print(text, end="")
    for argv in steps:
        print(f"--- would run: {' '.join(argv)}")
    return render.EXIT_OK


def _show_install(
    args: argparse.Namespace, scope: Scope, report: Report, bimmaild: Path, *, enabled: bool, autostart: bool
) -> int:
    failed = not enabled and not args.no_enable
    if args.json:
        render.print_json(report.to_json(bimmaild=str(bimmaild), enabled=enabled), sys.stdout)
        return render.EXIT_FAILURE if failed else render.EXIT_OK
    print("\n".join(report.log))
    print(f"ExecStart={installed_exec(report.unit_dir / scope.service_unit)}")
    out = sys.stderr if failed else sys.stdout
    for note in report.notes:
        print(f"note: {note}", file=out)
    if failed:
        print("bimmailctl: the unit files are installed but not enabled; once that is fixed, run:", file=out)
        for line in report.manual:
            print(f"  {line}", file=out)
        return render.EXIT_FAILURE
    if args.no_enable:
        print(f"not enabled (--no-enable); to enable: {'; '.join(' '.join(a) for a in _enable_steps(scope))}")
        return render.EXIT_OK
    where = scope.socket_path() or f"$XDG_RUNTIME_DIR/{APP_NAME}/{SOCKET_NAME}"
    when = "now and at every login" if scope.name == "user" else "now and at every boot"
    started = f"bimmaild runs {when}" if autostart else "bimmaild starts on the first bimmailctl call"
    logs = " ".join(["journalctl", *scope.systemctl_flags, "-u", scope.service_unit.removesuffix(".service")])
    print(f"{started} (socket {where}); logs: {logs}")
    if scope.name == "user" and os.environ.get(SOCKET_ENV) and Path(os.environ[SOCKET_ENV]) != where:
        print(f"note: ${SOCKET_ENV} is set: bimmailctl looks there, not at {where}", file=sys.stderr)
    return render.EXIT_OK


def _enable_steps(scope: Scope) -> list[list[str]]:
    return [scope.systemctl_command("daemon-reload"), scope.systemctl_command("enable", "--now", scope.socket_unit)]


def cmd_uninstall(args: argparse.Namespace) -> int:
    try:
        _usage(args)
        scope = SCOPES[args.scope]
        check_may_manage(scope, "uninstall", unit_dir_given=False, runs_systemctl=True)
        unit_dir = (args.unit_dir or scope.default_unit_dir()).absolute()
        report = Report(scope.name, unit_dir)
        paths = [unit_dir / name for name in scope.units]
        present = [p for p in paths if p.exists() or p.is_symlink()]
        dropin_dir = unit_dir / f"{scope.service_unit}.d"
        ours = dropin_dir / NO_NAMESPACES_DROPIN
        if not present and not ours.exists():
            message = f"bimmaild's {scope.name} units are not installed in {unit_dir}"
            if args.json:
                render.print_json(report.to_json(removed=False, message=message), sys.stdout)
            else:
                print(message)
            return render.EXIT_OK
        # Disable while the files exist: systemctl reads their [Install] sections to undo it.
        disabled = run_steps(scope, [scope.systemctl_command("disable", "--now", *scope.units)], report)
        for path in [*present, *([ours] if ours.exists() else [])]:
            _unlink(path, report)
        if dropin_dir.is_dir() and not any(dropin_dir.iterdir()):
            dropin_dir.rmdir()
        for link in _dangling_wants(unit_dir, scope.units):
            _unlink(link, report)  # left by a `disable` that could not run
        reloaded = run_steps(scope, [scope.systemctl_command("daemon-reload")], report) if disabled else False
        if not disabled:
            report.manual[:] = [
                " ".join(scope.systemctl_command("stop", *scope.units)),
                " ".join(scope.systemctl_command("daemon-reload")),
            ]
    except ServiceError as exc:
        return _fail(args, exc)
    done = disabled and reloaded
    if args.json:
        render.print_json(report.to_json(removed=True, done=done), sys.stdout)
    else:
        print("\n".join(report.log))
        for note in report.notes:
            print(f"note: {note}", file=sys.stderr)
        if report.manual:
            print("bimmailctl: the unit files are removed; to stop a daemon still running, run:", file=sys.stderr)
            for line in report.manual:
                print(f"  {line}", file=sys.stderr)
    return render.EXIT_OK if done else render.EXIT_FAILURE


def _unlink(path: Path, report: Report) -> None:
    try:
        path.unlink()
    except OSError as exc:
        raise ServiceError(render.EXIT_FAILURE, f"cannot remove {path}: {exc.strerror}") from None
    report.file(path, "removed")


def _dangling_wants(unit_dir: Path, units: Sequence[str]) -> list[Path]:
    """Enablement symlinks (``*.wants/NAME``) whose unit file is gone."""
    found = []
    for wants in unit_dir.glob("*.wants"):
        for name in units:
            link = wants / name
            if link.is_symlink() and not link.exists():
                found.append(link)
    return found


def cmd_status(args: argparse.Namespace) -> int:
    try:
        _usage(args)
    except ServiceError as exc:
        return _fail(args, exc)
    scopes = [SCOPES[args.scope]] if args.scope else list(SCOPES.values())
    results = [_scope_status(scope, args.unit_dir) for scope in scopes]
    if args.json:
        render.print_json(results if args.scope is None else results[0], sys.stdout)
        return render.EXIT_OK
    for result in results:
        installed = [u for u in result["units"] if u["installed"]]
        print(f"{result['scope']} units in {result['unit_dir']}: {'installed' if installed else 'not installed'}")
        if not installed:
            continue
        render.table(
            ("UNIT", "FILE", "ENABLED", "ACTIVE"),
            [(u["unit"], u["file"], u["enabled"], u["active"]) for u in result["units"]],
            sys.stdout,
        )
        if result["exec_start"]:
            print(f"  ExecStart={result['exec_start']}")
        if result["socket"]:
            print(f"  socket: {result['socket']}")
        for note in result["notes"]:
            print(f"  note: {note}")
    return render.EXIT_OK


def _scope_status(scope: Scope, unit_dir_arg: Path | None) -> dict[str, Any]:
    unit_dir = (unit_dir_arg or scope.default_unit_dir()).absolute()
    units: list[dict[str, Any]] = []
    notes: list[str] = []
    exec_start = installed_exec(unit_dir / scope.service_unit)
    any_installed = any((unit_dir / name).exists() for name in scope.units)
    for name in scope.units:
        path = unit_dir / name
        installed = path.exists()
        state = "missing"
        if installed:
            state = "current" if _is_current(path, name, scope, exec_start) else "outdated"
        units.append(
            {
                "unit": name,
                "installed": installed,
                "file": state,
                "enabled": query(scope, "is-enabled", name) if any_installed else "-",
                "active": query(scope, "is-active", name) if any_installed else "-",
            }
        )
    if any(u["file"] == "outdated" for u in units):
        notes.append("a unit file differs from this bimmailctl's: `bimmailctl service install` rewrites it")
    if exec_start:
        binary = _exec_binary(exec_start)
        if binary is not None and not binary.exists():
            notes.append(f"ExecStart's {binary} does not exist: reinstall with the bimmailctl of your installation")
    if (unit_dir / f"{scope.service_unit}.d" / NO_NAMESPACES_DROPIN).exists():
        notes.append("file-system sandboxing is off: this system refuses user namespaces to user services")
    socket = scope.socket_path()
    return {
        "scope": scope.name,
        "unit_dir": str(unit_dir),
        "units": units,
        "exec_start": exec_start,
        "socket": str(socket) if socket and any_installed else None,
        "notes": notes,
    }


def _exec_binary(exec_start: str) -> Path | None:
    """The executable of an ExecStart= written by render_unit (quoted or not)."""
    text = exec_start.lstrip("@-:+!")
    if text.startswith('"'):
        end = text.find('"', 1)
        while end > 0 and text[end - 1] == "\\":
            end = text.find('"', end + 1)
        raw = text[1:end] if end > 0 else text[1:]
    else:
        raw = text.split()[0] if text.split() else ""
    unescaped = raw.replace('\\"', '"').replace("\\\\", "\\").replace("%%", "%")
    return Path(unescaped) if unescaped.startswith("/") else None


def _is_current(path: Path, name: str, scope: Scope, exec_start: str | None) -> bool:
    """Whether the installed file is what this bimmailctl would write (same bimmaild path)."""
    binary = _exec_binary(exec_start) if exec_start else None
    if binary is None:
        return False
    try:
        return path.read_text(encoding="utf-8") == render_unit(name, binary, scope)
    except (OSError, ServiceError):
        return False
