"""Classification models."""
