"""Folder roles, default selection and Maildir names (R-C1), on real servers' LIST answers.

R-C1: inbox, sent and archive are synchronised by default; special folders are
recognised by SPECIAL-USE attributes, else by well-known English and French
names; the account's own trash (R-C3) is always synchronised.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bimmaild.imap.folders import (
    MAX_NAME_BYTES,
    ROLES,
    assign_roles,
    fold,
    maildir_name,
    role_for,
    selectable,
    selected_by_default,
)
from bimmaild.imap.parse import ListEntry, parse_list

TRASH = "BIMoffice"


def entry(line: str) -> ListEntry:
    return parse_list([line.encode()])


DOVECOT = {
    'LIST (\\HasNoChildren) "/" INBOX': "inbox",
    'LIST (\\HasNoChildren \\Sent) "/" Sent': "sent",
    'LIST (\\HasNoChildren \\Drafts) "/" Drafts': "drafts",
    'LIST (\\HasNoChildren \\Junk) "/" Junk': "junk",
    'LIST (\\HasNoChildren \\Trash) "/" Trash': "trash",
    'LIST (\\HasChildren \\Archive) "/" Archive': "archive",
    'LIST (\\HasNoChildren) "/" Archive/2024': None,
    'LIST (\\HasNoChildren \\Trash) "/" BIMoffice': "account_trash",
    'LIST (\\HasNoChildren) "/" Projets': None,
}
GMAIL = {
    'LIST (\\HasNoChildren) "/" "INBOX"': "inbox",
    'LIST (\\HasChildren \\Noselect) "/" "[Gmail]"': None,
    'LIST (\\All \\HasNoChildren) "/" "[Gmail]/All Mail"': "all",
    'LIST (\\Drafts \\HasNoChildren) "/" "[Gmail]/Drafts"': "drafts",
    'LIST (\\HasNoChildren \\Important) "/" "[Gmail]/Important"': "important",
    'LIST (\\HasNoChildren \\Sent) "/" "[Gmail]/Sent Mail"': "sent",
    'LIST (\\HasNoChildren \\Junk) "/" "[Gmail]/Spam"': "junk",
    'LIST (\\Flagged \\HasNoChildren) "/" "[Gmail]/Starred"': "flagged",
    'LIST (\\HasNoChildren \\Trash) "/" "[Gmail]/Trash"': "trash",
    'LIST (\\HasNoChildren) "/" "Factures 2026"': None,  # a label
    'LIST (\\HasNoChildren) "/" "BIMoffice"': "account_trash",
    'LIST (\\HasNoChildren \\Sent) "/" "[Gmail]/Messages envoy&AOk-s"': "sent",
    'LIST (\\All \\HasNoChildren) "/" "[Gmail]/Tous les messages"': "all",
}
NAMES_ONLY = {  # Exchange, Outlook.com, older hosting: no SPECIAL-USE
    'LIST (\\HasNoChildren) "/" "Sent Items"': "sent",
    'LIST (\\HasNoChildren) "/" "Deleted Items"': "trash",
    'LIST (\\HasNoChildren) "/" "Junk Email"': "junk",
    'LIST (\\HasNoChildren) "/" "Junk E-mail"': "junk",
    'LIST (\\HasNoChildren) "/" Archive': "archive",
    'LIST (\\HasNoChildren) "/" Drafts': "drafts",
    'LIST (\\HasNoChildren) "/" "&AMk-l&AOk-ments envoy&AOk-s"': "sent",
    'LIST (\\HasNoChildren) "/" "&AMk-l&AOk-ments supprim&AOk-s"': "trash",
    'LIST (\\HasNoChildren) "/" "Courrier ind&AOk-sirable"': "junk",
    'LIST (\\HasNoChildren) "." "INBOX.Sent Messages"': "sent",  # Courier / Cyrus namespace
    'LIST (\\HasNoChildren) "." "INBOX.Deleted Messages"': "trash",
    'LIST (\\HasNoChildren) "." INBOX.Brouillons': "drafts",
    'LIST (\\HasNoChildren) "." INBOX.Archives': "archive",
    'LIST (\\HasNoChildren) "." INBOX.BIMoffice': "account_trash",
    'LIST (\\HasNoChildren) "/" "[Google Mail]/All Mail"': "all",
    'LIST (\\HasNoChildren) "/" "[Gmail]/All Mail"': "all",
    'LIST (\\HasNoChildren) "/" "All Mail"': None,  # only Gmail's full path
    'LIST () "/" "elements envoyes"': "sent",
    'LIST () "/" "MESSAGES ENVOY&AMk-S"': "sent",
    'LIST () "/" "Envoy&AOk-s"': "sent",
    'LIST () "/" "Sent Mail"': "sent",
    'LIST () "/" SENT': "sent",
    'LIST () "/" spam': "junk",
    'LIST () "/" Pourriel': "junk",
    'LIST () "/" "Ind&AOk-sirables"': "junk",
    'LIST () "/" Bin': "trash",
    'LIST () "/" Corbeille': "trash",
    'LIST () "/" Brouillons': "drafts",
    'LIST () "/" Archives': "archive",
    'LIST () "/" "Junk  Email "': "junk",  # spacing is not a difference
    'LIST () "/" Clients/Sent': "sent",  # the last component counts
    'LIST () NIL "Sent Items"': "sent",  # flat namespace
    'LIST () "/" Sent/2024': None,
    'LIST () "/" Sentinel': None,
    'LIST () "/" "Boîte d\'envoi"': None,  # Outbox: not sent mail
}


@pytest.mark.parametrize(("line", "role"), [*DOVECOT.items(), *GMAIL.items(), *NAMES_ONLY.items()])
def test_role_for(line: str, role: str | None) -> None:
    assert role_for(entry(line), account_trash=TRASH) == role
    assert role is None or role in ROLES


@pytest.mark.parametrize(
    ("line", "account_trash", "role"),
    [
        ('LIST () "/" BIMoffice', "BIMoffice", "account_trash"),
        ('LIST () "/" bimoffice', "BIMoffice", None),  # exact comparison
        ('LIST (\\Trash) "/" Trash', "Trash", "account_trash"),  # wins over the attribute
        ('LIST () "." Archives.BIMoffice', "Archives/BIMoffice", "account_trash"),  # "/" is the server's delimiter
        ('LIST () "/" Archives/BIMoffice', "Archives/BIMoffice", "account_trash"),
        ('LIST () "/" Archives/BIMoffice', "BIMoffice", None),  # not any folder of that name
        ('LIST () "/" "Corbeille BIM"', "Corbeille BIM", "account_trash"),
        ('LIST () "/" "&AMk-l&AOk-ments BIM"', "Éléments BIM", "account_trash"),  # decoded names
        ('LIST () "/" INBOX', "INBOX", "account_trash"),  # a (silly) setting is still obeyed
        ('LIST () "/" Corbeille', "", "trash"),  # no account trash configured
    ],
)
def test_account_trash(line: str, account_trash: str, role: str | None) -> None:
    assert role_for(entry(line), account_trash=account_trash) == role


@pytest.mark.parametrize(
    ("line", "role"),
    [
        ('LIST (\\Junk) "/" Sent', "junk"),  # the attribute wins over the name
        ('LIST (\\sent) "/" Envoi', "sent"),  # attributes are case-insensitive
        ('LIST (\\Sent \\Archive) "/" X', "sent"),
        ('LIST (\\Drafts \\Sent) "/" X', "drafts"),
        ('LIST (\\Spam) "/" X', "junk"),  # XLIST spellings
        ('LIST (\\AllMail) "/" X', "all"),
        ('LIST (\\Starred) "/" X', "flagged"),
        ('LIST (\\Sent) "/" inbox', "inbox"),
    ],
)
def test_attribute_precedence(line: str, role: str) -> None:
    assert role_for(entry(line), account_trash=TRASH) == role


def test_assign_roles_prefers_special_use_over_names() -> None:
    lines = [
        'LIST (\\HasNoChildren \\Sent) "/" "[Gmail]/Sent Mail"',
        'LIST (\\HasNoChildren) "/" "Sent"',  # a Gmail label called Sent
        'LIST (\\HasNoChildren) "/" "Spam"',  # no \\Junk anywhere: stays junk by name
        'LIST (\\HasNoChildren) "/" "INBOX"',
        'LIST (\\HasNoChildren) "/" "BIMoffice"',
        'LIST (\\HasNoChildren) "/" "Old/BIMoffice"',
    ]
    assert assign_roles([entry(line) for line in lines], account_trash=TRASH) == {
        "[Gmail]/Sent Mail": "sent",
        "Sent": None,
        "Spam": "junk",
        "INBOX": "inbox",
        "BIMoffice": "account_trash",
        "Old/BIMoffice": None,
    }


def test_assign_roles_keeps_every_name_match_without_attributes() -> None:
    entries = [entry('LIST () "/" Sent'), entry('LIST () "/" "Sent Items"')]
    assert assign_roles(entries, account_trash=TRASH) == {"Sent": "sent", "Sent Items": "sent"}


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ((), True),
        (("\\HasNoChildren", "\\Sent"), True),
        (("\\Noselect",), False),
        (("\\NoSelect", "\\HasChildren"), False),
        (("\\NonExistent",), False),
        (("\\nonexistent",), False),
    ],
)
def test_selectable(attributes: tuple[str, ...], expected: bool) -> None:
    assert selectable(ListEntry(frozenset(attributes), "/", "X", "X")) is expected


def test_selected_by_default() -> None:
    chosen = {role for role in (*ROLES, None) if selected_by_default(role)}
    assert chosen == {"inbox", "sent", "archive", "account_trash"}


def test_fold() -> None:
    assert fold("  Éléments\tENVOYÉS ") == "elements envoyes"
    assert fold("Straße") == "strasse"


# -- Maildir names -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "delimiter", "taken", "expected"),
    [
        ("INBOX", "/", set(), "INBOX"),
        ("Archives/2024", "/", set(), "Archives.2024"),
        ("INBOX.Sent", ".", set(), "INBOX.Sent"),
        ("a\\b", "\\", set(), "a.b"),
        ("Éléments envoyés", "/", set(), "Éléments envoyés"),
        ("日本語", None, set(), "日本語"),
        ("a/b", ".", set(), "a_b"),  # "/" is not the delimiter here, but cannot be in a file name
        ("a/b", None, set(), "a_b"),
        ("tab\there\x00nul\x7f", "/", set(), "tab_here_nul_"),
        (".hidden", "/", set(), "_hidden"),
        ("/lead", "/", set(), "_lead"),
        (".", None, set(), "_"),
        ("..", None, set(), "_."),
        ("", "/", set(), "_"),
        ("tmp", "/", set(), "tmp_"),
        ("NEW", "/", set(), "NEW_"),
        ("cur", "/", set(), "cur_"),
        ("Sent", "/", {"sent"}, "Sent~2"),
        ("Sent", "/", {"SENT", "Sent~2"}, "Sent~3"),
        ("e\u0301t\u00e9", "/", {"été"}, "été~2"),  # NFC: the same name once composed
        ("bad\udcff", "/", set(), "bad_"),  # a lone surrogate (undecodable byte)
    ],
)
def test_maildir_name(name: str, delimiter: str | None, taken: set[str], expected: str) -> None:
    assert maildir_name(name, delimiter, taken) == expected


def test_maildir_name_is_cut_at_200_bytes_on_a_character_boundary() -> None:
    name = "é" * 150  # 300 bytes
    first = maildir_name(name, "/", set())
    assert first == "é" * 100 and len(first.encode()) == MAX_NAME_BYTES
    second = maildir_name(name, "/", {first})
    assert second == "é" * 99 + "~2" and len(second.encode()) <= MAX_NAME_BYTES
    assert maildir_name("a" * 300, "/", set()) == "a" * 200


NAMES = st.text(max_size=80) | st.sampled_from([".", "..", "tmp", "NEW", "cur", "", "/", "a/b", "A/B", "é" * 120])


@given(st.lists(st.tuples(NAMES, st.sampled_from(["/", ".", None])), max_size=12))
def test_maildir_names_are_safe_and_unique(folders: list[tuple[str, str | None]]) -> None:
    taken: set[str] = set()
    for name, delimiter in folders:
        result = maildir_name(name, delimiter, taken)
        assert result and result not in (".", "..") and not result.startswith(".")
        assert result.casefold() not in {"tmp", "new", "cur"}
        assert "/" not in result and not any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in result)
        assert len(result.encode("utf-8")) <= MAX_NAME_BYTES
        assert result.casefold() not in {t.casefold() for t in taken}
        taken.add(result)
