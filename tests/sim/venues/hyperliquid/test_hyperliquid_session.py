"""The Hyperliquid session, Sans-I/O: acks echo the subscription, "Already subscribed", parse
errors keep the socket, an unknown coin drops it, ``ping`` -> ``pong``, and a burst of
subscribes beyond 20 a second is silently ignored."""

from __future__ import annotations

import json

from candlekeeper.sim.venues.hyperliquid.session import BURST_PER_S, HyperliquidSession
from candlekeeper.venues.hyperliquid.endpoints import HL_INTERVALS

VALID = {f"candle:{c}:1m" for c in ("BTC", "ETH", *(f"C{i}" for i in range(40)))}


def session(clock: list[float] | None = None) -> HyperliquidSession:
    now = clock if clock is not None else [0.0]
    return HyperliquidSession(VALID.__contains__, intervals=frozenset(HL_INTERVALS),
                              max_streams=100, wall=lambda: now[0])


def sub(coin: object, interval: str = "1m", method: str = "subscribe") -> str:
    return json.dumps({"method": method,
                       "subscription": {"type": "candle", "coin": coin, "interval": interval}})


def test_ack_already_subscribed_and_unsubscribe() -> None:
    s = session()
    ctl = s.handle(sub("BTC"))
    assert ctl.added == ("candle:BTC:1m",) and not ctl.is_error and not ctl.drop
    assert json.loads(ctl.reply) == {"channel": "subscriptionResponse", "data": {
        "method": "subscribe", "subscription": {"type": "candle", "coin": "BTC",
                                                "interval": "1m"}}}
    again = s.handle(sub("BTC"))
    assert again.is_error and json.loads(again.reply)["data"].startswith("Already subscribed: ")
    off = s.handle(sub("BTC", method="unsubscribe"))
    assert off.removed == ("candle:BTC:1m",) and s.subscriptions == {}


def test_parse_errors_keep_the_socket_an_unknown_coin_drops_it() -> None:
    s = session()
    for bad in ("nope", sub(["BTC", "ETH"]), sub("BTC", "6h"),
                json.dumps({"method": "subscribe", "subscription": {"type": "l2Book"}})):
        ctl = s.handle(bad)
        assert ctl.is_error and not ctl.drop
        assert json.loads(ctl.reply)["data"].startswith(
            "Error parsing JSON into valid websocket request: ")
    unknown = s.handle(sub("NOPE"))
    assert unknown.drop and unknown.reply == b"" and not unknown.added
    assert json.loads(s.handle('{"method":"ping"}').reply) == {"channel": "pong"}


def test_a_burst_of_subscribes_is_silently_ignored() -> None:
    clock = [100.0]
    s = session(clock)
    replies = [s.handle(sub(f"C{i}")) for i in range(BURST_PER_S + 5)]
    assert all(r.added for r in replies[:BURST_PER_S])
    assert all(r.reply == b"" and not r.added and not r.is_error
               for r in replies[BURST_PER_S:])
    assert s.ignored == 5
    clock[0] += 1.0  # a second later the venue listens again
    assert s.handle(sub("C30")).added == ("candle:C30:1m",)
