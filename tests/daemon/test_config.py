"""What a SIGHUP applies and what waits for a restart: decided by each setting's ``reloadable`` mark,
not by a list kept beside it (providers_dir was missing from such a list)."""

from __future__ import annotations

from pathlib import Path

from bimmaild import config


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
