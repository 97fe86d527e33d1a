"""The table of contents of the control protocol: every method and event.

A method is a name, a parameter declaration (validated by the router before
the handler runs), a description of its result and the errors it can answer.
``docs/PROTOCOL.md`` is generated from this table (``python -m
bimmaild.protocol.docgen``) and a test keeps the two identical.

Versioning rule: methods, params and result fields may be added; the meaning
of an existing one never changes.  ``PROTOCOL_VERSION`` changes only if that
rule ever has to be broken.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from bimmaild.protocol.errors import ErrorCode as E
from bimmaild.protocol.schema import Param

PROTOCOL_VERSION = 1

SECURITY_CHOICES = ("ssl", "starttls", "none")
SEPARATOR_CHOICES = (",", ";")
AUTH_CHOICES = ("password", "oauth2")
SIGN_IN_METHODS = ("browser", "device")
DEFAULT_TRASH_FOLDER = "BIMoffice"


@dataclass(frozen=True)
class Method:
    name: str
    summary: str
    params: tuple[Param, ...]
    result: str
    errors: tuple[E, ...] = ()
    before_hello: bool = False
    # Who may call it (R-L3): any user for their own accounts; "configure": a user with the
    # right to configure (administrators always have it); "admin": administrators only.
    access: str = "user"

    def __post_init__(self) -> None:
        if self.access not in ("user", "configure", "admin"):
            raise ValueError(f"unknown access {self.access!r}")


@dataclass(frozen=True)
class Event:
    name: str
    summary: str
    params: str


ACCOUNT_REF = Param(
    "account",
    "str|int",
    "The account: its display name (case-insensitive), or its numeric id. "
    "A string of digits that is no account's name is taken as an id.",
    required=True,
    max_len=200,
)


def _d(for_add: bool, value: object) -> dict[str, Any]:
    """A default only where one applies: add has defaults, modify leaves absent fields alone."""
    return {"default": value} if for_add else {}


def _server_fields(kind: str, *, for_add: bool) -> tuple[Param, ...]:
    what = kind.upper()
    default_ports = "993 for ssl, 143 otherwise" if kind == "imap" else "465 for ssl, 587 for starttls, 25 for none"
    default_security = "ssl" if kind == "imap" else "starttls"
    preset = " (add: from the provider preset when absent)" if for_add else ""
    fields = [
        Param("host", "str", f"{what} server host name or IP address{preset}.", max_len=253),
        Param("port", "int", f"{what} port{preset}; else by security: {default_ports}.", min=1, max=65535),
        Param(
            "security",
            "str",
            "ssl (implicit TLS), starttls (upgrade required, never downgraded) or none (clear text)"
            f"{preset}; else {default_security}.",
            choices=SECURITY_CHOICES,
        ),
    ]
    if kind == "smtp":
        fields.append(Param("auth", "bool", f"The SMTP server requires authentication{preset}; else true."))
    fields += [
        Param(
            "login",
            "str",
            f"{what} login when separate_auth is on; empty or nil means the address.",
            nullable=True,
            max_len=320,
        ),
        Param("password", "str", f"{what} password when separate_auth is on.", secret=True, max_len=1024),
    ]
    return tuple(fields)


def account_fields(*, for_add: bool) -> tuple[Param, ...]:
    """Settings of an account: required with defaults for add, all optional for modify."""
    return (
        Param("name", "str", "Display name, unique per user.", required=for_add, max_len=100),
        Param("email", "str", "E-mail address.", required=for_add, max_len=320),
        Param(
            "login",
            "str",
            "Login for IMAP and SMTP; empty or nil means the address (R-A1).",
            nullable=True,
            max_len=320,
        ),
        Param("password", "str", "Password for IMAP and SMTP (when separate_auth is off).", secret=True, max_len=1024),
        Param(
            "auth",
            "str",
            "How the account logs in: password, or oauth2 (tokens from a sign-in: oauth.begin, oauth.wait)"
            + (
                "; add: oauth2 when the provider preset takes nothing else (Outlook.com, Microsoft 365) and no "
                "password is given, else password."
                if for_add
                else "."
            ),
            choices=AUTH_CHOICES,
        ),
        Param(
            "oauth",
            "map",
            "OAuth2 sign-in (auth oauth2).",
            fields=(
                Param(
                    "issuer",
                    "str",
                    "Issuer of the tokens (oauth.client.list); default: the provider preset's "
                    "(google for Gmail, microsoft for Outlook.com and Microsoft 365).",
                    max_len=64,
                ),
                Param(
                    "flow",
                    "str",
                    "A finished sign-in (oauth.begin, then oauth.wait) whose tokens become the account's; "
                    "needed to add with a connection test, or to switch to oauth2 or to another issuer.",
                    max_len=64,
                ),
            ),
        ),
        Param("separate_auth", "bool", "Separate IMAP and SMTP logins and passwords (R-A2).", **_d(for_add, False)),
        Param("imap", "map", "IMAP server.", fields=_server_fields("imap", for_add=for_add)),
        Param("smtp", "map", "SMTP server.", fields=_server_fields("smtp", for_add=for_add)),
        Param(
            "provider",
            "str",
            "Provider preset id (provider.list) whose settings fill what is not given; "
            "default: the preset of the address's domain, if any (R-B2).",
            nullable=True,
            max_len=64,
        ),
        Param(
            "tls_ca_file",
            "str",
            "PEM file of a CA or self-signed certificate to trust for this account, "
            "in addition to the system store; nil removes it (R-B3).",
            nullable=True,
        ),
        Param("trash_folder", "str", "Server trash folder (R-C3).", max_len=200, **_d(for_add, DEFAULT_TRASH_FOLDER)),
        Param("separator", "str", "Recipient separator (R-D1).", choices=SEPARATOR_CHOICES, **_d(for_add, ",")),
        Param("auto_fetch", "bool", "Include in automatic fetch (R-E1).", **_d(for_add, True)),
        Param("enabled", "bool", "Fetched at all (R-L1).", **_d(for_add, True)),
        Param(
            "primary",
            "bool",
            "Primary account, the default sender (R-E2); true takes it from the "
            "previous primary, false leaves the user with none.",
            **_d(for_add, False),
        ),
    )


TEST_RESULT = (
    "{ok, fields: [offending field], notes: [str], imap: server report, smtp: server report}; a server report "
    "is {ok, host, port, security, steps: [{step, ok, message, fields, hint, server_reply, details, "
    "duration_ms}], failed_step, fields, alternatives: [{port, security, auth, ok, message}], suggestion}. "
    "Steps: dns, connect, tls, certificate, capabilities, login, then folders (IMAP) or sender (SMTP); "
    "a saved OAuth2 account's test starts with a token step (the access token renewed)."
)

ACCOUNT_RESULT = (
    "account object: {id, name, email, login, separate_auth, imap: {host, port, security, login, "
    "password_set}, smtp: {host, port, security, auth, login, password_set}, tls_ca_file, "
    "trash_folder, separator, auto_fetch, enabled, primary, provider, auth: password|oauth2, "
    "oauth: {issuer, signed_in} or nil, created_at, updated_at, "
    "status: {state: new|ok|error|needs-attention, message, last_fetch_at, last_result, pending_operations, "
    "fetching, push: off|connecting|idle|unsupported|error, push_error, next_fetch_at, progress}}. "
    "Passwords are never returned, only whether one is set."
)

FETCH_RESULT = (
    "{started: [account name], skipped_disabled: [account name], accounts: [{account_id, account, "
    "state: ok|error|needs-attention, error, new, updated, removed, folders: [{folder, new, updated, removed, "
    "unchanged, needs_attention, error}], notes: [str]}]} (accounts is empty without wait)"
)

AUTOMATION_RESULT = "{enabled, interval_minutes, next_run: ISO time or nil, accounts: [account id]}"

FOLDER_RESULT = (
    "{account, offline: reason or nil, folders: [{name, wire_name, role: inbox|sent|archive|drafts|junk|trash|"
    "account_trash|all|flagged|important|nil, selected, selectable, chosen_by_user, state: present|gone, "
    "messages (local), synced_at, attributes}]}"
)

MESSAGE_FIELDS = (
    "id, account_id, account, folder, uid, message_id, date, from, to, subject, size, flags: [str], "
    "origin: folder it was deleted from (trash) or nil, pending: true while a server operation is queued"
)

_ACCOUNT_ERRORS = (E.INVALID_PARAMS, E.NOT_FOUND)

USER_REF = Param("user", "str|int", "Local user: login name or uid.", required=True, max_len=64)
USER_ENTRY = "{uid, name, accounts, is_admin, may_configure, decision: default|allowed|denied, last_seen_at}"

MAX_BODY = 16 * 1024 * 1024
MAX_ATTACHMENT = 24 * 1024 * 1024
FILE_FIELDS = (
    Param("filename", "str", "File name shown to the recipient.", required=True, max_len=255),
    Param("content_type", "str", "MIME type; guessed from the name when absent.", nullable=True, max_len=255),
    Param("data", "bin", "The file's bytes.", required=True, max_len=MAX_ATTACHMENT),
)
IMAGE_LIST = Param(
    "images",
    "list",
    'Images the HTML refers to by file name (<img src="logo.png">; PNG, JPEG, GIF, WebP; 512 KB each, 2 MB in all).',
    item_kind="map",
    fields=FILE_FIELDS,
    max_items=20,
)
SIGNATURE_REF = Param("name", "str", "Signature name (case-insensitive).", required=True, max_len=200)
SIGNATURE_OBJECT = (
    "{name, kind: text|html, body, position, default, images: [{filename, content_type, size}], updated_at}"
)
SIGNATURE_LIST = f"{{account, signatures: [{SIGNATURE_OBJECT}]}}"
OUTBOX_ENTRY = (
    "{id, account, message_id, subject, recipients: [address], state: queued|sending|sent|failed|uncertain|"
    "cancelled, attempts, next_attempt_at, last_error, result: {accepted, refused} or nil, created_at}"
)
SEND_RESULT = (
    "{outbox_id, account, message_id, state: sent|queued|failed|uncertain (the connection broke once the message "
    "was under way: the server may have taken it; never resent on its own), accepted: [address], "
    "refused: {address: {code, message}}, partial, retrying: [address] (temporarily refused: an outbox entry of "
    "their own, retried), refused_outbox_id (the permanently refused recipients, kept as a failed entry) or nil, "
    "reply (the server's answer to the message) or nil, error, warnings: [text], signature}"
)

METHODS: tuple[Method, ...] = (
    Method(
        "hello",
        "Handshake; must be the first request of a connection, and only the first.",
        (
            Param("client", "str", "Free text naming the client, for logs.", default="", max_len=200),
            Param("protocol", "int", "Protocol version the client speaks.", required=True),
            Param(
                "act_as",
                "str|int",
                "Administrators only: act for this local user (name or uid) on this connection. "
                "Who you are comes from the socket, never from the request.",
                max_len=64,
            ),
        ),
        "{daemon_version, protocol, mode: user|system, user: {uid, name} (whom requests act for), "
        "connected_as: {uid, name}, is_admin, may_configure, methods: [str], events: [str]}",
        (E.UNSUPPORTED_PROTOCOL, E.ALREADY_GREETED, E.INVALID_PARAMS, E.NOT_FOUND, E.PERMISSION_DENIED),
        before_hello=True,
    ),
    Method(
        "status",
        "State of the daemon.",
        (),
        "{daemon_version, protocol, pid, started_at, uptime_seconds, data_dir, socket, "
        "secret_backend, accounts: {total, enabled, primary}, pending_operations: {account name: count}, "
        "account_states: [{id, name, status}] (status as in account.show), "
        "outbox: {queued|sending|failed|uncertain: count} (only states that have messages)}",
    ),
    Method(
        "subscribe",
        "Receive the named events as notifications on this connection (replaces the previous set).",
        (Param("topics", "list", "Event names; [] unsubscribes.", required=True, item_kind="str", max_items=64),),
        "{topics: [str]}",
        (E.INVALID_PARAMS,),
    ),
    Method("account.list", "All accounts, in a stable order (creation order).", (), "[account object]"),
    Method("account.show", "One account.", (ACCOUNT_REF,), ACCOUNT_RESULT, _ACCOUNT_ERRORS),
    Method(
        "account.add",
        "Create an account, after a connection test unless test is false; "
        "a failed test refuses the add (data.report holds the report).  The first account becomes primary.",
        (
            *account_fields(for_add=True),
            Param("test", "bool", "Test the connection first and refuse to save when it fails (R-A3).", default=True),
        ),
        "{account: account object, notes: [str], test: report or nil}",
        (
            E.INVALID_PARAMS,
            E.CONFLICT,
            E.SECRETS_UNAVAILABLE,
            E.SERVER_UNREACHABLE,
            E.TLS_FAILURE,
            E.AUTH_FAILED,
            E.SERVER_ERROR,
        ),
    ),
    Method(
        "account.test",
        "Test IMAP and SMTP step by step (R-A3): a saved account (account), optionally with some "
        "settings overridden, or unsaved settings (no account: the params of account.add).  "
        "A failing test is a result with ok false, not an error.",
        (dataclasses.replace(ACCOUNT_REF, required=False), *account_fields(for_add=False)),
        TEST_RESULT,
        (E.INVALID_PARAMS, E.NOT_FOUND),
    ),
    Method(
        "account.modify",
        "Change some settings of an account; absent params are left unchanged.",
        (ACCOUNT_REF, *account_fields(for_add=False)),
        "{account: account object, notes: [str]}",
        (E.INVALID_PARAMS, E.NOT_FOUND, E.CONFLICT, E.SECRETS_UNAVAILABLE),
    ),
    Method(
        "account.delete",
        "Delete an account with its local messages, settings, signatures and stored "
        "passwords; mail on the server is untouched (R-X1, R-X2).",
        (
            ACCOUNT_REF,
            Param("confirm", "bool", "Must be true; otherwise confirmation_required.", default=False),
        ),
        "{deleted: {id, name, email}, primary_cleared: bool, notes: [str]}",
        (E.INVALID_PARAMS, E.NOT_FOUND, E.CONFIRMATION_REQUIRED),
    ),
    Method(
        "account.primary",
        "Make the account the primary one; the previous primary stops being primary (R-E2).",
        (ACCOUNT_REF,),
        "{account: account object, previous: name or nil}",
        _ACCOUNT_ERRORS,
    ),
    Method(
        "account.enable", "Enable the account (R-L1).", (ACCOUNT_REF,), "{account: account object}", _ACCOUNT_ERRORS
    ),
    Method(
        "fetch",
        "Synchronise now (R-C2): every enabled account, or the named ones; disabled accounts are "
        "skipped (R-L1).  A fetch already under way for an account is joined, not started twice.",
        (
            Param(
                "accounts",
                "list",
                "Account names or ids; [] means every enabled account.",
                default=[],
                item_kind="str|int",
                max_items=1000,
                max_len=200,
            ),
            Param("wait", "bool", "Answer when done, with counts; else answer at once.", default=False),
            Param(
                "confirm_deletions",
                "bool",
                "Apply removals that the safety stop held back (more than half of a folder, over 20 messages).",
                default=False,
            ),
        ),
        FETCH_RESULT,
        (E.INVALID_PARAMS, E.NOT_FOUND),
    ),
    Method(
        "automation.get",
        "The global automatic-fetch switch (R-E1): whether it is on, the interval, the next run, "
        "and the accounts it fetches (enabled and included in automatic fetch).",
        (),
        AUTOMATION_RESULT,
    ),
    Method(
        "automation.set",
        "Turn the automatic fetch on or off and/or change its interval; takes effect at once and survives a restart.",
        (
            Param("enabled", "bool", "The global switch."),
            Param("interval_minutes", "int", "Minutes between automatic fetches.", min=1, max=1440),
        ),
        AUTOMATION_RESULT,
        (E.INVALID_PARAMS,),
    ),
    Method(
        "account.folders",
        "The account's server folders, their role and whether each is synchronised; select/unselect "
        "change the choice (R-C1).  The list is refreshed from the server when it is reachable.",
        (
            ACCOUNT_REF,
            Param("select", "list", "Folder names to synchronise.", default=[], item_kind="str", max_items=1000),
            Param(
                "unselect", "list", "Folder names to stop synchronising.", default=[], item_kind="str", max_items=1000
            ),
            Param("refresh", "bool", "Ask the server for its current folders first.", default=True),
        ),
        FOLDER_RESULT,
        (E.INVALID_PARAMS, E.NOT_FOUND),
    ),
    Method(
        "messages.list",
        "Messages of the local store, newest first.",
        (
            dataclasses.replace(
                ACCOUNT_REF, required=False, doc=ACCOUNT_REF.doc + " Left out: every account of the user."
            ),
            Param("folder", "str", "Only this folder (its name).", max_len=1000),
            Param(
                "trash",
                "bool",
                "Only the account's trash folder (R-C4) — of every account without account.",
                default=False,
            ),
            Param("limit", "int", "At most this many.", default=50, min=1, max=10000),
            Param("offset", "int", "Skip this many first (paging).", default=0, min=0),
        ),
        f"[{{{MESSAGE_FIELDS}}}]",
        (E.INVALID_PARAMS, E.NOT_FOUND),
    ),
    Method(
        "messages.delete",
        "Move messages into the account's trash folder, locally at once and on the server through the "
        "journal (R-C4, R-C7); messages already in the trash are deleted for good with permanent and confirm.",
        (
            Param("ids", "list", "Message ids (messages.list).", required=True, item_kind="int", max_items=10000),
            Param(
                "permanent", "bool", "Delete messages of the trash for good (expunged on the server).", default=False
            ),
            Param("confirm", "bool", "Required with permanent.", default=False),
        ),
        "{moved_to_trash | deleted: [id], accounts: [account id]}",
        (E.INVALID_PARAMS, E.NOT_FOUND, E.CONFIRMATION_REQUIRED),
    ),
    Method(
        "messages.restore",
        "Move messages of the trash back to the folder they were deleted from (server and local).",
        (Param("ids", "list", "Message ids (messages.list).", required=True, item_kind="int", max_items=10000),),
        "{restored: [id], accounts: [account id]}",
        (E.INVALID_PARAMS, E.NOT_FOUND),
    ),
    Method(
        "messages.assign",
        "Give a project its own copy of messages: it stays readable there whatever happens to the "
        "account or the server (R-C6, R-X2).",
        (
            Param("ids", "list", "Message ids (messages.list).", required=True, item_kind="int", max_items=10000),
            Param("project", "str", "Project name.", required=True, max_len=200),
        ),
        "{project, assigned: [project message id]}",
        (E.INVALID_PARAMS, E.NOT_FOUND),
    ),
    Method(
        "messages.unassign",
        "Remove messages from a project (account message ids, or project message ids).",
        (
            Param("ids", "list", "Message ids (messages.list).", required=True, item_kind="int", max_items=10000),
            Param("project", "str", "Project name.", required=True, max_len=200),
        ),
        "{project, unassigned: [project message id]}",
        (E.INVALID_PARAMS, E.NOT_FOUND),
    ),
    Method(
        "project.add",
        "Create a project.",
        (Param("name", "str", "Project name, unique.", required=True, max_len=200),),
        "{id, name, created_at, messages}",
        (E.INVALID_PARAMS, E.CONFLICT),
    ),
    Method("project.list", "All projects.", (), "[{id, name, created_at, messages}]"),
    Method(
        "project.messages",
        "The messages of a project, newest first.",
        (Param("project", "str", "Project name.", required=True, max_len=200),),
        "[{id, source_id, project, account, account_email, folder, message_id, date, from, to, subject, size, "
        "assigned_at}]",
        (E.NOT_FOUND,),
    ),
    Method(
        "project.show_message",
        "One message of a project (its own copy).",
        (
            Param("id", "int", "Project message id.", required=True, min=1),
            Param("raw", "bool", "Also return the message's bytes.", default=False),
        ),
        "{project message fields, path, headers, text, attachments, raw: bin (with raw)}",
        (E.NOT_FOUND,),
    ),
    Method(
        "messages.show",
        "One message from the local store.",
        (
            Param("id", "int", "Message id (messages.list).", required=True, min=1),
            Param("raw", "bool", "Also return the message's bytes as they are stored.", default=False),
        ),
        f"{{{MESSAGE_FIELDS}, path, headers: {{name: value}}, text: body as text or nil, "
        "attachments: [{filename, content_type, size}], raw: bin (with raw)}",
        (E.INVALID_PARAMS, E.NOT_FOUND),
    ),
    Method(
        "provider.list",
        "The provider presets shipped with the daemon (R-B2).",
        (),
        "[provider object: {id, name, domains, imap: {host, port, security}, smtp: {host, port, security, auth}, "
        "login: address|local_part, auth: [password|app_password|oauth2], stores_sent_copy, hints, source, "
        "last_checked, verified, caveat}]",
    ),
    Method(
        "provider.show",
        "One provider preset.",
        (Param("provider", "str", "Preset id.", required=True, max_len=64),),
        "provider object",
        (E.NOT_FOUND,),
    ),
    Method(
        "provider.lookup",
        "The preset that serves an address's domain, if any (front-ends fill their dialog with it).",
        (Param("email", "str", "E-mail address.", required=True, max_len=320),),
        "{provider: provider object or nil}",
        (E.INVALID_PARAMS,),
    ),
    Method(
        "send",
        "Compose and send a message (R-D1, R-D2).  Each recipient gets its own RCPT TO; the result says "
        "per recipient whether the server took it.  The message is kept in the outbox until delivered: a "
        "temporary failure (4xx, server unreachable) is retried with back-off, a permanent one waits for "
        "outbox.retry or outbox.cancel.  A copy goes to the Sent folder unless the provider files it itself.",
        (
            Param("from", "str|int", "Sending account (name or id); the primary account when absent.", max_len=200),
            Param("to", "str", "Recipients, split with the account's separator.", default="", max_len=65536),
            Param("cc", "str", "Copy recipients.", default="", max_len=65536),
            Param("bcc", "str", "Blind-copy recipients (in the envelope only).", default="", max_len=65536),
            Param("subject", "str", "Subject.", default="", max_len=998),
            Param("text", "str", "The body as plain text.", required=True, max_len=MAX_BODY),
            Param(
                "html", "str", "The body as HTML too (sent as multipart/alternative).", nullable=True, max_len=MAX_BODY
            ),
            Param(
                "attachments",
                "list",
                "Files to attach.",
                default=[],
                item_kind="map",
                fields=FILE_FIELDS,
                max_items=100,
            ),
            Param(
                "signature", "str", "Signature name; the account's default one when absent.", nullable=True, max_len=200
            ),
            Param("no_signature", "bool", "Append no signature.", default=False),
        ),
        SEND_RESULT,
        (E.INVALID_PARAMS, E.NOT_FOUND, E.SECRETS_UNAVAILABLE),
    ),
    Method(
        "outbox.list",
        "Messages handed to sending: waiting, failed, uncertain, and a month of delivered ones.",
        (Param("account", "str|int", "Only this account's.", max_len=200),),
        f"[{OUTBOX_ENTRY}]",
        (E.INVALID_PARAMS, E.NOT_FOUND),
    ),
    Method(
        "outbox.retry",
        "Submit a queued, failed or uncertain message now.",
        (Param("id", "int", "Outbox entry id.", required=True, min=1),),
        SEND_RESULT,
        (E.INVALID_PARAMS, E.NOT_FOUND),
    ),
    Method(
        "outbox.cancel",
        "Give up sending a queued, failed or uncertain message (it gets no Sent copy).",
        (Param("id", "int", "Outbox entry id.", required=True, min=1),),
        OUTBOX_ENTRY,
        (E.INVALID_PARAMS, E.NOT_FOUND),
    ),
    Method(
        "signature.list",
        "The account's signatures, in order (R-F1).",
        (ACCOUNT_REF,),
        SIGNATURE_LIST,
        _ACCOUNT_ERRORS,
    ),
    Method(
        "signature.add",
        "Add a signature at the end of the account's list (R-F1, R-F2): plain text, or HTML (sanitised: "
        "no scripts, no remote content) with inline images.",
        (
            ACCOUNT_REF,
            SIGNATURE_REF,
            Param("text", "str", "A plain-text signature.", nullable=True, max_len=65536),
            Param("html", "str", "A rich (HTML) signature.", nullable=True, max_len=65536),
            IMAGE_LIST,
            Param("default", "bool", "Make it the account's default signature.", default=False),
        ),
        SIGNATURE_LIST,
        (E.INVALID_PARAMS, E.NOT_FOUND, E.CONFLICT),
    ),
    Method(
        "signature.modify",
        "Change a signature: its name, its text or HTML (the kind follows), its images, whether it is the default.",
        (
            ACCOUNT_REF,
            SIGNATURE_REF,
            Param("new_name", "str", "New name.", max_len=200),
            Param(
                "text", "str", "New plain-text body (the signature becomes plain text).", nullable=True, max_len=65536
            ),
            Param("html", "str", "New HTML body (the signature becomes rich).", nullable=True, max_len=65536),
            Param(
                "images",
                "list",
                "Replace the images.",
                nullable=True,
                item_kind="map",
                fields=FILE_FIELDS,
                max_items=20,
            ),
            Param("default", "bool", "Make it the default (true) or no longer the default (false).", nullable=True),
        ),
        SIGNATURE_LIST,
        (E.INVALID_PARAMS, E.NOT_FOUND, E.CONFLICT),
    ),
    Method(
        "signature.delete",
        "Delete a signature; the others keep their order (if it was the default, none is).",
        (ACCOUNT_REF, SIGNATURE_REF),
        SIGNATURE_LIST,
        _ACCOUNT_ERRORS,
    ),
    Method(
        "signature.move",
        "Move a signature one place up or down, or to a position (1 is first).",
        (
            ACCOUNT_REF,
            SIGNATURE_REF,
            Param("direction", "str", "One place up or down.", choices=("up", "down")),
            Param("position", "int", "Target position.", min=1),
        ),
        SIGNATURE_LIST,
        _ACCOUNT_ERRORS,
    ),
    Method(
        "signature.default",
        "Make a signature the account's default (at most one), or, with name nil, leave none default.",
        (
            ACCOUNT_REF,
            Param("name", "str", "Signature name; nil: no default.", required=True, nullable=True, max_len=200),
        ),
        SIGNATURE_LIST,
        _ACCOUNT_ERRORS,
    ),
    Method(
        "signature.preview",
        "The signature exactly as a sent message carries it (R-G1): the text added to the plain part, the "
        "HTML added to the rich part, and the MIME parts (inline images) that come with it.",
        (ACCOUNT_REF, SIGNATURE_REF),
        '{account, name, text (after the "-- " line), plain (the block added to the text/plain part, '
        '"-- " line included), html or nil, parts: [{content_type, content_id, filename, size}], '
        "mime: the outline of a message carrying only the signature, one line per MIME part}",
        _ACCOUNT_ERRORS,
    ),
    Method(
        "user.list",
        "Users known to the daemon (seen on the socket or owning accounts), with their account count and "
        "their right to configure (R-L3).",
        (),
        f"[{USER_ENTRY}]",
    ),
    Method(
        "user.allow_config",
        "Give a user the right to configure their own mail accounts (R-L3).",
        (USER_REF,),
        USER_ENTRY,
        (E.NOT_FOUND, E.PERMISSION_DENIED),
    ),
    Method(
        "user.deny_config",
        "Take away a user's right to configure their own mail accounts: they can still list, test, fetch "
        "and send (R-L3).",
        (USER_REF,),
        USER_ENTRY,
        (E.NOT_FOUND, E.PERMISSION_DENIED),
    ),
    Method(
        "account.disable",
        "Disable the account: every fetch skips it (R-L1).",
        (ACCOUNT_REF,),
        "{account: account object}",
        _ACCOUNT_ERRORS,
    ),
    Method(
        "account.reauth",
        "Give the account the tokens of a finished sign-in (oauth.begin, oauth.wait): after its grant was "
        "revoked or expired (needs-attention), or to move a password account to OAuth2 (its passwords are "
        "forgotten).  Clears needs-attention and starts a fetch.",
        (ACCOUNT_REF, Param("flow", "str", "The finished sign-in.", required=True, max_len=64)),
        "{account: account object, notes: [str]}",
        (*_ACCOUNT_ERRORS, E.CONFLICT, E.AUTH_FAILED, E.SECRETS_UNAVAILABLE),
    ),
    Method(
        "oauth.client.set",
        "Register the OAuth2 application bimmail signs in with at an issuer (none is built in): "
        "a preset issuer (google, microsoft) needs only its client id; another issuer also its "
        "endpoints and scopes.  Replaces the user's previous registration for that issuer.",
        (
            Param("issuer", "str", "Issuer name: google, microsoft, or your own.", required=True, max_len=64),
            Param("client_id", "str", "The application's client id.", required=True, max_len=512),
            Param(
                "client_secret",
                "str",
                "The client secret, when the issuer requires one (Google's desktop clients do); "
                "empty removes it; absent keeps the current one.",
                secret=True,
                max_len=1024,
            ),
            Param("auth_url", "str", "Authorization endpoint (custom issuer).", max_len=2048),
            Param("token_url", "str", "Token endpoint (custom issuer).", max_len=2048),
            Param("device_url", "str", "Device authorization endpoint, if any (custom issuer).", max_len=2048),
            Param(
                "scopes",
                "list",
                "Scopes for IMAP and SMTP (custom issuer).",
                item_kind="str",
                max_items=20,
                max_len=512,
            ),
            Param(
                "for_every_user",
                "bool",
                "System daemon: the registration serves every user without their own (administrators).",
                default=False,
            ),
        ),
        "{issuer, client_id, client_secret_set, for_every_user, preset, endpoints: {id, name, auth_url, "
        "token_url, device_url, scopes}}",
        (E.INVALID_PARAMS, E.SECRETS_UNAVAILABLE),
    ),
    Method(
        "oauth.client.list",
        "The OAuth2 registrations the user signs in with (their own, else the ones for every user), and the "
        "preset issuers.",
        (),
        "{clients: [registration as oauth.client.set answers], presets: [{id, name, auth_url, token_url, "
        "device_url, scopes}]}",
    ),
    Method(
        "oauth.client.delete",
        "Remove the user's registration for an issuer (accounts using it then need attention).",
        (
            Param("issuer", "str", "Issuer name.", required=True, max_len=64),
            Param("for_every_user", "bool", "The registration for every user (administrators).", default=False),
        ),
        "{deleted: registration}",
        (E.INVALID_PARAMS, E.NOT_FOUND),
    ),
    Method(
        "oauth.begin",
        "Start an OAuth2 sign-in.  browser: open url (authorization code with PKCE; the provider sends the "
        "browser back to a one-shot listener of the daemon on 127.0.0.1).  device: on any device, open url "
        "and type user_code.  Then oauth.wait; then account.add or account.reauth with the flow.",
        (
            Param("issuer", "str", "Issuer; default: the account's, or the preset's of email.", max_len=64),
            dataclasses.replace(ACCOUNT_REF, required=False, doc="Account to sign in again (its issuer)."),
            Param("email", "str", "Address signing in (login hint; chooses the preset issuer).", max_len=320),
            Param("method", "str", "browser or device.", choices=SIGN_IN_METHODS, default="browser"),
        ),
        "{flow, method, issuer, url, user_code (device) or nil, expires_in}",
        (E.INVALID_PARAMS, E.NOT_FOUND, E.SERVER_UNREACHABLE, E.AUTH_FAILED, E.BUSY),
    ),
    Method(
        "oauth.wait",
        "Wait for a sign-in to finish, at most timeout seconds: {done: false} while it waits; an error if the "
        "provider refused (auth_failed) or it expired.",
        (
            Param("flow", "str", "The sign-in.", required=True, max_len=64),
            Param("timeout", "int", "Seconds to wait at most.", default=60, min=0, max=600),
        ),
        "{flow, done: bool, issuer}",
        (E.INVALID_PARAMS, E.NOT_FOUND, E.AUTH_FAILED, E.SERVER_UNREACHABLE),
    ),
)

# R-L3: what needs the right to configure one's accounts, and what only administrators may do.
_ACCESS = {
    **dict.fromkeys(
        ("account.add", "account.modify", "account.delete", "account.primary", "account.enable", "account.disable",
         "account.reauth", "oauth.client.set", "oauth.client.delete",
         "signature.add", "signature.modify", "signature.delete", "signature.move", "signature.default"),
        "configure",
    ),
    **dict.fromkeys(("automation.set", "user.list", "user.allow_config", "user.deny_config"), "admin"),
}  # fmt: skip


def _with_access(method: Method) -> Method:
    access = _ACCESS.get(method.name, method.access)
    errors = method.errors
    if access != "user" and E.PERMISSION_DENIED not in errors:
        errors = (*errors, E.PERMISSION_DENIED)
    return dataclasses.replace(method, access=access, errors=errors)


METHODS = tuple(_with_access(m) for m in METHODS)
METHODS_BY_NAME: dict[str, Method] = {m.name: m for m in METHODS}
# A name here that is no method (a rename, a typo) would leave that method open to every user.
if _ACCESS.keys() - METHODS_BY_NAME.keys():
    raise RuntimeError(f"access rules for unknown methods: {sorted(_ACCESS.keys() - METHODS_BY_NAME.keys())}")

EVENTS: tuple[Event, ...] = (
    Event("fetch.done", "A fetch of an account ended (manual or automatic).", "the account entry of the fetch result"),
    Event(
        "fetch.progress",
        "A batch of new messages of a folder is stored.",
        "{account_id, account, folder, messages_done, messages_total, bytes_done, bytes_total}",
    ),
    Event(
        "message.new",
        "A message arrived since the last fetch (not sent for a folder's first synchronisation; at most 50 per batch).",
        "{account_id, account, folder, uid, message_id, subject, from, date}",
    ),
    Event(
        "account.state",
        "An account starts fetching or ends a fetch.",
        "{account_id, account, state: fetching|ok|error|needs-attention, message}",
    ),
    Event("automation.changed", "The automation switch or interval changed.", AUTOMATION_RESULT),
    Event(
        "trash.changed",
        "A trash mirror run ended (after a delete or restore, or on its schedule).",
        "the account entry of the fetch result",
    ),
    Event(
        "outbox.changed",
        "A message handed to sending changed state (sent, queued for retry, failed, uncertain, cancelled).",
        OUTBOX_ENTRY,
    ),
    Event(
        "account.changed",
        "An account was added, modified or deleted (by any client).",
        "{change: added|modified|deleted, account_id, account: account object or nil when deleted}",
    ),
)

EVENTS_BY_NAME: dict[str, Event] = {e.name: e for e in EVENTS}
