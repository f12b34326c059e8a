"""``GET /fapi/v1/exchangeInfo`` and ``GET /api/v3/exchangeInfo`` bodies (§A.6, §B.4).

Only the fields clients actually read are filled with meaning (symbol, status, contract type,
assets, precisions, tick and lot filters, rate limits); the shape follows the real responses so
that generic clients can parse it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from candlekeeper.sim.profiles import SymbolProfile
from candlekeeper.venues.contract import VenueSpec

_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "BTC", "ETH", "BNB", "EUR", "TRY")


def split_symbol(symbol: str) -> tuple[str, str]:
    for quote in _QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol, ""


def _step(decimals: int) -> str:
    return format(10.0 ** -decimals, f".{max(decimals, 1)}f") if decimals > 0 else "1"


def _symbol(futures: bool, symbol: str, p: SymbolProfile) -> dict[str, Any]:
    base, quote = split_symbol(symbol)
    filters = [
        {"filterType": "PRICE_FILTER", "minPrice": _step(p.price_decimals),
         "maxPrice": "1000000", "tickSize": _step(p.price_decimals)},
        {"filterType": "LOT_SIZE", "minQty": _step(p.qty_decimals), "maxQty": "10000000",
         "stepSize": _step(p.qty_decimals)},
    ]
    if futures:
        return {"symbol": symbol, "pair": symbol, "contractType": "PERPETUAL",
                "deliveryDate": 4133404800000, "onboardDate": 1569398400000,
                "status": "TRADING", "baseAsset": base, "quoteAsset": quote,
                "marginAsset": quote, "pricePrecision": p.price_decimals,
                "quantityPrecision": p.qty_decimals, "baseAssetPrecision": 8,
                "quotePrecision": 8, "underlyingType": "COIN", "filters": filters,
                "orderTypes": ["LIMIT", "MARKET"], "timeInForce": ["GTC", "IOC", "FOK"]}
    return {"symbol": symbol, "status": "TRADING", "baseAsset": base, "baseAssetPrecision": 8,
            "quoteAsset": quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
            "orderTypes": ["LIMIT", "MARKET"], "icebergAllowed": True,
            "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
            "permissions": ["SPOT"], "filters": filters}


def exchange_info(spec: VenueSpec, futures: bool, symbols: list[str],
                  profile: Callable[[str], SymbolProfile], now_ms: int) -> dict[str, Any]:
    """The body for ``symbols``: the USDⓈ-M shape when ``futures``, else the spot one."""
    limits: list[dict[str, Any]] = [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
         "limit": spec.rest_limits[0].limit},
    ]
    if futures:
        limits.append({"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1,
                       "limit": 1200})
        extra: dict[str, Any] = {"futuresType": "U_MARGINED", "assets": []}
    else:
        limits.append({"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE",
                       "intervalNum": 5, "limit": 61000})
        extra = {}
    return {"timezone": "UTC", "serverTime": now_ms, **extra, "rateLimits": limits,
            "exchangeFilters": [], "symbols": [_symbol(futures, s, profile(s)) for s in symbols]}
