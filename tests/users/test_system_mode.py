"""The system daemon serving several real local users (R-L3).

Clients run as real uids (``tests.servers.local_users``); the daemon, started
here in system mode, knows them only by the socket's peer credentials.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bimmailctl.client import Client
from tests.helpers import RunningDaemon, daemon_config, spawn_daemon, start_daemon, stop_daemon
from tests.servers.fixtures import MailServers
from tests.servers.local_users import LocalUser, LocalUsers, local_users
from tests.servers.tls import make_tls
from tests.sync.test_sync import make_message

__all__ = ["local_users"]

ADD = ("account", "add", "--email", "me@example.org", "--password-stdin", "--imap-host", "imap.example.org",
       "--smtp-host", "smtp.example.org", "--no-test")  # fmt: skip


async def system_daemon(short_dir: Path, tmp_path: Path, users: LocalUsers, **options: Any) -> RunningDaemon:
    short_dir.chmod(0o755)  # the socket's directory must be reachable by the users
    config = dataclasses.replace(
        daemon_config(short_dir, tmp_path), system=True, admin_group=users.admin_group, **options
    )
    return await start_daemon(config)


@pytest.fixture
async def system(short_dir: Path, tmp_path: Path, local_users: LocalUsers) -> AsyncIterator[RunningDaemon]:
    running = await system_daemon(short_dir, tmp_path, local_users)
    try:
        yield running
    finally:
        await stop_daemon(running)


async def add_account(user: LocalUser, socket: Path, name: str) -> None:
    added = await user.ctl(socket, *ADD, "--name", name, stdin="pw-" + user.name + "\n")
    assert added.code == 0, added.stderr


async def names(user: LocalUser, socket: Path) -> list[str]:
    listed = await user.ctl(socket, "--json", "account", "list")
    assert listed.code == 0, listed.stderr
    return [a["name"] for a in json.loads(listed.stdout)]


async def test_a_user_sees_and_changes_only_their_own(system: RunningDaemon, local_users: LocalUsers) -> None:
    alice, bob = local_users.alice, local_users.bob
    sock = system.socket_path
    await add_account(alice, sock, "Work")
    await add_account(bob, sock, "Work")  # names are per user: no conflict with alice's
    await add_account(bob, sock, "Perso")
    assert await names(alice, sock) == ["Work"]
    assert await names(bob, sock) == ["Work", "Perso"]
    bob_work = json.loads((await bob.ctl(sock, "--json", "account", "show", "Work")).stdout)
    assert bob_work["owner"]["name"] == bob.name
    other = str(bob_work["id"])
    for attempt in (("account", "show", other), ("account", "modify", other, "--name", "Stolen"),
                    ("account", "delete", other, "--yes"), ("account", "primary", other),
                    ("account", "disable", other), ("signature", "list", other),
                    ("outbox", "list", other), ("fetch", other), ("account", "show", "Perso")):  # fmt: skip
        refused = await alice.ctl(sock, *attempt)
        assert refused.code == 4, (attempt, refused.stdout, refused.stderr)  # "not found": nothing leaks
    assert await names(bob, sock) == ["Work", "Perso"]
    unchanged = json.loads((await bob.ctl(sock, "--json", "account", "show", other)).stdout)
    assert (unchanged["name"], unchanged["enabled"], unchanged["primary"]) == ("Work", True, True)
    # Each user has their own primary account (R-E2 per user).
    assert json.loads((await alice.ctl(sock, "--json", "account", "show", "Work")).stdout)["primary"]
    status = json.loads((await alice.ctl(sock, "--json", "status")).stdout)
    assert status["accounts"] == {"total": 1, "enabled": 1, "primary": "Work"}


async def test_administrator_denies_and_allows(system: RunningDaemon, local_users: LocalUsers) -> None:
    """R-L3: without the right, a change is refused with permission denied and nothing changes; listing
    and fetching still work; the administrator's user list shows the decision and can undo it.  Every
    change of the issue's list, and testing and sending, are checked by the next test."""
    alice, carol = local_users.alice, local_users.carol
    sock = system.socket_path
    await add_account(alice, sock, "Work")
    denied = await carol.ctl(sock, "user", "deny-config", alice.name)
    assert denied.code == 0 and "no longer" in denied.stdout, denied.stderr
    before = json.loads((await alice.ctl(sock, "--json", "account", "show", "Work")).stdout)
    for change in ((*ADD, "--name", "Second"), ("account", "modify", "Work", "--name", "Renamed"),
                   ("account", "delete", "Work", "--yes"), ("account", "disable", "Work"),
                   ("account", "primary", "Work"), ("account", "folders", "Work", "--no-refresh", "--select", "Junk"),
                   ("signature", "add", "Work", "--name", "S", "--text-file", "/dev/null")):  # fmt: skip
        refused = await alice.ctl(sock, *change, stdin="pw\n")
        assert refused.code == 6, (change, refused.stderr)
        assert "administrator must allow" in refused.stderr, refused.stderr
    after = json.loads((await alice.ctl(sock, "--json", "account", "show", "Work")).stdout)
    assert after == before
    assert await names(alice, sock) == ["Work"]
    # Still allowed: reading, testing, fetching.
    assert (await alice.ctl(sock, "account", "folders", "Work", "--no-refresh")).code == 0
    assert (await alice.ctl(sock, "signature", "list", "Work")).code == 0
    assert (await alice.ctl(sock, "fetch", "Work")).code == 0
    hello = (await alice.raw(sock, ("hello", {"protocol": 1})))[0]["result"]
    assert (hello["user"]["name"], hello["is_admin"], hello["may_configure"]) == (alice.name, False, False)

    listed = json.loads((await carol.ctl(sock, "--json", "user", "list")).stdout)
    entry = next(e for e in listed if e["name"] == alice.name)
    assert (entry["accounts"], entry["may_configure"], entry["decision"]) == (1, False, "denied")
    assert next(e for e in listed if e["name"] == carol.name)["is_admin"]
    table = await carol.ctl(sock, "user", "list")
    assert table.stdout.splitlines()[0].split() == ["USER", "UID", "ACCOUNTS", "MAY", "CONFIGURE", "LAST", "SEEN"]

    allowed = await carol.ctl(sock, "user", "allow-config", alice.name)
    assert allowed.code == 0 and "now" in allowed.stdout
    renamed = await alice.ctl(sock, "account", "modify", "Work", "--name", "Renamed")
    assert renamed.code == 0, renamed.stderr
    assert await names(alice, sock) == ["Renamed"]


async def shown(user: LocalUser, socket: Path, *args: str) -> Any:
    """``bimmailctl --json ARGS`` as ``user``, which must succeed."""
    done = await user.ctl(socket, "--json", *args)
    assert done.code == 0, (args, done.stderr)
    return json.loads(done.stdout)


def settings(account: dict[str, Any]) -> dict[str, Any]:
    """An account as ``account show`` gives it, without its live ``status``: the push watcher (IDLE)
    fetches by itself whenever the server reports new mail, which is not a change of settings."""
    return {key: value for key, value in account.items() if key != "status"}


async def everything_a_change_could_touch(user: LocalUser, socket: Path) -> dict[str, Any]:
    """The accounts' settings (``updated_at`` included), the signatures (content, order, default) and
    the folder selection: what a refused change must leave as it was."""
    folders = await shown(user, socket, "account", "folders", "Work", "--no-refresh")
    return {
        "list": [settings(a) for a in await shown(user, socket, "account", "list")],
        "Work": settings(await shown(user, socket, "account", "show", "Work")),
        "Perso": settings(await shown(user, socket, "account", "show", "Perso")),
        "signatures": await shown(user, socket, "signature", "list", "Work"),
        "folders": {f["name"]: (f["selected"], f["chosen_by_user"]) for f in folders["folders"]},
    }


async def test_denied_user_changes_nothing_but_still_tests_fetches_and_sends(
    system: RunningDaemon, local_users: LocalUsers, mail_servers: MailServers, short_dir: Path, tmp_path: Path
) -> None:
    """R-L3, item by item: without the right to configure, a user "can still list their accounts, test
    them, fetch and send, but every change — account add/modify/delete/primary/enable, folder selection,
    signature changes — is refused with the 'permission denied' error and a message saying an
    administrator must allow it; nothing changes."

    Alice sets everything up while she still may — a real account, fetched, with two signatures (the
    first the default), and a second account, disabled — so that each refused command would really
    change something; then an administrator takes her right away.  Everything goes through the real
    ``bimmailctl`` as alice's uid, against the real Dovecot and SMTP server."""
    alice, carol = local_users.alice, local_users.carol
    sock = system.socket_path
    ca_file = short_dir / "ca.pem"  # the daemon reads a CA file only if the user could: alice must reach it
    shutil.copyfile(mail_servers.ca_file, ca_file)
    ca_file.chmod(0o644)
    imap_port, smtp_port = mail_servers.dovecot.ports["imaps"], mail_servers.smtp.ports["starttls"]
    added = await alice.ctl(
        sock, "account", "add", "--name", "Work", "--email", mail_servers.user.login, "--password-stdin",
        "--imap-host", "127.0.0.1", "--imap-port", str(imap_port), "--imap-security", "ssl",
        "--smtp-host", "127.0.0.1", "--smtp-port", str(smtp_port), "--smtp-security", "starttls",
        "--tls-ca-file", str(ca_file), stdin=mail_servers.user.password + "\n",
    )  # fmt: skip
    assert added.code == 0, added.stdout + added.stderr
    perso = await alice.ctl(sock, *ADD, "--name", "Perso", "--disabled", stdin="pw\n")
    assert perso.code == 0, perso.stderr
    formal, short = tmp_path / "formal.txt", tmp_path / "short.txt"
    formal.write_text("Alice Martin\nACME\n")
    short.write_text("A. M.\n")
    for name, text, *default in (("Formal", formal, "--default"), ("Short", short)):
        signed = await alice.ctl(sock, "signature", "add", "Work", "--name", name, "--text-file", str(text), *default)
        assert signed.code == 0, signed.stderr
    mail_servers.user.deliver(make_message(1))
    assert (await alice.ctl(sock, "fetch", "--wait", "Work")).code == 0

    denied = await carol.ctl(sock, "user", "deny-config", alice.name)
    assert denied.code == 0, denied.stderr
    before = await everything_a_change_could_touch(alice, sock)
    # There is something to change: the refusals below are not no-ops.
    assert [(s["name"], s["position"], s["default"]) for s in before["signatures"]["signatures"]] == [
        ("Formal", 1, True),
        ("Short", 2, False),
    ]
    assert (before["Work"]["primary"], before["Work"]["enabled"], before["Perso"]["enabled"]) == (True, True, False)
    assert before["folders"]["INBOX"][0] and not before["folders"]["Junk"][0], before["folders"]

    for change in (
        (*ADD, "--name", "Third"),
        ("account", "modify", "Work", "--name", "Renamed", "--separator", ";"),
        ("account", "delete", "Work", "--yes"),
        ("account", "primary", "Perso"),
        ("account", "enable", "Perso"),
        ("account", "disable", "Work"),
        ("account", "folders", "Work", "--select", "Junk"),
        ("account", "folders", "Work", "--no-refresh", "--unselect", "INBOX"),
        ("signature", "add", "Work", "--name", "Third", "--text-file", str(short)),
        ("signature", "modify", "Work", "Formal", "--rename", "Casual", "--text-file", str(short)),
        ("signature", "delete", "Work", "Formal"),
        ("signature", "move", "Work", "Formal", "down"),
        ("signature", "move", "Work", "Short", "--position", "1"),
        ("signature", "default", "Work", "Short"),
        ("signature", "default", "Work", "--none"),
    ):
        refused = await alice.ctl(sock, "--json", *change, stdin="pw\n")
        assert refused.code == 6, (change, refused.stdout, refused.stderr)  # 6: permission denied
        assert json.loads(refused.stdout)["error"]["name"] == "permission_denied", (change, refused.stdout)
        assert "an administrator must allow it" in refused.stderr, (change, refused.stderr)
    assert await everything_a_change_could_touch(alice, sock) == before

    # Still allowed: listing, testing, fetching, sending, and reading the signatures.
    listed = await alice.ctl(sock, "account", "list")
    assert listed.code == 0 and "Work" in listed.stdout and "Perso" in listed.stdout, listed.stderr
    tested = await alice.ctl(sock, "account", "test", "Work")
    assert tested.code == 0, tested.stdout + tested.stderr
    assert tested.stdout.splitlines()[-1] == "Result: both servers work with these settings."
    mail_servers.user.deliver(make_message(2))
    [fetched] = (await shown(alice, sock, "fetch", "--wait", "Work"))["accounts"]
    assert (fetched["account"], fetched["state"]) == ("Work", "ok"), fetched
    # The new message is here (this fetch brought it, or the push watcher's that it joined).
    inbox = await shown(alice, sock, "account", "folders", "Work", "--no-refresh")
    assert next(f["messages"] for f in inbox["folders"] if f["name"] == "INBOX") == 2
    sent = await alice.ctl(
        sock, "send", "--from", "Work", "--to", "bob@example.net", "--subject", "Sent while denied", "--body-stdin",
        stdin="Bonjour\n",
    )  # fmt: skip
    assert sent.code == 0 and "accepted  bob@example.net" in sent.stdout, sent.stdout + sent.stderr
    [delivery] = await mail_servers.smtp.wait_for_deliveries(1)
    assert (delivery.rcpt_tos, delivery.auth_login) == (["bob@example.net"], mail_servers.user.login)
    assert delivery.message["Subject"] == "Sent while denied"
    assert "Alice Martin" in delivery.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    signatures = await alice.ctl(sock, "signature", "list", "Work")
    assert signatures.code == 0 and "Formal" in signatures.stdout, signatures.stderr
    preview = await alice.ctl(sock, "signature", "preview", "Work", "Formal")
    assert preview.code == 0 and "Alice Martin\nACME" in preview.stdout, preview.stderr
    assert (await shown(alice, sock, "signature", "list", "Work")) == before["signatures"]


async def test_default_config_right_deny_on_the_command_line(
    short_dir: Path, tmp_path: Path, local_users: LocalUsers
) -> None:
    """R-L3: ``bimmaild --system --default-config-right deny``, a real process started as the system
    unit would, gives a user it has never seen no right: hello says so (front-ends grey out their
    buttons) and a change is refused; an administrator still may."""
    short_dir.chmod(0o755)  # the socket's directory must be reachable by the users
    sock = short_dir / "run" / "bimmaild.sock"
    process = await spawn_daemon(
        sock, tmp_path / "data", "--system", "--admin-group", local_users.admin_group,
        "--default-config-right", "deny", "--config", str(tmp_path / "no-config.toml"),
    )  # fmt: skip
    try:
        [alice_hello] = await local_users.alice.raw(sock, ("hello", {"protocol": 1}))
        hello = alice_hello["result"]
        assert (hello["mode"], hello["user"]["name"]) == ("system", local_users.alice.name)
        assert (hello["is_admin"], hello["may_configure"]) == (False, False)
        refused = await local_users.alice.ctl(sock, *ADD, "--name", "Work", stdin="pw\n")
        assert refused.code == 6 and "an administrator must allow it" in refused.stderr, refused.stderr
        [carol_hello] = await local_users.carol.raw(sock, ("hello", {"protocol": 1}))
        assert (carol_hello["result"]["is_admin"], carol_hello["result"]["may_configure"]) == (True, True)
        users = await shown(local_users.carol, sock, "user", "list")
        alice = next(u for u in users if u["name"] == local_users.alice.name)
        assert (alice["may_configure"], alice["decision"]) == (False, "default")  # nobody decided: the flag did
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0, "a clean shutdown"


async def test_only_administrators_administer(system: RunningDaemon, local_users: LocalUsers) -> None:
    alice, bob = local_users.alice, local_users.bob
    sock = system.socket_path
    for attempt in (("user", "list"), ("user", "deny-config", bob.name), ("automation", "off")):
        refused = await alice.ctl(sock, *attempt)
        assert refused.code == 6, (attempt, refused.stderr)
    missing = await local_users.carol.ctl(sock, "user", "allow-config", "no-such-user-here")
    assert missing.code == 4


async def test_administrator_acts_for_a_user(system: RunningDaemon, local_users: LocalUsers) -> None:
    """--user: an administrator works on a user's accounts (also when that user may not)."""
    alice, bob, carol = local_users.alice, local_users.bob, local_users.carol
    sock = system.socket_path
    await add_account(alice, sock, "Work")
    assert (await carol.ctl(sock, "user", "deny-config", alice.name)).code == 0
    assert await names(carol, sock) == []  # the administrator's own accounts: none
    as_alice = await carol.ctl(sock, "--user", alice.name, "--json", "account", "list")
    assert [a["name"] for a in json.loads(as_alice.stdout)] == ["Work"]
    changed = await carol.ctl(sock, "--user", alice.name, "account", "modify", "Work", "--name", "Bureau")
    assert changed.code == 0, changed.stderr
    added = await carol.ctl(sock, "--user", alice.name, *ADD, "--name", "Perso", stdin="pw\n")
    assert added.code == 0, added.stderr
    assert await names(alice, sock) == ["Bureau", "Perso"]
    shown = json.loads((await alice.ctl(sock, "--json", "account", "show", "Perso")).stdout)
    assert shown["owner"]["name"] == alice.name  # created for alice, not for carol
    refused = await bob.ctl(sock, "--user", alice.name, "account", "list")
    assert refused.code == 6 and "only an administrator" in refused.stderr
    # root administers too, from its own process.
    async with await Client.connect(sock, act_as=alice.name) as root_as_alice:
        assert [a["name"] for a in await root_as_alice.call("account.list")] == ["Bureau", "Perso"]


async def test_a_client_lying_about_its_identity_gains_nothing(system: RunningDaemon, local_users: LocalUsers) -> None:
    alice, bob = local_users.alice, local_users.bob
    sock = system.socket_path
    await add_account(bob, sock, "Work")
    answers = await alice.raw(
        sock,
        ("hello", {"protocol": 1, "act_as": "root"}),
        ("hello", {"protocol": 1, "act_as": bob.name}),
        ("hello", {"protocol": 1, "uid": bob.uid}),
        ("account.list", {}),
        ("hello", {"protocol": 1, "client": f"{bob.name} (uid {bob.uid})", "act_as": alice.name}),
        ("account.list", {}),
        ("account.show", {"account": "Work"}),
    )
    assert [a.get("error", {}).get("name") for a in answers] == [
        "permission_denied",
        "permission_denied",
        "invalid_params",
        "handshake_required",
        None,
        None,
        "not_found",
    ]
    assert answers[4]["result"]["user"] == {"uid": alice.uid, "name": alice.name}
    assert answers[4]["result"]["connected_as"]["uid"] == alice.uid
    assert answers[5]["result"] == []


async def test_events_go_to_their_owner_only(system: RunningDaemon, local_users: LocalUsers) -> None:
    alice, bob = local_users.alice, local_users.bob
    sock = system.socket_path
    async with await Client.connect(sock, act_as=alice.name) as watcher:
        await watcher.call("subscribe", {"topics": ["account.changed"]})
        await add_account(bob, sock, "Bob's")
        await add_account(alice, sock, "Alice's")
        event, params = await anext(watcher.events())
        assert (event, params["account"]["name"]) == ("account.changed", "Alice's")


async def test_default_right_can_be_deny(short_dir: Path, tmp_path: Path, local_users: LocalUsers) -> None:
    running = await system_daemon(short_dir, tmp_path, local_users, default_may_configure=False)
    try:
        sock = running.socket_path
        refused = await local_users.bob.ctl(sock, *ADD, "--name", "Work", stdin="pw\n")
        assert refused.code == 6
        assert (await local_users.carol.ctl(sock, "user", "allow-config", local_users.bob.name)).code == 0
        await add_account(local_users.bob, sock, "Work")
        admin_add = await local_users.carol.ctl(sock, *ADD, "--name", "Admin's", stdin="pw\n")
        assert admin_add.code == 0  # administrators always may
    finally:
        await stop_daemon(running)


async def test_ca_file_the_user_cannot_read_is_refused(system: RunningDaemon, local_users: LocalUsers) -> None:
    """The daemon runs as root: it must not read, for a user, a file that user may not read."""
    refused = await local_users.alice.ctl(
        system.socket_path, *ADD, "--name", "Work", "--tls-ca-file", "/etc/shadow", stdin="pw\n"
    )
    assert refused.code == 2 and "cannot read /etc/shadow" in refused.stderr and "tls_ca_file" in refused.stderr


async def test_ca_file_the_user_can_read_is_accepted(
    system: RunningDaemon, local_users: LocalUsers, short_dir: Path, tmp_path: Path
) -> None:
    material = make_tls(short_dir / "ca")
    shared = short_dir / "ca-copy.pem"
    shared.write_bytes(material.ca_file.read_bytes())
    shared.chmod(0o644)
    accepted = await local_users.alice.ctl(
        system.socket_path, *ADD, "--name", "Work", "--tls-ca-file", str(shared), stdin="pw\n"
    )
    assert accepted.code == 0, accepted.stderr
    hidden = tmp_path / "private"  # pytest's tmp dirs are 0700: alice cannot get in
    hidden.mkdir()
    (hidden / "ca.pem").write_bytes(shared.read_bytes())
    (hidden / "ca.pem").chmod(0o644)
    refused = await local_users.alice.ctl(
        system.socket_path, "account", "modify", "Work", "--tls-ca-file", str(hidden / "ca.pem")
    )
    assert refused.code == 2 and "may not" in refused.stderr


async def test_socket_is_open_to_users_but_its_directory_is_ours(system: RunningDaemon) -> None:
    assert system.socket_path.stat().st_mode & 0o777 == 0o666
    assert system.socket_path.parent.stat().st_mode & 0o777 == 0o755
    lock = system.socket_path.with_name(system.socket_path.name + ".lock")
    assert lock.stat().st_mode & 0o777 == 0o600


async def test_per_user_daemon_refuses_other_users(
    daemon: RunningDaemon, local_users: LocalUsers, short_dir: Path
) -> None:
    short_dir.chmod(0o755)
    daemon.socket_path.parent.chmod(0o755)
    daemon.socket_path.chmod(0o666)  # even with the door open, the peer uid is checked
    refused = await local_users.alice.ctl(daemon.socket_path, "account", "list")
    assert refused.code == 6 and "serves uid 0 only" in refused.stderr


async def test_socket_group_limits_who_may_connect(short_dir: Path, tmp_path: Path, local_users: LocalUsers) -> None:
    running = await system_daemon(short_dir, tmp_path, local_users, socket_group=local_users.admin_group)
    try:
        sock = running.socket_path
        assert sock.stat().st_mode & 0o777 == 0o660
        outside = await local_users.alice.ctl(sock, "account", "list")
        assert outside.code == 3 and "permission denied on the socket" in outside.stderr
        member = await local_users.carol.ctl(sock, "account", "list")
        assert member.code == 0, member.stderr
    finally:
        await stop_daemon(running)
