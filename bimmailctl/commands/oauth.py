"""``bimmailctl oauth client …`` and the sign-in that ``account add --auth oauth2`` and
``account reauth`` run.

bimmail ships no OAuth2 client id: register an application with the provider (Google Cloud
console: a "Desktop app" client; Microsoft Entra: a public client with the IMAP and SMTP
permissions), then give its id once with ``oauth client set``.  The client secret, when the
provider issues one, comes from a file (never the command line, where ``ps`` shows it).

The sign-in itself runs in the daemon: this command prints the address to open (and opens a
browser when there is a desktop session), or the code to type for ``--device``, then waits.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from bimmailctl import render
from bimmailctl.commands import accounts  # the module: it imports this one too

if TYPE_CHECKING:
    from bimmailctl.client import Client

WAIT_STEP = 30  # seconds per oauth.wait call: the ctl stays responsive to Ctrl-C


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    oauth = sub.add_parser(
        "oauth", help="OAuth2 client registrations", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    osub = oauth.add_subparsers(dest="oauth_command", metavar="COMMAND", required=True)
    client = osub.add_parser("client", help="the application bimmail signs in with, per issuer")
    csub = client.add_subparsers(dest="client_command", metavar="COMMAND", required=True)

    p = csub.add_parser("set", help="register (or replace) the client id for an issuer")
    p.add_argument("issuer", metavar="ISSUER", help="google, microsoft, or a name of your own (give its endpoints)")
    p.add_argument("--client-id", required=True, help="the application's client id")
    secret = p.add_mutually_exclusive_group()
    secret.add_argument("--client-secret-file", metavar="FILE", help="the client secret, first line of FILE")
    secret.add_argument("--no-client-secret", action="store_true", help="remove a stored client secret")
    p.add_argument("--auth-url", metavar="URL", help="authorization endpoint (own issuer)")
    p.add_argument("--token-url", metavar="URL", help="token endpoint (own issuer)")
    p.add_argument("--device-url", metavar="URL", help="device authorization endpoint (own issuer, optional)")
    p.add_argument("--scope", metavar="SCOPE", action="append", dest="scopes", help="a scope (own issuer; repeat)")
    p.add_argument("--for-every-user", action="store_true", help="system daemon: for every user (administrators)")
    p.set_defaults(func=cmd_client_set)

    p = csub.add_parser("list", help="registered clients and preset issuers")
    p.set_defaults(func=cmd_client_list)

    p = csub.add_parser("delete", help="remove a registration")
    p.add_argument("issuer", metavar="ISSUER")
    p.add_argument("--for-every-user", action="store_true", help="the registration for every user")
    p.set_defaults(func=cmd_client_delete)


def sign_in_flags(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("OAuth2 sign-in")
    group.add_argument("--device", action="store_true", help="sign in on another device with a code (headless)")
    group.add_argument("--no-browser", action="store_true", help="only print the address to open")


async def cmd_client_set(client: Client, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"issuer": args.issuer, "client_id": args.client_id}
    if args.client_secret_file:
        params["client_secret"] = accounts._first_line(args.client_secret_file, "client secret")
    elif args.no_client_secret:
        params["client_secret"] = ""
    for key in ("auth_url", "token_url", "device_url", "scopes"):
        if getattr(args, key):
            params[key] = getattr(args, key)
    if args.for_every_user:
        params["for_every_user"] = True
    result = await client.call("oauth.client.set", params)
    if args.json:
        render.print_json(result)
    else:
        print(
            f"{result['issuer']}: client {result['client_id']}"
            + (" (with secret)" if result["client_secret_set"] else "")
        )
    return render.EXIT_OK


async def cmd_client_list(client: Client, args: argparse.Namespace) -> int:
    result = await client.call("oauth.client.list")
    if args.json:
        render.print_json(result)
        return render.EXIT_OK
    registered = {c["issuer"]: c for c in result["clients"]}
    rows = [
        (c["issuer"], c["client_id"], render.yes_no(c["client_secret_set"]),
         "every user" if c["for_every_user"] else "you", c["endpoints"]["token_url"])
        for c in result["clients"]
    ]  # fmt: skip
    rows += [
        (p["id"], "-", "-", "not registered", p["token_url"]) for p in result["presets"] if p["id"] not in registered
    ]
    render.table(("ISSUER", "CLIENT ID", "SECRET", "FOR", "TOKEN ENDPOINT"), rows)
    return render.EXIT_OK


async def cmd_client_delete(client: Client, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"issuer": args.issuer}
    if args.for_every_user:
        params["for_every_user"] = True
    result = await client.call("oauth.client.delete", params)
    if args.json:
        render.print_json(result)
    else:
        print(f"{result['deleted']['issuer']}: registration removed")
    return render.EXIT_OK


async def sign_in(client: Client, args: argparse.Namespace, params: dict[str, Any]) -> str:
    """Run a sign-in to the end; returns its flow id.  Instructions go to stderr (stdout may be JSON)."""
    begun = await client.call("oauth.begin", {**params, "method": "device" if args.device else "browser"})
    out = sys.stderr
    if begun["method"] == "device":
        out.write(f"To sign in to {begun['issuer']}, open {begun['url']}\nand enter the code: {begun['user_code']}\n")
    else:
        out.write(f"To sign in to {begun['issuer']}, open this address in a browser:\n{begun['url']}\n")
        if not args.no_browser and _desktop():
            import asyncio  # not at the top: --help must stay light
            import webbrowser

            opened = await asyncio.to_thread(webbrowser.open, begun["url"])
            if opened:
                out.write("(a browser window was opened)\n")
    out.write("waiting for the sign-in…\n")
    out.flush()
    deadline = time.monotonic() + begun["expires_in"] + 5
    while time.monotonic() < deadline:
        waited = await client.call("oauth.wait", {"flow": begun["flow"], "timeout": WAIT_STEP})
        if waited["done"]:
            out.write("signed in\n")
            return str(begun["flow"])
    raise accounts.UsageError("the sign-in was not completed in time")


def _desktop() -> bool:
    """A graphical session: opening a browser will not take over this terminal (lynx, w3m)."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or sys.platform == "darwin"
