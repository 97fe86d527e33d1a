"""``bimmailctl fetch --wait`` on a terminal: a progress bar per account, redrawn in place (R-E1).

The drawing is checked on what a terminal would show (a tiny emulator of the
few control sequences used), and once for real: the ctl on a pseudo-terminal
against the daemon fetching from Dovecot.
"""

from __future__ import annotations

import asyncio
import io
import os
import pty
import re

from bimmailctl.render import Progress
from tests.helpers import BIN_DIR, RunningDaemon
from tests.servers.fixtures import MailServers
from tests.sync.test_sync import make_message


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def screen(output: str) -> list[str]:
    """The lines a terminal shows after ``output``: text, \\r, \\n, ESC[nF (up n lines, column 1), ESC[K."""
    lines, row, col = [""], 0, 0
    for token in re.findall(r"\x1b\[(\d*)([FK])|(\r)|(\n)|([^\x1b\r\n]+)", output):
        count, command, cr, nl, text = token
        if command == "F":
            row, col = max(0, row - int(count or 1)), 0
        elif command == "K":
            lines[row] = lines[row][:col]
        elif cr:
            col = 0
        elif nl:
            row, col = row + 1, 0
            if row == len(lines):
                lines.append("")
        else:
            line = lines[row]
            lines[row] = line[:col] + text + line[col + len(text) :]
            col += len(text)
    return [line for line in lines if line]


def event(account: str, folder: str, done: int, total: int) -> dict[str, object]:
    return {"account": account, "folder": folder, "messages_done": done, "messages_total": total,
            "bytes_done": done * 1000, "bytes_total": total * 1000}  # fmt: skip


def test_two_accounts_keep_a_line_each() -> None:
    term = Terminal()
    progress = Progress(term)
    progress.update(event("Work", "INBOX", 0, 100), 0.0)
    progress.update(event("Home", "INBOX", 10, 40), 0.5)
    progress.update(event("Work", "INBOX", 50, 100), 2.0)
    progress.update(event("Home", "Sent", 5, 5), 3.0)
    shown = screen(term.getvalue())
    assert len(shown) == 2, shown
    work, home = shown
    assert work.startswith("[############............] Work INBOX: 50/100 messages, 48.8 KB/97.7 KB,  50%")
    assert work.endswith("about 2 s left")
    assert home.startswith("[########################] Home Sent: 5/5 messages")


def test_not_a_terminal_gets_plain_lines() -> None:
    out = io.StringIO()
    progress = Progress(out)
    progress.update(event("Work", "INBOX", 1, 2), 0.0)
    progress.update(event("Home", "INBOX", 2, 2), 1.0)
    assert "\x1b" not in out.getvalue() and "\r" not in out.getvalue()
    assert out.getvalue().splitlines() == [
        "Work INBOX: 1/2 messages, 1000 B/2.0 KB,  50%",
        "Home INBOX: 2/2 messages, 2.0 KB/2.0 KB, 100%",
    ]


async def test_fetch_wait_on_a_real_terminal(daemon: RunningDaemon, mail_servers: MailServers) -> None:
    mail_servers.user.deliver_many([make_message(i, attachment=20_000) for i in range(300)])
    params = {**mail_servers.account_params(), "test": False}
    from bimmailctl.client import Client

    async with await Client.connect(daemon.socket_path) as client:
        await client.call("account.add", params)
    master, slave = pty.openpty()
    try:
        process = await asyncio.create_subprocess_exec(
            str(BIN_DIR / "bimmailctl"), "--socket", str(daemon.socket_path), "fetch", "--wait",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=slave,
        )  # fmt: skip
        os.close(slave)
        slave = -1
        chunks: list[bytes] = []
        reader = asyncio.get_running_loop().run_in_executor(None, _read_all, master, chunks)
        out, _ = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0
        await asyncio.wait_for(reader, 10)
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    drawn = b"".join(chunks).decode()
    assert "\x1b[" in drawn and "\x1b[K" in drawn, "redrawn in place"
    last = screen(drawn)
    assert len(last) == 1 and last[0].startswith("[########################] Work "), last
    assert "ACCOUNT" in out.decode(), "the result table on stdout"


def _read_all(fd: int, chunks: list[bytes]) -> None:
    """Everything written to the terminal, until the ctl has closed it (EIO on Linux)."""
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            return
        if not data:
            return
        chunks.append(data)
