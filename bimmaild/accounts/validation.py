"""Meaningful-value checks for account settings (shape is checked by the schema).

Each check returns the normalised value or raises InvalidParams naming the
field, with a message that says what a valid value looks like.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
import unicodedata
from pathlib import Path

from bimmaild.protocol.errors import InvalidParams

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
# RFC 5322 atext plus '.', and any non-ASCII letter (SMTPUTF8 addresses).
_LOCAL_ATEXT = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-\u0080-\U0010ffff]+$")


def _has_control(value: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in value)


def text(value: str, field: str, *, what: str) -> str:
    """A single line of free text, not empty once stripped."""
    value = value.strip()
    if not value:
        raise InvalidParams(f"{what} must not be empty", field=field)
    if _has_control(value):
        raise InvalidParams(f"{what} must not contain control characters", field=field)
    return value


def hostname(value: str, field: str) -> str:
    """A DNS name (IDN allowed) or an IP address literal."""
    value = value.strip().rstrip(".")
    if not value:
        raise InvalidParams("host must not be empty", field=field)
    try:
        ipaddress.ip_address(value.strip("[]"))
        return value.strip("[]")
    except ValueError:
        pass
    try:
        ascii_name = value.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidParams(f"{value!r} is not a valid host name", field=field) from None
    if len(ascii_name) > 253 or not all(_LABEL.match(label) for label in ascii_name.split(".")):
        raise InvalidParams(f"{value!r} is not a valid host name (letters, digits, '-' and '.' only)", field=field)
    return value


def email_address(value: str, field: str = "email") -> str:
    """An addr-spec: local-part@domain, as typed by a user (no display name)."""
    value = value.strip()
    local, at, domain = value.rpartition("@")
    hint = "an e-mail address looks like name@example.org"
    if not at or not local or not domain:
        raise InvalidParams(f"{value!r} is not an e-mail address; {hint}", field=field)
    if len(local) > 64 or not _LOCAL_ATEXT.match(local) or ".." in local or local[0] == "." or local[-1] == ".":
        raise InvalidParams(f"{value!r} has an invalid part before '@'; {hint}", field=field)
    try:
        hostname(domain, field)
    except InvalidParams:
        raise InvalidParams(f"{value!r} has an invalid domain after '@'; {hint}", field=field) from None
    return value


def login(value: str | None, field: str) -> str | None:
    """A login; empty means 'use the address' (R-A1) and is stored as NULL."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if _has_control(value):
        raise InvalidParams("login must not contain control characters", field=field)
    return value


def password(value: str, field: str) -> str:
    """Passwords are taken as given (spaces are legal), but must be one line."""
    if not value:
        raise InvalidParams("password must not be empty", field=field)
    if "\r" in value or "\n" in value:
        raise InvalidParams("password must be a single line", field=field)
    return value


def ca_file(value: str | None, field: str = "tls_ca_file") -> str | None:
    """A PEM file that loads as trust anchors; stored as an absolute path."""
    if value is None or not value.strip():
        return None
    path = Path(value.strip())
    if not path.is_absolute():
        raise InvalidParams(f"{field} must be an absolute path (got {value!r})", field=field)
    if not path.is_file():
        raise InvalidParams(f"{path} does not exist or is not a file", field=field)
    try:
        ssl.create_default_context().load_verify_locations(cafile=str(path))
    except (ssl.SSLError, OSError) as exc:
        raise InvalidParams(
            f"{path} is not a readable PEM certificate file ({exc.__class__.__name__})", field=field
        ) from None
    return str(path)
