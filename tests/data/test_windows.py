"""Windows, splits, SEVIR-LR and augmentation proved exact on a value-encoded store."""

import numpy as np
import pandas as pd
import pytest
import torch

from nowcast.data.sevir import filter_catalog, read_catalog
from nowcast.data.store import BuildConfig, build_store
from nowcast.data.windows import WindowDataset
from nowcast.foundation.tasks import TASKS, get_task

SIZE = 24


def _expected_event(number, frames, lr):
    t, y, x = np.meshgrid(np.arange(frames), np.arange(SIZE), np.arange(SIZE), indexing="ij")
    full = 2 * (number % 50) + t + y + x
    if not lr:
        return full
    # frames 0, 2, …; the max of each 3×3 block of the increasing pattern is its last row and column
    t2, i, j = np.meshgrid(np.arange(0, frames, 2), np.arange(SIZE // 3), np.arange(SIZE // 3), indexing="ij")
    return 2 * (number % 50) + t2 + (3 * i + 2) + (3 * j + 2)


@pytest.fixture(scope="module")
def stores(make_sevir, tmp_path_factory):
    src = make_sevir(n_events=9, size=SIZE, frames=49, seed=2, value_encoded=True,
                     missing_fraction=0.0, duplicate_fraction=0.0)
    cat = read_catalog(src / "CATALOG.csv")
    number = {r.id: int(r.regime.split(":")[1]) for _, r in cat.iterrows()}
    out = tmp_path_factory.mktemp("stores")
    paths = {}
    for lr in (True, False):
        paths[lr] = str(out / f"lr{int(lr)}.zarr")
        build_store(str(src), paths[lr], BuildConfig(lr=lr))
    return paths, number, filter_catalog(cat)


@pytest.mark.parametrize("task,lr", [("sevirlr", True), ("sevir", False)])
@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_sequent_windows_are_exact(stores, task, lr, split):
    paths, number, rows = stores
    ds = WindowDataset(paths[lr], task=task, split=split)
    tk = get_task(task)
    times = rows.set_index("id")["time_utc"]
    bounds = {"train": (None, "2019-01-01"), "val": ("2019-01-01", "2019-06-01"), "test": ("2019-06-01", None)}[split]
    expected_ids = [i for i in rows["id"] if (bounds[0] is None or times[i] > pd.Timestamp(bounds[0]))
                    and (bounds[1] is None or times[i] <= pd.Timestamp(bounds[1]))]
    assert ds.event_ids == expected_ids and len(ds) == 3 * len(expected_ids)
    for k in range(len(ds)):
        item = ds[k]
        assert item["event_id"] == expected_ids[k // 3] and item["start"] == (k % 3) * tk.stride
        full = _expected_event(number[item["event_id"]], 49, lr)
        want = full[item["start"]:item["start"] + tk.seq_len] / 255.0
        assert item["x"].shape == (tk.seq_len, 1, want.shape[1], want.shape[2])
        np.testing.assert_allclose(item["x"][:, 0].numpy(), want, rtol=0, atol=1e-7)
        assert not item["missing"].any()


def test_augmentation_is_one_flip_rotation_for_all_frames(stores):
    paths, number, _ = stores
    plain = WindowDataset(paths[True], split=None)
    aug = WindowDataset(paths[True], split=None, augment=True, seed=3)
    seen = set()
    for k in range(len(plain)):
        a, b = plain[k]["x"][:, 0].numpy(), aug[k]["x"][:, 0].numpy()
        matches = []
        for flip_w in (False, True):
            for flip_h in (False, True):
                for rot in range(4):
                    c = a[:, :, ::-1] if flip_w else a
                    c = c[:, ::-1, :] if flip_h else c
                    c = np.rot90(c, rot, axes=(1, 2))
                    if np.array_equal(c, b):
                        matches.append((flip_w, flip_h, rot))
        assert matches, "every frame must be transformed by the same flip/rotation"
        seen.add(matches[0])
    assert len(seen) > 2
    assert torch.equal(aug[0]["x"], aug[0]["x"])  # deterministic for a given seed and epoch


def test_dataloader_workers_and_distributed_sampler(stores):
    paths, _, _ = stores
    ds = WindowDataset(paths[True], split=None)
    ref = torch.stack([ds[i]["x"] for i in range(len(ds))])
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2,
                                         multiprocessing_context="spawn")
    got = torch.cat([b["x"] for b in loader])
    assert torch.equal(got, ref)
    parts = [list(torch.utils.data.DistributedSampler(ds, num_replicas=2, rank=r, shuffle=False))
             for r in (0, 1)]
    assert set(parts[0]) | set(parts[1]) == set(range(len(ds)))  # (the sampler pads to equal shares)


def test_task_must_match_the_store(stores):
    paths, _, _ = stores
    with pytest.raises(ValueError, match="5-min frames"):
        WindowDataset(paths[True], task="sevir")
    with pytest.raises(ValueError, match="available"):
        WindowDataset(paths[True], task="radar")
    assert TASKS["sevirlr"].seq_len == 13 and TASKS["sevir"].seq_len == 25
