"""``bimmailctl account …``: list, show, add, modify, delete, primary, enable, disable.

Passwords never go on the command line (where ``ps`` shows them): they come
from stdin (``--password-stdin``), a file (``--password-file``, and per
server ``--imap-password-file`` / ``--smtp-password-file``) or a hidden
prompt when ``account add`` runs on a terminal.  With separate
authentication, stdin or the password file hold the IMAP password on the
first line and the SMTP password on the second.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import TYPE_CHECKING, Any

from bimmailctl import render
from bimmailctl.commands import oauth, sync

if TYPE_CHECKING:
    from bimmailctl.client import Client

SECURITY = ("ssl", "starttls", "none")


def _help_text(doc: str) -> str:
    """A docstring as --help shows it: without its reST markup and its first (module) line."""
    return doc.split("\n\n", 1)[-1].replace("``", "")


PASSWORDS_DOC = _help_text(__doc__ or "")
ADD_DOC = (
    PASSWORDS_DOC
    + """
Server settings not given are taken from the provider preset of the address's
domain (or --provider ID); the connection is tested before saving, and a failed
test saves nothing (--no-test skips it).
"""
)
TEST_DOC = """Test the connection of a saved account (NAME), optionally with some settings
changed by the flags (e.g. a new password), or of settings not saved yet (no NAME:
give --email and what the preset does not provide). IMAP and SMTP are checked
step by step: DNS, TCP, TLS/STARTTLS, certificate, capabilities, login, then folders
(IMAP) or the sender address (SMTP). A failed step names the settings to fix; when
the server cannot be reached as configured, the usual other ports and securities are
tried. Exit status 0 when both work, 8 otherwise.
"""


class UsageError(Exception):
    """Bad command-line input detected before asking the daemon (exit 2)."""


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    account = sub.add_parser("account", help="manage mail accounts")
    asub = account.add_subparsers(dest="account_command", metavar="COMMAND", required=True)

    p = asub.add_parser("list", help="list accounts")
    p.set_defaults(func=cmd_list)

    p = asub.add_parser("show", help="show one account")
    p.add_argument("account", metavar="NAME", help="account name or id")
    p.set_defaults(func=cmd_show)

    p = asub.add_parser(
        "add",
        help="add an account (tested first)",
        description=ADD_DOC,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _setting_flags(p, for_add=True)
    p.add_argument("--no-test", action="store_true", help="save without testing the connection first")
    oauth.sign_in_flags(p)
    p.set_defaults(func=cmd_add)

    p = asub.add_parser(
        "test",
        help="test IMAP and SMTP step by step",
        description=TEST_DOC,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "account", metavar="NAME", nargs="?", help="a saved account; without it, the settings given are tested"
    )
    _setting_flags(p, for_add=False)
    p.set_defaults(func=cmd_test)

    p = asub.add_parser(
        "modify",
        help="change settings of an account",
        description=PASSWORDS_DOC,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("account", metavar="NAME", help="account name or id")
    _setting_flags(p, for_add=False)
    oauth.sign_in_flags(p)
    p.set_defaults(func=cmd_modify)

    p = asub.add_parser(
        "reauth",
        help="sign in with OAuth2 again (revoked or expired sign-in), or move a password account to OAuth2",
    )
    p.add_argument("account", metavar="NAME", help="account name or id")
    p.add_argument("--oauth-issuer", metavar="ISSUER", help="issuer, when the account has none yet")
    oauth.sign_in_flags(p)
    p.set_defaults(func=cmd_reauth)

    p = asub.add_parser("delete", help="delete an account (mail on the server is untouched)")
    p.add_argument("account", metavar="NAME", help="account name or id")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_delete)

    sync.add_folder_parser(asub)

    for name, func, text in (
        ("primary", cmd_primary, "make it the primary account (default sender)"),
        ("enable", cmd_enable, "enable the account (fetched again)"),
        ("disable", cmd_disable, "disable the account (skipped by every fetch)"),
    ):
        p = asub.add_parser(name, help=text)
        p.add_argument("account", metavar="NAME", help="account name or id")
        p.set_defaults(func=func)


def _setting_flags(p: argparse.ArgumentParser, *, for_add: bool) -> None:
    bool_flag = argparse.BooleanOptionalAction
    p.add_argument("--name", required=for_add, help="display name, unique" + ("" if for_add else " (rename)"))
    p.add_argument("--email", required=for_add, help="e-mail address")
    p.add_argument(
        "--provider", metavar="ID", help="take missing server settings from this preset (bimmailctl provider list)"
    )
    p.add_argument("--login", help="login for IMAP and SMTP (default: the address; '' resets to it)")
    p.add_argument(
        "--auth", choices=("password", "oauth2"),
        help="password, or oauth2: sign in with the provider (browser or --device)"
        + (" (default: password)" if for_add else ""),
    )  # fmt: skip
    p.add_argument("--oauth-issuer", metavar="ISSUER", help="OAuth2 issuer (default: the provider preset's)")
    pw = p.add_argument_group("passwords (never on the command line)")
    pw.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    pw.add_argument("--password-file", metavar="FILE", help="read the password from the first line of FILE")
    pw.add_argument("--imap-password-file", metavar="FILE", help="IMAP password file (separate auth)")
    pw.add_argument("--smtp-password-file", metavar="FILE", help="SMTP password file (separate auth)")
    p.add_argument("--separate-auth", action=bool_flag, help="separate IMAP and SMTP logins and passwords")
    imap = p.add_argument_group("IMAP")
    imap.add_argument("--imap-host", metavar="HOST", help="default: from the provider preset" if for_add else None)
    imap.add_argument("--imap-port", metavar="PORT", type=int, help="default: 993 for ssl, 143 otherwise")
    imap.add_argument("--imap-security", choices=SECURITY, help="default: ssl" if for_add else None)
    imap.add_argument("--imap-login", metavar="LOGIN", help="IMAP login (separate auth)")
    smtp = p.add_argument_group("SMTP")
    smtp.add_argument("--smtp-host", metavar="HOST", help="default: from the provider preset" if for_add else None)
    smtp.add_argument(
        "--smtp-port", metavar="PORT", type=int, help="default: 465 for ssl, 587 for starttls, 25 for none"
    )
    smtp.add_argument("--smtp-security", choices=SECURITY, help="default: starttls" if for_add else None)
    smtp.add_argument("--smtp-auth", action=bool_flag, help="the SMTP server requires authentication (default: yes)")
    smtp.add_argument("--smtp-login", metavar="LOGIN", help="SMTP login (separate auth)")
    p.add_argument("--tls-ca-file", metavar="PEM", help="trust this CA or self-signed certificate for this account")
    if not for_add:
        p.add_argument("--no-tls-ca-file", action="store_true", help="stop trusting the account's CA file")
    p.add_argument("--trash-folder", metavar="NAME", help="server trash folder (default: BIMoffice)")
    p.add_argument("--separator", choices=(",", ";"), metavar="','|';'", help="recipient separator (default: ',')")
    p.add_argument("--auto-fetch", action=bool_flag, help="include in automatic fetch (default: yes)")
    if for_add:
        p.add_argument("--primary", action="store_true", default=None, help="make it the primary account")
        p.add_argument("--disabled", action="store_true", help="add it disabled")
    else:
        p.add_argument("--primary", action=bool_flag, help="make it (or stop it being) the primary account")
        state = p.add_mutually_exclusive_group()
        state.add_argument("--enabled", dest="enabled", action="store_true", default=None)
        state.add_argument("--disabled", dest="enabled", action="store_false")


def _settings(args: argparse.Namespace, *, for_add: bool) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key in (
        "name",
        "email",
        "provider",
        "login",
        "separate_auth",
        "trash_folder",
        "separator",
        "auto_fetch",
        "primary",
        "auth",
    ):
        if getattr(args, key) is not None:
            params[key] = getattr(args, key)
    if args.oauth_issuer:
        params["oauth"] = {"issuer": args.oauth_issuer}
    if for_add:
        params["enabled"] = not args.disabled
    elif args.enabled is not None:
        params["enabled"] = args.enabled
    if args.tls_ca_file is not None:
        params["tls_ca_file"] = os.path.abspath(args.tls_ca_file) if args.tls_ca_file else None
    if not for_add and args.no_tls_ca_file:
        params["tls_ca_file"] = None
    for kind, keys in (
        ("imap", ("host", "port", "security", "login")),
        ("smtp", ("host", "port", "security", "auth", "login")),
    ):
        server = {k: getattr(args, f"{kind}_{k}") for k in keys if getattr(args, f"{kind}_{k}") is not None}
        if server:
            params[kind] = server
    return params


def _read_lines(source: str) -> list[str]:
    if source == "-":
        text = sys.stdin.read()
    else:
        try:
            with open(source, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise UsageError(f"cannot read password file {source}: {exc.strerror}") from None
    return text.splitlines()


def _first_line(source: str, what: str) -> str:
    lines = _read_lines(source)
    if not lines or not lines[0]:
        raise UsageError(f"no {what} found in {'standard input' if source == '-' else source}")
    return lines[0]


def _passwords(
    args: argparse.Namespace, params: dict[str, Any], *, separate: bool, smtp_auth: bool, prompt: bool
) -> None:
    """Put the passwords the user supplied into params (nested as the protocol wants)."""
    if args.password_stdin and args.password_file:
        raise UsageError("give --password-stdin or --password-file, not both")
    source = "-" if args.password_stdin else args.password_file
    if source is not None:
        lines = _read_lines(source)
        if not lines or not lines[0]:
            raise UsageError("the password input is empty")
        if separate:
            params.setdefault("imap", {})["password"] = lines[0]
            if smtp_auth:
                if len(lines) < 2 or not lines[1]:
                    raise UsageError("with separate auth the password input needs the SMTP password on line 2")
                params.setdefault("smtp", {})["password"] = lines[1]
        else:
            params["password"] = lines[0]
    for kind in ("imap", "smtp"):
        path = getattr(args, f"{kind}_password_file")
        if path is not None:
            params.setdefault(kind, {})["password"] = _first_line(path, f"{kind.upper()} password")
    if prompt and source is None and sys.stdin.isatty():
        who = params.get("email", "the account")
        if not separate:
            params["password"] = getpass.getpass(f"Password for {who}: ")
        else:
            if "password" not in params.get("imap", {}):
                params.setdefault("imap", {})["password"] = getpass.getpass(f"IMAP password for {who}: ")
            if smtp_auth and "password" not in params.get("smtp", {}):
                params.setdefault("smtp", {})["password"] = getpass.getpass(f"SMTP password for {who}: ")


def _show_result(args: argparse.Namespace, result: dict[str, Any], verb: str) -> int:
    if args.json:
        render.print_json(result)
        return render.EXIT_OK
    account = result["account"]
    if result.get("test"):
        render.connection_report(result["test"])
    print(f"{verb} account {account['name']} (#{account['id']})")
    render.notes(result.get("notes", []))
    return render.EXIT_OK


async def cmd_list(client: Client, args: argparse.Namespace) -> int:
    accounts = await client.call("account.list")
    if args.json:
        render.print_json(accounts)
    else:
        render.account_table(accounts)
    return render.EXIT_OK


async def cmd_show(client: Client, args: argparse.Namespace) -> int:
    account = await client.call("account.show", {"account": args.account})
    if args.json:
        render.print_json(account)
    else:
        render.account_block(account)
    return render.EXIT_OK


async def cmd_add(client: Client, args: argparse.Namespace) -> int:
    params = _settings(args, for_add=True)
    params["test"] = not args.no_test
    if args.auth is None and not _password_given(args) and await _oauth_only(client, args):
        args.auth = params["auth"] = "oauth2"
    if args.auth == "oauth2":
        await _oauth_sign_in(client, args, params, {"email": params["email"]})
    else:
        smtp_auth = args.smtp_auth is not False
        _passwords(args, params, separate=bool(args.separate_auth), smtp_auth=smtp_auth, prompt=True)
    return _show_result(args, await client.call("account.add", params), "added")


def _password_given(args: argparse.Namespace) -> bool:
    return bool(args.password_stdin or args.password_file or args.imap_password_file or args.smtp_password_file)


async def _oauth_only(client: Client, args: argparse.Namespace) -> bool:
    """The provider takes no password (Outlook.com, Microsoft 365): sign in rather than prompt."""
    if args.provider:
        provider = await client.call("provider.show", {"provider": args.provider})
    else:
        provider = (await client.call("provider.lookup", {"email": args.email}))["provider"]
    if provider is None or provider["auth"] != ["oauth2"]:
        return False
    print(f"{provider['name']} signs in with OAuth2 only: starting the sign-in", file=sys.stderr)
    return True


async def _oauth_sign_in(
    client: Client, args: argparse.Namespace, params: dict[str, Any], begin: dict[str, Any]
) -> None:
    """Sign in first (the daemon keeps the tokens), then the add or modify takes them (oauth.flow)."""
    if _password_given(args):
        raise UsageError("an OAuth2 account has no password: leave out the password options")
    if args.oauth_issuer:
        begin["issuer"] = args.oauth_issuer
    flow = await oauth.sign_in(client, args, begin)
    params.setdefault("oauth", {})["flow"] = flow


async def _changes(client: Client, args: argparse.Namespace, *, prompt: bool) -> dict[str, Any]:
    """Params from the flags, passwords included, for a saved account (args.account) or new settings."""
    params = _settings(args, for_add=False)
    wants_password = args.password_stdin or args.password_file
    if args.account and wants_password and (args.separate_auth is None or args.smtp_auth is None):
        current = await client.call("account.show", {"account": args.account})
    else:
        current = {"separate_auth": False, "smtp": {"auth": True}}
    separate = current["separate_auth"] if args.separate_auth is None else args.separate_auth
    smtp_auth = current["smtp"]["auth"] if args.smtp_auth is None else args.smtp_auth
    _passwords(args, params, separate=separate, smtp_auth=smtp_auth, prompt=prompt)
    return params


async def cmd_test(client: Client, args: argparse.Namespace) -> int:
    params = await _changes(client, args, prompt=not args.account)
    if args.account:
        params["account"] = args.account
    elif "email" not in params:
        raise UsageError("give a saved account's NAME, or --email (and the servers) to test new settings")
    report = await client.call("account.test", params)
    if args.json:
        render.print_json(report)
    else:
        render.connection_report(report)
        render.notes(report.get("notes", []))
    return render.EXIT_OK if report["ok"] else render.EXIT_SERVER


async def cmd_modify(client: Client, args: argparse.Namespace) -> int:
    params = await _changes(client, args, prompt=False)
    if not params:
        raise UsageError("nothing to change: give at least one setting (see bimmailctl account modify --help)")
    params["account"] = args.account
    if args.auth == "oauth2" or (args.oauth_issuer and args.auth != "password"):
        await _oauth_sign_in(client, args, params, {"account": args.account})
    return _show_result(args, await client.call("account.modify", params), "modified")


async def cmd_reauth(client: Client, args: argparse.Namespace) -> int:
    begin: dict[str, Any] = {"account": args.account}
    if args.oauth_issuer:
        begin["issuer"] = args.oauth_issuer
    flow = await oauth.sign_in(client, args, begin)
    result = await client.call("account.reauth", {"account": args.account, "flow": flow})
    return _show_result(args, result, "signed in")


async def cmd_delete(client: Client, args: argparse.Namespace) -> int:
    confirm = bool(args.yes)
    if not confirm and sys.stdin.isatty():
        account = await client.call("account.show", {"account": args.account})
        import asyncio

        answer = await asyncio.to_thread(
            input,
            f"Delete account {account['name']} <{account['email']}>? Its local messages, settings, "
            "signatures and stored passwords are removed; mail on the server is untouched. [y/N] ",
        )
        if answer.strip().lower() not in ("y", "yes"):
            print("not deleted", file=sys.stderr)
            return render.EXIT_CONFIRMATION
        confirm = True
    result = await client.call("account.delete", {"account": args.account, "confirm": confirm})
    if args.json:
        render.print_json(result)
    else:
        print(f"deleted account {result['deleted']['name']} (#{result['deleted']['id']})")
        render.notes(result["notes"])
    return render.EXIT_OK


async def _simple(client: Client, args: argparse.Namespace, method: str, verb: str) -> int:
    result = await client.call(method, {"account": args.account})
    if args.json:
        render.print_json(result)
    else:
        print(f"{result['account']['name']}: {verb}")
        if result.get("previous"):
            render.notes([f"{result['previous']} is no longer the primary account"])
    return render.EXIT_OK


async def cmd_primary(client: Client, args: argparse.Namespace) -> int:
    return await _simple(client, args, "account.primary", "primary account")


async def cmd_enable(client: Client, args: argparse.Namespace) -> int:
    return await _simple(client, args, "account.enable", "enabled")


async def cmd_disable(client: Client, args: argparse.Namespace) -> int:
    return await _simple(client, args, "account.disable", "disabled")
