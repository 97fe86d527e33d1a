"""Which listed folders the store keeps (bimmaild.sync.folder_list.usable), sans-IO (R-C1).

A server that lists a folder twice or sends a name that is not text must not fail every fetch
of the account; end to end, through a rewriting proxy: tests/reliability/test_hostile_data.py.
"""

from __future__ import annotations

import logging

import pytest

from bimmaild.imap.parse import ListEntry, parse_list
from bimmaild.sync import folder_list


def entry(line: bytes, *literal: bytes) -> ListEntry:
    return parse_list([line, *literal])


def test_names_that_cannot_be_stored_or_sent_back_are_skipped_with_a_reason(caplog: pytest.LogCaptureFixture) -> None:
    entries = [
        entry(b'LIST () "/" INBOX'),
        entry(b'LIST () "/" Caf\xc3\xa9Utf8'),  # raw UTF-8: text, kept
        entry(b'LIST () "/" Bad&Name'),  # invalid modified UTF-7: kept under its wire name
        entry(b'LIST () "/" Caf\xe9Latin'),  # raw Latin-1: lone surrogates, not storable
        entry(b'LIST (\\Sent) "/" {9}', b"Ctl\r\nName", b""),  # CR LF: no command can name it
        entry(b'LIST () "/" {7}', b"Nul\x00Box", b""),
        entry(b'LIST () "/" inbox'),  # INBOX again (case-insensitive)
        entry(b'LIST (\\Junk) "/" Dup'),
        entry(b'LIST () "/" Dup'),
    ]
    with caplog.at_level(logging.WARNING, logger="bimmaild.sync.folder_list"):
        kept = folder_list.usable(7, entries)
    assert [(e.wire_name, sorted(e.attributes)) for e in kept] == [
        ("INBOX", []), ("CaféUtf8", []), ("Bad&Name", []), ("Dup", ["\\Junk"]),
    ]  # fmt: skip
    assert [e.name for e in kept] == ["INBOX", "CaféUtf8", "Bad&Name", "Dup"]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 5 and all(m.startswith("account 7: folder ") for m in messages)
    assert "raw 8-bit bytes" in messages[0] and "CR, LF or NUL" in messages[1] and "CR, LF or NUL" in messages[2]
    assert "listed twice" in messages[3] and "'INBOX'" in messages[3] and "'Dup'" in messages[4]


def test_unusable() -> None:
    assert folder_list.unusable("Éléments envoyés") is None
    assert folder_list.unusable("a\rb") is not None
    assert folder_list.unusable("caf\udce9") is not None
