"""Deterministic generator of a realistic mailbox, written straight into a Maildir.

The initial-sync benchmark needs about 1 GB of mail (20,000 messages) that looks like a real
mailbox to every client: a size mix of short text/plain mails, HTML multipart/alternative
newsletters and messages with attachments from 10 KB to 2 MB (about 50 KB on average), French
names and subjects as RFC 2047 encoded words, RFC 2231 attachment names, Message-ID, Date,
Received and DKIM headers.  The same seed gives byte-identical messages.

Why messages are assembled from bytes instead of built with the ``email`` library: building and
flattening an ``EmailMessage`` per message costs (measured here) 1.1 ms for a short text mail,
3.5 ms with an HTML alternative and 70 ms with a 2 MB attachment: more than a minute for 20,000
messages of this mix.  Everything that library would compute (encoded words, quoted-printable
text, base64 lines) is computed once per run here, and each message is a join of header lines and
slices of those pre-encoded buffers: 20,000 messages (1.05 GB) take 3 to 6 s here, mostly file
creation in the kernel.

Messages go straight into a Dovecot user's Maildir (``ImapUser.folder_dir``), as an MTA delivers:
written in ``tmp/``, renamed into ``cur/`` with ``:2,S`` (seen; some also flagged or answered) or
into ``new/`` for the newest ones.  File names carry ``S=`` (size) and ``W=`` (size with CRLF),
as Dovecot's own names do, so the server does not have to compute them.  One chown of the tree at
the end hands it to the mail user.

Standalone, for a look at the messages or the generation time::

    python benchmarks/mailgen.py --messages 20000 --out /some/new/dir
"""

from __future__ import annotations

import argparse
import base64
import bisect
import os
import quopri
import random
import sys
import textwrap
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.header import Header
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.servers.dovecot import ImapUser

FIRST_NAMES = (
    "François", "Hélène", "Zoé", "Jérôme", "Cécile", "Noël", "Loïc", "Amélie", "Gaëlle", "Benoît",
    "Chloé", "Stéphane", "Élodie", "Thérèse", "Raphaël", "Anaïs", "Maëlle", "Joël", "Inès", "Frédéric",
)  # fmt: skip
LAST_NAMES = (
    "Lefèvre", "Bérard", "Duchêne", "Mercier", "Gérard", "Lemaître", "Fontaine", "Châtelain",
    "Rivière", "Barbé", "Müller", "Núñez", "Faure", "Brûlé", "Dupré", "Prévost",
)  # fmt: skip
DOMAINS = ("example.fr", "mairie-example.fr", "atelier-example.com", "asso-example.org", "example.net")
SUBJECTS = (
    "Réunion de l'équipe — ordre du jour",
    "Facture n° 2024-118 : règlement reçu",
    "Devis pour la rénovation de la façade",
    "Compte rendu du comité de pilotage",
    "Vos congés d'été : dates à confirmer",
    "Photos du week-end à Chamonix ⛰",
    "Invitation : pot de départ de Noël",
    "Mise à jour de sécurité 🔒 à appliquer avant vendredi",
    "Présentation trimestrielle (version révisée)",
    "[liste-dev] Problème d'encodage des en-têtes",
    "Contrat signé – pièces jointes",
    "Lettre d'information n° 42 : les nouveautés de l'été",
    "Relevé de compte du mois de décembre",
    "Planning des astreintes — février",
)
PREFIXES = ("", "", "", "Re: ", "RE: ", "Fwd: ", "TR: ")
SENTENCES = (
    "Je vous prie de trouver ci-joint le document évoqué lors de notre échange téléphonique.",
    "La réunion est déplacée à jeudi prochain, même heure, salle Émile-Zola au deuxième étage.",
    "Merci de vérifier les éléments chiffrés avant la présentation au conseil d'administration.",
    "Nous avons bien reçu votre règlement ; la facture correspondante est désormais soldée.",
    "Pourriez-vous me confirmer vos disponibilités pour la semaine du 14 ?",
    "Le prestataire propose une intervention le matin, entre 8 h et 10 h, si cela vous convient.",
    "À noter : le bâtiment sera fermé pendant les congés de fin d'année.",
    "Les photos sont très réussies, surtout celles prises au lever du soleil près du glacier.",
    "Voici le compte rendu rédigé par Hélène, avec les décisions et la liste des actions à mener.",
    "N'hésitez pas à me recontacter si vous avez la moindre question ou remarque.",
    "Le budget prévisionnel tient compte des hausses de tarifs annoncées par le fournisseur.",
    "Cette mise à jour corrige une faille de sécurité ; elle doit être appliquée sans tarder.",
    "Bonne journée, et encore merci pour votre réactivité.",
    "Côté planning, rien ne change pour l'instant : on garde l'échéance de la fin du trimestre.",
    "Désolé pour la réponse tardive, j'étais en déplacement toute la semaine dernière.",
    "Le fichier est un peu lourd ; dites-moi s'il n'arrive pas et je le déposerai sur le partage.",
)  # fmt: skip
ATTACHMENTS = (
    ("application/pdf", "Facture n°118 – règlement.pdf"),
    ("image/jpeg", "Photo été Chamonix.jpg"),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "Compte-rendu réunion.docx"),
    ("application/pdf", "Relevé de comptes décembre.pdf"),
    ("application/vnd.openxmlformats-officedocument.presentationml.presentation", "Présentation T3.pptx"),
    ("image/png", "Capture d'écran.png"),
    ("application/zip", "Pièces justificatives.zip"),
)
# Newsletters carry a few kB of inline CSS before the first word of text.
STYLE = "".join(
    f".c{k} {{ font-family: Helvetica, Arial; color: #33{k:02d}44; margin: 0 0 12px 0; }}\n" for k in range(60)
)
HTML_HEAD = (
    '<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8"><style>\n'
    + STYLE
    + '</style></head><body><table role="presentation" width="100%"><tr><td>\n'
)
HTML_TAIL = '</td></tr></table><p class="c1">Se désinscrire · Mentions légales · Nous écrire</p></body></html>\n'

KIB = 1024
# (kind, probability), calibrated so that 20,000 messages are about 1.05 GB; sizes are drawn per kind.
KINDS = (("plain", 0.575), ("html", 0.33), ("attachments", 0.095))
# Decoded attachment sizes: most are small, a few are large (up to 2 MB).
ATTACHMENT_SIZES = ((0.45, 10 * KIB, 60 * KIB), (0.30, 60 * KIB, 250 * KIB), (0.18, 250 * KIB, 800 * KIB),
                    (0.07, 800 * KIB, 2048 * KIB))  # fmt: skip
B64_LINE = 76  # characters per base64 line, 57 decoded bytes
ANCHOR = datetime(2025, 6, 2, 9, 30, tzinfo=timezone(timedelta(hours=2)))
SPAN = timedelta(days=3 * 365)


@dataclass(frozen=True)
class Mailbox:
    """What was generated: ``wire_bytes`` is what IMAP sends (CRLF), ``file_bytes`` what is on disk (LF)."""

    messages: int
    file_bytes: int
    wire_bytes: int
    per_folder: dict[str, int]
    seconds: float


def _encode_header(value: str, maxlinelen: int = 76) -> str:
    """RFC 2047 encoded words, folded as a mail client folds them (the name makes room for 'Subject: ')."""
    if value.isascii():
        return value
    return Header(value, "utf-8", header_name="Subject").encode(maxlinelen=maxlinelen, linesep="\n")


def _paragraphs(rng: random.Random, total: int) -> list[str]:
    """French paragraphs of 2 to 6 sentences, wrapped at 72 columns, about ``total`` characters."""
    out: list[str] = []
    size = 0
    while size < total:
        text = " ".join(rng.choice(SENTENCES) for _ in range(rng.randint(2, 6)))
        out.append(textwrap.fill(text, 72) + "\n\n")
        size += len(out[-1])
    return out


@dataclass
class _Sliceable:
    """A buffer cut at safe boundaries (paragraph ends, base64 line ends): slices stay valid encodings."""

    data: bytes
    cuts: list[int] = field(default_factory=list)

    @classmethod
    def join(cls, pieces: Sequence[bytes]) -> _Sliceable:
        cuts = [0]
        for piece in pieces:
            cuts.append(cuts[-1] + len(piece))
        return cls(b"".join(pieces), cuts)

    def take(self, rng: random.Random, size: int) -> bytes:
        size = min(size, len(self.data) - 1)
        start = self.cuts[bisect.bisect_right(self.cuts, rng.randrange(len(self.data) - size)) - 1]
        end = self.cuts[min(bisect.bisect_left(self.cuts, start + size), len(self.cuts) - 1)]
        return self.data[start : max(end, self.cuts[bisect.bisect_right(self.cuts, start)])]


class _Material:
    """Everything expensive, encoded once per seed: names, subjects, text, HTML and base64 buffers."""

    def __init__(self, rng: random.Random) -> None:
        self.people: list[tuple[str, str]] = []
        for first in FIRST_NAMES:
            for last in LAST_NAMES[: rng.randint(3, len(LAST_NAMES))]:
                local = _ascii(f"{first}.{last}").lower()
                self.people.append((_encode_header(f"{first} {last}"), f"{local}@{rng.choice(DOMAINS)}"))
        self.subjects = [_encode_header(prefix + subject) for subject in SUBJECTS for prefix in PREFIXES]
        paragraphs = _paragraphs(rng, 600 * KIB)
        self.text_8bit = _Sliceable.join([p.encode() for p in paragraphs])
        self.text_qp = _Sliceable.join([quopri.encodestring(p.encode()) for p in paragraphs])
        self.html_qp = _Sliceable.join([quopri.encodestring(_html(rng, p).encode()) for p in paragraphs])
        self.html_head = quopri.encodestring(HTML_HEAD.encode())
        self.html_tail = quopri.encodestring(HTML_TAIL.encode())
        raw = base64.encodebytes(rng.randbytes(4 * 1024 * KIB))  # 76-character lines, each a safe cut
        self.b64 = _Sliceable(raw, list(range(0, len(raw) + 1, B64_LINE + 1)))
        self.attachments = [(ctype, _encode_header(name, 998), _rfc2231(name)) for ctype, name in ATTACHMENTS]


def _ascii(text: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _rfc2231(name: str) -> str:
    return "utf-8''" + urllib.parse.quote(name, safe="")


def _html(rng: random.Random, paragraph: str) -> str:
    body = paragraph.strip().replace("\n", " ").replace("&", "&amp;").replace("<", "&lt;")
    return f'<p class="c{rng.randrange(60)}" style="line-height: 1.4;">{body}</p>\n'


def _log_uniform(rng: random.Random, low: int, high: int) -> int:
    return int(low * (high / low) ** rng.random())


class _Builder:
    """One message at a time, from the shared material; the only per-message work is joining bytes."""

    def __init__(self, seed: int, count: int, recipient: str) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - reproducible test data, not cryptography
        self.material = _Material(self.rng)
        self.seed, self.count, self.recipient = seed, count, recipient
        self.me = _encode_header("Camille Rousseau") + f" <{recipient}>"

    def message(self, index: int) -> tuple[bytes, datetime]:
        rng = self.rng
        date = ANCHOR - SPAN * ((self.count - index) / self.count) + timedelta(seconds=rng.randrange(-3000, 3000))
        kind = rng.choices([k for k, _ in KINDS], [w for _, w in KINDS])[0]
        content, body = {"plain": self._plain, "html": self._html, "attachments": self._attachments}[kind](index)
        return (self._headers(index, date) + content + "\n").encode() + body, date

    def _headers(self, index: int, date: datetime) -> str:
        rng, people = self.rng, self.material.people
        name, addr = rng.choice(people)
        domain = addr.split("@")[1]
        stamp, epoch = format_datetime(date), int(date.timestamp())
        lines = [
            f"Return-Path: <{addr}>",
            f"Delivered-To: {self.recipient}",
            f"Received: from mx.{domain} (mx.{domain} [198.51.100.{rng.randrange(1, 255)}])\n"
            f"\tby mx.example.org (Postfix) with ESMTPS id {rng.getrandbits(40):010X}\n"
            f"\tfor <{self.recipient}>; {stamp}",
        ]
        if rng.random() < 0.6:
            sig = self.material.b64.take(rng, 4 * (B64_LINE + 1)).decode().replace("\n", "\n\t ")
            lines.append(
                f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={domain}; s=mail;\n\tt={epoch};"
                f" h=from:to:subject:date:message-id:mime-version;\n\tb={sig.rstrip()}"
            )
        lines += [f"Message-ID: <{epoch:x}.{index:06d}.{self.seed}@{domain}>", f"Date: {stamp}"]
        lines += [f"From: {name} <{addr}>", f"To: {self.me}"]
        if rng.random() < 0.2:
            cc_name, cc_addr = rng.choice(people)
            lines.append(f"Cc: {cc_name} <{cc_addr}>")
        lines.append("Subject: " + rng.choice(self.material.subjects))
        if index > 0 and rng.random() < 0.25:
            lines.append(f"In-Reply-To: <{epoch - 86400:x}.{rng.randrange(index):06d}.{self.seed}@{domain}>")
        lines.append("MIME-Version: 1.0")
        return "\n".join(lines) + "\n"

    def _text(self, low: int, high: int, qp: bool) -> bytes:
        buffer = self.material.text_qp if qp else self.material.text_8bit
        return buffer.take(self.rng, _log_uniform(self.rng, low, high)) + b"-- \nCamille Rousseau\n"

    def _plain(self, index: int) -> tuple[str, bytes]:
        qp = self.rng.random() < 0.5
        encoding = "quoted-printable" if qp else "8bit"
        content = f"Content-Type: text/plain; charset=utf-8; format=flowed\nContent-Transfer-Encoding: {encoding}\n"
        return content, self._text(300, 12 * KIB, qp)

    def _html(self, index: int, tag: str = "alt") -> tuple[str, bytes]:
        boundary = f"=_{tag}_{self.seed}_{index}"
        html = self.material.html_qp.take(self.rng, _log_uniform(self.rng, 4 * KIB, 90 * KIB))
        body = b"".join((
            f"This is a multi-part message in MIME format.\n\n--{boundary}\n".encode(),
            b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n",
            self._text(500, 6 * KIB, qp=True),
            f"\n--{boundary}\nContent-Type: text/html; charset=utf-8\n".encode(),
            b"Content-Transfer-Encoding: quoted-printable\n\n",
            self.material.html_head, html, self.material.html_tail,
            f"\n--{boundary}--\n".encode(),
        ))  # fmt: skip
        return f'Content-Type: multipart/alternative; boundary="{boundary}"\n', body

    def _attachments(self, index: int) -> tuple[str, bytes]:
        rng, boundary = self.rng, f"=_mixed_{self.seed}_{index}"
        if rng.random() < 0.5:
            first_content, first_body = self._html(index)
        else:
            first_content, first_body = self._plain(index)
        preamble = f"This is a multi-part message in MIME format.\n\n--{boundary}\n{first_content}\n"
        parts = [preamble.encode(), first_body]
        for extra in range(rng.choices((1, 2, 3), (0.7, 0.22, 0.08))[0]):
            ctype, encoded_name, rfc2231_name = rng.choice(self.material.attachments)
            # Only the first attachment may be a big one: a message stays under about 2.8 MB.
            sizes = ATTACHMENT_SIZES if extra == 0 else ATTACHMENT_SIZES[:2]
            _, low, high = rng.choices(sizes, [p for p, _, _ in sizes])[0]
            size = _log_uniform(rng, low, high)
            parts.append(
                f'\n--{boundary}\nContent-Type: {ctype}; name="{encoded_name}"\n'
                f"Content-Disposition: attachment; filename*={rfc2231_name}\n"
                f"Content-Transfer-Encoding: base64\n\n".encode()
            )
            parts.append(self.material.b64.take(rng, (size + 56) // 57 * (B64_LINE + 1)))
        parts.append(f"\n--{boundary}--\n".encode())
        return f'Content-Type: multipart/mixed; boundary="{boundary}"\n', b"".join(parts)


def maildirpp(root: Path) -> Callable[[str], Path]:
    """The Maildir++ layout of ``ImapUser.folder_dir`` for a plain directory: INBOX is the root."""
    return lambda folder: root if folder == "INBOX" else root / ("." + folder.replace("/", "."))


def _flags(rng: random.Random) -> str:
    draw = rng.random()
    return "FS" if draw < 0.04 else "RS" if draw < 0.16 else "S"


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def write_maildir(
    folder_dir: Callable[[str], Path],
    count: int,
    *,
    seed: int = 1,
    folders: Sequence[str] = ("INBOX",),
    recipient: str = "camille.rousseau@example.org",
) -> Mailbox:
    """Write ``count`` messages, spread over ``folders`` (the first gets 4 shares, the others 1 each)."""
    started = time.perf_counter()
    builder = _Builder(seed, count, recipient)
    rng = builder.rng
    dirs = {folder: str(folder_dir(folder)) for folder in folders}
    for base in dirs.values():
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(base, sub), exist_ok=True)
    weights = [4] + [1] * (len(folders) - 1)
    per_folder = dict.fromkeys(folders, 0)
    file_bytes = wire_bytes = 0
    for index in range(count):
        data, date = builder.message(index)
        folder = rng.choices(folders, weights)[0] if len(folders) > 1 else folders[0]
        per_folder[folder] += 1
        wire = len(data) + data.count(b"\n")
        file_bytes, wire_bytes = file_bytes + len(data), wire_bytes + wire
        name = f"{int(date.timestamp())}.M{index}P{seed}.bench,S={len(data)},W={wire}"
        tmp = os.path.join(dirs[folder], "tmp", name)
        _write(tmp, data)
        recent = index >= count - max(1, count // 50)  # the newest 2 %: unread, still in new/
        target = os.path.join(dirs[folder], "new", name) if recent else f"{dirs[folder]}/cur/{name}:2,{_flags(rng)}"
        os.rename(tmp, target)
    return Mailbox(count, file_bytes, wire_bytes, per_folder, time.perf_counter() - started)


def populate(user: ImapUser, count: int, *, seed: int = 1, folders: Sequence[str] = ("INBOX",)) -> Mailbox:
    """Fill a test Dovecot user's Maildir, then hand the tree to the mail user in one chown."""
    started = time.perf_counter()
    mailbox = write_maildir(user.folder_dir, count, seed=seed, folders=folders, recipient=user.login)
    user.server.chown_tree(user.home)
    return Mailbox(mailbox.messages, mailbox.file_bytes, mailbox.wire_bytes, mailbox.per_folder,
                   time.perf_counter() - started)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a deterministic, realistic mailbox into a new Maildir++ tree.")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--folders", nargs="+", default=["INBOX"], help="first folder gets 4 shares, others 1")
    parser.add_argument("--out", type=Path, required=True, help="directory to create (must not exist)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True)
    mailbox = write_maildir(maildirpp(args.out), args.messages, seed=args.seed, folders=args.folders)
    print(
        f"{mailbox.messages:,} messages, {mailbox.file_bytes:,} bytes on disk, {mailbox.wire_bytes:,} bytes on the "
        f"wire (average {mailbox.file_bytes / max(1, mailbox.messages) / 1000:.1f} kB), {mailbox.seconds:.2f} s; "
        f"per folder: {mailbox.per_folder}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
