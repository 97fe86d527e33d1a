"""Sub-commands, one module per area, mirroring the daemon's handler modules.

Each module has ``add_parsers(subparsers)``, which registers its commands
with ``func`` set to an ``async def cmd_…(client, args) -> int``.  Modules
are imported for ``--help``, so they must not import asyncio or msgpack at
module level.
"""
