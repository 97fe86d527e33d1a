"""bimmailctl fetch / account folders / messages, as a user types them, against the real Dovecot."""

from __future__ import annotations

import json

from tests.helpers import RunningDaemon, run_ctl
from tests.servers.fixtures import MailServers
from tests.sync.test_sync import make_message


async def _add(daemon: RunningDaemon, servers: MailServers) -> None:
    imap = servers.imap()
    added = await run_ctl(
        daemon.socket_path, "account", "add", "--name", "Work", "--email", servers.user.login, "--password-stdin",
        "--imap-host", imap["host"], "--imap-port", str(imap["port"]), "--imap-security", "ssl",
        "--smtp-host", "127.0.0.1", "--smtp-port", str(servers.smtp.ports["starttls"]),
        "--tls-ca-file", servers.ca_file, "--no-test",
        stdin=servers.user.password + "\n",
    )  # fmt: skip
    assert added.code == 0, added.stderr


async def test_fetch_list_show(daemon: RunningDaemon, mail_servers: MailServers) -> None:
    mail_servers.user.deliver_many([make_message(i) for i in range(5)])
    mail_servers.user.deliver_many([make_message(9, folder="Sent")], "Sent")
    await _add(daemon, mail_servers)
    fetched = await run_ctl(daemon.socket_path, "--json", "fetch", "--wait")
    assert fetched.code == 0, fetched.stderr
    result = json.loads(fetched.stdout)
    [account] = result["accounts"]
    assert (account["account"], account["state"], account["new"]) == ("Work", "ok", 6)
    assert {f["folder"]: f["new"] for f in account["folders"]} == {"BIMoffice": 0, "INBOX": 5, "Sent": 1, "Archive": 0}

    table = await run_ctl(daemon.socket_path, "fetch", "--wait", "Work")
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ACCOUNT", "FOLDER", "NEW", "UPDATED", "REMOVED", "STATE", "NOTE"]
    assert lines[1].split()[:6] == ["Work", "(all)", "0", "0", "0", "ok"]
    assert "unchanged" in table.stdout

    listed = await run_ctl(daemon.socket_path, "messages", "list", "--account", "Work", "--folder", "INBOX")
    assert listed.stdout.splitlines()[0].split() == ["ID", "DATE", "FROM", "SUBJECT", "FOLDER", "FLAGS"]
    assert len(listed.stdout.splitlines()) == 6
    rows = json.loads((await run_ctl(daemon.socket_path, "--json", "messages", "list", "--account", "Work")).stdout)
    assert set(rows[0]) >= {"id", "account", "folder", "uid", "message_id", "date", "from", "subject", "flags"}
    shown = await run_ctl(daemon.socket_path, "messages", "show", str(rows[0]["id"]))
    assert "Subject: Réunion n°" in shown.stdout and "à bientôt" in shown.stdout
    raw = await run_ctl(daemon.socket_path, "messages", "show", str(rows[0]["id"]), "--raw")
    assert raw.stdout.startswith("From: ") or "Message-ID:" in raw.stdout
    missing = await run_ctl(daemon.socket_path, "messages", "show", "99999")
    assert missing.code == 4


async def test_folders_command(daemon: RunningDaemon, mail_servers: MailServers) -> None:
    await _add(daemon, mail_servers)
    shown = await run_ctl(daemon.socket_path, "account", "folders", "Work")
    assert shown.code == 0
    rows = {line.split()[0]: line.split()[1:] for line in shown.stdout.splitlines()[1:]}
    assert rows["INBOX"][:2] == ["inbox", "yes"]
    assert rows["Junk"][:2] == ["junk", "no"]
    changed = await run_ctl(
        daemon.socket_path, "--json", "account", "folders", "Work", "--select", "Junk", "--unselect", "Archive"
    )
    selected = {f["name"]: f["selected"] for f in json.loads(changed.stdout)["folders"]}
    assert selected["Junk"] is True and selected["Archive"] is False
    unknown = await run_ctl(daemon.socket_path, "account", "folders", "Work", "--select", "Nope")
    assert unknown.code == 4 and "no folder 'Nope'" in unknown.stderr


async def test_fetch_prints_the_accounts_notes(daemon: RunningDaemon, mail_servers: MailServers) -> None:
    """A synchronised folder deleted on the server: the table says ok, and the note below it says why
    that folder is no longer fetched (its local copies kept)."""
    user = mail_servers.user
    with user.imap() as imap:
        imap.create("Projets")
    user.deliver_many([make_message(i, folder="Projets") for i in range(2)], "Projets")
    await _add(daemon, mail_servers)
    selected = await run_ctl(daemon.socket_path, "account", "folders", "Work", "--select", "Projets")
    assert selected.code == 0, selected.stderr
    first = await run_ctl(daemon.socket_path, "fetch", "--wait")
    assert first.code == 0 and "note (" not in first.stdout, first.stdout
    with user.imap() as imap:
        imap.delete("Projets")
    fetched = await run_ctl(daemon.socket_path, "fetch", "--wait")
    assert fetched.code == 0, fetched.stderr
    assert fetched.stdout.splitlines()[-1] == (
        "note (Work): folder 'Projets' is no longer on the server (renamed or deleted there); its local copies are kept"
    )


async def test_safety_stop_shown_then_confirmed(daemon: RunningDaemon, mail_servers: MailServers) -> None:
    """R-C7, issue 4's safety stop through the ctl: most of the inbox gone on the server → nothing
    removed, the account in needs-attention in `fetch`, `account list` and `status`, until
    `fetch --confirm-deletions Work`."""
    user = mail_servers.user
    user.deliver_many([make_message(i) for i in range(30)])
    await _add(daemon, mail_servers)
    assert (await run_ctl(daemon.socket_path, "fetch", "--wait")).code == 0
    with user.imap() as imap:
        imap.select("INBOX")
        imap.uid("STORE", "1:25", "+FLAGS", "(\\Deleted)")
        imap.expunge()
    stopped = await run_ctl(daemon.socket_path, "fetch", "--wait", "Work")
    assert "needs-attention" in stopped.stdout and "--confirm-deletions" in stopped.stdout, stopped.stdout
    listed = await run_ctl(daemon.socket_path, "account", "list")
    assert listed.stdout.splitlines()[1].split()[-1] == "needs-attention"
    status = await run_ctl(daemon.socket_path, "status")
    assert "Work: INBOX: the server no longer has 25 of the 30 local messages" in status.stdout, status.stdout
    inbox = await run_ctl(daemon.socket_path, "--json", "messages", "list", "--account", "Work", "--folder", "INBOX")
    assert len(json.loads(inbox.stdout)) == 30, "nothing removed before the confirmation"
    confirmed = await run_ctl(daemon.socket_path, "--json", "fetch", "--wait", "--confirm-deletions", "Work")
    [account] = json.loads(confirmed.stdout)["accounts"]
    assert (account["state"], account["removed"]) == ("ok", 25)
    assert (await run_ctl(daemon.socket_path, "account", "list")).stdout.splitlines()[1].split()[-1] == "ok"
