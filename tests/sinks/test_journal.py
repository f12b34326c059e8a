"""The outage journal on real files: order, durability across reopen, self-compaction, segment
rotation, the cursor, and crash damage (torn tail, CRC mismatch, undecodable record, missing
header) detected, counted and truncated — never a crash."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from sinkkit import make_candle

from candlekeeper.core.candle import Candle
from candlekeeper.sinks.journal import MAGIC, Journal, JournalError, JournalFull

OLDEST = 1_700_000_000_000


def candles(lo: int, hi: int) -> list[Candle]:
    return [make_candle(i) for i in range(lo, hi)]


def drain(j: Journal) -> list[list[int]]:
    """Every record's candle numbers, acknowledging as it goes."""
    out: list[list[int]] = []
    while (rec := j.peek()) is not None:
        out.append([(c.open_time - make_candle(0).open_time) // 60_000 for c in rec.candles])
        j.ack(rec)
    return out


def segments(d: Path) -> list[Path]:
    return sorted(d.glob("seg-*.ckj"))


def test_append_peek_ack_in_order_and_compacts(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j")
    j.open()
    assert (j.rows, j.records, j.bytes, j.oldest_ms, j.peek()) == (0, 0, 0, None, None)
    written = j.append(candles(0, 25), oldest_ms=OLDEST, record_rows=10)
    assert (j.rows, j.records, j.bytes) == (25, 3, written)
    j.append(candles(25, 30), oldest_ms=OLDEST + 5, record_rows=10)
    assert j.oldest_ms == OLDEST
    rec = j.peek()
    assert rec is not None and rec.candles == candles(0, 10)  # every field decoded
    assert j.peek() == rec  # peeking does not consume
    j.ack(rec)
    assert (j.rows, j.records) == (20, 3)
    assert drain(j) == [list(range(10, 20)), list(range(20, 25)), list(range(25, 30))]
    assert (j.rows, j.bytes) == (0, 0) and j.oldest_ms is None
    [seg] = segments(tmp_path / "j")
    assert seg.read_bytes() == MAGIC  # drained: cut back to the header
    assert not (tmp_path / "j" / "cursor").exists()
    j.close()


def test_unacknowledged_records_survive_reopen_and_the_cursor_skips_acked_ones(
        tmp_path: Path) -> None:
    j = Journal(tmp_path)
    j.open()
    j.append(candles(0, 30), oldest_ms=OLDEST, record_rows=10)
    rec = j.peek()
    assert rec is not None
    j.ack(rec)
    j.close()  # a crash after the ack: the cursor says where to resume
    again = Journal(tmp_path)
    again.open()
    assert (again.rows, again.oldest_ms) == (20, OLDEST)
    assert drain(again) == [list(range(10, 20)), list(range(20, 30))]
    again.close()


def test_a_lost_cursor_replays_everything_which_is_safe(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    j.open()
    j.append(candles(0, 20), oldest_ms=OLDEST, record_rows=10)
    rec = j.peek()
    assert rec is not None
    j.ack(rec)
    j.close()
    (tmp_path / "cursor").write_text("garbage")
    again = Journal(tmp_path)
    again.open()
    assert drain(again) == [list(range(0, 10)), list(range(10, 20))]


def test_segments_rotate_and_drained_ones_are_deleted(tmp_path: Path) -> None:
    j = Journal(tmp_path, segment_bytes=4096)
    j.open()
    for lo in range(0, 100, 10):  # ~3.5 KB per append of 10 candles: a new segment each time
        j.append(candles(lo, lo + 10), oldest_ms=OLDEST, record_rows=5)
    assert len(segments(tmp_path)) >= 5
    assert j.rows == 100
    j.close()
    again = Journal(tmp_path, segment_bytes=4096)
    again.open()
    assert again.rows == 100
    got = drain(again)
    assert [n for rec in got for n in rec] == list(range(100))
    assert len(segments(tmp_path)) == 1  # only the (emptied) active one is left
    again.append(candles(100, 101), oldest_ms=OLDEST, record_rows=5)
    assert drain(again) == [[100]]


def test_torn_tail_after_a_crash_is_truncated_and_appends_continue(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    j.open()
    j.append(candles(0, 20), oldest_ms=OLDEST, record_rows=10)
    j.append(candles(20, 30), oldest_ms=OLDEST, record_rows=10)
    j.close()
    [seg] = segments(tmp_path)
    whole = seg.read_bytes()
    seg.write_bytes(whole[:-100])  # the last record was being written when the power went
    again = Journal(tmp_path)
    again.open()
    assert (again.rows, again.records) == (20, 2)
    assert again.corrupt_bytes == len(whole) - 100 - len(MAGIC) - again.bytes  # what was left
    assert seg.stat().st_size == len(MAGIC) + again.bytes  # the torn record is gone from disk
    again.append(candles(30, 35), oldest_ms=OLDEST, record_rows=10)
    assert drain(again) == [list(range(0, 10)), list(range(10, 20)), list(range(30, 35))]


@pytest.mark.parametrize("tail", [b"\x01\x02\x03", struct.pack("<IIqI", 10**6, 1, 0, 0)])
def test_a_torn_header_or_impossible_length_is_a_torn_tail(tmp_path: Path, tail: bytes) -> None:
    j = Journal(tmp_path)
    j.open()
    j.append(candles(0, 10), oldest_ms=OLDEST, record_rows=10)
    j.close()
    [seg] = segments(tmp_path)
    with seg.open("ab") as f:
        f.write(tail)
    again = Journal(tmp_path)
    again.open()
    assert again.corrupt_bytes == len(tail)
    assert drain(again) == [list(range(10))]


def test_a_damaged_record_ends_the_segment_but_later_segments_replay(tmp_path: Path) -> None:
    j = Journal(tmp_path, segment_bytes=4096)
    j.open()
    j.append(candles(0, 10), oldest_ms=OLDEST, record_rows=5)   # segment 1: records 0-4, 5-9
    j.append(candles(10, 20), oldest_ms=OLDEST, record_rows=5)  # segment 2
    j.close()
    first = segments(tmp_path)[0]
    data = bytearray(first.read_bytes())
    data[len(MAGIC) + 40] ^= 0xFF  # flip a bit inside the first record's payload
    first.write_bytes(bytes(data))
    again = Journal(tmp_path, segment_bytes=4096)
    again.open()
    assert again.corrupt_bytes == len(data) - len(MAGIC)  # both records of segment 1
    assert drain(again) == [list(range(10, 15)), list(range(15, 20))]


def test_a_record_that_passes_crc_but_does_not_decode_is_skipped(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    j.open()
    payload = b"\x93\x01\x02\x03"  # msgpack [1, 2, 3]: not candles
    head = struct.pack("<IIq", len(payload), 3, OLDEST)
    crc = zlib.crc32(payload, zlib.crc32(head))
    j.close()
    [seg] = segments(tmp_path)
    with seg.open("ab") as f:
        f.write(head + struct.pack("<I", crc) + payload)
    again = Journal(tmp_path)
    again.open()
    again.append(candles(0, 2), oldest_ms=OLDEST, record_rows=10)
    assert again.rows == 5
    assert drain(again) == [[0, 1]]
    assert again.undecodable_records == 1
    assert again.rows == 0


def test_a_file_without_header_is_reset(tmp_path: Path) -> None:
    (tmp_path / "seg-0000000001.ckj").write_bytes(b"not a journal at all")
    j = Journal(tmp_path)
    j.open()
    assert j.corrupt_bytes == 20
    assert j.rows == 0
    j.append(candles(0, 1), oldest_ms=OLDEST, record_rows=1)
    assert drain(j) == [[0]]


def test_max_bytes_refuses_an_append_whole(tmp_path: Path) -> None:
    j = Journal(tmp_path, segment_bytes=4096, max_bytes=8192)
    j.open()
    j.append(candles(0, 10), oldest_ms=OLDEST, record_rows=10)
    with pytest.raises(JournalFull, match="full"):
        j.append(candles(10, 40), oldest_ms=OLDEST, record_rows=10)
    assert j.rows == 10
    assert drain(j) == [list(range(10))]


def test_errors_and_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="segment_bytes"):
        Journal(tmp_path, segment_bytes=10)
    with pytest.raises(ValueError, match="max_bytes"):
        Journal(tmp_path, segment_bytes=8192, max_bytes=4096)
    j = Journal(tmp_path / "j")
    with pytest.raises(JournalError, match="not open"):
        j.append(candles(0, 1), oldest_ms=OLDEST, record_rows=1)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(JournalError, match="cannot open"):
        Journal(blocker / "j").open()
    j.open()
    j.append(candles(0, 2), oldest_ms=OLDEST, record_rows=1)
    rec = j.peek()
    assert rec is not None
    j.ack(rec)
    with pytest.raises(JournalError, match="out of order"):
        j.ack(rec)


def test_one_journal_one_writer(tmp_path: Path) -> None:
    first = Journal(tmp_path)
    first.open()
    with pytest.raises(JournalError, match="in use by another writer"):
        Journal(tmp_path).open()
    first.close()
    second = Journal(tmp_path)
    second.open()  # free again once the first one closed
    second.close()
