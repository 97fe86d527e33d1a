"""``bimmailctl provider list|show``: the preset database (R-B2)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from bimmailctl import render

if TYPE_CHECKING:
    from bimmailctl.client import Client


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    provider = sub.add_parser("provider", help="provider presets (server settings of common providers)")
    psub = provider.add_subparsers(dest="provider_command", metavar="COMMAND", required=True)
    p = psub.add_parser("list", help="list the presets")
    p.set_defaults(func=cmd_list)
    p = psub.add_parser("show", help="show one preset")
    p.add_argument("provider", metavar="ID")
    p.set_defaults(func=cmd_show)


async def cmd_list(client: Client, args: argparse.Namespace) -> int:
    providers = await client.call("provider.list")
    if args.json:
        render.print_json(providers)
    else:
        render.provider_table(providers)
    return render.EXIT_OK


async def cmd_show(client: Client, args: argparse.Namespace) -> int:
    provider = await client.call("provider.show", {"provider": args.provider})
    if args.json:
        render.print_json(provider)
    else:
        render.provider_block(provider)
    return render.EXIT_OK
