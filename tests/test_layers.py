"""The layering rules of docs/architecture.md, enforced on the source itself.

* ``errors`` imports nothing of ours; ``core`` imports nothing of ours but ``errors``.
* ``venues`` (the contract, the registry and every venue folder) are Sans-I/O: no asyncio, no
  network or storage library, nothing of ours outside ``core``, ``errors`` and ``venues``; a
  venue folder never imports another venue's folder.
* Only a venue's own folders (``venues/<pkg>/`` and ``sim/venues/<pkg>/``) import it; every
  other module reaches venues through the registry and the contract.
* No module outside those folders *names* a venue — not in code, strings or comments — except the
  one registration line per venue folder in ``venues/registry.py``. That is what makes adding a
  venue "a folder, a simulator folder and one registry line".
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from candlekeeper.venues.registry import PACKAGES, VENUES

SRC = Path(__file__).resolve().parents[1] / "src" / "candlekeeper"
REGISTRY = SRC / "venues" / "registry.py"
IO_LIBRARIES = ("asyncio", "aiohttp", "picows", "socket", "ssl", "websockets", "nats", "asyncpg",
                "sqlite3", "threading", "subprocess", "urllib.request", "http")


def modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts)


def rel(path: Path) -> str:
    return path.relative_to(SRC).as_posix()


def imports(path: Path) -> set[str]:
    """Every module a file imports (absolute names; relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ["candlekeeper", *path.relative_to(SRC).parent.parts]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            out.add(name)
            out.update(f"{name}.{alias.name}" for alias in node.names)
    return out


def ours(names: set[str]) -> set[str]:
    return {n for n in names if n == "candlekeeper" or n.startswith("candlekeeper.")}


def venue_folder_of(path: Path) -> str | None:
    """The venue package a file belongs to (``venues/<pkg>/`` or ``sim/venues/<pkg>/``)."""
    parts = path.relative_to(SRC).parts
    for prefix in (("venues",), ("sim", "venues")):
        n = len(prefix)
        if parts[:n] == prefix and len(parts) > n + 1 and parts[n] in PACKAGES:
            return parts[n]
    return None


def test_errors_and_core_import_nothing_above_them() -> None:
    assert ours(imports(SRC / "errors.py")) == set()
    for path in (SRC / "core").rglob("*.py"):
        bad = {n for n in ours(imports(path))
               if not n.startswith(("candlekeeper.core", "candlekeeper.errors"))}
        assert not bad, f"{rel(path)} imports {sorted(bad)}"


def test_venues_are_sans_io_and_self_contained() -> None:
    for path in (SRC / "venues").rglob("*.py"):
        names = imports(path)
        io = {n for n in names for lib in IO_LIBRARIES if n == lib or n.startswith(lib + ".")}
        assert not io, f"{rel(path)} imports {sorted(io)}: venue code is Sans-I/O"
        allowed = ("candlekeeper.core", "candlekeeper.errors", "candlekeeper.venues")
        bad = {n for n in ours(names) if not n.startswith(allowed)}
        assert not bad, f"{rel(path)} imports {sorted(bad)}"


def test_only_a_venues_own_folders_import_it() -> None:
    for path in modules():
        own = venue_folder_of(path)
        for name in ours(imports(path)):
            m = re.match(r"candlekeeper\.(?:sim\.)?venues\.(\w+)", name)
            if m is None or m.group(1) not in PACKAGES:
                continue
            if rel(path) == "venues/registry.py":
                continue
            assert m.group(1) == own, f"{rel(path)} imports {name}"


@pytest.mark.parametrize("word", [*VENUES, *PACKAGES])
def test_no_module_outside_a_venues_folders_names_it(word: str) -> None:
    pattern = re.compile(rf"(?<![\w-]){re.escape(word)}(?![\w-])", re.IGNORECASE)
    offenders = []
    for path in modules():
        if venue_folder_of(path) is not None or path == REGISTRY:
            continue
        for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{rel(path)}:{no}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_the_registry_names_each_venue_folder_on_one_line_only() -> None:
    lines = REGISTRY.read_text(encoding="utf-8").splitlines()
    for package in PACKAGES:
        hits = [line for line in lines if re.search(rf'"{package}"', line)]
        assert hits == [f'    "{package}",'], hits
