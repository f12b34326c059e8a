"""``deploy/grafana/candlekeeper.json`` names only metrics the service really exports.

The exported names are read from a running service's ``/metrics`` (fed by the simulator, so
every family has had a chance to be filled), not from a list kept by hand: a renamed metric
breaks this test, not a dashboard in production."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from webkit import free_port, running_service, wait_for, web_config

from candlekeeper.sim import Simulator

BOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "candlekeeper.json"

#: PromQL words that are not metric names (functions are recognised by their ``(``)
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
             "or", "unless", "offset", "inf", "nan"}
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
#: sample suffixes each metric type adds to its family name in the text format
_SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",), "histogram":
             ("_bucket", "_sum", "_count", "_created"), "summary": ("_sum", "_count", "")}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads: identifiers left once strings, label matchers,
    ranges, grouping clauses, functions, keywords and numbers are taken out."""
    expr = re.sub(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)[^)]*\)", r"\1", expr)
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for m in _IDENT.finditer(expr):
        word = m.group(0)
        rest = expr[m.end():].lstrip()
        if rest.startswith("(") or word.lower() in _KEYWORDS or word.startswith("$"):
            continue
        if m.start() > 0 and expr[m.start() - 1] == "$":
            continue  # a Grafana variable ($__rate_interval)
        names.add(word)
    return names


def _exprs(node: Any) -> list[str]:
    """Every query in the board: panel targets and templating queries."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                found.append(value)
            else:
                found.extend(_exprs(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_exprs(item))
    return found


def exported_names(exposition: str) -> set[str]:
    """Sample names a scrape can contain: each ``# TYPE`` family with its type's suffixes."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(" ", 3)
            base = family.removesuffix("_total") if kind == "counter" else family
            names.update(base + suffix for suffix in _SUFFIXES.get(kind, ("",)))
    return names


def test_metric_names_are_read_from_promql() -> None:
    expr = ('histogram_quantile(0.99, sum by (le, venue) (rate(candlekeeper_close_delay_seconds'
            '_bucket{venue=~"$venue"}[5m]))) / on(venue) group_left candlekeeper_x_total '
            '* 60 > bool 1')
    assert metric_names(expr) == {"candlekeeper_close_delay_seconds_bucket",
                                  "candlekeeper_x_total"}
    assert metric_names("label_values(candlekeeper_stream_state, venue)") == {
        "candlekeeper_stream_state"}
    assert metric_names("sum by (le) (increase(a_bucket{x=\"}\"}[$__rate_interval]))") == {
        "a_bucket"}


def test_exported_names_follow_the_metric_types() -> None:
    text = ("# TYPE a_total counter\n# TYPE b gauge\n# TYPE c histogram\n"
            "c_bucket{le=\"1\"} 0\n")
    names = exported_names(text)
    assert {"a_total", "b", "c_bucket", "c_sum", "c_count"} <= names
    assert "a" not in names and "c" not in names


@pytest.mark.integration
async def test_every_board_expression_names_exported_metrics(tmp_path: Path) -> None:
    board = json.loads(BOARD.read_text())
    exprs = _exprs(board)
    assert len(exprs) >= 20
    used = set().union(*(metric_names(e) for e in exprs))
    # the board covers what the issue asks for
    for wanted in ("candlekeeper_stream_state", "candlekeeper_stream_messages_total",
                   "candlekeeper_stream_candles_closed_total",
                   "candlekeeper_close_delay_seconds_bucket",
                   "candlekeeper_stream_candles_backfilled_total",
                   "candlekeeper_rest_weight_used", "candlekeeper_rest_rate_limited_total",
                   "candlekeeper_rest_banned_total", "candlekeeper_sink_rows_pending",
                   "candlekeeper_sink_journal_rows", "candlekeeper_clock_offset_seconds"):
        assert wanted in used, wanted
    venues = ("binance-usdm",)
    async with Simulator(venues=venues, symbols=("BTCUSDT",), intervals=("1m",),
                         speed=300.0) as sim:
        cfg = web_config(sim, tmp_path / "c.sqlite", venues, ("BTCUSDT",), ("1m",),
                         free_port())
        async with running_service(cfg, sim) as service, aiohttp.ClientSession() as http:
            await wait_for(lambda: all(r.closed for r in service.snapshot().streams), 30,
                           "a close")
            assert service.health is not None
            async with http.get(service.health.url + "/metrics") as resp:
                text = await resp.text()
    exported = exported_names(text)
    missing = sorted(used - exported)
    assert not missing, f"the board names metrics the service does not export: {missing}"
    # the REST metrics carry numbers once the warm-up went over REST
    requests = [ln for ln in text.splitlines()
                if ln.startswith('candlekeeper_rest_requests_total{venue="binance-usdm"}')]
    assert requests and float(requests[0].split()[-1]) > 0
