"""The measured side of ``benchmarks/run.py``: one measurement per process.

    .venv/bin/python benchmarks/bench_client.py '<ClientSpec as JSON>'

prints one :class:`bench_common.Measured` (a JSON list of them for ``decode``) on stdout.
Modes:

* ``decode``: no socket. Real kline frames through (a) ``msgspec.json.decode`` to a dict,
  (b) ``orjson.loads`` to a dict, (c) ``BinanceStreamCodec.decode`` to a ``Candle`` and (d) the
  feed's hot path: ``BinanceStreamCodec.decode`` + the feed's stream sink
  (``CandleFeed.stream_sink``) with one ``on_update`` subscriber, frames handed over in chunks
  of 256 with a loop turn between chunks (what one socket read looks like), so the
  subscriber's task really runs.
* ``bare``: the "websocket library + JSON parser" loop: picows (the transport's library)
  receiving frames from the simulator and parsing each into a dict, nothing else.
* ``feed``: a real ``CandleFeed`` (``ConnectionPool`` -> session -> ``BinanceStreamCodec`` ->
  the feed's stream sink -> ``EventBus`` -> an ``on_update`` handler) connected to the
  simulator.

For the socket modes the clocks (``time.perf_counter`` and ``time.process_time``, i.e. this
process's user+system CPU) start when the handler sees message number ``warmup`` and stop at
the last one, so connecting, subscribing and imports are not counted. With ``latency`` the
handler also records, per message, ``now - L`` (the sender's ``time.time_ns() // 1000`` carried
in the kline's last-trade-id field) and ``now - E`` (the event time in ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import sys
import time
from collections.abc import Callable
from typing import Any, Literal

import msgspec

from bench_common import Measured, capture_frames, latency, symbols_of

Mode = Literal["decode", "bare", "feed"]


class ClientSpec(msgspec.Struct, kw_only=True):
    mode: Mode
    expected: int
    label: str = ""
    url: str = ""  # ws base: "ws://127.0.0.1:PORT" (bare appends /stream?streams=...)
    stream: str = "btcusdt@kline_1m"
    #: bare loop: ``msgspec``/``orjson`` parse to a dict; ``struct`` decodes into the codec's own
    #: wire Structs (``schemas.CombinedKline``, 8 Decimals) -- the codec's work, no framework
    parser: Literal["msgspec", "orjson", "struct"] = "msgspec"
    #: feed: ``on_update(..., inline=True)`` (handler called inside publish, no queue/task)
    inline: bool = False
    latency: bool = False
    timeout_s: float = 60.0
    #: the feed's ``on_update`` queue bound; 0 = large enough for the whole run (see README:
    #: at saturation one multi-MB socket read can queue more than the default 10,000 updates)
    update_maxsize: int = 0


def _maxrss_kb() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


def _loads(parser: str) -> Callable[[bytes], Any]:
    if parser == "orjson":
        import orjson

        return orjson.loads
    if parser == "struct":
        from candlekeeper.venues.binance import schemas

        return msgspec.json.Decoder(schemas.CombinedKline).decode
    return msgspec.json.Decoder().decode


class _Window:
    """Clocks between message ``warmup`` and message ``expected`` (see module docstring)."""

    __slots__ = ("cpu0", "cpu1", "done", "expected", "n", "wall0", "wall1", "warmup")

    def __init__(self, expected: int) -> None:
        if expected < 2:
            raise ValueError("a socket measurement needs at least 2 messages")
        self.expected = expected
        self.warmup = max(1, min(10_000, expected // 10))
        self.n = 0
        self.wall0 = self.wall1 = self.cpu0 = self.cpu1 = 0.0
        self.done = asyncio.Event()

    def start(self) -> None:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()

    def stop(self) -> None:
        self.wall1, self.cpu1 = time.perf_counter(), time.process_time()
        self.done.set()

    def result(self, label: str, **extra: Any) -> Measured:
        complete = self.done.is_set()
        return Measured(label=label, expected=self.expected, received=self.n,
                        measured=self.expected - self.warmup if complete else 0,
                        wall_s=self.wall1 - self.wall0 if complete else 0.0,
                        cpu_s=self.cpu1 - self.cpu0 if complete else 0.0,
                        maxrss_kb=_maxrss_kb(), **extra)


# -- bare loop ---------------------------------------------------------------------------------


async def run_bare(spec: ClientSpec) -> Measured:
    import picows

    loads = _loads(spec.parser)
    win = _Window(spec.expected)
    lat_us: list[float] = []
    lat_e: list[float] = []
    text = picows.WSMsgType.TEXT
    record = spec.latency

    last = 0  # sequence number of the previous frame (the kline's trade count ``n``)
    ooo = 0

    class Listener(picows.WSListener):
        def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
            nonlocal last, ooo
            if frame.msg_type is not text:
                return
            obj = loads(frame.get_payload_as_bytes())
            # read one field, like any consumer (and like the feed's handler): order check
            seq = obj["data"]["k"]["n"] if isinstance(obj, dict) else obj.data.k.n
            if seq != last + 1:
                ooo += 1
            last = seq
            if record:
                now = time.time_ns()
                data = obj["data"] if isinstance(obj, dict) else obj.data
                last, event = (data["k"]["L"], data["E"]) if isinstance(data, dict) else \
                    (data.k.L, data.E)
                lat_us.append(now / 1000 - last)
                lat_e.append(now / 1e6 - event)
            win.n += 1
            n = win.n
            if n == win.warmup:
                win.start()
            elif n == win.expected:
                win.stop()
                transport.send_close(picows.WSCloseCode.OK)
                transport.disconnect()

    url = f"{spec.url}/stream?streams={spec.stream}"
    transport, _ = await picows.ws_connect(Listener, url, enable_auto_pong=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(win.done.wait(), spec.timeout_s)
    transport.disconnect()
    await transport.wait_disconnected()
    return win.result(spec.label or f"bare picows+{spec.parser}", out_of_order=ooo,
                      lat_us=latency(lat_us), lat_e_ms=latency(lat_e))


# -- the real feed -----------------------------------------------------------------------------


async def run_feed(spec: ClientSpec) -> Measured:
    from candlekeeper.core.candle import Candle
    from candlekeeper.feed import CandleFeed

    symbol, _, interval = spec.stream.partition("@kline_")
    win = _Window(spec.expected)
    lat_us: list[float] = []
    lat_e: list[float] = []
    record = spec.latency
    last = 0  # the same one-field order check as the bare loop
    ooo = 0

    def on_update(c: Candle) -> None:
        nonlocal last, ooo
        seq = c.trades
        if seq != last + 1:
            ooo += 1
        last = seq or 0
        if record:
            now = time.time_ns()
            lat_us.append(now / 1000 - (c.last_trade_id or 0))
            lat_e.append(now / 1e6 - (c.event_time or 0))
        win.n += 1
        n = win.n
        if n == win.warmup:
            win.start()
        elif n >= win.expected:
            win.stop()

    feed = CandleFeed(venue="binance-usdm", symbols=[symbol.upper()], intervals=[interval],
                      ws_url=spec.url)
    sub = feed.on_update(on_update, maxsize=spec.update_maxsize or max(10_000, spec.expected),
                         inline=spec.inline)
    async with feed:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(win.done.wait(), spec.timeout_s)
    return win.result(spec.label or "candlekeeper CandleFeed", dropped=sub.dropped,
                      out_of_order=max(0, ooo - sub.dropped),
                      lat_us=latency(lat_us), lat_e_ms=latency(lat_e))


# -- no socket -----------------------------------------------------------------------------------


def _timed(label: str, n: int, fn: Callable[[], object]) -> Measured:
    wall0, cpu0 = time.perf_counter(), time.process_time()
    fn()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return Measured(label=label, expected=n, received=n, measured=n, wall_s=wall, cpu_s=cpu,
                    maxrss_kb=_maxrss_kb())


class _TextKline(msgspec.Struct, gc=False):
    """``schemas.Kline`` with the 8 decimals left as strings: isolates the cost of Decimal."""

    t: int
    T: int
    s: str
    i: str
    f: int
    L: int
    o: str
    c: str
    h: str
    l: str  # noqa: E741 - the exchange's field name
    v: str
    n: int
    x: bool
    q: str
    V: str
    Q: str
    B: str = "0"


class _TextEvent(msgspec.Struct, gc=False):
    e: str
    E: int
    s: str
    k: _TextKline


class _TextCombined(msgspec.Struct, gc=False):
    stream: str
    data: _TextEvent


async def run_decode(spec: ClientSpec) -> list[Measured]:
    import orjson

    from candlekeeper.core.candle import Candle
    from candlekeeper.feed import CandleFeed
    from candlekeeper.venues.binance import schemas

    frames, _origin = capture_frames()
    n = spec.expected
    seq = (frames * (n // len(frames) + 1))[:n]
    dec = msgspec.json.Decoder()
    feed = CandleFeed(venue="binance-usdm", symbols=symbols_of(frames), intervals=["1m"],
                      ws_url="ws://127.0.0.1:9")  # never started: only its hot path is used
    codec = feed.codec
    got = [0]

    def on_update(_c: Candle) -> None:
        got[0] += 1

    sub = feed.on_update(on_update)
    await feed.bus.start()
    decode = codec.decode
    # what the transport does per frame: one (symbol, interval) lookup, then the stream's sink
    sinks = {(k.symbol, k.interval): feed.stream_sink(k) for k in feed.keys}

    def parse(loads: Callable[[bytes], object]) -> Callable[[], None]:
        def go() -> None:
            for f in seq:
                loads(f)
        return go

    async def dispatch(frames_: list[bytes]) -> None:
        target = got[0] + sub.dropped + len(frames_)
        for i in range(0, len(frames_), 256):
            for f in frames_[i:i + 256]:
                c = decode(f)
                sinks[(c.symbol, c.interval)](c)  # type: ignore[union-attr]
            await asyncio.sleep(0)
        while got[0] + sub.dropped < target:
            await asyncio.sleep(0)

    typed = msgspec.json.Decoder(schemas.CombinedKline).decode
    as_text = msgspec.json.Decoder(_TextCombined).decode
    results = []
    for label, fn in (("parse only: msgspec.json.decode -> dict", parse(dec.decode)),
                      ("parse only: orjson.loads -> dict", parse(orjson.loads)),
                      ("msgspec -> wire Structs, prices as str", parse(as_text)),
                      ("msgspec -> wire Structs, 8 Decimals (codec schema)", parse(typed)),
                      ("BinanceStreamCodec.decode -> Candle", parse(decode))):
        fn()  # warm-up
        results.append(_timed(label, n, fn))
    await dispatch(seq[: max(1, n // 10)])  # warm-up
    start_got, start_drop = got[0], sub.dropped
    wall0, cpu0 = time.perf_counter(), time.process_time()
    await dispatch(seq)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    results.append(Measured(
        label="decode + CandleFeed stream sink + on_update handler", expected=n,
        received=got[0] - start_got, measured=n, wall_s=wall, cpu_s=cpu,
        maxrss_kb=_maxrss_kb(), dropped=sub.dropped - start_drop))
    await feed.bus.stop()
    return results


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    spec = msgspec.json.decode(argv[1], type=ClientSpec)
    out: object
    if spec.mode == "decode":
        out = asyncio.run(run_decode(spec))
    elif spec.mode == "bare":
        out = asyncio.run(run_bare(spec))
    else:
        out = asyncio.run(run_feed(spec))
    sys.stdout.buffer.write(msgspec.json.encode(out) + b"\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv)
