"""bimmailctl: the thin client of bimmaild (command line and importable client).

``from bimmailctl import Client`` is resolved lazily, so that ``bimmailctl
--help`` does not pay for asyncio and msgpack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bimmailctl.client import Client, ConnectionLost, DaemonNotRunning, SyncClient

__all__ = ["Client", "ConnectionLost", "DaemonNotRunning", "SyncClient"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from bimmailctl import client

        return getattr(client, name)
    raise AttributeError(name)
