"""Fixtures for the sink tests: a database path and an open SQLiteSink."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from candlekeeper.sinks.sqlite import SQLiteSink


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "candles.db"


@pytest.fixture
async def sink(db_path: Path) -> AsyncIterator[SQLiteSink]:
    s = SQLiteSink(db_path)
    await s.open()
    yield s
    await s.close()
