"""Fault plans as data: validation, seeded random plans, ``--faults`` specs and plan files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from candlekeeper.errors import ConfigError
from candlekeeper.sim.cli import simulate_command
from candlekeeper.sim.faults import (
    ALL_KINDS,
    REST_KINDS,
    Fault,
    FaultPlan,
    parse_fault_spec,
    parse_target,
    plan_from_data,
)


def test_random_plan_is_deterministic_per_seed_and_covers_every_kind() -> None:
    a = FaultPlan.random(7, kinds="all", count=60, window=(10.0, 300.0),
                         symbols=["BTCUSDT", "ETHUSDT"])
    b = FaultPlan.random(7, kinds="all", count=60, window=(10.0, 300.0),
                         symbols=["BTCUSDT", "ETHUSDT"])
    c = FaultPlan.random(8, kinds="all", count=60, window=(10.0, 300.0),
                         symbols=["BTCUSDT", "ETHUSDT"])
    assert a == b and a != c
    assert len(a) == 60
    assert a.kinds() == set(ALL_KINDS) and "server_shutdown" not in a.kinds()
    times = [f.at_s for f in a]
    assert times == sorted(times) and times[0] >= 10.0 and times[-1] <= 300.0
    counts = Counter(f.kind for f in a)
    assert min(counts.values()) >= 1 and sum(counts.values()) == 60
    for f in a:  # the random parameters are valid and in range
        if f.kind in ("stall", "drop_pings", "rest_418"):
            assert f.duration_s is not None and 0.5 <= f.duration_s <= 5.0
        if f.kind in REST_KINDS:
            assert f.target == "all" or f.target.startswith("symbol:")


def test_random_plan_with_a_kind_subset_and_fewer_faults_than_kinds() -> None:
    plan = FaultPlan.random(3, kinds="stall+rest_429", count=10, window=(0, 5))
    assert plan.kinds() == {"stall", "rest_429"}
    assert len(FaultPlan.random(3, kinds="ws", count=2)) == 2
    assert FaultPlan.random(3, kinds="rest", count=5).kinds() == set(REST_KINDS)
    with pytest.raises(ConfigError, match="unknown fault kind 'bogus'"):
        FaultPlan.random(1, kinds="stall+bogus")
    with pytest.raises(ConfigError, match="bad fault window"):
        FaultPlan.random(1, window=(5.0, 1.0))


def test_plan_is_ordered_by_time() -> None:
    plan = FaultPlan.of([Fault(kind="close", at_s=3.0), Fault(kind="disconnect", at_s=1.0)])
    assert [f.kind for f in plan] == ["disconnect", "close"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kind": "close", "params": {"code": "x"}}, "param 'code' must be int"),
    ({"kind": "close", "params": {"code": 70000}}, "close code"),
    ({"kind": "stall", "params": {"nope": True}}, "unknown param 'nope'"),
    ({"kind": "rest_418"}, "duration_s .* is required"),
    ({"kind": "rest_5xx", "params": {"status": 404}}, "status must be one of"),
    ({"kind": "rest_429", "target": "one"}, "REST fault targets all or symbol"),
    ({"kind": "duplicate", "target": "conn:x"}, "connection id is an integer"),
    ({"kind": "duplicate", "target": "pair:BTC"}, "bad fault target"),
    ({"kind": "duplicate", "count": 0}, "count must be >= 1"),
    ({"kind": "duplicate", "fraction": 1.5}, "fraction must be in"),
    ({"kind": "stall", "duration_s": -1.0}, "duration_s must be > 0"),
])
def test_bad_faults_are_clear_config_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Fault(**kwargs)  # type: ignore[arg-type]


def test_targets_match_streams() -> None:
    assert parse_target("symbol:BTCUSDT").matches_stream("btcusdt@kline_1m")
    assert not parse_target("symbol:BTC").matches_stream("btcusdt@kline_1m")
    assert parse_target("stream:btcusdt@kline_1m").matches_stream("btcusdt@kline_1m")
    assert not parse_target("stream:btcusdt@kline_1m").matches_stream("btcusdt@kline_5m")
    assert parse_target("all").matches_stream("ethusdt@kline_1h")


def test_spec_strings() -> None:
    plan = parse_fault_spec("random:seed=7,count=60,kinds=all,window=0:300")
    assert plan == FaultPlan.random(7, kinds="all", count=60, window=(0.0, 300.0))
    plan = parse_fault_spec("random:seed=2,count=4,kinds=stall+close,window=20,"
                            "venues=binance-spot,symbols=btcusdt+ethusdt,durations=1:2")
    assert plan.kinds() <= {"stall", "close"} and len(plan) == 4
    assert {f.venue for f in plan} == {"binance-spot"}
    assert all(f.at_s <= 20 for f in plan)
    for bad, msg in [("random:seed=x", "integers"), ("random:wat=1", "unknown random fault"),
                     ("random:window=a:b", "bad window"), ("random:seed", "key=value"),
                     ("/nonexistent/plan.yaml", "neither random")]:
        with pytest.raises(ConfigError, match=msg):
            parse_fault_spec(bad)


def test_plan_files_json_and_yaml(tmp_path: Path) -> None:
    listed = [{"kind": "stall", "at_s": 2.0, "duration_s": 1.5, "target": "symbol:BTCUSDT"},
              {"kind": "rest_5xx", "at_s": 1.0, "count": 2, "params": {"status": 502}}]
    js = tmp_path / "plan.json"
    js.write_text(json.dumps({"faults": listed}))
    plan = parse_fault_spec(str(js))
    assert [f.kind for f in plan] == ["rest_5xx", "stall"]
    assert plan.faults[0].params == {"status": 502} and plan.faults[1].target == "symbol:BTCUSDT"
    ym = tmp_path / "plan.yaml"
    ym.write_text("- kind: close\n  at_s: 0.5\n  params: {code: 1011}\n")
    assert parse_fault_spec(str(ym)).faults[0].params == {"code": 1011}
    rnd = tmp_path / "random.yml"
    rnd.write_text("random:\n  seed: 5\n  count: 12\n  kinds: all\n  window: '0:30'\n")
    assert parse_fault_spec(str(rnd)) == FaultPlan.random(5, count=12, window=(0.0, 30.0))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"kind": "explode"}]))
    with pytest.raises(ConfigError, match=r"bad\.json"):
        parse_fault_spec(str(bad))
    with pytest.raises(ConfigError, match="expected a list of faults"):
        plan_from_data({"nope": 1})


def test_simulate_cli_takes_a_fault_plan() -> None:
    result = CliRunner().invoke(simulate_command, [
        "--duration", "0.3", "--symbols", "BTCUSDT", "--speed", "60", "--intervals", "1m",
        "--history", "5", "--faults", "random:seed=3,count=8,kinds=all,window=0:0.2"])
    assert result.exit_code == 0, result.output
    assert "fault plan: 8 faults" in result.output
    result = CliRunner().invoke(simulate_command, ["--duration", "0",
                                                   "--faults", "random:kinds=bogus"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: unknown fault kind 'bogus'")
