"""Output for humans (tables, key/value blocks) and scripts (--json), and exit codes.

Exit codes (documented in the README) are derived from the daemon's error
codes in one table, so every command reports the same failure the same way.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from collections.abc import Sequence
from typing import Any, TextIO

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_INVALID = 2
EXIT_NOT_RUNNING = 3
EXIT_NOT_FOUND = 4
EXIT_CONFLICT = 5
EXIT_PERMISSION = 6
EXIT_CONFIRMATION = 7
EXIT_SERVER = 8
EXIT_TEMPORARY = 9
EXIT_PARTIAL = 10

# Error codes of bimmaild.protocol.errors, by number so that this module stays import-free.
_EXIT_BY_CODE = {
    200: EXIT_INVALID,
    300: EXIT_NOT_FOUND,
    400: EXIT_CONFLICT,
    500: EXIT_PERMISSION,
    600: EXIT_CONFIRMATION,
    700: EXIT_SERVER,
    701: EXIT_SERVER,
    702: EXIT_SERVER,
    703: EXIT_SERVER,
    800: EXIT_TEMPORARY,
    801: EXIT_TEMPORARY,
    802: EXIT_TEMPORARY,
}

EXIT_CODES_DOC = (
    (EXIT_OK, "success"),
    (EXIT_FAILURE, "other failure (internal error, protocol error, lost connection)"),
    (EXIT_INVALID, "invalid input: bad option or value (the message names the field)"),
    (EXIT_NOT_RUNNING, "the daemon is not running (or the socket is not reachable)"),
    (EXIT_NOT_FOUND, "no such account (or other object)"),
    (EXIT_CONFLICT, "conflict: the name is already taken"),
    (EXIT_PERMISSION, "permission denied"),
    (EXIT_CONFIRMATION, "confirmation required (pass --yes) or declined"),
    (
        EXIT_SERVER,
        "mail server failure: unreachable, TLS, authentication, server error; send: refused, or its "
        "outcome unknown (kept in the outbox)",
    ),
    (EXIT_TEMPORARY, "temporary failure (daemon busy, disk, keyring; retry later); send: kept in the outbox"),
    (EXIT_PARTIAL, "send: some recipients were refused, the others got the message"),
)


def local_error(name: str, message: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """An error of bimmailctl itself, in the shape of the daemon's (README: ``{code, name, message,
    field, data}``), so that a script reads every ``--json`` failure the same way.  ``code`` is null:
    protocol codes are the daemon's; the exit code says the rest."""
    return {"code": None, "name": name, "message": message, "field": None, "data": data or {}}


def exit_code_for(code: int) -> int:
    return _EXIT_BY_CODE.get(code, EXIT_FAILURE)


def print_json(value: Any, out: TextIO = sys.stdout) -> None:
    """Bytes (file contents) are written as base64 strings."""
    json.dump(value, out, indent=2, ensure_ascii=False, sort_keys=False, default=_json_default)
    out.write("\n")


def _json_default(value: object) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def yes_no(value: object) -> str:
    return "yes" if value else "no"


# C0 controls but tab and newline, DEL and C1: text from a mail server (a message body, a
# subject, a folder name) could otherwise move the cursor, retitle the window or set the
# clipboard of the terminal that shows it.
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` safe to write to a terminal: CRLF as LF, other control characters as U+FFFD."""
    return _UNSAFE.sub("\ufffd", text.replace("\r\n", "\n"))


def _cell(value: object) -> str:
    return "-" if value is None else printable(str(value)).replace("\n", " ").replace("\t", " ")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], out: TextIO = sys.stdout) -> None:
    cells = [[str(c) for c in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


def key_values(pairs: Sequence[tuple[str, object]], out: TextIO = sys.stdout, indent: str = "  ") -> None:
    width = max((len(k) for k, _ in pairs), default=0)
    for key, value in pairs:
        out.write(f"{indent}{key.ljust(width)}  {'-' if value is None else printable(str(value))}\n")


def _server_line(server: dict[str, Any], *, smtp: bool) -> str:
    parts = [f"{server['host']}:{server['port']} {server['security']}"]
    if smtp and not server["auth"]:
        parts.append("no authentication")
    else:
        parts.append(f"login {server['login']}")
        parts.append("password set" if server["password_set"] else "NO PASSWORD SET")
    return ", ".join(parts)


def account_block(account: dict[str, Any], out: TextIO = sys.stdout) -> None:
    flags = [f for f, on in (("primary", account["primary"]), ("disabled", not account["enabled"])) if on]
    out.write(f"{account['name']} (#{account['id']}){'  ' + ', '.join(flags) if flags else ''}\n")
    key_values(
        [
            ("address", account["email"]),
            ("login", "separate for IMAP and SMTP" if account["separate_auth"] else account["login"]),
            ("signs in with", _auth_line(account)),
            ("IMAP", _server_line(account["imap"], smtp=False)),
            ("SMTP", _server_line(account["smtp"], smtp=True)),
            ("TLS CA file", account["tls_ca_file"]),
            ("trash folder", account["trash_folder"]),
            ("separator", repr(account["separator"])),
            ("enabled", yes_no(account["enabled"])),
            ("auto-fetch", yes_no(account["auto_fetch"])),
            ("state", _state_line(account.get("status") or {})),
            *_activity_lines(account.get("status") or {}),
            ("created", account["created_at"]),
            ("updated", account["updated_at"]),
        ],
        out,
    )


def _auth_line(account: dict[str, Any]) -> str:
    oauth = account.get("oauth")
    if account.get("auth") != "oauth2" or not oauth:
        return "password"
    signed = "signed in" if oauth["signed_in"] else "not signed in: bimmailctl account reauth"
    return f"OAuth2 ({oauth['issuer']}, {signed})"


def _state_line(status: dict[str, Any]) -> str:
    if not status or status.get("state") == "new":
        return "never fetched"
    line = f"{status['state']} (last fetch {status.get('last_fetch_at') or '-'})"
    return f"{line}: {status['message']}" if status.get("message") else line


def _activity_lines(status: dict[str, Any]) -> list[tuple[str, Any]]:
    """What the daemon is doing with the account and what waits (R-E1, R-C7): issue 6's status."""
    lines: list[tuple[str, Any]] = []
    result = status.get("last_result")
    if result:
        lines.append(("last result", f"{result['new']} new, {result['updated']} updated, {result['removed']} removed"))
    lines.append(("next fetch", status.get("next_fetch_at") or "not scheduled"))
    if status.get("fetching"):
        progress = status.get("progress") or {}
        where = f" ({progress['folder']}: {progress['messages_done']}/{progress['messages_total']})" if progress else ""
        lines.append(("connection", f"fetching{where}"))
    push = status.get("push", "off")
    push_error = status.get("push_error")
    lines.append(("push (IDLE)", f"{push}: {push_error}" if push_error else push))
    refused = status.get("refused_operations") or []
    queued = f"{status.get('pending_operations', 0)} waiting"
    if refused:
        queued += f", {len(refused)} refused by the server (tried again later): {refused[0]['error']}"
    lines.append(("server operations", queued))
    return lines


def account_table(accounts: Sequence[dict[str, Any]], out: TextIO = sys.stdout) -> None:
    if not accounts:
        out.write("no accounts (add one with: bimmailctl account add --help)\n")
        return
    table(
        ("ID", "NAME", "ADDRESS", "ENABLED", "AUTO-FETCH", "PRIMARY", "STATE"),
        [
            (
                a["id"], a["name"], a["email"], yes_no(a["enabled"]), yes_no(a["auto_fetch"]),
                "*" if a["primary"] else "", a.get("status", {}).get("state", ""),
            )
            for a in accounts
        ],
        out,
    )  # fmt: skip
    for a in accounts:
        status = a.get("status") or {}
        if status.get("state") in ("error", "needs-attention") and status.get("message"):
            out.write(f"{a['name']}: {status['state']}: {status['message']}\n")


def notes(lines: Sequence[str], out: TextIO = sys.stdout) -> None:
    for line in lines:
        out.write(f"note: {line}\n")


def _alternative(alt: dict[str, Any]) -> str:
    if alt.get("auth") is not None:
        return f"with SMTP authentication {'on' if alt['auth'] else 'off'}"
    return f"port {alt['port']} with {alt['security']}"


def _report_text(value: object, indent: int = 0) -> str:
    """A report's text made ``printable``: much of it is the server's (replies, certificate names,
    what a probe heard), and could drive the terminal.  A multi-line SMTP reply keeps its lines,
    indented under the first."""
    return printable(str(value)).replace("\n", "\n" + " " * indent)


def connection_report(report: dict[str, Any], out: TextIO = sys.stdout) -> None:
    """A connection test as a checklist: a line per step, fixes and hints under the failed one."""
    for kind in ("imap", "smtp"):
        server = report[kind]
        verdict = "works" if server["ok"] else "FAILED"
        where = _report_text(f"{server['host']}:{server['port']} {server['security']}")
        out.write(f"{kind.upper()}  {where}  {verdict}\n")
        for step in server["steps"]:
            _report_step(step, out)
        for alt in server["alternatives"]:
            out.write(
                f"      {'✓' if alt['ok'] else '✗'} tried {_alternative(alt)}: {_report_text(alt['message'], 8)}\n"
            )
        if server["suggestion"]:
            out.write(f"  → {_report_text(server['suggestion'], 4)}\n")
    if report["ok"]:
        out.write("Result: both servers work with these settings.\n")
    else:
        out.write(f"Result: FAILED — settings to fix: {', '.join(report['fields']) or 'see above'}\n")


def _report_step(step: dict[str, Any], out: TextIO) -> None:
    """One step's line; under a failed one, what to fix, the server's reply, the hint, the certificate."""
    out.write(f"  {'✓' if step['ok'] else '✗'} {step['step']:<13} {_report_text(step['message'], 16)}\n")
    if step["ok"]:
        return
    if step["fields"]:
        out.write(f"      fix:    {', '.join(step['fields'])}\n")
    if step["server_reply"]:
        out.write(f"      server: {_report_text(step['server_reply'], 14)}\n")
    if step["hint"]:
        out.write(f"      hint:   {_report_text(step['hint'], 14)}\n")
    cert = step["details"].get("certificate")
    if cert:
        out.write(f"      certificate: {_report_text(cert.get('subject', '?'))}, SHA-256 {cert.get('sha256')}\n")


def provider_table(providers: Sequence[dict[str, Any]], out: TextIO = sys.stdout) -> None:
    table(
        ("ID", "NAME", "DOMAINS", "IMAP", "SMTP", "VERIFIED"),
        [
            (
                p["id"],
                p["name"],
                ", ".join(p["domains"][:3]) + (" …" if len(p["domains"]) > 3 else ""),
                f"{p['imap']['host']}:{p['imap']['port']} {p['imap']['security']}",
                f"{p['smtp']['host']}:{p['smtp']['port']} {p['smtp']['security']}",
                yes_no(p["verified"]),
            )
            for p in providers
        ],
        out,
    )


def provider_block(p: dict[str, Any], out: TextIO = sys.stdout) -> None:
    no_auth = "" if p["smtp"]["auth"] else ", no authentication"
    out.write(f"{p['name']} ({p['id']}){'' if p['verified'] else '  UNVERIFIED'}\n")
    key_values(
        [
            ("domains", ", ".join(p["domains"]) or "(chosen by id: custom domains)"),
            ("IMAP", f"{p['imap']['host']}:{p['imap']['port']} {p['imap']['security']}"),
            ("SMTP", f"{p['smtp']['host']}:{p['smtp']['port']} {p['smtp']['security']}{no_auth}"),
            ("login", "the full address" if p["login"] == "address" else "the part before '@'"),
            ("sign-in", ", ".join(p["auth"])),
            ("source", p["source"]),
            ("last checked", p["last_checked"]),
            ("caveat", p["caveat"]),
        ],
        out,
    )
    for hint in p["hints"]:
        out.write(f"  hint: {hint}\n")


def _cut(text: str | None, width: int) -> str:
    text = text or ""
    return text if len(text) <= width else text[: width - 1] + "…"


def message_table(rows: Sequence[dict[str, Any]], *, trash: bool = False, out: TextIO = sys.stdout) -> None:
    """One row per message; the account's column only when several accounts are listed."""
    last = "FROM FOLDER" if trash else "FOLDER"
    several = len({m.get("account") for m in rows}) > 1
    head = ("ID", "ACCOUNT") if several else ("ID",)
    table(
        (*head, "DATE", "FROM", "SUBJECT", last, "FLAGS"),
        [
            (
                *((m["id"], _cut(m.get("account"), 20)) if several else (m["id"],)),
                (m.get("date") or "")[:16].replace("T", " "), _cut(m.get("from"), 30),
                _cut(m.get("subject"), 50), (m.get("origin") if trash else m.get("folder")) or "-",
                " ".join(m.get("flags", [])) + (" (queued)" if m.get("pending") else ""),
            )
            for m in rows
        ],
        out,
    )  # fmt: skip


def message_block(message: dict[str, Any], out: TextIO = sys.stdout) -> None:
    """Headers, where it is, its attachments and its text; everything the sender wrote made ``printable``."""
    for name, value in message["headers"].items():
        out.write(f"{name}: {_cell(value)}\n")
    where = _cell(message.get("folder") or message.get("project"))
    flags = _cell(" ".join(message.get("flags", [])) or "-")
    out.write(f"Folder: {where}   Flags: {flags}   Id: {message['id']}\n")
    for part in message["attachments"]:
        name, kind = _cell(part["filename"] or "(unnamed)"), _cell(part["content_type"])
        out.write(f"Attachment: {name} ({kind}, {part['size']} bytes)\n")
    out.write("\n")
    out.write(printable(message["text"] if message["text"] is not None else "(no text part)") + "\n")


def event_line(event: str, params: dict[str, Any]) -> str:
    """One readable line per event, for ``watch``; printable (a subject or a From is a sender's text)."""
    return printable(_event_text(event, params))


def _event_text(event: str, params: dict[str, Any]) -> str:
    who = params.get("account") or ""
    if event == "fetch.progress":
        return (f"{event}  {who} {params['folder']}: {params['messages_done']}/{params['messages_total']} messages, "
                f"{_size(params['bytes_done'])}/{_size(params['bytes_total'])}")  # fmt: skip
    if event == "message.new":
        return f"{event}  {who} {params['folder']}: {params.get('from') or '?'} — {params.get('subject') or ''}"
    if event in ("fetch.done", "trash.changed"):
        counts = f"{params['new']} new, {params['updated']} updated, {params['removed']} removed"
        return f"{event}  {who}: {params['state']}, {counts}"
    if event == "account.state":
        return f"{event}  {who}: {params['state']}" + (f" ({params['message']})" if params.get("message") else "")
    return f"{event}  {json.dumps(params, ensure_ascii=False)}"


def _size(count: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024  # type: ignore[assignment]
    return f"{count}"


class Progress:
    """Progress of ``fetch --wait``: on a terminal, a bar per account, redrawn in place (one line
    each, so that several accounts fetched at once do not overwrite each other); plain lines
    otherwise, one per event, for logs and pipes."""

    def __init__(self, out: TextIO = sys.stderr) -> None:
        self.out = out
        self.tty = out.isatty()
        self.started: dict[str, float] = {}
        self.lines: dict[str, str] = {}  # account -> its line, in the order they first reported
        self.drawn = 0  # lines of the block on the screen

    def update(self, params: dict[str, Any], now: float) -> None:
        key = f"{params['account']} {params['folder']}"
        start = self.started.setdefault(key, now)
        done, total = params["bytes_done"], max(params["bytes_total"], 1)
        share = done / total
        eta = (now - start) * (1 - share) / share if 0 < share < 1 else 0.0
        text = printable(f"{key}: {params['messages_done']}/{params['messages_total']} messages, "
                         f"{_size(done)}/{_size(params['bytes_total'])}, {share:4.0%}"
                         + (f", about {eta:.0f} s left" if eta >= 1 else ""))  # fmt: skip
        if not self.tty:
            self.out.write(text + "\n")
            self.out.flush()
            return
        width = 24
        filled = int(share * width)
        self.lines[params["account"]] = f"[{'#' * filled}{'.' * (width - filled)}] {text}"
        if self.drawn:
            self.out.write(f"\x1b[{self.drawn}F")  # back to the first line of the block
        for line in self.lines.values():
            self.out.write(f"\r{line}\x1b[K\n")
        self.drawn = len(self.lines)
        self.out.flush()


def send_result(result: dict[str, Any], out: TextIO = sys.stdout) -> None:
    """Per recipient, what the server said (R-D1): nobody is silently left out.  Made printable:
    the replies are the server's text."""
    lines = [f"warning: {warning}" for warning in result.get("warnings", [])]
    lines += [f"accepted  {address}" for address in result["accepted"]]
    lines += [f"refused   {a}: {reply['code']} {reply['message']}" for a, reply in result["refused"].items()]
    state, kept = result["state"], f"outbox id {result['outbox_id']}"
    if state == "sent":
        retry = result.get("retrying") or []
        tail = f"; {', '.join(retry)} will be tried again" if retry else ""
        if result.get("refused_outbox_id"):
            tail += f"; the refused recipients are kept in the outbox (id {result['refused_outbox_id']})"
        reply = f" (server: {result['reply']})" if result.get("reply") else ""
        lines.append(f"sent from {result['account']} as {result['message_id']}{reply}{tail}")
    elif state == "uncertain":
        lines.append(f"outcome unknown: {result['error']} ({kept}: bimmailctl outbox retry|cancel)")
    elif state == "queued":
        lines.append(
            f"not sent yet: {result['error']}; kept in the outbox (id {result['outbox_id']}), tried again later"
        )
    else:
        lines.append(f"not sent: {result['error']}; kept in the outbox (id {result['outbox_id']}): "
                     "bimmailctl outbox retry|cancel")  # fmt: skip
    out.write("".join(printable(line) + "\n" for line in lines))


def send_exit_code(result: dict[str, Any]) -> int:
    if result["state"] == "queued":
        return EXIT_TEMPORARY
    if result["state"] != "sent":
        return EXIT_SERVER
    return EXIT_PARTIAL if result["refused"] else EXIT_OK
