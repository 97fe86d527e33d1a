"""bimmailctl send / outbox / signature, as a user types them, against the real SMTP server and Dovecot."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.test_ctl_sync import _add
from tests.helpers import RunningDaemon, run_ctl
from tests.send.test_signatures import PNG
from tests.servers.fixtures import MailServers


async def test_send_with_files_and_exit_codes(daemon: RunningDaemon, mail_servers: MailServers, tmp_path: Path) -> None:
    await _add(daemon, mail_servers)
    body, page, report = tmp_path / "body.txt", tmp_path / "page.html", tmp_path / "report.csv"
    body.write_text("Bonjour,\nvoici le rapport.\n")
    page.write_text("<p>Bonjour,<br>voici le <b>rapport</b>.</p>")
    report.write_bytes(b"a;b\n1;2\n")
    (tmp_path / "notes.txt").write_text("n")
    sent = await run_ctl(
        daemon.socket_path, "send", "--to", "Bob <bob@example.net>, carol@example.net", "--subject", "Rapport",
        "--body-file", str(body), "--html-file", str(page), "--attach", str(report), str(tmp_path / "notes.txt"),
    )  # fmt: skip
    assert sent.code == 0, sent.stderr
    assert "accepted  bob@example.net" in sent.stdout and "accepted  carol@example.net" in sent.stdout
    assert "sent from Work" in sent.stdout
    [delivery] = await mail_servers.smtp.wait_for_deliveries(1)
    message = delivery.message
    assert message["Subject"] == "Rapport"
    assert message.get_body(("html",)) is not None and "<b>rapport</b>" in message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    attachment, notes = list(message.iter_attachments())
    assert attachment.get_filename() == "report.csv" and attachment.get_content() in (b"a;b\n1;2\n", "a;b\n1;2\n")
    assert notes.get_filename() == "notes.txt"

    mail_servers.smtp.refuse["carol@example.net"] = (550, "5.1.1 No such user")
    partial = await run_ctl(
        daemon.socket_path, "send", "--from", "Work", "--to", "bob@example.net, carol@example.net",
        "--body-stdin", "--json", stdin="x\n",
    )  # fmt: skip
    assert partial.code == 10, partial.stderr
    assert json.loads(partial.stdout)["refused"]["carol@example.net"]["code"] == 550
    human = await run_ctl(daemon.socket_path, "send", "--to", "carol@example.net", "--body-stdin", stdin="x")
    assert human.code == 8 and "refused   carol@example.net: 550 5.1.1 No such user" in human.stdout

    wrong = await run_ctl(daemon.socket_path, "send", "--to", "bob@example.net; carol@example.net", "--body-stdin")
    assert wrong.code == 2 and "separator" in wrong.stderr and "(field to)" in wrong.stderr
    missing = await run_ctl(daemon.socket_path, "send", "--to", "bob@example.net", "--body-file", "/nonexistent")
    assert missing.code == 2 and "cannot read /nonexistent" in missing.stderr


async def test_outbox_commands(daemon: RunningDaemon, mail_servers: MailServers) -> None:
    await _add(daemon, mail_servers)
    await mail_servers.smtp.stop_listener("starttls")
    queued = await run_ctl(daemon.socket_path, "send", "--to", "bob@example.net", "--subject", "Plus tard",
                           "--body-stdin", stdin="x")  # fmt: skip
    assert queued.code == 9 and "kept in the outbox (id 1)" in queued.stdout
    listed = await run_ctl(daemon.socket_path, "outbox", "list")
    header, row = listed.stdout.splitlines()
    assert header.split()[:4] == ["ID", "ACCOUNT", "STATE", "TRIES"]
    assert row.split()[:4] == ["1", "Work", "queued", "1"] and "Plus tard" in row
    status = await run_ctl(daemon.socket_path, "status")
    assert "outbox: 1 queued (bimmailctl outbox list)" in status.stdout
    await mail_servers.smtp.start_listener("starttls")
    retried = await run_ctl(daemon.socket_path, "outbox", "retry", "1")
    assert retried.code == 0 and "sent from Work" in retried.stdout
    assert json.loads((await run_ctl(daemon.socket_path, "--json", "status")).stdout)["outbox"] == {}
    again = await run_ctl(daemon.socket_path, "outbox", "cancel", "1")
    assert again.code == 2 and "sent" in again.stderr
    gone = await run_ctl(daemon.socket_path, "outbox", "retry", "7")
    assert gone.code == 4


async def test_signature_commands(daemon: RunningDaemon, mail_servers: MailServers, tmp_path: Path) -> None:
    await _add(daemon, mail_servers)
    text, page, logo = tmp_path / "sig.txt", tmp_path / "sig.html", tmp_path / "logo.png"
    text.write_text("Jean Dupont\n")
    page.write_text('<p><i>Jean</i> <img src="logo.png"></p>')
    logo.write_bytes(PNG)
    sock = daemon.socket_path
    assert (await run_ctl(sock, "signature", "add", "Work", "--name", "Plain", "--text-file", str(text))).code == 0
    added = await run_ctl(sock, "signature", "add", "Work", "--name", "Rich", "--html-file", str(page),
                          "--image", str(logo), "--default")  # fmt: skip
    assert added.code == 0, added.stderr
    lines = added.stdout.splitlines()
    assert lines[0].split() == ["POS", "NAME", "KIND", "DEFAULT", "IMAGES", "FIRST", "LINE"]
    assert lines[2].split()[:5] == ["2", "Rich", "html", "yes", "1"]
    moved = await run_ctl(sock, "signature", "move", "Work", "Rich", "up")
    assert [line.split()[1] for line in moved.stdout.splitlines()[1:]] == ["Rich", "Plain"]
    preview = await run_ctl(sock, "signature", "preview", "Work", "Rich", "--mime")
    assert preview.code == 0 and "Jean" in preview.stdout and "image/png" in preview.stdout
    assert "multipart/related" in preview.stdout
    as_json = json.loads((await run_ctl(sock, "--json", "signature", "preview", "Work", "Plain")).stdout)
    assert as_json["text"] == "Jean Dupont" and as_json["html"] is None
    plain = await run_ctl(sock, "signature", "preview", "Work", "Plain")
    assert plain.stdout == "-- \nJean Dupont\n", "as the text/plain part carries it"
    none = await run_ctl(sock, "--json", "signature", "default", "Work", "--none")
    assert not any(s["default"] for s in json.loads(none.stdout)["signatures"])
    renamed = await run_ctl(sock, "signature", "modify", "Work", "Plain", "--rename", "Simple", "--default")
    assert renamed.code == 0 and "Simple" in renamed.stdout
    nothing = await run_ctl(sock, "signature", "modify", "Work", "Simple")
    assert nothing.code == 2 and "nothing to change" in nothing.stderr
    deleted = await run_ctl(sock, "signature", "delete", "Work", "Simple")
    assert deleted.code == 0 and "Simple" not in deleted.stdout
    sent = await run_ctl(sock, "send", "--to", "bob@example.net", "--signature", "Rich", "--body-stdin", stdin="x")
    assert sent.code == 0, sent.stderr
    [delivery] = await mail_servers.smtp.wait_for_deliveries(1)
    assert delivery.message.get_content_type() == "multipart/alternative"
