"""In-process publish/subscribe for the events clients can subscribe to.

Services publish without knowing who listens; control connections subscribe.
An event about an account names its owner, so that a connection forwards
only its own user's events.  ``publish`` never blocks and never raises: each subscriber owns a bounded
queue and decides what to do when it is full (a control connection drops the
slow client rather than let the daemon's memory grow).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Subscriber(Protocol):
    def offer(self, event: str, params: dict[str, Any], owner: int | None) -> None: ...


class EventBus:
    def __init__(self) -> None:
        self._subscribers: set[Subscriber] = set()

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.add(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def publish(self, event: str, params: dict[str, Any], *, owner: int | None = None) -> None:
        """``owner``: the uid whose account the event is about (only their connections get it);
        None for events about the daemon itself."""
        for subscriber in list(self._subscribers):
            try:
                subscriber.offer(event, params, owner)
            except Exception:
                log.exception("event subscriber failed on %s", event)
