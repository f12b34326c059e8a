"""Shared fixtures of the transport tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .helpers import Harness


@pytest.fixture
async def harness() -> AsyncIterator[list[Harness]]:
    made: list[Harness] = []
    yield made
    for h in made:
        await h.close()
