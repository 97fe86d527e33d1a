"""Provider presets (R-B2): known server settings, looked up by the address's domain.

The data lives in ``providers.toml`` next to this module, so that settings can be reviewed and
corrected without touching code; each entry names its source and the date it was last checked,
and says when it is unverified instead of guessing silently.  Everything is validated when the
file is loaded, so a bad edit fails the test suite rather than a user's account setup.

``autoconfig.parse_autoconfig`` reads Thunderbird's autoconfig format (clientConfig 1.1) into the
same ``Provider`` type, through the same checks (``_build``).  This module does no I/O besides
reading its own data file.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from importlib import resources
from typing import Any, TypeVar

_T = TypeVar("_T", str, bool)

SECURITY = ("ssl", "starttls", "none")
LOGIN_FORMS = ("address", "local_part")
AUTH_METHODS = ("password", "app_password", "oauth2")

_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_REQUIRED = frozenset({"id", "name", "domains", "imap", "smtp", "login", "auth", "stores_sent_copy", "hints"})
_REQUIRED |= {"source", "last_checked", "verified"}
_OPTIONAL = frozenset({"mx_suffixes", "caveat"})


@dataclass(frozen=True)
class ServerPreset:
    host: str
    port: int
    security: str  # one of SECURITY


@dataclass(frozen=True)
class SmtpPreset:
    host: str
    port: int
    security: str  # one of SECURITY
    auth: bool  # the server requires SMTP AUTH


@dataclass(frozen=True)
class Provider:
    id: str
    name: str
    domains: tuple[str, ...]  # ASCII (IDNA) form, lowercase
    mx_suffixes: tuple[str, ...]
    imap: ServerPreset
    smtp: SmtpPreset
    login: str  # one of LOGIN_FORMS
    auth: tuple[str, ...]  # among AUTH_METHODS
    stores_sent_copy: bool
    hints: tuple[str, ...]
    source: str
    last_checked: date
    verified: bool
    caveat: str | None

    def to_public(self) -> dict[str, Any]:
        """Plain types only (lists, str, int, bool, None), for msgpack and JSON."""
        data = dataclasses.asdict(self)
        for key in ("domains", "mx_suffixes", "auth", "hints"):
            data[key] = list(data[key])
        data["last_checked"] = self.last_checked.isoformat()
        return data


def _ascii_domain(value: str) -> str | None:
    """The lowercase ASCII form of a domain (IDN and trailing dot tolerated), or None if it is not one."""
    name = value.strip().rstrip(".").lower()
    if not name:
        return None
    try:
        name = name.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    if len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        return None
    return name


def login_for(provider: Provider, email: str) -> str:
    """The login for ``email`` at ``provider``: the full address or its local part."""
    local, at, _domain = email.strip().rpartition("@")
    if not at or not local:
        raise ValueError(f"{email!r} is not an e-mail address")
    return email.strip() if provider.login == "address" else local


# --- validation --------------------------------------------------------------------------------------


def _typed(table: dict[str, Any], key: str, where: str, kind: type[_T]) -> _T:
    value = table.get(key)
    if not isinstance(value, kind) or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"{where}: {key!r} must be {'true or false' if kind is bool else 'a non-empty string'}")
    return value.strip() if isinstance(value, str) else value


def _strings(table: dict[str, Any], key: str, where: str, allowed: Iterable[str] | None = None) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise ValueError(f"{where}: {key!r} must be a list of non-empty strings")
    if allowed is not None:
        allowed = tuple(allowed)
        bad = [item for item in value if item not in allowed]
        if bad or not value or len(set(value)) != len(value):
            raise ValueError(f"{where}: {key!r} must list, once each, some of {', '.join(allowed)} (got {value})")
    return tuple(item.strip() for item in value)


def _domains(table: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    result = []
    for item in _strings(table, key, where):
        name = _ascii_domain(item)
        if name is None:
            raise ValueError(f"{where}: {item!r} in {key!r} is not a valid domain")
        result.append(name)
    return tuple(result)


def _server(table: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = table.get(key)
    fields = {"host", "port", "security"} | ({"auth"} if key == "smtp" else set())
    if not isinstance(value, dict) or set(value) != fields:
        raise ValueError(f"{where}: {key!r} must be a table with exactly the keys {', '.join(sorted(fields))}")
    host = _typed(value, "host", f"{where}: {key}", str)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if _ascii_domain(host) is None:
            raise ValueError(f"{where}: {key}.host {host!r} is not a host name or IP address") from None
    port = value["port"]
    if type(port) is not int or not 1 <= port <= 65535:
        raise ValueError(f"{where}: {key}.port must be an integer from 1 to 65535 (got {port!r})")
    if value["security"] not in SECURITY:
        raise ValueError(f"{where}: {key}.security must be one of {', '.join(SECURITY)} (got {value['security']!r})")
    if key == "smtp" and not isinstance(value["auth"], bool):
        raise ValueError(f"{where}: smtp.auth must be true or false")
    return {**value, "host": host.lower()}


def _build(table: dict[str, Any], where: str) -> Provider:
    """Check one entry (a TOML table, or the same shape built from autoconfig) and make it a Provider."""
    if isinstance(table.get("id"), str):
        where = f"provider {table['id']!r}"
    if unknown := sorted(set(table) - _REQUIRED - _OPTIONAL):
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}")
    if missing := sorted(_REQUIRED - set(table)):
        raise ValueError(f"{where}: missing key(s) {', '.join(missing)}")
    pid = _typed(table, "id", where, str)
    if not _ID.match(pid):
        raise ValueError(f"{where}: id {pid!r} must be lowercase letters and digits separated by '-'")
    verified, caveat = _typed(table, "verified", where, bool), table.get("caveat")
    if verified and caveat is not None:
        raise ValueError(f"{where}: 'caveat' is only for unverified entries (verified = false)")
    if not verified and (not isinstance(caveat, str) or not caveat.strip()):
        raise ValueError(f"{where}: an unverified entry needs a 'caveat' saying what is unverified")
    checked = table["last_checked"]
    if not isinstance(checked, date) or isinstance(checked, datetime):
        raise ValueError(f"{where}: 'last_checked' must be a date such as 2026-01-31")
    login = table["login"]
    if login not in LOGIN_FORMS:
        raise ValueError(f"{where}: 'login' must be one of {', '.join(LOGIN_FORMS)} (got {login!r})")
    return Provider(
        id=pid,
        name=_typed(table, "name", where, str),
        domains=_domains(table, "domains", where),
        mx_suffixes=_domains(table, "mx_suffixes", where),
        imap=ServerPreset(**_server(table, "imap", where)),
        smtp=SmtpPreset(**_server(table, "smtp", where)),
        login=login,
        auth=_strings(table, "auth", where, AUTH_METHODS),
        stores_sent_copy=_typed(table, "stores_sent_copy", where, bool),
        hints=_strings(table, "hints", where),
        source=_typed(table, "source", where, str),
        last_checked=checked,
        verified=verified,
        caveat=caveat.strip() if isinstance(caveat, str) else None,
    )


def _substitute(value: Any, tld: str) -> Any:
    if isinstance(value, str):
        return value.replace("{tld}", tld)
    if isinstance(value, list):
        return [_substitute(item, tld) for item in value]
    if isinstance(value, dict):
        return {key: _substitute(item, tld) for key, item in value.items()}
    return value


def _expand(table: object, where: str) -> list[dict[str, Any]]:
    """One entry, or one per TLD for a template: ``tlds = [...]`` and ``{tld}`` placeholders (IONOS)."""
    if not isinstance(table, dict):
        raise ValueError(f"{where}: must be a table")
    if "tlds" not in table:
        return [table]
    pid, tlds = table.get("id"), table["tlds"]
    if not (isinstance(pid, str) and "{tld}" in pid and isinstance(tlds, list) and tlds):
        raise ValueError(f"{where}: a template needs an id containing '{{tld}}' and a non-empty list 'tlds'")
    if not all(isinstance(tld, str) and _ascii_domain(tld) for tld in tlds):
        raise ValueError(f'{where}: \'tlds\' must be domain suffixes such as "fr" or "co.uk"')
    rest = {key: value for key, value in table.items() if key != "tlds"}
    # In ids, a TLD's dots become '-' (ionos-co-uk); everywhere else it is substituted as written.
    return [{**_substitute(rest, tld), "id": pid.replace("{tld}", tld.replace(".", "-"))} for tld in tlds]


# --- the database ------------------------------------------------------------------------------------


class ProviderDatabase:
    """The presets, in file order, indexed by id, domain and MX suffix (no two providers share one)."""

    def __init__(self, providers: Iterable[Provider]) -> None:
        self._providers = list(providers)
        self._by_id: dict[str, Provider] = {}
        self._by_domain: dict[str, Provider] = {}
        self._by_mx: dict[str, Provider] = {}
        for provider in self._providers:
            if provider.id in self._by_id:
                raise ValueError(f"provider {provider.id!r}: duplicate id")
            self._by_id[provider.id] = provider
            self._claim(self._by_domain, provider, provider.domains, "domain")
            self._claim(self._by_mx, provider, provider.mx_suffixes, "MX suffix")

    @staticmethod
    def _claim(index: dict[str, Provider], provider: Provider, names: tuple[str, ...], what: str) -> None:
        for name in names:
            other = index.get(name)
            if other is provider:
                raise ValueError(f"provider {provider.id!r}: {what} {name!r} is listed twice")
            if other is not None:
                raise ValueError(f"provider {provider.id!r}: {what} {name!r} is already claimed by {other.id!r}")
            index[name] = provider

    @classmethod
    def from_toml(cls, text: str) -> ProviderDatabase:
        """Parse and validate presets in the format of ``providers.toml``; ValueError names the bad entry."""
        data = tomllib.loads(text)
        entries = data.get("provider")
        if set(data) - {"provider"} or not isinstance(entries, list):
            raise ValueError("providers TOML must contain only [[provider]] tables")
        return cls(
            _build(expanded, f"provider #{number}")
            for number, table in enumerate(entries, 1)
            for expanded in _expand(table, f"provider #{number}")
        )

    def with_custom(self, custom: Iterable[Provider]) -> ProviderDatabase:
        """These presets first: a custom entry replaces a shipped one of the same id, and takes its
        domains and MX suffixes from any shipped one that has them (the site knows its own mail)."""
        custom = list(custom)
        ids = {p.id for p in custom}
        domains = {d for p in custom for d in p.domains}
        suffixes = {m for p in custom for m in p.mx_suffixes}
        kept = [
            dataclasses.replace(
                p,
                domains=tuple(d for d in p.domains if d not in domains),
                mx_suffixes=tuple(m for m in p.mx_suffixes if m not in suffixes),
            )
            for p in self._providers
            if p.id not in ids
        ]
        return ProviderDatabase([*custom, *kept])

    def all(self) -> list[Provider]:
        return list(self._providers)

    def by_id(self, provider_id: str) -> Provider | None:
        return self._by_id.get(provider_id)

    def for_domain(self, domain: str) -> Provider | None:
        # Exact domains only, never subdomains: a provider's domain says nothing about who runs the mail of
        # names under it (tenant.onmicrosoft.com, a customer's zone under a hosting domain, a department's
        # own server).  A wrong preset would send the user's password to someone else's server; no preset
        # only means the settings are asked for (or found by autoconfig).
        name = _ascii_domain(domain)
        return None if name is None else self._by_domain.get(name)

    def for_address(self, email: str) -> Provider | None:
        local, at, domain = email.strip().rpartition("@")
        return self.for_domain(domain) if at and local else None


@functools.cache
def load_default() -> ProviderDatabase:
    """The presets shipped with bimmaild (read once; the database is never modified)."""
    text = resources.files("bimmaild.accounts").joinpath("providers.toml").read_text(encoding="utf-8")
    return ProviderDatabase.from_toml(text)
