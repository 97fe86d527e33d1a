"""docs/PROTOCOL.md documents every method the daemon serves, as the code declares it."""

from __future__ import annotations

from pathlib import Path

from bimmailctl.client import Client
from bimmaild.protocol.docgen import rewrite

DOC = Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md"


def test_generated_reference_is_up_to_date() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert rewrite(text) == text, "run: make docs (python -m bimmaild.protocol.docgen docs/PROTOCOL.md)"


async def test_every_served_method_and_event_is_documented(client: Client) -> None:
    text = DOC.read_text(encoding="utf-8")
    assert client.hello["methods"], "daemon announced no methods"
    for method in client.hello["methods"]:
        assert f"### `{method}`" in text, f"{method} is served but not documented"
    for event in client.hello["events"]:
        assert f"| `{event}` |" in text, f"event {event} is not documented"
