"""Logging, metrics, health and the terminal dashboard."""
