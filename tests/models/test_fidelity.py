"""Architecture fidelity: at the reference configuration the parameter count matches the paper.

Built on the ``meta`` device (shapes only, no memory, no init), so even VGG-19 and
EfficientNet-B7 cost milliseconds.  Parameters that exist only for training (auxiliary heads,
``train_only_modules``) are left out when the published figure excludes them.
"""

from __future__ import annotations

import pytest
import torch

from bench.models import MODELS, build_model

TOLERANCE = 0.02


def count(name: str) -> int:
    """Parameters of ``name`` at its reference configuration, without train-only modules."""
    spec = MODELS.get(name).meta
    with torch.device("meta"):
        model = build_model(name, spec.ref_num_classes, spec.ref_image_size, {})
    skip = tuple(m + "." for m in spec.train_only_modules)
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith(skip))


@pytest.mark.parametrize("name", MODELS.names())
def test_param_count_within_2_percent_of_published(name: str) -> None:
    spec = MODELS.get(name).meta
    if spec.published_params is None:
        # No figure is acceptable only with the reason written down next to the registration.
        assert spec.published_ref.strip(), f"{name}: give published_params or say in published_ref why none exists"
        pytest.skip(f"{name}: no published count ({spec.published_ref})")
    n = count(name)
    rel = abs(n - spec.published_params) / spec.published_params
    assert rel <= TOLERANCE, (
        f"{name}: {n / 1e6:.2f}M parameters vs {spec.published_params / 1e6:.2f}M published "
        f"({spec.published_ref}); off by {100 * rel:.1f}%"
    )
