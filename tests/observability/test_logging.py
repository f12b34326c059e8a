"""Logging helpers: rate limiting and a JSON formatter that stays valid JSON."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from candlekeeper.observability.logging import JsonFormatter, RateLimitedLog


def test_json_formatter_escapes_quotes_newlines_and_tracebacks() -> None:
    try:
        raise ValueError('bad "frame"')
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("candlekeeper.x", logging.ERROR, __file__, 1,
                               'got %s\nnext line', ('{"e":"kline"}',), exc_info)
    out = json.loads(JsonFormatter().format(record))
    assert out["level"] == "ERROR"
    assert out["logger"] == "candlekeeper.x"
    assert out["msg"] == 'got {"e":"kline"}\nnext line'
    assert 'ValueError: bad "frame"' in out["exc"]
    assert out["ts"].endswith("+00:00")


def test_rate_limited_log_suppresses_and_reports(caplog: pytest.LogCaptureFixture) -> None:
    log = RateLimitedLog(logging.getLogger("rl-test"), period_s=3600)
    with caplog.at_level(logging.WARNING, logger="rl-test"):
        for i in range(5):
            log.warning("malformed", "malformed frame %d", i)
        log.warning("other", "another kind")
    assert [r.getMessage() for r in caplog.records] == ["malformed frame 0", "another kind"]
    assert log._suppressed == {"malformed": 4}
