"""``bimmailctl fetch`` and ``bimmailctl account folders``: synchronisation (R-C1, R-C2)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from bimmailctl import render

if TYPE_CHECKING:
    from bimmailctl.client import Client


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("fetch", help="synchronise now (every enabled account, or the ones named)")
    p.add_argument("accounts", metavar="ACCOUNT", nargs="*", help="account names or ids (default: every enabled one)")
    p.add_argument("--wait", action="store_true", help="wait until done and show what changed")
    p.add_argument(
        "--confirm-deletions",
        action="store_true",
        help="apply removals held back by the safety stop (more than half of a folder disappeared on the server)",
    )
    p.set_defaults(func=cmd_fetch)


def add_folder_parser(asub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = asub.add_parser("folders", help="list the server folders and choose which are synchronised")
    p.add_argument("account", metavar="NAME", help="account name or id")
    p.add_argument("--select", metavar="FOLDER", nargs="+", default=[], help="synchronise these folders")
    p.add_argument("--unselect", metavar="FOLDER", nargs="+", default=[], help="stop synchronising these folders")
    p.add_argument("--no-refresh", action="store_true", help="do not ask the server (show what is stored)")
    p.set_defaults(func=cmd_folders)


async def cmd_fetch(client: Client, args: argparse.Namespace) -> int:
    params = {"accounts": args.accounts, "wait": args.wait, "confirm_deletions": args.confirm_deletions}
    if args.wait and not args.json:
        result = await _fetch_with_progress(client, params)
    else:
        result = await client.call("fetch", params)
    if args.json:
        render.print_json(result)
    else:
        _print_fetch(result, args.wait)
    failed = [a for a in result["accounts"] if a["state"] != "ok"]
    return render.EXIT_SERVER if failed else render.EXIT_OK


async def _fetch_with_progress(client: Client, params: dict[str, Any]) -> dict[str, Any]:
    """The fetch, with its fetch.progress events shown while it runs."""
    import asyncio

    await client.subscribe(["fetch.progress"])
    progress = render.Progress()
    loop = asyncio.get_running_loop()
    call = asyncio.ensure_future(client.call("fetch", params))
    events = client.events()
    nxt: asyncio.Future[tuple[str, dict[str, Any]]] | None = None
    try:
        while not call.done():
            nxt = nxt or asyncio.ensure_future(anext(events))
            done, _ = await asyncio.wait({call, nxt}, return_when=asyncio.FIRST_COMPLETED)
            if nxt in done:
                if nxt.exception() is None:
                    progress.update(nxt.result()[1], loop.time())
                nxt = None
    finally:
        if nxt is not None:
            nxt.cancel()
            await asyncio.gather(nxt, return_exceptions=True)
        await events.aclose()
    result: dict[str, Any] = call.result()
    return result


def _print_fetch(result: dict[str, Any], waited: bool) -> None:
    if result["skipped_disabled"]:
        print(f"skipped (disabled): {', '.join(result['skipped_disabled'])}")
    if not waited:
        started = ", ".join(result["started"]) or "nothing (no enabled account)"
        print(f"fetching: {started} (bimmailctl account list shows the outcome)")
        return
    rows = []
    for account in result["accounts"]:
        note = account["error"] or ""
        rows.append(
            (
                account["account"],
                "(all)",
                account["new"],
                account["updated"],
                account["removed"],
                account["state"],
                note,
            )
        )
        for folder in account["folders"]:
            note = folder["error"] or folder["needs_attention"] or ("unchanged" if folder["unchanged"] else "")
            rows.append(("", folder["folder"], folder["new"], folder["updated"], folder["removed"], "", note))
    render.table(("ACCOUNT", "FOLDER", "NEW", "UPDATED", "REMOVED", "STATE", "NOTE"), rows)
    for account in result["accounts"]:  # folders gone or renamed on the server, refused operations …
        for text in account.get("notes") or ():
            print(f"note ({account['account']}): {text}")


async def cmd_folders(client: Client, args: argparse.Namespace) -> int:
    params = {"account": args.account, "select": args.select, "unselect": args.unselect, "refresh": not args.no_refresh}
    result = await client.call("account.folders", params)
    if args.json:
        render.print_json(result)
        return render.EXIT_OK
    if result["offline"]:
        print(f"note: server not reached ({result['offline']}); showing the stored list")
    render.table(
        ("FOLDER", "ROLE", "SYNC", "MESSAGES", "STATE"),
        [
            (
                f["name"],
                f["role"] or "",
                ("yes" if f["selected"] else "no") if f["selectable"] else "-",
                f["messages"],
                f["state"],
            )
            for f in result["folders"]
        ],
    )
    return render.EXIT_OK
