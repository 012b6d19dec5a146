"""Windowed context → target samples from a store, as a torch ``Dataset``.

Task presets (PreDiff/Earthformer):

* ``sevir``: 13 context + 12 target frames at 5 min, windows every 12 frames (3 per 49-frame event);
* ``sevirlr``: 7 + 6 frames at 10 min, windows every 6 frames (3 per 25-frame event).

Each item is a dict with ``x`` — float32 ``(T, 1, H, W)`` in ``[0, 1]`` (bytes/255; the first
``in_len`` frames are the context), ``missing`` — bool ``(T, 1, H, W)`` (byte 255), ``event_id``
and ``start`` (the window's first frame). Augmentations (flips and 90° rotations) are applied
identically to every frame of a window. The store is opened lazily once per process, so the
dataset works with ``num_workers > 0`` (fork or spawn) and with ``DistributedSampler``.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ..foundation.tasks import MISSING, get_task
from .codec import to_unit

__all__ = ["WindowDataset", "read_split", "window_frames"]


def read_split(store: str, split: str) -> list:
    """Event ids of a split (``train``, ``val``, ``test``) written beside a store."""
    import fsspec

    if split not in ("train", "val", "test"):
        raise ValueError(f"unknown split {split!r}; available: ['train', 'val', 'test']")
    from .store import splits_dir

    with fsspec.open(f"{splits_dir(store)}/{split}.txt", "r") as f:
        return [line.strip() for line in f if line.strip()]


def window_frames(item: dict) -> torch.Tensor:
    """``(T, H, W)`` float frames (byte/255) of a :class:`WindowDataset` item, missing pixels set to 0."""
    return torch.where(item["missing"], 0.0, item["x"])[:, 0]


class WindowDataset(torch.utils.data.Dataset):
    """Windows of a store's events for a task and split.

    Parameters
    ----------
    store : str
        A complete store built by :func:`nowcast.data.store.build_store`.
    task : str
        ``sevir`` or ``sevirlr``; must match the store's frame interval.
    split : str, optional
        ``train``, ``val`` or ``test``; ``None`` uses every event.
    augment : bool
        Random horizontal/vertical flips and rotation by a multiple of 90°, the same for all frames.
    seed : int
        Seed of the augmentation (item i is the i-th window in (event, start) order).
    """

    def __init__(self, store: str, task: str = "sevirlr", split: Optional[str] = "train",
                 augment: bool = False, seed: int = 0):
        self.store, self.task = str(store), get_task(task)
        self.augment, self.seed = augment, seed
        from .store import open_store

        meta = open_store(self.store)
        if int(meta.attrs.get("frame_minutes", -1)) != self.task.frame_minutes:
            raise ValueError(f"task {task!r} needs {self.task.frame_minutes}-min frames; {store} has "
                             f"{meta.attrs.get('frame_minutes')}-min frames (task {meta.attrs.get('task')!r})")
        ids = [str(i) for i in meta["id"].values]
        wanted = ids if split is None else read_split(self.store, split)
        pos = {e: k for k, e in enumerate(ids)}
        self.events = np.array([pos[e] for e in wanted if e in pos], dtype=np.int64)
        self.event_ids = [ids[k] for k in self.events]
        n_frames = meta.sizes["time"]
        self.starts = np.arange(0, n_frames - self.task.seq_len + 1, self.task.stride)
        if len(self.starts) == 0:
            raise ValueError(f"events of {n_frames} frames are too short for task {task!r} "
                             f"({self.task.seq_len} frames)")
        self._array = None
        self._pid = None

    def __len__(self) -> int:
        return len(self.events) * len(self.starts)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_array"], state["_pid"] = None, None
        return state

    def _vil(self):
        import os

        import zarr

        if self._array is None or self._pid != os.getpid():
            self._array = zarr.open_group(self.store, mode="r")["vil"]
            self._pid = os.getpid()
        return self._array

    def window(self, index: int) -> tuple:
        """``(event position in the split, start frame)`` of item ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} windows")
        return index // len(self.starts), int(self.starts[index % len(self.starts)])

    def __getitem__(self, index: int) -> dict:
        k, start = self.window(index)
        data = np.asarray(self._vil()[int(self.events[k]), start:start + self.task.seq_len])
        if self.augment:
            rng = np.random.default_rng([self.seed, 0, index, 1])      # (the 0 keeps earlier streams)
            if rng.uniform() < 0.5:
                data = data[:, :, ::-1]
            if rng.uniform() < 0.5:
                data = data[:, ::-1, :]
            data = np.rot90(data, int(rng.integers(4)), axes=(1, 2))
        data = np.ascontiguousarray(data)
        missing = torch.from_numpy(data == MISSING)[:, None]
        x = torch.from_numpy(to_unit(data, keep_missing=True))[:, None]
        return {"x": x, "missing": missing, "event_id": self.event_ids[k], "start": start}
