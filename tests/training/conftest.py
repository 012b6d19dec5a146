"""A tiny model configuration and a trained tiny VAE for the training tests (the store: tests/conftest.py)."""

import pytest

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
