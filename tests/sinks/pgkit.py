"""A private PostgreSQL cluster whose server sees a private extension directory — for testing what
the PostgreSQL sink does when TimescaleDB is installed but not preloaded, on a machine where
TimescaleDB cannot be installed (imported by name: pytest puts this folder on sys.path).

PostgreSQL 15 reads extensions only from its share directory (``extension_control_path`` came
in 18), and tests must not write system directories. But PostgreSQL finds its share and library
directories *relative to its own executable*, so a copy of the ``postgres`` binary placed in a
private tree that mirrors the installation reads ``<tree>/usr/share/postgresql/15/extension``:
symlinks to every installed extension except any real TimescaleDB, plus, when asked, a stand-in
``timescaledb``. Nothing outside a temporary directory is written, so this works unchanged as
root in CI, and on a machine where a real TimescaleDB is installed.

The stand-in fails like the real one does when it is not preloaded. The real loader's
``_PG_init`` raises ``FATAL: extension "timescaledb" must be preloaded`` (SQLSTATE XX000, the
default for an error without a code) with a hint about ``shared_preload_libraries``
(timescaledb ``src/extension_utils.c``), which also ends the session. An extension script cannot
raise FATAL, so the stand-in raises the same message, hint and SQLSTATE and ends its own session
(``pg_terminate_backend`` of itself, evaluated while the error is being built): the client gets
the error, then loses the connection — what a client of the real one sees. Like the real one it
is ``trusted``: an unprivileged role may create it.

Run ``python tests/sinks/pgkit.py DIR`` to build a full tree (``initdb``, ``pg_ctl``,
``postgres``, ``pg_config``) with the stand-in; ``CANDLEKEEPER_PG_BIN=<the printed bin dir>``
then runs the whole test suite against a server where "TimescaleDB" is installed but not
preloaded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Literal

from servers import PG_BIN, PostgresServer, wait_port

TimescaleDB = Literal["absent", "not-preloaded"]

STAND_IN_CONTROL = """\
# stand-in for TimescaleDB installed but not preloaded (tests/sinks/pgkit.py)
comment = 'stand-in: fails like TimescaleDB does when it is not preloaded'
default_version = '2.99.0'
relocatable = false
trusted = true
"""

STAND_IN_SCRIPT = """\
-- what TimescaleDB's loader does when it is not preloaded (see tests/sinks/pgkit.py)
DO $$ BEGIN
  RAISE EXCEPTION 'extension "timescaledb" must be preloaded' USING
    ERRCODE = 'XX000',
    HINT = CASE WHEN pg_terminate_backend(pg_backend_pid()) THEN
      'Please preload the timescaledb library via shared_preload_libraries.' || chr(10) ||
      'This can be done by editing the postgres config file and adding ''timescaledb'' to the '
      || 'list in the shared_preload_libraries config. (Will require a database restart.)'
    END;
END $$;
"""


def _pg_dirs() -> tuple[Path, Path, Path]:
    out = subprocess.run([str(PG_BIN / "pg_config"), "--bindir", "--sharedir", "--pkglibdir"],
                         check=True, capture_output=True, text=True).stdout.split()
    return Path(out[0]), Path(out[1]), Path(out[2])


def build_tree(root: Path, timescaledb: TimescaleDB,
               binaries: tuple[str, ...] = ("postgres",)) -> Path:
    """Mirror the PostgreSQL installation under ``root`` (binaries copied, everything else
    symlinked) with its own extension directory; returns the tree's bin directory."""
    bindir, sharedir, libdir = _pg_dirs()

    def mirror(path: Path) -> Path:
        return root / path.relative_to(path.anchor)

    def mkdir(path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        for p in (path, *path.parents):  # readable by the postgres user whatever the umask
            if p == root.parent:
                break
            p.chmod(0o755)

    mkdir(mirror(bindir))
    for name in binaries:
        shutil.copy2(bindir / name, mirror(bindir) / name)
        (mirror(bindir) / name).chmod(0o755)
    mkdir(mirror(libdir).parent)
    mirror(libdir).symlink_to(libdir)
    share = mirror(sharedir)
    mkdir(share / "extension")
    for entry in sharedir.iterdir():
        if entry.name != "extension":
            (share / entry.name).symlink_to(entry)
    for entry in (sharedir / "extension").iterdir():
        if not entry.name.startswith("timescaledb"):  # hide a real TimescaleDB, if installed
            (share / "extension" / entry.name).symlink_to(entry)
    if timescaledb == "not-preloaded":
        for name, text in (("timescaledb.control", STAND_IN_CONTROL),
                           ("timescaledb--2.99.0.sql", STAND_IN_SCRIPT)):
            (share / "extension" / name).write_text(text)
            (share / "extension" / name).chmod(0o644)
    return mirror(bindir)


class ExtensionsPostgres(PostgresServer):
    """A throwaway cluster (like :class:`PostgresServer`) whose server runs from a private tree:
    TimescaleDB ``absent``, or installed but ``not-preloaded`` (the stand-in)."""

    def __init__(self, timescaledb: TimescaleDB) -> None:
        super().__init__()
        self.timescaledb = timescaledb
        self.bin = build_tree(self.dir / "install", timescaledb)

    def start(self) -> None:
        cmd = [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"),
               "-p", str(self.bin / "postgres"), "-w", "-t", "60", "start"]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True)
        wait_port(self.port)
        self.running = True


if __name__ == "__main__":
    target = Path(sys.argv[1]).resolve()
    print(build_tree(target, "not-preloaded", ("postgres", "initdb", "pg_ctl", "pg_config")))
