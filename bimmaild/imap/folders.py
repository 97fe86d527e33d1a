"""Folder roles, default selection and local directory names (R-C1); sans-IO.

R-C1: the daemon lists the server's folders and the user chooses which ones
are synchronised — inbox, sent and archive by default, special folders
recognised by SPECIAL-USE attributes, else by well-known names in English and
French.  The account's own server trash (``BIMoffice`` by default, R-C3) is
always synchronised, so it has a role of its own, ``account_trash``, which
wins over everything else.

Roles: ``inbox``, ``sent``, ``archive``, ``drafts``, ``junk``, ``trash``,
``account_trash``, ``all`` (Gmail's ``[Gmail]/All Mail``: every message of
every label, so never selected by default), ``flagged``, ``important``, or
None for a user folder (a Gmail label is a folder like any other).

Names are compared accent- and case-insensitively (``elements envoyes``
matches ``Éléments envoyés``), on the last component of the path and on the
whole name, so that ``INBOX.Sent`` (Courier, Cyrus) is the sent folder.
``role_for`` judges one entry; ``assign_roles`` judges a whole LIST answer, so
that a folder that carries a SPECIAL-USE attribute wins over another that
merely has a well-known name (Gmail's ``\\Sent`` ``[Gmail]/Sent Mail`` over a
label called ``Sent``).

``maildir_name`` turns a folder name into the name of its Maildir under the
account's directory (``<data>/mail/<account-id>/<folder>/``, DESIGN.md §4).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from bimmaild.imap.parse import ListEntry

ROLES = ("inbox", "sent", "archive", "drafts", "junk", "trash", "account_trash", "all", "flagged", "important")
DEFAULT_ROLES = frozenset({"inbox", "sent", "archive", "account_trash"})

# RFC 6154 SPECIAL-USE, Gmail's \Important, and the older XLIST spellings; in
# order of precedence when a server puts several on one folder.
_ATTRIBUTE_ROLES = {
    "\\drafts": "drafts",
    "\\sent": "sent",
    "\\trash": "trash",
    "\\junk": "junk",
    "\\spam": "junk",
    "\\archive": "archive",
    "\\all": "all",
    "\\allmail": "all",
    "\\flagged": "flagged",
    "\\starred": "flagged",
    "\\important": "important",
}


def fold(name: str) -> str:
    """Accent-, case- and spacing-insensitive form of a name: "Éléments  Envoyés" → "elements envoyes"."""
    decomposed = unicodedata.normalize("NFKD", name)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())


_WELL_KNOWN = {
    "sent": ("Sent", "Sent Items", "Sent Messages", "Sent Mail", "Envoyés", "Envoyé", "Éléments envoyés",
             "Messages envoyés"),
    "archive": ("Archive", "Archives"),
    "drafts": ("Drafts", "Brouillons"),
    "junk": ("Junk", "Spam", "Junk E-mail", "Junk Email", "Courrier indésirable", "Indésirables", "Indésirable",
             "Pourriel"),
    "trash": ("Trash", "Deleted Items", "Deleted Messages", "Bin", "Corbeille", "Éléments supprimés"),
    "all": ("[Gmail]/All Mail", "[Google Mail]/All Mail"),
}  # fmt: skip
_NAME_ROLES = {fold(name): role for role, names in _WELL_KNOWN.items() for name in names}


def role_for(entry: ListEntry, *, account_trash: str) -> str | None:
    """The role of one folder (see the module docstring for the order of the rules)."""
    return _judge(entry, account_trash)[0]


def assign_roles(entries: Iterable[ListEntry], *, account_trash: str) -> dict[str, str | None]:
    """Role per wire name for a whole LIST answer.

    A role that some folder has for sure (INBOX, the account trash, a SPECIAL-USE
    attribute) is taken from the folders that only have a well-known name for it:
    they are user folders then.
    """
    judged = {entry.wire_name: _judge(entry, account_trash) for entry in entries}
    certain = {role for role, sure in judged.values() if sure}
    return {wire: None if role in certain and not sure else role for wire, (role, sure) in judged.items()}


def _judge(entry: ListEntry, account_trash: str) -> tuple[str | None, bool]:
    """(role, whether it is certain rather than guessed from the name)."""
    if _is_account_trash(entry, account_trash):
        return "account_trash", True
    if entry.wire_name.upper() == "INBOX":
        return "inbox", True
    attributes = {attribute.lower() for attribute in entry.attributes}
    for attribute, role in _ATTRIBUTE_ROLES.items():
        if attribute in attributes:
            return role, True
    last = entry.name.rsplit(entry.delimiter, 1)[-1] if entry.delimiter else entry.name
    return _NAME_ROLES.get(fold(last)) or _NAME_ROLES.get(fold(entry.name)), False


def _is_account_trash(entry: ListEntry, account_trash: str) -> bool:
    """Exact (case-sensitive) match of the decoded name.

    The setting may be a path written with "/" (compared with the server's own
    delimiter), and servers whose personal namespace is "INBOX." (Courier, Cyrus)
    keep it as ``INBOX.<name>``.
    """
    if not account_trash:
        return False
    if entry.name == account_trash:
        return True
    delimiter = entry.delimiter
    if not delimiter:
        return False
    path = account_trash.replace("/", delimiter)
    return entry.name in (path, f"INBOX{delimiter}{path}")


def selectable(entry: ListEntry) -> bool:
    """False for a folder that holds no messages (\\Noselect) or does not exist (\\NonExistent)."""
    return not any(attribute.lower() in ("\\noselect", "\\nonexistent") for attribute in entry.attributes)


def selected_by_default(role: str | None) -> bool:
    """R-C1: inbox, sent, archive, and the account trash (always mirrored, R-C3..C6)."""
    return role in DEFAULT_ROLES


# -- local directory names --------------------------------------------------------

MAX_NAME_BYTES = 200
_RESERVED = frozenset({"tmp", "new", "cur"})  # a Maildir's own subdirectories


def maildir_name(name: str, delimiter: str | None, taken: set[str]) -> str:
    """A safe, unique directory name for the folder ``name`` (decoded) under the account's directory.

    The hierarchy delimiter becomes "." ("Archives/2024" → "Archives.2024");
    "/", control characters, lone surrogates and a leading "." become "_";
    never empty, ".", ".." or tmp/new/cur; at most 200 bytes of UTF-8 (NFC);
    unique against ``taken`` ignoring case, by appending "~2", "~3" …  Pure:
    the caller adds the result to ``taken``.
    """
    base = _safe_name(name, delimiter)
    used = {existing.casefold() for existing in taken}
    candidate = base
    counter = 1
    while candidate.casefold() in used:
        counter += 1
        suffix = f"~{counter}"
        candidate = _truncate(base, MAX_NAME_BYTES - len(suffix)) + suffix
    return candidate


def _safe_name(name: str, delimiter: str | None) -> str:
    name = unicodedata.normalize("NFC", name)
    if delimiter:
        name = name.replace(delimiter, ".")
    name = "".join("_" if ch == "/" or unicodedata.category(ch) in ("Cc", "Cs") else ch for ch in name)
    if name.startswith("."):
        name = "_" + name[1:]
    if not name:
        name = "_"
    if name.casefold() in _RESERVED:
        name += "_"
    return _truncate(name, MAX_NAME_BYTES)


def _truncate(name: str, limit: int) -> str:
    """At most ``limit`` bytes of UTF-8, cut on a character boundary."""
    encoded = name.encode("utf-8")
    return name if len(encoded) <= limit else encoded[:limit].decode("utf-8", "ignore")
