"""NatsSink against a real nats-server with JetStream (the ``nats`` fixture): round trip, subjects,
deduplication, stream creation/reuse, failures and the post-failure check."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import msgspec
import nats
import pytest
from natskit import msg_ids, stream_messages
from sinkkit import make_candle

from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import ConfigError, SinkError
from candlekeeper.sinks import BatchingWriter
from candlekeeper.sinks.nats import NatsSink, redact_url
from candlekeeper.sinks.nats_schema import decode_candle, msg_id
from servers import NatsServer, free_port


def new_sink(server: NatsServer, **kw: object) -> NatsSink:
    options: dict[str, object] = {"reconnect_wait_s": 0.1, "ack_timeout_s": 3.0,
                                  "connect_timeout_s": 5.0}
    options.update(kw)
    return NatsSink(server.url, **options)  # type: ignore[arg-type]


@pytest.fixture
async def sink(nats: NatsServer) -> AsyncIterator[NatsSink]:
    s = new_sink(nats)
    await s.open()
    yield s
    await s.close()


async def test_round_trip_with_exact_decimals(nats: NatsServer, sink: NatsSink) -> None:
    candles = [make_candle(i, close=c) for i, c in enumerate(("7.6170", "0.00000010", "12"))]
    await sink.write(candles)
    msgs = await stream_messages(nats.url)
    assert [m.subject for m in msgs] == ["candles.binance-usdm.SUSHIUSDT.1m"] * 3
    assert msg_ids(msgs) == [msg_id(c) for c in candles]
    assert msg_ids(msgs)[0] == "binance-usdm:SUSHIUSDT:1m:1626992700000"
    back = [decode_candle(m.data or b"") for m in msgs]
    assert back == candles
    assert [b.close_str for b in back] == ["7.6170", "0.00000010", "12"]
    assert sink.published == 3 and sink.duplicates == 0


async def test_subjects_per_series_and_sanitised(nats: NatsServer, sink: NatsSink) -> None:
    keys = [StreamKey("binance-spot", "ETHUSDT", "5m"), StreamKey("odd venue", "BTC.US*D>", "1h")]
    await sink.write([make_candle(0, key=k) for k in keys])
    msgs = await stream_messages(nats.url)
    assert [m.subject for m in msgs] == ["candles.binance-spot.ETHUSDT.5m",
                                         "candles.odd_venue.BTC_US_D_.1h"]
    assert msg_ids(msgs)[1] == "odd venue:BTC.US*D>:1h:1626992700000"  # the raw natural key
    assert decode_candle(msgs[1].data or b"").key == keys[1]


async def test_same_candle_twice_is_one_message(nats: NatsServer, sink: NatsSink) -> None:
    batch = [make_candle(i) for i in range(50)]
    await sink.write(batch)
    await sink.write(batch)  # a retry after a lost ack
    await sink.write([batch[7], batch[7]])  # a duplicate inside one batch
    msgs = await stream_messages(nats.url)
    assert len(msgs) == 50 and len(set(msg_ids(msgs))) == 50
    assert sink.published == 50 and sink.duplicates == 52


async def test_stream_created_with_settings_then_reused(nats: NatsServer) -> None:
    first = new_sink(nats, stream="K", subject_prefix="md.candles", duplicate_window_s=300,
                     max_age_s=3600.0)
    await first.open()
    await first.write([make_candle(0)])
    await first.close()
    second = new_sink(nats, stream="K", subject_prefix="md.candles", duplicate_window_s=300)
    await second.open()  # the stream exists: reused, its message kept
    await second.write([make_candle(0), make_candle(1)])
    await second.close()
    nc = await nats_connect(nats.url)
    info = await nc.jetstream().stream_info("K")
    await nc.close()
    assert info.config.subjects == ["md.candles.>"]
    assert info.config.duplicate_window == 300 and info.config.max_age == 3600
    assert str(info.config.storage) in ("StorageType.FILE", "file")
    assert info.state.messages == 2


async def test_existing_stream_that_misses_the_prefix_is_an_error(nats: NatsServer) -> None:
    nc = await nats_connect(nats.url)
    await nc.jetstream().add_stream(name="CANDLES", subjects=["other.>"])
    await nc.close()
    s = new_sink(nats)
    with pytest.raises(SinkError, match=r"captures \['other.>'\], not candles.>"):
        await s.open()
    await s.close()


async def test_missing_stream_without_create_is_an_error(nats: NatsServer) -> None:
    s = new_sink(nats, create_stream=False)
    with pytest.raises(SinkError, match="does not exist and create_stream is off"):
        await s.open()
    await s.close()


async def test_stream_deleted_while_running_is_recreated(nats: NatsServer, sink: NatsSink) -> None:
    await sink.write([make_candle(0)])
    nc = await nats_connect(nats.url)
    await nc.jetstream().delete_stream("CANDLES")
    await nc.close()
    with pytest.raises(SinkError, match="not acknowledged"):
        await sink.write([make_candle(1)])
    await sink.write([make_candle(1)])  # the retry re-creates the stream
    assert msg_ids(await stream_messages(nats.url)) == [msg_id(make_candle(1))]


async def test_no_server_at_open_fails_within_the_timeout() -> None:
    s = NatsSink(f"nats://127.0.0.1:{free_port()}", connect_timeout_s=0.5)
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(SinkError, match="cannot connect"):
        await s.open()
    assert loop.time() - start < 5
    assert not s.is_connected


async def test_server_down_fails_the_batch_and_retry_skips_what_was_stored(
        nats: NatsServer, sink: NatsSink) -> None:
    batch = [make_candle(i) for i in range(20)]
    await sink.write(batch[:12])  # stored, but pretend the acks were lost: retry the whole batch
    await asyncio.to_thread(nats.stop)
    with pytest.raises(SinkError):
        await sink.write(batch)
    await asyncio.to_thread(nats.start)
    for _ in range(100):  # the client reconnects in the background
        if sink.is_connected:
            break
        await asyncio.sleep(0.05)
    await sink.write(batch)
    msgs = await stream_messages(nats.url)
    assert msg_ids(msgs) == [msg_id(c) for c in batch]
    # the post-failure check found 12 already stored: only 8 were sent
    assert sink.skipped == 12 and sink.published == 20 and sink.duplicates == 0


async def test_credentials_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    assert redact_url("nats://alice:s3cret@h:4222") == "nats://***@h:4222"
    assert redact_url("tls://h:4222") == "tls://h:4222"
    s = NatsSink(f"nats://alice:s3cret@127.0.0.1:{free_port()}", password="pw-xyz",
                 token="tok-xyz", connect_timeout_s=0.3)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SinkError) as info:
        await s.open()
    shown = repr(s) + str(info.value) + caplog.text
    assert "127.0.0.1" in shown
    for secret in ("s3cret", "pw-xyz", "tok-xyz"):
        assert secret not in shown


@pytest.mark.parametrize(("kw", "message"), [
    ({"subject_prefix": "candles.>"}, "invalid NATS subject prefix"),
    ({"stream": "A.B"}, "invalid stream name"),
    ({"duplicate_window_s": 0}, "must be > 0"),
    ({"max_age_s": 60.0, "duplicate_window_s": 120.0}, "max_age_s must be >="),
    ({"servers": []}, "at least one server"),
])
def test_bad_settings_are_config_errors(kw: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"servers": "nats://127.0.0.1:4222"}
    args.update(kw)
    with pytest.raises(ConfigError, match=message):
        NatsSink(**args)  # type: ignore[arg-type]


async def nats_connect(url: str) -> nats.aio.client.Client:
    return await nats.connect(url)


async def test_batches_larger_than_max_inflight_go_out_in_chunks(nats: NatsServer) -> None:
    s = new_sink(nats, max_inflight=7)
    await s.open()
    keys = [StreamKey("binance-usdm", sym, "1m") for sym in ("BTCUSDT", "ETHUSDT")]
    batch = [make_candle(i, key=k) for i in range(20) for k in keys]
    await s.write(batch[:9])
    await s.write(batch)  # 9 duplicates then 31 new, in 6 chunks
    await s.close()
    msgs = await stream_messages(nats.url)
    assert msg_ids(msgs) == [msg_id(c) for c in batch]
    assert s.published == 40 and s.duplicates == 9


@pytest.mark.parametrize("check", [True, False])
async def test_stored_but_unacknowledged_batch_is_not_stored_twice(nats: NatsServer,
                                                                    check: bool) -> None:
    s = new_sink(nats, skip_stored_on_retry=check)
    await s.open()
    batch = [make_candle(i) for i in range(200)]
    s.ack_timeout_s = 1e-6  # the server stores the batch, but the sink stops waiting for acks
    with pytest.raises(SinkError, match="not acknowledged"):
        await s.write(batch)
    s.ack_timeout_s = 3.0
    await s.write(batch)  # the writer's retry
    await s.close()
    msgs = await stream_messages(nats.url)
    assert msg_ids(msgs) == [msg_id(c) for c in batch]
    assert s.published == 0  # every message was stored by the first, unacknowledged attempt
    if check:  # found by the last-message check (what the server had finished storing)
        assert s.skipped > 0 and s.skipped + s.duplicates == 200
    else:  # re-sent and dropped by the dedup window
        assert s.skipped == 0 and s.duplicates == 200


async def test_candles_that_cannot_become_messages_are_rejected_not_retried(
        nats: NatsServer) -> None:
    """Over the server's max_payload (1 MiB by default) or not encodable: returned as
    rejections and counted by the writer — never retried, never blocking newer candles."""
    sink = new_sink(nats)
    writer = BatchingWriter(sink, batch_size=5, flush_interval_s=0.01)
    await writer.start()
    huge = msgspec.structs.replace(make_candle(1), volume_str="1" + "0" * (1 << 20))
    unencodable = msgspec.structs.replace(make_candle(2), trades=object())
    no_venue = msgspec.structs.replace(make_candle(4), venue=7)  # no subject can be made
    for c in (make_candle(0), huge, unencodable, make_candle(3), no_venue):
        writer.submit(c)
    async with asyncio.timeout(20):
        while writer.stats.pending:
            await asyncio.sleep(0.01)
    stats = writer.stats
    assert (stats.written, stats.rejected, stats.failures) == (2, 3, 0)
    assert stats.last_rejection == ("binance-usdm:SUSHIUSDT:1m:1626992760000: message of 1048991 "
                                    "bytes exceeds the server's max_payload (1048576)")
    assert sink.rejected == 3
    msgs = await stream_messages(nats.url)
    assert msg_ids(msgs) == [msg_id(make_candle(0)), msg_id(make_candle(3))]
    await writer.stop()
