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
    p.add_argument("--account", required=True, metavar="NAME")
    p.add_argument("--folder", metavar="FOLDER")
    p.add_argument("--limit", type=int, default=50, metavar="N")
    p.add_argument("--offset", type=int, default=0, metavar="N")
    p.set_defaults(func=cmd_list)
    p = msub.add_parser("show", help="show one message")
    p.add_argument("id", type=int, metavar="ID")
    p.add_argument("--raw", action="store_true", help="write the message exactly as stored (RFC 5322 bytes)")
    p.set_defaults(func=cmd_show)


async def cmd_list(client: Client, args: argparse.Namespace) -> int:
    params = {"account": args.account, "limit": args.limit, "offset": args.offset}
    if args.folder:
        params["folder"] = args.folder
    rows = await client.call("messages.list", params)
    if args.json:
        render.print_json(rows)
        return render.EXIT_OK
    render.table(
        ("ID", "DATE", "FROM", "SUBJECT", "FOLDER", "FLAGS"),
        [
            (m["id"], (m["date"] or "")[:16].replace("T", " "), _cut(m["from"], 30), _cut(m["subject"], 50),
             m["folder"], " ".join(m["flags"]))
            for m in rows
        ],
    )  # fmt: skip
    return render.EXIT_OK


def _cut(text: str | None, width: int) -> str:
    text = text or ""
    return text if len(text) <= width else text[: width - 1] + "…"


async def cmd_show(client: Client, args: argparse.Namespace) -> int:
    message = await client.call("messages.show", {"id": args.id, "raw": args.raw})
    if args.raw:
        sys.stdout.flush()
        sys.stdout.buffer.write(message["raw"])
        return render.EXIT_OK
    if args.json:
        render.print_json(message)
        return render.EXIT_OK
    for name, value in message["headers"].items():
        print(f"{name}: {value}")
    print(f"Folder: {message['folder']}   Flags: {' '.join(message['flags']) or '-'}   Id: {message['id']}")
    for part in message["attachments"]:
        print(f"Attachment: {part['filename'] or '(unnamed)'} ({part['content_type']}, {part['size']} bytes)")
    print()
    print(message["text"] if message["text"] is not None else "(no text part)")
    return render.EXIT_OK
