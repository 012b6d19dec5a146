"""A cached synthetic SEVIR-LR store for training and evaluation without real SEVIR.

:func:`synthetic_store` builds, once, a store of synthetic storms (:mod:`.synthetic`) on the
SEVIR-LR grid under the cache directory and returns its path; later calls (and other processes,
which wait on a file lock while one builds) reuse it. The full-resolution HDF5 files it is built
from are deleted afterwards. The cache directory is ``$NOWCAST_CACHE`` or ``~/.cache/nowcast``.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ..foundation.cache import cache_dir

__all__ = ["synthetic_store"]


def synthetic_store(n_events: int = 480, seed: int = 0, lr: bool = True, root: str | os.PathLike | None = None,
                    progress: bool = True, workers: int | None = None, log=None, texture: str = "radar") -> str:
    """Path of a synthetic store, building it first if it is not in the cache.

    Parameters
    ----------
    n_events : int
        Synthetic events generated (events with missing pixels are left out of the store, as the
        default build does for real SEVIR; half of the rest fall in train, a quarter each in val
        and test).
    seed : int
        Seed of the synthetic set.
    lr : bool
        SEVIR-LR (128², 10 min) rather than SEVIR (384², 5 min).
    root : path-like, optional
        Cache directory (default :func:`cache_dir`).
    progress : bool
        Progress bars while building.
    workers : int, optional
        Generating processes (default: all cores).
    log : callable, optional
        Receives the "building … once" message (default: print to stderr).
    texture : {'radar', 'cells'}
        The storms' small-scale structure (:class:`~.synthetic.SyntheticConfig`).

    Returns
    -------
    str
        The store path (``<cache>/synthetic/sevir[lr]-e<n>-s<seed>[-radar].zarr``; the smooth ``cells``
        stores keep the name they had before the radar texture existed).
    """
    import fcntl

    from .store import BuildConfig, build_store
    from .synthetic import TEXTURES, SyntheticConfig, write_synthetic_sevir

    base = Path(root) if root is not None else cache_dir()
    if texture not in TEXTURES:
        raise ValueError(f"texture must be one of {TEXTURES}, got {texture!r}")
    name = f"{'sevirlr' if lr else 'sevir'}-e{n_events}-s{seed}" + ("" if texture == "cells" else f"-{texture}")
    store = base / "synthetic" / f"{name}.zarr"
    done = store / ".complete"
    if done.exists():
        return str(store)
    store.parent.mkdir(parents=True, exist_ok=True)
    with open(store.parent / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)            # another process may be building it
        if done.exists():
            return str(store)
        (log or (lambda m: print(m, file=sys.stderr, flush=True)))(
            f"building the synthetic {'SEVIR-LR' if lr else 'SEVIR'} store ({n_events} events, seed {seed}) "
            f"with the {texture} texture once at {store}; later runs reuse it")
        raw = store.parent / f"{name}.raw"
        write_synthetic_sevir(raw, SyntheticConfig(n_events=n_events, seed=seed, texture=texture), progress=progress,
                              workers=workers or os.cpu_count() or 1)
        build_store(str(raw), str(store), BuildConfig(lr=lr), progress=progress)
        shutil.rmtree(raw)
        done.touch()
    return str(store)
