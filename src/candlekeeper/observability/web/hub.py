"""What the web page shows, and the live fan-out to its browsers.

Why a hub: the page wants the streams table about once a second, every closed candle of the
stream it charts, and the forming candle as it changes. The feed must never wait for a browser,
so the feed's handlers (inline, on the event loop) only touch memory:

* the latest forming candle per stream is kept in a dict (one assignment per live frame), and
  only while some browser follows a stream of that feed: the hub subscribes to a feed's updates
  when the first browser asks for one of its streams and unsubscribes when the last one leaves,
  so an instance nobody watches pays nothing per message (closes only: a few per minute);
* each connected browser (:class:`WebClient`) asked for some streams; a closed candle of one of
  them goes into that client's **bounded** deque, a forming candle replaces the one pending for
  it (coalesced: a slow browser sees fewer updates, never stale ones).

A full deque drops its oldest closed candle, counts it (``dropped``, and
``candlekeeper_errors_total{kind="web_client_dropped"}``) and marks the client ``resync``: the
page then reloads the chart from ``/api/candles`` instead of showing a hole. The table is built
once per tick for all clients (:meth:`WebHub.table`), not once per client.

Every number in the JSON is what ``/health`` already shows; prices are the exchange's exact
decimal text (the page converts them for drawing). No configuration value is ever included, so
no secret (a DSN, a token) can reach a browser.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import msgspec

from candlekeeper.core.bus import EventBus
from candlekeeper.core.candle import Candle
from candlekeeper.core.derived import interval_width
from candlekeeper.core.events import CandleUpdate
from candlekeeper.core.ratelog import RateLimitedLog
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.observability.snapshot import HealthSnapshot

#: closed candles a browser may fall behind by before the oldest are dropped (and it resyncs)
CLIENT_BACKLOG = 512
_json = msgspec.json.Encoder()
_limited = RateLimitedLog(logging.getLogger(__name__))


class CandleSource(Protocol):
    """What the hub needs of a feed (a :class:`~candlekeeper.feed.CandleFeed` is one)."""

    venue: str
    bus: EventBus

    @property
    def keys(self) -> Sequence[StreamKey]: ...

    @property
    def derived_keys(self) -> Sequence[StreamKey]: ...

    def latest(self, symbol: str, interval: str, n: int | None = None) -> list[Candle]: ...

    def on_closed(self, handler: Callable[[Candle], Any], *, inline: bool = ...) -> Any: ...

    def on_update(self, handler: Callable[[Candle], Any], *, inline: bool = ...) -> Any: ...


def candle_json(candle: Candle) -> dict[str, object]:
    """One candle for the page: times in Unix ms, values as the exact decimal text."""
    return {"venue": candle.venue, "symbol": candle.symbol, "interval": candle.interval,
            "t": candle.open_time, "T": candle.close_time, "o": candle.open_str,
            "h": candle.high_str, "l": candle.low_str, "c": candle.close_str,
            "v": candle.volume_str, "x": candle.closed}


def key_text(key: StreamKey) -> str:
    return f"{key.venue}:{key.symbol}:{key.interval}"


def parse_key(text: str) -> StreamKey | None:
    """``venue:symbol:interval`` -> key; None for anything else."""
    parts = text.split(":")
    if len(parts) != 3 or not all(parts):
        return None
    return StreamKey(parts[0], parts[1], parts[2])


def table_json(snap: HealthSnapshot) -> dict[str, object]:
    """The streams table: a fixed list of fields per stream, nothing else."""
    status, _reasons = snap.evaluate()
    offsets = {c.venue: c.offset_ms for c in snap.clocks}
    rows = [{"venue": r.venue, "symbol": r.symbol, "interval": r.interval, "state": r.state,
             "last_close": r.last_close_price, "last_close_time_ms": r.last_close_time_ms,
             "lag_ms": r.lag_ms, "reconnects": r.reconnects, "backfilled": r.backfilled,
             "closed": r.closed, "clock_offset_ms": offsets.get(r.venue)}
            for r in snap.streams]
    rows.sort(key=lambda r: (str(r["venue"]), str(r["symbol"]),
                             interval_width(str(r["interval"]))))
    return {"ts_ms": snap.ts_ms, "status": status.value, "streams": rows}


def _all_keys(feed: CandleSource) -> list[StreamKey]:
    """The feed's streams: those subscribed at the venue and those derived from them."""
    return [*feed.keys, *feed.derived_keys]


class WebClient:
    """One browser's event stream: what it asked for and what waits to be sent to it."""

    def __init__(self, keys: Iterable[StreamKey], backlog: int = CLIENT_BACKLOG) -> None:
        self.keys = frozenset(keys)
        self.closed: deque[Candle] = deque()
        self.forming: dict[StreamKey, Candle] = {}
        self.backlog = backlog
        self.dropped = 0
        self.resync = False
        self.wake = asyncio.Event()

    def push_closed(self, candle: Candle) -> bool:
        """Queue a closed candle; False when the oldest had to be dropped for it."""
        self.forming.pop(candle.key, None)  # the forming one it replaces is done
        ok = True
        if len(self.closed) >= self.backlog:
            self.closed.popleft()
            self.dropped += 1
            self.resync = True
            ok = False
        self.closed.append(candle)
        self.wake.set()
        return ok

    def push_forming(self, candle: Candle) -> None:
        self.forming[candle.key] = candle
        self.wake.set()

    def take(self) -> tuple[list[Candle], list[Candle], bool]:
        """Everything pending (closed in order, the latest forming per stream, resync)."""
        closed, self.closed = list(self.closed), deque()
        forming, self.forming = list(self.forming.values()), {}
        resync, self.resync = self.resync, False
        return closed, forming, resync


class WebHub:
    """Feeds -> browsers. ``attach(feed)`` for every feed; ``run_table`` ticks the table."""

    def __init__(self, snapshot: Callable[[], HealthSnapshot], *,
                 count_error: Callable[[str], object] | None = None,
                 table_interval_s: float = 1.0, heartbeat_s: float = 15.0) -> None:
        self._snapshot = snapshot
        self._count_error = count_error
        self.table_interval_s = table_interval_s
        self.heartbeat_s = heartbeat_s
        self._feeds: dict[StreamKey, CandleSource] = {}
        self.forming: dict[StreamKey, Candle] = {}
        #: clients by the stream they follow (the inline handlers look up only their key)
        self._by_key: dict[StreamKey, set[WebClient]] = {}
        self.clients: set[WebClient] = set()
        #: the update subscription of each feed a browser follows (by ``id(feed)``)
        self._updates: dict[int, tuple[CandleSource, Any]] = {}
        self.dropped = 0
        #: browsers disconnected because they took nothing for ``WRITE_TIMEOUT_S``
        self.stalled = 0
        self.table_version = 0
        self.table_bytes = b""
        self.closing = False

    # -- feed side (inline handlers: memory only, never an await) -------------------------
    def attach(self, feed: CandleSource) -> None:
        for key in _all_keys(feed):
            self._feeds[key] = feed
        feed.on_closed(self._on_closed, inline=True)

    def _on_closed(self, candle: Candle) -> None:
        key = candle.key
        if self.forming.get(key) is not None and self.forming[key].open_time <= candle.open_time:
            del self.forming[key]
        for client in self._by_key.get(key, ()):
            if not client.push_closed(candle):
                self.dropped += 1
                if self._count_error is not None:
                    self._count_error("web_client_dropped")

    def _on_update(self, candle: Candle) -> None:
        if candle.closed:
            return  # the close itself arrives through _on_closed, exactly once
        self.forming[candle.key] = candle
        for client in self._by_key.get(candle.key, ()):
            client.push_forming(candle)

    # -- browser side ---------------------------------------------------------------------
    def candles(self, key: StreamKey, n: int) -> tuple[list[Candle], Candle | None] | None:
        """The newest ``n`` closed candles of ``key`` and its forming one; None if unknown."""
        feed = self._feeds.get(key)
        if feed is None:
            return None
        closed = feed.latest(key.symbol, key.interval, n) if n > 0 else []
        forming = self.forming.get(key)
        if forming is not None and closed and forming.open_time <= closed[-1].open_time:
            forming = None
        return closed, forming

    def table(self) -> dict[str, object]:
        return table_json(self._snapshot())

    def connect(self, keys: Iterable[StreamKey]) -> WebClient:
        client = WebClient(k for k in keys if k in self._feeds)
        self.clients.add(client)
        for key in client.keys:
            self._by_key.setdefault(key, set()).add(client)
            feed = self._feeds[key]
            if id(feed) not in self._updates:
                self._updates[id(feed)] = (feed, feed.on_update(self._on_update, inline=True))
        return client

    def disconnect(self, client: WebClient) -> None:
        self.clients.discard(client)
        for key in client.keys:
            followers = self._by_key.get(key)
            if followers is not None:
                followers.discard(client)
                if not followers:
                    del self._by_key[key]
        for fid, (feed, sub) in list(self._updates.items()):
            if not any(k in self._by_key for k in _all_keys(feed)):
                feed.bus.unsubscribe(CandleUpdate, sub)
                del self._updates[fid]
                for key in _all_keys(feed):
                    self.forming.pop(key, None)

    async def run_table(self) -> None:
        """Rebuild the table for every client once per ``table_interval_s`` while any is
        connected (one snapshot per tick, whatever the number of browsers)."""
        while not self.closing:
            if self.clients:
                self.tick()
            await asyncio.sleep(self.table_interval_s)

    def encode_table(self) -> bytes | None:
        """The table as JSON; None (counted, logged at a limited rate) when the snapshot
        fails: the next tick tries again."""
        try:
            return _json.encode(self.table())
        except Exception as exc:
            if self._count_error is not None:
                self._count_error("web_table")
            _limited.error("web_table", "web page: building the streams table failed: %r", exc)
            return None

    def tick(self) -> None:
        body = self.encode_table()
        if body is None:
            return
        self.table_bytes = body
        self.table_version += 1
        for client in self.clients:
            client.wake.set()

    def note_stalled(self) -> None:
        """A browser stopped reading and was disconnected: counted like a drop."""
        self.stalled += 1
        if self._count_error is not None:
            self._count_error("web_client_stalled")

    def close(self) -> None:
        """End every event stream (the server is stopping)."""
        self.closing = True
        for client in list(self.clients):
            client.wake.set()
