"""Keeping one connection alive, and noticing when it is dead.

Two styles, chosen by the venue's stream codec:

* **An application heartbeat** (``codec.heartbeat``, e.g. a JSON ping every 20 s, or a text
  ``ping`` after 30 s of silence): sent as a text frame on its schedule; its answer decodes to
  ``Pong``. A ping unanswered for ``timeout_s`` means the connection is dead even if buffered
  frames still trickle in.
* **None**: the venue pings and the link answers (protocol pings, or an in-band ping the codec
  turns into a ``Reply``); after ``idle_ping_s`` without any frame the client sends an RFC 6455
  ping of its own to provoke traffic.

Either way, no frame at all for ``idle_timeout_s`` drops the connection. Pure bookkeeping on the
link's fields; the session calls :func:`keep_alive` from its supervisor tick.
"""

from __future__ import annotations

from candlekeeper.transport.base import ConnectionLost
from candlekeeper.transport.link import Link
from candlekeeper.transport.options import TransportOptions
from candlekeeper.venues.contract import Heartbeat


def keep_alive(link: Link, now: float, beat: Heartbeat | None,
               options: TransportOptions) -> None:
    """Send what is due on ``link`` at loop time ``now``; raise ``ConnectionLost`` when the
    connection is dead. ``link.last_frame_at`` must be current."""
    if beat is not None:
        _heartbeat(link, now, beat)
    idle = now - link.last_frame_at
    if idle >= options.idle_timeout_s:
        raise ConnectionLost(f"no frame at all for {idle:.1f} s")
    if (beat is None and idle >= options.idle_ping_s and not link.idle_ping_sent
            and link.conn is not None):
        link.idle_ping_sent = True
        link.conn.send_ping(b"candlekeeper")
        link.pacer.force(now)


def _heartbeat(link: Link, now: float, beat: Heartbeat) -> None:
    sent = link.heartbeat_outstanding
    if sent is not None:
        if now - sent >= beat.timeout_s:
            raise ConnectionLost(f"no answer to the venue heartbeat within {beat.timeout_s:g} s")
        return
    since = max(link.heartbeat_sent_at, link.connected_at or 0.0)
    if beat.idle_only:
        since = max(since, link.last_frame_at)
    if now - since >= beat.every_s and link.conn is not None and not link.conn.closed:
        link.conn.send_text(beat.payload)
        link.pacer.force(now)
        link.heartbeat_sent_at = now
        link.heartbeat_outstanding = now
