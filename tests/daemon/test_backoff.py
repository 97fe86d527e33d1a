"""The daemon's one retry rule (fetch, mirror, journal, outbox): base, doubling, capped."""

from __future__ import annotations

from bimmaild.backoff import doubling


def test_doubling_from_the_base_up_to_the_cap() -> None:
    assert [doubling(n, 60.0, 3600.0) for n in range(9)] == [0.0, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert doubling(10_000, 60.0, 21_600.0) == 21_600.0, "no overflow however many failures"
