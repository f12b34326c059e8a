"""``candlekeeper tail``: watch candles arrive on a NATS JetStream subject.

    candlekeeper tail --subject 'candles.<venue>.BTCUSDT.*' --server nats://127.0.0.1:4222
    candlekeeper tail --from-start --count 10 --json

Uses a JetStream **ordered consumer**: ephemeral, flow-controlled, and re-created by the client
from the last sequence it saw if it falls behind or the server restarts, so the lines come in
stream order with no gap and no repeat — and nothing is left behind on the server when ``tail``
exits. ``--from-start`` replays what the stream holds, ``--new`` (default) shows only candles
published from now on. A message that is not a valid candle (another producer on the subject) is
reported on stderr, counted, and skipped. Ctrl-C (or SIGTERM) ends the command cleanly, exit 0.

Progress notes (``watching ...``, the final count) go to stderr, candles to stdout, so
``candlekeeper tail --json | jq`` sees only candles. No credential is ever printed: server URLs
lose their user info, and every error text (nats-py's included) has the password, token and URL
credentials masked; a URL whose credentials hold an unescaped ``/ ? #`` is refused up front.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TextIO

import click
import nats
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import api

from candlekeeper.core.candle import Candle
from candlekeeper.errors import ConfigError, DecodeError
from candlekeeper.observability.redact import Redactor, describe_error, redact_url
from candlekeeper.sinks.nats import check_server_urls
from candlekeeper.sinks.nats_schema import decode_candle

__all__ = ["format_line", "tail", "tail_command"]


def format_line(c: Candle) -> str:
    """One human line per candle: UTC open time, series, OHLCV as the exchange's exact text."""
    when = datetime.fromtimestamp(c.open_time / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    flags = "" if c.closed else " (open)"
    return (f"{when} {c.venue} {c.symbol} {c.interval} O {c.open_str} H {c.high_str} "
            f"L {c.low_str} C {c.close_str} V {c.volume_str} [{c.source}]{flags}")


async def tail(servers: Sequence[str], subject: str, *, stream: str | None = None,
               from_start: bool = False, count: int | None = None, as_json: bool = False,
               idle_timeout_s: float | None = None, connect_timeout_s: float = 10.0,
               out: TextIO | None = None, err: TextIO | None = None,
               stop: asyncio.Event | None = None,
               auth: Mapping[str, str] | None = None) -> int:
    """Print candles from ``subject`` until ``count`` were printed, ``stop`` is set, SIGINT or
    SIGTERM arrives, or nothing came for ``idle_timeout_s``. Returns the number printed.

    ``auth`` is passed to ``nats.connect`` (``user``, ``password``, ``token``,
    ``user_credentials``); it is never printed.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    try:
        check_server_urls("tail", servers)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    redact = Redactor(secrets=[(auth or {}).get(k) for k in ("password", "token")],
                      urls=servers)
    shown = ",".join(redact_url(s) for s in servers)
    queue: asyncio.Queue[Msg] = asyncio.Queue()

    async def on_msg(msg: Msg) -> None:
        queue.put_nowait(msg)

    client_errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        # nats-py's default callback logs a traceback per reconnect attempt; tail keeps quiet
        # (the ordered consumer resumes after a reconnect) and names the cause if it gives up:
        # the server's refusal ("Authorization Violation") rather than the reset that follows
        if isinstance(exc, nats.errors.Error) or not client_errors or isinstance(
                client_errors[-1], OSError):
            client_errors[:] = [exc]

    nc = None
    printed = bad = 0
    try:
        try:
            async with asyncio.timeout(connect_timeout_s):
                nc = await nats.connect(list(servers), name="candlekeeper-tail",
                                        max_reconnect_attempts=-1, reconnect_time_wait=1,
                                        error_cb=on_error, **dict(auth or {}))
            js = nc.jetstream()
            if stream is None:
                stream = await js.find_stream_name_by_subject(subject)
            policy = api.DeliverPolicy.ALL if from_start else api.DeliverPolicy.NEW
            # a 1 s heartbeat: a consumer lost in a server restart is noticed (and re-created
            # from the next sequence) within a few seconds instead of nats-py's default ~20 s
            await js.subscribe(subject, stream=stream, cb=on_msg, ordered_consumer=True,
                               deliver_policy=policy, idle_heartbeat=1.0)
        except TimeoutError:
            last = (f" (last error: {describe_error(client_errors[-1], redact)})"
                    if client_errors else "")
            raise click.ClickException(f"no NATS server answered at {shown} within "
                                       f"{connect_timeout_s:g}s{last}") from None
        except nats.js.errors.NotFoundError:
            raise click.ClickException(f"no JetStream stream captures {subject!r}") from None
        except (nats.errors.Error, OSError) as exc:
            raise click.ClickException(f"NATS error at {shown}: {describe_error(exc, redact)}"
                                       ) from None
        print(f"watching {subject} on stream {stream} at {shown} "
              f"({'from the start' if from_start else 'new candles only'}); Ctrl-C to stop",
              file=err, flush=True)
        stopped = asyncio.ensure_future(stop.wait())
        while count is None or printed < count:
            got = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({got, stopped}, timeout=idle_timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
            if got not in done:
                got.cancel()
                break
            msg = got.result()
            try:
                candle = decode_candle(msg.data)
            except DecodeError as exc:
                bad += 1
                print(f"skipped a message on {msg.subject}: {exc} ({bad} skipped)", file=err,
                      flush=True)
                continue
            line = msg.data.decode() if as_json else format_line(candle)
            print(line, file=out, flush=True)
            printed += 1
        stopped.cancel()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()
    print(f"{printed} candle(s) shown" + (f", {bad} malformed message(s) skipped" if bad else ""),
          file=err, flush=True)
    return printed


@click.command("tail")
@click.option("--subject", default="candles.>", show_default=True,
              help="Subject to watch; wildcards allowed, e.g. 'candles.<venue>.BTCUSDT.*'.")
@click.option("--server", "servers", multiple=True, default=("nats://127.0.0.1:4222",),
              show_default=True, envvar="NATS_URL", help="NATS server URL (repeatable).")
@click.option("--stream", default=None, help="Stream name (default: the stream that captures "
              "the subject).")
@click.option("--from-start/--new", "from_start", default=False, show_default=True,
              help="Replay what the stream holds, or only show candles published from now on.")
@click.option("--count", type=click.IntRange(min=1), default=None,
              help="Exit after this many candles.")
@click.option("--json", "as_json", is_flag=True, help="Print each candle's JSON payload.")
@click.option("--idle-timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Exit when no candle arrived for this many seconds.")
@click.option("--connect-timeout", type=click.FloatRange(min=0, min_open=True), default=10.0,
              show_default=True, help="Give up if no server answers within this many seconds.")
@click.option("--user", envvar="NATS_USER", default=None, help="Username (or $NATS_USER).")
@click.option("--password", envvar="NATS_PASSWORD", default=None,
              help="Password (or $NATS_PASSWORD).")
@click.option("--token", envvar="NATS_TOKEN", default=None, help="Token (or $NATS_TOKEN).")
@click.option("--creds", envvar="NATS_CREDS", default=None,
              type=click.Path(exists=True, dir_okay=False), help="Credentials file.")
def tail_command(subject: str, servers: tuple[str, ...], stream: str | None, from_start: bool,
                 count: int | None, as_json: bool, idle_timeout: float | None,
                 connect_timeout: float, user: str | None,
                 password: str | None, token: str | None, creds: str | None) -> None:
    """Watch closed candles published to NATS JetStream."""
    auth = {k: v for k, v in (("user", user), ("password", password), ("token", token),
                              ("user_credentials", creds)) if v is not None}
    try:
        asyncio.run(tail(servers, subject, stream=stream, from_start=from_start, count=count,
                         as_json=as_json, idle_timeout_s=idle_timeout,
                         connect_timeout_s=connect_timeout, auth=auth))
    except KeyboardInterrupt:  # Ctrl-C before the handlers were installed
        click.echo("interrupted", err=True)


if __name__ == "__main__":
    tail_command()
