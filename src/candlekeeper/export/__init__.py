"""Stored candles out to files: ``candlekeeper export`` (CSV, JSON Lines, Parquet)."""

from candlekeeper.export.audit import StreamAuditor
from candlekeeper.export.run import export_streams, select_keys
from candlekeeper.export.writers import COLUMNS, FORMATS, META_KEY, make_writer

__all__ = ["COLUMNS", "FORMATS", "META_KEY", "StreamAuditor", "export_streams", "make_writer",
           "select_keys"]
