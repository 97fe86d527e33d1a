"""Decisions of a folder sync, as pure functions of stored state and server answers.

The cheap path matters most: a folder whose STATUS (UIDVALIDITY, UIDNEXT,
MESSAGES, and HIGHESTMODSEQ with CONDSTORE) equals what we stored after the
last sync has not changed, and costs one round trip.  Otherwise the folder is
selected and the plan says what to fetch:

* UIDVALIDITY changed: the stored UIDs mean nothing; re-map the local copies
  by Message-ID and size (never a blind wipe and re-download);
* new messages: UIDs at or above the stored UIDNEXT that are not indexed;
* flags: with QRESYNC, what the SELECT answer reports; with CONDSTORE, only
  what changed since the stored HIGHESTMODSEQ; without either, all flags;
* removals: QRESYNC's VANISHED list; otherwise (or when the counts still
  disagree) a UID SEARCH, only when the counts say something vanished; both
  subject to the safety stop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# A sync that would remove more than this share of a folder's local messages,
# and more than MIN_MASS_REMOVAL of them, stops and asks (DESIGN.md §5).
MASS_REMOVAL_SHARE = 0.5
MIN_MASS_REMOVAL = 20


@dataclass(frozen=True)
class Stored:
    uidvalidity: int | None
    uidnext: int | None
    highestmodseq: int | None
    message_count: int | None


def unchanged(stored: Stored, status: Mapping[str, int], condstore: bool) -> bool:
    """True when STATUS proves nothing changed since the last complete sync."""
    if stored.uidvalidity is None or stored.uidnext is None or stored.message_count is None:
        return False
    same = (
        status.get("UIDVALIDITY") == stored.uidvalidity
        and status.get("UIDNEXT") == stored.uidnext
        and status.get("MESSAGES") == stored.message_count
    )
    if not same:
        return False
    if condstore:
        return status.get("HIGHESTMODSEQ") == stored.highestmodseq
    return False  # without modseq, flag changes are invisible to STATUS


def uidvalidity_changed(stored: Stored, uidvalidity: int | None) -> bool:
    return stored.uidvalidity is not None and uidvalidity is not None and stored.uidvalidity != uidvalidity


def fetch_from(stored: Stored, uidvalidity: int | None) -> int:
    """First UID that may be new (1 for a first sync or after a UIDVALIDITY change)."""
    if stored.uidnext is None or uidvalidity_changed(stored, uidvalidity):
        return 1
    return max(1, stored.uidnext)


def qresync_from(stored: Stored) -> tuple[int, int] | None:
    """(UIDVALIDITY, MODSEQ) to resynchronise from with QRESYNC, or None.

    Only after a complete sync (its count stored): a sync stopped before its
    removals (safety stop, failure) stored a MODSEQ newer than what it applied,
    and the server would not report those removals again.
    """
    if stored.uidvalidity is None or not stored.highestmodseq or stored.message_count is None:
        return None
    return stored.uidvalidity, stored.highestmodseq


def may_have_removals(local_count: int, new_count: int, exists: int | None) -> bool:
    """Whether the counts say something vanished (without QRESYNC, the only sign)."""
    return exists is None or exists != local_count + new_count


@dataclass(frozen=True)
class SafetyStop:
    """When a fetch stops instead of removing local copies (the daemon's config can change it)."""

    share: float = MASS_REMOVAL_SHARE
    minimum: int = MIN_MASS_REMOVAL


DEFAULT_SAFETY = SafetyStop()


def is_mass_removal(local_count: int, removing: int, safety: SafetyStop = DEFAULT_SAFETY) -> bool:
    return removing > safety.minimum and removing > safety.share * local_count


@dataclass(frozen=True)
class Batch:
    uids: tuple[int, ...]
    size: int


def batches(sizes: Mapping[int, int], max_bytes: int, max_count: int) -> list[Batch]:
    """Group UIDs (ascending) so that each FETCH carries at most ``max_bytes``
    (a single bigger message gets a batch of its own) and ``max_count`` messages."""
    out: list[Batch] = []
    current: list[int] = []
    total = 0
    for uid in sorted(sizes):
        size = sizes[uid]
        if current and (total + size > max_bytes or len(current) >= max_count):
            out.append(Batch(tuple(current), total))
            current, total = [], 0
        current.append(uid)
        total += size
    if current:
        out.append(Batch(tuple(current), total))
    return out


def remap(
    local: Mapping[int, tuple[str | None, int]], remote: Mapping[int, tuple[str | None, int]]
) -> tuple[dict[int, int], list[int], list[int]]:
    """After a UIDVALIDITY change: match local copies to server messages by (Message-ID, size).

    ``local`` and ``remote`` map UID -> (Message-ID, size).  Returns (old UID ->
    new UID for matched messages, local UIDs without match, remote UIDs without
    match).  Messages without a Message-ID never match: they are downloaded
    again rather than risk pairing two different messages.
    """
    by_key: dict[tuple[str, int], list[int]] = {}
    for uid in sorted(remote):
        message_id, size = remote[uid]
        if message_id:
            by_key.setdefault((message_id, size), []).append(uid)
    moved: dict[int, int] = {}
    unmatched_local: list[int] = []
    for uid in sorted(local):
        message_id, size = local[uid]
        candidates = by_key.get((message_id, size)) if message_id else None
        if candidates:
            moved[uid] = candidates.pop(0)
        else:
            unmatched_local.append(uid)
    taken = set(moved.values())
    return moved, unmatched_local, [uid for uid in sorted(remote) if uid not in taken]
