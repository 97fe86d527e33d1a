"""The trash, projects and account activity through bimmailctl, as issues 5 and 6 write them (R-C3..R-C7,
R-X2, R-E1), against the real Dovecot."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.e2e.test_ctl_sync import _add
from tests.helpers import RunningDaemon, run_ctl
from tests.servers.fixtures import MailServers
from tests.sync.test_sync import make_message
from tests.sync.test_trash import server_subjects


async def ctl_json(daemon: RunningDaemon, *args: str) -> Any:
    done = await run_ctl(daemon.socket_path, *args, "--json")
    assert done.code == 0, done.stderr
    return json.loads(done.stdout)


async def test_trash_and_projects_walkthrough(daemon: RunningDaemon, mail_servers: MailServers) -> None:
    user = mail_servers.user
    user.deliver_many([make_message(i) for i in range(4)])
    await _add(daemon, mail_servers)
    assert (await run_ctl(daemon.socket_path, "fetch", "--wait")).code == 0
    inbox = await ctl_json(daemon, "messages", "list", "--account", "Work", "--folder", "INBOX")
    ids = {m["message_id"]: m["id"] for m in inbox}
    first, second = ids["<msg0.INBOX@example.fr>"], ids["<msg1.INBOX@example.fr>"]

    deleted = await run_ctl(daemon.socket_path, "messages", "delete", str(first), str(second))
    assert deleted.code == 0 and "moved to the trash" in deleted.stdout
    assert (await run_ctl(daemon.socket_path, "fetch", "--wait")).code == 0  # the journal replayed for sure
    trash = await run_ctl(daemon.socket_path, "messages", "list", "--trash")  # no --account: every account's
    assert trash.code == 0, trash.stderr
    assert "FROM FOLDER" in trash.stdout and trash.stdout.count("INBOX") == 2
    assert sorted(server_subjects(user, "BIMoffice")) == ["msg0.INBOX@example.fr", "msg1.INBOX@example.fr"]

    restored = await run_ctl(daemon.socket_path, "messages", "restore", str(second))
    assert restored.code == 0 and "restored" in restored.stdout
    refused = await run_ctl(daemon.socket_path, "messages", "delete", "--permanent", str(first))
    assert refused.code == 7 and "--yes" in refused.stderr
    assert (await run_ctl(daemon.socket_path, "messages", "delete", "--permanent", "--yes", str(first))).code == 0
    assert (await run_ctl(daemon.socket_path, "fetch", "--wait")).code == 0
    assert server_subjects(user, "BIMoffice") == []
    assert "msg1.INBOX@example.fr" in server_subjects(user, "INBOX")

    assert (await run_ctl(daemon.socket_path, "project", "add", "Chantier")).code == 0
    third = ids["<msg2.INBOX@example.fr>"]
    unassigned = await run_ctl(daemon.socket_path, "messages", "unassign", str(third), "--project", "Chantier")
    assert unassigned.code == 0 and "removed from Chantier: nothing" in unassigned.stdout
    for _ in range(2):  # assigned, taken back, assigned again
        assigned = await run_ctl(daemon.socket_path, "messages", "assign", str(third), "--project", "Chantier")
        assert assigned.code == 0 and "assigned to Chantier" in assigned.stdout
        projects = await ctl_json(daemon, "project", "list")
        assert [(p["name"], p["messages"]) for p in projects] == [("Chantier", 1)]
        if _ == 0:
            unassigned = await run_ctl(daemon.socket_path, "messages", "unassign", str(third), "--project", "Chantier")
            assert unassigned.code == 0 and re.fullmatch(r"removed from Chantier: \d+\n", unassigned.stdout)
            assert [p["messages"] for p in await ctl_json(daemon, "project", "list")] == [0]
    [kept] = await ctl_json(daemon, "project", "messages", "Chantier")
    assert kept["subject"] == "Réunion n°2 * (ordre du jour"
    with user.imap() as imap:  # gone from the server: the project keeps its copy
        imap.select("INBOX")
        imap.uid("STORE", "3", "+FLAGS", "(\\Deleted)")
        imap.expunge()
    assert (await run_ctl(daemon.socket_path, "fetch", "--wait")).code == 0
    raw = await run_ctl(daemon.socket_path, "project", "show-message", str(kept["id"]), "--raw")
    assert raw.code == 0 and "<msg2.INBOX@example.fr>" in raw.stdout


async def test_account_show_says_what_the_daemon_does(daemon: RunningDaemon, mail_servers: MailServers) -> None:
    """Issue 6: last fetch and its result, next scheduled fetch, push state, server operations waiting."""
    mail_servers.user.deliver_many([make_message(i) for i in range(3)])
    await _add(daemon, mail_servers)
    assert (await run_ctl(daemon.socket_path, "fetch", "--wait")).code == 0
    shown = await run_ctl(daemon.socket_path, "account", "show", "Work")
    assert shown.code == 0, shown.stderr
    text = shown.stdout

    def value(key: str) -> str:
        found = re.search(rf"^  {re.escape(key)} +(.*)$", text, re.MULTILINE)
        assert found, f"no {key!r} line in:\n{text}"
        return found.group(1)

    assert value("state").startswith("ok (last fetch 20")
    assert value("last result") == "3 new, 0 updated, 0 removed"
    assert value("next fetch").startswith("20"), "an ISO time: automation is on by default"
    assert value("push (IDLE)") in ("idle", "connecting")
    assert value("server operations") == "0 waiting"
