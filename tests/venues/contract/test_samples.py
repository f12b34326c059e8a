"""Contract: every registered venue decodes its real samples (``../shared/protocol-samples``)
exactly as its folder's ``samples.py`` says, field for field.

A venue gets this test by registering; its folder must provide ``samples.py`` with
``samples(venue, directory) -> Samples`` holding at least one real WebSocket frame.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

import pytest

from candlekeeper.core.candle import Candle
from candlekeeper.venues.contract import Samples
from candlekeeper.venues.registry import VENUES, history_codec, package_of, stream_codec


def venue_samples(venue: str, directory: Path) -> Samples:
    module = import_module(f"candlekeeper.venues.{package_of(venue)}.samples")
    result: Samples = module.samples(venue, directory)
    return result


@pytest.mark.parametrize("venue", VENUES)
def test_real_frames_decode_exactly(venue: str, samples: Path) -> None:
    s = venue_samples(venue, samples)
    assert s.ws, f"{venue}: its samples.py lists no real WebSocket frame"
    assert any(isinstance(m, Candle) for w in s.ws for m in w.expect), \
        f"{venue}: no sample frame carries a candle"
    codec = stream_codec(venue)
    for sample in s.ws:
        out = codec.decode(sample.frame)
        got = tuple(out) if isinstance(out, list) else (out,)
        assert got == sample.expect, sample.source
        for c in got:
            if isinstance(c, Candle):  # what the exchange wrote survives as text
                assert c.venue == venue and c.key.venue == venue


@pytest.mark.parametrize("venue", VENUES)
def test_real_rest_bodies_decode_exactly(venue: str, samples: Path) -> None:
    s = venue_samples(venue, samples)
    codec = history_codec(venue)
    for sample in s.rest:
        rows = codec.decode_klines(sample.body, sample.symbol, sample.interval)
        assert len(rows) == sample.count, sample.source
        assert rows[0] == sample.first, sample.source
        assert [r.open_time for r in rows] == sorted({r.open_time for r in rows})
        assert all(r.closed and r.source == "rest" for r in rows)
        assert codec.classify(200, {}, sample.body, 0.0) is None, sample.source


def test_every_registered_venue_ships_real_samples(samples: Path) -> None:
    assert VENUES
    for venue in VENUES:
        assert venue_samples(venue, samples).ws, venue
