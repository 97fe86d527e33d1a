"""Automatic fetch, its three switches, IDLE push and progress events (R-E1, R-L1), on Dovecot.

The schedule is driven deterministically: jobs are inspected and made due
with ``Scheduler.run_due_now`` (never by sleeping for an interval).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bimmailctl.client import Client
from tests.helpers import BIN_DIR, RunningDaemon, daemon_config, run_ctl, start_daemon, stop_daemon
from tests.servers.dovecot import Dovecot, ImapUser
from tests.servers.fixtures import MailServers
from tests.sync.test_sync import add_account, fetch, make_message


def jobs(daemon: RunningDaemon) -> dict[str, Any]:
    return {job.id: job for job in daemon.daemon.scheduler.scheduler.get_jobs() if job.id.startswith("fetch:")}


async def next_event(client: Client, *names: str, timeout: float = 10) -> tuple[str, dict[str, Any]]:
    async with asyncio.timeout(timeout):
        async for event, params in client.events():
            if event in names:
                return event, params
    raise AssertionError("connection closed")


async def wait_push(client: Client, account: str = "Work", state: str = "idle") -> None:
    for _ in range(200):
        if (await client.call("account.show", {"account": account}))["status"]["push"] == state:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"push of {account} never became {state}")


async def test_switches_decide_the_fetch_jobs(client: Client, daemon: RunningDaemon, mail_servers: MailServers) -> None:
    """Global switch × enabled × included: a job exists exactly when all three are on, at once."""
    await add_account(client, mail_servers)
    account_id = (await client.call("account.show", {"account": "Work"}))["id"]
    assert (await client.call("automation.get"))["enabled"] is True, "on by default"
    assert set(jobs(daemon)) == {f"fetch:{account_id}"}
    await client.call("automation.set", {"enabled": False})
    assert jobs(daemon) == {}
    await client.call("automation.set", {"enabled": True, "interval_minutes": 7})
    assert jobs(daemon)[f"fetch:{account_id}"].trigger.interval.total_seconds() == 7 * 60
    await client.call("account.modify", {"account": "Work", "auto_fetch": False})
    assert jobs(daemon) == {}
    await client.call("account.modify", {"account": "Work", "auto_fetch": True})
    await client.call("account.disable", {"account": "Work"})
    assert jobs(daemon) == {}
    await client.call("account.enable", {"account": "Work"})
    info = await client.call("automation.get")
    assert info["accounts"] == [account_id] and info["next_run"] is not None


async def test_scheduled_fetch_runs_and_respects_the_switches(
    client: Client, daemon: RunningDaemon, mail_servers: MailServers
) -> None:
    mail_servers.user.deliver_many([make_message(i) for i in range(3)])
    await add_account(client, mail_servers)
    await client.call("account.add", {**mail_servers.account_params(name="Manual"), "test": False, "auto_fetch": False})
    await client.subscribe(["fetch.done"])
    daemon.daemon.scheduler.run_due_now()
    _, done = await next_event(client, "fetch.done")
    assert (done["account"], done["new"]) == ("Work", 3)
    listed = {a["name"]: a["status"] for a in await client.call("account.list")}
    assert listed["Manual"]["state"] == "new", "not included: not fetched automatically"
    assert listed["Work"]["next_fetch_at"] is not None
    # The job that ran comes back one interval later (15 min by default, with up to a minute of jitter).
    [job] = jobs(daemon).values()
    ahead = (job.next_run_time - datetime.now(UTC)).total_seconds()
    assert 14 * 60 - 1 <= ahead <= 16 * 60, ahead
    manual = await client.call("fetch", {"wait": True, "accounts": ["Manual"]})
    assert manual["accounts"][0]["state"] == "ok", "a manual fetch takes it"

    await client.call("automation.set", {"enabled": False})
    daemon.daemon.scheduler.run_due_now()
    await asyncio.sleep(0.3)  # nothing may happen: give it the chance to
    assert [a["status"]["fetching"] for a in await client.call("account.list")] == [False, False]


async def test_needs_attention_stops_automatic_fetch_until_modified(
    client: Client, daemon: RunningDaemon, mail_servers: MailServers
) -> None:
    await add_account(client, mail_servers, password="wrong")
    await client.subscribe(["fetch.done"])
    daemon.daemon.scheduler.run_due_now()
    _, done = await next_event(client, "fetch.done")
    assert done["state"] == "needs-attention"
    daemon.daemon.scheduler.run_due_now()
    await asyncio.sleep(0.3)
    assert not (await client.call("account.show", {"account": "Work"}))["status"]["fetching"]
    result = await client.call("account.modify", {"account": "Work", "password": mail_servers.user.password})
    assert any("automatic fetches resume" in note for note in result["notes"])
    daemon.daemon.scheduler.run_due_now()
    _, done = await next_event(client, "fetch.done")
    assert done["state"] == "ok"


async def test_switches_survive_a_restart(short_dir: Path, tmp_path: Path, mail_servers: MailServers) -> None:
    config = daemon_config(short_dir, tmp_path)
    running = await start_daemon(config)
    try:
        async with await Client.connect(config.socket_path) as client:
            await add_account(client, mail_servers, auto_fetch=False)
            await client.call("automation.set", {"enabled": False, "interval_minutes": 42})
    finally:
        await stop_daemon(running)
    running = await start_daemon(config)
    try:
        async with await Client.connect(config.socket_path) as client:
            info = await client.call("automation.get")
            assert (info["enabled"], info["interval_minutes"]) == (False, 42)
            assert (await client.call("account.show", {"account": "Work"}))["auto_fetch"] is False
    finally:
        await stop_daemon(running)


async def test_progress_events_in_order_then_done(
    client: Client, daemon: RunningDaemon, mail_servers: MailServers
) -> None:
    mail_servers.user.deliver_many([make_message(i, attachment=400_000) for i in range(40)])  # several batches
    await add_account(client, mail_servers)
    await client.subscribe(["fetch.progress", "fetch.done"])
    result = asyncio.ensure_future(client.call("fetch", {"wait": True}))
    seen: list[tuple[str, dict[str, Any]]] = []
    while True:
        event, params = await next_event(client, "fetch.progress", "fetch.done")
        seen.append((event, params))
        if event == "fetch.done":
            break
    await result
    inbox = [p for e, p in seen if e == "fetch.progress" and p["folder"] == "INBOX"]
    assert inbox[0]["messages_done"] == 0 and inbox[-1]["messages_done"] == 40
    assert len(inbox) >= 3, "one event per stored batch"
    assert [p["bytes_done"] for p in inbox] == sorted(p["bytes_done"] for p in inbox)
    assert all(p["messages_total"] == 40 for p in inbox)
    assert seen[-1][0] == "fetch.done" and seen[-1][1]["new"] == 40


async def test_idle_delivers_new_mail_without_a_scheduled_fetch(
    client: Client, daemon: RunningDaemon, mail_servers: MailServers
) -> None:
    await add_account(client, mail_servers)
    await fetch(client)
    await wait_push(client)
    scheduled = {job_id: job.next_run_time for job_id, job in jobs(daemon).items()}
    assert scheduled, "the account has its automatic fetch job"
    await client.subscribe(["message.new"])
    mail_servers.user.append(make_message(500, subject="Arrivé par IDLE"), "INBOX")
    _, new = await next_event(client, "message.new", timeout=5)
    assert (new["folder"], new["subject"]) == ("INBOX", "Arrivé par IDLE")
    # No scheduled fetch ran meanwhile: a run would have moved its job's next run time.
    assert {job_id: job.next_run_time for job_id, job in jobs(daemon).items()} == scheduled


@contextlib.asynccontextmanager
async def pushing_account(short_dir: Path, tmp_path: Path) -> AsyncIterator[tuple[Dovecot, ImapUser, Client]]:
    """A Dovecot of the test's own (it may be restarted, its users changed), a daemon, and an
    account on it, fetched once, with push idle on its INBOX."""
    with Dovecot.running() as server:
        user = server.add_user()
        config = daemon_config(short_dir, tmp_path)
        running = await start_daemon(config)
        try:
            async with await Client.connect(config.socket_path) as client:
                await client.call("account.add", user.account_params())
                await fetch(client)
                await wait_push(client)
                yield server, user, client
        finally:
            await stop_daemon(running)


async def test_idle_reconnects_after_server_restart(short_dir: Path, tmp_path: Path) -> None:
    async with pushing_account(short_dir, tmp_path) as (server, user, client):
        server.restart()  # drops the IDLE connection; the watcher reconnects after its back-off
        await client.subscribe(["message.new"])
        user.append(make_message(7, subject="après redémarrage"), "INBOX")
        _, new = await next_event(client, "message.new", timeout=5)
        assert new["subject"] == "après redémarrage"


async def test_ctl_automation_watch_and_progress(
    daemon: RunningDaemon, client: Client, mail_servers: MailServers
) -> None:
    sock = daemon.socket_path
    shown = await run_ctl(sock, "automation")
    assert "automatic fetch  on" in shown.stdout and "15 minutes" in shown.stdout
    changed = await run_ctl(sock, "automation", "off", "--interval", "30")
    assert "automatic fetch  off" in changed.stdout and "30 minutes" in changed.stdout
    interval_only = await run_ctl(sock, "automation", "--interval", "20")  # the switch stays as it is
    assert "automatic fetch  off" in interval_only.stdout and "20 minutes" in interval_only.stdout
    assert (
        json.loads((await run_ctl(sock, "automation", "--json", "--interval", "30")).stdout)["interval_minutes"] == 30
    )
    mail_servers.user.deliver_many([make_message(i) for i in range(5)])
    await add_account(client, mail_servers)
    watcher = await asyncio.create_subprocess_exec(
        str(BIN_DIR / "bimmailctl"), "--socket", str(sock), "--json", "watch", stdout=asyncio.subprocess.PIPE
    )
    await asyncio.sleep(0.5)  # the watcher subscribes
    fetched = await run_ctl(sock, "fetch", "--wait")
    assert fetched.code == 0
    assert "Work INBOX: 5/5 messages" in fetched.stderr, fetched.stderr  # plain progress lines: not a TTY
    assert watcher.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(10):
        while not any('"fetch.done"' in line for line in lines):
            lines.append((await watcher.stdout.readline()).decode())
    watcher.terminate()
    await watcher.wait()
    assert any('"event": "account.state"' in line and '"fetching"' in line for line in lines)
    status = await run_ctl(sock, "status")
    assert "automatic fetch: off, every 30 min" in status.stdout
    [row] = [line.split() for line in status.stdout.splitlines() if line.startswith("Work ")]
    assert row[:2] == ["Work", "ok"]


async def test_manual_fetch_joins_the_automatic_one(
    client: Client, daemon: RunningDaemon, mail_servers: MailServers
) -> None:
    """A manual fetch asked while the automatic one runs waits for it: one run, one result."""
    mail_servers.user.deliver_many([make_message(i, attachment=50_000) for i in range(200)])
    await add_account(client, mail_servers)
    await client.subscribe(["fetch.done"])
    daemon.daemon.scheduler.run_due_now()
    for _ in range(200):
        if (await client.call("account.show", {"account": "Work"}))["status"]["fetching"]:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the automatic fetch never started")
    manual = await client.call("fetch", {"wait": True})
    assert manual["accounts"][0]["new"] == 200, "the result of the run it joined"
    await next_event(client, "fetch.done")
    with pytest.raises(TimeoutError):  # no second run
        await next_event(client, "fetch.done", timeout=1.0)


async def test_a_missed_run_after_suspend_runs_once(
    client: Client, daemon: RunningDaemon, mail_servers: MailServers
) -> None:
    """A job hours late (the machine slept) runs once, not once per missed interval (coalesce, no grace limit)."""
    await add_account(client, mail_servers)
    await client.call("automation.set", {"interval_minutes": 1})
    await client.subscribe(["fetch.done"])
    [job] = jobs(daemon).values()
    job.modify(next_run_time=datetime.now(UTC) - timedelta(hours=3))
    daemon.daemon.scheduler.scheduler.wakeup()
    await next_event(client, "fetch.done")
    with pytest.raises(TimeoutError):  # exactly one catch-up run, not 180 of them
        await next_event(client, "fetch.done", timeout=1.0)
    assert jobs(daemon)[job.id].next_run_time > datetime.now(UTC)


async def test_scheduled_fetch_of_two_accounts_one_failing(
    client: Client, daemon: RunningDaemon, mail_servers: MailServers
) -> None:
    mail_servers.user.deliver_many([make_message(i) for i in range(2)])
    await add_account(client, mail_servers)
    await client.call("account.add", {**mail_servers.account_params(name="Broken"), "password": "wrong", "test": False})
    await client.subscribe(["fetch.done"])
    daemon.daemon.scheduler.run_due_now()
    results: dict[str, dict[str, Any]] = {}
    while len(results) < 2:
        _, params = await next_event(client, "fetch.done")
        results[params["account"]] = params
    assert results["Work"]["state"] == "ok" and results["Work"]["new"] == 2
    assert results["Broken"]["state"] == "needs-attention"


async def test_idle_is_reissued_before_the_server_timeout(
    short_dir: Path, tmp_path: Path, mail_servers: MailServers
) -> None:
    """IDLE ends and starts again on its own period (25 min by default; 0.3 s here), and still delivers."""
    from dataclasses import replace

    config = replace(daemon_config(short_dir, tmp_path), idle_seconds=0.3)
    running = await start_daemon(config)
    try:
        async with await Client.connect(config.socket_path) as client:
            await add_account(client, mail_servers)
            await fetch(client)
            await wait_push(client)
            await asyncio.sleep(1.2)  # several IDLE / DONE cycles
            await client.subscribe(["message.new"])
            mail_servers.user.append(make_message(9, subject="après plusieurs IDLE"), "INBOX")
            _, new = await next_event(client, "message.new", timeout=5)
            assert new["subject"] == "après plusieurs IDLE"
            assert (await client.call("account.show", {"account": "Work"}))["status"]["push"] == "idle"
    finally:
        await stop_daemon(running)
