"""Where the control socket lives, computed the same way by daemon and client.

Order: ``--socket`` (given by the caller), then ``$BIMMAIL_SOCKET``, then
``$XDG_RUNTIME_DIR/bimmail/bimmaild.sock`` (what systemd's ``%t`` expands to in
a user unit), then the platformdirs runtime directory.  platformdirs is
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
    return Path(explicit) if explicit else default_socket_path()
