"""Many clients benchmark: request latency with 200 connections while a fetch downloads thousands of messages.

Issue 9: the control socket must stay responsive under load.  A real ``bimmaild`` process (log
level info) serves one account on the test Dovecot.  Three scenarios, all in the same run:

1. baseline: 1 connection, no fetch, the request mix sent one after the other;
2. ``--clients`` connections at once, no fetch, ``--rounds`` rounds of the mix each;
3. the same connections while a fetch downloads ``--messages`` new messages: each connection
   repeats the mix until the fetch is over.

The mix is account.list, status, messages.list (20 of INBOX), account.show.  Each connection
sends its next request when the previous one is answered (closed loop), so up to ``--clients``
requests are in flight.  Latency is measured in the client around ``Client.call``; all clients
share one Python process, whose own event loop is part of the figure.  Run from the repository
root:

    PYTHONPATH=. .venv/bin/python benchmarks/many_clients.py [--messages 3000] [--clients 200] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bimmailctl.client import Client
from tests.helpers import spawn_daemon
from tests.servers.dovecot import Dovecot, ImapUser

TEMPLATE = b"From: a@example.org\r\nSubject: message %d\r\nMessage-ID: <%d.%s@bench>\r\n\r\n%s\r\n"
MIX: list[tuple[str, dict[str, Any]]] = [
    ("account.list", {}),
    ("status", {}),
    ("messages.list", {"account": "Bench", "folder": "INBOX", "limit": 20}),
    ("account.show", {"account": "Bench"}),
]


@dataclass
class Scenario:
    name: str
    daemon_cpu: float = 0.0  # CPU seconds bimmaild used during the scenario
    latencies: list[float] = field(default_factory=list)  # seconds, one per answered request
    errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0  # wall time of the scenario

    def percentile(self, p: int) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] if self.latencies else float("nan")
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[p - 1]

    def summary(self, baseline: Scenario | None) -> dict[str, Any]:
        row: dict[str, Any] = {
            "scenario": self.name,
            "requests": len(self.latencies) + sum(self.errors.values()),
            "errors": dict(self.errors),
            "p50_ms": self.percentile(50) * 1000,
            "p95_ms": self.percentile(95) * 1000,
            "p99_ms": self.percentile(99) * 1000,
            "max_ms": max(self.latencies, default=float("nan")) * 1000,
            "requests_per_s": len(self.latencies) / self.seconds if self.seconds else float("nan"),
            "daemon_cpu_percent": 100 * self.daemon_cpu / self.seconds if self.seconds else float("nan"),
        }
        if baseline is not None:
            for p in (50, 95, 99):
                row[f"p{p}_x_baseline"] = self.percentile(p) / baseline.percentile(p)
        return row


async def timed_call(client: Client, scenario: Scenario, method: str, params: dict[str, Any]) -> Any:
    started = time.perf_counter()
    try:
        result = await client.call(method, params)
    except Exception as exc:
        scenario.errors[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1
        return None
    scenario.latencies.append(time.perf_counter() - started)
    return result


async def connection(socket: Path, scenario: Scenario, *, rounds: int | None, until: asyncio.Event | None) -> None:
    """One client: ``rounds`` rounds of the mix, or rounds until ``until`` is set."""
    try:
        client = await Client.connect(socket, client_name="bench", timeout=60)
    except Exception as exc:
        scenario.errors[f"connect: {type(exc).__name__}: {str(exc)[:80]}"] += 1
        return
    async with client:
        done = 0
        while (rounds is not None and done < rounds) or (until is not None and not until.is_set()):
            for method, params in MIX:
                await timed_call(client, scenario, method, params)
            done += 1


async def crowd(
    socket: Path, pid: int, scenario: Scenario, clients: int, *, rounds: int | None, until: asyncio.Event | None
) -> None:
    started, cpu = time.perf_counter(), cpu_seconds(pid)
    await asyncio.gather(*(connection(socket, scenario, rounds=rounds, until=until) for _ in range(clients)))
    scenario.seconds = time.perf_counter() - started
    scenario.daemon_cpu = cpu_seconds(pid) - cpu


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def fetch(client: Client) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    result = await client.call("fetch", {"accounts": ["Bench"], "wait": True})
    [account] = result["accounts"]
    if account["state"] != "ok":
        raise RuntimeError(f"fetch failed: {account}")
    return time.perf_counter() - started, account


def deliver(user: ImapUser, start: int, count: int, size: int) -> None:
    body = (b"x" * 76 + b"\r\n") * (size // 78)
    user.deliver_many([TEMPLATE % (i, i, user.login.encode(), body) for i in range(start, start + count)])


def vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


async def run(
    server: Dovecot, messages: int, size: int, clients: int, rounds: int, baseline_rounds: int
) -> dict[str, Any]:
    user = server.add_user()
    deliver(user, 0, messages, size)
    base = Path(tempfile.mkdtemp(prefix="bm-many-", dir="/tmp"))
    socket = base / "s.sock"
    process = await spawn_daemon(socket, base / "data", "--log-level", "info")
    try:
        async with await Client.connect(socket) as admin:
            await admin.call("account.add", {
                "name": "Bench", "email": user.login, "password": user.password, "test": False,
                "imap": {"host": "127.0.0.1", "port": server.ports["imap"], "security": "starttls"},
                "smtp": {"host": "127.0.0.1", "port": 25, "security": "none", "auth": False},
                "tls_ca_file": str(server.tls.ca_file), "auto_fetch": False,  # no push: only our fetches
            })  # fmt: skip
            alone, counts = await fetch(admin)
            print(f"fetch of {counts['new']} messages, nothing else running: {alone:.2f} s", file=sys.stderr)

            baseline = Scenario("1 connection, no fetch (baseline)")
            await crowd(socket, process.pid, baseline, 1, rounds=baseline_rounds, until=None)
            print(f"{baseline.name}: done", file=sys.stderr)

            idle = Scenario(f"{clients} connections, no fetch")
            await crowd(socket, process.pid, idle, clients, rounds=rounds, until=None)
            print(f"{idle.name}: done", file=sys.stderr)

            deliver(user, messages, messages, size)
            loaded = Scenario(f"{clients} connections, during a fetch of {messages} messages")
            over = asyncio.Event()

            async def fetch_then_stop() -> tuple[float, dict[str, Any]]:
                try:
                    return await fetch(admin)
                finally:
                    over.set()

            fetching = asyncio.create_task(fetch_then_stop())
            await crowd(socket, process.pid, loaded, clients, rounds=None, until=over)
            under_load, counts = await fetching
            print(f"fetch of {counts['new']} messages under load: {under_load:.2f} s", file=sys.stderr)
        peak = vm_hwm(process.pid)
    finally:
        process.terminate()
        await process.wait()
    scenarios = [baseline, idle, loaded]
    return {
        "messages": messages,
        "clients": clients,
        "fetch_alone_s": alone,
        "fetch_under_load_s": under_load,
        "daemon_peak_rss_mb": peak / 1e6,
        "scenarios": [s.summary(None if s is baseline else baseline) for s in scenarios],
    }


def print_table(report: dict[str, Any]) -> None:
    head = f"{'scenario':52} {'requests':>8} {'errors':>6} " + " ".join(
        f"{h:>7}" for h in ("p50 ms", "p95 ms", "p99 ms", "max ms", "req/s")
    )
    head += f" {'cpu %':>5}"
    print(head + "   × baseline p50 / p95 / p99")
    for row in report["scenarios"]:
        ratios = " / ".join(f"{row[f'p{p}_x_baseline']:.1f}" for p in (50, 95, 99)) if "p50_x_baseline" in row else "1"
        print(
            f"{row['scenario']:52} {row['requests']:>8} {sum(row['errors'].values()):>6} {row['p50_ms']:>7.2f} "
            f"{row['p95_ms']:>7.2f} {row['p99_ms']:>7.2f} {row['max_ms']:>7.1f} {row['requests_per_s']:>7.0f} "
            f"{row['daemon_cpu_percent']:>5.0f}   {ratios}"
        )
        for error, count in row["errors"].items():
            print(f"    {count} × {error}")
    print(
        f"fetch of {report['messages']} messages: {report['fetch_alone_s']:.2f} s alone, "
        f"{report['fetch_under_load_s']:.2f} s with {report['clients']} busy connections; "
        f"daemon peak RSS {report['daemon_peak_rss_mb']:.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000, help="messages fetched under load (default 3000)")
    parser.add_argument("--size", type=int, default=20_000, help="bytes of each message body (default 20,000)")
    parser.add_argument("--clients", type=int, default=200, help="concurrent connections (default 200)")
    parser.add_argument("--rounds", type=int, default=10, help="rounds of the mix per connection without fetch")
    parser.add_argument("--baseline-rounds", type=int, default=500, help="rounds of the mix on 1 connection")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    with Dovecot.running() as server:
        report = asyncio.run(run(server, args.messages, args.size, args.clients, args.rounds, args.baseline_rounds))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)


if __name__ == "__main__":
    main()
