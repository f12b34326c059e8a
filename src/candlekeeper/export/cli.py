"""``candlekeeper export``: stored candles into a CSV, JSON Lines or Parquet file.

Reads any sink that can be read back (SQLite, PostgreSQL: ``-c config.yaml [--sink NAME]`` or
``--db PATH|DSN``), page by page (constant memory for any number of rows), with a progress bar
on a terminal, and puts each stream's gap audit in the file's metadata (see ``writers.py``).
Exit status: 0 written; 1 the export failed (the database, the output file); 2 a bad flag.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Coroutine, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click
from click.core import ParameterSource
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from candlekeeper.backfill.cli import parse_time
from candlekeeper.config import load_config
from candlekeeper.errors import CandlekeeperError, ConfigError
from candlekeeper.export.run import export_streams, planned_rows, select_keys
from candlekeeper.export.writers import FORMATS, make_writer
from candlekeeper.stored import DEFAULT_PAGE_ROWS, READABLE_SINKS, StoredCandles, scrub

__all__ = ["export_command"]


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def _split(values: Sequence[str]) -> list[str]:
    return [s.strip() for v in values for s in v.split(",") if s.strip()]


def _format(fmt: str | None, output: Path | None) -> str:
    if fmt is not None:
        return fmt
    suffix = output.suffix.lower().lstrip(".") if output is not None else ""
    return {"parquet": "parquet", "pq": "parquet", "jsonl": "jsonl", "ndjson": "jsonl"}.get(
        suffix, "csv")


@contextmanager
def _progress(total: int | None) -> Iterator[Any]:
    """A rich bar on stderr when it is a terminal; nothing otherwise (a pipe, a log, CI)."""
    console = Console(stderr=True)
    bar = Progress(TextColumn("export"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("rows"), TimeRemainingColumn(), console=console,
                   disable=not console.is_terminal)
    with bar:
        task = bar.add_task("export", total=total)
        yield lambda n: bar.advance(task, n)


@click.command("export")
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path),
              envvar="CANDLEKEEPER_CONFIG", default=None,
              help="YAML config file: read its SQLite or PostgreSQL sink.")
@click.option("--db", default=None, metavar="PATH|DSN",
              help="Read this SQLite file or PostgreSQL DSN instead of a config's sink.")
@click.option("--sink", type=click.Choice(READABLE_SINKS), default=None,
              help="The config's sink to read (default: the first enabled of "
              f"{', '.join(READABLE_SINKS)}).")
@click.option("--venue", "venues", multiple=True, help="Venue id (repeatable).")
@click.option("--symbol", "symbols", multiple=True,
              help="Symbol (comma-separated or repeated); default: every stored one.")
@click.option("--interval", "intervals", multiple=True,
              help="Interval (comma-separated or repeated); default: every stored one.")
@click.option("--start", default=None,
              help="First open time (2024-01-01, ISO time or Unix ms); default: each stream's "
              "first stored candle.")
@click.option("--end", default=None,
              help="Exclusive end of open times ('now', ISO time or Unix ms); default: each "
              "stream's last stored candle (the audit then finds interior holes only).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="Default: from the output's extension, else csv.")
@click.option("-o", "--output", default="-", show_default=True,
              help="Output file; '-' is standard output (csv and jsonl only).")
@click.option("--meta", "meta_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Where the metadata (gap audit) of a csv/jsonl export goes "
              "(default: OUTPUT.meta.json; none for standard output unless given).")
@click.option("--page-rows", type=click.IntRange(1), default=DEFAULT_PAGE_ROWS, hidden=True)
@click.pass_context
def export_command(ctx: click.Context, config_path: Path | None, db: str | None, sink: str | None,
                   venues: tuple[str, ...], symbols: tuple[str, ...], intervals: tuple[str, ...],
                   start: str | None, end: str | None, fmt: str | None, output: str,
                   meta_path: Path | None, page_rows: int) -> None:
    """Export stored candles (any readable sink) to CSV, JSON Lines or Parquet, with each
    stream's gap audit in the file's metadata."""
    from_env = ctx.get_parameter_source("config_path") is ParameterSource.ENVIRONMENT
    if db is not None and from_env:  # --db on the command line beats CANDLEKEEPER_CONFIG
        config_path = None
    if (config_path is None) == (db is None):
        _fail("give the source once: -c/--config FILE or --db PATH|DSN")
    if db is not None and sink is not None:
        _fail("--sink picks a sink of a config (-c); --db names the database itself")
    try:
        lo = parse_time(start) if start else None
        hi = parse_time(end) if end else None
    except click.BadParameter as exc:
        _fail(f"--start/--end: {exc.message}")
    if lo is not None and hi is not None and hi <= lo:
        _fail("--end must be after --start")
    out = None if output == "-" else Path(output)
    chosen = _format(fmt, out)
    secrets: list[str] = [db] if db else []
    try:
        if config_path is not None:
            config = load_config(config_path)
            if config.sinks.postgres.enabled:
                secrets.append(config.sinks.postgres.dsn.get_secret_value())
            source = StoredCandles.of(config, sink=sink)
        else:
            assert db is not None
            source = StoredCandles.of(db)
        written: list[Path] = []
        meta = _run(_export(source, _split(venues), _split(symbols), _split(intervals),
                            lo, hi, chosen, out, meta_path, page_rows, written), written)
    except KeyboardInterrupt:
        _fail("interrupted (a partial output file was removed)", code=130)
    except BrokenPipeError:  # `export ... | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(141)
    except ConfigError as exc:
        _fail(scrub(str(exc), secrets))
    except (CandlekeeperError, OSError) as exc:
        _fail(scrub(f"export failed: {exc}", secrets), code=1)
    streams = meta["streams"]
    holes = sum(s["holes"] for s in streams)
    click.echo(f"export: {meta['rows']} rows of {len(streams)} stream(s) as {chosen} to "
               f"{output if out is not None else 'stdout'}; {holes} gap(s), "
               f"{sum(s['missing'] for s in streams)} candle(s) missing", err=True)


def _run(job: Coroutine[Any, Any, dict[str, Any]], written: list[Path]) -> dict[str, Any]:
    """Run the export; if it fails, remove the half-written output (a Parquet file without its
    footer cannot even be opened) rather than leave it looking like a result. A file the
    export never opened (it failed before) is left alone."""
    try:
        return asyncio.run(job)
    except BaseException:
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        raise


async def _export(source: StoredCandles, venues: list[str], symbols: list[str],
                  intervals: list[str], start: int | None, end: int | None, fmt: str,
                  out: Path | None, meta_path: Path | None, page_rows: int,
                  written: list[Path]) -> dict[str, Any]:
    async with source:
        keys = await select_keys(source, venues, symbols, intervals)
        writer, files = make_writer(fmt, out, sys.stdout, sys.stdout.buffer, meta_path)
        written.extend([] if out is None else [out])
        try:
            with _progress(planned_rows(keys, start, end, time.time_ns() // 1_000_000)) as advance:
                return await export_streams(source, keys, start, end, writer, fmt=fmt,
                                            advance=advance, page_rows=page_rows)
        finally:
            for f in files:
                f.close()
