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
    automation = await client.call("automation.get")
    print(f"  automatic fetch: {'on' if automation['enabled'] else 'off'}, every {automation['interval_minutes']} min,"
          f" next {automation['next_run'] or '-'}")  # fmt: skip
    outbox = status.get("outbox") or {}
    if outbox:
        waiting = ", ".join(f"{n} {state}" for state, n in sorted(outbox.items()))
        print(f"  outbox: {waiting} (bimmailctl outbox list)")
    accounts_list = status["account_states"]
    if accounts_list:
        render.table(
            ("ACCOUNT", "STATE", "LAST FETCH", "NEXT FETCH", "PUSH", "QUEUED"),
            [
                (a["name"], ("fetching" if a["status"].get("fetching") else a["status"]["state"]),
                 a["status"]["last_fetch_at"] or "-", a["status"].get("next_fetch_at") or "-",
                 a["status"].get("push", "off"), a["status"].get("pending_operations", 0))
                for a in accounts_list
            ],
        )  # fmt: skip
        for a in accounts_list:
            message = a["status"].get("message") or a["status"].get("push_error")
            if message:
                print(render.printable(f"{a['name']}: {message}"))
            for op in a["status"].get("refused_operations") or []:
                print(
                    render.printable(
                        f"{a['name']}: server operation #{op['id']} ({op['kind']}) refused "
                        f"{op['attempts']} time(s), again at {op['next_attempt_at']}: {op['error']}"
                    )
                )
    return render.EXIT_OK
