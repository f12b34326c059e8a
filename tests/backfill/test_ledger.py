"""The REST budget shared by the processes of one host (``backfill/ledger.py``): budgets on one
ledger share the limit and each other's blocks, other endpoints never do, a bad ledger is one
WARNING and a counter and the budget goes on alone, and real OS processes acquiring in
parallel never exceed the limit in any sliding window."""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from backfillkit import T0, ScriptedVenue, Step, make_candles

from candlekeeper.backfill import RestClient, WeightBudget
from candlekeeper.backfill import ledger as ledger_mod
from candlekeeper.backfill.ledger import SharedLedger, default_ledger_dir, ledger_path
from candlekeeper.backfill.options import RestOptions
from candlekeeper.errors import RestError
from candlekeeper.venues.binance.endpoints import BINANCE_USDM
from candlekeeper.venues.binance.history import BinanceHistoryCodec

URL = "http://127.0.0.1:18001"
CANDLES = make_candles("BTCUSDT", 20)


def shared(tmp_path: Path, url: str = URL,
           errors: list[str] | None = None) -> SharedLedger:
    return SharedLedger.for_endpoint("venue-x", url, tmp_path,
                                     count_error=None if errors is None else errors.append)


def budget(tmp_path: Path, limit: int, window_s: float, wall: Callable[[], float] = time.time,
           url: str = URL, errors: list[str] | None = None) -> WeightBudget:
    return WeightBudget(limit, headroom=1.0, window_s=window_s, wall=wall, burst=1.0,
                        ledger=shared(tmp_path, url, errors))


async def pending(task: asyncio.Task[int]) -> bool:
    await asyncio.sleep(0.05)
    return not task.done()


def test_one_ledger_per_venue_endpoint() -> None:
    d = Path("/x")
    assert ledger_path(d, "v", "https://a.example/api") == ledger_path(d, "v", "https://A.example")
    assert ledger_path(d, "v", "https://a.example") == ledger_path(d, "v", "https://a.example:443")
    distinct = {ledger_path(d, "v", "http://127.0.0.1:5001"),
                ledger_path(d, "v", "http://127.0.0.1:5002"),
                ledger_path(d, "w", "http://127.0.0.1:5001"),
                ledger_path(d, "v", "https://127.0.0.1:5001")}
    assert len(distinct) == 4


def test_the_default_folder_is_per_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1234")
    assert default_ledger_dir() == Path("/run/user/1234/candlekeeper")
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert default_ledger_dir().name == f"candlekeeper-{os.getuid()}"


async def test_two_budgets_on_one_ledger_share_the_limit(tmp_path: Path) -> None:
    now = [1000.0]
    a = budget(tmp_path, 10, 60.0, lambda: now[0])
    b = budget(tmp_path, 10, 60.0, lambda: now[0])
    elsewhere = budget(tmp_path, 10, 60.0, lambda: now[0], url="http://127.0.0.1:18002")
    for _ in range(6):
        await a.acquire(1)
    for _ in range(4):
        await b.acquire(1)
    assert a.used == 6 and b.used == 4  # each alone would let 10 more through
    late = asyncio.create_task(b.acquire(1))
    assert await pending(late)  # the 11th weight of the shared window waits
    late.cancel()
    for _ in range(10):  # another endpoint (another simulator) has its own budget
        await elsewhere.acquire(1)
    now[0] = 1060.5  # every grant of 1000.0 left the sliding window
    await b.acquire(5)
    await a.acquire(5)
    assert b.granted == 9 and a.granted == 11


async def test_grants_in_a_short_real_window_never_exceed_the_shared_limit(
        tmp_path: Path) -> None:
    budgets = [budget(tmp_path, 10, 0.3) for _ in range(3)]
    grants: list[float] = []

    async def worker(b: WeightBudget) -> None:
        for _ in range(10):
            await b.acquire(1)
            assert b.ledger is not None
            grants.append(b.ledger.last_grant_at)

    t0 = time.monotonic()
    await asyncio.gather(*(worker(b) for b in budgets))
    assert len(grants) == 30
    assert max_in_window(grants, 0.3) <= 10
    assert time.monotonic() - t0 >= 0.55  # 30 weight, 10 per 0.3 s: at least 2 full windows
    assert sum(b.waits for b in budgets) >= 2


async def test_grants_from_before_a_clock_step_back_do_not_stall(tmp_path: Path) -> None:
    now = [10_000.0]
    a = budget(tmp_path, 10, 60.0, lambda: now[0])
    await a.acquire(10)
    now[0] = 6_400.0  # the host's clock stepped back an hour
    b = budget(tmp_path, 10, 60.0, lambda: now[0])
    await asyncio.wait_for(b.acquire(10), 1)  # the future grant is dropped, not waited for


async def test_a_block_from_one_stops_the_other(tmp_path: Path) -> None:
    a = budget(tmp_path, 100, 60.0)
    b = budget(tmp_path, 100, 60.0)
    deadline = a.block(0.3)
    t0 = time.monotonic()
    await b.acquire(1)
    assert time.monotonic() - t0 >= 0.25
    assert b.blocked_until == pytest.approx(deadline)
    # a later block wins, an earlier one never shortens it
    now = [1000.0]
    c = budget(tmp_path / "c", 100, 60.0, lambda: now[0])
    d = budget(tmp_path / "c", 100, 60.0, lambda: now[0])
    c.block(30.0)
    d.block(5.0)
    assert d.blocked_until == 1030.0


async def test_a_corrupt_ledger_is_one_warning_a_counter_and_a_fresh_start(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    errors: list[str] = []
    b = budget(tmp_path, 10, 60.0, errors=errors)
    assert b.ledger is not None
    for garbage in (b"\x00garbage{", b'{"v": 99}', b'{"v":1,"blocked_until":1e300}'):
        b.ledger.path.write_bytes(garbage)
        with caplog.at_level(logging.WARNING):
            await asyncio.wait_for(b.acquire(1), 5)
    assert b.ledger.errors == 3 and errors == ["rest_ledger"] * 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "starting it afresh" in warnings[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)
    state = json.loads(b.ledger.path.read_bytes())  # rewritten, shared again
    assert state["v"] == 1 and sum(w for _, w in state["windows"]["60.0"]) == 1
    assert b.ledger.usable


async def test_an_unusable_ledger_leaves_the_process_budgeting_alone(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    errors: list[str] = []
    b = budget(tmp_path, 3, 60.0, errors=errors)
    assert b.ledger is not None
    b.ledger.path.mkdir()  # the ledger's name is taken by a folder: cannot be opened
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            await asyncio.wait_for(b.acquire(1), 5)
    assert not b.ledger.usable and errors == ["rest_ledger"]
    assert "budgets the venue's REST weight alone" in caplog.text
    late = asyncio.create_task(b.acquire(1))  # the local limit still holds
    assert await pending(late)
    late.cancel()
    # a folder other users can write is refused the same way
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o777)
    open_dir.chmod(0o777)
    assert not SharedLedger.for_endpoint("venue-x", URL, open_dir).usable


async def test_a_lock_held_too_long_lets_the_request_through_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_mod, "LOCK_PATIENCE_S", 0.2)
    b = budget(tmp_path, 10, 60.0)
    assert b.ledger is not None
    await b.acquire(1)  # creates the file
    fd = os.open(b.ledger.path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another process stuck inside its update
        t0 = time.monotonic()
        await asyncio.wait_for(b.acquire(1), 5)
        assert 0.15 <= time.monotonic() - t0 < 2
    finally:
        os.close(fd)
    assert b.ledger.errors == 1 and b.ledger.usable and b.granted == 2


# -- real processes -------------------------------------------------------------------------

LIMIT, WINDOW_S, PER_PROCESS = 8, 0.4, 12


def max_in_window(times: list[float], window_s: float) -> int:
    """The most grants (weight 1 each) in any half-open window (t - window_s, t]."""
    times = sorted(times)
    return max(sum(1 for u in times if t - window_s < u <= t) for t in times)


def _acquire_in_a_process(folder: str, out: str, start_at: float) -> None:
    async def main() -> list[float]:
        b = WeightBudget(LIMIT, headroom=1.0, window_s=WINDOW_S,
                         ledger=SharedLedger.for_endpoint("venue-x", URL, folder))
        await asyncio.sleep(max(0.0, start_at - time.time()))  # start together
        times: list[float] = []
        for _ in range(PER_PROCESS):
            await b.acquire(1)
            assert b.ledger is not None
            times.append(b.ledger.last_grant_at)
        return times

    Path(out).write_text(json.dumps(asyncio.run(main())))


def test_three_processes_never_exceed_the_limit_in_any_window(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    start_at = time.time() + 1.5  # after the interpreters have started
    outs = [tmp_path / f"p{i}.json" for i in range(3)]
    procs = [ctx.Process(target=_acquire_in_a_process, args=(str(tmp_path), str(o), start_at))
             for o in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    per_process = [json.loads(o.read_text()) for o in outs]
    times = [t for ts in per_process for t in ts]
    assert len(times) == 3 * PER_PROCESS
    assert max_in_window(times, WINDOW_S) <= LIMIT
    # alone, each process would have been done in one window and a bit (8 at once, then 4):
    # 36 weight at 8 per sliding window take at least 4 windows when the limit is shared
    assert max(times) - min(times) >= 4 * WINDOW_S


# -- through the REST client ----------------------------------------------------------------


@pytest.mark.parametrize("shared", [True, False])
async def test_a_429_answered_to_one_client_pauses_another_on_the_same_endpoint(
        tmp_path: Path, shared: bool) -> None:
    """Two RestClients, as two processes have: the Retry-After one of them is told reaches
    the other through the ledger (and, with ``shared_budget`` off, does not)."""
    options = RestOptions(shared_budget=shared, ledger_dir=tmp_path)
    codec = BinanceHistoryCodec(BINANCE_USDM)
    async with ScriptedVenue(CANDLES, [Step(429, {"Retry-After": "0.6"})]) as venue:
        told = RestClient(codec, venue.base, options=options)
        other = RestClient(codec, venue.base, options=options)
        assert (told.ledger is not None) is shared
        request = codec.klines_request("BTCUSDT", "1m", start_time=T0, limit=10)
        with pytest.raises(RestError):
            await told.fetch(request)
        t0 = time.monotonic()
        await other.fetch(request)
        waited = time.monotonic() - t0
        await told.close()
        await other.close()
    assert told.rate_limited == 1
    if shared:
        assert waited >= 0.5
    else:
        assert waited < 0.5


def test_opening_a_ledger_sweeps_stale_idle_ones_and_only_those(tmp_path: Path) -> None:
    """Ledgers of endpoints no longer used (a simulator's random port) are removed when
    another is opened — but only one untouched for an hour with nothing live in it: not a
    recent one, not one with a grant inside its window or a block ahead, not one in use (its
    lock held), not one that does not parse, nor anything that is not a ledger."""
    now = time.time()
    old = now - ledger_mod.STALE_AFTER_S - 60

    def ledger(name: str, state: object, mtime: float) -> Path:
        p = tmp_path / f"{name}.budget"
        p.write_text(json.dumps(state) if not isinstance(state, str) else state)
        os.utime(p, (mtime, mtime))
        return p

    idle = ledger("idle", {"v": 1, "blocked_until": old, "windows": {"60.0": [[old, 5]]}}, old)
    empty = ledger("empty", {"v": 1}, old)
    recent = ledger("recent", {"v": 1}, now - 10)
    blocked = ledger("blocked", {"v": 1, "blocked_until": now + 3600}, old)
    # a day-long window still counts a grant written 70 minutes ago
    granted = ledger("granted", {"v": 1, "windows": {"86400.0": [[old, 5]]}}, old)
    corrupt = ledger("corrupt", "{not json", old)
    locked = ledger("locked", {"v": 1}, old)
    other = tmp_path / "notes.txt"
    other.write_text("x")
    os.utime(other, (old, old))
    fd = os.open(locked, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        opened = shared(tmp_path)
    finally:
        os.close(fd)
    assert opened.swept == 2
    assert not idle.exists() and not empty.exists()
    for kept in (recent, blocked, granted, corrupt, locked, other):
        assert kept.exists(), kept.name
    # the new ledger itself works as ever
    assert opened.try_grant(60.0, 10, 1, time.time) is None and opened.path.exists()
