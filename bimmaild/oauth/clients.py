"""Client registrations: which application id (and secret) bimmail signs in with, per issuer.

A provider only issues tokens to an application registered with it.  bimmail ships no client
id of its own (that would bind every user to one vendor's verification and quotas), so a user
or an administrator registers one and gives it here.  An administrator's registration
(``owner_uid`` -1) serves every user who has none of their own.  Client secrets go to the
secret backend, never to SQLite.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bimmaild.accounts.secrets import Secret, SecretBackend
from bimmaild.oauth.issuers import PRESETS, Issuer, endpoint
from bimmaild.protocol.errors import InvalidParams, NotFound
from bimmaild.store.db import Database

EVERY_USER = -1
_ID = re.compile(r"^[a-z0-9]+(?:[-_.][a-z0-9]+)*$")


@dataclass(frozen=True)
class Client:
    issuer: Issuer
    client_id: str
    secret_ref: str | None
    owner_uid: int

    def to_public(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer.id,
            "client_id": self.client_id,
            "client_secret_set": self.secret_ref is not None,
            "for_every_user": self.owner_uid == EVERY_USER,
            "preset": self.issuer.id in PRESETS,
            "endpoints": self.issuer.to_public(),
        }


def secret_key(secret_ref: str) -> str:
    return f"oauth-client/{secret_ref}"


class Clients:
    def __init__(self, db: Database, secrets: SecretBackend) -> None:
        self.db = db
        self.secrets = secrets

    def find(self, owner: int, issuer: str) -> Client | None:
        """The owner's registration for ``issuer``, else the one for every user."""
        rows = self.db.conn.execute(
            "SELECT * FROM oauth_clients WHERE issuer = ? AND owner_uid IN (?, ?) ORDER BY owner_uid = ?",
            (issuer, owner, EVERY_USER, EVERY_USER),
        ).fetchall()
        return _client(rows[0]) if rows else None

    def all(self, owner: int) -> list[Client]:
        rows = self.db.conn.execute(
            "SELECT * FROM oauth_clients WHERE owner_uid IN (?, ?) ORDER BY issuer, owner_uid = ?",
            (owner, EVERY_USER, EVERY_USER),
        ).fetchall()
        seen: set[str] = set()
        out = []
        for row in rows:
            if row["issuer"] not in seen:
                seen.add(row["issuer"])
                out.append(_client(row))
        return out

    async def secret(self, client: Client) -> Secret | None:
        return await self.secrets.get(secret_key(client.secret_ref)) if client.secret_ref else None

    async def set(self, owner: int, params: Mapping[str, Any]) -> Client:
        issuer_id = str(params["issuer"]).strip().lower()
        if not _ID.match(issuer_id):
            raise InvalidParams("issuer is a short name: lowercase letters, digits, '-', '_', '.'", field="issuer")
        urls = {key: params.get(key) for key in ("auth_url", "token_url", "device_url")}
        scopes = params.get("scopes")
        if issuer_id in PRESETS:
            given = [key for key, value in {**urls, "scopes": scopes}.items() if value]
            if given:
                raise InvalidParams(f"{issuer_id} is a preset issuer: its {given[0]} is known", field=given[0])
        else:
            for key in ("auth_url", "token_url"):
                if not urls[key]:
                    raise InvalidParams(f"a custom issuer needs {key}", field=key)
            for key, value in urls.items():
                if value:
                    urls[key] = endpoint(str(value), key)
            if not scopes:
                raise InvalidParams("a custom issuer needs the scopes mail access requires", field="scopes")
        client_id = str(params["client_id"]).strip()
        if not client_id:
            raise InvalidParams("client_id is empty", field="client_id")
        previous = self.db.conn.execute(
            "SELECT secret_ref FROM oauth_clients WHERE owner_uid = ? AND issuer = ?", (owner, issuer_id)
        ).fetchone()
        secret_ref = previous["secret_ref"] if previous else None
        if "client_secret" in params:
            if params["client_secret"]:
                secret_ref = secret_ref or uuid.uuid4().hex
                await self.secrets.put(secret_key(secret_ref), Secret(params["client_secret"]))
            elif secret_ref:
                await self.secrets.delete(secret_key(secret_ref))
                secret_ref = None
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self.db.transaction() as conn:
            conn.execute(
                """INSERT INTO oauth_clients (owner_uid, issuer, client_id, secret_ref, auth_url, token_url,
                   device_url, scopes, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (owner_uid, issuer) DO UPDATE SET client_id = excluded.client_id,
                   secret_ref = excluded.secret_ref, auth_url = excluded.auth_url, token_url = excluded.token_url,
                   device_url = excluded.device_url, scopes = excluded.scopes, updated_at = excluded.updated_at""",
                (owner, issuer_id, client_id, secret_ref, urls["auth_url"], urls["token_url"], urls["device_url"],
                 json.dumps(list(scopes)) if scopes else None, now, now),
            )  # fmt: skip
        row = self.db.conn.execute(
            "SELECT * FROM oauth_clients WHERE owner_uid = ? AND issuer = ?", (owner, issuer_id)
        ).fetchone()
        return _client(row)

    async def delete(self, owner: int, issuer: str) -> Client:
        row = self.db.conn.execute(
            "SELECT * FROM oauth_clients WHERE owner_uid = ? AND issuer = ?", (owner, issuer)
        ).fetchone()
        if row is None:
            raise NotFound(f"no OAuth2 client is registered for {issuer!r}", field="issuer")
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM oauth_clients WHERE id = ?", (row["id"],))
        if row["secret_ref"]:
            await self.secrets.delete(secret_key(row["secret_ref"]))
        return _client(row)


def _client(row: Any) -> Client:
    preset = PRESETS.get(row["issuer"])
    issuer = preset or Issuer(
        row["issuer"], row["issuer"], row["auth_url"], row["token_url"], row["device_url"],
        tuple(json.loads(row["scopes"] or "[]")),
    )  # fmt: skip
    return Client(issuer, row["client_id"], row["secret_ref"], row["owner_uid"])
