"""Shared test fixtures."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/servers.py, shared helpers

from servers import NatsServer, PostgresServer

#: ``<repo>/../shared/protocol-samples``: real captured frames; never copied into the repo
SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "protocol-samples"


@pytest.fixture
def samples() -> Path:
    """The real protocol samples. They are always there in CI: a missing folder is a failure
    with a clear message, never a silent skip."""
    if not SAMPLES.is_dir():
        pytest.fail(f"protocol samples not found at {SAMPLES}: the shared/ folder must sit "
                    "beside the repository (../shared/protocol-samples)", pytrace=False)
    return SAMPLES


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    """A private, running PostgreSQL 15 cluster (stop/start it to simulate an outage)."""
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def nats() -> Iterator[NatsServer]:
    """A private, running nats-server with JetStream (stop/start it to simulate an outage)."""
    server = NatsServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


#: test files whose tests run longest (accelerated venue days, several venue minutes each); they
#: go first so that ``pytest -n N --dist load`` spreads them over the workers from the start
#: instead of leaving one worker to run them in a row at the end. Mostly waiting, not CPU.
LONG_FIRST = ("test_chaos.py", "test_rest_mode.py", "test_fast_close_e2e.py",
              "test_accelerated_health.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        if name in LONG_FIRST:
            return LONG_FIRST.index(name)
        return len(LONG_FIRST) + (0 if item.get_closest_marker("integration") else 1)

    items.sort(key=rank)  # stable: the order within a rank is kept
