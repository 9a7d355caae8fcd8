"""Typed trial result records and their provenance."""
