"""Finding the stream whose SUBSCRIBE makes a venue drop the connection (``isolation.py``):
suspects after a drop, cleared by an ack, rejected after two drops with it alone in flight;
a drop long after a subscribe, or a single coincidence, never rejects anything."""

from __future__ import annotations

from candlekeeper.core.stream_key import StreamKey
from candlekeeper.transport.isolation import DropIsolation
from candlekeeper.transport.watchdog import StreamSlot


def slot(name: str) -> StreamSlot:
    return StreamSlot(StreamKey("v", name, "1m"), f"s:{name}", 10.0)


def test_the_culprit_is_rejected_after_two_lone_drops_and_others_are_cleared() -> None:
    iso = DropIsolation(window_s=1.0, strikes=2)
    a, b, c = slot("A"), slot("B"), slot("C")
    # three SUBSCRIBEs in flight when the venue drops the socket: all suspects, none rejected
    assert iso.on_break([([a], 9.5), ([b], 9.7), ([c], 9.9)], now=10.0) is None
    normal, suspects = iso.split([a, b, c, slot("D")])
    assert [s.key.symbol for s in normal] == ["D"]
    assert [s.key.symbol for s in suspects] == ["A", "B", "C"]
    iso.acked([a])  # subscribed alone and acknowledged: innocent
    assert iso.on_break([([b], 20.0)], now=20.1) is b  # alone, second drop: the culprit
    assert set(iso.counts) == {c.key}


def test_a_drop_long_after_the_subscribe_or_once_is_no_verdict() -> None:
    iso = DropIsolation(window_s=1.0, strikes=2)
    a = slot("A")
    assert iso.on_break([([a], 0.0)], now=5.0) is None and iso.counts == {}
    assert iso.on_break([([a], 5.0)], now=5.1) is None  # a coincidence costs nothing yet
    iso.acked([a])
    assert iso.on_break([([a], 9.0)], now=9.1) is None  # the count started over
