"""Teacher endpoints of a nowcaster cached on disk (zarr), so repeated solver trainings reuse them.

A teacher pair ``i`` is fully determined by the seed: it takes window ``window_of(seed, i)`` of the
split and the standard normal latents of noise seed ``noise_seed(seed, i)``; the cache stores the
teacher's endpoint latents for pairs ``0 … count−1``. Its directory name is a digest of the key —
the model file's SHA-256, the teacher (``solver:steps``), the store and split, the latent shape
and the seed — and the key is stored in the attributes and checked on every open. Pairs are
appended a chunk at a time and ``count`` is raised only after their data is written, so a killed
fill loses at most the chunk in progress and the next run continues it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

__all__ = ["TeacherCache", "cache_key", "window_of", "noise_seed"]


def window_of(seed: int, i: int, n_windows: int) -> int:
    """Window of pair ``i`` (uniform over the split, independent of how many pairs are drawn)."""
    return int(np.random.default_rng([seed, i, 1]).integers(n_windows))


def noise_seed(seed: int, i: int) -> int:
    """Noise seed of pair ``i`` (for :func:`nowcast.models.ldm.member_noise`)."""
    return int(np.random.default_rng([seed, i, 2]).integers(2 ** 62))


def cache_key(model_sha256: str, teacher: str, store: str, split: str, shape: tuple, seed: int) -> dict:
    """The identity of a teacher cache (what its endpoints depend on)."""
    return {"model_sha256": model_sha256, "teacher": teacher, "store": str(Path(store).resolve()),
            "split": split, "shape": [int(s) for s in shape], "seed": int(seed)}


class TeacherCache:
    """An append-only zarr array of teacher endpoints ``(count, *shape)`` for one key.

    Parameters
    ----------
    root : path-like
        Directory holding caches (``<cache>/teachers``).
    key : dict
        From :func:`cache_key`.
    chunk : int
        Pairs per zarr chunk (and per append).
    """

    def __init__(self, root: str | os.PathLike, key: dict, chunk: int = 16):
        import zarr

        self.key = key
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        self.path = Path(root) / f"{key['teacher'].replace(':', '')}-{key['split']}-s{key['seed']}-{digest}.zarr"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.group = zarr.open_group(str(self.path), mode="a")
        if "endpoint" not in self.group:
            self.group.create_array("endpoint", shape=(0, *key["shape"]), chunks=(chunk, *key["shape"]),
                                    dtype="float32")
            self.group.attrs.update(key=key, count=0)
        elif self.group.attrs.get("key") != key:
            raise ValueError(f"{self.path}: the cache's key {self.group.attrs.get('key')} does not match {key}")
        self.chunk = chunk

    @property
    def count(self) -> int:
        """Pairs stored."""
        return int(self.group.attrs["count"])

    def read(self, n: int) -> np.ndarray:
        """Endpoints of pairs ``0 … n−1`` (``n ≤ count``)."""
        if n > self.count:
            raise ValueError(f"{self.path} holds {self.count} pairs, {n} asked for")
        return np.asarray(self.group["endpoint"][:n])

    def append(self, endpoints: np.ndarray) -> None:
        """Store the endpoints of pairs ``count … count + len(endpoints) − 1``."""
        arr = self.group["endpoint"]
        n, k = self.count, len(endpoints)
        if arr.shape[0] < n + k:
            arr.resize((n + k, *arr.shape[1:]))
        arr[n:n + k] = np.asarray(endpoints, dtype=np.float32)
        self.group.attrs["count"] = n + k          # raised only once the data is written
