"""Real PostgreSQL and NATS servers for tests: private instances in temporary directories, on
free ports, that a test can stop and start again (outage tests). No system service is used.

Both binaries come from Debian's packages (``make test`` installs them on a fresh machine).
PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` user.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_BIN = Path(os.environ.get("CANDLEKEEPER_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:g}s")


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class PostgresServer:
    """A throwaway PostgreSQL cluster: ``start()``, ``stop()``, ``restart()``, ``dsn``."""

    def __init__(self, port: int | None = None) -> None:
        if not (PG_BIN / "initdb").exists():
            raise RuntimeError(f"PostgreSQL binaries not found in {PG_BIN}; run `make test`, "
                               "which installs the postgresql package")
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="ck-pg-"))
        self.data = self.dir / "data"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-U",
                                     "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"]),
                       check=True, capture_output=True)
        conf = self.data / "postgresql.conf"
        with conf.open("a") as f:
            f.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{self.dir}'\nfsync = off\n"
                    "synchronous_commit = off\nfull_page_writes = off\n")
        self.running = False

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l",
                                     str(self.dir / "log"), "-w", "-t", "60", "start"]),
                       check=True, capture_output=True)
        wait_port(self.port)
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        if self.running:
            subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m",
                                         mode, "-w", "stop"]), check=False, capture_output=True)
            self.running = False

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


def nats_binary() -> str:
    found = shutil.which("nats-server") or ("/usr/sbin/nats-server"
                                            if Path("/usr/sbin/nats-server").exists() else None)
    if found is None:
        raise RuntimeError("nats-server not found; run `make test`, which installs it")
    return found


class NatsServer:
    """A throwaway nats-server with JetStream; the store survives ``stop()``/``start()``."""

    def __init__(self, port: int | None = None) -> None:
        self.binary = nats_binary()
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="ck-nats-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = (self.dir / "server.log").open("ab")
        self.proc = subprocess.Popen([self.binary, "-a", "127.0.0.1", "-p", str(self.port),
                                      "-js", "-sd", str(self.dir / "store")],
                                     stdout=log, stderr=log)
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
