"""The one retry rule of the daemon: wait ``base``, then twice as long after each further
failure, never more than ``cap`` (fetches, mirror runs, refused server operations, the outbox)."""

from __future__ import annotations


def doubling(failures: int, base: float, cap: float) -> float:
    """Seconds to wait after ``failures`` failures in a row (the first waits ``base``)."""
    if failures < 1:
        return 0.0
    return float(min(base * 2.0 ** min(failures - 1, 62), cap))
