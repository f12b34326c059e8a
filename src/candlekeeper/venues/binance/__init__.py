"""Binance USDⓈ-M futures and spot: one codec, two venues described as data."""
