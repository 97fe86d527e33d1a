"""``bimmailctl send``, ``outbox …`` and ``signature …`` (R-D1, R-D2, R-F1, R-F2, R-G1).

Files are read here, by the client, and their bytes travel in the request:
the daemon never opens a path a client names.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bimmailctl import render
from bimmailctl.commands.accounts import UsageError

if TYPE_CHECKING:
    from bimmailctl.client import Client


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _send_parser(sub)
    _outbox_parsers(sub)
    _signature_parsers(sub)


def _send_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "send",
        help="send a message",
        description="Send a message. Recipients are split with the sending account's separator (, or ;). "
        "Exit 0: every recipient accepted; 10: some refused; 9: kept in the outbox, retried later; "
        "8: refused by the server, or the connection lost during the transfer so that the outcome is unknown "
        "(kept in the outbox: outbox retry|cancel).",
    )
    p.add_argument("--from", dest="sender", metavar="ACCOUNT", help="sending account (default: the primary one)")
    p.add_argument("--to", default="", metavar="RECIPIENTS")
    p.add_argument("--cc", default="", metavar="RECIPIENTS")
    p.add_argument("--bcc", default="", metavar="RECIPIENTS")
    p.add_argument("--subject", default="", metavar="TEXT")
    body = p.add_mutually_exclusive_group(required=True)
    body.add_argument("--body-file", metavar="FILE", help="the text of the message (UTF-8)")
    body.add_argument("--body-stdin", action="store_true", help="read the text of the message from standard input")
    p.add_argument("--html-file", metavar="FILE", help="an HTML version of the body too")
    p.add_argument("--attach", action="extend", nargs="+", default=[], metavar="FILE", help="attach files (repeatable)")
    sig = p.add_mutually_exclusive_group()
    sig.add_argument("--signature", metavar="NAME", help="this signature instead of the account's default one")
    sig.add_argument("--no-signature", action="store_true", help="no signature")
    p.set_defaults(func=cmd_send)


def _outbox_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    outbox = sub.add_parser("outbox", help="messages waiting to be sent, failed or recently sent")
    osub = outbox.add_subparsers(dest="outbox_command", metavar="COMMAND", required=True)
    p = osub.add_parser("list", help="list the outbox")
    p.add_argument("account", nargs="?", metavar="ACCOUNT")
    p.set_defaults(func=cmd_outbox_list)
    p = osub.add_parser("retry", help="submit a waiting, failed or uncertain message now")
    p.add_argument("id", type=int, metavar="ID")
    p.set_defaults(func=cmd_outbox_retry)
    p = osub.add_parser("cancel", help="give up sending a message")
    p.add_argument("id", type=int, metavar="ID")
    p.set_defaults(func=cmd_outbox_cancel)


def _content_arguments(p: argparse.ArgumentParser, *, required: bool) -> None:
    body = p.add_mutually_exclusive_group(required=required)
    body.add_argument("--text-file", metavar="FILE", help="a plain-text signature")
    body.add_argument("--html-file", metavar="FILE", help='a rich (HTML) signature; images as src="FILE-NAME"')
    p.add_argument(
        "--image", action="extend", nargs="+", default=None, metavar="FILE", help="images of the HTML (repeatable)"
    )


def _signature_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    signature = sub.add_parser("signature", help="an account's signatures")
    ssub = signature.add_subparsers(dest="signature_command", metavar="COMMAND", required=True)
    p = ssub.add_parser("list", help="the account's signatures, in order")
    p.add_argument("account", metavar="ACCOUNT")
    p.set_defaults(func=cmd_signature_list)
    p = ssub.add_parser("add", help="add a signature at the end of the list")
    p.add_argument("account", metavar="ACCOUNT")
    p.add_argument("--name", required=True)
    _content_arguments(p, required=True)
    p.add_argument("--default", action="store_true", help="make it the default signature")
    p.set_defaults(func=cmd_signature_add)
    p = ssub.add_parser("modify", help="change a signature")
    p.add_argument("account", metavar="ACCOUNT")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--rename", metavar="NEW_NAME")
    _content_arguments(p, required=False)
    p.add_argument("--no-images", action="store_true", help="remove its images")
    default = p.add_mutually_exclusive_group()
    default.add_argument("--default", action="store_true", dest="make_default", help="make it the default")
    default.add_argument("--not-default", action="store_true", help="no longer the default")
    p.set_defaults(func=cmd_signature_modify)
    p = ssub.add_parser("delete", help="delete a signature")
    p.add_argument("account", metavar="ACCOUNT")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=cmd_signature_delete)
    p = ssub.add_parser("move", help="move a signature up, down, or to a position")
    p.add_argument("account", metavar="ACCOUNT")
    p.add_argument("name", metavar="NAME")
    p.add_argument("direction", nargs="?", choices=("up", "down"))
    p.add_argument("--position", type=int, metavar="K", help="to position K (1 is first)")
    p.set_defaults(func=cmd_signature_move)
    p = ssub.add_parser("default", help="make a signature the default (--none: no default)")
    p.add_argument("account", metavar="ACCOUNT")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("name", nargs="?", metavar="NAME")
    target.add_argument("--none", action="store_true", help="no signature is the default")
    p.set_defaults(func=cmd_signature_default)
    p = ssub.add_parser("preview", help="the signature exactly as a sent message carries it")
    p.add_argument("account", metavar="ACCOUNT")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--mime", action="store_true", help="also the MIME parts it adds (inline images)")
    p.set_defaults(func=cmd_signature_preview)


# -- reading files ---------------------------------------------------------------------


def _read_bytes(name: str) -> bytes:
    try:
        return Path(name).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror}") from None


def _read_text(name: str) -> str:
    try:
        return _read_bytes(name).decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{name} is not UTF-8 text") from None


def _files(names: list[str]) -> list[dict[str, Any]]:
    return [{"filename": Path(n).name, "data": _read_bytes(n)} for n in names]


# -- send ------------------------------------------------------------------------------


async def cmd_send(client: Client, args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.body_stdin else _read_text(args.body_file)
    params: dict[str, Any] = {
        "to": args.to,
        "cc": args.cc,
        "bcc": args.bcc,
        "subject": args.subject,
        "text": text,
        "attachments": _files(args.attach),
        "no_signature": args.no_signature,
    }
    if args.sender is not None:
        params["from"] = args.sender
    if args.html_file:
        params["html"] = _read_text(args.html_file)
    if args.signature is not None:
        params["signature"] = args.signature
    result = await client.call("send", params)
    if args.json:
        render.print_json(result)
    else:
        render.send_result(result)
    return render.send_exit_code(result)


# -- outbox ----------------------------------------------------------------------------


async def cmd_outbox_list(client: Client, args: argparse.Namespace) -> int:
    params = {"account": args.account} if args.account else {}
    entries = await client.call("outbox.list", params)
    if args.json:
        render.print_json(entries)
    else:
        render.table(
            ("ID", "ACCOUNT", "STATE", "TRIES", "NEXT TRY", "SUBJECT", "RECIPIENTS", "LAST ERROR"),
            [
                (e["id"], e["account"], e["state"], e["attempts"], (e["next_attempt_at"] or "")[:19] or None,
                 e["subject"], ", ".join(e["recipients"]), e["last_error"])
                for e in entries
            ],
        )  # fmt: skip
    return render.EXIT_OK


async def cmd_outbox_retry(client: Client, args: argparse.Namespace) -> int:
    result = await client.call("outbox.retry", {"id": args.id})
    if args.json:
        render.print_json(result)
    else:
        render.send_result(result)
    return render.send_exit_code(result)


async def cmd_outbox_cancel(client: Client, args: argparse.Namespace) -> int:
    entry = await client.call("outbox.cancel", {"id": args.id})
    if args.json:
        render.print_json(entry)
    else:
        print(f"outbox entry {entry['id']} cancelled: it will not be sent")
    return render.EXIT_OK


# -- signatures ------------------------------------------------------------------------


def _print_signatures(args: argparse.Namespace, listing: dict[str, Any]) -> int:
    if args.json:
        render.print_json(listing)
        return render.EXIT_OK
    render.table(
        ("POS", "NAME", "KIND", "DEFAULT", "IMAGES", "FIRST LINE"),
        [
            (s["position"], s["name"], s["kind"], "yes" if s["default"] else "", len(s["images"]) or "",
             (s["body"].strip().splitlines() or [""])[0][:50])
            for s in listing["signatures"]
        ],
    )  # fmt: skip
    return render.EXIT_OK


def _content(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if args.text_file:
        params["text"] = _read_text(args.text_file)
    if args.html_file:
        params["html"] = _read_text(args.html_file)
    if args.image is not None:
        params["images"] = _files(args.image)
    return params


async def cmd_signature_list(client: Client, args: argparse.Namespace) -> int:
    return _print_signatures(args, await client.call("signature.list", {"account": args.account}))


async def cmd_signature_add(client: Client, args: argparse.Namespace) -> int:
    params = {"account": args.account, "name": args.name, "default": args.default, **_content(args)}
    return _print_signatures(args, await client.call("signature.add", params))


async def cmd_signature_modify(client: Client, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"account": args.account, "name": args.name, **_content(args)}
    if args.no_images:
        if args.image:
            raise UsageError("give --image or --no-images, not both")
        params["images"] = []
    if args.rename:
        params["new_name"] = args.rename
    if args.make_default or args.not_default:
        params["default"] = bool(args.make_default)
    if len(params) == 2:
        raise UsageError("nothing to change: give --rename, --text-file, --html-file, --image or --default")
    return _print_signatures(args, await client.call("signature.modify", params))


async def cmd_signature_delete(client: Client, args: argparse.Namespace) -> int:
    return _print_signatures(args, await client.call("signature.delete", {"account": args.account, "name": args.name}))


async def cmd_signature_move(client: Client, args: argparse.Namespace) -> int:
    if (args.direction is None) == (args.position is None):
        raise UsageError("give up, down or --position K")
    params: dict[str, Any] = {"account": args.account, "name": args.name}
    if args.direction:
        params["direction"] = args.direction
    else:
        params["position"] = args.position
    return _print_signatures(args, await client.call("signature.move", params))


async def cmd_signature_default(client: Client, args: argparse.Namespace) -> int:
    params = {"account": args.account, "name": None if args.none else args.name}
    return _print_signatures(args, await client.call("signature.default", params))


async def cmd_signature_preview(client: Client, args: argparse.Namespace) -> int:
    preview = await client.call("signature.preview", {"account": args.account, "name": args.name})
    if args.json:
        render.print_json(preview)
        return render.EXIT_OK
    print(preview["plain"])  # as the text/plain part carries it: after the "-- " line
    if preview.get("html"):
        print("\n--- HTML part ---")
        print(preview["html"])
    if args.mime and preview.get("mime"):
        print("\n--- MIME parts ---")
        print(preview["mime"])
    return render.EXIT_OK
