"""Venue-independent domain model: candles, stream keys, intervals, events, bus and buffers."""
