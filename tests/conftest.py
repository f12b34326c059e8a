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


@pytest.fixture(autouse=True)
def private_rest_ledgers(tmp_path_factory: pytest.TempPathFactory,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own folder of shared REST budgets (``backfill/ledger.py``, keyed
    by venue and endpoint): a block or the grants one test leaves behind must never reach a
    later test whose simulator happens to get the same port. Subprocesses inherit it."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path_factory.mktemp("xdg")))


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


#: test files whose tests run longest, longest first (accelerated venue days, several venue
#: minutes each; mostly waiting, not CPU). xdist hands each worker a contiguous slice of the
#: collection first: these are dealt out so that every slice starts with its share of each kind,
#: instead of one worker running all the chaos days in a row while the machine idles.
LONG = ("test_chaos.py", "test_rest_mode.py", "test_fast_close_e2e.py",
        "test_accelerated_health.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    long = sorted((it for it in items if it.path.name in LONG),
                  key=lambda it: LONG.index(it.path.name))
    if not long:
        return
    workers = config.getoption("numprocesses", None)
    lanes = workers if isinstance(workers, int) and workers > 1 else 4
    # deal the long tests like cards: lane j gets the j-th, (j+lanes)-th, ... of them
    dealt = [it for lane in range(lanes) for it in long[lane::lanes]]
    rest = [it for it in items if it.path.name not in LONG]
    step = len(rest) / len(dealt)
    spread: list[pytest.Item] = []
    for i, item in enumerate(dealt):  # each long test heads an equal slice of the others
        spread.append(item)
        spread.extend(rest[round(i * step):round((i + 1) * step)])
    items[:] = spread
