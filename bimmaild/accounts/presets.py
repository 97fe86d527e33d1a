"""Filling an account's server settings from a provider preset (R-B1, R-B2).

Every setting the user gave wins; a preset only fills what is missing.  The
preset is the one named by ``provider``, else the one for the address's
domain.  Without a preset, missing hosts are an error that lists what to
supply.

A port and its security are one choice, never filled independently: a
preset's port only comes with the preset's security.  A security given alone
takes the port that goes with it; a port given alone takes the security that
goes with it, or, at a preset, is refused when none is known (a guess would
send a password in clear or fail with an obscure TLS error).  A host the user
gives that is not the preset's means their own server for that kind: nothing
of it comes from the preset, and when both hosts are their own a preset found
by the address's domain is not used at all (a stored ``provider`` changes
behaviour, e.g. Gmail's "no Sent copy").

Sans-IO: ``account.add``, ``account.test`` and ``account.modify`` share these rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bimmaild.accounts import model
from bimmaild.accounts.providers import Provider, ProviderDatabase, ServerPreset, SmtpPreset, login_for
from bimmaild.protocol.errors import InvalidParams

Server = ServerPreset | SmtpPreset  # a preset's IMAP or SMTP server
KINDS = ("imap", "smtp")
DEFAULT_SECURITY = {"imap": "ssl", "smtp": "starttls"}
# The security a port is normally served with (the default ports read backwards); the ports of
# "none" are left out on purpose (25 is clear text or an opportunistic STARTTLS: guessing "none"
# there would send the password in clear).
USUAL_SECURITY = {
    (kind, port): security for (kind, security), port in model.DEFAULT_PORTS.items() if security != "none"
}


def choose(db: ProviderDatabase, provider_id: str | None, email: str) -> Provider | None:
    if provider_id:
        provider = db.by_id(provider_id)
        if provider is None:
            raise InvalidParams(f"unknown provider {provider_id!r} (see: bimmailctl provider list)", field="provider")
        return provider
    return db.for_address(email)


def port_for(kind: str, security: str, preset: Server | None = None) -> int:
    """The port that goes with ``security``: the preset's when it uses that security, else the usual one."""
    if preset is not None and preset.security == security:
        return preset.port
    return model.default_port(kind, security)


def security_for(kind: str, port: int, preset: Server | None = None) -> str | None:
    """The security that goes with ``port``: the preset's when it is its port, else the usual one, else None."""
    if preset is not None and preset.port == port:
        return preset.security
    return USUAL_SECURITY.get((kind, port))


def server_of(provider: Provider | None, kind: str) -> Server | None:
    """The preset's server of ``kind`` (IMAP or SMTP), if there is a preset."""
    if provider is None:
        return None
    return provider.imap if kind == "imap" else provider.smtp


def preset_at(provider: Provider | None, kind: str, host: str) -> Server | None:
    """The preset's server of ``kind`` when ``host`` is that server (else the user's own server)."""
    preset = server_of(provider, kind)
    return preset if preset is not None and same_host(host, preset) else None


def follow(flat: dict[str, Any], kind: str, current: tuple[int, str], preset: Server | None) -> str | None:
    """A change of a saved account's port or security alone brings the other along; returns the note.

    A new security moves a port that went with the old security (never a port the user
    chose); a port given alone takes the security that usually goes with it, unless the
    current security already goes with that port or nothing is known of it.
    """
    old_port, old_security = current
    port, security = flat.get(f"{kind}_port"), flat.get(f"{kind}_security")
    if security is not None and port is None and security != old_security:
        if old_port != port_for(kind, old_security, preset):
            return None
        flat[f"{kind}_port"] = port_for(kind, security, preset)
        return f"{kind}.port set to {flat[f'{kind}_port']} to match {kind}.security {security}"
    if port is not None and security is None and port != old_port:
        follows = security_for(kind, port, preset)
        if follows in (None, old_security) or port == port_for(kind, old_security, preset):
            return None
        flat[f"{kind}_security"] = follows
        return f"{kind}.security set to {follows} to match {kind}.port {port}"
    return None


def same_host(given: str, preset: Server) -> bool:
    """Whether a host the user typed names the preset's server (case, trailing dot and IDN aside)."""
    return _host_key(given) == _host_key(preset.host)


@dataclass
class _Filled:
    """What the preset and the pairing rules put into the settings, for the note to the user."""

    from_preset: list[str] = field(default_factory=list)  # "imap.host imap.gmail.com", …
    derived: list[str] = field(default_factory=list)  # "smtp.port 587 follows smtp.security starttls"
    not_used: list[str] = field(default_factory=list)  # why a server (or the preset) is not filled from it


def fill(flat: dict[str, Any], provider: Provider | None) -> tuple[Provider | None, list[str]]:
    """Complete ``flat`` (settings by column) in place.

    Returns the preset really used (None when the user's own servers replace it; that is
    what the account records) and notes for the user saying exactly what was filled.
    """
    served = _kinds_served(flat, provider)
    filled = _Filled()
    provider = _in_use(flat, provider, served, filled)
    if provider is None:
        _require_hosts(flat)
    for kind in KINDS:
        _fill_server(flat, kind, server_of(provider, kind) if kind in served else None, filled)
    _fill_auth_and_login(flat, provider if "smtp" in served else None, provider, filled)
    return provider, _notes(provider, filled)


def _in_use(flat: dict[str, Any], provider: Provider | None, served: set[str], filled: _Filled) -> Provider | None:
    """The preset, unless the user's own hosts replace both of its servers; say which ones it does not fill.

    A preset found by the address's domain is then dropped: its stored id would change behaviour
    (Gmail's "no Sent copy") for servers that are not its.  One named with ``provider`` is kept:
    the user says that is who serves the account (through a tunnel or a proxy, say).
    """
    if provider is None:
        return None
    if served:
        filled.not_used = [_own_server_note(flat, kind, provider) for kind in KINDS if kind not in served]
        return provider
    if flat.get("provider") == provider.id:
        filled.not_used.append(
            f"your own IMAP and SMTP servers: nothing filled from the {provider.name} preset; "
            f"provider {provider.id} kept as you named it"
        )
        return provider
    filled.not_used.append(f"your own IMAP and SMTP servers, not the {provider.name} preset's: it is not used")
    return None


def _fill_auth_and_login(
    flat: dict[str, Any], smtp_from: Provider | None, provider: Provider | None, filled: _Filled
) -> None:
    """SMTP authentication from the preset serving SMTP (else on); the preset's login form."""
    if flat.get("smtp_auth") is None:
        flat["smtp_auth"] = smtp_from.smtp.auth if smtp_from is not None else True
        if smtp_from is not None and not smtp_from.smtp.auth:
            filled.from_preset.append("smtp.auth off")
    if provider is None or provider.login != "local_part" or flat.get("login") or flat.get("separate_auth"):
        return
    flat["login"] = login_for(provider, str(flat["email"]))
    filled.from_preset.append(f"login {flat['login']}")


def _kinds_served(flat: dict[str, Any], provider: Provider | None) -> set[str]:
    """The kinds (imap, smtp) the preset may fill: those whose host is absent or the preset's."""
    served = set()
    for kind in KINDS:
        preset = server_of(provider, kind)
        host = flat.get(f"{kind}_host")
        if preset is not None and (host is None or same_host(str(host), preset)):
            served.add(kind)
    return served


def _require_hosts(flat: dict[str, Any]) -> None:
    """Without a preset, both hosts must be given: say which ones are missing."""
    missing = [c for c in ("imap_host", "smtp_host") if not flat.get(c)]
    if missing:
        domain = str(flat.get("email", "")).rpartition("@")[2] or "this address"
        needed = ", ".join(model.field_of(c) for c in missing)
        raise InvalidParams(
            f"no provider preset for {domain}: give {needed} (with port and security), "
            "or choose a preset with provider (bimmailctl provider list)",
            field=model.field_of(missing[0]),
        )


def _fill_server(flat: dict[str, Any], kind: str, preset: Server | None, filled: _Filled) -> None:
    """Host, then the port/security pair of one kind; note what the preset gave."""
    taken: dict[str, object] = {}
    if preset is not None and flat.get(f"{kind}_host") is None:
        flat[f"{kind}_host"] = taken["host"] = preset.host
    taken |= _fill_pair(flat, kind, preset, filled)
    if list(taken) == ["host", "port", "security"]:
        filled.from_preset.append(f"{kind.upper()} {taken['host']}:{taken['port']} {taken['security']}")
    else:
        filled.from_preset += [f"{kind}.{key} {value}" for key, value in taken.items()]


def _fill_pair(flat: dict[str, Any], kind: str, preset: Server | None, filled: _Filled) -> dict[str, object]:
    """Complete port and security as one choice; return what was taken from the preset."""
    port, security = f"{kind}_port", f"{kind}_security"
    given_port, given_security = flat.get(port), flat.get(security)
    if given_port is not None and given_security is not None:
        return {}
    if given_security is not None:
        flat[port] = port_for(kind, given_security, preset)
        if preset is not None:
            filled.derived.append(f"{kind}.port {flat[port]} follows {kind}.security {given_security}")
    elif given_port is not None:
        flat[security] = _security_of_port(kind, given_port, preset)
        if preset is not None or flat[security] != DEFAULT_SECURITY[kind]:  # say what the documents do not
            filled.derived.append(f"{kind}.security {flat[security]} follows {kind}.port {given_port}")
    elif preset is not None:
        flat[port], flat[security] = preset.port, preset.security
        return {"port": preset.port, "security": preset.security}
    else:
        flat[security] = DEFAULT_SECURITY[kind]
        flat[port] = model.default_port(kind, flat[security])
    return {}


def _security_of_port(kind: str, port: int, preset: Server | None) -> str:
    """The security for a port given alone; refused at a preset when nothing says which one."""
    security = security_for(kind, port, preset)
    if security is not None:
        return security
    if preset is None:
        return DEFAULT_SECURITY[kind]  # the user's own server: the documented default
    raise InvalidParams(
        f"{kind}.port {port} is neither a usual {kind.upper()} port nor the preset's ({preset.port} "
        f"with {preset.security}): give {kind}.security too (ssl, starttls or none)",
        field=f"{kind}.security",
    )


def _notes(provider: Provider | None, filled: _Filled) -> list[str]:
    """Which preset filled what (only what it filled), why a kind was not filled, and its hints."""
    notes = list(filled.not_used)
    if provider is None:
        return notes + filled.derived
    if filled.from_preset:
        notes.append(f"settings from the {provider.name} preset ({provider.id}): {', '.join(filled.from_preset)}")
    notes += filled.derived
    notes += [f"{provider.name}: {hint}" for hint in provider.hints]
    if not provider.verified and provider.caveat:
        notes.append(f"{provider.name} preset not verified: {provider.caveat}")
    return notes


def _own_server_note(flat: dict[str, Any], kind: str, provider: Provider) -> str:
    preset = server_of(provider, kind)
    assert preset is not None
    return (
        f"{kind}.host {flat[f'{kind}_host']} is not the {provider.name} preset's ({preset.host}): "
        f"no {kind.upper()} setting taken from it"
    )


def _host_key(host: str) -> str:
    """A host name in the form two names are compared in (the preset's hosts are valid ASCII)."""
    name = host.strip().rstrip(".").strip("[]").lower()
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name
