"""The journald log form and the configurable safety stop, as plain functions."""

from __future__ import annotations

import logging
import sys

from bimmaild.logs import JournalFormatter
from bimmaild.sync.planner import SafetyStop, is_mass_removal


def test_every_line_of_an_error_keeps_its_priority() -> None:
    """journald splits on newlines: a traceback's lines must not fall back to priority 6."""
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("bimmaild.x", logging.ERROR, __file__, 1, "failed: %s", ("Work",), sys.exc_info())
    lines = JournalFormatter("%(name)s: %(message)s").format(record).splitlines()
    assert lines[0] == "<3>bimmaild.x: failed: Work" and len(lines) > 2
    assert all(line.startswith("<3>") for line in lines) and lines[-1] == "<3>ValueError: boom"
    warning = logging.LogRecord("n", logging.WARNING, __file__, 1, "w", None, None)
    assert JournalFormatter("%(message)s").format(warning) == "<4>w"


def test_safety_stop_threshold() -> None:
    assert is_mass_removal(100, 51) and not is_mass_removal(100, 50) and not is_mass_removal(30, 20)
    strict = SafetyStop(share=0.1, minimum=5)
    assert is_mass_removal(100, 11, strict) and not is_mass_removal(100, 10, strict)
