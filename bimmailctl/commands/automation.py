"""``bimmailctl automation`` and ``bimmailctl watch``: the automatic fetch switch, and live events."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from bimmailctl import render

if TYPE_CHECKING:
    from bimmailctl.client import Client


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "automation",
        help="show or set the automatic fetch (on|off, --interval MINUTES)",
        description="Without arguments: show the automatic fetch. 'on'/'off' set the global switch; "
        "--interval sets the minutes between automatic fetches. Accounts are fetched automatically when "
        "they are enabled and included (account modify --auto-fetch).",
    )
    p.add_argument("switch", nargs="?", choices=("on", "off"))
    p.add_argument("--interval", type=int, metavar="MINUTES")
    p.set_defaults(func=cmd_automation)
    p = sub.add_parser("watch", help="print the daemon's events as they happen (Ctrl-C to stop)")
    p.add_argument("--topics", nargs="+", metavar="EVENT", help="only these events (default: all)")
    p.set_defaults(func=cmd_watch)


async def cmd_automation(client: Client, args: argparse.Namespace) -> int:
    if args.switch is None and args.interval is None:
        result = await client.call("automation.get")
    else:
        params: dict[str, Any] = {}
        if args.switch is not None:
            params["enabled"] = args.switch == "on"
        if args.interval is not None:
            params["interval_minutes"] = args.interval
        result = await client.call("automation.set", params)
    if args.json:
        render.print_json(result)
    else:
        render.key_values(
            [
                ("automatic fetch", "on" if result["enabled"] else "off"),
                ("interval", f"{result['interval_minutes']} minutes"),
                ("next run", result["next_run"] or "-"),
                ("accounts", len(result["accounts"])),
            ],
            indent="",
        )
    return render.EXIT_OK


async def cmd_watch(client: Client, args: argparse.Namespace) -> int:
    topics = args.topics or client.hello.get("events", [])
    await client.subscribe(list(topics))
    async for event, params in client.events():
        if args.json:
            print(json.dumps({"event": event, "params": params}, ensure_ascii=False), flush=True)
        else:
            print(render.event_line(event, params), flush=True)
    print("bimmailctl: the daemon closed the connection", file=sys.stderr)
    return render.EXIT_FAILURE
