"""Metric-learning (verification) models."""
