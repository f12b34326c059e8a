from __future__ import annotations

import subprocess
import sys

import pytest

from candlekeeper.core.shard import Shard, shard_of
from candlekeeper.errors import ConfigError

SYMBOLS = [f"S{i}USDT" for i in range(1000)]


def test_shards_partition_the_universe() -> None:
    shards = [Shard(k, 3) for k in range(3)]
    parts = [set(s.select(SYMBOLS)) for s in shards]
    assert set().union(*parts) == set(SYMBOLS)
    assert sum(len(p) for p in parts) == len(SYMBOLS)  # disjoint
    assert all(250 < len(p) < 420 for p in parts)  # roughly balanced


def test_assignment_is_stable_across_processes_and_lists() -> None:
    code = "from candlekeeper.core.shard import shard_of; print(shard_of('BTCUSDT', 7))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.strip()
    assert int(other) == shard_of("BTCUSDT", 7)
    # depends on the symbol alone: adding a symbol never moves another
    assert set(Shard(1, 4).select(["ETHUSDT", *SYMBOLS])) - {"ETHUSDT"} == \
        set(Shard(1, 4).select(SYMBOLS))


@pytest.mark.parametrize("bad", ["3/3", "-1/2", "a/b", "1", "0/0"])
def test_bad_specs(bad: str) -> None:
    with pytest.raises(ConfigError, match="shard"):
        Shard.parse(bad)


def test_parse() -> None:
    s = Shard.parse(" 2/5 ")
    assert (s.index, s.count, str(s)) == (2, 5, "2/5")
