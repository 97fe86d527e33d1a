"""``bimmailctl messages list|show``: reading the local store."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from bimmailctl import render

if TYPE_CHECKING:
    from bimmailctl.client import Client


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    messages = sub.add_parser("messages", help="read the messages of the local store")
    msub = messages.add_subparsers(dest="messages_command", metavar="COMMAND", required=True)
    p = msub.add_parser("list", help="list messages, newest first")
    p.add_argument("--account", metavar="NAME", help="this account only (default: every account)")
    p.add_argument("--folder", metavar="FOLDER")
    p.add_argument("--trash", action="store_true", help="the account's trash folder")
    p.add_argument("--limit", type=int, default=50, metavar="N")
    p.add_argument("--offset", type=int, default=0, metavar="N")
    p.set_defaults(func=cmd_list)
    p = msub.add_parser("show", help="show one message")
    p.add_argument("id", type=int, metavar="ID")
    p.add_argument("--raw", action="store_true", help="write the message exactly as stored (RFC 5322 bytes)")
    p.set_defaults(func=cmd_show)
    p = msub.add_parser("delete", help="move messages to the account's trash folder (server and local)")
    p.add_argument("ids", type=int, nargs="+", metavar="ID")
    p.add_argument("--permanent", action="store_true", help="delete messages of the trash for good")
    p.add_argument("--yes", "-y", action="store_true", help="confirm a permanent deletion")
    p.set_defaults(func=cmd_delete)
    p = msub.add_parser("restore", help="move messages of the trash back where they came from")
    p.add_argument("ids", type=int, nargs="+", metavar="ID")
    p.set_defaults(func=cmd_restore)
    for name, func, text in (
        ("assign", cmd_assign, "give a project its own copy"),
        ("unassign", cmd_unassign, "remove from a project"),
    ):
        p = msub.add_parser(name, help=text)
        p.add_argument("ids", type=int, nargs="+", metavar="ID")
        p.add_argument("--project", required=True, metavar="NAME")
        p.set_defaults(func=func)


async def cmd_list(client: Client, args: argparse.Namespace) -> int:
    params = {"limit": args.limit, "offset": args.offset, "trash": args.trash}
    if args.account:
        params["account"] = args.account
    if args.folder:
        params["folder"] = args.folder
    rows = await client.call("messages.list", params)
    if args.json:
        render.print_json(rows)
        return render.EXIT_OK
    render.message_table(rows, trash=args.trash)
    return render.EXIT_OK


async def cmd_show(client: Client, args: argparse.Namespace) -> int:
    message = await client.call("messages.show", {"id": args.id, "raw": args.raw})
    if args.raw:
        sys.stdout.flush()
        sys.stdout.buffer.write(message["raw"])
        return render.EXIT_OK
    if args.json:
        render.print_json(message)
        return render.EXIT_OK
    render.message_block(message)
    return render.EXIT_OK


async def _action(client: Client, args: argparse.Namespace, method: str, params: dict[str, object], verb: str) -> int:
    result = await client.call(method, params)
    if args.json:
        render.print_json(result)
    else:
        key = next(k for k in result if isinstance(result[k], list) and k != "accounts")
        print(f"{verb}: {' '.join(str(i) for i in result[key]) or 'nothing'}")
    return render.EXIT_OK


async def cmd_delete(client: Client, args: argparse.Namespace) -> int:
    params = {"ids": args.ids, "permanent": args.permanent, "confirm": args.yes}
    return await _action(
        client, args, "messages.delete", params, "deleted for good" if args.permanent else "moved to the trash"
    )


async def cmd_restore(client: Client, args: argparse.Namespace) -> int:
    return await _action(client, args, "messages.restore", {"ids": args.ids}, "restored")


async def cmd_assign(client: Client, args: argparse.Namespace) -> int:
    return await _action(
        client, args, "messages.assign", {"ids": args.ids, "project": args.project}, f"assigned to {args.project}"
    )


async def cmd_unassign(client: Client, args: argparse.Namespace) -> int:
    return await _action(
        client, args, "messages.unassign", {"ids": args.ids, "project": args.project}, f"removed from {args.project}"
    )
