"""``bimmailctl``: parse the command line, send the request, render the answer.

asyncio, msgpack and the client are imported only after parsing, so that
``bimmailctl --help`` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bimmailctl import render
from bimmailctl.commands import (
    accounts,
    automation,
    messages,
    oauth,
    projects,
    providers,
    send,
    service,
    sync,
    system,
    users,
)

if TYPE_CHECKING:
    from bimmailctl.client import Client

EPILOG = "exit codes:\n" + "\n".join(f"  {code}  {text}" for code, text in render.EXIT_CODES_DOC)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bimmailctl",
        description="Control bimmaild, the bimmail mail-account daemon.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--socket", metavar="PATH", help="daemon socket (default: $BIMMAIL_SOCKET, else the user runtime dir)"
    )
    parser.add_argument("--json", action="store_true", help='print results as JSON (errors as {"error": …})')
    parser.add_argument(
        "--user", metavar="NAME", help="administrators: act on this local user's accounts (system daemon)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    system.add_parsers(sub)
    accounts.add_parsers(sub)
    providers.add_parsers(sub)
    sync.add_parsers(sub)
    messages.add_parsers(sub)
    projects.add_parsers(sub)
    automation.add_parsers(sub)
    send.add_parsers(sub)
    users.add_parsers(sub)
    oauth.add_parsers(sub)
    service.add_parsers(sub)
    _accept_globals_anywhere(parser)
    return parser


def _accept_globals_anywhere(parser: argparse.ArgumentParser) -> None:
    """``--json`` and ``--user`` after the sub-command too (``bimmailctl send … --json``), as
    users type them.  SUPPRESS: when not given there, the global option's value stands."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for child in action.choices.values():
            if "--json" not in child._option_string_actions:
                child.add_argument(
                    "--json", action="store_true", default=argparse.SUPPRESS, help="print results as JSON"
                )
            if "--user" not in child._option_string_actions:  # ``service … --user`` means the systemd scope
                child.add_argument(
                    "--user", metavar="NAME", default=argparse.SUPPRESS, help="administrators: act for this local user"
                )
            _accept_globals_anywhere(child)


async def _run(args: argparse.Namespace) -> int:
    from bimmailctl.client import Client

    client: Client = await Client.connect(args.socket, client_name="bimmailctl", act_as=args.user)
    async with client:
        code: int = await args.func(client, args)
        return code


def _fail(args: argparse.Namespace, code: int, message: str, error: dict[str, Any] | None = None) -> int:
    if args.json:
        render.print_json({"error": error or render.local_error("error", message)})
    # A daemon's message may quote a server (a certificate's names, a reply): never raw to the terminal.
    print(f"bimmailctl: {render.printable(message)}", file=sys.stderr)
    return code


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The parsed command line; with ``--json`` anywhere, a bad one is also a JSON error on stdout
    (argparse prints its usage on stderr, as without ``--json``, and exits 2)."""
    words = list(sys.argv[1:] if argv is None else argv)
    if "--json" not in words:
        return build_parser().parse_args(words)
    import contextlib
    import io

    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            return build_parser().parse_args(words)
    except SystemExit as exc:
        sys.stderr.write(captured.getvalue())
        if exc.code not in (0, None):
            message = captured.getvalue().strip().splitlines()[-1:] or ["invalid command line"]
            render.print_json({"error": render.local_error("usage", message[0].partition("error: ")[2] or message[0])})
        raise


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if getattr(args, "local", None) is not None:  # needs no daemon (bimmailctl service …)
        local_code: int = args.local(args)
        return local_code
    import asyncio

    from bimmailctl.client import ConnectionLost, DaemonNotRunning
    from bimmaild.protocol.errors import BimmailError, ErrorCode

    try:
        return asyncio.run(_run(args))
    except accounts.UsageError as exc:
        return _fail(args, render.EXIT_INVALID, str(exc), render.local_error("usage", str(exc)))
    except DaemonNotRunning as exc:
        error = render.local_error("daemon_not_running", str(exc), {"socket": str(exc.socket_path)})
        return _fail(args, render.EXIT_NOT_RUNNING, str(exc), error)
    except ConnectionLost as exc:
        return _fail(args, render.EXIT_FAILURE, str(exc), render.local_error("connection_lost", str(exc)))
    except BimmailError as exc:
        wire = exc.to_wire()
        if not args.json and isinstance(exc.data.get("report"), dict):
            render.connection_report(exc.data["report"], sys.stderr)
        hint = f" (field {exc.field})" if exc.field else ""
        if wire["code"] == ErrorCode.CONFIRMATION_REQUIRED:
            hint = " (pass --yes to confirm)"
        return _fail(args, render.exit_code_for(wire["code"]), f"{exc.message}{hint}", wire)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `bimmailctl … | head`: the reader has what it wanted
        # Python ignores SIGPIPE (the control socket needs that), so do what a shell tool does,
        # quietly: no traceback, no second error when stdout is flushed at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13  # as if killed by SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
