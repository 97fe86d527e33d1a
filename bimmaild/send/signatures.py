"""Each account's ordered list of signatures (R-F1, R-F2, R-G1).

Rules kept by this module and by the store together: names are unique per
account (case-insensitive); positions are dense (1…n, reordering never leaves
holes); at most one signature is the default (a partial unique index), and
deleting it leaves none.  A rich signature is sanitised when it is saved (no
scripts, no remote content), so what is stored is what is sent; its images are
stored with it and sent as inline parts.
"""

from __future__ import annotations

import mimetypes
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bimmaild.accounts import validation
from bimmaild.accounts.service import AccountService
from bimmaild.protocol.errors import Conflict, InvalidParams, NotFound
from bimmaild.send.compose import Signature, SignatureImage, signature_parts
from bimmaild.send.sanitize import sanitize_html
from bimmaild.store.db import Database

MAX_IMAGE = 512 * 1024
MAX_IMAGES_TOTAL = 2 * 1024 * 1024
MAX_BODY = 64 * 1024
IMAGE_TYPES = {"image/png": b"\x89PNG", "image/jpeg": b"\xff\xd8", "image/gif": b"GIF8", "image/webp": b"RIFF"}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def check_images(images: Sequence[dict[str, Any]]) -> list[SignatureImage]:
    """Images of a rich signature: real images, of a sensible size, each named once."""
    out: list[SignatureImage] = []
    total = 0
    for i, image in enumerate(images):
        name = validation.text(image["filename"], f"images[{i}].filename", what="image file name")
        data = bytes(image["data"])
        kind = image.get("content_type") or mimetypes.guess_type(name)[0] or ""
        if kind not in IMAGE_TYPES or not data.startswith(IMAGE_TYPES[kind]):
            raise InvalidParams(f"{name}: not a PNG, JPEG, GIF or WebP image", field=f"images[{i}]")
        if len(data) > MAX_IMAGE:
            raise InvalidParams(
                f"{name}: {len(data)} bytes, images are at most {MAX_IMAGE} bytes", field=f"images[{i}]"
            )
        total += len(data)
        if any(o.filename == name for o in out):
            raise InvalidParams(f"two images named {name!r}", field=f"images[{i}]")
        out.append(SignatureImage(name, kind, data))
    if total > MAX_IMAGES_TOTAL:
        raise InvalidParams(f"the images weigh {total} bytes; at most {MAX_IMAGES_TOTAL} in all", field="images")
    return out


class Signatures:
    def __init__(self, db: Database, accounts: AccountService) -> None:
        self.db = db
        self.accounts = accounts

    # -- reading ---------------------------------------------------------------

    def rows(self, account_id: int) -> list[sqlite3.Row]:
        return self.db.conn.execute(
            "SELECT * FROM signatures WHERE account_id = ? ORDER BY position", (account_id,)
        ).fetchall()

    def row(self, account_id: int, name: str, field: str = "name") -> sqlite3.Row:
        found: sqlite3.Row | None = self.db.conn.execute(
            "SELECT * FROM signatures WHERE account_id = ? AND name = ?", (account_id, name.strip())
        ).fetchone()
        if found is None:
            raise NotFound(f"no signature named {name!r} for this account", field=field)
        return found

    def load(self, account_id: int, name: str | None) -> Signature | None:
        """The named signature, or the account's default one (None when there is none)."""
        if name is None:
            row = self.db.conn.execute(
                "SELECT * FROM signatures WHERE account_id = ? AND is_default = 1", (account_id,)
            ).fetchone()
            if row is None:
                return None
        else:
            row = self.row(account_id, name, field="signature")
        return Signature(row["name"], row["kind"], row["body"], self._images(row["id"]))

    def _images(self, signature_id: int) -> tuple[SignatureImage, ...]:
        images = self.db.conn.execute(
            "SELECT filename, content_type, data FROM signature_images WHERE signature_id = ? ORDER BY id",
            (signature_id,),
        ).fetchall()
        return tuple(SignatureImage(*i) for i in images)

    def public(self, row: sqlite3.Row) -> dict[str, Any]:
        images = self.db.conn.execute(
            "SELECT filename, content_type, length(data) FROM signature_images WHERE signature_id = ? ORDER BY id",
            (row["id"],),
        ).fetchall()
        return {
            "name": row["name"],
            "kind": row["kind"],
            "body": row["body"],
            "position": row["position"],
            "default": bool(row["is_default"]),
            "images": [{"filename": f, "content_type": t, "size": n} for f, t, n in images],
            "updated_at": row["updated_at"],
        }

    def listing(self, ref: str | int, owner: int | None = None) -> dict[str, Any]:
        account = self.accounts.find(ref, owner)
        return {"account": account.name, "signatures": [self.public(r) for r in self.rows(account.id)]}

    def preview(self, ref: str | int, name: str, owner: int | None = None) -> dict[str, Any]:
        """R-G1: the signature exactly as a sent message carries it."""
        account = self.accounts.find(ref, owner)
        signature = self.load(account.id, name)
        assert signature is not None
        return {"account": account.name, "name": signature.name, **signature_parts(signature, _domain(account.email))}

    # -- changing -------------------------------------------------------------

    def add(self, ref: str | int, params: dict[str, Any], owner: int | None = None) -> dict[str, Any]:
        account = self.accounts.find(ref, owner)
        name = validation.text(params["name"], "name", what="signature name")
        self._free(account.id, name, None)
        content = _content(params)
        if content is None:
            raise InvalidParams("give the signature's text or html", field="text")
        kind, body = content
        images = check_images(params.get("images", []))
        body = _clean(kind, body, images)
        with self.db.transaction() as conn:
            position = len(self.rows(account.id)) + 1
            now = _now()
            cur = conn.execute(
                "INSERT INTO signatures (account_id, name, kind, body, position, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (account.id, name, kind, body, position, now, now),
            )
            assert cur.lastrowid is not None
            _store_images(conn, cur.lastrowid, images)
            if params.get("default"):
                _make_default(conn, account.id, cur.lastrowid)
        return self.listing(account.id)

    def modify(self, ref: str | int, params: dict[str, Any], owner: int | None = None) -> dict[str, Any]:
        account = self.accounts.find(ref, owner)
        row = self.row(account.id, params["name"])
        changes: dict[str, Any] = {}
        if params.get("new_name") is not None:
            changes["name"] = validation.text(params["new_name"], "new_name", what="signature name")
            self._free(account.id, changes["name"], row["id"])
        content = _content(params)
        images = check_images(params["images"]) if params.get("images") is not None else None
        if content is not None or images is not None:
            kind, body = content or (row["kind"], row["body"])
            current = images if images is not None else self._images(row["id"])
            changes.update(kind=kind, body=_clean(kind, body, current))
        with self.db.transaction() as conn:
            if changes:
                sets = ", ".join(f"{k} = ?" for k in changes)
                query = f"UPDATE signatures SET {sets}, updated_at = ? WHERE id = ?"  # noqa: S608  # column names are ours
                conn.execute(query, (*changes.values(), _now(), row["id"]))
            if images is not None:
                conn.execute("DELETE FROM signature_images WHERE signature_id = ?", (row["id"],))
                _store_images(conn, row["id"], images)
            if params.get("default") is not None:
                if params["default"]:
                    _make_default(conn, account.id, row["id"])
                else:
                    conn.execute("UPDATE signatures SET is_default = 0 WHERE id = ?", (row["id"],))
        return self.listing(account.id)

    def delete(self, ref: str | int, name: str, owner: int | None = None) -> dict[str, Any]:
        account = self.accounts.find(ref, owner)
        row = self.row(account.id, name)
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM signatures WHERE id = ?", (row["id"],))
            _renumber(conn, account.id)
        return {**self.listing(account.id), "default_cleared": bool(row["is_default"])}

    def move(
        self, ref: str | int, name: str, direction: str | None, position: int | None, owner: int | None = None
    ) -> dict[str, Any]:
        account = self.accounts.find(ref, owner)
        row = self.row(account.id, name)
        order = [r["id"] for r in self.rows(account.id)]
        index = order.index(row["id"])
        if position is not None:
            target = min(max(position, 1), len(order)) - 1
        elif direction in ("up", "down"):
            target = max(0, index - 1) if direction == "up" else min(len(order) - 1, index + 1)
        else:
            raise InvalidParams("give direction up or down, or a position", field="direction")
        order.insert(target, order.pop(index))
        with self.db.transaction() as conn:
            for i, signature_id in enumerate(order, start=1):
                conn.execute("UPDATE signatures SET position = ? WHERE id = ?", (i, signature_id))
        return self.listing(account.id)

    def set_default(self, ref: str | int, name: str | None, owner: int | None = None) -> dict[str, Any]:
        account = self.accounts.find(ref, owner)
        with self.db.transaction() as conn:
            if name is None:
                conn.execute("UPDATE signatures SET is_default = 0 WHERE account_id = ?", (account.id,))
            else:
                _make_default(conn, account.id, self.row(account.id, name)["id"])
        return self.listing(account.id)

    def _free(self, account_id: int, name: str, own_id: int | None) -> None:
        row = self.db.conn.execute(
            "SELECT id, name FROM signatures WHERE account_id = ? AND name = ?", (account_id, name)
        ).fetchone()
        if row is not None and row["id"] != own_id:
            raise Conflict(f"this account already has a signature named {row['name']!r}", field="name")


def _content(params: dict[str, Any]) -> tuple[str, str] | None:
    if params.get("text") is not None and params.get("html") is not None:
        raise InvalidParams("a signature is text or html, not both", field="html")
    if params.get("html") is not None:
        return "html", params["html"]
    if params.get("text") is not None:
        return "text", params["text"]
    return None


def _clean(kind: str, body: str, images: Sequence[SignatureImage]) -> str:
    if len(body) > MAX_BODY:
        raise InvalidParams(f"the signature is longer than {MAX_BODY} characters", field=kind)
    if kind == "text" and images:  # stored but never sent: a plain signature cannot show them
        raise InvalidParams(
            "images go with an HTML signature; a plain-text one cannot show them (give html, or no images)",
            field="images",
        )
    if kind == "html":
        return sanitize_html(body, [i.filename for i in images])
    return body.rstrip("\n")


def _store_images(conn: sqlite3.Connection, signature_id: int, images: Sequence[SignatureImage]) -> None:
    conn.executemany(
        "INSERT INTO signature_images (signature_id, filename, content_type, data) VALUES (?, ?, ?, ?)",
        [(signature_id, i.filename, i.content_type, i.data) for i in images],
    )


def _make_default(conn: sqlite3.Connection, account_id: int, signature_id: int) -> None:
    conn.execute("UPDATE signatures SET is_default = 0 WHERE account_id = ?", (account_id,))
    conn.execute("UPDATE signatures SET is_default = 1 WHERE id = ?", (signature_id,))


def _renumber(conn: sqlite3.Connection, account_id: int) -> None:
    ids = [
        r[0] for r in conn.execute("SELECT id FROM signatures WHERE account_id = ? ORDER BY position", (account_id,))
    ]
    for i, signature_id in enumerate(ids, start=1):
        conn.execute("UPDATE signatures SET position = ? WHERE id = ?", (i, signature_id))


def _domain(email: str) -> str:
    return email.rpartition("@")[2] or "localhost"
