"""Contract: a venue's stream codec never raises, whatever arrives (a seeded mutation fuzzer
over the venue's real samples; ``benchmarks/fuzz.py`` runs the same with 100,000+ frames), and
its history codec fails only with ``DecodeError`` and classifies any answer without raising."""

from __future__ import annotations

from pathlib import Path

import pytest

from candlekeeper.errors import DecodeError
from candlekeeper.testing.fuzz import fuzz_frames, run_fuzz
from candlekeeper.venues.registry import VENUES, history_codec, stream_codec

from .test_samples import venue_samples

FRAMES = 4_000


@pytest.mark.parametrize("venue", VENUES)
def test_decode_never_raises_on_mutated_real_frames(venue: str, samples: Path) -> None:
    seeds = [w.frame for w in venue_samples(venue, samples).ws]
    result = run_fuzz(stream_codec(venue).decode, seeds, FRAMES, seed=11)
    assert result.ok, result.exceptions[:3]
    assert result.frames == FRAMES
    # the mutations reach both sides: plenty refused, plenty still decoded
    assert result.kinds["Malformed"] > FRAMES // 2
    assert result.kinds["Candle"] > FRAMES // 100


@pytest.mark.parametrize("venue", VENUES)
def test_rest_decoding_fails_only_with_decode_error(venue: str, samples: Path) -> None:
    s = venue_samples(venue, samples)
    codec = history_codec(venue)
    seeds = [r.body for r in s.rest] or [b"[]", b'{"code":0,"data":[]}']
    symbol, interval = (s.rest[0].symbol, s.rest[0].interval) if s.rest else ("BTCUSDT", "1m")
    decoded = refused = 0
    for body in fuzz_frames(seeds, 1_500, seed=5):
        try:
            codec.decode_klines(body, symbol, interval)
            decoded += 1
        except DecodeError:
            refused += 1
        for status in (200, 400, 418, 429, 503):
            codec.classify(status, {"Retry-After": body[:8].decode("latin-1")}, body, 0.0)
            codec.rate_usage({"X-MBX-USED-WEIGHT-1M": body[:6].decode("latin-1"),
                              "X-RateLimit-Requests-Remain": body[:6].decode("latin-1")})
    assert decoded + refused == 1_500 and refused > 0


def test_the_fuzzer_is_deterministic() -> None:
    seeds = [b'{"a":1,"b":"x"}']
    assert list(fuzz_frames(seeds, 50, seed=3)) == list(fuzz_frames(seeds, 50, seed=3))
    assert list(fuzz_frames(seeds, 50, seed=3)) != list(fuzz_frames(seeds, 50, seed=4))
