"""The service's read-only web page: a live streams table and a candlestick chart."""

from candlekeeper.observability.web.hub import WebClient, WebHub, candle_json, table_json
from candlekeeper.observability.web.routes import add_web_routes

__all__ = ["WebClient", "WebHub", "add_web_routes", "candle_json", "table_json"]
