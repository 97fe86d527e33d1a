"""``bimmailctl status``: what the daemon is and what it holds."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from bimmailctl import render

if TYPE_CHECKING:
    from bimmailctl.client import Client


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("status", help="show the daemon's state")
    p.set_defaults(func=cmd_status)


async def cmd_status(client: Client, args: argparse.Namespace) -> int:
    status = await client.call("status")
    if args.json:
        render.print_json(status)
        return render.EXIT_OK
    accounts = status["accounts"]
    print(f"bimmaild {status['daemon_version']} (protocol {status['protocol']}), pid {status['pid']}, running")
    render.key_values(
        [
            ("since", status["started_at"]),
            ("socket", status["socket"]),
            ("data dir", status["data_dir"]),
            ("passwords in", status["secret_backend"]),
            ("accounts", f"{accounts['total']} ({accounts['enabled']} enabled)"),
            ("primary", accounts["primary"]),
        ]
    )
    for name, count in status.get("pending_operations", {}).items():
        if count:
            print(f"  {name}: {count} server operation(s) waiting (applied at the next connection)")
    return render.EXIT_OK
