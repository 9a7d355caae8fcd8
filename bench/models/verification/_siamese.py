"""Twin (Siamese) embedding networks and their losses.

One embedding network is applied to every input of a pair/triplet, so the twins share all weights
by construction.  Embeddings are L2-normalised, so distances lie in [0, 2] and one margin works
for every dataset.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(cin: int, cout: int) -> nn.Sequential:
    """3x3 conv, BN, ReLU, then 2x2 max-pool: ``[B, cin, H, W] -> [B, cout, H/2, W/2]``."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class EmbeddingNet(nn.Module):
    """The shared branch: ``x [B, 3, S, S] -> unit-norm embedding [B, dim]``.

    Four conv-BN-ReLU-pool stages of ``width, 2w, 4w, 4w`` channels, global average pooling and a
    linear projection.
    """

    def __init__(self, width: int = 32, dim: int = 64) -> None:
        super().__init__()
        chans = [3, width, 2 * width, 4 * width, 4 * width]
        self.stages = nn.Sequential(*(conv_bn(a, b) for a, b in zip(chans[:-1], chans[1:], strict=True)))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(chans[-1], dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.pool(self.stages(x)).flatten(1)), dim=1)


def pairwise_distances(emb: torch.Tensor) -> torch.Tensor:
    """Euclidean distances ``[B, B]`` between the rows of ``emb: [B, D]`` (differentiable at 0)."""
    sq = (emb[:, None, :] - emb[None, :, :]).pow(2).sum(-1)
    return sq.clamp_min(1e-12).sqrt()


def contrastive_loss(emb: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Hadsell et al. 2006 over every pair of the batch: ``Y * D^2 + (1 - Y) * max(margin - D, 0)^2``.

    ``emb: [B, D]``, ``labels: [B]``; Y = 1 for a same-class pair.  Same and different pairs are
    averaged separately and weighted equally, so the class count does not tilt the balance.
    """
    d = pairwise_distances(emb)
    same = labels[:, None] == labels[None, :]
    off_diag = ~torch.eye(len(emb), dtype=torch.bool, device=emb.device)
    pos, neg = same & off_diag, ~same
    terms = []
    if pos.any():
        terms.append(d[pos].pow(2).mean())
    if neg.any():
        terms.append((margin - d[neg]).clamp_min(0).pow(2).mean())
    return torch.stack(terms).mean() if terms else emb.sum() * 0


def triplet_loss(emb: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Schroff et al. 2015, ``max(d(a, p) - d(a, n) + margin, 0)`` over every valid triplet of the batch.

    ``emb: [B, D]``, ``labels: [B]``.  Online "batch-all" mining (Hermans et al. 2017): the mean
    over the triplets that still violate the margin, so easy triplets do not dilute the gradient.
    """
    d = pairwise_distances(emb)
    same = labels[:, None] == labels[None, :]
    off_diag = ~torch.eye(len(emb), dtype=torch.bool, device=emb.device)
    valid = (same & off_diag)[:, :, None] & (~same)[:, None, :]  # [a, p, n]
    loss = (d[:, :, None] - d[:, None, :] + margin).clamp_min(0)[valid]
    if loss.numel() == 0:
        return emb.sum() * 0
    active = loss > 1e-12
    return loss[active].mean() if active.any() else loss.mean()


class Siamese(nn.Module):
    """The twin network: ``forward(x) -> embedding``; ``siamese_loss(emb, labels)`` trains it.

    Every pair (contrastive) or triplet (triplet loss) inside a batch is used, which is what the
    twin/triplet architectures compute with one shared branch applied to each member.
    """

    def __init__(self, loss: str, margin: float, width: int, dim: int) -> None:
        super().__init__()
        if loss not in ("contrastive", "triplet"):
            raise ValueError(f"loss must be 'contrastive' or 'triplet', got {loss!r}")
        self.loss_kind, self.margin = loss, margin
        self.embed = EmbeddingNet(width, dim)
        self.bench_head = "embed.head"
        self.bench_stages = [f"embed.stages.{i}" for i in range(4)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)

    def siamese_loss(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Loss of a batch of embeddings ``[B, D]`` with class ``labels [B]``."""
        fn = triplet_loss if self.loss_kind == "triplet" else contrastive_loss
        return fn(emb, labels, self.margin)
