"""Filling an account's server settings from a provider preset (R-B2).

Every setting the user gave wins; a preset only fills what is missing, field
by field.  The preset is the one named by ``provider``, else the one for the
address's domain.  Without a preset, missing hosts are an error that lists
what to supply.  Defaults that do not depend on the provider (security, then
the port that goes with it) come last.
"""

from __future__ import annotations

from typing import Any

from bimmaild.accounts import model
from bimmaild.accounts.providers import Provider, ProviderDatabase, login_for
from bimmaild.protocol.errors import InvalidParams

DEFAULT_SECURITY = {"imap": "ssl", "smtp": "starttls"}


def choose(db: ProviderDatabase, provider_id: str | None, email: str) -> Provider | None:
    if provider_id:
        provider = db.by_id(provider_id)
        if provider is None:
            raise InvalidParams(f"unknown provider {provider_id!r} (see: bimmailctl provider list)", field="provider")
        return provider
    return db.for_address(email)


def fill(flat: dict[str, Any], provider: Provider | None) -> list[str]:
    """Complete ``flat`` (settings by column) in place; return notes for the user."""
    notes: list[str] = []
    if provider is None:
        missing = [c for c in ("imap_host", "smtp_host") if not flat.get(c)]
        if missing:
            domain = str(flat.get("email", "")).rpartition("@")[2] or "this address"
            needed = ", ".join(model.field_of(c) for c in missing)
            raise InvalidParams(
                f"no provider preset for {domain}: give {needed} (with port and security), "
                "or choose a preset with provider (bimmailctl provider list)",
                field=model.field_of(missing[0]),
            )
    else:
        notes += _from_preset(flat, provider)
    for kind in ("imap", "smtp"):
        flat.setdefault(f"{kind}_security", None)
        if flat[f"{kind}_security"] is None:
            flat[f"{kind}_security"] = DEFAULT_SECURITY[kind]
        if flat.get(f"{kind}_port") is None:
            flat[f"{kind}_port"] = model.default_port(kind, flat[f"{kind}_security"])
    if flat.get("smtp_auth") is None:
        flat["smtp_auth"] = True
    return notes


def _from_preset(flat: dict[str, Any], provider: Provider) -> list[str]:
    filled: list[str] = []
    for kind, preset in (("imap", provider.imap), ("smtp", provider.smtp)):
        for key in ("host", "port", "security"):
            column = f"{kind}_{key}"
            if flat.get(column) is None:
                flat[column] = getattr(preset, key)
                filled.append(model.field_of(column))
    if flat.get("smtp_auth") is None:
        flat["smtp_auth"] = provider.smtp.auth
    if not flat.get("login") and not flat.get("separate_auth") and provider.login == "local_part":
        flat["login"] = login_for(provider, str(flat["email"]))
        filled.append("login")
    notes = []
    if filled:
        notes.append(
            f"settings from the {provider.name} preset ({provider.id}): "
            f"IMAP {provider.imap.host}:{provider.imap.port} {provider.imap.security}, "
            f"SMTP {provider.smtp.host}:{provider.smtp.port} {provider.smtp.security}"
        )
    notes += [f"{provider.name}: {hint}" for hint in provider.hints]
    if not provider.verified and provider.caveat:
        notes.append(f"{provider.name} preset not verified: {provider.caveat}")
    return notes
