"""``bimmailctl project …``: the collaborative space (R-C6, R-X2)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from bimmailctl import render

if TYPE_CHECKING:
    from bimmailctl.client import Client


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    project = sub.add_parser("project", help="projects: messages kept whatever happens on the server")
    psub = project.add_subparsers(dest="project_command", metavar="COMMAND", required=True)
    p = psub.add_parser("add", help="create a project")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=cmd_add)
    p = psub.add_parser("list", help="list projects")
    p.set_defaults(func=cmd_list)
    p = psub.add_parser("messages", help="the messages of a project")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=cmd_messages)
    p = psub.add_parser("show-message", help="show a message of a project")
    p.add_argument("id", type=int, metavar="ID")
    p.add_argument("--raw", action="store_true")
    p.set_defaults(func=cmd_show)


async def cmd_add(client: Client, args: argparse.Namespace) -> int:
    result = await client.call("project.add", {"name": args.name})
    if args.json:
        render.print_json(result)
    else:
        print(f"project {result['name']} created")
    return render.EXIT_OK


async def cmd_list(client: Client, args: argparse.Namespace) -> int:
    projects = await client.call("project.list")
    if args.json:
        render.print_json(projects)
    else:
        render.table(
            ("ID", "NAME", "MESSAGES", "CREATED"),
            [(p["id"], p["name"], p["messages"], p["created_at"]) for p in projects],
        )
    return render.EXIT_OK


async def cmd_messages(client: Client, args: argparse.Namespace) -> int:
    rows = await client.call("project.messages", {"project": args.name})
    if args.json:
        render.print_json(rows)
    else:
        render.table(
            ("ID", "DATE", "FROM", "SUBJECT", "ACCOUNT"),
            [(m["id"], (m["date"] or "")[:16].replace("T", " "), m["from"], m["subject"], m["account"]) for m in rows],
        )
    return render.EXIT_OK


async def cmd_show(client: Client, args: argparse.Namespace) -> int:
    message = await client.call("project.show_message", {"id": args.id, "raw": args.raw})
    if args.raw:
        sys.stdout.flush()
        sys.stdout.buffer.write(message["raw"])
    elif args.json:
        render.print_json(message)
    else:
        render.message_block(message)
    return render.EXIT_OK
