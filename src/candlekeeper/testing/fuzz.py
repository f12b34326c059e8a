"""A seeded mutation fuzzer for venue codecs: ``decode`` must never raise, whatever arrives.

Seeds are real frames (a venue's ``samples.py``). Each fuzzed frame is a seed with a few
mutations, some at the byte level (flips, cuts, inserts, repeats) and some at the JSON level
(numbers made huge or fractional, strings made empty, ``"NaN"``, ``"1e5"``, 5,000 digits long,
deep nesting, wrong types), so both the parser and everything behind it are exercised. A frame
that arrives gzip'd is mutated inside the compression too (decompress, mutate, compress) — a
byte flip in a gzip stream only tests the inflater.

Deterministic for a seed: a failure report names the seed and the frame number, and
:func:`fuzz_frames` regenerates exactly that frame. Used by ``tests/venues/contract`` (a few
thousand frames per venue) and ``benchmarks/fuzz.py`` (100,000 and more).
"""

from __future__ import annotations

import random
import re
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

_GZIP = b"\x1f\x8b"
_NUMBER = re.compile(rb"-?\d+(\.\d+)?")
_STRING = re.compile(rb'"[^"\\]{0,80}"')
_WEIRD_VALUES: tuple[bytes, ...] = (
    b'""', b'"NaN"', b'"Infinity"', b'"1e5"', b'"-1"', b'"abc"', b'"\xef\xbc\x91\xef\xbc\x92"',
    b"null", b"true", b"[]", b"{}", b"1e309", b"-0", b"0.0000000000000000000001",
    b"9" * 25, b"1" + b"0" * 5000, b'"' + b"7" * 5000 + b'"', b"18446744073709551616",
    b'"\\u0000"', b'"\\ud800"', b"[" * 200 + b"]" * 200,
)


@dataclass
class FuzzResult:
    """What a run decoded the frames into, and every exception (with the frame's number)."""

    frames: int = 0
    seconds: float = 0.0
    kinds: Counter[str] = field(default_factory=Counter)
    exceptions: list[tuple[int, str, bytes]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.exceptions


def _gunzip(data: bytes) -> bytes | None:
    try:
        return zlib.decompress(data, 31)
    except zlib.error:
        return None


def _gzip(data: bytes) -> bytes:
    comp = zlib.compressobj(1, zlib.DEFLATED, 31)
    return comp.compress(data) + comp.flush()


def _mutate(data: bytes, rng: random.Random, donors: Sequence[bytes]) -> bytes:
    op = rng.randrange(10)
    n = len(data)
    if op == 0 and n:  # flip bytes
        buf = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(n)] = rng.randrange(256)
        return bytes(buf)
    if op == 1 and n:  # truncate
        return data[:rng.randrange(n)]
    if op == 2:  # insert random bytes
        at = rng.randrange(n + 1)
        return data[:at] + rng.randbytes(rng.randint(1, 16)) + data[at:]
    if op == 3 and n > 1:  # delete a range
        a = rng.randrange(n)
        return data[:a] + data[a + rng.randint(1, max(1, n - a)):]
    if op == 4 and n:  # repeat a range
        a = rng.randrange(n)
        b = min(n, a + rng.randint(1, 64))
        return data[:b] + data[a:b] * rng.randint(1, 8) + data[b:]
    if op == 5:  # replace a number
        nums = list(_NUMBER.finditer(data))
        if nums:
            m = rng.choice(nums)
            return data[:m.start()] + rng.choice(_WEIRD_VALUES) + data[m.end():]
    if op == 6:  # replace a string
        strs = list(_STRING.finditer(data))
        if strs:
            m = rng.choice(strs)
            return data[:m.start()] + rng.choice(_WEIRD_VALUES) + data[m.end():]
    if op == 7 and donors:  # splice in part of another frame
        donor = rng.choice(donors)
        a = rng.randrange(len(donor) + 1)
        at = rng.randrange(n + 1)
        return data[:at] + donor[a:a + rng.randint(1, 200)] + data[at:]
    if op == 8:  # wrap or nest
        return rng.choice((b"[" + data + b"]", b'{"data":' + data + b"}", data + data))
    return data.replace(b'"', b"'", 1) if rng.random() < 0.5 else data.upper()


def fuzz_frames(seeds: Sequence[bytes | str], count: int, seed: int = 0) -> Iterator[bytes]:
    """``count`` mutated frames from ``seeds`` (deterministic for ``seed``)."""
    if not seeds:
        raise ValueError("fuzzing needs at least one seed frame")
    rng = random.Random(seed)
    raw = [s.encode() if isinstance(s, str) else bytes(s) for s in seeds]
    plain = [p for p in (_gunzip(r) if r[:2] == _GZIP else r for r in raw) if p is not None]
    for _ in range(count):
        base = rng.choice(raw)
        zipped = base[:2] == _GZIP and rng.random() < 0.8
        body = (_gunzip(base) or base) if zipped else base
        for _ in range(rng.choices((1, 2, 3, 4), weights=(6, 2, 1, 1))[0]):
            body = _mutate(body, rng, plain)
        yield _gzip(body) if zipped else body


def run_fuzz(decode: Callable[[bytes], object], seeds: Sequence[bytes | str], count: int,
             seed: int = 0) -> FuzzResult:
    """Feed ``count`` fuzzed frames to ``decode``; record what they became and what raised."""
    result = FuzzResult()
    t0 = time.perf_counter()
    for i, frame in enumerate(fuzz_frames(seeds, count, seed)):
        try:
            out = decode(frame)
        except Exception as exc:  # the point of the exercise: nothing may escape
            result.exceptions.append((i, f"{type(exc).__name__}: {exc}"[:300], frame[:300]))
            continue
        items = out if isinstance(out, list) else [out]
        for item in items:
            result.kinds[type(item).__name__] += 1
    result.frames = count
    result.seconds = time.perf_counter() - t0
    return result
