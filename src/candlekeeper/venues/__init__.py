"""Venue adapters: endpoints as data plus Sans-I/O codecs (no asyncio, no sockets, no clock)."""
