"""Sub-commands, one module per area, mirroring the daemon's handler modules.

Each module has ``add_parsers(subparsers)``, which registers its commands
with ``func`` set to an ``async def cmd_…(client, args) -> int``; a command
that needs no daemon (``service …``) sets ``local`` to a plain
``def (args) -> int`` instead, and no connection is made.  Modules
are imported for ``--help``, so they must not import asyncio or msgpack at
module level.
"""
