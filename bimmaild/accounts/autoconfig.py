"""Thunderbird's autoconfig format (clientConfig 1.1) read into a provider preset.

A custom preset can come from a provider's own ``config-v1.1.xml``
(https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat).
It goes through the same checks as the shipped presets (``providers._build``)
and is always marked unverified.  Nothing is fetched from the network: the
documents are files a site drops in its presets directory (``load_directory``).
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path
from typing import Any

from bimmaild.accounts.providers import Provider, _build

_SOCKET_TYPES = {"SSL": "ssl", "STARTTLS": "starttls", "plain": "none"}
_USERNAMES = {"%EMAILADDRESS%": "address", "%EMAILLOCALPART%": "local_part"}
_AUTHENTICATIONS = {"password-cleartext": "password", "password-encrypted": "password", "OAuth2": "oauth2"}


def _autoconfig_root(xml: bytes) -> ET.Element:
    try:
        text = xml.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("autoconfig: the document is not UTF-8") from None
    # No DTD at all: it is never needed by the format, and refusing it rules out entity expansion tricks.
    if "<!doctype" in text.lower() or "<!entity" in text.lower():
        raise ValueError("autoconfig: documents with a DOCTYPE or ENTITY declaration are refused")
    try:
        root = ET.fromstring(text)  # noqa: S314 - no DTD can reach the parser (checked above)
    except ET.ParseError as exc:
        raise ValueError(f"autoconfig: not well-formed XML ({exc})") from None
    if root.tag != "clientConfig" or root.get("version", "1.1") != "1.1":
        raise ValueError('autoconfig: the root element must be <clientConfig version="1.1">')
    return root


def _child_text(element: ET.Element, tag: str, where: str) -> str:
    text = (element.findtext(tag) or "").strip()
    if not text:
        raise ValueError(f"autoconfig: {where} has no <{tag}>")
    return text


def _autoconfig_server(provider: ET.Element, tag: str, kind: str) -> tuple[dict[str, Any], str | None, list[str]]:
    """The first server of this kind: its {host, port, security}, its login form and its auth methods.

    Only an SMTP server may omit <username> (login form None: the same as IMAP's).
    """
    server = provider.find(f"{tag}[@type='{kind}']")
    if server is None:
        raise ValueError(f'autoconfig: no <{tag} type="{kind}">')
    where = f'<{tag} type="{kind}">'
    host, port, socket_type = (_child_text(server, child, where) for child in ("hostname", "port", "socketType"))
    username = None if kind == "smtp" and server.find("username") is None else _child_text(server, "username", where)
    if "%" in host:
        raise ValueError(f"autoconfig: {where} host {host!r} depends on the address (placeholders are not supported)")
    if (
        not (port.isascii() and port.isdigit())
        or socket_type not in _SOCKET_TYPES
        or (username is not None and username not in _USERNAMES)
    ):
        raise ValueError(
            f"autoconfig: {where} needs a numeric port, socketType SSL/STARTTLS/plain and username"
            f" %EMAILADDRESS% or %EMAILLOCALPART% (got {port!r}, {socket_type!r}, {username!r})"
        )
    methods = [(el.text or "").strip() for el in server.findall("authentication")]
    if not methods:
        raise ValueError(f"autoconfig: {where} has no <authentication>")
    auth = list(dict.fromkeys(_AUTHENTICATIONS[m] for m in methods if m in _AUTHENTICATIONS))
    preset = {"host": host, "port": int(port), "security": _SOCKET_TYPES[socket_type]}
    return preset, None if username is None else _USERNAMES[username], auth


def _enable_hints(parent: ET.Element) -> list[str]:
    """The English <enable><instruction>s (found both under the root and under emailProvider), with their URL."""
    hints = []
    for enable in parent.findall("enable"):
        url = enable.get("visiturl")
        for instruction in enable.findall("instruction"):
            text = (instruction.text or "").strip()
            if text and instruction.get("lang", "en") == "en":
                hints.append(f"{text} ({url})" if url else text)
    return hints


def load_directory(directory: Path) -> tuple[list[Provider], list[str]]:
    """The custom presets of a directory: each ``*.xml`` an autoconfig document, its id the file's
    stem.  Returns them and a problem per file that could not be used (the others still count)."""
    found: list[Provider] = []
    problems: list[str] = []
    try:
        paths = sorted(directory.glob("*.xml"))
    except OSError as exc:
        return [], [f"{directory}: {exc.strerror}"]
    seen: set[str] = set()
    for path in paths:
        try:
            provider = parse_autoconfig(path.read_bytes(), provider_id=_slug(path.stem))
        except (OSError, ValueError) as exc:
            problems.append(f"{path}: {exc}")
            continue
        clash = seen & set(provider.domains)
        if clash:
            problems.append(f"{path}: domain {sorted(clash)[0]} is already in another custom preset")
            continue
        seen |= set(provider.domains)
        found.append(dataclasses.replace(provider, source=f"{path} ({provider.source})"))
    return found, problems


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "custom"


def parse_autoconfig(xml: bytes, *, provider_id: str | None = None) -> Provider:
    """A Provider from an autoconfig document (UTF-8), marked unverified; ValueError says what is missing.

    The id defaults to a slug of the emailProvider id; callers knowing the URL may
    ``dataclasses.replace`` the ``source``.  All <domain> entries become domains (the format does
    not tell MX domains apart).
    """
    root = _autoconfig_root(xml)
    provider = root.find("emailProvider")
    if provider is None:
        raise ValueError("autoconfig: no <emailProvider>")
    imap, login, auth = _autoconfig_server(provider, "incomingServer", "imap")
    smtp, smtp_login, smtp_auth = _autoconfig_server(provider, "outgoingServer", "smtp")
    if not auth:
        raise ValueError("autoconfig: the IMAP server offers no password or OAuth2 authentication")
    domains = [name for name in dict.fromkeys((el.text or "").strip() for el in provider.findall("domain")) if name]
    if not domains:
        raise ValueError("autoconfig: <emailProvider> lists no <domain>")
    hints = _enable_hints(root) + _enable_hints(provider)
    if smtp_login not in (None, login):
        hints.append(f"the SMTP login is the {'full address' if smtp_login == 'address' else 'part before @'}")
    raw_id = provider.get("id") or domains[0]
    table = {
        "id": provider_id or _slug(raw_id),
        "name": (provider.findtext("displayName") or "").strip() or raw_id,
        "domains": domains,
        "imap": imap,
        "smtp": {**smtp, "auth": bool(smtp_auth)},
        "login": login,
        "auth": auth,
        "stores_sent_copy": False,
        "hints": hints,
        "source": f"autoconfig document (emailProvider id {raw_id!r})",
        "last_checked": date.today(),
        "verified": False,
        "caveat": "read from an autoconfig document, not reviewed for bimmail",
    }
    return _build(table, "autoconfig")
