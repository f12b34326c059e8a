"""Splitting a symbol universe over N ingestors (``--shard K/N``).

The assignment must be identical on every machine and in every Python process, so it uses a
cryptographic hash of the canonical symbol (Python's ``hash()`` is salted per process) — and it
depends on the symbol alone, not on the venue or the list of symbols, so adding a symbol never
moves the others to another shard.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from candlekeeper.errors import ConfigError

_SPEC = re.compile(r"(\d+)/(\d+)")


class Shard:
    """Shard ``index`` (0-based) of ``count``."""

    __slots__ = ("count", "index")

    def __init__(self, index: int, count: int) -> None:
        if count < 1 or not 0 <= index < count:
            raise ConfigError(f"bad shard {index}/{count}: need 0 <= K < N and N >= 1")
        self.index = index
        self.count = count

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"1/3"`` -> shard 1 of 3 (``K`` counts from 0)."""
        m = _SPEC.fullmatch(text.strip())
        if m is None:
            raise ConfigError(f"bad shard {text!r}: expected K/N, e.g. 0/3 (K counts from 0)")
        return cls(int(m.group(1)), int(m.group(2)))

    def owns(self, symbol: str) -> bool:
        return shard_of(symbol, self.count) == self.index

    def select(self, symbols: Iterable[str]) -> list[str]:
        return [s for s in symbols if self.owns(s)]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def __repr__(self) -> str:
        return f"Shard({self.index}, {self.count})"


def shard_of(symbol: str, count: int) -> int:
    """The shard (0..count-1) that owns ``symbol`` (canonical form, e.g. ``BTCUSDT``)."""
    digest = hashlib.blake2b(symbol.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count
