"""A plugin model whose build raises: drives the failure-path end-to-end test (BENCH_PLUGINS)."""

from __future__ import annotations

from bench.models import register_model


@register_model("broken_model", task="classification", source="tests", description="build always raises")
def build_broken_model(num_classes: int, image_size: int) -> None:
    """Raise like a real builder with a bug would."""
    raise RuntimeError(f"deliberately broken builder (num_classes={num_classes})")
