"""Tiny model configurations shared by the model tests."""

import pytest
import torch

from nowcast.models.ldm import DiffusionConfig, LatentDiffusion
from nowcast.models.unet import SpaceTimeUNet, UNetConfig
from nowcast.models.vae import FrameVAE, VAEConfig

TINY_VAE = VAEConfig(block_out_channels=(8, 16, 16, 16), layers_per_block=1, latent_channels=4, norm_groups=4)
TINY_UNET = UNetConfig(latent_channels=4, context_frames=3, target_frames=2, height=4, width=4, base_units=16,
                       depth=(1, 1), heads=2, dropout=0.0, norm_groups=4)


@pytest.fixture
def tiny_ldm():
    torch.manual_seed(0)
    return LatentDiffusion(FrameVAE(TINY_VAE), SpaceTimeUNet(TINY_UNET), DiffusionConfig()).eval()


@pytest.fixture
def tiny_vae_cfg():
    return TINY_VAE


@pytest.fixture
def tiny_unet_cfg():
    return TINY_UNET
