"""Custom provider presets (R-B2): a site drops Thunderbird autoconfig files beside its config file,
and bimmaild — a real process here — offers them like the shipped presets."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from tests.accounts.test_providers import AUTOCONFIG
from tests.helpers import BIN_DIR, run_ctl, spawn_daemon


async def test_autoconfig_files_become_presets(short_dir: Path, tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    (conf / "providers").mkdir(parents=True)
    (conf / "providers" / "mairie.xml").write_bytes(AUTOCONFIG)
    (conf / "providers" / "broken.xml").write_text("<not-autoconfig/>")
    socket = short_dir / "d.sock"
    process = await spawn_daemon(socket, tmp_path / "data", "--config", str(conf / "config.toml"))
    try:
        shown = json.loads((await run_ctl(socket, "--json", "provider", "show", "mairie")).stdout)
        assert (shown["name"], shown["verified"]) == ("Example Net Mail", False)
        assert shown["source"].startswith(str(conf / "providers" / "mairie.xml"))
        added = await run_ctl(
            socket, "--json", "account", "add", "--name", "Mairie", "--email", "jean@example.net",
            "--password-stdin", "--no-test", stdin="secret\n",
        )  # fmt: skip
        assert added.code == 0, added.stderr
        account = json.loads(added.stdout)["account"]
        assert (account["imap"]["host"], account["imap"]["port"], account["imap"]["security"]) == (
            "imap.example.net", 993, "ssl",
        )  # fmt: skip
        assert (account["login"], account["provider"]) == ("jean", "mairie")
    finally:
        process.send_signal(signal.SIGTERM)
        assert await process.wait() == 0
    log = (tmp_path / "data.log").read_text()
    assert "custom provider preset not used" in log and "broken.xml" in log


async def test_print_config_names_the_presets_directory(tmp_path: Path) -> None:
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        str(BIN_DIR / "bimmaild"), "--config", str(tmp_path / "c" / "config.toml"), "--print-config",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert f'providers_dir = "{tmp_path / "c" / "providers"}"' in out.decode()
