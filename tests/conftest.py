"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

#: ``<repo>/../shared/protocol-samples``: real captured frames; never copied into the repo
SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "protocol-samples"


@pytest.fixture
def samples() -> Path:
    if not SAMPLES.is_dir():
        pytest.skip(f"protocol samples not found at {SAMPLES} (shared/ must sit beside the repo)")
    return SAMPLES
