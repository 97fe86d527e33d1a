"""``bimmailctl user …``: who may configure their own mail accounts (R-L3), for administrators."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from bimmailctl import render

if TYPE_CHECKING:
    from bimmailctl.client import Client


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    user = sub.add_parser("user", help="users of a system daemon and their right to configure (administrators)")
    usub = user.add_subparsers(dest="user_command", metavar="COMMAND", required=True)
    p = usub.add_parser("list", help="users known to the daemon, their accounts and their right")
    p.set_defaults(func=cmd_list)
    p = usub.add_parser("allow-config", help="let a user add, change and delete their own accounts")
    p.add_argument("name", metavar="USER")
    p.set_defaults(func=cmd_allow)
    p = usub.add_parser("deny-config", help="take that right away (they can still list, test, fetch and send)")
    p.add_argument("name", metavar="USER")
    p.set_defaults(func=cmd_deny)


def _right(entry: dict[str, Any]) -> str:
    if entry["is_admin"]:
        return "yes (administrator)"
    text = "yes" if entry["may_configure"] else "no"
    return text + (" (default)" if entry["decision"] == "default" else "")


async def cmd_list(client: Client, args: argparse.Namespace) -> int:
    entries = await client.call("user.list")
    if args.json:
        render.print_json(entries)
    else:
        render.table(
            ("USER", "UID", "ACCOUNTS", "MAY CONFIGURE", "LAST SEEN"),
            [(e["name"], e["uid"], e["accounts"], _right(e), e["last_seen_at"]) for e in entries],
        )
    return render.EXIT_OK


async def _set(client: Client, args: argparse.Namespace, method: str) -> int:
    entry = await client.call(method, {"user": args.name})
    if args.json:
        render.print_json(entry)
    else:
        print(f"{entry['name']} may {'now' if entry['may_configure'] else 'no longer'} configure their mail accounts")
    return render.EXIT_OK


async def cmd_allow(client: Client, args: argparse.Namespace) -> int:
    return await _set(client, args, "user.allow_config")


async def cmd_deny(client: Client, args: argparse.Namespace) -> int:
    return await _set(client, args, "user.deny_config")
