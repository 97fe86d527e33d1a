"""The dependency rules of DESIGN.md §2, checked on the source (AST), not by convention.

- ``bimmaild.protocol`` imports nothing of ours outside itself;
- ``bimmailctl`` imports nothing of the daemon but ``bimmaild.protocol``;
- ``bimmaild.store`` imports nothing of bimmaild above it;
- ``bimmaild.sync`` / ``bimmaild.send`` never import ``bimmaild.control``;
- the control handlers never touch sockets (the connection layer owns them);
- the ctl does not load asyncio or msgpack just to show ``--help``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(package: str) -> dict[Path, set[str]]:
    found: dict[Path, set[str]] = {}
    for path in (ROOT / package.replace(".", "/")).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                if node.module in ("bimmaild", "bimmailctl"):  # ``from bimmaild import tls`` is bimmaild.tls
                    names.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level:
                raise AssertionError(f"{path}: relative import (the rules are checked on absolute names)")
        found[path] = names
    assert found, f"no modules found for {package}"
    return found


def _ours(name: str) -> bool:
    return name.split(".")[0] in ("bimmaild", "bimmailctl")


@pytest.mark.parametrize(
    ("package", "allowed"),
    [
        ("bimmaild.protocol", ("bimmaild.protocol",)),
        ("bimmailctl", ("bimmaild.protocol", "bimmailctl")),
        ("bimmaild.store", ("bimmaild.store",)),
    ],
)
def test_package_imports_only_what_it_may(package: str, allowed: tuple[str, ...]) -> None:
    for path, names in _imports(package).items():
        for name in names:
            if _ours(name) and name != "bimmaild":
                assert name.startswith(allowed), f"{path.relative_to(ROOT)} imports {name}"
            assert name != "bimmaild" or package.startswith("bimmaild"), f"{path} imports bimmaild"


def test_sync_and_send_never_import_control() -> None:
    for package in ("bimmaild.sync", "bimmaild.send"):
        if not (ROOT / package.replace(".", "/")).is_dir():
            continue  # arrives with its issue; the rule applies from then on
        for path, names in _imports(package).items():
            assert not any(n.startswith("bimmaild.control") for n in names), path


def test_handlers_never_touch_sockets() -> None:
    for path, names in _imports("bimmaild.control.handlers").items():
        touching = {n for n in names if n.split(".")[0] in ("socket", "ssl", "selectors")}
        touching |= {
            n for n in names if n.startswith("bimmaild.control.") and n.split(".")[2] in ("connection", "server")
        }
        assert not touching, f"{path.relative_to(ROOT)} imports {sorted(touching)}"
    source = "".join(p.read_text() for p in (ROOT / "bimmaild/control/handlers").rglob("*.py"))
    assert "open_connection" not in source and "start_server" not in source


def test_ctl_help_path_loads_no_heavy_modules() -> None:
    code = (
        "import sys, bimmailctl.cli\n"
        "heavy = [m for m in ('asyncio', 'msgpack', 'bimmaild.protocol.codec') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
