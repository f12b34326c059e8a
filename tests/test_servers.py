"""The test servers themselves: real PostgreSQL and NATS, restartable (outage tests rely on it)."""

from __future__ import annotations

import socket

import pytest

from servers import NatsServer, PostgresServer


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
    except OSError:
        return False
    return True


def test_postgres_stops_and_starts_again(postgres: PostgresServer) -> None:
    assert listening(postgres.port)
    postgres.stop()
    assert not listening(postgres.port)
    postgres.start()
    assert listening(postgres.port)
    assert postgres.dsn.endswith(f":{postgres.port}/postgres")


def test_nats_restarts_on_the_same_port(nats: NatsServer) -> None:
    nats.stop()
    assert not listening(nats.port)
    nats.start()
    assert listening(nats.port)


def test_missing_binaries_fail_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    import servers

    monkeypatch.setattr(servers, "PG_BIN", servers.Path("/nonexistent"))
    with pytest.raises(RuntimeError, match="make test"):
        servers.PostgresServer()


def test_test_module_basenames_are_unique() -> None:
    """pytest's default import mode needs unique test module names across folders (two helpers
    once both wrote test_bingx_rest.py and collection failed in CI)."""
    from collections import Counter
    from pathlib import Path

    here = Path(__file__).resolve().parent
    names = Counter(p.name for p in here.rglob("test_*.py"))
    assert [n for n, k in names.items() if k > 1] == []
