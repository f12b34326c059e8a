"""Harnesses for testing candlekeeper (and code built on it) against the simulator."""
