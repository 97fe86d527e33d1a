"""Where passwords live: never in SQLite, never in a repr, log or response.

Two backends, chosen once per store and recorded in it (so that secrets
written to a file are not looked for in a keyring that appears later):

* ``keyring``: the system keyring (Secret Service) through python-keyring,
  only when it offers a real backend (priority >= 1; never keyrings.alt, whose
  "encryption" is base64).  Calls run in a thread with a timeout, because a
  locked collection can block forever waiting for an unlock prompt.
* ``file``: ``secrets.json`` in the data dir, mode 0600 in a 0700 dir, written
  atomically; refused (like ssh does) if its mode lets anyone else read it.

``auto`` picks keyring when usable, else file.  Keys are
``account/<secret_ref>/<slot>``; the keyring entries are namespaced by the
store's random id so two stores never share an entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import stat
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bimmaild.protocol.errors import InvalidParams, SecretsUnavailable

log = logging.getLogger(__name__)

BACKEND_CHOICES = ("auto", "keyring", "file")
SECRETS_FILE = "secrets.json"
KEYRING_SERVICE = "bimmail"
KEYRING_TIMEOUT = 10.0

T = TypeVar("T")


class Secret:
    """A secret string that refuses to show itself by accident."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:
        raise TypeError("secrets are not picklable")


class SecretBackend(ABC):
    name: str

    @abstractmethod
    async def get(self, key: str) -> Secret | None: ...

    @abstractmethod
    async def put(self, key: str, secret: Secret) -> None: ...

    @abstractmethod
    async def delete(self, key: str) -> None: ...

    async def keys(self) -> set[str] | None:
        """All stored keys, or None when the backend cannot enumerate them."""
        return None


class FileSecrets(SecretBackend):
    name = "file"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._data: dict[str, str] = self._load()

    def _load(self) -> dict[str, str]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {}
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO) or st.st_uid != os.getuid():
            raise SecretsUnavailable(
                f"{self.path} is readable by others (mode {stat.S_IMODE(st.st_mode):o}); "
                "refusing to use it: chmod 600 it after checking nobody copied it"
            )
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SecretsUnavailable(f"cannot read {self.path}: {exc.__class__.__name__}") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise SecretsUnavailable(f"{self.path} is not a bimmail secrets file")
        return data

    def _save(self) -> None:
        """Write a new file and rename it over the old one, so a crash never truncates it."""
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".secrets.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self._data, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    async def get(self, key: str) -> Secret | None:
        value = self._data.get(key)
        return Secret(value) if value is not None else None

    async def put(self, key: str, secret: Secret) -> None:
        self._data[key] = secret.reveal()
        self._save()

    async def delete(self, key: str) -> None:
        if self._data.pop(key, None) is not None:
            self._save()

    async def keys(self) -> set[str] | None:
        return set(self._data)


class KeyringSecrets(SecretBackend):
    name = "keyring"

    def __init__(self, store_id: str) -> None:
        self.store_id = store_id

    def _user(self, key: str) -> str:
        return f"{self.store_id}/{key}"

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.wait_for(asyncio.to_thread(fn, *args), KEYRING_TIMEOUT)
        except TimeoutError:
            raise SecretsUnavailable(
                "the system keyring did not answer (is it locked?)", data={"backend": self.name}
            ) from None
        except Exception as exc:  # keyring raises many unrelated types
            raise SecretsUnavailable(
                f"the system keyring failed: {exc.__class__.__name__}", data={"backend": self.name}
            ) from None

    async def get(self, key: str) -> Secret | None:
        import keyring

        value = await self._call(keyring.get_password, KEYRING_SERVICE, self._user(key))
        return Secret(value) if value is not None else None

    async def put(self, key: str, secret: Secret) -> None:
        import keyring

        await self._call(keyring.set_password, KEYRING_SERVICE, self._user(key), secret.reveal())

    async def delete(self, key: str) -> None:
        import keyring
        import keyring.errors

        def _delete() -> None:
            with contextlib.suppress(keyring.errors.PasswordDeleteError):  # already gone
                keyring.delete_password(KEYRING_SERVICE, self._user(key))

        await self._call(_delete)


def keyring_usable() -> bool:
    """True when python-keyring has a real backend (not fail, not keyrings.alt)."""
    try:
        import keyring
    except ImportError:
        return False
    try:
        backend = keyring.get_keyring()
        priority = float(backend.priority)
    except Exception:
        return False
    module = type(backend).__module__
    return priority >= 1 and not module.startswith(("keyring.backends.fail", "keyrings.alt"))


def choose_backend(requested: str, recorded: str | None) -> str:
    """The backend to use: an explicit choice, else what the store recorded, else a probe."""
    if requested not in BACKEND_CHOICES:
        raise InvalidParams(f"secret backend must be one of {', '.join(BACKEND_CHOICES)}", field="secret_backend")
    if requested != "auto":
        return requested
    if recorded in ("keyring", "file"):
        return recorded
    return "keyring" if keyring_usable() else "file"


def open_backend(name: str, data_dir: Path, store_id: str) -> SecretBackend:
    if name == "keyring":
        if not keyring_usable():
            log.warning("secret backend 'keyring' chosen but no usable system keyring is present")
        return KeyringSecrets(store_id)
    return FileSecrets(data_dir / SECRETS_FILE)


def account_key(secret_ref: str, slot: str) -> str:
    return f"account/{secret_ref}/{slot}"
