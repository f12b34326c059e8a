"""Close-frame delays: within the configured window, fixed per candle, capped at a quarter of
the candle's wall duration at high speed-ups."""

from __future__ import annotations

from candlekeeper.core.clock import ScaledClock
from candlekeeper.sim.market import Market
from candlekeeper.sim.venues.binance.push import Pusher, StreamState

START = 1_700_000_000_000


def pusher(speed: float) -> Pusher:
    market = Market("binance-usdm", ["BTCUSDT"], ["1m", "1h"], start_ms=START, history=5)
    return Pusher(market, ScaledClock(START, speed), cadence_s=0.25, close_delay_s=(0.2, 2.0))


def test_delay_window_and_determinism() -> None:
    p, q = pusher(1.0), pusher(1.0)
    st = StreamState("btcusdt@kline_1m", "BTCUSDT", "1m", START)
    delays = [p._delay(st, START + i * 60_000) for i in range(200)]
    assert all(0.2 <= d <= 2.0 for d in delays)
    assert max(delays) - min(delays) > 1.0  # spread over the window, like the real captures
    assert delays == [q._delay(st, START + i * 60_000) for i in range(200)]


def test_delay_is_capped_at_a_quarter_candle_when_fast() -> None:
    p = pusher(300.0)  # a 1m candle lasts 0.2 s of wall time
    st = StreamState("btcusdt@kline_1m", "BTCUSDT", "1m", START)
    assert all(p._delay(st, START + i * 60_000) <= 0.05 for i in range(100))
    hour = StreamState("btcusdt@kline_1h", "BTCUSDT", "1h", START)
    assert any(p._delay(hour, START + i * 3_600_000) > 1.0 for i in range(20))  # 12 s candles
