"""Where the control socket lives, computed the same way by daemon and client.

Order: ``--socket`` (given by the caller), then ``$BIMMAIL_SOCKET``, then
``$XDG_RUNTIME_DIR/bimmail/bimmaild.sock`` (what systemd's ``%t`` expands to in
a user unit), then the platformdirs runtime directory.  A client with no
daemon of its own there uses the system daemon's ``/run/bimmail/bimmaild.sock``.  platformdirs is
imported only on that last path: its fallback rules changed across 4.x
(DESIGN.md §6), and the ctl must start fast.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

APP_NAME = "bimmail"
SOCKET_NAME = "bimmaild.sock"
SOCKET_ENV = "BIMMAIL_SOCKET"
# The system daemon's (bimmaild --system); its directory belongs to bimmaild-system.socket (the unit
# has no RuntimeDirectory=, which systemd would remove with the service), else to the daemon.
SYSTEM_SOCKET = Path("/run") / APP_NAME / SOCKET_NAME


def default_socket_path() -> Path:
    env = os.environ.get(SOCKET_ENV)
    if env:
        return Path(env)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / APP_NAME / SOCKET_NAME
    from platformdirs import user_runtime_path

    with warnings.catch_warnings():
        # Emitted when XDG_RUNTIME_DIR is unsafe; the fallback it picks is fine.
        warnings.simplefilter("ignore")
        return user_runtime_path(APP_NAME) / SOCKET_NAME


def resolve_socket_path(explicit: str | os.PathLike[str] | None) -> Path:
    """The client's choice: as given, else the user's own daemon, else the system daemon's
    socket when only that one exists (``bimmaild --system``)."""
    if explicit:
        return Path(explicit)
    own = default_socket_path()
    if not own.exists() and not os.environ.get(SOCKET_ENV) and SYSTEM_SOCKET.exists():
        return SYSTEM_SOCKET
    return own
