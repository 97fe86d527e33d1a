"""The daemon's own settings and what it tells systemd: what a SIGHUP applies and what waits for a
restart (decided by each setting's ``reloadable`` mark, not a list kept beside it), the STATUS= line."""

from __future__ import annotations

import os
from pathlib import Path

from bimmailctl.client import Client
from bimmaild import config
from bimmaild.activity import Activity
from bimmaild.notifier import status_line
from bimmaild.store import status as status_q
from tests.helpers import RunningDaemon


def test_waiting_lists_the_changed_settings_only_a_restart_applies(tmp_path: Path) -> None:
    defaults = {s.name: None for s in config.SETTINGS} | {"log_level": "info", "fetch_interval_minutes": 15}
    started = config.effective(defaults, tmp_path / "absent.toml", {})
    (tmp_path / "config.toml").write_text(
        'log_level = "debug"\nfetch_interval_minutes = 5\nproviders_dir = "/srv/presets"\nsocket = "/run/x.sock"\n'
    )
    now = config.effective(defaults, tmp_path / "config.toml", {})
    assert config.waiting(started, now) == ["socket", "providers_dir"]
    assert config.waiting(now, now) == []
    assert all(not s.reloadable for s in config.SETTINGS if s.name in ("socket", "providers_dir"))


async def test_the_system_daemons_status_line_names_no_account(client: Client, daemon: RunningDaemon) -> None:
    """R-L3: `systemctl status` is every local user's to read; the system daemon's STATUS= counts."""
    for name in ("Work", "Perso"):
        await client.call("account.add", {"name": name, "email": f"{name.lower()}@example.org", "password": "x",
                                          "imap": {"host": "imap.example.org"}, "smtp": {"host": "smtp.example.org"},
                                          "test": False})  # fmt: skip
    accounts = daemon.daemon.accounts
    uid = os.getuid()
    with accounts.db.transaction() as conn:
        status_q.write(conn, accounts.find("Perso", uid).id, "needs-attention", "IMAP login refused", "-", None)
    activity = Activity()
    activity.of(accounts.find("Work", uid).id).fetching = True
    assert status_line(accounts, activity) == "2 accounts; fetching Work; needs attention: Perso"
    assert status_line(accounts, activity, names=False) == "2 accounts; fetching 1; 1 needs attention"
