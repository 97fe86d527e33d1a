"""The ctl's writers never pass a server's or a sender's control characters to the terminal (they
could rewrite the screen, set its title, or worse): made printable where they are written."""

from __future__ import annotations

import io

from bimmailctl import render

EVIL = "Salut\x1b]0;pwned\x07 \x1b[2J\x9b31m"


def clean(text: str) -> bool:
    return not any(ch in text for ch in "\x1b\x07\x9b")


def test_watch_lines_account_block_send_result_and_progress_are_printable() -> None:
    line = render.event_line("message.new", {"account": "Work", "folder": "INBOX", "from": EVIL, "subject": EVIL})
    assert clean(line) and "Salut" in line
    out = io.StringIO()
    render.key_values([("state", EVIL)], out)
    assert clean(out.getvalue())
    out = io.StringIO()
    render.send_result({"state": "sent", "accepted": ["a@x.fr"], "refused": {"b@x.fr": {"code": 550, "message": EVIL}},
                        "account": "Work", "message_id": "<m@x>", "reply": EVIL, "outbox_id": 1}, out)  # fmt: skip
    assert clean(out.getvalue()) and "refused   b@x.fr: 550 Salut" in out.getvalue()
    out = io.StringIO()
    render.Progress(out).update({"account": EVIL, "folder": "INBOX", "messages_done": 1, "messages_total": 2,
                                 "bytes_done": 1, "bytes_total": 2}, 0.0)  # fmt: skip
    assert clean(out.getvalue())
