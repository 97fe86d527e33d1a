"""How a running sync tells the rest of the daemon what it does (progress, new mail).

The sync modules call a ``Reporter``; the sync service implements it by
updating the live activity and publishing events (``fetch.progress``,
``message.new``).  The default does nothing, so the sync logic runs and is
tested without an event bus.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class Reporter:
    def progress(self, folder: str, messages_done: int, messages_total: int, bytes_done: int, bytes_total: int) -> None:
        """After each stored batch of new messages."""

    def new_messages(self, folder: str, rows: Sequence[dict[str, Any]]) -> None:
        """Messages that arrived since the last sync (not those of a folder's first sync)."""
