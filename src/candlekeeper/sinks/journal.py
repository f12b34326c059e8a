"""A local, durable, append-only journal of candles waiting for a sink (the outage spill file).

When a sink is down, :class:`~candlekeeper.sinks.writer.BatchingWriter` moves what it holds in
memory here, so a long outage never drops candles and a crash or restart during the outage loses
nothing: the next start replays the journal, in order, before new data.

Format — chosen by measurement (10,000 candles, ext4, 2 CPUs): length-prefixed msgpack records
appended to a plain file with one ``fsync`` per append wrote 1.2–1.4 M rows/s at 100+ candles per
append (34,000/s at one), against 0.33 M rows/s (25,000/s) for the same records in a SQLite file
with ``synchronous=FULL``; reading back decodes 1.3 M rows/s. The access pattern — append at the
tail, consume from the head, delete when drained — is exactly what a log does and needs none of
SQLite's B-tree. Candles are msgpack *maps* (field names included, ~354 B per candle): slightly
bigger than arrays, but a journal written before a new optional ``Candle`` field was added still
decodes.

Layout: a directory of segments ``seg-0000000001.ckj``; each starts with an 8-byte magic and holds
records ``<u32 payload_len><u32 rows><i64 oldest_ms><u32 crc32>`` + payload (a msgpack list of
candles); the CRC covers the first 16 header bytes and the payload. A segment is closed for
appends once it passes ``segment_bytes``; a drained segment is deleted, and a drained active
segment is truncated back to its magic (the journal compacts itself as it drains). A small
``cursor`` file (atomically replaced, not fsynced) remembers the first record not yet
acknowledged; if it is lost, replay starts at the oldest segment — harmless, because sinks are
idempotent.

Crash safety: a record is durable once ``append`` returns (written + ``fsync``; new segment files
also fsync their directory). A crash mid-append leaves a torn tail, which :meth:`Journal.open`
detects (short header, length past the end of file, or CRC mismatch), logs, counts in
``corrupt_bytes`` and truncates; everything before it is replayed. A corrupt record in the middle
of a segment ends that segment's valid part the same way (the length prefix after it cannot be
trusted); later segments are still replayed.

The class is synchronous and *not* thread-safe: the writer calls it from one dedicated worker
thread, so the event loop never waits on the disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import zlib
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import msgspec

from candlekeeper.core.candle import Candle
from candlekeeper.errors import SinkError

__all__ = ["Journal", "JournalError", "JournalFull", "JournalRecord"]

log = logging.getLogger(__name__)

MAGIC = b"CKJRNL01"
_HEADER = struct.Struct("<IIqI")  # payload_len, rows, oldest_ms, crc32
_SEGMENT_GLOB = "seg-*.ckj"
_CURSOR = "cursor"


class JournalError(SinkError):
    """The journal could not be read or written (disk full, permissions, I/O error)."""


class JournalFull(JournalError):
    """Appending would pass ``max_bytes``; the caller keeps the candles in memory instead."""


class JournalRecord(NamedTuple):
    """One record read from the journal; pass it back to :meth:`Journal.ack` once stored."""

    segment: int
    offset: int
    candles: list[Candle]
    oldest_ms: int


class _Entry(NamedTuple):
    offset: int
    size: int  # header + payload
    rows: int
    oldest_ms: int


class _Segment:
    __slots__ = ("end", "entries", "number", "path")

    def __init__(self, number: int, path: Path, end: int) -> None:
        self.number = number
        self.path = path
        self.end = end  # bytes of valid data (magic included)
        self.entries: deque[_Entry] = deque()  # records not yet acknowledged, in order


def _segment_path(directory: Path, number: int) -> Path:
    return directory / f"seg-{number:010d}.ckj"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """Append-only, fsynced, self-compacting candle journal in ``directory`` (see the module
    docstring). ``rows``/``bytes``/``oldest_ms`` describe what is not yet acknowledged."""

    def __init__(self, directory: str | Path, *, segment_bytes: int = 64 << 20,
                 max_bytes: int | None = None, fsync: bool = True) -> None:
        if segment_bytes < 4096:
            raise ValueError("segment_bytes must be >= 4096")
        if max_bytes is not None and max_bytes < segment_bytes:
            raise ValueError("max_bytes must be >= segment_bytes (or None for no limit)")
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self.fsync = fsync
        self._segments: deque[_Segment] = deque()
        self._fd: int | None = None  # append handle of the last segment
        self._lock_fd: int | None = None  # flock on ``lock``: one journal, one writer
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(list[Candle])
        self._open = False
        #: rows / bytes (headers included) / records not yet acknowledged
        self.rows = 0
        self.bytes = 0
        self.records = 0
        #: bytes discarded because they were torn or corrupt (at open) and records that passed
        #: their CRC but could not be decoded (skipped at read) — non-zero means data was lost
        self.corrupt_bytes = 0
        self.undecodable_records = 0

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> None:
        """Create the directory, scan every segment (truncating a torn tail), apply the cursor.
        Idempotent."""
        if self._open:
            return
        self.rows = self.bytes = self.records = 0
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock()
            numbers = sorted(int(p.stem[4:]) for p in self.directory.glob(_SEGMENT_GLOB)
                             if p.stem[4:].isdigit())
            for number in numbers:
                self._segments.append(self._scan(number))
            self._apply_cursor()
            for seg in list(self._segments)[:-1]:
                if not seg.entries:
                    self._drop_segment(seg)
            if not self._segments:
                self._segments.append(self._new_segment(1))
            last = self._segments[-1]
            self._fd = os.open(last.path, os.O_WRONLY | os.O_APPEND)
        except OSError as exc:
            self._unlock()
            raise JournalError(f"journal {self.directory}: cannot open: {exc}") from exc
        self._open = True
        if self.rows:
            log.warning("journal %s: %d candle(s) in %d record(s) from a previous run will be "
                        "replayed first", self.directory, self.rows, self.records)

    def close(self) -> None:
        """Close the append handle. Idempotent; what is not acknowledged stays on disk (and the
        counters keep describing it until the next ``open``)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._unlock()
        self._segments.clear()
        self._open = False

    # -- appending ----------------------------------------------------------------------------
    def append(self, candles: Sequence[Candle], *, oldest_ms: int, record_rows: int) -> int:
        """Append ``candles`` as records of at most ``record_rows`` each, then fsync once.
        Returns the bytes written. All or nothing: on error the segment is cut back and
        ``JournalError`` (``JournalFull`` past ``max_bytes``) is raised."""
        if not candles:
            return 0
        if self._fd is None:
            raise JournalError(f"journal {self.directory} is not open")
        if record_rows < 1:
            raise ValueError("record_rows must be >= 1")
        chunks: list[bytes] = []
        entries: list[tuple[int, int, int]] = []  # size, rows, oldest_ms
        for i in range(0, len(candles), record_rows):
            part = candles[i:i + record_rows]
            payload = self._encoder.encode(part)
            head = struct.pack("<IIq", len(payload), len(part), oldest_ms)
            crc = zlib.crc32(payload, zlib.crc32(head))
            chunks.append(head + struct.pack("<I", crc))
            chunks.append(payload)
            entries.append((_HEADER.size + len(payload), len(part), oldest_ms))
        total = sum(size for size, _, _ in entries)
        if self.max_bytes is not None and self.bytes + total > self.max_bytes:
            raise JournalFull(f"journal {self.directory}: full ({self.bytes:,} of "
                              f"{self.max_bytes:,} bytes; {total:,} more needed)")
        seg = self._segments[-1]
        if seg.end > len(MAGIC) and seg.end + total > self.segment_bytes:
            seg = self._rotate()
        try:
            view = memoryview(b"".join(chunks))
            while view:
                view = view[os.write(self._fd, view):]
            if self.fsync:
                os.fsync(self._fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, seg.end)
            raise JournalError(f"journal {self.directory}: append failed: {exc}") from exc
        offset = seg.end
        for size, rows, oldest in entries:
            seg.entries.append(_Entry(offset, size, rows, oldest))
            offset += size
            self.rows += rows
            self.records += 1
        seg.end = offset
        self.bytes += total
        return total

    # -- consuming ----------------------------------------------------------------------------
    @property
    def oldest_ms(self) -> int | None:
        """Wall-clock ms when the oldest unacknowledged candle was first queued, if any."""
        for seg in self._segments:
            if seg.entries:
                return seg.entries[0].oldest_ms
        return None

    def peek(self) -> JournalRecord | None:
        """The oldest record not yet acknowledged (read from disk), or None when drained.
        A record that passes its CRC but does not decode is logged, counted and skipped."""
        while True:
            seg = next((s for s in self._segments if s.entries), None)
            if seg is None:
                return None
            entry = seg.entries[0]
            try:
                with seg.path.open("rb") as f:
                    f.seek(entry.offset)
                    data = f.read(entry.size)
            except OSError as exc:
                raise JournalError(f"journal {self.directory}: read failed: {exc}") from exc
            try:
                if len(data) != entry.size:
                    raise ValueError(f"short read ({len(data)} of {entry.size} bytes)")
                candles = self._decoder.decode(data[_HEADER.size:])
            except (ValueError, msgspec.DecodeError) as exc:
                self.undecodable_records += 1
                log.error("journal %s: record at %s:%d cannot be decoded (%s); skipping its %d "
                          "candle(s) — DATA LOSS", self.directory, seg.path.name, entry.offset,
                          exc, entry.rows)
                self._ack_entry(seg)
                continue
            return JournalRecord(seg.number, entry.offset, candles, entry.oldest_ms)

    def ack(self, record: JournalRecord) -> None:
        """Mark ``record`` (the one :meth:`peek` returned) as stored; compact what is drained."""
        seg = next((s for s in self._segments if s.entries), None)
        if seg is None or seg.number != record.segment or seg.entries[0].offset != record.offset:
            raise JournalError(f"journal {self.directory}: ack out of order "
                               f"(segment {record.segment}, offset {record.offset})")
        self._ack_entry(seg)

    # -- internals ----------------------------------------------------------------------------
    def _lock(self) -> None:
        """Two writers (two sinks, or two service instances started from the same folder) on one
        journal would interleave and acknowledge each other's records: refuse the second."""
        fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JournalError(f"journal {self.directory} is in use by another writer (give "
                               "each sink and each instance its own journal_dir)") from None
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def _ack_entry(self, seg: _Segment) -> None:
        entry = seg.entries.popleft()
        self.rows -= entry.rows
        self.bytes -= entry.size
        self.records -= 1
        try:
            if seg.entries:
                self._write_cursor(seg.number, seg.entries[0].offset)
            elif seg is self._segments[-1]:
                # the active segment is drained: cut it back to its magic (compaction)
                if self._fd is not None:
                    os.ftruncate(self._fd, len(MAGIC))
                seg.end = len(MAGIC)
                self._remove_cursor()
            else:
                self._drop_segment(seg)
                nxt = next((s for s in self._segments if s.entries), None)
                if nxt is None:
                    self._remove_cursor()
                else:
                    self._write_cursor(nxt.number, nxt.entries[0].offset)
        except OSError as exc:  # replay after a restart would only re-send stored candles
            log.warning("journal %s: compaction after ack failed: %s", self.directory, exc)

    def _scan(self, number: int) -> _Segment:
        path = _segment_path(self.directory, number)
        data = path.read_bytes()
        size = len(data)
        if not data.startswith(MAGIC):
            self.corrupt_bytes += size
            if size:
                log.error("journal %s: %s has no journal header; discarding %d byte(s)",
                          self.directory, path.name, size)
            path.write_bytes(MAGIC)
            return _Segment(number, path, len(MAGIC))
        seg = _Segment(number, path, len(MAGIC))
        pos = len(MAGIC)
        while pos < size:
            reason = None
            if size - pos < _HEADER.size:
                reason = "torn header"
            else:
                length, rows, oldest, crc = _HEADER.unpack_from(data, pos)
                end = pos + _HEADER.size + length
                if end > size:
                    reason = "torn record"
                elif zlib.crc32(data[pos + _HEADER.size:end], zlib.crc32(data[pos:pos + 16])) \
                        != crc:
                    reason = "CRC mismatch"
            if reason is not None:
                lost = size - pos
                self.corrupt_bytes += lost
                log.error("journal %s: %s at %s:%d; truncating %d byte(s) (the tail of a write "
                          "interrupted by a crash, or a damaged file)", self.directory, reason,
                          path.name, pos, lost)
                with path.open("r+b") as f:
                    f.truncate(pos)
                    os.fsync(f.fileno())
                break
            seg.entries.append(_Entry(pos, end - pos, rows, oldest))
            self.rows += rows
            self.bytes += end - pos
            self.records += 1
            pos = end
        seg.end = pos
        return seg

    def _apply_cursor(self) -> None:
        try:
            text = (self.directory / _CURSOR).read_text()
            number, offset = (int(x) for x in text.split())
        except (OSError, ValueError):
            return  # no cursor (or unreadable): replay everything, which is safe
        for seg in self._segments:
            if seg.number < number:
                while seg.entries:
                    self._forget(seg.entries.popleft())
            elif seg.number == number:
                if offset not in {e.offset for e in seg.entries} and offset != seg.end:
                    log.warning("journal %s: cursor %d:%d is not a record boundary; replaying "
                                "the whole segment", self.directory, number, offset)
                    return
                while seg.entries and seg.entries[0].offset < offset:
                    self._forget(seg.entries.popleft())

    def _forget(self, entry: _Entry) -> None:
        self.rows -= entry.rows
        self.bytes -= entry.size
        self.records -= 1

    def _new_segment(self, number: int) -> _Segment:
        path = _segment_path(self.directory, number)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, MAGIC)
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        if self.fsync:
            _fsync_dir(self.directory)
        return _Segment(number, path, len(MAGIC))

    def _rotate(self) -> _Segment:
        try:
            seg = self._new_segment(self._segments[-1].number + 1)
            fd = os.open(seg.path, os.O_WRONLY | os.O_APPEND)
        except OSError as exc:
            raise JournalError(f"journal {self.directory}: cannot start a segment: "
                               f"{exc}") from exc
        if self._fd is not None:
            os.close(self._fd)
        self._fd = fd
        old = self._segments[-1]
        self._segments.append(seg)
        if not old.entries:
            self._drop_segment(old)
        return seg

    def _drop_segment(self, seg: _Segment) -> None:
        self._segments.remove(seg)
        seg.path.unlink(missing_ok=True)

    def _write_cursor(self, number: int, offset: int) -> None:
        tmp = self.directory / (_CURSOR + ".tmp")
        tmp.write_text(f"{number} {offset}\n")
        os.replace(tmp, self.directory / _CURSOR)

    def _remove_cursor(self) -> None:
        (self.directory / _CURSOR).unlink(missing_ok=True)
