"""The account: its settings, how protocol params map onto them, and their rules.

Settings are handled as a flat mapping whose keys are the store's column
names (``imap_port``); the protocol nests them (``imap.port``).  ``field_of``
converts a column to the protocol path, so every error names the field the
user typed.  Passwords are not settings: they travel separately as *slots*
(``password``, ``imap_password``, ``smtp_password``) into the secret backend.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Protocol

from bimmaild.accounts import validation
from bimmaild.protocol.errors import InvalidParams

SETTING_COLUMNS = (
    "name",
    "email",
    "login",
    "separate_auth",
    "imap_host",
    "imap_port",
    "imap_security",
    "imap_login",
    "smtp_host",
    "smtp_port",
    "smtp_security",
    "smtp_auth",
    "smtp_login",
    "tls_ca_file",
    "trash_folder",
    "separator",
    "auto_fetch",
    "enabled",
    "provider",
    "auth",
    "oauth_issuer",
)
PASSWORD_SLOTS = ("password", "imap_password", "smtp_password")
# Every secret of an account: its passwords, and the OAuth2 refresh token of a signed-in one.
SLOTS = (*PASSWORD_SLOTS, "oauth_refresh")

DEFAULT_PORTS = {
    ("imap", "ssl"): 993,
    ("imap", "starttls"): 143,
    ("imap", "none"): 143,
    ("smtp", "ssl"): 465,
    ("smtp", "starttls"): 587,
    ("smtp", "none"): 25,
}


class Row(Protocol):
    """A stored row (sqlite3.Row or a mapping)."""

    def __getitem__(self, key: str) -> Any: ...


def field_of(key: str) -> str:
    """Protocol path of a column or slot: ``imap_port`` -> ``imap.port``."""
    for kind in ("imap", "smtp"):
        if key.startswith(kind + "_"):
            return f"{kind}.{key[len(kind) + 1 :]}"
    return key


@dataclass(frozen=True)
class Account:
    id: int
    secret_ref: str
    owner_uid: int  # the local user whose account it is (R-L3)
    name: str
    email: str
    login: str | None
    separate_auth: bool
    imap_host: str
    imap_port: int
    imap_security: str
    imap_login: str | None
    smtp_host: str
    smtp_port: int
    smtp_security: str
    smtp_auth: bool
    smtp_login: str | None
    tls_ca_file: str | None
    trash_folder: str
    separator: str
    auto_fetch: bool
    enabled: bool
    provider: str | None
    auth: str  # "password" or "oauth2" (protocol.methods.AUTH_CHOICES)
    oauth_issuer: str | None  # the issuer of its tokens (auth oauth2)
    primary: bool
    created_at: str
    updated_at: str

    @classmethod
    def from_row(cls, row: Row) -> Account:
        values = {f.name: row[f.name] for f in fields(cls) if f.name != "primary"}
        for flag in ("separate_auth", "smtp_auth", "auto_fetch", "enabled"):
            values[flag] = bool(values[flag])
        return cls(primary=bool(row["is_primary"]), **values)

    def settings(self) -> dict[str, Any]:
        return {column: getattr(self, column) for column in SETTING_COLUMNS}

    @property
    def imap_user(self) -> str:
        """The login IMAP uses (R-A1: the address when none is set)."""
        chosen = self.imap_login if self.separate_auth else self.login
        return chosen or self.email

    @property
    def smtp_user(self) -> str:
        chosen = self.smtp_login if self.separate_auth else self.login
        return chosen or self.email

    @property
    def oauth(self) -> bool:
        return self.auth == "oauth2"

    def to_public(self, slots_set: set[str]) -> dict[str, Any]:
        """The account as the protocol shows it; passwords and tokens only as 'is one set'."""
        imap_pw = "imap_password" if self.separate_auth else "password"
        smtp_pw = "smtp_password" if self.separate_auth else "password"
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "login": self.login or self.email,
            "separate_auth": self.separate_auth,
            "imap": {
                "host": self.imap_host,
                "port": self.imap_port,
                "security": self.imap_security,
                "login": self.imap_user,
                "password_set": imap_pw in slots_set,
            },
            "smtp": {
                "host": self.smtp_host,
                "port": self.smtp_port,
                "security": self.smtp_security,
                "auth": self.smtp_auth,
                "login": self.smtp_user,
                "password_set": smtp_pw in slots_set,
            },
            "tls_ca_file": self.tls_ca_file,
            "trash_folder": self.trash_folder,
            "separator": self.separator,
            "auto_fetch": self.auto_fetch,
            "enabled": self.enabled,
            "provider": self.provider,
            "auth": self.auth,
            "oauth": {"issuer": self.oauth_issuer, "signed_in": "oauth_refresh" in slots_set} if self.oauth else None,
            "primary": self.primary,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def split_params(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Flatten validated protocol params into (settings by column, passwords by slot)."""
    flat: dict[str, Any] = {}
    passwords: dict[str, str] = {}
    for key, value in params.items():
        if key in ("imap", "smtp"):
            for sub, sub_value in value.items():
                column = f"{key}_{sub}"
                if sub == "password":
                    passwords[column] = sub_value
                else:
                    flat[column] = sub_value
        elif key == "password":
            passwords["password"] = value
        elif key == "oauth":
            if "issuer" in value:
                flat["oauth_issuer"] = value["issuer"]
            if "flow" in value:
                flat["oauth_flow"] = value["flow"]
        else:
            flat[key] = value
    return flat, passwords


def default_port(kind: str, security: str) -> int:
    return DEFAULT_PORTS[(kind, security)]


def normalize(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Check and normalise the given settings (only those given)."""
    checks: dict[str, Callable[[Any, str], Any]] = {
        "name": lambda v, f: validation.text(v, f, what="name"),
        "email": validation.email_address,
        "login": validation.login,
        "imap_login": validation.login,
        "smtp_login": validation.login,
        "imap_host": validation.hostname,
        "smtp_host": validation.hostname,
        "tls_ca_file": validation.ca_file,
        "trash_folder": lambda v, f: validation.text(v, f, what="trash folder name"),
    }
    out = dict(changes)
    for column, check in checks.items():
        if column in out:
            out[column] = check(out[column], field_of(column))
    return out


def required_slots(settings: Mapping[str, Any]) -> list[str]:
    """Password slots the settings need: IMAP always logs in; SMTP when auth is on.  None with
    OAuth2: its token (``oauth_refresh``) comes from a sign-in, not from a param."""
    if settings.get("auth") == "oauth2":
        return []
    if not settings["separate_auth"]:
        return ["password"]
    return ["imap_password", "smtp_password"] if settings["smtp_auth"] else ["imap_password"]


def check_passwords(settings: Mapping[str, Any], given: Mapping[str, str], have: set[str]) -> None:
    """Refuse passwords for unused slots and missing passwords for required ones."""
    required = required_slots(settings)
    for slot, value in given.items():
        if slot not in required:
            if settings.get("auth") == "oauth2":
                why = "auth is oauth2 (the account signs in: bimmailctl account reauth)"
            elif slot == "password":
                why = "separate_auth is on (give imap.password / smtp.password)"
            elif settings["separate_auth"]:
                why = "smtp.auth is off"
            else:
                why = "separate_auth is off (give password)"
            raise InvalidParams(f"{field_of(slot)} is not used when {why}", field=field_of(slot))
        validation.password(value, field_of(slot))
    for slot in required:
        if slot not in given and slot not in have:
            raise InvalidParams(
                f"a password is required for {field_of(slot).replace('.password', '') or 'the account'}"
                f" ({field_of(slot)})",
                field=field_of(slot),
            )
