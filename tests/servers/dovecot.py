"""A real Dovecot IMAP server for the tests, with a throw-away config under a temp dir.

Listeners (all on loopback, free ports chosen at start):

* ``imap``       127.0.0.1, plain connection offering STARTTLS (like port 143)
* ``imaps``      127.0.0.1, implicit TLS (like 993)
* ``imap_notls`` 127.0.0.2, clear text that does *not* offer STARTTLS
                 (a ``local`` block turns TLS off for that address)
* ``imaps_alt``  127.0.0.3, implicit TLS with a certificate that is not valid
                 for that address (host-name mismatch)

Users live in a passwd-file.  Dovecot re-reads it when it changes, but at most
once a second, so a pool of users is written before the server starts and
``add_user()`` hands out the next one at once; one server per test session
serves a fresh user per test.  Mail is stored in
Maildir under each user's home; tests can drop messages in directly (fast,
for big mailboxes) or APPEND them through IMAP.  Mailboxes Sent, Drafts,
Junk, Trash and Archive exist for every user with their SPECIAL-USE flags.

Misbehaviour on demand: ``stop()`` / ``start()`` (same ports), ``crash()``
(every process killed, sessions under way included), ``kick(user)`` drops a
user's connections.  Options (e.g. capabilities) come from
``extra_config``.

OAuth2 (``oauth2_introspection_url``): IMAP also offers ``AUTHENTICATE XOAUTH2``
and ``OAUTHBEARER`` (RFC 7628), judged by Dovecot's own ``oauth2`` passdb, which
POSTs each token to that introspection endpoint (``tests.servers.oauth``) and
accepts it when the answer says ``"active": true`` with the login as
``username``.  Password users keep PLAIN/LOGIN: each passdb is limited to its
mechanisms.  Homes still come from the passwd-file userdb, so OAuth users are
ordinary ``add_user()`` users whose password is simply not used.  The auth
cache is off (the default, written out): a revoked token is refused at once.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.servers.tls import TlsMaterial, make_tls

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"

SPECIAL_FOLDERS = {"Sent": "\\Sent", "Drafts": "\\Drafts", "Junk": "\\Junk", "Trash": "\\Trash", "Archive": "\\Archive"}
USER_POOL = 400
LISTENERS = {"imap": "127.0.0.1", "imaps": "127.0.0.1", "imap_notls": "127.0.0.2", "imaps_alt": "127.0.0.3"}


class DovecotUnavailable(RuntimeError):
    """Dovecot is not installed: the README's test command installs it (Debian, as root)."""


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class ImapUser:
    login: str
    password: str
    home: Path
    server: Dovecot = field(repr=False)

    @property
    def maildir(self) -> Path:
        return self.home / "Maildir"

    def folder_dir(self, folder: str) -> Path:
        """Maildir++ layout: INBOX is the root, 'A/B' is '.A.B'."""
        return self.maildir if folder == "INBOX" else self.maildir / ("." + folder.replace("/", "."))

    def deliver(self, raw: bytes, folder: str = "INBOX", *, seen: bool = False) -> Path:
        """Drop a message straight into the Maildir, as an MTA would (tmp, then rename)."""
        base = self.folder_dir(folder)
        for sub in ("tmp", "new", "cur"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns()}.{uuid.uuid4().hex}.bimmail-test"
        tmp = base / "tmp" / name
        tmp.write_bytes(raw)
        target = base / "cur" / f"{name}:2,S" if seen else base / "new" / name
        os.replace(tmp, target)
        self.server.chown_tree(self.home)
        return target

    def deliver_many(self, raws: list[bytes], folder: str = "INBOX") -> None:
        """Many messages at once (one ownership pass at the end): big mailboxes in seconds."""
        base = self.folder_dir(folder)
        for sub in ("tmp", "new", "cur"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        stamp = time.time_ns()
        for i, raw in enumerate(raws):
            name = f"{stamp}.{i}.bimmail-test"
            (base / "tmp" / name).write_bytes(raw)
            os.replace(base / "tmp" / name, base / "new" / name)
        self.server.chown_tree(self.home)

    def account_params(self, name: str = "Work", *, security: str = "ssl") -> dict[str, Any]:
        """account.add params for this user on its own Dovecot (no connection test), IMAP only: the SMTP
        side points at a port nothing serves — for tests of a Dovecot of their own, which has no
        SMTP server beside it (``MailServers.account_params`` has both)."""
        port = self.server.ports["imaps" if security == "ssl" else "imap"]
        return {
            "name": name, "email": self.login, "password": self.password, "test": False,
            "imap": {"host": "127.0.0.1", "port": port, "security": security},
            "smtp": {"host": "127.0.0.1", "port": 25, "security": "none", "auth": False},
            "tls_ca_file": str(self.server.tls.ca_file),
        }  # fmt: skip

    @contextlib.contextmanager
    def imap(self) -> Iterator[imaplib.IMAP4]:
        """A logged-in stdlib IMAP client over STARTTLS: the 'other client' / webmail of tests."""
        client = imaplib.IMAP4("127.0.0.1", self.server.ports["imap"], timeout=10)
        try:
            client.starttls(self.server.tls.client_context())
            client.login(self.login, self.password)
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def append(self, raw: bytes, folder: str = "INBOX", flags: str = "") -> None:
        with self.imap() as client:
            typ, data = client.append(folder, flags or None, None, raw)
            assert typ == "OK", data


class Dovecot:
    """One Dovecot instance; see the module docstring."""

    def __init__(
        self, base: Path, tls: TlsMaterial, extra_config: str = "", oauth2_introspection_url: str | None = None
    ) -> None:
        self.base = base
        self.tls = tls
        self.extra_config = extra_config
        self.oauth2_introspection_url = oauth2_introspection_url
        self.oauth2_conf = base / "dovecot-oauth2.conf.ext"
        self.ports = {name: _free_port(address) for name, address in LISTENERS.items()}
        self.users_file = base / "users"
        self.mail_root = base / "home"
        self.log = base / "dovecot.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._pool: Iterator[tuple[str, str]] = iter(())
        self.mail_uid, self.mail_gid = self._mail_ids()

    @classmethod
    @contextlib.contextmanager
    def running(cls, extra_config: str = "", oauth2_introspection_url: str | None = None) -> Iterator[Dovecot]:
        if not Path(DOVECOT).exists():
            raise DovecotUnavailable(
                "dovecot is not installed; run the README's test command as root (it installs "
                "dovecot-core and dovecot-imapd) or: sudo apt-get install dovecot-core dovecot-imapd"
            )
        # Short path: Dovecot puts its Unix sockets under base_dir (108-byte limit).
        base = Path(tempfile.mkdtemp(prefix="bmdv-", dir="/tmp"))
        base.chmod(0o755)
        server = cls(base, make_tls(base / "tls"), extra_config, oauth2_introspection_url)
        try:
            server.start()
            yield server
        finally:
            server.stop()
            shutil.rmtree(base, ignore_errors=True)

    @staticmethod
    def _mail_ids() -> tuple[int, int]:
        """Mail is owned by the 'dovecot' user when we are root (Dovecot refuses uid 0)."""
        if os.getuid() != 0:
            return os.getuid(), os.getgid()
        import pwd

        entry = pwd.getpwnam("dovecot")
        return entry.pw_uid, entry.pw_gid

    def chown_tree(self, path: Path) -> None:
        if os.getuid() != 0:
            return
        for root, dirs, files in os.walk(path):
            for name in (*dirs, *files):
                os.chown(os.path.join(root, name), self.mail_uid, self.mail_gid)
        os.chown(path, self.mail_uid, self.mail_gid)

    # -- configuration -------------------------------------------------------

    def _config(self) -> str:
        root = os.getuid() == 0
        oauth2 = self.oauth2_introspection_url is not None
        # Each passdb sees only its own mechanisms: a token is never compared with a password,
        # and a password never sent to the introspection endpoint.
        passwd_mechanisms = "\n  mechanisms = plain login" if oauth2 else ""
        oauth2_passdb = (
            f"\npassdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {self.oauth2_conf}\n}}"
            if oauth2
            else ""
        )
        internal = "dovecot" if root else _user_name()
        login_user = "dovenull" if root else _user_name()
        mailboxes = "\n".join(
            f"  mailbox {name} {{\n    special_use = {flag}\n    auto = subscribe\n  }}"
            for name, flag in SPECIAL_FOLDERS.items()
        )
        listeners = "\n".join(
            f"  inet_listener {name} {{\n    address = {LISTENERS[name]}\n    port = {port}\n"
            f"    ssl = {'yes' if name.startswith('imaps') else 'no'}\n  }}"
            for name, port in self.ports.items()
        )
        return f"""# Written by tests/servers/dovecot.py; thrown away after the test run.
base_dir = {self.base}/run
state_dir = {self.base}/state
instance_name = bimmail-test-{self.base.name}
log_path = {self.log}
protocols = imap
listen = {", ".join(sorted(set(LISTENERS.values())))}
ssl = yes
ssl_cert = <{self.tls.cert_file}
ssl_key = <{self.tls.key_file}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = {"plain login xoauth2 oauthbearer" if oauth2 else "plain login"}
auth_failure_delay = 0
# No auth cache (Dovecot's default, stated): a token revoked or expired is refused at the next login.
auth_cache_size = 0
# No auth penalty (2-15 s after each failure from an IP): wrong-password tests must not slow
# every later login.  The auth process disables it when it cannot reach this socket.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
default_internal_user = {internal}
default_internal_group = {internal}
default_login_user = {login_user}
first_valid_uid = {min(self.mail_uid, 100)}
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.users_file}{passwd_mechanisms}
}}{oauth2_passdb}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.users_file}
}}
service imap-login {{
{listeners}
}}
local {LISTENERS["imap_notls"]} {{
  ssl = no
}}
namespace inbox {{
  inbox = yes
  separator = /
{mailboxes}
}}
{self.extra_config}
"""

    @staticmethod
    def _oauth2_config(introspection_url: str) -> str:
        """The oauth2 passdb's settings (args file): introspection only, no tokeninfo URL.

        With ``tokeninfo_url`` empty Dovecot 2.3 goes straight to introspection.  ``post`` sends
        ``token=…&client_id=&client_secret=`` as a form.  The answer is judged field by field:
        ``active`` must be ``true`` when present (else: failed login), ``username`` must be there
        (else: internal failure, ``NO [UNAVAILABLE]``) and equal the SASL user after ``%Lu``.
        """
        return f"""# Written by tests/servers/dovecot.py
introspection_url = {introspection_url}
introspection_mode = post
username_attribute = username
active_attribute = active
active_value = true
timeout_msecs = 5000
"""

    # -- process control -----------------------------------------------------

    def start(self) -> None:
        (self.base / "run").mkdir(exist_ok=True)
        (self.base / "state").mkdir(exist_ok=True)
        self.mail_root.mkdir(exist_ok=True)
        self.chown_tree(self.mail_root)
        if not self.users_file.exists():
            self._write_pool(USER_POOL)
        self.users_file.chmod(0o644)
        if self.oauth2_introspection_url is not None:
            self.oauth2_conf.write_text(self._oauth2_config(self.oauth2_introspection_url))
            self.oauth2_conf.chmod(0o644)  # read by the auth process, which runs as dovecot
        conf = self.base / "dovecot.conf"
        conf.write_text(self._config())
        self._process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self._wait_listening()

    def _wait_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        pending = dict(self.ports)
        while pending:
            assert self._process is not None
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode() if self._process.stderr else ""
                raise RuntimeError(f"dovecot exited at start: {err}\n{self.log_tail()}")
            for name, port in list(pending.items()):
                with contextlib.suppress(OSError), socket.create_connection((LISTENERS[name], port), timeout=0.2):
                    del pending[name]
            if time.monotonic() > deadline:
                raise RuntimeError(f"dovecot did not listen on {pending}\n{self.log_tail()}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stderr:
            self._process.stderr.close()
        self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def crash(self) -> None:
        """Kill every process of this instance at once (SIGKILL), as a crash or a power cut would.

        ``stop()`` is a clean shutdown, and Dovecot's lets sessions under way finish: an imap
        process outlives its master and serves its client to the end.  A server dying in the
        middle of an answer needs those gone too; they are found by their process title, which
        carries this instance's name.  ``start()`` brings the server back on the same ports.
        """
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            if self._process.stderr:
                self._process.stderr.close()
            self._process = None
        marker = f"bimmail-test-{self.base.name}/".encode()
        deadline = time.monotonic() + 10
        while pids := [pid for pid, cmdline in _processes() if marker in cmdline]:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise RuntimeError(f"dovecot processes {pids} survived SIGKILL")
            time.sleep(0.02)

    def kick(self, user: ImapUser) -> None:
        """Drop every connection of ``user`` (the server's side of a network failure)."""
        subprocess.run(
            [DOVEADM, "-c", str(self.base / "dovecot.conf"), "kick", user.login],
            check=False,
            capture_output=True,
        )

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    # -- users ---------------------------------------------------------------

    def _line(self, login: str, password: str) -> str:
        return f"{login}:{{PLAIN}}{password}:{self.mail_uid}:{self.mail_gid}::{self.mail_root / login}\n"

    def _write_pool(self, count: int) -> None:
        tag = uuid.uuid4().hex[:6]
        pool = [(f"user{i}-{tag}@example.org", secrets.token_urlsafe(12)) for i in range(count)]
        with self.users_file.open("a") as f:
            f.writelines(self._line(login, password) for login, password in pool)
        self._pool = iter(pool)

    def add_user(self, login: str | None = None, password: str | None = None) -> ImapUser:
        """The next pooled user; a chosen login waits for Dovecot's once-a-second re-read."""
        if login is None:
            pooled = next(self._pool, None)
            if pooled is None:
                self._write_pool(USER_POOL)
                time.sleep(1.1)
                pooled = next(self._pool)
            login, chosen = pooled
            password = password or chosen
            if password != chosen:
                raise ValueError("a pooled user keeps its password; pass login too to choose one")
        else:
            password = password or secrets.token_urlsafe(12)
            with self.users_file.open("a") as f:
                f.write(self._line(login, password))
            time.sleep(1.1)
        home = self.mail_root / login
        for folder in SPECIAL_FOLDERS:
            for sub in ("tmp", "new", "cur"):
                (home / "Maildir" / f".{folder}" / sub).mkdir(parents=True, exist_ok=True)
        self.chown_tree(home)
        return ImapUser(login, password, home, self)

    def client_context(self) -> ssl.SSLContext:
        return self.tls.client_context()


def _processes() -> Iterator[tuple[int, bytes]]:
    """(pid, command line) of every process we can see."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield int(entry.name), (entry / "cmdline").read_bytes()
            except OSError:  # ended meanwhile
                continue


def _user_name() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name
