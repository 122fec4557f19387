"""Shared test helpers: model fixtures, raw-format parsers, paths."""
