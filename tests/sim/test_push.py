"""The one pusher every venue runs (``sim.push``), driven by explicit times on real venues'
wires: the two timing families against the market they push, and one write per connection per
step."""

from __future__ import annotations

import time

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.core.clock import ScaledClock
from candlekeeper.sim.framing import GzipFraming, frame_body
from candlekeeper.sim.market import Market
from candlekeeper.sim.push import KlinePusher, Timing, Wire
from candlekeeper.sim.shaper import Shaper
from candlekeeper.sim.venues.binance.push import WIRE as BINANCE
from candlekeeper.sim.venues.bingx.push import WIRE as BINGX

START = 1_700_000_040_000  # a minute boundary


class Clock(ScaledClock):
    """Venue time from :attr:`now` (a monotonic value the test sets), not from the wall."""

    def __init__(self, speed: float) -> None:
        super().__init__(START, speed, monotonic_origin=time.monotonic())
        self.now = self.monotonic_origin

    def time_ms(self) -> int:
        return self.start_ms + int((self.now - self.monotonic_origin) * 1000.0 * self.speed)


class Sink:
    combined = False
    shaper: Shaper | None = None

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)


def frames(data: bytes) -> list[bytes]:
    """The frames of one write (unmasked server frames)."""
    out = []
    while data:
        n, head = data[1] & 0x7F, 2
        if n == 126:
            n, head = int.from_bytes(data[2:4], "big"), 4
        out.append(data[:head + n])
        data = data[head + n:]
    return out


def run(venue: str, wire: Wire, timing: Timing, names: list[str], times: list[float],
        speed: float = 1.0) -> tuple[Sink, list[list[bytes]], list[int]]:
    """Subscribe one sink to ``names`` and step at each of ``times`` (wall seconds from the
    start): the sink, the frames written at each step, and the venue time of each step."""
    market = Market(venue, ["BTCUSDT", "ETHUSDT"], ["1m", "5m"], start_ms=START, history=5)
    clock = Clock(speed)
    pusher = KlinePusher(market, clock, wire, timing)
    sink = Sink()
    for name in names:
        pusher.subscribe(sink, name)
    per_step, venue_times = [], []
    for t in times:
        clock.now = clock.monotonic_origin + t
        venue_times.append(clock.time_ms())
        before = len(sink.writes)
        pusher.step(clock.now)
        assert len(sink.writes) - before <= 1  # one write per connection per step
        per_step.append([f for w in sink.writes[before:] for f in frames(w)])
    return sink, per_step, venue_times


def forming(venue: str, at_ms: list[int]) -> list[Candle | None]:
    market = Market(venue, ["BTCUSDT", "ETHUSDT"], ["1m", "5m"], start_ms=START, history=5)
    return [market.forming("BTCUSDT", "1m", t) for t in at_ms]


def test_without_closed_flag_every_tick_pushes_changed_or_not() -> None:
    ticks = [0.5 + i * 0.02 for i in range(400)]  # inside one 1m candle at speed 1
    _, per_step, at = run("bingx-swap", BINGX, Timing(0.02, None), ["BTC-USDT@kline_1m"],
                          ticks)
    expected = [c for c in forming("bingx-swap", at) if c is not None]
    got = [msgspec.json.decode(GzipFraming().payload(f))["data"][0]
           for step in per_step for f in step]
    assert [(k["c"], k["v"]) for k in got] == [(c.close_str, c.volume_str) for c in expected]
    assert len({(k["c"], k["v"]) for k in got}) < len(got)  # unchanged candles went out too


def test_with_closed_flag_a_tick_pushes_only_a_changed_candle() -> None:
    ticks = [0.5 + i * 0.02 for i in range(400)]
    # no closing frame of the previous candle is still due (zero delay): none holds back the
    # forming candle
    _, per_step, at = run("binance-usdm", BINANCE, Timing(0.02, (0.0, 0.0)),
                          ["btcusdt@kline_1m"], ticks)
    seen: list[Candle] = []
    for c in forming("binance-usdm", at):
        if c is not None and (not seen or c != seen[-1]):
            seen.append(c)
    got = [msgspec.json.decode(frame_body(f))["k"] for step in per_step for f in step]
    assert [(k["c"], k["v"], k["n"]) for k in got] == [
        (c.close_str, c.volume_str, c.trades) for c in seen]
    assert len(got) < len(ticks)  # a tick with no trade since the last push sent nothing


def test_a_connection_gets_one_write_per_step_for_all_its_streams() -> None:
    names = ["btcusdt@kline_1m", "btcusdt@kline_5m", "ethusdt@kline_1m"]
    sink, per_step, _ = run("binance-usdm", BINANCE, Timing(0.25, (0.0, 0.0)), names, [30.0])
    assert len(sink.writes) == 1
    klines = [msgspec.json.decode(frame_body(f))["k"] for f in per_step[0]]
    assert [(k["s"], k["i"], k["x"]) for k in klines] == [
        ("BTCUSDT", "1m", False), ("BTCUSDT", "5m", False), ("ETHUSDT", "1m", False)]


def test_final_values_at_the_close_precede_the_next_candle() -> None:
    # speed 60: a 1m candle lasts 1 s; ticks every 0.3 s never land on a boundary
    ticks = [0.1 + i * 0.3 for i in range(12)]
    boundaries = [1.0, 2.0, 3.0]
    times = sorted(ticks + boundaries)
    market = Market("bingx-swap", ["BTCUSDT", "ETHUSDT"], ["1m", "5m"], start_ms=START,
                    history=5)
    for stale in (True, False):
        _, per_step, _ = run("bingx-swap", BINGX, Timing(0.3, None, stale),
                             ["BTC-USDT@kline_1m"], times, speed=60.0)
        pushes = [msgspec.json.decode(GzipFraming().payload(f))["data"][0]
                  for step in per_step for f in step]
        order = [k["T"] for k in pushes]
        assert order == sorted(order)
        for b in boundaries[:-1]:
            open_time = START + int((b - 1.0) * 60_000)
            final = market.bar("BTCUSDT", "1m", open_time)
            assert final is not None
            last = [k for k in pushes if k["T"] == open_time][-1]
            exact = (last["c"], last["v"]) == (final.close_str, final.volume_str)
            assert exact is not stale  # the default's last push predates the close
