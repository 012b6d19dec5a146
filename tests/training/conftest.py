"""A tiny store and a tiny model configuration for the training tests."""

import pytest

from nowcast.data.store import BuildConfig, build_store
from nowcast.data.synthetic import SyntheticConfig, write_synthetic_sevir

TINY_YAML = """
task: sevirlr
seed: 3
vae: {block_out_channels: [8, 16, 16, 16], layers_per_block: 1, latent_channels: 4, norm_groups: 4,
      disc_start: 2}
unet: {base_units: 16, depth: [1, 1], heads: 2, dropout: 0.1, norm_groups: 4}
alignment: {base_units: 16, depth: [1, 1], heads: 2, norm_groups: 4}
log_every: 1
val_windows: 2
val_members: 2
val_steps: 3
stages:
  vae: {batch_size: 4, lr: 1.0e-3, max_steps: 6}
  ldm: {batch_size: 2, lr: 1.0e-3, max_steps: 6, warmup_steps: 2, lr_schedule: cosine, latent_cache: true,
        train_stride: 1, ema_decay: 0.9}
  align: {batch_size: 2, lr: 1.0e-3, max_steps: 4}
"""


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory):
    """A SEVIR-LR store of 12 synthetic events on a 32² grid (96² before pooling)."""
    root = tmp_path_factory.mktemp("sevir")
    write_synthetic_sevir(root, SyntheticConfig(n_events=12, size=96, seed=5, missing_fraction=0.0))
    store = str(tmp_path_factory.mktemp("store") / "lr.zarr")
    build_store(str(root), store, BuildConfig(lr=True))
    return store


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory):
    """Path of a YAML config with tiny models and a few steps per stage."""
    path = tmp_path_factory.mktemp("configs") / "tiny.yaml"
    path.write_text(TINY_YAML)
    return str(path)


@pytest.fixture(scope="session")
def trained_vae(tiny_store, tiny_config, tmp_path_factory):
    """Run directory of a finished tiny ``vae`` run."""
    from nowcast.train import run
    from nowcast.training.config import load_config

    runs = tmp_path_factory.mktemp("runs")
    cfg = load_config(tiny_config, "vae", [("data", tiny_store), ("runs_dir", str(runs))])
    return run(cfg, progress=False)
