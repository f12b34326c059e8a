"""No credential reaches any output — sink errors, log lines, ``/health``, ``candlekeeper tail`` —
with real asyncpg and nats-py failures: passwords holding ``/ # ? @`` (unescaped in a URL, which
makes urllib, asyncpg and nats-py misread it), wrong passwords, unreachable servers."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import asyncpg
import pytest
from natskit import AuthNatsServer
from sinkkit import make_candle

from candlekeeper.errors import ConfigError, SinkError
from candlekeeper.observability.metrics import Metrics
from candlekeeper.observability.redact import (
    Redactor,
    describe_error,
    malformed_userinfo,
    redact_text,
    redact_url,
)
from candlekeeper.sinks import BatchingWriter
from candlekeeper.sinks.nats import NatsSink
from candlekeeper.sinks.postgres import PostgresSink
from servers import PostgresServer, free_port

SECRET = "Zq9/x#Kw?v@pw"  # every character that breaks a URL's user info
WRONG = "Wr0ng/p#ss?w@rd"


def leaks(text: str, *secrets: str) -> list[str]:
    """The secrets, and their pieces of 3+ characters between URL delimiters, found in text."""
    found = []
    for secret in secrets:
        for piece in {secret, quote(secret, safe=""), *re.split(r"[/#?@:]", secret)}:
            if len(piece) >= 3 and piece in text:
                found.append(piece)
    return found


# -- the helper -----------------------------------------------------------------------------------
def test_redact_url_and_text_whatever_the_url_shape() -> None:
    assert redact_url(f"postgresql://app:{SECRET}@db:5432/x?sslmode=require") == (
        "postgresql://***@db:5432/x?sslmode=require")
    assert redact_url("nats://tok?en@h:4222") == "nats://***@h:4222"
    assert redact_url("postgresql://db/x?user=a&password=s3cret") == (
        "postgresql://db/x?user=a&password=***")
    assert redact_url("tls://h:4222") == "tls://h:4222"
    assert redact_text("see nats://u:p@h:1, host=x password='a b' port=5") == (
        "see nats://***@h:1, host=x password=*** port=5")
    assert malformed_userinfo(f"postgresql://app:{SECRET}@db/x")
    assert malformed_userinfo("postgresql://u:p@ss@db/x")  # asyncpg splits at the first '@'
    assert not malformed_userinfo("nats://u:p@ss@db:4222", allow_at=True)  # nats-py: the last
    assert not malformed_userinfo(f"postgresql://app:{quote(SECRET, safe='')}@db/x")
    redact = Redactor(urls=[f"postgresql://app:{SECRET}@db/x"], secrets=[WRONG, None])
    for echoed in ("invalid literal for int() with base 10: 'Zq9'",  # asyncpg, '/' in password
                   f"dsn {quote(SECRET)} and {WRONG}", "'x#Kw?v' then 'v@pw'"):
        assert leaks(redact(echoed), SECRET, WRONG) == []
    assert redact("retrying Zq9x") == "retrying Zq9x"  # a piece is masked only standing alone
    assert describe_error(OSError(f"nats://u:{SECRET}@h:1\nHINT: x")) == (
        "OSError: nats://***@h:1 HINT: x")


# -- PostgreSQL -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    """A cluster where role ``app`` logs in with :data:`SECRET` (scram; others are trusted)."""
    server = PostgresServer()
    hba = server.data / "pg_hba.conf"
    hba.write_text("local all all trust\nhost all app 127.0.0.1/32 scram-sha-256\n"
                   "host all all 127.0.0.1/32 trust\n")
    server.start()

    async def create_role() -> None:
        conn = await asyncpg.connect(server.dsn)
        try:
            await conn.execute(f"CREATE ROLE app LOGIN PASSWORD '{SECRET}'")
            await conn.execute("GRANT CREATE ON DATABASE postgres TO app")
        finally:
            await conn.close()

    asyncio.run(create_role())
    try:
        yield server
    finally:
        server.close()


def pg_dsn(server: PostgresServer, password: str, *, encode: bool = True, port: int = 0,
           options: str = "") -> str:
    shown = quote(password, safe="") if encode else password
    return f"postgresql://app:{shown}@127.0.0.1:{port or server.port}/postgres{options}"


def test_a_dsn_with_unescaped_characters_is_refused_without_showing_them(
        pg: PostgresServer) -> None:
    raw = pg_dsn(pg, SECRET, encode=False)
    with pytest.raises(ConfigError) as info:
        PostgresSink(raw)
    message = str(info.value)
    assert leaks(message, SECRET) == []
    assert f"postgresql://***@127.0.0.1:{pg.port}/postgres" in message
    assert "percent-encode '@', '/', '?' and '#'" in message


async def test_the_percent_encoded_password_logs_in(pg: PostgresServer) -> None:
    sink = PostgresSink(pg_dsn(pg, SECRET), schema="app_data")
    await sink.open()
    await sink.write([make_candle(0)])
    assert await sink.count() == 1
    await sink.close()


@pytest.mark.parametrize("case", ["wrong password", "nothing listens", "bad option"])
async def test_failures_show_no_password_anywhere(pg: PostgresServer, case: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    dsn = {"wrong password": pg_dsn(pg, WRONG),
           "nothing listens": pg_dsn(pg, WRONG, port=free_port()),
           "bad option": pg_dsn(pg, WRONG, options="?sslmode=bogus")}[case]
    caplog.set_level("DEBUG")
    sink = PostgresSink(dsn, connect_timeout_s=2)
    with pytest.raises((SinkError, ConfigError)) as info:
        await sink.open()
    metrics = Metrics()
    writer = BatchingWriter(sink, retry_open=True, retry_initial_s=0.01, retry_max_s=0.05)
    if case == "bad option":  # no retry can fix a configuration error: start() says so
        with pytest.raises(ConfigError, match="is not valid"):
            await writer.start()
        health = ""
    else:
        metrics.track_sink("postgres", lambda: writer.stats)
        await writer.start()
        writer.submit(make_candle(0))
        async with asyncio.timeout(20):
            while writer.stats.failures < 3:
                await asyncio.sleep(0.01)
        health = json.dumps(metrics.snapshot().to_report())
        assert json.loads(health)["sinks"][0]["last_error"] == writer.stats.last_error
        await writer.stop(drain_timeout_s=0.1)
    outputs = "\n".join([str(info.value), caplog.text, health, repr(sink)])
    assert leaks(outputs, WRONG, SECRET) == []
    if case == "wrong password":
        assert 'password authentication failed for user "app"' in outputs
    assert "***@127.0.0.1" in str(info.value)


# -- NATS -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def auth_nats() -> Iterator[AuthNatsServer]:
    server = AuthNatsServer("app", SECRET)
    server.start()
    try:
        yield server
    finally:
        server.close()


def test_a_server_url_with_unescaped_characters_is_refused(auth_nats: AuthNatsServer) -> None:
    with pytest.raises(ConfigError) as info:
        NatsSink(f"nats://app:{SECRET}@127.0.0.1:{auth_nats.port}")
    assert leaks(str(info.value), SECRET) == []
    assert f"nats://***@127.0.0.1:{auth_nats.port}" in str(info.value)
    assert "give the credentials separately" in str(info.value)


async def test_the_same_password_given_separately_works(auth_nats: AuthNatsServer) -> None:
    sink = NatsSink(auth_nats.url, user="app", password=SECRET)
    await sink.open()
    assert await sink.write([make_candle(0)]) == []
    assert sink.published == 1
    await sink.close()


async def test_a_wrong_nats_password_shows_nowhere(auth_nats: AuthNatsServer,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    sink = NatsSink(auth_nats.url, user="app", password=WRONG, connect_timeout_s=1)
    metrics = Metrics()
    writer = BatchingWriter(sink, retry_open=True, retry_initial_s=0.01, retry_max_s=0.05)
    metrics.track_sink("nats", lambda: writer.stats)
    await writer.start()
    writer.submit(make_candle(0))
    async with asyncio.timeout(20):
        while writer.stats.failures < 2:
            await asyncio.sleep(0.01)
    health = json.dumps(metrics.snapshot().to_report())
    await writer.stop(drain_timeout_s=0.1)
    assert "Authorization Violation" in caplog.text + health
    assert leaks(caplog.text + health + repr(sink), WRONG, SECRET) == []


# -- candlekeeper tail ----------------------------------------------------------------------------
async def run_tail(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    import os

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "candlekeeper.tail", "--connect-timeout", "2", "--idle-timeout",
        "0.5", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})})
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


async def test_tail_shows_no_password(auth_nats: AuthNatsServer, tmp_path: Path) -> None:
    raw_url = f"nats://app:{SECRET}@127.0.0.1:{auth_nats.port}"
    code, text = await run_tail("--server", raw_url)
    assert code == 1 and "cannot be parsed" in text and "Traceback" not in text
    assert leaks(text, SECRET) == []
    code, text = await run_tail("--server", auth_nats.url, "--user", "app", "--password", WRONG)
    assert code == 1 and "Authorization Violation" in text and "Traceback" not in text
    assert leaks(text, WRONG, SECRET) == []
    code, text = await run_tail("--server", f"nats://app:{quote(WRONG, safe='')}@127.0.0.1:"
                                f"{free_port()}")
    assert code == 1 and "no NATS server answered at nats://***@127.0.0.1:" in text
    assert leaks(text, WRONG) == []
    code, text = await run_tail("--server", auth_nats.url, "--user", "app",
                                env={"NATS_PASSWORD": SECRET})  # the right one: it watches
    assert code == 0 and "watching candles.>" in text and leaks(text, SECRET) == []
