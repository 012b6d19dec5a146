"""A second feature space for Fréchet distances on small labelled image sets.

The Inception features FID reads are the same ones the ``inception`` training loss optimises, so a
solver trained with that loss is partly graded on its own objective. Offline there is no other
pretrained network (DINOv2, CLIP … are downloads), so for the bundled data sets the package trains
its own: a small MLP classifier on the real images (seeded, minutes on a CPU), whose 64-d
penultimate activations give the "classifier FD" (``solvers.md`` §8.1 uses the same construction).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ClassifierFeatures", "train_classifier_features"]


class ClassifierFeatures(nn.Module):
    """MLP classifier ``(N, C, H, W) → logits``; :meth:`features` gives the penultimate layer."""

    def __init__(self, shape: tuple, classes: int, hidden: int = 256, feature_dim: int = 64):
        super().__init__()
        dim = 1
        for s in shape:
            dim *= s
        self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, feature_dim),
                                   nn.ReLU())
        self.head = nn.Linear(feature_dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.head(self.trunk(x))

    @torch.no_grad()
    def features(self, images_u8: torch.Tensor) -> torch.Tensor:
        """Features of ``uint8`` images (the extractor interface of :mod:`nowcast.imagegen.fid`)."""
        return self.trunk(images_u8.float() / 127.5 - 1)


def train_classifier_features(images: torch.Tensor, labels: torch.Tensor, epochs: int = 60, seed: int = 0,
                              holdout: float = 0.2) -> tuple[ClassifierFeatures, float]:
    """Train the classifier on images in ``[−1, 1]``; returns it and its held-out accuracy.

    Raises
    ------
    ValueError
        When the images carry no labels.
    """
    if (labels < 0).any():
        raise ValueError("the classifier feature space needs labelled images")
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(images), generator=g)
    n_test = int(len(images) * holdout)
    test, train = perm[:n_test], perm[n_test:]
    torch.manual_seed(seed)
    net = ClassifierFeatures(tuple(images.shape[1:]), int(labels.max()) + 1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
    for _ in range(epochs):
        order = train[torch.randperm(len(train), generator=g)]
        for i in range(0, len(order), 128):
            idx = order[i:i + 128]
            # light noise augmentation: generated images are never exactly on the data manifold
            x = images[idx] + 0.05 * torch.randn(images[idx].shape, generator=g)
            loss = nn.functional.cross_entropy(net(x), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = float((net(images[test]).argmax(1) == labels[test]).float().mean()) if n_test else float("nan")
    return net, acc
