"""What ``config check`` must refuse so that ``run`` never dies on it later, how hostile YAML is
refused in one short line, and that no secret ever appears in a problem line."""

from __future__ import annotations

from pathlib import Path

import pytest

from candlekeeper.config import ConfigValidationError, load_config, load_config_text
from candlekeeper.config_support import MAX_PROBLEM_CHARS

MINIMAL = "feeds:\n  - venue: binance-usdm\n    symbols: [BTCUSDT]\n"


def problems_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigValidationError) as info:
        load_config_text(text, env)
    return list(info.value.problems)


def one_problem(text: str, env: dict[str, str] | None = None) -> str:
    problems = problems_of(text, env)
    assert len(problems) == 1, problems
    return problems[0]


# -- secrets never reach a message --------------------------------------------------------------


@pytest.mark.parametrize("section", ["nats: {password: 987654321}", "nats: {token: 987654321}",
                                     "postgres: {dsn: 987654321}"])
def test_a_secret_of_the_wrong_type_is_not_echoed(section: str) -> None:
    problem = one_problem(MINIMAL + f"sinks:\n  {section}\n")
    assert "987654321" not in problem
    assert "must be a string" in problem and "quote it" in problem


def test_a_secret_given_as_a_mapping_is_not_echoed() -> None:
    problem = one_problem(MINIMAL + "sinks:\n  postgres:\n    dsn: {pw: s3cr3t-value}\n")
    assert problem.startswith("sinks.postgres.dsn: ")
    assert "s3cr3t" not in problem


@pytest.mark.parametrize("password", ["pa/ss9word", "pa#ss9word", "pa?ss9word"])
def test_dsn_with_an_unescaped_delimiter_in_the_password(password: str) -> None:
    """urllib would say "Port could not be cast to integer value as 'pa'": a piece of the
    password. Our message names the fix and quotes nothing."""
    dsn = f"postgresql://candles:{password}@db.example:5432/candles"
    problem = one_problem(MINIMAL + f"sinks:\n  postgres:\n    dsn: '{dsn}'\n")
    assert problem.startswith("sinks.postgres.dsn: ")
    assert "percent-encode" in problem
    for piece in ("pa", "ss9", "9word", "candles:", "db.example"):
        assert piece not in problem.removeprefix("sinks.postgres.dsn: ").replace("password", "")


@pytest.mark.parametrize(("dsn", "fragment"), [
    ("mysql://u:topsecret@h/db", "must start with postgresql:// or postgres://"),
    ("postgresql://u:topsecret@h:99999/db", "port must be a number from 1 to 65535"),
    ("postgresql://u:topsecret@h:5432/db#x", "contains '#'"),
    ("postgresql://u:top secret@h/db", "whitespace"),
])
def test_bad_dsn_is_explained_without_quoting_it(dsn: str, fragment: str) -> None:
    problem = one_problem(MINIMAL + f"sinks:\n  postgres:\n    dsn: '{dsn}'\n")
    assert fragment in problem
    assert "topsecret" not in problem and "top secret" not in problem


def test_good_dsns_pass() -> None:
    for dsn in ("postgresql://u:p%2Fw%23d@db:5432/candles?sslmode=require",
                "postgres://db1:5432,db2:5433/candles", "postgresql:///candles?host=/run/pg",
                "postgresql://[::1]:5432/x"):
        cfg = load_config_text(MINIMAL + f"sinks:\n  postgres:\n    dsn: '{dsn}'\n")
        assert cfg.sinks.postgres.dsn.get_secret_value() == dsn


def test_nats_server_url_with_credentials_is_never_quoted() -> None:
    problem = one_problem(MINIMAL + "sinks:\n  nats:\n    servers: "
                          "['nats://alice:hunter22@nats.example:99999']\n")
    assert "servers[0]: the port must be a number" in problem
    assert "hunter22" not in problem and "alice" not in problem


def test_a_secret_quoted_by_another_message_is_masked() -> None:
    """Defence in depth: the secret's text is scrubbed from every line, whoever wrote it."""
    text = MINIMAL + "sinks:\n  postgres:\n    dsn: postgresql://u:Zebra-Horse-9@h/db\n" \
                     "    schema: Zebra-Horse-9\n"
    problem = one_problem(text)
    assert problem.startswith("sinks.postgres.schema: ")
    assert "Zebra-Horse-9" not in problem and "***" in problem


def test_config_check_output_has_no_secret(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(MINIMAL + "sinks:\n  nats:\n    password: 987654321\n    token: [a1b2c3d4]\n"
                    "  postgres:\n    dsn: 'postgresql://u:pa/ss9word@h/db'\n")
    with pytest.raises(ConfigValidationError) as info:
        load_config(path, env={})
    report = str(info.value)
    assert report.count("\n  - ") == 3
    for secret in ("987654321", "a1b2c3d4", "ss9word"):
        assert secret not in report


# -- config check catches what run would die on -------------------------------------------------


@pytest.mark.parametrize(("sinks", "expected"), [
    ("postgres: {schema: Bad-Name}", "sinks.postgres.schema: not a plain lower-case SQL"),
    ("postgres: {schema: 1abc}", "sinks.postgres.schema: "),
    ("nats: {subject_prefix: 'candles.*'}", "sinks.nats.subject_prefix: invalid NATS subject"),
    ("nats: {subject_prefix: 'a..b'}", "sinks.nats.subject_prefix: invalid NATS subject"),
    ("nats: {stream: 'CAN.DLES'}", "sinks.nats: invalid stream name 'CAN.DLES'"),
    ("nats: {stream: 'A B'}", "sinks.nats: invalid stream name"),
    ("nats: {max_age_s: 60, duplicate_window_s: 600}",
     "sinks.nats: max_age_s must be >= duplicate_window_s"),
    ("nats: {servers: []}", "sinks.nats.servers: at least one server URL is required"),
    ("nats: {servers: ['http://x:4222']}",
     "sinks.nats.servers: servers[0]: must start with nats:// or tls://"),
])
def test_sink_names_are_checked_by_the_sinks_own_rules(sinks: str, expected: str) -> None:
    assert one_problem(MINIMAL + f"sinks:\n  {sinks}\n").startswith(expected)


def test_sqlite_path_must_be_a_file_path(tmp_path: Path) -> None:
    problem = one_problem(MINIMAL + f"sinks:\n  sqlite: {{path: '{tmp_path}'}}\n")
    assert problem == (f"sinks.sqlite: {tmp_path} is a directory; sinks.sqlite.path must be a "
                       f"file path (e.g. {tmp_path / 'candles.sqlite'})")
    blocker = tmp_path / "plain-file"
    blocker.write_text("x")
    problem = one_problem(MINIMAL + f"sinks:\n  sqlite: {{path: '{blocker}/c.sqlite'}}\n")
    assert problem == f"sinks.sqlite: {blocker} is a file, so {blocker}/c.sqlite cannot be created"
    assert "needs a file path" in one_problem(MINIMAL + "sinks:\n  sqlite: {path: ':memory:'}\n")
    # a disabled sink is not checked against the filesystem
    load_config_text(MINIMAL + f"sinks:\n  sqlite: {{path: '{tmp_path}', enabled: false}}\n")


@pytest.mark.parametrize("sink", ["postgres", "nats"])
def test_journal_dir_must_not_be_a_file(tmp_path: Path, sink: str) -> None:
    journal = tmp_path / "journal"
    journal.write_text("not a directory")
    problem = one_problem(MINIMAL + f"sinks:\n  {sink}: {{enabled: true, journal_dir: "
                                    f"'{journal}'}}\n")
    assert problem == (f"sinks.{sink}: journal_dir: {journal} is a file; sinks.{sink}.journal_dir "
                       "must be a directory")


def test_nats_creds_file_must_exist(tmp_path: Path) -> None:
    problem = one_problem(MINIMAL + f"sinks:\n  nats: {{enabled: true, creds_file: "
                                    f"'{tmp_path / 'none.creds'}'}}\n")
    assert problem == f"sinks.nats: creds_file: {tmp_path / 'none.creds'} is not a file"


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", "1e400"])
def test_no_infinite_or_nan_numbers(value: str) -> None:
    for section in (f"clock: {{speed: {value}}}", f"transport: {{backoff_max_s: {value}}}",
                    f"shutdown: {{drain_timeout_s: {value}}}"):
        problem = one_problem(MINIMAL + section + "\n")
        assert "finite number" in problem or "greater than" in problem, problem


def test_clock_bounds() -> None:
    assert "less than or equal to 1000000" in one_problem(MINIMAL + "clock: {speed: 1e9}\n")
    assert one_problem(MINIMAL + "clock: {start_ms: -5}\n").startswith("clock.start_ms: ")


@pytest.mark.parametrize(("host", "fragment"), [
    ("''", "empty host"), ("'not a host!'", "neither an IP address nor a host name"),
    ("999.1.1.1", "neither"), ("'-bad-.example'", "neither"),
])
def test_http_host_must_be_usable(host: str, fragment: str) -> None:
    problem = one_problem(MINIMAL + f"observability: {{http: {{host: {host}}}}}\n")
    assert problem.startswith("observability.http.host: ") and fragment in problem


def test_good_http_hosts() -> None:
    # beyond loopback the web page needs a token (tests/observability/test_web.py): off here
    for host in ("0.0.0.0", "'::'", "'::1'", "localhost", "metrics.internal.example"):
        load_config_text(MINIMAL + f"observability: {{http: {{host: {host}}}}}\n")


@pytest.mark.parametrize(("field", "url", "fragment"), [
    ("ws_url", "ws://", "has no host"),
    ("ws_url", "ws://:9000/market", "has no host"),
    ("ws_url", "ws://127.0.0.1:99999/market", "port must be a number from 1 to 65535"),
    ("ws_url", "ws://127.0.0.1:-1/market", "port must be a number"),
    ("ws_url", "ws://127.0.0.1:port/market", "port must be a number"),
    ("ws_url", "'ws://127.0.0.1/mar ket'", "whitespace"),
    ("ws_url", "'ws://exa mple.com'", "whitespace"),
    ("ws_url", "ws://bad_host!/x", "not a valid host name"),
    ("rest_url", "http://", "has no host"),
    ("rest_url", "http://127.0.0.1:0", "port must be a number"),
    ("rest_url", "'http://127.0.0.1:8000/?x=1'", "no query"),
])
def test_malformed_endpoint_urls(field: str, url: str, fragment: str) -> None:
    problem = one_problem(MINIMAL + f"    {field}: {url}\n")
    assert problem.startswith(f"feeds[0].{field}: ") and fragment in problem, problem


def test_good_endpoint_urls() -> None:
    cfg = load_config_text(MINIMAL + "    ws_url: ws://[::1]:8765/market/\n"
                                     "    rest_url: https://fapi.binance.com\n")
    assert cfg.feeds[0].ws_base == "ws://[::1]:8765/market"


def test_warmup_history_is_capped() -> None:
    problem = one_problem(MINIMAL + "gap_fill: {history: 1000000000000}\n")
    assert problem == "gap_fill.history: Input should be less than or equal to 100000 " \
                      "(got 1000000000000)"
    problem = one_problem(MINIMAL + "buffer_size: 200000\n")
    assert "gap_fill.history defaults to buffer_size (200,000)" in problem
    cfg = load_config_text(MINIMAL + "buffer_size: 200000\ngap_fill: {history: 500}\n")
    assert cfg.gap_fill.history == 500


# -- hostile or oversized YAML: one short line ---------------------------------------------------


def test_an_integer_python_refuses_to_convert() -> None:
    problem = one_problem(MINIMAL + "buffer_size: " + "9" * 5001 + "\n")
    assert problem == "YAML error at line 4, column 14: integer of 5001 characters is too long"


def test_billion_laughs_is_refused_in_one_short_line() -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    problem = one_problem(MINIMAL + "\n".join(lines) + "\nbuffer_size: *a8\n")
    assert problem.startswith("YAML error: the document expands to more than 100,000 values")
    assert len(problem) < 200


def test_recursive_alias_and_deep_nesting_are_refused() -> None:
    assert one_problem(MINIMAL + "x: &r [1, *r]\n").startswith("YAML error: recursive alias")
    deep = MINIMAL + "x: " + "[" * 50_000 + "]" * 50_000 + "\n"
    assert one_problem(deep) == "YAML error: the document is nested too deeply"


def test_oversized_document_and_file(tmp_path: Path) -> None:
    big = MINIMAL + "# " + "x" * (5 << 20) + "\n"
    assert one_problem(big) == "YAML error: the document is larger than 4 MiB"
    path = tmp_path / "big.yaml"
    path.write_text(big)
    with pytest.raises(ConfigValidationError) as info:
        load_config(path, env={})
    assert info.value.problems == ("the file is larger than 4 MiB; refusing it",)


def test_every_problem_line_is_capped() -> None:
    symbols = ", ".join(f"B{i}$" for i in range(5000))
    problem = one_problem(f"feeds:\n  - venue: binance-usdm\n    symbols: [{symbols}]\n")
    assert len(problem) < MAX_PROBLEM_CHARS + 40
    assert problem.endswith(" more characters)")


def test_a_directory_as_the_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigValidationError) as info:
        load_config(tmp_path, env={})
    assert info.value.problems == (f"{tmp_path} is a directory, not a file",)


# -- a comma-separated string is a list wherever a list of strings is expected -------------------


def test_env_string_becomes_a_list_for_every_list_field() -> None:
    env = {"CANDLEKEEPER__SINKS__NATS__SERVERS": "nats://127.0.0.1:4222"}
    assert load_config_text(MINIMAL, env).sinks.nats.servers == ("nats://127.0.0.1:4222",)
    env = {"CANDLEKEEPER__SINKS__NATS__SERVERS": "nats://a:4222, nats://b:4223"}
    assert load_config_text(MINIMAL, env).sinks.nats.servers == ("nats://a:4222",
                                                                 "nats://b:4223")
    cfg = load_config_text(MINIMAL + "sinks: {nats: {servers: 'nats://c:4222'}}\n")
    assert cfg.sinks.nats.servers == ("nats://c:4222",)
