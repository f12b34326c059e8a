"""Creating or checking the JetStream stream the NATS sink publishes into.

Policy: a missing stream is created with the sink's settings; an existing stream is **reused as
it is** — its limits belong to whoever operates the NATS server, and silently rewriting them
from a service's config would surprise that operator. The only hard requirement is that the
stream captures the sink's subjects (otherwise every publish would fail with "no responders"); a
dedup window different from the configured one is reported as a warning, since it changes the
retry horizon that exactly-once relies on (see ``docs/deploying.md``).
"""

from __future__ import annotations

import logging
from typing import Literal

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext, api

from candlekeeper.errors import SinkError

__all__ = ["ensure_stream", "stream_config", "subject_matches"]

log = logging.getLogger(__name__)


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` matches one token, a final ``>`` one or more tokens."""
    p_tokens = pattern.split(".")
    s_tokens = subject.split(".")
    for i, p in enumerate(p_tokens):
        if p == ">":
            return i == len(p_tokens) - 1 and len(s_tokens) > i
        if i >= len(s_tokens) or (p != "*" and p != s_tokens[i]):
            return False
    return len(p_tokens) == len(s_tokens)


def stream_config(*, stream: str, prefix: str, duplicate_window_s: float,
                  max_age_s: float | None, max_bytes: int | None,
                  storage: Literal["file", "memory"], replicas: int) -> api.StreamConfig:
    """The configuration a new stream gets: every ``<prefix>.>`` subject, ``limits`` retention
    (consumers come and go; messages stay until they age out), oldest discarded first."""
    return api.StreamConfig(
        name=stream,
        description="candlekeeper closed candles (Nats-Msg-Id = venue:symbol:interval:open_time)",
        subjects=[f"{prefix}.>"],
        retention=api.RetentionPolicy.LIMITS,
        discard=api.DiscardPolicy.OLD,
        max_age=max_age_s,
        max_bytes=max_bytes if max_bytes is not None else -1,
        storage=api.StorageType.FILE if storage == "file" else api.StorageType.MEMORY,
        num_replicas=replicas,
        duplicate_window=duplicate_window_s,
    )


async def ensure_stream(js: JetStreamContext, *, sink: str, stream: str, prefix: str,
                        create: bool, duplicate_window_s: float, max_age_s: float | None,
                        max_bytes: int | None, storage: Literal["file", "memory"],
                        replicas: int, timeout_s: float) -> api.StreamInfo:
    """Return the stream's info, creating the stream first if it is missing and ``create``.

    Raises ``SinkError`` when the stream is missing and may not be created, cannot be created
    (e.g. another stream already captures the subjects), or does not capture ``<prefix>.>``.
    """
    sample = f"{prefix}.venue.SYMBOL.1m"
    try:
        try:
            info = await js.stream_info(stream)
        except nats.js.errors.NotFoundError:
            if not create:
                raise SinkError(f"nats sink {sink!r}: stream {stream!r} does not exist and "
                                "create_stream is off") from None
            info = await js.add_stream(stream_config(
                stream=stream, prefix=prefix, duplicate_window_s=duplicate_window_s,
                max_age_s=max_age_s, max_bytes=max_bytes, storage=storage, replicas=replicas))
            log.info("nats sink %r: created stream %r (subjects %s.>, %s storage, dedup window "
                     "%gs, max age %s)", sink, stream, prefix, storage, duplicate_window_s,
                     "unlimited" if max_age_s is None else f"{max_age_s:g}s")
            return info
    except nats.js.errors.APIError as exc:
        raise SinkError(f"nats sink {sink!r}: cannot create or inspect stream {stream!r}: "
                        f"{exc.description or exc}") from exc
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        raise SinkError(f"nats sink {sink!r}: JetStream did not answer about stream {stream!r} "
                        f"({type(exc).__name__}: {exc}); is the server running with -js?") from exc
    subjects = info.config.subjects or []
    if not any(subject_matches(s, sample) for s in subjects):
        raise SinkError(f"nats sink {sink!r}: existing stream {stream!r} captures {subjects}, "
                        f"not {prefix}.> — fix the stream or the sink's subject_prefix")
    window = info.config.duplicate_window or 0.0
    if abs(window - duplicate_window_s) > 1e-3:
        log.warning("nats sink %r: existing stream %r has a dedup window of %gs, not the "
                    "configured %gs; retries later than %gs could store a candle twice",
                    sink, stream, window, duplicate_window_s, window)
    log.info("nats sink %r: using existing stream %r (%d message(s))", sink, stream,
             info.state.messages)
    return info
