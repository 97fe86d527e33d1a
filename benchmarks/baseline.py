"""Minimal raw-socket IMAP client: the floor that every initial sync is compared with.

It does the least a client can do to copy a folder: connect, STARTTLS (``ssl`` module, the
fixture's CA), LOGIN, SELECT, then one ``UID FETCH 1:* (UID BODY.PEEK[])`` for the whole folder,
and a parser that only looks for ``{n}`` literals and reads exactly n bytes.  Each message goes
to a Maildir file (written in ``tmp/``, renamed into ``cur/``, no fsync) in a target directory
that must be fresh, or is read and discarded (``--mode read``) to see what the network and the
server cost alone.  Memory is bounded by the largest message.

Messages are stored exactly as received (CRLF line endings): the minimum.  ``--lf`` converts
them to LF, as Maildir files conventionally are and as mbsync stores them; ``bytes.replace`` costs
about 1.8 s per GB here, so that variant is measured as a reference, not as the baseline.

It is stdlib only and runs as its own process (``initial_sync.py`` starts it), so that its wall
time includes a process start and its peak RSS is comparable with mbsync's and the daemon's::

    printf 'PW\\n' | python benchmarks/baseline.py --port P --ca-file CA --user U --target DIR

It prints one JSON line: messages, wire bytes, seconds (inside the process) and the transport.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import ssl
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

CHUNK = 1 << 20
UID = re.compile(rb"UID (\d+)")


class ImapError(RuntimeError):
    """The server refused a command (its tagged answer is the message)."""


@dataclass(frozen=True)
class Result:
    messages: int
    bytes: int  # literal bytes received: the messages as the server sends them (CRLF)
    seconds: float
    transport: str


class _Stream:
    """Buffered reads of lines and of exact byte counts from a (TLS) socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.pos = 0

    def _fill(self) -> None:
        if self.pos > CHUNK:  # drop what was consumed, at most once per MiB read
            del self.buf[: self.pos]
            self.pos = 0
        chunk = self.sock.recv(CHUNK)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buf += chunk

    def line(self) -> bytes:
        while (end := self.buf.find(b"\r\n", self.pos)) < 0:
            self._fill()
        line = bytes(self.buf[self.pos : end])
        self.pos = end + 2
        return line

    def exactly(self, size: int) -> bytearray:
        """``size`` bytes: what is buffered, then straight from the socket into the result."""
        have = min(size, len(self.buf) - self.pos)
        out = bytearray(size)
        out[:have] = self.buf[self.pos : self.pos + have]
        self.pos += have
        view = memoryview(out)
        while have < size:
            got = self.sock.recv_into(view[have:], size - have)
            if not got:
                raise ConnectionError("the server closed the connection inside a literal")
            have += got
        return out

    def command(self, tag: str, text: str) -> list[bytes]:
        """Send a command without literals; return its untagged lines; raise unless tagged OK."""
        self.sock.sendall(f"{tag} {text}\r\n".encode())
        return self.until(tag)

    def until(self, tag: str) -> list[bytes]:
        lines = []
        prefix = f"{tag} ".encode()
        while not (line := self.line()).startswith(prefix):
            lines.append(line)
        if not line[len(prefix) :].startswith(b"OK"):
            raise ImapError(line.decode(errors="replace"))
        return lines


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def connect(host: str, port: int, ca_file: str | None, user: str, password: str) -> tuple[_Stream, str]:
    """A logged-in stream; STARTTLS (verified against ``ca_file``) unless ``ca_file`` is None."""
    sock = socket.create_connection((host, port), timeout=60)
    stream = _Stream(sock)
    stream.line()  # greeting
    transport = "clear text"
    if ca_file is not None:
        stream.command("s", "STARTTLS")
        context = ssl.create_default_context(cafile=ca_file)
        tls = context.wrap_socket(sock, server_hostname=host)
        stream.sock = tls
        cipher = tls.cipher()
        transport = f"STARTTLS ({tls.version()}, {cipher[0] if cipher else '?'})"
    stream.command("l", f"LOGIN {_quote(user)} {_quote(password)}")
    return stream, transport


def _store(target: str, stamp: int, uid: bytes, data: bytearray) -> None:
    name = f"{stamp}.U{uid.decode()}.baseline"
    tmp = os.path.join(target, "tmp", name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.rename(tmp, os.path.join(target, "cur", name + ":2,"))


def fetch_folder(stream: _Stream, folder: str, target: str | None, lf: bool = False) -> tuple[int, int]:
    """SELECT ``folder`` and fetch it in one command; each message to ``target`` (a Maildir) or nowhere."""
    stream.command("c", f"SELECT {_quote(folder)}")
    stamp = int(time.time())
    stream.sock.sendall(b"f UID FETCH 1:* (UID BODY.PEEK[])\r\n")
    messages = total = 0
    while not (line := stream.line()).startswith(b"f "):
        if not line.endswith(b"}"):
            continue  # EXISTS, flag updates …: nothing to store
        size = int(line[line.rindex(b"{") + 1 : -1])
        data = stream.exactly(size)
        rest = stream.line()  # ")" or more items, perhaps the UID
        messages, total = messages + 1, total + size
        if target is not None:
            found = UID.search(line) or UID.search(rest)
            uid = found.group(1) if found else str(messages).encode()
            _store(target, stamp, uid, data.replace(b"\r\n", b"\n") if lf else data)
    if not line.startswith(b"f OK"):
        raise ImapError(line.decode(errors="replace"))
    return messages, total


def run(
    host: str, port: int, ca_file: str | None, user: str, password: str, target: Path | None, folder: str = "INBOX",
    *, lf: bool = False,
) -> Result:  # fmt: skip
    started = time.perf_counter()
    if target is not None:
        for sub in ("tmp", "new", "cur"):
            (target / sub).mkdir(parents=True)  # fails unless fresh: see the module docstring
    stream, transport = connect(host, port, ca_file, user, password)
    messages, total = fetch_folder(stream, folder, None if target is None else str(target), lf)
    stream.sock.sendall(b"z LOGOUT\r\n")
    stream.sock.close()
    return Result(messages, total, time.perf_counter() - started, transport)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Raw-socket IMAP baseline; the password is read from stdin.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ca-file", help="CA to verify the server with; STARTTLS is used when given")
    parser.add_argument("--cleartext", action="store_true", help="no STARTTLS (reference figures only)")
    parser.add_argument("--user", required=True)
    parser.add_argument("--folder", default="INBOX")
    parser.add_argument("--mode", choices=("maildir", "read"), default="maildir")
    parser.add_argument("--target", type=Path, help="fresh directory for the Maildir (mode maildir)")
    parser.add_argument("--lf", action="store_true", help="store LF line endings (received: CRLF)")
    args = parser.parse_args(argv)
    if args.mode == "maildir" and args.target is None:
        parser.error("--mode maildir needs --target")
    if not args.cleartext and not args.ca_file:
        parser.error("give --ca-file (STARTTLS) or --cleartext")
    password = sys.stdin.readline().rstrip("\n")
    ca_file = None if args.cleartext else args.ca_file
    target = args.target if args.mode == "maildir" else None
    result = run(args.host, args.port, ca_file, args.user, password, target, args.folder, lf=args.lf)
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
