"""Initial-sync benchmark (issue 4): the daemon against a raw-socket floor and mbsync, same run.

It starts the test Dovecot (``tests.servers.dovecot``), writes a generated mailbox of N messages
of realistic sizes into one user's INBOX (``mailgen.py``), reads it once untimed (Dovecot indexes
the folder and the files are in the page cache for everyone), then for each run measures every
client, alternating and in a rotated order, each writing into a fresh directory:

* raw read-only            ``baseline.py``: one ``UID FETCH 1:*``, messages read and discarded
* raw → Maildir (no fsync) the same, each message stored (tmp → cur): the baseline of the ratios
* mbsync FSync yes / no    isync's mbsync, installed from Debian when missing (root)
* daemon (bimmaild)        ``daemon.daemon_initial_sync()``: bimmaild + ``bimmailctl fetch --wait``

All use STARTTLS on 127.0.0.1.  ``--references`` adds clear-text raw runs (DESIGN.md §6 measured
those) and a raw → Maildir run that converts CRLF to LF as mbsync does.

Why ``os.sync()`` before every client: without it the previous client's gigabyte of dirty pages
is written back while the next one runs, and whoever comes second pays for it (measured: raw →
Maildir of 2,000 messages 1.7 s instead of 0.6 s).  Targets are deleted only at the end (when
the disk has room): DESIGN.md §6 found /tmp here slow to create files right after deleting many.

Run from the repository root (the test fixtures are imported from ``tests``)::

    PYTHONPATH=. .venv/bin/python benchmarks/initial_sync.py [--messages N] [--runs R] [--skip-mbsync]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import clients, daemon, mailgen, mbsync
from benchmarks.clients import Client, Sample, Server
from tests.servers.dovecot import DOVECOT, Dovecot

BASELINE_SLUG = "raw-maildir"
MB = 1_000_000


@dataclass
class Outcome:
    client: Client
    samples: list[Sample] = field(default_factory=list)
    note: str = ""  # why there are no (more) samples: not available, failed


@dataclass(frozen=True)
class Setup:
    """What could be prepared; a note says why a client will not run (shown in its row)."""

    mbsync: str | None
    mbsync_note: str
    daemon_note: str


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Initial-sync benchmark: daemon vs raw-socket baseline vs mbsync.")
    parser.add_argument("--messages", type=int, default=20_000, help="messages in the INBOX (default 20,000: ~1 GB)")
    parser.add_argument("--runs", type=int, default=3, help="runs of every client (default 3); medians are reported")
    parser.add_argument("--seed", type=int, default=1, help="mailbox generator seed")
    parser.add_argument("--skip-mbsync", action="store_true", help="do not run (or install) mbsync")
    parser.add_argument("--skip-daemon", action="store_true", help="do not run bimmaild")
    parser.add_argument("--references", action="store_true", help="also clear-text and CRLF→LF raw runs")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()), help="parent of the run dir")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (targets) at the end")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    return parser.parse_args(argv)


def setup(args: argparse.Namespace) -> Setup:
    """mbsync (installed from Debian when missing and root) and the daemon's fetch, or notes on why not."""
    program, mbsync_note, daemon_note = None, "", ""
    if not args.skip_mbsync:
        try:
            program = mbsync.ensure_mbsync()
        except mbsync.MbsyncUnavailable as error:
            mbsync_note = f"skipped: {error}"
            print(f"mbsync: {mbsync_note}", file=sys.stderr)
    if not args.skip_daemon:
        try:
            daemon_note = "" if daemon.fetch_available() else "not available yet"
        except daemon.DaemonUnavailable as error:
            daemon_note = f"not available: {error}"
        if daemon_note:
            print(f"daemon: {daemon_note}", file=sys.stderr)
    return Setup(program, mbsync_note, daemon_note)


def choose_clients(args: argparse.Namespace, ready: Setup) -> list[Outcome]:
    """The clients in table order; those that cannot run keep a row with the reason."""
    chosen = [
        Outcome(clients.RawClient("raw read-only", "raw-read", write=False)),
        Outcome(clients.RawClient("raw → Maildir (no fsync)", BASELINE_SLUG, write=True)),
    ]
    if not args.skip_mbsync:
        program = ready.mbsync or mbsync.MBSYNC
        chosen.append(
            Outcome(clients.MbsyncClient("mbsync FSync yes", "mbsync-fsync", program, True), [], ready.mbsync_note)
        )
        chosen.append(
            Outcome(clients.MbsyncClient("mbsync FSync no", "mbsync-nofsync", program, False), [], ready.mbsync_note)
        )
    if not args.skip_daemon:
        chosen.append(Outcome(clients.DaemonClient(), [], ready.daemon_note))
    if args.references:
        chosen.append(Outcome(clients.RawClient("raw read-only, clear text", "raw-read-clear", False, cleartext=True)))
        chosen.append(
            Outcome(clients.RawClient("raw → Maildir, clear text", "raw-maildir-clear", True, cleartext=True))
        )
        chosen.append(Outcome(clients.RawClient("raw → Maildir, CRLF→LF", "raw-maildir-lf", True, lf=True)))
    return chosen


def _measure_one(outcome: Outcome, server: Server, target: Path, expected: int, label: str) -> None:
    client = outcome.client
    os.sync()  # the previous client's dirty pages are not this one's cost
    try:
        sample = client.run(server, target)
    except daemon.DaemonUnavailable as error:
        outcome.note = "not available yet"
        print(f"daemon: not available yet ({error})", file=sys.stderr)
        return
    except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as error:
        outcome.note = f"failed: {error}"
        print(f"{label} {client.name}: FAILED: {error}", file=sys.stderr)
        return
    outcome.samples.append(sample)
    check = "" if sample.messages == expected else f"  ← {sample.messages:,} messages, expected {expected:,}!"
    clock = time.strftime("%H:%M:%S")  # to line up with other load on the machine
    print(
        f"{clock} {label} {client.name:<28} {sample.seconds:8.2f} s {sample.peak_rss / MB:7.1f} MB{check}",
        file=sys.stderr,
    )


def measure(outcomes: list[Outcome], server: Server, runs: int, workdir: Path, expected: int, keep: bool) -> None:
    """Every client once per run, the order rotated each run; targets deleted at once unless ``keep``."""
    for run in range(runs):
        for outcome in outcomes[run % len(outcomes) :] + outcomes[: run % len(outcomes)]:
            if outcome.note:
                continue
            target = workdir / f"r{run + 1}-{outcome.client.slug}"
            _measure_one(outcome, server, target, expected, f"run {run + 1}/{runs}")
            if not keep:
                shutil.rmtree(target, ignore_errors=True)


def _filesystem(path: Path) -> str:
    """Type and mount options of the filesystem holding ``path`` (disk figures depend on them)."""
    best = ("", "?", "")
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount, kind, options, *_ = line.split()
        if str(path.resolve()).startswith(mount.rstrip("/") + "/") and len(mount) >= len(best[0]):
            best = (mount, kind, options)
    return f"{best[1]} ({best[2]})"


def _version(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else "?"


def summarise(outcomes: list[Outcome], mailbox: mailgen.Mailbox) -> list[dict[str, Any]]:
    """One row per client: medians, throughput against the mailbox, peak RSS, ratio to the baseline."""
    medians = {o.client.slug: statistics.median(s.seconds for s in o.samples) for o in outcomes if o.samples}
    base = medians.get(BASELINE_SLUG)
    rows: list[dict[str, Any]] = []
    for outcome in outcomes:
        row: dict[str, Any] = {"client": outcome.client.name, "note": outcome.note}
        if outcome.samples:
            median = medians[outcome.client.slug]
            row |= {
                "seconds": [round(s.seconds, 3) for s in outcome.samples],
                "median_s": round(median, 3),
                "messages_per_s": round(mailbox.messages / median),
                "mb_per_s": round(mailbox.wire_bytes / MB / median, 1),
                "peak_rss_mb": round(max(s.peak_rss for s in outcome.samples) / MB, 1),
                "messages": [s.messages for s in outcome.samples],
                "ratio_to_baseline": round(median / base, 2) if base else None,
                "detail": outcome.samples[-1].detail,  # transport (raw), fetch report (daemon)
            }
        rows.append(row)
    return rows


def _size(count: int) -> str:
    return f"{count / 1e9:.2f} GB" if count >= 1e9 else f"{count / MB:.0f} MB"


def render_table(rows: list[dict[str, Any]], context: dict[str, Any]) -> str:
    lines = [
        f"Initial sync of {context['messages']:,} messages, {_size(context['wire_bytes'])} on the wire "
        f"({_size(context['file_bytes'])} on disk), INBOX of the test Dovecot {context['dovecot']}",
        f"transport: {context['transport']} on 127.0.0.1; median of {context['runs']} run(s), clients alternating "
        "(order rotated per run), each into a fresh directory, os.sync() before each",
        f"work dir: {context['work_dir']} on {context['filesystem']}; {context['cpus']} CPUs; {context['mbsync']}",
        "",
        f"{'client':<28} {'median':>9} {'min–max':>15} {'msg/s':>8} {'MB/s':>7} {'peak RSS':>9} {'× raw→Maildir':>14}",
    ]
    for row in rows:
        if "median_s" not in row:
            lines.append(f"{row['client']:<28} {row['note']}")
            continue
        spread = f"{min(row['seconds']):.2f}–{max(row['seconds']):.2f} s"
        ratio = f"{row['ratio_to_baseline']:.2f}" if row["ratio_to_baseline"] is not None else "–"
        mismatch = "" if set(row["messages"]) == {context["messages"]} else f"  (messages: {row['messages']})"
        later = f"  (then {row['note']})" if row["note"] else ""
        lines.append(
            f"{row['client']:<28} {row['median_s']:>7.2f} s {spread:>15} {row['messages_per_s']:>8,} "
            f"{row['mb_per_s']:>7.1f} {row['peak_rss_mb']:>6.1f} MB {ratio:>14}{mismatch}{later}"
        )
    lines += [f"note: {note}" for note in context["notes"]]
    return "\n".join(lines)


def _needs_room(outcomes: list[Outcome], mailbox: mailgen.Mailbox, runs: int) -> int:
    """Disk space for keeping every target until the end (only clients that store count)."""
    readers = (o for o in outcomes if isinstance(o.client, clients.RawClient) and not o.client.write)
    writers = len(outcomes) - sum(1 for _ in readers) - sum(1 for o in outcomes if o.note)
    return mailbox.wire_bytes * writers * runs


def _prepare(dovecot: Dovecot, args: argparse.Namespace, workdir: Path) -> tuple[mailgen.Mailbox, Server, Sample]:
    """Mailbox generated into a new user's INBOX, then read once untimed (indexes, page cache)."""
    user = dovecot.add_user()
    print(f"generating {args.messages:,} messages …", file=sys.stderr)
    mailbox = mailgen.populate(user, args.messages, seed=args.seed)
    print(f"  {mailbox.wire_bytes:,} bytes on the wire, {mailbox.seconds:.1f} s", file=sys.stderr)
    server = Server(dovecot.ports["imap"], user.login, user.password, dovecot.tls.ca_file)
    os.sync()
    warm = clients.RawClient("warm-up", "warm-up", write=False).run(server, workdir / "warm-up")
    if warm.messages != mailbox.messages:
        raise RuntimeError(f"the server has {warm.messages} messages, {mailbox.messages} were generated")
    return mailbox, server, warm


def run_benchmark(args: argparse.Namespace, ready: Setup, outcomes: list[Outcome]) -> dict[str, Any]:
    notes = [] if clients.TIME else ["no /usr/bin/time: raw and mbsync peak RSS include this process's RSS at fork"]
    workdir = Path(tempfile.mkdtemp(prefix="bimmail-bench-", dir=args.work_dir))
    try:
        with Dovecot.running() as dovecot:
            mailbox, server, warm = _prepare(dovecot, args, workdir)
            keep = shutil.disk_usage(workdir).free > _needs_room(outcomes, mailbox, args.runs) * 1.2 + 2e9
            if not keep:
                notes.append("not enough room to keep every target: each was deleted right after its measurement")
            measure(outcomes, server, args.runs, workdir, mailbox.messages, keep)
            dovecot_version = _version([DOVECOT, "--version"]).split()[0]
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    context = {
        "messages": mailbox.messages, "wire_bytes": mailbox.wire_bytes, "file_bytes": mailbox.file_bytes,
        "generation_s": round(mailbox.seconds, 2), "runs": args.runs, "transport": warm.detail,
        "dovecot": dovecot_version, "mbsync": _version([ready.mbsync, "--version"]) if ready.mbsync else "no mbsync",
        "work_dir": str(workdir), "filesystem": _filesystem(workdir), "cpus": os.cpu_count(), "notes": notes,
    }  # fmt: skip
    return {"context": context, "clients": summarise(outcomes, mailbox)}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    ready = setup(args)
    results = run_benchmark(args, ready, choose_clients(args, ready))
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    else:
        print(render_table(results["clients"], results["context"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
