"""A simulated venue whose clock is skewed from the simulator's (issue 9): its REST server time,
its frames (event times, which candle is forming) and its truth run on venue time = the
simulator's clock + the skew, for every registered venue; bad ``--clock-skew`` flags are one
clear line."""

from __future__ import annotations

import time

import aiohttp
import pytest
from click.testing import CliRunner

from candlekeeper.backfill.http import RestClient
from candlekeeper.core.candle import Candle
from candlekeeper.core.intervals import align, prev_open
from candlekeeper.core.stream_key import StreamKey
from candlekeeper.errors import ConfigError
from candlekeeper.sim import Simulator
from candlekeeper.sim.cli import simulate_command
from candlekeeper.venues.contract import Reply
from candlekeeper.venues.registry import VENUES, history_codec, stream_codec

pytestmark = pytest.mark.integration

#: far more than a 1m candle, so a frame's candle tells the venue's minute from the host's
SKEW_S = 150.0


@pytest.mark.parametrize("skew_s", [SKEW_S, -SKEW_S])
@pytest.mark.parametrize("venue", VENUES)
async def test_a_skewed_venue_serves_its_own_time(venue: str, skew_s: float) -> None:
    codec, history = stream_codec(venue), history_codec(venue)
    key = StreamKey(venue, "BTCUSDT", "1m")
    async with Simulator(venues=(venue,), symbols=("BTCUSDT",), intervals=("1m",), history=5,
                         clock_skew_s={venue: skew_s}) as sim:
        assert sim.clock_skew_ms(venue) == skew_s * 1000
        venue_clock = sim.venue_clock(venue)
        # REST server time: the venue's clock, not the simulator's
        async with RestClient(history, sim.rest_base(venue)) as rest:
            before = sim.clock.time_ms()
            server = history.decode_server_time(await rest.fetch(history.server_time_request()))
            after = sim.clock.time_ms()
        assert before + skew_s * 1000 - 50 <= server <= after + skew_s * 1000 + 50
        # frames: the forming candle is the venue's, event times are the venue's
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(codec.connect_url(sim.ws_base(venue), []))
            await ws.send_str(codec.subscribe([codec.stream_name(key)], 1))
            candle: Candle | None = None
            deadline = time.monotonic() + 15
            while candle is None:
                assert time.monotonic() < deadline, "no kline frame in 15 s"
                msg = await ws.receive(timeout=10)
                out = codec.decode(msg.data)
                for m in out if isinstance(out, list) else [out]:
                    if isinstance(m, Reply):
                        await ws.send_str(m.payload)
                    elif isinstance(m, Candle) and not m.closed:
                        candle = m
            venue_now = venue_clock.time_ms()
            await ws.close()
        minute = align(venue_now, "1m")
        assert candle.open_time in (minute, prev_open(minute, "1m"))
        host_minute = align(sim.clock.time_ms(), "1m")
        assert abs(candle.open_time - host_minute) >= 60_000  # not the host's minute
        if candle.event_time is not None:
            assert venue_now - 5_000 <= candle.event_time <= venue_now
        # the truth is in venue time: its newest closed candle closed before venue "now"
        truth = sim.closed_candles(venue, "BTCUSDT", "1m")
        assert truth[-1].close_time < venue_clock.time_ms()
        assert truth[-1].open_time == prev_open(align(venue_clock.time_ms(), "1m"), "1m")
        assert sim.next_close_ms("1m", venue) == align(venue_clock.time_ms(), "1m") + 60_000


def test_the_skew_must_name_a_simulated_venue_and_be_finite() -> None:
    with pytest.raises(ConfigError, match="not simulated here"):
        Simulator(venues=(VENUES[0],), clock_skew_s={"elsewhere": 1.0})
    with pytest.raises(ConfigError, match="finite"):
        Simulator(venues=(VENUES[0],), clock_skew_s=float("nan"))
    sim = Simulator(venues=(VENUES[0],), clock_skew_s=-2.5)
    assert sim.clock_skew_ms(VENUES[0]) == -2500
    assert sim.venue_clock(VENUES[0]).monotonic_origin == sim.clock.monotonic_origin
    assert Simulator(venues=(VENUES[0],)).venue_clock(VENUES[0]) is not None


def test_cli_clock_skew_is_printed() -> None:
    venue = VENUES[0]
    result = CliRunner().invoke(simulate_command, [
        "--duration", "0.2", "--venues", venue, "--symbols", "BTCUSDT", "--intervals", "1m",
        "--history", "5", "--clock-skew", f"{venue}=+15"])
    assert result.exit_code == 0, result.output
    assert f"{venue}: its clock runs +15 s from the clock above (a host clock 15 s behind " \
           "the venue)" in result.output


@pytest.mark.parametrize(("flag", "message"), [
    ("nonsense", "expected VENUE=±SECONDS"),
    ("kraken=5", "'kraken' is not simulated here"),
    (f"{VENUES[0]}=soon", "the skew must be a finite number of seconds"),
    (f"{VENUES[0]}=inf", "the skew must be a finite number of seconds"),
])
def test_cli_bad_clock_skew_is_one_clear_line(flag: str, message: str) -> None:
    result = CliRunner().invoke(simulate_command, [
        "--duration", "0", "--venues", VENUES[0], "--clock-skew", flag])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: --clock-skew") and message in lines[0]


def test_cli_clock_skew_twice_for_one_venue() -> None:
    result = CliRunner().invoke(simulate_command, [
        "--duration", "0", "--venues", VENUES[0], "--clock-skew", f"{VENUES[0]}=1",
        "--clock-skew", f"{VENUES[0]}=2"])
    assert result.exit_code == 2 and "given twice" in result.output
