"""Segmentation models."""
